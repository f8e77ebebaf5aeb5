//! The stepper: the worker that runs workflow nodes. It claims ready node runs under a lease
//! (committed before anything is done), does what each node does, and ends it with
//! [`super::end_in`] while the claim is its own:
//!
//! - CONDITION: its outlets are evaluated in order; the first that holds (else the fallback)
//!   leads on;
//! - UPSERT_ENTITY: its entity is written through the catalog (merge) in the transaction that
//!   ends the node run, so it is written once;
//! - WEBHOOK: its request is sent once, signed as an action run's is (`X-Port-Timestamp`,
//!   `X-Port-Signature`), with `X-Wharf-Node-Run-Id`; synchronized, the answer ends the node
//!   run (`{"response":{"status","data"}}`); asynchronous, a 2xx leaves it `waiting` for its
//!   PATCH. An `agent: true` node's request is not sent but sealed, `agent`, for an execution
//!   agent to claim.
//!
//! A failure ends the node run `FAILED` with `{"error":{"message"}}` as its output; the node's
//! `onFailure` decides whether the run goes on. A claim counts itself (`claims`, a hand-over
//! included), so a node run claimed again after its node died mid-step says so in its log.
//!
//! Hand-over: a step or a start that commits on this node inserts the next node run already
//! claimed by this stepper (`Workflows::handover`) and gives it over after the commit, so a
//! run moves from node to node without a claim round trip; the claim worker takes the rest.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use wharf_core::delivery::AttemptOutcome;
use wharf_core::run::{Answer, Request};
use wharf_core::secret::{SecretValues, mask};
use wharf_core::workflow::{NodeConfig, OnTimeout, WorkflowDef, failure_output, timeout_output, upsert_output};
use wharf_core::workflow_run::{AfterSend, NodeLog, NodeRun, Outcome, WorkflowRun, context};
use wharf_store::{ClaimedNodeRun, NodeQueue, QueueSlot, Store};

use super::committer::Step;
use super::render::{Work, render_node};
use super::{Ending, Workflows, catalog_trigger};
use crate::Result;
use crate::delivery::DeliverySettings;
use crate::delivery::client::{HttpClient, Response};
use crate::node::Stage;
use crate::runs::invoker::signed_headers;
use crate::runs::self_call::SelfCaller;
use crate::runs::{SealedRequest, SelfCalls, held_secrets};

/// What a node run left in progress waits with.
struct Parked {
    queue: NodeQueue,
    /// An agent node's request, sealed.
    request_sealed: Option<String>,
    /// What it sent (or is to send), masked.
    shown: Value,
    logs: Vec<NodeLog>,
}

/// Node runs one claim takes at most.
const CLAIM_BATCH: usize = 64;
/// The header that carries the node run's id on every send (a resend carries the same).
const NODE_RUN_HEADER: HeaderName = HeaderName::from_static("x-wharf-node-run-id");

/// The stepper. Build one per node; cheap to clone.
#[derive(Clone)]
pub struct Stepper {
    store: Store,
    workflows: Workflows,
    client: HttpClient,
    self_calls: SelfCalls,
    timeout: Duration,
    poll: Duration,
    slots: Arc<Semaphore>,
    sends: Stage,
}

impl Stepper {
    /// A stepper sending through `client` with the delivery engine's timeout, looking for
    /// ready node runs every `poll_interval`, at most `max_in_flight` at once.
    pub fn new(
        store: Store,
        workflows: Workflows,
        client: HttpClient,
        self_calls: SelfCalls,
        settings: &DeliverySettings,
        sends: Stage,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        let (timeout, poll) = (settings.timeout, settings.poll_interval);
        Self { store, workflows, client, self_calls, timeout, poll, slots, sends }
    }

    /// The claim worker: runs the node runs this node hands over (`handed`: made ready by a
    /// step or a start that committed here, claimed already), and claims the others that are
    /// ready (other nodes', and those that outlived a lease) as slots allow; each runs as a task
    /// of the sends stage. At `stop`, hand-overs end and those not run are given back.
    pub async fn run(self, mut handed: mpsc::Receiver<ClaimedNodeRun>, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut look = true;
        while !stop.is_cancelled() {
            if look {
                let free = self.slots.available_permits().min(CLAIM_BATCH);
                let claimed = match self.claim(free).await {
                    Ok(claimed) => {
                        failures = 0;
                        claimed
                    }
                    Err(err) => {
                        failures += 1;
                        tracing::error!(error = %err, "cannot claim node runs; retrying");
                        Vec::new()
                    }
                };
                let full = free > 0 && claimed.len() == free;
                for node_run in claimed {
                    if !self.spawn_step(node_run).await {
                        return;
                    }
                }
                if full {
                    // More may be ready: claim again once a slot is free.
                    if self.slots.available_permits() == 0 {
                        tokio::select! {
                            _ = self.slots.acquire() => {}
                            () = stop.cancelled() => {}
                        }
                    }
                    continue;
                }
            }
            look = false;
            let wait = if failures > 0 { crate::outbox::backoff(self.poll, failures) } else { self.poll };
            tokio::select! {
                Some(first) = handed.recv() => {
                    let mut next = Some(first);
                    while let Some(node_run) = next {
                        if !self.spawn_step(node_run).await {
                            return;
                        }
                        next = handed.try_recv().ok();
                    }
                }
                _ = self.workflows.wake.notified() => look = true,
                _ = tokio::time::sleep(wait) => look = true,
                () = stop.cancelled() => {}
            }
        }
        self.workflows.stop_handovers();
        let mut left = Vec::new();
        while let Ok(node_run) = handed.try_recv() {
            left.push(node_run);
        }
        if !left.is_empty()
            && let Err(err) = self.store.release_node_runs(&left, crate::now()).await
        {
            tracing::warn!(error = %err, node_runs = left.len(), "cannot give back handed-over node runs; they are claimed again after their lease");
        }
    }

    /// Claims up to `free` ready node runs (none when `free` is 0); a read first, since
    /// claiming is a write and most looks find nothing.
    async fn claim(&self, free: usize) -> Result<Vec<ClaimedNodeRun>> {
        if free == 0 {
            return Ok(Vec::new());
        }
        let now = crate::now();
        if !self.store.node_run_due(now).await? {
            return Ok(Vec::new());
        }
        let token = wharf_ids::id_base62(16);
        let until = now.plus_millis(i64::try_from(self.workflows.lease.as_millis()).unwrap_or(i64::MAX));
        Ok(self.store.claim_node_runs(&token, now, until, u32::try_from(free).unwrap_or(u32::MAX)).await?)
    }

    /// Runs `node_run` as a task of the sends stage once a slot is free; `false` when the
    /// slots are closed.
    async fn spawn_step(&self, node_run: ClaimedNodeRun) -> bool {
        let Ok(slot) = self.slots.clone().acquire_owned().await else { return false };
        let stepper = self.clone();
        self.sends.track(async move {
            if let Err(err) = stepper.step(&node_run).await {
                tracing::error!(node_run = %node_run.id, error = %err, "a node run failed to step; it is claimed again after its lease");
            }
            drop(slot);
        });
        true
    }

    /// Runs one claimed node run.
    async fn step(&self, claimed: &ClaimedNodeRun) -> Result<()> {
        let org = claimed.org_id.as_str();
        let (Some(run), Some(node_run)) =
            (self.store.workflow_run(org, &claimed.run_id).await?, self.store.node_run(org, &claimed.id).await?)
        else {
            return Ok(());
        };
        let ending = |outcome, raw| Ending {
            run_id: claimed.run_id.clone(),
            outcome,
            raw,
            outlet: None,
            lease: Some(claimed.lease_token.clone()),
            logs: Vec::new(),
            request: None,
        };
        let Some(def) = self.workflows.version(org, &run.workflow_version_identifier).await? else {
            let why =
                format!("the version `{}` of workflow `{}` is gone", run.workflow_version_identifier, run.workflow_identifier);
            return self.workflows.end_node(org, &node_run, ending(Outcome::Failed, failure_output(&why))).await.map(drop);
        };
        let end = |ending: Ending| self.end(org, &run, def.clone(), &node_run, ending);
        let Some(node) = def.node(&node_run.node_identifier).cloned() else {
            let why = format!("node `{}` is not in the workflow's version", node_run.node_identifier);
            return end(ending(Outcome::Failed, failure_output(&why))).await;
        };
        let secrets = match self.workflows.secrets_of(org).await {
            Ok(secrets) => secrets,
            Err(err) => {
                let why = format!("the organization's secrets cannot be opened: {err}");
                return end(ending(Outcome::Failed, failure_output(&why))).await;
            }
        };
        let rendering = {
            let (node, context, secrets, programs) =
                (node.clone(), context(&run, &node_run), secrets.clone(), self.workflows.programs.clone());
            crate::jq_pool::run_quick(move || render_node(&node, &context, &secrets, &programs)).await?
        };
        let work = match rendering {
            Ok(work) => work,
            Err(why) => return end(ending(Outcome::Failed, failure_output(&why))).await,
        };
        match work {
            Work::Branch { outlet } => {
                let raw = serde_json::json!({"outlet": outlet});
                end(Ending { outlet, ..ending(Outcome::Success, raw) }).await
            }
            Work::Upsert { blueprint, entity } => {
                self.upsert(org, &run, def.clone(), &node_run, claimed, &blueprint, &entity).await
            }
            Work::Send { request, shown } => {
                let (on_timeout, verbose) = match &node.config {
                    NodeConfig::Webhook { on_timeout, .. } => (*on_timeout, node.verbose),
                    _ => (OnTimeout::Fail, node.verbose),
                };
                if request.agent {
                    return self.hand_to_agents(org, &node_run, claimed, request, shown, &secrets).await;
                }
                match self.send(org, &node_run, claimed, request, shown, &secrets, on_timeout, verbose).await? {
                    Some(ending) => end(ending).await,
                    None => Ok(()),
                }
            }
        }
    }

    async fn end(&self, org: &str, run: &WorkflowRun, def: Arc<WorkflowDef>, node_run: &NodeRun, ending: Ending) -> Result<()> {
        if ending.outcome == Outcome::Failed {
            tracing::info!(node_run = %node_run.identifier, output = %ending.raw, "node run failed");
        }
        self.workflows.end_in_run(org, run, def, node_run, ending).await?;
        Ok(())
    }

    /// An UPSERT_ENTITY node: the entity written and the node run ended in one transaction
    /// (its output, variables applied, worked out before: the identifier is the mapping's).
    #[allow(clippy::too_many_arguments)]
    async fn upsert(
        &self,
        org: &str,
        run: &WorkflowRun,
        def: Arc<WorkflowDef>,
        node_run: &NodeRun,
        claimed: &ClaimedNodeRun,
        blueprint: &str,
        entity: &Value,
    ) -> Result<()> {
        let lease = Some(claimed.lease_token.clone());
        let identifier = match &entity["identifier"] {
            Value::String(identifier) => identifier.clone(),
            other => other.to_string(),
        };
        let (outcome, output) =
            self.workflows.output_of(org, run, &def, node_run, Outcome::Success, &upsert_output(&identifier)).await?;
        let ending =
            Ending { outcome, raw: output, outlet: None, lease, logs: Vec::new(), request: None, run_id: run.identifier.clone() };
        let step = if outcome == Outcome::Success {
            Step::Upsert {
                org: org.to_owned(),
                def,
                id: node_run.identifier.clone(),
                blueprint: blueprint.to_owned(),
                entity: entity.clone(),
                trigger: catalog_trigger(org, run, crate::now()),
                ending,
            }
        } else {
            Step::End { org: org.to_owned(), def, id: node_run.identifier.clone(), ending }
        };
        self.workflows.steps.commit(step).await?;
        Ok(())
    }

    /// An `agent: true` WEBHOOK node: its request sealed and left for an agent.
    async fn hand_to_agents(
        &self,
        org: &str,
        node_run: &NodeRun,
        claimed: &ClaimedNodeRun,
        request: Request,
        shown: Value,
        secrets: &SecretValues,
    ) -> Result<()> {
        let held = held_secrets(&request, secrets);
        let sealed = SealedRequest::of(request, held).seal(&self.workflows.master);
        let log = NodeLog {
            level: "INFO".to_owned(),
            message: "Waiting for an execution agent to claim the node run".to_owned(),
            tags: None,
            created_at: crate::now(),
        };
        let parked = Parked { queue: NodeQueue::Agent, request_sealed: Some(sealed), shown, logs: vec![log] };
        if self.park(org, &node_run.identifier, &claimed.lease_token, parked).await? {
            self.workflows.agents_wake();
        }
        Ok(())
    }

    /// A WEBHOOK node's one send, and what it makes of the node run: how it ends, or `None`
    /// when it waits for its report (written here).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        org: &str,
        node_run: &NodeRun,
        claimed: &ClaimedNodeRun,
        request: Request,
        shown: Value,
        secrets: &SecretValues,
        on_timeout: OnTimeout,
        verbose: bool,
    ) -> Result<Option<Ending>> {
        let lease = claimed.lease_token.clone();
        let mut logs = Vec::new();
        let log =
            |level: &str, message: String| NodeLog { level: level.to_owned(), message, tags: None, created_at: crate::now() };
        if claimed.claims_before > 0 {
            logs.push(log(
                "WARN",
                "Sending the request again: the node that ran this node run stopped mid-step (its attempt was cut off, \
                 and may have reached the receiver; the same X-Wharf-Node-Run-Id goes with both)"
                    .to_owned(),
            ));
        }
        logs.push(log("INFO", format!("Sending {} {}", request.method, mask(&request.url, secrets))));
        if verbose {
            logs.push(log("DEBUG", format!("Request: {shown}")));
        }
        let response = self.deliver(org, &node_run.identifier, &request).await;
        let answer = Answer {
            status: response.status,
            body: response.body.as_deref().map(|body| mask(body, secrets)),
            error: response.error.as_deref().map(|error| mask(error, secrets)),
        };
        let duration = response.duration.as_millis();
        metrics::counter!("wharf_workflow_node_sends_total", "outcome" => response.outcome.class()).increment(1);
        let timed_out = matches!(response.outcome, AttemptOutcome::Timeout);
        let status = answer.status.unwrap_or(0);
        let (outcome, raw, waits) = match AfterSend::of(&answer, timed_out, request.synchronized, on_timeout) {
            AfterSend::Answered { status, output } => {
                logs.push(log("INFO", format!("The request completed with status code {status} in {duration} ms")));
                (Outcome::Success, output, false)
            }
            AfterSend::Waits if timed_out => {
                logs.push(log(
                    "WARN",
                    format!("The request timed out after {duration} ms; the node waits for its update (`onTimeout: continue`)"),
                ));
                (Outcome::Success, Value::Null, true)
            }
            AfterSend::Waits => {
                logs.push(log(
                    "INFO",
                    format!("The request was accepted with status code {status}; waiting for the node run's update"),
                ));
                (Outcome::Success, Value::Null, true)
            }
            AfterSend::TimedOutGoingOn => {
                logs.push(log(
                    "WARN",
                    format!("The request timed out after {duration} ms; the node goes on (`onTimeout: continue`)"),
                ));
                (Outcome::Success, timeout_output(), false)
            }
            AfterSend::Failed { summary, output } => {
                logs.push(log("ERROR", summary));
                (Outcome::Failed, output, false)
            }
        };
        if verbose && let Some(body) = &answer.body {
            logs.push(log("DEBUG", format!("Response: {body}")));
        }
        if waits {
            let parked = Parked { queue: NodeQueue::Waiting, request_sealed: None, shown, logs };
            self.park(org, &node_run.identifier, &lease, parked).await?;
            return Ok(None);
        }
        Ok(Some(Ending {
            outcome,
            raw,
            outlet: None,
            lease: Some(lease),
            logs,
            request: Some(shown),
            run_id: claimed.run_id.clone(),
        }))
    }

    /// Leaves a node run in progress, no longer the stepper's, while its claim `lease` still
    /// holds it: `waiting` for its report, or for an agent. Whether it was.
    async fn park(&self, org: &str, id: &str, lease: &str, parked: Parked) -> Result<bool> {
        let now = crate::now();
        let mut tx = self.store.begin().await?;
        let Some((mut node_run, slot)) = tx.node_run_for_update(org, id).await? else { return Ok(false) };
        if !slot.claimed_by(lease) {
            return Ok(false);
        }
        node_run.request = Some(parked.shown);
        node_run.updated_at = now;
        let slot = QueueSlot {
            queue: Some(parked.queue),
            next_at: now,
            lease_token: None,
            request_sealed: parked.request_sealed,
            ..slot
        };
        tx.update_node_run(org, &node_run, &slot).await?;
        tx.insert_node_logs(id, &parked.logs).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sends `request` signed as the organization's runs are ([`signed_headers`]), with the
    /// node run's id; never fails: what goes wrong is the response's error.
    async fn deliver(&self, org: &str, node_run_id: &str, request: &Request) -> Response {
        let failed = |error: String| Response::failed(AttemptOutcome::Network, error, Duration::ZERO);
        let signer = match self.workflows.signer_of(org).await {
            Ok(signer) => signer,
            Err(err) => return failed(format!("the organization's signing key cannot be read: {err}")),
        };
        let Some((client_id, key)) = signer.as_ref() else {
            return failed("the organization has no API client, whose secret signs its requests".to_owned());
        };
        let key = match key {
            Ok(key) => key,
            Err(why) => return failed(format!("the signing key cannot be opened: {why}")),
        };
        let mut headers = match signed_headers(request, key.as_bytes(), crate::now().millis() / 1000) {
            Ok(headers) => headers,
            Err(why) => return failed(why),
        };
        if let Ok(id) = HeaderValue::from_str(node_run_id) {
            headers.insert(NODE_RUN_HEADER, id);
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        match self.self_calls.path(&request.url) {
            Some(path) => {
                let caller = SelfCaller { client_id: Some(client_id), cause: None };
                self.self_calls.send(caller, method, &path, headers, request.body.clone(), self.timeout).await
            }
            None => self.client.send(method, &request.url, headers, request.body.clone(), self.timeout).await,
        }
    }
}
