//! How the outbox's readers (the router, the automation worker) wait between batches: until
//! their poll (or their backoff after failures) runs out, or until a commit on this node has
//! recorded changes ([`wharf_store::Store::outbox_commits`]). Other nodes' changes are found by
//! the poll.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wharf_core::time::Timestamp;
use wharf_store::{ChangeHead, OutboxBatch, OutboxPosition, Store, Tx};

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

/// Heads one look reads at most.
const LOOK_BATCH: u32 = 1000;

/// How long a reader's place may run ahead of its stored cursor before it is stored.
const STORE_PLACE_AFTER: Duration = Duration::from_secs(1);

/// A reader's look ahead: before it takes its cursor in a write transaction, the reader reads
/// the heads of the changes past its place on a reader ([`Store::change_heads_after`]: the
/// changes its transaction would read, as final) and passes over those it has nothing to do
/// with (the router: those no active subscription of their organization may receive; the
/// automation worker: those no automation or workflow of their organization may act on), with
/// no transaction, no write turn and no sync of the disk. Only a change it may act on makes it
/// take the cursor, and it reads from its place on (or from the cursor, where another node has
/// moved it further).
///
/// Its place runs ahead of its stored cursor by at most [`STORE_PLACE_AFTER`]: it is stored
/// then, or with the next transaction. After a crash the reader starts from the stored cursor
/// and passes over the same changes again. Passing over is safe because whether a reader
/// may act on a change is decided from the change's head alone, the same way every time, and
/// errs towards acting (the transaction decides for good).
///
/// Architecture Invariant: the place only moves past changes the reader has read the heads
/// of and has nothing to do with, or past what a committed transaction handled; so every
/// change a reader may act on is read in a transaction, once.
pub(crate) struct LookAhead {
    /// Every change up to here is handled or has nothing for this reader (`None` until the
    /// first transaction says where the cursor stands).
    place: Option<OutboxPosition>,
    /// Since when the place has been past the stored cursor (`None`: it is where the last
    /// transaction stored it).
    ahead_since: Option<Instant>,
}

/// What a look found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// Nothing past the place: the reader is idle.
    Nothing,
    /// Changes passed over, none to act on; `more` when there may be more to look at.
    PassedOver { more: bool },
    /// A change to act on, a place to store, or no look ahead here: take the cursor and read
    /// ([`LookAhead::next_batch`]).
    Act,
}

impl LookAhead {
    pub(crate) fn new() -> Self {
        Self { place: None, ahead_since: None }
    }

    /// The heads of the changes past the place; `None` when the reader takes its cursor
    /// instead (no look ahead on this store, no place yet, or the heads cannot be read).
    pub(crate) async fn heads(&self, store: &Store) -> Option<Vec<ChangeHead>> {
        let place = self.place?;
        match store.change_heads_after(place, LOOK_BATCH).await {
            Ok(heads) => heads,
            Err(err) => {
                tracing::warn!(error = %err, "cannot look ahead in the outbox; reading it in a transaction");
                None
            }
        }
    }

    /// What the reader does after reading `heads` ([`LookAhead::heads`]): `acts` when it may
    /// act on any of their changes. Passing over moves the place past them.
    pub(crate) fn decide(&mut self, heads: &[ChangeHead], acts: bool) -> Look {
        if acts {
            return Look::Act;
        }
        if let Some(last) = heads.last() {
            self.place = Some(last.position);
            self.ahead_since.get_or_insert_with(Instant::now);
        }
        if self.place_to_store() {
            Look::Act
        } else if heads.is_empty() {
            Look::Nothing
        } else {
            Look::PassedOver { more: heads.len() == LOOK_BATCH as usize }
        }
    }

    /// Whether the place has run ahead of the stored cursor for long enough to be stored.
    fn place_to_store(&self) -> bool {
        self.ahead_since.is_some_and(|since| since.elapsed() >= STORE_PLACE_AFTER)
    }

    /// Takes `consumer`'s cursor in `tx` and reads up to `limit` changes from the place, or
    /// from the cursor where another node has moved it further (every change between the
    /// cursor and the place has nothing for this reader). With none to read, it moves the
    /// cursor up to the place, and the batch's position is where the cursor then stands.
    /// Commit `tx`, then tell [`LookAhead::stored`] the position the batch ends at.
    pub(crate) async fn next_batch(
        &self,
        tx: &mut Tx,
        consumer: &str,
        limit: u32,
        now: Timestamp,
    ) -> wharf_store::Result<OutboxBatch> {
        let cursor = tx.lock_cursor(consumer, now).await?;
        let from = self.place.filter(|place| *place > cursor).unwrap_or(cursor);
        let mut batch = tx.changes_after(from, limit).await?;
        if batch.changes.is_empty() && batch.unreadable.is_empty() {
            if from > cursor {
                tx.set_cursor(consumer, from, now).await?;
            }
            batch.position = from;
        }
        Ok(batch)
    }

    /// A committed transaction stored the cursor at `position`, which it read up to from
    /// [`LookAhead::next_batch`]: at or past the place.
    pub(crate) fn stored(&mut self, position: OutboxPosition) {
        self.place = Some(position);
        self.ahead_since = None;
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
