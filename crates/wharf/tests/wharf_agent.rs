//! `wharf agent` (issue 25, point 3), the real binary, against a real Wharf on both stores,
//! with a real receiver standing in for the backend in the private network: a run executed
//! and reported as Port's agent reports it; a control-the-payload file with a `report`
//! mapping; secret inputs decrypted by the agent (`fieldsToDecryptPaths`); two agents
//! competing for 30 runs (each executed once); a run claimed by an agent that died before
//! acknowledging it (another agent runs it after the visibility timeout); an agent killed
//! between acknowledging a run and reporting it (the run stays `IN_PROGRESS`, showing who took
//! it, and no other agent sends it).

mod common;

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
