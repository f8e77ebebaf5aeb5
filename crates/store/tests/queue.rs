//! The delivery queue's leases on both stores: a claimed delivery is not claimed again until
//! its lease ends, then it is; an attempt recorded under a lease that was taken over is kept
//! but does not move the delivery; a delivery inserted already leased waits for its lease.

mod common;

use common::TestStore;
use serde_json::json;
use wharf_core::delivery::DeliveryStatus;
use wharf_core::project::{Project, ProjectEvent, Subscription, SubscriptionInput};
use wharf_core::tenancy::{ApiClient, Organization};
use wharf_core::time::Timestamp;
use wharf_store::{AttemptRecord, Lease, Publication, Store};

const T0: Timestamp = Timestamp::from_millis(1_000_000);

fn at(ms: i64) -> Timestamp {
    T0.plus_millis(ms)
}

/// An organization, a project and one subscription; returns the subscription.
async fn subscription(store: &Store) -> Subscription {
    let org = Organization { id: "o1".into(), name: "Org".into(), created_at: T0, updated_at: T0 };
    let client = ApiClient {
        id: "c1".into(),
        org_id: "o1".into(),
        name: "admin".into(),
        secret_hash: "h".into(),
        secret_sealed: "s".into(),
        created_at: T0,
        updated_at: T0,
    };
    store.create_organization(&org, &client).await.unwrap();
    let project = Project {
        id: "p1".into(),
        org_id: "o1".into(),
        name: "Shop".into(),
        slug: "shop".into(),
        description: None,
        status: "draft".into(),
        app_icon_url: None,
        created_at: T0,
        updated_at: T0,
    };
    let doc = json!({"name": "hook", "url": "https://example.com/hook", "events": ["*"]});
    let subscription = SubscriptionInput::parse(doc).unwrap().create("s1".into(), "o1".into(), "p1".into(), T0).unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_project(&project).await.unwrap();
    tx.insert_subscription(&subscription, "sealed-keys").await.unwrap();
    tx.commit().await.unwrap();
    subscription
}

/// Publishes one event with one delivery (leased when `lease` is given); its seq.
async fn delivery(store: &Store, id: &str, lease: Option<Lease<'_>>) -> i64 {
    let event = ProjectEvent::new(id.into(), "a.b".into(), &json!({}), T0);
    let mut tx = store.begin().await.unwrap();
    let seqs = tx.insert_events(&[Publication { project_id: "p1".into(), event }]).await.unwrap();
    let inserted = tx.insert_deliveries(&[("s1".into(), seqs[0].unwrap())], true, T0, lease).await.unwrap();
    tx.commit().await.unwrap();
    inserted[0].1
}

fn attempt(delivery_seq: i64, token: &str, status: DeliveryStatus) -> AttemptRecord {
    AttemptRecord {
        id: format!("a-{token}"),
        delivery_seq,
        lease_token: token.into(),
        attempted_at: at(1),
        duration_ms: 1,
        url: "https://example.com/hook".into(),
        outcome: "success".into(),
        status_code: Some(200),
        response_headers: None,
        response_body: None,
        error: None,
        status,
        attempts: 1,
        next_attempt_at: at(1),
    }
}

async fn leases_expire_and_guard_the_result(store: &Store) {
    subscription(store).await;
    let seq = delivery(store, "e1", None).await;

    let first = store.claim_deliveries("A", T0, at(1000), 10).await.unwrap();
    assert_eq!(first.iter().map(|d| d.seq).collect::<Vec<_>>(), [seq]);
    assert_eq!(first[0].payload, r#"{"type":"a.b","timestamp":"1970-01-01T00:16:40.000Z","data":{}}"#);
    assert!(store.claim_deliveries("B", at(999), at(2000), 10).await.unwrap().is_empty(), "claimed twice during its lease");

    // The lease ends (worker A died, or is stuck): B takes the delivery over.
    let second = store.claim_deliveries("B", at(1000), at(3000), 10).await.unwrap();
    assert_eq!(second.iter().map(|d| d.seq).collect::<Vec<_>>(), [seq]);

    // A finishes late: its attempt is kept, but the delivery stays B's.
    store.record_attempts(&[attempt(seq, "A", DeliveryStatus::Succeeded)], &[], at(1500)).await.unwrap();
    assert_eq!(store.attempts(seq).await.unwrap().len(), 1);
    let row = store.delivery("s1", &second[0].id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Pending, 0), "a stale lease moved the delivery");

    store.record_attempts(&[attempt(seq, "B", DeliveryStatus::Succeeded)], &[], at(1600)).await.unwrap();
    let row = store.delivery("s1", &second[0].id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Succeeded, 1));
    assert!(store.claim_deliveries("C", at(10_000), at(11_000), 10).await.unwrap().is_empty(), "a finished delivery was claimed");

    // Inserted already leased (the publisher's hand-off): nobody claims it before the lease ends.
    let leased = delivery(store, "e2", Some(Lease { token: "H", until: at(5000) })).await;
    assert!(store.claim_deliveries("C", at(4999), at(6000), 10).await.unwrap().is_empty());
    let taken = store.claim_deliveries("C", at(5000), at(6000), 10).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.seq).collect::<Vec<_>>(), [leased]);
}

#[tokio::test]
async fn sqlite_leases_expire_and_guard_the_result() {
    let test = TestStore::sqlite().await;
    leases_expire_and_guard_the_result(&test.store).await;
    test.drop_database().await;
}

#[tokio::test]
async fn postgres_leases_expire_and_guard_the_result() {
    let Some(test) = TestStore::postgres().await else { return eprintln!("PostgreSQL suite off") };
    leases_expire_and_guard_the_result(&test.store).await;
    test.drop_database().await;
}
