//! SQLite: everything only SQLite runs. Its pools and pragmas ([`connect`]), the dialect's
//! SQL ([`DIALECT`]), and the writer thread ([`writer`], [`wal_sync`]) with its transaction
//! and statements ([`write_tx`]). The rest of the store's SQL is common to both databases
//! and lives in the module of its table.
//!
//! SQLite runs with WAL and `synchronous=FULL`, a pool of readers, and two writers that take
//! turns (writes are serialized in-process, never on the file lock): sqlx's writer connection
//! for most writes, and the writer thread for the units of work ([`crate::Store::write`]),
//! whose commits are synced off the write turn before they are answered ([`wal_sync`]). One
//! writer means: no key locks, no row locks, and commits in `seq` order.

pub(crate) mod backup;
pub(crate) mod serving;
pub(crate) mod wal_sync;
pub(crate) mod write_tx;
pub(crate) mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, AssertSqlSafe, ConnectOptions, Executor};

use crate::rows::placeholders;
use crate::{Dialect, Result, StoreOptions};

pub(crate) static DIALECT: Dialect = Dialect {
    migrator: LazyLock::new(|| crate::migrations::migrator(crate::migrations::embedded!("sqlite"))),
    key_lock: None,
    key_locks: None,
    named_entities,
    entity_with_change: None,
    row_lock: "",
    claim_lock: "",
    horizon: "",
    stamp_tx: "",
    // One writer: changes commit in `seq` order, so `seq` order is the outbox's order.
    outbox_tx: "0",
    outbox_after: "seq > $2 ORDER BY seq",
    outbox_backlog: None,
    // Without statistics SQLite rated the pending index equal to the index of all the
    // webhook's events and took that one, stepping over every event already mapped (12 ms per
    // batch at 33,000 mapped events, against 0.1 ms).
    pending_index: " INDEXED BY webhook_events_pending",
    plan_each_time: false,
    committers: 1,
    commits_in_seq_order: true,
};

/// The writer pool (one connection) and the reader pool of the database at `path`, created
/// if needed.
pub(crate) async fn connect(path: &Path, options: &StoreOptions) -> Result<(AnyPool, AnyPool)> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let connect = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
    let pool = |max: u32| {
        AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; FULL makes every commit durable
                    // before it returns (Wharf answers 2xx only after the commit).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    // The writer module's checkpointer copies the WAL back, outside the
                    // commits (see `writer.rs`).
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    // Whichever connection starts the WAL over trims it to this.
                    let keep = writer::WalLimits::default().keep;
                    conn.execute(AssertSqlSafe(format!("PRAGMA journal_size_limit = {keep}"))).await?;
                    Ok(())
                })
            })
            .connect_with(connect.clone())
    };
    let writer = pool(1).await?;
    let reader = pool(options.max_connections.max(1)).await?;
    Ok((writer, reader))
}

/// SQLite's planner takes the primary key for an `IN` list.
fn named_entities(columns: &str, count: usize) -> String {
    format!("SELECT {columns} FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier IN ({})", placeholders(3, count))
}

/// `sql` with PostgreSQL-style `$N` parameters turned into SQLite's `?N`, so that a statement
/// shared with the sqlx path binds by number on the writer thread too (SQLite numbers `$N` by
/// first appearance, `?N` by N).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an error of the writer thread's connection is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(err, _) => {
            matches!(err.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        }
        _ => false,
    }
}

/// Whether an error of the writer thread's connection would repeat ([`crate::Error::is_deterministic`]).
pub(crate) fn is_deterministic(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(err, _) => matches!(
            err.code,
            rusqlite::ErrorCode::TooBig | rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TypeMismatch
        ),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => true,
        _ => false,
    }
}

/// Whether a result code sqlx reports from SQLite is one the same statement would get again:
/// the primary codes TOOBIG, CONSTRAINT, MISMATCH and RANGE.
pub(crate) fn refused_value(code: &str) -> bool {
    let primary = code.parse::<i32>().ok().map(|code| code & 0xff);
    matches!(primary, Some(18 | 19 | 20 | 25))
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_parameters() {
        assert_eq!(numbered("VALUES ($1, $2, '$x', $10) WHERE a < $2"), "VALUES (?1, ?2, '$x', ?10) WHERE a < ?2");
    }
}
