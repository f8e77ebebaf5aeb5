//! How the outbox's readers (the router, the automation worker) wait between batches: until
//! their poll (or their backoff after failures) runs out, or until a commit on this node has
//! recorded changes ([`wharf_store::Store::outbox_commits`]). Other nodes' changes are found by
//! the poll.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wharf_store::Store;

/// After a commit wakes a reader, it looks again after this long, then at doubling intervals
/// until they reach its poll: on PostgreSQL a change is read only once every older
/// transaction has ended (`Tx::changes_after`), and that horizon is the whole cluster's, so
/// another application's long transaction, in another database, holds a change back past its
/// own commit for as long as it runs.
const RECHECK: Duration = Duration::from_millis(10);

/// The longest wait between two tries after failures in a row.
const LONGEST_BACKOFF: Duration = Duration::from_secs(10);

/// How long a reader waits before its next try: `poll`, doubled for each failure in a row, at
/// most [`LONGEST_BACKOFF`] (or the poll, when that is longer).
pub(crate) fn backoff(poll: Duration, failures: u32) -> Duration {
    poll.saturating_mul(1 << failures.min(16)).min(LONGEST_BACKOFF.max(poll))
}

/// One reader's wait.
pub(crate) struct OutboxWait {
    commits: watch::Receiver<u64>,
    /// The next look after a wake, while it is shorter than the poll.
    recheck: Option<Duration>,
}

impl OutboxWait {
    pub(crate) fn new(store: &Store) -> Self {
        Self { commits: store.outbox_commits(), recheck: None }
    }

    /// Waits up to `wait`, or until a commit here records changes (not while `failing`: a
    /// failing reader keeps its backoff); `false` when `stop` fired.
    pub(crate) async fn idle(&mut self, wait: Duration, failing: bool, stop: &CancellationToken) -> bool {
        let (wait, recheck) = next_wait(wait, self.recheck);
        self.recheck = recheck;
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            Ok(()) = self.commits.changed(), if !failing => {
                self.recheck = Some(RECHECK);
                true
            }
            () = stop.cancelled() => false,
        }
    }
}

/// This wait (`poll`, or the recheck due when shorter) and the recheck after it (doubled, as
/// long as it stays below `poll`).
fn next_wait(poll: Duration, recheck: Option<Duration>) -> (Duration, Option<Duration>) {
    match recheck {
        Some(recheck) if recheck < poll => (recheck, Some(recheck * 2).filter(|next| *next < poll)),
        _ => (poll, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_wake_the_reader_looks_again_at_doubling_intervals_up_to_its_poll() {
        let poll = Duration::from_millis(100);
        let mut recheck = Some(RECHECK);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let (wait, next) = next_wait(poll, recheck);
            waits.push(wait.as_millis());
            recheck = next;
        }
        assert_eq!(waits, [10, 20, 40, 80, 100, 100]);
        assert_eq!(next_wait(poll, None), (poll, None));
        assert_eq!(next_wait(Duration::from_millis(5), Some(RECHECK)), (Duration::from_millis(5), None), "never past the poll");
    }

    #[test]
    fn the_wait_after_failures_doubles_up_to_a_bound() {
        let poll = Duration::from_millis(250);
        assert_eq!(backoff(poll, 0), poll);
        assert_eq!(backoff(poll, 1), poll * 2);
        assert_eq!(backoff(poll, 3), poll * 8);
        assert_eq!(backoff(poll, 10), LONGEST_BACKOFF);
        assert_eq!(backoff(poll, u32::MAX), LONGEST_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(60), 5), Duration::from_secs(60), "never below the poll interval");
    }
}
