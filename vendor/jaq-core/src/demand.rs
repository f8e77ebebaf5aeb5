//! Wharf patch: which part of its input a compiled filter can observe.
//!
//! A Port mapping reads a dozen fields of a payload of hundreds. When a filter only ever
//! reaches into its input through constant keys (`.body.pull_request.title`), the keys it
//! never names cannot change its outputs, so a caller may leave them out when it builds the
//! input ([`Demand`]), and skip most of the parsing. The analysis is conservative: anything
//! it does not understand (a call with the input, `..`, an update, a non-constant index)
//! demands the whole value at that point.
//!
//! Why leaving keys out cannot be observed: a projected input differs from the full one only
//! by missing object keys that no constant-key path names. Truthiness (`//`, `if`) does not
//! depend on an object's keys, and every value that an error message can quote is either
//! demanded whole (the operands of arithmetic and comparisons, the input of every call) or
//! not an object (indexing a string or a number), which a projection keeps whole.

use crate::compile::{Filter, Pattern, Term, TermId};
use crate::path::Part;
use alloc::collections::BTreeMap;
use alloc::string::String;

/// The part of a value a filter can observe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Demand {
    /// The whole value.
    All,
    /// Of an object, only these keys, each with the part of its value that is observed; any
    /// value that is not an object is observed whole. No keys: nothing is observed.
    Keys(BTreeMap<String, Demand>),
}

impl Demand {
    /// Nothing of the value is observed.
    pub fn none() -> Self {
        Self::Keys(BTreeMap::new())
    }

    /// What either of two demands observes.
    pub fn union(self, other: Self) -> Self {
        match (self, other) {
            (Self::All, _) | (_, Self::All) => Self::All,
            (Self::Keys(mut a), Self::Keys(b)) => {
                for (key, demand) in b {
                    let merged = match a.remove(&key) {
                        Some(existing) => existing.union(demand),
                        None => demand,
                    };
                    a.insert(key, merged);
                }
                Self::Keys(a)
            }
        }
    }

    fn key(key: &str, below: Self) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(key.into(), below);
        Self::Keys(keys)
    }
}

impl<F> Filter<F> {
    /// The part of its input this filter can observe (see the module documentation).
    pub fn input_demand(&self) -> Demand {
        demand(&self.lut.terms, self.id, Demand::All)
    }
}

/// The demand of term `id` on its input, when `then` is what is observed of its outputs.
fn demand(terms: &[Term], id: TermId, then: Demand) -> Demand {
    let all = |t: &TermId| demand(terms, *t, Demand::All);
    match &terms[id.0] {
        Term::Id => then,
        Term::Int(_) | Term::Num(_) | Term::Str(_) | Term::ObjEmpty | Term::Var(_) => Demand::none(),
        Term::Arr(f) | Term::Neg(f) => all(f),
        Term::ObjSingle(k, v) | Term::Logic(k, _, v) | Term::Math(k, _, v) | Term::Cmp(k, _, v) => all(k).union(all(v)),
        Term::ObjConst(entries) => entries.iter().fold(Demand::none(), |d, (_, v)| d.union(all(v))),
        Term::Label(f) => demand(terms, *f, then),
        // `catch` runs on the error, not on the input.
        Term::TryCatch(f, _) => demand(terms, *f, then),
        Term::Comma(l, r) | Term::Alt(l, r) => demand(terms, *l, then.clone()).union(demand(terms, *r, then)),
        Term::Ite(c, t, e) => all(c).union(demand(terms, *t, then.clone())).union(demand(terms, *e, then)),
        Term::Pipe(l, None, r) => demand(terms, *l, demand(terms, *r, then)),
        Term::Pipe(l, Some(Pattern::Var), r) => all(l).union(demand(terms, *r, then)),
        Term::Path(f, path) => {
            let mut below = then;
            let mut indices = Demand::none();
            for (part, _) in path.0.iter().rev() {
                below = match part {
                    Part::Index(i) => match &terms[i.0] {
                        Term::Str(key) => Demand::key(key, below),
                        _ => {
                            indices = indices.union(all(i));
                            Demand::All
                        }
                    },
                    Part::Range(from, upto) => {
                        for bound in from.iter().chain(upto) {
                            indices = indices.union(all(bound));
                        }
                        Demand::All
                    }
                };
            }
            demand(terms, *f, below).union(indices)
        }
        // Calls receive the input itself; updates, folds, `..`, destructuring and string
        // conversion are not analysed.
        Term::CallDef(..)
        | Term::Native(..)
        | Term::Recurse
        | Term::ToString
        | Term::Pipe(_, Some(Pattern::Idx(_)), _)
        | Term::Assign(..)
        | Term::Update(..)
        | Term::UpdateMath(..)
        | Term::UpdateAlt(..)
        | Term::Fold(..) => Demand::All,
    }
}
