//! `wharf agent` (issue 25, point 3), the real binary, against a real Wharf on both stores,
//! with a real receiver standing in for the backend in the private network: a run executed
//! and reported as Port's agent reports it; a control-the-payload file with a `report`
//! mapping; secret inputs decrypted by the agent (`fieldsToDecryptPaths`); two agents
//! competing for 30 runs (each executed once); a run claimed by an agent that died before
//! acknowledging it (another agent runs it after the visibility timeout); an agent killed
//! between acknowledging a run and reporting it (the run stays `IN_PROGRESS`, showing who took
//! it, and no other agent sends it).
//!
//! Workflow node runs (issue 26, point 5): a synchronized WEBHOOK node with `agent: true`
//! executed by the agent, its workflow run completing with the response as the node's output;
//! a failing backend failing the node run and its workflow run; two agents competing for node
//! runs (each executed once).

use crate::common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::receiver::Receiver;
use common::{CLIENT_ID, CLIENT_SECRET, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_stores!(
    a_run_is_executed_and_reported,
    a_payload_config_shapes_the_request_and_the_report,
    secret_inputs_are_decrypted_by_the_agent,
    competing_agents_execute_each_run_once,
    a_run_whose_agent_died_is_executed_by_another,
    an_agent_node_run_is_executed_and_its_workflow_run_completes,
    a_failing_backend_fails_the_agent_node_run_and_its_workflow_run,
    competing_agents_execute_each_node_run_once,
);

/// A running `wharf agent`, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Agent {
    fn start(server: &TestServer, name: &str, extra: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["agent", "--url", &server.base, "--client-id", CLIENT_ID, "--installation-id", name])
            .args(["--long-poll", "2s", "--poll-interval", "100ms"])
            .args(extra)
            .env("WHARF_CLIENT_SECRET", CLIENT_SECRET)
            .env("WHARF_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wharf agent starts");
        Self(child)
    }

    /// SIGTERM, as a deployment stops it: it exits 0.
    async fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        assert!(status.success());
        for _ in 0..150 {
            if let Some(exited) = self.0.try_wait().unwrap() {
                assert!(exited.success(), "the agent exited {exited:?}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the agent did not stop within 15 s of SIGTERM");
    }

    /// SIGKILL: the agent dies where it stands.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

fn action(identifier: &str, url: &str, synchronized: bool) -> Value {
    json!({
        "identifier": identifier, "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {"version": {"type": "string"}}}},
        "invocationMethod": {
            "type": "WEBHOOK", "url": url, "agent": true, "synchronized": synchronized,
            "body": {"version": "{{ .inputs.version }}", "runId": "{{ .run.id }}"}
        }
    })
}

async fn start(server: &TestServer, action: &str, properties: Value) -> String {
    server.start_run(action, json!({"properties": properties})).await["id"].as_str().unwrap().to_owned()
}

/// Waits (up to 20 s) until the run has ended and its agent has written its last log line.
async fn ended(server: &TestServer, id: &str) -> Value {
    for _ in 0..400 {
        let found = server.run(id).await;
        if found["status"] != "IN_PROGRESS" && logs(server, id).await.iter().any(|m| m.starts_with("Port agent finished")) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never ended: {}", server.run(id).await);
}

async fn logs(server: &TestServer, id: &str) -> Vec<String> {
    let (status, logs) = server.get(&format!("/v1/actions/runs/{id}/logs")).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    logs["runLogs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect()
}

async fn a_run_is_executed_and_reported(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(action("deploy", &receiver.url("/ok/deploy"), true)).await;
    let agent = Agent::start(&server, "agent-a", &[]);
    let id = start(&server, "deploy", json!({"version": "2.0"})).await;
    let done = ended(&server, &id).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["response"], json!({"received": true}));
    assert_eq!(done["agentClaim"]["installationId"], "agent-a");
    assert_eq!(
        logs(&server, &id).await,
        [
            "An action message has been received",
            "Preparing the payload for the request",
            "Sending the request",
            "Action invocation has completed successfully with status code: 200",
            "Reporting the run response",
            "The run response was reported successfully ",
            "Port agent finished processing the action run",
        ],
        "Port's agent's log lines, in its order"
    );
    // What arrived: Port's agent's message (the body, the invocation and the run id), signed
    // over exactly the bytes sent.
    let call = receiver.wait_for("/ok/deploy", 1).await.remove(0);
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!((body["version"].as_str(), body["context"]["runId"].as_str()), (Some("2.0"), Some(id.as_str())));
    let expected = wharf_core::signing::port_signature(
        CLIENT_SECRET.as_bytes(),
        call.header("x-port-timestamp").parse().unwrap(),
        call.body.as_bytes(),
    );
    assert_eq!(call.header("x-port-signature"), expected);
    agent.stop().await;
}

async fn a_payload_config_shapes_the_request_and_the_report(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(action("deploy", &receiver.url("/echo/deploy"), false)).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        json!([
            {"enabled": ".payload.action.invocationMethod.url | endswith(\"/never\")", "url": "\"http://127.0.0.1:1/never\""},
            {
                "enabled": true,
                "url": ".payload.action.invocationMethod.url",
                "method": "\"PUT\"",
                "headers": {"X-Release": ".version", "Authorization": "\"Bearer internal\"", "X-Log": "env.WHARF_LOG",
                            "X-Secret": "env.WHARF_CLIENT_SECRET // \"withheld\""},
                "query": {"dry_run": "\"false\""},
                "body": {"release": ".version", "run": ".context.runId"},
                "report": {
                    "status": "if .response.statusCode == 200 then \"SUCCESS\" else \"FAILURE\" end",
                    "link": "\"https://ci.internal/\" + .body.version",
                    "summary": "\"released \" + .request.body.release",
                    "externalRunId": ".response.json.run"
                }
            }
        ])
        .to_string(),
    )
    .unwrap();
    let agent = Agent::start(&server, "agent-a", &["--payload-config", config.path().to_str().unwrap()]);
    let id = start(&server, "deploy", json!({"version": "3.1"})).await;
    let done = ended(&server, &id).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["summary"], "released 3.1");
    assert_eq!(done["link"], json!(["https://ci.internal/3.1"]));
    assert_eq!(done["externalRunId"], id.as_str(), "from the backend's answer");
    let call = receiver.wait_for("/echo/deploy", 1).await.remove(0);
    assert_eq!(call.method, "PUT");
    assert_eq!(call.query.as_deref(), Some("dry_run=false"));
    assert_eq!((call.header("x-release"), call.header("authorization")), ("3.1", "Bearer internal"));
    // `env` is the agent's environment, less its client secret.
    assert_eq!((call.header("x-log"), call.header("x-secret")), ("warn", "withheld"));
    assert_eq!(serde_json::from_str::<Value>(&call.body).unwrap(), json!({"release": "3.1", "run": id}));
    agent.stop().await;
}

async fn secret_inputs_are_decrypted_by_the_agent(server: TestServer) {
    let receiver = Receiver::start().await;
    let mut doc = action("rotate", &receiver.url("/echo/rotate"), true);
    doc["trigger"]["userInputs"]["properties"]["token"] = json!({"type": "string", "encryption": "aes256-gcm"});
    doc["invocationMethod"]["body"]["token"] = json!("{{ .inputs.token }}");
    server.create_action(doc).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        json!([{"enabled": true, "url": ".payload.action.invocationMethod.url", "body": ".", "fieldsToDecryptPaths": ["token"]}])
            .to_string(),
    )
    .unwrap();
    let agent = Agent::start(&server, "agent-a", &["--payload-config", config.path().to_str().unwrap()]);
    let secret = format!("hunter2-{}", wharf_ids::random_base62(12));
    let id = start(&server, "rotate", json!({"version": "1", "token": secret})).await;
    let done = ended(&server, &id).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    // Decrypted inside the network only: the backend got it in clear ...
    let call = receiver.wait_for("/echo/rotate", 1).await.remove(0);
    assert_eq!(serde_json::from_str::<Value>(&call.body).unwrap()["token"], secret.as_str());
    // ... and Wharf never saw it so: the run's inputs, payload and logs hold the ciphertext.
    // (The echoed response is the backend's, reported by the agent.)
    let mut shown = done.clone();
    shown["response"] = Value::Null;
    assert!(!shown.to_string().contains(&secret), "{shown}");
    assert!(!json!(logs(&server, &id).await).to_string().contains(&secret));
    agent.stop().await;
}

async fn competing_agents_execute_each_run_once(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(action("deploy", &receiver.url("/ok/many"), false)).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(start(&server, "deploy", json!({"version": n.to_string()})).await);
    }
    let (a, b) =
        (Agent::start(&server, "agent-a", &["--concurrency", "4"]), Agent::start(&server, "agent-b", &["--concurrency", "4"]));
    let calls = receiver.wait_for("/ok/many", 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = if receiver.calls("/ok/many").len() > calls.len() { receiver.calls("/ok/many") } else { calls };
    let mut per_run: HashMap<String, usize> = HashMap::new();
    for call in &calls {
        let body: Value = serde_json::from_str(&call.body).unwrap();
        *per_run.entry(body["context"]["runId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_run.len(), 30, "every run was executed");
    assert!(per_run.values().all(|n| *n == 1), "a run was executed twice: {per_run:?}");
    let mut by_agent: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let claimed = server.run(id).await;
        *by_agent.entry(claimed["agentClaim"]["installationId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(by_agent.values().sum::<usize>(), 30, "{by_agent:?}");
    a.stop().await;
    b.stop().await;
}

async fn a_run_whose_agent_died_is_executed_by_another(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(action("deploy", &receiver.url("/ok/late"), false)).await;
    // An agent claims the run and dies before acknowledging it.
    let id = start(&server, "deploy", json!({"version": "1"})).await;
    let (status, claimed) = server
        .post("/v1/actions/runs/claim-pending", json!({"installationId": "dead-agent", "visibilityTimeoutMs": 1_000}))
        .await;
    assert_eq!((status, claimed["runs"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    // Another agent executes it once the claim lapses.
    let agent = Agent::start(&server, "agent-b", &[]);
    let call = receiver.wait_for("/ok/late", 1).await.remove(0);
    assert!(call.body.contains(&id));
    assert_eq!(server.run(&id).await["agentClaim"]["installationId"], "agent-b");

    // An agent killed after acknowledging a run and before reporting it (its backend is slow):
    // the run stays IN_PROGRESS, showing who took it, and no other agent sends it again.
    server.create_action(action("slow", &receiver.url("/slow/deploy"), true)).await;
    let slow = start(&server, "slow", json!({"version": "1"})).await;
    receiver.wait_for("/slow/deploy", 1).await;
    agent.kill();
    let other = Agent::start(&server, "agent-c", &["--visibility-timeout", "1s"]);
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let stuck = server.run(&slow).await;
    assert_eq!(stuck["status"], "IN_PROGRESS", "{stuck}");
    assert_eq!(stuck["agentClaim"]["installationId"], "agent-b");
    assert!(stuck["agentClaim"]["ackedAt"].is_string(), "{stuck}");
    assert_eq!(receiver.calls("/slow/deploy").len(), 1, "an acknowledged run is never sent again");
    other.stop().await;
}

// ---- Workflow node runs ---------------------------------------------------------------------

/// A workflow whose self-serve trigger leads to one WEBHOOK node (`inside`) for an agent; its
/// body names the node run, so that a receiver can tell which one it got.
async fn agent_workflow(server: &TestServer, identifier: &str, url: &str) {
    let doc = json!({
        "identifier": identifier, "title": "Inside",
        "nodes": [
            {"identifier": "trigger", "title": "Run it",
             "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"host": {"type": "string"}}}}},
            {"identifier": "inside", "title": "Deploy inside",
             "config": {"type": "WEBHOOK", "agent": true, "synchronized": true, "url": url, "method": "POST",
                        "headers": {"X-Host": "{{ .outputs.trigger.host }}"},
                        "body": {"host": "{{ .outputs.trigger.host }}", "nodeRun": "{{ .workflowNodeRun.identifier }}"}}}
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "inside"}]
    });
    let (status, body) = server.post("/v1/workflows", doc).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn start_workflow(server: &TestServer, workflow: &str, host: &str) -> String {
    let (status, body) = server.post(&format!("/v1/workflows/{workflow}/runs"), json!({"inputs": {"host": host}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["workflowRun"]["identifier"].as_str().unwrap().to_owned()
}

/// Waits (up to 20 s) until the workflow run has completed and, when `last_line` is given,
/// its `inside` node run's log holds it (the agent writes its last line after its report).
async fn workflow_completed(server: &TestServer, id: &str, last_line: Option<&str>) -> Value {
    let mut found = Value::Null;
    for _ in 0..400 {
        let (status, body) = server.get(&format!("/v1/workflows/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        found = body["workflowRun"].clone();
        if found["status"] == "COMPLETED" && last_line.is_none_or(|line| node_logs(&found).iter().any(|m| m == line)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("workflow run {id} never completed: {found}");
}

fn inside(run: &Value) -> &Value {
    run["nodeRuns"].as_array().unwrap().iter().find(|n| n["nodeIdentifier"] == "inside").unwrap_or_else(|| panic!("{run}"))
}

fn node_logs(run: &Value) -> Vec<String> {
    run["nodeRuns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["nodeIdentifier"] == "inside")
        .flat_map(|n| n["nodeRunLogs"].as_array().cloned().unwrap_or_default())
        .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The last `n` lines of the `inside` node run's log: the agent's (Wharf's own come first).
fn agent_lines(run: &Value, n: usize) -> Vec<String> {
    let lines = node_logs(run);
    assert!(lines.len() >= n, "{lines:?}");
    lines[lines.len() - n..].to_vec()
}

const NODE_RUN_FINISHED: &str = "Port agent finished processing the workflow node run";

async fn an_agent_node_run_is_executed_and_its_workflow_run_completes(server: TestServer) {
    let receiver = Receiver::start().await;
    agent_workflow(&server, "private", &receiver.url("/echo/deploy")).await;
    let agent = Agent::start(&server, "agent-a", &[]);
    let id = start_workflow(&server, "private", "db-1").await;
    let done = workflow_completed(&server, &id, Some(NODE_RUN_FINISHED)).await;
    assert_eq!(done["result"], "SUCCESS", "{done}");
    let node_run = inside(&done);
    let node_run_id = node_run["identifier"].as_str().unwrap();
    assert!(node_run_id.starts_with("wfnr_"), "{node_run}");
    assert_eq!((node_run["status"].as_str(), node_run["result"].as_str()), (Some("COMPLETED"), Some("SUCCESS")));
    // The receiver echoes what it got: the node's body, rendered, is the response's data.
    assert_eq!(node_run["output"], json!({"response": {"status": 200, "data": {"host": "db-1", "nodeRun": node_run_id}}}));
    assert_eq!(
        agent_lines(&done, 4),
        [
            "A workflow node run has been received",
            "Sending the request",
            "Action invocation has completed successfully with status code: 200",
            NODE_RUN_FINISHED,
        ],
        "Port's agent's node run log lines, in its order, after Wharf's own"
    );
    // What arrived: the node's request, rendered, signed over exactly the bytes sent.
    let call = receiver.wait_for("/echo/deploy", 1).await.remove(0);
    assert_eq!(call.method, "POST");
    assert_eq!(serde_json::from_str::<Value>(&call.body).unwrap(), json!({"host": "db-1", "nodeRun": node_run_id}));
    assert_eq!(call.header("x-host"), "db-1");
    let expected = wharf_core::signing::port_signature(
        CLIENT_SECRET.as_bytes(),
        call.header("x-port-timestamp").parse().unwrap(),
        call.body.as_bytes(),
    );
    assert_eq!(call.header("x-port-signature"), expected);
    assert_eq!(receiver.calls("/echo/deploy").len(), 1, "sent by the agent alone, once");
    agent.stop().await;
}

async fn a_failing_backend_fails_the_agent_node_run_and_its_workflow_run(server: TestServer) {
    let receiver = Receiver::start().await;
    agent_workflow(&server, "private", &receiver.url("/fail/deploy")).await;
    let agent = Agent::start(&server, "agent-a", &[]);
    let id = start_workflow(&server, "private", "db-1").await;
    let failed_line = "Action invocation failed with status code: 500 and response: boom";
    let done = workflow_completed(&server, &id, Some(failed_line)).await;
    assert_eq!(done["result"], "FAILED", "{done}");
    let node_run = inside(&done);
    assert_eq!((node_run["status"].as_str(), node_run["result"].as_str()), (Some("COMPLETED"), Some("FAILED")), "{node_run}");
    assert_eq!(agent_lines(&done, 3), ["A workflow node run has been received", "Sending the request", failed_line]);
    assert_eq!(receiver.calls("/fail/deploy").len(), 1, "a failed node run is not sent again");
    agent.stop().await;
}

async fn competing_agents_execute_each_node_run_once(server: TestServer) {
    let receiver = Receiver::start().await;
    agent_workflow(&server, "private", &receiver.url("/ok/many")).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(start_workflow(&server, "private", &format!("db-{n}")).await);
    }
    let (a, b) =
        (Agent::start(&server, "agent-a", &["--concurrency", "2"]), Agent::start(&server, "agent-b", &["--concurrency", "2"]));
    let mut node_runs = Vec::new();
    for id in &ids {
        let done = workflow_completed(&server, id, Some(NODE_RUN_FINISHED)).await;
        assert_eq!(done["result"], "SUCCESS", "{done}");
        node_runs.push(inside(&done)["identifier"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_node_run: HashMap<String, usize> = HashMap::new();
    for call in receiver.calls("/ok/many") {
        let body: Value = serde_json::from_str(&call.body).unwrap();
        *per_node_run.entry(body["nodeRun"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_node_run.len(), 10, "every node run was executed: {per_node_run:?}");
    assert!(node_runs.iter().all(|id| per_node_run.get(id) == Some(&1)), "a node run was executed twice: {per_node_run:?}");
    a.stop().await;
    b.stop().await;
}
