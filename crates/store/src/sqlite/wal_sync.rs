//! When the writer thread's commits are on disk, and who hears of it then.
//!
//! With `synchronous=FULL` SQLite syncs the WAL inside every commit, so the write turn is held
//! for the sync: the next transaction (the next batch of accepted webhooks, a mapper batch)
//! waits for the disk with everyone else. Here the writer connection commits with
//! `synchronous=NORMAL`, which appends the commit's frames to the WAL without syncing it, and
//! gives each job's reply (an [`Ack`]) to the `wharf-sqlite-wal-sync` thread. That thread takes
//! every ack waiting, runs one `fdatasync` of the WAL, and only then sends them. So:
//!
//! - **A reply still means durable.** An ack is queued after its `COMMIT` returned, and the sync
//!   that releases it starts after it was taken from the queue, so the sync covers the commit's
//!   frames. SQLite recovers a WAL as a prefix of its commits (each frame's checksum chains to
//!   the one before), so a synced commit survives with every commit before it.
//! - **Consistency is SQLite's own.** `NORMAL` in WAL mode never corrupts the database; it only
//!   leaves the newest commits to the OS. SQLite still syncs the WAL before each checkpoint, the
//!   database file after it, and a restarted WAL's header before its first frame.
//! - **Readers may see a commit before it is durable** (a few hundred microseconds early), as
//!   they would not under `FULL`. Nothing leaves Wharf on the strength of such a read alone: a
//!   webhook's 202, a delivery's send and a run's report each follow a write of their own (the
//!   event, the claim, the run), whose reply waits for a sync that covers every earlier commit.
//! - **A failed sync is final.** After a failed `fdatasync` Linux may have dropped the pages it
//!   could not write, so the WAL may have a hole that no later sync mends, and a commit after the
//!   hole would be lost with it in a crash. So the failure is answered to every waiting caller
//!   and to every later one, until Wharf restarts (PostgreSQL stops for the same reason).
//!
//! If the database is not in WAL mode (a file system without shared memory), the connection
//! keeps `synchronous=FULL` and replies go out as the commit returns.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;

use crate::{Error, Result};

/// Sends a writer job's reply: `Ok` once its commit is on disk, or why that is not known.
pub(crate) type Ack = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// How the writer connection's commits become durable.
pub(crate) enum Durability {
    /// Each commit syncs itself (`synchronous=FULL`).
    AtCommit,
    /// Commits are synced by the WAL sync thread, which sends their acks.
    WalSync(mpsc::Sender<Ack>),
}

impl Durability {
    /// Sets up `conn` (the writer's connection, to the database at `db`): `NORMAL` and a WAL
    /// sync thread in WAL mode, `FULL` (as [`super::writer`] opened it) otherwise.
    pub(crate) fn start(conn: &Connection, db: &Path) -> Result<Self> {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite is not in WAL mode; every commit syncs itself");
            return Ok(Self::AtCommit);
        }
        let mut wal = WalFile::of(db);
        let (acks, queue) = mpsc::channel::<Ack>();
        thread::Builder::new()
            .name("wharf-sqlite-wal-sync".into())
            .spawn(move || sync_rounds(queue, || wal.sync()))
            .map_err(|err| Error::Writer(format!("cannot start the SQLite WAL sync thread: {err}")))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Self::WalSync(acks))
    }

    /// Sends `ack` once everything committed so far is on disk.
    pub(crate) fn acknowledge(&self, ack: Ack) {
        match self {
            Self::AtCommit => ack(Ok(())),
            Self::WalSync(acks) => {
                if let Err(mpsc::SendError(ack)) = acks.send(ack) {
                    ack(Err("the SQLite WAL sync thread has stopped".into()));
                }
            }
        }
    }
}

/// The sync thread: each round takes every ack queued, syncs once, and sends them. Ends when
/// the writer thread has gone and the last round is sent.
fn sync_rounds(queue: mpsc::Receiver<Ack>, mut sync: impl FnMut() -> io::Result<()>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = queue.recv() {
        let round: Vec<Ack> = std::iter::once(first).chain(queue.try_iter()).collect();
        let synced = match &failed {
            Some(reason) => Err(reason.clone()),
            None => sync().map_err(|err| {
                tracing::error!(error = %err, "syncing SQLite's WAL failed; no later commit will be acknowledged until Wharf restarts");
                let reason = format!("the commit could not be made durable: syncing the SQLite WAL failed ({err})");
                failed = Some(reason.clone());
                reason
            }),
        };
        for ack in round {
            ack(synced.clone());
        }
    }
}

/// The WAL file, opened (and reopened, should SQLite ever replace it) for `fdatasync`.
struct WalFile {
    path: PathBuf,
    dir: PathBuf,
    /// The open file and its inode number.
    open: Option<(File, u64)>,
}

impl WalFile {
    fn of(db: &Path) -> Self {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let dir = match db.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Self { path: PathBuf::from(path), dir, open: None }
    }

    /// Puts everything written to the WAL so far on disk.
    fn sync(&mut self) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let inode = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.ino(),
            // No WAL, nothing to sync: SQLite deletes it only after copying all of it into the
            // database file and syncing that.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        if self.open.as_ref().is_none_or(|(_, open)| *open != inode) {
            let file = File::options().write(true).open(&self.path)?;
            let inode = file.metadata()?.ino();
            // A new file's name must be on disk too (SQLite syncs the directory at a new
            // journal's first sync, which its own connection no longer makes).
            File::open(&self.dir)?.sync_all()?;
            self.open = Some((file, inode));
        }
        match &self.open {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::{Ack, WalFile, sync_rounds};

    /// A sync thread whose syncs the test completes one by one: `started` hears of each sync
    /// as it begins, and `finish` ends it with the result sent.
    struct Harness {
        acks: mpsc::Sender<Ack>,
        started: mpsc::Receiver<()>,
        finish: mpsc::SyncSender<std::io::Result<()>>,
        acked: mpsc::Receiver<(&'static str, Result<(), String>)>,
        report: mpsc::Sender<(&'static str, Result<(), String>)>,
    }

    impl Harness {
        fn start() -> Self {
            let (acks, queue) = mpsc::channel::<Ack>();
            let (started_tx, started) = mpsc::channel();
            let (finish, finished) = mpsc::sync_channel::<std::io::Result<()>>(0);
            thread::spawn(move || {
                sync_rounds(queue, || {
                    started_tx.send(()).unwrap();
                    finished.recv().unwrap()
                })
            });
            let (report, acked) = mpsc::channel();
            Self { acks, started, finish, acked, report }
        }

        fn commit(&self, name: &'static str) {
            let report = self.report.clone();
            self.acks.send(Box::new(move |synced| report.send((name, synced)).unwrap())).unwrap();
        }

        /// Waits until the sync thread begins a sync.
        fn sync_begins(&self) {
            self.started.recv_timeout(Duration::from_secs(5)).expect("a sync to begin");
        }

        /// Ends the sync in progress with `result`.
        fn sync_ends(&self, result: std::io::Result<()>) {
            self.finish.send(result).unwrap();
        }

        fn no_sync_begins(&self) {
            assert!(self.started.recv_timeout(Duration::from_millis(50)).is_err(), "a sync that nothing asked for");
        }

        fn nothing_acked(&self) {
            assert!(self.acked.recv_timeout(Duration::from_millis(50)).is_err(), "an ack went out before its sync");
        }

        fn acked(&self) -> (&'static str, Result<(), String>) {
            self.acked.recv_timeout(Duration::from_secs(5)).expect("an ack")
        }
    }

    #[test]
    fn a_commit_is_acknowledged_only_after_a_sync_that_began_after_it() {
        let h = Harness::start();
        h.commit("first");
        h.sync_begins();
        // Committed while the first sync runs: that sync may not cover it.
        h.commit("second");
        h.nothing_acked();
        h.sync_ends(Ok(()));
        assert_eq!(h.acked(), ("first", Ok(())));
        h.sync_begins();
        h.nothing_acked();
        h.sync_ends(Ok(()));
        assert_eq!(h.acked(), ("second", Ok(())));
    }

    #[test]
    fn one_sync_acknowledges_every_commit_waiting_for_it() {
        let h = Harness::start();
        h.commit("a");
        h.sync_begins();
        h.commit("b");
        h.commit("c");
        h.sync_ends(Ok(()));
        assert_eq!(h.acked().0, "a");
        h.sync_begins();
        h.sync_ends(Ok(()));
        assert_eq!([h.acked().0, h.acked().0], ["b", "c"]);
        h.no_sync_begins();
    }

    #[test]
    fn a_failed_sync_fails_its_commits_and_every_later_one() {
        let h = Harness::start();
        h.commit("lost");
        h.sync_begins();
        h.sync_ends(Err(std::io::Error::other("EIO")));
        let (_, synced) = h.acked();
        assert!(synced.unwrap_err().contains("syncing the SQLite WAL failed (EIO)"));
        // Later commits are refused without another sync (it could succeed over a hole).
        h.commit("after");
        let (name, synced) = h.acked();
        assert_eq!(name, "after");
        assert!(synced.unwrap_err().contains("EIO"));
        h.no_sync_begins();
    }

    #[test]
    fn the_wal_file_is_reopened_when_sqlite_replaces_it() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wharf.db");
        let mut wal = WalFile::of(&db);
        // No WAL yet: nothing to sync.
        wal.sync().unwrap();
        assert!(wal.open.is_none());
        std::fs::write(dir.path().join("wharf.db-wal"), b"frames").unwrap();
        wal.sync().unwrap();
        let first = wal.open.as_ref().unwrap().1;
        // `wal` keeps the old file open, so its inode number cannot be reused here.
        std::fs::remove_file(dir.path().join("wharf.db-wal")).unwrap();
        std::fs::write(dir.path().join("wharf.db-wal"), b"new frames").unwrap();
        wal.sync().unwrap();
        let second = wal.open.as_ref().unwrap().1;
        assert_ne!(first, second);
        assert_eq!(second, std::fs::metadata(dir.path().join("wharf.db-wal")).unwrap().ino());
    }
}
