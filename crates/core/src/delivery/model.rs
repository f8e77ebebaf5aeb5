//! The delivery's types: a delivery as claimed for sending, the record of one attempt (with
//! where it leaves its delivery), what an attempt says about its subscription, and a delivery
//! and an attempt as the log lists them. The store reads and writes them; the engine moves
//! them between the two; [`super::transition`] decides how one becomes the next.
//!
//! Ids and timestamps are values here: the engine draws the ids and reads the clock.

use serde::Serialize;

use crate::time::Timestamp;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// No attempt succeeded and none is left (retries exhausted, or the subscription was
    /// disabled), or it was not sent at all (its subscription is inactive).
    Failed,
}

impl DeliveryStatus {
    /// The stored and shown form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Which of a subscription's deliveries the log lists.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliveryFilter<'a> {
    /// Only those with this status.
    pub status: Option<DeliveryStatus>,
    /// Only those of this event (its `id`, as published): its first delivery and its resends.
    pub event_id: Option<&'a str>,
}

/// A delivery claimed for sending, with everything the send needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub id: String,
    /// The claim's token: the attempt moves the delivery on only while it is still its own.
    pub lease_token: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Whether failures are retried on the schedule (false: a manual resend, tried once).
    pub retries: bool,
    /// When the event was published (delivery latency is measured from it).
    pub published_at: Timestamp,
    pub url: String,
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Whether its subscription is active (an inactive one's deliveries fail unsent).
    pub active: bool,
    pub keys_sealed: String,
    /// When its subscription's current streak of failures began.
    pub failing_since: Option<Timestamp>,
}

/// A delivery keeps the first this many characters of its last attempt's error.
pub const LAST_ERROR_CHARS: usize = 500;

/// One attempt's record and where it leaves its delivery.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub id: String,
    pub delivery_seq: i64,
    /// The claim it was made under (see [`ClaimedDelivery::lease_token`]).
    pub lease_token: String,
    pub attempted_at: Timestamp,
    pub duration_ms: i64,
    pub url: String,
    /// Its error class ([`super::AttemptOutcome::class`]).
    pub outcome: String,
    pub status_code: Option<i64>,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// The delivery after this attempt.
    pub status: DeliveryStatus,
    /// The delivery's attempts, this one included.
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
}

impl AttemptRecord {
    /// The delivery's `last_error` after this attempt: the first [`LAST_ERROR_CHARS`]
    /// characters of the attempt's error.
    pub fn last_error(&self) -> Option<String> {
        self.error.as_deref().map(|e| e.chars().take(LAST_ERROR_CHARS).collect())
    }
}

/// What an attempt says about its target, the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetUpdate {
    /// It answered 2xx: its failure streak ends.
    Succeeded(String),
    /// It failed at this time (starts a streak if none is running).
    Failed(String, Timestamp),
    /// Wharf stops sending to it, for this reason (recorded on the subscription).
    Disable(String, String),
}

impl TargetUpdate {
    /// The subscription it updates.
    pub fn subscription_id(&self) -> &str {
        match self {
            Self::Succeeded(id) | Self::Failed(id, _) | Self::Disable(id, _) => id,
        }
    }

    /// Which of two updates of one subscription wins: disable > failure > success.
    pub(super) fn strength(&self) -> u8 {
        match self {
            Self::Succeeded(_) => 0,
            Self::Failed(..) => 1,
            Self::Disable(..) => 2,
        }
    }
}

/// Finished attempts to write in one transaction: their records, and one update per target.
/// Built by [`AttemptBatch::of`]; shared (`Arc`) by its writers so that a caller can try again
/// with the same batch without copying it.
#[derive(Debug, Clone, Default)]
pub struct AttemptBatch {
    pub records: Vec<AttemptRecord>,
    pub targets: Vec<TargetUpdate>,
}

impl AttemptBatch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A delivery as the log lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub seq: i64,
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Whether failures are retried on the schedule (false: a manual resend, tried once).
    pub retries: bool,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An attempt as the log lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: String,
    pub attempted_at: Timestamp,
    pub duration_ms: i64,
    pub url: String,
    pub outcome: String,
    pub status_code: Option<i64>,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}
