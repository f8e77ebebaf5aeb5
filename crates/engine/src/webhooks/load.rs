//! Accepting comes before mapping: while requests queue up to be accepted, the mapper paces
//! itself so that accepting keeps most of the CPU.
//!
//! Both share the node's cores (on SQLite, also its one writer thread). Without pacing, a
//! burst is taken in at the speed of accepting *and* mapping every event, though a sender
//! waits only for the first: its event is durable at the 202, and mapping can follow a moment
//! later. With pacing, the burst is taken in at the speed of accepting alone (as far as the
//! floor below allows), and mapping catches up after it: the same work, the senders served
//! first. Mapping is never stopped: under a load that never ends it still takes
//! [`MAPPING_SHARE_UNDER_LOAD`] of its time, so the backlog cannot grow without a bound
//! while accepting runs at rates mapping could follow.
//!
//! The signal is the group commit itself: a commit that takes [`QUEUED`] events or more means
//! requests were waiting for the one before it. At 1,000 events/s a commit takes one to three.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A commit of this many events shows requests queueing to be accepted.
const QUEUED: usize = 16;
/// Accepting counts as busy this long after a commit that showed a queue.
const BUSY_FOR: Duration = Duration::from_millis(200);
/// The share of its time the mapper works while accepting is busy: it rests three times as
/// long as each batch took.
const MAPPING_SHARE_UNDER_LOAD: u32 = 4;
/// The longest rest after one batch (a batch slowed by something else must not stop mapping
/// for long).
const LONGEST_REST: Duration = Duration::from_millis(500);

/// How busy accepting is, shared by the ingest committers (which record) and the mapper (which
/// paces itself by it). Cheap to clone.
#[derive(Clone, Debug)]
pub struct AcceptLoad {
    epoch: Instant,
    /// Milliseconds from `epoch` to just after the last commit that showed a queue, plus one
    /// (zero: none yet).
    last_queued: Arc<AtomicU64>,
}

impl Default for AcceptLoad {
    fn default() -> Self {
        Self { epoch: Instant::now(), last_queued: Arc::default() }
    }
}

impl AcceptLoad {
    /// Records a commit of `events` events.
    pub(crate) fn committed(&self, events: usize) {
        self.committed_at(events, Instant::now());
    }

    fn committed_at(&self, events: usize, at: Instant) {
        if events >= QUEUED {
            let millis = u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1);
            self.last_queued.fetch_max(millis + 1, Ordering::Relaxed);
        }
    }

    /// How long the mapper rests after a batch that took `worked`: nothing unless accepting
    /// is busy.
    pub(crate) fn rest_after(&self, worked: Duration) -> Duration {
        self.rest_after_at(worked, Instant::now())
    }

    fn rest_after_at(&self, worked: Duration, now: Instant) -> Duration {
        if !self.busy_at(now) {
            return Duration::ZERO;
        }
        (worked * (MAPPING_SHARE_UNDER_LOAD - 1)).min(LONGEST_REST)
    }

    fn busy_at(&self, now: Instant) -> bool {
        match self.last_queued.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let since_epoch = now.saturating_duration_since(self.epoch);
                since_epoch.saturating_sub(Duration::from_millis(at - 1)) < BUSY_FOR
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{AcceptLoad, BUSY_FOR, LONGEST_REST, QUEUED};

    const BATCH: Duration = Duration::from_millis(20);

    #[test]
    fn the_mapper_does_not_rest_while_requests_do_not_queue() {
        let load = AcceptLoad::default();
        let t = load.epoch + Duration::from_secs(1);
        assert_eq!(load.rest_after_at(BATCH, t), Duration::ZERO, "no commit yet");
        load.committed_at(QUEUED - 1, t);
        assert_eq!(load.rest_after_at(BATCH, t), Duration::ZERO, "commits of a few events are not a queue");
    }

    #[test]
    fn the_mapper_rests_three_times_its_batch_while_requests_queue() {
        let load = AcceptLoad::default();
        let t = load.epoch + Duration::from_secs(1);
        load.committed_at(QUEUED, t);
        assert_eq!(load.rest_after_at(BATCH, t), BATCH * 3);
        assert_eq!(load.rest_after_at(BATCH, t + BUSY_FOR - Duration::from_millis(1)), BATCH * 3);
        assert_eq!(load.rest_after_at(Duration::from_secs(1), t), LONGEST_REST, "a rest is bounded");
    }

    #[test]
    fn the_mapper_works_at_full_speed_again_once_the_queue_is_gone() {
        let load = AcceptLoad::default();
        let t = load.epoch + Duration::from_secs(1);
        load.committed_at(QUEUED * 4, t);
        load.committed_at(1, t + Duration::from_millis(50));
        assert_eq!(load.rest_after_at(BATCH, t + BUSY_FOR), Duration::ZERO);
    }

    #[test]
    fn a_busy_commit_recorded_late_does_not_move_the_mark_back() {
        let load = AcceptLoad::default();
        let t = load.epoch + Duration::from_secs(1);
        load.committed_at(QUEUED, t + Duration::from_millis(100));
        load.committed_at(QUEUED, t);
        assert_eq!(load.rest_after_at(BATCH, t + BUSY_FOR + Duration::from_millis(50)), BATCH * 3);
    }

    #[test]
    fn a_commit_at_the_epoch_counts() {
        let load = AcceptLoad::default();
        load.committed_at(QUEUED, load.epoch);
        assert_eq!(load.rest_after_at(BATCH, load.epoch), BATCH * 3);
    }
}
