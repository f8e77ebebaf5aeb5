//! Blueprints: the schema of a kind of entity (Port's `/v1/blueprints`).
//!
//! A blueprint is kept as the document the user wrote (typed, so unknown keys are rejected and
//! known ones checked) plus who created and last changed it. The rules here decide what a valid
//! blueprint is and how an update may change one; [`crate::entity`] uses the schema to validate
//! entities.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::entity::{MAX_ICON, MAX_VALUE_DEPTH};
use crate::json::{check_depth, check_length, from_value, type_name};
use crate::time::Timestamp;

const CODE: &str = "invalid_blueprint";

/// Longest blueprint identifier and title (Port's).
pub const MAX_IDENTIFIER: usize = 100;
/// Longest blueprint description (Port's).
pub const MAX_DESCRIPTION: usize = 200;
/// Longest title of a property or relation (as a blueprint's own).
pub const MAX_FIELD_TITLE: usize = 100;
/// Longest description of a property or relation: Port documents none; this keeps a schema
/// that every entity write reads small while leaving room for a paragraph.
pub const MAX_FIELD_DESCRIPTION: usize = 2_000;

/// The types a blueprint property can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl PropertyType {
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
        }
    }

    /// Whether `value` has this type.
    pub fn admits(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (Self::String, Value::String(_))
                | (Self::Number, Value::Number(_))
                | (Self::Boolean, Value::Bool(_))
                | (Self::Object, Value::Object(_))
                | (Self::Array, Value::Array(_))
        )
    }
}

/// String formats Port documents for blueprint properties. Wharf checks the ones with a
/// checkable syntax (see [`format_error`]); the others are free text with a rendering hint.
const FORMATS: &[&str] = &[
    "date-time",
    "url",
    "email",
    "idn-email",
    "ipv4",
    "ipv6",
    "markdown",
    "yaml",
    "user",
    "team",
    "timer",
    "proto",
    "labeled-url",
    "blueprints",
    "entity",
];

/// The element schema of an `array` property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemsDef {
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enumeration: Option<Vec<Value>>,
    /// Other JSON-schema keywords, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One property of a blueprint's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDef {
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enumeration: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemsDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Other keywords Port accepts (`enumColors`, `spec`, `pattern`, …), kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `schema` of a blueprint: its properties, in the order written, and which are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    #[serde(default)]
    pub properties: IndexMap<String, PropertyDef>,
    #[serde(default)]
    pub required: Vec<String>,
}

/// A relation from this blueprint's entities to entities of `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelationDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub target: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub many: bool,
}

/// A blueprint as written by its author (the request body of `POST /v1/blueprints`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueprintDef {
    pub identifier: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    pub schema: Schema,
    /// Port's calculation properties, as written ([`crate::calculation`] reads them): kept as
    /// JSON so that what an earlier Wharf stored without checking still reads back.
    #[serde(default)]
    pub calculation_properties: Map<String, Value>,
    /// Port's mirror properties, as written ([`crate::mirror`] reads them).
    #[serde(default)]
    pub mirror_properties: Map<String, Value>,
    #[serde(default)]
    pub aggregation_properties: Map<String, Value>,
    #[serde(default)]
    pub relations: IndexMap<String, RelationDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_inheritance: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog_destination: Option<Value>,
    // Response-only fields that a client may send back after a GET (Terraform does): accepted
    // and ignored, since the server owns them.
    #[serde(default, skip_serializing)]
    pub created_at: Option<Value>,
    #[serde(default, skip_serializing)]
    pub created_by: Option<Value>,
    #[serde(default, skip_serializing)]
    pub updated_at: Option<Value>,
    #[serde(default, skip_serializing)]
    pub updated_by: Option<Value>,
}

/// Who created a resource and who changed it last, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audited {
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

impl Audited {
    pub fn new(by: &str, now: Timestamp) -> Self {
        Self { created_at: now, created_by: by.to_owned(), updated_at: now, updated_by: by.to_owned() }
    }
    pub fn touched(&self, by: &str, now: Timestamp) -> Self {
        Self { updated_at: now, updated_by: by.to_owned(), ..self.clone() }
    }
}

/// A stored blueprint: the definition and its audit fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blueprint {
    #[serde(flatten)]
    pub def: BlueprintDef,
    #[serde(flatten)]
    pub audited: Audited,
}

impl Blueprint {
    pub fn identifier(&self) -> &str {
        &self.def.identifier
    }
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.def.schema.properties.get(name)
    }
    pub fn relation(&self, name: &str) -> Option<&RelationDef> {
        self.def.relations.get(name)
    }
    pub fn is_required(&self, property: &str) -> bool {
        self.def.schema.required.iter().any(|p| p == property)
    }
    /// The response document: the definition followed by the audit fields.
    pub fn to_json(&self) -> Value {
        // A struct of JSON-native fields always serializes.
        serde_json::to_value(self).expect("blueprint serializes")
    }
}

impl BlueprintDef {
    /// Reads and validates a new blueprint document. Relation targets are checked by the
    /// caller, which knows which blueprints exist.
    pub fn parse(value: Value) -> Result<Self, Error> {
        Self::parse_as(value, None)
    }

    /// Reads and validates a document that replaces the blueprint `current`: its identifier
    /// may be one an earlier Wharf accepted (Port's wider pattern), since it already exists.
    pub fn parse_update(value: Value, current: &str) -> Result<Self, Error> {
        Self::parse_as(value, Some(current))
    }

    fn parse_as(value: Value, existing: Option<&str>) -> Result<Self, Error> {
        if !value.is_object() {
            return Err(Error::invalid(CODE, format!("a blueprint must be a JSON object, not {}", type_name(&value))));
        }
        check_shapes(&value)?;
        // The same bound as an entity's values: a blueprint is answered and stored in changes
        // (an audit log answer wraps it in four levels), and its defaults become entity values.
        check_depth(CODE, &value, "blueprint", MAX_VALUE_DEPTH)?;
        let def: Self = from_value(value, CODE, "blueprint")?;
        def.validate(existing)?;
        Ok(def)
    }

    fn validate(&self, existing: Option<&str>) -> Result<(), Error> {
        let kind = if existing == Some(self.identifier.as_str()) {
            IdentifierKind::BlueprintReference
        } else {
            IdentifierKind::Blueprint
        };
        check_identifier(&self.identifier, "identifier", MAX_IDENTIFIER, kind)?;
        check_length(CODE, &self.title, "title", 1, MAX_IDENTIFIER)?;
        if let Some(description) = &self.description {
            check_length(CODE, description, "description", 0, MAX_DESCRIPTION)?;
        }
        if let Some(icon) = &self.icon {
            check_length(CODE, icon, "icon", 0, MAX_ICON)?;
        }
        for (name, property) in &self.schema.properties {
            check_key(name, &format!("schema.properties.{name}"))?;
            validate_property(name, property)?;
        }
        for name in &self.schema.required {
            if !self.schema.properties.contains_key(name) {
                return Err(Error::invalid(
                    CODE,
                    format!("`schema.required` names `{name}`, which is not a property of the schema"),
                ));
            }
        }
        for (name, relation) in &self.relations {
            let path = format!("relations.{name}");
            check_key(name, &path)?;
            let target = format!("{path}.target");
            check_identifier(&relation.target, &target, MAX_IDENTIFIER, IdentifierKind::BlueprintReference)?;
            check_field_texts(&path, relation.title.as_deref(), relation.description.as_deref())?;
        }
        crate::calculation::validate(self)?;
        crate::mirror::validate(self)
    }

    /// The blueprints this one's relations point at (other than itself), in order, once each.
    pub fn relation_targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = Vec::new();
        for relation in self.relations.values() {
            if relation.target != self.identifier && !targets.contains(&relation.target.as_str()) {
                targets.push(&relation.target);
            }
        }
        targets
    }

    /// What computes `property` when an entity is read, when it is not a schema property:
    /// `"calculation"` or `"mirror"` (Port's calculation and mirror properties).
    pub fn computed(&self, property: &str) -> Option<&'static str> {
        if self.schema.properties.contains_key(property) {
            None
        } else if self.calculation_properties.contains_key(property) {
            Some("calculation")
        } else if self.mirror_properties.contains_key(property) {
            Some("mirror")
        } else {
            None
        }
    }

    /// What a search whose rules read the properties `named` computes for this blueprint's
    /// entities before they match: this blueprint with only the calculation properties named,
    /// and only the mirror properties named, or every one when a calculation is named (it may
    /// read any). `None` when no name is computed here.
    pub fn computing_for(&self, named: &[&str]) -> Option<BlueprintDef> {
        let kinds: Vec<&str> = named.iter().filter_map(|name| self.computed(name)).collect();
        if kinds.is_empty() {
            return None;
        }
        let mut def = self.clone();
        def.calculation_properties.retain(|name, _| named.contains(&name.as_str()));
        if !kinds.contains(&"calculation") {
            def.mirror_properties.retain(|name, _| named.contains(&name.as_str()));
        }
        Some(def)
    }

    /// Checks that `self` may replace `previous`: a property's type cannot change once created.
    pub fn check_update_of(&self, previous: &BlueprintDef) -> Result<(), Error> {
        for (name, property) in &self.schema.properties {
            if let Some(old) = previous.schema.properties.get(name)
                && old.kind != property.kind
            {
                return Err(Error::invalid(
                    CODE,
                    format!(
                        "the type of property `{name}` cannot be changed from {} to {}; create a new property instead",
                        old.kind.name(),
                        property.kind.name()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Applies a `PATCH /v1/blueprints/{id}` document to the current definition (both as JSON):
/// top-level keys replace, except the keyed maps — `schema.properties`, `relations`,
/// `calculationProperties`, `mirrorProperties`, `aggregationProperties` — whose entries are
/// merged by key (a `null` entry removes it). `schema.required`, when given, replaces.
pub fn patch_json(current: &Value, patch: &Value) -> Result<Value, Error> {
    let Value::Object(patch) = patch else {
        return Err(Error::invalid(CODE, format!("a blueprint patch must be a JSON object, not {}", type_name(patch))));
    };
    let mut merged = current.as_object().cloned().unwrap_or_default();
    for (key, value) in patch {
        match key.as_str() {
            "schema" => {
                let schema = merged.entry("schema").or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(schema_patch) = value else {
                    return Err(Error::invalid(CODE, "`schema` must be an object"));
                };
                for (schema_key, schema_value) in schema_patch {
                    if schema_key == "properties" {
                        merge_keyed(schema, "properties", schema_value, "schema.properties")?;
                    } else if let Value::Object(schema) = schema {
                        schema.insert(schema_key.clone(), schema_value.clone());
                    }
                }
            }
            "relations" | "calculationProperties" | "mirrorProperties" | "aggregationProperties" => {
                let mut root = Value::Object(std::mem::take(&mut merged));
                merge_keyed(&mut root, key, value, key)?;
                merged = match root {
                    Value::Object(map) => map,
                    _ => unreachable!("root was built as an object"),
                };
            }
            _ => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(Value::Object(merged))
}

fn merge_keyed(parent: &mut Value, key: &str, patch: &Value, path: &str) -> Result<(), Error> {
    let Value::Object(patch) = patch else {
        return Err(Error::invalid(CODE, format!("`{path}` must be an object")));
    };
    let Value::Object(parent) = parent else {
        return Err(Error::invalid(CODE, "the stored blueprint is not an object"));
    };
    let target = parent.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (name, value) in patch {
            if value.is_null() {
                target.remove(name);
            } else {
                target.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(())
}

/// Where serde would take an array for a struct (`"schema": []` read as `{}`), or the
/// document has another type than an object, the blueprint is refused naming the path.
fn check_shapes(doc: &Value) -> Result<(), Error> {
    fn object<'a>(value: Option<&'a Value>, path: &str) -> Result<Option<&'a Map<String, Value>>, Error> {
        match value {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(Error::invalid(CODE, format!("`{path}` must be an object, not {}", type_name(other)))),
        }
    }
    if let Some(schema) = object(doc.get("schema"), "schema")? {
        for (name, property) in object(schema.get("properties"), "schema.properties")?.into_iter().flatten() {
            let path = format!("schema.properties.{name}");
            if let Some(property) = object(Some(property), &path)? {
                object(property.get("items"), &format!("{path}.items"))?;
            }
        }
    }
    for (name, relation) in object(doc.get("relations"), "relations")?.into_iter().flatten() {
        object(Some(relation), &format!("relations.{name}"))?;
    }
    Ok(())
}

pub(crate) fn check_field_texts(path: &str, title: Option<&str>, description: Option<&str>) -> Result<(), Error> {
    if let Some(title) = title {
        check_length(CODE, title, &format!("{path}.title"), 0, MAX_FIELD_TITLE)?;
    }
    if let Some(description) = description {
        check_length(CODE, description, &format!("{path}.description"), 0, MAX_FIELD_DESCRIPTION)?;
    }
    Ok(())
}

fn validate_property(name: &str, property: &PropertyDef) -> Result<(), Error> {
    let path = format!("schema.properties.{name}");
    check_field_texts(&path, property.title.as_deref(), property.description.as_deref())?;
    if let Some(icon) = &property.icon {
        check_length(CODE, icon, &format!("{path}.icon"), 0, MAX_ICON)?;
    }
    if let Some(format) = &property.format
        && !FORMATS.contains(&format.as_str())
    {
        return Err(Error::invalid(CODE, format!("`{path}.format` is `{format}`, which is not one of: {}", FORMATS.join(", "))));
    }
    if let Some(values) = &property.enumeration {
        for (i, value) in values.iter().enumerate() {
            if !property.kind.admits(value) && !(property.kind == PropertyType::Array) {
                return Err(Error::invalid(
                    CODE,
                    format!("`{path}.enum[{i}]` is {}, but the property is of type {}", type_name(value), property.kind.name()),
                ));
            }
        }
    }
    if let Some(default) = &property.default {
        let mut problems = Vec::new();
        check_value(name, property, default, &mut problems);
        if let Some(problem) = problems.first() {
            return Err(Error::invalid(CODE, format!("`{path}.default` is invalid: {problem}")));
        }
    }
    Ok(())
}

/// Checks one property value against its definition, pushing every problem found.
/// `null` is accepted here (it clears the value); required-ness is checked by the caller.
pub(crate) fn check_value(name: &str, property: &PropertyDef, value: &Value, problems: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    if !property.kind.admits(value) {
        problems.push(format!("property `{name}` must be of type {}, but got {}", property.kind.name(), type_name(value)));
        return;
    }
    if let Some(values) = &property.enumeration
        && !values.contains(value)
    {
        problems.push(format!("property `{name}` must be one of {}, but got {value}", Value::Array(values.clone())));
    }
    match value {
        Value::String(text) => {
            if let Some(problem) = property.format.as_deref().and_then(|f| format_error(f, text)) {
                problems.push(format!("property `{name}` {problem}"));
            }
            let chars = text.chars().count() as u64;
            if property.min_length.is_some_and(|min| chars < min) || property.max_length.is_some_and(|max| chars > max) {
                problems.push(format!(
                    "property `{name}` must be between {} and {} characters long, but has {chars}",
                    property.min_length.unwrap_or(0),
                    property.max_length.map_or("any number of".to_owned(), |m| m.to_string())
                ));
            }
        }
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or(f64::NAN);
            if property.minimum.is_some_and(|min| n < min) || property.maximum.is_some_and(|max| n > max) {
                problems.push(format!(
                    "property `{name}` must be within [{}, {}], but got {number}",
                    property.minimum.map_or("-∞".to_owned(), |m| m.to_string()),
                    property.maximum.map_or("∞".to_owned(), |m| m.to_string())
                ));
            }
        }
        Value::Array(items) => {
            if let Some(items_def) = &property.items {
                for (i, item) in items.iter().enumerate() {
                    check_item(&format!("{name}[{i}]"), items_def, item, problems);
                }
            }
        }
        _ => {}
    }
}

fn check_item(name: &str, items: &ItemsDef, value: &Value, problems: &mut Vec<String>) {
    if !items.kind.admits(value) {
        problems.push(format!("item `{name}` must be of type {}, but got {}", items.kind.name(), type_name(value)));
        return;
    }
    if let Some(values) = &items.enumeration
        && !values.contains(value)
    {
        problems.push(format!("item `{name}` must be one of {}, but got {value}", Value::Array(values.clone())));
    }
    if let (Value::String(text), Some(format)) = (value, items.format.as_deref())
        && let Some(problem) = format_error(format, text)
    {
        problems.push(format!("item `{name}` {problem}"));
    }
}

/// Why `text` does not have `format`, for the formats with a checkable syntax.
fn format_error(format: &str, text: &str) -> Option<String> {
    let ok = match format {
        "date-time" => time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok(),
        "url" => url::Url::parse(text).is_ok_and(|u| u.has_host() || u.scheme() == "mailto"),
        "email" | "idn-email" => is_email(text),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    };
    (!ok).then(|| {
        let example = match format {
            "date-time" => " such as 2024-01-31T12:00:00Z",
            "url" => " such as https://example.com/path",
            "email" | "idn-email" => " such as someone@example.com",
            _ => "",
        };
        format!("must be a valid {format}{example}, but got `{text}`")
    })
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

/// Which identifier pattern applies (SPEC §12: Port's patterns differ per resource).
#[derive(Debug, Clone, Copy)]
pub enum IdentifierKind {
    /// Blueprints and ingestion webhooks: `^[A-Za-z0-9@_=\-]+$`. They name a route segment
    /// (`/v1/blueprints/{id}`), so neither `/` nor `.` (`..`) may appear.
    Blueprint,
    /// A blueprint that must already exist (a relation's target, a mapping's blueprint, the
    /// one an update names): Port's pattern `^(?!\.{1,2}$)[\p{L}0-9@_.+:\\/-]+$`, which Wharf
    /// accepted before SPEC §12's, so that blueprints made then can still be named.
    BlueprintReference,
    /// Ingestion webhooks: the blueprint pattern (Port documents none for integrations).
    Webhook,
    /// `^(?!\.{1,2}$)[\p{L}0-9@_.+:\\/=-]+$`
    Entity,
}

/// Checks an identifier against Port's pattern for its kind and a maximum length.
pub fn check_identifier(value: &str, path: &str, max: usize, kind: IdentifierKind) -> Result<(), Error> {
    let allowed = |c: char| match kind {
        IdentifierKind::Blueprint | IdentifierKind::Webhook => c.is_ascii_alphanumeric() || "@_=-".contains(c),
        IdentifierKind::BlueprintReference => c.is_alphabetic() || c.is_ascii_digit() || "@_.+:\\/-".contains(c),
        IdentifierKind::Entity => c.is_alphabetic() || c.is_ascii_digit() || "@_.+:\\/=-".contains(c),
    };
    let code = match kind {
        IdentifierKind::Blueprint | IdentifierKind::BlueprintReference => CODE,
        IdentifierKind::Webhook => "invalid_webhook",
        IdentifierKind::Entity => "invalid_entity",
    };
    if value.is_empty() || value.chars().count() > max {
        return Err(Error::invalid(code, format!("`{path}` must be 1 to {max} characters long")));
    }
    if value == "." || value == ".." || !value.chars().all(allowed) {
        let alphabet = match kind {
            IdentifierKind::Blueprint | IdentifierKind::Webhook => "A-Z a-z 0-9 @ _ = -",
            IdentifierKind::BlueprintReference => "letters, digits and @ _ . + : \\ / -",
            IdentifierKind::Entity => "letters, digits and @ _ . + : \\ / - =",
        };
        return Err(Error::invalid(code, format!("`{path}` is `{value}`: use {alphabet}")));
    }
    Ok(())
}

/// One entry of a keyed map of a blueprint (`calculationProperties.x`, `mirrorProperties.x`)
/// read as `T`: refused, naming `path`, when it is not an object (`example` shows one) or lacks
/// a key of `required` (each with what it holds), before serde reads it.
pub(crate) fn parse_entry<T: serde::de::DeserializeOwned>(
    written: &Value,
    path: &str,
    example: &str,
    required: &[(&str, &str)],
) -> Result<T, Error> {
    let Value::Object(fields) = written else {
        return Err(Error::invalid(CODE, format!("`{path}` must be an object such as {example}, not {}", type_name(written))));
    };
    if let Some((key, what)) = required.iter().find(|(key, _)| !fields.contains_key(*key)) {
        return Err(Error::invalid(CODE, format!("`{path}.{key}` is required: {what}")));
    }
    from_value(written.clone(), CODE, path)
}

/// Property and relation names: `^[A-Za-z0-9@_=\-]+$`, at most 100 characters.
pub(crate) fn check_key(name: &str, path: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 100 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "@_=-".contains(c)) {
        return Err(Error::invalid(CODE, format!("`{path}`: names are 1 to 100 characters of A-Z a-z 0-9 @ _ = -")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Value {
        json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {
                "url": {"type": "string", "format": "url"},
                "tier": {"type": "string", "enum": ["gold", "silver"], "default": "silver"}
            }, "required": ["url"]},
            "relations": {"owner": {"target": "team", "required": false, "many": false}}
        })
    }

    #[test]
    fn parses_a_port_blueprint() {
        let def = BlueprintDef::parse(service()).unwrap();
        assert_eq!(def.schema.properties.keys().collect::<Vec<_>>(), ["url", "tier"]);
        assert_eq!(def.relation_targets(), ["team"]);
    }

    #[test]
    fn rejects_unknown_keys_with_their_path() {
        let mut doc = service();
        doc["schema"]["properties"]["url"]["type"] = json!("strin");
        let err = BlueprintDef::parse(doc).unwrap_err();
        assert!(err.message.contains("schema.properties.url.type"), "{}", err.message);
        let mut doc = service();
        doc["colour"] = json!("red");
        assert!(BlueprintDef::parse(doc).unwrap_err().message.contains("colour"));
    }

    #[test]
    fn rejects_bad_identifiers_defaults_and_required() {
        for bad in ["", "..", "has space"] {
            let mut doc = service();
            doc["identifier"] = json!(bad);
            assert!(BlueprintDef::parse(doc).is_err(), "{bad}");
        }
        let mut doc = service();
        doc["schema"]["properties"]["tier"]["default"] = json!("bronze");
        assert!(BlueprintDef::parse(doc).unwrap_err().message.contains("default"));
        let mut doc = service();
        doc["schema"]["required"] = json!(["nope"]);
        assert!(BlueprintDef::parse(doc).unwrap_err().message.contains("nope"));
    }

    #[test]
    fn identifiers_that_are_not_route_segments_are_refused() {
        for bad in ["a/b", "../x", "a.b", "a b", "é"] {
            let mut doc = service();
            doc["identifier"] = json!(bad);
            let err = BlueprintDef::parse(doc).unwrap_err();
            assert!(err.message.contains("use A-Z a-z 0-9 @ _ = -"), "{bad}: {}", err.message);
        }
        let mut doc = service();
        doc["identifier"] = json!("my_service-2=@x");
        assert!(BlueprintDef::parse(doc).is_ok());
        let mut doc = service();
        doc["relations"]["owner"]["target"] = json!("a b");
        assert!(BlueprintDef::parse(doc).unwrap_err().message.contains("relations.owner.target"));
        // Blueprints made under Port's wider pattern can still be named and updated.
        let mut doc = service();
        doc["identifier"] = json!("legacy.bp");
        doc["relations"]["owner"]["target"] = json!("old/team");
        assert!(BlueprintDef::parse(doc.clone()).is_err());
        assert!(BlueprintDef::parse_update(doc.clone(), "legacy.bp").is_ok());
        assert!(BlueprintDef::parse_update(doc, "other").is_err());
        assert!(check_identifier("org/repo:1.0", "identifier", 1000, IdentifierKind::Entity).is_ok());
    }

    #[test]
    fn schemas_must_be_objects() {
        for (path, value, part) in [
            ("schema", json!([]), "`schema` must be an object, not array"),
            ("properties", json!([]), "`schema.properties` must be an object"),
            ("property", json!(["string"]), "`schema.properties.url` must be an object"),
            ("items", json!({"type": "array", "items": ["string"]}), "`schema.properties.url.items` must be an object"),
            ("relation", json!(["team"]), "`relations.owner` must be an object"),
        ] {
            let mut doc = service();
            match path {
                "schema" => doc["schema"] = value,
                "properties" => doc["schema"]["properties"] = value,
                "property" | "items" => doc["schema"]["properties"]["url"] = value,
                _ => doc["relations"]["owner"] = value,
            }
            let err = BlueprintDef::parse(doc).unwrap_err();
            assert!(err.message.contains(part), "{path}: {}", err.message);
        }
    }

    #[test]
    fn sizes_and_depths_are_bounded() {
        let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));
        for (pointer, value, part) in [
            ("/icon", json!("i".repeat(101)), "`icon` must be 0 to 100"),
            ("/description", json!("d".repeat(201)), "`description` must be 0 to 200"),
            ("/schema/properties/url/description", json!("d".repeat(2001)), "schema.properties.url.description"),
            ("/schema/properties/url/icon", json!("i".repeat(101)), "schema.properties.url.icon"),
            ("/relations/owner/title", json!("t".repeat(101)), "relations.owner.title"),
            ("/ownership", nested(MAX_VALUE_DEPTH), "the blueprint nests 101 levels"),
        ] {
            let mut doc = service();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let parent = if parent.is_empty() { &mut doc } else { doc.pointer_mut(parent).unwrap() };
            parent[key] = value;
            let err = BlueprintDef::parse(doc).unwrap_err();
            assert!(err.message.contains(part), "{pointer}: {}", err.message);
        }
    }

    #[test]
    fn type_changes_are_refused() {
        let old = BlueprintDef::parse(service()).unwrap();
        let mut doc = service();
        doc["schema"]["properties"]["tier"] = json!({"type": "number"});
        let new = BlueprintDef::parse(doc).unwrap();
        assert!(new.check_update_of(&old).unwrap_err().message.contains("from string to number"));
    }

    #[test]
    fn patch_merges_keyed_maps() {
        let patched = patch_json(
            &service(),
            &json!({"title": "Services", "schema": {"properties": {"tier": null, "port": {"type": "number"}}},
                    "relations": {"repo": {"target": "repo"}}}),
        )
        .unwrap();
        assert_eq!(patched["title"], "Services");
        assert_eq!(patched["schema"]["properties"].as_object().unwrap().keys().collect::<Vec<_>>(), ["url", "port"]);
        assert_eq!(patched["schema"]["required"], json!(["url"]));
        assert_eq!(patched["relations"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn checks_formats() {
        assert!(format_error("url", "https://x.io/a").is_none());
        assert!(format_error("url", "not a url").is_some());
        assert!(format_error("date-time", "2024-01-01T00:00:00Z").is_none());
        assert!(format_error("date-time", "2024-01-01").is_some());
        assert!(format_error("email", "a@b.io").is_none());
        assert!(format_error("email", "a@b").is_some());
        assert!(format_error("ipv6", "::1").is_none());
        assert!(format_error("ipv4", "300.1.1.1").is_some());
        assert!(format_error("markdown", "# anything").is_none());
    }

    #[test]
    fn a_search_computes_what_its_rules_name() {
        let def = BlueprintDef::parse(json!({
            "identifier": "service", "title": "Service", "schema": {"properties": {"mb": {"type": "number"}}},
            "relations": {"owner": {"target": "team"}},
            "calculationProperties": {"gb": {"type": "number", "calculation": ".properties.mb / 1024"},
                                      "url": {"type": "string", "calculation": ".identifier"}},
            "mirrorProperties": {"slack": {"path": "owner.slack"}, "lead": {"path": "owner.$title"}}
        }))
        .unwrap();
        let computed = |named: &[&str]| {
            def.computing_for(named).map(|d| {
                let keys = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
                (keys(&d.calculation_properties), keys(&d.mirror_properties))
            })
        };
        assert_eq!(computed(&["mb", "name"]), None);
        assert_eq!(computed(&["slack"]), Some((vec![], vec!["slack".to_owned()])));
        // A calculation may read any mirror: every one is kept.
        assert_eq!(computed(&["gb", "mb"]), Some((vec!["gb".to_owned()], vec!["slack".to_owned(), "lead".to_owned()])));
    }
}
