//! The invoker: the delivery engine's worker for runs. It claims due run requests under a
//! lease, sends each one through the guarded client (SSRF guard, timeout, response excerpt)
//! signed with Port's `X-Port-Timestamp`/`X-Port-Signature`, and records the attempt, in one
//! transaction with what it means for the run:
//!
//! - a synchronized run makes exactly one attempt: a 2xx ends it `SUCCESS` with the answer as
//!   its `response`, anything else `FAILURE` with Port's summary;
//! - an asynchronous run's request is retried on the delivery schedule (same run id, signed
//!   anew each time); a 2xx leaves the run to its backend, and a request that finally fails
//!   ends the run `FAILURE` with the reason.
//!
//! Nothing is held across the send: the claim commits before it, the result after it. A node
//! that dies mid-send loses its lease, and the request is due again once it expires
//! (at-least-once; the receiver sees the same run id).
//!
//! A request to Wharf's own API (its public URL, or Port's API hosts unless
//! `--port-api-alias false`) is sent to Wharf itself, as the organization's API client
//! ([`super::self_call`]).
//!
//! Secrets: the request is opened from its sealed copy only to be sent; the attempt and the
//! run keep the response masked with the secrets the request held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use wharf_core::change::Origin;
use wharf_core::crypto::MasterKey;
use wharf_core::delivery::{AttemptOutcome, NextStep};
use wharf_core::run::{Answer, RunAttempt, RunSource, attempt_settles_run};
use wharf_core::secret::{SecretValues, mask, mask_json};
use wharf_core::signing::port_signature;
use wharf_core::time::Timestamp;
use wharf_store::{CatalogTx, ClaimedRequest, End, RequestState, RunAttemptRecord, RunTx, Store, WriteJob, WriteTx};

use super::render::SealedRequest;
use super::self_call::{SelfCaller, SelfCalls};
use super::{change_trigger, save_run};
use crate::delivery::DeliverySettings;
use crate::delivery::client::{HttpClient, Response};
use crate::node::{Stage, next_batch};

const X_PORT_TIMESTAMP: HeaderName = HeaderName::from_static("x-port-timestamp");
const X_PORT_SIGNATURE: HeaderName = HeaderName::from_static("x-port-signature");

/// Requests one claim takes at most.
const CLAIM_BATCH: usize = 256;

/// Sends run requests. Build one per node; cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    store: Store,
    shared: Arc<Shared>,
}

struct Shared {
    client: HttpClient,
    settings: DeliverySettings,
    master: MasterKey,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    /// Opened signing keys by their sealed text.
    keys: Mutex<HashMap<String, Arc<String>>>,
    sends: Stage,
    /// Requests to Wharf's own API (its public URL, Port's API hosts) go to Wharf itself.
    self_calls: SelfCalls,
    /// Where finished attempts go to be written ([`Recorder`]).
    finished: mpsc::Sender<Finished>,
}

impl Invoker {
    /// The invoker and the recorder of its attempts (run it in the stage after the sends).
    pub fn new(
        store: Store,
        client: HttpClient,
        settings: DeliverySettings,
        master: MasterKey,
        wake: Arc<Notify>,
        sends: Stage,
        self_calls: SelfCalls,
    ) -> (Self, Recorder) {
        let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        let (finished, queue) = mpsc::channel(settings.max_in_flight.max(1) * 2);
        let keys = Mutex::new(HashMap::new());
        let shared = Shared { client, settings, master, wake, slots, keys, sends, self_calls, finished };
        (Self { store: store.clone(), shared: Arc::new(shared) }, Recorder { store, queue })
    }

    /// The claim worker: claims due requests, as many as there are free slots, and starts
    /// their sends, until `stop`; the sends it started go on (the node waits for them).
    pub async fn claim(self, stop: CancellationToken) {
        let shared = &self.shared;
        let lease = shared.settings.lease();
        while !stop.is_cancelled() {
            let free = shared.slots.available_permits().min(CLAIM_BATCH);
            let mut claimed = Vec::new();
            if free > 0 {
                let now = crate::now();
                let token = wharf_ids::id_base62(16);
                let until = now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
                match self.store.claim_run_requests(&token, now, until, u32::try_from(free).unwrap_or(u32::MAX)).await {
                    Ok(found) => claimed = found,
                    Err(err) => tracing::error!(error = %err, "cannot claim run requests; retrying"),
                }
            }
            let full = free > 0 && claimed.len() == free;
            for request in claimed {
                let Ok(slot) = shared.slots.clone().acquire_owned().await else { return };
                let shared = self.shared.clone();
                self.shared.sends.track(async move {
                    send(&shared, request).await;
                    drop(slot);
                });
            }
            if full {
                // More may be due: claim again once a slot is free.
                if shared.slots.available_permits() == 0 {
                    tokio::select! {
                        _ = shared.slots.acquire() => {}
                        () = stop.cancelled() => {}
                    }
                }
                continue;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(shared.settings.poll_interval) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// Sends one claimed request and records what came of it.
async fn send(shared: &Shared, claimed: ClaimedRequest) {
    let sealed = match SealedRequest::open(&shared.master, &claimed.request_sealed) {
        Ok(sealed) => sealed,
        Err(why) => {
            let answer = Answer { error: Some(format!("the request cannot be opened: {why}")), ..Answer::default() };
            let attempt = attempt_of(&claimed, &answer, crate::now(), 0, "network");
            shared.finish(Finished { claimed, masks: SecretValues::default(), attempt, answer, step: NextStep::Exhausted }).await;
            return;
        }
    };
    let masks = sealed.masks();
    let request = &sealed.request;
    let attempted_at = crate::now();
    let timestamp = attempted_at.millis() / 1000;
    let response = match headers(shared, &claimed, request, timestamp) {
        Ok(headers) => {
            let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
            let (body, timeout) = (request.body.clone(), shared.settings.timeout);
            match shared.self_calls.path(&request.url) {
                Some(path) => {
                    let caller = SelfCaller { client_id: claimed.signing_client_id.as_deref(), cause: Some(&claimed.run_id) };
                    shared.self_calls.send(caller, method, &path, headers, body, timeout).await
                }
                None => shared.client.send(method, &request.url, headers, body, timeout).await,
            }
        }
        Err(error) => Response::failed(AttemptOutcome::Network, error, Duration::ZERO),
    };
    let now = crate::now();
    let number = u32::try_from(claimed.attempts.saturating_add(1)).unwrap_or(u32::MAX);
    let step = shared.settings.policy.next_step(number, &response.outcome, now, wharf_ids::unit_random(), !claimed.synchronized);
    let answer = Answer {
        status: response.status,
        body: response.body.as_deref().map(|body| mask(body, &masks)),
        error: response.error.as_deref().map(|error| mask(error, &masks)),
    };
    let duration = i64::try_from(response.duration.as_millis()).unwrap_or(i64::MAX);
    let attempt = attempt_of(&claimed, &answer, attempted_at, duration, response.outcome.class());
    tracing::info!(
        run = %claimed.run_id, attempt = number, outcome = response.outcome.class(), status = ?response.status,
        duration_ms = duration, "run request attempt"
    );
    metrics::counter!("wharf_run_request_attempts_total", "outcome" => response.outcome.class()).increment(1);
    shared.finish(Finished { claimed, masks, attempt, answer, step }).await;
}

fn attempt_of(claimed: &ClaimedRequest, answer: &Answer, at: Timestamp, duration_ms: i64, outcome: &str) -> RunAttempt {
    RunAttempt {
        id: wharf_ids::new_attempt_id(),
        run_id: claimed.run_id.clone(),
        attempted_at: at,
        duration_ms,
        outcome: outcome.to_owned(),
        status_code: answer.status.map(i64::from),
        response_body: answer.body.clone(),
        error: answer.error.clone(),
    }
}

/// A finished attempt, waiting to be written.
pub struct Finished {
    claimed: ClaimedRequest,
    /// The secrets the request held (the answer is masked with them already; a run's
    /// `response` is masked again as JSON).
    masks: SecretValues,
    attempt: RunAttempt,
    answer: Answer,
    step: NextStep,
}

impl Shared {
    /// Queues a finished attempt for the recorder.
    async fn finish(&self, finished: Finished) {
        let run = finished.claimed.run_id.clone();
        if self.finished.send(finished).await.is_err() {
            tracing::error!(%run, "the run attempt recorder has stopped; the request will be sent again");
        }
    }
}

/// Attempts written in one transaction at most.
const RECORD_BATCH: usize = 256;
/// Tries of one batch before it is given up (its leases expire and the requests are sent
/// again).
const RECORD_TRIES: u32 = 3;

/// Writes finished attempts, with what each means for its run, a batch per write job (one
/// transaction, one sync of the disk for many attempts). The only receiver of the invoker's
/// finished attempts.
pub struct Recorder {
    store: Store,
    queue: mpsc::Receiver<Finished>,
}

impl Recorder {
    /// Writes what is queued until `stop` fires and what was queued by then is written.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let mut batch = Vec::with_capacity(RECORD_BATCH);
            if next_batch(&mut self.queue, &mut batch, RECORD_BATCH, &stop).await == 0 {
                return;
            }
            let batch = Arc::new(batch);
            for tried in 1..=RECORD_TRIES {
                match self.store.write(RecordRunAttempts { batch: batch.clone(), now: crate::now() }).await {
                    Ok(()) => break,
                    Err(err) if tried < RECORD_TRIES => {
                        tracing::warn!(error = %err, attempts = batch.len(), "cannot record run attempts; trying again");
                        tokio::time::sleep(Duration::from_millis(100 << tried)).await;
                    }
                    Err(err) => tracing::error!(
                        error = %err, attempts = batch.len(),
                        "cannot record run attempts; their requests will be sent again"
                    ),
                }
            }
        }
    }
}

/// A batch of finished attempts as one write job ([`record`]). It reads only through its
/// transaction (the runs it settles, read for update), so on SQLite it runs on the writer
/// thread.
struct RecordRunAttempts {
    batch: Arc<Vec<Finished>>,
    now: Timestamp,
}

impl WriteJob for RecordRunAttempts {
    type Output = ();
    type Error = crate::Error;

    async fn run(self, tx: &mut impl WriteTx) -> crate::Result<End<()>> {
        record(tx, &self.batch, self.now).await?;
        Ok(End::Commit(()))
    }
}

/// Records each attempt and moves its request and run on, in `tx`. An attempt whose lease a
/// newer claim took is recorded but moves nothing (the newer attempt decides). The attempts
/// that leave their run as it is (an asynchronous run's delivered or retried request: most of
/// them) are written together (multi-row statements on the sqlx path); those that end a run,
/// one by one with the run read for update.
async fn record(tx: &mut (impl CatalogTx + RunTx), batch: &[Finished], now: Timestamp) -> crate::Result<()> {
    let steps: Vec<(RequestState, Timestamp)> = batch
        .iter()
        .map(|f| match f.step {
            NextStep::Succeeded => (RequestState::Succeeded, now),
            NextStep::RetryAt(at) => (RequestState::Pending, at),
            NextStep::Exhausted | NextStep::DisableTarget(_) => (RequestState::Failed, now),
        })
        .collect();
    // Core decides which attempts settle their run; those are written one by one below.
    let settles = |f: &Finished| attempt_settles_run(f.claimed.synchronized, &f.step);
    let plain: Vec<RunAttemptRecord<'_>> = batch
        .iter()
        .zip(&steps)
        .filter(|(f, _)| !settles(f))
        .map(|(f, (state, next))| RunAttemptRecord {
            seq: f.claimed.seq,
            lease_token: &f.claimed.lease_token,
            attempt: &f.attempt,
            status: *state,
            next_attempt_at: *next,
        })
        .collect();
    tx.record_run_attempts(&plain, now).await?;
    for (finished, (state, next_at)) in batch.iter().zip(&steps).filter(|(f, _)| settles(f)) {
        let Finished { claimed, masks, attempt, answer, .. } = finished;
        let mut run = tx.run_for_update(&claimed.org_id, &claimed.run_id).await?;
        if !tx.record_run_attempt(claimed.seq, &claimed.lease_token, attempt, *state, *next_at, now).await? {
            continue;
        }
        let Some(run) = run.as_mut() else { continue };
        let before = run.to_json();
        let changed = if claimed.synchronized { run.after_synchronized(answer, now) } else { run.after_undelivered(answer, now) };
        if changed {
            if let Some(response) = run.response.as_mut() {
                mask_json(response, masks);
            }
            let origin = if run.source == RunSource::Automation { Origin::Automation } else { Origin::Api };
            let trigger = change_trigger(&claimed.org_id, &run.created_by, origin, &run.id, now);
            save_run(tx, &trigger, run, Some(before)).await?;
        }
    }
    Ok(())
}

/// The request's own headers, then Port's timestamp and signature (keyed with the
/// organization's client secret).
fn headers(
    shared: &Shared,
    claimed: &ClaimedRequest,
    request: &wharf_core::run::Request,
    timestamp: i64,
) -> Result<HeaderMap, String> {
    let key = shared.signing_key(claimed)?;
    signed_headers(request, key.as_bytes(), timestamp)
}

/// `request`'s own headers, then Port's `X-Port-Timestamp` and `X-Port-Signature` keyed with
/// `key` (which replace any of the same name): what every run request and workflow node sends.
pub(crate) fn signed_headers(request: &wharf_core::run::Request, key: &[u8], timestamp: i64) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(request.headers.len() + 3);
    for (name, value) in &request.headers {
        let invalid = |err: &dyn std::fmt::Display| format!("the header `{name}` cannot be sent: {err}");
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(&e))?;
        headers.append(name, HeaderValue::from_str(value).map_err(|e| invalid(&e))?);
    }
    let signature = port_signature(key, timestamp, request.body.as_deref().unwrap_or_default().as_bytes());
    headers.insert(X_PORT_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(X_PORT_SIGNATURE, HeaderValue::from_str(&signature).map_err(|e| e.to_string())?);
    Ok(headers)
}

impl Shared {
    fn signing_key(&self, claimed: &ClaimedRequest) -> Result<Arc<String>, String> {
        let Some(sealed) = &claimed.signing_secret_sealed else {
            return Err("the organization has no API client, whose secret signs its requests".to_owned());
        };
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = keys.get(sealed) {
            return Ok(key.clone());
        }
        let key = Arc::new(self.master.open(sealed).map_err(|e| format!("the signing key cannot be opened: {e}"))?);
        if keys.len() > 10_000 {
            keys.clear();
        }
        keys.insert(sealed.clone(), key.clone());
        Ok(key)
    }
}
