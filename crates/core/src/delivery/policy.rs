//! The retry policy: what one attempt's outcome means for the next.
//!
//! A delivery is attempted now, then after each delay of the schedule (SPEC §7: 5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h, 10 h), each delay jittered by ±20 %. `Retry-After` is honoured
//! within [1×, 2×] of the scheduled delay; 429 and timeouts wait at least a minute; 410 Gone
//! disables the subscription; any 2xx is a success.

use std::time::Duration;

use crate::time::Timestamp;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The target answered; `retry_after` is its `Retry-After`, when it sent a valid one.
    Response { status: u16, retry_after: Option<Duration> },
    /// No complete answer within the timeout (connecting, waiting, or reading the body).
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS).
    Network,
    /// The SSRF guard refused every address of the target.
    Blocked,
}

impl AttemptOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Response { status, .. } if (200..300).contains(status))
    }

    /// The error class recorded with the attempt.
    /// Every [`Self::class`], for metrics registered up front.
    pub const CLASSES: [&'static str; 8] =
        ["success", "redirect", "rate_limited", "client_error", "server_error", "timeout", "connection_error", "blocked"];

    pub fn class(&self) -> &'static str {
        match self {
            Self::Response { status, .. } => match status {
                200..=299 => "success",
                300..=399 => "redirect",
                429 => "rate_limited",
                400..=499 => "client_error",
                _ => "server_error",
            },
            Self::Timeout => "timeout",
            Self::Network => "connection_error",
            Self::Blocked => "blocked",
        }
    }

    fn is_overload(&self) -> bool {
        matches!(self, Self::Timeout | Self::Response { status: 429, .. })
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Done: the attempt succeeded.
    Succeeded,
    /// Attempt again at this time.
    RetryAt(Timestamp),
    /// No attempt is left.
    Exhausted,
    /// The target asked never to be called again (410 Gone): the subscription is disabled.
    DisableTarget(String),
}

/// The retry schedule and its modifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delays before the 2nd, 3rd, … attempts.
    pub schedule: Vec<Duration>,
    /// Each delay is scaled by a factor drawn in [1 − jitter, 1 + jitter].
    pub jitter: f64,
    /// The least wait after a 429 or a timeout.
    pub overload_floor: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let secs = [5, 300, 1800, 7200, 18000, 36000, 36000];
        Self {
            schedule: secs.into_iter().map(Duration::from_secs).collect(),
            jitter: 0.2,
            overload_floor: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Attempts a delivery gets in all (the first one plus one per delay).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// What follows attempt number `attempt` (1-based) ending with `outcome`, at `now`.
    /// `unit` is a random number in [-1, 1] (the caller draws it; the core has no randomness
    /// of its own). A manual resend (`retries == false`) is attempted once.
    pub fn next_step(&self, attempt: u32, outcome: &AttemptOutcome, now: Timestamp, unit: f64, retries: bool) -> NextStep {
        if outcome.is_success() {
            return NextStep::Succeeded;
        }
        if let AttemptOutcome::Response { status: 410, .. } = outcome {
            return NextStep::DisableTarget("the endpoint answered 410 Gone".to_owned());
        }
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.schedule.get(index) {
            Some(base) if retries => {
                let delay = self.delay(*base, outcome, unit);
                let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                NextStep::RetryAt(Timestamp::from_millis(now.millis().saturating_add(millis)))
            }
            _ => NextStep::Exhausted,
        }
    }

    fn delay(&self, base: Duration, outcome: &AttemptOutcome, unit: f64) -> Duration {
        let factor = 1.0 + self.jitter * unit.clamp(-1.0, 1.0);
        let mut delay = base.mul_f64(factor.max(0.0));
        if let AttemptOutcome::Response { retry_after: Some(asked), .. } = outcome {
            delay = (*asked).clamp(base, base.saturating_mul(2));
        }
        if outcome.is_overload() {
            delay = delay.max(self.overload_floor);
        }
        delay
    }
}

/// When a delivery runs out of attempts: the reason to disable its target, if the target has
/// been failing (since `failing_since`, or since `now` when this is its first failure) for at
/// least `disable_after`; `None` keeps it enabled.
pub fn disable_reason(
    failing_since: Option<Timestamp>,
    now: Timestamp,
    disable_after: Duration,
    delivery_id: &str,
    last_error: Option<&str>,
) -> Option<String> {
    let since = failing_since.unwrap_or(now);
    let limit = i64::try_from(disable_after.as_millis()).unwrap_or(i64::MAX);
    (now.millis().saturating_sub(since.millis()) >= limit).then(|| {
        format!(
            "failing since {}: every attempt of delivery {delivery_id} failed (last: {}); re-enable it by setting `active` to true",
            since.to_iso(),
            last_error.unwrap_or("unknown error")
        )
    })
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let at = i64::try_from(date.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(Duration::from_millis(u64::try_from(at.saturating_sub(now.millis())).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    fn at(step: NextStep) -> i64 {
        match step {
            NextStep::RetryAt(t) => t.millis() - NOW.millis(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    fn response(status: u16) -> AttemptOutcome {
        AttemptOutcome::Response { status, retry_after: None }
    }

    #[test]
    fn the_schedule_is_followed_with_jitter_and_then_exhausted() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts(), 8);
        assert_eq!(at(policy.next_step(1, &response(500), NOW, 0.0, true)), 5_000);
        assert_eq!(at(policy.next_step(2, &AttemptOutcome::Network, NOW, 0.0, true)), 300_000);
        assert_eq!(at(policy.next_step(1, &response(500), NOW, 1.0, true)), 6_000);
        assert_eq!(at(policy.next_step(1, &response(500), NOW, -1.0, true)), 4_000);
        assert_eq!(at(policy.next_step(7, &response(500), NOW, 0.0, true)), 36_000_000);
        assert_eq!(policy.next_step(8, &response(500), NOW, 0.0, true), NextStep::Exhausted);
        assert_eq!(policy.next_step(1, &response(500), NOW, 0.0, false), NextStep::Exhausted);
        assert_eq!(policy.next_step(1, &response(204), NOW, 0.0, true), NextStep::Succeeded);
        assert!(matches!(policy.next_step(1, &response(410), NOW, 0.0, true), NextStep::DisableTarget(_)));
        // Redirects are failures, not followed.
        assert_eq!(at(policy.next_step(1, &response(302), NOW, 0.0, true)), 5_000);
    }

    #[test]
    fn overload_waits_at_least_the_floor_and_retry_after_is_clamped() {
        let policy = RetryPolicy::default();
        assert_eq!(at(policy.next_step(1, &response(429), NOW, 0.0, true)), 60_000);
        assert_eq!(at(policy.next_step(1, &AttemptOutcome::Timeout, NOW, 0.0, true)), 60_000);
        assert_eq!(at(policy.next_step(3, &AttemptOutcome::Timeout, NOW, 0.0, true)), 1_800_000);
        let asking = |secs| AttemptOutcome::Response { status: 503, retry_after: Some(Duration::from_secs(secs)) };
        assert_eq!(at(policy.next_step(2, &asking(400), NOW, 0.0, true)), 400_000);
        assert_eq!(at(policy.next_step(2, &asking(1), NOW, 0.0, true)), 300_000);
        assert_eq!(at(policy.next_step(2, &asking(100_000), NOW, 0.0, true)), 600_000);
    }

    #[test]
    fn targets_are_disabled_only_after_failing_long_enough() {
        let day = Duration::from_secs(86_400);
        let since = Timestamp::from_millis(NOW.millis() - 86_400_000);
        let reason = disable_reason(Some(since), NOW, day, "dlv_1", Some("refused")).unwrap();
        assert!(reason.contains("dlv_1") && reason.contains("refused") && reason.contains("failing since"), "{reason}");
        assert_eq!(disable_reason(Some(since), NOW, day * 2, "dlv_1", None), None);
        assert_eq!(disable_reason(None, NOW, day, "dlv_1", None), None, "a first failure is not a long one");
        assert!(disable_reason(None, NOW, Duration::ZERO, "dlv_1", None).is_some());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 120 ", NOW), Some(Duration::from_secs(120)));
        let now = Timestamp::from_millis(1_445_412_480_000); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn outcomes_have_classes() {
        assert_eq!(response(301).class(), "redirect");
        assert_eq!(response(429).class(), "rate_limited");
        assert_eq!(response(503).class(), "server_error");
        assert_eq!(AttemptOutcome::Blocked.class(), "blocked");
        let every = [200, 301, 429, 404, 503].map(response).into_iter().chain([
            AttemptOutcome::Timeout,
            AttemptOutcome::Network,
            AttemptOutcome::Blocked,
        ]);
        let classes: Vec<&str> = every.map(|o| o.class()).collect();
        assert_eq!(classes, AttemptOutcome::CLASSES, "CLASSES lists every class, in order");
    }
}
