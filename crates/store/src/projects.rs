//! Projects and their webhook subscriptions. Every query of them takes the organization
//! (Architecture Invariant: a row of another organization is never read or written, whatever
//! id the caller passes), except [`Store::subscriptions_with_headers`], a start-up task over
//! every organization.

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;
use wharf_core::project::{Project, Subscription};
use wharf_core::time::Timestamp;

use crate::Tx;
use crate::rows::{json, to_text};
use crate::{Result, Store};

const PROJECT_COLUMNS: &str = "id, org_id, name, slug, description, status, app_icon_url, created_at, updated_at";

const SUBSCRIPTION_COLUMNS: &str =
    "id, org_id, project_id, name, url, headers, active, events, disabled_reason, created_at, updated_at";

fn project(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        status: row.try_get("status")?,
        app_icon_url: row.try_get("app_icon_url")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

fn subscription(row: &AnyRow) -> Result<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        // The stored form: `Projects` opens it (`wharf_core::project::open_stored_headers`).
        headers: json::<Map<String, Value>>(&row.try_get::<String, _>("headers")?, "subscription headers")?,
        headers_not_secret: Vec::new(),
        active: row.try_get::<i64, _>("active")? != 0,
        events: json(&row.try_get::<String, _>("events")?, "subscription events")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

impl Store {
    pub async fn projects(&self, org: &str) -> Result<Vec<Project>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE org_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?;
        rows.iter().map(project).collect()
    }

    pub async fn project(&self, org: &str, id: &str) -> Result<Option<Project>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE org_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(project).transpose()
    }

    pub async fn subscriptions(&self, org: &str, project_id: &str) -> Result<Vec<Subscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE org_id = $1 AND project_id = $2 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org).bind(project_id).fetch_all(self.reader()).await?;
        rows.iter().map(subscription).collect()
    }

    pub async fn subscription(&self, org: &str, project_id: &str, id: &str) -> Result<Option<Subscription>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE org_id = $1 AND project_id = $2 AND id = $3");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org).bind(project_id).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(subscription).transpose()
    }

    /// The event-type patterns of each of an organization's active subscriptions, read on a
    /// reader: what the router's look ahead decides from.
    pub async fn active_subscription_events(&self, org: &str) -> Result<Vec<Vec<String>>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT events FROM subscriptions WHERE org_id = $1 AND active = 1")
            .bind(org)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|events| json(events, "subscription events")).collect()
    }

    /// Every subscription (of every organization: a start-up task) that has headers.
    pub async fn subscriptions_with_headers(&self) -> Result<Vec<Subscription>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE headers <> '{{}}' ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter().map(subscription).collect()
    }

    /// A subscription's sealed signing key ring.
    pub async fn subscription_keys(&self, org: &str, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT keys_sealed FROM subscriptions WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(self.reader())
            .await?)
    }
}

impl Tx {
    pub async fn insert_project(&mut self, p: &Project) -> Result<()> {
        let sql = format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&p.id)
            .bind(&p.org_id)
            .bind(&p.name)
            .bind(&p.slug)
            .bind(p.description.as_deref())
            .bind(&p.status)
            .bind(p.app_icon_url.as_deref())
            .bind(p.created_at.millis())
            .bind(p.updated_at.millis())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn update_project(&mut self, p: &Project) -> Result<()> {
        sqlx::query(
            "UPDATE projects SET name = $1, slug = $2, description = $3, status = $4, app_icon_url = $5, updated_at = $6 \
             WHERE id = $7 AND org_id = $8",
        )
        .bind(&p.name)
        .bind(&p.slug)
        .bind(p.description.as_deref())
        .bind(&p.status)
        .bind(p.app_icon_url.as_deref())
        .bind(p.updated_at.millis())
        .bind(&p.id)
        .bind(&p.org_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Deletes a project with its subscriptions, events and deliveries; whether it existed.
    pub async fn delete_project(&mut self, org: &str, id: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM projects WHERE org_id = $1 AND id = $2").bind(org).bind(id).execute(self.conn()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many webhook subscriptions `org` has over all its projects (its limit is checked
    /// on create).
    pub async fn count_subscriptions(&mut self, org: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM subscriptions WHERE org_id = $1").bind(org).fetch_one(self.conn()).await?;
        Ok(row.try_get("n")?)
    }

    pub async fn insert_subscription(&mut self, s: &Subscription, keys_sealed: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}, keys_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&s.id)
            .bind(&s.org_id)
            .bind(&s.project_id)
            .bind(&s.name)
            .bind(&s.url)
            .bind(to_text(&s.headers))
            .bind(i64::from(s.active))
            .bind(to_text(&s.events))
            .bind(s.disabled_reason.as_deref())
            .bind(s.created_at.millis())
            .bind(s.updated_at.millis())
            .bind(keys_sealed)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Saves a subscription's document fields; re-activating one forgets its failure streak.
    pub async fn update_subscription(&mut self, s: &Subscription) -> Result<()> {
        sqlx::query(
            "UPDATE subscriptions SET name = $1, url = $2, headers = $3, active = $4, events = $5, disabled_reason = $6, \
             failing_since = CASE WHEN $4 = 1 AND active = 0 THEN NULL ELSE failing_since END, updated_at = $7 \
             WHERE id = $8 AND project_id = $9 AND org_id = $10",
        )
        .bind(&s.name)
        .bind(&s.url)
        .bind(to_text(&s.headers))
        .bind(i64::from(s.active))
        .bind(to_text(&s.events))
        .bind(s.disabled_reason.as_deref())
        .bind(s.updated_at.millis())
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.org_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Replaces a subscription's stored headers (sealing values stored before sealing).
    pub async fn set_subscription_headers(&mut self, org: &str, id: &str, stored: &Map<String, Value>) -> Result<()> {
        sqlx::query("UPDATE subscriptions SET headers = $1 WHERE org_id = $2 AND id = $3")
            .bind(to_text(stored))
            .bind(org)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn set_subscription_keys(&mut self, org: &str, id: &str, keys_sealed: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE subscriptions SET keys_sealed = $1, updated_at = $2 WHERE org_id = $3 AND id = $4")
            .bind(keys_sealed)
            .bind(now.millis())
            .bind(org)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Deletes a subscription with its deliveries; whether it existed.
    pub async fn delete_subscription(&mut self, org: &str, project_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE org_id = $1 AND project_id = $2 AND id = $3")
            .bind(org)
            .bind(project_id)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
