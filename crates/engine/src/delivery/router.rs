//! System events: every entity change in the outbox becomes `entity.<blueprint>.created`,
//! `.updated` or `.deleted`, published to every project of its organization that has a
//! matching active subscription. ([`publish_system_events`] also serves the mapper's
//! `webhook.<identifier>.failed`.)
//!
//! The router reads the outbox past its own cursor and publishes in the same transaction that
//! moves the cursor, so across crashes and restarts no change is missed or published twice
//! (the event id is the change id, the `webhook-id` receivers see).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use wharf_core::change::{Change, ChangeAction, ResourceType};
use wharf_core::project::{ProjectEvent, subscribes_to};

use super::routing::store_and_route;
use wharf_core::time::Timestamp;
use wharf_store::{Publication, Store, WriteTx};

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

/// Routes the outbox until `stop` turns true; `wake` is notified when deliveries were made.
pub async fn run(store: Store, wake: Arc<Notify>, poll: Duration, mut stop: watch::Receiver<bool>) {
    let mut idle = false;
    // On SQLite, taking the cursor takes the single writer, so an idle router first checks on
    // a reader whether a change newer than the last one seen exists (SQLite commits in `seq`
    // order, so the newest `seq` is a sound signal; on PostgreSQL a lower `seq` can commit
    // later, so there the cursor is always read).
    let peek = store.backend() == wharf_store::Backend::Sqlite;
    let mut seen = -1;
    while !*stop.borrow() {
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
            if peek {
                match store.last_change_seq().await {
                    Ok(last) if last == seen => continue,
                    Ok(last) => seen = last,
                    Err(err) => tracing::warn!(error = %err, "cannot read the outbox position"),
                }
            }
        }
        match route_batch(&store).await {
            Ok((routed, delivered)) => {
                idle = routed < BATCH as usize;
                if delivered > 0 {
                    wake.notify_one();
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot route catalog changes to subscriptions; retrying");
                idle = true;
                seen = -1; // not routed: look again next time
            }
        }
    }
}

/// Routes one batch; how many changes were read and how many deliveries were made.
async fn route_batch(store: &Store) -> wharf_store::Result<(usize, usize)> {
    let now = crate::now();
    let mut tx = store.begin().await?;
    let position = tx.lock_cursor(CONSUMER, now).await?;
    let batch = tx.changes_after(position, BATCH).await?;
    if batch.changes.is_empty() {
        tx.commit().await?;
        return Ok((0, 0));
    }
    let events: Vec<(String, ProjectEvent)> = batch
        .changes
        .iter()
        .filter_map(|change| {
            let event_type = event_type(change)?;
            let event = ProjectEvent::new(change.id.clone(), event_type, &change.event(), change.trigger.at);
            Some((change.trigger.org_id.clone(), event))
        })
        .collect();
    let delivered = publish_system_events(&mut tx, &events, now).await?;
    tx.set_cursor(CONSUMER, batch.position, now).await?;
    tx.commit().await?;
    Ok((batch.changes.len(), delivered))
}

/// Publishes system events (each with its organization) to every project of the organization
/// that has a matching active subscription, in `tx`; how many deliveries were made.
pub async fn publish_system_events(
    tx: &mut impl WriteTx,
    events: &[(String, ProjectEvent)],
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
