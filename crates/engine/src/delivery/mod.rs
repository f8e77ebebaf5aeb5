//! The delivery engine (SPEC §7): everything Wharf sends is a durable delivery, claimed under
//! a lease, sent through the guarded client, signed, retried on the schedule, and recorded
//! attempt by attempt.
//!
//! - [`publisher`] — group commit of published events and their deliveries;
//! - [`handoff`] — what the publisher and the dispatcher share: in-flight slots, handed-over
//!   deliveries, finished attempts and their writer;
//! - [`routing`] — which subscriptions an event reaches (shared by both);
//! - [`router`] — system events (`entity.<blueprint>.<verb>`) from the change outbox;
//! - [`dispatcher`] — claiming, sending, recording;
//! - [`client`] — the HTTP client and its SSRF guard.

pub mod client;
pub mod dispatcher;
pub mod handoff;
pub mod publisher;
pub mod router;
pub mod routing;

use std::time::Duration;

use wharf_core::delivery::RetryPolicy;
use wharf_core::network::NetworkPolicy;

pub use client::HttpClient;
pub use dispatcher::Dispatcher;
pub use handoff::{FinishedAttempts, HandedDeliveries, Handoff};
pub use publisher::Publisher;
pub use routing::Published;

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub policy: RetryPolicy,
    /// The request timeout (connect, send, and read the answer).
    pub timeout: Duration,
    /// Deliveries in flight on this node at most.
    pub max_in_flight: usize,
    /// Deliveries in flight to one subscription at most.
    pub target_concurrency: usize,
    /// A subscription whose deliveries keep failing for this long is disabled.
    pub disable_after: Duration,
    /// How often idle workers look for due deliveries and new changes (publishes on this
    /// node wake them at once).
    pub poll_interval: Duration,
    /// Addresses outbound requests may reach.
    pub network: NetworkPolicy,
    /// Webhook subscriptions one organization may have, over all its projects (SPEC §12).
    pub subscriptions_per_org: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            max_in_flight: 512,
            target_concurrency: 64,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            poll_interval: Duration::from_millis(250),
            network: NetworkPolicy::default(),
            subscriptions_per_org: 1_000,
        }
    }
}

impl DeliverySettings {
    /// How long a claim lasts: twice the timeout (a send may wait for its target's
    /// concurrency slot, then take up to the timeout) plus room to record the attempt. A
    /// delivery whose worker died is due again after this.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}
