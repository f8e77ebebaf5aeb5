//! The delivery queue's leases on both stores: a claimed delivery is not claimed again until
//! its lease ends, then it is; an attempt recorded under a lease that was taken over is kept
//! but does not move the delivery; a delivery inserted already leased waits for its lease;
//! a published batch records, stores and routes in one transaction; SQLite's two writers take
//! turns; the delivery log shows an organization only its own subscriptions' deliveries; the
//! one server of a SQLite database takes back the leases a stopped one held.

mod common;

use serde_json::json;
use std::sync::Arc;
use wharf_core::delivery::{AttemptBatch, AttemptRecord, DeliveryStatus, TargetUpdate};
use wharf_core::project::{Project, PublishedEvent, Subscription, SubscriptionInput};
use wharf_core::time::Timestamp;

use wharf_core::delivery::DeliveryFilter;
use wharf_store::{Lease, Publication, PublishBatch, QueueTx, Routing, Store};

const T0: Timestamp = Timestamp::from_millis(1_000_000);

fn at(ms: i64) -> Timestamp {
    T0.plus_millis(ms)
}

/// An organization, a project and one subscription; returns the subscription.
async fn subscription(store: &Store) -> Subscription {
    common::organization(store, "o1", T0).await;
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
    let event = PublishedEvent::new(id.into(), "a.b".into(), &json!({}), T0);
    let mut tx = store.begin().await.unwrap();
    let seqs = tx.insert_published_events(&[Publication { project_id: "p1".into(), event }]).await.unwrap();
    let inserted = tx.insert_deliveries(&[("s1".into(), seqs[0].unwrap())], true, T0, lease).await.unwrap();
    tx.commit().await.unwrap();
    inserted[0].1
}

fn attempts(records: Vec<AttemptRecord>, targets: Vec<TargetUpdate>) -> Arc<AttemptBatch> {
    Arc::new(AttemptBatch { records, targets })
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
    store.record_attempts(attempts(vec![attempt(seq, "A", DeliveryStatus::Succeeded)], vec![]), at(1500)).await.unwrap();
    assert_eq!(store.attempts("o1", seq).await.unwrap().len(), 1);
    let row = store.delivery("o1", "s1", &second[0].id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Pending, 0), "a stale lease moved the delivery");

    store.record_attempts(attempts(vec![attempt(seq, "B", DeliveryStatus::Succeeded)], vec![]), at(1600)).await.unwrap();
    let row = store.delivery("o1", "s1", &second[0].id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Succeeded, 1));
    assert!(store.claim_deliveries("C", at(10_000), at(11_000), 10).await.unwrap().is_empty(), "a finished delivery was claimed");

    // Inserted already leased (the publisher's hand-off): nobody claims it before the lease ends.
    let leased = delivery(store, "e2", Some(Lease { token: "H", until: at(5000) })).await;
    assert!(store.claim_deliveries("C", at(4999), at(6000), 10).await.unwrap().is_empty());
    let taken = store.claim_deliveries("C", at(5000), at(6000), 10).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.seq).collect::<Vec<_>>(), [leased]);
}

on_both_stores!(leases_expire_and_guard_the_result);

/// Every query of a subscription or its deliveries takes the organization: another
/// organization passing the right ids reads and changes nothing.
async fn the_delivery_log_is_read_within_its_organization(store: &Store) {
    subscription(store).await;
    common::organization(store, "o2", T0).await;
    let seq = delivery(store, "e1", None).await;
    let claimed = store.claim_deliveries("A", T0, at(1000), 10).await.unwrap();
    store.record_attempts(attempts(vec![attempt(seq, "A", DeliveryStatus::Failed)], vec![]), at(1)).await.unwrap();
    let id = claimed[0].id.clone();

    assert!(store.subscription("o2", "p1", "s1").await.unwrap().is_none());
    assert!(store.subscriptions("o2", "p1").await.unwrap().is_empty());
    assert!(store.subscription_keys("o2", "s1").await.unwrap().is_none());
    assert!(store.deliveries("o2", "s1", DeliveryFilter::default(), None, 10).await.unwrap().is_empty());
    assert!(store.delivery("o2", "s1", &id).await.unwrap().is_none());
    assert!(store.attempts("o2", seq).await.unwrap().is_empty());
    assert!(store.resend("o2", "s1", &id, at(2)).await.unwrap().is_none());
    assert_eq!(store.recover("o2", "s1", T0, at(10), at(2)).await.unwrap(), 0);
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.delete_subscription("o2", "p1", "s1").await.unwrap());
    tx.set_subscription_keys("o2", "s1", "stolen", at(2)).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(store.subscription_keys("o1", "s1").await.unwrap().as_deref(), Some("sealed-keys"));
    assert_eq!(store.deliveries("o1", "s1", DeliveryFilter::default(), None, 10).await.unwrap().len(), 1);
    assert_eq!(store.attempts("o1", seq).await.unwrap().len(), 1);
    assert_eq!(store.recover("o1", "s1", T0, at(10), at(2)).await.unwrap(), 1);
}

on_both_stores!(the_delivery_log_is_read_within_its_organization);

fn publication(id: &str) -> Publication {
    Publication { project_id: "p1".into(), event: PublishedEvent::new(id.into(), "a.b".into(), &json!({}), T0) }
}

/// One batch: an earlier delivery's attempt is recorded, new events are stored (an id the
/// project has, or that the batch repeats, gets no `seq`), the routing sees the stored
/// events, and their deliveries are inserted under the lease it chose.
async fn a_batch_records_stores_and_routes(store: &Store) {
    subscription(store).await;
    let earlier = delivery(store, "e0", None).await;
    let claimed = store.claim_deliveries("A", T0, at(1000), 10).await.unwrap();
    let batch = PublishBatch {
        publications: Arc::new(vec![publication("e1"), publication("e0"), publication("e1"), publication("e2")]),
        attempts: attempts(
            vec![attempt(earlier, "A", DeliveryStatus::Succeeded)],
            vec![TargetUpdate::Failed("s1".into(), at(5))],
        ),
    };
    let published = store
        .publish(batch, at(10), |subscriptions, seqs| {
            let stored: Vec<usize> = (0..seqs.len()).filter(|&p| seqs[p].is_some()).collect();
            let mut targets: Vec<_> = stored.iter().flat_map(|&p| (0..subscriptions.len()).map(move |s| (s, p))).collect();
            // Targets that name a duplicate or no subscription are dropped, not inserted.
            targets.extend([(0, 1), (7, 0)]);
            Routing { targets, lease: Some(("H".into(), at(5000))), extra: subscriptions.len() }
        })
        .await
        .unwrap();
    assert_eq!(published.extra, 1, "the routing saw the project's one active subscription");
    assert!(matches!(published.seqs[..], [Some(_), None, None, Some(_)]), "{:?}", published.seqs);
    assert_eq!(published.targets, [(0, 0), (0, 3)]);
    assert_eq!(published.inserted.len(), 2);

    let row = store.delivery("o1", "s1", &claimed[0].id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Succeeded, 1), "the attempt did not move its delivery");
    let mut tx = store.begin().await.unwrap();
    let active = tx.active_subscriptions(&["p1".into()], false).await.unwrap();
    drop(tx);
    assert_eq!(active[0].failing_since, Some(at(5)), "the target update was not applied");

    assert!(store.claim_deliveries("C", at(4999), at(6000), 10).await.unwrap().is_empty(), "claimed during its lease");
    let taken: Vec<i64> = store.claim_deliveries("C", at(5000), at(6000), 10).await.unwrap().iter().map(|d| d.seq).collect();
    assert_eq!(taken, published.inserted.iter().map(|(_, seq)| *seq).collect::<Vec<_>>());
}

on_both_stores!(a_batch_records_stores_and_routes);

/// Batches published (on SQLite: on the writer thread) while other transactions read and
/// then write (on SQLite: through sqlx's connection) all commit: the two writers take turns
/// instead of failing on each other's locks.
async fn writers_take_turns(store: &Store) {
    subscription(store).await;
    let publishing = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let batch =
                    PublishBatch { publications: Arc::new(vec![publication(&format!("p{i}"))]), attempts: Arc::default() };
                let route = |_: &[_], _: &[_]| Routing { targets: Vec::new(), lease: None, extra: () };
                store.publish(batch, T0, route).await.unwrap();
            }
        })
    };
    for i in 0..100 {
        let mut tx = store.begin().await.unwrap();
        tx.active_subscriptions(&["p1".into()], false).await.unwrap();
        tokio::task::yield_now().await;
        let seqs = tx.insert_published_events(&[publication(&format!("t{i}"))]).await.unwrap();
        assert!(seqs[0].is_some());
        tx.commit().await.unwrap();
    }
    publishing.await.unwrap();
}

on_both_stores!(writers_take_turns);

/// The one server of a SQLite database (`Store::serve_alone`) takes back every lease a stopped
/// one left: a claimed delivery and a webhook's mapper lease are free at once, not when their
/// leases end; a delivery already sent, or only scheduled for later, stays as it was. A second
/// server is refused while the first holds the lock. (PostgreSQL has no such lock: nodes share
/// it, and `serve_alone` gives `None` there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_server_of_a_sqlite_database_takes_back_what_a_stopped_one_held() {
    let test = common::TestStore::sqlite().await;
    let store = &test.store;
    subscription(store).await;
    let held = delivery(store, "e1", None).await;
    assert_eq!(store.claim_deliveries("dead", T0, at(3_600_000), 10).await.unwrap().len(), 1);
    let later = delivery(store, "e2", None).await;
    let retry_at = at(60_000);
    let scheduled = attempt(later, "dead", DeliveryStatus::Pending);
    assert_eq!(store.claim_deliveries("dead", T0, at(3_600_000), 10).await.unwrap().len(), 1);
    store
        .record_attempts(attempts(vec![AttemptRecord { next_attempt_at: retry_at, ..scheduled }], vec![]), at(10))
        .await
        .unwrap();
    assert!(store.claim_mapper_lease("gh", "dead", T0, at(3_600_000)).await.unwrap());
    assert!(!store.claim_mapper_lease("gh", "next", at(20), at(30_000)).await.unwrap(), "taken before its end");

    let alone = store.serve_alone().unwrap().expect("SQLite has a serving lock");
    assert!(matches!(store.serve_alone(), Err(wharf_store::Error::InUse(_))), "a second server was not refused");
    let taken = store.take_back_leases(&alone, at(20)).await.unwrap();
    assert_eq!((taken.webhooks, taken.deliveries, taken.run_requests, taken.node_runs), (1, 1, 0, 0));
    assert!(store.claim_mapper_lease("gh", "next", at(20), at(30_000)).await.unwrap(), "the webhook stayed leased");
    let due = store.claim_deliveries("next", at(20), at(30_000), 10).await.unwrap();
    assert_eq!(due.iter().map(|d| d.seq).collect::<Vec<_>>(), [held], "only the delivery in hand is due now");
    drop(alone);
    assert!(store.serve_alone().unwrap().is_some(), "free once the first let go");
    test.drop_database().await;
}
