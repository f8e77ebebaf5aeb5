//! Wharf patch: the shared containers of arrays and objects, dropped without recursion.
//!
//! A value can nest as deeply as a filter builds it (`reduce range(200000) as $i (0; [.])`),
//! and the drop glue of nested `Rc<Vec<Val>>` recurses once per level: deep enough, it
//! overflows the thread's stack and aborts the process. [`Rc`] wraps the reference-counted
//! pointer with a `Drop` that, past [`MAX_DROP_RECURSION`] levels, hands the children of a
//! uniquely owned container to a per-thread worklist that the outermost drop empties. Shared
//! containers only lose a reference, as before.

use crate::{Map, Val};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

#[cfg(not(feature = "sync"))]
type Inner<T> = alloc::rc::Rc<T>;
#[cfg(feature = "sync")]
type Inner<T> = alloc::sync::Arc<T>;

/// How many nested containers a drop recurses into before it defers the rest to the
/// worklist (a few kilobytes of stack).
pub const MAX_DROP_RECURSION: usize = 64;

/// A container of values: what an [`Rc`] can hold.
pub trait Children: Default {
    /// Moves every value this holds to `out`, leaving it empty.
    fn take_children(&mut self, out: &mut Vec<Val>);
}

impl Children for Vec<Val> {
    fn take_children(&mut self, out: &mut Vec<Val>) {
        out.append(self)
    }
}

impl Children for Map {
    fn take_children(&mut self, out: &mut Vec<Val>) {
        for (k, v) in core::mem::take(self) {
            out.push(k);
            out.push(v);
        }
    }
}

/// A reference-counted container of values (an array's or an object's), as `alloc::rc::Rc`
/// (or `Arc` with the `sync` feature), whose drop never recurses deeper than
/// [`MAX_DROP_RECURSION`] levels.
pub struct Rc<T: Children>(Inner<T>);

impl<T: Children> Rc<T> {
    /// A new container.
    pub fn new(value: T) -> Self {
        Self(Inner::new(value))
    }

    /// A mutable reference, cloning the contents first if they are shared.
    pub fn make_mut(this: &mut Self) -> &mut T
    where
        T: Clone,
    {
        Inner::make_mut(&mut this.0)
    }

    /// The contents if this is their only reference, else `this` back.
    pub fn try_unwrap(mut this: Self) -> Result<T, Self> {
        match Inner::get_mut(&mut this.0) {
            Some(inner) => Ok(core::mem::take(inner)),
            None => Err(this),
        }
    }

    /// Whether both point to the same allocation.
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        Inner::ptr_eq(&this.0, &other.0)
    }

    /// How many references the contents have.
    pub fn strong_count(this: &Self) -> usize {
        Inner::strong_count(&this.0)
    }
}

#[cfg(feature = "std")]
mod worklist {
    use crate::Val;
    use alloc::vec::Vec;
    use core::cell::{Cell, RefCell};

    std::thread_local! {
        /// How many nested container drops are running on this thread.
        static DEPTH: Cell<usize> = const { Cell::new(0) };
        /// Values whose drop was deferred because it ran too deep.
        static PENDING: RefCell<Vec<Val>> = const { RefCell::new(Vec::new()) };
    }

    /// Drops `contents` (a container's children, taken out of it), recursing at most
    /// `MAX_DROP_RECURSION` levels. Invariant: `PENDING` is empty whenever no drop runs
    /// on this thread (the outermost drop empties it before returning).
    pub(super) fn drop_children<T: super::Children>(contents: &mut T) {
        let Ok(depth) = DEPTH.try_with(Cell::get) else {
            // The thread is ending: drop as jaq always did.
            drop(core::mem::take(contents));
            return;
        };
        if depth >= super::MAX_DROP_RECURSION {
            let deferred = PENDING.try_with(|pending| contents.take_children(&mut pending.borrow_mut()));
            if deferred.is_err() {
                drop(core::mem::take(contents));
            }
            return;
        }
        DEPTH.set(depth + 1);
        drop(core::mem::take(contents));
        if depth == 0 {
            // The outermost drop: empty the worklist, each value a fresh, bounded descent.
            while let Some(next) = PENDING.with(|pending| pending.borrow_mut().pop()) {
                drop(next);
            }
            PENDING.with(|pending| {
                let mut pending = pending.borrow_mut();
                if pending.capacity() > 4096 {
                    *pending = Vec::new();
                }
            });
        }
        DEPTH.set(depth);
    }
}

impl<T: Children> Drop for Rc<T> {
    fn drop(&mut self) {
        // A shared container only loses a reference; a unique one is emptied here, so that
        // the pointer's own drop frees an empty container.
        if let Some(contents) = Inner::get_mut(&mut self.0) {
            #[cfg(feature = "std")]
            worklist::drop_children(contents);
            #[cfg(not(feature = "std"))]
            drop(core::mem::take(contents));
        }
    }
}

impl<T: Children> Clone for Rc<T> {
    fn clone(&self) -> Self {
        Self(Inner::clone(&self.0))
    }
}

impl<T: Children> Default for Rc<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Children> From<T> for Rc<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: Children> Deref for Rc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Children + fmt::Debug> fmt::Debug for Rc<T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Children + PartialEq> PartialEq for Rc<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(self, other) || *self.0 == *other.0
    }
}

impl<T: Children + Eq> Eq for Rc<T> {}

impl<T: Children + PartialOrd> PartialOrd for Rc<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (*self.0).partial_cmp(&*other.0)
    }
}

impl<T: Children + Ord> Ord for Rc<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (*self.0).cmp(&*other.0)
    }
}

impl<T: Children + Hash> Hash for Rc<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0).hash(state)
    }
}
