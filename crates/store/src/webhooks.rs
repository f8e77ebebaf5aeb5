//! Ingestion webhooks and their events: the definitions, the event log that is also the
//! mapping queue, request identifiers for deduplication, and the mapper's leases.

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use wharf_core::blueprint::Audited;
use wharf_core::mapping::WebhookEventStatus;
use wharf_core::time::Timestamp;
use wharf_core::webhook::{Webhook, WebhookDef};

use crate::rows::{json, to_text};
use crate::write_tx::{End, EventLogTx, WriteJob, WriteTx};
use crate::{CompressedJson, Error, Result, Store, Tx};

const WEBHOOK_COLUMNS: &str =
    "id, org_id, identifier, webhook_key, definition, secret_sealed, revision, created_at, created_by, updated_at, updated_by";

pub(crate) const INSERT_EVENTS: &str = "INSERT INTO webhook_events \
     (id, org_id, webhook_id, status, request_id, request_compressed, result, received_at, processed_at)";

/// Takes a request identifier for an event unless a live record holds it (an expired one is
/// taken over): one row changed when taken, none otherwise.
macro_rules! claim_request_id {
    () => {
        "INSERT INTO webhook_request_ids (webhook_id, request_id, event_id, expires_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (webhook_id, request_id) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at \
         WHERE webhook_request_ids.expires_at < $5"
    };
}

/// [`claim_request_id!`], returning the event id when taken. (The writer thread counts
/// changed rows instead: on SQLite, `RETURNING` makes every insert keep a statement journal.)
const CLAIM_REQUEST_ID: &str = concat!(claim_request_id!(), " RETURNING event_id");
/// [`claim_request_id!`] as the writer thread runs it.
pub(crate) const CLAIM_REQUEST_ID_COUNTED: &str = claim_request_id!();

pub(crate) const FIRST_WITH_REQUEST_ID: &str =
    "SELECT event_id FROM webhook_request_ids WHERE webhook_id = $1 AND request_id = $2";

const EVENT_COLUMNS: &str =
    "seq, id, org_id, webhook_id, status, request_id, request, request_compressed, result, received_at, processed_at";

/// [`EVENT_COLUMNS`] without the request, which listings do not show: neither read from disk
/// nor decompressed and parsed per listed event.
const EVENT_SUMMARY_COLUMNS: &str = "seq, id, org_id, webhook_id, status, request_id, NULL AS request, \
     NULL AS request_compressed, result, received_at, processed_at";

/// A webhook as stored: its organization, the webhook, and its sealed secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub org_id: String,
    pub webhook: Webhook,
    pub secret_sealed: Option<String>,
}

fn webhook(row: &AnyRow) -> Result<StoredWebhook> {
    let def: WebhookDef = json(&row.try_get::<String, _>("definition")?, "webhook definition")?;
    Ok(StoredWebhook {
        org_id: row.try_get("org_id")?,
        secret_sealed: row.try_get("secret_sealed")?,
        webhook: Webhook {
            id: row.try_get("id")?,
            key: row.try_get("webhook_key")?,
            revision: row.try_get("revision")?,
            def,
            audited: Audited {
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                created_by: row.try_get("created_by")?,
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
                updated_by: row.try_get("updated_by")?,
            },
        },
    })
}

/// One received request.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Arrival order (per store).
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    /// The webhook's internal id.
    pub webhook_id: String,
    pub status: WebhookEventStatus,
    /// The `requestIdentifierPath` value, when the webhook sets one.
    pub request_id: Option<String>,
    /// `{"headers", "queryParams", "body", …}` as received (absent for rejected requests, and
    /// in listings: [`Store::webhook_events`]).
    pub request: Option<serde_json::Value>,
    /// The mapping result (`WebhookEventResult`), or why the request was rejected.
    pub result: Option<serde_json::Value>,
    pub received_at: Timestamp,
    pub processed_at: Option<Timestamp>,
}

fn event(row: &AnyRow) -> Result<WebhookEvent> {
    let status: String = row.try_get("status")?;
    let doc = |column: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(column)?;
        text.map(|t| json(&t, "webhook event")).transpose()
    };
    Ok(WebhookEvent {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        webhook_id: row.try_get("webhook_id")?,
        status: WebhookEventStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt { what: "webhook event status", detail: format!("unknown value `{status}`") })?,
        request_id: row.try_get("request_id")?,
        // A damaged request is shown as none; its event's result says why it failed.
        request: readable_request(row)?.ok().flatten().and_then(|t| serde_json::from_str(&t).ok()),
        result: doc("result")?,
        received_at: Timestamp::from_millis(row.try_get("received_at")?),
        processed_at: row.try_get::<Option<i64>, _>("processed_at")?.map(Timestamp::from_millis),
    })
}

/// An event's request as text (`Err`: damaged, what cannot be read). A damaged request fails
/// its own event, never every read of its webhook's events.
fn readable_request(row: &AnyRow) -> Result<std::result::Result<Option<String>, String>> {
    match request_text(row) {
        Ok(text) => Ok(Ok(text)),
        Err(err @ Error::Corrupt { .. }) => Ok(Err(err.to_string())),
        Err(err) => Err(err),
    }
}

fn request_text(row: &AnyRow) -> Result<Option<String>> {
    Ok(match row.try_get::<Option<Vec<u8>>, _>("request_compressed")? {
        Some(bytes) => Some(CompressedJson::decompress(&bytes)?),
        None => row.try_get::<Option<String>, _>("request")?,
    })
}

/// An event waiting to be mapped, as the mapper reads it: its request stays JSON text, which
/// the mapper parses straight into what its mappings observe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWebhookEvent {
    pub seq: i64,
    pub id: String,
    /// `{"body","headers","queryParams"}` as JSON text; `Err` says why a damaged one cannot be
    /// read.
    pub request: std::result::Result<Option<String>, String>,
}

/// A request to store: accepted (`PENDING`, with its request) or rejected (with the reason).
#[derive(Debug, Clone)]
pub struct NewWebhookEvent {
    pub id: String,
    pub org_id: String,
    pub webhook_id: String,
    pub status: WebhookEventStatus,
    pub request_id: Option<String>,
    /// The request as compressed JSON text (serialized and compressed off the commit path).
    pub request: Option<CompressedJson>,
    pub result: Option<String>,
    pub received_at: Timestamp,
    /// Until when `request_id` makes later requests duplicates.
    pub dedupe_until: Timestamp,
}

/// The result of mapping an event, to record ([`crate::EventLogTx::finish_webhook_events`]).
#[derive(Debug, Clone)]
pub struct FinishedWebhookEvent {
    pub id: String,
    pub status: WebhookEventStatus,
    /// The `WebhookEventResult` as JSON text.
    pub result: String,
}

/// What storing a [`NewWebhookEvent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Stored,
    /// Its request identifier was seen within the window: nothing stored; the first event's id.
    Duplicate(String),
}

/// Which events a list or a replay covers.
#[derive(Debug, Clone, Default)]
pub struct WebhookEventFilter {
    pub status: Option<WebhookEventStatus>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only events older than this `seq` (pagination, newest first).
    pub before: Option<i64>,
}

impl Store {
    pub async fn webhooks(&self, org: &str) -> Result<Vec<StoredWebhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?;
        found.iter().map(webhook).collect()
    }

    pub async fn webhook(&self, org: &str, identifier: &str) -> Result<Option<StoredWebhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.reader()).await?;
        row.as_ref().map(webhook).transpose()
    }

    /// `(id, revision)` of every webhook of every organization: what a node compares with its
    /// in-memory index to find what changed.
    pub async fn webhook_revisions(&self) -> Result<Vec<(String, i64)>> {
        let found = sqlx::query("SELECT id, revision FROM webhooks").fetch_all(self.reader()).await?;
        found.iter().map(|row| Ok((row.try_get("id")?, row.try_get("revision")?))).collect()
    }

    /// The webhook an ingest key names, if any (one read of the key's unique index).
    pub async fn webhook_by_key(&self, key: &str) -> Result<Option<StoredWebhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_key = $1");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(key).fetch_optional(self.reader()).await?;
        found.as_ref().map(webhook).transpose()
    }

    /// Webhooks by internal id.
    pub async fn webhooks_by_id(&self, ids: &[String]) -> Result<Vec<StoredWebhook>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::rows::rows_per_statement(1)) {
            let sql =
                format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id IN ({})", crate::rows::placeholders(1, chunk.len()));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(self.reader()).await? {
                found.push(webhook(&row)?);
            }
        }
        Ok(found)
    }

    /// Stores requests in one transaction (group commit), checking request identifiers, and
    /// returns what happened to each, in order. Nothing is stored unless all of it commits.
    /// (Shared, not borrowed: SQLite's writer thread reads the requests where they are, and
    /// the caller keeps them to retry one by one.)
    pub async fn store_webhook_events(&self, events: Arc<Vec<NewWebhookEvent>>, now: Timestamp) -> Result<Vec<Stored>> {
        self.write(StoreEvents { events, now }).await
    }

    /// A webhook's events, newest first, without their requests (a listing shows none; one
    /// event with its request: [`Store::webhook_event`]).
    pub async fn webhook_events(&self, webhook_id: &str, filter: &WebhookEventFilter, limit: u32) -> Result<Vec<WebhookEvent>> {
        let (conditions, binds) = event_conditions(filter);
        let sql = format!(
            "SELECT {EVENT_SUMMARY_COLUMNS} FROM webhook_events WHERE webhook_id = $1{conditions} ORDER BY seq DESC LIMIT ${}",
            binds.len() + 2
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(webhook_id);
        for bind in binds {
            query = bind.apply(query);
        }
        let found = query.bind(i64::from(limit)).fetch_all(self.reader()).await?;
        found.iter().map(event).collect()
    }

    pub async fn webhook_event(&self, webhook_id: &str, event_id: &str) -> Result<Option<WebhookEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE webhook_id = $1 AND id = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(webhook_id).bind(event_id).fetch_optional(self.reader()).await?;
        row.as_ref().map(event).transpose()
    }

    /// Webhooks that have events waiting to be mapped (that every earlier transaction has
    /// settled, on PostgreSQL).
    ///
    /// One index seek per webhook found, however many events wait: idle mapping workers ask
    /// after every commit, and a `SELECT DISTINCT` read the whole pending index each time
    /// (9 ms at 100,000 pending events on SQLite, against 0.2 ms for this walk).
    pub async fn webhooks_with_pending_events(&self) -> Result<Vec<String>> {
        let horizon = self.horizon();
        let sql = format!(
            "WITH RECURSIVE pending (webhook_id) AS ( \
                SELECT (SELECT MIN(webhook_id) FROM webhook_events WHERE status = 'PENDING'{horizon}) \
                UNION ALL \
                SELECT (SELECT MIN(e.webhook_id) FROM webhook_events e \
                        WHERE e.status = 'PENDING' AND e.webhook_id > p.webhook_id{horizon}) \
                FROM pending p WHERE p.webhook_id IS NOT NULL) \
             SELECT webhook_id FROM pending WHERE webhook_id IS NOT NULL"
        );
        let found = sqlx::query(AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        found.iter().map(|row| Ok(row.try_get("webhook_id")?)).collect()
    }

    /// The next events of a webhook to map, in arrival order. On PostgreSQL an event is
    /// returned only once every transaction older than it has ended, so one committed late
    /// with a lower `seq` is never overtaken by a later one.
    ///
    /// Read through the pending index: SQLite, without statistics, rated it equal to the index
    /// of all the webhook's events and took that one, stepping over every event already mapped
    /// (12 ms per batch at 33,000 mapped events, against 0.1 ms).
    pub async fn pending_webhook_events(&self, webhook_id: &str, limit: u32) -> Result<Vec<PendingWebhookEvent>> {
        let index = self.dialect().pending_index;
        let sql = format!(
            "SELECT seq, id, request, request_compressed FROM webhook_events{index} \
             WHERE webhook_id = $1 AND status = 'PENDING'{} ORDER BY seq LIMIT $2",
            self.horizon()
        );
        let found = sqlx::query(AssertSqlSafe(sql)).bind(webhook_id).bind(i64::from(limit)).fetch_all(self.reader()).await?;
        found
            .iter()
            .map(|row| {
                Ok(PendingWebhookEvent { seq: row.try_get("seq")?, id: row.try_get("id")?, request: readable_request(row)? })
            })
            .collect()
    }

    fn horizon(&self) -> &'static str {
        self.dialect().horizon
    }

    /// Takes (or renews) the lease on mapping a webhook's events; false when another node
    /// holds an unexpired one.
    pub async fn claim_mapper_lease(&self, webhook_id: &str, owner: &str, now: Timestamp, until: Timestamp) -> Result<bool> {
        let mut writer = self.writer().await?;
        let claimed = sqlx::query(
            "INSERT INTO webhook_mapper_leases (webhook_id, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (webhook_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE webhook_mapper_leases.owner = excluded.owner OR webhook_mapper_leases.expires_at < $4 \
             RETURNING webhook_id",
        )
        .bind(webhook_id)
        .bind(owner)
        .bind(until.millis())
        .bind(now.millis())
        .fetch_optional(&mut *writer)
        .await?;
        Ok(claimed.is_some())
    }

    pub async fn release_mapper_lease(&self, webhook_id: &str, owner: &str) -> Result<()> {
        let mut writer = self.writer().await?;
        sqlx::query("DELETE FROM webhook_mapper_leases WHERE webhook_id = $1 AND owner = $2")
            .bind(webhook_id)
            .bind(owner)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    /// Deletes events received before `before` and request identifiers expired at `now`.
    pub async fn prune_webhook_events(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        let mut writer = self.writer().await?;
        let events =
            sqlx::query("DELETE FROM webhook_events WHERE received_at < $1").bind(before.millis()).execute(&mut *writer).await?;
        sqlx::query("DELETE FROM webhook_request_ids WHERE expires_at < $1").bind(now.millis()).execute(&mut *writer).await?;
        Ok(events.rows_affected())
    }
}

/// Records `request_id` for the event unless a live record exists; an expired one is taken
/// over. A concurrent duplicate on PostgreSQL waits on the row and then sees it.
async fn claim_request_id(tx: &mut Tx, event: &NewWebhookEvent, request_id: &str, now: Timestamp) -> Result<Stored> {
    let claimed = sqlx::query(CLAIM_REQUEST_ID)
        .bind(&event.webhook_id)
        .bind(request_id)
        .bind(&event.id)
        .bind(event.dedupe_until.millis())
        .bind(now.millis())
        .fetch_optional(tx.conn())
        .await?;
    if claimed.is_some() {
        return Ok(Stored::Stored);
    }
    let first: String =
        sqlx::query_scalar(FIRST_WITH_REQUEST_ID).bind(&event.webhook_id).bind(request_id).fetch_one(tx.conn()).await?;
    Ok(Stored::Duplicate(first))
}

/// A rejected event is finished when received; a pending one when mapped.
pub(crate) fn processed_at(event: &NewWebhookEvent) -> Option<i64> {
    (event.status != WebhookEventStatus::Pending).then(|| event.received_at.millis())
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn apply<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            Self::Text(text) => query.bind(text),
            Self::Int(int) => query.bind(int),
        }
    }
}

/// ` AND …` conditions of `filter`, numbered from `$2` (`$1` is the webhook).
fn event_conditions(filter: &WebhookEventFilter) -> (String, Vec<Bind>) {
    let mut conditions = String::new();
    let mut binds = Vec::new();
    let mut push = |clause: &str, bind: Bind| {
        binds.push(bind);
        conditions.push_str(&format!(" AND {clause} ${}", binds.len() + 1));
    };
    if let Some(status) = filter.status {
        push("status =", Bind::Text(status.as_str().to_owned()));
    }
    if let Some(from) = filter.from {
        push("received_at >=", Bind::Int(from.millis()));
    }
    if let Some(to) = filter.to {
        push("received_at <=", Bind::Int(to.millis()));
    }
    if let Some(before) = filter.before {
        push("seq <", Bind::Int(before));
    }
    (conditions, binds)
}

impl Tx {
    pub async fn webhook(&mut self, org: &str, identifier: &str) -> Result<Option<StoredWebhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.conn()).await?;
        row.as_ref().map(webhook).transpose()
    }

    /// How many ingestion webhooks `org` has (its limit is checked on create).
    pub async fn count_webhooks(&mut self, org: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE org_id = $1").bind(org).fetch_one(self.conn()).await?;
        Ok(row.try_get("n")?)
    }

    /// Inserts a webhook, or replaces the one with its id (bumping nothing: the caller sets
    /// `revision`).
    pub async fn put_webhook(&mut self, stored: &StoredWebhook) -> Result<()> {
        let w = &stored.webhook;
        sqlx::query(
            "INSERT INTO webhooks (id, org_id, identifier, webhook_key, definition, secret_sealed, revision, \
             created_at, created_by, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET identifier = excluded.identifier, definition = excluded.definition, \
             secret_sealed = excluded.secret_sealed, revision = excluded.revision, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&w.id)
        .bind(&stored.org_id)
        .bind(&w.def.identifier)
        .bind(&w.key)
        .bind(to_text(&w.def.to_json()))
        .bind(stored.secret_sealed.as_deref())
        .bind(w.revision)
        .bind(w.audited.created_at.millis())
        .bind(&w.audited.created_by)
        .bind(w.audited.updated_at.millis())
        .bind(&w.audited.updated_by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn delete_webhook(&mut self, id: &str) -> Result<()> {
        for sql in [
            "DELETE FROM webhook_events WHERE webhook_id = $1",
            "DELETE FROM webhook_request_ids WHERE webhook_id = $1",
            "DELETE FROM webhook_mapper_leases WHERE webhook_id = $1",
            "DELETE FROM webhooks WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Makes stored events pending again (replay); rejected events have no request and stay.
    /// Returns how many will be mapped again.
    pub async fn replay_webhook_events(
        &mut self,
        webhook_id: &str,
        event_id: Option<&str>,
        filter: &WebhookEventFilter,
    ) -> Result<u64> {
        let (mut conditions, mut binds) = event_conditions(filter);
        if let Some(event_id) = event_id {
            binds.push(Bind::Text(event_id.to_owned()));
            conditions.push_str(&format!(" AND id = ${}", binds.len() + 1));
        }
        let tx_column = self.dialect.stamp_tx;
        let sql = format!(
            "UPDATE webhook_events SET status = 'PENDING', result = NULL, processed_at = NULL{tx_column} \
             WHERE webhook_id = $1 AND status NOT IN ('PENDING', 'REJECTED'){conditions}"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(webhook_id);
        for bind in binds {
            query = bind.apply(query);
        }
        Ok(query.execute(self.conn()).await?.rows_affected())
    }
}

impl EventLogTx for Tx {
    async fn store_webhook_events(&mut self, events: &[NewWebhookEvent], now: Timestamp) -> Result<Vec<Stored>> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut fresh: Vec<&NewWebhookEvent> = Vec::with_capacity(events.len());
        for event in events {
            let outcome = match &event.request_id {
                Some(request_id) if event.status == WebhookEventStatus::Pending => {
                    claim_request_id(self, event, request_id, now).await?
                }
                _ => Stored::Stored,
            };
            if outcome == Stored::Stored {
                fresh.push(event);
            }
            outcomes.push(outcome);
        }
        // Multi-row INSERTs: the statement count, not the row count, is what a commit costs
        // through sqlx (up to the limit on values per statement).
        for chunk in fresh.chunks(crate::rows::rows_per_statement(9)) {
            let rows: Vec<String> = (0..chunk.len()).map(|i| format!("({})", crate::rows::placeholders(1 + i * 9, 9))).collect();
            let sql = format!("{INSERT_EVENTS} VALUES {}", rows.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for event in chunk {
                query = query
                    .bind(&event.id)
                    .bind(&event.org_id)
                    .bind(&event.webhook_id)
                    .bind(event.status.as_str())
                    .bind(event.request_id.as_deref())
                    .bind(event.request.as_ref().map(CompressedJson::as_bytes))
                    .bind(event.result.as_deref())
                    .bind(event.received_at.millis())
                    .bind(processed_at(event));
            }
            query.execute(self.conn()).await?;
        }
        Ok(outcomes)
    }

    /// One statement per 100 events.
    async fn finish_webhook_events(&mut self, events: &[FinishedWebhookEvent], at: Timestamp) -> Result<u64> {
        let mut done = 0;
        for chunk in events.chunks(crate::rows::rows_per_statement(3)) {
            let rows: Vec<String> = (0..chunk.len()).map(|i| format!("({})", crate::rows::placeholders(2 + i * 3, 3))).collect();
            // `column1…` are the names both databases give the columns of a VALUES list.
            let sql = format!(
                "UPDATE webhook_events SET status = v.column2, result = v.column3, processed_at = $1 \
                 FROM (VALUES {}) AS v WHERE webhook_events.id = v.column1 AND webhook_events.status = 'PENDING'",
                rows.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(!self.dialect.plan_each_time).bind(at.millis());
            for event in chunk {
                query = query.bind(&event.id).bind(event.status.as_str()).bind(&event.result);
            }
            done += query.execute(self.conn()).await?.rows_affected();
        }
        Ok(done)
    }
}

/// [`Store::store_webhook_events`] as a write job.
struct StoreEvents {
    events: Arc<Vec<NewWebhookEvent>>,
    now: Timestamp,
}

impl WriteJob for StoreEvents {
    type Output = Vec<Stored>;
    type Error = Error;

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<Vec<Stored>>> {
        Ok(End::Commit(tx.store_webhook_events(&self.events, self.now).await?))
    }
}
