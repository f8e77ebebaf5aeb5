//! [`WriteTx`]: the writes of a mapping batch (entities with their relations and changes,
//! the events' results, the system events they publish), on either kind of transaction.
//!
//! The engine's write rules (`write_entity_in`, `delete_entity_in`, publishing system events)
//! are written once, generic over this trait, and run in one of two transactions:
//! - a sqlx [`Tx`]: PostgreSQL, and SQLite's writes outside the hot paths;
//! - a [`WriterTx`] on SQLite's writer thread ([`crate::writer`]): a whole mapping batch is
//!   one job there, with no thread hand-off per statement, so it holds SQLite's single write
//!   turn for milliseconds instead of tens of them and the events being accepted do not
//!   queue behind it.
//!
//! The methods are `async` so that one generic function serves both. A [`WriterTx`]'s never
//! wait: each runs its statement on the calling thread and returns, so a future built only
//! on them completes on its first poll ([`ready`]).

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wharf_core::blueprint::Blueprint;
use wharf_core::change::Change;
use wharf_core::entity::Entity;
use wharf_core::time::Timestamp;

use crate::{ActiveSubscription, Edge, Error, FinishedEvent, Lease, Publication, Result, Tx};

/// A write transaction, on sqlx ([`Tx`]) or on SQLite's writer thread ([`WriterTx`]). Every
/// method has the meaning of the [`Tx`] method of the same name.
// Generic callers never need these futures to be `Send`: a `Tx`'s are (its concrete future
// types are known wherever it is used), a `WriterTx`'s stay on the writer thread.
#[allow(async_fn_in_trait)]
pub trait WriteTx {
    async fn lock(&mut self, org: &str, key: &str) -> Result<()>;
    async fn lock_many(&mut self, org: &str, keys: &[String]) -> Result<()>;
    async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>>;
    async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>>;
    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>>;
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>>;
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<HashSet<(String, String)>>;
    async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity, previous: Option<&Entity>) -> Result<()>;
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> Result<()>;
    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()>;
    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>>;
    async fn record_change(&mut self, change: &mut Change) -> Result<i64>;
    async fn finish_events(&mut self, events: &[FinishedEvent], at: Timestamp) -> Result<u64>;
    async fn active_subscriptions(&mut self, ids: &[String], by_org: bool) -> Result<Vec<ActiveSubscription>>;
    async fn insert_events(&mut self, publications: &[Publication]) -> Result<Vec<Option<i64>>>;
    async fn insert_deliveries(
        &mut self,
        pairs: &[(String, i64)],
        retries: bool,
        now: Timestamp,
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<(String, i64)>>;
}

/// A transaction on SQLite's writer thread (see [`crate::Store::on_writer_thread`]). Its
/// statements are prepared once per connection and run where they are called.
pub struct WriterTx<'c> {
    pub(crate) tx: &'c rusqlite::Transaction<'c>,
}

/// How a transaction on the writer thread ends.
#[derive(Debug)]
pub enum End<T> {
    /// Keep what was written.
    Commit(T),
    /// Undo it (the work found that it must not count, e.g. another worker got there first).
    Rollback(T),
}

/// The output of a future that never waits, such as one built on a [`WriterTx`] alone: it is
/// polled once. One that does wait (it reached for something outside the writer thread) is
/// an error, not a hang.
pub fn ready<F: Future>(future: F) -> Result<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => Err(Error::Writer("a transaction on the SQLite writer thread waited for something outside it".into())),
    }
}

impl WriteTx for Tx {
    async fn lock(&mut self, org: &str, key: &str) -> Result<()> {
        Tx::lock(self, org, key).await
    }
    async fn lock_many(&mut self, org: &str, keys: &[String]) -> Result<()> {
        Tx::lock_many(self, org, keys).await
    }
    async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>> {
        Tx::blueprint(self, org, identifier).await
    }
    async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>> {
        Tx::blueprints(self, org).await
    }
    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>> {
        Tx::entity(self, org, blueprint, identifier).await
    }
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>> {
        Tx::entities_named(self, org, pairs).await
    }
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<HashSet<(String, String)>> {
        Tx::existing_pairs(self, org, pairs).await
    }
    async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity, previous: Option<&Entity>) -> Result<()> {
        Tx::put_entity(self, org, blueprint, entity, previous).await
    }
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> Result<()> {
        Tx::put_entity_recorded(self, org, blueprint, entity, previous, change).await
    }
    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        Tx::delete_entity(self, org, blueprint, identifier).await
    }
    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>> {
        Tx::referrers(self, org, blueprint, identifier).await
    }
    async fn record_change(&mut self, change: &mut Change) -> Result<i64> {
        Tx::record_change(self, change).await
    }
    async fn finish_events(&mut self, events: &[FinishedEvent], at: Timestamp) -> Result<u64> {
        Tx::finish_events(self, events, at).await
    }
    async fn active_subscriptions(&mut self, ids: &[String], by_org: bool) -> Result<Vec<ActiveSubscription>> {
        Tx::active_subscriptions(self, ids, by_org).await
    }
    async fn insert_events(&mut self, publications: &[Publication]) -> Result<Vec<Option<i64>>> {
        Tx::insert_events(self, publications).await
    }
    async fn insert_deliveries(
        &mut self,
        pairs: &[(String, i64)],
        retries: bool,
        now: Timestamp,
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<(String, i64)>> {
        Tx::insert_deliveries(self, pairs, retries, now, lease).await
    }
}

/// Each method runs its statements at once (see the module's documentation); the SQL is in
/// the module of its table, beside the sqlx version.
impl WriteTx for WriterTx<'_> {
    async fn lock(&mut self, _org: &str, _key: &str) -> Result<()> {
        Ok(()) // one writer: nothing else can write meanwhile
    }
    async fn lock_many(&mut self, _org: &str, _keys: &[String]) -> Result<()> {
        Ok(())
    }
    async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>> {
        WriterTx::blueprint(self, org, identifier)
    }
    async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>> {
        WriterTx::blueprints(self, org)
    }
    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>> {
        WriterTx::entity(self, org, blueprint, identifier)
    }
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>> {
        WriterTx::entities_named(self, org, pairs)
    }
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<HashSet<(String, String)>> {
        WriterTx::existing_pairs(self, org, pairs)
    }
    async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity, previous: Option<&Entity>) -> Result<()> {
        WriterTx::put_entity(self, org, blueprint, entity, previous)
    }
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> Result<()> {
        WriterTx::put_entity(self, org, blueprint, entity, previous)?;
        WriterTx::record_change(self, change)?;
        Ok(())
    }
    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        WriterTx::delete_entity(self, org, blueprint, identifier)
    }
    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>> {
        WriterTx::referrers(self, org, blueprint, identifier)
    }
    async fn record_change(&mut self, change: &mut Change) -> Result<i64> {
        WriterTx::record_change(self, change)
    }
    async fn finish_events(&mut self, events: &[FinishedEvent], at: Timestamp) -> Result<u64> {
        WriterTx::finish_events(self, events, at)
    }
    async fn active_subscriptions(&mut self, ids: &[String], by_org: bool) -> Result<Vec<ActiveSubscription>> {
        WriterTx::active_subscriptions(self, ids, by_org)
    }
    async fn insert_events(&mut self, publications: &[Publication]) -> Result<Vec<Option<i64>>> {
        WriterTx::insert_events(self, publications)
    }
    async fn insert_deliveries(
        &mut self,
        pairs: &[(String, i64)],
        retries: bool,
        now: Timestamp,
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<(String, i64)>> {
        WriterTx::insert_deliveries(self, pairs, retries, now, lease)
    }
}
