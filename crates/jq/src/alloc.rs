//! Counting the memory an evaluation allocates, for the memory limit of its budget.

use std::alloc::{GlobalAlloc, Layout};

/// A global allocator that counts, per thread, the bytes allocated less the bytes freed, so
/// that an evaluation's budget can limit its memory ([`crate::Limits::memory`]). The process
/// installs it around its real allocator:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOCATOR: wharf_jq::CountingAlloc<mimalloc::MiMalloc> = wharf_jq::CountingAlloc(mimalloc::MiMalloc);
/// ```
///
/// Without it nothing is counted and memory limits are never crossed. The count is one
/// thread-local addition per allocation. Memory freed on another thread than the one that
/// allocated it counts as freed there: a budget measures what its own thread holds.
pub struct CountingAlloc<A>(pub A);

// SAFETY: every call is forwarded unchanged to the inner allocator, which upholds the
// `GlobalAlloc` contract; the counting touches only a thread-local integer without destructor
// (it never allocates, so it cannot re-enter the allocator).
// The one unsafe code in Wharf's crates (wharf-jq denies it elsewhere, the others forbid it).
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees about `layout` are passed on.
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            jaq_core::budget::record_allocation(layout.size() as i64);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            jaq_core::budget::record_allocation(layout.size() as i64);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (so by the inner one) with `layout`.
        unsafe { self.0.dealloc(ptr, layout) };
        jaq_core::budget::record_allocation(-(layout.size() as i64));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; the caller's guarantees on `new_size`.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            jaq_core::budget::record_allocation(new_size as i64 - layout.size() as i64);
        }
        new
    }
}
