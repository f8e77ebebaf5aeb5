//! The change outbox on both stores: changes are read in order past a durable cursor, a
//! rolled-back write leaves no change, and (PostgreSQL) a change committed late with a lower
//! `seq` is never skipped.

mod common;

use common::TestStore;
use serde_json::json;
use wharf_core::change::{Change, ResourceType, Trigger};
use wharf_core::time::Timestamp;
use wharf_ids::NewChange;
use wharf_store::{CatalogTx, ParkedChange, Store};

fn change(n: i64) -> Change {
    let trigger = Trigger::api("org", "client", Timestamp::from_millis(n));
    Change::new(ResourceType::Entity, "service", Some(&format!("e{n}")), &trigger, None, Some(json!({"n": n})))
}

async fn record(store: &Store, n: i64) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let seq = tx.record_change(&mut change(n)).await.unwrap();
    tx.commit().await.unwrap();
    seq
}

async fn consume(store: &Store, consumer: &str, limit: u32) -> Vec<i64> {
    let now = Timestamp::from_millis(0);
    let mut tx = store.begin().await.unwrap();
    let position = tx.lock_cursor(consumer, now).await.unwrap();
    let batch = tx.changes_after(position, limit).await.unwrap();
    tx.set_cursor(consumer, batch.position, now).await.unwrap();
    tx.commit().await.unwrap();
    batch.changes.iter().map(|c| c.after.as_ref().unwrap()["n"].as_i64().unwrap()).collect()
}

async fn ordered_cursor_and_rollback(store: &Store) {
    for n in 1..=5 {
        record(store, n).await;
    }
    {
        let mut tx = store.begin().await.unwrap();
        tx.record_change(&mut change(99)).await.unwrap();
        // dropped without commit: rolled back
    }
    assert_eq!(consume(store, "a", 3).await, [1, 2, 3]);
    assert_eq!(consume(store, "a", 3).await, [4, 5]);
    assert_eq!(consume(store, "a", 3).await, Vec::<i64>::new());
    assert_eq!(consume(store, "b", 10).await, [1, 2, 3, 4, 5], "each consumer has its own cursor");
    record(store, 6).await;
    assert_eq!(consume(store, "a", 10).await, [6]);

    // A cursor moved in a transaction that rolls back does not move.
    let now = Timestamp::from_millis(0);
    let mut tx = store.begin().await.unwrap();
    let position = tx.lock_cursor("b", now).await.unwrap();
    let batch = tx.changes_after(position, 10).await.unwrap();
    tx.set_cursor("b", batch.position, now).await.unwrap();
    drop(tx);
    assert_eq!(consume(store, "b", 10).await, [6]);
}

#[tokio::test]
async fn sqlite_ordered_cursor_and_rollback() {
    let test = TestStore::sqlite().await;
    ordered_cursor_and_rollback(&test.store).await;
    unreadable_changes_come_apart_and_park(&test).await;
    test.drop_database().await;
}

/// One test, so the parts run one after the other: the outbox horizon is cluster-wide, and
/// the open transaction of one part would hold back the others.
#[tokio::test]
async fn postgres_ordered_cursor_rollback_and_late_commit() {
    let Some(test) = TestStore::postgres().await else { return eprintln!("PostgreSQL suite off") };
    ordered_cursor_and_rollback(&test.store).await;
    late_commit_is_not_skipped(&test.store).await;
    unreadable_changes_come_apart_and_park(&test).await;
    test.drop_database().await;
}

/// PostgreSQL only: SQLite has one writer, so commits happen in `seq` order there.
async fn late_commit_is_not_skipped(store: &Store) {
    consume(store, "c", 100).await;
    record(store, 1).await;
    let mut slow = store.begin().await.unwrap();
    let slow_seq = slow.record_change(&mut change(2)).await.unwrap();
    let fast_seq = record(store, 3).await;
    assert!(slow_seq < fast_seq);
    assert_eq!(consume(store, "c", 10).await, [1], "the change after the open transaction waits for it");
    slow.commit().await.unwrap();
    assert_eq!(consume(store, "c", 10).await, [2, 3]);
}

/// A row that does not read back as a change comes apart from the readable ones (the batch
/// still moves past it), and parked, it is listed for its organization only.
async fn unreadable_changes_come_apart_and_park(test: &TestStore) {
    let store = &test.store;
    consume(store, "p", 100).await;
    record(store, 1).await;
    let broken = wharf_store::testing::insert_unreadable_change(&test.url, "org", "service").await.unwrap();
    record(store, 3).await;
    let now = Timestamp::from_millis(7);
    let mut tx = store.begin().await.unwrap();
    let position = tx.lock_cursor("p", now).await.unwrap();
    let batch = tx.changes_after(position, 10).await.unwrap();
    let read: Vec<i64> = batch.changes.iter().map(|c| c.after.as_ref().unwrap()["n"].as_i64().unwrap()).collect();
    assert_eq!(read, [1, 3]);
    assert_eq!(batch.unreadable.len(), 1, "{:?}", batch.unreadable);
    let unreadable = &batch.unreadable[0];
    assert_eq!((unreadable.id.as_str(), unreadable.org_id.as_str()), (broken.as_str(), "org"));
    assert!(batch.changes[0].seq < unreadable.seq && unreadable.seq < batch.changes[1].seq);
    assert_eq!(batch.position, batch.changes[1].seq);
    assert!(unreadable.reason.contains("change diff"), "{}", unreadable.reason);
    tx.park_changes("p", &batch.unreadable, now).await.unwrap();
    tx.park_changes("p", &batch.unreadable, now).await.unwrap(); // parking twice keeps one
    tx.set_cursor("p", batch.position, now).await.unwrap();
    tx.commit().await.unwrap();
    let expected = ParkedChange {
        consumer: "p".into(),
        seq: unreadable.seq,
        change_id: broken.clone(),
        org_id: "org".into(),
        reason: unreadable.reason.clone(),
        parked_at: now,
    };
    assert_eq!(store.parked_changes("org", 10).await.unwrap(), [expected]);
    assert_eq!(store.parked_changes("other", 10).await.unwrap(), []);
    assert_eq!(consume(store, "p", 10).await, Vec::<i64>::new(), "the cursor moved past all three");
}
