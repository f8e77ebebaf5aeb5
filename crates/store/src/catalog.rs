//! Blueprints, entities and their relations: reads on [`Store`], writes in a [`Tx`] (the
//! sqlx implementation of [`CatalogTx`]; the writer thread's is in `sqlite/write_tx.rs`).

use std::collections::HashSet;

use sqlx::AssertSqlSafe;
use wharf_core::blueprint::{Audited, Blueprint};
use wharf_core::change::Change;
use wharf_core::entity::Entity;

use crate::rows::{self, BLUEPRINT_COLUMNS, Columns, ENTITY_COLUMNS, placeholders, to_text};
use crate::write_tx::{CatalogTx, EntityPut};
use crate::{Result, Store, Tx};

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

pub(crate) fn edge(row: &impl Columns) -> Result<Edge> {
    Ok(Edge {
        blueprint: row.text("blueprint")?,
        identifier: row.text("identifier")?,
        relation: row.text("relation")?,
        target_blueprint: row.text("target_blueprint")?,
        target: row.text("target")?,
    })
}

/// `(relation, target blueprint, target)` of every edge `entity` has: targets take their
/// blueprint from `blueprint`'s relation definitions.
pub(crate) fn edges_of<'e>(blueprint: &'e Blueprint, entity: &'e Entity) -> Vec<(&'e str, &'e str, &'e str)> {
    blueprint
        .def
        .relations
        .iter()
        .flat_map(|(name, relation)| {
            entity.relation_targets(name).into_iter().map(move |target| (name.as_str(), relation.target.as_str(), target))
        })
        .collect()
}

/// What writing `entity` over `previous` does to its edges: `None` when its relations are
/// those of the stored version (the edges stay); otherwise all of its edges are inserted,
/// after the stored ones are deleted when there is a stored version (`Some(true)`).
pub(crate) fn edge_rewrite(entity: &Entity, previous: Option<&Entity>) -> Option<bool> {
    match previous {
        Some(previous) if previous.relations == entity.relations => None,
        previous => Some(previous.is_some()),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the four audit columns, in the order every table declares them.
fn bind_audited<'q>(query: AnyQuery<'q>, audited: &'q Audited) -> AnyQuery<'q> {
    query.bind(audited.created_at.millis()).bind(&audited.created_by).bind(audited.updated_at.millis()).bind(&audited.updated_by)
}

pub(crate) const EDGE_COLUMNS: &str = "blueprint, identifier, relation, target_blueprint, target";

pub(crate) const ENTITY_UPSERT: &str = "INSERT INTO entities (org_id, blueprint, identifier, title, icon, team, properties, relations, \
     created_at, created_by, updated_at, updated_by) VALUES";
pub(crate) const ENTITY_CONFLICT: &str = " ON CONFLICT (org_id, blueprint, identifier) DO UPDATE SET title = excluded.title, \
     icon = excluded.icon, team = excluded.team, properties = excluded.properties, relations = excluded.relations, \
     updated_at = excluded.updated_at, updated_by = excluded.updated_by";
pub(crate) const EDGE_INSERT: &str =
    "INSERT INTO entity_relations (org_id, blueprint, identifier, relation, target_blueprint, target) VALUES";
/// Edges per statement (six values each; see `rows_per_statement`).
const EDGES_PER_STATEMENT: usize = crate::rows::rows_per_statement(6);

/// `($start, …), (…)`: `count` rows of six edge values.
pub(crate) fn edge_rows(start: usize, count: usize) -> String {
    (0..count).map(|i| format!("({})", placeholders(start + i * 6, 6))).collect::<Vec<_>>().join(", ")
}

fn bind_entity<'q>(query: AnyQuery<'q>, org: &'q str, entity: &'q Entity) -> AnyQuery<'q> {
    let query = query
        .bind(org)
        .bind(&entity.blueprint)
        .bind(&entity.identifier)
        .bind(entity.title.as_deref())
        .bind(entity.icon.as_deref())
        .bind(to_text(&entity.team))
        .bind(to_text(&entity.properties))
        .bind(to_text(&entity.relations));
    bind_audited(query, &entity.audited)
}

fn bind_edges<'q>(
    mut query: AnyQuery<'q>,
    org: &'q str,
    entity: &'q Entity,
    edges: &[(&'q str, &'q str, &'q str)],
) -> AnyQuery<'q> {
    for (name, target_blueprint, target) in edges {
        query =
            query.bind(org).bind(&entity.blueprint).bind(&entity.identifier).bind(*name).bind(*target_blueprint).bind(*target);
    }
    query
}

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

    /// The entities named by `(blueprint, identifier)` pairs that exist, in no particular
    /// order: the candidates of a search whose query names them, read as
    /// `CatalogTx::entities_named` reads them in a transaction ([`read_named`]).
    pub async fn entities_named(&self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>> {
        let mut conn = self.reader().acquire().await?;
        read_named(&mut conn, self.dialect.named_entities, org, pairs).await
    }

    /// One page of the entities of the given blueprints (all of the organization's when
    /// `None`), ordered by blueprint and identifier, starting after `after` (a `(blueprint,
    /// identifier)` pair): the candidates a search evaluates, read a page at a time so that a
    /// search holds its matches and one page, never a whole blueprint.
    pub async fn entities_in_page(
        &self,
        org: &str,
        blueprints: Option<&[String]>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<Entity>> {
        let (after_blueprint, after_identifier) = after.unwrap_or(("", ""));
        // Keyset paging on the primary key's order; spelled without row values, which both
        // dialects read the same way.
        let after_clause = "(blueprint > $2 OR (blueprint = $2 AND identifier > $3))";
        let found = match blueprints {
            None => {
                let sql = format!(
                    "SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND {after_clause} \
                     ORDER BY blueprint, identifier LIMIT $4"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(org)
                    .bind(after_blueprint)
                    .bind(after_identifier)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
            }
            Some([]) => return Ok(Vec::new()),
            Some(blueprints) => {
                let sql = format!(
                    "SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND {after_clause} AND blueprint IN ({}) \
                     ORDER BY blueprint, identifier LIMIT $4",
                    placeholders(5, blueprints.len())
                );
                let mut query =
                    sqlx::query(AssertSqlSafe(sql)).bind(org).bind(after_blueprint).bind(after_identifier).bind(i64::from(limit));
                for bp in blueprints {
                    query = query.bind(bp);
                }
                query.fetch_all(self.reader()).await?
            }
        };
        found.iter().map(rows::entity).collect()
    }

    /// The relation edges leaving (`outgoing`) or entering the given entities: one indexed
    /// query per blueprint (an OR of `(blueprint AND identifier)` pairs would scan the
    /// organization's edges).
    pub async fn edges(&self, org: &str, nodes: &[(String, String)], outgoing: bool) -> Result<Vec<Edge>> {
        let (bp_col, id_col) = if outgoing { ("blueprint", "identifier") } else { ("target_blueprint", "target") };
        let mut blueprints: Vec<&str> = nodes.iter().map(|(bp, _)| bp.as_str()).collect();
        blueprints.sort_unstable();
        blueprints.dedup();
        let mut found = Vec::new();
        for blueprint in blueprints {
            let identifiers: Vec<&str> = nodes.iter().filter(|(bp, _)| bp == blueprint).map(|(_, id)| id.as_str()).collect();
            for chunk in identifiers.chunks(crate::rows::rows_per_statement(1)) {
                let sql = format!(
                    "SELECT {EDGE_COLUMNS} FROM entity_relations WHERE org_id = $1 AND {bp_col} = $2 AND {id_col} IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint);
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in query.fetch_all(self.reader()).await? {
                    found.push(edge(&row)?);
                }
            }
        }
        Ok(found)
    }
}

impl Tx {
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
        bind_audited(query, &blueprint.audited).execute(self.conn()).await?;
        Ok(())
    }

    pub async fn delete_blueprint(&mut self, org: &str, identifier: &str) -> Result<()> {
        sqlx::query("DELETE FROM blueprints WHERE org_id = $1 AND identifier = $2")
            .bind(org)
            .bind(identifier)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn count_entities(&mut self, org: &str, blueprint: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM entities WHERE org_id = $1 AND blueprint = $2")
            .bind(org)
            .bind(blueprint)
            .fetch_one(self.conn())
            .await?)
    }

    pub async fn entities_of(&mut self, org: &str, blueprint: &str) -> Result<Vec<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint = $2 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).fetch_all(self.conn()).await?;
        found.iter().map(rows::entity).collect()
    }

    /// The edges to insert for `entity` ([`edge_rewrite`]), the stored ones deleted first
    /// when they are replaced.
    async fn edges_to_write<'e>(
        &mut self,
        org: &str,
        blueprint: &'e Blueprint,
        entity: &'e Entity,
        previous: Option<&Entity>,
    ) -> Result<Vec<(&'e str, &'e str, &'e str)>> {
        match edge_rewrite(entity, previous) {
            None => return Ok(Vec::new()),
            Some(true) => self.delete_edges(org, &entity.blueprint, &entity.identifier).await?,
            Some(false) => {}
        }
        Ok(edges_of(blueprint, entity))
    }

    /// [`CatalogTx::put_entities_recorded`] for entities that are all different.
    async fn put_entity_run(&mut self, org: &str, puts: &[EntityPut]) -> Result<()> {
        let replaced: Vec<&Entity> = puts.iter().filter(|put| put.replaces_edges).map(|put| &put.entity).collect();
        for chunk in replaced.chunks(crate::rows::rows_per_statement(2)) {
            let pairs: Vec<String> = (0..chunk.len()).map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i)).collect();
            let sql =
                format!("DELETE FROM entity_relations WHERE org_id = $1 AND (blueprint, identifier) IN ({})", pairs.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org);
            for entity in chunk {
                query = query.bind(&entity.blueprint).bind(&entity.identifier);
            }
            query.execute(self.conn()).await?;
        }
        for chunk in puts.chunks(crate::rows::rows_per_statement(12)) {
            let rows: Vec<String> = (0..chunk.len()).map(|i| format!("({})", placeholders(1 + i * 12, 12))).collect();
            let sql = format!("{ENTITY_UPSERT} {}{ENTITY_CONFLICT}", rows.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for put in chunk {
                query = bind_entity(query, org, &put.entity);
            }
            query.execute(self.conn()).await?;
        }
        let edges: Vec<(&Entity, (&str, &str, &str))> = puts
            .iter()
            .flat_map(|put| {
                put.edges.iter().map(|(name, bp, target)| (&put.entity, (name.as_str(), bp.as_str(), target.as_str())))
            })
            .collect();
        for chunk in edges.chunks(EDGES_PER_STATEMENT) {
            let sql = format!("{EDGE_INSERT} {} ON CONFLICT DO NOTHING", edge_rows(1, chunk.len()));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (entity, edge) in chunk {
                query = bind_edges(query, org, entity, std::slice::from_ref(edge));
            }
            query.execute(self.conn()).await?;
        }
        let changes: Vec<&Change> = puts.iter().map(|put| &put.change).collect();
        crate::changes::insert_many(self.conn(), &changes).await?;
        self.recorded |= !changes.is_empty();
        Ok(())
    }

    async fn delete_edges(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        sqlx::query("DELETE FROM entity_relations WHERE org_id = $1 AND blueprint = $2 AND identifier = $3")
            .bind(org)
            .bind(blueprint)
            .bind(identifier)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

impl CatalogTx for Tx {
    /// The dialect's key lock (none on SQLite: one writer).
    async fn lock(&mut self, org: &str, key: &str) -> Result<()> {
        if let Some(sql) = self.dialect.key_lock {
            sqlx::query(sql).bind(format!("{org}/{key}")).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// One statement per few hundred keys instead of a round trip each.
    async fn lock_many(&mut self, org: &str, keys: &[String]) -> Result<()> {
        let Some(key_locks) = self.dialect.key_locks else { return Ok(()) };
        let mut keys: Vec<String> = keys.iter().map(|key| format!("{org}/{key}")).collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(crate::rows::rows_per_statement(1)) {
            let sql = key_locks(chunk.len());
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for key in chunk {
                query = query.bind(key);
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = $1 AND identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.conn()).await?;
        row.as_ref().map(rows::blueprint).transpose()
    }

    async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = $1 ORDER BY identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(self.conn()).await?;
        found.iter().map(rows::blueprint).collect()
    }

    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier = $3");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).bind(identifier).fetch_optional(self.conn()).await?;
        row.as_ref().map(rows::entity).transpose()
    }

    /// The entities named by `(blueprint, identifier)` pairs that exist, in no particular
    /// order ([`read_named`]).
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>> {
        let named_entities = self.dialect.named_entities;
        read_named(self.conn(), named_entities, org, pairs).await
    }

    /// Which of `(blueprint, identifier)` exist: one indexed query per blueprint.
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<HashSet<(String, String)>> {
        let mut found = HashSet::new();
        for (blueprint, identifiers) in by_blueprint(pairs) {
            for chunk in identifiers.chunks(crate::rows::rows_per_statement(1)) {
                let sql = (self.dialect.named_entities)("identifier", chunk.len());
                let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(org).bind(blueprint);
                for id in chunk {
                    query = query.bind(*id);
                }
                found.extend(query.fetch_all(self.conn()).await?.into_iter().map(|id| (blueprint.to_owned(), id)));
            }
        }
        Ok(found)
    }

    async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity, previous: Option<&Entity>) -> Result<()> {
        let sql = format!("{ENTITY_UPSERT} ({}){ENTITY_CONFLICT}", placeholders(1, 12));
        bind_entity(sqlx::query(AssertSqlSafe(sql)), org, entity).execute(self.conn()).await?;
        let edges = self.edges_to_write(org, blueprint, entity, previous).await?;
        for chunk in edges.chunks(EDGES_PER_STATEMENT) {
            let sql = format!("{EDGE_INSERT} {} ON CONFLICT DO NOTHING", edge_rows(1, chunk.len()));
            bind_edges(sqlx::query(AssertSqlSafe(sql)), org, entity, chunk).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// One statement where the dialect has one (PostgreSQL: data-modifying CTEs); otherwise
    /// one after the other (SQLite: no round trips to save).
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> Result<()> {
        let Some(entity_with_change) = self.dialect.entity_with_change else {
            self.put_entity(org, blueprint, entity, previous).await?;
            self.record_change(change).await?;
            return Ok(());
        };
        let edges = self.edges_to_write(org, blueprint, entity, previous).await?;
        let (first, rest) = edges.split_at(edges.len().min(EDGES_PER_STATEMENT));
        let sql = entity_with_change(first.len());
        let query = bind_edges(bind_entity(sqlx::query(AssertSqlSafe(sql)), org, entity), org, entity, first);
        let row = crate::changes::bind_change(query, change).fetch_one(self.conn()).await?;
        change.seq = sqlx::Row::try_get(&row, "seq")?;
        self.recorded = true;
        for chunk in rest.chunks(EDGES_PER_STATEMENT) {
            let sql = format!("{EDGE_INSERT} {} ON CONFLICT DO NOTHING", edge_rows(1, chunk.len()));
            bind_edges(sqlx::query(AssertSqlSafe(sql)), org, entity, chunk).execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Multi-row statements for runs of entities that name none twice (an upsert may not
    /// touch one row twice in a statement on PostgreSQL, and a repeated entity's edges must be
    /// replaced after its first write): per run, the replaced edges deleted, the rows upserted,
    /// the new edges inserted, the changes appended in order.
    async fn put_entities_recorded(&mut self, org: &str, puts: &[EntityPut]) -> Result<()> {
        let mut rest = puts;
        while !rest.is_empty() {
            let mut seen = HashSet::new();
            let run = rest.iter().take_while(|put| seen.insert((&put.entity.blueprint, &put.entity.identifier))).count();
            let (now, later) = rest.split_at(run);
            self.put_entity_run(org, now).await?;
            rest = later;
        }
        Ok(())
    }

    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        self.delete_edges(org, blueprint, identifier).await?;
        sqlx::query("DELETE FROM entities WHERE org_id = $1 AND blueprint = $2 AND identifier = $3")
            .bind(org)
            .bind(blueprint)
            .bind(identifier)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>> {
        let sql = format!(
            "SELECT {EDGE_COLUMNS} FROM entity_relations WHERE org_id = $1 AND target_blueprint = $2 AND target = $3 \
             ORDER BY blueprint, identifier, relation"
        );
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint).bind(identifier).fetch_all(self.conn()).await?;
        found.iter().map(edge).collect()
    }

    async fn record_change(&mut self, change: &mut Change) -> Result<i64> {
        change.seq = crate::changes::insert(self.conn(), change).await?;
        self.recorded = true;
        Ok(change.seq)
    }

    async fn record_changes(&mut self, changes: &[Change]) -> Result<()> {
        crate::changes::insert_many(self.conn(), changes).await?;
        self.recorded |= !changes.is_empty();
        Ok(())
    }
}

/// The entities named by `(blueprint, identifier)` pairs that exist, in no particular order:
/// one indexed query per blueprint and statement's worth of identifiers, in the dialect's
/// form (`named_entities`).
async fn read_named(
    conn: &mut sqlx::AnyConnection,
    named_entities: fn(&str, usize) -> String,
    org: &str,
    pairs: &[(&str, &str)],
) -> Result<Vec<Entity>> {
    let mut found = Vec::with_capacity(pairs.len());
    for (blueprint, identifiers) in by_blueprint(pairs) {
        for chunk in identifiers.chunks(crate::rows::rows_per_statement(1)) {
            let sql = named_entities(ENTITY_COLUMNS, chunk.len());
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(blueprint);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *conn).await? {
                found.push(rows::entity(&row)?);
            }
        }
    }
    Ok(found)
}

/// `pairs` grouped by blueprint, each blueprint once, its identifiers in the order given.
fn by_blueprint<'p>(pairs: &[(&'p str, &'p str)]) -> Vec<(&'p str, Vec<&'p str>)> {
    let mut blueprints: Vec<&str> = pairs.iter().map(|(b, _)| *b).collect();
    blueprints.sort_unstable();
    blueprints.dedup();
    blueprints
        .into_iter()
        .map(|blueprint| (blueprint, pairs.iter().filter(|(b, _)| *b == blueprint).map(|(_, i)| *i).collect()))
        .collect()
}
