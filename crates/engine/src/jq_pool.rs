//! Where jq runs: threads with large stacks, off the async workers.
//!
//! jq is CPU work, and its compiler and evaluator recurse: the evaluation budget bounds the
//! stack an evaluation may use (`wharf_jq::DEFAULT_LIMITS`, 1 MiB), but that comes on top of
//! whatever the calling thread has used already, and an async worker deep in the HTTP stack
//! (2 MiB, debug builds' large frames) does not have it to spare. So every compile and every
//! evaluation that Wharf does for a request or an event runs here, unless it is quick
//! ([`run_quick`]).
//!
//! Architecture Invariant: an async worker spends on jq at most one quick unit's budget at a
//! time (`wharf_jq::QUICK_LIMITS`: 5 ms, 256 KiB of stack) and never compiles; whatever
//! needs more runs here.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::{Error, Result};

/// Stack of each jq thread: many times the evaluation budget's 1 MiB.
const JQ_STACK: usize = 32 << 20;

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(64)
                .thread_stack_size(JQ_STACK)
                .thread_name("wharf-jq")
                .build()
                .inspect_err(|err| tracing::error!(error = %err, "cannot start the jq threads; jq runs on tokio's blocking pool"))
                .ok()
        })
        .as_ref()
}

/// Runs `work` on a jq thread and waits for it.
pub async fn run<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    let task = match runtime() {
        Some(runtime) => runtime.spawn_blocking(work),
        None => tokio::task::spawn_blocking(work),
    };
    task.await.map_err(|err| Error::Unavailable(format!("a jq task failed: {err}")))
}

/// Runs `work` on the calling thread as a quick unit (`wharf_jq::quick`), and, when it crosses
/// the quick budget, again on a jq thread. For what is nearly always small (a run's inputs
/// and templates, an automation's condition): the hand-off to a jq thread and back cost more
/// than the work (two thread wake-ups: 1.12x the runs/s on SQLite, in alternated pairs). `work` must
/// be pure, since it may run twice: only the second result counts then.
pub async fn run_quick<R: Send + 'static>(work: impl Fn() -> R + Send + Sync + 'static) -> Result<R> {
    match catch_unwind(AssertUnwindSafe(|| wharf_jq::quick(&work))) {
        Ok(Some(done)) => {
            metrics::counter!("wharf_jq_units_total", "where" => "worker").increment(1);
            return Ok(done);
        }
        Ok(None) => {}
        Err(_) => return Err(Error::Unavailable("a jq task failed: it panicked".to_owned())),
    }
    metrics::counter!("wharf_jq_units_total", "where" => "jq_thread").increment(1);
    run(work).await
}
