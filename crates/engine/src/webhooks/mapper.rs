//! The mapping workers: they map stored events into the catalog, in arrival order per
//! webhook, exactly once.
//!
//! A worker takes a lease on one webhook (so one worker of one node maps its events at a
//! time; an expired lease — a crashed node — is taken over), reads its next pending events,
//! evaluates the jq off the async threads, and applies the result in one transaction per
//! batch: the entity writes, their changes, and each event's result commit together. A crash
//! before the commit leaves the events pending; after it, they are done. So an accepted event
//! is mapped exactly once, whatever the moment of the crash.
//!
//! Workers learn of new events from this node's commits ([`Arrivals`]): an idle worker is
//! woken for a webhook that no neighbour drains, and a drainer reads again for one it drains.
//! So no worker asks the database for a lease that a neighbour holds (on SQLite that ask is a
//! write, and it would take the write turn from the commits it was woken by), or walks the
//! database for pending events at every commit. Events this node was not told about (other
//! nodes', replays, those a crash left) are found by a walk after [`POLL`] without news.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wharf_core::ingest::event_input;
use wharf_core::mapping::{Mapped, MappedAction, MappedEntity, Target, WebhookEventResult, WebhookEventStatus, map_input};
use wharf_core::project::PublishedEvent;
use wharf_core::time::Timestamp;
use wharf_store::{End, FinishedWebhookEvent, PendingWebhookEvent, Reads, Store, WriteJob, WriteTx};

use super::apply::apply;
use super::arrivals::{Arrivals, Draining, Next};
use super::{AcceptLoad, LiveWebhook, WebhookIndex, webhook_trigger};
use crate::catalog::BlueprintCache;
use crate::catalog::prefetch::{Named, Prefetched, prefetch};
use crate::node::Stage;
use crate::{Catalog, Error, Result};

/// Events mapped per transaction. Webhooks that resolve entities by search queries map one
/// event per transaction, so each sees the catalog as the one before left it.
const BATCH: u32 = 128;
/// How long a lease lasts.
const LEASE: Duration = Duration::from_secs(30);
/// A draining worker renews its lease after a batch once this much of it has passed, so a
/// lease never has less than two thirds of its time left while its holder works. (Renewing
/// after every batch cost a committed write per batch for nothing.)
const RENEW_AFTER: Duration = Duration::from_secs(10);
/// How often an idle worker looks for work it was not told about (other nodes' events).
const POLL: Duration = Duration::from_millis(250);
/// A worker's turn on one webhook: past it, the worker ends its batch after the event it is
/// mapping and, when other webhooks wait for a worker, hands the webhook back to the end of
/// the queue. So a webhook whose events are slow takes turns with the others instead of
/// holding its worker for as long as its backlog lasts.
const TURN: Duration = Duration::from_millis(200);

/// How a drain ended.
enum Drained {
    /// Nothing left (or the node stops, or the lease was lost).
    Done,
    /// The turn ended with events left and other webhooks waiting.
    TurnEnded,
}

/// The pool of mapping workers of one node.
#[derive(Clone)]
pub struct Mapper {
    store: Store,
    catalog: Catalog,
    index: Arc<WebhookIndex>,
    /// Which webhooks have new events, and which this node's workers drain.
    arrivals: Arrivals,
    node: Arc<str>,
    /// Accepting comes first: while requests queue, the mapper rests between batches.
    load: AcceptLoad,
}

impl Mapper {
    pub fn new(store: Store, catalog: Catalog, index: Arc<WebhookIndex>, arrivals: Arrivals, load: AcceptLoad) -> Self {
        let node = format!("node-{}", wharf_ids::random_base62(12));
        Self { store, catalog, index, arrivals, node: node.into(), load }
    }

    /// Starts `workers` workers on `stage`; they stop when its token fires, between batches
    /// (a batch in hand commits or rolls back whole). One organization drains at most
    /// `workers - 1` webhooks at once (at least one), so another organization's events always
    /// find a worker free ([`Arrivals`]).
    pub fn start(&self, workers: usize, stage: &Stage) {
        let workers = workers.max(1);
        self.arrivals.limit_per_organization(workers - 1);
        for worker in 0..workers {
            let mapper = self.clone();
            stage.spawn(|stop| mapper.work(worker, stop));
        }
    }

    /// One mapping worker.
    async fn work(self, worker: usize, stop: CancellationToken) {
        let owner = format!("{}/{worker}", self.node);
        let org_of = |webhook: &str| self.org_of(webhook);
        // The first round walks: events may be pending from before this node started.
        let mut next = Next::Walk;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let mapped = match next {
                Next::Drain(draining) => self.turn(draining, &owner, &stop).await,
                // What the walk finds is queued, for whichever worker has room for it.
                Next::Walk => self.store.webhooks_with_pending_events().await.map_err(Error::from).map(|found| {
                    self.arrivals.arrived(found.iter().map(String::as_str));
                }),
            };
            if let Err(err) = mapped {
                tracing::warn!(error = %err, "mapping failed; retrying");
            }
            next = tokio::select! {
                next = self.arrivals.next(POLL, &org_of) => next,
                () = stop.cancelled() => return,
            };
        }
    }

    fn org_of(&self, webhook: &str) -> Option<String> {
        self.index.by_id(webhook).map(|live| live.org_id.clone())
    }

    /// One turn on a webhook, unless another node holds it: drains it, or maps it for
    /// [`TURN`] and hands it back when other webhooks wait for a worker.
    async fn turn(&self, draining: Draining, owner: &str, stop: &CancellationToken) -> Result<()> {
        let webhook = draining.webhook().to_owned();
        let now = crate::now();
        if !self.store.claim_mapper_lease(&webhook, owner, now, later(now, LEASE)).await? {
            return Ok(());
        }
        let drained = self.drain(&draining, owner, stop).await;
        self.store.release_mapper_lease(&webhook, owner).await?;
        // After the release: what arrived meanwhile (or the rest of a turn handed back) goes
        // to a neighbour.
        if let Ok(Drained::TurnEnded) = drained {
            draining.hand_back();
        } else {
            drop(draining);
        }
        drained.map(|_| ())
    }

    /// Maps a webhook's pending events until none are left, the node stops, or its turn ends
    /// with other webhooks waiting.
    async fn drain(&self, draining: &Draining, owner: &str, stop: &CancellationToken) -> Result<Drained> {
        let webhook_id = draining.webhook();
        let org_of = |webhook: &str| self.org_of(webhook);
        let mut renewed = Instant::now();
        let turn = Instant::now();
        // After a batch failed in a way that would repeat, its events are read again one per
        // transaction (this many reads), so that only the event at fault fails.
        let mut one_at_a_time = 0;
        // An event that failed so alone, tried once more before it is failed.
        let mut failed_once: Option<String> = None;
        while !stop.is_cancelled() {
            let Some(live) = self.index.by_id(webhook_id) else {
                return Ok(Drained::Done); // deleted, or not loaded yet on this node
            };
            let limit = if live.compiled.uses_queries() || one_at_a_time > 0 { 1 } else { BATCH };
            let started = Instant::now();
            draining.read();
            let events = self.store.pending_webhook_events(webhook_id, limit).await?;
            if events.is_empty() {
                if draining.finish() {
                    return Ok(Drained::Done);
                }
                continue; // events arrived during the read
            }
            let (count, first) = (events.len(), events[0].id.clone());
            match self.map_batch(live.clone(), events, started + TURN).await {
                Ok(()) => one_at_a_time = usize::saturating_sub(one_at_a_time, 1),
                Err(err) if repeats(&err) && count > 1 => {
                    tracing::warn!(webhook = %webhook_id, error = %err, "a batch cannot be recorded; mapping its events one at a time");
                    one_at_a_time = count;
                    continue;
                }
                Err(err) if repeats(&err) && failed_once.as_deref() == Some(first.as_str()) => {
                    // Invariant: a webhook's queue never stops at one event: an event whose
                    // writes fail the same way twice is finished as a failure, with the reason.
                    tracing::warn!(webhook = %webhook_id, event = %first, error = %err, "an event cannot be recorded; failed");
                    let failure = Mapped::unreadable(format!("the event's entities cannot be written: {err}"));
                    self.record(&live, vec![(first, failure)]).await?;
                    one_at_a_time = usize::saturating_sub(one_at_a_time, 1);
                }
                Err(err) if repeats(&err) => {
                    failed_once = Some(first);
                    one_at_a_time = one_at_a_time.max(1);
                    continue;
                }
                Err(err) => return Err(err),
            }
            if turn.elapsed() >= TURN && draining.others_wait(&org_of) {
                return Ok(Drained::TurnEnded);
            }
            let rest = self.load.rest_after(started.elapsed());
            if !rest.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(rest) => {}
                    () = stop.cancelled() => {}
                }
            }
            if renewed.elapsed() >= RENEW_AFTER {
                let now = crate::now();
                if !self.store.claim_mapper_lease(webhook_id, owner, now, later(now, LEASE)).await? {
                    return Ok(Drained::Done); // the lease was lost: another node carries on
                }
                renewed = Instant::now();
            }
        }
        Ok(Drained::Done)
    }

    /// Maps a batch of events and records them; evaluation stops at the first event that
    /// ends past `until` (the rest stay pending for the next read, so the order holds).
    async fn map_batch(&self, live: Arc<LiveWebhook>, events: Vec<PendingWebhookEvent>, until: Instant) -> Result<()> {
        let evaluated = {
            let live = live.clone();
            // jq is CPU work: it runs on the jq threads, not on the async workers.
            crate::jq_pool::run(move || {
                // Checked before each event, so after the one before it was mapped.
                let mut first = true;
                events
                    .into_iter()
                    .take_while(|_| std::mem::take(&mut first) || Instant::now() < until)
                    .map(|event| {
                        // Parsed here, once, into only what the mappings observe.
                        let compiled = &live.compiled;
                        let mapped = match event.request {
                            Ok(text) => match event_input(&compiled.input_demand, text.as_deref()) {
                                Ok(input) => map_input(&compiled.mappings, &input),
                                Err(message) => Mapped::unreadable(format!("the stored request is not JSON: {message}")),
                            },
                            Err(damage) => Mapped::unreadable(damage),
                        };
                        (event.id, mapped)
                    })
                    .collect::<Vec<(String, Mapped)>>()
            })
            .await?
        };
        self.record(&live, evaluated).await
    }

    /// Records mapped events: their entity writes and results, in one transaction.
    async fn record(&self, live: &Arc<LiveWebhook>, evaluated: Vec<(String, Mapped)>) -> Result<()> {
        let now = crate::now();
        let batch = RecordBatch { catalog: self.catalog.clone(), live: live.clone(), evaluated, now };
        let finished = self.store.write(batch).await?;
        let Some(finished) = finished else {
            tracing::warn!(webhook = %live.id, "events were mapped by another worker; dropping this batch");
            return Ok(());
        };
        for FinishedWebhookEvent { id: event, status, .. } in finished {
            metrics::counter!("wharf_webhook_events_mapped_total", "status" => status.as_str()).increment(1);
            tracing::debug!(%event, status = status.as_str(), "webhook event mapped");
        }
        Ok(())
    }
}

/// A batch of mapped events to record, as one write job: committed with the events it
/// finished, rolled back when another worker finished one of them first (so nothing is
/// applied twice).
struct RecordBatch {
    catalog: Catalog,
    live: Arc<LiveWebhook>,
    evaluated: Vec<(String, Mapped)>,
    now: Timestamp,
}

impl WriteJob for RecordBatch {
    type Output = Option<Vec<FinishedWebhookEvent>>;
    type Error = Error;

    /// Mappings that search the catalog read through the store's pool between their writes.
    fn reads(&self) -> Reads {
        if self.live.compiled.uses_queries() { Reads::AlsoOutside } else { Reads::InTransaction }
    }

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<Self::Output>> {
        Ok(match record_batch(&self.catalog, tx, &self.live, self.evaluated, self.now).await? {
            Some(finished) => End::Commit(Some(finished)),
            None => End::Rollback(None),
        })
    }
}

/// What a mapped entity names for the batch's bulk read: an entity by identifier (one found
/// by a search query is locked and read when its write comes), with an upsert's relations.
fn named(entity: &MappedEntity) -> Option<Named<'_>> {
    let Target::Identifier(identifier) = &entity.identifier else { return None };
    let relations = match &entity.action {
        MappedAction::Upsert { doc, .. } => doc.get("relations").and_then(serde_json::Value::as_object),
        MappedAction::Delete { .. } => None,
    };
    Some(Named { blueprint: &entity.blueprint, identifier, relations })
}

/// Applies a batch's mapped entities and records each event's result in `tx`; `None` when
/// another worker finished one of the events first (the caller then rolls back, so nothing
/// is applied twice).
async fn record_batch(
    catalog: &Catalog,
    tx: &mut impl WriteTx,
    live: &LiveWebhook,
    evaluated: Vec<(String, Mapped)>,
    now: Timestamp,
) -> Result<Option<Vec<FinishedWebhookEvent>>> {
    let mut blueprints = BlueprintCache::default();
    // The catalog's writes go through the batch's bulk read; the event log's and the queue's
    // straight to `tx`.
    let catalog_tx = &mut Prefetched::new(tx, &live.org_id);
    let named: Vec<Named> = evaluated.iter().flat_map(|(_, mapped)| &mapped.entities).filter_map(named).collect();
    prefetch(catalog_tx, &mut blueprints, &named).await?;
    let mut finished = Vec::with_capacity(evaluated.len());
    let mut failed = Vec::new();
    for (event_id, mapped) in evaluated {
        let trigger = webhook_trigger(&live.org_id, &live.def.identifier, Some(&event_id), now);
        let applied = apply(catalog, catalog_tx, &mut blueprints, &trigger, &mapped.entities, false).await?;
        let errors = [mapped.errors, applied.errors].concat();
        let result =
            WebhookEventResult::new(mapped.matched, mapped.truncated, applied.outcomes, errors, now).with_logs(mapped.logs);
        let doc = serde_json::to_string(&result).unwrap_or_default();
        if result.status == WebhookEventStatus::Failure {
            failed.push((live.org_id.clone(), failed_event(&live.def.identifier, &event_id, &result, now)));
        }
        finished.push(FinishedWebhookEvent { id: event_id, status: result.status, result: doc });
    }
    catalog_tx.flush().await?;
    // Only events still pending move.
    if tx.finish_webhook_events(&finished, now).await? != finished.len() as u64 {
        return Ok(None);
    }
    crate::delivery::router::publish_system_events(tx, &failed, now).await?;
    Ok(Some(finished))
}

/// Whether a failure to record a batch would repeat if the same batch were tried again (as
/// opposed to the database being unreachable or busy, after which it is tried again).
fn repeats(err: &Error) -> bool {
    match err {
        Error::Domain(_) => true,
        Error::Store(err) => err.is_deterministic(),
        Error::Unavailable(_) => false,
    }
}

/// `webhook.<identifier>.failed`: an event none of whose entities could be written. Its id
/// names the webhook event and the time, so a replay that fails again is published again.
fn failed_event(identifier: &str, event_id: &str, result: &WebhookEventResult, now: Timestamp) -> PublishedEvent {
    let data = serde_json::json!({"webhook": identifier, "eventId": event_id, "result": result});
    PublishedEvent::new(format!("{event_id}.failed.{}", now.millis()), format!("webhook.{identifier}.failed"), &data, now)
}

fn later(now: Timestamp, by: Duration) -> Timestamp {
    Timestamp::from_millis(now.millis().saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)))
}
