//! A migrated store for a test: SQLite in a temporary directory, or a PostgreSQL database
//! made for the test (when `WHARF_TEST_DATABASE_URL` is set) and dropped after it.

#![allow(dead_code)] // each test binary uses a different part

use wharf_core::tenancy::{ApiClient, Organization};
use wharf_core::time::Timestamp;
use wharf_store::{Store, StoreOptions};

/// Creates the organization `id` (and its first API client), as every scenario needs one.
pub async fn organization(store: &Store, id: &str, at: Timestamp) {
    let org = Organization { id: id.into(), name: "Org".into(), created_at: at, updated_at: at, settings: Default::default() };
    let client = ApiClient {
        id: format!("{id}-client"),
        org_id: id.into(),
        name: "admin".into(),
        secret_hash: "h".into(),
        secret_sealed: "s".into(),
        token_generation: 0,
        created_at: at,
        updated_at: at,
    };
    store.create_organization(&org, &client).await.unwrap();
}

async fn migrate(store: &Store, version: Option<i64>) {
    match version {
        Some(version) => wharf_store::testing::migrate_to(store, version).await.unwrap(),
        None => store.migrate().await.unwrap(),
    }
}

pub struct TestStore {
    pub store: Store,
    /// The database's URL, for tests that write rows the way an older Wharf did.
    pub url: String,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestStore {
    pub async fn sqlite() -> Self {
        Self::sqlite_at(None).await
    }

    /// A SQLite store migrated up to `version` (all migrations when `None`).
    pub async fn sqlite_at(version: Option<i64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.db");
        let store = Store::open_sqlite(&path, &StoreOptions::default()).await.unwrap();
        migrate(&store, version).await;
        Self { store, url: format!("sqlite://{}", path.display()), _dir: dir, postgres: None }
    }

    pub async fn postgres() -> Option<Self> {
        Self::postgres_at(None).await
    }

    /// A PostgreSQL store migrated up to `version` (all migrations when `None`).
    pub async fn postgres_at(version: Option<i64>) -> Option<Self> {
        let admin = std::env::var("WHARF_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
        let url = wharf_store::testing::create_postgres_database(&admin)
            .await
            .unwrap_or_else(|e| panic!("WHARF_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        migrate(&store, version).await;
        Some(Self { store, url: url.clone(), _dir: tempfile::tempdir().unwrap(), postgres: Some((admin, url)) })
    }

    pub async fn drop_database(self) {
        self.store.close().await;
        if let Some((admin, url)) = &self.postgres {
            wharf_store::testing::drop_postgres_database(admin, url).await.unwrap();
        }
    }
}

/// `on_both_stores!(scenario)`: a module `scenario` with the tests `sqlite` and `postgres`,
/// each running `async fn scenario(&Store)` on a fresh store of its kind (PostgreSQL when
/// `WHARF_TEST_DATABASE_URL` is set). Multi-threaded, so that tasks a scenario spawns run
/// beside it. `on_both_stores!(test: scenario)` gives the scenario the whole `&TestStore`.
#[macro_export]
macro_rules! on_both_stores {
    ($scenario:ident) => {
        $crate::on_both_stores!(@tests $scenario, |test| &test.store);
    };
    (test: $scenario:ident) => {
        $crate::on_both_stores!(@tests $scenario, |test| &test);
    };
    (@tests $scenario:ident, |$test:ident| $arg:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $test = super::common::TestStore::sqlite().await;
                super::$scenario($arg).await;
                $test.drop_database().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($test) = super::common::TestStore::postgres().await else { return eprintln!("PostgreSQL suite off") };
                super::$scenario($arg).await;
                $test.drop_database().await;
            }
        }
    };
}
