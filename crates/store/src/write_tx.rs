//! How a write runs: a [`WriteJob`], written once against the narrow write traits
//! ([`CatalogTx`], [`EventLogTx`], [`QueueTx`], [`RunTx`]; [`WriteTx`] is all four), handed to
//! [`crate::Store::write`], which alone decides where it runs:
//! - on SQLite, as one job on the writer thread ([`crate::sqlite`]): the whole write job
//!   runs there with no thread hand-off per statement, so it holds SQLite's single write turn
//!   for milliseconds instead of tens of them, and the events being accepted do not queue
//!   behind it;
//! - in a sqlx transaction ([`crate::Tx`]) on PostgreSQL, and on SQLite for a job that says it
//!   awaits reads outside its transaction ([`Reads::AlsoOutside`]: the writer thread cannot
//!   wait for the pool).
//!
//! Either way the store begins the transaction, runs the job, and commits or rolls back as
//! the job's [`End`] says (an error rolls back).
//!
//! The trait methods are `async` so that one generic job serves both transactions. On the
//! writer thread they never wait: each runs its statement on the calling thread and returns,
//! so the job's future completes on its first poll. Architecture Invariant: a job that reads
//! through anything but its transaction states [`Reads::AlsoOutside`]; one that does not and
//! still waits fails with an error on SQLite (never hangs the writer thread).

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wharf_core::blueprint::Blueprint;
use wharf_core::change::Change;
use wharf_core::entity::Entity;
use wharf_core::run::{Run, RunAttempt, RunLog};
use wharf_core::time::Timestamp;

use crate::{
    ActiveSubscription, Edge, Error, FinishedWebhookEvent, Lease, NewRunRequest, NewWebhookEvent, Publication, RequestState,
    Result, RunAttemptRecord, Stored,
};
use wharf_core::delivery::{AttemptRecord, TargetUpdate};

/// The catalog's writes (blueprints read, entities with their relation edges, and the changes
/// they record in the outbox) in a write transaction.
// Generic callers never need these futures to be `Send`: a `Tx`'s are (its concrete future
// types are known wherever it is used), a writer thread's stay on that thread.
#[allow(async_fn_in_trait)]
pub trait CatalogTx {
    /// Serializes writers of one key until the transaction ends (on PostgreSQL an advisory
    /// lock, which also covers rows that do not exist yet; on SQLite nothing: one writer).
    async fn lock(&mut self, org: &str, key: &str) -> Result<()>;
    /// [`CatalogTx::lock`] for every key, in sorted order (so two transactions locking
    /// overlapping sets cannot deadlock on them).
    async fn lock_many(&mut self, org: &str, keys: &[String]) -> Result<()>;
    async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>>;
    async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>>;
    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>>;
    /// The entities named by `(blueprint, identifier)` pairs that exist, in no particular order.
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>>;
    /// Which of `(blueprint, identifier)` exist.
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<HashSet<(String, String)>>;
    /// Inserts or replaces an entity and its relation edges. Edge targets take their
    /// blueprint from `blueprint`'s relation definitions. `previous` is the stored version
    /// (`None` for a new entity): edges are rewritten only when the relations changed.
    async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity, previous: Option<&Entity>) -> Result<()>;
    /// [`CatalogTx::put_entity`] and [`CatalogTx::record_change`] together (one statement on
    /// PostgreSQL, which saves the round trips that bound mapping throughput there).
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> Result<()>;
    /// [`CatalogTx::put_entity_recorded`] for several entities, in order: their changes take
    /// `seq`s in that order (not read back). On PostgreSQL a few multi-row statements carry
    /// them all instead of a round trip each.
    async fn put_entities_recorded(&mut self, org: &str, puts: &[EntityPut]) -> Result<()>;
    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()>;
    /// The edges that point at an entity: who refers to it, and through which relation.
    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>>;
    /// Appends a change to the outbox; sets and returns its `seq`.
    async fn record_change(&mut self, change: &mut Change) -> Result<i64>;
    /// Appends many changes to the outbox (their `seq` is not read back).
    async fn record_changes(&mut self, changes: &[Change]) -> Result<()>;
}

/// An entity's write and its change, taken to be written later with others
/// ([`CatalogTx::put_entities_recorded`]): what [`CatalogTx::put_entity_recorded`] would write now.
#[derive(Debug, Clone)]
pub struct EntityPut {
    pub entity: Entity,
    /// The relation edges to insert `(relation, target blueprint, target)`: all of the
    /// entity's, or none when its relations are those of the stored version.
    pub(crate) edges: Vec<(String, String, String)>,
    /// Whether the stored edges go first (the entity existed, with other relations).
    pub(crate) replaces_edges: bool,
    pub change: Change,
}

impl EntityPut {
    /// `entity` written over `previous` (`None`: new), its edges' targets taking their
    /// blueprint from `blueprint`'s relation definitions; `change` records it.
    pub fn new(blueprint: &Blueprint, entity: Entity, previous: Option<&Entity>, change: Change) -> Self {
        let rewrite = crate::catalog::edge_rewrite(&entity, previous);
        let edges = match rewrite {
            None => Vec::new(),
            Some(_) => crate::catalog::edges_of(blueprint, &entity)
                .into_iter()
                .map(|(name, target_blueprint, target)| (name.to_owned(), target_blueprint.to_owned(), target.to_owned()))
                .collect(),
        };
        Self { edges, replaces_edges: rewrite == Some(true), entity, change }
    }
}

/// The webhook event log's writes in a write transaction.
#[allow(async_fn_in_trait)]
pub trait EventLogTx {
    /// Stores requests, checking request identifiers (a live one already taken makes the
    /// event a [`Stored::Duplicate`]); what happened to each, in order.
    async fn store_webhook_events(&mut self, events: &[NewWebhookEvent], now: Timestamp) -> Result<Vec<Stored>>;
    /// Records the results of mapped events that are still pending; returns how many moved
    /// (fewer than given when another mapper finished some first: the caller then rolls back).
    async fn finish_webhook_events(&mut self, events: &[FinishedWebhookEvent], at: Timestamp) -> Result<u64>;
}

/// The delivery queue's writes in a write transaction.
#[allow(async_fn_in_trait)]
pub trait QueueTx {
    /// The active subscriptions of the given projects (or organizations, `by_org`).
    async fn active_subscriptions(&mut self, ids: &[String], by_org: bool) -> Result<Vec<ActiveSubscription>>;
    /// Stores published events (unique per project); each one's `seq`, `None` for an id its
    /// project already had.
    async fn insert_published_events(&mut self, publications: &[Publication]) -> Result<Vec<Option<i64>>>;
    /// Inserts deliveries of `(subscription id, event seq)`, due now or already leased; each
    /// one's id and `seq`, in order.
    async fn insert_deliveries(
        &mut self,
        pairs: &[(String, i64)],
        retries: bool,
        now: Timestamp,
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<(String, i64)>>;
    /// Records attempts, moves their deliveries on (only those whose lease is still the
    /// attempt's), and applies what they say about their targets.
    async fn record_attempts(&mut self, records: &[AttemptRecord], targets: &[TargetUpdate], now: Timestamp) -> Result<()>;
}

/// Runs' writes in a write transaction: new runs and their requests (the run committer's),
/// attempts of claimed requests and what they make of their runs (the invoker's recorder), log
/// lines and the runs they end (the log committer's).
#[allow(async_fn_in_trait)]
pub trait RunTx {
    /// Inserts runs, each with its organization.
    async fn insert_runs(&mut self, runs: &[(&str, &Run)]) -> Result<()>;
    /// Queues requests, due now (or held, each as its flag says).
    async fn insert_run_requests(&mut self, requests: &[NewRunRequest<'_>], now: Timestamp) -> Result<()>;
    /// Records attempts whose requests go on as their `status` says (none of them ends its
    /// run: those are recorded one by one with [`RunTx::record_run_attempt`]); each request
    /// moves on only while its lease token is the attempt's.
    async fn record_run_attempts(&mut self, attempts: &[RunAttemptRecord<'_>], now: Timestamp) -> Result<()>;
    /// A run, held for the rest of the transaction (other writers of it wait).
    async fn run_for_update(&mut self, org: &str, id: &str) -> Result<Option<Run>>;
    /// Writes a run's new state over the stored one.
    async fn update_run(&mut self, org: &str, run: &Run) -> Result<()>;
    /// Records an attempt of a claimed request and moves the request on (`status`, due
    /// again at `next_attempt_at` when pending), only while `token` is still its lease;
    /// whether it was (the attempt is recorded either way).
    async fn record_run_attempt(
        &mut self,
        seq: i64,
        token: &str,
        attempt: &RunAttempt,
        status: RequestState,
        next_attempt_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Appends lines to their runs' logs, in order.
    async fn insert_run_logs(&mut self, logs: &[RunLog]) -> Result<()>;
    /// Appends a line to its run's log.
    async fn insert_run_log(&mut self, log: &RunLog) -> Result<()> {
        self.insert_run_logs(std::slice::from_ref(log)).await
    }
    /// Settles the request of a run that ended: one still held or waiting for an agent is
    /// dropped (never sent), one an agent acknowledged is done.
    async fn settle_ended_run_request(&mut self, run_id: &str, now: Timestamp) -> Result<()>;
}

/// Every write a write job may make: the catalog's, the event log's, the queue's and runs'.
pub trait WriteTx: CatalogTx + EventLogTx + QueueTx + RunTx {}

impl<T: CatalogTx + EventLogTx + QueueTx + RunTx> WriteTx for T {}

/// What a write job reads besides its own transaction, which decides where it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Every read goes through the transaction it is given.
    InTransaction,
    /// It also awaits reads through the store's pool (for example mappings that search the
    /// catalog between their writes).
    AlsoOutside,
}

/// How a write job ends.
#[derive(Debug)]
pub enum End<T> {
    /// Keep what was written.
    Commit(T),
    /// Undo it (the work found that it must not count, e.g. another worker got there first).
    Rollback(T),
}

/// A write job: one transaction's writes, run by [`crate::Store::write`].
pub trait WriteJob: Send + 'static {
    type Output: Send + 'static;
    type Error: From<Error> + Send + 'static;

    /// What the job reads besides its transaction ([`Reads::InTransaction`] unless it says).
    fn reads(&self) -> Reads {
        Reads::InTransaction
    }

    /// The work, in the transaction the store chose; it says how the transaction ends.
    // The future's `Send`ness is known where a concrete job meets a concrete transaction
    // (inside `Store::write`), which is all the callers need.
    #[allow(async_fn_in_trait)]
    async fn run(self, tx: &mut impl WriteTx) -> std::result::Result<End<Self::Output>, Self::Error>;
}

/// The output of a future that never waits, such as one built on the writer thread's
/// transaction alone: it is polled once. One that does wait (it reached for something outside
/// the writer thread) is an error, not a hang.
pub(crate) fn ready<F: Future>(future: F) -> Result<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => Err(Error::Writer("a transaction on the SQLite writer thread waited for something outside it".into())),
    }
}
