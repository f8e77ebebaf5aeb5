//! The catalog service: blueprint and entity writes with their changes, reads and search.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use wharf_core::Error as DomainError;
use wharf_core::blueprint::{Audited, Blueprint, BlueprintDef, patch_json};
use wharf_core::change::{Change, ResourceType, Trigger};
use wharf_core::entity::{Entity, EntityInput, Planned, WriteMode, check_bulk_size, plan_write};
use wharf_core::search::{Candidates, Direction, Query, SEARCH_LIMITS, SearchPage, SearchSpend, cursor_after};
use wharf_ids::{NewChange, new_entity_identifier};
use wharf_store::{AuditFilter, CatalogTx, Readiness, Store, Tx};

use crate::{Error, Result};

pub mod answer;
pub use answer::AnswerShape;
pub(crate) use answer::Answerer;
pub mod committer;
use committer::{Done, EntityJob, WriteJob};
pub(crate) mod prefetch;

/// Options of an entity write (Port's query parameters).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Create related entities that do not exist yet (with only an identifier).
    pub create_missing_related_entities: bool,
    /// Validate and return the result without writing.
    pub validation_only: bool,
}

/// What an entity write did.
#[derive(Debug, Clone)]
pub struct EntityWrite {
    pub entity: Entity,
    pub created: bool,
    /// Whether anything was stored (false for no-op writes and validation-only).
    pub written: bool,
    /// Whether the write changes the entity (true for validation-only writes that would).
    pub changed: bool,
}

/// Blueprints and entities of every organization.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    /// Where the API's entity writes go: group commit ([`committer`]).
    entities: committer::EntitySubmitter,
    /// How reads answer their entities ([`Answerer::answer`]).
    answerer: Answerer,
}

impl Catalog {
    /// Whether the store answers, is migrated and can be written (`GET /readyz`): an answer
    /// within [`READINESS_WAIT`], or `Unavailable`, so a probe during an outage is answered
    /// before a load balancer gives up on it.
    pub async fn readiness(&self) -> Result<Readiness> {
        match tokio::time::timeout(READINESS_WAIT, self.store.readiness()).await {
            Ok(readiness) => Ok(readiness?),
            Err(_) => Err(Error::Unavailable(format!("the database did not answer within {READINESS_WAIT:?}"))),
        }
    }

    /// The organization's changes the router set aside, newest first (`GET /v1/changes/parked`).
    pub async fn parked_changes(&self, org: &str, limit: u32) -> Result<Vec<wharf_store::ParkedChange>> {
        Ok(self.store.parked_changes(org, limit).await?)
    }
}

fn blueprint_not_found(identifier: &str) -> Error {
    DomainError::not_found("blueprint_not_found", format!("blueprint `{identifier}` was not found")).into()
}

fn entity_not_found(blueprint: &str, identifier: &str) -> Error {
    DomainError::not_found("entity_not_found", format!("entity `{identifier}` of blueprint `{blueprint}` was not found")).into()
}

/// An entity document as the committer's job: read here, on the request's task.
fn entity_job(
    blueprint: &str,
    identifier: Option<&str>,
    doc: &Value,
    mode: WriteMode,
    options: WriteOptions,
) -> Result<WriteJob> {
    let input = EntityInput::parse(doc, blueprint)?;
    let identifier = identifier.map(str::to_owned).or_else(|| input.identifier.clone()).unwrap_or_else(new_entity_identifier);
    Ok(WriteJob { blueprint: blueprint.to_owned(), identifier, input, mode, options })
}

/// `entity` as stored: without the computed values [`Catalog::with_computed`] gave it.
fn without_computed(mut entity: Entity, computing: &HashMap<String, BlueprintDef>) -> Entity {
    if let Some(def) = computing.get(&entity.blueprint) {
        entity.properties.retain(|name, _| def.computed(name).is_none());
    }
    entity
}

/// Checks that every mirror property of `def` resolves against the organization's
/// blueprints (and `def` itself, for a relation to its own blueprint).
async fn check_mirror_paths(tx: &mut Tx, org: &str, def: &BlueprintDef) -> Result<()> {
    if def.mirror_properties.is_empty() {
        return Ok(());
    }
    let all = tx.blueprints(org).await?;
    let find = |name: &str| all.iter().find(|b| b.identifier() == name).map(|b| &b.def);
    for name in def.mirror_properties.keys() {
        wharf_core::mirror::resolve(def, name, &find)?;
    }
    Ok(())
}

/// `def`, once its calculation properties compile (on a jq thread: the compiler recurses).
async fn compiled(def: BlueprintDef) -> Result<BlueprintDef> {
    if def.calculation_properties.is_empty() {
        return Ok(def);
    }
    crate::jq_pool::run(move || wharf_core::calculation::check_programs(&def).map(|()| def)).await?.map_err(Error::from)
}

/// A committer answers one outcome per job, of the job's kind; this is the error for a
/// broken promise (a bug), never a client's mistake.
fn missing_outcome() -> Error {
    Error::Unavailable("the entity committer's answer does not match the writes asked".into())
}

/// A write job's outcome as the write it did.
fn written(outcome: Result<Done>) -> Result<EntityWrite> {
    match outcome? {
        Done::Written(write) => Ok(write),
        Done::Deleted => Err(missing_outcome()),
    }
}

impl Catalog {
    /// The catalog, and the committer of its entity writes (the node runs it).
    pub fn new(store: Store) -> (Self, committer::EntityCommitter) {
        let (entities, committer) = committer::channel(store.clone());
        (Self { answerer: Answerer::new(store.clone()), store, entities }, committer)
    }

    // ---- blueprints -------------------------------------------------------------------

    pub async fn blueprint(&self, org: &str, identifier: &str) -> Result<Blueprint> {
        self.store.blueprint(org, identifier).await?.ok_or_else(|| blueprint_not_found(identifier))
    }

    pub async fn blueprints(&self, org: &str) -> Result<Vec<Blueprint>> {
        Ok(self.store.blueprints(org).await?)
    }

    /// `POST /v1/blueprints`.
    pub async fn create_blueprint(&self, trigger: &Trigger, doc: Value) -> Result<Blueprint> {
        let def = compiled(BlueprintDef::parse(doc)?).await?;
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("blueprint/{}", def.identifier)).await?;
        if tx.blueprint(org, &def.identifier).await?.is_some() {
            return Err(
                DomainError::conflict("blueprint_exists", format!("blueprint `{}` already exists", def.identifier)).into()
            );
        }
        check_relation_targets(&mut tx, org, &def).await?;
        check_mirror_paths(&mut tx, org, &def).await?;
        let blueprint = Blueprint { def, audited: Audited::new(&trigger.by, trigger.at) };
        tx.put_blueprint(org, &blueprint).await?;
        record(
            &mut tx,
            Change::new(ResourceType::Blueprint, blueprint.identifier(), None, trigger, None, Some(blueprint.to_json())),
        )
        .await?;
        tx.commit().await?;
        Ok(blueprint)
    }

    /// `PUT /v1/blueprints/{id}`: the document replaces the definition.
    pub async fn replace_blueprint(&self, trigger: &Trigger, identifier: &str, doc: Value) -> Result<Blueprint> {
        self.update_blueprint(trigger, identifier, |_| Ok(doc)).await
    }

    /// `PATCH /v1/blueprints/{id}`: the document is merged into the definition.
    pub async fn patch_blueprint(&self, trigger: &Trigger, identifier: &str, patch: Value) -> Result<Blueprint> {
        self.update_blueprint(trigger, identifier, |current| {
            patch_json(&serde_json::to_value(&current.def).unwrap_or_default(), &patch)
        })
        .await
    }

    async fn update_blueprint(
        &self,
        trigger: &Trigger,
        identifier: &str,
        new_doc: impl FnOnce(&Blueprint) -> Result<Value, DomainError>,
    ) -> Result<Blueprint> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("blueprint/{identifier}")).await?;
        let current = tx.blueprint(org, identifier).await?.ok_or_else(|| blueprint_not_found(identifier))?;
        let def = compiled(BlueprintDef::parse_update(new_doc(&current)?, current.identifier())?).await?;
        if def.identifier != identifier {
            return Err(DomainError::invalid(
                "invalid_blueprint",
                format!(
                    "`identifier` is `{}`, but the route names `{identifier}`; blueprint identifiers cannot be changed",
                    def.identifier
                ),
            )
            .into());
        }
        def.check_update_of(&current.def)?;
        check_relation_targets(&mut tx, org, &def).await?;
        check_mirror_paths(&mut tx, org, &def).await?;
        let updated = Blueprint { def, audited: current.audited.touched(&trigger.by, trigger.at) };
        if updated.def == current.def {
            return Ok(current);
        }
        tx.put_blueprint(org, &updated).await?;
        strip_removed_fields(&mut tx, org, &current, &updated).await?;
        let change =
            Change::new(ResourceType::Blueprint, identifier, None, trigger, Some(current.to_json()), Some(updated.to_json()));
        record(&mut tx, change).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// `DELETE /v1/blueprints/{id}`: refused while entities exist unless `delete_entities`, and
    /// while another blueprint's relation targets it.
    pub async fn delete_blueprint(&self, trigger: &Trigger, identifier: &str, delete_entities: bool) -> Result<()> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("blueprint/{identifier}")).await?;
        let blueprint = tx.blueprint(org, identifier).await?.ok_or_else(|| blueprint_not_found(identifier))?;
        for other in tx.blueprints(org).await? {
            if other.identifier() == identifier {
                continue;
            }
            if let Some((name, _)) = other.def.relations.iter().find(|(_, r)| r.target == identifier) {
                return Err(DomainError::conflict(
                    "blueprint_in_use",
                    format!("blueprint `{identifier}` is the target of relation `{name}` of blueprint `{}`; remove that relation first", other.identifier()),
                )
                .into());
            }
        }
        let count = tx.count_entities(org, identifier).await?;
        if count > 0 && !delete_entities {
            return Err(DomainError::conflict(
                "blueprint_has_entities",
                format!("blueprint `{identifier}` has {count} entities; delete them first or pass ?delete_entities=true"),
            )
            .into());
        }
        for entity in tx.entities_of(org, identifier).await? {
            tx.delete_entity(org, identifier, &entity.identifier).await?;
            let change =
                Change::new(ResourceType::Entity, identifier, Some(&entity.identifier), trigger, Some(entity.to_json()), None);
            record(&mut tx, change).await?;
        }
        tx.delete_blueprint(org, identifier).await?;
        record(&mut tx, Change::new(ResourceType::Blueprint, identifier, None, trigger, Some(blueprint.to_json()), None)).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- entities ---------------------------------------------------------------------

    /// The blueprints a search reads (`searched`, else those of `scope`, else every one) that
    /// have a mirror or calculation property one of `query`'s rules names, each with only what
    /// the rules need ([`BlueprintDef::computing_for`]).
    async fn computed_in_rules(
        &self,
        org: &str,
        query: &Query,
        searched: Option<&Blueprint>,
        scope: Option<&[String]>,
    ) -> Result<HashMap<String, BlueprintDef>> {
        let named = query.properties();
        if named.is_empty() {
            return Ok(HashMap::new());
        }
        let computing = |def: &BlueprintDef| def.computing_for(&named).map(|def| (def.identifier.clone(), def));
        Ok(match searched {
            Some(searched) => computing(&searched.def).into_iter().collect(),
            None => {
                let all = self.store.blueprints(org).await?;
                let searched = |b: &&Blueprint| scope.is_none_or(|scope| scope.iter().any(|s| s == b.identifier()));
                all.iter().filter(searched).filter_map(|b| computing(&b.def)).collect()
            }
        })
    }

    /// `candidates` with the computed values of their blueprints among `computing` in their
    /// `properties`, for a search's rules to read.
    async fn with_computed(
        &self,
        org: &str,
        candidates: Vec<Entity>,
        computing: &HashMap<String, BlueprintDef>,
    ) -> Result<Vec<Entity>> {
        if computing.is_empty() || !candidates.iter().any(|e| computing.contains_key(&e.blueprint)) {
            return Ok(candidates);
        }
        let shape = AnswerShape { computed: true, relation_titles: false };
        let docs = self.answerer.shaped(org, candidates.clone(), shape, computing.clone()).await?;
        Ok(candidates
            .into_iter()
            .zip(docs)
            .map(|(mut entity, doc)| {
                if let (Some(def), Value::Object(mut doc)) = (computing.get(&entity.blueprint), doc)
                    && let Some(Value::Object(properties)) = doc.remove("properties")
                {
                    entity.properties.extend(properties.into_iter().filter(|(name, _)| def.computed(name).is_some()));
                }
                entity
            })
            .collect())
    }

    /// One entity, answered in `shape` ([`Answerer::answer`]).
    pub async fn entity(&self, org: &str, blueprint: &str, identifier: &str, shape: AnswerShape) -> Result<Value> {
        let Some(read) = self.store.blueprint(org, blueprint).await? else {
            return Err(blueprint_not_found(blueprint));
        };
        let entity =
            self.store.entity(org, blueprint, identifier).await?.ok_or_else(|| entity_not_found(blueprint, identifier))?;
        let answered = self.answerer.answer(org, vec![entity], shape, Some(read)).await?;
        Ok(answered.into_iter().next().unwrap_or_default())
    }

    /// One page of a blueprint's entities in identifier order, answered in `shape`
    /// ([`Answerer::answer`]), and the cursor of the next.
    pub async fn entities_page(
        &self,
        org: &str,
        blueprint: &str,
        from: Option<&str>,
        limit: u32,
        shape: AnswerShape,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let Some(read) = self.store.blueprint(org, blueprint).await? else {
            return Err(blueprint_not_found(blueprint));
        };
        let mut page = self.store.entities_page(org, blueprint, from, limit.saturating_add(1)).await?;
        let next = if page.len() > limit as usize {
            page.truncate(limit as usize);
            page.last().map(|e| e.identifier.clone())
        } else {
            None
        };
        Ok((self.answerer.answer(org, page, shape, Some(read)).await?, next))
    }

    /// Writes one entity. `identifier` is the route's (`PATCH`/`PUT`); for `POST` it comes
    /// from the document, or a new one is generated. Committed with other requests' writes
    /// ([`committer`]), answered after the commit.
    pub async fn write_entity(
        &self,
        trigger: &Trigger,
        blueprint: &str,
        identifier: Option<&str>,
        doc: &Value,
        mode: WriteMode,
        options: WriteOptions,
    ) -> Result<EntityWrite> {
        let job = entity_job(blueprint, identifier, doc, mode, options)?;
        if options.validation_only {
            return self.validate(trigger, job).await;
        }
        let mut outcomes = self.entities.commit(trigger.clone(), vec![EntityJob::Write(job)]).await?;
        written(outcomes.pop().unwrap_or_else(|| Err(missing_outcome())))
    }

    /// A write checked against every rule and not stored (`validation_only`): in a
    /// transaction of its own, rolled back.
    async fn validate(&self, trigger: &Trigger, job: WriteJob) -> Result<EntityWrite> {
        let mut tx = self.store.begin().await?;
        job.run(&mut tx, &mut BlueprintCache::default(), trigger).await
    }

    /// `DELETE /v1/blueprints/{bp}/entities/{id}`.
    ///
    /// Entities that depend on it through a *required* relation would be left invalid: without
    /// `delete_dependents` the delete is refused (409); with it, they are deleted too
    /// (recursively), as is every other entity that relates to it directly. Optional
    /// references from entities that stay are removed, and recorded as updates.
    pub async fn delete_entity(
        &self,
        trigger: &Trigger,
        blueprint: &str,
        identifier: &str,
        delete_dependents: bool,
    ) -> Result<()> {
        let job = EntityJob::Delete { blueprint: blueprint.to_owned(), identifier: identifier.to_owned(), delete_dependents };
        let mut outcomes = self.entities.commit(trigger.clone(), vec![job]).await?;
        outcomes.pop().unwrap_or_else(|| Err(missing_outcome())).map(drop)
    }

    /// Entities matching `query`, within `blueprint` when the route names one, ordered by
    /// blueprint and identifier: those after `page.after`, at most `page.limit` of them, with
    /// the `next` of the page when more match.
    ///
    /// One search, one budget ([`SEARCH_LIMITS`]): the `relatedTo` walks and the matching of
    /// every page of candidates spend it together, and the wall time counts from here, store
    /// reads included. Crossing it is a 422 `search_budget_exceeded` naming the limit.
    /// Invariant: the search holds its matches, the `relatedTo` sets, the keys of the
    /// candidates its query names, and one page of [`SEARCH_PAGE`] candidates, never a whole
    /// blueprint. Candidates the query names are read by key, the others a page of the
    /// blueprint at a time: either way every candidate goes through the whole query, so
    /// naming them changes what is read, never what matches.
    pub async fn search(
        &self,
        org: &str,
        blueprint: Option<&str>,
        query: Query,
        page: &SearchPage,
    ) -> Result<(Vec<Entity>, Option<String>)> {
        let searched = self.searched(org, blueprint).await?;
        self.search_in(org, searched.as_ref(), query, page).await
    }

    /// [`Catalog::search`], its matches answered in `shape` ([`Answerer::answer`], with the
    /// blueprint the search read): the API's searches.
    pub async fn search_answer(
        &self,
        org: &str,
        blueprint: Option<&str>,
        query: Query,
        page: &SearchPage,
        shape: AnswerShape,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let searched = self.searched(org, blueprint).await?;
        let (found, next) = self.search_in(org, searched.as_ref(), query, page).await?;
        Ok((self.answerer.answer(org, found, shape, searched).await?, next))
    }

    /// The route's blueprint of a search, read once: it must exist, and it names a relation's
    /// target.
    async fn searched(&self, org: &str, blueprint: Option<&str>) -> Result<Option<Blueprint>> {
        match blueprint {
            Some(bp) => Ok(Some(self.store.blueprint(org, bp).await?.ok_or_else(|| blueprint_not_found(bp))?)),
            None => Ok(None),
        }
    }

    async fn search_in(
        &self,
        org: &str,
        searched: Option<&Blueprint>,
        mut query: Query,
        page: &SearchPage,
    ) -> Result<(Vec<Entity>, Option<String>)> {
        let started = Instant::now();
        let time_left = || SEARCH_LIMITS.time.saturating_sub(started.elapsed());
        let mut spent = SearchSpend::default();
        let scope = match searched {
            Some(bp) => Some(vec![bp.identifier().to_owned()]),
            None => query.blueprint_scope(),
        };
        // The blueprints searched whose computed values a rule reads: those are computed for
        // every page of candidates before the rules match.
        let computing = self.computed_in_rules(org, &query, searched, scope.as_deref()).await?;
        if !query.related_rules_mut().is_empty() {
            let blueprints: HashMap<String, Blueprint> =
                self.store.blueprints(org).await?.into_iter().map(|b| (b.identifier().to_owned(), b)).collect();
            for rule in query.related_rules_mut() {
                let seeds: Vec<(String, String)> =
                    rule.identifiers.iter().map(|id| (rule.blueprint.clone(), id.clone())).collect();
                let mut related = HashSet::new();
                let walk = Walk { org, required_only: rule.required, blueprints: &blueprints };
                if matches!(rule.direction, Direction::Upstream | Direction::Both) {
                    related.extend(self.reachable(&walk, &seeds, true, &mut spent, &time_left).await?);
                }
                if matches!(rule.direction, Direction::Downstream | Direction::Both) {
                    related.extend(self.reachable(&walk, &seeds, false, &mut spent, &time_left).await?);
                }
                rule.matches = Some(related);
            }
        }
        let now = crate::now();
        let mut found = Vec::new();
        let mut source = match self.named_candidates(org, scope.as_deref(), searched, &query, page.after.as_ref()).await? {
            Some(keys) => {
                // Reading the index of relations or the named entities: a step each.
                spent.charge(keys.len() as u64, 0, time_left())?;
                CandidateSource::Named(keys.into())
            }
            None => CandidateSource::Scan { after: page.after.clone() },
        };
        loop {
            let (candidates, more) = self.next_candidates(org, scope.as_deref(), &mut source).await?;
            let candidates = self.with_computed(org, candidates, &computing).await?;
            // The matching below checks the time only every 1,024 rules: a slow store read
            // counts before it.
            spent.charge(0, 0, time_left())?;
            // CPU work, off the async workers (a page may take most of the search's second).
            let time = time_left();
            let (back, selected, spent_now) = crate::jq_pool::run(move || {
                let mut spent = spent;
                let selected = query.select(&candidates, now, &mut spent, time);
                (query, selected, spent)
            })
            .await?;
            (query, spent) = (back, spent_now);
            found.extend(selected?.into_iter().map(|entity| without_computed(entity, &computing)));
            // One match past the page answered says that another page follows; the search
            // stops there.
            if let Some(limit) = page.limit
                && found.len() > limit
            {
                found.truncate(limit);
                let next = found.last().map(cursor_after);
                return Ok((found, next));
            }
            if !more {
                return Ok((found, None));
            }
        }
    }

    /// The `(blueprint, identifier)` of every entity `query` can match, after `after`, in the
    /// search's order, when its candidates are named ([`Query::candidates`]) and can be read
    /// without scanning: the identifiers named, in each blueprint searched; or the entities
    /// whose relation points at an entity, from the index of relations, when one blueprint is
    /// searched (`searched`, when the route names it, or read here). `None`: the search reads
    /// every page of its blueprints.
    async fn named_candidates(
        &self,
        org: &str,
        scope: Option<&[String]>,
        searched: Option<&Blueprint>,
        query: &Query,
        after: Option<&(String, String)>,
    ) -> Result<Option<Vec<(String, String)>>> {
        let Some(candidates) = query.candidates() else { return Ok(None) };
        let mut keys: Vec<(String, String)> = match candidates {
            Candidates::Identifiers(identifiers) => {
                let blueprints = match scope {
                    Some(scope) => scope.to_vec(),
                    None => self.store.blueprints(org).await?.iter().map(|b| b.identifier().to_owned()).collect(),
                };
                blueprints.iter().flat_map(|bp| identifiers.iter().map(move |id| (bp.clone(), id.clone()))).collect()
            }
            Candidates::PointingAt { relation, target } => {
                let [blueprint] = scope.unwrap_or_default() else { return Ok(None) };
                let target_of = |def: &Blueprint| def.relation(&relation).map(|r| r.target.clone());
                let target_blueprint = match searched {
                    Some(def) => target_of(def),
                    None => self.store.blueprint(org, blueprint).await?.as_ref().and_then(target_of),
                };
                let Some(target_blueprint) = target_blueprint else { return Ok(None) };
                let edges = self.store.edges(org, &[(target_blueprint, target)], false).await?;
                edges
                    .into_iter()
                    .filter(|edge| edge.relation == relation && &edge.blueprint == blueprint)
                    .map(|edge| (edge.blueprint, edge.identifier))
                    .collect()
            }
        };
        keys.sort_unstable();
        keys.dedup();
        if let Some(after) = after {
            keys.retain(|key| key > after);
        }
        Ok(Some(keys))
    }

    /// The next page of a search's candidates, in its order, and whether more may follow.
    async fn next_candidates(
        &self,
        org: &str,
        scope: Option<&[String]>,
        source: &mut CandidateSource,
    ) -> Result<(Vec<Entity>, bool)> {
        match source {
            CandidateSource::Scan { after } => {
                let from = after.as_ref().map(|(bp, id)| (bp.as_str(), id.as_str()));
                let page = self.store.entities_in_page(org, scope, from, SEARCH_PAGE).await?;
                *after = page.last().map(|e| (e.blueprint.clone(), e.identifier.clone()));
                let full = page.len() >= SEARCH_PAGE as usize;
                Ok((page, full))
            }
            CandidateSource::Named(keys) => {
                let take = keys.len().min(SEARCH_PAGE as usize);
                let chunk: Vec<(String, String)> = keys.drain(..take).collect();
                let pairs: Vec<(&str, &str)> = chunk.iter().map(|(bp, id)| (bp.as_str(), id.as_str())).collect();
                let mut page = self.store.entities_named(org, &pairs).await?;
                page.sort_unstable_by(|a, b| (&a.blueprint, &a.identifier).cmp(&(&b.blueprint, &b.identifier)));
                Ok((page, !keys.is_empty()))
            }
        }
    }

    /// Entities reachable from `seeds` along relations (forward when `outgoing`), one level
    /// of the graph per store query; the seeds themselves are not included. Every edge read
    /// is a step of the search's budget, and what the walk keeps is its memory.
    async fn reachable(
        &self,
        walk: &Walk<'_>,
        seeds: &[(String, String)],
        outgoing: bool,
        spent: &mut SearchSpend,
        time_left: &impl Fn() -> std::time::Duration,
    ) -> Result<HashSet<(String, String)>> {
        let mut seen: HashSet<(String, String)> = seeds.iter().cloned().collect();
        let mut found = HashSet::new();
        let mut frontier = seeds.to_vec();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            let edges = self.store.edges(walk.org, &frontier, outgoing).await?;
            let mut kept_bytes = 0;
            for edge in &edges {
                if walk.required_only
                    && !walk.blueprints.get(&edge.blueprint).and_then(|b| b.relation(&edge.relation)).is_some_and(|r| r.required)
                {
                    continue;
                }
                let node = if outgoing {
                    (edge.target_blueprint.clone(), edge.target.clone())
                } else {
                    (edge.blueprint.clone(), edge.identifier.clone())
                };
                if seen.insert(node.clone()) {
                    // Held three times (`seen`, `found`, the next frontier).
                    kept_bytes += 3 * (node.0.len() + node.1.len() + NODE_OVERHEAD_BYTES);
                    found.insert(node.clone());
                    next.push(node);
                }
            }
            spent.charge(edges.len() as u64, kept_bytes, time_left())?;
            frontier = next;
        }
        Ok(found)
    }

    /// Bulk writes (`POST …/entities/bulk`): 1 to `BULK_LIMIT` entities, each written or
    /// refused on its own, so that one invalid entity does not stop the others (Port answers
    /// 207 then); those written are committed together.
    pub async fn write_entities(
        &self,
        trigger: &Trigger,
        blueprint: &str,
        docs: &[Value],
        mode: WriteMode,
        options: WriteOptions,
    ) -> Result<Vec<Result<EntityWrite>>> {
        check_bulk_size(docs.len())?;
        let mut results: Vec<Option<Result<EntityWrite>>> = Vec::with_capacity(docs.len());
        let mut jobs = Vec::with_capacity(docs.len());
        for doc in docs {
            match entity_job(blueprint, None, doc, mode, options) {
                Ok(job) if options.validation_only => results.push(Some(self.validate(trigger, job).await)),
                Ok(job) => {
                    jobs.push(EntityJob::Write(job));
                    results.push(None);
                }
                Err(err) => results.push(Some(Err(err))),
            }
        }
        let mut outcomes =
            if jobs.is_empty() { Vec::new() } else { self.entities.commit(trigger.clone(), jobs).await? }.into_iter();
        Ok(results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| written(outcomes.next().unwrap_or_else(|| Err(missing_outcome())))))
            .collect())
    }

    /// `GET /v1/audit-log`.
    pub async fn audit_log(&self, org: &str, filter: &AuditFilter) -> Result<Vec<Change>> {
        Ok(self.store.audit(org, filter).await?)
    }
}

/// How long a readiness probe waits for the store: under the usual 5 s of a load
/// balancer's health check (a request waits up to 5 s for a connection).
pub const READINESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How many candidates a search reads from the store at a time ([`Catalog::search`]).
pub const SEARCH_PAGE: u32 = 500;

/// Where a search reads its candidates from: every page of its blueprints after a position,
/// or the entities its query names (what is left of them, in the search's order).
enum CandidateSource {
    Scan { after: Option<(String, String)> },
    Named(VecDeque<(String, String)>),
}

/// What one `(blueprint, identifier)` pair costs a `relatedTo` walk besides its text: two
/// `String`s' headers and a hash-set slot, about.
const NODE_OVERHEAD_BYTES: usize = 64;

/// What a `relatedTo` walk follows.
struct Walk<'a> {
    org: &'a str,
    /// Follow only relations marked `required`.
    required_only: bool,
    blueprints: &'a HashMap<String, Blueprint>,
}

/// Blueprints read once per transaction: a mapping batch writes many entities of a few
/// blueprints.
#[derive(Default)]
pub(crate) struct BlueprintCache(HashMap<String, Arc<Blueprint>>);

impl BlueprintCache {
    pub(crate) async fn get(&mut self, tx: &mut impl CatalogTx, org: &str, identifier: &str) -> Result<Arc<Blueprint>> {
        if let Some(found) = self.0.get(identifier) {
            return Ok(found.clone());
        }
        let found = Arc::new(tx.blueprint(org, identifier).await?.ok_or_else(|| blueprint_not_found(identifier))?);
        self.0.insert(identifier.to_owned(), found.clone());
        Ok(found)
    }
}

/// The lock a writer of an entity holds until its transaction ends ([`CatalogTx::lock`]).
pub(crate) fn entity_lock(blueprint: &str, identifier: &str) -> String {
    format!("entity/{blueprint}/{identifier}")
}

/// Writes one entity inside `tx` (not committed). Nothing is written when the result is
/// unchanged or `validation_only` is set (`written` says which). Every rule is checked
/// before the first write, so a refused write leaves `tx` as it was.
#[allow(clippy::too_many_arguments)] // the write's inputs, each distinct
pub(crate) async fn write_entity_in(
    tx: &mut impl CatalogTx,
    blueprints: &mut BlueprintCache,
    trigger: &Trigger,
    blueprint: &str,
    identifier: &str,
    input: EntityInput,
    mode: WriteMode,
    options: WriteOptions,
) -> Result<EntityWrite> {
    let org = &trigger.org_id;
    let bp = blueprints.get(tx, org, blueprint).await?;
    tx.lock(org, &entity_lock(blueprint, identifier)).await?;
    let existing = tx.entity(org, blueprint, identifier).await?;
    let planned = plan_write(&bp, identifier, existing, input, mode, &trigger.by, trigger.at)?;
    let (before, after, created) = match planned {
        Planned::Unchanged(entity) => return Ok(EntityWrite { entity, created: false, written: false, changed: false }),
        Planned::Create(after) => (None, after, true),
        Planned::Update { before, after } => (Some(*before), after, false),
    };
    let missing = missing_related(tx, org, &bp, &after, before.as_ref()).await?;
    if !missing.is_empty() && !options.create_missing_related_entities {
        let list: Vec<String> =
            missing.iter().map(|(rel, bp, id)| format!("`{id}` of blueprint `{bp}` (relation `{rel}`)")).collect();
        return Err(DomainError::invalid(
            "related_entity_not_found",
            format!(
                "related entities do not exist: {}; create them first or pass ?create_missing_related_entities=true",
                list.join(", ")
            ),
        )
        .into());
    }
    // Related entities created with only an identifier must still satisfy their blueprint
    // (a required property makes the write fail, naming why).
    let mut placeholders = Vec::with_capacity(missing.len());
    for (_, target_blueprint, target) in &missing {
        let target_bp = blueprints.get(tx, org, target_blueprint).await?;
        let planned = plan_write(&target_bp, target, None, EntityInput::default(), WriteMode::Create, &trigger.by, trigger.at)?;
        placeholders.push((target_bp, planned.entity().clone()));
    }
    if options.validation_only {
        return Ok(EntityWrite { entity: after, created, written: false, changed: true });
    }
    for (target_bp, placeholder) in placeholders {
        let mut change = Change::new(
            ResourceType::Entity,
            &placeholder.blueprint,
            Some(&placeholder.identifier),
            trigger,
            None,
            Some(placeholder.to_json()),
        );
        tx.put_entity_recorded(org, &target_bp, &placeholder, None, &mut change).await?;
    }
    let mut change = Change::new(
        ResourceType::Entity,
        blueprint,
        Some(identifier),
        trigger,
        before.as_ref().map(Entity::to_json),
        Some(after.to_json()),
    );
    tx.put_entity_recorded(org, &bp, &after, before.as_ref(), &mut change).await?;
    Ok(EntityWrite { entity: after, created, written: true, changed: true })
}

/// Deletes an entity inside `tx` (not committed), with the rules of
/// [`Catalog::delete_entity`]; false when it does not exist.
pub(crate) async fn delete_entity_in(
    tx: &mut impl CatalogTx,
    trigger: &Trigger,
    blueprint: &str,
    identifier: &str,
    delete_dependents: bool,
) -> Result<bool> {
    let org = &trigger.org_id;
    if tx.blueprint(org, blueprint).await?.is_none() {
        return Err(blueprint_not_found(blueprint));
    }
    tx.lock(org, &entity_lock(blueprint, identifier)).await?;
    if tx.entity(org, blueprint, identifier).await?.is_none() {
        return Ok(false);
    }
    let mut blueprints: HashMap<String, Blueprint> =
        tx.blueprints(org).await?.into_iter().map(|b| (b.identifier().to_owned(), b)).collect();
    let root = (blueprint.to_owned(), identifier.to_owned());
    let mut doomed: Vec<(String, String)> = vec![root.clone()];
    let mut seen: HashSet<(String, String)> = HashSet::from([root.clone()]);
    let mut unlinks: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let mut queue = VecDeque::from([root.clone()]);
    while let Some(node) = queue.pop_front() {
        for edge in tx.referrers(org, &node.0, &node.1).await? {
            let referrer = (edge.blueprint.clone(), edge.identifier.clone());
            if seen.contains(&referrer) {
                continue;
            }
            let required = blueprints.get(&edge.blueprint).and_then(|b| b.relation(&edge.relation)).is_some_and(|r| r.required);
            if required && !delete_dependents {
                return Err(DomainError::conflict(
                    "entity_has_dependents",
                    format!(
                        "entity `{}` of blueprint `{}` depends on `{}` through required relation `{}`; delete it first or pass ?delete_dependents=true",
                        edge.identifier, edge.blueprint, node.1, edge.relation
                    ),
                )
                .into());
            }
            if required || (delete_dependents && node == root) {
                seen.insert(referrer.clone());
                doomed.push(referrer.clone());
                queue.push_back(referrer);
            } else {
                unlinks.entry(referrer).or_default().push((edge.relation.clone(), node.1.clone()));
            }
        }
    }
    for ((ref_bp, ref_id), links) in unlinks {
        if seen.contains(&(ref_bp.clone(), ref_id.clone())) {
            continue;
        }
        let Some(before) = tx.entity(org, &ref_bp, &ref_id).await? else { continue };
        let mut after = before.clone();
        for (relation, target) in &links {
            after.unlink(relation, target);
        }
        after.audited = before.audited.touched(&trigger.by, trigger.at);
        let Some(bp) = blueprints.remove(&ref_bp) else { continue };
        tx.put_entity(org, &bp, &after, Some(&before)).await?;
        blueprints.insert(ref_bp.clone(), bp);
        let change =
            Change::new(ResourceType::Entity, &ref_bp, Some(&ref_id), trigger, Some(before.to_json()), Some(after.to_json()));
        record(tx, change).await?;
    }
    for (bp, id) in doomed {
        let Some(before) = tx.entity(org, &bp, &id).await? else { continue };
        tx.delete_entity(org, &bp, &id).await?;
        record(tx, Change::new(ResourceType::Entity, &bp, Some(&id), trigger, Some(before.to_json()), None)).await?;
    }
    Ok(true)
}

async fn record(tx: &mut impl CatalogTx, mut change: Change) -> Result<()> {
    tx.record_change(&mut change).await?;
    Ok(())
}

/// Every relation target must be an existing blueprint (or the blueprint itself).
async fn check_relation_targets(tx: &mut Tx, org: &str, def: &BlueprintDef) -> Result<()> {
    for target in def.relation_targets() {
        if tx.blueprint(org, target).await?.is_none() {
            let relation =
                def.relations.iter().find(|(_, r)| r.target == target).map(|(name, _)| name.as_str()).unwrap_or_default();
            return Err(DomainError::invalid(
                "invalid_blueprint",
                format!("`relations.{relation}.target` is `{target}`, which is not an existing blueprint"),
            )
            .into());
        }
    }
    Ok(())
}

/// `(relation, target blueprint, identifier)` for every relation target that does not exist,
/// in one query. Targets the stored version already had are not checked: deleting an entity
/// unlinks every reference to it, so they exist.
async fn missing_related(
    tx: &mut impl CatalogTx,
    org: &str,
    bp: &Blueprint,
    entity: &Entity,
    before: Option<&Entity>,
) -> Result<Vec<(String, String, String)>> {
    let mut wanted: Vec<(&str, &str, &str)> = Vec::new();
    for (name, relation) in &bp.def.relations {
        let known = before.map(|b| b.relation_targets(name)).unwrap_or_default();
        for id in entity.relation_targets(name) {
            let itself = relation.target == entity.blueprint && id == entity.identifier;
            let seen = wanted.iter().any(|(_, b, i)| *b == relation.target && *i == id);
            if !itself && !seen && !known.contains(&id) {
                wanted.push((name, &relation.target, id));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<(&str, &str)> = wanted.iter().map(|(_, b, i)| (*b, *i)).collect();
    let existing = tx.existing_pairs(org, &pairs).await?;
    Ok(wanted
        .into_iter()
        .filter(|(_, b, i)| !existing.contains(&((*b).to_owned(), (*i).to_owned())))
        .map(|(name, b, i)| (name.to_owned(), b.to_owned(), i.to_owned()))
        .collect())
}

/// After a blueprint update removed properties or relations, drops their values from the
/// blueprint's entities so that they stay valid. This is a schema migration, recorded by the
/// blueprint's own change rather than one change per entity.
async fn strip_removed_fields(tx: &mut Tx, org: &str, before: &Blueprint, after: &Blueprint) -> Result<()> {
    let removed_properties: Vec<&String> =
        before.def.schema.properties.keys().filter(|k| !after.def.schema.properties.contains_key(*k)).collect();
    let removed_relations: Vec<&String> = before.def.relations.keys().filter(|k| !after.def.relations.contains_key(*k)).collect();
    if removed_properties.is_empty() && removed_relations.is_empty() {
        return Ok(());
    }
    for mut entity in tx.entities_of(org, after.identifier()).await? {
        let previous = entity.clone();
        let mut changed = false;
        for name in &removed_properties {
            changed |= entity.properties.shift_remove(name.as_str()).is_some();
        }
        for name in &removed_relations {
            changed |= entity.relations.shift_remove(name.as_str()).is_some();
        }
        if changed {
            tx.put_entity(org, after, &entity, Some(&previous)).await?;
        }
    }
    Ok(())
}
