//! The dispatcher: claims due deliveries under a lease, sends each one (signed, through the
//! guarded client, at most `target_concurrency` at a time per subscription), and queues every
//! attempt through the [`Handoff`] for the one task that writes them, a batch per transaction.
//!
//! Nothing is held across network I/O: a claim commits before the sends start, and results
//! are written after they end. A node that dies mid-send loses only its leases, which expire
//! and make those deliveries due again (at-least-once, same `webhook-id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Histogram};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use wharf_core::crypto::MasterKey;
use wharf_core::delivery::{
    AttemptOutcome, AttemptReport, ClaimedDelivery, DeliveryStatus, TargetUpdate, after_attempt, unsent_reason,
};
use wharf_core::signing::{KeyRing, signature_header};
use wharf_core::time::Timestamp;
use wharf_store::Store;

use super::DeliverySettings;
use super::client::{HttpClient, Response};
use super::handoff::{HandedDeliveries, Handoff};
use crate::node::Stage;

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Deliveries one claim takes at most.
const CLAIM_BATCH: usize = 256;

/// Sends deliveries: its workers are [`Dispatcher::claim`], [`Dispatcher::send_handed`] and
/// [`Dispatcher::gauge`]; every send runs as a task of the `sends` stage it was built with, so
/// the node waits for the sends in flight. Build one per node. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    wake: Arc<Notify>,
    shared: Arc<Shared>,
}

/// Shared by the send tasks of one dispatcher.
struct Shared {
    client: HttpClient,
    settings: DeliverySettings,
    master: MasterKey,
    /// One semaphore per subscription: the per-target concurrency limit.
    targets: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Opened key rings by their sealed text (unsealing once per key ring, not per send).
    keys: Mutex<HashMap<String, Arc<KeyRing>>>,
    handoff: Arc<Handoff>,
    /// Where the sends run (tracked, so the node waits for those in flight).
    sends: Stage,
    meters: Meters,
}

/// The dispatcher's metrics, registered once: a labelled lookup per attempt costs more than
/// the increment itself. Built after the process's recorder is installed (the server does
/// that first).
struct Meters {
    latency: Histogram,
    attempts: HashMap<&'static str, Counter>,
}

impl Meters {
    fn new() -> Self {
        let attempts = AttemptOutcome::CLASSES
            .iter()
            .map(|&class| (class, metrics::counter!("wharf_delivery_attempts_total", "outcome" => class)))
            .collect();
        Self { latency: metrics::histogram!("wharf_delivery_latency_seconds"), attempts }
    }

    fn attempt(&self, class: &'static str) {
        match self.attempts.get(class) {
            Some(counter) => counter.increment(1),
            None => metrics::counter!("wharf_delivery_attempts_total", "outcome" => class).increment(1),
        }
    }
}

impl Dispatcher {
    /// A dispatcher whose sends run on `sends` and whose attempts go through `handoff`.
    pub fn new(
        store: Store,
        client: HttpClient,
        settings: DeliverySettings,
        master: MasterKey,
        wake: Arc<Notify>,
        handoff: Arc<Handoff>,
        sends: Stage,
    ) -> Self {
        let shared = Shared {
            client,
            settings,
            master,
            targets: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            handoff,
            sends,
            meters: Meters::new(),
        };
        Self { store, wake, shared: Arc::new(shared) }
    }

    /// Starts a send on the `sends` stage; the slot is freed when it ends.
    fn start_send(&self, delivery: ClaimedDelivery, slot: tokio::sync::OwnedSemaphorePermit) {
        let (store, shared) = (self.store.clone(), self.shared.clone());
        self.shared.sends.track(async move {
            send(&store, &shared, delivery).await;
            drop(slot);
        });
    }

    /// The handed-over deliveries worker: sends what the publisher hands over (see
    /// [`Handoff`]) until `stop`, and then what it had handed before.
    pub async fn send_handed(self, mut handed: HandedDeliveries, stop: CancellationToken) {
        while let Some((delivery, slot)) = handed.next(&stop).await {
            self.start_send(delivery, slot);
        }
    }

    /// The claim worker: claims due deliveries, as many as there are free in-flight slots, and
    /// starts their sends, until `stop`. The sends it started go on (the node waits for them).
    pub async fn claim(self, stop: CancellationToken) {
        let shared = &self.shared;
        let slots = shared.handoff.slots().clone();
        let lease = shared.settings.lease();
        while !stop.is_cancelled() {
            let free = slots.available_permits().min(CLAIM_BATCH);
            let mut claimed = Vec::new();
            if free > 0 {
                let now = crate::now();
                let token = wharf_ids::id_base62(16);
                let until = now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
                match self.store.claim_deliveries(&token, now, until, u32::try_from(free).unwrap_or(u32::MAX)).await {
                    Ok(found) => claimed = found,
                    Err(err) => tracing::error!(error = %err, "cannot claim deliveries; retrying"),
                }
            }
            let full = claimed.len() == free && free > 0;
            for delivery in claimed {
                // Permits are only taken here and the claim asked for no more than were free.
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                self.start_send(delivery, permit);
            }
            if full {
                // More may be due: claim again once a slot is free.
                if slots.available_permits() == 0 {
                    tokio::select! {
                        _ = slots.acquire() => {}
                        () = stop.cancelled() => {}
                    }
                }
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(shared.settings.poll_interval) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// The gauges worker: queue depth, the age of the oldest due delivery, and disabled
    /// targets, every 2 s until `stop`.
    pub async fn gauge(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let now = crate::now();
            match self.store.queue_stats(now).await {
                Ok(stats) => {
                    metrics::gauge!("wharf_delivery_queue_depth").set(stats.pending as f64);
                    let age = stats.oldest_due.map_or(0.0, |t| (now.millis() - t.millis()).max(0) as f64 / 1000.0);
                    metrics::gauge!("wharf_delivery_oldest_due_age_seconds").set(age);
                    metrics::gauge!("wharf_delivery_disabled_targets").set(stats.disabled_subscriptions as f64);
                }
                Err(err) => tracing::warn!(error = %err, "cannot read the delivery queue's state"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// Sends one claimed delivery and queues its attempt for recording. What the attempt means
/// for the delivery and its subscription is the core's decision ([`after_attempt`]).
async fn send(store: &Store, shared: &Shared, delivery: ClaimedDelivery) {
    if let Some(reason) = unsent_reason(&delivery) {
        if let Err(err) = store.fail_unsent(delivery.seq, &delivery.lease_token, reason, crate::now()).await {
            tracing::error!(error = %err, delivery = %delivery.id, "cannot mark a delivery of an inactive webhook failed");
        }
        tracing::info!(delivery = %delivery.id, subscription = %delivery.subscription_id, "delivery skipped: subscription inactive");
        return;
    }
    let target = shared.target(&delivery.subscription_id);
    let Ok(_permit) = target.acquire().await else { return };
    let keys = match shared.key_ring(&delivery.keys_sealed) {
        Ok(keys) => keys,
        Err(reason) => {
            tracing::error!(delivery = %delivery.id, %reason, "cannot open a subscription's signing keys");
            return; // the lease expires and another node (or a fixed key) retries
        }
    };
    let attempted_at = crate::now();
    let timestamp = attempted_at.millis() / 1000;
    let response = match headers(&delivery, &keys, &shared.master, timestamp, attempted_at) {
        Ok(headers) => shared.client.post(&delivery.url, headers, delivery.payload.clone(), shared.settings.timeout).await,
        // Saving a subscription checks its headers, so only a row changed behind Wharf's back gets here.
        Err(error) => Response::failed(AttemptOutcome::Network, error, Duration::ZERO),
    };
    let class = response.outcome.class();
    let report = AttemptReport {
        id: wharf_ids::new_attempt_id(),
        attempted_at,
        duration: response.duration,
        outcome: response.outcome,
        status_code: response.status,
        response_headers: response.headers,
        response_body: response.body,
        error: response.error,
    };
    // Architecture Invariant: the dispatcher never decides a delivery's state; core::delivery
    // does. It only passes in the time, the random draw and the ids.
    let (settings, now) = (&shared.settings, crate::now());
    let unit = wharf_ids::unit_random();
    let transition = after_attempt(&delivery, report, &settings.policy, settings.disable_after, now, unit);
    let record = &transition.record;
    if record.status == DeliveryStatus::Succeeded {
        let latency = (now.millis() - delivery.published_at.millis()).max(0) as f64 / 1000.0;
        shared.meters.latency.record(latency);
    }
    shared.meters.attempt(class);
    tracing::info!(
        delivery = %delivery.id, event = %delivery.event_id, subscription = %delivery.subscription_id,
        attempt = record.attempts, outcome = class, status = ?record.status_code, next = record.status.as_str(),
        duration_ms = record.duration_ms, "delivery attempt"
    );
    if let Some(TargetUpdate::Disable(_, reason)) = &transition.target {
        tracing::warn!(subscription = %delivery.subscription_id, %reason, "subscription disabled");
    }
    if !shared.handoff.finished(transition).await {
        tracing::error!(delivery = %delivery.id, "the attempt recorder has stopped; the delivery will be sent again");
    }
}

/// The request headers: the subscription's own, then the content type and the Standard
/// Webhooks id, timestamp and signatures (every key of the ring that still signs).
fn headers(
    delivery: &ClaimedDelivery,
    keys: &KeyRing,
    master: &MasterKey,
    timestamp: i64,
    now: Timestamp,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(delivery.headers.len() + 4);
    for (name, value) in &delivery.headers {
        let invalid = |err: &dyn std::fmt::Display| format!("the webhook's header `{name}` is invalid: {err}");
        // Stored sealed when secret (wharf_core::project::Subscription::stored_headers).
        let Some(value) = wharf_core::project::stored_header_value(value, |sealed| master.open(sealed)) else { continue };
        let value = value.map_err(|e| invalid(&e))?;
        let value = value.as_str();
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(&e))?;
        headers.append(name, HeaderValue::from_str(value).map_err(|e| invalid(&e))?);
    }
    let signature = signature_header(keys.signing_keys(now.millis()), &delivery.event_id, timestamp, delivery.payload.as_bytes());
    let value = |text: &str| HeaderValue::from_str(text).map_err(|e| format!("cannot send `{text}` as a header: {e}"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(WEBHOOK_ID, value(&delivery.event_id)?);
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(WEBHOOK_SIGNATURE, value(&signature)?);
    Ok(headers)
}

impl Shared {
    fn target(&self, subscription: &str) -> Arc<Semaphore> {
        let mut targets = self.targets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        targets
            .entry(subscription.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.target_concurrency)))
            .clone()
    }

    fn key_ring(&self, sealed: &str) -> Result<Arc<KeyRing>, String> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ring) = keys.get(sealed) {
            return Ok(ring.clone());
        }
        let text = self.master.open(sealed).map_err(|e| e.to_string())?;
        let ring = Arc::new(KeyRing::from_text(&text).map_err(|e| e.to_string())?);
        if keys.len() > 10_000 {
            keys.clear();
        }
        keys.insert(sealed.to_owned(), ring.clone());
        Ok(ring)
    }
}
