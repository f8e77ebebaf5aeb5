//! Routing: which deliveries a batch of published events makes. One function serves the
//! publisher (events from `POST …/events`) and the router (system events), so both apply the
//! core's rule (`subscribes_to`) the same way.

use wharf_core::project::subscribes_to;
use wharf_store::{ActiveSubscription, Publication, WriteTx};

/// What publishing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Stored, with this many deliveries (one per matching active subscription).
    Stored { deliveries: usize },
    /// The project already has an event with this id: nothing was written.
    Duplicate,
}

/// A batch routed: each publication's outcome, and the deliveries to insert.
pub(crate) struct Routed {
    pub(crate) outcomes: Vec<Published>,
    /// `(subscription id, event seq)` of each delivery.
    pub(crate) pairs: Vec<(String, i64)>,
    /// `(subscription index, publication index)` of each delivery, in the same order.
    pub(crate) targets: Vec<(usize, usize)>,
}

/// Stores the events (in `tx`) and routes them ([`route`]).
pub(crate) async fn store_and_route(
    tx: &mut impl WriteTx,
    publications: &[Publication],
    subscriptions: &[ActiveSubscription],
) -> wharf_store::Result<Routed> {
    let seqs = tx.insert_published_events(publications).await?;
    Ok(route(publications, &seqs, subscriptions))
}

/// Matches each stored event (`seqs[i]` is publication `i`'s, `None` for a duplicate id,
/// which routes nowhere) with the active `subscriptions` of its project.
pub(crate) fn route(publications: &[Publication], seqs: &[Option<i64>], subscriptions: &[ActiveSubscription]) -> Routed {
    let mut routed = Routed { outcomes: Vec::with_capacity(publications.len()), pairs: Vec::new(), targets: Vec::new() };
    for (index, (publication, seq)) in publications.iter().zip(seqs).enumerate() {
        let Some(seq) = *seq else {
            routed.outcomes.push(Published::Duplicate);
            continue;
        };
        let before = routed.pairs.len();
        for (s, subscription) in subscriptions.iter().enumerate() {
            if subscription.project_id == publication.project_id
                && subscribes_to(&subscription.events, &publication.event.event_type)
            {
                routed.targets.push((s, index));
                routed.pairs.push((subscription.id.clone(), seq));
            }
        }
        routed.outcomes.push(Published::Stored { deliveries: routed.pairs.len() - before });
    }
    routed
}
