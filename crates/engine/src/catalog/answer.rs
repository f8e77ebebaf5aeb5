//! How a read answers its entities ([`AnswerShape`]): with the values of their blueprints'
//! mirror and calculation properties, and their related entities' titles. The catalog's reads
//! and searches answer through an [`Answerer`], and so does a run, for the entity it is about.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use wharf_core::Error as DomainError;
use wharf_core::blueprint::{Blueprint, BlueprintDef};
use wharf_core::calculation::{ANSWER_LIMITS, Calculations};
use wharf_core::entity::Entity;
use wharf_core::mirror::{Mirror, Reached};
use wharf_jq::ProgramCache;
use wharf_store::Store;

use crate::{Error, Result};

/// How a read answers its entities (Port's query parameters of the entity reads).
#[derive(Debug, Clone, Copy)]
pub struct AnswerShape {
    /// With the values of the blueprint's mirror and calculation properties in `properties`
    /// (unless `exclude_calculated_properties`).
    pub computed: bool,
    /// Each related entity as `{"identifier", "title"}` instead of its identifier
    /// (`attach_title_to_relation`).
    pub relation_titles: bool,
}

impl Default for AnswerShape {
    fn default() -> Self {
        Self { computed: true, relation_titles: false }
    }
}

/// The most related entities one answer may read for its mirror properties and relation
/// titles.
pub const MAX_RELATED: usize = 20_000;

fn too_many_related(entities: usize) -> Error {
    DomainError::invalid(
        "too_many_related",
        format!(
            "the mirror properties and relation titles of these {entities} entities reach more than {MAX_RELATED} related entities; ask for a smaller page (`limit`)"
        ),
    )
    .into()
}

/// What answers entities: reads the blueprints and related entities an answer needs and
/// computes its values (the calculations' programs compiled once, in its cache). Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct Answerer {
    store: Store,
    programs: Arc<ProgramCache>,
}

impl Answerer {
    pub(crate) fn new(store: Store) -> Self {
        Self { store, programs: Arc::new(ProgramCache::default()) }
    }

    /// Entities as an answer carries them (`shape`): each one's document with the values its
    /// blueprint's mirror and calculation properties give under `properties`, and its related
    /// entities' titles beside their identifiers; of `known` (already read) or of blueprints
    /// read here. The entities the mirrors and relations reach are read first, a relation
    /// depth at a time for the whole answer; the calculations run on a jq thread, each within
    /// its budget and all of them within the answer's ([`wharf_core::calculation`]), and see
    /// the mirrored values.
    pub(crate) async fn answer(
        &self,
        org: &str,
        entities: Vec<Entity>,
        shape: AnswerShape,
        known: Option<Blueprint>,
    ) -> Result<Vec<Value>> {
        // The blueprints of the page that change how their entities are answered.
        let mut shaping: HashMap<String, BlueprintDef> = HashMap::new();
        if shape.computed || shape.relation_titles {
            let mut read: HashSet<&str> = HashSet::new();
            let mut known = known;
            for entity in &entities {
                if !read.insert(&entity.blueprint) {
                    continue;
                }
                let blueprint = match known.take_if(|b| b.identifier() == entity.blueprint) {
                    Some(blueprint) => Some(blueprint),
                    None => self.store.blueprint(org, &entity.blueprint).await?,
                };
                if let Some(Blueprint { def, .. }) = blueprint {
                    let computed = !(def.calculation_properties.is_empty() && def.mirror_properties.is_empty());
                    if (shape.computed && computed) || (shape.relation_titles && !def.relations.is_empty()) {
                        shaping.insert(entity.blueprint.clone(), def);
                    }
                }
            }
        }
        self.shaped(org, entities, shape, shaping).await
    }

    /// Entities answered in `shape`, `shaping` holding the blueprints (among theirs) whose
    /// computed values or relation titles the answer carries.
    pub(crate) async fn shaped(
        &self,
        org: &str,
        entities: Vec<Entity>,
        shape: AnswerShape,
        shaping: HashMap<String, BlueprintDef>,
    ) -> Result<Vec<Value>> {
        if shaping.is_empty() {
            return Ok(entities.iter().map(Entity::to_json).collect());
        }
        let mut mirrors: HashMap<String, Vec<Mirror>> = HashMap::new();
        let mut reached = Reached::default();
        if shape.computed && shaping.values().any(|def| !def.mirror_properties.is_empty()) {
            let all = self.store.blueprints(org).await?;
            let find = |name: &str| all.iter().find(|b| b.identifier() == name).map(|b| &b.def);
            for (name, def) in &shaping {
                mirrors.insert(name.clone(), wharf_core::mirror::mirrors(def, &find));
            }
            self.read_mirrored(org, &entities, &mirrors, &mut reached).await?;
        }
        if shape.relation_titles {
            self.read_related(org, &entities, &shaping, &mut reached).await?;
        }
        let calculating = shape.computed && shaping.values().any(|def| !def.calculation_properties.is_empty());
        let build = move |programs: &ProgramCache| -> Vec<Value> {
            let calculations: HashMap<&str, Calculations> = if shape.computed {
                shaping.iter().map(|(name, def)| (name.as_str(), Calculations::of(def, programs))).collect()
            } else {
                HashMap::new()
            };
            wharf_jq::with_budget(ANSWER_LIMITS, || {
                entities
                    .iter()
                    .map(|entity| {
                        let mut doc = entity.to_json();
                        let Some(def) = shaping.get(&entity.blueprint) else { return doc };
                        if shape.computed {
                            let resolved = mirrors.get(&entity.blueprint).map_or(&[][..], Vec::as_slice);
                            wharf_core::mirror::add_to(def, resolved, entity, &reached, &mut doc);
                        }
                        if let Some(calculations) = calculations.get(entity.blueprint.as_str()) {
                            calculations.add_to(&mut doc);
                        }
                        if shape.relation_titles {
                            doc["relations"] = Value::Object(wharf_core::entity::relations_with_titles(entity, def, &reached));
                        }
                        doc
                    })
                    .collect()
            })
            .value
        };
        if !calculating {
            // No jq to run: no hand-off.
            return Ok(build(&self.programs));
        }
        let programs = self.programs.clone();
        crate::jq_pool::run(move || build(&programs)).await
    }

    /// Reads the entities the relations of `entities` name (those of the `blueprints` given)
    /// into `reached`, in one read, for their titles. Refused (422) past [`MAX_RELATED`].
    async fn read_related(
        &self,
        org: &str,
        entities: &[Entity],
        blueprints: &HashMap<String, BlueprintDef>,
        reached: &mut Reached,
    ) -> Result<()> {
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        for entity in entities {
            let Some(def) = blueprints.get(&entity.blueprint) else { continue };
            for (name, relation) in &def.relations {
                for id in entity.relation_targets(name) {
                    if !reached.contains(&relation.target, id) {
                        wanted.insert((relation.target.clone(), id.to_owned()));
                    }
                }
            }
        }
        self.read_into(org, entities.len(), &wanted, reached).await
    }

    /// Reads the `wanted` entities into `reached`, in one read; refused (422) when `reached`
    /// would hold more than [`MAX_RELATED`] (for an answer of `answered` entities).
    async fn read_into(
        &self,
        org: &str,
        answered: usize,
        wanted: &BTreeSet<(String, String)>,
        reached: &mut Reached,
    ) -> Result<()> {
        if reached.len() + wanted.len() > MAX_RELATED {
            return Err(too_many_related(answered));
        }
        let pairs: Vec<(&str, &str)> = wanted.iter().map(|(bp, id)| (bp.as_str(), id.as_str())).collect();
        for found in self.store.entities_named(org, &pairs).await? {
            reached.insert(found);
        }
        Ok(())
    }

    /// Reads the entities the `mirrors` of `entities` reach into `reached`: at each depth, every
    /// entity the paths reach next, in one read. Refused (422) past [`MAX_RELATED`] entities:
    /// the page asked for is too large for its mirrors.
    async fn read_mirrored(
        &self,
        org: &str,
        entities: &[Entity],
        mirrors: &HashMap<String, Vec<Mirror>>,
        reached: &mut Reached,
    ) -> Result<()> {
        let deepest = mirrors.values().flatten().map(|m| m.hops.len()).max().unwrap_or(0);
        for depth in 0..deepest {
            let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
            for entity in entities {
                for mirror in mirrors.get(&entity.blueprint).into_iter().flatten().filter(|m| m.hops.len() > depth) {
                    wanted
                        .extend(mirror.reaches(entity, depth, reached).into_iter().filter(|(bp, id)| !reached.contains(bp, id)));
                }
            }
            if wanted.is_empty() {
                break;
            }
            self.read_into(org, entities.len(), &wanted, reached).await?;
        }
        Ok(())
    }
}
