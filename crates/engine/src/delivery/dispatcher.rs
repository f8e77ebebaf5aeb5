//! The dispatcher: claims due deliveries under a lease, sends each one (signed, through the
//! guarded client, at most `target_concurrency` at a time per subscription), and hands every
//! attempt to a recorder task that writes a whole batch of them in one transaction.
//!
//! Nothing is held across network I/O: a claim commits before the sends start, and results
//! are written after they end. A node that dies mid-send loses only its leases, which expire
//! and make those deliveries due again (at-least-once, same `webhook-id`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Histogram};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use wharf_core::crypto::MasterKey;
use wharf_core::delivery::{
    AttemptBatch, AttemptOutcome, AttemptReport, ClaimedDelivery, DeliveryStatus, TargetUpdate, Transition, after_attempt,
    unsent_reason,
};
use wharf_core::signing::{KeyRing, signature_header};
use wharf_core::time::Timestamp;
use wharf_store::Store;

use super::DeliverySettings;
use super::client::{HttpClient, Response};

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Deliveries one claim takes at most.
const CLAIM_BATCH: usize = 256;
/// Attempts one recorder transaction writes at most.
pub(crate) const RECORD_BATCH: usize = 512;

/// One finished attempt on its way to the store: the core's transition of its delivery.
pub(crate) type Finished = Transition;

/// Sends deliveries. Start it once per node.
pub struct Dispatcher {
    store: Store,
    client: HttpClient,
    settings: DeliverySettings,
    master: MasterKey,
    wake: Arc<Notify>,
    handoff: Arc<Handoff>,
}

/// The short way for deliveries this node publishes: the publisher reserves in-flight slots,
/// inserts the deliveries already claimed by this node, and after the commit hands them
/// here with their slots, so they are sent without a claim round trip. If this node dies
/// first, their lease expires and any node sends them.
///
/// It also carries finished attempts to whichever task writes them: the dispatcher's own
/// recorder, or, on SQLite, the publisher's committer, which then writes attempts and new
/// events in one transaction (one commit, one fsync, on the single writer).
pub struct Handoff {
    slots: Arc<Semaphore>,
    lease: Duration,
    sender: mpsc::UnboundedSender<(ClaimedDelivery, OwnedSemaphorePermit)>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<(ClaimedDelivery, OwnedSemaphorePermit)>>>,
    records: mpsc::Sender<Finished>,
    records_receiver: Mutex<Option<mpsc::Receiver<Finished>>>,
    /// Attempts made but not yet written (or given up on): shutdown waits for zero.
    unrecorded: Arc<AtomicUsize>,
}

impl Handoff {
    pub fn new(settings: &DeliverySettings) -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (records, records_receiver) = mpsc::channel(RECORD_BATCH * 8);
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(settings.max_in_flight)),
            lease: settings.lease(),
            sender,
            receiver: Mutex::new(Some(receiver)),
            records,
            records_receiver: Mutex::new(Some(records_receiver)),
            unrecorded: Arc::default(),
        })
    }

    /// Marks `n` attempts as written (or given up on).
    pub(crate) fn recorded(&self, n: usize) {
        self.unrecorded.fetch_sub(n, Ordering::AcqRel);
    }

    /// The finished attempts to write; the first caller gets them (and must write them all).
    pub(crate) fn take_records(&self) -> Option<mpsc::Receiver<Finished>> {
        self.records_receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Slots for `n` deliveries, when that many are free now.
    pub fn reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        if n == 0 {
            return None;
        }
        self.slots.clone().try_acquire_many_owned(u32::try_from(n).ok()?).ok()
    }

    /// The end of a lease taken now.
    pub fn lease_until(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX))
    }

    /// Hands committed, claimed deliveries to the dispatcher with the slots reserved for them.
    pub fn hand(&self, deliveries: Vec<ClaimedDelivery>, mut slots: OwnedSemaphorePermit) {
        for delivery in deliveries {
            // `reserve` took one permit per delivery, so each split succeeds.
            let Some(slot) = slots.split(1) else { return };
            if self.sender.send((delivery, slot)).is_err() {
                return; // the dispatcher stopped: the leases expire and the deliveries are claimed again
            }
        }
    }
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
    record: mpsc::Sender<Finished>,
    handoff: Arc<Handoff>,
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
    pub fn new(
        store: Store,
        client: HttpClient,
        settings: DeliverySettings,
        master: MasterKey,
        wake: Arc<Notify>,
        handoff: Arc<Handoff>,
    ) -> Self {
        Self { store, client, settings, master, wake, handoff }
    }

    /// Starts the claim loop, the recorder and the queue gauges; they stop when `stop` turns
    /// true, after the sends in flight end (bounded by the timeout) and their attempts are
    /// written.
    pub fn start(self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let record = self.handoff.records.clone();
        let shared = Arc::new(Shared {
            client: self.client,
            settings: self.settings.clone(),
            master: self.master,
            targets: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            record,
            handoff: self.handoff.clone(),
            meters: Meters::new(),
        });
        let handed = self.handoff.receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(handed) = handed {
            tokio::spawn(handed_loop(self.store.clone(), shared.clone(), handed));
        }
        let mut tasks = vec![
            tokio::spawn(claim_loop(self.store.clone(), shared, self.handoff.slots.clone(), self.wake, stop.clone())),
            tokio::spawn(gauge_loop(self.store.clone(), stop)),
        ];
        if let Some(finished) = self.handoff.take_records() {
            tasks.push(tokio::spawn(record_loop(self.store, finished, self.handoff.clone())));
        }
        tasks
    }
}

/// Sends what the publisher hands over (see [`Handoff`]).
async fn handed_loop(
    store: Store,
    shared: Arc<Shared>,
    mut handed: mpsc::UnboundedReceiver<(ClaimedDelivery, OwnedSemaphorePermit)>,
) {
    while let Some((delivery, slot)) = handed.recv().await {
        let (store, shared) = (store.clone(), shared.clone());
        tokio::spawn(async move {
            send(&store, &shared, delivery).await;
            drop(slot);
        });
    }
}

async fn claim_loop(
    store: Store,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let lease = shared.settings.lease();
    while !*stop.borrow() {
        let free = slots.available_permits().min(CLAIM_BATCH);
        let mut claimed = Vec::new();
        if free > 0 {
            let now = crate::now();
            let token = wharf_ids::id_base62(16);
            let until = now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
            match store.claim_deliveries(&token, now, until, u32::try_from(free).unwrap_or(u32::MAX)).await {
                Ok(found) => claimed = found,
                Err(err) => tracing::error!(error = %err, "cannot claim deliveries; retrying"),
            }
        }
        let full = claimed.len() == free && free > 0;
        for delivery in claimed {
            // Permits are only taken here and the claim asked for no more than were free.
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let shared = shared.clone();
            let store = store.clone();
            tokio::spawn(async move {
                send(&store, &shared, delivery).await;
                drop(permit);
            });
        }
        if full {
            // More may be due: claim again once a slot is free.
            if slots.available_permits() == 0 {
                let _ = slots.acquire().await.map(drop);
            }
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(shared.settings.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    // Let the sends in flight finish (each is bounded by its timeout).
    let total = u32::try_from(shared.settings.max_in_flight).unwrap_or(u32::MAX);
    let grace = shared.settings.timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, slots.acquire_many(total)).await.is_err() {
        tracing::warn!("deliveries still in flight at shutdown; their leases will expire and they will be sent again");
    }
    // And for their attempts to be written, so that a clean stop sends nothing twice.
    let written = async {
        while shared.handoff.unrecorded.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), written).await.is_err() {
        tracing::warn!("delivery attempts still unwritten at shutdown; those deliveries will be sent again");
    }
}

/// Sends one claimed delivery and queues its attempt for recording. What the attempt means
/// for the delivery and its subscription is the core's decision ([`after_attempt`]).
async fn send(store: &Store, shared: &Shared, delivery: ClaimedDelivery) {
    if let Some(reason) = unsent_reason(&delivery) {
        if let Err(err) = store.fail_unsent(delivery.seq, &delivery.lease_token, reason, crate::now()).await {
            tracing::error!(error = %err, delivery = %delivery.id, "cannot mark a delivery of an inactive webhook failed");
        }
        tracing::info!(delivery = %delivery.id, subscription = %delivery.subscription_id, "delivery skipped: webhook inactive");
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
        tracing::warn!(subscription = %delivery.subscription_id, %reason, "webhook disabled");
    }
    shared.handoff.unrecorded.fetch_add(1, Ordering::AcqRel);
    if shared.record.send(transition).await.is_err() {
        shared.handoff.recorded(1);
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

async fn record_loop(store: Store, mut finished: mpsc::Receiver<Finished>, handoff: Arc<Handoff>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while finished.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        record_with_retries(&store, &handoff, attempt_batch(std::mem::take(&mut batch))).await;
    }
}

/// Marks attempts recorded when dropped, however the writing ended.
pub(crate) struct Recorded<'a>(pub(crate) &'a Handoff, pub(crate) usize);

impl Drop for Recorded<'_> {
    fn drop(&mut self) {
        self.0.recorded(self.1);
    }
}

/// Finished attempts made ready for the store: their records, and one update per target
/// (merged by the core, [`AttemptBatch::of`]).
pub(crate) fn attempt_batch(finished: Vec<Finished>) -> Arc<AttemptBatch> {
    Arc::new(AttemptBatch::of(finished))
}

/// Writes attempts in their own transaction, retrying a few times.
pub(crate) async fn record_with_retries(store: &Store, handoff: &Handoff, attempts: Arc<AttemptBatch>) {
    let _recorded = Recorded(handoff, attempts.len());
    for wait in [0u64, 100, 1000, 5000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match store.record_attempts(attempts.clone(), crate::now()).await {
            Ok(()) => return,
            // The attempts happened; if they cannot be written, the leases expire and the
            // deliveries are sent again (at least once, never lost).
            Err(err) => tracing::error!(error = %err, attempts = attempts.len(), "cannot record delivery attempts"),
        }
    }
}

/// Queue depth, the age of the oldest due delivery, and disabled targets, as gauges.
async fn gauge_loop(store: Store, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let now = crate::now();
        match store.queue_stats(now).await {
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
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    /// Architecture Invariant: the dispatcher never decides a delivery's state;
    /// `wharf_core::delivery::after_attempt` does. Its code names none of the decisions.
    #[test]
    fn the_dispatcher_decides_no_delivery_state() {
        let source = include_str!("dispatcher.rs");
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        let decisions = [
            "next_step(",
            "disable_reason(",
            "AttemptRecord {",
            "TargetUpdate::Succeeded(",
            "TargetUpdate::Failed(",
            "DeliveryStatus::Pending",
            "DeliveryStatus::Failed",
        ];
        for decision in decisions {
            assert!(!code.contains(decision), "the dispatcher decides a delivery's state (`{decision}`); core::delivery should");
        }
    }
}
