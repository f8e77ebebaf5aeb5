//! A SQLite database has one server (`wharf_store::ServingLock`): the real `wharf` binary
//! refuses to serve, or to migrate, a database another `wharf serve` serves, and a server started after a
//! SIGKILL takes back at once what the killed one had in hand (a delivery, a run request and a
//! workflow node run in flight) instead of waiting out their leases. SQLite only: nodes that share a PostgreSQL
//! database run side by side, and there a lease ends when it expires (`nodes.rs`,
//! `delivery_crash.rs`).

use crate::common;
use crate::delivery_crash::project;

use std::process::Command;

use common::node::Node;
use common::receiver::Receiver;
use serde_json::json;

/// A 60 s delivery timeout makes a lease of 125 s: far longer than the test waits.
const NODE_ARGS: &[&str] = &["--allow-network", "127.0.0.0/8", "--delivery-timeout", "60"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_sqlite_database_and_a_restart_takes_back_its_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), None, NODE_ARGS).await;

    // A second server on the same data directory stops at its start and says why.
    let second = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WHARF_LOG", "warn")
        .output()
        .expect("wharf runs");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server started: {said}");
    assert!(
        said.contains("another `wharf serve` is serving this SQLite database") && said.contains("wharf.db.server.lock"),
        "{said}"
    );
    // Nor is the database migrated under it.
    let migrate = || {
        Command::new(env!("CARGO_BIN_EXE_wharf")).args(["migrate", "--data-dir"]).arg(dir.path()).output().expect("wharf runs")
    };
    let migrated = migrate();
    let said = String::from_utf8_lossy(&migrated.stderr);
    assert!(!migrated.status.success(), "migrated under a running server: {said}");
    assert!(said.contains("stop it before migrating") && said.contains("wharf.db.server.lock"), "{said}");

    // A delivery, an asynchronous run's request and a workflow node's request, each sent to a
    // receiver that answers after 3 s: all are in flight, claimed, when the server is killed.
    let http = common::http();
    let token = node.token(&http).await;
    let receiver = Receiver::start().await;
    let path = project(&node, &http, &token, &receiver.url("/slow/delivery")).await;
    let published =
        http.post(format!("{}{path}/events", node.base)).bearer_auth(&token).json(&json!({"type": "order.created", "data": {}}));
    assert_eq!(published.send().await.unwrap().status(), 202);
    let action = json!({
        "identifier": "deploy",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
        "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/slow/run")}
    });
    let created = http.post(format!("{}/v1/actions", node.base)).bearer_auth(&token).json(&action).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let run = http.post(format!("{}/v1/actions/deploy/runs", node.base)).bearer_auth(&token).json(&json!({"properties": {}}));
    assert_eq!(run.send().await.unwrap().status(), 202);
    let workflow = json!({
        "identifier": "flow",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
            {"identifier": "call", "config": {"type": "WEBHOOK", "url": receiver.url("/slow/node")}}
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}]
    });
    let created = http.post(format!("{}/v1/workflows", node.base)).bearer_auth(&token).json(&workflow).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let started = http.post(format!("{}/v1/workflows/flow/runs", node.base)).bearer_auth(&token).json(&json!({"inputs": {}}));
    assert_eq!(started.send().await.unwrap().status(), 202);
    receiver.wait_for("/slow/delivery", 1).await;
    receiver.wait_for("/slow/run", 1).await;
    receiver.wait_for("/slow/node", 1).await;
    node.kill();

    // The restarted server sends all three again now, not after their 125 s leases (`wait_for`
    // gives up after 15 s).
    let node = Node::start(dir.path(), None, NODE_ARGS).await;
    let again = receiver.wait_for("/slow/delivery", 2).await;
    assert_eq!(again[0].header("webhook-id"), again[1].header("webhook-id"), "the same delivery, sent again");
    let again = receiver.wait_for("/slow/run", 2).await;
    assert_eq!(again[0].body, again[1].body, "the same run request, sent again");
    let again = receiver.wait_for("/slow/node", 2).await;
    assert_eq!(again[0].header("x-wharf-node-run-id"), again[1].header("x-wharf-node-run-id"), "the same node run, sent again");
    drop(node);
    // Once it has stopped, the database migrates (there is nothing left to apply).
    let migrated = migrate();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
}
