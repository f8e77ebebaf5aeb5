//! How the outbox's readers (the router, the automation worker) wait between batches: until
//! their poll (or their backoff after failures) runs out, or until a commit on this node has
//! recorded changes ([`wharf_store::Store::outbox_commits`]). Other nodes' changes are found by
//! the poll.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wharf_store::Store;

/// After a commit wakes a reader, it looks again this often, this many times: on PostgreSQL a
/// change is read only once every older transaction has ended (`Tx::changes_after`), which may
/// be a moment after its own commit.
const RECHECK: Duration = Duration::from_millis(10);
const RECHECKS: u32 = 10;

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
    rechecks: u32,
}

impl OutboxWait {
    pub(crate) fn new(store: &Store) -> Self {
        Self { commits: store.outbox_commits(), rechecks: 0 }
    }

    /// Waits up to `wait`, or until a commit here records changes (not while `failing`: a
    /// failing reader keeps its backoff); `false` when `stop` fired.
    pub(crate) async fn idle(&mut self, mut wait: Duration, failing: bool, stop: &CancellationToken) -> bool {
        if self.rechecks > 0 {
            self.rechecks -= 1;
            wait = wait.min(RECHECK);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            Ok(()) = self.commits.changed(), if !failing => {
                self.rechecks = RECHECKS;
                true
            }
            () = stop.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
