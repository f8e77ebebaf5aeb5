//! The agent's loop against a small in-test Wharf that plays the polling protocol
//! (`access_token`, `organization`, `claim-pending`, `ack`, run logs, response and status)
//! and a receiver in the "private network".

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, patch, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;
use wharf_agent::node_run::logs as node_logs;
use wharf_agent::report::{PROCESSING_FAILURE_SUMMARY, STOPPED_SUMMARY, logs};
use wharf_agent::{Agent, AgentConfig, AgentError, Backoff, PayloadConfig, Retry};

const CLIENT_ID: &str = "agent-client";
const SECRET: &str = "agent-secret-0123456789abcdefghijklmnop";

// ---- A Wharf that plays the protocol ------------------------------------------------------

#[derive(Default)]
struct WharfState {
    /// Runs the next claims hand out.
    pending: Vec<Value>,
    /// When set, acks acknowledge only these ids.
    ack_only: Option<Vec<String>>,
    /// Claims answered 503 before any is served.
    claim_failures: usize,
    /// The token that works (`tok-N`); `None` until one is asked for.
    token: Option<String>,
    tokens_issued: usize,
    unauthorized: usize,
    org_patches: Vec<Value>,
    claims: Vec<Value>,
    acks: Vec<Value>,
    logs: Vec<(String, String)>,
    responses: Vec<(String, Value)>,
    patches: Vec<(String, Value)>,
    /// Claims answered only after their `waitMs` when nothing is pending, as Wharf's are.
    long_polls: bool,
    /// Workflow node runs the next node-run claims hand out.
    pending_nodes: Vec<Value>,
    /// Node runs whose acknowledgement is answered 409 (another agent took them).
    nodes_taken: Vec<String>,
    node_claims: Vec<Value>,
    node_acks: Vec<String>,
    node_logs: Vec<(String, String)>,
    node_patches: Vec<(String, Value)>,
}

impl WharfState {
    fn logs_of(&self, run: &str) -> Vec<String> {
        self.logs.iter().filter(|(id, _)| id == run).map(|(_, m)| m.clone()).collect()
    }

    fn patches_of(&self, run: &str) -> Vec<Value> {
        self.patches.iter().filter(|(id, _)| id == run).map(|(_, p)| p.clone()).collect()
    }

    fn node_logs_of(&self, node_run: &str) -> Vec<String> {
        self.node_logs.iter().filter(|(id, _)| id == node_run).map(|(_, m)| m.clone()).collect()
    }

    fn node_patches_of(&self, node_run: &str) -> Vec<Value> {
        self.node_patches.iter().filter(|(id, _)| id == node_run).map(|(_, p)| p.clone()).collect()
    }
}

/// What both servers saw, in order (`ack r_1`, `send r_1`, `patch r_1`…).
type Events = Arc<Mutex<Vec<String>>>;

#[derive(Clone)]
struct FakeWharf {
    state: Arc<Mutex<WharfState>>,
    events: Events,
}

impl FakeWharf {
    fn new(events: &Events) -> Self {
        Self { state: Arc::default(), events: events.clone() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut WharfState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn event(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        self.with(|s| {
            let ok = s.token.as_ref().is_some_and(|t| given == format!("Bearer {t}"));
            if !ok {
                s.unauthorized += 1;
            }
            ok
        })
    }

    /// Wharf's routes for action runs and workflow node runs.
    fn router(&self) -> Router {
        self.action_routes()
            .route("/v1/workflows/runs/claim-pending", post(claim_nodes))
            .route("/v1/workflows/runs/ack", patch(ack_node))
            .route("/v1/workflows/nodes/runs/{id}/logs", post(node_log))
            .route("/v1/workflows/nodes/runs/{id}", patch(node_patch))
            .with_state(self.clone())
    }

    /// A Wharf that knows no workflow node runs: their claim is answered 404 (counted).
    fn router_without_node_runs(&self) -> Router {
        self.action_routes().route("/v1/workflows/runs/claim-pending", post(no_node_runs)).with_state(self.clone())
    }

    fn action_routes(&self) -> Router<FakeWharf> {
        Router::new()
            .route("/v1/auth/access_token", post(access_token))
            .route("/v1/organization", patch(organization))
            .route("/v1/actions/runs/claim-pending", post(claim))
            .route("/v1/actions/runs/ack", patch(ack))
            .route("/v1/actions/runs/{id}/logs", post(run_log))
            .route("/v1/actions/runs/{id}/response", patch(run_response))
            .route("/v1/actions/runs/{id}", patch(run_patch))
    }
}

fn refused(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"ok": false, "error": error, "message": error}))).into_response()
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

async fn access_token(State(wharf): State<FakeWharf>, axum::Json(body): axum::Json<Value>) -> Response {
    if body != json!({"clientId": CLIENT_ID, "clientSecret": SECRET}) {
        return refused(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let token = wharf.with(|s| {
        s.tokens_issued += 1;
        let token = format!("tok-{}", s.tokens_issued);
        s.token = Some(token.clone());
        token
    });
    ok(json!({"ok": true, "accessToken": token, "expiresIn": 3600, "tokenType": "Bearer"}))
}

async fn organization(State(wharf): State<FakeWharf>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    wharf.with(|s| s.org_patches.push(body));
    ok(json!({"ok": true}))
}

async fn claim(State(wharf): State<FakeWharf>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let limit = body["limit"].as_u64().unwrap_or(0) as usize;
    let wait = body["waitMs"].as_u64().unwrap_or(0);
    if wharf.with(|s| s.long_polls && s.pending.is_empty()) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let answer = wharf.with(|s| {
        s.claims.push(body);
        if s.claim_failures > 0 {
            s.claim_failures -= 1;
            return None;
        }
        let n = limit.min(s.pending.len());
        Some(s.pending.drain(..n).collect::<Vec<_>>())
    });
    match answer {
        None => refused(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Some(runs) => ok(json!({"ok": true, "runs": runs})),
    }
}

async fn ack(State(wharf): State<FakeWharf>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let ids: Vec<String> = body["runIds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    let acked: Vec<String> = wharf.with(|s| {
        s.acks.push(body.clone());
        ids.into_iter().filter(|id| s.ack_only.as_ref().is_none_or(|only| only.contains(id))).collect()
    });
    for id in &acked {
        wharf.event(format!("ack {id}"));
    }
    ok(json!({"ok": true, "ackedCount": acked.len(), "acked": acked}))
}

async fn run_log(
    State(wharf): State<FakeWharf>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let message = body["message"].as_str().unwrap().to_owned();
    wharf.event(format!("log {id}"));
    wharf.with(|s| s.logs.push((id, message)));
    (StatusCode::CREATED, axum::Json(json!({"ok": true}))).into_response()
}

async fn run_response(
    State(wharf): State<FakeWharf>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    wharf.event(format!("response {id}"));
    wharf.with(|s| s.responses.push((id, body["response"].clone())));
    ok(json!({"ok": true}))
}

async fn run_patch(
    State(wharf): State<FakeWharf>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    wharf.event(format!("patch {id}"));
    let ended = wharf.with(|s| s.patches.iter().any(|(run, p)| run == &id && p.get("status").is_some()));
    wharf.with(|s| s.patches.push((id, body)));
    if ended { refused(StatusCode::CONFLICT, "run_ended") } else { ok(json!({"ok": true})) }
}

async fn claim_nodes(State(wharf): State<FakeWharf>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let limit = body["limit"].as_u64().unwrap_or(0) as usize;
    let wait = body["waitMs"].as_u64().unwrap_or(0);
    if wharf.with(|s| s.long_polls && s.pending_nodes.is_empty()) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let node_runs = wharf.with(|s| {
        s.node_claims.push(body);
        let n = limit.min(s.pending_nodes.len());
        s.pending_nodes.drain(..n).collect::<Vec<_>>()
    });
    ok(json!({"ok": true, "nodeRuns": node_runs}))
}

async fn no_node_runs(State(wharf): State<FakeWharf>, axum::Json(body): axum::Json<Value>) -> Response {
    wharf.with(|s| s.node_claims.push(body));
    refused(StatusCode::NOT_FOUND, "not_found")
}

async fn ack_node(State(wharf): State<FakeWharf>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let id = body["nodeRunIdentifier"].as_str().unwrap().to_owned();
    let taken = wharf.with(|s| {
        s.node_acks.push(id.clone());
        s.nodes_taken.contains(&id)
    });
    if taken {
        return refused(StatusCode::CONFLICT, "node_run_acknowledged");
    }
    wharf.event(format!("ack {id}"));
    ok(json!({"ok": true, "acked": true}))
}

async fn node_log(
    State(wharf): State<FakeWharf>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(body["logs"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["logs"][0]["level"], "INFO");
    let message = body["logs"][0]["message"].as_str().unwrap().to_owned();
    wharf.event(format!("log {id}"));
    wharf.with(|s| s.node_logs.push((id, message)));
    (StatusCode::CREATED, axum::Json(json!({"ok": true}))).into_response()
}

async fn node_patch(
    State(wharf): State<FakeWharf>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !wharf.authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    wharf.event(format!("patch {id}"));
    let ended = wharf.with(|s| s.node_patches.iter().any(|(node_run, _)| node_run == &id));
    wharf.with(|s| s.node_patches.push((id, body)));
    if ended { refused(StatusCode::CONFLICT, "node_run_completed") } else { ok(json!({"ok": true})) }
}

// ---- A receiver in the private network ----------------------------------------------------

struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    events: Events,
    status: StatusCode,
    answer: &'static str,
    /// When set, each request waits for a permit before it is answered.
    gate: Option<Arc<Semaphore>>,
    in_flight: Arc<Mutex<(usize, usize)>>,
}

impl Receiver {
    fn new(events: &Events, status: StatusCode, answer: &'static str) -> Self {
        Self { received: Arc::default(), events: events.clone(), status, answer, gate: None, in_flight: Arc::default() }
    }

    fn gated(mut self) -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        self.gate = Some(gate.clone());
        (self, gate)
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    fn most_at_once(&self) -> usize {
        self.in_flight.lock().unwrap().1
    }
}

async fn receive(State(receiver): State<Receiver>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    // An action run's message names its run in `context.runId`; the node runs' bodies here
    // in `nodeRun`.
    let run = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["context"]["runId"].as_str().or_else(|| b["nodeRun"].as_str()).map(str::to_owned));
    receiver.events.lock().unwrap().push(format!("send {}", run.unwrap_or_default()));
    receiver.received.lock().unwrap().push(Received { method, uri, headers, body });
    {
        let mut in_flight = receiver.in_flight.lock().unwrap();
        in_flight.0 += 1;
        in_flight.1 = in_flight.1.max(in_flight.0);
    }
    if let Some(gate) = &receiver.gate {
        gate.acquire().await.unwrap().forget();
    }
    receiver.in_flight.lock().unwrap().0 -= 1;
    (receiver.status, [("content-type", "application/json")], receiver.answer).into_response()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn serve_receiver(receiver: &Receiver) -> String {
    let addr = serve(Router::new().fallback(any(receive)).with_state(receiver.clone())).await;
    format!("http://{addr}/hook")
}

// ---- Helpers --------------------------------------------------------------------------------

fn config(wharf: SocketAddr) -> AgentConfig {
    let mut config = AgentConfig::new(Url::parse(&format!("http://{wharf}")).unwrap(), CLIENT_ID.into(), SECRET.into());
    config.installation_id = "test-agent".into();
    config.poll_interval = Duration::from_millis(20);
    config.long_poll = Duration::from_secs(1);
    config.concurrency = 4;
    config.claim_backoff = Backoff { initial: Duration::from_millis(40), max: Duration::from_millis(200) };
    config.report_retry =
        Retry { attempts: 3, backoff: Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100) } };
    config.shutdown_grace = Duration::from_secs(5);
    config
}

fn run_doc(id: &str, url: &str, synchronized: bool) -> Value {
    json!({
        "id": id,
        "status": "IN_PROGRESS",
        "action": {"identifier": "deploy"},
        "payload": {
            "type": "WEBHOOK", "url": url, "agent": true, "synchronized": synchronized,
            "method": "POST", "headers": {"X-Team": "a"},
            "body": {"inputs": {"ref": "main"}, "port_context": {"runId": id}}
        }
    })
}

/// A node run as `POST /v1/workflows/runs/claim-pending` hands it out: its rendered config.
fn node_run_doc(id: &str, url: &str, synchronized: bool) -> Value {
    json!({
        "identifier": id,
        "config": {
            "type": "WEBHOOK", "url": url, "method": "POST",
            "headers": {"X-Host": "db-1", "Authorization": "Bearer in-clear"},
            "body": {"nodeRun": id, "host": "db-1"},
            "synchronized": synchronized, "agent": true
        },
        "agentClaim": {"installationId": "test-agent"}
    })
}

fn node_finished(node_run: &'static str) -> impl Fn(&WharfState) -> bool {
    move |s| s.node_logs_of(node_run).iter().any(|m| m == node_logs::FINISHED)
}

struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), AgentError>>,
}

fn start(config: AgentConfig) -> Running {
    let stop = CancellationToken::new();
    let agent = Agent::new(config).expect("a valid configuration");
    let handle = tokio::spawn(agent.run(stop.clone()));
    Running { stop, handle }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the agent stops within 10 s")
            .expect("the agent's task")
            .expect("the agent stops cleanly");
    }
}

/// Waits (10 s at most) until `done` holds of the fake Wharf's state.
async fn until(wharf: &FakeWharf, what: &str, done: impl Fn(&WharfState) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if wharf.with(|s| done(s)) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn finished(run: &'static str) -> impl Fn(&WharfState) -> bool {
    move |s| s.logs_of(run).iter().any(|m| m == logs::FINISHED)
}

fn verify_signature(headers: &HeaderMap, body: &[u8]) {
    let timestamp = headers["x-port-timestamp"].to_str().unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-port-signature"].to_str().unwrap(), expected, "signed over the raw body as sent");
}

// ---- Tests ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_run_is_acked_sent_signed_and_reported() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, r#"{"deployed": true}"#);
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending.push(run_doc("r_1", &url, true)));
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "r_1 is processed", finished("r_1")).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.org_patches, [json!({"settings": {"portAgentStreamerName": "POLLING"}})]);
    assert_eq!(
        state.claims[0],
        json!({"installationId": "test-agent", "limit": 4, "invocationMethod": "WEBHOOK", "waitMs": 1000})
    );
    assert_eq!(state.acks, [json!({"runIds": ["r_1"]})]);
    assert_eq!(
        state.logs_of("r_1"),
        [
            logs::RECEIVED.to_owned(),
            logs::PREPARING.to_owned(),
            logs::SENDING.to_owned(),
            "Action invocation has completed successfully with status code: 200".to_owned(),
            logs::REPORTING_RESPONSE.to_owned(),
            logs::RESPONSE_REPORTED.to_owned(),
            logs::FINISHED.to_owned(),
        ]
    );
    assert_eq!(state.responses, [("r_1".to_owned(), json!({"deployed": true}))]);
    assert_eq!(state.patches, [("r_1".to_owned(), json!({"status": "SUCCESS"}))]);
    assert_eq!(state.unauthorized, 0);
    assert_eq!(state.tokens_issued, 1, "one token serves every call");

    let received = receiver.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.uri.path(), "/hook");
    let invocation = json!({"type": "WEBHOOK", "url": url, "synchronized": true, "method": "POST", "headers": {"X-Team": "a"}});
    let message = json!({
        "inputs": {"ref": "main"},
        "port_context": {"runId": "r_1"},
        "headers": {"X-Team": "a"},
        "payload": {"action": {"invocationMethod": invocation}},
        "context": {"runId": "r_1"}
    });
    assert_eq!(request.body, serde_json::to_vec(&message).unwrap(), "the rebuilt message, compact, as signed");
    verify_signature(&request.headers, &request.body);
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(request.headers["user-agent"].to_str().unwrap().starts_with("wharf-agent/"));
    assert!(request.headers.get("x-team").is_none(), "Port's default mapping sends no headers of the invocation");

    let events = events.lock().unwrap();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap_or_else(|| panic!("{e} in {events:?}"));
    assert!(at("ack r_1") < at("send r_1") && at("send r_1") < at("patch r_1"), "ack, send, report: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_runs_acknowledged_to_this_agent_are_carried_out() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::ACCEPTED, "");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| {
        s.pending = vec![run_doc("r_mine", &url, false), run_doc("r_theirs", &url, false)];
        s.ack_only = Some(vec!["r_mine".into()]);
    });
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "r_mine is processed", finished("r_mine")).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.acks, [json!({"runIds": ["r_mine", "r_theirs"]})]);
    assert!(state.logs_of("r_theirs").is_empty() && state.patches_of("r_theirs").is_empty(), "r_theirs is left alone");
    assert_eq!(state.patches_of("r_mine"), Vec::<Value>::new(), "an asynchronous run answered 202 is left to its backend");
    let received = receiver.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["context"]["runId"], "r_mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_wharf_is_unreachable_the_agent_backs_off_and_then_recovers() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, "{}");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| {
        s.pending.push(run_doc("r_1", &url, true));
        s.claim_failures = 2;
    });
    // Wharf is down: its first three connections are dropped unanswered, then it serves.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let router = wharf.router();
    let dropped_at = dropped.clone();
    tokio::spawn(async move {
        for _ in 0..3 {
            let (connection, _) = listener.accept().await.unwrap();
            dropped_at.lock().unwrap().push(Instant::now());
            drop(connection);
        }
        axum::serve(listener, router).await.unwrap();
    });
    let agent = start(config(addr));
    until(&wharf, "r_1 is processed", finished("r_1")).await;
    agent.stop().await;

    let dropped = dropped.lock().unwrap();
    assert_eq!(dropped.len(), 3);
    for pair in dropped.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(40), "backed off between tries: {:?}", pair[1] - pair[0]);
    }
    let state = wharf.state.lock().unwrap();
    assert!(state.claims.len() >= 3, "two claims answered 503, then one that got the run: {}", state.claims.len());
    assert_eq!(state.patches, [("r_1".to_owned(), json!({"status": "SUCCESS"}))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_the_run_in_flight_finish_and_report() {
    let events = Events::default();
    let (receiver, gate) = Receiver::new(&events, StatusCode::OK, r#"{"done": 1}"#).gated();
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending.push(run_doc("r_1", &url, true)));
    let mut config = config(serve(wharf.router()).await);
    config.long_poll = Duration::ZERO;
    let agent = start(config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.count() == 0 {
        assert!(Instant::now() < deadline, "the request reaches the receiver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.stop.cancel();
    let claims_at_stop = wharf.with(|s| s.claims.len());
    gate.add_permits(1);
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.patches, [("r_1".to_owned(), json!({"status": "SUCCESS"}))], "finished and reported");
    assert_eq!(state.logs_of("r_1").last().map(String::as_str), Some(logs::FINISHED));
    assert!(state.claims.len() <= claims_at_stop + 1, "no claims after the stop (one may have been on its way)");
    assert!(state.claims.iter().all(|c| c.get("waitMs").is_none()), "no long poll when it is off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_going_at_the_end_of_the_grace_period_is_reported_stopped() {
    let events = Events::default();
    let (receiver, _gate) = Receiver::new(&events, StatusCode::OK, "{}").gated();
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending.push(run_doc("r_1", &url, true)));
    let mut config = config(serve(wharf.router()).await);
    config.shutdown_grace = Duration::from_millis(300);
    let agent = start(config);
    until(&wharf, "the request is sent", |s| s.logs_of("r_1").iter().any(|m| m == logs::SENDING)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.count() == 0 {
        assert!(Instant::now() < deadline, "the request reaches the receiver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.patches, [("r_1".to_owned(), json!({"status": "FAILURE", "summary": STOPPED_SUMMARY}))]);
    assert_eq!(state.logs_of("r_1").last().map(String::as_str), Some(STOPPED_SUMMARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_fails_the_run_once_with_ports_summary() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::INTERNAL_SERVER_ERROR, "boom");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending.push(run_doc("r_1", &url, false)));
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "r_1 is reported", |s| !s.patches_of("r_1").is_empty()).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(
        state.patches,
        [(
            "r_1".to_owned(),
            json!({"status": "FAILURE", "summary": "Failed to invoke the webhook with status code: 500. Response: boom"})
        )]
    );
    assert_eq!(
        state.logs_of("r_1"),
        [logs::RECEIVED, logs::PREPARING, logs::SENDING, "Action invocation failed with status code: 500 and response: boom"]
    );
    assert!(state.responses.is_empty(), "an asynchronous run reports no response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_cannot_be_carried_out_are_failed_with_the_reason_logged() {
    let events = Events::default();
    let wharf = FakeWharf::new(&events);
    // Nothing listens on the target's port: the request gets no answer.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let mut malformed = run_doc("r_bad", "http://127.0.0.1:1/", false);
    malformed["payload"]["body"] = json!("not an object");
    wharf.with(|s| s.pending = vec![malformed, run_doc("r_down", &format!("http://{closed}/hook"), false)]);
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "both runs are failed", |s| !s.patches_of("r_bad").is_empty() && !s.patches_of("r_down").is_empty()).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    let failed = json!({"status": "FAILURE", "summary": PROCESSING_FAILURE_SUMMARY});
    assert_eq!(state.patches_of("r_bad"), std::slice::from_ref(&failed));
    assert_eq!(
        state.logs_of("r_bad"),
        ["The agent could not process the run: the run's `payload.body` is a string, not an object"]
    );
    assert_eq!(state.patches_of("r_down"), [failed]);
    let down = state.logs_of("r_down");
    assert_eq!(&down[..3], [logs::RECEIVED, logs::PREPARING, logs::SENDING]);
    assert!(down[3].starts_with("The agent could not process the run: the request was not answered: "), "{down:?}");
    assert!(!down[3].contains(&closed.port().to_string()), "the URL is not quoted: {down:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_wharf_no_longer_accepts_is_renewed_once() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, "{}");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    let mut config = config(serve(wharf.router()).await);
    config.long_poll = Duration::ZERO;
    let agent = start(config);
    until(&wharf, "the agent claims", |s| !s.claims.is_empty()).await;
    // Wharf forgets the token (a restart, a revocation): the next call gets a 401.
    wharf.with(|s| {
        s.token = Some("revoked".into());
        s.pending.push(run_doc("r_1", &url, true));
    });
    until(&wharf, "r_1 is processed", finished("r_1")).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.tokens_issued, 2, "renewed once, though both claims (action runs, node runs) may have been refused");
    assert!(
        (1..=2).contains(&state.unauthorized),
        "a call of each claim loop refused at most, then the same call with the new token: {}",
        state.unauthorized
    );
    assert_eq!(state.patches, [("r_1".to_owned(), json!({"status": "SUCCESS"}))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_runs_than_the_concurrency_are_claimed_or_carried_out_at_once() {
    let events = Events::default();
    let (receiver, gate) = Receiver::new(&events, StatusCode::OK, "{}").gated();
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending = (1..=5).map(|i| run_doc(&format!("r_{i}"), &url, true)).collect());
    let mut config = config(serve(wharf.router()).await);
    config.concurrency = 2;
    let agent = start(config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.count() < 2 {
        assert!(Instant::now() < deadline, "two requests reach the receiver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gate.add_permits(5);
    until(&wharf, "every run is processed", |s| (1..=5).all(|i| s.patches_of(&format!("r_{i}")).len() == 1)).await;
    agent.stop().await;

    assert_eq!(receiver.count(), 5);
    assert!(receiver.most_at_once() <= 2, "at most 2 at once: {}", receiver.most_at_once());
    let state = wharf.state.lock().unwrap();
    assert!(state.claims.iter().all(|c| c["limit"].as_u64().unwrap() <= 2), "{:?}", state.claims);
    assert_eq!(state.claims[0]["limit"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_wharf_refuses_stop_the_agent_at_start() {
    let wharf = FakeWharf::new(&Events::default());
    let mut config = config(serve(wharf.router()).await);
    config.client_secret = "wrong-secret".into();
    let stop = CancellationToken::new();
    let result = tokio::time::timeout(Duration::from_secs(10), Agent::new(config).unwrap().run(stop)).await.expect("it ends");
    let err = result.expect_err("refused credentials");
    assert!(matches!(err, AgentError::Credentials(_)), "{err}");
    assert!(err.to_string().starts_with("Wharf refused the client id and secret (401)"), "{err}");
    assert!(!err.to_string().contains("wrong-secret"));
}

// ---- Workflow node runs ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_node_run_is_acked_sent_signed_and_completed_with_its_response() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, r#"{"deployed": true}"#);
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending_nodes.push(node_run_doc("wfnr_1", &url, true)));
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "wfnr_1 is processed", node_finished("wfnr_1")).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.node_claims[0], json!({"installationId": "test-agent", "limit": 4, "waitMs": 1000}));
    assert_eq!(state.node_acks, ["wfnr_1"]);
    assert_eq!(
        state.node_logs_of("wfnr_1"),
        [
            node_logs::RECEIVED,
            logs::SENDING,
            "Action invocation has completed successfully with status code: 200",
            node_logs::FINISHED
        ],
        "Port's agent's node run log lines, in its order"
    );
    assert_eq!(
        state.node_patches,
        [(
            "wfnr_1".to_owned(),
            json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status": 200, "data": {"deployed": true}}}})
        )]
    );
    assert!(state.logs.is_empty() && state.patches.is_empty() && state.acks.is_empty(), "no action run route is used");

    let received = receiver.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!((request.method.clone(), request.uri.path()), (Method::POST, "/hook"));
    assert_eq!(request.body, serde_json::to_vec(&json!({"nodeRun": "wfnr_1", "host": "db-1"})).unwrap(), "the node's body");
    verify_signature(&request.headers, &request.body);
    assert_eq!(
        (request.headers["x-host"].to_str().unwrap(), request.headers["authorization"].to_str().unwrap()),
        ("db-1", "Bearer in-clear"),
        "the node's headers"
    );
    assert_eq!(request.headers["content-type"], "application/json");

    let events = events.lock().unwrap();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap_or_else(|| panic!("{e} in {events:?}"));
    assert!(at("ack wfnr_1") < at("send wfnr_1") && at("send wfnr_1") < at("patch wfnr_1"), "ack, send, report: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_node_run_is_left_to_its_backend_and_an_empty_answer_is_empty_data() {
    let events = Events::default();
    let accepted = Receiver::new(&events, StatusCode::ACCEPTED, "");
    let accepted_url = serve_receiver(&accepted).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| {
        s.pending_nodes = vec![node_run_doc("wfnr_async", &accepted_url, false), node_run_doc("wfnr_sync", &accepted_url, true)]
    });
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "both node runs are processed", |s| node_finished("wfnr_async")(s) && node_finished("wfnr_sync")(s)).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.node_patches_of("wfnr_async"), Vec::<Value>::new(), "Port's agent completes synchronized nodes only");
    assert_eq!(
        state.node_logs_of("wfnr_async"),
        [
            node_logs::RECEIVED,
            logs::SENDING,
            "Action invocation has completed successfully with status code: 202",
            node_logs::FINISHED
        ]
    );
    assert_eq!(
        state.node_patches_of("wfnr_sync"),
        [json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status": 202, "data": {}}}})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_run_whose_request_fails_is_completed_failed() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::INTERNAL_SERVER_ERROR, "boom");
    let url = serve_receiver(&receiver).await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let wharf = FakeWharf::new(&events);
    let mut not_an_object = node_run_doc("wfnr_bad", &url, true);
    not_an_object["config"] = json!("WEBHOOK");
    wharf.with(|s| {
        s.pending_nodes = vec![
            node_run_doc("wfnr_500", &url, true),
            node_run_doc("wfnr_down", &format!("http://{closed}/hook"), true),
            not_an_object,
        ]
    });
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "the node runs are completed", |s| {
        ["wfnr_500", "wfnr_down", "wfnr_bad"].iter().all(|id| !s.node_patches_of(id).is_empty())
    })
    .await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    let failed = json!({"status": "COMPLETED", "result": "FAILED"});
    for id in ["wfnr_500", "wfnr_down", "wfnr_bad"] {
        assert_eq!(state.node_patches_of(id), std::slice::from_ref(&failed), "{id} is completed FAILED once");
    }
    assert_eq!(
        state.node_logs_of("wfnr_500"),
        [node_logs::RECEIVED, logs::SENDING, "Action invocation failed with status code: 500 and response: boom"]
    );
    let down = state.node_logs_of("wfnr_down");
    assert_eq!(&down[..2], [node_logs::RECEIVED, logs::SENDING]);
    assert!(down[2].starts_with("The agent could not process the workflow node run: the request was not answered: "), "{down:?}");
    assert_eq!(
        state.node_logs_of("wfnr_bad"),
        ["The agent could not process the workflow node run: the node run's `config` is a string, not an object"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_run_acknowledged_by_another_agent_is_left_alone() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, "{}");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| {
        s.pending_nodes = vec![node_run_doc("wfnr_theirs", &url, true), node_run_doc("wfnr_mine", &url, true)];
        s.nodes_taken = vec!["wfnr_theirs".into()];
    });
    let agent = start(config(serve(wharf.router()).await));
    until(&wharf, "wfnr_mine is processed", node_finished("wfnr_mine")).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.node_acks, ["wfnr_theirs", "wfnr_mine"], "each acknowledged on its own, as Port's agent does");
    assert!(state.node_logs_of("wfnr_theirs").is_empty() && state.node_patches_of("wfnr_theirs").is_empty());
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_mapping_shapes_a_node_runs_request_and_the_node_gives_what_it_leaves_out() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, "done");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending_nodes.push(node_run_doc("wfnr_1", &url, true)));
    let mut config = config(serve(wharf.router()).await);
    config.payload = PayloadConfig::parse(
        &json!([
            {"enabled": ".context.runId | startswith(\"wfnr_\") | not", "url": "\"http://127.0.0.1:1/never\""},
            {
                "enabled": ".payload.action.invocationMethod.type == \"WEBHOOK\"",
                "url": ".payload.action.invocationMethod.url",
                "method": "\"PUT\"",
                "body": {"host": ".context.nodeConfig.body.host", "nodeRun": ".context.runId", "team": ".headers[\"X-Host\"]"}
            }
        ])
        .to_string(),
    )
    .unwrap();
    let agent = start(config);
    until(&wharf, "wfnr_1 is processed", node_finished("wfnr_1")).await;
    agent.stop().await;

    let received = receiver.received.lock().unwrap();
    assert_eq!(received[0].method, Method::PUT);
    assert_eq!(
        serde_json::from_slice::<Value>(&received[0].body).unwrap(),
        json!({"host": "db-1", "nodeRun": "wfnr_1", "team": "db-1"}),
        "the mapping's body, from Port's node run message"
    );
    assert_eq!(received[0].headers["x-host"], "db-1", "no `headers` in the mapping: the node's");
    let state = wharf.state.lock().unwrap();
    assert_eq!(
        state.node_patches_of("wfnr_1"),
        [json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status": 200, "data": "done"}}})],
        "a text answer is the output's data as text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_for_one_kind_holds_up_neither_the_other_nor_the_slots() {
    let events = Events::default();
    let (receiver, gate) = Receiver::new(&events, StatusCode::OK, "{}").gated();
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| {
        s.long_polls = true;
        s.pending_nodes = (1..=3).map(|i| node_run_doc(&format!("wfnr_{i}"), &url, true)).collect();
    });
    let mut config = config(serve(wharf.router()).await);
    config.concurrency = 2;
    config.long_poll = Duration::from_secs(8);
    let started = Instant::now();
    let agent = start(config);
    // The action runs' claim waits 8 s for a run; the node runs are carried out meanwhile, two
    // at a time.
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.count() < 2 {
        assert!(Instant::now() < deadline, "two node runs reach the receiver while the action runs' claim waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 2, "no more than the concurrency at once");
    // An action run comes while both slots are taken: it waits for one.
    wharf.with(|s| s.pending.push(run_doc("r_1", &url, true)));
    gate.add_permits(10);
    until(&wharf, "every node run is processed", |s| (1..=3).all(|i| s.node_patches_of(&format!("wfnr_{i}")).len() == 1)).await;
    assert!(started.elapsed() < Duration::from_secs(6), "not held up by the long poll: {:?}", started.elapsed());
    until(&wharf, "r_1 is processed", finished("r_1")).await;
    agent.stop().await;

    assert_eq!(receiver.count(), 4);
    assert!(receiver.most_at_once() <= 2, "at most 2 at once: {}", receiver.most_at_once());
    let state = wharf.state.lock().unwrap();
    assert!(state.node_claims.iter().all(|c| c["limit"].as_u64().unwrap() <= 2), "{:?}", state.node_claims);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wharf_without_node_runs_is_asked_once_and_action_runs_go_on() {
    let events = Events::default();
    let receiver = Receiver::new(&events, StatusCode::OK, "{}");
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    let mut config = config(serve(wharf.router_without_node_runs()).await);
    config.long_poll = Duration::ZERO;
    let agent = start(config);
    until(&wharf, "the agent claims", |s| s.claims.len() >= 2).await;
    wharf.with(|s| s.pending.push(run_doc("r_1", &url, true)));
    until(&wharf, "r_1 is processed", finished("r_1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.node_claims.len(), 1, "a 404 is not tried again");
    assert_eq!(state.patches, [("r_1".to_owned(), json!({"status": "SUCCESS"}))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_run_still_going_at_the_end_of_the_grace_period_is_completed_failed() {
    let events = Events::default();
    let (receiver, _gate) = Receiver::new(&events, StatusCode::OK, "{}").gated();
    let url = serve_receiver(&receiver).await;
    let wharf = FakeWharf::new(&events);
    wharf.with(|s| s.pending_nodes.push(node_run_doc("wfnr_1", &url, true)));
    let mut config = config(serve(wharf.router()).await);
    config.shutdown_grace = Duration::from_millis(300);
    let agent = start(config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.count() == 0 {
        assert!(Instant::now() < deadline, "the request reaches the receiver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.stop().await;

    let state = wharf.state.lock().unwrap();
    assert_eq!(state.node_patches, [("wfnr_1".to_owned(), json!({"status": "COMPLETED", "result": "FAILED"}))]);
    assert_eq!(state.node_logs_of("wfnr_1").last().map(String::as_str), Some(STOPPED_SUMMARY));
}
