//! Several nodes on one PostgreSQL database (issue 27, point 5): three real `wharf serve`
//! processes share ingestion, mapping and delivery while one is killed (SIGKILL) and another
//! is stopped (SIGTERM) and started again. Every acknowledged webhook event is mapped, in
//! order per webhook; every published event reaches the receiver; no delivery is attempted
//! by two nodes at the same time; nothing is lost.
//!
//! PostgreSQL only: returns early with a note when `WHARF_TEST_DATABASE_URL` is unset, and
//! fails, never skips, when it is set and PostgreSQL cannot be reached.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use common::node::Node;
use serde_json::{Value, json};

/// A 2 s delivery timeout makes a 9 s delivery lease: a killed node's claims are due again
/// soon. Retries come quickly too.
const NODE_ARGS: &[&str] =
    &["--allow-network", "127.0.0.0/8", "--delivery-timeout", "2", "--retry-schedule", "200ms,500ms,1s,2s"];
/// The ingestion webhooks, each fed by one sender in sequence.
const WEBHOOKS: [&str; 2] = ["alpha", "beta"];
/// Entities per webhook, each with a sender of its own: its event `n` upserts it with
/// `seq = n`.
const ENTITIES: u64 = 4;
/// Publishers, each with ids of its own.
const PUBLISHERS: usize = 4;
/// How long the receiver takes to answer: long enough for two overlapping calls to show.
const RECEIVER_DELAY: Duration = Duration::from_millis(20);

/// One call the receiver got: the delivery's `webhook-id`, its body, when it started and
/// when it ended (or was cut: a killed node's connection drops the call).
#[derive(Debug, Clone)]
struct Call {
    id: String,
    body: String,
    start: Instant,
    end: Option<Instant>,
}

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

/// Marks a call ended when the handler finishes or is dropped (its connection cut).
struct Ending(Calls, usize);

impl Drop for Ending {
    fn drop(&mut self) {
        self.0.0.lock().unwrap()[self.1].end = Some(Instant::now());
    }
}

async fn receive(State(calls): State<Calls>, headers: HeaderMap, body: Bytes) -> &'static str {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let index = {
        let mut list = calls.0.lock().unwrap();
        list.push(Call { id, body: String::from_utf8_lossy(&body).into_owned(), start: Instant::now(), end: None });
        list.len() - 1
    };
    let _ending = Ending(calls, index);
    tokio::time::sleep(RECEIVER_DELAY).await;
    "{\"received\":true}"
}

/// A receiver that records each call's start and end.
async fn receiver() -> (String, Calls) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let calls = Calls::default();
    let app = axum::Router::new().fallback(receive).with_state(calls.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

/// The events of one entity acknowledged, in order: (n, event id).
type Acknowledged = Vec<(u64, String)>;

/// The nodes' base URLs, as senders see them: one is replaced when its node restarts.
type Bases = Arc<Mutex<Vec<String>>>;

/// Sends `body` to `path` on the nodes in turn, from `turn`, until one answers something
/// other than a connection error or a 503 (a node going down, or starting); returns it.
async fn send_round_robin(
    http: &reqwest::Client,
    bases: &Bases,
    turn: &mut usize,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    for _ in 0..2_000 {
        let base = {
            let bases = bases.lock().unwrap();
            bases[*turn % bases.len()].clone()
        };
        *turn += 1;
        let mut request = http.post(format!("{base}{path}")).json(body).timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(reply) if reply.status() == 503 => {}
            Ok(reply) => {
                let status = reply.status().as_u16();
                return (status, reply.json().await.unwrap_or(Value::Null));
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no node took {path} for 40 s");
}

/// Sends the events of one entity of `webhook` one after another (each only once the one
/// before was acknowledged, so their order is defined), round-robin over the nodes, until
/// `stop`; returns each acknowledged event: (n, event id). A retry after a lost answer carries
/// the same request identifier, so it is taken once.
async fn ingest_in_order(
    bases: Bases,
    key: String,
    webhook: &'static str,
    entity: u64,
    stop: Arc<AtomicBool>,
) -> (String, Acknowledged) {
    let entity = format!("{webhook}-{entity}");
    let http = common::http();
    let mut acknowledged = Vec::new();
    let mut turn = 0;
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let body = json!({"id": format!("{entity}-{n}"), "entity": entity, "seq": n});
        let (status, reply) = send_round_robin(&http, &bases, &mut turn, &format!("/ingest/{key}"), None, &body).await;
        assert_eq!(status, 202, "an ingest is acknowledged: {reply}");
        acknowledged.push((n, reply["eventId"].as_str().expect("eventId").to_owned()));
    }
    (entity, acknowledged)
}

/// Publishes events `p{publisher}-0`… round-robin over the nodes until `stop`; returns the
/// ids acknowledged (202, or 409: a retry of one stored before its answer was lost).
async fn publish(bases: Bases, token: String, path: String, publisher: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let http = common::http();
    let mut acknowledged = Vec::new();
    let mut turn = publisher;
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = format!("p{publisher}-{n}");
        let body = json!({"type": "order.created", "id": id, "data": {"n": n}});
        let (status, reply) = send_round_robin(&http, &bases, &mut turn, &format!("{path}/events"), Some(&token), &body).await;
        assert!(status == 202 || status == 409, "a publish is acknowledged: {status} {reply}");
        acknowledged.push(id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    acknowledged
}

/// `--database-pool-size` caps the connections a node opens to PostgreSQL, so nodes sharing a
/// database can be kept within its `max_connections`: under 32 concurrent searches a node
/// with a pool of 3 never holds more than 3 (and answers every search), where the same load
/// makes a node with the tests' pool of 8 open more than 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_opens_no_more_connections_than_its_pool_size_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    let http = common::http();
    let most_held = |load: Vec<tokio::task::JoinHandle<()>>| {
        let (admin, url) = (admin.clone(), url.clone());
        async move {
            let mut most = 0;
            while load.iter().any(|task| !task.is_finished()) {
                most = most.max(wharf_store::testing::connections_to(&admin, &url).await.unwrap());
            }
            for task in load {
                task.await.expect("every search answered 200");
            }
            most
        }
    };
    let searches = |base: String, token: String| {
        (0..32)
            .map(|_| {
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        get(&http, &base, &token, "/v1/blueprints/item/entities?include=identifier").await;
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let mut most = Vec::new();
    for args in [&["--database-pool-size", "3"][..], &[][..]] {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(dir.path(), Some(&url), args).await;
        let token = node.token(&http).await;
        if most.is_empty() {
            let blueprint = json!({"identifier": "item", "title": "Item", "schema": {"properties": {}}});
            create(&http, &node.base, &token, "/v1/blueprints", blueprint).await;
        }
        most.push(most_held(searches(node.base.clone(), token)).await);
        drop(node);
    }
    assert!(most[0] <= 3, "a node with a pool of 3 held {} connections", most[0]);
    assert!(most[1] > 3, "the load opens more than 3 connections on a larger pool (it held {})", most[1]);
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}

/// GET `path` on `base` with `token`, as JSON (200 asserted).
async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let reply = http.get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(reply.status(), 200, "{path}");
    reply.json().await.unwrap()
}

/// POST `body` to `path` on `base` with `token`; the answer, whose status must be 201.
async fn create(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let reply = http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = reply.status();
    let body: Value = reply.json().await.unwrap();
    assert_eq!(status, 201, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_while_one_is_killed_and_one_restarted_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    let (hook, calls) = receiver().await;
    let http = common::http();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for dir in &dirs {
        nodes.push(Node::start(dir.path(), Some(&url), NODE_ARGS).await);
    }
    let token = nodes[0].token(&http).await;
    let base = nodes[0].base.clone();

    // Two webhooks mapping into one blueprint; a project subscribed to the receiver.
    let blueprint = json!({"identifier": "item", "title": "Item", "schema": {"properties": {"seq": {"type": "number"}}}});
    create(&http, &base, &token, "/v1/blueprints", blueprint).await;
    let mut keys = Vec::new();
    for webhook in WEBHOOKS {
        let doc = json!({"identifier": webhook, "title": webhook, "security": {"requestIdentifierPath": ".body.id"},
            "mappings": [{"blueprint": "item",
                "entity": {"identifier": ".body.entity", "title": ".body.entity", "properties": {"seq": ".body.seq"}}}]});
        let created = create(&http, &base, &token, "/v1/webhooks", doc).await;
        keys.push(created["integration"]["webhookKey"].as_str().unwrap().to_owned());
    }
    let org = get(&http, &base, &token, "/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let project =
        create(&http, &base, &token, &format!("/organizations/{org}/projects"), json!({"name": "Nodes", "slug": "nodes"})).await;
    let path = format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap());
    let subscription = json!({"name": "receiver", "url": hook, "events": ["*"]});
    create(&http, &base, &token, &format!("{path}/settings/webhooks"), subscription).await;

    // Load: each webhook's events in sequence, and publishers, all round-robin over the nodes.
    let bases: Bases = Arc::new(Mutex::new(nodes.iter().map(|n| n.base.clone()).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut ingesters = Vec::new();
    for (webhook, key) in WEBHOOKS.iter().zip(&keys) {
        for entity in 0..ENTITIES {
            ingesters.push((*webhook, tokio::spawn(ingest_in_order(bases.clone(), key.clone(), webhook, entity, stop.clone()))));
        }
    }
    let publishers: Vec<_> =
        (0..PUBLISHERS).map(|p| tokio::spawn(publish(bases.clone(), token.clone(), path.clone(), p, stop.clone()))).collect();

    // During it: node 2 is killed; node 1 is stopped and started again (on a new port).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received_at_kill = calls.0.lock().unwrap().len();
    nodes[2].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(nodes[1].stop().await, "a node stopped by SIGTERM exits cleanly");
    nodes[1] = Node::start(dirs[1].path(), Some(&url), NODE_ARGS).await;
    bases.lock().unwrap()[1] = nodes[1].base.clone();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::SeqCst);
    // By webhook, by entity: the events acknowledged.
    let mut ingested: BTreeMap<&str, BTreeMap<String, Acknowledged>> = BTreeMap::new();
    for (webhook, ingester) in ingesters {
        let (entity, acknowledged) = ingester.await.unwrap();
        ingested.entry(webhook).or_default().insert(entity, acknowledged);
    }
    let mut published = Vec::new();
    for publisher in publishers {
        published.extend(publisher.await.unwrap());
    }
    assert!(received_at_kill > 0, "deliveries were under way when the node was killed");

    // Every acknowledged webhook event is mapped (a dead node's mapper lease expires, 30 s at
    // most, and a live node takes its webhooks over).
    let live = nodes[0].base.clone();
    for webhook in WEBHOOKS {
        let mut drained = false;
        for _ in 0..900 {
            let pending = get(&http, &live, &token, &format!("/v1/webhooks/{webhook}/events?status=PENDING&limit=1")).await;
            if pending["events"].as_array().is_some_and(Vec::is_empty) {
                drained = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(drained, "the events of {webhook} were not all mapped within 45 s");
    }
    for (webhook, entities) in &ingested {
        let events: usize = entities.values().map(Vec::len).sum();
        assert!(events > 100, "{webhook}: {events} events acknowledged");
        let log = get(&http, &live, &token, &format!("/v1/audit-log?webhookId={webhook}&limit=10000")).await;
        let entries = log["audits"].as_array().unwrap();
        assert!(entries.len() < 10_000, "the audit log holds every change of {webhook}");
        // Oldest first: each entity's `seq` strictly increases, change after change.
        let mut history: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut mapped: HashSet<&str> = HashSet::new();
        for entry in entries.iter().rev() {
            mapped.insert(entry["additionalData"]["webhookEventId"].as_str().unwrap());
            let entity = entry["context"]["entityIdentifier"].as_str().unwrap().to_owned();
            history.entry(entity).or_default().push(entry["diff"]["after"]["properties"]["seq"].as_u64().unwrap());
        }
        assert_eq!(history.keys().collect::<Vec<_>>(), entities.keys().collect::<Vec<_>>(), "{webhook}: the entities written");
        for (entity, acknowledged) in entities {
            for (n, event) in acknowledged {
                assert!(mapped.contains(event.as_str()), "{entity}: acknowledged event {n} ({event}) was not mapped");
            }
            let seqs = &history[entity];
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{entity} was mapped out of order: {seqs:?}");
            let last = acknowledged.last().expect("events acknowledged").0;
            assert_eq!(seqs.last(), Some(&last), "{entity} ends with the last acknowledged event");
            let stored = get(&http, &live, &token, &format!("/v1/blueprints/item/entities/{entity}")).await;
            assert_eq!(stored["entity"]["properties"]["seq"], last, "{entity} as stored");
        }
    }

    // Every published event arrives (a killed node's claims are due again after their lease).
    let wanted: HashSet<&str> = published.iter().map(String::as_str).collect();
    let mut arrived = false;
    for _ in 0..600 {
        let got: HashSet<String> = calls.0.lock().unwrap().iter().map(|c| c.id.clone()).collect();
        if wanted.iter().all(|id| got.contains(*id)) {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = calls.0.lock().unwrap().clone();
    let got: HashSet<&str> = calls.iter().map(|c| c.id.as_str()).collect();
    let missing: Vec<&&str> = wanted.iter().filter(|id| !got.contains(**id)).collect();
    assert!(
        arrived,
        "{} of {} published events never arrived, e.g. {:?}",
        missing.len(),
        wanted.len(),
        &missing[..5.min(missing.len())]
    );

    // No two calls of one delivery overlap: one node at a time attempts it. Repeats (a killed
    // node's call, sent again after its lease) carry the same body.
    let mut by_id: HashMap<&str, Vec<&Call>> = HashMap::new();
    for call in &calls {
        by_id.entry(call.id.as_str()).or_default().push(call);
    }
    let mut repeats = 0;
    for (id, mut list) in by_id {
        list.sort_by_key(|c| c.start);
        repeats += list.len() - 1;
        for pair in list.windows(2) {
            assert_eq!(pair[0].body, pair[1].body, "a repeat of {id} differs");
            let end = pair[0].end.expect("every call ended");
            assert!(end <= pair[1].start, "two calls of {id} overlapped: a delivery was attempted by two nodes at once");
        }
    }
    let events: Vec<usize> = ingested.values().map(|e| e.values().map(Vec::len).sum()).collect();
    eprintln!(
        "three nodes: {events:?} webhook events mapped in order, {} published events delivered ({} calls, {repeats} repeats)",
        wanted.len(),
        calls.len()
    );
    drop(nodes);
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}

/// A webhook created on one node is served by another at once, not after that node's next
/// refresh of its webhooks (a sender takes a 404 as final: GitHub does not retry one); a key
/// no node knows is still a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_created_on_one_node_is_served_by_the_others_at_once_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    let http = common::http();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for dir in &dirs {
        nodes.push(Node::start(dir.path(), Some(&url), NODE_ARGS).await);
    }
    let token = nodes[0].token(&http).await;
    let blueprint = json!({"identifier": "item", "title": "Item", "schema": {"properties": {}}});
    create(&http, &nodes[0].base, &token, "/v1/blueprints", blueprint).await;
    for n in 0..5 {
        let doc = json!({"identifier": format!("hook-{n}"), "title": "Hook",
            "mappings": [{"blueprint": "item", "entity": {"identifier": ".body.id", "title": ".body.id"}}]});
        let created = create(&http, &nodes[0].base, &token, "/v1/webhooks", doc).await;
        let key = created["integration"]["webhookKey"].as_str().unwrap();
        let reply =
            http.post(format!("{}/ingest/{key}", nodes[1].base)).json(&json!({"id": format!("e{n}")})).send().await.unwrap();
        assert_eq!(reply.status(), 202, "webhook {n}, created on node 0, ingested on node 1 right away");
    }
    let reply = http.post(format!("{}/ingest/no-such-key", nodes[1].base)).json(&json!({})).send().await.unwrap();
    assert_eq!(reply.status(), 404);
    drop(nodes);
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
