//! The change outbox: appending changes, reading them for the audit log, and consuming them
//! in order with a durable cursor per consumer.
//!
//! Architecture Invariant: a consumer reads every change once, none skipped, none twice. The
//! outbox's order is (writing transaction, `seq`) and a cursor is a place in it
//! ([`OutboxPosition`]); a change is read only once no running transaction can still write
//! one before it. On PostgreSQL that is below the oldest running transaction (its xmin):
//! every transaction below it has ended and every running or later one has an id at or above
//! it, so the changes below it are final, and a consumer that reads them in that order past
//! its cursor never passes one still to come. `seq` order alone is not enough there: a
//! transaction that took its id first may record a higher `seq` and commit before a younger
//! one commits a lower `seq`. On SQLite the single writer commits changes in `seq` order:
//! the transaction part is always 0 and the order is `seq` order.
//!
//! On PostgreSQL the order is not the order of writing, even for one entity: a transaction
//! that took its id before another may wait for that one's entity lock and write the entity
//! after it, so its change comes first. `seq` follows the writing of one entity (it is taken
//! under the entity's lock).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use wharf_core::change::{Change, ChangeAction, Origin, ResourceType, Trigger};
use wharf_core::time::Timestamp;

use crate::rows::{diff_json, json, to_text};
use crate::{Error, Result, Store, Tx};

const CHANGE_COLUMNS: &str = "seq, id, org_id, resource_type, action, blueprint, entity, origin, actor, \
     webhook_id, webhook_event_id, run_id, diff_before, diff_after, created_at";

/// The columns a new change fills, in the order [`bind_change`] binds them.
pub(crate) const CHANGE_INSERT_COLUMNS: &str = "id, org_id, resource_type, action, blueprint, entity, origin, actor, \
     webhook_id, webhook_event_id, run_id, diff_before, diff_after, created_at";

/// How many values [`bind_change`] binds.
pub(crate) const CHANGE_VALUES: usize = 14;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

pub(crate) fn bind_change<'q>(query: AnyQuery<'q>, change: &'q Change) -> AnyQuery<'q> {
    let t = &change.trigger;
    query
        .bind(&change.id)
        .bind(&t.org_id)
        .bind(change.resource_type.as_str())
        .bind(change.action.as_str())
        .bind(&change.blueprint)
        .bind(change.entity.as_deref())
        .bind(t.origin.as_str())
        .bind(&t.by)
        .bind(t.webhook_id.as_deref())
        .bind(t.webhook_event_id.as_deref())
        .bind(t.run_id.as_deref())
        .bind(change.before.as_ref().map(to_text))
        .bind(change.after.as_ref().map(to_text))
        .bind(t.at.millis())
}

pub(crate) async fn insert(conn: &mut sqlx::AnyConnection, change: &Change) -> Result<i64> {
    let sql = format!(
        "INSERT INTO changes ({CHANGE_INSERT_COLUMNS}) VALUES ({}) RETURNING seq",
        crate::rows::placeholders(1, CHANGE_VALUES)
    );
    let seq: i64 = bind_change(sqlx::query(AssertSqlSafe(sql)), change).fetch_one(conn).await?.try_get("seq")?;
    Ok(seq)
}

/// Appends many changes, with multi-row statements (their `seq` is not read back).
pub(crate) async fn insert_many<C: std::borrow::Borrow<Change>>(conn: &mut sqlx::AnyConnection, changes: &[C]) -> Result<()> {
    for chunk in changes.chunks(crate::rows::rows_per_statement(CHANGE_VALUES)) {
        let rows: Vec<String> =
            (0..chunk.len()).map(|i| format!("({})", crate::rows::placeholders(1 + i * CHANGE_VALUES, CHANGE_VALUES))).collect();
        let sql = format!("INSERT INTO changes ({CHANGE_INSERT_COLUMNS}) VALUES {}", rows.join(", "));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for change in chunk {
            query = bind_change(query, change.borrow());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How a change's stored diff that does not parse is read.
#[derive(Clone, Copy)]
enum Diffs {
    /// As a marker (`{"$unreadable": …}`): the audit log shows the rest of the change.
    Marked,
    /// As an error: the router must not publish an event whose data it cannot read, so it
    /// parks the change instead.
    Strict,
}

fn change(row: &AnyRow, diffs: Diffs) -> Result<Change> {
    let corrupt = |what: &'static str, value: String| Error::Corrupt { what, detail: format!("unknown value `{value}`") };
    let resource: String = row.try_get("resource_type")?;
    let action: String = row.try_get("action")?;
    let origin: String = row.try_get("origin")?;
    let id: String = row.try_get("id")?;
    // One old row must stop neither the audit log (a marker) nor the router (it parks it).
    let diff = |column: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(column)?;
        match (text, diffs) {
            (None, _) => Ok(None),
            (Some(text), Diffs::Marked) => Ok(Some(diff_json(&text, || format!("{column} of change `{id}`")))),
            (Some(text), Diffs::Strict) => json(&text, "change diff").map(Some),
        }
    };
    Ok(Change {
        id: id.clone(),
        seq: row.try_get("seq")?,
        resource_type: ResourceType::parse(&resource).ok_or_else(|| corrupt("change resource type", resource.clone()))?,
        action: ChangeAction::parse(&action).ok_or_else(|| corrupt("change action", action.clone()))?,
        blueprint: row.try_get("blueprint")?,
        entity: row.try_get("entity")?,
        trigger: Trigger {
            org_id: row.try_get("org_id")?,
            by: row.try_get("actor")?,
            origin: Origin::parse(&origin).ok_or_else(|| corrupt("change origin", origin.clone()))?,
            at: Timestamp::from_millis(row.try_get("created_at")?),
            webhook_id: row.try_get("webhook_id")?,
            webhook_event_id: row.try_get("webhook_event_id")?,
            run_id: row.try_get("run_id")?,
        },
        before: diff("diff_before")?,
        after: diff("diff_after")?,
    })
}

/// The filters of `GET /v1/audit-log` that apply to changes.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The audit entry's own identifier.
    pub identifier: Option<String>,
    /// The entity identifier.
    pub entity: Option<String>,
    pub blueprint: Option<String>,
    pub webhook_id: Option<String>,
    pub webhook_event_id: Option<String>,
    pub run_id: Option<String>,
    /// Resource types to include; empty means all.
    pub resources: Vec<ResourceType>,
    pub action: Option<ChangeAction>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

/// A consumer's place in the outbox: it has read the changes before it and none after it.
/// Places are ordered as the outbox is read: by the writing transaction, then by `seq`.
///
/// The transaction part is PostgreSQL's id of the writing transaction (`changes.tx`), 0 on
/// SQLite (one writer: `seq` order is the order) and at a new consumer's start. A negative
/// one is a cursor upgraded while its consumer was behind (migration 0011): it is still
/// reading the backlog of changes of transactions below the negated id, in `seq` order, past
/// `seq`; it goes on at (that id, 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxPosition {
    tx: i64,
    seq: i64,
}

impl OutboxPosition {
    /// The `seq` part: the last change read (0 before the first, or at the start of an
    /// upgraded cursor's transaction part).
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Where a backlog's reader goes on once the backlog is read.
    fn after_backlog(self) -> Option<Self> {
        (self.tx < 0).then(|| Self { tx: -self.tx, seq: 0 })
    }
}

/// What a change's row says of it before its documents are read ([`Store::change_heads_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeHead {
    /// The place past this change.
    pub position: OutboxPosition,
    pub org_id: String,
    /// `None` for a value this build does not know (the consumer reads the change, and parks
    /// it); so for `action`.
    pub resource_type: Option<ResourceType>,
    pub action: Option<ChangeAction>,
    pub blueprint: String,
}

/// A batch of changes read past a consumer's cursor.
#[derive(Debug, Clone, Default)]
pub struct OutboxBatch {
    /// The changes that could be read, in order.
    pub changes: Vec<Change>,
    /// Rows of the batch that cannot be read as a change (the consumer parks them: reading
    /// them again would fail the same way).
    pub unreadable: Vec<UnreadableChange>,
    /// Where the cursor stands after this batch: past its last row, or where it stood (or,
    /// once an upgraded cursor's backlog is read, where it goes on).
    pub position: OutboxPosition,
    /// The place past each row, in the order read (changes and unreadable rows alike).
    rows: Vec<OutboxPosition>,
}

impl OutboxBatch {
    /// The rows one by one, in the order read, each with the place past it.
    pub fn into_rows(self) -> Vec<(OutboxPosition, std::result::Result<Change, UnreadableChange>)> {
        let mut changes = self.changes.into_iter().peekable();
        let mut unreadable = self.unreadable.into_iter();
        let mut rows = Vec::with_capacity(self.rows.len());
        for position in self.rows {
            let row = match changes.next_if(|change| change.seq == position.seq) {
                Some(change) => Ok(change),
                None => Err(unreadable.next().expect("a row is a change or an unreadable one")),
            };
            rows.push((position, row));
        }
        rows
    }
}

/// An outbox row that is not a readable change: what is known of it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableChange {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    /// What the row says of the change's kind, action and blueprint (`None`: a value this
    /// build does not know), so a consumer parks only what it might have acted on.
    pub resource_type: Option<ResourceType>,
    pub action: Option<ChangeAction>,
    pub blueprint: String,
    pub reason: String,
}

/// A change an outbox consumer set aside with its reason ([`Tx::park_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedChange {
    pub consumer: String,
    pub seq: i64,
    pub change_id: String,
    pub org_id: String,
    pub reason: String,
    pub parked_at: Timestamp,
}

impl Error {
    /// Whether the same work would fail the same way if tried again (stored data that cannot
    /// be read, a value the database refuses), as opposed to a failure of the database or of
    /// the way to it (a lost connection, a full disk, a busy lock, a deadlock), after which a
    /// retry may succeed. An outbox consumer parks a change on the first kind only.
    pub fn is_deterministic(&self) -> bool {
        match self {
            Self::Corrupt { .. } => true,
            Self::Database(err) => match err {
                sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::Encode(_)
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::TypeNotFound { .. } => true,
                sqlx::Error::Database(db) => {
                    let code = db.code().unwrap_or_default();
                    !matches!(db.kind(), sqlx::error::ErrorKind::Other)
                        || crate::postgres::refused_value(&code)
                        || crate::sqlite::refused_value(&code)
                }
                _ => false,
            },
            Self::Sqlite(err) => crate::sqlite::is_deterministic(err),
            _ => false,
        }
    }
}

impl Store {
    /// The heads of up to `limit` changes past `position`, in the outbox's order, read on a
    /// reader (no transaction, no write turn): what a consumer decides from whether it has
    /// anything to do with a change before it reads the change itself.
    ///
    /// The heads are those [`Tx::changes_after`] would read, in the same order and as final
    /// (the module's invariant: on PostgreSQL only changes below the oldest running
    /// transaction), so no change will ever commit among them or before the last of them.
    /// `None` for an upgraded cursor's backlog, which is read in the cursor's transaction.
    pub async fn change_heads_after(&self, position: OutboxPosition, limit: u32) -> Result<Option<Vec<ChangeHead>>> {
        if position.after_backlog().is_some() {
            return Ok(None);
        }
        let (row_tx, past) = (self.dialect.outbox_tx, self.dialect.outbox_after);
        let sql = format!(
            "SELECT {row_tx} AS outbox_tx, seq, org_id, resource_type, action, blueprint FROM changes WHERE {past} LIMIT $3"
        );
        let found = sqlx::query(AssertSqlSafe(sql))
            .bind(position.tx)
            .bind(position.seq)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        let mut heads = Vec::with_capacity(found.len());
        for row in &found {
            let (resource, action): (String, String) = (row.try_get("resource_type")?, row.try_get("action")?);
            heads.push(ChangeHead {
                position: OutboxPosition { tx: row.try_get("outbox_tx")?, seq: row.try_get("seq")? },
                org_id: row.try_get("org_id")?,
                resource_type: ResourceType::parse(&resource),
                action: ChangeAction::parse(&action),
                blueprint: row.try_get("blueprint")?,
            });
        }
        Ok(Some(heads))
    }

    /// An organization's changes matching `filter`, newest first.
    pub async fn audit(&self, org: &str, filter: &AuditFilter) -> Result<Vec<Change>> {
        let mut conditions = vec!["org_id = $1".to_owned()];
        let mut values: Vec<String> = vec![org.to_owned()];
        let mut push = |column: &str, value: String| {
            values.push(value);
            conditions.push(format!("{column} = ${}", values.len()));
        };
        let text_filters = [
            ("id", &filter.identifier),
            ("entity", &filter.entity),
            ("blueprint", &filter.blueprint),
            ("webhook_id", &filter.webhook_id),
            ("webhook_event_id", &filter.webhook_event_id),
            ("run_id", &filter.run_id),
        ];
        for (column, value) in text_filters {
            if let Some(value) = value {
                push(column, value.clone());
            }
        }
        if let Some(action) = filter.action {
            push("action", action.as_str().to_owned());
        }
        if !filter.resources.is_empty() {
            let start = values.len() + 1;
            values.extend(filter.resources.iter().map(|r| r.as_str().to_owned()));
            conditions.push(format!("resource_type IN ({})", crate::rows::placeholders(start, filter.resources.len())));
        }
        let mut times = Vec::new();
        if let Some(from) = filter.from {
            times.push(from.millis());
            conditions.push(format!("created_at >= ${}", values.len() + times.len()));
        }
        if let Some(to) = filter.to {
            times.push(to.millis());
            conditions.push(format!("created_at <= ${}", values.len() + times.len()));
        }
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE {} ORDER BY seq DESC LIMIT ${}",
            conditions.join(" AND "),
            values.len() + times.len() + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in &values {
            query = query.bind(value);
        }
        for time in times {
            query = query.bind(time);
        }
        let found = query.bind(i64::from(filter.limit)).fetch_all(self.reader()).await?;
        found.iter().map(|row| change(row, Diffs::Marked)).collect()
    }
}

impl Tx {
    /// Takes a consumer's cursor for the rest of the transaction (other nodes wait) and
    /// returns its place; a new consumer starts before every change.
    pub async fn lock_cursor(&mut self, consumer: &str, now: Timestamp) -> Result<OutboxPosition> {
        sqlx::query(
            "INSERT INTO outbox_cursors (consumer, tx_position, position, updated_at) VALUES ($1, 0, 0, $2) \
             ON CONFLICT (consumer) DO NOTHING",
        )
        .bind(consumer)
        .bind(now.millis())
        .execute(self.conn())
        .await?;
        let sql = format!("SELECT tx_position, position FROM outbox_cursors WHERE consumer = $1{}", self.dialect.row_lock);
        let row = sqlx::query(AssertSqlSafe(sql)).bind(consumer).fetch_one(self.conn()).await?;
        Ok(OutboxPosition { tx: row.try_get("tx_position")?, seq: row.try_get("position")? })
    }

    /// Moves a consumer's cursor; commit the transaction to make it stick.
    pub async fn set_cursor(&mut self, consumer: &str, position: OutboxPosition, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE outbox_cursors SET tx_position = $1, position = $2, updated_at = $3 WHERE consumer = $4")
            .bind(position.tx)
            .bind(position.seq)
            .bind(now.millis())
            .bind(consumer)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Up to `limit` changes past `position`, in the outbox's order, without gaps: only
    /// changes no running transaction can still precede (see the module's invariant).
    pub async fn changes_after(&mut self, position: OutboxPosition, limit: u32) -> Result<OutboxBatch> {
        let mut batch = OutboxBatch { position, ..OutboxBatch::default() };
        let mut from = position;
        if let (Some(next), Some(backlog)) = (position.after_backlog(), self.dialect.outbox_backlog) {
            // An upgraded cursor's backlog: final changes, so `seq` order has no gaps.
            self.read_changes(&mut batch, backlog, -position.tx, position, limit).await?;
            if batch.rows.len() == limit as usize {
                return Ok(batch);
            }
            batch.position = next;
            from = next;
        }
        let left = limit - batch.rows.len() as u32;
        self.read_changes(&mut batch, self.dialect.outbox_after, from.tx, from, left).await?;
        Ok(batch)
    }

    /// Reads into `batch` up to `limit` rows of `past` (`WHERE` … `ORDER BY`; `$1` = `tx`,
    /// `$2` = the `seq` of `from`). A row's place is its transaction part and `seq`; in a
    /// backlog (`from` negative) it keeps `from`'s transaction part.
    async fn read_changes(
        &mut self,
        batch: &mut OutboxBatch,
        past: &str,
        tx: i64,
        from: OutboxPosition,
        limit: u32,
    ) -> Result<()> {
        let row_tx = self.dialect.outbox_tx;
        let sql = format!("SELECT {row_tx} AS outbox_tx, {CHANGE_COLUMNS} FROM changes WHERE {past} LIMIT $3");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(tx).bind(from.seq).bind(i64::from(limit)).fetch_all(self.conn()).await?;
        // The rows are fetched: a row that does not decode now never will.
        for row in &found {
            let tx = if from.tx < 0 { from.tx } else { row.try_get("outbox_tx")? };
            batch.position = OutboxPosition { tx, seq: row.try_get("seq")? };
            batch.rows.push(batch.position);
            match change(row, Diffs::Strict) {
                Ok(change) => batch.changes.push(change),
                Err(err) => batch.unreadable.push(UnreadableChange {
                    seq: batch.position.seq,
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    resource_type: row.try_get::<String, _>("resource_type").ok().and_then(|kind| ResourceType::parse(&kind)),
                    action: row.try_get::<String, _>("action").ok().and_then(|action| ChangeAction::parse(&action)),
                    blueprint: row.try_get("blueprint").unwrap_or_default(),
                    reason: err.to_string(),
                }),
            }
        }
        Ok(())
    }

    /// Sets changes aside for `consumer` with their reasons; the caller moves the cursor past
    /// them in the same transaction. Parking one twice keeps the first reason.
    pub async fn park_changes(&mut self, consumer: &str, parked: &[UnreadableChange], now: Timestamp) -> Result<()> {
        for change in parked {
            sqlx::query(
                "INSERT INTO parked_changes (consumer, seq, change_id, org_id, reason, parked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consumer, seq) DO NOTHING",
            )
            .bind(consumer)
            .bind(change.seq)
            .bind(&change.id)
            .bind(&change.org_id)
            .bind(&change.reason)
            .bind(now.millis())
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

impl Store {
    /// An organization's parked changes, newest first.
    pub async fn parked_changes(&self, org: &str, limit: u32) -> Result<Vec<ParkedChange>> {
        let found = sqlx::query(
            "SELECT consumer, seq, change_id, org_id, reason, parked_at FROM parked_changes \
             WHERE org_id = $1 ORDER BY parked_at DESC, seq DESC LIMIT $2",
        )
        .bind(org)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(ParkedChange {
                    consumer: row.try_get("consumer")?,
                    seq: row.try_get("seq")?,
                    change_id: row.try_get("change_id")?,
                    org_id: row.try_get("org_id")?,
                    reason: row.try_get("reason")?,
                    parked_at: Timestamp::from_millis(row.try_get("parked_at")?),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::Error;

    fn sqlite(code: i32) -> Error {
        Error::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None))
    }

    #[test]
    fn unreadable_data_and_refused_values_are_deterministic() {
        assert!(Error::Corrupt { what: "change diff", detail: "EOF".into() }.is_deterministic());
        assert!(Error::Database(sqlx::Error::ColumnNotFound("seq".into())).is_deterministic());
        assert!(sqlite(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE).is_deterministic());
        assert!(sqlite(rusqlite::ffi::SQLITE_TOOBIG).is_deterministic());
    }

    #[test]
    fn failures_of_the_database_or_the_way_to_it_are_not() {
        let io = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!Error::Database(sqlx::Error::Io(io())).is_deterministic());
        assert!(!Error::Database(sqlx::Error::PoolTimedOut).is_deterministic());
        assert!(!Error::Database(sqlx::Error::PoolClosed).is_deterministic());
        assert!(!Error::Writer("the SQLite writer thread is gone".into()).is_deterministic());
        for code in
            [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED, rusqlite::ffi::SQLITE_FULL, rusqlite::ffi::SQLITE_IOERR]
        {
            assert!(!sqlite(code).is_deterministic(), "{code}");
        }
    }
}
