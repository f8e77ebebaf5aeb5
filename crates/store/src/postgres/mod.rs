//! PostgreSQL: the pool and every piece of SQL only PostgreSQL runs ([`DIALECT`]). The rest
//! of the store's SQL is common to both databases and lives in the module of its table.
//!
//! PostgreSQL has no single writer: concurrent transactions serialize writers of one key with
//! advisory locks, claim rows with `FOR UPDATE (SKIP LOCKED)`, and can commit out of `seq`
//! order, so readers of `seq`-ordered tables read only below the oldest running transaction
//! ([`HORIZON`]), and the outbox is read in (writing transaction, `seq`) order
//! ([`OUTBOX_AFTER`]).

use std::str::FromStr;
use std::sync::LazyLock;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::PgSslMode;
use sqlx::{AnyPool, ConnectOptions, Connection};

use crate::rows::placeholders;
use crate::{Dialect, Error, Result, StoreOptions};

pub(crate) static DIALECT: Dialect = Dialect {
    migrator: LazyLock::new(|| crate::migrations::migrator(crate::migrations::embedded!("postgres"))),
    key_lock: Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
    key_locks: Some(key_locks),
    named_entities,
    entity_with_change: Some(entity_with_change),
    row_lock: " FOR UPDATE",
    claim_lock: " FOR UPDATE SKIP LOCKED",
    horizon: HORIZON,
    stamp_tx: ", tx = pg_current_xact_id()",
    outbox_tx: "tx::text::bigint",
    outbox_after: OUTBOX_AFTER,
    outbox_backlog: Some("seq > $2 AND tx < $1::text::xid8 ORDER BY seq"),
    pending_index: "", // its statistics find the smaller index
    plan_each_time: true,
    committers: 4,
    commits_in_seq_order: false,
};

/// A row of a `seq`-ordered table is read only once every transaction that started before it
/// has ended, so one that commits late with a lower `seq` is never skipped.
const HORIZON: &str = " AND tx < pg_snapshot_xmin(pg_current_snapshot())";

/// The outbox's order is (writing transaction, `seq`), read below the horizon: every
/// transaction below the oldest running one has ended and every running or later one has an
/// id at or above it, so the changes below it are final and none can come before those read.
/// (In `seq` order a lower `seq` of a younger transaction could commit after a higher one of
/// an older transaction was read.) The row comparison is a range of `changes_by_tx`.
const OUTBOX_AFTER: &str = "(tx, seq) > ($1::text::xid8, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY tx, seq";

/// Each connection's limits: a statement, a lock wait, a transaction left idle.
const SESSION_TIMEOUTS: [(&str, &str); 3] =
    [("statement_timeout", "120s"), ("lock_timeout", "30s"), ("idle_in_transaction_session_timeout", "120s")];

/// The pool for everything (reads and writes alike). TLS is libpq's: `sslmode`
/// (`disable`, `allow`, `prefer` — the default —, `require`, `verify-ca`, `verify-full`) and
/// `sslrootcert` in the URL, with rustls; without `sslrootcert`, `verify-*` trust the public
/// web PKI's roots (webpki-roots). A connection that fails says where and with which
/// `sslmode` (`Error::Connect`), beside the reason (a certificate that does not verify names
/// its reason: unknown issuer, not valid for the host…).
pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let connect = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    // Timeouts a stuck statement or lock wait cannot outlive (a worker is never held
    // forever), unless the URL sets its own (`options=-c statement_timeout=…`).
    let timeouts: Vec<String> = SESSION_TIMEOUTS
        .iter()
        .filter(|(name, _)| !url.contains(name))
        .map(|(name, value)| format!("SET {name} = '{value}'"))
        .collect();
    let timeouts = std::sync::Arc::new(timeouts);
    // One connection first, for its error: the pool tries again until its acquire timeout
    // and then says only that it timed out (a refused port, a missing database, a bad
    // password and an unknown host all read "pool timed out").
    let refused = |reason: String| Error::Connect { target: target(url), reason };
    let first = tokio::time::timeout(options.acquire_timeout, connect.connect())
        .await
        .map_err(|_| refused(format!("no answer within {:?}", options.acquire_timeout)))?
        .map_err(|err| refused(reason(&err)))?;
    let _ = first.close().await;
    AnyPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _| {
            let timeouts = timeouts.clone();
            Box::pin(async move {
                for set in timeouts.iter() {
                    sqlx::query(sqlx::AssertSqlSafe(set.as_str())).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(connect)
        .await
        .map_err(|err| refused(reason(&err)))
}

/// Why a connection failed, in a few words: the server's message (`database "x" does not
/// exist`, `password authentication failed for user "y"`), the socket's (`connection
/// refused`), or the TLS layer's, without sqlx's framing ("error returned from database: …").
fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

/// Whether a session of the pool may write: not a standby in recovery, and not read-only by
/// default (`default_transaction_read_only`, set on the database or the role). One statement.
pub(crate) async fn writable(pool: &AnyPool) -> Result<bool> {
    let read_only: bool = sqlx::query_scalar("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'")
        .fetch_one(pool)
        .await?;
    Ok(!read_only)
}

/// `host:port (sslmode …)` of a PostgreSQL URL, as a connection error names it.
fn target(url: &str) -> String {
    let Ok(options) = sqlx::postgres::PgConnectOptions::from_str(url) else { return "the database URL".to_owned() };
    let mode = match options.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    };
    format!("{}:{} (sslmode {mode})", options.get_host(), options.get_port())
}

/// Whether a SQLSTATE is one the same statement would get again: data exceptions (22…) and
/// program limits (54…).
pub(crate) fn refused_value(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("54")
}

/// Locks `count` keys (`$1…`) in the order given, in one statement.
fn key_locks(count: usize) -> String {
    let rows: Vec<String> = (1..=count).map(|i| format!("(${i}::text, {i})")).collect();
    // `ORDER BY` the position: the locks are taken in the order given.
    format!("SELECT pg_advisory_xact_lock(hashtextextended(v.k, 0)) FROM (VALUES {}) AS v (k, n) ORDER BY v.n", rows.join(", "))
}

/// `columns` of the entities of blueprint `$2` of organization `$1` whose identifiers are
/// `$3…`, `count` of them: each identifier one primary-key lookup, whatever the planner
/// estimates. With `identifier IN (…)` a table without statistics yet (a new one, or one that
/// grew faster than autovacuum runs) was estimated at one row per blueprint, so the list
/// became a filter over every entity of the blueprint (59 ms for 128 identifiers among 20,000
/// entities, against well under 1 ms). The `LIMIT 1` (the key is unique) keeps the planner
/// from flattening the lookup back into such a filter.
fn named_entities(columns: &str, count: usize) -> String {
    let values: Vec<String> = (3..3 + count).map(|i| format!("(${i}::text)")).collect();
    format!(
        "SELECT e.* FROM (VALUES {}) AS v (id) CROSS JOIN LATERAL \
         (SELECT {columns} FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier = v.id LIMIT 1) AS e",
        values.join(", ")
    )
}

/// An entity's upsert (`$1…$12`), its first `edges` edges (six values each, from `$13`) and
/// its change (after them) in one statement, with data-modifying CTEs: it saves the round
/// trips that bound mapping throughput here.
fn entity_with_change(edges: usize) -> String {
    use crate::catalog::{EDGE_INSERT, ENTITY_CONFLICT, ENTITY_UPSERT, edge_rows};
    use crate::changes::{CHANGE_INSERT_COLUMNS, CHANGE_VALUES};
    let mut sql = format!("WITH upserted AS ({ENTITY_UPSERT} ({}){ENTITY_CONFLICT} RETURNING 1)", placeholders(1, 12));
    if edges > 0 {
        sql.push_str(&format!(", edges AS ({EDGE_INSERT} {} ON CONFLICT DO NOTHING RETURNING 1)", edge_rows(13, edges)));
    }
    sql.push_str(&format!(
        " INSERT INTO changes ({CHANGE_INSERT_COLUMNS}) VALUES ({}) RETURNING seq",
        placeholders(13 + edges * 6, CHANGE_VALUES)
    ));
    sql
}
