//! Automations fire exactly once across a crash: the real `wharf` binary is killed with
//! SIGKILL while entities are written and an automation fires on each, then restarted on the
//! same data. Every entity that exists has triggered the automation exactly once in the run
//! list (no change missed, none fired twice). Runs on SQLite, and on PostgreSQL when
//! `WHARF_TEST_DATABASE_URL` is set.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::node::Node;
use common::receiver::Receiver;
use serde_json::{Value, json};

const WRITERS: usize = 8;
/// Kill once this many entities were created (the automation is firing by then).
const KILL_AFTER: usize = 300;

async fn crash_and_recover(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let args = ["--allow-network", "127.0.0.0/8"];
    let mut node = Node::start(dir.path(), database_url, &args).await;
    let http = common::http();
    let token = node.token(&http).await;
    let blueprint = json!({"identifier": "order", "title": "Order", "schema": {"properties": {"n": {"type": "number"}}}});
    let reply = http.post(format!("{}/v1/blueprints", node.base)).bearer_auth(&token).json(&blueprint).send().await.unwrap();
    assert!(reply.status().is_success());
    let automation = json!({
        "identifier": "on-order",
        "trigger": {"type": "automation", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "order"}},
        "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/ok/order")}
    });
    let reply = http.post(format!("{}/v1/actions", node.base)).bearer_auth(&token).json(&automation).send().await.unwrap();
    assert!(reply.status().is_success());

    // Writers create entities until the server dies.
    let created = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (http, url, token, created) =
            (http.clone(), format!("{}/v1/blueprints/order/entities", node.base), token.clone(), created.clone());
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let body = json!({"identifier": format!("o-{writer}-{n}"), "properties": {"n": n}});
                let Ok(reply) = http.post(&url).bearer_auth(&token).json(&body).send().await else { return };
                if !reply.status().is_success() {
                    return;
                }
                created.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while created.load(Ordering::Relaxed) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    let before = receiver.calls("/ok/order").len();
    for writer in writers {
        writer.await.unwrap();
    }

    let node = Node::start(dir.path(), database_url, &args).await;
    let token = node.token(&http).await;
    let get = |path: String| {
        let request = http.get(format!("{}{path}", node.base)).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let entities = get("/v1/blueprints/order/entities?limit=10000".into()).await;
    let entities: Vec<String> =
        entities["entities"].as_array().unwrap().iter().map(|e| e["identifier"].as_str().unwrap().to_owned()).collect();
    assert!(entities.len() >= KILL_AFTER, "{} entities", entities.len());

    // Wait until every entity's run exists (the automation catches up after the restart).
    for _ in 0..600 {
        let runs = get("/v1/actions/runs?action=on-order&limit=1000".into()).await["runs"].as_array().unwrap().len();
        if runs >= entities.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = get("/v1/actions/runs?action=on-order&limit=1000".into()).await["runs"].as_array().unwrap().clone();
    let mut runs_per_entity: HashMap<String, usize> = HashMap::new();
    for run in &runs {
        let entity = run["payload"]["body"]["event"]["diff"]["after"]["identifier"].as_str().unwrap().to_owned();
        *runs_per_entity.entry(entity).or_default() += 1;
    }
    for entity in &entities {
        assert_eq!(runs_per_entity.get(entity), Some(&1), "entity {entity} did not trigger the automation exactly once");
    }
    assert_eq!(runs.len(), entities.len(), "a run for an entity that does not exist");
    eprintln!(
        "automation crash test: {} entities, each fired once after the restart ({before} requests received before \
         SIGKILL, {} in all)",
        entities.len(),
        receiver.calls("/ok/order").len()
    );
    let mut node = node;
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_fire_exactly_once_across_sigkill_sqlite() {
    crash_and_recover(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_fire_exactly_once_across_sigkill_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    crash_and_recover(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
