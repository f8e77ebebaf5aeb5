//! Workflows (`/v1/workflows`, reference §4, SPEC §9): saving them (each save a version),
//! starting runs from their triggers, the reports of backends and agents on node runs, and
//! the reads.
//!
//! How a run moves: starting it writes the run, the trigger's node run (completed at once,
//! its output the trigger's) and the next node's node run `ready`, in one transaction (a
//! step). The [`stepper`] runs ready node runs (handed over by the step that made them, or
//! claimed under a lease), does what each node does and ends it with [`end_in`], which writes
//! the node run's end, the run's outputs and the next node run (or the run's end) in one
//! transaction, while the claim is still its own. Steps are group-committed ([`committer`]).
//! An asynchronous WEBHOOK node waits (`waiting`) for `PATCH /v1/workflows/nodes/runs/{id}`,
//! an agent's (`agent`) for an execution agent, and their reports end them through the same
//! [`end_in`].
//!
//! Architecture Invariant: every step of a run is one transaction that ends one node run and
//! starts the next, so a run killed anywhere resumes from the node it was in: a node run whose
//! claim's node died is claimed again once its lease passes, and a WEBHOOK node's request is
//! sent again only then (its attempt was cut off mid-send; the same node run id goes with it).
//! `tests/suite/workflows.rs` (`workflow_runs_resume_across_sigkill_*`) kills the binary mid-run.

pub(crate) mod committer;
pub(crate) mod render;
pub mod schedules;
pub mod stepper;

pub use render::{NodePreview, PREVIEW_NODE_RUN_ID, PREVIEW_RUN_ID, PREVIEW_VERSION_ID, preview_context, preview_node};
pub use wharf_store::WorkflowRunFilter;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use wharf_core::Error as DomainError;
use wharf_core::agent::{Claim, ClaimState};
use wharf_core::blueprint::Audited;
use wharf_core::change::{Origin, Trigger};
use wharf_core::crypto::MasterKey;
use wharf_core::run::sent_payload;
use wharf_core::secret::SecretValues;
use wharf_core::tenancy::{Capped, check_room};
use wharf_core::time::Timestamp;
use wharf_core::workflow::{Node, Workflow, WorkflowDef, check_programs};
use wharf_core::workflow_run::{
    NodeLog, NodeRun, NodeRunPatch, Outcome, Started, WorkflowRun, end_node_run, parse_log_request, run_inputs, variables_context,
};
use wharf_jq::ProgramCache;
use wharf_store::{AckOutcome, CatalogTx, ClaimedNodeRun, QueueSlot, Store, Tx};

use crate::org_cache::OrgCache;
use crate::runs::{AgentWaiters, Caller, SealedRequest};
use crate::secrets::Secrets;
use crate::{Error, Result};
pub use committer::StepCommitter;
use committer::{Step, StepSubmitter, Stepped};

/// Workflows one organization may have (SPEC §12).
const WORKFLOWS_PER_ORG: usize = 1_000;

fn workflow_not_found(identifier: &str) -> Error {
    DomainError::not_found("workflow_not_found", format!("workflow `{identifier}` was not found")).into()
}

fn run_not_found(id: &str) -> Error {
    DomainError::not_found("workflow_run_not_found", format!("workflow run `{id}` was not found")).into()
}

fn node_run_not_found(id: &str) -> Error {
    DomainError::not_found("node_run_not_found", format!("node run `{id}` was not found")).into()
}

fn node_run_ended(id: &str) -> Error {
    DomainError::conflict("node_run_completed", format!("node run `{id}` has completed; it cannot be changed")).into()
}

/// The workflows service. Cheap to clone.
#[derive(Clone)]
pub struct Workflows {
    store: Store,
    secrets: Secrets,
    master: MasterKey,
    programs: Arc<ProgramCache>,
    /// Saved versions by id (they never change).
    versions: Arc<Mutex<HashMap<String, Arc<WorkflowDef>>>>,
    /// Wakes the stepper when node runs are ready.
    wake: Arc<Notify>,
    /// The claims of agents waiting for work (shared with the action runs').
    agent_waiters: Arc<AgentWaiters>,
    /// The stepper's lease on a node run it claims.
    lease: Duration,
    /// Where node runs made ready on this node are handed to its stepper.
    handoff: mpsc::Sender<ClaimedNodeRun>,
    /// Whether this node's stepper takes hand-overs (not once it stops).
    stepping: Arc<AtomicBool>,
    /// Where steps are written (group commit).
    steps: StepSubmitter,
    /// Each organization's signer (its first API client's id and secret, opened, or why it
    /// does not open), read for a moment, as runs read what they send with.
    signers: OrgCache<Signer>,
}

/// An organization's signer: its first API client's id and opened secret (or why the secret
/// does not open); `None` without a client.
pub(crate) type Signer = Option<(String, std::result::Result<String, String>)>;

/// How many handed-over node runs may wait for the stepper.
const HANDOFF: usize = 1_024;

/// What a trigger that fired gives a new run.
pub(crate) struct Firing<'a> {
    pub stored: &'a Workflow,
    pub trigger: &'a Node,
    pub output: Value,
    /// The user (`{email, firstName, lastName}`, or `{}`).
    pub by_user: Value,
    /// Who the run's `createdBy` names.
    pub by: String,
}

impl Workflows {
    /// The service, and the receiving end of its hand-overs, for the node's stepper.
    pub fn new(
        store: Store,
        secrets: Secrets,
        master: MasterKey,
        lease: Duration,
        agent_waiters: Arc<AgentWaiters>,
    ) -> (Self, mpsc::Receiver<ClaimedNodeRun>, StepCommitter) {
        let (handoff, handed) = mpsc::channel(HANDOFF);
        let (steps, queue) = committer::channel();
        let workflows = Self {
            store,
            secrets,
            master,
            programs: Arc::new(ProgramCache::default()),
            versions: Arc::default(),
            wake: Arc::default(),
            agent_waiters,
            lease,
            handoff,
            stepping: Arc::new(AtomicBool::new(true)),
            steps,
            signers: OrgCache::default(),
        };
        let committer = StepCommitter::new(workflows.store.clone(), queue, workflows.clone());
        (workflows, handed, committer)
    }

    /// A hand-over to this node's stepper, if it takes one now (it runs, and has room).
    pub(crate) fn handover(&self) -> Option<Handover> {
        if !self.stepping.load(Ordering::Acquire) {
            return None;
        }
        let permit = self.handoff.clone().try_reserve_owned().ok()?;
        let until = crate::now().plus_millis(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX));
        Some(Handover { permit, token: wharf_ids::id_base62(16), until })
    }

    /// After the commit of a step: its next node run handed to the stepper, or the stepper
    /// woken for it.
    pub(crate) fn moved(&self, handover: Option<Handover>, moved: Moved) {
        match (handover, moved.handed) {
            (Some(handover), Some(claimed)) => {
                handover.permit.send(claimed);
            }
            _ if moved.ready => self.wake.notify_one(),
            _ => {}
        }
    }

    /// The stepper stops: no more hand-overs.
    pub(crate) fn stop_handovers(&self) {
        self.stepping.store(false, Ordering::Release);
    }

    /// `GET /v1/workflows`.
    pub async fn list(&self, org: &str) -> Result<Vec<Value>> {
        Ok(self.store.workflows(org).await?.iter().map(Workflow::to_json).collect())
    }

    /// `GET /v1/workflows/{identifier}`.
    pub async fn get(&self, org: &str, identifier: &str) -> Result<Value> {
        let stored = self.store.workflow(org, identifier).await?.ok_or_else(|| workflow_not_found(identifier))?;
        Ok(stored.to_json())
    }

    /// `POST /v1/workflows`.
    pub async fn create(&self, trigger: &Trigger, doc: Value) -> Result<Value> {
        let def = compiled(WorkflowDef::parse(doc, None)?).await?;
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        // Invariant: creates of one organization take turns, so two cannot both pass the count.
        tx.lock(org, "workflows").await?;
        check_room(tx.count_workflows(org).await?, WORKFLOWS_PER_ORG, Capped::Workflows)?;
        tx.lock(org, &format!("workflow/{}", def.identifier)).await?;
        if tx.workflow(org, &def.identifier).await?.is_some() {
            return Err(DomainError::conflict("workflow_exists", format!("workflow `{}` already exists", def.identifier)).into());
        }
        let stored = self.save(&mut tx, org, def, Audited::new(&trigger.by, trigger.at)).await?;
        tx.commit().await?;
        Ok(stored.to_json())
    }

    /// `PUT /v1/workflows/{identifier}`: a new version; runs keep the one they started with.
    pub async fn replace(&self, trigger: &Trigger, identifier: &str, doc: Value) -> Result<Value> {
        let def = compiled(WorkflowDef::parse(doc, Some(identifier))?).await?;
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("workflow/{identifier}")).await?;
        let current = tx.workflow(org, identifier).await?.ok_or_else(|| workflow_not_found(identifier))?;
        let stored = self.save(&mut tx, org, def, current.audited.touched(&trigger.by, trigger.at)).await?;
        tx.commit().await?;
        Ok(stored.to_json())
    }

    async fn save(&self, tx: &mut Tx, org: &str, def: WorkflowDef, audited: Audited) -> Result<Workflow> {
        let mut found = HashMap::new();
        for name in def.referenced_blueprints() {
            if let Some(blueprint) = tx.blueprint(org, name).await? {
                found.insert(name.to_owned(), blueprint);
            }
        }
        def.check_references(|name| found.get(name))?;
        let now = audited.updated_at;
        let ticks = def.next_ticks(now);
        let stored = Workflow { def, version_id: wharf_ids::new_workflow_version_id(), audited };
        tx.put_workflow(org, &stored).await?;
        tx.set_schedules(org, &stored.def.identifier, &ticks).await?;
        Ok(stored)
    }

    /// `DELETE /v1/workflows/{identifier}`: its runs stay, and those in progress go on with
    /// their version.
    pub async fn delete(&self, trigger: &Trigger, identifier: &str) -> Result<()> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("workflow/{identifier}")).await?;
        if !tx.delete_workflow(org, identifier).await? {
            return Err(workflow_not_found(identifier));
        }
        tx.commit().await?;
        Ok(())
    }

    /// A saved version (cached: versions never change).
    pub(crate) async fn version(&self, org: &str, version_id: &str) -> Result<Option<Arc<WorkflowDef>>> {
        if let Some(def) = self.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(version_id) {
            return Ok(Some(def.clone()));
        }
        let Some(def) = self.store.workflow_version(org, version_id).await? else { return Ok(None) };
        let def = Arc::new(def);
        let mut versions = self.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if versions.len() > 10_000 {
            versions.clear();
        }
        versions.insert(version_id.to_owned(), def.clone());
        Ok(Some(def))
    }

    /// `POST /v1/workflows/{identifier}/runs` `{"inputs"}`: a run of its self-serve trigger,
    /// the inputs checked as an action's are (422 naming the input).
    pub async fn start(&self, caller: &Caller, identifier: &str, body: &Value) -> Result<Value> {
        let org = &caller.org_id;
        let stored = self.store.workflow(org, identifier).await?.ok_or_else(|| workflow_not_found(identifier))?;
        let inputs = run_inputs(body)?;
        let trigger = stored.def.self_serve_trigger()?;
        // Inputs may run jq: a quick unit here, or on the jq pool's stacks when it needs more.
        let document = stored.def.inputs_document(trigger);
        let checked =
            crate::jq_pool::run_quick(move || wharf_core::run_inputs::check_inputs(&document, &inputs, &json!({}))).await??;
        crate::runs::check_entity_inputs(&self.store, org, &checked.entity_refs).await?;
        let step = Step::Start {
            org: org.to_owned(),
            trigger: trigger.identifier.clone(),
            output: Value::Object(checked.values),
            by_user: json!({"email": caller.run_as, "clientId": caller.client_id}),
            by: caller.run_as.clone().unwrap_or_else(|| caller.client_id.clone()),
            stored: Arc::new(stored),
        };
        match self.steps.commit(step).await? {
            Stepped::Started(run) => Ok(run.to_json(None)),
            Stepped::Ended(_) => Err(Error::Unavailable("the run was not started".to_owned())),
        }
    }

    /// Wakes the stepper (runs were started in another transaction).
    pub(crate) fn started(&self) {
        self.wake.notify_one();
    }

    /// `GET /v1/workflows/runs`.
    pub async fn runs(&self, org: &str, filter: &WorkflowRunFilter) -> Result<Vec<Value>> {
        Ok(self.store.workflow_runs(org, filter).await?.iter().map(|run| run.to_json(None)).collect())
    }

    /// `GET /v1/workflows/runs/{id}`: the run with every node run, its output and logs.
    pub async fn run(&self, org: &str, id: &str) -> Result<Value> {
        let run = self.store.workflow_run(org, id).await?.ok_or_else(|| run_not_found(id))?;
        let node_runs = self.store.node_runs(org, id).await?;
        let ids: Vec<String> = node_runs.iter().map(|n| n.identifier.clone()).collect();
        let mut logs: HashMap<String, Vec<NodeLog>> = HashMap::new();
        for (id, log) in self.store.node_logs(&ids).await? {
            logs.entry(id).or_default().push(log);
        }
        let shown = node_runs.iter().map(|n| n.to_json(logs.get(&n.identifier).map_or(&[], Vec::as_slice))).collect();
        Ok(run.to_json(Some(shown)))
    }

    /// `GET /v1/workflows/nodes/runs/{id}`.
    pub async fn node_run(&self, org: &str, id: &str) -> Result<Value> {
        let node_run = self.store.node_run(org, id).await?.ok_or_else(|| node_run_not_found(id))?;
        let logs: Vec<NodeLog> = self.store.node_logs(&[id.to_owned()]).await?.into_iter().map(|(_, log)| log).collect();
        Ok(node_run.to_json(&logs))
    }

    /// `PATCH /v1/workflows/nodes/runs/{id}`: a backend's or an agent's report. `COMPLETED`
    /// ends the node run (its `variables` applied to the `output` given) and moves the run on;
    /// logs are added either way. 409 once the node run has completed.
    /// `run`: the older path's workflow run, which the node run must be one of.
    pub async fn patch_node_run(&self, org: &str, run: Option<&str>, id: &str, body: &Value) -> Result<Value> {
        let now = crate::now();
        let patch = NodeRunPatch::parse(body, now)?;
        let node_run = self.store.node_run(org, id).await?.ok_or_else(|| node_run_not_found(id))?;
        if let Some(run) = run
            && node_run.workflow_run_identifier != run
        {
            return Err(DomainError::not_found(
                "node_run_not_found",
                format!("node run `{id}` is not a node run of workflow run `{run}`"),
            )
            .into());
        }
        if node_run.has_ended() {
            return Err(node_run_ended(id));
        }
        let logs = patch.logs;
        let Some(outcome) = patch.completed else {
            let mut tx = self.store.begin().await?;
            let Some((node_run, _)) = tx.node_run_for_update(org, id).await? else { return Err(node_run_not_found(id)) };
            if node_run.has_ended() {
                return Err(node_run_ended(id));
            }
            tx.insert_node_logs(id, &logs).await?;
            tx.commit().await?;
            return self.node_run(org, id).await;
        };
        let raw = patch.output.unwrap_or_else(|| json!({}));
        let ended = self
            .end_node(
                org,
                &node_run,
                Ending {
                    outcome,
                    raw,
                    outlet: None,
                    lease: None,
                    logs,
                    request: None,
                    run_id: node_run.workflow_run_identifier.clone(),
                },
            )
            .await?;
        if !ended {
            return Err(node_run_ended(id));
        }
        self.node_run(org, id).await
    }

    /// `POST /v1/workflows/nodes/runs/{id}/logs`: accepted while the node run is in progress
    /// and after it (an agent writes its last line after its report).
    pub async fn log_node_run(&self, org: &str, id: &str, body: &Value) -> Result<Value> {
        let logs = parse_log_request(body, crate::now())?;
        let mut tx = self.store.begin().await?;
        if tx.node_run_for_update(org, id).await?.is_none() {
            return Err(node_run_not_found(id));
        }
        tx.insert_node_logs(id, &logs).await?;
        tx.commit().await?;
        Ok(json!({"ok": true, "logs": logs.iter().map(NodeLog::to_json).collect::<Vec<_>>()}))
    }

    /// Ends `node_run` as `ending` says, in one transaction with its run's next step: `false`
    /// when it had ended already or (with a lease) the claim is no longer this one's.
    pub(crate) async fn end_node(&self, org: &str, node_run: &NodeRun, ending: Ending) -> Result<bool> {
        let run = self
            .store
            .workflow_run(org, &node_run.workflow_run_identifier)
            .await?
            .ok_or_else(|| run_not_found(&node_run.workflow_run_identifier))?;
        let Some(def) = self.version(org, &run.workflow_version_identifier).await? else {
            return Err(Error::from(DomainError::not_found(
                "workflow_version_not_found",
                format!("the version of run `{}` is gone", run.identifier),
            )));
        };
        self.end_in_run(org, &run, def, node_run, ending).await
    }

    /// [`Workflows::end_node`] for a caller that has read the run and its version.
    pub(crate) async fn end_in_run(
        &self,
        org: &str,
        run: &WorkflowRun,
        def: Arc<WorkflowDef>,
        node_run: &NodeRun,
        ending: Ending,
    ) -> Result<bool> {
        let (outcome, raw) = self.output_of(org, run, &def, node_run, ending.outcome, &ending.raw).await?;
        let step =
            Step::End { org: org.to_owned(), def, id: node_run.identifier.clone(), ending: Ending { outcome, raw, ..ending } };
        Ok(matches!(self.steps.commit(step).await?, Stepped::Ended(true)))
    }

    /// A node run's output and outcome: on success, the node's `variables` rendered over its
    /// raw output (on a jq thread); variables that do not render fail the node run.
    pub(crate) async fn output_of(
        &self,
        org: &str,
        run: &WorkflowRun,
        def: &WorkflowDef,
        node_run: &NodeRun,
        outcome: Outcome,
        raw: &Value,
    ) -> Result<(Outcome, Value)> {
        let variables = def.node(&node_run.node_identifier).and_then(|node| node.variables.clone());
        let Some(variables) = variables.filter(|_| outcome == Outcome::Success) else { return Ok((outcome, raw.clone())) };
        let context = variables_context(run, node_run, raw);
        let secrets = self.secrets_of(org).await?;
        let programs = self.programs.clone();
        Ok(match crate::jq_pool::run_quick(move || render::render_variables(&variables, &context, &secrets, &programs)).await? {
            Ok(output) => (Outcome::Success, output),
            Err(why) => (
                Outcome::Failed,
                wharf_core::workflow::failure_output(&format!("the node's variables cannot be rendered: {why}")),
            ),
        })
    }

    /// The organization's signer, kept for a moment ([`OrgCache`]).
    pub(crate) async fn signer_of(&self, org: &str) -> Result<Arc<Signer>> {
        self.signers
            .get(org, || async {
                let client = self.store.signing_client(org).await?;
                Ok(client.map(|(id, sealed)| (id, self.master.open(&sealed).map_err(|e| e.to_string()))))
            })
            .await
    }

    /// The organization's secrets, opened (a value that does not open fails the call).
    pub(crate) async fn secrets_of(&self, org: &str) -> Result<Arc<SecretValues>> {
        self.secrets.open_all(org).await
    }

    /// `POST /v1/workflows/runs/claim-pending`: claims node runs waiting for agents, each with
    /// its rendered config in clear; with `waitMs`, a long poll.
    pub async fn claim_for_agent(&self, org: &str, claim: &Claim) -> Result<Vec<Value>> {
        let look = || async {
            let now = crate::now();
            let visible_at = claim.visible_again_at(now);
            let claimed = self.store.claim_agent_node_runs(org, &claim.installation_id, now, visible_at, claim.limit).await?;
            Ok((now, visible_at, claimed))
        };
        let (now, visible_at, claimed) =
            self.agent_waiters.long_poll(claim.wait_ms, look, |(_, _, claimed)| !claimed.is_empty()).await?;
        let state = ClaimState {
            installation_id: claim.installation_id.clone(),
            claimed_at: now,
            visible_again_at: visible_at,
            acked_at: None,
        };
        let mut shown = Vec::with_capacity(claimed.len());
        for node_run in claimed {
            let opened = node_run
                .request_sealed
                .as_deref()
                .ok_or_else(|| "no request was rendered".to_owned())
                .and_then(|sealed| SealedRequest::open(&self.master, sealed));
            match opened {
                Ok(sealed) => shown.push(json!({
                    "identifier": node_run.id,
                    "config": sent_payload(&sealed.request),
                    "agentClaim": state.to_json(),
                })),
                Err(why) => {
                    tracing::error!(node_run = %node_run.id, %why, "a node run's request cannot be opened for its agent");
                }
            }
        }
        Ok(shown)
    }

    /// `PATCH /v1/workflows/runs/ack` `{"nodeRunIdentifier"}`: 409 when acknowledged already.
    pub async fn ack_for_agent(&self, org: &str, id: &str) -> Result<()> {
        match self.store.ack_agent_node_run(org, id, crate::now()).await? {
            AckOutcome::Acked => Ok(()),
            AckOutcome::Taken => Err(DomainError::conflict(
                "node_run_acknowledged",
                format!("node run `{id}` was acknowledged already (or is not waiting for an agent)"),
            )
            .into()),
            AckOutcome::NotFound => Err(node_run_not_found(id)),
        }
    }

    pub(crate) fn agents_wake(&self) {
        self.agent_waiters.notify();
    }
}

/// How a node run ends.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub outcome: Outcome,
    /// The node's raw output (before `variables`).
    pub raw: Value,
    /// A CONDITION's outlet that held.
    pub outlet: Option<String>,
    /// The stepper's claim: the end is written only while the claim holds.
    pub lease: Option<String>,
    pub logs: Vec<NodeLog>,
    /// What a WEBHOOK node sent, masked.
    pub request: Option<Value>,
    /// The node run's run (the order of a batch's locks).
    pub run_id: String,
}

/// Compiles every program of `def` on a jq thread, before any transaction.
async fn compiled(def: WorkflowDef) -> Result<WorkflowDef> {
    crate::jq_pool::run(move || check_programs(&def).map(|()| def)).await?.map_err(Error::from)
}

/// The next node run a step made, as the caller hands it on after the commit.
#[derive(Debug, Default)]
#[must_use = "a node run made ready is handed to the stepper, or the stepper is woken (Workflows::moved)"]
pub(crate) struct Moved {
    /// A next node run was made ready.
    pub ready: bool,
    /// It was inserted claimed by this node's stepper: hand it over.
    pub handed: Option<ClaimedNodeRun>,
}

/// A hand-over to this node's stepper, reserved before the transaction: the next node run is
/// inserted already claimed with `token` until `until`, and given to the stepper after the
/// commit (no claim round trip). Dropped unused, the reservation is given back.
pub(crate) struct Handover {
    permit: mpsc::OwnedPermit<ClaimedNodeRun>,
    token: String,
    until: Timestamp,
}

/// Inserts the node run `node` of `run` ready, or handed over.
async fn insert_next(
    tx: &mut Tx,
    org: &str,
    run: &WorkflowRun,
    node: &Node,
    handover: Option<&Handover>,
    now: Timestamp,
) -> Result<Moved> {
    let node_run = NodeRun::start(wharf_ids::new_node_run_id(), run, node, now);
    let slot = match handover {
        Some(handover) => QueueSlot::handed(&handover.token, handover.until),
        None => QueueSlot::ready(now),
    };
    tx.insert_node_run(org, &node_run, &slot).await?;
    let handed = handover.map(|handover| ClaimedNodeRun {
        seq: 0,
        id: node_run.identifier.clone(),
        org_id: org.to_owned(),
        run_id: run.identifier.clone(),
        lease_token: handover.token.clone(),
        claims_before: 0,
    });
    Ok(Moved { ready: true, handed })
}

/// Starts a run of `firing` in `tx`: the run, the trigger's node run (ended at once), and the
/// next node's node run, ready or handed over (or the run ended at once when the trigger leads
/// nowhere).
pub(crate) async fn start_in(
    tx: &mut Tx,
    org: &str,
    firing: &Firing<'_>,
    handover: Option<&Handover>,
    now: Timestamp,
) -> Result<(WorkflowRun, Moved)> {
    let def = &firing.stored.def;
    let started = Started {
        identifier: firing.trigger.identifier.clone(),
        config_type: firing.trigger.config_type().to_owned(),
        by: firing.by_user.clone(),
    };
    let mut run = WorkflowRun::start(wharf_ids::new_workflow_run_id(), def, &firing.stored.version_id, started, &firing.by, now);
    let mut fired = NodeRun::start(wharf_ids::new_node_run_id(), &run, firing.trigger, now);
    let next = end_node_run(def, &mut run, &mut fired, Outcome::Success, firing.output.clone(), None, now);
    tx.insert_workflow_run(org, &run).await?;
    tx.insert_node_run(org, &fired, &QueueSlot::ended(now)).await?;
    let moved = match next {
        Some(next) => insert_next(tx, org, &run, next, handover, now).await?,
        None => Moved::default(),
    };
    metrics::counter!("wharf_workflow_runs_started_total", "trigger" => firing.trigger.config_type()).increment(1);
    tracing::info!(workflow = %def.identifier, run = %run.identifier, trigger = %firing.trigger.identifier, "workflow run started");
    Ok((run, moved))
}

/// Ends node run `id` in `tx` with `ending` (its `raw` output the node's output, variables
/// applied) and moves its run on:
/// `None` when it had ended or the claim `ending.lease` no longer holds (nothing written);
/// else the next node run, if any, ready or handed over.
pub(crate) async fn end_in(
    tx: &mut Tx,
    org: &str,
    def: &WorkflowDef,
    id: &str,
    ending: &Ending,
    handover: Option<&Handover>,
    now: Timestamp,
) -> Result<Option<Moved>> {
    let Some((mut node_run, slot)) = tx.node_run_for_update(org, id).await? else { return Ok(None) };
    if node_run.has_ended() || slot.queue.is_none() {
        return Ok(None);
    }
    if let Some(lease) = &ending.lease
        && !slot.claimed_by(lease)
    {
        return Ok(None);
    }
    let Some(mut run) = tx.workflow_run_for_update(org, &node_run.workflow_run_identifier).await? else { return Ok(None) };
    if ending.request.is_some() {
        node_run.request.clone_from(&ending.request);
    }
    let next = end_node_run(def, &mut run, &mut node_run, ending.outcome, ending.raw.clone(), ending.outlet.as_deref(), now);
    tx.update_node_run(org, &node_run, &QueueSlot { request_sealed: None, ..QueueSlot::ended(now) }).await?;
    tx.insert_node_logs(id, &ending.logs).await?;
    let moved = match next {
        Some(next) => insert_next(tx, org, &run, next, handover, now).await?,
        None => Moved::default(),
    };
    tx.update_workflow_run(org, &run).await?;
    if run.has_ended() {
        metrics::counter!("wharf_workflow_runs_completed_total", "result" => run.result.map_or("", Outcome::as_str)).increment(1);
    }
    Ok(Some(moved))
}

/// The trigger of the catalog writes a workflow run makes.
pub(crate) fn catalog_trigger(org: &str, run: &WorkflowRun, now: Timestamp) -> Trigger {
    Trigger { origin: Origin::Automation, ..Trigger::api(org, &run.created_by, now) }
}
