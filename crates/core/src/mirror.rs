//! Port's mirror properties: a blueprint's `mirrorProperties`, each a path of relations that
//! ends at a property (or meta-property) of the entities it reaches, whose value every read of
//! the entity carries in its `properties`.
//!
//! ```json
//! "mirrorProperties": {
//!   "ownerSlack": {"title": "Owner's Slack", "path": "owner.slack"},
//!   "domain": {"path": "system.domain.$title"}
//! }
//! ```
//!
//! The value is the field of the entity the path reaches, or `null` when a relation on the way
//! is empty or its entity has no such field. Through a `many` relation the path reaches many
//! entities: the value is then an array of their fields, in the order of the relations, each
//! entity once, with entities that have none left out. Like calculated values ([`crate::calculation`]), mirrored
//! values are read, never stored; calculations see them.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Error;
use crate::blueprint::BlueprintDef;
use crate::entity::Entity;

const CODE: &str = "invalid_blueprint";

/// The most relations one path may follow.
pub const MAX_HOPS: usize = 8;

/// The meta-properties a path may end at (`$identifier`, …): the entity's own fields.
pub const META_PROPERTIES: &[&str] =
    &["identifier", "title", "icon", "blueprint", "team", "createdAt", "createdBy", "updatedAt", "updatedBy"];

/// One mirror property as written (other keys Port accepts are kept as written).
#[derive(Debug, Clone, Deserialize)]
struct MirrorDef {
    path: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// What a path ends at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A property of the schema of the blueprint reached.
    Property(String),
    /// A meta-property: one of [`META_PROPERTIES`].
    Meta(&'static str),
}

/// A mirror property with its path resolved against the blueprints it crosses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub name: String,
    /// Each relation followed, with the blueprint of the entities it reaches.
    pub hops: Vec<(String, String)>,
    /// Whether a relation on the way is `many` (the value is then an array).
    pub many: bool,
    pub field: Field,
}

/// Checks the shape of a blueprint's `mirrorProperties` when a blueprint is read: each is an
/// object with a `path` of at least a relation and a field, named as a property is and unlike
/// any schema or calculation property. [`resolve`] checks what the path crosses.
pub(crate) fn validate(def: &BlueprintDef) -> Result<(), Error> {
    for (name, written) in &def.mirror_properties {
        let path = format!("mirrorProperties.{name}");
        crate::blueprint::check_key(name, &path)?;
        let mirror = parse(written, &path)?;
        crate::blueprint::check_field_texts(&path, mirror.title.as_deref(), mirror.description.as_deref())?;
        let segments: Vec<&str> = mirror.path.split('.').collect();
        if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
            return Err(Error::invalid(
                CODE,
                format!(
                    "`{path}.path` is `{}`: relations then a property, joined by dots, such as `owner.slack` or `owner.$title`",
                    mirror.path
                ),
            ));
        }
        if segments.len() > MAX_HOPS + 1 {
            return Err(Error::invalid(CODE, format!("`{path}.path` follows more than {MAX_HOPS} relations")));
        }
        if def.schema.properties.contains_key(name) || def.calculation_properties.contains_key(name) {
            return Err(Error::invalid(
                CODE,
                format!("`{path}` has the name of a schema or calculation property; a mirror property needs a name of its own"),
            ));
        }
    }
    Ok(())
}

fn parse(written: &Value, path: &str) -> Result<MirrorDef, Error> {
    crate::blueprint::parse_entry(
        written,
        path,
        r#"{"path": "owner.$title"}"#,
        &[("path", "relations then a property, such as `owner.slack`")],
    )
}

/// Resolves the path of mirror property `name` of `def` against the blueprints it crosses
/// (`blueprint` finds one by identifier): every segment but the last is a relation of the
/// blueprint reached so far, the last a property of its schema or a `$` meta-property.
pub fn resolve<'a, 'b: 'a>(
    def: &'a BlueprintDef,
    name: &str,
    blueprint: &impl Fn(&str) -> Option<&'b BlueprintDef>,
) -> Result<Mirror, Error> {
    let at = format!("mirrorProperties.{name}.path");
    let written = def.mirror_properties.get(name).ok_or_else(|| Error::invalid(CODE, format!("no `mirrorProperties.{name}`")))?;
    let mirror = parse(written, &format!("mirrorProperties.{name}"))?;
    let segments: Vec<&str> = mirror.path.split('.').collect();
    let Some((last, relations)) = segments.split_last() else {
        return Err(Error::invalid(CODE, format!("`{at}` is empty")));
    };
    let (mut hops, mut many, mut reached) = (Vec::new(), false, def);
    for relation in relations {
        let Some(found) = reached.relations.get(*relation) else {
            return Err(Error::invalid(
                CODE,
                format!("`{at}` is `{}`: `{relation}` is not a relation of blueprint `{}`", mirror.path, reached.identifier),
            ));
        };
        many |= found.many;
        let target: Option<&'a BlueprintDef> = if found.target == def.identifier { Some(def) } else { blueprint(&found.target) };
        reached = target
            .ok_or_else(|| Error::invalid(CODE, format!("`{at}` crosses blueprint `{}`, which does not exist", found.target)))?;
        hops.push(((*relation).to_owned(), found.target.clone()));
    }
    let field = match last.strip_prefix('$') {
        Some(meta) => Field::Meta(META_PROPERTIES.iter().copied().find(|m| *m == meta).ok_or_else(|| {
            Error::invalid(
                CODE,
                format!("`{at}` ends at `{last}`, which is not one of the meta-properties ${}", META_PROPERTIES.join(", $")),
            )
        })?),
        None if reached.schema.properties.contains_key(*last) => Field::Property((*last).to_owned()),
        None => {
            return Err(Error::invalid(
                CODE,
                format!("`{at}` ends at `{last}`, which is not a property of blueprint `{}`", reached.identifier),
            ));
        }
    };
    Ok(Mirror { name: name.to_owned(), hops, many, field })
}

/// Every mirror property of `def` whose path resolves today; one that does not (a blueprint
/// or property removed since) is `null` on every entity ([`add_to`]).
pub fn mirrors<'a, 'b: 'a>(def: &'a BlueprintDef, blueprint: &impl Fn(&str) -> Option<&'b BlueprintDef>) -> Vec<Mirror> {
    def.mirror_properties.keys().filter_map(|name| resolve(def, name, blueprint).ok()).collect()
}

/// The related entities an answer has read (for its mirror properties and relation titles),
/// by blueprint then identifier: looked up by `&str`, without building a key.
#[derive(Debug, Default)]
pub struct Reached {
    by_blueprint: HashMap<String, HashMap<String, Entity>>,
    count: usize,
}

impl Reached {
    pub fn insert(&mut self, entity: Entity) {
        let identifiers = self.by_blueprint.entry(entity.blueprint.clone()).or_default();
        if identifiers.insert(entity.identifier.clone(), entity).is_none() {
            self.count += 1;
        }
    }

    pub fn entity(&self, blueprint: &str, identifier: &str) -> Option<&Entity> {
        self.by_blueprint.get(blueprint)?.get(identifier)
    }

    pub fn contains(&self, blueprint: &str, identifier: &str) -> bool {
        self.entity(blueprint, identifier).is_some()
    }

    /// How many entities it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Mirror {
    /// The `(blueprint, identifier)` of the entities the first `depth + 1` relations of the
    /// path reach from `entity`, given the entities `reached` so far (those of the first
    /// `depth`): what to read next. Entities named but not found end their branch.
    pub fn reaches(&self, entity: &Entity, depth: usize, reached: &Reached) -> Vec<(String, String)> {
        let mut at: Vec<&Entity> = vec![entity];
        for (i, (relation, target)) in self.hops.iter().enumerate().take(depth + 1) {
            if i == depth {
                let mut seen: HashSet<&str> = HashSet::new();
                return at
                    .iter()
                    .flat_map(|e| e.relation_targets(relation))
                    .filter(|id| seen.insert(id))
                    .map(|id| (target.clone(), id.to_owned()))
                    .collect();
            }
            at = step(&at, relation, target, reached);
        }
        Vec::new()
    }

    /// The mirrored value for `entity`, from the entities `reached` on its path.
    pub fn value(&self, entity: &Entity, reached: &Reached) -> Value {
        let mut at: Vec<&Entity> = vec![entity];
        for (relation, target) in &self.hops {
            at = step(&at, relation, target, reached);
        }
        let fields = at.into_iter().filter_map(|e| self.field_of(e)).filter(|v| !v.is_null());
        if self.many { Value::Array(fields.collect()) } else { fields.take(1).next().unwrap_or(Value::Null) }
    }

    fn field_of(&self, entity: &Entity) -> Option<Value> {
        match &self.field {
            Field::Property(name) => entity.properties.get(name).cloned(),
            Field::Meta("identifier") => Some(Value::String(entity.identifier.clone())),
            Field::Meta("title") => entity.title.clone().map(Value::String),
            Field::Meta("icon") => entity.icon.clone().map(Value::String),
            Field::Meta("blueprint") => Some(Value::String(entity.blueprint.clone())),
            Field::Meta("team") => Some(Value::from(entity.team.clone())),
            Field::Meta(other) => serde_json::to_value(&entity.audited).ok()?.get(*other).cloned(),
        }
    }
}

/// The entities of `target` that `relation` of the entities `at` names, each once, in the
/// order first named: a path through many relations reaches each entity once, however many
/// ways lead to it.
fn step<'e>(at: &[&'e Entity], relation: &str, target: &str, reached: &'e Reached) -> Vec<&'e Entity> {
    let mut seen: HashSet<&str> = HashSet::new();
    at.iter()
        .flat_map(|e| e.relation_targets(relation))
        .filter(|id| seen.insert(id))
        .filter_map(|id| reached.entity(target, id))
        .collect()
}

/// Adds the mirrored values of `entity` (of blueprint `def`, whose resolved `mirrors` these
/// are) to `doc`, its document, under `properties`: every mirror property of `def`, `null`
/// where its path no longer resolves (a blueprint or property removed since).
pub fn add_to(def: &BlueprintDef, mirrors: &[Mirror], entity: &Entity, reached: &Reached, doc: &mut Value) {
    if def.mirror_properties.is_empty() {
        return;
    }
    let Value::Object(fields) = doc else { return };
    let Value::Object(properties) = fields.entry("properties").or_insert_with(|| Value::Object(Map::new())) else {
        return;
    };
    for name in def.mirror_properties.keys() {
        let value = mirrors.iter().find(|m| &m.name == name).map_or(Value::Null, |m| m.value(entity, reached));
        properties.insert(name.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::Audited;
    use crate::time::Timestamp;
    use serde_json::json;

    fn def(doc: Value) -> BlueprintDef {
        BlueprintDef::parse(doc).unwrap()
    }

    fn blueprints() -> Vec<BlueprintDef> {
        vec![
            def(json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {"tier": {"type": "number"}}}})),
            def(json!({"identifier": "team", "title": "Team", "schema": {"properties": {"slack": {"type": "string"}}},
                       "relations": {"domain": {"target": "domain"}}})),
            def(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}},
            "relations": {"owner": {"target": "team"}, "uses": {"target": "team", "many": true}},
            "mirrorProperties": {
                "slack": {"path": "owner.slack"},
                "ownerTitle": {"path": "owner.$title"},
                "tier": {"path": "owner.domain.tier"},
                "slacks": {"path": "uses.slack"}
            }})),
        ]
    }

    fn entity(blueprint: &str, identifier: &str, doc: Value) -> Entity {
        let object = |key: &str| doc.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
        Entity {
            identifier: identifier.to_owned(),
            title: doc.get("title").and_then(Value::as_str).map(str::to_owned),
            icon: None,
            blueprint: blueprint.to_owned(),
            team: Vec::new(),
            properties: object("properties"),
            relations: object("relations"),
            audited: Audited::new("t", Timestamp::from_millis(0)),
        }
    }

    #[test]
    fn paths_reach_fields_through_relations() {
        let all = blueprints();
        let find = |name: &str| all.iter().find(|b| b.identifier == name);
        let service = &all[2];
        let mirrors = mirrors(service, &find);
        assert_eq!(mirrors.len(), 4);
        let mut reached = Reached::default();
        for e in [
            entity("team", "core", json!({"title": "Core", "properties": {"slack": "#core"}, "relations": {"domain": "pay"}})),
            entity("team", "web", json!({"properties": {"slack": "#web"}})),
            entity("team", "quiet", json!({})),
            entity("domain", "pay", json!({"properties": {"tier": 1}})),
        ] {
            reached.insert(e);
        }
        let api =
            entity("service", "api", json!({"relations": {"owner": "core", "uses": ["web", "gone", "quiet", "core", "web"]}}));
        // Each entity once, however many times the relations name it.
        let values: Vec<Value> = mirrors.iter().map(|m| m.value(&api, &reached)).collect();
        assert_eq!(values, [json!("#core"), json!("Core"), json!(1), json!(["#web", "#core"])]);
        let alone = entity("service", "alone", json!({}));
        let values: Vec<Value> = mirrors.iter().map(|m| m.value(&alone, &reached)).collect();
        assert_eq!(values, [Value::Null, Value::Null, Value::Null, json!([])]);
        // What to read next, hop by hop.
        let tier = &mirrors[2];
        assert_eq!(tier.reaches(&api, 0, &reached), [("team".to_owned(), "core".to_owned())]);
        assert_eq!(tier.reaches(&api, 1, &reached), [("domain".to_owned(), "pay".to_owned())]);
    }

    #[test]
    fn paths_are_checked_against_the_blueprints_they_cross() {
        let all = blueprints();
        let find = |name: &str| all.iter().find(|b| b.identifier == name);
        let with = |path: &str| {
            let mut doc = serde_json::to_value(&all[2]).unwrap();
            doc["mirrorProperties"] = json!({"m": {"path": path}});
            let service = def(doc);
            resolve(&service, "m", &find).map_err(|e| e.to_string())
        };
        assert!(with("owner.slack").is_ok());
        assert!(with("nope.slack").unwrap_err().contains("`nope` is not a relation of blueprint `service`"));
        assert!(with("owner.nope").unwrap_err().contains("`nope`, which is not a property of blueprint `team`"));
        assert!(with("owner.$nope").unwrap_err().contains("not one of the meta-properties"));
        assert!(with("owner.domain.$identifier").is_ok());
        let shape = |mirrors: Value| {
            BlueprintDef::parse(json!({"identifier": "s", "title": "S", "schema": {"properties": {"p": {"type": "string"}}},
                "mirrorProperties": mirrors}))
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        assert!(shape(json!({"m": "owner.slack"})).unwrap_err().contains("`mirrorProperties.m` must be an object"));
        assert!(shape(json!({"m": {"title": "M"}})).unwrap_err().contains("`mirrorProperties.m.path` is required"));
        assert!(shape(json!({"m": {"path": "slack"}})).unwrap_err().contains("relations then a property"));
        assert!(shape(json!({"p": {"path": "a.b"}})).unwrap_err().contains("a name of its own"));
        assert!(shape(json!({"m": {"path": "a.b.c.d.e.f.g.h.i.j"}})).unwrap_err().contains("more than 8 relations"));
    }
}
