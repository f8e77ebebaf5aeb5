//! Mapping: what a webhook's mappings make of one event (SPEC §6 "Mapping"), and the result
//! recorded on the event.
//!
//! [`map_webhook_event`] is pure: it evaluates the jq of every mapping and returns the entity writes
//! it asks for, with search queries left for the engine to resolve against the catalog, and
//! one error per expression or item that failed. The engine applies the writes (validating
//! them against the blueprint) and records an [`WebhookEventResult`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wharf_jq::{Input, Limits, Program};

use crate::json::type_name;
use crate::time::Timestamp;
use crate::webhook::{CompiledMapping, MAX_ITEMS, Operation, QueryTemplate, Source};

/// How an entity is named: by identifier, or by a search query that must match exactly one.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Identifier(String),
    Query(Value),
}

/// The write a mapping asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum MappedAction {
    /// Upsert with merge of `doc` (Port's entity fields that were mapped); relations named
    /// by search queries are resolved by the engine and added to `doc`.
    Upsert {
        doc: Map<String, Value>,
        relation_queries: Vec<(String, Value)>,
    },
    Delete {
        delete_dependents: bool,
    },
}

/// One entity write produced by mapping `mapping` (for `item` of `itemsToParse`).
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEntity {
    pub mapping: usize,
    pub item: Option<usize>,
    pub blueprint: String,
    pub identifier: Target,
    pub action: MappedAction,
}

/// A failure while mapping or writing one entity (or a whole mapping, when `item` is absent
/// and the filter or `itemsToParse` failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemError {
    pub mapping: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// Where the failing expression sits in the webhook (`mappings[0].entity.properties.x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    pub message: String,
}

/// The budget of one event's mapping, all its mappings and all their items together (SPEC
/// §12): 10 M steps, 2 s, 256 MiB allocated. Each expression keeps its own, smaller budget
/// (`wharf_jq::DEFAULT_LIMITS`) inside it. The stack is each expression's own concern (1 MiB
/// each, on the jq threads' 32 MiB); the event's allows for the mapping's own frames.
pub const MAPPING_LIMITS: Limits = Limits { steps: 10_000_000, time: Duration::from_secs(2), stack: 4 << 20, memory: 256 << 20 };

/// Everything the mappings make of one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub entities: Vec<MappedEntity>,
    pub errors: Vec<ItemError>,
    /// Mappings whose filter passed.
    pub matched: usize,
    /// `itemsToParse` elements past [`MAX_ITEMS`], not mapped.
    pub truncated: usize,
    /// What the mappings' `stderr` and `debug` logged: one message a line, as JSON text, at
    /// most `wharf_jq::MAX_LOG_BYTES` (then a last line says so). `None` when nothing was.
    pub logs: Option<String>,
}

impl Mapped {
    /// An event that no mapping could read: one error, so the event is a failure.
    pub fn unreadable(message: String) -> Self {
        Self { errors: vec![ItemError { mapping: 0, item: None, expression: None, message }], ..Self::default() }
    }
}

/// Runs every mapping, in order, on `input` (`{"body","headers","queryParams"}`).
pub fn map_webhook_event(mappings: &[CompiledMapping], input: &Value) -> Mapped {
    // Projected once per mapping, for all of its programs (there are about ten).
    map_each(mappings, |mapping| Input::project(&mapping.demand, input))
}

/// Runs every mapping, in order, on an input that covers what all of them observe
/// ([`CompiledWebhook::input_demand`](crate::webhook::CompiledWebhook::input_demand)), as
/// [`crate::ingest::event_input`] parses a stored event: the mapper's path, with no
/// `serde_json::Value` of the event at all.
pub fn map_input(mappings: &[CompiledMapping], input: &Input) -> Mapped {
    map_each(mappings, |_| Ok(input.clone()))
}

/// Runs every mapping under one budget ([`MAPPING_LIMITS`]). Crossing it fails the event:
/// what was mapped is dropped (nothing of a half-mapped event is written), and the last error
/// names the budget.
fn map_each(mappings: &[CompiledMapping], input_of: impl Fn(&CompiledMapping) -> Result<Input, String>) -> Mapped {
    let run = wharf_jq::with_budget(MAPPING_LIMITS, || map_each_within_budget(mappings, input_of));
    let (mut mapped, at) = run.value;
    if let Some(exceeded) = run.exceeded {
        mapped.entities.clear();
        let message = format!(
            "the event's mapping exceeded its budget (all mappings and items together: {} steps, {} s, {} MiB allocated): {}",
            MAPPING_LIMITS.steps,
            MAPPING_LIMITS.time.as_secs(),
            MAPPING_LIMITS.memory >> 20,
            exceeded.message()
        );
        mapped.errors.push(ItemError { mapping: at, item: None, expression: None, message });
    }
    if !run.logs.text.is_empty() || run.logs.cut {
        let mut logs = run.logs.text;
        if run.logs.cut {
            if !logs.is_empty() && !logs.ends_with('\n') {
                logs.push('\n');
            }
            logs.push_str(&format!("[logs cut at {} bytes]\n", wharf_jq::MAX_LOG_BYTES));
        }
        mapped.logs = Some(logs);
    }
    mapped
}

/// [`map_each`]'s work; also gives the index of the mapping it stopped at when the budget
/// was crossed.
fn map_each_within_budget(
    mappings: &[CompiledMapping],
    input_of: impl Fn(&CompiledMapping) -> Result<Input, String>,
) -> (Mapped, usize) {
    let mut mapped = Mapped::default();
    for (index, mapping) in mappings.iter().enumerate() {
        // Once the budget is crossed, every evaluation fails at once: stop, rather than
        // record the same failure for every expression and item left.
        if wharf_jq::budget_exceeded().is_some() {
            return (mapped, index.saturating_sub(1));
        }
        let error =
            |expression: String, message: String| ItemError { mapping: index, item: None, expression: Some(expression), message };
        let input = match input_of(mapping) {
            Ok(input) => input,
            Err(message) => {
                mapped.errors.push(error(mapping.path.clone(), format!("input: {message}")));
                continue;
            }
        };
        if let Some(filter) = &mapping.filter {
            match filter.first_of(&input) {
                Ok(Some(Value::Bool(true))) => {}
                Ok(_) => continue,
                Err(err) => {
                    mapped.errors.push(error(format!("{}.filter", mapping.path), err.to_string()));
                    continue;
                }
            }
        }
        mapped.matched += 1;
        let Some(items) = &mapping.items_to_parse else {
            match map_entity(mapping, index, None, &input) {
                Ok(entity) => mapped.entities.push(entity),
                Err(err) => mapped.errors.push(err),
            }
            continue;
        };
        let items = match items.first_of(&input) {
            Ok(Some(Value::Array(items))) => items,
            Ok(other) => {
                let found = other.as_ref().map_or("nothing", type_name);
                let message = format!("`itemsToParse` must evaluate to an array, but gave {found}");
                mapped.errors.push(error(format!("{}.itemsToParse", mapping.path), message));
                continue;
            }
            Err(err) => {
                mapped.errors.push(error(format!("{}.itemsToParse", mapping.path), err.to_string()));
                continue;
            }
        };
        mapped.truncated += items.len().saturating_sub(MAX_ITEMS);
        for (i, item) in items.iter().take(MAX_ITEMS).enumerate() {
            if wharf_jq::budget_exceeded().is_some() {
                return (mapped, index);
            }
            // The item reaches its programs as jq's output became JSON (`to_json`: `2.0` is
            // `2`), as it did when the whole input was a `serde_json::Value`.
            let entity = input
                .with_field("item", item)
                .map_err(|message| ItemError {
                    mapping: index,
                    item: Some(i),
                    expression: Some(mapping.path.clone()),
                    message: format!("input: {message}"),
                })
                .and_then(|input| map_entity(mapping, index, Some(i), &input));
            match entity {
                Ok(entity) => mapped.entities.push(entity),
                Err(err) => mapped.errors.push(err),
            }
        }
    }
    let last = mappings.len().saturating_sub(1);
    (mapped, last)
}

fn map_entity(mapping: &CompiledMapping, index: usize, item: Option<usize>, input: &Input) -> Result<MappedEntity, ItemError> {
    let fail = |field: &str, message: String| ItemError {
        mapping: index,
        item,
        expression: Some(format!("{}.entity.{field}", mapping.path)),
        message,
    };
    let eval = |program: &Program, field: &str| {
        program.first_of(input).map(Option::unwrap_or_default).map_err(|e| fail(field, e.to_string()))
    };
    let identifier = match &mapping.identifier {
        Source::Jq(program) => match eval(program, "identifier")? {
            Value::String(id) if !id.is_empty() => Target::Identifier(id),
            Value::String(_) => return Err(fail("identifier", "the identifier is an empty string".into())),
            other => {
                return Err(fail(
                    "identifier",
                    format!(
                        "the identifier must be a string, but is {} ({other}); add `| tostring` to map numbers",
                        type_name(&other)
                    ),
                ));
            }
        },
        Source::Query(template) => {
            Target::Query(render(template, input).map_err(|(path, message)| fail(&format!("identifier{path}"), message))?)
        }
    };
    let action = match mapping.operation {
        Operation::Delete { delete_dependents } => MappedAction::Delete { delete_dependents },
        Operation::Create => {
            let mut doc = Map::new();
            for (field, program) in [("title", &mapping.title), ("icon", &mapping.icon), ("team", &mapping.team)] {
                if let Some(program) = program {
                    doc.insert(field.into(), eval(program, field)?);
                }
            }
            let mut properties = Map::new();
            for (name, program) in &mapping.properties {
                properties.insert(name.clone(), eval(program, &format!("properties.{name}"))?);
            }
            let mut relations = Map::new();
            let mut relation_queries = Vec::new();
            for (name, source) in &mapping.relations {
                match source {
                    Source::Jq(program) => {
                        relations.insert(name.clone(), eval(program, &format!("relations.{name}"))?);
                    }
                    Source::Query(template) => {
                        let query = render(template, input)
                            .map_err(|(path, message)| fail(&format!("relations.{name}{path}"), message))?;
                        relation_queries.push((name.clone(), query));
                    }
                }
            }
            if !properties.is_empty() {
                doc.insert("properties".into(), Value::Object(properties));
            }
            if !relations.is_empty() || !relation_queries.is_empty() {
                doc.insert("relations".into(), Value::Object(relations));
            }
            MappedAction::Upsert { doc, relation_queries }
        }
    };
    Ok(MappedEntity { mapping: index, item, blueprint: mapping.blueprint.clone(), identifier, action })
}

/// Evaluates a search-query template; an error carries the path below the template's root.
fn render(template: &QueryTemplate, input: &Input) -> Result<Value, (String, String)> {
    match template {
        QueryTemplate::Jq(program) => {
            program.first_of(input).map(Option::unwrap_or_default).map_err(|e| (String::new(), e.to_string()))
        }
        QueryTemplate::Literal(value) => Ok(value.clone()),
        QueryTemplate::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, t)| render(t, input).map_err(|(path, m)| (format!("[{i}]{path}"), m)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        QueryTemplate::Object(fields) => {
            let mut map = Map::new();
            for (key, t) in fields {
                map.insert(key.clone(), render(t, input).map_err(|(path, m)| (format!(".{key}{path}"), m))?);
            }
            Ok(Value::Object(map))
        }
    }
}

/// Where an event stands (`SUCCESS`, `PARTIAL`, `FAILURE`, `FILTERED` once mapped;
/// `PENDING` until then; `REJECTED` when its signature was refused and it was not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookEventStatus {
    Pending,
    Success,
    Partial,
    Failure,
    Filtered,
    Rejected,
}

impl WebhookEventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Success => "SUCCESS",
            Self::Partial => "PARTIAL",
            Self::Failure => "FAILURE",
            Self::Filtered => "FILTERED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "PENDING" => Self::Pending,
            "SUCCESS" => Self::Success,
            "PARTIAL" => Self::Partial,
            "FAILURE" => Self::Failure,
            "FILTERED" => Self::Filtered,
            "REJECTED" => Self::Rejected,
            _ => return None,
        })
    }

    /// The status of a mapped event: `FILTERED` when no mapping matched and nothing failed,
    /// `SUCCESS` when nothing failed, `PARTIAL` when some entities were written and some
    /// failed, `FAILURE` when only failures remain.
    pub fn of(matched: usize, succeeded: usize, failed: usize) -> Self {
        match (matched, succeeded, failed) {
            (0, _, 0) => Self::Filtered,
            (_, _, 0) => Self::Success,
            (_, 0, _) => Self::Failure,
            _ => Self::Partial,
        }
    }
}

/// What happened to one entity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityOperation {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Delete of an entity that did not exist: nothing to do.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityOutcome {
    pub blueprint: String,
    pub identifier: String,
    pub operation: EntityOperation,
    pub mapping: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

/// The record kept on a mapped event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEventResult {
    pub status: WebhookEventStatus,
    pub entities: Vec<EntityOutcome>,
    pub errors: Vec<ItemError>,
    #[serde(default)]
    pub truncated_items: usize,
    pub processed_at: Timestamp,
    /// What the mappings' `stderr` and `debug` logged ([`Mapped::logs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

impl WebhookEventResult {
    pub fn new(
        mapped_matched: usize,
        truncated: usize,
        entities: Vec<EntityOutcome>,
        errors: Vec<ItemError>,
        at: Timestamp,
    ) -> Self {
        let status = WebhookEventStatus::of(mapped_matched, entities.len(), errors.len());
        Self { status, entities, errors, truncated_items: truncated, processed_at: at, logs: None }
    }

    /// The result with the mapping's logs ([`Mapped::logs`]).
    pub fn with_logs(mut self, logs: Option<String>) -> Self {
        self.logs = logs;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_what_happened() {
        assert_eq!(WebhookEventStatus::of(0, 0, 0), WebhookEventStatus::Filtered);
        assert_eq!(WebhookEventStatus::of(2, 0, 0), WebhookEventStatus::Success, "matched, wrote nothing new, no error");
        assert_eq!(WebhookEventStatus::of(1, 3, 0), WebhookEventStatus::Success);
        assert_eq!(WebhookEventStatus::of(1, 2, 1), WebhookEventStatus::Partial);
        assert_eq!(WebhookEventStatus::of(1, 0, 1), WebhookEventStatus::Failure);
        assert_eq!(WebhookEventStatus::of(0, 0, 1), WebhookEventStatus::Failure, "a filter that fails is a failure");
        for status in [WebhookEventStatus::Pending, WebhookEventStatus::Success, WebhookEventStatus::Rejected] {
            assert_eq!(WebhookEventStatus::parse(status.as_str()), Some(status));
        }
    }

    /// An event is projected once per mapping, on what all of its programs observe together:
    /// each program, search-query templates and `.item` included, must still see its fields.
    #[test]
    fn every_program_of_a_mapping_reads_the_one_projection() {
        let def: crate::webhook::MappingDef = serde_json::from_value(serde_json::json!({
            "blueprint": "service",
            "filter": ".headers[\"x-kind\"] == \"deploy\"",
            "itemsToParse": ".body.services",
            "entity": {
                "identifier": {"combinator": "'and'", "rules": [{"property": "'version'", "operator": "'='", "value": ".body.version"}]},
                "title": ".item.name",
                "properties": {"tier": ".item.tier", "region": ".queryParams.region"},
                "relations": {"owner": {"combinator": "'and'", "rules": [{"property": "'$team'", "operator": "'='", "value": ".body.team"}]}}
            }
        }))
        .unwrap();
        let mappings = crate::webhook::compile_mappings(&[def]).unwrap();
        let input = serde_json::json!({
            "body": {"version": "1.2", "team": "core", "unread": {"big": [1, 2, 3]},
                     "services": [{"name": "api", "tier": 1, "extra": true}]},
            "headers": {"x-kind": "deploy", "x-other": "left out"},
            "queryParams": {"region": "eu"}
        });
        let mapped = map_webhook_event(&mappings, &input);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let [entity] = &mapped.entities[..] else { panic!("one entity: {mapped:?}") };
        assert_eq!(
            entity.identifier,
            Target::Query(
                serde_json::json!({"combinator": "and", "rules": [{"property": "version", "operator": "=", "value": "1.2"}]})
            )
        );
        let MappedAction::Upsert { doc, relation_queries } = &entity.action else { panic!("an upsert") };
        assert_eq!(doc["title"], "api");
        assert_eq!(doc["properties"], serde_json::json!({"tier": 1, "region": "eu"}));
        assert_eq!(relation_queries[0].1["rules"][0]["value"], "core");
    }

    /// The mapper parses a stored request's text straight into one projection for every
    /// mapping (`event_input` + `map_input`); it must map exactly as the `Value` path does
    /// (`stored_input` + `map_webhook_event`), for every kind of program, items (which reach their
    /// programs as jq printed them), and stored shapes the ingest path does not write.
    #[test]
    fn a_stored_request_maps_from_its_text_as_from_its_value() {
        let defs: Vec<crate::webhook::MappingDef> = serde_json::from_value(serde_json::json!([
            {"blueprint": "service", "filter": ".headers[\"x-kind\"] == \"deploy\"", "itemsToParse": ".body.services",
             "entity": {"identifier": ".item.name", "title": ".item.name + \"@\" + (.body.version | tostring)",
                        "properties": {"tier": ".item.tier | tostring", "half": ".item.tier / 2", "region": ".queryParams.region",
                                       "keys": ".item | keys", "all": ". | keys"},
                        "relations": {"owner": {"combinator": "'and'", "rules": [{"property": "'$team'", "operator": "'='", "value": ".body.team"}]}}}},
            {"blueprint": "release", "entity": {"identifier": ".body.version | tostring", "properties": {"whole": "."}}},
            {"blueprint": "broken", "itemsToParse": ".body.team", "entity": {"identifier": ".item"}}
        ]))
        .unwrap();
        let mappings = crate::webhook::compile_mappings(&defs).unwrap();
        let webhook = crate::webhook::CompiledWebhook {
            input_demand: crate::webhook::input_demand(&mappings),
            mappings,
            request_identifier: None,
        };
        let requests = [
            r#"{"body":{"version":1.0,"team":"core","unread":{"big":[1,2,3]},
                "services":[{"name":"api","tier":2.0,"extra":true},{"name":"web","tier":3}]},
               "headers":{"x-kind":"deploy","x-other":"left out"},"queryParams":{"region":"eu"}}"#,
            // Shapes the ingest path does not write: other keys, other order, no headers, not an object.
            r#"{"headers":{"x-kind":"deploy"},"body":{"version":2,"services":[{"name":"a","tier":1}]},"extra":1}"#,
            r#"{"queryParams":{},"headers":{"x-kind":"deploy"},"body":{"version":2,"services":[]}}"#,
            r#"{"body":{"version":3,"services":[]},"headers":"not an object"}"#,
            r#"[1,2]"#,
            "null",
        ];
        for text in requests {
            let value: Value = serde_json::from_str(text).unwrap();
            let expected = map_webhook_event(&webhook.mappings, &crate::ingest::stored_input(value));
            let input = crate::ingest::event_input(&webhook.input_demand, Some(text)).unwrap();
            // Debug, not `==`: objects compare equal in any key order, and order is kept.
            assert_eq!(format!("{:?}", map_input(&webhook.mappings, &input)), format!("{expected:?}"), "{text}");
        }
        let first = crate::ingest::event_input(&webhook.input_demand, Some(requests[0])).unwrap();
        let mapped = map_input(&webhook.mappings, &first);
        assert_eq!(mapped.entities.len(), 3, "{mapped:?}");
        let MappedAction::Upsert { doc, .. } = &mapped.entities[0].action else { panic!("an upsert") };
        assert_eq!(doc["title"], "api@1.0");
        assert_eq!(doc["properties"]["all"], serde_json::json!(["body", "headers", "item", "queryParams"]));
        assert!(crate::ingest::event_input(&webhook.input_demand, Some("{\"body\":")).is_err());
        assert_eq!(
            crate::ingest::event_input(&webhook.input_demand, None).map(|i| map_input(&webhook.mappings, &i).matched).ok(),
            Some(2)
        );
    }
}
