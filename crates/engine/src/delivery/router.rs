//! System events: every entity change in the outbox becomes `entity.<blueprint>.created`,
//! `.updated` or `.deleted`, and every run change `run.<action>.created` or `.updated` (core's
//! `system_event_type`), published to every project of its organization that has a matching
//! active subscription; the event's data is the change's event object, as automations read it.
//! ([`publish_system_events`] also serves the mapper's `webhook.<identifier>.failed`.)
//!
//! The router looks ahead (`outbox::LookAhead`) and passes over, without its transaction, the
//! changes no active subscription of their organization may receive, read fresh at each look:
//! a subscription receives the system events of the changes committed after it is created.
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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wharf_core::change::{Change, ChangeAction, ResourceType};
use wharf_core::project::{PublishedEvent, may_receive_system_event, subscribes_to, system_event_type};

use super::routing::store_and_route;
use crate::outbox::{Look, LookAhead, OutboxWait, backoff};
use wharf_core::time::Timestamp;
use wharf_store::{OutboxBatch, Publication, QueueTx, Store, UnreadableChange, WriteTx};

/// The router's cursor in the outbox.
const CONSUMER: &str = "project-subscriptions";
/// Changes one transaction routes at most.
const BATCH: u32 = 500;

/// Whether the router may act on a change known by its kind, action and blueprint (a head,
/// or an unreadable row): when an active subscription of its organization (the event-type
/// patterns of each, `subscriptions`) may receive its system event (core's
/// [`may_receive_system_event`]). A change of a kind or action this build does not know is
/// read, and parked.
fn routes(kind: Option<ResourceType>, action: Option<ChangeAction>, blueprint: &str, subscriptions: &[Vec<String>]) -> bool {
    let (Some(kind), Some(action)) = (kind, action) else { return true };
    subscriptions.iter().any(|events| may_receive_system_event(events, kind, action, blueprint))
}

/// Looks ahead in the outbox: a change is acted on when an active subscription of its
/// organization (read fresh for each look) receives it, or when they cannot be read.
async fn look(store: &Store, ahead: &mut LookAhead) -> Look {
    let Some(heads) = ahead.heads(store).await else { return Look::Act };
    let mut subscriptions: HashMap<&str, Option<Vec<Vec<String>>>> = HashMap::new();
    let mut acts = false;
    for head in &heads {
        if head.resource_type == Some(ResourceType::Blueprint) {
            continue; // publishes no system event
        }
        if !subscriptions.contains_key(head.org_id.as_str()) {
            subscriptions.insert(&head.org_id, store.active_subscription_events(&head.org_id).await.ok());
        }
        let of_org = subscriptions[head.org_id.as_str()].as_deref();
        if of_org.is_none_or(|of_org| routes(head.resource_type, head.action, &head.blueprint, of_org)) {
            acts = true;
            break;
        }
    }
    ahead.decide(&heads, acts)
}

/// The router worker: routes the outbox until `stop` fires (between two batches); `wake` is
/// notified when deliveries were made.
pub async fn run(store: Store, wake: Arc<Notify>, poll: Duration, stop: CancellationToken) {
    let mut idle = false;
    // Taking the cursor is a write, so the router first looks ahead on a reader and passes
    // over the changes no subscription may receive without taking it (`LookAhead`).
    let mut ahead = LookAhead::new();
    let mut failures = 0;
    // Changes committed on this node wake it at once; other nodes' at the next poll.
    let mut waiting = OutboxWait::new(&store);
    while !stop.is_cancelled() {
        if idle && !waiting.idle(backoff(poll, failures), failures > 0, &stop).await {
            continue;
        }
        if failures == 0 {
            match look(&store, &mut ahead).await {
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
    let batch = ahead.next_batch(&mut tx, CONSUMER, BATCH, now).await?;
    let read = batch.changes.len() + batch.unreadable.len();
    if read == 0 {
        tx.commit().await?;
        ahead.stored(batch.position);
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
                    action: Some(change.action),
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
            let event_type = system_event_type(change)?;
            let event = PublishedEvent::new(change.id.clone(), event_type, &change.event(), change.trigger.at);
            Some((change.trigger.org_id.clone(), event))
        })
        .collect();
    publish_system_events(tx, &events, now).await
}

/// Parks changes with their reasons, in the transaction that moves the cursor past them.
/// A change the router would not route (no active subscription of its organization receives
/// it) is passed over, not parked, as its look ahead passes over it.
async fn park(tx: &mut wharf_store::Tx, unreadable: &[UnreadableChange], now: Timestamp) -> wharf_store::Result<()> {
    if unreadable.is_empty() {
        return Ok(());
    }
    let orgs: Vec<String> = unreadable.iter().map(|c| c.org_id.clone()).collect::<HashSet<_>>().into_iter().collect();
    let subscriptions = tx.active_subscriptions(&orgs, true).await?;
    let parked: Vec<UnreadableChange> = unreadable
        .iter()
        .filter(|change| {
            let of_org: Vec<Vec<String>> =
                subscriptions.iter().filter(|s| s.org_id == change.org_id).map(|s| s.events.clone()).collect();
            routes(change.resource_type, change.action, &change.blueprint, &of_org)
        })
        .cloned()
        .collect();
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
