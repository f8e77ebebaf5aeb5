//! The delivery engine loses nothing: the real `wharf` binary is killed with SIGKILL during a
//! burst of 5,000 published events and restarted; every event reaches the receiver at least
//! once, and every duplicate carries the same `webhook-id` and body. On PostgreSQL, two nodes
//! share the work: each event is delivered once while both run, and all of them when one is
//! killed.

use crate::common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::node::Node;
use common::receiver::{Call, Receiver};
use serde_json::{Value, json};

const EVENTS: usize = 5_000;
const SENDERS: usize = 16;
/// A 2 s timeout makes a 9 s lease: a killed node's deliveries are due again soon.
const NODE_ARGS: &[&str] =
    &["--allow-network", "127.0.0.0/8", "--delivery-timeout", "2", "--retry-schedule", "200ms,500ms,1s,2s"];

async fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Node {
    Node::start(data_dir, database_url, NODE_ARGS).await
}

/// Creates a project subscribed to `url` (for `order.*` events) through `node`; returns the
/// project's path.
pub(crate) async fn project(node: &Node, http: &reqwest::Client, token: &str, url: &str) -> String {
    let base = &node.base;
    let org: Value = http.get(format!("{}/v1/organization", base)).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    let org = org["organization"]["id"].as_str().unwrap();
    let project: Value = http
        .post(format!("{}/organizations/{org}/projects", base))
        .bearer_auth(token)
        .json(&json!({"name": "Crash", "slug": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap());
    let created = http
        .post(format!("{}{path}/settings/webhooks", base))
        .bearer_auth(token)
        .json(&json!({"name": "receiver", "url": url, "events": ["order.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    path
}

/// Publishes events `c-{n}` for each of `ids`, in order, from `SENDERS` tasks (spread over
/// `bases`); each event that got a 202 (or a 409: stored before) is marked in `acknowledged`.
/// A sender stops at its first failure (its node died).
async fn publish_burst(
    bases: Vec<String>,
    token: String,
    path: String,
    ids: impl IntoIterator<Item = usize>,
    acknowledged: Arc<Mutex<Vec<bool>>>,
) {
    let http = common::http();
    let ids = Arc::new(Mutex::new(ids.into_iter().collect::<VecDeque<usize>>()));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (http, token, ids, acknowledged) = (http.clone(), token.clone(), ids.clone(), acknowledged.clone());
        let url = format!("{}{path}/events", bases[sender % bases.len()]);
        senders.push(tokio::spawn(async move {
            loop {
                let Some(n) = ids.lock().unwrap().pop_front() else { return };
                let body = json!({"type": "order.created", "id": format!("c-{n}"), "data": {"n": n}});
                let Ok(reply) = http.post(&url).bearer_auth(&token).json(&body).send().await else { return };
                if reply.status() == 202 || reply.status() == 409 {
                    acknowledged.lock().unwrap()[n] = true;
                } else {
                    return;
                }
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
}

/// What a publisher does after a crash: sends again, to a node that is up, every event it never
/// saw acknowledged; each must now be taken (202) or known already (409: stored before the
/// crash after all).
async fn publish_again(base: &str, token: &str, path: &str, acknowledged: &Arc<Mutex<Vec<bool>>>) {
    let unacknowledged = || -> Vec<usize> {
        acknowledged.lock().unwrap().iter().enumerate().filter(|(_, done)| !**done).map(|(n, _)| n).collect()
    };
    publish_burst(vec![base.to_owned()], token.to_owned(), path.to_owned(), unacknowledged(), acknowledged.clone()).await;
    let refused = unacknowledged();
    assert!(refused.is_empty(), "events the node that is up did not take: {refused:?}");
}

/// Waits (up to `secs`) until the receiver has every id in `ids`; returns the calls by id.
async fn wait_for_all(receiver: &Receiver, ids: &[String], secs: u64) -> HashMap<String, Vec<Call>> {
    for _ in 0..secs * 10 {
        // Each id needs a call of its own: until there are that many, no need to look closer.
        if receiver.count() < ids.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let by_id = by_webhook_id(&receiver.all());
        if ids.iter().all(|id| by_id.contains_key(id)) {
            return by_id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_id = by_webhook_id(&receiver.all());
    let missing: Vec<&String> = ids.iter().filter(|id| !by_id.contains_key(*id)).collect();
    panic!("{} acknowledged events never arrived, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
}

fn by_webhook_id(calls: &[Call]) -> HashMap<String, Vec<Call>> {
    let mut by_id: HashMap<String, Vec<Call>> = HashMap::new();
    for call in calls {
        by_id.entry(call.header("webhook-id").to_owned()).or_default().push(call.clone());
    }
    by_id
}

/// Duplicates (deliveries beyond the first of an event), checking each carries the same body.
fn duplicates(by_id: &HashMap<String, Vec<Call>>) -> usize {
    by_id
        .values()
        .map(|calls| {
            assert!(calls.iter().all(|c| c.body == calls[0].body), "a repeat of {} differs", calls[0].header("webhook-id"));
            calls.len() - 1
        })
        .sum()
}

async fn crash_during_burst(database_url: Option<&str>) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let http = common::http();
    let mut node = start(dir.path(), database_url).await;
    let token = node.token(&http).await;
    let path = project(&node, &http, &token, &receiver.url("/ok/crash")).await;

    let acknowledged = Arc::new(Mutex::new(vec![false; EVENTS]));
    let burst =
        tokio::spawn(publish_burst(vec![node.base.clone()], token.clone(), path.clone(), 0..EVENTS, acknowledged.clone()));
    // Kill mid-burst, while deliveries are in flight.
    while receiver.count() < 1_000 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    node.kill();
    burst.await.unwrap();
    let before_kill = acknowledged.lock().unwrap().iter().filter(|a| **a).count();
    let received_before = receiver.count();

    // Restart; publish what was never acknowledged (a 409 means it was stored after all).
    let mut node = start(dir.path(), database_url).await;
    let token = node.token(&http).await;
    publish_again(&node.base, &token, &path, &acknowledged).await;
    let ids: Vec<String> = (0..EVENTS).map(|n| format!("c-{n}")).collect();
    let by_id = wait_for_all(&receiver, &ids, 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_id_final = by_webhook_id(&receiver.all());
    assert_eq!(by_id.len(), EVENTS);
    let dupes = duplicates(&by_id_final);
    eprintln!(
        "delivery crash test: {before_kill} of {EVENTS} events acknowledged and {received_before} received before SIGKILL; \
         after the restart all {EVENTS} arrived, with {dupes} duplicates (same webhook-id and body)"
    );
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_event_sqlite() {
    crash_during_burst(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_event_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    crash_during_burst(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}

/// Attempts a node made, from its `/metrics`.
async fn attempts_made(http: &reqwest::Client, node: &Node) -> f64 {
    let text = http.get(format!("{}/metrics", node.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("wharf_delivery_attempts_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_work_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    let receiver = Receiver::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let http = common::http();
    let mut a = start(dir_a.path(), Some(&url)).await;
    let mut b = start(dir_b.path(), Some(&url)).await;
    let token = a.token(&http).await;
    let path = project(&a, &http, &token, &receiver.url("/ok/two")).await;

    // While both run, each event is delivered exactly once.
    const FIRST: usize = 1_000;
    let acknowledged = Arc::new(Mutex::new(vec![false; 3 * FIRST]));
    let bases = vec![a.base.clone(), b.base.clone()];
    publish_burst(bases.clone(), token.clone(), path.clone(), 0..FIRST, acknowledged.clone()).await;
    let ids: Vec<String> = (0..FIRST).map(|n| format!("c-{n}")).collect();
    wait_for_all(&receiver, &ids, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_id = by_webhook_id(&receiver.all());
    assert_eq!(duplicates(&by_id), 0, "an event was delivered twice while both nodes ran");
    let (sent_a, sent_b) = (attempts_made(&http, &a).await, attempts_made(&http, &b).await);
    assert!(sent_a > 0.0 && sent_b > 0.0, "both nodes send: {sent_a} and {sent_b}");

    // Kill node B during a second burst: node A delivers everything, B's claims included.
    let burst = tokio::spawn(publish_burst(bases, token.clone(), path.clone(), FIRST..3 * FIRST, acknowledged.clone()));
    while receiver.count() < FIRST + FIRST / 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    b.kill();
    burst.await.unwrap();
    publish_again(&a.base, &token, &path, &acknowledged).await;
    let ids: Vec<String> = (0..3 * FIRST).map(|n| format!("c-{n}")).collect();
    let by_id = wait_for_all(&receiver, &ids, 60).await;
    eprintln!(
        "two nodes: {FIRST} events delivered once each ({sent_a} and {sent_b} attempts by the two nodes); \
         after killing one, all {} arrived with {} duplicates",
        3 * FIRST,
        duplicates(&by_id)
    );
    a.kill();
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
