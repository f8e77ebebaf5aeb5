//! Port's own execution agent (issue 25; reference §5), unchanged, against a real Wharf on
//! both stores: the agent in POLLING mode (`tests/fixtures/port-agent-kit`, Port's source at
//! the commit in its `VERSION`) claims an `agent: true` run, acknowledges it, sends it to a
//! local receiver signed as Port's agent signs, and reports the response, its logs and the
//! status, so the run ends as it would on Port. It completes a workflow's synchronized
//! WEBHOOK node with `agent: true` the same way (`/v1/workflows/runs/claim-pending`, `ack`,
//! the node run's logs and its `COMPLETED` report), and the workflow run goes on.
//!
//! The suite runs when `WHARF_TEST_PORT_AGENT_VENV` names a virtual environment made by the
//! kit's `install.sh` (as `.ci/run` makes one); it fails, never skips, when that is set and the
//! agent does not work.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::receiver::Receiver;
use common::{CLIENT_ID, CLIENT_SECRET, TestServer};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_stores!(
    ports_agent_runs_an_agent_run_to_the_end,
    ports_agent_reports_a_failing_backend,
    ports_agent_completes_an_agent_workflow_node_run
);

fn kit() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/port-agent-kit")
}

/// Port's agent, polling every second, logging to a file; or `None` when the suite is off.
fn start_agent(server: &TestServer) -> Option<(Child, tempfile::NamedTempFile)> {
    let Ok(venv) = std::env::var("WHARF_TEST_PORT_AGENT_VENV") else {
        eprintln!("Port agent suite off: set WHARF_TEST_PORT_AGENT_VENV (tests/fixtures/port-agent-kit/install.sh)");
        return None;
    };
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new("bash")
        .arg(kit().join("run.sh"))
        .args([&venv, &server.base, CLIENT_ID, CLIENT_SECRET])
        .env("POLLING_INTERVAL_SECONDS", "1")
        .env("PORT_ORG_ID", "wharf-test")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("Port's agent starts");
    Some((child, log))
}

/// Stops the agent as its deployment would (SIGTERM): it exits 0 after its current cycle.
/// Its log.
async fn stop_agent((mut agent, log): (Child, tempfile::NamedTempFile)) -> String {
    let status = Command::new("kill").args(["-TERM", &agent.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..200 {
        exited = agent.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    let Some(exited) = exited else {
        let _ = agent.kill();
        panic!("the agent did not stop within 20 s of SIGTERM:\n{text}");
    };
    assert!(exited.success(), "the agent exited {exited:?}:\n{text}");
    text
}

/// `X-Port-Signature` as Port's agent makes it: over the compact JSON of the body it sent
/// (with spaces; a receiver re-serializes it).
fn ports_signature(timestamp: &str, body: &Value) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", serde_json::to_string(body).unwrap()).as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

async fn run_until_ended(server: &TestServer, id: &str) -> Value {
    for _ in 0..600 {
        let (status, body) = server.get(&format!("/v1/actions/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["run"]["status"] != "IN_PROGRESS" {
            // The agent's last log line comes after its final status.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return body["run"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never ended");
}

async fn log_messages(server: &TestServer, id: &str) -> Vec<String> {
    let (status, logs) = server.get(&format!("/v1/actions/runs/{id}/logs")).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    logs["runLogs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect()
}

async fn agent_action(server: &TestServer, identifier: &str, url: &str) {
    let action = json!({
        "identifier": identifier, "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {"version": {"type": "string"}}}},
        "invocationMethod": {
            "type": "WEBHOOK", "url": url, "agent": true, "synchronized": true,
            "body": {"version": "{{ .inputs.version }}", "runId": "{{ .run.id }}"}
        }
    });
    let (status, body) = server.post("/v1/actions", action).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn start_run(server: &TestServer, action: &str) -> String {
    let (status, answer) = server.post(&format!("/v1/actions/{action}/runs"), json!({"properties": {"version": "2.0"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer["run"]["id"].as_str().unwrap().to_owned()
}

async fn ports_agent_runs_an_agent_run_to_the_end(server: TestServer) {
    let receiver = Receiver::start().await;
    agent_action(&server, "deploy", &receiver.url("/ok/deploy")).await;
    let id = start_run(&server, "deploy").await;
    let Some(agent) = start_agent(&server) else { return };

    let ended = run_until_ended(&server, &id).await;
    let log = stop_agent(agent).await;
    assert_eq!(ended["status"], "SUCCESS", "{ended}\n{log}");
    assert_eq!(ended["response"], json!({"received": true}), "the receiver's answer, reported");
    assert_eq!(ended["agentClaim"]["installationId"], "_PORT_EXEC_AGENT");
    assert!(ended["agentClaim"]["ackedAt"].is_string(), "{ended}");

    // What arrived: the run's body with Port's agent's additions, signed as the agent signs
    // (over the compact JSON; the agent sends it with spaces, so a receiver re-serializes).
    let call = receiver.wait_for("/ok/deploy", 1).await.remove(0);
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["version"], "2.0");
    assert_eq!(body["runId"], id.as_str());
    assert_eq!(body["context"]["runId"], id.as_str());
    assert_eq!(body["payload"]["action"]["invocationMethod"]["url"], receiver.url("/ok/deploy"));
    assert_eq!(call.header("x-port-signature"), ports_signature(call.header("x-port-timestamp"), &body));

    // Its logs, as Port shows them.
    let messages = log_messages(&server, &id).await;
    for expected in [
        "An action message has been received",
        "Sending the request",
        "Action invocation has completed successfully with status code: 200",
        "Port agent finished processing the action run",
    ] {
        assert!(messages.iter().any(|m| m == expected), "no log `{expected}` in {messages:?}");
    }
    // It set its streamer at startup.
    let (_, org) = server.get("/v1/organization").await;
    assert_eq!(org["organization"]["settings"]["portAgentStreamerName"], "POLLING");
    // Executed once: nothing left to claim, and the receiver got one request.
    assert_eq!(receiver.calls("/ok/deploy").len(), 1);
}

async fn ports_agent_reports_a_failing_backend(server: TestServer) {
    let receiver = Receiver::start().await;
    agent_action(&server, "deploy", &receiver.url("/fail/deploy")).await;
    let id = start_run(&server, "deploy").await;
    let Some(agent) = start_agent(&server) else { return };
    let ended = run_until_ended(&server, &id).await;
    let log = stop_agent(agent).await;
    assert_eq!(ended["status"], "FAILURE", "{ended}\n{log}");
    assert!(ended["summary"].as_str().unwrap().starts_with("Failed to invoke the webhook with status code: 500."), "{ended}");
    let messages = log_messages(&server, &id).await;
    assert!(messages.iter().any(|m| m.starts_with("Action invocation failed with status code: 500")), "{messages:?}");
}

async fn ports_agent_completes_an_agent_workflow_node_run(server: TestServer) {
    let receiver = Receiver::start().await;
    let url = receiver.url("/ok/node");
    let workflow = json!({
        "identifier": "private", "title": "Inside",
        "nodes": [
            {"identifier": "trigger", "title": "Run it",
             "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"host": {"type": "string"}}}}},
            {"identifier": "inside", "title": "Deploy inside",
             "config": {"type": "WEBHOOK", "agent": true, "synchronized": true, "url": url,
                        "headers": {"X-Host": "{{ .outputs.trigger.host }}"}, "body": {"host": "{{ .outputs.trigger.host }}"}}}
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "inside"}]
    });
    let (status, body) = server.post("/v1/workflows", workflow).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.post("/v1/workflows/private/runs", json!({"inputs": {"host": "db-1"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["workflowRun"]["identifier"].as_str().unwrap().to_owned();
    let Some(agent) = start_agent(&server) else { return };

    let finished = "Port agent finished processing the workflow node run";
    let mut run = Value::Null;
    let mut messages = Vec::new();
    for _ in 0..600 {
        let (status, body) = server.get(&format!("/v1/workflows/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        run = body["workflowRun"].clone();
        let inside = run["nodeRuns"].as_array().unwrap().iter().find(|n| n["nodeIdentifier"] == "inside");
        messages = inside
            .and_then(|n| n["nodeRunLogs"].as_array())
            .into_iter()
            .flatten()
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect();
        if run["status"] == "COMPLETED" && messages.iter().any(|m| m == finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = stop_agent(agent).await;
    assert_eq!((run["status"].as_str(), run["result"].as_str()), (Some("COMPLETED"), Some("SUCCESS")), "{run}\n{log}");
    let inside = run["nodeRuns"].as_array().unwrap().iter().find(|n| n["nodeIdentifier"] == "inside").unwrap();
    let node_run_id = inside["identifier"].as_str().unwrap();
    assert_eq!(inside["result"], "SUCCESS", "{inside}");
    assert_eq!(inside["output"], json!({"response": {"status": 200, "data": {"received": true}}}), "the receiver's answer");
    for expected in [
        "A workflow node run has been received",
        "Sending the request",
        "Action invocation has completed successfully with status code: 200",
        finished,
    ] {
        assert!(messages.iter().any(|m| m == expected), "no log `{expected}` in {messages:?}\n{log}");
    }

    // What arrived: Port's agent's node run message (its default mapping sends it whole),
    // with the node's rendered config, signed as the agent signs.
    let call = receiver.wait_for("/ok/node", 1).await.remove(0);
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["context"]["runId"], node_run_id);
    assert_eq!(body["context"]["nodeConfig"]["body"], json!({"host": "db-1"}));
    assert_eq!(body["context"]["nodeConfig"]["headers"]["X-Host"], "db-1");
    assert_eq!(body["payload"]["action"]["invocationMethod"]["url"], url.as_str());
    assert_eq!(call.header("x-port-signature"), ports_signature(call.header("x-port-timestamp"), &body));
    assert_eq!(receiver.calls("/ok/node").len(), 1, "executed once");
}
