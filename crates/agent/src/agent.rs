//! The agent's loops: claim action runs and workflow node runs as slots free up, acknowledge
//! them, carry each out (prepare, sign, send, report) and, on a stop, finish what is in
//! flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{CallError, Retry, Wharf, describe};
use crate::config::{AgentConfig, MAX_CLAIM, MAX_LONG_POLL};
use crate::message::{self, Rebuilt, truthy};
use crate::node_run::{self, RebuiltNodeRun};
use crate::payload::PayloadConfig;
use crate::report::{self, Answer, PROCESSING_FAILURE_SUMMARY, STOPPED_SUMMARY, logs, response_to_report};
use crate::request::{self, Outgoing};

/// The most bytes of a target's response the agent reads; the rest is dropped.
pub const MAX_RESPONSE_BYTES: usize = 10 << 20;

/// How long the runs stopped at the end of the grace period have to report so.
const STOP_REPORT_TIME: Duration = Duration::from_millis(1500);

/// How long an acknowledgement under way when the agent is stopped may still take.
const ACK_ON_STOP: Duration = Duration::from_secs(1);

/// Why an agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("cannot build an HTTP client: {0}")]
    Http(String),
    /// Wharf refused the client id and secret at start.
    #[error(transparent)]
    Credentials(CallError),
}

/// Wharf's execution agent.
pub struct Agent {
    shared: Arc<Shared>,
    installation_id: String,
    poll_interval: Duration,
    long_poll: Duration,
    concurrency: usize,
    visibility_timeout: Option<Duration>,
    shutdown_grace: Duration,
    claim_backoff: crate::config::Backoff,
}

/// What every run's task uses.
struct Shared {
    wharf: Wharf,
    target: reqwest::Client,
    payload: PayloadConfig,
    secret: String,
    request_timeout: Duration,
    retry: Retry,
}

impl Agent {
    /// Checks `config` and builds the HTTP clients; nothing is sent yet.
    pub fn new(config: AgentConfig) -> Result<Self, AgentError> {
        if !matches!(config.wharf_url.scheme(), "http" | "https") {
            return Err(AgentError::Config(format!("the Wharf URL must be http or https, not `{}`", config.wharf_url.scheme())));
        }
        if config.client_id.is_empty() || config.client_secret.is_empty() {
            return Err(AgentError::Config("the client id and the client secret are required".into()));
        }
        if config.concurrency == 0 {
            return Err(AgentError::Config("the concurrency must be at least 1".into()));
        }
        if config.long_poll > MAX_LONG_POLL {
            return Err(AgentError::Config(format!("the long poll may last {} s at most", MAX_LONG_POLL.as_secs())));
        }
        if config.request_timeout.is_zero() {
            return Err(AgentError::Config("the request timeout must be more than zero".into()));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let user_agent = concat!("wharf-agent/", env!("CARGO_PKG_VERSION"));
        let http =
            |builder: reqwest::ClientBuilder| builder.user_agent(user_agent).connect_timeout(Duration::from_secs(10)).build();
        let to_wharf = http(reqwest::Client::builder()).map_err(|e| AgentError::Http(e.to_string()))?;
        // Targets: redirects followed, as Python's `requests` follows them for Port's agent.
        let target = http(reqwest::Client::builder().tls_danger_accept_invalid_certs(config.accept_invalid_certs))
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let wharf =
            Wharf::new(to_wharf, &config.wharf_url, config.client_id, config.client_secret.clone(), config.request_timeout);
        Ok(Self {
            shared: Arc::new(Shared {
                wharf,
                target,
                payload: config.payload,
                secret: config.client_secret,
                request_timeout: config.request_timeout,
                retry: config.report_retry,
            }),
            installation_id: config.installation_id,
            poll_interval: config.poll_interval,
            long_poll: config.long_poll,
            concurrency: config.concurrency,
            visibility_timeout: config.visibility_timeout,
            shutdown_grace: config.shutdown_grace,
            claim_backoff: config.claim_backoff,
        })
    }

    /// Runs until `stop` is cancelled: then claims no more, lets the runs in flight finish
    /// and report for up to the shutdown grace, reports those still going as stopped, and
    /// returns. While Wharf is unreachable it backs off and tries again, however long; only
    /// credentials Wharf refuses at start end it with an error.
    ///
    /// Action runs and workflow node runs are claimed side by side, each with its own long
    /// poll, and carried out within the same slots.
    pub async fn run(self, stop: CancellationToken) -> Result<(), AgentError> {
        if !self.start(&stop).await? {
            tracing::info!("the agent stopped before it claimed anything");
            return Ok(());
        }
        let work = Work {
            slots: Arc::new(Semaphore::new(self.concurrency)),
            tracker: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
        };
        // Boxed: the loops' futures are large, and `run`'s is often awaited on a thread's stack.
        let (actions, nodes) =
            tokio::join!(Box::pin(self.poll(Kind::ActionRuns, &work, &stop)), Box::pin(self.poll(Kind::NodeRuns, &work, &stop)));
        let grace = self.shutdown_grace.saturating_sub(actions.max(nodes));
        let Work { tracker, hard_stop, .. } = work;
        tracker.close();
        tracing::info!(in_flight = tracker.len(), "stopping: finishing the runs in flight");
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                in_flight = tracker.len(),
                "runs still in flight at the end of the grace period are reported as stopped"
            );
            hard_stop.cancel();
            let _ = tokio::time::timeout(STOP_REPORT_TIME + Duration::from_millis(200), tracker.wait()).await;
        }
        tracing::info!("the agent stopped");
        Ok(())
    }

    /// Claims runs of `kind` until `stop`: as many as there are free slots when a slot is
    /// free. The slots are not held during a claim (a long poll would keep them from the
    /// other kind's claim); each run acknowledged then waits for one. Returns how much of the
    /// shutdown grace went on an acknowledgement cut short by the stop.
    async fn poll(&self, kind: Kind, work: &Work, stop: &CancellationToken) -> Duration {
        let wait = (!self.long_poll.is_zero()).then_some(self.long_poll);
        let mut failures = 0u32;
        let mut spent = Duration::ZERO;
        loop {
            let free = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                permit = work.slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            drop(free);
            let limit = work.slots.available_permits().clamp(1, MAX_CLAIM);
            let started = Instant::now();
            let claimed = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                claimed = self.claim(kind, limit, wait) => claimed,
            };
            let runs = match claimed {
                Ok(runs) => runs,
                Err(CallError::Refused { status: 404, .. }) if kind == Kind::NodeRuns => {
                    tracing::warn!("this Wharf hands out no workflow node runs (404); claiming action runs only");
                    break;
                }
                Err(err) => {
                    if self.back_off(&mut failures, &err, kind.claim_what(), stop).await {
                        break;
                    }
                    continue;
                }
            };
            if failures > 0 {
                tracing::info!(kind = kind.name(), "Wharf answers again; claiming");
                failures = 0;
            }
            if runs.is_empty() {
                if sleep_or_stop(self.poll_interval.saturating_sub(started.elapsed()), stop).await {
                    break;
                }
                continue;
            }
            tracing::info!(kind = kind.name(), count = runs.len(), "claimed pending runs");
            if stop.is_cancelled() {
                tracing::info!(
                    kind = kind.name(),
                    count = runs.len(),
                    "stopping: the runs just claimed are left to be claimed again"
                );
                break;
            }
            let count = runs.len();
            let mut acked = Vec::new();
            let (outcome, cut_short) = {
                let acking = self.ack(kind, &runs, &mut acked);
                tokio::pin!(acking);
                tokio::select! {
                    biased;
                    outcome = &mut acking => (outcome, false),
                    () = stop.cancelled() => {
                        // Acknowledged runs not carried out would stay in progress: the
                        // acknowledgement may finish, within a second taken from the grace.
                        let waited = Instant::now();
                        let outcome = tokio::time::timeout(ACK_ON_STOP, &mut acking).await;
                        spent += waited.elapsed();
                        match outcome {
                            Ok(outcome) => (outcome, false),
                            Err(_) => (Ok(()), true),
                        }
                    }
                }
            };
            if cut_short {
                tracing::warn!(
                    kind = kind.name(),
                    count,
                    "stopping: the acknowledgement of the runs just claimed did not finish; unless it reached Wharf, they will be claimed again"
                );
            }
            if let Err(err) = outcome {
                if self.back_off(&mut failures, &err, kind.ack_what(), stop).await {
                    break;
                }
                continue;
            }
            for run in runs {
                let Some(id) = kind.id_of(&run).filter(|id| acked.iter().any(|a| a == id)).map(str::to_owned) else {
                    continue;
                };
                // On a stop, the run waits for its slot in its task, within the grace.
                let slot = tokio::select! {
                    biased;
                    () = stop.cancelled() => None,
                    permit = work.slots.clone().acquire_owned() => Some(permit.expect("the semaphore is never closed")),
                };
                let task = Task { shared: self.shared.clone(), kind, id, doc: run };
                work.tracker.spawn(task.execute(work.slots.clone(), slot, work.hard_stop.clone()));
            }
            if cut_short {
                break;
            }
            if wait.is_none() && count < limit && sleep_or_stop(self.poll_interval, stop).await {
                break;
            }
        }
        spent
    }

    async fn claim(&self, kind: Kind, limit: usize, wait: Option<Duration>) -> Result<Vec<Value>, CallError> {
        let wharf = &self.shared.wharf;
        match kind {
            Kind::ActionRuns => wharf.claim(&self.installation_id, limit, self.visibility_timeout, wait).await,
            Kind::NodeRuns => wharf.claim_node_runs(&self.installation_id, limit, self.visibility_timeout, wait).await,
        }
    }

    /// Gets a token (trying again while Wharf is unreachable) and says that this
    /// organization's agent polls. `false` when stopped before that.
    async fn start(&self, stop: &CancellationToken) -> Result<bool, AgentError> {
        let mut failures = 0;
        loop {
            let authenticated = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(false),
                authenticated = self.shared.wharf.authenticate() => authenticated,
            };
            match authenticated {
                Ok(()) => break,
                Err(err @ CallError::Credentials { .. }) => return Err(AgentError::Credentials(err)),
                Err(err) => {
                    if self.back_off(&mut failures, &err, "get an access token", stop).await {
                        return Ok(false);
                    }
                }
            }
        }
        let streamer = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(false),
            streamer = self.shared.wharf.set_streamer(self.shared.retry) => streamer,
        };
        if let Err(err) = streamer {
            tracing::warn!(error = %err, "could not set the organization's portAgentStreamerName to POLLING; claiming runs all the same");
        }
        tracing::info!(
            installation_id = self.installation_id,
            concurrency = self.concurrency,
            long_poll_ms = self.long_poll.as_millis() as u64,
            "the agent is claiming runs"
        );
        Ok(true)
    }

    /// Acknowledges the claimed runs that have an id, adding to `acked` the ids this agent
    /// now holds (as they are acknowledged: what is there stays valid if this is dropped).
    /// Action runs are acknowledged in one call, and an error leaves `acked` empty; node runs
    /// one by one, and one that cannot be acknowledged is left (to be claimed again).
    async fn ack(&self, kind: Kind, runs: &[Value], acked: &mut Vec<String>) -> Result<(), CallError> {
        let ids: Vec<String> = runs.iter().filter_map(|run| kind.id_of(run)).map(str::to_owned).collect();
        if ids.len() < runs.len() {
            tracing::error!(kind = kind.name(), count = runs.len() - ids.len(), "claimed runs without an id are ignored");
        }
        if ids.is_empty() {
            return Ok(());
        }
        let retry = self.shared.retry;
        match kind {
            Kind::ActionRuns => acked.extend(self.shared.wharf.ack(&ids, retry).await?),
            Kind::NodeRuns => {
                for id in ids.iter() {
                    match self.shared.wharf.ack_node_run(id, retry).await {
                        Ok(true) => acked.push(id.clone()),
                        Ok(false) => {}
                        Err(err) => {
                            tracing::warn!(node_run_id = id, error = %err, "a claimed node run was not acknowledged; it is left to be claimed again");
                        }
                    }
                }
            }
        }
        if acked.len() < ids.len() {
            tracing::info!(
                kind = kind.name(),
                claimed = ids.len(),
                acked = acked.len(),
                "some claimed runs were acknowledged elsewhere; they are left alone"
            );
        }
        Ok(())
    }

    /// Logs a failed call and waits the backoff's next pause; `true` when stopped meanwhile.
    async fn back_off(&self, failures: &mut u32, err: &CallError, what: &str, stop: &CancellationToken) -> bool {
        let delay = self.claim_backoff.delay(*failures);
        *failures = failures.saturating_add(1);
        tracing::warn!(error = %err, failures = *failures, retry_in_ms = delay.as_millis() as u64, "could not {what}; backing off");
        sleep_or_stop(delay, stop).await
    }
}

/// Sleeps `delay`; `true` when `stop` came first.
async fn sleep_or_stop(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// Which runs a claim loop takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Actions' runs (`/v1/actions/runs/…`).
    ActionRuns,
    /// Workflow node runs (`/v1/workflows/…`).
    NodeRuns,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::ActionRuns => "action runs",
            Self::NodeRuns => "workflow node runs",
        }
    }

    fn claim_what(self) -> &'static str {
        match self {
            Self::ActionRuns => "claim runs",
            Self::NodeRuns => "claim workflow node runs",
        }
    }

    fn ack_what(self) -> &'static str {
        match self {
            Self::ActionRuns => "acknowledge the claimed runs",
            Self::NodeRuns => "acknowledge the claimed workflow node runs",
        }
    }

    /// A claimed document's id: an action run's `id`, a node run's `identifier`.
    fn id_of(self, doc: &Value) -> Option<&str> {
        match self {
            Self::ActionRuns => message::run_id(doc),
            Self::NodeRuns => node_run::node_run_id(doc),
        }
    }
}

/// What the claim loops share: the slots runs are carried out in, the tasks carrying them
/// out, and the token that cuts those short at the end of the grace.
struct Work {
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    hard_stop: CancellationToken,
}

/// One acknowledged run (or node run) to carry out.
struct Task {
    shared: Arc<Shared>,
    kind: Kind,
    id: String,
    doc: Value,
}

/// Where one run stands.
#[derive(Default)]
struct RunState {
    /// A final status was reported: nothing is reported over it.
    status_reported: AtomicBool,
}

impl Task {
    /// Carries out the run in a slot (`slot`, or the next free one); stopped with `hard_stop`.
    async fn execute(self, slots: Arc<Semaphore>, slot: Option<OwnedSemaphorePermit>, hard_stop: CancellationToken) {
        let state = RunState::default();
        let work = async {
            let _slot = match slot {
                Some(slot) => slot,
                None => slots.acquire_owned().await.expect("the semaphore is never closed"),
            };
            match self.kind {
                Kind::ActionRuns => process(&self.shared, &self.id, &self.doc, &state).await,
                Kind::NodeRuns => process_node_run(&self.shared, &self.id, &self.doc, &state).await,
            }
        };
        tokio::select! {
            biased;
            () = work => {}
            () = hard_stop.cancelled() => stopped(&self.shared, self.kind, &self.id, &state).await,
        }
    }
}

/// Port's `WebhookInvoker._invoke_run`, with its run logs.
async fn process(shared: &Arc<Shared>, run_id: &str, run: &Value, state: &RunState) {
    let run_message = match message::rebuild(run_id, run) {
        Ok(Rebuilt::Run(run_message)) => run_message,
        Ok(Rebuilt::NotForAgent) => {
            tracing::warn!(run_id, "skipping the run: its invocation method is not for an agent");
            return;
        }
        Err(err) => return fail(shared, run_id, Some(err.to_string()), state).await,
    };
    tracing::info!(run_id, "processing the run");
    let synchronized = truthy(&run_message.invocation["synchronized"]);
    let preparing = shared.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        preparing.payload.prepare(run_message.message, &run_message.invocation, &preparing.secret)
    })
    .await;
    let mut prepared = match prepared {
        Ok(Some(prepared)) => prepared,
        Ok(None) => return fail(shared, run_id, Some("no mapping of the payload config is enabled for it".into()), state).await,
        Err(_) => return fail(shared, run_id, Some("preparing its payload failed".into()), state).await,
    };
    for (path, err) in &prepared.decrypt_failures {
        tracing::warn!(run_id, path, error = %err, "a field to decrypt did not decrypt; it is left as it is");
    }
    log(shared, run_id, logs::RECEIVED).await;
    log(shared, run_id, logs::PREPARING).await;
    log(shared, run_id, logs::SENDING).await;
    let outgoing = match request::sign(&mut prepared.request, &shared.secret, unix_seconds()) {
        Ok(outgoing) => outgoing,
        Err(err) => return fail(shared, run_id, Some(err.to_string()), state).await,
    };
    let answer = match send(shared, outgoing).await {
        Ok(answer) => answer,
        Err(err) => return fail(shared, run_id, Some(format!("the request was not answered: {err}")), state).await,
    };
    tracing::info!(run_id, status = answer.status, "the target answered");
    if answer.ok() {
        log(shared, run_id, &logs::succeeded(answer.status)).await;
    } else {
        log(shared, run_id, &logs::failed(answer.status, &answer.text)).await;
    }
    if let Some(response) = response_to_report(synchronized, &answer) {
        log(shared, run_id, logs::REPORTING_RESPONSE).await;
        match shared.wharf.report_response(run_id, &response, shared.retry).await {
            Ok(()) => log(shared, run_id, logs::RESPONSE_REPORTED).await,
            Err(CallError::Refused { status, text }) => log(shared, run_id, &logs::response_not_reported(status, &text)).await,
            Err(err) => tracing::error!(run_id, error = %err, "the run's response was not reported"),
        }
    }
    let reporting = shared.clone();
    let answered = answer.clone();
    let report = tokio::task::spawn_blocking(move || reporting.payload.report(&prepared, &answered))
        .await
        .unwrap_or_else(|_| report::Report::default_for(synchronized, &answer));
    if let Some(patch) = report.to_patch() {
        match shared.wharf.report_status(run_id, &patch, shared.retry).await {
            Ok(()) => {
                if patch.get("status").is_some() {
                    state.status_reported.store(true, Ordering::SeqCst);
                }
            }
            Err(CallError::Refused { status, text }) => log(shared, run_id, &logs::status_not_reported(status, &text)).await,
            Err(err) => tracing::error!(run_id, error = %err, "the run's status was not reported"),
        }
    }
    if !answer.ok() {
        // Port's agent raises here, and its loop fails the run unless it has ended.
        if !state.status_reported.load(Ordering::SeqCst) {
            fail(shared, run_id, None, state).await;
        }
        return;
    }
    log(shared, run_id, logs::FINISHED).await;
    tracing::info!(run_id, "the run was processed");
}

/// Fails a run that could not be carried out: a log line saying why (Wharf's addition), then
/// Port's `{"status": "FAILURE", "summary": "Agent failed to process the run"}`.
async fn fail(shared: &Shared, run_id: &str, reason: Option<String>, state: &RunState) {
    tracing::warn!(run_id, reason = reason.as_deref().unwrap_or("the target answered with a failure"), "failing the run");
    if let Some(reason) = reason {
        log(shared, run_id, &format!("The agent could not process the run: {reason}")).await;
    }
    let patch = json!({"status": "FAILURE", "summary": PROCESSING_FAILURE_SUMMARY});
    match shared.wharf.report_status(run_id, &patch, shared.retry).await {
        Ok(()) => state.status_reported.store(true, Ordering::SeqCst),
        Err(err) => tracing::error!(run_id, error = %err, "the run's failure was not reported"),
    }
}

/// Reports a run cut short by the end of the grace period (unless it had already ended).
async fn stopped(shared: &Shared, kind: Kind, run_id: &str, state: &RunState) {
    if state.status_reported.load(Ordering::SeqCst) {
        return;
    }
    tracing::warn!(run_id, kind = kind.name(), "the agent stopped before the run finished; reporting it failed");
    let once = Retry { attempts: 1, ..shared.retry };
    let report = async {
        match kind {
            Kind::ActionRuns => {
                let _ = shared.wharf.log(run_id, STOPPED_SUMMARY, once).await;
                let patch = json!({"status": "FAILURE", "summary": STOPPED_SUMMARY});
                shared.wharf.report_status(run_id, &patch, once).await
            }
            Kind::NodeRuns => {
                let _ = shared.wharf.node_log(run_id, STOPPED_SUMMARY, once).await;
                shared.wharf.report_node_run(run_id, &node_run::failed_patch(), once).await
            }
        }
    };
    match tokio::time::timeout(STOP_REPORT_TIME, report).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(run_id, error = %err, "the stopped run was not reported"),
        Err(_) => tracing::error!(run_id, "the stopped run was not reported in time"),
    }
}

/// Port's `WebhookInvoker._invoke_wf_node_run`, with its node run logs: the request sent,
/// a synchronized node run completed `SUCCESS` with the response as its output, an
/// asynchronous one left to its backend, and one whose request failed completed `FAILED`.
async fn process_node_run(shared: &Arc<Shared>, node_run_id: &str, doc: &Value, state: &RunState) {
    let node_run = match node_run::rebuild(node_run_id, doc) {
        Ok(RebuiltNodeRun::NodeRun(node_run)) => node_run,
        Ok(RebuiltNodeRun::NotForAgent) => {
            tracing::warn!(node_run_id, "skipping the workflow node run: its config is not for an agent");
            return;
        }
        Err(err) => return fail_node_run(shared, node_run_id, Some(err.to_string()), state).await,
    };
    tracing::info!(node_run_id, "processing the workflow node run");
    let synchronized = node_run.synchronized();
    let preparing = shared.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let defaults = node_run.defaults();
        preparing.payload.prepare_with(node_run.message, defaults, &preparing.secret)
    })
    .await;
    let mut prepared = match prepared {
        Ok(Some(prepared)) => prepared,
        Ok(None) => {
            let reason = "no mapping of the payload config is enabled for it".to_owned();
            return fail_node_run(shared, node_run_id, Some(reason), state).await;
        }
        Err(_) => return fail_node_run(shared, node_run_id, Some("preparing its payload failed".into()), state).await,
    };
    for (path, err) in &prepared.decrypt_failures {
        tracing::warn!(node_run_id, path, error = %err, "a field to decrypt did not decrypt; it is left as it is");
    }
    node_log(shared, node_run_id, node_run::logs::RECEIVED).await;
    node_log(shared, node_run_id, logs::SENDING).await;
    let outgoing = match request::sign(&mut prepared.request, &shared.secret, unix_seconds()) {
        Ok(outgoing) => outgoing,
        Err(err) => return fail_node_run(shared, node_run_id, Some(err.to_string()), state).await,
    };
    let answer = match send(shared, outgoing).await {
        Ok(answer) => answer,
        Err(err) => {
            let reason = format!("the request was not answered: {err}");
            return fail_node_run(shared, node_run_id, Some(reason), state).await;
        }
    };
    tracing::info!(node_run_id, status = answer.status, "the target answered");
    if !answer.ok() {
        node_log(shared, node_run_id, &logs::failed(answer.status, &answer.text)).await;
        return fail_node_run(shared, node_run_id, None, state).await;
    }
    if !synchronized {
        // Sent: its backend completes it now, and a stop must not fail it.
        state.status_reported.store(true, Ordering::SeqCst);
    }
    node_log(shared, node_run_id, &logs::succeeded(answer.status)).await;
    if synchronized {
        match shared.wharf.report_node_run(node_run_id, &node_run::success_patch(&answer), shared.retry).await {
            Ok(()) => state.status_reported.store(true, Ordering::SeqCst),
            Err(CallError::Refused { status, text }) => {
                node_log(shared, node_run_id, &logs::status_not_reported(status, &text)).await;
            }
            Err(err) => tracing::error!(node_run_id, error = %err, "the workflow node run's completion was not reported"),
        }
    }
    node_log(shared, node_run_id, node_run::logs::FINISHED).await;
    tracing::info!(node_run_id, "the workflow node run was processed");
}

/// Completes a node run whose request failed or could not be made `FAILED` (Port's
/// `_report_wf_node_run_failure`), after a log line saying why when there is more to say
/// than the status line already written (Wharf's addition).
async fn fail_node_run(shared: &Shared, node_run_id: &str, reason: Option<String>, state: &RunState) {
    tracing::warn!(
        node_run_id,
        reason = reason.as_deref().unwrap_or("the target answered with a failure"),
        "failing the workflow node run"
    );
    if let Some(reason) = reason {
        node_log(shared, node_run_id, &format!("The agent could not process the workflow node run: {reason}")).await;
    }
    match shared.wharf.report_node_run(node_run_id, &node_run::failed_patch(), shared.retry).await {
        Ok(()) => state.status_reported.store(true, Ordering::SeqCst),
        Err(err) => tracing::error!(node_run_id, error = %err, "the workflow node run's failure was not reported"),
    }
}

/// Writes one line of a node run's log; a line that cannot be written is logged here instead.
async fn node_log(shared: &Shared, node_run_id: &str, message: &str) {
    if let Err(err) = shared.wharf.node_log(node_run_id, message, shared.retry).await {
        tracing::warn!(node_run_id, error = %err, "a workflow node run log line was not written");
    }
}

/// Writes one line of the run's log; a line that cannot be written is logged here instead.
async fn log(shared: &Shared, run_id: &str, message: &str) {
    if let Err(err) = shared.wharf.log(run_id, message, shared.retry).await {
        tracing::warn!(run_id, error = %err, "a run log line was not written");
    }
}

/// Sends a signed request to its target and reads the answer (at most
/// [`MAX_RESPONSE_BYTES`] of it).
async fn send(shared: &Shared, outgoing: Outgoing) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(outgoing.method.as_bytes()).map_err(|_| "the method is not valid".to_owned())?;
    let mut headers = HeaderMap::with_capacity(outgoing.headers.len());
    for (name, value) in &outgoing.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("the header `{name}` is not valid"))?;
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| format!("the header `{name}` has an invalid value"))?;
        headers.insert(header, value);
    }
    let mut request = shared.target.request(method, outgoing.url).headers(headers).timeout(shared.request_timeout);
    if let Some(body) = outgoing.body {
        request = request.body(body);
    }
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let mut joined: Vec<(String, String)> = Vec::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match joined.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => joined.push((name.as_str().to_owned(), value)),
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        let room = MAX_RESPONSE_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_RESPONSE_BYTES {
            tracing::warn!(
                limit = MAX_RESPONSE_BYTES,
                "the target's response is longer than the agent reads; the rest is dropped"
            );
            break;
        }
    }
    Ok(Answer { status, headers: joined, text: String::from_utf8_lossy(&body).into_owned() })
}

fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
