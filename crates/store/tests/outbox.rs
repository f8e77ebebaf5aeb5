//! The change outbox on both stores: changes are read in order past a durable cursor, a
//! rolled-back write leaves no change, (PostgreSQL) a change committed late with a lower
//! `seq` is never skipped, cursors of an older Wharf keep their place, and a reader's look
//! ahead sees the changes' heads as the cursor reads them (on PostgreSQL, none past an older
//! transaction still running).

mod common;

use common::TestStore;
use serde_json::json;
use wharf_core::change::{Change, ChangeAction, ResourceType, Trigger};
use wharf_core::time::Timestamp;
use wharf_ids::NewChange;
use wharf_store::testing::{changes_settle, put_cursor_before_0011};
use wharf_store::{CatalogTx, OutboxPosition, ParkedChange, Store};

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

/// A reader's heads are the changes the cursor's transaction reads, in its order, with each
/// change's organization, kind, action and blueprint.
async fn heads_follow_the_outbox(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let position = tx.lock_cursor("heads", Timestamp::from_millis(0)).await.unwrap();
    tx.commit().await.unwrap();
    let heads = store.change_heads_after(position, 1000).await.unwrap().unwrap();
    let run = Change::new(
        ResourceType::Run,
        "",
        None,
        &Trigger::api("other", "client", Timestamp::from_millis(7)),
        None,
        Some(json!({})),
    );
    let mut tx = store.begin().await.unwrap();
    tx.record_change(&mut run.clone()).await.unwrap();
    tx.commit().await.unwrap();
    let after = store.change_heads_after(position, 1000).await.unwrap().unwrap();
    assert_eq!(after.len(), heads.len() + 1);
    let last = after.last().unwrap();
    let shown = (last.org_id.as_str(), last.resource_type, last.action, last.blueprint.as_str());
    assert_eq!(shown, ("other", Some(ResourceType::Run), Some(ChangeAction::Create), ""));
    let mut tx = store.begin().await.unwrap();
    let batch = tx.changes_after(position, 1000).await.unwrap();
    drop(tx);
    assert_eq!(batch.position, last.position, "the place past the last head is the cursor's past the last change");
    let (first, _) = after.split_first().unwrap();
    assert_eq!(store.change_heads_after(first.position, 1).await.unwrap().unwrap(), after[1..2], "heads past a place");
    assert!(store.change_heads_after(last.position, 10).await.unwrap().unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_ordered_cursor_and_rollback() {
    let test = TestStore::sqlite().await;
    ordered_cursor_and_rollback(&test.store).await;
    a_lower_seq_of_a_younger_transaction_committed_last_is_read(&test.store).await;
    unreadable_changes_come_apart_and_park(&test).await;
    heads_follow_the_outbox(&test.store).await;
    test.drop_database().await;
    cursors_of_an_older_wharf_keep_their_place(TestStore::sqlite_at(Some(10)).await).await;
}

/// One test, so the parts run one after the other: the outbox horizon is cluster-wide, and
/// the open transaction of one part would hold back the others.
#[tokio::test]
async fn postgres_ordered_cursor_rollback_and_late_commit() {
    let Some(test) = TestStore::postgres().await else { return eprintln!("PostgreSQL suite off") };
    ordered_cursor_and_rollback(&test.store).await;
    late_commit_is_not_skipped(&test.store).await;
    heads_wait_for_an_older_transaction(&test.store).await;
    a_lower_seq_of_a_younger_transaction_committed_last_is_read(&test.store).await;
    unreadable_changes_come_apart_and_park(&test).await;
    heads_follow_the_outbox(&test.store).await;
    test.drop_database().await;
    cursors_of_an_older_wharf_keep_their_place(TestStore::postgres_at(Some(10)).await.unwrap()).await;
}

/// PostgreSQL only: like the cursor's reads, the heads stop below a running transaction that
/// wrote a change, so a reader never passes over a change still to come.
async fn heads_wait_for_an_older_transaction(store: &Store) {
    let all = store.change_heads_after(OutboxPosition::default(), 100_000).await.unwrap().unwrap();
    let start = all.last().map(|head| head.position).unwrap_or_default();
    let mut slow = store.begin().await.unwrap();
    slow.record_change(&mut change(20)).await.unwrap();
    record(store, 21).await;
    let heads = store.change_heads_after(start, 10).await.unwrap().unwrap();
    assert!(heads.is_empty(), "the change after the open transaction waits for it: {heads:?}");
    slow.commit().await.unwrap();
    let heads = store.change_heads_after(start, 10).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    let batch = tx.changes_after(start, 10).await.unwrap();
    drop(tx);
    assert_eq!(batch.changes.iter().map(|c| c.after.as_ref().unwrap()["n"].as_i64().unwrap()).collect::<Vec<_>>(), [20, 21]);
    assert_eq!((heads.len(), heads.last().map(|h| h.position)), (2, Some(batch.position)), "{heads:?}");
    assert!(heads[0].position < heads[1].position);
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

/// Reads `consumer`'s next changes, waiting (up to 10 s) while there are none: on PostgreSQL a
/// transaction of another test on the server may hold the horizon back a moment.
async fn consume_some(store: &Store, consumer: &str) -> Vec<i64> {
    for _ in 0..200 {
        let read = consume(store, consumer, 100).await;
        if !read.is_empty() {
            return read;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("`{consumer}` read nothing in 10 s");
}

/// A change recorded with a lower `seq` by a transaction that took its id after another's,
/// and committed after it, is read after the other's moved the cursor. On PostgreSQL a
/// transaction takes its id at its first write: T_a writes first (its id is the older), T_b
/// records a change (`seq` s) and stays open, T_a records one (s + 1) and commits; a reader
/// then sees T_a's change (every transaction older than T_a has ended) and moves its cursor
/// past it; T_b commits, and its change must still be read. On SQLite (one writer) the two
/// transactions take turns: the plain case.
async fn a_lower_seq_of_a_younger_transaction_committed_last_is_read(store: &Store) {
    let now = Timestamp::from_millis(0);
    consume(store, "d", 100).await;
    if store.changes_commit_in_seq_order() {
        record(store, 1).await;
        assert_eq!(consume(store, "d", 10).await, [1]);
        record(store, 2).await;
        assert_eq!(consume(store, "d", 10).await, [2]);
        return;
    }
    let mut t_a = store.begin().await.unwrap();
    t_a.lock_cursor("d-first-write", now).await.unwrap(); // T_a takes its transaction id
    let mut t_b = store.begin().await.unwrap();
    let b_seq = t_b.record_change(&mut change(2)).await.unwrap();
    let a_seq = t_a.record_change(&mut change(1)).await.unwrap();
    assert!(b_seq < a_seq);
    t_a.commit().await.unwrap();
    assert_eq!(consume_some(store, "d").await, [1], "T_a's change: every transaction older than T_a has ended");
    t_b.commit().await.unwrap();
    assert_eq!(consume_some(store, "d").await, [2], "T_b's change, below the cursor's seq, is read all the same");
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
    assert_eq!(batch.position.seq(), batch.changes[1].seq);
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

/// Cursors moved by a Wharf before migration 0011 (a `seq` alone) keep their place through
/// it: a consumer that had caught up reads only the changes after, one behind reads what it
/// had not read (in batches) and then the changes after; none reads a change twice or skips
/// one. On PostgreSQL a change past the cursor of the one behind is of an older transaction
/// than the change at its cursor: going on from that change's transaction would skip it.
async fn cursors_of_an_older_wharf_keep_their_place(test: TestStore) {
    let store = &test.store;
    for n in 1..=3 {
        record(store, n).await;
    }
    let (seq3, seq5, seq6) = if store.changes_commit_in_seq_order() {
        record(store, 4).await;
        (3, record(store, 5).await, record(store, 6).await)
    } else {
        let mut t_a = store.begin().await.unwrap();
        t_a.record_change(&mut change(4)).await.unwrap(); // T_a takes its transaction id
        let mut t_b = store.begin().await.unwrap();
        let seq5 = t_b.record_change(&mut change(5)).await.unwrap();
        let seq6 = t_a.record_change(&mut change(6)).await.unwrap();
        t_a.commit().await.unwrap();
        t_b.commit().await.unwrap();
        (3, seq5, seq6)
    };
    assert!(seq5 < seq6);
    // The old reading read up to a change only once it was below the horizon.
    assert!(changes_settle(store).await.unwrap(), "the changes never settled");
    put_cursor_before_0011(store, "caught-up", seq6).await.unwrap();
    // Read in `seq` order up to 5 (a full batch): 6, of the older T_a, is not read yet.
    put_cursor_before_0011(store, "behind", seq5).await.unwrap();
    put_cursor_before_0011(store, "far-behind", seq3).await.unwrap();
    store.migrate().await.unwrap();

    record(store, 7).await;
    assert_eq!(consume_some(store, "caught-up").await, [7]);
    assert_eq!(consume_some(store, "behind").await, [6, 7]);
    for n in 4..=6 {
        assert_eq!(consume(store, "far-behind", 1).await, [n], "the backlog, in `seq` order");
    }
    assert_eq!(consume_some(store, "far-behind").await, [7]);
    for consumer in ["caught-up", "behind", "far-behind"] {
        assert_eq!(consume(store, consumer, 100).await, Vec::<i64>::new(), "{consumer}");
    }
    // A new consumer reads every change once (on PostgreSQL T_a's 4 and 6 before T_b's 5).
    let mut all = consume_some(store, "new").await;
    all.sort_unstable();
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 7]);
    test.drop_database().await;
}
