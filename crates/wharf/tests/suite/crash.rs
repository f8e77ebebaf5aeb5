//! Nothing accepted is lost: the real `wharf` binary is killed with SIGKILL while it accepts
//! and maps a burst of events, then restarted on the same data. Every event that got a 202 is
//! mapped, exactly once. Runs on SQLite, and on PostgreSQL when `WHARF_TEST_DATABASE_URL` is set.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::node::Node;
use serde_json::{Value, json};

const SENDERS: usize = 16;
/// Kill once this many events were acknowledged (mapping is under way by then).
const KILL_AFTER: usize = 600;

async fn crash_and_recover(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), database_url, &[]).await;
    let http = common::http();
    let token = node.token(&http).await;
    let call =
        |method: reqwest::Method, base: &str, path: &str| http.request(method, format!("{base}{path}")).bearer_auth(&token);
    let blueprint = json!({"identifier": "order", "title": "Order", "schema": {"properties": {"n": {"type": "number"}}}});
    assert!(
        call(reqwest::Method::POST, &node.base, "/v1/blueprints").json(&blueprint).send().await.unwrap().status().is_success()
    );
    let webhook = json!({"identifier": "shop", "title": "Shop", "mappings": [
        {"blueprint": "order", "entity": {"identifier": ".body.id", "properties": {"n": ".body.n"}}}]});
    let created: Value =
        call(reqwest::Method::POST, &node.base, "/v1/webhooks").json(&webhook).send().await.unwrap().json().await.unwrap();
    let key = created["integration"]["webhookKey"].as_str().unwrap().to_owned();

    // Senders post until the server dies; every 202 is remembered with its event id.
    let accepted: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (http, url, accepted) = (http.clone(), format!("{}/ingest/{key}", node.base), accepted.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("o-{sender}-{n}");
                let body = json!({"id": id, "n": n});
                let Ok(reply) = http.post(&url).json(&body).send().await else { return };
                if reply.status() != 202 {
                    return;
                }
                let Ok(reply) = reply.json::<Value>().await else { return };
                accepted.lock().unwrap().push((id, reply["eventId"].as_str().unwrap().to_owned()));
            }
        }));
    }
    while accepted.lock().unwrap().len() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= KILL_AFTER);

    let node = Node::start(dir.path(), database_url, &[]).await;
    let token = node.token(&http).await;
    let get = |path: String| {
        let request = http.get(format!("{}{path}", node.base)).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Wait until nothing is pending.
    let mut drained = false;
    for _ in 0..600 {
        let pending = get("/v1/webhooks/shop/events?status=PENDING&limit=1".into()).await;
        if pending["events"].as_array().is_some_and(Vec::is_empty) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(drained, "pending events were not mapped after the restart");

    // Every acknowledged event is mapped, and mapped once: its entity was created by it,
    // and exactly one change names it.
    let log = get("/v1/audit-log?webhookId=shop&limit=10000".into()).await;
    let mut changes_per_event: HashMap<String, usize> = HashMap::new();
    for entry in log["audits"].as_array().unwrap() {
        let event = entry["additionalData"]["webhookEventId"].as_str().unwrap().to_owned();
        *changes_per_event.entry(event).or_default() += 1;
    }
    let mut seen = HashSet::new();
    for (id, event_id) in &accepted {
        assert!(seen.insert(event_id.clone()), "event id {event_id} given twice");
        assert_eq!(changes_per_event.get(event_id), Some(&1), "event {event_id} ({id}) was not mapped exactly once");
    }
    // Each event's own record, read 16 at a time.
    for chunk in accepted.chunks(16) {
        let mut reads = tokio::task::JoinSet::new();
        for (id, event_id) in chunk.iter().cloned() {
            let read = get(format!("/v1/webhooks/shop/events/{event_id}"));
            reads.spawn(async move { (id, read.await) });
        }
        while let Some(read) = reads.join_next().await {
            let (id, event) = read.unwrap();
            assert_eq!(event["event"]["status"], "SUCCESS", "{event}");
            assert_eq!(event["event"]["result"]["entities"][0]["operation"], "created", "{event}");
            assert_eq!(event["event"]["result"]["entities"][0]["identifier"], id.as_str());
        }
    }
    eprintln!(
        "crash test: {} events acknowledged before SIGKILL, all mapped once after restart ({} events stored in all)",
        accepted.len(),
        changes_per_event.len()
    );
    let mut node = node;
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_accepted_event_sqlite() {
    crash_and_recover(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_accepted_event_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    crash_and_recover(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
