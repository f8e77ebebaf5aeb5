//! A node stops with every task ended: requests, then the intake (committers, mappers,
//! router, claims), then what was handed to the dispatcher, then the sends in flight, then
//! the writing of their attempts, then the store (`wharf_engine::node`).

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::json;

/// Sends in flight at the stop end, and their attempts are written before the store closes:
/// right after the restart, before any lease could expire or any claim run, each delivery is
/// already `succeeded` with its one attempt, and no task was left running.
async fn a_stop_waits_for_sends_in_flight_and_writes_their_attempts(mut server: TestServer) {
    let receiver = Receiver::start().await;
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let (status, project) =
        server.post(&format!("/organizations/{org}/projects"), json!({"name": "Shop", "slug": "shutdown"})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project = format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap());
    let (status, hook) = server
        .post(
            &format!("{project}/settings/webhooks"),
            json!({"name": "slow", "url": receiver.url("/slowish/1"), "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook = format!("{project}/settings/webhooks/{}", hook["_id"].as_str().unwrap());
    for n in 0..5 {
        let (status, event) =
            server.post(&format!("{project}/events"), json!({"type": "a.b", "data": {}, "id": format!("e{n}")})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    }
    // Each send takes 300 ms: they are in flight when the stop begins.
    let stopped = server.restart_reporting().await;
    assert_eq!(stopped.unfinished, 0, "every task of the node ended within its grace");
    assert_eq!(receiver.calls("/slowish/1").len(), 5, "every send in flight finished");
    let (status, list) = server.get(&format!("{hook}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5, "{list:?}");
    for delivery in list {
        assert_eq!(delivery["status"], "succeeded", "{delivery}");
        assert_eq!(delivery["attempts"], 1, "{delivery}");
        assert_eq!(server.delivery_attempts(&hook, delivery).await.len(), 1, "{delivery}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.calls("/slowish/1").len(), 5, "nothing was sent again");
}

/// A stop with webhook events accepted and not yet mapped loses none: the mappers finish the
/// batch in hand, and the rest are mapped after the restart.
async fn a_stop_leaves_accepted_events_to_map_after_the_restart(mut server: TestServer) {
    server.blueprint(json!({"identifier": "order", "title": "Order", "schema": {"properties": {}}})).await;
    let webhook = server
        .webhook(json!({"identifier": "shop", "title": "Shop", "mappings": [
            {"blueprint": "order", "entity": {"identifier": ".body.id"}}]}))
        .await;
    let key = webhook["webhookKey"].as_str().unwrap().to_owned();
    let mut events = Vec::new();
    for n in 0..50 {
        events.push(server.ingest(&key, &json!({"id": format!("o{n}")}), &[]).await);
    }
    let stopped = server.restart_reporting().await;
    assert_eq!(stopped.unfinished, 0, "every task of the node ended within its grace");
    for event in &events {
        assert_eq!(server.mapped_event("shop", event).await["status"], "SUCCESS");
    }
}

both_stores!(a_stop_waits_for_sends_in_flight_and_writes_their_attempts, a_stop_leaves_accepted_events_to_map_after_the_restart,);
