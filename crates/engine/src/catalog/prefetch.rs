//! A batch's catalog reads, taken in bulk before its writes (a mapping batch's, and the
//! entity committer's).
//!
//! Each entity a batch upserts costs, written one at a time, an advisory lock, a read of the
//! stored entity and a check of which related entities exist, before its write: on
//! PostgreSQL each is a round trip, and mapping there was bound by them (BENCHMARKS.md). So
//! before a batch is applied, [`prefetch`] locks every entity the batch names, reads them,
//! and checks its relations' targets, in a few statements; [`Prefetched`] then answers the
//! write rules' own locks and reads from what it holds, and passes everything else through.
//!
//! What it answers is what the database would: an entity is served from the bulk read only
//! until the batch first writes or deletes it (then it is read again, from the transaction),
//! and it was read under its lock, which every writer of an entity takes first. An existing
//! relation target is remembered once seen or written, and forgotten when deleted.
//!
//! It also holds the batch's entity writes ([`CatalogTx::put_entity_recorded`]) and writes
//! them together ([`CatalogTx::put_entities_recorded`]): on PostgreSQL a few multi-row
//! statements instead of a round trip per entity. Architecture Invariant: held writes reach
//! the transaction before anything else goes through to it (a read, a delete, another change),
//! so every read and the outbox's order are as if each write had gone at once; and the
//! batch's caller writes what is still held ([`Prefetched::flush`]) before it commits.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use wharf_core::blueprint::Blueprint;
use wharf_core::change::Change;
use wharf_core::entity::Entity;
use wharf_store::{CatalogTx, Edge, EntityPut};

use super::{BlueprintCache, entity_lock};
use crate::{Error, Result};

type Key = (String, String);

/// A transaction's catalog writes ([`CatalogTx`]) that answers an organization's entity
/// locks, reads and existence checks from a bulk read ([`prefetch`]) while they still hold.
pub(crate) struct Prefetched<'t, T> {
    inner: &'t mut T,
    org: String,
    /// Lock keys held (without the organization).
    locked: HashSet<String>,
    /// Entities as read under their locks (`None`: absent), until written or deleted.
    entities: HashMap<Key, Option<Entity>>,
    /// Entities known to exist.
    existing: HashSet<Key>,
    /// Entity writes not yet written, in order.
    held: Vec<EntityPut>,
}

impl<'t, T: CatalogTx> Prefetched<'t, T> {
    pub(crate) fn new(inner: &'t mut T, org: &str) -> Self {
        Self {
            inner,
            org: org.to_owned(),
            locked: HashSet::new(),
            entities: HashMap::new(),
            existing: HashSet::new(),
            held: Vec::new(),
        }
    }

    /// Writes the entity writes held, in one go. Before anything else goes through to the
    /// transaction, and by the batch's caller before it commits.
    pub(crate) async fn flush(&mut self) -> wharf_store::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        self.inner.put_entities_recorded(&self.org, &held).await
    }

    fn ours(&self, org: &str) -> bool {
        org == self.org
    }

    /// After a write of `(blueprint, identifier)`: it exists, and later reads go to the
    /// transaction.
    fn written(&mut self, blueprint: &str, identifier: &str) {
        let key = (blueprint.to_owned(), identifier.to_owned());
        self.entities.remove(&key);
        self.existing.insert(key);
    }
}

/// An entity a batch writes or deletes, named before the batch runs ([`prefetch`]).
pub(crate) struct Named<'a> {
    pub blueprint: &'a str,
    pub identifier: &'a str,
    /// An upsert's relations as written (their targets are checked in bulk); `None` for a
    /// delete.
    pub relations: Option<&'a serde_json::Map<String, Value>>,
}

/// Locks and reads every entity `named`, and checks which of its upserts' relation targets
/// exist, in bulk.
pub(crate) async fn prefetch<T: CatalogTx>(
    tx: &mut Prefetched<'_, T>,
    blueprints: &mut BlueprintCache,
    named: &[Named<'_>],
) -> Result<()> {
    let org = tx.org.clone();
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(named.len());
    let mut related: Vec<(String, String)> = Vec::new();
    for entity in named {
        pairs.push((entity.blueprint, entity.identifier));
        if let Some(relations) = entity.relations {
            let bp = match blueprints.get(tx, &org, entity.blueprint).await {
                Ok(bp) => bp,
                Err(Error::Domain(_)) => continue, // the write will say why
                Err(err) => return Err(err),
            };
            related.extend(relation_targets(&bp, relations));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let locks: Vec<String> = pairs.iter().map(|(bp, id)| entity_lock(bp, id)).collect();
    tx.inner.lock_many(&org, &locks).await?;
    tx.locked.extend(locks);
    tx.entities.extend(pairs.iter().map(|(bp, id)| (((*bp).to_owned(), (*id).to_owned()), None)));
    for entity in tx.inner.entities_named(&org, &pairs).await? {
        let key = (entity.blueprint.clone(), entity.identifier.clone());
        tx.existing.insert(key.clone());
        tx.entities.insert(key, Some(entity));
    }
    related.sort_unstable();
    related.dedup();
    related.retain(|key| !tx.entities.contains_key(key));
    let pairs: Vec<(&str, &str)> = related.iter().map(|(bp, id)| (bp.as_str(), id.as_str())).collect();
    let found = tx.inner.existing_pairs(&org, &pairs).await?;
    tx.existing.extend(found);
    Ok(())
}

/// The `(blueprint, identifier)` pairs that `relations` name.
fn relation_targets(bp: &Blueprint, relations: &serde_json::Map<String, Value>) -> Vec<Key> {
    let mut targets = Vec::new();
    for (name, value) in relations {
        let Some(relation) = bp.relation(name) else { continue };
        let ids: Vec<&str> = match value {
            Value::String(id) => vec![id],
            Value::Array(ids) => ids.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        targets.extend(ids.into_iter().map(|id| (relation.target.clone(), id.to_owned())));
    }
    targets
}

impl<T: CatalogTx> CatalogTx for Prefetched<'_, T> {
    async fn lock(&mut self, org: &str, key: &str) -> wharf_store::Result<()> {
        if self.ours(org) && self.locked.contains(key) {
            return Ok(());
        }
        self.inner.lock(org, key).await?;
        if self.ours(org) {
            self.locked.insert(key.to_owned());
        }
        Ok(())
    }
    async fn lock_many(&mut self, org: &str, keys: &[String]) -> wharf_store::Result<()> {
        self.inner.lock_many(org, keys).await
    }
    async fn blueprint(&mut self, org: &str, identifier: &str) -> wharf_store::Result<Option<Blueprint>> {
        self.inner.blueprint(org, identifier).await
    }
    async fn blueprints(&mut self, org: &str) -> wharf_store::Result<Vec<Blueprint>> {
        self.inner.blueprints(org).await
    }
    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> wharf_store::Result<Option<Entity>> {
        if self.ours(org)
            && let Some(known) = self.entities.get(&(blueprint.to_owned(), identifier.to_owned()))
        {
            return Ok(known.clone());
        }
        self.flush().await?;
        self.inner.entity(org, blueprint, identifier).await
    }
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> wharf_store::Result<Vec<Entity>> {
        self.flush().await?;
        self.inner.entities_named(org, pairs).await
    }
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> wharf_store::Result<HashSet<Key>> {
        if !self.ours(org) {
            self.flush().await?;
            return self.inner.existing_pairs(org, pairs).await;
        }
        let mut found = HashSet::new();
        let mut unknown = Vec::new();
        for &(blueprint, identifier) in pairs {
            let key = (blueprint.to_owned(), identifier.to_owned());
            match self.entities.get(&key) {
                Some(known) => {
                    if known.is_some() {
                        found.insert(key);
                    }
                }
                None if self.existing.contains(&key) => {
                    found.insert(key);
                }
                None => unknown.push((blueprint, identifier)),
            }
        }
        if !unknown.is_empty() {
            self.flush().await?;
            let seen = self.inner.existing_pairs(org, &unknown).await?;
            self.existing.extend(seen.iter().cloned());
            found.extend(seen);
        }
        Ok(found)
    }
    async fn put_entity(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
    ) -> wharf_store::Result<()> {
        self.flush().await?;
        self.inner.put_entity(org, blueprint, entity, previous).await?;
        if self.ours(org) {
            self.written(&entity.blueprint, &entity.identifier);
        }
        Ok(())
    }
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> wharf_store::Result<()> {
        if !self.ours(org) {
            self.flush().await?;
            return self.inner.put_entity_recorded(org, blueprint, entity, previous, change).await;
        }
        self.held.push(EntityPut::new(blueprint, entity.clone(), previous, change.clone()));
        self.written(&entity.blueprint, &entity.identifier);
        Ok(())
    }
    async fn put_entities_recorded(&mut self, org: &str, puts: &[EntityPut]) -> wharf_store::Result<()> {
        self.flush().await?;
        self.inner.put_entities_recorded(org, puts).await?;
        if self.ours(org) {
            for put in puts {
                self.written(&put.entity.blueprint, &put.entity.identifier);
            }
        }
        Ok(())
    }
    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> wharf_store::Result<()> {
        self.flush().await?;
        self.inner.delete_entity(org, blueprint, identifier).await?;
        if self.ours(org) {
            let key = (blueprint.to_owned(), identifier.to_owned());
            self.existing.remove(&key);
            self.entities.remove(&key);
        }
        Ok(())
    }
    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> wharf_store::Result<Vec<Edge>> {
        self.flush().await?;
        self.inner.referrers(org, blueprint, identifier).await
    }
    async fn record_change(&mut self, change: &mut Change) -> wharf_store::Result<i64> {
        self.flush().await?;
        self.inner.record_change(change).await
    }
    async fn record_changes(&mut self, changes: &[Change]) -> wharf_store::Result<()> {
        self.flush().await?;
        self.inner.record_changes(changes).await
    }
}
