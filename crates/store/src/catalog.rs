//! Blueprints, entities and their relations: reads on [`Store`], writes in a [`Tx`].

use std::collections::HashSet;

use sqlx::AssertSqlSafe;
use wharf_core::blueprint::{Audited, Blueprint};
use wharf_core::change::Change;
use wharf_core::entity::Entity;

use crate::rows::{self, BLUEPRINT_COLUMNS, ENTITY_COLUMNS, placeholders, to_text};
use crate::{Backend, Result, Store, Transaction};

/// A relation edge: entity `(blueprint, identifier)` points at `(target_blueprint, target)`
/// through `relation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Edge {
    pub blueprint: String,
    pub identifier: String,
    pub relation: String,
    pub target_blueprint: String,
    pub target: String,
}

fn edge(row: &sqlx::any::AnyRow) -> Result<Edge> {
    use sqlx::Row;
    Ok(Edge {
        blueprint: row.try_get("blueprint")?,
        identifier: row.try_get("identifier")?,
        relation: row.try_get("relation")?,
        target_blueprint: row.try_get("target_blueprint")?,
        target: row.try_get("target")?,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the four audit columns, in the order every table declares them.
fn bind_audited<'q>(query: AnyQuery<'q>, audited: &'q Audited) -> AnyQuery<'q> {
    query.bind(audited.created_at.millis()).bind(&audited.created_by).bind(audited.updated_at.millis()).bind(&audited.updated_by)
}

const EDGE_COLUMNS: &str = "blueprint, identifier, relation, target_blueprint, target";

impl Store {
    pub async fn blueprint(&self, org: &str, identifier: &str) -> Result<Option<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.reader()).await?;
        row.as_ref().map(rows::blueprint).transpose()
    }

    pub async fn blueprints(&self, org: &str) -> Result<Vec<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = $1 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?;
        found.iter().map(rows::blueprint).collect()
    }

    pub async fn entity(&self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier = $3");
        let row =
            sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).bind(identifier).fetch_optional(self.reader()).await?;
        row.as_ref().map(rows::entity).transpose()
    }

    /// One page of a blueprint's entities in identifier order, starting after `after`.
    pub async fn entities_page(&self, org: &str, blueprint: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entity>> {
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier > $3 \
             ORDER BY identifier LIMIT $4"
        );
        let found = sqlx::query(AssertSqlSafe(sql))
            .bind(org)
            .bind(blueprint)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        found.iter().map(rows::entity).collect()
    }

    /// Every entity of the given blueprints (all of the organization's when `None`), ordered by
    /// blueprint and identifier: the candidates a search evaluates.
    pub async fn entities_in(&self, org: &str, blueprints: Option<&[String]>) -> Result<Vec<Entity>> {
        let found = match blueprints {
            None => {
                let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 ORDER BY blueprint, identifier");
                sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?
            }
            Some([]) => return Ok(Vec::new()),
            Some(blueprints) => {
                let sql = format!(
                    "SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint IN ({}) ORDER BY blueprint, identifier",
                    placeholders(2, blueprints.len())
                );
                let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org);
                for bp in blueprints {
                    query = query.bind(bp);
                }
                query.fetch_all(self.reader()).await?
            }
        };
        found.iter().map(rows::entity).collect()
    }

    /// The relation edges leaving (`outgoing`) or entering the given entities.
    pub async fn edges(&self, org: &str, nodes: &[(String, String)], outgoing: bool) -> Result<Vec<Edge>> {
        let mut found = Vec::new();
        // Chunked so that the parameter count stays far below both databases' limits.
        for chunk in nodes.chunks(200) {
            let (bp_col, id_col) = if outgoing { ("blueprint", "identifier") } else { ("target_blueprint", "target") };
            let tuples: Vec<String> =
                (0..chunk.len()).map(|i| format!("({bp_col} = ${} AND {id_col} = ${})", 2 + 2 * i, 3 + 2 * i)).collect();
            let sql = format!("SELECT {EDGE_COLUMNS} FROM entity_relations WHERE org_id = $1 AND ({})", tuples.join(" OR "));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org);
            for (bp, id) in chunk {
                query = query.bind(bp).bind(id);
            }
            for row in query.fetch_all(self.reader()).await? {
                found.push(edge(&row)?);
            }
        }
        Ok(found)
    }
}

/// A write transaction over the catalog and its outbox. Dropped without [`Tx::commit`], it
/// rolls back.
pub struct Tx {
    tx: Transaction,
    backend: Backend,
}

impl Tx {
    pub(crate) fn new(tx: Transaction, backend: Backend) -> Self {
        Self { tx, backend }
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Serializes writers of one key until the transaction ends. PostgreSQL: a transaction
    /// advisory lock (it also covers rows that do not exist yet, which `FOR UPDATE` cannot).
    /// SQLite: nothing to do, there is one writer.
    pub async fn lock(&mut self, org: &str, key: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("{org}/{key}"))
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    pub async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(&mut *self.tx).await?;
        row.as_ref().map(rows::blueprint).transpose()
    }

    pub async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = $1 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(&mut *self.tx).await?;
        found.iter().map(rows::blueprint).collect()
    }

    /// Inserts or replaces a blueprint.
    pub async fn put_blueprint(&mut self, org: &str, blueprint: &Blueprint) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO blueprints (org_id, identifier, definition, created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, identifier) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(org)
        .bind(blueprint.identifier())
        .bind(to_text(&blueprint.def));
        bind_audited(query, &blueprint.audited).execute(&mut *self.tx).await?;
        Ok(())
    }

    pub async fn delete_blueprint(&mut self, org: &str, identifier: &str) -> Result<()> {
        sqlx::query("DELETE FROM blueprints WHERE org_id = $1 AND identifier = $2")
            .bind(org)
            .bind(identifier)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn count_entities(&mut self, org: &str, blueprint: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM entities WHERE org_id = $1 AND blueprint = $2")
            .bind(org)
            .bind(blueprint)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    pub async fn entities_of(&mut self, org: &str, blueprint: &str) -> Result<Vec<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint = $2 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).fetch_all(&mut *self.tx).await?;
        found.iter().map(rows::entity).collect()
    }

    pub async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier = $3");
        let row =
            sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).bind(identifier).fetch_optional(&mut *self.tx).await?;
        row.as_ref().map(rows::entity).transpose()
    }

    /// Which of `identifiers` exist in `blueprint`.
    pub async fn existing(&mut self, org: &str, blueprint: &str, identifiers: &[&str]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in identifiers.chunks(500) {
            let sql = format!(
                "SELECT identifier FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(org).bind(blueprint);
            for id in chunk {
                query = query.bind(*id);
            }
            found.extend(query.fetch_all(&mut *self.tx).await?);
        }
        Ok(found)
    }

    /// Inserts or replaces an entity and its relation edges. Edge targets take their
    /// blueprint from `blueprint`'s relation definitions.
    pub async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO entities (org_id, blueprint, identifier, title, icon, team, properties, relations, \
             created_at, created_by, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (org_id, blueprint, identifier) DO UPDATE SET title = excluded.title, icon = excluded.icon, \
             team = excluded.team, properties = excluded.properties, relations = excluded.relations, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(org)
        .bind(&entity.blueprint)
        .bind(&entity.identifier)
        .bind(entity.title.as_deref())
        .bind(entity.icon.as_deref())
        .bind(to_text(&entity.team))
        .bind(to_text(&entity.properties))
        .bind(to_text(&entity.relations));
        bind_audited(query, &entity.audited).execute(&mut *self.tx).await?;
        self.delete_edges(org, &entity.blueprint, &entity.identifier).await?;
        for (name, relation) in &blueprint.def.relations {
            for target in entity.relation_targets(name) {
                sqlx::query(
                    "INSERT INTO entity_relations (org_id, blueprint, identifier, relation, target_blueprint, target) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(org)
                .bind(&entity.blueprint)
                .bind(&entity.identifier)
                .bind(name)
                .bind(&relation.target)
                .bind(target)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        Ok(())
    }

    pub async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        self.delete_edges(org, blueprint, identifier).await?;
        sqlx::query("DELETE FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier = $3")
            .bind(org)
            .bind(blueprint)
            .bind(identifier)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn delete_edges(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        sqlx::query("DELETE FROM entity_relations WHERE org_id = $1 AND blueprint = $2 AND identifier = $3")
            .bind(org)
            .bind(blueprint)
            .bind(identifier)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The edges that point at an entity: who refers to it, and through which relation.
    pub async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>> {
        let sql = format!(
            "SELECT {EDGE_COLUMNS} FROM entity_relations WHERE org_id = $1 AND target_blueprint = $2 AND target = $3 \
             ORDER BY blueprint, identifier, relation"
        );
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).bind(identifier).fetch_all(&mut *self.tx).await?;
        found.iter().map(edge).collect()
    }

    /// Appends a change to the outbox; sets and returns its `seq`.
    pub async fn record_change(&mut self, change: &mut Change) -> Result<i64> {
        change.seq = crate::changes::insert(&mut self.tx, change).await?;
        Ok(change.seq)
    }
}
