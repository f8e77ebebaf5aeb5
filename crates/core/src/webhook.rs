//! Ingestion webhooks: the document a user writes (Port's shape), its validation, and the
//! compiled form that the ingest endpoint and the mapper run.
//!
//! Every jq expression of a webhook is compiled when the webhook is saved: one that does not
//! compile is a 422 naming its path in the document (`mappings[1].entity.properties.author`),
//! never an error discovered when an event arrives.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wharf_jq::{Demand, Program};

use crate::Error;
use crate::blueprint::{Audited, IdentifierKind, check_identifier};
use crate::entity::{MAX_ICON, MAX_VALUE_DEPTH};
use crate::json::{check_depth, check_length, from_value, type_name};

const CODE: &str = "invalid_webhook";

/// Port's limits on the webhook document.
pub const MAX_IDENTIFIER: usize = 30;
pub const MAX_TITLE: usize = 30;
pub const MAX_DESCRIPTION: usize = 200;
/// `itemsToParse`: elements past this many are not mapped (counted as truncated).
pub const MAX_ITEMS: usize = 500;
/// Mappings one webhook may have (SPEC §12). Checked before anything is compiled, so a
/// document with thousands of mappings is refused at once.
pub const MAX_MAPPINGS: usize = 50;
/// Longest jq expression, in bytes (SPEC §12: 64 KiB).
pub const MAX_EXPRESSION: usize = 64 * 1024;

/// `signatureAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureAlgorithm {
    Sha1,
    Sha256,
    Plain,
}

/// Port's `security` block. The secret is write-only: it is sealed at rest and never part of
/// a response (responses omit it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Security {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<SignatureAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_identifier_path: Option<String>,
}

/// `integrationType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationType {
    #[default]
    Custom,
    Template,
}

/// One mapping, as written. Fields that may be a jq string or an object (`operation`,
/// `entity.identifier`, relations) are kept as written and interpreted by [`compile`], so a
/// response shows exactly what the user saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MappingDef {
    pub blueprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_to_parse: Option<String>,
    pub entity: EntityMappingDef,
}

/// `mappings[].entity`: where each field of the entity comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityMappingDef {
    pub identifier: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<IndexMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relations: Option<IndexMap<String, Value>>,
}

/// The webhook document (`POST`/`PUT /v1/webhooks`), unknown keys rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookDef {
    #[serde(default)]
    pub identifier: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    pub mappings: Vec<MappingDef>,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub integration_type: IntegrationType,
}

fn enabled_by_default() -> bool {
    true
}

/// Keys of the response that a client may send back (a `GET` body used as a `PUT`); ignored.
const RESPONSE_ONLY: [&str; 6] = ["webhookKey", "url", "createdAt", "updatedAt", "createdBy", "updatedBy"];

impl WebhookDef {
    /// Reads and validates a new webhook document. An omitted identifier stays empty: the
    /// engine generates one. jq is checked by [`compile`].
    pub fn parse(doc: Value) -> Result<Self, Error> {
        Self::parse_as(doc, None)
    }

    /// Reads and validates a document that replaces the webhook `current`: its identifier may
    /// be one an earlier Wharf accepted, since it already exists.
    pub fn parse_update(doc: Value, current: &str) -> Result<Self, Error> {
        Self::parse_as(doc, Some(current))
    }

    fn parse_as(mut doc: Value, existing: Option<&str>) -> Result<Self, Error> {
        let Value::Object(map) = &mut doc else {
            return Err(Error::invalid(CODE, format!("a webhook must be a JSON object, not {}", type_name(&doc))));
        };
        for key in RESPONSE_ONLY {
            map.shift_remove(key);
        }
        check_shapes(map)?;
        // As a blueprint's: stored, answered inside `{"integration": …}`, read back whole.
        check_depth(CODE, &doc, "webhook", MAX_VALUE_DEPTH)?;
        let def: Self = from_value(doc, CODE, "webhook")?;
        def.check(existing)?;
        Ok(def)
    }

    fn check(&self, existing: Option<&str>) -> Result<(), Error> {
        if !self.identifier.is_empty() && existing != Some(self.identifier.as_str()) {
            check_identifier(&self.identifier, "identifier", MAX_IDENTIFIER, IdentifierKind::Webhook)?;
        }
        check_length(CODE, &self.title, "title", 1, MAX_TITLE)?;
        if let Some(description) = &self.description {
            check_length(CODE, description, "description", 0, MAX_DESCRIPTION)?;
        }
        if let Some(icon) = &self.icon {
            check_length(CODE, icon, "icon", 0, MAX_ICON)?;
        }
        for (i, mapping) in self.mappings.iter().enumerate() {
            let path = format!("mappings[{i}].blueprint");
            check_identifier(&mapping.blueprint, &path, 100, IdentifierKind::BlueprintReference)?;
        }
        check_expression_sizes(&self.mappings, self.security.request_identifier_path.as_deref())?;
        let security = &self.security;
        if (security.signature_algorithm.is_some() || security.secret.is_some()) && security.signature_header_name.is_none() {
            return Err(Error::invalid(CODE, "`security.signatureHeaderName` is required to verify signatures"));
        }
        Ok(())
    }

    /// `PATCH`: the given top-level keys replace the current ones; `null` resets a key to
    /// its default. The result is parsed and checked as a whole document. (The secret is not
    /// part of `self`; see [`secret_in`] for how a document changes it.)
    pub fn patched(&self, patch: Value) -> Result<Self, Error> {
        let Value::Object(patch) = patch else {
            return Err(Error::invalid(CODE, format!("a webhook patch must be a JSON object, not {}", type_name(&patch))));
        };
        let mut doc = self.to_json();
        if let Value::Object(current) = &mut doc {
            for (key, value) in patch {
                if value.is_null() {
                    current.shift_remove(&key);
                } else {
                    current.insert(key, value);
                }
            }
        }
        Self::parse_update(doc, &self.identifier)
    }

    /// The document without its secret (what is stored beside the sealed secret, and shown).
    pub fn to_json(&self) -> Value {
        let mut public = self.clone();
        public.security.secret = None;
        // A struct of strings, maps and JSON values always serializes.
        serde_json::to_value(&public).unwrap_or_default()
    }
}

/// Refuses, by path, what serde would read too kindly or too slowly: more than
/// [`MAX_MAPPINGS`] mappings (before any is read), and an array where an object belongs
/// (serde reads a struct from an array: `"security": []` would be `{}`).
fn check_shapes(doc: &serde_json::Map<String, Value>) -> Result<(), Error> {
    let not_object =
        |path: &str, value: &Value| Error::invalid(CODE, format!("`{path}` must be an object, not {}", type_name(value)));
    if let Some(security) = doc.get("security")
        && !security.is_object()
        && !security.is_null()
    {
        return Err(not_object("security", security));
    }
    // serde reads a unit variant from `{"custom": null}` as well as from `"custom"`; Port's
    // documents only ever write the string.
    if let Some(kind) = doc.get("integrationType")
        && !kind.is_string()
        && !kind.is_null()
    {
        return Err(Error::invalid(
            CODE,
            format!("`integrationType` must be \"custom\" or \"template\", not {}", type_name(kind)),
        ));
    }
    if let Some(Value::Array(mappings)) = doc.get("mappings") {
        check_mapping_count(mappings.len())?;
        for (i, mapping) in mappings.iter().enumerate() {
            let Value::Object(fields) = mapping else { return Err(not_object(&format!("mappings[{i}]"), mapping)) };
            if let Some(entity) = fields.get("entity")
                && !entity.is_object()
            {
                return Err(not_object(&format!("mappings[{i}].entity"), entity));
            }
        }
    }
    Ok(())
}

/// At most [`MAX_MAPPINGS`] mappings (webhooks and proposed mappings alike).
pub fn check_mapping_count(count: usize) -> Result<(), Error> {
    if count > MAX_MAPPINGS {
        return Err(Error::invalid(CODE, format!("`mappings` has {count} mappings; a webhook may have at most {MAX_MAPPINGS}")));
    }
    Ok(())
}

/// Every jq expression is at most [`MAX_EXPRESSION`] bytes, checked before any compiles.
pub fn check_expression_sizes(mappings: &[MappingDef], request_identifier: Option<&str>) -> Result<(), Error> {
    fn check(code: &str, path: &dyn Fn() -> String) -> Result<(), Error> {
        if code.len() > MAX_EXPRESSION {
            return Err(Error::invalid(
                CODE,
                format!("`{}` is {} bytes long; a jq expression may have at most {MAX_EXPRESSION}", path(), code.len()),
            ));
        }
        Ok(())
    }
    /// A jq string, or the string leaves of a search-query template.
    fn leaves(value: &Value, path: &str) -> Result<(), Error> {
        let mut pending = vec![(value, path.to_owned())];
        while let Some((value, path)) = pending.pop() {
            match value {
                Value::String(code) => check(code, &|| path.clone())?,
                Value::Array(items) => pending.extend(items.iter().enumerate().map(|(i, v)| (v, format!("{path}[{i}]")))),
                Value::Object(fields) => pending.extend(fields.iter().map(|(k, v)| (v, format!("{path}.{k}")))),
                _ => {}
            }
        }
        Ok(())
    }
    if let Some(code) = request_identifier {
        check(code, &|| "security.requestIdentifierPath".to_owned())?;
    }
    for (i, mapping) in mappings.iter().enumerate() {
        let at = |field: &str| format!("mappings[{i}].{field}");
        for (name, code) in [("filter", &mapping.filter), ("itemsToParse", &mapping.items_to_parse)] {
            if let Some(code) = code {
                check(code, &|| at(name))?;
            }
        }
        let entity = &mapping.entity;
        leaves(&entity.identifier, &at("entity.identifier"))?;
        for (name, code) in [("title", &entity.title), ("icon", &entity.icon), ("team", &entity.team)] {
            if let Some(code) = code {
                check(code, &|| at(&format!("entity.{name}")))?;
            }
        }
        for (name, code) in entity.properties.iter().flatten() {
            check(code, &|| at(&format!("entity.properties.{name}")))?;
        }
        for (name, value) in entity.relations.iter().flatten() {
            leaves(value, &at(&format!("entity.relations.{name}")))?;
        }
    }
    Ok(())
}

/// What a document says about the secret: `Some(Some(s))` sets it, `Some(None)` (an explicit
/// `"secret": null`) removes it, `None` (not mentioned) keeps the stored one. The secret is
/// write-only, so a document read back and sent again must not drop it.
pub fn secret_in(doc: &Value) -> Option<Option<String>> {
    let security = doc.get("security")?;
    if security.is_null() {
        return Some(None);
    }
    match security.get("secret")? {
        Value::String(secret) => Some(Some(secret.clone())),
        _ => Some(None),
    }
}

/// A stored webhook: the document (without its secret), the ingest key, and who changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Internal id, never reused (events belong to it, not to the reusable identifier).
    pub id: String,
    pub def: WebhookDef,
    /// The capability in the ingest URL.
    pub key: String,
    pub audited: Audited,
    /// Bumped by every update; nodes compare it to keep their in-memory index current.
    pub revision: i64,
}

impl Webhook {
    /// Port's response object: the document plus `webhookKey`, `url` and the audit fields.
    pub fn to_json(&self, public_url: &str) -> Value {
        let mut doc = self.def.to_json();
        if let Value::Object(map) = &mut doc {
            map.insert("webhookKey".into(), Value::String(self.key.clone()));
            map.insert("url".into(), Value::String(ingest_url(public_url, &self.key)));
            let audited = serde_json::to_value(&self.audited).unwrap_or_default();
            if let Value::Object(fields) = audited {
                map.extend(fields);
            }
        }
        doc
    }

    /// `GET /v1/webhooks/metadata`: what a member may see.
    pub fn metadata(&self) -> Value {
        serde_json::json!({
            "identifier": self.def.identifier,
            "title": self.def.title,
            "icon": self.def.icon,
            "updatedAt": self.audited.updated_at,
        })
    }
}

/// The URL a tool posts its events to.
pub fn ingest_url(public_url: &str, key: &str) -> String {
    format!("{}/ingest/{key}", public_url.trim_end_matches('/'))
}

/// What a mapping does with the entity it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Upsert with merge: mapped fields overwrite, unmapped fields keep their values.
    Create,
    /// Delete the entity (and, unless disabled, its dependents).
    Delete { delete_dependents: bool },
}

/// A JSON template whose string leaves are jq expressions: Port's search queries in mappings
/// (`{"combinator": "'and'", "rules": [{"property": "'x'", "operator": "'='", "value": ".body.v"}]}`).
#[derive(Debug, Clone)]
pub enum QueryTemplate {
    Jq(Program),
    Literal(Value),
    Array(Vec<QueryTemplate>),
    Object(Vec<(String, QueryTemplate)>),
}

/// A field mapped either by a jq expression or by a search query that finds the entity.
#[derive(Debug, Clone)]
pub enum Source {
    Jq(Program),
    Query(QueryTemplate),
}

/// A mapping with every expression compiled. `path` is where it sits in the document.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub path: String,
    pub blueprint: String,
    pub operation: Operation,
    pub filter: Option<Program>,
    pub items_to_parse: Option<Program>,
    pub identifier: Source,
    pub title: Option<Program>,
    pub icon: Option<Program>,
    pub team: Option<Program>,
    pub properties: Vec<(String, Program)>,
    pub relations: Vec<(String, Source)>,
    /// What the mapping's programs observe of an event, together: each event is projected on
    /// it once, and every program of the mapping reads that projection.
    pub demand: Demand,
}

impl CompiledMapping {
    /// Every program that maps the entity (not the filter, not `itemsToParse`), search-query
    /// templates included.
    fn entity_programs(&self) -> Vec<&Program> {
        fn template<'a>(t: &'a QueryTemplate, out: &mut Vec<&'a Program>) {
            match t {
                QueryTemplate::Jq(program) => out.push(program),
                QueryTemplate::Literal(_) => {}
                QueryTemplate::Array(items) => items.iter().for_each(|t| template(t, out)),
                QueryTemplate::Object(fields) => fields.iter().for_each(|(_, t)| template(t, out)),
            }
        }
        let mut out: Vec<&Program> =
            [&self.title, &self.icon, &self.team].into_iter().flatten().chain(self.properties.iter().map(|(_, p)| p)).collect();
        for s in std::iter::once(&self.identifier).chain(self.relations.iter().map(|(_, s)| s)) {
            match s {
                Source::Jq(program) => out.push(program),
                Source::Query(t) => template(t, &mut out),
            }
        }
        out
    }

    /// Whether the mapping needs catalog searches to find its entities.
    pub fn uses_queries(&self) -> bool {
        matches!(self.identifier, Source::Query(_)) || self.relations.iter().any(|(_, s)| matches!(s, Source::Query(_)))
    }
}

/// A webhook ready to run: its mappings and its request identifier, compiled.
#[derive(Debug, Clone)]
pub struct CompiledWebhook {
    pub mappings: Vec<CompiledMapping>,
    pub request_identifier: Option<Program>,
    /// What every mapping observes of an event, together: the mapper parses a stored event
    /// straight into this projection, once for all mappings.
    pub input_demand: Demand,
}

impl CompiledWebhook {
    pub fn uses_queries(&self) -> bool {
        self.mappings.iter().any(CompiledMapping::uses_queries)
    }
}

/// Compiles every jq expression of `def`. All failures are reported at once, each with its
/// path and jq's message (422 `invalid_jq`).
pub fn compile(def: &WebhookDef) -> Result<CompiledWebhook, Error> {
    compile_parts(&def.mappings, def.security.request_identifier_path.as_deref())
}

/// Compiles proposed mappings (Port's "Test mapping" with mappings that are not saved yet).
pub fn compile_mappings(mappings: &[MappingDef]) -> Result<Vec<CompiledMapping>, Error> {
    check_mapping_count(mappings.len())?;
    check_expression_sizes(mappings, None)?;
    Ok(compile_parts(mappings, None)?.mappings)
}

fn compile_parts(mappings: &[MappingDef], request_identifier: Option<&str>) -> Result<CompiledWebhook, Error> {
    let mut errors = Vec::new();
    let request_identifier = request_identifier.and_then(|code| jq(code, "security.requestIdentifierPath", &mut errors));
    let mappings: Vec<CompiledMapping> =
        mappings.iter().enumerate().filter_map(|(i, m)| compile_mapping(m, &format!("mappings[{i}]"), &mut errors)).collect();
    if !errors.is_empty() {
        return Err(Error::invalid("invalid_jq", errors.join("; ")));
    }
    let input_demand = input_demand(&mappings);
    Ok(CompiledWebhook { mappings, request_identifier, input_demand })
}

/// What `mappings` observe of an event, together ([`CompiledWebhook::input_demand`]).
pub fn input_demand(mappings: &[CompiledMapping]) -> Demand {
    mappings.iter().fold(Demand::none(), |all, m| all.union(m.demand.clone()))
}

fn compile_mapping(def: &MappingDef, path: &str, errors: &mut Vec<String>) -> Option<CompiledMapping> {
    let before = errors.len();
    let operation = match operation(def.operation.as_ref(), path) {
        Ok(operation) => operation,
        Err(message) => {
            errors.push(message);
            Operation::Create
        }
    };
    let entity = &def.entity;
    if matches!(operation, Operation::Delete { .. })
        && (entity.title.is_some()
            || entity.icon.is_some()
            || entity.team.is_some()
            || entity.properties.is_some()
            || entity.relations.is_some())
    {
        errors.push(format!("`{path}.entity`: a delete mapping has only `identifier`"));
    }
    let filter = def.filter.as_deref().and_then(|code| jq(code, &format!("{path}.filter"), errors));
    let items_to_parse = def.items_to_parse.as_deref().and_then(|code| jq(code, &format!("{path}.itemsToParse"), errors));
    let identifier = source(&entity.identifier, &format!("{path}.entity.identifier"), errors);
    let field = |code: &Option<String>, name: &str, errors: &mut Vec<String>| {
        code.as_deref().and_then(|code| jq(code, &format!("{path}.entity.{name}"), errors))
    };
    let title = field(&entity.title, "title", errors);
    let icon = field(&entity.icon, "icon", errors);
    let team = field(&entity.team, "team", errors);
    let mut properties = Vec::new();
    for (name, code) in entity.properties.iter().flatten() {
        if let Some(program) = jq(code, &format!("{path}.entity.properties.{name}"), errors) {
            properties.push((name.clone(), program));
        }
    }
    let mut relations = Vec::new();
    for (name, value) in entity.relations.iter().flatten() {
        if let Some(source) = source(value, &format!("{path}.entity.relations.{name}"), errors) {
            relations.push((name.clone(), source));
        }
    }
    if errors.len() > before {
        return None;
    }
    let mut mapping = CompiledMapping {
        path: path.to_owned(),
        blueprint: def.blueprint.clone(),
        operation,
        filter,
        items_to_parse,
        identifier: identifier?,
        title,
        icon,
        team,
        properties,
        relations,
        demand: Demand::none(),
    };
    let mut programs = mapping.entity_programs();
    programs.extend([&mapping.filter, &mapping.items_to_parse].into_iter().flatten());
    mapping.demand = programs.into_iter().fold(Demand::none(), |all, p| all.union(p.input_demand().clone()));
    Some(mapping)
}

fn operation(value: Option<&Value>, path: &str) -> Result<Operation, String> {
    let kind = |name: &str| match name {
        "create" => Ok(Operation::Create),
        "delete" => Ok(Operation::Delete { delete_dependents: true }),
        other => Err(format!("`{path}.operation` is `{other}`; it must be `create` or `delete`")),
    };
    match value {
        None | Some(Value::Null) => Ok(Operation::Create),
        Some(Value::String(name)) => kind(name),
        Some(Value::Object(fields)) => {
            let mut operation = match fields.get("type") {
                Some(Value::String(name)) => kind(name)?,
                _ => return Err(format!("`{path}.operation.type` must be `create` or `delete`")),
            };
            for (key, value) in fields {
                match (key.as_str(), &mut operation) {
                    ("type", _) => {}
                    ("deleteDependents", Operation::Delete { delete_dependents }) => {
                        *delete_dependents =
                            value.as_bool().ok_or_else(|| format!("`{path}.operation.deleteDependents` must be a boolean"))?;
                    }
                    (other, _) => return Err(format!("`{path}.operation` has an unknown key `{other}`")),
                }
            }
            Ok(operation)
        }
        Some(other) => Err(format!("`{path}.operation` must be a string or an object, not {}", type_name(other))),
    }
}

fn jq(code: &str, path: &str, errors: &mut Vec<String>) -> Option<Program> {
    match Program::compile(code) {
        Ok(program) => Some(program),
        Err(err) => {
            errors.push(format!("`{path}` is not a valid jq expression: {}", one_line(&err.to_string())));
            None
        }
    }
}

fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A jq string, or a search query whose leaves are jq strings.
fn source(value: &Value, path: &str, errors: &mut Vec<String>) -> Option<Source> {
    match value {
        Value::String(code) => jq(code, path, errors).map(Source::Jq),
        Value::Object(fields) if fields.contains_key("combinator") || fields.contains_key("rules") => {
            let before = errors.len();
            let template = query_template(value, path, errors);
            (errors.len() == before).then_some(Source::Query(template))
        }
        other => {
            errors.push(format!(
                "`{path}` must be a jq expression (a string) or a search query `{{\"combinator\", \"rules\"}}`, not {}",
                type_name(other)
            ));
            None
        }
    }
}

fn query_template(value: &Value, path: &str, errors: &mut Vec<String>) -> QueryTemplate {
    match value {
        Value::String(code) => jq(code, path, errors).map_or(QueryTemplate::Literal(Value::Null), QueryTemplate::Jq),
        Value::Array(items) => QueryTemplate::Array(
            items.iter().enumerate().map(|(i, item)| query_template(item, &format!("{path}[{i}]"), errors)).collect(),
        ),
        Value::Object(fields) => QueryTemplate::Object(
            fields.iter().map(|(k, v)| (k.clone(), query_template(v, &format!("{path}.{k}"), errors))).collect(),
        ),
        literal => QueryTemplate::Literal(literal.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identifiers_made_under_an_older_pattern_can_be_updated() {
        let doc = json!({"identifier": "gh.events", "title": "GitHub"});
        let err = WebhookDef::parse(doc.clone()).unwrap_err();
        assert!(err.message.contains("use A-Z a-z 0-9 @ _ = -"), "{}", err.message);
        assert_eq!(err.code, "invalid_webhook");
        let def = WebhookDef::parse_update(doc, "gh.events").unwrap();
        assert_eq!(def.patched(json!({"title": "GH"})).unwrap().title, "GH");
        assert!(WebhookDef::parse_update(json!({"identifier": "x/y", "title": "T"}), "gh.events").is_err());
    }
}
