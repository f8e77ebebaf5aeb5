//! The ingest path (SPEC §6 steps 1–7): find the webhook in memory, check that it is
//! enabled, verify the signature, read the body, deduplicate, and store the event durably
//! before answering.
//!
//! Requests that arrive together share one transaction (group commit): each handler hands
//! its event to a committer task and waits for the commit; the committer takes every event
//! waiting, writes them with one statement and commits once. A handler answers 202 only after
//! the commit that holds its event.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wharf_core::Error as DomainError;
use wharf_core::crypto::MasterKey;
use wharf_core::ingest::{
    BodyKind, SignatureError, check_body, header, jq_input, parse_body, redact_secret_header, request_identifier,
    verify_signature,
};
use wharf_core::mapping::WebhookEventStatus;
use wharf_core::time::Timestamp;
use wharf_ids::new_webhook_event_id;
use wharf_store::{CompressedJson, NewWebhookEvent, Store, Stored};

use super::{AcceptLoad, Arrivals, IngestSettings, WebhookIndex};
use crate::node::next_batch;
use crate::{Error, Result};

/// Events one commit takes at most.
const MAX_BATCH: usize = 1024;

/// A request as the endpoint received it.
pub struct IngestRequest<'a> {
    pub headers: Map<String, Value>,
    pub query: Map<String, Value>,
    pub body: &'a [u8],
}

/// What the endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored (202 `{"ok":true,"eventId"}`).
    Accepted { event_id: String },
    /// Seen before within the dedupe window (202 `{"ok":true,"duplicate":true,"eventId"}`).
    Duplicate { event_id: String },
    /// The webhook is disabled: nothing stored (202 `{"ok":true,"ignored":…}`).
    Disabled,
    /// The signature did not verify: a rejected event was recorded (401).
    Rejected { event_id: String, reason: String },
}

struct Submission {
    event: NewWebhookEvent,
    reply: oneshot::Sender<std::result::Result<Stored, String>>,
}

/// Accepts requests for every webhook of this node. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    index: Arc<WebhookIndex>,
    settings: IngestSettings,
    submit: mpsc::Sender<Submission>,
    misses: MissLookup,
}

/// What a request naming a key the index does not know looks up: the webhook may have been
/// created (or re-keyed) on another node since this node's last refresh, and its sender would
/// take a 404 as final (GitHub does not retry one). One read of the key's unique index, as a
/// store-backed ingest endpoint makes for every request; the index keeps what it finds.
#[derive(Clone)]
struct MissLookup {
    store: Store,
    master: MasterKey,
}

impl MissLookup {
    async fn find(&self, index: &WebhookIndex, key: &str) {
        match self.store.webhook_by_key(key).await {
            Ok(Some(stored)) => index.put(&stored, &self.master).await,
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot look up an ingest key this node does not know"),
        }
    }
}

/// The committer worker: run one (SQLite, whose single writer serializes commits anyway) or
/// a few (PostgreSQL); they take turns at the queue. Every commit tells `arrivals` which
/// webhooks have new events to map, and is recorded in `load` (the mapper paces itself by it).
/// Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    store: Store,
    submissions: Arc<Mutex<mpsc::Receiver<Submission>>>,
    arrivals: Arrivals,
    load: AcceptLoad,
}

impl Ingestor {
    /// The ingestor and its committer.
    pub fn new(
        store: Store,
        index: Arc<WebhookIndex>,
        master: MasterKey,
        settings: IngestSettings,
        arrivals: Arrivals,
        load: AcceptLoad,
    ) -> (Self, Committer) {
        let (submit, submissions) = mpsc::channel::<Submission>(MAX_BATCH * 4);
        let submissions = Arc::new(Mutex::new(submissions));
        let misses = MissLookup { store: store.clone(), master };
        (Self { index, settings, submit, misses }, Committer { store, submissions, arrivals, load })
    }

    /// The body limit; the endpoint reads at most this many bytes (413 past it).
    pub fn body_limit(&self) -> usize {
        self.settings.body_limit
    }

    /// Whether a key names a webhook (404 otherwise), checked before the body is read. A key
    /// this node does not know is looked up in the store first ([`MissLookup`]), so a webhook
    /// created on another node is served at once.
    pub async fn knows(&self, key: &str) -> bool {
        if self.index.by_key(key).is_some() {
            return true;
        }
        self.misses.find(&self.index, key).await;
        self.index.by_key(key).is_some()
    }

    /// Steps 2–7 for a request to `key`.
    pub async fn ingest(&self, key: &str, content_type: Option<&str>, mut request: IngestRequest<'_>) -> Result<Ingested> {
        let webhook = self
            .index
            .by_key(key)
            .ok_or_else(|| Error::from(DomainError::not_found("webhook_not_found", "no webhook has this ingest URL")))?;
        if !webhook.def.enabled {
            return Ok(Ingested::Disabled);
        }
        let now = crate::now();
        let event_id = new_webhook_event_id();
        if let Err(err) = verify_signature(&webhook.def.security, &request.headers, request.body) {
            let reason = err.to_string();
            self.store(rejected(&webhook.org_id, &webhook.id, &event_id, &err, now)).await?;
            return Ok(Ingested::Rejected { event_id, reason });
        }
        redact_secret_header(&webhook.def.security, &mut request.headers);
        let kind = BodyKind::of(content_type.or_else(|| header(&request.headers, "content-type")));
        let (body_text, request_id) = if webhook.compiled.request_identifier.is_some() {
            let body = parse_body(kind, request.body)?;
            let body_text = serde_json::to_string(&body).unwrap_or_default();
            let input = jq_input(body, request.headers.clone(), request.query.clone());
            let webhook = webhook.clone();
            let request_id = crate::jq_pool::run_quick(move || request_identifier(&webhook.compiled, &input)).await?;
            (Cow::Owned(body_text), request_id)
        } else {
            (body_text(kind, request.body)?, None)
        };
        let request_text = request_text(&body_text, &request.headers, &request.query);
        let dedupe = i64::try_from(self.settings.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let event = NewWebhookEvent {
            id: event_id.clone(),
            org_id: webhook.org_id.clone(),
            webhook_id: webhook.id.clone(),
            status: WebhookEventStatus::Pending,
            request_id,
            request: Some(CompressedJson::new(&request_text)),
            result: None,
            received_at: now,
            dedupe_until: Timestamp::from_millis(now.millis().saturating_add(dedupe)),
        };
        Ok(match self.store(event).await? {
            Stored::Stored => Ingested::Accepted { event_id },
            Stored::Duplicate(first) => Ingested::Duplicate { event_id: first },
        })
    }

    /// Hands an event to the committers and waits for its commit.
    async fn store(&self, event: NewWebhookEvent) -> Result<Stored> {
        let (reply, committed) = oneshot::channel();
        let unavailable = || Error::Unavailable("the ingest committer has stopped".into());
        self.submit.send(Submission { event, reply }).await.map_err(|_| unavailable())?;
        committed.await.map_err(|_| unavailable())?.map_err(Error::Unavailable)
    }
}

/// The body as JSON text for the stored request: a JSON body as received (checked, not
/// rebuilt, and not copied), anything else as the value the mapper will read.
fn body_text(kind: BodyKind, bytes: &[u8]) -> Result<Cow<'_, str>> {
    match kind {
        BodyKind::Json => {
            check_body(kind, bytes)?;
            // Checked above: the bytes are one JSON document, so they are UTF-8 (and
            // `from_utf8` checks a 2 KiB body in 66 ns, the lossy reading in 1.1 µs).
            Ok(match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text.trim()),
                Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).trim().to_owned()),
            })
        }
        _ => Ok(Cow::Owned(serde_json::to_string(&parse_body(kind, bytes)?).unwrap_or_default())),
    }
}

/// `{"body": …, "headers": …, "queryParams": …}` as text, the body spliced in as is.
fn request_text(body: &str, headers: &Map<String, Value>, query: &Map<String, Value>) -> String {
    let headers = serde_json::to_string(headers).unwrap_or_default();
    let query = serde_json::to_string(query).unwrap_or_default();
    let mut text = String::with_capacity(body.len() + headers.len() + query.len() + 40);
    text.push_str("{\"body\":");
    text.push_str(if body.is_empty() { "null" } else { body });
    text.push_str(",\"headers\":");
    text.push_str(&headers);
    text.push_str(",\"queryParams\":");
    text.push_str(&query);
    text.push('}');
    text
}

fn rejected(org: &str, webhook: &str, event_id: &str, err: &SignatureError, now: Timestamp) -> NewWebhookEvent {
    NewWebhookEvent {
        id: event_id.to_owned(),
        org_id: org.to_owned(),
        webhook_id: webhook.to_owned(),
        status: WebhookEventStatus::Rejected,
        request_id: None,
        request: None,
        result: Some(serde_json::json!({"status": "REJECTED", "reason": err.to_string()}).to_string()),
        received_at: now,
        dedupe_until: now,
    }
}

impl Committer {
    /// Commits the events waiting, a batch per transaction, until `stop` fires and those
    /// submitted by then are committed (and answered).
    pub async fn run(self, stop: CancellationToken) {
        let Self { store, submissions, arrivals, load } = self;
        loop {
            let mut batch = Vec::new();
            {
                let mut submissions = submissions.lock().await;
                if next_batch(&mut submissions, &mut batch, MAX_BATCH, &stop).await == 0 {
                    return; // stopped, and every event submitted is committed
                }
            }
            let (events, replies): (Vec<NewWebhookEvent>, Vec<_>) = batch.into_iter().map(|s| (s.event, s.reply)).unzip();
            metrics::histogram!("wharf_ingest_commit_batch_size").record(events.len() as f64);
            load.committed(events.len());
            let events = Arc::new(events);
            let outcomes = match store.store_webhook_events(events.clone(), crate::now()).await {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                // One bad event (its webhook deleted meanwhile) must not fail the others: the
                // batch is retried one event per transaction.
                Err(err) if events.len() > 1 => {
                    tracing::warn!(error = %err, events = events.len(), "a batch of webhook events failed; storing them one by one");
                    let mut outcomes = Vec::with_capacity(events.len());
                    for event in events.iter() {
                        // `store_webhook_events` answers one outcome per event given: here, exactly one.
                        let one = Arc::new(vec![event.clone()]);
                        outcomes.push(store.store_webhook_events(one, crate::now()).await.map(|mut o| o.remove(0)));
                    }
                    outcomes
                }
                Err(err) => vec![Err(err)],
            };
            let to_map = events
                .iter()
                .zip(&outcomes)
                .filter(|(event, outcome)| event.status == WebhookEventStatus::Pending && matches!(outcome, Ok(Stored::Stored)));
            arrivals.arrived(to_map.map(|(event, _)| event.webhook_id.as_str()));
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome.map_err(|err| {
                    tracing::error!(error = %err, "cannot store a webhook event");
                    format!("the event could not be stored: {err}")
                }));
            }
        }
    }
}
