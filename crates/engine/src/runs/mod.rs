//! Runs (reference §3.8): starting an action's run (inputs checked, invocation rendered,
//! everything written in one transaction with its run change), the backend's reports
//! (PATCH, logs, response, approval), and the run list.
//!
//! A WEBHOOK run's request is queued in `run_requests` in the transaction that creates the run
//! and sent by the [`Invoker`]; an UPSERT_ENTITY run writes its entity through the catalog in
//! that same transaction and ends there.
//!
//! The writes of a run and its run change take any transaction with the catalog's and runs'
//! writes (`CatalogTx + RunTx`): the run committer and the invoker's recorder run them as
//! write jobs (`Store::write`, on SQLite's writer thread), and so does the log committer
//! (`log_committer`: the backend's log lines, many in one commit); the backend's other reports
//! (which also release held requests) and the automation worker (which also moves its
//! outbox cursor and timers, and reads and renders between its writes) in a sqlx `Tx`.
//!
//! Architecture Invariant: every change of a run is written with a run change (`resourceType:
//! "run"`) in the same transaction, so automations see each exactly once; a plain log line is
//! not a change (reference §3.5: logs do not trigger `RUN_UPDATED`).

mod agent;
mod committer;
pub mod invoker;
mod log_committer;
pub(crate) mod render;
pub mod self_call;

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Notify;
use wharf_core::Error as DomainError;
use wharf_core::action::{Action, ActionDef, ActionTrigger};
use wharf_core::change::{Change, Origin, ResourceType, Trigger};
use wharf_core::crypto::MasterKey;
use wharf_core::entity::{EntityInput, WriteMode};
use wharf_core::run::{
    Decision, MAX_CHAIN_DEPTH, NewRun, Run, RunAttempt, RunFilter, RunInput, RunLog, RunLogInput, RunPatch, RunSource, RunStatus,
    context, parse_response, shown_blueprint, trigger_context,
};
use wharf_core::secret::SecretValues;
use wharf_core::time::Timestamp;
use wharf_ids::NewChange;
use wharf_jq::ProgramCache;
use wharf_store::{CatalogTx, NewRunRequest, RequestState, RunTx, Store};

use crate::catalog::{AnswerShape, BlueprintCache, WriteOptions, write_entity_in};
use crate::org_cache::OrgCache;
use crate::secrets::Secrets;
use crate::{Error, Result};
use render::Rendered;
pub(crate) use render::{SealedRequest, held_secrets};

pub use agent::AgentWaiters;
pub use committer::RunCommitter;
pub use invoker::Invoker;
pub use log_committer::LogCommitter;
pub use render::{PREVIEW_ORG_ID, PREVIEW_RUN_ID, PREVIEW_USER_ID, Preview, Previewed, preview, preview_context};
pub use self_call::SelfCalls;

fn run_not_found(id: &str) -> Error {
    DomainError::not_found("run_not_found", format!("run `{id}` was not found")).into()
}

/// Who asks: the organization, the API client, and the user a `run_as` names.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: String,
    pub client_id: String,
    pub run_as: Option<String>,
    /// The run whose call of Wharf's own API this is (`X-Wharf-Run-Id`): a run started so is
    /// one deeper in its chain.
    pub cause: Option<String>,
}

/// The runs service. Cheap to clone.
#[derive(Clone)]
pub struct Runs {
    store: Store,
    secrets: Secrets,
    master: MasterKey,
    programs: Arc<ProgramCache>,
    /// Wakes the invoker when a request is queued.
    wake: Arc<Notify>,
    /// The claims that wait for runs for agents (shared with the workflows' node runs).
    agent_waiters: Arc<agent::AgentWaiters>,
    /// Where new runs are written (group commit).
    committer: committer::RunSubmitter,
    /// Where log lines are written (group commit).
    logs: log_committer::LogSubmitter,
    /// Each organization's actions, read for a moment (shared with `Actions`, which forgets an
    /// organization's on every save).
    actions: OrgCache<Vec<Action>>,
    /// The entity a run is about, as the API answers it: with its computed values.
    answerer: crate::catalog::Answerer,
}

/// A run ready to be written: the run (its payload rendered and masked) and what it does.
pub(crate) struct Prepared {
    pub run: Run,
    pub work: Work,
}

pub(crate) enum Work {
    /// Queue this sealed request.
    Send { sealed: String, synchronized: bool },
    /// Write this entity through the catalog.
    Upsert { blueprint: String, entity: Value },
    /// Nothing to do: the run has ended `FAILURE` already (a template that did not render, a
    /// secret that did not open; its summary says which).
    Fail,
}

impl Runs {
    /// The runs service, the committer worker that writes the runs it starts and the one that
    /// writes the log lines it is sent (run each, or a few on a store with several
    /// committers); `wake` is the invoker's.
    pub fn new(
        store: Store,
        secrets: Secrets,
        actions: OrgCache<Vec<Action>>,
        master: MasterKey,
        wake: Arc<Notify>,
    ) -> (Self, RunCommitter, LogCommitter) {
        let (committer, worker) = committer::channel(store.clone(), wake.clone());
        let (logs, log_worker) = log_committer::channel(store.clone());
        let programs = Arc::new(ProgramCache::default());
        (
            Self {
                answerer: crate::catalog::Answerer::new(store.clone()),
                store,
                secrets,
                master,
                programs,
                wake,
                agent_waiters: Arc::default(),
                committer,
                logs,
                actions,
            },
            worker,
            log_worker,
        )
    }

    /// The organization's actions and automations (kept for a moment: [`OrgCache`]).
    pub(crate) async fn actions_of(&self, org: &str) -> Result<Arc<Vec<Action>>> {
        self.actions.get(org, || async { Ok(self.store.actions(org).await?) }).await
    }

    /// `POST /v1/actions/{identifier}/runs`.
    pub async fn start(&self, caller: &Caller, action: &str, body: &Value) -> Result<Value> {
        let org = &caller.org_id;
        let actions = self.actions_of(org).await?;
        let action = actions
            .iter()
            .find(|a| a.def.identifier == action)
            .ok_or_else(|| Error::from(DomainError::not_found("action_not_found", format!("action `{action}` was not found"))))?;
        let input = RunInput::parse(body)?;
        input.check_entity_rule(&action.def)?;
        let (blueprint, entity) = self.subject(org, &action.def, input.entity.as_deref()).await?;
        // Inputs may run jq (`pattern`, `jqQuery` defaults and conditions): a quick unit here,
        // or on the jq pool's stacks when it needs more.
        let (document, given, context) = (action.def.document().clone(), input.properties.clone(), json!({"entity": entity}));
        let checked =
            crate::jq_pool::run_quick(move || wharf_core::run_inputs::check_inputs(&document, &given, &context)).await??;
        check_entity_inputs(&self.store, org, &checked.entity_refs).await?;
        let (mut properties, mut raw_properties) = (checked.values, render::as_map(&input.properties));
        let encrypted = wharf_core::run_inputs::encrypted_inputs(action.def.document());
        self.encrypt_inputs(org, &encrypted, &mut [&mut properties, &mut raw_properties]).await?;
        let chain_depth = self.chain_depth(org, &action.def.identifier, caller.cause.as_deref()).await?;
        let now = crate::now();
        let run = Run::new(NewRun {
            id: wharf_ids::new_run_id(),
            action: &action.def,
            blueprint,
            entity,
            properties,
            raw_properties,
            source: RunSource::Api,
            by: caller.client_id.clone(),
            impersonated_by: caller.run_as.clone(),
            chain_depth,
            at: now,
        });
        let operation = match action.def.trigger {
            ActionTrigger::SelfService { operation, .. } => Some(operation),
            ActionTrigger::Automation { .. } => None,
        };
        let trigger = trigger_context(org, &caller.client_id, caller.run_as.as_deref(), RunSource::Api, now, operation);
        let prepared = self.prepare(org, action, run, trigger, None).await?;
        let change_trigger = change_trigger(org, &caller.client_id, Origin::Api, &prepared.run.id, now);
        let run = self.committer.commit(change_trigger, prepared).await?;
        self.written(std::slice::from_ref(&run));
        Ok(run.to_json())
    }

    /// The blueprint and entity a self-service run acts on, as the run shows them: 404 when
    /// the entity it names does not exist.
    async fn subject(&self, org: &str, def: &ActionDef, entity: Option<&str>) -> Result<(Option<Value>, Option<Value>)> {
        let Some(name) = def.trigger.blueprint() else { return Ok((None, None)) };
        let Some(blueprint) = self.store.blueprint(org, name).await? else {
            return Err(DomainError::not_found("blueprint_not_found", format!("blueprint `{name}` was not found")).into());
        };
        let shown = shown_blueprint(name, &blueprint.def.title, blueprint.def.icon.as_deref());
        let Some(id) = entity else { return Ok((Some(shown), None)) };
        let entity = self.store.entity(org, name, id).await?.ok_or_else(|| {
            Error::from(DomainError::not_found("entity_not_found", format!("entity `{id}` of blueprint `{name}` was not found")))
        })?;
        // `.entity` is the entity as the API answers it: its mirrored and calculated values
        // too, as Port's run context has them.
        let answered = self.answerer.answer(org, vec![entity], AnswerShape::default(), Some(blueprint)).await?;
        Ok((Some(shown), answered.into_iter().next()))
    }

    /// A run started by a run's call of Wharf's own API is one deeper than the caller; past
    /// [`MAX_CHAIN_DEPTH`] it is refused (422 `chain_too_deep`), so an action that starts
    /// itself through the API stops as automation chains do.
    async fn chain_depth(&self, org: &str, action: &str, cause: Option<&str>) -> Result<u32> {
        let Some(cause) = cause else { return Ok(0) };
        let Some(calling) = self.store.run(org, cause).await? else { return Ok(0) };
        let depth = calling.chain_depth.saturating_add(1);
        if depth > MAX_CHAIN_DEPTH {
            tracing::warn!(run = %cause, action, depth, "run chain stopped");
            metrics::counter!("wharf_automation_chains_stopped_total").increment(1);
            return Err(DomainError::invalid(
                "chain_too_deep",
                format!(
                    "action `{action}` was not run: run `{cause}` is {} runs deep, and a chain stops at {MAX_CHAIN_DEPTH}",
                    calling.chain_depth
                ),
            )
            .into());
        }
        Ok(depth)
    }

    /// Renders `run`'s invocation (on a jq thread) and seals what it sends.
    pub(crate) async fn prepare(
        &self,
        org: &str,
        action: &Action,
        run: Run,
        trigger: Value,
        event: Option<Value>,
    ) -> Result<Prepared> {
        let secrets = match self.secrets.open_all(org).await {
            Ok(secrets) => secrets,
            Err(err) => return Ok(failed(run, format!("the organization's secrets cannot be opened: {err}"))),
        };
        let context = context(&run, &action.def, trigger, event);
        Ok(prepare_with(&self.master, &self.programs, action.def.clone(), run, context, secrets).await)
    }

    /// `GET /v1/actions/runs/{id}`.
    pub async fn get(&self, org: &str, id: &str) -> Result<Value> {
        let run = self.store.run(org, id).await?.ok_or_else(|| run_not_found(id))?;
        let mut shown = run.to_json();
        if let Some(claim) = self.agent_claim(org, &run).await? {
            shown["agentClaim"] = claim.to_json();
        }
        Ok(shown)
    }

    /// `GET /v1/actions/runs`.
    pub async fn list(&self, org: &str, filter: &RunFilter) -> Result<Vec<Value>> {
        Ok(self.store.runs(org, filter).await?.iter().map(Run::to_json).collect())
    }

    /// `PATCH /v1/actions/runs/{id}`.
    pub async fn patch(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let patch = RunPatch::parse(body)?;
        self.update(caller, id, |run, now| run.patch(&patch, &caller.client_id, now)).await
    }

    /// `PATCH /v1/actions/runs/{id}/response`.
    pub async fn respond(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let response = parse_response(body)?;
        self.update(caller, id, |run, now| run.respond(response, &caller.client_id, now)).await
    }

    /// `PATCH /v1/actions/runs/{id}/approval`: approving releases its request.
    pub async fn decide(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let (decision, description) = Decision::parse(body)?;
        let run = self.update(caller, id, |run, now| run.decide(decision, description, &caller.client_id, now)).await?;
        self.wake.notify_one();
        self.agent_waiters.notify();
        Ok(run)
    }

    /// `POST /v1/actions/runs/{id}/logs`: written by the log committer (group commit).
    pub async fn log(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let input = RunLogInput::parse(body)?;
        let line = log_committer::Line { org: caller.org_id.clone(), by: caller.client_id.clone(), run_id: id.to_owned(), input };
        let log = self.logs.commit(line).await?;
        Ok(serde_json::to_value(&log).unwrap_or(Value::Null))
    }

    /// `GET /v1/actions/runs/{id}/logs`.
    pub async fn logs(&self, org: &str, id: &str, limit: u32, offset: u32) -> Result<Vec<RunLog>> {
        if self.store.run(org, id).await?.is_none() {
            return Err(run_not_found(id));
        }
        Ok(self.store.run_logs(org, id, limit, offset).await?)
    }

    /// The attempts of a run's request, secrets masked.
    pub async fn attempts(&self, org: &str, id: &str) -> Result<Vec<RunAttempt>> {
        if self.store.run(org, id).await?.is_none() {
            return Err(run_not_found(id));
        }
        Ok(self.store.run_attempts(org, id).await?)
    }

    /// Reads a run for update, applies `change` (core's rule), and writes it with its change.
    async fn update(
        &self,
        caller: &Caller,
        id: &str,
        change: impl FnOnce(&mut Run, Timestamp) -> std::result::Result<(), DomainError>,
    ) -> Result<Value> {
        let org = &caller.org_id;
        let now = crate::now();
        let mut tx = self.store.begin().await?;
        let mut run = tx.run_for_update(org, id).await?.ok_or_else(|| run_not_found(id))?;
        let was = run.status;
        let before = run.to_json();
        change(&mut run, now)?;
        let trigger = change_trigger(org, &caller.client_id, Origin::Api, &run.id, now);
        save_run(&mut tx, &trigger, &run, Some(before)).await?;
        if was == RunStatus::WaitingForApproval && run.status == RunStatus::InProgress {
            // Approved: its request is due now, or its entity is written now.
            match upsert_of(&run) {
                None => {
                    let due = if run.for_agent() { RequestState::Agent } else { RequestState::Pending };
                    tx.release_run_request(&run.id, due, now).await?
                }
                Some((blueprint, entity)) => {
                    let before = run.to_json();
                    let outcome = upsert(&mut tx, &trigger, &blueprint, &entity).await?;
                    run.after_upsert(outcome.as_ref().map(|_| ()).map_err(String::as_str), now);
                    save_run(&mut tx, &trigger, &run, Some(before)).await?;
                }
            }
        }
        drop_request_if_ended(&mut tx, &run, now).await?;
        tx.commit().await?;
        Ok(run.to_json())
    }
}

/// A held request of an ended run is never sent, nor one waiting for an agent; one an agent
/// acknowledged is done.
async fn drop_request_if_ended(tx: &mut impl RunTx, run: &Run, now: Timestamp) -> Result<()> {
    if run.status.has_ended() {
        tx.settle_ended_run_request(&run.id, now).await?;
    }
    Ok(())
}

fn failed(mut run: Run, summary: String) -> Prepared {
    let now = run.created_at;
    run.fail(summary, now);
    Prepared { run, work: Work::Fail }
}

/// Renders on a jq thread and seals what is sent.
pub(crate) async fn prepare_with(
    master: &MasterKey,
    programs: &Arc<ProgramCache>,
    def: ActionDef,
    run: Run,
    context: Value,
    secrets: Arc<SecretValues>,
) -> Prepared {
    let programs = programs.clone();
    let rendered = crate::jq_pool::run_quick(move || render::render(&def, &context, &secrets, &programs)).await;
    let mut run = run;
    match rendered {
        Ok(Ok(Rendered::Webhook { request, secrets, payload })) => {
            run.payload = Some(payload);
            let synchronized = request.synchronized;
            let sealed = SealedRequest::of(request, secrets).seal(master);
            Prepared { run, work: Work::Send { sealed, synchronized } }
        }
        Ok(Ok(Rendered::Upsert { blueprint, entity, payload })) => {
            run.payload = Some(payload);
            Prepared { run, work: Work::Upsert { blueprint, entity } }
        }
        Ok(Err(why)) => failed(run, format!("the invocation cannot be rendered: {why}")),
        Err(err) => failed(run, format!("the invocation cannot be rendered: {err}")),
    }
}

/// Every entity an input names exists (422 naming the input otherwise): the inputs of action
/// runs and of workflows' self-serve triggers.
pub(crate) async fn check_entity_inputs(store: &Store, org: &str, refs: &[wharf_core::run_inputs::EntityRef]) -> Result<()> {
    for reference in refs {
        if store.entity(org, &reference.blueprint, &reference.identifier).await?.is_none() {
            return Err(DomainError::invalid(
                "invalid_inputs",
                format!(
                    "inputs.{}: entity `{}` of blueprint `{}` does not exist",
                    reference.input, reference.identifier, reference.blueprint
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// The trigger of a run's changes (and of the entity writes an UPSERT_ENTITY run makes).
pub(crate) fn change_trigger(org: &str, by: &str, origin: Origin, run_id: &str, at: Timestamp) -> Trigger {
    Trigger { run_id: Some(run_id.to_owned()), origin, ..Trigger::api(org, by, at) }
}

/// Writes a run (new when `before` is `None`) and its run change.
pub(crate) async fn save_run(
    tx: &mut (impl CatalogTx + RunTx),
    trigger: &Trigger,
    run: &Run,
    before: Option<Value>,
) -> Result<()> {
    let org = &trigger.org_id;
    match before {
        None => tx.insert_runs(&[(org.as_str(), run)]).await?,
        Some(_) => tx.update_run(org, run).await?,
    }
    let mut change = Change::new(
        ResourceType::Run,
        run.blueprint_identifier().unwrap_or_default(),
        run.entity_identifier(),
        trigger,
        before,
        Some(run.to_json()),
    );
    tx.record_change(&mut change).await?;
    Ok(())
}

/// Writes new runs in `tx` as [`write_new_run`] does, those that send a request together
/// (on the sqlx path three multi-row statements for a batch, rather than three per run); the
/// runs as written, in the order given.
pub(crate) async fn write_new_runs(
    tx: &mut (impl CatalogTx + RunTx),
    jobs: Vec<(Trigger, Prepared)>,
    now: Timestamp,
) -> Result<Vec<Run>> {
    let mut written: Vec<Option<Run>> = Vec::with_capacity(jobs.len());
    let mut sends: Vec<(usize, Trigger, Run, String, bool)> = Vec::new();
    for (trigger, prepared) in jobs {
        match prepared.work {
            Work::Send { sealed, synchronized } => {
                sends.push((written.len(), trigger, prepared.run, sealed, synchronized));
                written.push(None);
            }
            _ => written.push(Some(write_new_run(tx, &trigger, prepared, now).await?)),
        }
    }
    if !sends.is_empty() {
        let runs: Vec<(&str, &Run)> = sends.iter().map(|(_, t, run, ..)| (t.org_id.as_str(), run)).collect();
        tx.insert_runs(&runs).await?;
        let changes: Vec<Change> = sends
            .iter()
            .map(|(_, trigger, run, ..)| {
                let (blueprint, entity) = (run.blueprint_identifier().unwrap_or_default(), run.entity_identifier());
                Change::new(ResourceType::Run, blueprint, entity, trigger, None, Some(run.to_json()))
            })
            .collect();
        tx.record_changes(&changes).await?;
        let requests: Vec<NewRunRequest<'_>> = sends
            .iter()
            .map(|(_, trigger, run, sealed, synchronized)| NewRunRequest {
                run_id: &run.id,
                org_id: &trigger.org_id,
                sealed,
                synchronized: *synchronized,
                held: run.status == RunStatus::WaitingForApproval,
                agent: run.for_agent(),
            })
            .collect();
        tx.insert_run_requests(&requests, now).await?;
    }
    for (at, _, run, ..) in sends {
        written[at] = Some(run);
    }
    Ok(written.into_iter().flatten().collect())
}

/// Writes a new run in `tx` with its run change, and does its work: queues its request, or
/// writes its entity and ends it. The run as written.
pub(crate) async fn write_new_run(
    tx: &mut (impl CatalogTx + RunTx),
    trigger: &Trigger,
    prepared: Prepared,
    now: Timestamp,
) -> Result<Run> {
    let Prepared { mut run, work } = prepared;
    match work {
        Work::Fail => {
            // Created and ended at once: both changes, so RUN_UPDATED listeners see the end.
            let ended = run.clone();
            run.status = RunStatus::InProgress;
            run.ended_at = None;
            run.summary = None;
            save_run(tx, trigger, &run, None).await?;
            save_run(tx, trigger, &ended, Some(run.to_json())).await?;
            return Ok(ended);
        }
        Work::Send { sealed, synchronized } => {
            let held = run.status == RunStatus::WaitingForApproval;
            save_run(tx, trigger, &run, None).await?;
            let agent = run.for_agent();
            let request = NewRunRequest { run_id: &run.id, org_id: &trigger.org_id, sealed: &sealed, synchronized, held, agent };
            tx.insert_run_requests(&[request], now).await?;
        }
        Work::Upsert { blueprint, entity } => {
            save_run(tx, trigger, &run, None).await?;
            if run.status == RunStatus::WaitingForApproval {
                // Written when approved: kept as the payload, not yet applied.
                return Ok(run);
            }
            let before = run.to_json();
            let outcome = upsert(tx, trigger, &blueprint, &entity).await?;
            run.after_upsert(outcome.as_ref().map(|_| ()).map_err(String::as_str), now);
            save_run(tx, trigger, &run, Some(before)).await?;
        }
    }
    Ok(run)
}

/// An UPSERT_ENTITY write through the catalog (merged into an existing entity): `Err` with the
/// catalog's message when a rule refuses it (nothing written then), an error when the store
/// fails.
pub(crate) async fn upsert(
    tx: &mut impl CatalogTx,
    trigger: &Trigger,
    blueprint: &str,
    entity: &Value,
) -> Result<std::result::Result<String, String>> {
    let input = match EntityInput::parse(entity, blueprint) {
        Ok(input) => input,
        Err(err) => return Ok(Err(err.message)),
    };
    let Some(identifier) = input.identifier.clone() else {
        return Ok(Err("the mapping rendered no `identifier`".to_owned()));
    };
    let mut blueprints = BlueprintCache::default();
    let options = WriteOptions::default();
    match write_entity_in(tx, &mut blueprints, trigger, blueprint, &identifier, input, WriteMode::UpsertMerge, options).await {
        Ok(_) => Ok(Ok(identifier)),
        Err(Error::Domain(err)) => Ok(Err(err.message)),
        Err(err) => Err(err),
    }
}

/// The UPSERT_ENTITY or held request of an approved run, from its stored payload.
pub(crate) fn upsert_of(run: &Run) -> Option<(String, Value)> {
    let payload = run.payload.as_ref()?;
    (payload.get("type")?.as_str()? == "UPSERT_ENTITY")
        .then(|| Some((payload.get("blueprintIdentifier")?.as_str()?.to_owned(), payload.get("mapping")?.clone())))
        .flatten()
}
