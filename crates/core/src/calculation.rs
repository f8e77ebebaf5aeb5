//! Port's calculation properties: a blueprint's `calculationProperties`, each a jq expression
//! over an entity whose value every read of the entity carries in its `properties`.
//!
//! ```json
//! "calculationProperties": {
//!   "url": {"title": "URL", "type": "string", "format": "url",
//!           "calculation": "'https://github.com/acme/' + .identifier"}
//! }
//! ```
//!
//! The expression reads the entity as the API answers it (`.identifier`, `.title`,
//! `.properties`, `.relations`, `.createdAt`, …), without the other calculated values. Its
//! value is the first output, when it has the declared `type`; `null` otherwise (no output, a
//! value of another type, a runtime error, the budget crossed, or a value deeper or larger
//! than an answer may hold): a read never fails on a calculation.
//!
//! Values are computed when an entity is read, never stored: a change to the expression
//! applies to every entity at once and entity changes do not carry them; a search whose rules
//! name one computes it for each entity it reads.

use serde::Deserialize;
use serde_json::{Map, Value};
use wharf_jq::{Limits, Program, ProgramCache, with_budget};

use crate::Error;
use crate::blueprint::{BlueprintDef, PropertyType};
use crate::entity::MAX_VALUE_DEPTH;
use crate::json::depth;

const CODE: &str = "invalid_blueprint";

/// The longest calculation expression (as an action's jq expressions).
pub const MAX_CALCULATION: usize = 64 * 1024;

/// The budget of one calculation over one entity: many times what an expression over one
/// entity takes (tens of steps), small enough that a page of thousands stays quick.
pub const CALCULATION_LIMITS: Limits =
    Limits { steps: 100_000, time: std::time::Duration::from_millis(10), stack: 1 << 20, memory: 16 << 20 };

/// The budget of one answer's calculations, over every entity in it: what is left when it runs
/// out, the calculated values of the entities left are `null`.
pub const ANSWER_LIMITS: Limits =
    Limits { steps: 20_000_000, time: std::time::Duration::from_secs(2), stack: 1 << 20, memory: 256 << 20 };

/// The largest calculated value, as JSON text: a value past it is `null`, so that one
/// expression cannot make every answer of its blueprint huge.
pub const MAX_CALCULATED_BYTES: usize = 256 * 1024;

/// Whether a calculated value may be answered: no deeper than an entity's own values
/// ([`MAX_VALUE_DEPTH`], so that a run's context or payload that embeds it reads back) and at
/// most [`MAX_CALCULATED_BYTES`] long.
fn answerable(value: &Value) -> bool {
    /// Counts what is written and stops the writing past the limit.
    struct Bounded(usize);
    impl std::io::Write for Bounded {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            if self.0 > MAX_CALCULATED_BYTES { Err(std::io::Error::other("too large")) } else { Ok(bytes.len()) }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::String(text) => text.len() <= MAX_CALCULATED_BYTES,
        Value::Array(_) | Value::Object(_) => depth(value) <= MAX_VALUE_DEPTH && serde_json::to_writer(Bounded(0), value).is_ok(),
    }
}

/// One calculation property as written (the other keys Port accepts, such as `colorized` and
/// `colors`, are kept in the blueprint as written).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalculationDef {
    calculation: String,
    #[serde(rename = "type")]
    kind: PropertyType,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Checks a blueprint's `calculationProperties` (their shape; [`check_programs`] compiles
/// them): each is an object with a `calculation` string and a `type`, named as a property is
/// and unlike any schema property.
pub(crate) fn validate(def: &BlueprintDef) -> Result<(), Error> {
    for (name, written) in &def.calculation_properties {
        let path = format!("calculationProperties.{name}");
        crate::blueprint::check_key(name, &path)?;
        let calculation = parse(written, &path)?;
        crate::blueprint::check_field_texts(&path, calculation.title.as_deref(), calculation.description.as_deref())?;
        if calculation.calculation.len() > MAX_CALCULATION {
            return Err(Error::invalid(
                CODE,
                format!(
                    "`{path}.calculation` is {} bytes long; at most {MAX_CALCULATION} are allowed",
                    calculation.calculation.len()
                ),
            ));
        }
        if def.schema.properties.contains_key(name) {
            return Err(Error::invalid(
                CODE,
                format!("`{path}` has the name of a property of the schema; a calculation property needs a name of its own"),
            ));
        }
    }
    Ok(())
}

fn parse(written: &Value, path: &str) -> Result<CalculationDef, Error> {
    crate::blueprint::parse_entry(
        written,
        path,
        r#"{"type": "string", "calculation": ".identifier"}"#,
        &[("calculation", "a jq expression"), ("type", "one of string, number, boolean, object, array")],
    )
}

/// Compiles every calculation of `def` (on a thread with room for the compiler: the engine's
/// jq threads), naming each that does not compile.
pub fn check_programs(def: &BlueprintDef) -> Result<(), Error> {
    let mut errors = Vec::new();
    for (name, written) in &def.calculation_properties {
        let path = format!("calculationProperties.{name}.calculation");
        if let Some(Value::String(code)) = written.get("calculation") {
            crate::action::compile(code, &path, "a valid jq expression", &mut errors);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::invalid("invalid_jq", errors.join("; "))) }
}

/// A blueprint's calculations, compiled: what adds their values to its entities' answers.
pub struct Calculations {
    programs: Vec<(String, PropertyType, Option<Program>)>,
}

impl Calculations {
    /// The calculations of `def`, compiled through `programs` (one that does not compile, as
    /// stored by an earlier Wharf, always gives `null`).
    pub fn of(def: &BlueprintDef, programs: &ProgramCache) -> Self {
        let programs = def
            .calculation_properties
            .iter()
            .filter_map(|(name, written)| {
                let calculation: CalculationDef = serde_json::from_value(written.clone()).ok()?;
                Some((name.clone(), calculation.kind, programs.program(&calculation.calculation).ok()))
            })
            .collect();
        Self { programs }
    }

    /// Adds the calculated values to `doc` (an entity as answered), each under `properties`.
    /// Run inside a unit of work ([`with_budget`], with [`ANSWER_LIMITS`]): each calculation
    /// spends at most [`CALCULATION_LIMITS`] of it, so one that runs away costs the others
    /// nothing but the time it took.
    pub fn add_to(&self, doc: &mut Value) {
        if self.programs.is_empty() {
            return;
        }
        let values: Vec<(String, Value)> = self
            .programs
            .iter()
            .map(|(name, kind, program)| {
                let value = program
                    .as_ref()
                    .and_then(|program| with_budget(CALCULATION_LIMITS, || program.first(doc)).value.ok().flatten())
                    .filter(|value| kind.admits(value) && answerable(value))
                    .unwrap_or(Value::Null);
                (name.clone(), value)
            })
            .collect();
        if let Value::Object(entity) = doc {
            let properties = entity.entry("properties").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(properties) = properties {
                properties.extend(values);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blueprint(calculations: Value) -> Result<BlueprintDef, Error> {
        BlueprintDef::parse(json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {"mb": {"type": "number"}, "name": {"type": "string"}}},
            "calculationProperties": calculations
        }))
    }

    fn calculated(calculations: Value, entity: Value) -> Value {
        let def = blueprint(calculations).unwrap();
        check_programs(&def).unwrap();
        let mut doc = entity;
        let cache = ProgramCache::default();
        with_budget(ANSWER_LIMITS, || Calculations::of(&def, &cache).add_to(&mut doc));
        doc["properties"].clone()
    }

    #[test]
    fn values_are_the_first_output_of_the_declared_type() {
        let properties = calculated(
            json!({
                "endless": {"type": "number", "calculation": "last(range(1e9))"},
                "gb": {"type": "number", "calculation": ".properties.mb / 1024"},
                "url": {"type": "string", "format": "url", "calculation": "'https://x.test/' + .identifier"},
                "first": {"type": "number", "calculation": "1, 2"},
                "none": {"type": "string", "calculation": "empty"},
                "wrong": {"type": "string", "calculation": ".properties.mb"},
                "failing": {"type": "number", "calculation": "error(\"no\")"},
                "other": {"type": "number", "calculation": ".properties.gb"},
                "huge": {"type": "string", "calculation": "\"x\" * 300000"},
                "deep": {"type": "array", "calculation": "reduce range(101) as $i (1; [.])"},
                "deepest": {"type": "array", "calculation": "reduce range(99) as $i (1; [.])"}
            }),
            json!({"identifier": "api", "properties": {"mb": 2048}}),
        );
        assert_eq!(
            properties,
            json!({"mb": 2048, "gb": 2, "url": "https://x.test/api", "first": 1, "none": null, "wrong": null,
                   "failing": null, "other": null, "endless": null, "huge": null, "deep": null,
                   "deepest": (0..99).fold(json!(1), |v, _| json!([v]))})
        );
    }

    #[test]
    fn an_entity_without_properties_gets_them() {
        let properties =
            calculated(json!({"id": {"type": "string", "calculation": ".identifier"}}), json!({"identifier": "api"}));
        assert_eq!(properties, json!({"id": "api"}));
    }

    #[test]
    fn definitions_are_checked_and_named() {
        let error = |calculations: Value| match blueprint(calculations) {
            Ok(def) => check_programs(&def).unwrap_err().to_string(),
            Err(err) => err.to_string(),
        };
        assert!(
            error(json!({"x": "'a'"})).contains("`calculationProperties.x` must be an object"),
            "{}",
            error(json!({"x": "'a'"}))
        );
        assert!(error(json!({"x": {"type": "string"}})).contains("`calculationProperties.x.calculation` is required"));
        assert!(error(json!({"x": {"calculation": "1"}})).contains("`calculationProperties.x.type` is required"));
        assert!(error(json!({"x": {"calculation": "1", "type": "date"}})).contains("calculationProperties.x"));
        assert!(error(json!({"x": {"calculation": 1, "type": "number"}})).contains("calculationProperties.x"));
        assert!(error(json!({"mb": {"calculation": "1", "type": "number"}})).contains("the name of a property of the schema"));
        assert!(error(json!({"a b": {"calculation": "1", "type": "number"}})).contains("`calculationProperties.a b`"));
        assert!(
            error(json!({"x": {"calculation": ".[", "type": "number"}}))
                .contains("`calculationProperties.x.calculation` is not a valid jq expression")
        );
        let colorized = json!({"x": {"calculation": "1", "type": "number", "colorized": true, "colors": {"red": "1"}}});
        assert!(blueprint(colorized).is_ok());
    }
}
