//! Workflow runs survive a crash: the real `wharf` binary is killed with SIGKILL while runs
//! are in their first WEBHOOK node (its receiver answers after 300 ms, so sends are cut off
//! mid-flight), then restarted on the same data. Every run completes from the node it was
//! in; each node's request reached the receiver, and a request was sent again only when its
//! attempt had been cut off mid-send (the resend carries the same node run id, and the node
//! run's log says so); the UPSERT_ENTITY node wrote each run's entity once. SQLite, and
//! PostgreSQL when `WHARF_TEST_DATABASE_URL` is set.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::node::Node;
use common::receiver::Receiver;
use serde_json::{Value, json};

const RUNS: usize = 24;

async fn crash_and_resume(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // A 1 s outbound timeout: a node run claimed by the killed node is claimed again after
    // its lease (twice the timeout and 5 s).
    let args = ["--allow-network", "127.0.0.0/8", "--delivery-timeout", "1"];
    let mut node = Node::start(dir.path(), database_url, &args).await;
    let http = common::http();
    let token = node.token(&http).await;
    let post = |base: String, token: String, path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).bearer_auth(token).json(&body);
        async move {
            let reply = request.send().await.unwrap();
            let status = reply.status();
            let body: Value = reply.json().await.unwrap();
            assert!(status.is_success(), "{status}: {body}");
            body
        }
    };
    let blueprint = json!({"identifier": "build", "title": "Build", "schema": {"properties": {"n": {"type": "number"}}}});
    post(node.base.clone(), token.clone(), "/v1/blueprints", blueprint).await;
    let workflow = json!({
        "identifier": "pipeline",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"n": {"type": "number"}}}}},
            {"identifier": "first", "config": {"type": "WEBHOOK", "url": receiver.url("/slowish/first"), "body": {"n": "{{ .outputs.trigger.n }}"}}},
            {"identifier": "record", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "build",
                "mapping": {"identifier": "build-{{ .outputs.trigger.n }}", "properties": {"n": "{{ .outputs.trigger.n }}"}}}},
            {"identifier": "after", "config": {"type": "WEBHOOK", "url": receiver.url("/ok/after"), "body": {"n": "{{ .outputs.trigger.n }}"}}}
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "first"},
            {"sourceIdentifier": "first", "targetIdentifier": "record"},
            {"sourceIdentifier": "record", "targetIdentifier": "after"}
        ]
    });
    post(node.base.clone(), token.clone(), "/v1/workflows", workflow).await;
    let mut ids = Vec::new();
    for n in 0..RUNS {
        let run = post(node.base.clone(), token.clone(), "/v1/workflows/pipeline/runs", json!({"inputs": {"n": n}})).await;
        ids.push(run["workflowRun"]["identifier"].as_str().unwrap().to_owned());
    }
    // Kill once the first node's sends are under way (some answered, some in flight).
    receiver.wait_for("/slowish/first", 4).await;
    node.kill();
    let before = receiver.all().len();

    let node = Node::start(dir.path(), database_url, &args).await;
    let token = node.token(&http).await;
    let get = |path: String| {
        let request = http.get(format!("{}{path}", node.base)).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut runs = Vec::new();
    for id in &ids {
        let mut run = Value::Null;
        for _ in 0..400 {
            run = get(format!("/v1/workflows/runs/{id}")).await["workflowRun"].clone();
            if run["status"] == "COMPLETED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(run["result"], "SUCCESS", "run {id} resumed and completed: {run}");
        runs.push(run);
    }
    // Each node's request reached the receiver; a second send of one node run only after an
    // attempt cut off mid-send, with the same node run id, said in its log.
    let mut sends: HashMap<String, usize> = HashMap::new();
    for call in receiver.all() {
        *sends.entry(call.header("x-wharf-node-run-id").to_owned()).or_default() += 1;
    }
    let mut resent = 0;
    for run in &runs {
        for node_run in run["nodeRuns"].as_array().unwrap() {
            if node_run["nodeConfigType"] != "WEBHOOK" {
                continue;
            }
            let id = node_run["identifier"].as_str().unwrap();
            let count = sends.get(id).copied().unwrap_or(0);
            assert!(count >= 1, "node run {id} was sent: {node_run}");
            if count > 1 {
                resent += 1;
                assert_eq!(count, 2, "node run {id} sent again once, after one cut-off: {node_run}");
                let logs = node_run["nodeRunLogs"].to_string();
                assert!(logs.contains("stopped mid-step"), "node run {id} says it was sent again: {logs}");
            }
        }
    }
    // Each run's entity, written once (merged on a resumed write).
    let entities = get("/v1/blueprints/build/entities?limit=1000".into()).await;
    assert_eq!(entities["entities"].as_array().unwrap().len(), RUNS, "{entities}");
    eprintln!(
        "workflow crash test: {RUNS} runs completed after SIGKILL; {before} requests before it, {} in all, {resent} node runs sent again",
        receiver.all().len()
    );
    let mut node = node;
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_resume_across_sigkill_sqlite() {
    crash_and_resume(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_resume_across_sigkill_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    crash_and_resume(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
