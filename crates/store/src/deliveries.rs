//! The durable delivery queue: storing published events and their deliveries (in the
//! caller's transaction; which subscriptions an event reaches is the engine's routing),
//! claiming due deliveries under a lease, recording attempts, and the delivery log.
//!
//! A claim moves a delivery's `next_attempt_at` to the end of its lease and stamps a fresh
//! `lease_token`; recording an attempt moves the delivery on only if the token is still
//! its own. So a worker that dies holding deliveries delays them by one lease at most, and a
//! worker that outlives its lease cannot overwrite the newer claim's result (its attempt is
//! still recorded). On PostgreSQL, claims skip rows other nodes are claiming
//! (`FOR UPDATE SKIP LOCKED`).
//!
//! The delivery log's queries (`deliveries`, `delivery`, `attempts`, `resend`, `recover`)
//! take the organization and read only deliveries of its subscriptions. The queue's workers
//! span organizations by design: claiming, recording attempts, failing unsent deliveries,
//! queue statistics, and the write jobs' writes ([`QueueTx`]), whose callers (the router,
//! the publisher) name subscriptions and projects they read in the same transaction.

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use wharf_core::delivery::{Attempt, AttemptRecord, ClaimedDelivery, Delivery, DeliveryFilter, DeliveryStatus, TargetUpdate};
use wharf_core::project::PublishedEvent;
use wharf_core::time::Timestamp;

use crate::rows::{Columns, json, placeholders, rows_per_statement};
use crate::write_tx::QueueTx;
use crate::{Error, Result, Store, Tx};

/// An event to publish to one project.
#[derive(Debug, Clone)]
pub struct Publication {
    pub project_id: String,
    pub event: PublishedEvent,
}

/// An active subscription: what routing needs (its patterns) and what sending needs.
#[derive(Debug, Clone)]
pub struct ActiveSubscription {
    pub id: String,
    pub org_id: String,
    pub project_id: String,
    pub events: Vec<String>,
    pub url: String,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub keys_sealed: String,
    pub failing_since: Option<Timestamp>,
}

impl ActiveSubscription {
    /// From a row of `subscriptions` (either driver).
    pub(crate) fn from_columns(row: &impl Columns) -> Result<Self> {
        Ok(Self {
            id: row.text("id")?,
            org_id: row.text("org_id")?,
            project_id: row.text("project_id")?,
            events: json(&row.text("events")?, "subscription events")?,
            url: row.text("url")?,
            headers: json(&row.text("headers")?, "subscription headers")?,
            keys_sealed: row.text("keys_sealed")?,
            failing_since: row.optional_int("failing_since")?.map(Timestamp::from_millis),
        })
    }
}

/// Deliveries inserted already claimed, by the node that will send them at once.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub token: &'a str,
    pub until: Timestamp,
}

/// The queue's state for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Deliveries not yet finished (due, scheduled, or in flight).
    pub pending: i64,
    /// Of those, the earliest `next_attempt_at` that has passed.
    pub oldest_due: Option<Timestamp>,
    pub disabled_subscriptions: i64,
}

/// The delivery log's tenant filter (deliveries have no organization of their own): the
/// deliveries `d` of subscription `$1` only if it belongs to organization `$org` (one lookup
/// per query, not per row).
fn owned(org: usize) -> String {
    format!("d.subscription_id = (SELECT s.id FROM subscriptions s WHERE s.id = $1 AND s.org_id = ${org})")
}

const DELIVERY_COLUMNS: &str = "d.seq, d.id, d.subscription_id, e.id AS event_id, e.event_type, d.status, d.retries, d.attempts, \
     d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at";

fn delivery(row: &AnyRow) -> Result<Delivery> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        subscription_id: row.try_get("subscription_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt { what: "delivery status", detail: format!("unknown value `{status}`") })?,
        retries: row.try_get::<i64, _>("retries")? != 0,
        attempts: row.try_get("attempts")?,
        next_attempt_at: Timestamp::from_millis(row.try_get("next_attempt_at")?),
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

/// What an attempt says about its target ([`TargetUpdate`]'s three cases, in order): a
/// success ends a failure streak; a failure starts one unless one is running; disabling
/// records why.
pub(crate) const TARGET_UPDATES: [&str; 3] = [
    "UPDATE subscriptions SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
    "UPDATE subscriptions SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL",
    "UPDATE subscriptions SET active = 0, disabled_reason = $1, updated_at = $2 WHERE id = $3 AND active = 1",
];

pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, subscription_id, event_seq, status, retries, attempts, \
     next_attempt_at, lease_token, created_at, updated_at) VALUES";

/// Inserts `rows` attempts (ten values each, from `$1`).
pub(crate) fn attempt_insert(rows: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|i| format!("({})", placeholders(1 + i * 10, 10))).collect();
    format!(
        "INSERT INTO delivery_attempts (id, delivery_seq, attempted_at, duration_ms, url, outcome, status_code, \
         response_headers, response_body, error) VALUES {}",
        rows.join(", ")
    )
}

/// The columns an attempt moves its delivery on in, after the delivery's `seq` and the
/// attempt's lease token (seven values per attempt).
const AFTER_ATTEMPT: [&str; 5] = ["status", "attempts", "next_attempt_at", "last_status", "last_error"];

/// Moves `rows` deliveries on after their attempts (`$1`: now; then seven values each, from
/// `$2`: the delivery's `seq`, the attempt's lease token, then [`AFTER_ATTEMPT`]), each only
/// while its lease is still the attempt's. One row is a plain `UPDATE` (on SQLite's writer
/// thread, which runs one per attempt, half the cost of a one-row `UPDATE … FROM`).
pub(crate) fn attempt_update(rows: usize) -> String {
    if rows == 1 {
        let set: Vec<String> = AFTER_ATTEMPT.iter().enumerate().map(|(i, column)| format!("{column} = ${}", i + 4)).collect();
        return format!(
            "UPDATE deliveries SET {}, lease_token = NULL, updated_at = $1 WHERE seq = $2 AND lease_token = $3",
            set.join(", ")
        );
    }
    let set: Vec<String> = AFTER_ATTEMPT.iter().enumerate().map(|(i, column)| format!("{column} = v.column{}", i + 3)).collect();
    let rows: Vec<String> = (0..rows).map(|i| format!("({})", placeholders(2 + i * 7, 7))).collect();
    // `column1…` are the names both databases give the columns of a VALUES list.
    format!(
        "UPDATE deliveries SET {}, lease_token = NULL, updated_at = $1 \
         FROM (VALUES {}) AS v WHERE deliveries.seq = v.column1 AND deliveries.lease_token = v.column2",
        set.join(", "),
        rows.join(", ")
    )
}

/// Claims due rows of a lease-based queue (`deliveries`, `run_requests`): moves up to `$4` rows
/// due by `$3`, oldest due first, to the lease's end `$1` under token `$2`; returns their `seq`.
/// `lock` is the dialect's claim lock (PostgreSQL skips rows other nodes are claiming).
pub(crate) fn claim_statement(table: &str, lock: &str) -> String {
    format!(
        "UPDATE {table} SET next_attempt_at = $1, lease_token = $2 WHERE seq IN \
         (SELECT seq FROM {table} WHERE status = 'pending' AND next_attempt_at <= $3 ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING seq"
    )
}

impl QueueTx for Tx {
    async fn active_subscriptions(&mut self, ids: &[String], by_org: bool) -> Result<Vec<ActiveSubscription>> {
        let mut found = Vec::new();
        let column = if by_org { "org_id" } else { "project_id" };
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT id, org_id, project_id, events, url, headers, keys_sealed, failing_since FROM subscriptions \
                 WHERE active = 1 AND {column} IN ({}) ORDER BY created_at, id",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(self.conn()).await? {
                found.push(ActiveSubscription::from_columns(&row)?);
            }
        }
        Ok(found)
    }

    /// Also within this batch the first of an id wins.
    async fn insert_published_events(&mut self, publications: &[Publication]) -> Result<Vec<Option<i64>>> {
        let mut seqs: HashMap<(&str, &str), i64> = HashMap::new();
        let mut seen = HashSet::new();
        let fresh: Vec<&Publication> =
            publications.iter().filter(|p| seen.insert((p.project_id.as_str(), p.event.id.as_str()))).collect();
        for chunk in fresh.chunks(rows_per_statement(5)) {
            let rows: Vec<String> = (0..chunk.len()).map(|i| format!("({})", placeholders(1 + i * 5, 5))).collect();
            let sql = format!(
                "INSERT INTO project_events (id, project_id, event_type, payload, created_at) VALUES {} \
                 ON CONFLICT (project_id, id) DO NOTHING RETURNING seq, project_id, id",
                rows.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for p in chunk {
                query = query
                    .bind(&p.event.id)
                    .bind(&p.project_id)
                    .bind(&p.event.event_type)
                    .bind(&p.event.payload)
                    .bind(p.event.timestamp.millis());
            }
            for row in query.fetch_all(self.conn()).await? {
                let (project, id): (String, String) = (row.try_get("project_id")?, row.try_get("id")?);
                // Map the returned row back to the borrowed keys of the batch.
                if let Some(p) = chunk.iter().find(|p| p.project_id == project && p.event.id == id) {
                    seqs.insert((p.project_id.as_str(), p.event.id.as_str()), row.try_get("seq")?);
                }
            }
        }
        Ok(publications.iter().map(|p| seqs.remove(&(p.project_id.as_str(), p.event.id.as_str()))).collect())
    }

    async fn insert_deliveries(
        &mut self,
        pairs: &[(String, i64)],
        retries: bool,
        now: Timestamp,
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<(String, i64)>> {
        let mut inserted = Vec::with_capacity(pairs.len());
        let due = lease.map_or(now, |l| l.until);
        for chunk in pairs.chunks(rows_per_statement(3)) {
            let rows: Vec<String> =
                (0..chunk.len()).map(|i| format!("({}, 'pending', $2, 0, $3, $4, $1, $1)", placeholders(5 + i * 3, 3))).collect();
            let sql = format!("{INSERT_DELIVERY} {} RETURNING id, seq", rows.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(now.millis())
                .bind(i64::from(retries))
                .bind(due.millis())
                .bind(lease.map(|l| l.token));
            let mut ids = Vec::with_capacity(chunk.len());
            for (subscription, seq) in chunk {
                let id = wharf_ids::new_delivery_id();
                query = query.bind(id.clone()).bind(subscription).bind(*seq);
                ids.push(id);
            }
            let mut seqs: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
            for row in query.fetch_all(self.conn()).await? {
                seqs.insert(row.try_get("id")?, row.try_get("seq")?);
            }
            for id in ids {
                let seq = seqs
                    .get(&id)
                    .copied()
                    .ok_or_else(|| Error::Corrupt { what: "delivery insert", detail: format!("no seq returned for {id}") })?;
                inserted.push((id, seq));
            }
        }
        Ok(inserted)
    }

    async fn record_attempts(&mut self, records: &[AttemptRecord], targets: &[TargetUpdate], now: Timestamp) -> Result<()> {
        for chunk in records.chunks(rows_per_statement(10)) {
            let mut query = sqlx::query(AssertSqlSafe(attempt_insert(chunk.len())));
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(r.delivery_seq)
                    .bind(r.attempted_at.millis())
                    .bind(r.duration_ms)
                    .bind(&r.url)
                    .bind(&r.outcome)
                    .bind(r.status_code)
                    .bind(r.response_headers.as_deref())
                    .bind(r.response_body.as_deref())
                    .bind(r.error.as_deref());
            }
            query.execute(self.conn()).await?;
        }
        for chunk in records.chunks(rows_per_statement(7)) {
            let mut query = sqlx::query(AssertSqlSafe(attempt_update(chunk.len())))
                .persistent(!self.dialect.plan_each_time)
                .bind(now.millis());
            for r in chunk {
                let error = r.last_error();
                query = query
                    .bind(r.delivery_seq)
                    .bind(&r.lease_token)
                    .bind(r.status.as_str())
                    .bind(r.attempts)
                    .bind(r.next_attempt_at.millis())
                    .bind(r.status_code)
                    .bind(error);
            }
            query.execute(self.conn()).await?;
        }
        let [succeeded, failed, disable] = TARGET_UPDATES;
        for target in targets {
            let query = match target {
                TargetUpdate::Succeeded(id) => sqlx::query(succeeded).bind(id),
                TargetUpdate::Failed(id, at) => sqlx::query(failed).bind(at.millis()).bind(id),
                TargetUpdate::Disable(id, reason) => sqlx::query(disable).bind(reason).bind(now.millis()).bind(id),
            };
            query.execute(self.conn()).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Claims up to `limit` due deliveries until `lease_until`, oldest due first.
    pub async fn claim_deliveries(
        &self,
        token: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        let sql = claim_statement("deliveries", self.dialect().claim_lock);
        let mut tx = self.begin().await?;
        let seqs: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .persistent(!self.dialect().plan_each_time)
            .bind(lease_until.millis())
            .bind(token)
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(tx.conn())
            .await?;
        let mut claimed = Vec::with_capacity(seqs.len());
        let select = "SELECT d.seq, d.id, d.subscription_id, d.attempts, d.retries, e.id AS event_id, e.event_type, e.payload, \
             e.created_at AS published_at, s.url, s.headers, s.active, s.keys_sealed, s.failing_since \
             FROM deliveries d JOIN project_events e ON e.seq = d.event_seq JOIN subscriptions s ON s.id = d.subscription_id \
             WHERE d.seq IN";
        for row in tx.rows_with_seqs(select, &seqs).await? {
            claimed.push(ClaimedDelivery {
                seq: row.try_get("seq")?,
                id: row.try_get("id")?,
                lease_token: token.to_owned(),
                subscription_id: row.try_get("subscription_id")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
                retries: row.try_get::<i64, _>("retries")? != 0,
                published_at: Timestamp::from_millis(row.try_get("published_at")?),
                url: row.try_get("url")?,
                headers: json(&row.try_get::<String, _>("headers")?, "subscription headers")?,
                active: row.try_get::<i64, _>("active")? != 0,
                keys_sealed: row.try_get("keys_sealed")?,
                failing_since: row.try_get::<Option<i64>, _>("failing_since")?.map(Timestamp::from_millis),
            });
        }
        tx.commit().await?;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    /// Fails a claimed delivery without an attempt (its subscription is inactive or gone).
    pub async fn fail_unsent(&self, seq: i64, token: &str, reason: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = $1, lease_token = NULL, updated_at = $2 \
             WHERE seq = $3 AND lease_token = $4",
        )
        .bind(reason)
        .bind(now.millis())
        .bind(seq)
        .bind(token)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A subscription's deliveries that `filter` keeps, newest first, below `before` (a `seq`).
    pub async fn deliveries(
        &self,
        org: &str,
        subscription_id: &str,
        filter: DeliveryFilter<'_>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        // With an event, the event is found first (its project and id are unique) and its
        // deliveries by `deliveries_by_event`, not by walking the subscription's log.
        let event = match filter.event_id {
            Some(_) => " AND e.id = $6 AND e.project_id = (SELECT s.project_id FROM subscriptions s WHERE s.id = $1)",
            None => "",
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN project_events e ON e.seq = d.event_seq \
             WHERE d.subscription_id = $1 AND ($2 = '' OR d.status = $2) AND d.seq < $3 AND {}{event} \
             ORDER BY d.seq DESC LIMIT $4",
            owned(5)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(subscription_id)
            .bind(filter.status.map_or("", DeliveryStatus::as_str))
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .bind(org);
        if let Some(event_id) = filter.event_id {
            query = query.bind(event_id);
        }
        let rows = query.fetch_all(self.reader()).await?;
        rows.iter().map(delivery).collect()
    }

    pub async fn delivery(&self, org: &str, subscription_id: &str, id: &str) -> Result<Option<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN project_events e ON e.seq = d.event_seq \
             WHERE d.subscription_id = $1 AND d.id = $2 AND {}",
            owned(3)
        );
        let row = sqlx::query(AssertSqlSafe(sql)).bind(subscription_id).bind(id).bind(org).fetch_optional(self.reader()).await?;
        row.as_ref().map(delivery).transpose()
    }

    /// The body a delivery sends: its event's payload, as published.
    pub async fn delivery_payload(&self, org: &str, subscription_id: &str, id: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT e.payload FROM deliveries d JOIN project_events e ON e.seq = d.event_seq \
             WHERE d.subscription_id = $1 AND d.id = $2 AND {}",
            owned(3)
        );
        let row = sqlx::query(AssertSqlSafe(sql)).bind(subscription_id).bind(id).bind(org).fetch_optional(self.reader()).await?;
        Ok(row.map(|row| row.try_get("payload")).transpose()?)
    }

    /// A delivery's attempts, oldest first.
    pub async fn attempts(&self, org: &str, delivery_seq: i64) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT id, attempted_at, duration_ms, url, outcome, status_code, response_headers, response_body, error \
             FROM delivery_attempts WHERE delivery_seq = $1 AND delivery_seq IN \
             (SELECT d.seq FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE d.seq = $1 AND s.org_id = $2) \
             ORDER BY seq",
        )
        .bind(delivery_seq)
        .bind(org)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Attempt {
                    id: row.try_get("id")?,
                    attempted_at: Timestamp::from_millis(row.try_get("attempted_at")?),
                    duration_ms: row.try_get("duration_ms")?,
                    url: row.try_get("url")?,
                    outcome: row.try_get("outcome")?,
                    status_code: row.try_get("status_code")?,
                    response_headers: row.try_get("response_headers")?,
                    response_body: row.try_get("response_body")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }

    /// A new delivery of a delivery's event to the same subscription, due now and tried once
    /// (a manual resend); its id.
    pub async fn resend(&self, org: &str, subscription_id: &str, delivery_id: &str, now: Timestamp) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let sql = format!("SELECT event_seq FROM deliveries d WHERE d.subscription_id = $1 AND d.id = $2 AND {}", owned(3));
        let event: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(subscription_id)
            .bind(delivery_id)
            .bind(org)
            .fetch_optional(tx.conn())
            .await?;
        let Some(event) = event else { return Ok(None) };
        let ids = tx.insert_deliveries(&[(subscription_id.to_owned(), event)], false, now, None).await?;
        tx.commit().await?;
        Ok(ids.into_iter().next().map(|(id, _)| id))
    }

    /// New deliveries (with the full retry schedule) for every event of the subscription
    /// whose deliveries created in `[since, until]` all failed; how many.
    pub async fn recover(
        &self,
        org: &str,
        subscription_id: &str,
        since: Timestamp,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT event_seq FROM deliveries d WHERE d.subscription_id = $1 AND d.created_at >= $2 AND d.created_at <= $3 \
             AND {} GROUP BY event_seq HAVING SUM(CASE WHEN status = 'failed' THEN 0 ELSE 1 END) = 0 ORDER BY event_seq",
            owned(4)
        );
        let events: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(subscription_id)
            .bind(since.millis())
            .bind(until.millis())
            .bind(org)
            .fetch_all(tx.conn())
            .await?;
        let pairs: Vec<(String, i64)> = events.into_iter().map(|e| (subscription_id.to_owned(), e)).collect();
        tx.insert_deliveries(&pairs, true, now, None).await?;
        tx.commit().await?;
        Ok(pairs.len())
    }

    /// Queue depth, the oldest due delivery and disabled targets (for metrics).
    pub async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending, MIN(CASE WHEN next_attempt_at <= $1 THEN next_attempt_at END) AS oldest \
             FROM deliveries WHERE status = 'pending'",
        )
        .bind(now.millis())
        .fetch_one(self.reader())
        .await?;
        let disabled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE disabled_reason IS NOT NULL")
            .fetch_one(self.reader())
            .await?;
        Ok(QueueStats {
            pending: row.try_get("pending")?,
            oldest_due: row.try_get::<Option<i64>, _>("oldest")?.map(Timestamp::from_millis),
            disabled_subscriptions: disabled,
        })
    }
}
