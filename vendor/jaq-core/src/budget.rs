//! Wharf patch: a per-thread budget for evaluating untrusted filters.
//!
//! jaq takes no countermeasure against resource exhaustion: `[range(infinite)]` runs until
//! memory is gone and `def f: 1 + f; f` overflows the stack, which aborts the process. Wharf
//! evaluates filters that users write, so every evaluation step charges a budget of steps and
//! time, and checks how much stack it has used; once a limit is crossed, every further step
//! fails with an error that `try` cannot outlive (the next step fails again).

use core::cell::Cell;
use std::time::{Duration, Instant};

/// The limits of one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Evaluation steps (term evaluations and values produced by natives and collections).
    pub steps: u64,
    /// Wall-clock time, checked every 1024 steps.
    pub time: Duration,
    /// Bytes of stack the evaluation may use below the point where it started.
    pub stack: usize,
}

/// Which limit an evaluation crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// More steps than [`Limits::steps`].
    Steps,
    /// Longer than [`Limits::time`].
    Time,
    /// Deeper than [`Limits::stack`].
    Stack,
}

#[derive(Clone, Copy)]
struct Budget {
    steps_left: u64,
    deadline: Instant,
    stack_base: usize,
    stack_limit: usize,
    exceeded: Option<Exceeded>,
}

std::thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

fn stack_address() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}

/// Runs `f` under `limits`; returns its result and the limit crossed, if any. Budgets do
/// not nest: an inner call replaces the outer budget until it returns.
pub fn with_limits<T>(limits: Limits, f: impl FnOnce() -> T) -> (T, Option<Exceeded>) {
    let budget = Budget {
        steps_left: limits.steps,
        deadline: Instant::now() + limits.time,
        stack_base: stack_address(),
        stack_limit: limits.stack,
        exceeded: None,
    };
    let previous = BUDGET.with(|b| b.replace(Some(budget)));
    let out = f();
    let exceeded = BUDGET.with(|b| b.replace(previous)).and_then(|b| b.exceeded);
    (out, exceeded)
}

/// Charges one step; `Err` once any limit is crossed (and for every step after).
/// Without a budget (outside [`with_limits`]) every step is free.
pub fn charge() -> Result<(), Exceeded> {
    BUDGET.with(|cell| {
        let Some(mut budget) = cell.get() else { return Ok(()) };
        if let Some(exceeded) = budget.exceeded {
            return Err(exceeded);
        }
        let exceeded = if budget.steps_left == 0 {
            Some(Exceeded::Steps)
        } else if budget.stack_base.saturating_sub(stack_address()) > budget.stack_limit {
            Some(Exceeded::Stack)
        } else if budget.steps_left % 1024 == 0 && Instant::now() > budget.deadline {
            Some(Exceeded::Time)
        } else {
            None
        };
        budget.steps_left = budget.steps_left.saturating_sub(1);
        budget.exceeded = exceeded;
        cell.set(Some(budget));
        exceeded.map_or(Ok(()), Err)
    })
}

impl Exceeded {
    /// The message of the error that stops the evaluation.
    pub fn message(self) -> &'static str {
        match self {
            // Both are timeouts to the user (Port reports a runaway filter as one): CPU work
            // counted in steps, or wall-clock time.
            Self::Steps => "timeout: the evaluation exceeded its budget of steps",
            Self::Time => "timeout: the evaluation exceeded its time budget",
            Self::Stack => "evaluation budget exceeded: recursion too deep",
        }
    }
}
