//! The schema's migrations, compiled into the binary: one directory of SQL files per database
//! (`migrations/postgres`, `migrations/sqlite`), applied in version order by sqlx's `Migrator`.
//!
//! `sqlx::migrate!` reads the same directories at compile time, but it is a procedural macro
//! built on sqlx's drivers: with it every build compiled sqlx, both drivers, SQLite's C sources
//! and tokio a second time, for the compiler's host (about 30 s of a clean build's CPU, twice
//! in CI: for clippy and for the tests). Here each file is named once, in `migrations!` (a
//! test checks the list against both directories), and becomes a migration exactly as sqlx's own
//! resolver makes it (a test checks that too), so databases migrated before keep their
//! checksums.

use std::borrow::Cow;

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The two databases' migrations, as (file name, SQL): every file is in both directories.
macro_rules! migrations {
    ($($file:literal),* $(,)?) => {
        /// PostgreSQL's migrations, as (file name, SQL).
        pub(crate) static POSTGRES: &[(&str, &str)] =
            &[$(($file, include_str!(concat!("../migrations/postgres/", $file)))),*];
        /// SQLite's migrations, as (file name, SQL).
        pub(crate) static SQLITE: &[(&str, &str)] =
            &[$(($file, include_str!(concat!("../migrations/sqlite/", $file)))),*];
    };
}

// Each named `<version>_<description>.sql`.
migrations!(
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
);

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

    /// Every `.sql` file of each directory is embedded, and nothing else is.
    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, files) in [("postgres", POSTGRES), ("sqlite", SQLITE)] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let mut found: Vec<String> = std::fs::read_dir(&path)
                .expect("the migrations directory")
                .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            found.sort();
            let embedded: Vec<&str> = files.iter().map(|(file, _)| *file).collect();
            assert_eq!(found, embedded, "migrations/{dir} and the files named in `migrations!` differ");
        }
    }

    /// The migrations are those sqlx reads from the directories (`sqlx::migrate!` reads them
    /// the same way): same versions, descriptions, types, SQL and checksums, so a database
    /// migrated by an earlier build is recognised as up to date.
    #[test]
    fn the_migrations_are_those_sqlx_reads_from_the_directories() {
        for (dir, files) in [("postgres", POSTGRES), ("sqlite", SQLITE)] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let read: Vec<Migration> = sqlx::migrate::resolve_blocking(&path)
                .expect("sqlx reads the directory")
                .into_iter()
                .map(|(migration, _)| migration)
                .collect();
            let ours = migrator(files);
            assert_eq!(ours.migrations.len(), read.len(), "{dir}");
            for (ours, read) in ours.migrations.iter().zip(&read) {
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
