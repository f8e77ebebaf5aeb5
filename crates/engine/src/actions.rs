//! Actions and automations (`/v1/actions`): one resource, Port's document. A save reads and
//! checks the document (core), checks what needs the store (every blueprint it names exists;
//! a timer automation's property has `format: "timer"`), compiles every template and jq
//! expression on a jq thread, and stores it. Creates of one organization take turns under a
//! lock, so the per-organization cap (SPEC §12: 1,000) holds.
//!
//! Changes to actions are not recorded in the change outbox: like ingestion webhooks and
//! subscriptions, an action is configuration, and the outbox (and the audit log read from it)
//! holds catalog changes only.

use serde_json::Value;
use std::collections::HashMap;
use wharf_core::Error as DomainError;

use wharf_core::action::{Action, ActionDef, ActionFilter, check_programs};
use wharf_core::blueprint::Audited;
use wharf_core::change::Trigger;
use wharf_core::tenancy::{Capped, check_room};
use wharf_store::{CatalogTx, Store, Tx};

use crate::org_cache::OrgCache;
use crate::{Error, Result};

/// Actions and automations one organization may have (SPEC §12).
const ACTIONS_PER_ORG: usize = 1_000;

/// The actions service.
#[derive(Clone)]
pub struct Actions {
    store: Store,
    /// Each organization's actions, read for a moment by runs and automations; every save
    /// here forgets its organization's.
    cache: OrgCache<Vec<Action>>,
}

fn action_not_found(identifier: &str) -> Error {
    DomainError::not_found("action_not_found", format!("action `{identifier}` was not found")).into()
}

impl Actions {
    pub fn new(store: Store, cache: OrgCache<Vec<Action>>) -> Self {
        Self { store, cache }
    }

    /// `GET /v1/actions`: the organization's actions, by identifier.
    pub async fn list(&self, org: &str, filter: &ActionFilter) -> Result<Vec<Value>> {
        let actions = self.store.actions(org).await?;
        Ok(actions.iter().filter(|a| filter.admits(&a.def)).map(Action::to_json).collect())
    }

    /// `GET /v1/actions/{identifier}`.
    pub async fn get(&self, org: &str, identifier: &str) -> Result<Value> {
        Ok(self.find(org, identifier).await?.to_json())
    }

    /// The stored action (what a run reads).
    pub async fn find(&self, org: &str, identifier: &str) -> Result<Action> {
        self.store.action(org, identifier).await?.ok_or_else(|| action_not_found(identifier))
    }

    /// `POST /v1/actions`.
    pub async fn create(&self, trigger: &Trigger, doc: Value) -> Result<Value> {
        let def = compiled(ActionDef::parse(doc, None)?).await?;
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        // Invariant: creates of one organization take turns, so two cannot both pass the count.
        tx.lock(org, "actions").await?;
        check_room(tx.count_actions(org).await?, ACTIONS_PER_ORG, Capped::Actions)?;
        tx.lock(org, &format!("action/{}", def.identifier)).await?;
        if tx.action(org, &def.identifier).await?.is_some() {
            return Err(DomainError::conflict("action_exists", format!("action `{}` already exists", def.identifier)).into());
        }
        check_references(&mut tx, org, &def).await?;
        let action = Action { def, audited: Audited::new(&trigger.by, trigger.at) };
        tx.put_action(org, &action).await?;
        tx.commit().await?;
        self.cache.forget(org);
        Ok(action.to_json())
    }

    /// `PUT /v1/actions/{identifier}`: the document replaces the action.
    pub async fn replace(&self, trigger: &Trigger, identifier: &str, doc: Value) -> Result<Value> {
        let def = compiled(ActionDef::parse(doc, Some(identifier))?).await?;
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("action/{identifier}")).await?;
        let current = tx.action(org, identifier).await?.ok_or_else(|| action_not_found(identifier))?;
        check_references(&mut tx, org, &def).await?;
        let action = Action { def, audited: current.audited.touched(&trigger.by, trigger.at) };
        tx.put_action(org, &action).await?;
        tx.commit().await?;
        self.cache.forget(org);
        Ok(action.to_json())
    }

    /// `DELETE /v1/actions/{identifier}`.
    pub async fn delete(&self, trigger: &Trigger, identifier: &str) -> Result<()> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("action/{identifier}")).await?;
        if !tx.delete_action(org, identifier).await? {
            return Err(action_not_found(identifier));
        }
        tx.commit().await?;
        self.cache.forget(org);
        Ok(())
    }
}

/// Compiles every program of `def` on a jq thread, before any transaction: a save holds no
/// write turn (SQLite's is the whole node's) while jq compiles.
async fn compiled(def: ActionDef) -> Result<ActionDef> {
    crate::jq_pool::run(move || check_programs(&def).map(|()| def)).await?.map_err(Error::from)
}

/// Looks up, in the save's transaction, each blueprint the action names, once, for core's
/// [`ActionDef::check_references`].
async fn check_references(tx: &mut Tx, org: &str, def: &ActionDef) -> Result<()> {
    let mut found = HashMap::new();
    for name in def.referenced_blueprints() {
        if let Some(blueprint) = tx.blueprint(org, name).await? {
            found.insert(name, blueprint);
        }
    }
    Ok(def.check_references(|name| found.get(name))?)
}
