//! `wharf backup`: a consistent copy of the SQLite database while Wharf serves it, through
//! SQLite's online backup API. The copy is made in one step under one read transaction, so
//! it is the database as of one commit (WAL mode: the writers go on meanwhile), written to a
//! temporary file beside the target and renamed into place, so a target either does not exist
//! or is whole. The copy is checked (`PRAGMA integrity_check`) before the rename.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{Error, Result};

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    pub pages: i64,
    pub bytes: u64,
}

/// Copies the SQLite database at `source` to `target` (which must not exist).
pub fn backup_sqlite(source: &Path, target: &Path) -> Result<BackupReport> {
    if target.exists() {
        return Err(Error::Backup(format!("{} exists: give a new file", target.display())));
    }
    if !source.exists() {
        return Err(Error::Backup(format!("there is no database at {}", source.display())));
    }
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    from.busy_timeout(Duration::from_secs(30))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".to_owned());
    let partial = target.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_file(&partial);
    let copied = (|| -> Result<BackupReport> {
        let mut to = Connection::open(&partial)?;
        {
            let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
            // One step: every page under one read transaction, a snapshot of one commit.
            backup.step(-1)?;
        }
        let verdict: String = to.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        if verdict != "ok" {
            return Err(Error::Backup(format!("the copy does not pass SQLite's integrity check: {verdict}")));
        }
        let pages: i64 = to.query_row("PRAGMA page_count", [], |row| row.get(0))?;
        to.close().map_err(|(_, err)| err)?;
        let bytes = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport { pages, bytes })
    })();
    match copied {
        Ok(report) => {
            std::fs::rename(&partial, target)
                .map_err(|err| Error::Backup(format!("cannot move the copy to {}: {err}", target.display())))?;
            Ok(report)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            Err(err)
        }
    }
}
