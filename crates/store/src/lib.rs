//! Wharf's persistence: one [`Store`] over SQLite or PostgreSQL.
//!
//! Both databases are reached through sqlx's `Any` driver with the same SQL (numbered `$N`
//! parameters, `ON CONFLICT`, `RETURNING` and recursive CTEs are common to both), so the two
//! backends cannot drift apart; where the dialects must differ (row locks, the outbox's
//! visibility horizon) the code branches on [`Backend`] in one place. Schemas are two
//! migration folders with the same tables.
//!
//! SQLite runs with WAL and `synchronous=FULL`, a pool of readers, and two writers that take
//! turns (writes are serialized in-process, never on the file lock): sqlx's writer connection
//! for most writes, and a thread of Wharf's own for the hot paths ([`writer`]), whose commits
//! are synced off the write turn before they are answered ([`wal_sync`]).

mod catalog;
mod changes;
mod compressed;
mod deliveries;
mod loops;
mod projects;
mod publish;
mod rows;
mod tenancy;
pub mod testing;
mod wal_sync;
mod webhooks;
mod write_tx;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, AssertSqlSafe, ConnectOptions, Executor};

pub use catalog::{Edge, Tx};
pub use changes::{AuditFilter, OutboxBatch, ParkedChange, UnreadableChange};
pub use compressed::CompressedJson;
pub use deliveries::{ActiveSubscription, Lease, Publication, QueueStats};
pub use publish::{PublishBatch, PublishedBatch, Routing};
pub use webhooks::{EventFilter, FinishedEvent, NewEvent, PendingEvent, Stored, StoredWebhook, WebhookEvent};
pub use write_tx::{End, WriteTx, WriterTx, ready};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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
}

impl Error {
    /// Whether the failure is a unique-constraint violation (a concurrent create won).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            Self::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => {
                matches!(err.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
            }
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (SQLite) or for everything (PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(10) }
    }
}

/// The database behind Wharf. Cheap to clone: the pools are shared.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// SQLite: the one connection that writes. PostgreSQL: the same pool as `reader`.
    writer: AnyPool,
    reader: AnyPool,
    /// SQLite: the writer thread of the hot paths, which also hands out the write turn.
    sqlite: Option<writer::Writer>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub async fn open_sqlite(path: &Path, options: &StoreOptions) -> Result<Self> {
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
        let sqlite = Some(writer::Writer::open(path)?);
        Ok(Self { backend: Backend::Sqlite, writer, reader, sqlite })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`).
    pub async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let connect = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { backend: Backend::Postgres, writer: pool.clone(), reader: pool, sqlite: None })
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

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration. Safe to run from several nodes at once (sqlx takes a
    /// lock on PostgreSQL; SQLite has one writer).
    pub async fn migrate(&self) -> Result<()> {
        let _turn = self.write_turn().await;
        self.migrator().run(&self.writer).await?;
        Ok(())
    }

    /// Whether the database answers and every migration this build knows is applied.
    pub async fn is_ready(&self) -> Result<bool> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = true").fetch_one(&self.reader).await?;
        let known = self.migrator().iter().count() as i64;
        Ok(applied >= known)
    }

    /// Starts a write transaction. On SQLite this waits for the single writer connection.
    pub async fn begin(&self) -> Result<Tx> {
        let turn = self.write_turn().await;
        Ok(Tx::new(self.writer.begin().await?, self.backend, turn))
    }

    /// SQLite: runs `work` as one transaction on the writer thread ([`WriterTx`]: no thread
    /// hand-off per statement, so the write turn is held only for the statements themselves),
    /// committed or rolled back as its [`End`] says, and rolled back on an error. `None` on
    /// PostgreSQL, which has no writer thread: use [`Store::begin`] there.
    pub async fn on_writer_thread<T, E, F>(&self, work: F) -> Option<std::result::Result<T, E>>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut WriterTx<'_>) -> std::result::Result<End<T>, E> + Send + 'static,
    {
        let writer = self.sqlite.as_ref()?;
        Some(writer.job(move |tx| work(&mut WriterTx { tx })).await)
    }

    /// SQLite: waits for the write turn, which sqlx's writer connection and the writer thread
    /// take in turns; held until the guard drops. PostgreSQL: nothing to wait for.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite {
            Some(writer) => Some(writer.turn().await),
            None => None,
        }
    }

    /// SQLite's writer thread (`None` on PostgreSQL).
    pub(crate) fn sqlite_writer(&self) -> Option<&writer::Writer> {
        self.sqlite.as_ref()
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
