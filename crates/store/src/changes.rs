//! The change outbox: appending changes, reading them for the audit log, and consuming them
//! in order with a durable cursor per consumer.

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
pub(crate) async fn insert_many(conn: &mut sqlx::AnyConnection, changes: &[Change]) -> Result<()> {
    for chunk in changes.chunks(crate::rows::rows_per_statement(CHANGE_VALUES)) {
        let rows: Vec<String> =
            (0..chunk.len()).map(|i| format!("({})", crate::rows::placeholders(1 + i * CHANGE_VALUES, CHANGE_VALUES))).collect();
        let sql = format!("INSERT INTO changes ({CHANGE_INSERT_COLUMNS}) VALUES {}", rows.join(", "));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for change in chunk {
            query = bind_change(query, change);
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

/// A batch of changes read past a consumer's cursor.
#[derive(Debug, Clone, Default)]
pub struct OutboxBatch {
    /// The changes that could be read, in order.
    pub changes: Vec<Change>,
    /// Rows of the batch that cannot be read as a change (the consumer parks them: reading
    /// them again would fail the same way).
    pub unreadable: Vec<UnreadableChange>,
    /// Where the cursor stands after this batch (the last row's `seq`, or unchanged).
    pub position: i64,
}

/// An outbox row that is not a readable change: what is known of it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableChange {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
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
    /// The `seq` of the newest change (0 when there is none): a cheap check, on a reader,
    /// before a consumer takes its cursor.
    pub async fn last_change_seq(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM changes").fetch_one(self.reader()).await?)
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
    /// returns its position; a new consumer starts at 0.
    pub async fn lock_cursor(&mut self, consumer: &str, now: Timestamp) -> Result<i64> {
        sqlx::query(
            "INSERT INTO outbox_cursors (consumer, position, updated_at) VALUES ($1, 0, $2) ON CONFLICT (consumer) DO NOTHING",
        )
        .bind(consumer)
        .bind(now.millis())
        .execute(self.conn())
        .await?;
        let sql = format!("SELECT position FROM outbox_cursors WHERE consumer = $1{}", self.dialect.row_lock);
        Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(consumer).fetch_one(self.conn()).await?)
    }

    /// Moves a consumer's cursor; commit the transaction to make it stick.
    pub async fn set_cursor(&mut self, consumer: &str, position: i64, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE outbox_cursors SET position = $1, updated_at = $2 WHERE consumer = $3")
            .bind(position)
            .bind(now.millis())
            .bind(consumer)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Up to `limit` changes after `position`, in order, without gaps: on PostgreSQL a change
    /// is returned only once every transaction that started before it has ended, so one that
    /// commits late with a lower `seq` is never skipped. (SQLite's single writer commits in
    /// `seq` order already.)
    pub async fn changes_after(&mut self, position: i64, limit: u32) -> Result<OutboxBatch> {
        let horizon = self.dialect.horizon;
        let sql = format!("SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > $1{horizon} ORDER BY seq LIMIT $2");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(position).bind(i64::from(limit)).fetch_all(self.conn()).await?;
        // The rows are fetched: a row that does not decode now never will.
        let mut batch = OutboxBatch { position, ..OutboxBatch::default() };
        for row in &found {
            batch.position = row.try_get("seq")?;
            match change(row, Diffs::Strict) {
                Ok(change) => batch.changes.push(change),
                Err(err) => batch.unreadable.push(UnreadableChange {
                    seq: batch.position,
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    reason: err.to_string(),
                }),
            }
        }
        Ok(batch)
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
