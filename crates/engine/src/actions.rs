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
use wharf_core::Error as DomainError;
use wharf_core::action::{Action, ActionDef, ActionTrigger, check_programs};
use wharf_core::blueprint::Audited;
use wharf_core::change::Trigger;
use wharf_core::tenancy::{Capped, check_room};
use wharf_store::{CatalogTx, Store, Tx};

use crate::{Error, Result};

/// Actions and automations one organization may have (SPEC §12).
pub const ACTIONS_PER_ORG: usize = 1_000;

/// Which actions a list shows (Port's query parameters; an empty list filters nothing, a
/// filter only about automations or only about self-service actions leaves the other kind
/// out).
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    /// `action_identifier`: only these actions.
    pub identifiers: Vec<String>,
    /// `blueprint_identifier`: only the actions of (or the automations listening to) these
    /// blueprints.
    pub blueprints: Vec<String>,
    /// `operation`: only self-service actions of these operations (`CREATE`, `DAY-2`, `DELETE`).
    pub operations: Vec<String>,
    /// `published`: self-service actions, and the automations whose `publish` is this.
    pub published: Option<bool>,
    /// `trigger_type`: `self-service` or `automation`.
    pub trigger_type: Option<String>,
    /// `trigger_event`: only automations on these event types.
    pub events: Vec<String>,
    /// `trigger_event_action_identifier`: only automations on runs of these actions.
    pub event_actions: Vec<String>,
}

impl ActionFilter {
    fn admits(&self, def: &ActionDef) -> bool {
        let any = |list: &[String], value: Option<&str>| list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v));
        let (operation, event, event_action, published) = match &def.trigger {
            ActionTrigger::SelfService { operation, .. } => (Some(operation.name()), None, None, true),
            ActionTrigger::Automation { event, .. } => (None, Some(event.kind.name()), event.action.as_deref(), def.publish),
        };
        any(&self.identifiers, Some(def.identifier.as_str()))
            && any(&self.blueprints, def.trigger.blueprint())
            && any(&self.operations, operation)
            && self.published.is_none_or(|p| !matches!(def.trigger, ActionTrigger::Automation { .. }) || p == published)
            && self.trigger_type.as_deref().is_none_or(|t| def.trigger.type_name() == t)
            && any(&self.events, event)
            && any(&self.event_actions, event_action)
    }
}

/// The actions service.
#[derive(Clone)]
pub struct Actions {
    store: Store,
    actions_per_org: usize,
}

fn action_not_found(identifier: &str) -> Error {
    DomainError::not_found("action_not_found", format!("action `{identifier}` was not found")).into()
}

impl Actions {
    pub fn new(store: Store) -> Self {
        Self { store, actions_per_org: ACTIONS_PER_ORG }
    }

    /// Changes the per-organization cap (tests and operators).
    pub fn with_actions_per_org(mut self, limit: usize) -> Self {
        self.actions_per_org = limit;
        self
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
        let def = ActionDef::parse(doc, None)?;
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        // Invariant: creates of one organization take turns, so two cannot both pass the count.
        tx.lock(org, "actions").await?;
        check_room(tx.count_actions(org).await?, self.actions_per_org, Capped::Actions)?;
        tx.lock(org, &format!("action/{}", def.identifier)).await?;
        if tx.action(org, &def.identifier).await?.is_some() {
            return Err(DomainError::conflict("action_exists", format!("action `{}` already exists", def.identifier)).into());
        }
        let action = Action { def: checked(&mut tx, org, def).await?, audited: Audited::new(&trigger.by, trigger.at) };
        tx.put_action(org, &action).await?;
        tx.commit().await?;
        Ok(action.to_json())
    }

    /// `PUT /v1/actions/{identifier}`: the document replaces the action.
    pub async fn replace(&self, trigger: &Trigger, identifier: &str, doc: Value) -> Result<Value> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("action/{identifier}")).await?;
        let current = tx.action(org, identifier).await?.ok_or_else(|| action_not_found(identifier))?;
        let def = ActionDef::parse(doc, Some(identifier))?;
        let action = Action { def: checked(&mut tx, org, def).await?, audited: current.audited.touched(&trigger.by, trigger.at) };
        tx.put_action(org, &action).await?;
        tx.commit().await?;
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
        Ok(())
    }
}

/// Checks what needs the store (every blueprint the action names exists; a timer event's
/// property is a `timer` property of its blueprint) and compiles every program.
async fn checked(tx: &mut Tx, org: &str, def: ActionDef) -> Result<ActionDef> {
    for (path, name) in &def.blueprint_references {
        if tx.blueprint(org, name).await?.is_none() {
            return Err(DomainError::invalid(
                "invalid_action",
                format!("`{path}` is `{name}`, which is not an existing blueprint"),
            )
            .into());
        }
    }
    if let Some((blueprint, property)) = &def.timer_property {
        let found = tx.blueprint(org, blueprint).await?;
        let format = found.as_ref().and_then(|b| b.property(property)).map(|p| p.format.as_deref());
        match format {
            Some(Some("timer")) => {}
            Some(_) => {
                return Err(DomainError::invalid(
                    "invalid_action",
                    format!(
                        "`trigger.event.propertyIdentifier` is `{property}`, which is not a `timer` property of `{blueprint}` (`format: \"timer\"`)"
                    ),
                )
                .into());
            }
            None => {
                return Err(DomainError::invalid(
                    "invalid_action",
                    format!("`trigger.event.propertyIdentifier` is `{property}`, which is not a property of `{blueprint}`"),
                )
                .into());
            }
        }
    }
    crate::jq_pool::run(move || check_programs(&def).map(|()| def)).await?.map_err(Error::from)
}
