//! Webhook events as the store keeps them: requests stored compressed come back as they were
//! sent, events stored before requests were compressed still read, and the mapper's question
//! "which webhooks have events waiting?" names each such webhook once. Both stores; SQLite's
//! WAL reaches the database file while the store runs (its checkpointer).

mod common;

use std::sync::Arc;

use common::TestStore;
use serde_json::json;
use sqlx::Connection;
use wharf_core::blueprint::Audited;
use wharf_core::mapping::WebhookEventStatus;
use wharf_core::time::Timestamp;
use wharf_core::webhook::{Webhook, WebhookDef};
use wharf_store::{CompressedJson, EventLogTx, FinishedWebhookEvent, NewWebhookEvent, Store, StoredWebhook, WebhookEventFilter};

const ORG: &str = "org";

fn at() -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000)
}

/// A webhook with the internal id `id`.
async fn webhook(store: &Store, id: &str) {
    let def: WebhookDef = serde_json::from_value(json!({"identifier": id, "title": id, "mappings": []})).unwrap();
    let webhook = Webhook { id: id.into(), def, key: format!("key-{id}"), audited: Audited::new("test", at()), revision: 1 };
    let mut tx = store.begin().await.unwrap();
    tx.put_webhook(&StoredWebhook { org_id: ORG.into(), webhook, secret_sealed: None }).await.unwrap();
    tx.commit().await.unwrap();
}

fn pending(webhook: &str, id: &str, request: &str) -> NewWebhookEvent {
    NewWebhookEvent {
        id: id.into(),
        org_id: ORG.into(),
        webhook_id: webhook.into(),
        status: WebhookEventStatus::Pending,
        request_id: None,
        request: Some(CompressedJson::new(request)),
        result: None,
        received_at: at(),
        dedupe_until: at(),
    }
}

/// A GitHub-shaped request: long, repetitive JSON, as webhooks are.
fn request(n: usize) -> serde_json::Value {
    json!({
        "body": {"action": "opened", "number": n, "pull_request": {"id": n, "title": "Retry deliveries on 429",
            "html_url": format!("https://github.com/acme/wharf/pull/{n}"), "body": "Wait for Retry-After. ".repeat(60),
            "labels": [{"name": "delivery"}, {"name": "é ✓"}]}},
        "headers": {"content-type": "application/json", "x-github-event": "pull_request"},
        "queryParams": {}
    })
}

async fn events_come_back_as_they_were_sent(test: &TestStore) {
    let store = &test.store;
    common::organization(store, ORG, at()).await;
    webhook(store, "wh").await;
    let sent = request(1);
    let stored = store.store_webhook_events(Arc::new(vec![pending("wh", "e1", &sent.to_string())]), at()).await.unwrap();
    assert_eq!(stored.len(), 1);
    let read = store.webhook_event("wh", "e1").await.unwrap().expect("the event is stored");
    assert_eq!(read.request, Some(sent.clone()));
    // A listing leaves the requests unread; it has everything else.
    let listed = store.webhook_events("wh", &WebhookEventFilter::default(), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id.as_str(), listed[0].status, listed[0].request.as_ref()), ("e1", WebhookEventStatus::Pending, None));

    // An event stored by a Wharf from before requests were compressed: its text is in `request`.
    let old = request(2);
    let mut conn = sqlx::AnyConnection::connect(&test.url).await.unwrap();
    sqlx::query(
        "INSERT INTO webhook_events (id, org_id, webhook_id, status, request, received_at) \
         VALUES ('e0', 'org', 'wh', 'PENDING', $1, 1)",
    )
    .bind(old.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let read = store.webhook_event("wh", "e0").await.unwrap().expect("the old event is there");
    assert_eq!(read.request, Some(old));
}

async fn each_webhook_with_waiting_events_is_named_once(test: &TestStore) {
    let store = &test.store;
    common::organization(store, ORG, at()).await;
    for id in ["wh-a", "wh-b", "wh-c", "wh-d"] {
        webhook(store, id).await;
    }
    assert!(store.webhooks_with_pending_events().await.unwrap().is_empty());
    let events: Vec<NewWebhookEvent> = (0..30)
        .map(|i| pending(["wh-d", "wh-b", "wh-a"][i % 3], &format!("e{i}"), "{\"body\":null,\"headers\":{},\"queryParams\":{}}"))
        .collect();
    store.store_webhook_events(Arc::new(events), at()).await.unwrap();
    assert_eq!(waiting(store, 3).await, ["wh-a", "wh-b", "wh-d"], "wh-c has no events");

    // wh-b's events are all mapped: it is no longer named.
    let finished: Vec<FinishedWebhookEvent> = (0..30)
        .filter(|i| i % 3 == 1)
        .map(|i| FinishedWebhookEvent { id: format!("e{i}"), status: WebhookEventStatus::Success, result: "{}".into() })
        .collect();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.finish_webhook_events(&finished, at()).await.unwrap(), 10);
    tx.commit().await.unwrap();
    assert_eq!(waiting(store, 2).await, ["wh-a", "wh-d"]);
}

/// The webhooks with waiting events, sorted, once `expected` are seen or after 10 s. (On
/// PostgreSQL an event is listed once every older transaction of the cluster has ended, and
/// other tests run transactions beside this one.)
async fn waiting(store: &Store, expected: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut found = store.webhooks_with_pending_events().await.unwrap();
        found.sort();
        if found.len() == expected || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

on_both_stores!(test: events_come_back_as_they_were_sent);
on_both_stores!(test: each_webhook_with_waiting_events_is_named_once);

/// Checkpoints run on their own thread (no connection checkpoints inside its commits): the
/// database file still receives the WAL's pages while the store is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_while_the_store_runs() {
    let test = TestStore::sqlite().await;
    let store = &test.store;
    common::organization(store, ORG, at()).await;
    webhook(store, "wh").await;
    let file = test.url.trim_start_matches("sqlite://").to_owned();
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    let body = request(3).to_string();
    for batch in 0..20 {
        let events = (0..50).map(|i| pending("wh", &format!("e{batch}-{i}"), &body)).collect();
        store.store_webhook_events(Arc::new(events), at()).await.unwrap();
    }
    // The checkpointer runs after writer jobs and at least every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before + 100_000 {
        assert!(std::time::Instant::now() < deadline, "the database file stayed at {} bytes", size());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    test.drop_database().await;
}
