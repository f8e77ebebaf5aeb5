//! Group commit of the catalog API's entity writes: each `POST`/`PUT`/`PATCH …/entities`,
//! bulk write and entity delete hands its writes to a committer task and waits; the committer
//! applies every write waiting, in order, in one transaction, its entities locked and read in
//! bulk first ([`prefetch`]), as a mapping batch is. Each write is answered only after the
//! commit that holds it, so a 201 still means the entity is on disk; one commit (one sync of
//! the disk, one WAL flush) carries many requests' writes.
//!
//! Architecture Invariant: a write the catalog refuses (a domain error: the schema, a missing
//! related entity, required dependents) is answered with its error and leaves the transaction
//! as it was, since every rule is checked before a write's first statement
//! (`write_entity_in`, `delete_entity_in`); so the writes beside it commit, as they would
//! have alone. A store failure fails the transaction: each submission is then retried in a
//! transaction of its own, so that one submission's failure (a constraint, a deadlock with
//! another node's transaction) is only its own — unless the database cannot be reached, which
//! every submission is told at once. The test below writes a refused entity amid accepted
//! ones.
//!
//! Lock order: a batch takes its entities' locks organization by organization (in their
//! order), each organization's in one sorted statement, so two batches (of two nodes, or of
//! a node's committers on PostgreSQL) cannot deadlock on them.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wharf_core::change::Trigger;
use wharf_core::entity::{EntityInput, WriteMode};
use wharf_store::{End, Store, WriteJob as StoreJob, WriteTx};

use super::prefetch::{Named, Prefetched, prefetch};
use super::{BlueprintCache, EntityWrite, WriteOptions, delete_entity_in, entity_not_found, write_entity_in};
use crate::node::{Submissions, submit};
use crate::{Error, Result};

/// Submissions one commit takes at most (a bulk write is one submission of up to
/// `BULK_LIMIT` writes).
const MAX_BATCH: usize = 128;

/// Create, upsert, replace or patch one entity.
#[derive(Debug, Clone)]
pub(crate) struct WriteJob {
    pub blueprint: String,
    pub identifier: String,
    pub input: EntityInput,
    pub mode: WriteMode,
    pub options: WriteOptions,
}

impl WriteJob {
    /// Writes the entity inside `tx` (`write_entity_in`'s rules).
    pub(crate) async fn run(
        self,
        tx: &mut impl wharf_store::CatalogTx,
        blueprints: &mut BlueprintCache,
        trigger: &Trigger,
    ) -> Result<EntityWrite> {
        let Self { blueprint, identifier, input, mode, options } = self;
        write_entity_in(tx, blueprints, trigger, &blueprint, &identifier, input, mode, options).await
    }
}

/// One write of the catalog API.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // nearly every job is a write: boxing it would cost each an allocation
pub(crate) enum EntityJob {
    Write(WriteJob),
    /// Delete one entity (`delete_entity_in`'s rules).
    Delete {
        blueprint: String,
        identifier: String,
        delete_dependents: bool,
    },
}

/// What a job did.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // as `EntityJob`
pub(crate) enum Done {
    Written(EntityWrite),
    Deleted,
}

impl EntityJob {
    /// What the batch's bulk read takes for this job.
    fn named(&self) -> Named<'_> {
        match self {
            Self::Write(WriteJob { blueprint, identifier, input, .. }) => {
                Named { blueprint, identifier, relations: input.relations.as_ref() }
            }
            Self::Delete { blueprint, identifier, .. } => Named { blueprint, identifier, relations: None },
        }
    }

    async fn run(self, tx: &mut impl wharf_store::CatalogTx, blueprints: &mut BlueprintCache, trigger: &Trigger) -> Result<Done> {
        match self {
            Self::Write(write) => write.run(tx, blueprints, trigger).await.map(Done::Written),
            Self::Delete { blueprint, identifier, delete_dependents } => {
                if delete_entity_in(tx, trigger, &blueprint, &identifier, delete_dependents).await? {
                    Ok(Done::Deleted)
                } else {
                    Err(entity_not_found(&blueprint, &identifier))
                }
            }
        }
    }
}

/// The jobs of one request, in order, and what each did.
type Outcomes = Vec<Result<Done>>;

struct Submission {
    trigger: Trigger,
    jobs: Vec<EntityJob>,
    reply: oneshot::Sender<Result<Outcomes>>,
}

/// Hands entity writes to the committers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct EntitySubmitter {
    submit: mpsc::Sender<Submission>,
}

impl EntitySubmitter {
    /// Writes `jobs` in order, durably, in one transaction with other requests' writes; what
    /// each did (a refused job does not stop the others).
    pub(crate) async fn commit(&self, trigger: Trigger, jobs: Vec<EntityJob>) -> Result<Outcomes> {
        submit(&self.submit, "entity committer", |reply| Submission { trigger, jobs, reply }).await?
    }
}

/// The committer worker (one, or a few taking turns at the queue). Cheap to clone.
#[derive(Clone)]
pub struct EntityCommitter {
    store: Store,
    submissions: Submissions<Submission>,
}

pub(crate) fn channel(store: Store) -> (EntitySubmitter, EntityCommitter) {
    let (submit, submissions) = Submissions::channel(MAX_BATCH * 4);
    (EntitySubmitter { submit }, EntityCommitter { store, submissions })
}

/// A batch of entity writes as one write job. It reads only through its transaction, so on
/// SQLite it runs on the writer thread.
struct WriteEntities {
    batch: Vec<(Trigger, Vec<EntityJob>)>,
}

impl StoreJob for WriteEntities {
    type Output = Vec<Outcomes>;
    type Error = Error;

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<Vec<Outcomes>>> {
        Ok(End::Commit(write_batch(tx, self.batch).await?))
    }
}

/// Applies each submission's jobs in order, organization by organization; a job's domain
/// error is its outcome, a store error fails the batch.
async fn write_batch(tx: &mut impl WriteTx, batch: Vec<(Trigger, Vec<EntityJob>)>) -> Result<Vec<Outcomes>> {
    let mut outcomes: Vec<Outcomes> = batch.iter().map(|(_, jobs)| Vec::with_capacity(jobs.len())).collect();
    let mut by_org: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, (trigger, _)) in batch.iter().enumerate() {
        by_org.entry(trigger.org_id.clone()).or_default().push(index);
    }
    let mut batch: Vec<Option<(Trigger, Vec<EntityJob>)>> = batch.into_iter().map(Some).collect();
    for (org, members) in by_org {
        let tx = &mut Prefetched::new(tx, &org);
        let mut blueprints = BlueprintCache::default();
        let named: Vec<Named> = members
            .iter()
            .filter_map(|&index| batch[index].as_ref())
            .flat_map(|(_, jobs)| jobs.iter().map(EntityJob::named))
            .collect();
        prefetch(tx, &mut blueprints, &named).await?;
        drop(named);
        for index in members {
            let Some((trigger, jobs)) = batch[index].take() else { continue };
            for job in jobs {
                let outcome = match job.run(tx, &mut blueprints, &trigger).await {
                    Err(err @ Error::Domain(_)) => Err(err),
                    Err(err) => return Err(err),
                    Ok(done) => Ok(done),
                };
                outcomes[index].push(outcome);
            }
        }
        tx.flush().await?;
    }
    Ok(outcomes)
}

impl EntityCommitter {
    /// Commits the writes waiting, a batch per transaction, until `stop` fires and those
    /// submitted by then are committed.
    pub async fn run(self, stop: CancellationToken) {
        self.submissions.commit_batches(MAX_BATCH, &stop, |batch| self.commit(batch)).await;
    }

    async fn commit(&self, batch: Vec<Submission>) {
        // Kept for the fallback below: a failed batch consumed its inputs.
        let retry: Option<Vec<(Trigger, Vec<EntityJob>)>> =
            (batch.len() > 1).then(|| batch.iter().map(|s| (s.trigger.clone(), s.jobs.clone())).collect());
        let (jobs, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|s| ((s.trigger, s.jobs), s.reply)).unzip();
        let writes: usize = jobs.iter().map(|(_, jobs)| jobs.len()).sum();
        match self.store.write(WriteEntities { batch: jobs }).await {
            Ok(outcomes) => {
                metrics::histogram!("wharf_entity_commit_batch_size").record(writes as f64);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => match retry {
                Some(retry) if !is_unavailable(&err) => {
                    tracing::debug!(error = %err, writes = replies.len(), "an entity batch failed; writing each request alone");
                    for (reply, alone) in replies.into_iter().zip(retry) {
                        let _ = reply.send(
                            self.store
                                .write(WriteEntities { batch: vec![alone] })
                                .await
                                .map(|mut outcomes| outcomes.pop().unwrap_or_default()),
                        );
                    }
                }
                _ => {
                    let mut replies = replies.into_iter();
                    let reason = err.to_string();
                    if let Some(first) = replies.next() {
                        let _ = first.send(Err(err));
                    }
                    for reply in replies {
                        let _ = reply.send(Err(wharf_store::Error::Unavailable(reason.clone()).into()));
                    }
                }
            },
        }
    }
}

fn is_unavailable(err: &Error) -> bool {
    match err {
        Error::Store(err) => err.is_unavailable(),
        Error::Unavailable(_) => true,
        Error::Domain(_) => false,
    }
}
