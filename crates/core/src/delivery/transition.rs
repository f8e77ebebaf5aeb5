//! Where a delivery changes state. A claimed delivery is either failed without being sent
//! ([`unsent_reason`]) or sent, and its attempt decides, in [`after_attempt`], everything that
//! follows: the attempt's record, the delivery's next state (succeeded; pending until the next
//! attempt's time; failed) and what the attempt says about its subscription (a failure streak
//! started or ended, or the subscription disabled). Attempts written together merge their
//! subscription updates in [`AttemptBatch::of`].
//!
//! Architecture Invariant: the dispatcher never decides a delivery's state; these functions
//! do, with the time, the random draw and the ids passed in (no clock, no randomness here).
//! The store writes what they return as it is.

use std::collections::HashMap;
use std::time::Duration;

use super::model::{AttemptBatch, AttemptRecord, ClaimedDelivery, DeliveryStatus, TargetUpdate};
use super::policy::{AttemptOutcome, NextStep, RetryPolicy, disable_reason};
use crate::time::Timestamp;

/// Why a delivery of an inactive subscription is failed instead of sent.
pub const INACTIVE: &str = "the webhook is inactive; the delivery was not sent";

/// Why a claimed delivery must fail without an attempt, if it must: its subscription is
/// inactive. The delivery then becomes [`DeliveryStatus::Failed`] with this reason as its
/// last error, its attempts unchanged and its subscription untouched.
pub fn unsent_reason(delivery: &ClaimedDelivery) -> Option<&'static str> {
    (!delivery.active).then_some(INACTIVE)
}

/// What the sender reports of one attempt: the engine's I/O, as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The attempt's id (drawn by the caller).
    pub id: String,
    /// When the request started.
    pub attempted_at: Timestamp,
    pub duration: Duration,
    pub outcome: AttemptOutcome,
    /// The answer's status, when one came.
    pub status_code: Option<u16>,
    /// The answer's headers, as a JSON object of strings.
    pub response_headers: Option<String>,
    /// The start of the answer's body.
    pub response_body: Option<String>,
    /// What went wrong, for the attempt log.
    pub error: Option<String>,
}

/// What one attempt leaves behind.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The attempt's record, with the delivery's state after it (`status`, `attempts`,
    /// `next_attempt_at`).
    pub record: AttemptRecord,
    /// What it says about the subscription, if anything.
    pub target: Option<TargetUpdate>,
}

/// What attempt `report` of `delivery` leads to, at `now` (when the attempt ended). `unit` is
/// a random number in [-1, 1] for the retry's jitter ([`RetryPolicy::next_step`]);
/// `disable_after` is how long a subscription may keep failing before a delivery that runs out
/// of attempts disables it ([`disable_reason`]).
///
/// - 2xx: succeeded; a running failure streak of the subscription ends.
/// - an attempt left on the schedule (never for a manual resend, which `retries` is false
///   for): pending until the next attempt's time; the subscription is failing (from `now`,
///   unless a streak is running already).
/// - 410 Gone: failed; the subscription is disabled.
/// - no attempt left: failed; the subscription is disabled if it has been failing for
///   `disable_after`, else failing.
pub fn after_attempt(
    delivery: &ClaimedDelivery,
    report: AttemptReport,
    policy: &RetryPolicy,
    disable_after: Duration,
    now: Timestamp,
    unit: f64,
) -> Transition {
    let attempts = delivery.attempts.saturating_add(1);
    // Attempt numbers are 1-based; one past `u32` has no attempt left, as the schedule is shorter.
    let number = u32::try_from(attempts).unwrap_or(u32::MAX);
    let subscription = || delivery.subscription_id.clone();
    let (status, next_attempt_at, target) = match policy.next_step(number, &report.outcome, now, unit, delivery.retries) {
        NextStep::Succeeded => {
            (DeliveryStatus::Succeeded, now, delivery.failing_since.map(|_| TargetUpdate::Succeeded(subscription())))
        }
        NextStep::RetryAt(at) => (DeliveryStatus::Pending, at, Some(TargetUpdate::Failed(subscription(), now))),
        NextStep::Exhausted => {
            let error = report.error.as_deref();
            let update = match disable_reason(delivery.failing_since, now, disable_after, &delivery.id, error) {
                Some(reason) => TargetUpdate::Disable(subscription(), reason),
                None => TargetUpdate::Failed(subscription(), now),
            };
            (DeliveryStatus::Failed, now, Some(update))
        }
        NextStep::DisableTarget(reason) => (DeliveryStatus::Failed, now, Some(TargetUpdate::Disable(subscription(), reason))),
    };
    let record = AttemptRecord {
        id: report.id,
        delivery_seq: delivery.seq,
        lease_token: delivery.lease_token.clone(),
        attempted_at: report.attempted_at,
        duration_ms: i64::try_from(report.duration.as_millis()).unwrap_or(i64::MAX),
        url: delivery.url.clone(),
        outcome: report.outcome.class().to_owned(),
        status_code: report.status_code.map(i64::from),
        response_headers: report.response_headers,
        response_body: report.response_body,
        error: report.error,
        status,
        attempts,
        next_attempt_at,
    };
    Transition { record, target }
}

impl AttemptBatch {
    /// The transitions of attempts written together: every record, and one update per
    /// subscription, the strongest of its attempts' (disable > failure > success), so a batch
    /// writes each subscription once.
    pub fn of(transitions: impl IntoIterator<Item = Transition>) -> Self {
        let mut records = Vec::new();
        let mut by_target: HashMap<String, TargetUpdate> = HashMap::new();
        for Transition { record, target } in transitions {
            records.push(record);
            let Some(update) = target else { continue };
            match by_target.get(update.subscription_id()) {
                Some(kept) if kept.strength() >= update.strength() => {}
                _ => {
                    by_target.insert(update.subscription_id().to_owned(), update);
                }
            }
        }
        Self { records, targets: by_target.into_values().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Timestamp = Timestamp::from_millis(10_000_000_000);
    const DAY: Duration = Duration::from_secs(86_400);

    fn claimed(attempts: i64, retries: bool, failing_since: Option<Timestamp>) -> ClaimedDelivery {
        ClaimedDelivery {
            seq: 7,
            id: "dlv_1".into(),
            lease_token: "token".into(),
            subscription_id: "s1".into(),
            event_id: "msg_1".into(),
            event_type: "a.b".into(),
            payload: "{}".into(),
            attempts,
            retries,
            published_at: Timestamp::from_millis(NOW.millis() - 1000),
            url: "https://example.com/hook".into(),
            headers: serde_json::Map::new(),
            active: true,
            keys_sealed: "sealed".into(),
            failing_since,
        }
    }

    fn report(outcome: AttemptOutcome) -> AttemptReport {
        let (status_code, error) = match &outcome {
            AttemptOutcome::Response { status, .. } => (Some(*status), (*status >= 300).then(|| format!("HTTP {status}"))),
            _ => (None, Some("connection refused".to_owned())),
        };
        AttemptReport {
            id: "att_1".into(),
            attempted_at: Timestamp::from_millis(NOW.millis() - 250),
            duration: Duration::from_millis(250),
            outcome,
            status_code,
            response_headers: status_code.map(|_| r#"{"server":"x"}"#.to_owned()),
            response_body: status_code.map(|_| "ok".to_owned()),
            error,
        }
    }

    fn response(status: u16) -> AttemptOutcome {
        AttemptOutcome::Response { status, retry_after: None }
    }

    fn after(delivery: &ClaimedDelivery, outcome: AttemptOutcome) -> Transition {
        after_attempt(delivery, report(outcome), &RetryPolicy::default(), 5 * DAY, NOW, 0.0)
    }

    #[test]
    fn the_record_carries_the_attempt_and_the_delivery_after_it() {
        let t = after(&claimed(2, true, None), response(503));
        let r = &t.record;
        assert_eq!((r.id.as_str(), r.delivery_seq, r.lease_token.as_str()), ("att_1", 7, "token"));
        assert_eq!(
            (r.attempted_at, r.duration_ms, r.url.as_str()),
            (Timestamp::from_millis(NOW.millis() - 250), 250, "https://example.com/hook")
        );
        assert_eq!((r.outcome.as_str(), r.status_code, r.error.as_deref()), ("server_error", Some(503), Some("HTTP 503")));
        assert_eq!((r.response_headers.as_deref(), r.response_body.as_deref()), (Some(r#"{"server":"x"}"#), Some("ok")));
        // The third attempt: the third delay of the schedule (30 min) follows.
        assert_eq!((r.status, r.attempts, r.next_attempt_at), (DeliveryStatus::Pending, 3, NOW.plus_millis(1_800_000)));
    }

    #[test]
    fn a_success_ends_a_running_failure_streak_only() {
        let t = after(&claimed(0, true, None), response(204));
        assert_eq!((t.record.status, t.record.attempts, t.record.next_attempt_at), (DeliveryStatus::Succeeded, 1, NOW));
        assert_eq!(t.target, None, "a target that was not failing is not written");
        let t = after(&claimed(3, true, Some(Timestamp::from_millis(5))), response(200));
        assert_eq!(t.record.status, DeliveryStatus::Succeeded);
        assert_eq!(t.target, Some(TargetUpdate::Succeeded("s1".into())));
    }

    #[test]
    fn a_failure_with_attempts_left_is_retried_and_the_target_is_failing() {
        let t = after(&claimed(0, true, None), AttemptOutcome::Network);
        assert_eq!((t.record.status, t.record.next_attempt_at), (DeliveryStatus::Pending, NOW.plus_millis(5_000)));
        assert_eq!(t.record.outcome, "connection_error");
        assert_eq!(t.target, Some(TargetUpdate::Failed("s1".into(), NOW)));
        // Jitter comes from the caller's draw; Retry-After and the overload floor from the policy.
        let policy = RetryPolicy::default();
        let jittered = after_attempt(&claimed(0, true, None), report(response(500)), &policy, DAY, NOW, 1.0);
        assert_eq!(jittered.record.next_attempt_at, NOW.plus_millis(6_000));
        let asking = AttemptOutcome::Response { status: 503, retry_after: Some(Duration::from_secs(400)) };
        assert_eq!(after(&claimed(1, true, None), asking).record.next_attempt_at, NOW.plus_millis(400_000));
        assert_eq!(after(&claimed(0, true, None), AttemptOutcome::Timeout).record.next_attempt_at, NOW.plus_millis(60_000));
    }

    #[test]
    fn a_manual_resend_is_tried_once() {
        let t = after(&claimed(0, false, None), response(500));
        assert_eq!((t.record.status, t.record.attempts, t.record.next_attempt_at), (DeliveryStatus::Failed, 1, NOW));
        assert_eq!(t.target, Some(TargetUpdate::Failed("s1".into(), NOW)));
    }

    #[test]
    fn gone_disables_the_target_at_once() {
        let t = after(&claimed(0, true, None), response(410));
        assert_eq!((t.record.status, t.record.next_attempt_at), (DeliveryStatus::Failed, NOW));
        assert_eq!(t.target, Some(TargetUpdate::Disable("s1".into(), "the endpoint answered 410 Gone".into())));
    }

    #[test]
    fn running_out_of_attempts_disables_a_target_failing_long_enough() {
        let policy = RetryPolicy::default();
        let last = i64::from(policy.max_attempts()) - 1;
        // Failing for less than `disable_after`: one more failure.
        let recent = Some(Timestamp::from_millis(NOW.millis() - 1000));
        let t = after(&claimed(last, true, recent), response(500));
        assert_eq!((t.record.status, t.record.attempts), (DeliveryStatus::Failed, last + 1));
        assert_eq!(t.target, Some(TargetUpdate::Failed("s1".into(), NOW)));
        // Failing for longer: disabled, naming the delivery and the last error.
        let long = Some(Timestamp::from_millis(NOW.millis() - 6 * 86_400_000));
        let t = after(&claimed(last, true, long), response(500));
        let Some(TargetUpdate::Disable(id, reason)) = &t.target else { panic!("expected a disable, got {:?}", t.target) };
        assert_eq!(id, "s1");
        assert!(reason.contains("dlv_1") && reason.contains("HTTP 500"), "{reason}");
        // No streak running: the first failure is not a long one, unless nothing is tolerated.
        assert_eq!(after(&claimed(last, true, None), response(500)).target, Some(TargetUpdate::Failed("s1".into(), NOW)));
        let t = after_attempt(&claimed(last, true, None), report(response(500)), &policy, Duration::ZERO, NOW, 0.0);
        assert!(matches!(t.target, Some(TargetUpdate::Disable(..))));
        // A count past any schedule (a corrupt row) has no attempt left either.
        assert_eq!(after(&claimed(-5, true, None), response(500)).record.status, DeliveryStatus::Failed);
    }

    #[test]
    fn an_inactive_subscriptions_delivery_fails_unsent() {
        assert_eq!(unsent_reason(&claimed(0, true, None)), None);
        let inactive = ClaimedDelivery { active: false, ..claimed(0, true, None) };
        assert_eq!(unsent_reason(&inactive), Some(INACTIVE));
    }

    #[test]
    fn the_last_error_keeps_500_characters() {
        let mut record = after(&claimed(0, true, None), AttemptOutcome::Network).record;
        record.error = Some("é".repeat(600));
        assert_eq!(record.last_error().map(|e| e.chars().count()), Some(500));
        record.error = None;
        assert_eq!(record.last_error(), None);
    }

    #[test]
    fn a_batch_writes_each_target_once_the_strongest_update_winning() {
        let mut transitions = Vec::new();
        for (subscription, outcome, failing) in [
            ("s1", response(200), Some(NOW)),
            ("s1", response(500), None),
            ("s2", response(500), None),
            ("s2", response(410), None),
            ("s2", response(200), Some(NOW)),
            ("s3", response(200), None),
        ] {
            let delivery = ClaimedDelivery { subscription_id: subscription.into(), ..claimed(0, true, failing) };
            transitions.push(after(&delivery, outcome));
        }
        let batch = AttemptBatch::of(transitions);
        assert_eq!(batch.len(), 6);
        let mut targets = batch.targets;
        targets.sort_by(|a, b| a.subscription_id().cmp(b.subscription_id()));
        assert_eq!(
            targets,
            [TargetUpdate::Failed("s1".into(), NOW), TargetUpdate::Disable("s2".into(), "the endpoint answered 410 Gone".into()),]
        );
    }

    fn outcome() -> impl Strategy<Value = AttemptOutcome> {
        prop_oneof![
            (100u16..600, proptest::option::of(0u64..200_000))
                .prop_map(|(status, secs)| AttemptOutcome::Response { status, retry_after: secs.map(Duration::from_secs) }),
            Just(AttemptOutcome::Timeout),
            Just(AttemptOutcome::Network),
            Just(AttemptOutcome::Blocked),
        ]
    }

    proptest! {
        /// Whatever the attempt, the delivery moves on by one attempt, is retried only while
        /// the schedule and its kind allow and never before `now`, and its subscription is
        /// left alone only by a success while it was not failing.
        #[test]
        fn every_attempt_moves_the_delivery_on(
            attempts in 0i64..12,
            retries: bool,
            failing in proptest::option::of(0i64..10_000_000_000),
            outcome in outcome(),
            unit in -1.0f64..=1.0,
            disable_days in 0u64..10,
        ) {
            let policy = RetryPolicy::default();
            let failing_since = failing.map(Timestamp::from_millis);
            let delivery = claimed(attempts, retries, failing_since);
            let success = outcome.is_success();
            let t = after_attempt(&delivery, report(outcome), &policy, DAY * u32::try_from(disable_days).unwrap_or(0), NOW, unit);
            prop_assert_eq!(t.record.attempts, attempts + 1);
            prop_assert_eq!(&t.record.lease_token, &delivery.lease_token);
            match t.record.status {
                DeliveryStatus::Pending => {
                    prop_assert!(retries && attempts + 1 < i64::from(policy.max_attempts()));
                    prop_assert!(t.record.next_attempt_at > NOW);
                    prop_assert_eq!(t.target, Some(TargetUpdate::Failed("s1".into(), NOW)));
                }
                DeliveryStatus::Succeeded => {
                    prop_assert!(success);
                    prop_assert_eq!(t.record.next_attempt_at, NOW);
                    prop_assert_eq!(t.target.is_some(), failing_since.is_some());
                }
                DeliveryStatus::Failed => {
                    prop_assert!(!success);
                    prop_assert_eq!(t.record.next_attempt_at, NOW);
                    prop_assert!(t.target.is_some());
                }
            }
        }
    }
}
