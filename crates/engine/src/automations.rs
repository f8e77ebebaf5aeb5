//! The automation worker: reads the change outbox past its own cursor, as the subscriptions
//! router does, and starts a run of every published automation that listens to a change and
//! whose condition holds (reference §3.5); and fires the timers automations wait on
//! (`TIMER_PROPERTY_EXPIRED`).
//!
//! Architecture Invariant: the runs a batch of changes starts are written in the transaction
//! that moves the cursor past the batch, and a timer's runs in the one that deletes the
//! timer. So across crashes, restarts and nodes (the cursor row is locked for the
//! transaction), each change triggers each matching automation exactly once, and each timer
//! fires once. `tests/suite/automation_crash.rs` kills the
//! binary while automations fire and counts.
//!
//! Chains: a run started by an automation is one deeper than the run that caused its change
//! (an entity change made by an UPSERT_ENTITY run, or a run change), or 1. Past
//! [`MAX_CHAIN_DEPTH`] no run starts; the reason is logged, counted, and written to the log of
//! the run that would have triggered it, where the user sees it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wharf_core::action::{Action, ActionTrigger};
use wharf_core::automation::{
    condition_holds, event_of, fires_on_timer, listens, may_act_on, timer_deadlines, timer_event, timer_of,
};
use wharf_core::change::{Change, Origin, ResourceType, Trigger};
use wharf_core::run::{MAX_CHAIN_DEPTH, NewRun, Run, RunLog, RunSource};
use wharf_core::time::Timestamp;
use wharf_core::workflow::{Fired, NodeConfig, Workflow, timer_expired_event};
use wharf_jq::ProgramCache;
use wharf_store::{CatalogTx, DueTimer, RunTx, Store, Tx};

use crate::Result;
use crate::outbox::{Look, LookAhead, OutboxWait, backoff};
use crate::runs::{Prepared, Runs, change_trigger, write_new_runs};
use crate::workflows::{Firing, Workflows, start_in};

/// The worker's cursor in the outbox.
const CONSUMER: &str = "automations";
/// Changes one transaction handles at most.
const BATCH: u32 = 200;
/// Timers one transaction fires at most.
const TIMER_BATCH: u32 = 100;

/// The automation worker. Cheap to clone.
#[derive(Clone)]
pub struct Automations {
    store: Store,
    runs: Runs,
    workflows: Workflows,
    programs: Arc<ProgramCache>,
    wake: Arc<Notify>,
    poll: Duration,
}

impl Automations {
    /// `wake` is the invoker's: notified when runs were started.
    pub fn new(store: Store, runs: Runs, workflows: Workflows, wake: Arc<Notify>, poll: Duration) -> Self {
        Self { store, runs, workflows, programs: Arc::new(ProgramCache::default()), wake, poll }
    }

    /// Handles the outbox and the timers until `stop` (between two batches).
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut idle = false;
        // Taking the cursor is a write, so the worker first looks ahead on a reader and passes
        // over the changes no automation or workflow of their organization may act on
        // (`LookAhead`).
        let mut ahead = LookAhead::new();
        // Changes committed on this node wake it at once; other nodes' at the next poll.
        let mut waiting = OutboxWait::new(&self.store);
        while !stop.is_cancelled() {
            if idle && !waiting.idle(backoff(self.poll, failures), failures > 0, &stop).await {
                continue;
            }
            let timers = self.fire_timers().await;
            let look = if failures == 0 { self.look(&mut ahead).await } else { Look::Act };
            let changes = match look {
                Look::Nothing => Ok((false, 0)),
                Look::PassedOver { more } => Ok((more, 0)),
                Look::Act => self.handle_batch(&mut ahead).await.map(|(read, started)| (read >= BATCH as usize, started)),
            };
            match (changes, timers) {
                (Ok((more, started)), Ok(fired)) => {
                    failures = 0;
                    idle = !more && fired < TIMER_BATCH as usize;
                    if started > 0 || fired > 0 {
                        self.wake.notify_one();
                    }
                }
                (Err(err), _) | (_, Err(err)) => {
                    tracing::error!(error = %err, "cannot run automations; retrying");
                    failures += 1;
                    idle = true;
                }
            }
        }
    }

    /// Looks ahead in the outbox: a change is acted on when an automation or a workflow of its
    /// organization may act on it (read fresh, as in a batch), or when they cannot be read.
    async fn look(&self, ahead: &mut LookAhead) -> Look {
        let Some(heads) = ahead.heads(&self.store).await else { return Look::Act };
        let mut listeners: HashMap<&str, Option<Listeners>> = HashMap::new();
        let mut acts = false;
        for head in &heads {
            if !listeners.contains_key(head.org_id.as_str()) {
                listeners.insert(&head.org_id, self.listeners(&head.org_id).await.ok());
            }
            if listeners[head.org_id.as_str()].as_ref().is_none_or(|found| found.may_act_on(head.resource_type, &head.blueprint))
            {
                acts = true;
                break;
            }
        }
        ahead.decide(&heads, acts)
    }

    /// Handles one batch of changes, from the look ahead's place when it is past the cursor;
    /// how many were read and how many runs started.
    async fn handle_batch(&self, ahead: &mut LookAhead) -> Result<(usize, usize)> {
        let now = crate::now();
        let mut tx = self.store.begin().await?;
        let batch = ahead.next_batch(&mut tx, CONSUMER, BATCH, now).await?;
        let read = batch.changes.len() + batch.unreadable.len();
        if read == 0 {
            tx.commit().await?;
            ahead.stored(batch.position);
            return Ok((0, 0));
        }
        // Read here, not through the runs' moment-long cache: an automation saved on another
        // node a moment ago must see the changes committed after it.
        let mut automations: HashMap<String, Arc<Listeners>> = HashMap::new();
        let mut started = 0;
        let mut jobs = Vec::new();
        let mut workflow_runs = 0;
        for change in &batch.changes {
            let org = &change.trigger.org_id;
            let listeners = match automations.get(org) {
                Some(found) => found.clone(),
                None => {
                    let found = self.listeners(org).await?;
                    automations.entry(org.clone()).or_insert(Arc::new(found)).clone()
                }
            };
            if listeners.actions.is_empty() && listeners.workflows.is_empty() {
                continue;
            }
            keep_timers(&mut tx, change, &listeners).await?;
            started += self.fire_on_change(&mut tx, change, &listeners.actions, now, &mut jobs).await?;
            workflow_runs += self.start_workflows_on_change(&mut tx, change, &listeners.workflows, now).await?;
        }
        let written = write_new_runs(&mut tx, jobs, now).await?;
        // Parked only where an automation or a workflow might have acted on it: the others
        // are passed over, as the look ahead passes over them.
        let mut parked = Vec::new();
        for unreadable in &batch.unreadable {
            let org = &unreadable.org_id;
            if !automations.contains_key(org) {
                automations.insert(org.clone(), Arc::new(self.listeners(org).await?));
            }
            if automations[org].may_act_on(unreadable.resource_type, &unreadable.blueprint) {
                tracing::error!(change = %unreadable.id, reason = %unreadable.reason, "a change cannot be read: automations skip it");
                parked.push(unreadable.clone());
            }
        }
        tx.park_changes(CONSUMER, &parked, now).await?;
        tx.set_cursor(CONSUMER, batch.position, now).await?;
        tx.commit().await?;
        ahead.stored(batch.position);
        self.runs.written(&written);
        if workflow_runs > 0 {
            self.workflows.started();
        }
        Ok((read, started + workflow_runs))
    }

    /// Prepares the runs of the automations that fire on `change`, into `jobs`; how many.
    async fn fire_on_change(
        &self,
        tx: &mut Tx,
        change: &Change,
        actions: &[Action],
        now: Timestamp,
        jobs: &mut Vec<(Trigger, Prepared)>,
    ) -> Result<usize> {
        let listening: Vec<&Action> = actions.iter().filter(|a| listens(&a.def, a.audited.updated_at, change)).collect();
        if listening.is_empty() {
            return Ok(0);
        }
        let event = event_of(change);
        let mut started = 0;
        for action in listening {
            if let Some(job) = self.fire(tx, action, change.trigger.run_id.as_deref(), &event, now).await? {
                jobs.push(job);
                started += 1;
            }
        }
        Ok(started)
    }

    /// Prepares one run of `action` for `event` if its condition holds and the chain is not too
    /// deep (the caller writes it, with the batch's others).
    async fn fire(
        &self,
        tx: &mut Tx,
        action: &Action,
        cause: Option<&str>,
        event: &Value,
        now: Timestamp,
    ) -> Result<Option<(Trigger, Prepared)>> {
        let org = event["trigger"]["by"]["orgId"].as_str().unwrap_or_default().to_owned();
        if let ActionTrigger::Automation { condition: Some(condition), .. } = &action.def.trigger {
            let (condition, programs, input) = (condition.clone(), self.programs.clone(), event.clone());
            let (holds, errors) = crate::jq_pool::run_quick(move || condition_holds(&condition, &input, &programs)).await?;
            for error in errors {
                tracing::warn!(automation = %action.def.identifier, %error, "an automation's condition failed");
            }
            if !holds {
                return Ok(None);
            }
        }
        let depth = match cause {
            None => 1,
            Some(run) => tx.run_depths(&org, &[run]).await?.first().map_or(1, |(_, depth)| depth.saturating_add(1)),
        };
        if depth > MAX_CHAIN_DEPTH {
            let message = format!(
                "automation `{}` was not triggered: its run would be {depth} automations deep, past the limit of {MAX_CHAIN_DEPTH}",
                action.def.identifier
            );
            tracing::warn!(automation = %action.def.identifier, run = ?cause, depth, "automation chain stopped");
            metrics::counter!("wharf_automation_chains_stopped_total").increment(1);
            if let Some(run) = cause {
                let log = RunLog {
                    id: wharf_ids::new_run_log_id(),
                    run_id: run.to_owned(),
                    message,
                    created_by: "wharf".to_owned(),
                    created_at: now,
                };
                tx.insert_run_log(&log).await?;
            }
            return Ok(None);
        }
        let by = event["trigger"]["by"]["userId"].as_str().unwrap_or("wharf").to_owned();
        let run = Run::new(NewRun {
            id: wharf_ids::new_run_id(),
            action: &action.def,
            blueprint: None,
            entity: None,
            properties: serde_json::Map::new(),
            raw_properties: serde_json::Map::new(),
            source: RunSource::Automation,
            by: by.clone(),
            impersonated_by: None,
            chain_depth: depth,
            at: now,
        });
        let trigger = json!({"by": {"orgId": org, "userId": by}, "origin": "AUTOMATION", "at": now});
        let prepared = self.runs.prepare(&org, action, run, trigger, Some(event.clone())).await?;
        let change_trigger = change_trigger(&org, &by, Origin::Automation, &prepared.run.id, now);
        metrics::counter!("wharf_automation_runs_total").increment(1);
        tracing::info!(automation = %action.def.identifier, run = %prepared.run.id, depth, "automation triggered");
        Ok(Some((change_trigger, prepared)))
    }

    /// The organization's automations and event-triggered workflows, read fresh (not
    /// through the runs' moment-long cache: one saved on another node a moment ago must see
    /// the changes committed after it).
    async fn listeners(&self, org: &str) -> Result<Listeners> {
        let actions = self
            .store
            .actions(org)
            .await?
            .into_iter()
            .filter(|a| matches!(a.def.trigger, ActionTrigger::Automation { .. }))
            .collect();
        let workflows = self
            .store
            .workflows(org)
            .await?
            .into_iter()
            .filter(|w| w.def.triggers().any(|node| matches!(node.config, NodeConfig::EventTrigger { .. })))
            .collect();
        Ok(Listeners { actions, workflows })
    }

    /// Starts, in `tx`, a run of each workflow whose event trigger fires on `change` and
    /// whose condition holds (core's [`WorkflowDef::fires_on_change`]); how many.
    async fn start_workflows_on_change(
        &self,
        tx: &mut Tx,
        change: &Change,
        workflows: &[Workflow],
        now: Timestamp,
    ) -> Result<usize> {
        let mut event = None;
        let mut started = 0;
        for stored in workflows {
            for fired in stored.def.fires_on_change(stored.audited.updated_at, change) {
                let event = event.get_or_insert_with(|| event_of(change));
                started += self.start_workflow(tx, stored, fired, event, now).await?;
            }
        }
        Ok(started)
    }

    /// Starts, in `tx`, a run of each workflow waiting on this timer (`TIMER_EXPIRED`).
    async fn start_workflows_on_timer(
        &self,
        tx: &mut Tx,
        timer: &DueTimer,
        workflows: &[Workflow],
        now: Timestamp,
    ) -> Result<usize> {
        let mut event = None;
        let mut started = 0;
        for stored in workflows {
            for fired in stored.def.fires_on_timer(&timer.blueprint, &timer.property) {
                if event.is_none() {
                    let Some(entity) = tx.entity(&timer.org_id, &timer.blueprint, &timer.entity).await? else { return Ok(0) };
                    event = Some(timer_expired_event(&timer.org_id, &timer.blueprint, &timer.property, &entity.to_json(), now));
                }
                let event = event.as_ref().map_or(&Value::Null, |e| e);
                started += self.start_workflow(tx, stored, fired, event, now).await?;
            }
        }
        Ok(started)
    }

    /// Starts a run of `stored` from its event trigger `node` when `condition` holds for
    /// `event` (the trigger's output).
    async fn start_workflow(
        &self,
        tx: &mut Tx,
        stored: &Workflow,
        fired: Fired<'_>,
        event: &Value,
        now: Timestamp,
    ) -> Result<usize> {
        let node = fired.node;
        if let Some(condition) = fired.condition {
            let (condition, programs, input) = (condition.clone(), self.programs.clone(), event.clone());
            let (holds, errors) = crate::jq_pool::run_quick(move || condition_holds(&condition, &input, &programs)).await?;
            for error in errors {
                tracing::warn!(workflow = %stored.def.identifier, trigger = %node.identifier, %error, "a workflow trigger's condition failed");
            }
            if !holds {
                return Ok(0);
            }
        }
        let org = event["trigger"]["by"]["orgId"].as_str().unwrap_or_default().to_owned();
        let firing = Firing { stored, trigger: node, output: event.clone(), by_user: json!({}), by: "wharf".to_owned() };
        // Started in the cursor's transaction, many per commit: the stepper is woken after it
        // (no hand-over).
        let (_, moved) = start_in(tx, &org, &firing, None, now).await?;
        drop(moved);
        Ok(1)
    }

    /// Fires the timers that have passed; how many.
    async fn fire_timers(&self) -> Result<usize> {
        let now = crate::now();
        // Taking the timers is a write: look on a reader first whether one is due.
        if self.store.next_timer().await?.is_none_or(|next| next > now) {
            return Ok(0);
        }
        let mut tx = self.store.begin().await?;
        let due = tx.due_timers(now, TIMER_BATCH).await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let mut jobs = Vec::new();
        // Each organization's actions and workflows, read once for the batch.
        let mut listeners: HashMap<String, Listeners> = HashMap::new();
        let mut workflow_runs = 0;
        for timer in &due {
            if !listeners.contains_key(&timer.org_id) {
                listeners.insert(timer.org_id.clone(), self.listeners(&timer.org_id).await?);
            }
            let of_org = &listeners[&timer.org_id];
            self.fire_timer(&mut tx, timer, &of_org.actions, now, &mut jobs).await?;
            workflow_runs += self.start_workflows_on_timer(&mut tx, timer, &of_org.workflows, now).await?;
            tx.delete_timer(timer).await?;
        }
        let written = write_new_runs(&mut tx, jobs, now).await?;
        tx.commit().await?;
        self.runs.written(&written);
        if workflow_runs > 0 {
            self.workflows.started();
        }
        Ok(due.len())
    }

    async fn fire_timer(
        &self,
        tx: &mut Tx,
        timer: &DueTimer,
        actions: &[Action],
        now: Timestamp,
        jobs: &mut Vec<(Trigger, Prepared)>,
    ) -> Result<()> {
        let listening: Vec<&Action> =
            actions.iter().filter(|a| fires_on_timer(&a.def, &timer.blueprint, &timer.property)).collect();
        if listening.is_empty() {
            return Ok(());
        }
        let Some(entity) = tx.entity(&timer.org_id, &timer.blueprint, &timer.entity).await? else { return Ok(()) };
        let event = timer_event(&timer.org_id, &timer.blueprint, &timer.property, &entity.to_json(), now);
        for action in listening {
            jobs.extend(self.fire(tx, action, None, &event, now).await?);
        }
        Ok(())
    }
}

/// What listens to an organization's changes: its automations, and its workflows with an
/// event trigger.
struct Listeners {
    actions: Vec<Action>,
    workflows: Vec<Workflow>,
}

impl Listeners {
    /// Whether any of them may act on a change of this kind and blueprint (core's
    /// [`may_act_on`]; any workflow with an event trigger may, and so may anything on a
    /// change of an unknown kind).
    fn may_act_on(&self, kind: Option<ResourceType>, blueprint: &str) -> bool {
        let Some(kind) = kind else { return true };
        !self.workflows.is_empty()
            || self
                .actions
                .iter()
                .any(|a| matches!(&a.def.trigger, ActionTrigger::Automation { event, .. } if may_act_on(event, kind, blueprint)))
    }
}

/// Remembers (or forgets) the timers `change` sets on properties automations or workflows
/// wait on.
async fn keep_timers(tx: &mut Tx, change: &Change, listeners: &Listeners) -> Result<()> {
    let mut watched: Vec<(String, String)> = listeners
        .actions
        .iter()
        .filter_map(|a| timer_of(&a.def))
        .map(|(blueprint, property)| (blueprint.to_owned(), property.to_owned()))
        .collect();
    watched.extend(listeners.workflows.iter().flat_map(|w| w.def.timers()));
    let Some(entity) = change.entity.as_deref() else { return Ok(()) };
    for (property, deadline) in timer_deadlines(change, &watched) {
        tx.set_timer(&change.trigger.org_id, &change.blueprint, entity, &property, deadline).await?;
    }
    Ok(())
}
