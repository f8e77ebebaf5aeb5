//! System events: every entity change in the outbox becomes `entity.<blueprint>.created`,
//! `.updated` or `.deleted`, published to every project of its organization that has a
//! matching active subscription. ([`publish_system_events`] also serves the mapper's
//! `webhook.<identifier>.failed`.)
//!
//! The router reads the outbox past its own cursor and publishes in the same transaction that
//! moves the cursor, so across crashes and restarts no change is missed or published twice
//! (the event id is the change id, the `webhook-id` receivers see).
//!
//! Invariant: routing never stops at one change. A change that fails deterministically (a row
//! that cannot be read back, a value the database refuses: [`wharf_store::Error::is_deterministic`])
//! is parked with its reason, in the transaction that moves the cursor past it, and every
//! organization's later changes are routed; a batch that fails so is routed again one change
//! per transaction, so only the change at fault is parked. Any other failure (the database is
//! unreachable, busy, out of space) parks nothing: the batch is tried again, after a wait that
//! doubles with each failure in a row up to 10 s (`outbox::backoff`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wharf_core::change::{Change, ChangeAction, ResourceType};
use wharf_core::project::{PublishedEvent, subscribes_to};

use super::routing::store_and_route;
use crate::outbox::{Look, LookAhead, OutboxWait, backoff};
use wharf_core::time::Timestamp;
use wharf_store::{ChangeHead, OutboxBatch, Publication, Store, UnreadableChange, WriteTx};

/// The router's cursor in the outbox.
const CONSUMER: &str = "project-subscriptions";
/// Changes one transaction routes at most.
const BATCH: u32 = 500;

/// The event type of a change, when it is one subscribers can receive.
pub fn event_type(change: &Change) -> Option<String> {
    if change.resource_type != ResourceType::Entity {
        return None;
    }
    let verb = match change.action {
        ChangeAction::Create => "created",
        ChangeAction::Update => "updated",
        ChangeAction::Delete => "deleted",
    };
    Some(format!("entity.{}.{verb}", change.blueprint))
}

/// Whether the router may act on a change of this kind (from its head, or an unreadable
/// row's): only entity changes become system events (as [`event_type`] says); a change of an
/// unknown kind is read, and parked.
fn routes(kind: Option<ResourceType>) -> bool {
    kind.is_none_or(|kind| kind == ResourceType::Entity)
}

/// The router worker: routes the outbox until `stop` fires (between two batches); `wake` is
/// notified when deliveries were made.
pub async fn run(store: Store, wake: Arc<Notify>, poll: Duration, stop: CancellationToken) {
    let mut idle = false;
    // Taking the cursor is a write, so where changes commit in `seq` order the router first
    // looks ahead on a reader, and passes over the changes that are not entities' (most of
    // the outbox while runs are busy) without taking it (`LookAhead`); where a lower `seq`
    // can commit later, the cursor is always taken.
    let mut ahead = LookAhead::new();
    let mut failures = 0;
    // Changes committed on this node wake it at once; other nodes' at the next poll.
    let mut waiting = OutboxWait::new(&store);
    while !stop.is_cancelled() {
        if idle && !waiting.idle(backoff(poll, failures), failures > 0, &stop).await {
            continue;
        }
        if failures == 0 {
            let look = match ahead.heads(&store).await {
                Some(heads) => ahead.decide(&heads, heads.iter().any(|head: &ChangeHead| routes(head.resource_type))),
                None => Look::Act,
            };
            match look {
                Look::Nothing => {
                    idle = true;
                    continue;
                }
                Look::PassedOver { more } => {
                    idle = !more;
                    continue;
                }
                Look::Act => {}
            }
        }
        match route_batch(&store, &mut ahead).await {
            Ok((routed, delivered)) => {
                failures = 0;
                idle = routed < BATCH as usize;
                if delivered > 0 {
                    wake.notify_one();
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot route catalog changes to subscriptions; retrying");
                failures += 1;
                idle = true;
            }
        }
    }
}

/// Routes one batch, from the look ahead's place when it is past the cursor; how many changes
/// were read (parked ones included) and how many deliveries were made.
async fn route_batch(store: &Store, ahead: &mut LookAhead) -> wharf_store::Result<(usize, usize)> {
    let now = crate::now();
    let mut tx = store.begin().await?;
    let cursor = tx.lock_cursor(CONSUMER, now).await?;
    let from = ahead.from(cursor);
    let batch = tx.changes_after(from, BATCH).await?;
    let read = batch.changes.len() + batch.unreadable.len();
    if read == 0 {
        if from > cursor {
            tx.set_cursor(CONSUMER, from, now).await?;
        }
        tx.commit().await?;
        ahead.stored(from);
        return Ok((0, 0));
    }
    match publish_changes(&mut tx, &batch.changes, now).await {
        Ok(delivered) => {
            park(&mut tx, &batch.unreadable, now).await?;
            tx.set_cursor(CONSUMER, batch.position, now).await?;
            tx.commit().await?;
            ahead.stored(batch.position);
            Ok((read, delivered))
        }
        Err(err) if err.is_deterministic() => {
            drop(tx); // rolled back
            tracing::warn!(error = %err, "a batch of changes cannot be routed; routing it one change at a time");
            let delivered = route_one_by_one(store, batch).await?;
            Ok((read, delivered))
        }
        Err(err) => Err(err),
    }
}

/// Routes a batch that failed, one change per transaction, parking the changes that fail
/// deterministically; how many deliveries were made.
async fn route_one_by_one(store: &Store, batch: OutboxBatch) -> wharf_store::Result<usize> {
    let mut delivered = 0;
    for (position, row) in batch.into_rows() {
        let now = crate::now();
        let mut tx = store.begin().await?;
        if tx.lock_cursor(CONSUMER, now).await? >= position {
            continue; // another node routed it meanwhile
        }
        let fault = match &row {
            Ok(change) => match publish_changes(&mut tx, std::slice::from_ref(change), now).await {
                Ok(made) => {
                    tx.set_cursor(CONSUMER, position, now).await?;
                    tx.commit().await?;
                    delivered += made;
                    continue;
                }
                Err(err) if err.is_deterministic() => UnreadableChange {
                    seq: change.seq,
                    id: change.id.clone(),
                    org_id: change.trigger.org_id.clone(),
                    resource_type: Some(change.resource_type),
                    blueprint: change.blueprint.clone(),
                    reason: format!("cannot be routed: {err}"),
                },
                Err(err) => return Err(err),
            },
            Err(unreadable) => unreadable.clone(),
        };
        drop(tx); // what the failed routing wrote is rolled back
        let mut tx = store.begin().await?;
        if tx.lock_cursor(CONSUMER, now).await? >= position {
            continue;
        }
        park(&mut tx, std::slice::from_ref(&fault), now).await?;
        tx.set_cursor(CONSUMER, position, now).await?;
        tx.commit().await?;
    }
    Ok(delivered)
}

/// Publishes the system events of `changes` in `tx`; how many deliveries were made.
async fn publish_changes(tx: &mut impl WriteTx, changes: &[Change], now: Timestamp) -> wharf_store::Result<usize> {
    let events: Vec<(String, PublishedEvent)> = changes
        .iter()
        .filter_map(|change| {
            let event_type = event_type(change)?;
            let event = PublishedEvent::new(change.id.clone(), event_type, &change.event(), change.trigger.at);
            Some((change.trigger.org_id.clone(), event))
        })
        .collect();
    publish_system_events(tx, &events, now).await
}

/// Parks changes with their reasons, in the transaction that moves the cursor past them.
/// A change the router would not route (not an entity's) is passed over, not parked, as its
/// look ahead passes over it.
async fn park(tx: &mut wharf_store::Tx, unreadable: &[UnreadableChange], now: Timestamp) -> wharf_store::Result<()> {
    let parked: Vec<UnreadableChange> = unreadable.iter().filter(|change| routes(change.resource_type)).cloned().collect();
    for change in &parked {
        tracing::error!(change = %change.id, org = %change.org_id, reason = %change.reason, "a change cannot be routed: parked");
        metrics::counter!("wharf_changes_parked_total").increment(1);
    }
    tx.park_changes(CONSUMER, &parked, now).await
}

/// Publishes system events (each with its organization) to every project of the organization
/// that has a matching active subscription, in `tx`; how many deliveries were made.
pub async fn publish_system_events(
    tx: &mut impl WriteTx,
    events: &[(String, PublishedEvent)],
    now: Timestamp,
) -> wharf_store::Result<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let orgs: Vec<String> = events.iter().map(|(org, _)| org.clone()).collect::<HashSet<_>>().into_iter().collect();
    let subscriptions = tx.active_subscriptions(&orgs, true).await?;
    // One publication per project of the organization with a matching subscription (the
    // routing below then picks that project's matching subscriptions).
    let mut publications = Vec::new();
    for (org, event) in events {
        let projects: HashSet<&str> = subscriptions
            .iter()
            .filter(|s| s.org_id == *org && subscribes_to(&s.events, &event.event_type))
            .map(|s| s.project_id.as_str())
            .collect();
        publications.extend(projects.into_iter().map(|p| Publication { project_id: p.to_owned(), event: event.clone() }));
    }
    if publications.is_empty() {
        return Ok(0);
    }
    let routed = store_and_route(tx, &publications, &subscriptions).await?;
    tx.insert_deliveries(&routed.pairs, true, now, None).await?;
    let delivered = routed.pairs.len();
    Ok(delivered)
}
