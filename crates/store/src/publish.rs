//! Publishing a batch in one write job ([`crate::Store::write`]): the finished attempts of
//! earlier deliveries are recorded, the new events stored, the engine asked which deliveries
//! they make, and those inserted.

use std::sync::Arc;

use wharf_core::time::Timestamp;

use wharf_core::delivery::AttemptBatch;

use crate::deliveries::{ActiveSubscription, Lease, Publication};
use crate::write_tx::{End, QueueTx, WriteJob, WriteTx};
use crate::{Error, Result, Store};

/// What the engine decides once a batch's events are stored.
pub struct Routing<R> {
    /// `(subscription index, publication index)` of each delivery to insert.
    pub targets: Vec<(usize, usize)>,
    /// Insert them already claimed under this lease token, until this time (the node sends
    /// them at once); `None`: insert them due now.
    pub lease: Option<(String, Timestamp)>,
    /// Whatever else the engine decided (handed back with the result).
    pub extra: R,
}

/// A committed batch.
pub struct PublishedBatch<R> {
    /// The active subscriptions of the batch's projects (the indices of `targets` point here).
    pub subscriptions: Vec<ActiveSubscription>,
    /// Each publication's event `seq`, `None` for an id its project already had.
    pub seqs: Vec<Option<i64>>,
    /// The routing's targets that name a subscription and a stored event (others dropped).
    pub targets: Vec<(usize, usize)>,
    pub lease: Option<(String, Timestamp)>,
    /// Each delivery's id and `seq`, in the order of `targets`.
    pub inserted: Vec<(String, i64)>,
    pub extra: R,
}

/// A batch to publish: new events, and the finished attempts of earlier deliveries.
pub struct PublishBatch {
    pub publications: Arc<Vec<Publication>>,
    pub attempts: Arc<AttemptBatch>,
}

impl Store {
    /// Publishes `batch` in one transaction. `route` sees the active subscriptions of the
    /// batch's projects and each event's `seq` and says which deliveries to insert.
    pub async fn publish<R, F>(&self, batch: PublishBatch, now: Timestamp, route: F) -> Result<PublishedBatch<R>>
    where
        R: Send + 'static,
        F: FnOnce(&[ActiveSubscription], &[Option<i64>]) -> Routing<R> + Send + 'static,
    {
        self.write(Publish { batch, now, route, _routed: std::marker::PhantomData }).await
    }

    /// Records attempts in one transaction (see [`QueueTx::record_attempts`]).
    pub async fn record_attempts(&self, attempts: Arc<AttemptBatch>, now: Timestamp) -> Result<()> {
        self.write(RecordAttempts { attempts, now }).await
    }
}

/// [`Store::publish`] as a write job.
struct Publish<R, F> {
    batch: PublishBatch,
    now: Timestamp,
    route: F,
    _routed: std::marker::PhantomData<fn() -> R>,
}

impl<R, F> WriteJob for Publish<R, F>
where
    R: Send + 'static,
    F: FnOnce(&[ActiveSubscription], &[Option<i64>]) -> Routing<R> + Send + 'static,
{
    type Output = PublishedBatch<R>;
    type Error = Error;

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<PublishedBatch<R>>> {
        let Self { batch, now, route, .. } = self;
        // Nothing to record runs no statement.
        tx.record_attempts(&batch.attempts.records, &batch.attempts.targets, now).await?;
        Ok(End::Commit(publish_in(tx, &batch, now, route).await?))
    }
}

/// [`Store::record_attempts`] as a write job.
struct RecordAttempts {
    attempts: Arc<AttemptBatch>,
    now: Timestamp,
}

impl WriteJob for RecordAttempts {
    type Output = ();
    type Error = Error;

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<()>> {
        tx.record_attempts(&self.attempts.records, &self.attempts.targets, self.now).await?;
        Ok(End::Commit(()))
    }
}

/// The projects of a batch, each once, in a stable order.
fn distinct_projects(publications: &[Publication]) -> Vec<String> {
    let mut projects: Vec<String> = publications.iter().map(|p| p.project_id.clone()).collect();
    projects.sort_unstable();
    projects.dedup();
    projects
}

/// `(subscription id, event seq)` of each target, after dropping the targets that name no
/// subscription or no stored event (a duplicate), so that `targets` and the deliveries
/// inserted stay aligned.
fn pairs(subscriptions: &[ActiveSubscription], seqs: &[Option<i64>], targets: &mut Vec<(usize, usize)>) -> Vec<(String, i64)> {
    let pair = |&(s, p): &(usize, usize)| Some((subscriptions.get(s)?.id.clone(), seqs.get(p).copied().flatten()?));
    targets.retain(|target| pair(target).is_some());
    targets.iter().filter_map(pair).collect()
}

/// Stores the batch's events, asks `route` which deliveries they make, and inserts those.
async fn publish_in<R>(
    tx: &mut impl QueueTx,
    batch: &PublishBatch,
    now: Timestamp,
    route: impl FnOnce(&[ActiveSubscription], &[Option<i64>]) -> Routing<R>,
) -> Result<PublishedBatch<R>> {
    let projects = distinct_projects(&batch.publications);
    let subscriptions = tx.active_subscriptions(&projects, false).await?;
    let seqs = tx.insert_published_events(&batch.publications).await?;
    let Routing { mut targets, lease, extra } = route(&subscriptions, &seqs);
    let pairs = pairs(&subscriptions, &seqs, &mut targets);
    let lease_ref = lease.as_ref().map(|(token, until)| Lease { token, until: *until });
    let inserted = tx.insert_deliveries(&pairs, true, now, lease_ref).await?;
    Ok(PublishedBatch { subscriptions, seqs, targets, lease, inserted, extra })
}
