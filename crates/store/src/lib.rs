//! Wharf's persistence: one [`Store`] over SQLite or PostgreSQL.
//!
//! Both databases are reached through sqlx's `Any` driver with the same SQL (numbered `$N`
//! parameters, `ON CONFLICT`, `RETURNING` and recursive CTEs are common to both), so the two
//! backends cannot drift apart. Where the dialects must differ, the SQL is in one of two
//! modules: [`sqlite`] (its pools and pragmas, the writer thread and its statements) and
//! [`postgres`] (advisory and row locks, the outbox's visibility horizon, one-statement
//! writes); each gives a [`Dialect`] that the common code reads. Schemas are two migration
//! folders with the same tables.
//!
//! How a write runs: a write job ([`WriteJob`], written against [`WriteTx`]) goes to
//! [`Store::write`], which runs it on SQLite's writer thread or in a sqlx transaction, and
//! commits or rolls back as it says; other writes run in a [`Tx`] ([`Store::begin`]).
mod actions;
mod agent_claims;
mod catalog;
mod changes;
mod compressed;
mod deliveries;
mod loops;
mod migrations;
mod postgres;
mod projects;
mod publish;
mod rows;
mod runs;
mod secrets;
mod serving;
mod sqlite;
mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
mod tx;
mod webhooks;
mod workflows;
mod write_tx;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool};
use tokio::sync::watch;

pub use agent_claims::{AgentQueue, AgentRun};
pub use catalog::Edge;
pub use changes::{AuditFilter, ChangeHead, OutboxBatch, OutboxPosition, ParkedChange, UnreadableChange};
pub use compressed::CompressedJson;
pub use deliveries::{ActiveSubscription, Lease, Publication, QueueStats};
pub use publish::{PublishBatch, PublishedBatch, Routing};
pub use runs::{ClaimedRequest, DueTimer, NewRunRequest, RequestState, RunAttemptRecord};
pub use serving::{ServingLock, TakenBack};
pub use sqlite::backup::{BackupReport, backup_sqlite};
pub use tx::Tx;
pub use webhooks::{
    FinishedWebhookEvent, NewWebhookEvent, PendingWebhookEvent, Stored, StoredWebhook, WebhookEvent, WebhookEventFilter,
};
pub use workflows::{AckOutcome, AgentNodeRun, ClaimedNodeRun, DueSchedule, NodeQueue, QueueSlot, WorkflowRunFilter};
pub use write_tx::{CatalogTx, End, EntityPut, EventLogTx, QueueTx, Reads, RunTx, WriteJob, WriteTx};

use sqlite::write_tx::WriterTx;
use write_tx::ready;

/// Where the SQL of the two databases differs: [`sqlite::DIALECT`] and
/// [`postgres::DIALECT`], read by the SQL common to both. Architecture Invariant: no store
/// module outside `sqlite/` and `postgres/` names a database; a difference is a field here.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// The schema's migrations (`migrations::embedded!` of the dialect's directory), made on
    /// first use.
    migrator: std::sync::LazyLock<Migrator>,
    /// Locks one key (`$1`) until the transaction ends; `None`: one writer, nothing to lock.
    pub key_lock: Option<&'static str>,
    /// Locks `n` keys (`$1…`) in the order given, in one statement.
    pub key_locks: Option<fn(usize) -> String>,
    /// `columns` of the entities of blueprint `$2` of organization `$1` whose identifiers are
    /// `$3…`, `n` of them.
    pub named_entities: fn(&str, usize) -> String,
    /// An entity's upsert, its first `n` edges and its change in one statement (where the
    /// round trips saved are worth it).
    pub entity_with_change: Option<fn(usize) -> String>,
    /// After a `SELECT` of a row to update: lock it until the transaction ends.
    pub row_lock: &'static str,
    /// After the `SELECT` of rows to claim: lock them, skipping those another claim holds.
    pub claim_lock: &'static str,
    /// ` AND …` on a `seq`-ordered table (with a `tx` column): only rows that no running
    /// transaction can still precede.
    pub horizon: &'static str,
    /// `, tx = …` in an `UPDATE` that makes a row of such a table new again.
    pub stamp_tx: &'static str,
    /// A change's transaction part in the outbox's order, as a cursor keeps it (`tx_position`;
    /// see `changes::OutboxPosition`).
    pub outbox_tx: &'static str,
    /// After `WHERE`: the changes past a cursor (`$1` its transaction part, `$2` its `seq`) that
    /// no running transaction can still precede, `ORDER BY` the outbox's order.
    pub outbox_after: &'static str,
    /// The same for an upgraded cursor's backlog (`$1` the horizon it was upgraded at, `$2` its
    /// `seq`), in `seq` order: `None` where no cursor has one.
    pub outbox_backlog: Option<&'static str>,
    /// The index hint that reads a webhook's pending events.
    pub pending_index: &'static str,
    /// Whether the statements that find rows of a queue (claims, `UPDATE … FROM (VALUES …)`
    /// after attempts) are planned at each execution instead of prepared once per connection
    /// (`Query::persistent(false)`). PostgreSQL keeps a prepared statement's generic plan after
    /// five executions, costed on the table as it was then: a queue that started empty kept
    /// sequential scans while it grew (2,088 scans of 112.9 million rows in one 80,000-delivery
    /// run of `bench/deliveries.sh`, BENCHMARKS.md). SQLite plans each statement alike.
    pub plan_each_time: bool,
    committers: usize,
    commits_in_seq_order: bool,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Writer(String),
    #[error("unsupported database URL `{0}`: use postgres://… (or sqlite://PATH)")]
    UnsupportedUrl(String),
    /// `wharf backup` could not make its copy.
    #[error("{0}")]
    Backup(String),
    /// Another process serves this SQLite database (it holds the lock file named).
    #[error(
        "another `wharf serve` is serving this SQLite database (it holds {0}); a SQLite database has one server \
         at a time: stop the other one, or share a PostgreSQL database between several nodes"
    )]
    InUse(String),
    /// PostgreSQL refused or could not be reached (TLS included): where, and why.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The database could not be reached by a transaction this write shared with others (a
    /// group committer tells each writer of the batch).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Whether the database cannot be reached or is not taking work now (a connection that
    /// failed or was cut, a pool that timed out, PostgreSQL shutting down or starting up,
    /// SQLite busy past its timeout): the same request may succeed later, so the API answers
    /// 503 with `Retry-After`, not 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Unavailable(_) => true,
            Self::Database(err) => match err {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                // Class 08 (connection exception) and 57P01–57P03 (admin shutdown, crash
                // shutdown, cannot connect now); SQLite's SQLITE_BUSY (5).
                sqlx::Error::Database(db) => db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || ["57P01", "57P02", "57P03", "5"].contains(&code.as_ref())),
                _ => false,
            },
            Self::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => err.code == rusqlite::ErrorCode::DatabaseBusy,
            _ => false,
        }
    }

    /// Whether the failure is a unique-constraint violation (a concurrent create won).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            Self::Sqlite(err) => sqlite::is_unique_violation(err),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`Store::readiness`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The database is older than this build: `wharf migrate` (or a start) brings it up.
    MigrationsPending {
        applied: i64,
        known: i64,
    },
    /// The database cannot be written: a read-only SQLite file, a PostgreSQL standby or
    /// read-only session.
    ReadOnly,
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (SQLite) or for everything (PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a connection before failing. While PostgreSQL is down, this is
    /// how long a request waits before its 503: 5 s, the `Retry-After` the 503 names, so a
    /// sender retrying as told meets the database again within 10 s of its return. With the
    /// database up, a wait this long means every connection is busy for seconds, where
    /// shedding load is the better answer.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

fn outbox() -> Arc<watch::Sender<u64>> {
    Arc::new(watch::Sender::new(0))
}

/// The database behind Wharf. Cheap to clone: the pools are shared.
#[derive(Clone, Debug)]
pub struct Store {
    dialect: &'static Dialect,
    /// SQLite: the one connection that writes. PostgreSQL: the same pool as `reader`.
    writer: AnyPool,
    reader: AnyPool,
    /// SQLite: the writer thread, which also hands out the write turn.
    sqlite: Option<sqlite::writer::Writer>,
    /// Counts the commits that recorded changes: the outbox's readers wait on it
    /// ([`Store::outbox_commits`]) rather than only polling.
    outbox: Arc<watch::Sender<u64>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub async fn open_sqlite(path: &Path, options: &StoreOptions) -> Result<Self> {
        let (writer, reader) = sqlite::connect(path, options).await?;
        let thread = Some(sqlite::writer::Writer::open(path)?);
        Ok(Self { dialect: &sqlite::DIALECT, writer, reader, sqlite: thread, outbox: outbox() })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`).
    pub async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Self> {
        let pool = postgres::connect(url, options).await?;
        Ok(Self { dialect: &postgres::DIALECT, writer: pool.clone(), reader: pool, sqlite: None, outbox: outbox() })
    }

    /// Opens the store a URL names: `postgres://`/`postgresql://`, or `sqlite://PATH`.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url, options).await
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::open_sqlite(Path::new(path), options).await
        } else {
            Err(Error::UnsupportedUrl(url.to_owned()))
        }
    }

    /// How many tasks should commit accepted webhook events at once: 1 on SQLite (one writer:
    /// a second committer would only queue for the write turn, and one commit carries a whole
    /// group), 4 on PostgreSQL (commits run side by side).
    pub fn committers(&self) -> usize {
        self.dialect.committers
    }

    /// Whether changes become visible in `seq` order (SQLite: its single writer commits them
    /// so). Where they do not (PostgreSQL: a lower `seq` can commit later), the outbox is read
    /// in (transaction, `seq`) order below the oldest running transaction; the tests of the
    /// outbox ask which to expect.
    pub fn changes_commit_in_seq_order(&self) -> bool {
        self.dialect.commits_in_seq_order
    }

    /// Applies every pending migration. Safe to run from several nodes at once (sqlx takes a
    /// lock on PostgreSQL; SQLite has one writer).
    pub async fn migrate(&self) -> Result<()> {
        let _turn = self.write_turn().await;
        self.dialect.migrator.run(&self.writer).await?;
        Ok(())
    }

    /// Whether the database answers, every migration this build knows is applied, and it can
    /// be written: on SQLite its files open for writing (a read-only file answered reads while
    /// every write failed), on PostgreSQL the session is not read-only (a standby, or
    /// `default_transaction_read_only`). Cheap: load balancers poll it.
    pub async fn readiness(&self) -> Result<Readiness> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = true").fetch_one(&self.reader).await?;
        let known = self.dialect.migrator.iter().count() as i64;
        if applied < known {
            return Ok(Readiness::MigrationsPending { applied, known });
        }
        let writable = match &self.sqlite {
            Some(writer) => writer.writable(),
            None => postgres::writable(&self.writer).await?,
        };
        Ok(if writable { Readiness::Ready } else { Readiness::ReadOnly })
    }

    /// [`Store::readiness`] is [`Readiness::Ready`].
    pub async fn is_ready(&self) -> Result<bool> {
        Ok(self.readiness().await? == Readiness::Ready)
    }

    /// Runs a write job in one transaction, committed or rolled back as its [`End`] says,
    /// and rolled back on an error. The store decides where: on SQLite, as one job on the
    /// writer thread (no thread hand-off per statement, so the write turn is held only for
    /// the statements themselves), unless the job [`Reads::AlsoOutside`] its transaction (the
    /// writer thread cannot wait for the pool); otherwise, and on PostgreSQL, in a sqlx
    /// transaction.
    pub async fn write<J: WriteJob>(&self, job: J) -> std::result::Result<J::Output, J::Error> {
        if let Some(writer) = &self.sqlite
            && job.reads() == Reads::InTransaction
        {
            let recorded = Arc::new(AtomicBool::new(false));
            let flag = recorded.clone();
            let output = writer.job(move |tx| ready(job.run(&mut WriterTx { tx, recorded: &flag }))?).await?;
            if recorded.load(Ordering::Relaxed) {
                self.changes_committed();
            }
            return Ok(output);
        }
        let mut tx = self.begin().await?;
        match job.run(&mut tx).await? {
            End::Commit(output) => {
                tx.commit().await?;
                Ok(output)
            }
            End::Rollback(output) => {
                tx.rollback().await?;
                Ok(output)
            }
        }
    }

    /// Starts a sqlx write transaction. On SQLite this waits for the write turn.
    pub async fn begin(&self) -> Result<Tx> {
        let turn = self.write_turn().await;
        Ok(Tx::new(self.writer.begin().await?, self.dialect, turn, self.outbox.clone()))
    }

    /// A receiver that sees a new value after each commit (of this process) that recorded
    /// changes: the outbox's readers wait on `changed()` beside their poll, so a change is
    /// read as soon as it commits here, and one committed by another node at the next poll.
    pub fn outbox_commits(&self) -> watch::Receiver<u64> {
        self.outbox.subscribe()
    }

    pub(crate) fn changes_committed(&self) {
        self.outbox.send_modify(|commits| *commits = commits.wrapping_add(1));
    }

    /// SQLite: waits for the write turn, which sqlx's writer connection and the writer thread
    /// take in turns; held until the guard drops. PostgreSQL: nothing to wait for.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite {
            Some(writer) => Some(writer.turn().await),
            None => None,
        }
    }

    pub(crate) fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite {
            writer.close().await;
        }
        self.writer.close().await;
        self.reader.close().await;
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// A writer connection for statements outside a [`Tx`], holding the write turn (SQLite)
    /// until it is dropped: the only way to the writer pool besides [`Store::begin`], so no
    /// write can skip the turn.
    pub(crate) async fn writer(&self) -> Result<Writing> {
        let turn = self.write_turn().await;
        Ok(Writing { conn: self.writer.acquire().await?, _turn: turn })
    }
}

/// A writer connection and the write turn (see [`Store::writer`]). Declared in this order so
/// that the connection goes back to the pool before the turn is given back.
pub(crate) struct Writing {
    conn: sqlx::pool::PoolConnection<Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Writing {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for Writing {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// The transaction type of a [`Tx`].
pub(crate) type Transaction = sqlx::Transaction<'static, Any>;

#[cfg(test)]
mod tests {
    /// Architecture Invariant: the SQL common to both databases names neither, so the
    /// dialect differs only in `sqlite/` and `postgres/` (read through [`super::Dialect`]).
    #[test]
    fn the_dialect_lives_in_two_modules() {
        let common = [
            ("catalog.rs", include_str!("catalog.rs")),
            ("changes.rs", include_str!("changes.rs")),
            ("compressed.rs", include_str!("compressed.rs")),
            ("deliveries.rs", include_str!("deliveries.rs")),
            ("loops.rs", include_str!("loops.rs")),
            ("projects.rs", include_str!("projects.rs")),
            ("publish.rs", include_str!("publish.rs")),
            ("rows.rs", include_str!("rows.rs")),
            ("runs.rs", include_str!("runs.rs")),
            ("tenancy.rs", include_str!("tenancy.rs")),
            ("tx.rs", include_str!("tx.rs")),
            ("webhooks.rs", include_str!("webhooks.rs")),
            ("write_tx.rs", include_str!("write_tx.rs")),
        ];
        // Markers of one database: its driver, its functions, its row locks, its index hints,
        // the writer thread's statement cache.
        let markers = ["rusqlite", "pg_", "FOR UPDATE", "INDEXED BY", "prepare_cached", "Backend"];
        for (file, text) in common {
            // The code, not its comments or its tests (which may build one database's errors).
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (number, line) in code.lines().enumerate() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                for marker in markers {
                    assert!(!line.contains(marker), "{file}:{}: `{marker}` belongs in sqlite/ or postgres/: {line}", number + 1);
                }
            }
        }
    }
}
