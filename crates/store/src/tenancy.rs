//! Organizations and API clients.

use sqlx::Row;
use sqlx::any::AnyRow;
use wharf_core::tenancy::{ApiClient, Organization};
use wharf_core::time::Timestamp;

use crate::rows::{json, to_text};
use crate::{Result, Store};

fn organization(row: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
        settings: match json(&row.try_get::<String, _>("settings")?, "organization settings")? {
            serde_json::Value::Object(settings) => settings,
            _ => serde_json::Map::new(),
        },
    })
}

fn client(row: &AnyRow) -> Result<ApiClient> {
    Ok(ApiClient {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        secret_sealed: row.try_get("secret_sealed")?,
        token_generation: row.try_get("token_generation")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

const CLIENT_COLUMNS: &str = "id, org_id, name, secret_hash, secret_sealed, token_generation, created_at, updated_at";

impl Store {
    pub async fn count_organizations(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM organizations").fetch_one(self.reader()).await?)
    }

    /// Creates an organization together with its first API client, atomically.
    pub async fn create_organization(&self, org: &Organization, first_client: &ApiClient) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at, updated_at, settings) VALUES ($1, $2, $3, $4, $5)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.created_at.millis())
            .bind(org.updated_at.millis())
            .bind(to_text(&org.settings))
            .execute(tx.conn())
            .await?;
        insert_client(tx.conn(), first_client).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn organization(&self, id: &str) -> Result<Option<Organization>> {
        let row = sqlx::query("SELECT id, name, created_at, updated_at, settings FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(organization).transpose()
    }

    /// Writes an organization's name and settings.
    pub async fn update_organization(&self, org: &Organization) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE organizations SET name = $1, settings = $2, updated_at = $3 WHERE id = $4")
            .bind(&org.name)
            .bind(to_text(&org.settings))
            .bind(org.updated_at.millis())
            .bind(&org.id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn organizations(&self) -> Result<Vec<Organization>> {
        let rows = sqlx::query("SELECT id, name, created_at, updated_at, settings FROM organizations ORDER BY created_at, id")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(organization).collect()
    }

    pub async fn create_client(&self, client: &ApiClient) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_client(tx.conn(), client).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn client(&self, id: &str) -> Result<Option<ApiClient>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(client).transpose()
    }

    pub async fn clients(&self, org_id: &str) -> Result<Vec<ApiClient>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE org_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org_id).fetch_all(self.reader()).await?;
        rows.iter().map(client).collect()
    }

    /// Replaces a client's secret and moves its token generation on (revoking its tokens);
    /// returns the new generation, or `None` when the client does not exist.
    pub async fn rotate_client_secret(&self, id: &str, hash: &str, sealed: &str, now: Timestamp) -> Result<Option<i64>> {
        let mut writer = self.writer().await?;
        let generation = sqlx::query_scalar(
            "UPDATE api_clients SET secret_hash = $1, secret_sealed = $2, updated_at = $3, \
             token_generation = token_generation + 1 WHERE id = $4 RETURNING token_generation",
        )
        .bind(hash)
        .bind(sealed)
        .bind(now.millis())
        .bind(id)
        .fetch_optional(&mut *writer)
        .await?;
        Ok(generation)
    }

    /// Every client's token generation (what access tokens are checked against).
    pub async fn client_token_generations(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT id, token_generation FROM api_clients").fetch_all(self.reader()).await?;
        rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("token_generation")?))).collect()
    }

    /// Deletes a client; returns whether it existed.
    pub async fn delete_client(&self, id: &str) -> Result<bool> {
        let mut writer = self.writer().await?;
        let done = sqlx::query("DELETE FROM api_clients WHERE id = $1").bind(id).execute(&mut *writer).await?;
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_client(conn: &mut sqlx::AnyConnection, client: &ApiClient) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_clients (id, org_id, name, secret_hash, secret_sealed, token_generation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&client.id)
    .bind(&client.org_id)
    .bind(&client.name)
    .bind(&client.secret_hash)
    .bind(&client.secret_sealed)
    .bind(client.token_generation)
    .bind(client.created_at.millis())
    .bind(client.updated_at.millis())
    .execute(conn)
    .await?;
    Ok(())
}
