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
//! The signal is the group commit itself: the events a commit takes are the requests that
//! waited for the one before it. Their moving average ([`SMOOTHING`]) at [`QUEUED`] or more
//! means requests keep queueing; one large commit after a short pause of the writer (a
//! checkpoint, a long mapper batch: up to ~80 events at once from a quiet average) does not.
//! At 1,000 events/s commits take one to three events; at the saturation of 64 connections,
//! 24 on average.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A moving average of this many events per commit shows requests queueing to be accepted.
const QUEUED: u32 = 12;
/// The average moves by an eighth of each commit's difference from it.
const SMOOTHING: u32 = 8;
/// The average is kept in sixteenths of an event.
const SCALE: u32 = 16;
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
    /// Events per commit, moving average, in sixteenths.
    average: Arc<AtomicU32>,
    /// Milliseconds from `epoch` to the last commit that left the average at [`QUEUED`] or
    /// more, plus one (zero: none yet).
    last_queued: Arc<AtomicU64>,
}

impl Default for AcceptLoad {
    fn default() -> Self {
        Self { epoch: Instant::now(), average: Arc::default(), last_queued: Arc::default() }
    }
}

impl AcceptLoad {
    /// Records a commit of `events` events.
    pub(crate) fn committed(&self, events: usize) {
        self.committed_at(events, Instant::now());
    }

    fn committed_at(&self, events: usize, at: Instant) {
        let events = u32::try_from(events).unwrap_or(u32::MAX).saturating_mul(SCALE);
        let moved = |average: u32| {
            let (average, events) = (i64::from(average), i64::from(events));
            // Between the old average and `events`, so it fits in a u32.
            u32::try_from(average + (events - average) / i64::from(SMOOTHING)).unwrap_or(u32::MAX)
        };
        // Never `Err`: the closure always returns `Some`.
        let before = self.average.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| Some(moved(a))).unwrap_or(0);
        if moved(before) >= QUEUED * SCALE {
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
    use std::time::{Duration, Instant};

    use super::{AcceptLoad, BUSY_FOR, LONGEST_REST};

    const BATCH: Duration = Duration::from_millis(20);

    /// `commits` commits of `events` events, 2 ms apart from `from`; returns the last's time.
    fn commits(load: &AcceptLoad, events: usize, commits: u32, from: Instant) -> Instant {
        let mut at = from;
        for i in 0..commits {
            at = from + Duration::from_millis(2) * i;
            load.committed_at(events, at);
        }
        at
    }

    #[test]
    fn the_mapper_does_not_rest_while_requests_do_not_queue() {
        let load = AcceptLoad::default();
        let t = load.epoch + Duration::from_secs(1);
        assert_eq!(load.rest_after_at(BATCH, t), Duration::ZERO, "no commit yet");
        let t = commits(&load, 3, 1_000, t);
        assert_eq!(load.rest_after_at(BATCH, t), Duration::ZERO, "1,000 events/s commit a few at a time");
        let t = commits(&load, 11, 1_000, t);
        assert_eq!(load.rest_after_at(BATCH, t), Duration::ZERO, "below the mark");
    }

    #[test]
    fn one_large_commit_after_a_pause_is_not_a_queue() {
        let load = AcceptLoad::default();
        let t = commits(&load, 2, 100, load.epoch);
        load.committed_at(60, t);
        let t = commits(&load, 2, 10, t);
        assert_eq!(load.rest_after_at(BATCH, t), Duration::ZERO);
    }

    #[test]
    fn the_mapper_rests_three_times_its_batch_while_requests_queue() {
        let load = AcceptLoad::default();
        let t = commits(&load, 24, 20, load.epoch + Duration::from_secs(1));
        assert_eq!(load.rest_after_at(BATCH, t), BATCH * 3);
        assert_eq!(load.rest_after_at(Duration::from_secs(1), t), LONGEST_REST, "a rest is bounded");
        // Commits of every size come at saturation; the mark holds through the small ones.
        let t = commits(&load, 1, 3, t);
        assert_eq!(load.rest_after_at(BATCH, t), BATCH * 3);
    }

    #[test]
    fn the_mapper_works_at_full_speed_again_once_the_queue_is_gone() {
        let load = AcceptLoad::default();
        let t = commits(&load, 40, 20, load.epoch + Duration::from_secs(1));
        let t = commits(&load, 1, 40, t);
        assert_eq!(load.rest_after_at(BATCH, t + BUSY_FOR), Duration::ZERO);
    }

    #[test]
    fn a_busy_commit_recorded_late_does_not_move_the_mark_back() {
        let load = AcceptLoad::default();
        let t = load.epoch + Duration::from_secs(1);
        let last = commits(&load, 40, 20, t + Duration::from_millis(100));
        load.committed_at(40, t);
        assert_eq!(load.rest_after_at(BATCH, last + BUSY_FOR - Duration::from_millis(1)), BATCH * 3);
    }

    #[test]
    fn a_commit_at_the_epoch_counts() {
        let load = AcceptLoad::default();
        load.committed_at(100, load.epoch);
        assert_eq!(load.rest_after_at(BATCH, load.epoch), BATCH * 3);
    }
}
