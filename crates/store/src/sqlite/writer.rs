//! SQLite's writer thread: the hot write paths (webhook events being accepted, events being
//! published with their deliveries, attempts being recorded) run here as whole transactions,
//! on one connection of their own, with prepared statements kept across transactions.
//!
//! Why not through sqlx: its SQLite driver runs every statement on the connection's worker
//! thread and hands each statement, its arguments and its rows across threads (through the
//! `Any` driver's conversions on the way), so a transaction of a few dozen rows costs dozens
//! of thread hand-offs, and the commit that holds the waiting requests is stretched by all of
//! them. Here a transaction is one hand-off: the job runs start to finish on this thread.
//!
//! SQLite allows one writer at a time. This thread and sqlx's writer connection (which carries
//! every other write) take turns through one fair lock, the *write turn*: a job holds it from
//! before its `BEGIN` to after its `COMMIT`, a sqlx transaction for its whole life. So neither
//! ever waits on SQLite's file lock.
//!
//! Checkpoints (copying the WAL back into the database file, with an fsync of that file) run
//! on a thread of their own, `wharf-sqlite-checkpoint`, and never inside a write transaction.
//! SQLite's default runs them in whichever connection commits past 1,000 WAL pages, as part of
//! its commit: a commit that held the write turn for ~2 ms then held it for 10–25 ms, and every
//! waiting request waited with it. A passive checkpoint on another connection runs beside the
//! writers (SQLite's WAL allows one checkpointer beside one writer and the readers).
//!
//! The WAL stays bounded under a load that never pauses. SQLite starts the WAL over from its
//! beginning only when a write transaction begins while every frame is checkpointed; a
//! checkpoint beside the writers never catches up with them, so the WAL grew by every commit
//! (380 MB in a 10-second burst of 100,000 events) and every frame went to a newly allocated
//! block of the file. So once the WAL passes [`WalLimits::catch_up_after`], the checkpointer
//! takes the write turn for one more passive checkpoint, which copies only what was committed
//! during its unlocked one: the next transaction then starts the WAL over, on blocks already
//! allocated, and `journal_size_limit` trims the file back to [`WalLimits::keep`] then.
//!
//! Durability is kept off the write turn too ([`super::wal_sync`]): this thread commits with
//! `synchronous=NORMAL` (the commit's frames are appended to the WAL, not yet synced) and hands
//! the job's reply to the `wharf-sqlite-wal-sync` thread, which runs one `fdatasync` of the WAL
//! for every commit appended since its last one and only then sends their replies. So a caller
//! still hears of its commit only once it is on disk, as with `synchronous=FULL`, while the next
//! transaction runs during the sync instead of after it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::wal_sync::{Ack, Durability};
use crate::write_tx::End;
use crate::{Error, Result};

/// A job: a whole transaction, given the open transaction to work in; it returns the ack that
/// sends its reply, which [`Durability`] runs once the commit is on disk.
type Job = Box<dyn FnOnce(&mut Option<Connection>) -> Ack + Send>;

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    turn: Arc<Mutex<()>>,
    /// The database file, for the readiness probe ([`Writer::writable`]).
    path: Arc<Path>,
    /// Whether the last probe found the files writable (a change is logged once).
    was_writable: Arc<AtomicBool>,
}

/// Prepared statements kept per connection (SQLite's parser and planner run once per
/// statement text, not once per row).
const STATEMENT_CACHE: usize = 64;

/// The checkpointer runs at most this often while writes go on, so a checkpoint copies many
/// commits' pages at once.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// And at least this often, for the commits that do not pass through the writer thread.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// How large the WAL may grow before the checkpointer makes it start over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalLimits {
    /// Frames (one page each, 4 KiB) past which a checkpoint catches up under the write turn.
    pub catch_up_after: u32,
    /// Bytes of WAL file kept when it starts over (`journal_size_limit`).
    pub keep: u64,
}

impl Default for WalLimits {
    fn default() -> Self {
        // About 16 MiB of frames: the catch-up under the turn copies what ~50 ms of commits
        // wrote, and happens at most a few times a second under the heaviest load.
        Self { catch_up_after: 4096, keep: 32 << 20 }
    }
}

impl Writer {
    /// Opens the database at `path` on a new thread (the file must already exist with its
    /// schema: sqlx opens and migrates it first).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, WalLimits::default())
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn open_with(path: &Path, limits: WalLimits) -> Result<Self> {
        let conn = connect(path)?;
        // SQLite opens a file it may not write read-only, silently: every write would fail.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(Error::Writer(format!("the SQLite database {} is read-only", path.display())));
        }
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "journal_size_limit", i64::try_from(limits.keep).unwrap_or(i64::MAX))?;
        let durability = Durability::start(&conn, path)?;
        let turn = Arc::new(Mutex::new(()));
        let nudge = start_checkpointer(connect(path)?, turn.clone(), limits)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("wharf-sqlite-writer".into())
            .spawn(move || {
                let mut conn = Some(conn);
                let mut nudge = Some(nudge);
                // Ends when every handle is gone (and with it the WAL sync thread, after its
                // last round).
                for job in queue {
                    let ack = job(&mut conn);
                    durability.acknowledge(ack);
                    match (&conn, &nudge) {
                        // Full: the checkpointer has a nudge it has not taken yet.
                        (Some(_), Some(checkpointer)) => drop(checkpointer.try_send(())),
                        // Closed: the checkpointer stops too.
                        _ => nudge = None,
                    }
                }
            })
            .map_err(|err| Error::Writer(format!("cannot start the SQLite writer thread: {err}")))?;
        Ok(Self { jobs, turn, path: path.into(), was_writable: Arc::new(AtomicBool::new(true)) })
    }

    /// Whether the database's files can still be written: the database file and its `-wal`
    /// and `-shm` files may be written by this process (`access(2)`, a few system calls, no
    /// write turn: readiness is polled). A file made read-only under a running Wharf keeps its
    /// open connections writing only until they are opened again; the next start would fail.
    ///
    /// Architecture Invariant: nothing in the server opens the database's files beside
    /// SQLite. Closing any descriptor of a file drops every POSIX lock the process holds on
    /// it, SQLite's included; another process (`wharf backup`) would then find the shared
    /// memory unclaimed and reset it under the server's mapping of it, which dies of SIGBUS.
    /// `access` opens nothing. (`tests/suite/binary.rs`'s backup test caught an `open` here.)
    pub(crate) fn writable(&self) -> bool {
        let unwritable = ["", "-wal", "-shm"].into_iter().find_map(|suffix| {
            let file = format!("{}{suffix}", self.path.display());
            match rustix::fs::access(file.as_str(), rustix::fs::Access::WRITE_OK) {
                Ok(()) => None,
                // SQLite creates the WAL and its index when it needs them.
                Err(rustix::io::Errno::NOENT) if !suffix.is_empty() => None,
                Err(err) => Some((file, std::io::Error::from(err))),
            }
        });
        let writable = unwritable.is_none();
        if self.was_writable.swap(writable, Ordering::Relaxed) != writable {
            match unwritable {
                Some((file, err)) => tracing::error!(file, error = %err, "the SQLite database cannot be written; not ready"),
                None => tracing::info!(path = %self.path.display(), "the SQLite database can be written again"),
            }
        }
        writable
    }

    /// Waits for the write turn (sqlx transactions take it for their whole life).
    pub(crate) async fn turn(&self) -> OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    /// Runs `work` in one `BEGIN IMMEDIATE … COMMIT` on the writer thread; any error rolls
    /// the whole transaction back.
    #[cfg(test)]
    pub(crate) async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.job(move |tx| work(tx).map(End::Commit)).await
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` on the writer thread, ended as it says; any
    /// error rolls the whole transaction back.
    pub(crate) async fn job<T, E, F>(&self, work: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> std::result::Result<End<T>, E> + Send + 'static,
    {
        let turn = self.turn().await;
        let (reply, done) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = match conn.as_mut() {
                None => Err(Error::Writer("the store is closed".into()).into()),
                Some(conn) => run(conn, work),
            };
            // The turn ends with the transaction, not with the caller (a caller that stops
            // waiting must not let a sqlx transaction start beside a transaction still running
            // here) and not with the sync (the next transaction runs while this one is synced).
            drop(turn);
            Box::new(move |synced: std::result::Result<(), String>| {
                let outcome = match synced {
                    Ok(()) => outcome,
                    Err(err) => Err(Error::Writer(err).into()),
                };
                let _ = reply.send(outcome);
            })
        });
        self.jobs.send(job).map_err(|_| Error::Writer("the SQLite writer thread has stopped".into()))?;
        done.await.map_err(|_| Error::Writer("the SQLite writer thread stopped during a transaction".into()))?
    }

    /// Closes the connection (after any transaction in progress); later jobs fail.
    pub(crate) async fn close(&self) {
        let _turn = self.turn().await;
        let (reply, done) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            if let Some(conn) = conn.take()
                && let Err((_, err)) = conn.close()
            {
                tracing::warn!(error = %err, "closing the SQLite writer connection failed");
            }
            Box::new(move |_| {
                let _ = reply.send(());
            })
        });
        if self.jobs.send(job).is_ok() {
            let _ = done.await;
        }
    }
}

/// A connection configured as the sqlx ones: WAL beside the readers, every commit on disk
/// before it returns (the writer's own connection then hands that to [`Durability`]),
/// foreign keys enforced, and no checkpoint inside a commit.
fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Starts the checkpointer on `conn`: it checkpoints when nudged (after the writer thread's
/// jobs), at most every [`CHECKPOINT_EVERY`], and every [`CHECKPOINT_IDLE`] regardless; it
/// stops when the writer thread drops the sender it returns.
fn start_checkpointer(conn: Connection, turn: Arc<Mutex<()>>, limits: WalLimits) -> Result<mpsc::SyncSender<()>> {
    let (nudge, nudged) = mpsc::sync_channel::<()>(1);
    thread::Builder::new()
        .name("wharf-sqlite-checkpoint".into())
        .spawn(move || {
            while !matches!(nudged.recv_timeout(CHECKPOINT_IDLE), Err(mpsc::RecvTimeoutError::Disconnected)) {
                if let Err(err) = checkpoint(&conn, &turn, limits) {
                    tracing::warn!(error = %err, "a WAL checkpoint failed; the next round retries");
                }
                thread::sleep(CHECKPOINT_EVERY);
            }
        })
        .map_err(|err| Error::Writer(format!("cannot start the SQLite checkpoint thread: {err}")))?;
    Ok(nudge)
}

/// One round: a passive checkpoint beside the writers, and, once the WAL is past its limit,
/// another under the write turn so that the next transaction starts the WAL over.
fn checkpoint(conn: &Connection, turn: &Mutex<()>, limits: WalLimits) -> rusqlite::Result<()> {
    let frames = passive_checkpoint(conn)?;
    if frames > i64::from(limits.catch_up_after) {
        // This is the checkpointer's own thread, never an async context, so blocking here is
        // allowed; the turn is fair, so it waits behind the transactions queued before it.
        let _turn = turn.blocking_lock();
        passive_checkpoint(conn)?;
    }
    Ok(())
}

/// PASSIVE: copies what no reader still needs, waits for no one; the rest goes in a later
/// round. Returns the frames in the WAL.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1))
}

fn run<T, E: From<Error>>(
    conn: &mut Connection,
    work: impl FnOnce(&rusqlite::Transaction<'_>) -> std::result::Result<End<T>, E>,
) -> std::result::Result<T, E> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(Error::from)?;
    // Dropping `tx` on an error rolls it back.
    match work(&tx)? {
        End::Commit(value) => {
            tx.commit().map_err(Error::from)?;
            Ok(value)
        }
        End::Rollback(value) => {
            tx.rollback().map_err(Error::from)?;
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{WalLimits, Writer};
    use crate::Error;

    /// Writes `transactions` transactions of 16 KiB from 8 tasks at once (so the writer never
    /// pauses for a checkpoint to catch up) and returns the WAL file's largest size seen.
    async fn largest_wal_under_load(limits: WalLimits, transactions: usize) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wharf.db");
        let setup = rusqlite::Connection::open(&db).unwrap();
        setup.pragma_update(None, "journal_mode", "WAL").unwrap();
        setup.execute("CREATE TABLE t (x BLOB)", []).unwrap();
        drop(setup);
        let writer = Writer::open_with(&db, limits).unwrap();
        let wal = dir.path().join("wharf.db-wal");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (writer, wal) = (writer.clone(), wal.clone());
                tokio::spawn(async move {
                    let mut largest = 0;
                    for _ in 0..transactions / 8 {
                        writer
                            .transaction(|tx| {
                                tx.execute("INSERT INTO t VALUES (randomblob(16384))", [])?;
                                Ok::<_, Error>(())
                            })
                            .await
                            .unwrap();
                        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                    }
                    largest
                })
            })
            .collect();
        let mut largest = 0;
        for task in tasks {
            largest = largest.max(task.await.unwrap());
        }
        writer.close().await;
        largest
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_a_load_that_never_pauses() {
        // 4,800 transactions write more than 78 MB of frames; a WAL that never started over
        // would hold them all. One that starts over holds about what the writers commit
        // between two rounds of the checkpointer (50 ms apart), which depends on the
        // machine's speed (9.9 MB of 27 MB was seen at a fast hour): so the bound is a
        // third of what is written, not a size.
        let (transactions, blob) = (4_800u64, 16_384u64);
        let limits = WalLimits { catch_up_after: 256, keep: 1 << 20 };
        let largest = largest_wal_under_load(limits, transactions as usize).await;
        let written = transactions * blob;
        assert!(largest < written / 3, "the WAL grew to {largest} bytes of the {written} written");
    }

    #[tokio::test]
    async fn a_commit_is_answered_by_the_wal_sync_that_confirms_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wharf.db");
        let setup = rusqlite::Connection::open(&db).unwrap();
        setup.pragma_update(None, "journal_mode", "WAL").unwrap();
        setup.execute("CREATE TABLE t (x INTEGER)", []).unwrap();
        let writer = Writer::open(&db).unwrap();
        let insert = || {
            writer.transaction(|tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                Ok::<_, Error>(())
            })
        };
        insert().await.unwrap();
        // The WAL's name now leads to something that cannot be synced: SQLite writes on through
        // its open descriptor, the sync thread looks the name up again and fails, and the
        // commit it was to confirm is answered with that failure.
        std::fs::rename(dir.path().join("wharf.db-wal"), dir.path().join("moved")).unwrap();
        std::fs::create_dir(dir.path().join("wharf.db-wal")).unwrap();
        let err = insert().await.unwrap_err();
        assert!(err.to_string().contains("syncing the SQLite WAL failed"), "{err}");
    }
}
