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

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::write_tx::End;
use crate::{Error, Result};

/// A job: a whole transaction, given the open transaction to work in.
type Job = Box<dyn FnOnce(&mut Option<Connection>) + Send>;

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    turn: Arc<Mutex<()>>,
}

/// Prepared statements kept per connection (SQLite's parser and planner run once per
/// statement text, not once per row).
const STATEMENT_CACHE: usize = 64;

impl Writer {
    /// Opens the database at `path` on a new thread (the file must already exist with its
    /// schema: sqlx opens and migrates it first).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        // As the sqlx connections: WAL beside the readers, every commit on disk before it
        // returns, foreign keys enforced.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("wharf-sqlite-writer".into())
            .spawn(move || {
                let mut conn = Some(conn);
                // Ends when every handle is gone.
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|err| Error::Writer(format!("cannot start the SQLite writer thread: {err}")))?;
        Ok(Self { jobs, turn: Arc::new(Mutex::new(())) })
    }

    /// Waits for the write turn (sqlx transactions take it for their whole life).
    pub(crate) async fn turn(&self) -> OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    /// Runs `work` in one `BEGIN IMMEDIATE … COMMIT` on the writer thread; any error rolls
    /// the whole transaction back.
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
            // The turn ends with the job, not with the caller: a caller that stops waiting
            // must not let a sqlx transaction start beside a transaction still running here.
            drop(turn);
            let _ = reply.send(outcome);
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
            let _ = reply.send(());
        });
        if self.jobs.send(job).is_ok() {
            let _ = done.await;
        }
    }
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

/// `sql` with PostgreSQL-style `$N` parameters turned into SQLite's `?N`, so that a statement
/// shared with the sqlx path binds by number here too (SQLite numbers `$N` by first
/// appearance, `?N` by N).
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

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_parameters() {
        assert_eq!(numbered("VALUES ($1, $2, '$x', $10) WHERE a < $2"), "VALUES (?1, ?2, '$x', ?10) WHERE a < ?2");
    }
}
