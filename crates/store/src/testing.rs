//! Throw-away PostgreSQL databases for tests: each test creates its own, uniquely named,
//! and drops it afterwards.

use std::str::FromStr;

use sqlx::AnyConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::Result;

/// Creates a database named `wharf_test_<random>` on the server of `admin_url` and returns
/// the URL of the new database.
pub async fn create_postgres_database(admin_url: &str) -> Result<String> {
    let name = format!("wharf_test_{}", wharf_ids::random_base62(12).to_lowercase());
    let mut conn = connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut conn).await?;
    conn.close().await?;
    let options = PgConnectOptions::from_str(admin_url)?.database(&name);
    Ok(options.to_url_lossy().to_string())
}

/// Drops the database at `url` (disconnecting whoever still uses it).
pub async fn drop_postgres_database(admin_url: &str, url: &str) -> Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let Some(name) = options.get_database().map(str::to_owned) else { return Ok(()) };
    let mut conn = connect(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Whether each connection that names itself `application` (the URL's `application_name`)
/// uses TLS, as the server at `admin_url` sees it (`pg_stat_ssl`).
pub async fn tls_connections(admin_url: &str, application: &str) -> Result<Vec<bool>> {
    let mut conn = connect(admin_url).await?;
    let found =
        sqlx::query_scalar("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1")
            .bind(application)
            .fetch_all(&mut conn)
            .await?;
    conn.close().await?;
    Ok(found)
}

/// How many connections the database at `url` has open now (`pg_stat_activity`).
pub async fn connections_to(admin_url: &str, url: &str) -> Result<i64> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options.get_database().unwrap_or_default().to_owned();
    let mut conn = connect(admin_url).await?;
    let open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1").bind(name).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(open)
}

/// Ends every connection named `application` (`pg_terminate_backend`), as a crash of its
/// backends or a network cut would, transactions in progress included; how many.
pub async fn terminate_connections(admin_url: &str, application: &str) -> Result<i64> {
    let mut conn = connect(admin_url).await?;
    let ended: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) AS ended",
    )
    .bind(application)
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(ended)
}

/// Holds a transaction open on the server of `admin_url` (its own database, not a test's) for
/// `hold`, with a transaction id taken, as another application sharing the PostgreSQL
/// cluster may: the snapshot horizon is the cluster's, so it holds back every database's
/// outbox readers until it ends.
pub async fn hold_transaction(admin_url: &str, hold: std::time::Duration) -> Result<()> {
    let mut conn = connect(admin_url).await?;
    sqlx::query("BEGIN").execute(&mut conn).await?;
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut conn).await?;
    tokio::time::sleep(hold).await;
    sqlx::query("COMMIT").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// A setting of the store's connections (`current_setting`), as Wharf's sessions have it.
pub async fn session_setting(store: &crate::Store, name: &str) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT current_setting($1)").bind(name).fetch_one(store.reader()).await?)
}

async fn connect(url: &str) -> Result<PgConnection> {
    Ok(PgConnectOptions::from_str(url)?.disable_statement_logging().connect().await?)
}

/// Damages the stored request of webhook event `event_id`, as a fault of the disk would: a
/// compressed block that claims more than LZ4 can expand it to. `database` is a PostgreSQL
/// URL or the path of a SQLite file.
pub async fn damage_stored_request(database: &str, event_id: &str) -> Result<()> {
    sqlx::any::install_default_drivers();
    let url = if database.starts_with("postgres") { database.to_owned() } else { format!("sqlite://{database}") };
    let mut conn = AnyConnection::connect(&url).await?;
    let damaged: Vec<u8> = vec![crate::compressed::LZ4, 0xff, 0xff, 0xff, 0x7f, 0];
    sqlx::query("UPDATE webhook_events SET request_compressed = $1 WHERE id = $2")
        .bind(damaged)
        .bind(event_id)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Appends to the outbox a change of organization `org_id` that cannot be read back (its
/// stored diff is cut off mid-document), as a fault of the disk or a value stored by a
/// version that did not check it would; returns the change's id. `database` as for
/// [`damage_stored_request`], or a `sqlite:` URL.
pub async fn insert_unreadable_change(database: &str, org_id: &str, blueprint: &str) -> Result<String> {
    sqlx::any::install_default_drivers();
    let url = match database {
        url if url.starts_with("postgres") || url.starts_with("sqlite:") => url.to_owned(),
        path => format!("sqlite://{path}"),
    };
    let mut conn = AnyConnection::connect(&url).await?;
    let id = format!("chg_unreadable_{}", wharf_ids::random_base62(12));
    sqlx::query(
        "INSERT INTO changes (id, org_id, resource_type, action, blueprint, entity, origin, actor, diff_after, created_at) \
         VALUES ($1, $2, 'entity', 'CREATE', $3, 'broken', 'API', 'test', $4, $5)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(blueprint)
    .bind(r#"{"identifier": "broken", "properties": {"tier": [[["#)
    .bind(1_700_000_000_000_i64)
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(id)
}

/// Applies the migrations up to `version` only: the database as a Wharf of that version left
/// it, for tests of what a later migration does to its rows.
pub async fn migrate_to(store: &crate::Store, version: i64) -> Result<()> {
    let _turn = store.write_turn().await;
    store.dialect.migrator.run_to(version, &store.writer).await?;
    Ok(())
}

/// Puts `consumer`'s outbox cursor at `position` as a Wharf before migration 0011 kept it
/// (a `seq` alone), as though it had read the changes up to it.
pub async fn put_cursor_before_0011(store: &crate::Store, consumer: &str, position: i64) -> Result<()> {
    let _turn = store.write_turn().await;
    sqlx::query("INSERT INTO outbox_cursors (consumer, position, updated_at) VALUES ($1, $2, 0)")
        .bind(consumer)
        .bind(position)
        .execute(&store.writer)
        .await?;
    Ok(())
}

/// Waits until every transaction that wrote a change has ended and none older is running
/// (PostgreSQL: every change is below the horizon), as a reader of the outbox must have seen
/// before it read them all; `false` after 10 s. Another test's transaction on the server may
/// hold the horizon back a moment.
pub async fn changes_settle(store: &crate::Store) -> Result<bool> {
    if store.changes_commit_in_seq_order() {
        return Ok(true);
    }
    for _ in 0..200 {
        let above: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes WHERE tx >= pg_snapshot_xmin(pg_current_snapshot())")
            .fetch_one(&store.reader)
            .await?;
        if above == 0 {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(false)
}
