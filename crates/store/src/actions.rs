//! Actions and automations (`actions`, migration 0007): Port's document as written, one row
//! per (organization, identifier). Every query takes the organization.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use wharf_core::action::{Action, ActionDef};
use wharf_core::blueprint::Audited;
use wharf_core::time::Timestamp;

use crate::rows::{json, to_text};
use crate::{Error, Result, Store, Tx};

const COLUMNS: &str = "identifier, definition, created_at, created_by, updated_at, updated_by";

fn action(row: &AnyRow) -> Result<Action> {
    let document: serde_json::Value = json(&row.try_get::<String, _>("definition")?, "action definition")?;
    let def =
        ActionDef::from_stored(document).map_err(|err| Error::Corrupt { what: "action definition", detail: err.message })?;
    Ok(Action {
        def,
        audited: Audited {
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            created_by: row.try_get("created_by")?,
            updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            updated_by: row.try_get("updated_by")?,
        },
    })
}

impl Store {
    /// The organization's actions and automations, by identifier.
    pub async fn actions(&self, org: &str) -> Result<Vec<Action>> {
        let sql = format!("SELECT {COLUMNS} FROM actions WHERE org_id = $1 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?;
        found.iter().map(action).collect()
    }

    pub async fn action(&self, org: &str, identifier: &str) -> Result<Option<Action>> {
        let sql = format!("SELECT {COLUMNS} FROM actions WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.reader()).await?;
        row.as_ref().map(action).transpose()
    }
}

impl Tx {
    pub async fn action(&mut self, org: &str, identifier: &str) -> Result<Option<Action>> {
        let sql = format!("SELECT {COLUMNS} FROM actions WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.conn()).await?;
        row.as_ref().map(action).transpose()
    }

    /// How many actions and automations `org` has (its limit is checked on create).
    pub async fn count_actions(&mut self, org: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM actions WHERE org_id = $1").bind(org).fetch_one(self.conn()).await?;
        Ok(row.try_get("n")?)
    }

    /// Inserts an action, or replaces the organization's action of the same identifier
    /// (keeping when and by whom it was created).
    pub async fn put_action(&mut self, org: &str, action: &Action) -> Result<()> {
        sqlx::query(
            "INSERT INTO actions (org_id, identifier, definition, created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, identifier) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(org)
        .bind(&action.def.identifier)
        .bind(to_text(action.def.document()))
        .bind(action.audited.created_at.millis())
        .bind(&action.audited.created_by)
        .bind(action.audited.updated_at.millis())
        .bind(&action.audited.updated_by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Deletes an action; whether there was one.
    pub async fn delete_action(&mut self, org: &str, identifier: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM actions WHERE org_id = $1 AND identifier = $2")
            .bind(org)
            .bind(identifier)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
