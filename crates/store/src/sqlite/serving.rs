//! The lock file that makes a process the one server of a SQLite database
//! ([`crate::ServingLock`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Takes an exclusive lock on `<database>.server.lock` (created, mode 0600), held until the file is
/// dropped: by the kernel when the process ends, however it ends. `Ok(None)` where the file
/// system cannot lock files (logged).
pub(crate) fn lock(database: &Path) -> Result<Option<File>> {
    let path = PathBuf::from(format!("{}.server.lock", database.display()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|err| Error::Writer(format!("cannot open {}: {err}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(Error::InUse(path.display().to_string())),
        Err(TryLockError::Error(err)) => {
            tracing::warn!(path = %path.display(), error = %err,
                "cannot lock the file that marks this SQLite database's server: a second server would not be \
                 refused, and work a stopped server left leased waits for its lease to end");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("wharf.db");
        let held = lock(&database).unwrap().expect("a local file system locks files");
        match lock(&database) {
            Err(Error::InUse(path)) => assert!(path.ends_with("wharf.db.server.lock"), "{path}"),
            other => panic!("a second lock was not refused: {other:?}"),
        }
        drop(held);
        assert!(lock(&database).unwrap().is_some(), "free once the holder let go");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("wharf.db.server.lock")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
