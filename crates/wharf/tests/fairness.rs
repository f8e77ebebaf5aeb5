//! Fairness between organizations (issue 22, point 3), through HTTP on both stores: one
//! organization's slow mappings do not hold up another organization's events, and a change
//! the router cannot route is parked with its reason while routing goes on for everyone.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Events sent to each of the hostile organization's two webhooks.
const FLOOD: usize = 12;
/// How long a benign event of another organization may wait to be mapped: the acceptance
/// bound of the issue, not a benchmark.
const BOUND: Duration = Duration::from_secs(1);

async fn organization_id(server: &TestServer, token: &str) -> String {
    let (status, body) = call(server, token, Method::GET, "/v1/organization", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["organization"]["id"].as_str().unwrap().to_owned()
}

async fn call(server: &TestServer, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    server.call_as(Some(token), method, path, body).await
}

/// A blueprint and a webhook `identifier` in the organization of `token`; the ingest key.
async fn webhook(server: &TestServer, token: &str, identifier: &str, mappings: Value) -> String {
    let blueprint = json!({"identifier": "service", "title": "Service", "schema": {"properties": {
        "a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}, "d": {"type": "string"}
    }}});
    let (status, body) = call(server, token, Method::POST, "/v1/blueprints", Some(blueprint)).await;
    assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "{body}");
    let doc = json!({"identifier": identifier, "title": identifier, "mappings": mappings});
    let (status, body) = call(server, token, Method::POST, "/v1/webhooks", Some(doc)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["integration"]["webhookKey"].as_str().unwrap().to_owned()
}

/// A mapping whose every event is slow (about a second in a debug build): each item
/// evaluates four properties that build a 250,000-element array. Whether an event ends within
/// its jq budget or by crossing it does not matter here: either way it holds a worker.
fn slow_mapping() -> Value {
    let slow = "[range(250000)] | length | tostring";
    json!([{
        "blueprint": "service",
        "itemsToParse": ".body.items",
        "entity": {"identifier": ".item | tostring", "properties": {"a": slow, "b": slow, "c": slow, "d": slow}}
    }])
}

fn benign_mapping() -> Value {
    json!([{"blueprint": "service", "entity": {"identifier": ".body.name"}}])
}

/// The event's status, as its organization reads it.
async fn status(server: &TestServer, token: &str, webhook: &str, event: &str) -> String {
    let (status, body) = call(server, token, Method::GET, &format!("/v1/webhooks/{webhook}/events/{event}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event"]["status"].as_str().unwrap().to_owned()
}

/// Waits (10 s at most) until the event is mapped; how long that took.
async fn mapped(server: &TestServer, token: &str, webhook: &str, event: &str) -> (String, Duration) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let status = status(server, token, webhook, event).await;
        if status != "PENDING" {
            return (status, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("event {event} of {webhook} was not mapped within 10 s");
}

/// How many of these events are still pending.
async fn pending(server: &TestServer, webhook: &str, events: &[String]) -> usize {
    let mut pending = 0;
    for event in events {
        if status(server, &server.token, webhook, event).await == "PENDING" {
            pending += 1;
        }
    }
    pending
}

async fn another_organizations_event_is_mapped_while_one_floods_slow_mappings(server: TestServer) {
    let hostile = &server.token;
    let slow_a = webhook(&server, hostile, "slow-a", slow_mapping()).await;
    let slow_b = webhook(&server, hostile, "slow-b", slow_mapping()).await;
    let (_, benign) = server.other_organization("Benign Corp").await;
    let key = webhook(&server, &benign, "benign", benign_mapping()).await;

    // How long one hostile event takes alone: the flood below must outlast the bound many
    // times over, or the test would prove nothing.
    let body = json!({"items": [1, 2, 3]});
    let first = server.ingest(&slow_a, &body, &[]).await;
    let (outcome, alone) = mapped(&server, hostile, "slow-a", &first).await;
    eprintln!("one hostile event alone: {alone:?} ({outcome})");
    assert!(alone * (2 * FLOOD as u32) > BOUND * 4, "the hostile events are too quick to prove anything: {alone:?}");

    let mut flood_a = Vec::new();
    let mut flood_b = Vec::new();
    for _ in 0..FLOOD {
        flood_a.push(server.ingest(&slow_a, &body, &[]).await);
        flood_b.push(server.ingest(&slow_b, &body, &[]).await);
    }
    // Both hostile webhooks are being worked on.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let event = server.ingest(&key, &json!({"name": "api"}), &[]).await;
    let (outcome, waited) = mapped(&server, &benign, "benign", &event).await;
    assert_eq!(outcome, "SUCCESS");
    let left = pending(&server, "slow-a", &flood_a).await + pending(&server, "slow-b", &flood_b).await;
    eprintln!("benign event mapped after {waited:?}, {left} hostile events still pending");
    assert!(left > 0, "the hostile backlog was gone before the benign event was mapped: the test proves nothing");
    assert!(waited < BOUND, "the benign organization's event waited {waited:?} behind another organization's");
}

/// A project of the organization of `token` with a subscription to `entity.service.*` at
/// `url`.
async fn subscribe(server: &TestServer, token: &str, url: &str) {
    let org = organization_id(server, token).await;
    let slug = format!("p-{}", wharf_ids::random_base62(8).to_lowercase());
    let (status, project) =
        call(server, token, Method::POST, &format!("/organizations/{org}/projects"), Some(json!({"name": "Shop", "slug": slug})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let path = format!("/organizations/{org}/projects/{}/settings/webhooks", project["_id"].as_str().unwrap());
    let doc = json!({"name": "services", "url": url, "events": ["entity.service.*"]});
    let (status, body) = call(server, token, Method::POST, &path, Some(doc)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn upsert(server: &TestServer, token: &str, identifier: &str) {
    let path = "/v1/blueprints/service/entities?upsert=true&merge=true";
    let (status, body) = call(server, token, Method::POST, path, Some(json!({"identifier": identifier}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn parked(server: &TestServer, token: &str) -> Vec<Value> {
    let (status, body) = call(server, token, Method::GET, "/v1/changes/parked", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    body["parked"].as_array().unwrap().clone()
}

/// The `webhook-id`s (change ids) delivered at `path`.
fn delivered(receiver: &Receiver, path: &str) -> Vec<String> {
    receiver.calls(path).iter().map(|call| call.header("webhook-id").to_owned()).collect()
}

async fn a_change_that_cannot_be_routed_is_parked_and_routing_goes_on(mut server: TestServer) {
    let receiver = Receiver::start().await;
    let ours = server.token.clone();
    let org = organization_id(&server, &ours).await;
    let (_, theirs) = server.other_organization("Other Corp").await;
    for token in [&ours, &theirs] {
        webhook(&server, token, "hook", benign_mapping()).await; // the blueprint, mostly
    }
    subscribe(&server, &ours, &receiver.url("/ok/ours")).await;
    subscribe(&server, &theirs, &receiver.url("/ok/theirs")).await;
    // An automation of ours on `service`, so the automation worker might act on its changes
    // (a reader parks only a change it might have acted on, and passes over the others).
    let automation = json!({
        "identifier": "on-service", "title": "On service",
        "trigger": {"type": "automation", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}},
        "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/ok/automation")}
    });
    let (status, body) = call(&server, &ours, Method::POST, "/v1/actions", Some(automation)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A change of ours that cannot be read back, ahead of everyone's next changes; and before
    // it one of an organization with neither subscriptions nor automations.
    let database =
        server.settings.database_url.clone().unwrap_or_else(|| server.data_dir().join("wharf.db").display().to_string());
    let (_, quiet) = server.other_organization("Quiet Corp").await;
    let quiet_org = organization_id(&server, &quiet).await;
    wharf_store::testing::insert_unreadable_change(&database, &quiet_org, "service").await.unwrap();
    let broken = wharf_store::testing::insert_unreadable_change(&database, &org, "service").await.unwrap();
    upsert(&server, &theirs, "api").await;
    upsert(&server, &ours, "web").await;
    receiver.wait_for("/ok/theirs", 1).await;
    receiver.wait_for("/ok/ours", 1).await;
    assert!(!delivered(&receiver, "/ok/ours").contains(&broken), "the unreadable change was delivered");

    // Parked, with its reason, by each reader of the outbox (the router, the automation
    // worker, which may still be firing the automation when the deliveries arrive), and
    // shown only to its organization.
    let mut listed = parked(&server, &ours).await;
    for _ in 0..100 {
        if listed.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        listed = parked(&server, &ours).await;
    }
    listed.sort_by_key(|p| p["consumer"].as_str().unwrap_or_default().to_owned());
    let consumers: Vec<&str> = listed.iter().map(|p| p["consumer"].as_str().unwrap()).collect();
    assert_eq!(consumers, ["automations", "project-subscriptions"], "{listed:?}");
    // The readers went past the quiet organization's change first: neither might have acted
    // on it, so neither parked it.
    assert_eq!(parked(&server, &quiet).await, Vec::<Value>::new(), "parked where nothing listens");
    for entry in &listed {
        assert_eq!(entry["changeId"], broken.as_str());
        let reason = entry["reason"].as_str().unwrap();
        assert!(reason.contains("unreadable"), "{reason}");
        assert!(entry["parkedAt"].is_string(), "{listed:?}");
    }
    assert_eq!(parked(&server, &theirs).await, Vec::<Value>::new());
    assert_eq!(server.call_as(Some(&ours), Method::GET, "/v1/changes/parked?limit=0", None).await.0, StatusCode::BAD_REQUEST);

    // Across a restart it stays parked (not tried again) and routing goes on.
    server.restart().await;
    upsert(&server, &theirs, "db").await;
    upsert(&server, &ours, "queue").await;
    receiver.wait_for("/ok/theirs", 2).await;
    receiver.wait_for("/ok/ours", 2).await;
    let listed = parked(&server, &ours).await;
    assert_eq!(listed.len(), 2, "once per reader, still: {listed:?}");
    assert!(listed.iter().all(|p| p["changeId"] == broken.as_str()), "{listed:?}");
    assert_eq!(receiver.calls("/ok/theirs").len(), 2, "nothing is routed twice");
}

/// An event whose entity the database refuses (PostgreSQL stores no NUL in text) fails
/// alone, with the reason, and the webhook's next events are mapped; before, the batch was
/// retried forever and the webhook's queue stopped at it.
async fn an_event_the_database_refuses_fails_alone(server: TestServer) {
    let token = server.token.clone();
    let key = webhook(&server, &token, "hook", benign_mapping()).await;
    let refused = server.ingest(&key, &json!({"name": "nul\u{0}byte"}), &[]).await;
    let next = server.ingest(&key, &json!({"name": "api"}), &[]).await;
    let (outcome, _) = mapped(&server, &token, "hook", &next).await;
    assert_eq!(outcome, "SUCCESS");
    let event = server.mapped_event("hook", &refused).await;
    if server.backend == common::Backend::Postgres {
        assert_eq!(event["status"], "FAILURE", "{event}");
        let message = event["result"]["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("cannot be written"), "{event}");
    } else {
        assert_ne!(event["status"], "PENDING", "{event}");
    }
}

both_stores!(
    another_organizations_event_is_mapped_while_one_floods_slow_mappings,
    a_change_that_cannot_be_routed_is_parked_and_routing_goes_on,
    an_event_the_database_refuses_fails_alone
);
