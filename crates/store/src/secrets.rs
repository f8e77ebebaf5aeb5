//! Organization secrets (`secrets`, migration 0008). Every query takes the organization
//! (Architecture Invariant: a row of another organization is never read or written). The
//! store holds values sealed only (`value_sealed`, made and opened by the engine's `Secrets`);
//! the metadata reads ([`Store::secrets`], [`Store::secret`]) never select them.

use sqlx::Row;
use sqlx::any::AnyRow;
use wharf_core::secret::Secret;
use wharf_core::time::Timestamp;

use crate::{Result, Store, Tx};

const METADATA_COLUMNS: &str = "org_id, name, description, created_at, created_by, updated_at, updated_by";

fn secret(row: &AnyRow) -> Result<Secret> {
    Ok(Secret {
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
        updated_by: row.try_get("updated_by")?,
    })
}

impl Store {
    /// The organization's secrets' metadata, by name.
    pub async fn secrets(&self, org: &str) -> Result<Vec<Secret>> {
        let sql = format!("SELECT {METADATA_COLUMNS} FROM secrets WHERE org_id = $1 ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?;
        rows.iter().map(secret).collect()
    }

    /// One secret's metadata.
    pub async fn secret(&self, org: &str, name: &str) -> Result<Option<Secret>> {
        let sql = format!("SELECT {METADATA_COLUMNS} FROM secrets WHERE org_id = $1 AND name = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org).bind(name).fetch_optional(self.reader()).await?;
        row.as_ref().map(secret).transpose()
    }

    /// Every secret of the organization as `(name, value_sealed)`, by name.
    pub async fn sealed_secrets(&self, org: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, value_sealed FROM secrets WHERE org_id = $1 ORDER BY name")
            .bind(org)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|row| Ok::<_, crate::Error>((row.try_get::<String, _>("name")?, row.try_get::<String, _>("value_sealed")?)))
            .collect()
    }

    /// Every column of every row of `secrets`, each row as one text: what a test searches for
    /// a value that must not be stored in clear.
    #[cfg(feature = "testing")]
    pub async fn secret_rows_as_text(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT org_id, name, value_sealed, COALESCE(description, '') AS description, created_by, updated_by FROM secrets",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                let columns = ["org_id", "name", "value_sealed", "description", "created_by", "updated_by"];
                let texts = columns.iter().map(|c| row.try_get::<String, _>(*c)).collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::Error>(texts.join(" "))
            })
            .collect()
    }
}

impl Tx {
    /// How many secrets `org` has (its limit is checked on create).
    pub async fn count_secrets(&mut self, org: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM secrets WHERE org_id = $1").bind(org).fetch_one(self.conn()).await?;
        Ok(row.try_get("n")?)
    }

    /// Stores a new secret; a name the organization already has is a unique violation
    /// ([`crate::Error::is_unique_violation`]).
    pub async fn insert_secret(&mut self, s: &Secret, value_sealed: &str) -> Result<()> {
        let sql = format!("INSERT INTO secrets ({METADATA_COLUMNS}, value_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&s.org_id)
            .bind(&s.name)
            .bind(s.description.as_deref())
            .bind(s.created_at.millis())
            .bind(&s.created_by)
            .bind(s.updated_at.millis())
            .bind(&s.updated_by)
            .bind(value_sealed)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Saves a secret's description and last change, and its value when `value_sealed` is
    /// given; whether the secret (still) exists.
    pub async fn update_secret(&mut self, s: &Secret, value_sealed: Option<&str>) -> Result<bool> {
        let done = match value_sealed {
            Some(sealed) => {
                sqlx::query(
                    "UPDATE secrets SET description = $1, updated_at = $2, updated_by = $3, value_sealed = $4 \
                 WHERE org_id = $5 AND name = $6",
                )
                .bind(s.description.as_deref())
                .bind(s.updated_at.millis())
                .bind(&s.updated_by)
                .bind(sealed)
                .bind(&s.org_id)
                .bind(&s.name)
                .execute(self.conn())
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE secrets SET description = $1, updated_at = $2, updated_by = $3 WHERE org_id = $4 AND name = $5",
                )
                .bind(s.description.as_deref())
                .bind(s.updated_at.millis())
                .bind(&s.updated_by)
                .bind(&s.org_id)
                .bind(&s.name)
                .execute(self.conn())
                .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a secret; whether it existed.
    pub async fn delete_secret(&mut self, org: &str, name: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM secrets WHERE org_id = $1 AND name = $2").bind(org).bind(name).execute(self.conn()).await?;
        Ok(done.rows_affected() > 0)
    }
}
