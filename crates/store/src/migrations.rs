//! The schema's migrations, compiled into the binary: one directory of SQL files per database
//! (`migrations/postgres`, `migrations/sqlite`), applied in version order by sqlx's `Migrator`.
//!
//! `sqlx::migrate!` reads the same directories at compile time, but it is a procedural macro
//! built on sqlx's drivers: with it every build compiled sqlx, both drivers, SQLite's C sources
//! and tokio a second time, for the compiler's host (about 30 s of a clean build's CPU, twice
//! in CI: for clippy and for the tests). Here each file is named once, in `embedded!`, which each dialect
//! expands for its own directory, and becomes a migration exactly as sqlx's own resolver makes
//! it (a test checks each dialect's against what sqlx reads from the directory), so databases
//! migrated before keep their checksums.

use std::borrow::Cow;

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The migration files of the dialect whose directory is `migrations/$dir`, as (file name,
/// SQL): `embedded!("sqlite")`. Every file is in both directories, so they are named once, here.
macro_rules! embedded {
    ($dir:literal) => {
        $crate::migrations::files!(
            $dir:
            "0001_foundation.sql",
            "0002_webhooks.sql",
            "0003_deliveries.sql",
            "0004_compressed_requests.sql",
            "0005_parked_changes.sql",
            "0006_client_token_generation.sql",
            "0007_actions.sql",
            "0008_secrets.sql",
            "0009_runs.sql",
            "0010_agent_claims.sql",
            "0011_outbox_tx_order.sql",
            "0012_workflows.sql",
            "0013_deliveries_by_event.sql",
        )
    };
}
pub(crate) use embedded;

/// `files!(dir: "a.sql", …)`: each file of `migrations/dir` with its text.
macro_rules! files {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $file)))),*]
    };
}
pub(crate) use files;

/// The migrator of `files`, in version order.
pub(crate) fn migrator(files: &'static [(&'static str, &'static str)]) -> Migrator {
    let mut migrations: Vec<Migration> = files.iter().map(|(file, sql)| migration(file, sql)).collect();
    migrations.sort_by_key(|m| m.version);
    // What `sqlx::migrate!` expands to: the migrations, with every other setting the default.
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// The migration in `file` (`0003_deliveries.sql`: version 3, "deliveries"), made as sqlx's
/// resolver makes it: the type from the suffix, underscores in the description read as spaces,
/// and no transaction when the SQL starts with `-- no-transaction`.
fn migration(file: &str, sql: &'static str) -> Migration {
    let (version, name) = file.split_once('_').unwrap_or(("", file));
    // The names are constants of this file, checked against the directories by a test.
    let version = version.parse().unwrap_or_else(|_| panic!("migration `{file}` has no version prefix"));
    let kind = MigrationType::from_filename(name);
    let description = name.trim_end_matches(kind.suffix()).replace('_', " ");
    Migration::new(version, Cow::Owned(description), kind, sql.into_sql_str(), sql.starts_with("-- no-transaction"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Each dialect's migrations are those sqlx reads from its directory, as `sqlx::migrate!`
    /// did: every `.sql` file and no other, each with the same version, description, type, SQL,
    /// checksum and transaction flag. So a database migrated by an earlier build is recognised
    /// as up to date, and a file added to a directory but not to `embedded!` fails here.
    #[test]
    fn the_migrations_are_those_sqlx_reads_from_the_directories() {
        for (dir, dialect) in [("postgres", &crate::postgres::DIALECT), ("sqlite", &crate::sqlite::DIALECT)] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let read: Vec<Migration> = sqlx::migrate::resolve_blocking(&path)
                .expect("sqlx reads the directory")
                .into_iter()
                .map(|(migration, _)| migration)
                .collect();
            let ours: Vec<&Migration> = dialect.migrator.iter().collect();
            assert_eq!(ours.len(), read.len(), "{dir}: the files embedded and those in the directory differ");
            for (ours, read) in ours.iter().zip(&read) {
                assert_eq!(ours.version, read.version, "{dir}");
                assert_eq!(ours.description, read.description, "{dir} {}", read.version);
                assert_eq!(ours.migration_type, read.migration_type, "{dir} {}", read.version);
                assert_eq!(ours.sql.as_str(), read.sql.as_str(), "{dir} {}", read.version);
                assert_eq!(ours.checksum, read.checksum, "{dir} {}", read.version);
                assert_eq!(ours.no_tx, read.no_tx, "{dir} {}", read.version);
            }
        }
    }
}
