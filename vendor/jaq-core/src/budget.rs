//! Wharf patch: a per-thread budget for evaluating untrusted filters.
//!
//! jaq takes no countermeasure against resource exhaustion: `[range(infinite)]` runs until
//! memory is gone and `def f: 1 + f; f` overflows the stack, which aborts the process. Wharf
//! evaluates filters that users write, so every evaluation step charges a budget of steps,
//! time and memory, and checks how much stack it has used; once a limit is crossed, every
//! further step fails with an error that `try` cannot outlive (the next step fails again).
//!
//! Budgets nest: a budget opened inside another is bounded by what the outer one has left
//! (steps, deadline, memory, stack), and what the inner one spends is spent by the outer one
//! too. So a unit of work (one event's mapping, one template render) can hold one budget
//! while each of its evaluations keeps its own, smaller one.
//!
//! Memory is the net number of bytes the thread has allocated (allocated less freed) since
//! the budget opened, as counted by [`record_allocation`]: a global allocator must call it
//! (Wharf's `wharf_jq::CountingAlloc`). Without such an allocator nothing is counted and the
//! memory limit is never crossed.

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
    /// Net bytes the evaluation may allocate on its thread (see [`record_allocation`]).
    pub memory: usize,
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
    /// More memory than [`Limits::memory`].
    Memory,
}

#[derive(Clone, Copy)]
struct Budget {
    steps_left: u64,
    deadline: Instant,
    stack_base: usize,
    stack_limit: usize,
    /// The thread's allocation counter above which the budget is crossed.
    memory_ceiling: i64,
    exceeded: Option<Exceeded>,
}

std::thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
    /// Net bytes allocated by this thread (allocations less deallocations) since it started,
    /// as reported by the global allocator. Invariant: a const initialiser and no destructor,
    /// so that the allocator can update it at any time, thread teardown included.
    static ALLOCATED: Cell<i64> = const { Cell::new(0) };
}

/// Records that this thread allocated `bytes` (negative: freed). Called by a counting global
/// allocator; cheap (one thread-local addition).
#[inline(always)]
pub fn record_allocation(bytes: i64) {
    // `try_with`: never panic inside an allocator, even if the slot were gone.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().wrapping_add(bytes)));
}

/// Net bytes allocated by this thread so far, as [`record_allocation`] counted them.
pub fn allocated() -> i64 {
    ALLOCATED.with(Cell::get)
}

fn stack_address() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}

/// Runs `f` under `limits`; returns its result and the limit crossed, if any.
///
/// Inside another budget, `f` runs under the smaller of `limits` and what the outer budget
/// has left, and the steps `f` spends are taken from the outer budget as well: a limit the
/// inner budget crosses because the outer one ran out is crossed by the outer one too (at
/// its next step).
pub fn with_limits<T>(limits: Limits, f: impl FnOnce() -> T) -> (T, Option<Exceeded>) {
    let now = Instant::now();
    let here = stack_address();
    let allocated = allocated();
    let memory = i64::try_from(limits.memory).unwrap_or(i64::MAX);
    let mut budget = Budget {
        steps_left: limits.steps,
        deadline: now.checked_add(limits.time).unwrap_or(now + Duration::from_secs(1 << 32)),
        stack_base: here,
        stack_limit: limits.stack,
        memory_ceiling: allocated.saturating_add(memory),
        exceeded: None,
    };
    let outer = BUDGET.with(Cell::get);
    // Which of the inner limits are the outer budget's own (what it has left): crossing one
    // of those crosses the outer budget too.
    let mut bound_by_outer = [false; 4];
    if let Some(outer) = outer {
        let outer_stack_left = outer.stack_limit.saturating_sub(outer.stack_base.saturating_sub(here));
        bound_by_outer = [
            outer.steps_left <= budget.steps_left,
            outer.deadline <= budget.deadline,
            outer_stack_left <= budget.stack_limit,
            outer.memory_ceiling <= budget.memory_ceiling,
        ];
        budget.steps_left = budget.steps_left.min(outer.steps_left);
        budget.deadline = budget.deadline.min(outer.deadline);
        budget.stack_limit = budget.stack_limit.min(outer_stack_left);
        budget.memory_ceiling = budget.memory_ceiling.min(outer.memory_ceiling);
        budget.exceeded = outer.exceeded;
    }
    let steps_at_start = budget.steps_left;
    BUDGET.with(|b| b.set(Some(budget)));
    let out = f();
    let inner = BUDGET.with(|b| b.replace(outer));
    let exceeded = inner.and_then(|b| b.exceeded);
    if let (Some(mut outer), Some(inner)) = (outer, inner) {
        let spent = steps_at_start.saturating_sub(inner.steps_left);
        outer.steps_left = outer.steps_left.saturating_sub(spent);
        let kind = |e: Exceeded| match e {
            Exceeded::Steps => 0,
            Exceeded::Time => 1,
            Exceeded::Stack => 2,
            Exceeded::Memory => 3,
        };
        if let Some(crossed) = inner.exceeded.filter(|e| bound_by_outer[kind(*e)]) {
            outer.exceeded = outer.exceeded.or(Some(crossed));
        }
        BUDGET.with(|b| b.set(Some(outer)));
    }
    (out, exceeded)
}

/// Charges one step; `Err` once any limit is crossed (and for every step after).
/// Without a budget (outside [`with_limits`]) every step is free.
pub fn charge() -> Result<(), Exceeded> {
    charge_with(1, true)
}

/// Charges `n` steps at once (work proportional to an input, done by a native in one go);
/// `Err` once any limit is crossed. Unlike [`charge`], it does not measure the stack: a
/// native may call it from a recursion that runs on a stack segment of its own (`stacker`),
/// where addresses say nothing of the thread's stack.
pub fn charge_steps(n: u64) -> Result<(), Exceeded> {
    charge_with(n, false)
}

fn charge_with(n: u64, check_stack: bool) -> Result<(), Exceeded> {
    BUDGET.with(|cell| {
        let Some(mut budget) = cell.get() else { return Ok(()) };
        if let Some(exceeded) = budget.exceeded {
            return Err(exceeded);
        }
        let exceeded = if budget.steps_left < n.max(1) {
            Some(Exceeded::Steps)
        } else if check_stack && budget.stack_base.saturating_sub(stack_address()) > budget.stack_limit {
            Some(Exceeded::Stack)
        } else if allocated() > budget.memory_ceiling {
            Some(Exceeded::Memory)
        } else if (n > 1 || budget.steps_left % 1024 == 0) && Instant::now() > budget.deadline {
            Some(Exceeded::Time)
        } else {
            None
        };
        budget.steps_left = budget.steps_left.saturating_sub(n.max(1));
        budget.exceeded = exceeded;
        cell.set(Some(budget));
        exceeded.map_or(Ok(()), Err)
    })
}

/// Checks the time and memory limits without spending a step: for natives that do long
/// work (a regex search) and poll between parts of it. `Err` once any limit is crossed.
pub fn poll() -> Result<(), Exceeded> {
    BUDGET.with(|cell| {
        let Some(mut budget) = cell.get() else { return Ok(()) };
        if let Some(exceeded) = budget.exceeded {
            return Err(exceeded);
        }
        let exceeded = if allocated() > budget.memory_ceiling {
            Some(Exceeded::Memory)
        } else if Instant::now() > budget.deadline {
            Some(Exceeded::Time)
        } else {
            None
        };
        budget.exceeded = exceeded;
        cell.set(Some(budget));
        exceeded.map_or(Ok(()), Err)
    })
}

/// The limit the current budget has crossed, if any (`None` outside a budget).
pub fn exceeded() -> Option<Exceeded> {
    BUDGET.with(Cell::get).and_then(|b| b.exceeded)
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
            Self::Memory => "evaluation budget exceeded: too much memory allocated",
        }
    }
}

/// Messages of `stderr` and `debug`, captured for the caller instead of written to the
/// process's standard error or log (a server's log is no place for a user's text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logs {
    /// One line per message, each the message's JSON text (so escaped: a message cannot
    /// forge lines), at most the capture's cap in all.
    pub text: std::string::String,
    /// Whether messages (or the end of one) were left out because the cap was reached.
    pub cut: bool,
}

struct Capture {
    logs: Logs,
    cap: usize,
}

std::thread_local! {
    static CAPTURE: core::cell::RefCell<Option<Capture>> = const { core::cell::RefCell::new(None) };
}

static UNCAPTURED_TO_STDERR: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Where messages go when no capture is open: standard error (`true`; for a command-line
/// tool, whose standard error is its user's) or nowhere (`false`, the default).
pub fn uncaptured_logs_to_stderr(on: bool) {
    UNCAPTURED_TO_STDERR.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Runs `f`, capturing the messages it logs (at most `cap` bytes of text). Inside another
/// capture, the messages go to the inner one only.
pub fn capture_logs<T>(cap: usize, f: impl FnOnce() -> T) -> (T, Logs) {
    let outer = CAPTURE.with(|c| c.replace(Some(Capture { logs: Logs::default(), cap })));
    let out = f();
    let inner = CAPTURE.with(|c| c.replace(outer));
    (out, inner.map(|c| c.logs).unwrap_or_default())
}

/// Logs one message (written with `message`'s `Display`, which must escape it): appended to
/// the open capture, up to its cap, else as [`uncaptured_logs_to_stderr`] says.
pub fn log(message: &dyn core::fmt::Display) {
    use core::fmt::Write;
    /// Writes into the capture until its cap, then fails (so formatting stops early).
    struct Capped<'a>(&'a mut Capture);
    impl Write for Capped<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let room = self.0.cap.saturating_sub(self.0.logs.text.len());
            if s.len() <= room {
                self.0.logs.text.push_str(s);
                Ok(())
            } else {
                let mut end = room;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                self.0.logs.text.push_str(&s[..end]);
                self.0.logs.cut = true;
                Err(core::fmt::Error)
            }
        }
    }
    let captured = CAPTURE.with(|c| match &mut *c.borrow_mut() {
        Some(capture) => {
            if !capture.logs.cut {
                let mut out = Capped(capture);
                let _ = write!(out, "{message}").and_then(|()| out.write_str("\n"));
            }
            true
        }
        None => false,
    });
    if !captured && UNCAPTURED_TO_STDERR.load(core::sync::atomic::Ordering::Relaxed) {
        std::eprintln!("{message}");
    }
}
