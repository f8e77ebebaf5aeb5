//! Publishing a batch in one transaction: the finished attempts of earlier deliveries are
//! recorded, the new events stored, the engine asked which deliveries they make, and those
//! inserted. On PostgreSQL through [`Tx`]'s statements; on SQLite as one job on the writer
//! thread ([`WriterTx`]), with one prepared statement per kind of row.

use std::sync::{Arc, LazyLock};

use rusqlite::params;
use wharf_core::delivery::{AttemptBatch, AttemptRecord, TargetUpdate};
use wharf_core::time::Timestamp;

use crate::deliveries::{ActiveSubscription, Lease, Publication};
use crate::write_tx::{WriteTx, WriterTx, ready};
use crate::writer::numbered;
use crate::{Result, Store};

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
        if let Some(writer) = self.sqlite_writer() {
            return writer
                .transaction(move |tx| {
                    record_attempts_sqlite(tx, &batch.attempts.records, &batch.attempts.targets, now)?;
                    ready(publish_in(&mut WriterTx { tx }, &batch, now, route))?
                })
                .await;
        }
        let mut tx = self.begin().await?;
        if !batch.attempts.is_empty() {
            tx.record_attempts(&batch.attempts.records, &batch.attempts.targets, now).await?;
        }
        let published = publish_in(&mut tx, &batch, now, route).await?;
        tx.commit().await?;
        Ok(published)
    }

    /// Records attempts in one transaction (see [`crate::Tx::record_attempts`]).
    pub async fn record_attempts(&self, attempts: Arc<AttemptBatch>, now: Timestamp) -> Result<()> {
        if let Some(writer) = self.sqlite_writer() {
            return writer.transaction(move |tx| record_attempts_sqlite(tx, &attempts.records, &attempts.targets, now)).await;
        }
        let mut tx = self.begin().await?;
        tx.record_attempts(&attempts.records, &attempts.targets, now).await?;
        tx.commit().await
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
    tx: &mut impl WriteTx,
    batch: &PublishBatch,
    now: Timestamp,
    route: impl FnOnce(&[ActiveSubscription], &[Option<i64>]) -> Routing<R>,
) -> Result<PublishedBatch<R>> {
    let projects = distinct_projects(&batch.publications);
    let subscriptions = tx.active_subscriptions(&projects, false).await?;
    let seqs = tx.insert_events(&batch.publications).await?;
    let Routing { mut targets, lease, extra } = route(&subscriptions, &seqs);
    let pairs = pairs(&subscriptions, &seqs, &mut targets);
    let lease_ref = lease.as_ref().map(|(token, until)| Lease { token, until: *until });
    let inserted = tx.insert_deliveries(&pairs, true, now, lease_ref).await?;
    Ok(PublishedBatch { subscriptions, seqs, targets, lease, inserted, extra })
}

/// [`crate::Tx::record_attempts`] on the writer thread: the same statements, one row each.
pub(crate) fn record_attempts_sqlite(
    tx: &rusqlite::Transaction<'_>,
    records: &[AttemptRecord],
    targets: &[TargetUpdate],
    now: Timestamp,
) -> Result<()> {
    if records.is_empty() && targets.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO delivery_attempts (id, delivery_seq, attempted_at, duration_ms, url, outcome, status_code, \
         response_headers, response_body, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5, last_status = ?6, last_error = ?7, \
         lease_token = NULL, updated_at = ?8 WHERE seq = ?1 AND lease_token = ?2",
    )?;
    for r in records {
        insert.execute(params![
            r.id,
            r.delivery_seq,
            r.attempted_at.millis(),
            r.duration_ms,
            r.url,
            r.outcome,
            r.status_code,
            r.response_headers,
            r.response_body,
            r.error,
        ])?;
        update.execute(params![
            r.delivery_seq,
            r.lease_token,
            r.status.as_str(),
            r.attempts,
            r.next_attempt_at.millis(),
            r.status_code,
            r.last_error(),
            now.millis(),
        ])?;
    }
    static TARGET_UPDATES: LazyLock<[String; 3]> = LazyLock::new(|| crate::deliveries::TARGET_UPDATES.map(numbered));
    let [succeeded, failed, disable] = &*TARGET_UPDATES;
    for target in targets {
        match target {
            TargetUpdate::Succeeded(id) => tx.prepare_cached(succeeded)?.execute(params![id])?,
            TargetUpdate::Failed(id, at) => tx.prepare_cached(failed)?.execute(params![at.millis(), id])?,
            TargetUpdate::Disable(id, reason) => tx.prepare_cached(disable)?.execute(params![reason, now.millis(), id])?,
        };
    }
    Ok(())
}
