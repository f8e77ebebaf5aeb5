//! A run's user inputs, checked against its action's `trigger.userInputs` (reference §3,
//! SPEC §8: bad run inputs answer 422 naming the input, `inputs.version: must be one of …`).
//!
//! [`check_inputs`] is pure: it reads the action document as saved (already validated by
//! [`crate::action::ActionDef::parse`]), the run's `properties` and the jq context of the
//! run, and returns the inputs the run will carry with their defaults filled in, plus the
//! entities they name, which the engine looks up. Every problem is reported at once, each
//! `inputs.<name>: <what is wrong>`, joined with `; ` (Port reports the first only).
//!
//! What is checked, per input (and per element of an `array` input against its `items`):
//! the type; `format: "entity"` (an identifier, or an entity object with an `identifier`, as
//! Port's UI sends it); `enum` (a list, or a `{"jqQuery"}` whose first output is the list);
//! the string formats `date-time` (RFC 3339), `url` (absolute http or https), `email`, `ipv4`
//! and `ipv6` (the others, `yaml`, `user`, `team`, `markdown`… are free-form text);
//! `minLength`/`maxLength` (characters), `minimum`/`maximum`, `minItems`/`maxItems`, and
//! `pattern`. Not checked: an entity input's `dataset` (which entities the UI offers), and
//! `dependsOn` (the UI's order of evaluation).
//!
//! `pattern` is tested with jq's `test` (jaq's regular expressions, on `regex-bites`, under
//! the run's jq budget): wharf-core has no regex dependency of its own, and jq's engine is
//! the one the rest of Wharf's user-written expressions use. It is unanchored, as JSON
//! Schema's `pattern` is; constructs `regex-bites` lacks (look-around, back-references) make
//! the pattern unusable, which is reported as a problem of the input.
//!
//! The `{"jqQuery"}`s of `default`, `enum`, `required`, `visible` and `disabled` run against
//! the caller's context (`{"user", "entity", "trigger", …}`) with `form` set to the inputs as
//! they stand (given values, then defaults), as Port's forms do (`.form.environment`). Only
//! their first output is used. All of them, for one run, share one budget
//! ([`INPUT_LIMITS`]); a jq error or a crossed budget is a problem naming the input.

use std::borrow::Cow;

use serde_json::{Map, Value};
use wharf_jq::template::Renderer;
use wharf_jq::{Limits, Program, ProgramCache};

use crate::Error;
use crate::json::type_name;

/// The error code of every refusal (422).
pub const CODE: &str = "invalid_inputs";

/// The budget of all the jq of one run's inputs together (defaults, enums, `required`,
/// `visible`, `disabled`, patterns, templated entity blueprints): one evaluation's default.
pub const INPUT_LIMITS: Limits = wharf_jq::DEFAULT_LIMITS;

/// The most problems one refusal lists; the rest are counted.
pub const MAX_PROBLEMS: usize = 20;

/// How much of a value a message quotes, in characters.
const QUOTE_CHARS: usize = 100;

/// How many choices of an `enum` a message lists.
const LISTED_CHOICES: usize = 20;

/// What a run's inputs became: every given value kept, defaults filled in for absent inputs,
/// and the entities the inputs name (to be checked to exist by the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedInputs {
    /// The given values in the order given, then the defaults of absent inputs in the order
    /// of the action's inputs.
    pub values: Map<String, Value>,
    /// Every entity an input names, in the order of the action's inputs.
    pub entity_refs: Vec<EntityRef>,
}

/// An entity named by an input with `format: "entity"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// The input, and the element of an array input: `service`, `services[1]`.
    pub input: String,
    /// The blueprint the action's input names (a templated one, rendered).
    pub blueprint: String,
    pub identifier: String,
}

/// Checks a run's `given` inputs (its `properties`; `null` when it has none) against the
/// `trigger.userInputs` of `action_document`, filling in defaults. `context` is what the
/// inputs' `jqQuery`s read (`form` is set to the inputs). Every problem is reported in one
/// 422 `invalid_inputs`, each message naming its input (`inputs.version: must be one of "1.0",
/// "2.0", not "3.0"`).
pub fn check_inputs(action_document: &Value, given: &Value, context: &Value) -> Result<CheckedInputs, Error> {
    let values = match given {
        Value::Null => Map::new(),
        Value::Object(values) => values.clone(),
        other => {
            return Err(Error::invalid(CODE, format!("inputs: must be an object of input values, not {}", a(type_name(other)))));
        }
    };
    let user_inputs = action_document.pointer("/trigger/userInputs");
    let empty = Map::new();
    let definitions = user_inputs.and_then(|u| u.get("properties")).and_then(Value::as_object).unwrap_or(&empty);
    let required = user_inputs.and_then(|u| u.get("required"));
    let mut context = match context {
        Value::Object(context) => context.clone(),
        _ => Map::new(),
    };
    context.insert("form".to_owned(), Value::Null);
    let mut checker = Checker {
        programs: ProgramCache::default(),
        context: Value::Object(context),
        pattern: None,
        problems: Vec::new(),
        entity_refs: Vec::new(),
    };
    let run = wharf_jq::with_budget(INPUT_LIMITS, || checker.check(definitions, required, values));
    let values = run.value;
    if let Some(exceeded) = run.exceeded
        && checker.problems.is_empty()
    {
        checker.problems.push((0, format!("inputs: the jq of this action's inputs crossed its budget: {}", exceeded.message())));
    }
    if checker.problems.is_empty() {
        return Ok(CheckedInputs { values, entity_refs: checker.entity_refs });
    }
    // Unknown keys and whole-form problems first, then each input's in the action's order.
    checker.problems.sort_by_key(|(order, _)| *order);
    let count = checker.problems.len();
    let mut messages: Vec<String> = checker.problems.into_iter().take(MAX_PROBLEMS).map(|(_, m)| m).collect();
    if count > MAX_PROBLEMS {
        messages.push(format!("and {} more problems", count - MAX_PROBLEMS));
    }
    Err(Error::invalid(CODE, messages.join("; ")))
}

/// The encryption Port's secret inputs name (`"encryption": "aes256-gcm"`): the value is
/// encrypted for the action's agent ([`crate::agent::encrypt_field`]) before the run is
/// written, so it is never stored, logged or shown in clear.
pub const INPUT_ENCRYPTION: &str = "aes256-gcm";

/// The inputs of an action that are encrypted for its agent, in the action's order.
pub fn encrypted_inputs(action_document: &Value) -> Vec<String> {
    let definitions = action_document.pointer("/trigger/userInputs/properties").and_then(Value::as_object);
    definitions
        .into_iter()
        .flatten()
        .filter(|(_, def)| def.get("encryption").and_then(Value::as_str) == Some(INPUT_ENCRYPTION))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Replaces the value of each of `names` present in `values` (and not null) with what
/// `encrypt` makes of its text ([`crate::agent::field_plaintext`]).
pub fn encrypt_inputs<E>(
    values: &mut Map<String, Value>,
    names: &[String],
    mut encrypt: impl FnMut(&str) -> Result<String, E>,
) -> Result<(), E> {
    for name in names {
        if let Some(value) = values.get_mut(name).filter(|v| !v.is_null()) {
            *value = Value::String(encrypt(&crate::agent::field_plaintext(value))?);
        }
    }
    Ok(())
}

/// The state of one check: the jq it compiled, the context its `jqQuery`s read, and what it
/// found.
struct Checker {
    programs: ProgramCache,
    /// The caller's context with `form`.
    context: Value,
    /// `test($pattern)`, compiled when a pattern is first tested.
    pattern: Option<Result<Program, String>>,
    /// Each problem with where it sorts: 0 for the whole form, 1 + the input's position.
    problems: Vec<(usize, String)>,
    entity_refs: Vec<EntityRef>,
}

impl Checker {
    fn check(
        &mut self,
        definitions: &Map<String, Value>,
        required: Option<&Value>,
        mut values: Map<String, Value>,
    ) -> Map<String, Value> {
        for name in values.keys() {
            if !definitions.contains_key(name) {
                self.problems.push((0, unknown_input(name, definitions)));
            }
        }
        // Literal defaults first, so that a jqQuery default can read them in `.form`.
        let mut defaulted = Vec::new();
        for (name, definition) in definitions {
            if values.get(name).is_none_or(Value::is_null)
                && let Some(default) = definition.get("default").filter(|d| !d.is_null() && jq_code(d).is_none())
            {
                values.insert(name.clone(), default.clone());
                defaulted.push(name.as_str());
            }
        }
        for (order, (name, definition)) in definitions.iter().enumerate() {
            let Some(code) = definition.get("default").and_then(jq_code) else { continue };
            if !values.get(name).is_none_or(Value::is_null) {
                continue;
            }
            self.set_form(&values);
            match self.first(code) {
                Ok(Some(value)) if !value.is_null() => {
                    values.insert(name.clone(), value);
                    defaulted.push(name.as_str());
                }
                Ok(_) => {}
                Err(err) => self.problems.push((order + 1, format!("inputs.{name}: the jqQuery of its default failed: {err}"))),
            }
        }
        self.set_form(&values);
        let required = self.required_names(required);
        for (order, (name, definition)) in definitions.iter().enumerate() {
            let Some(definition) = definition.as_object() else { continue };
            let mut problems = Vec::new();
            match values.get(name).filter(|v| !v.is_null()) {
                Some(value) => {
                    let choices = self.choices(definition, name, &mut problems);
                    self.check_value(definition, choices.as_deref(), value, name, &mut problems);
                    if defaulted.contains(&name.as_str()) {
                        for problem in &mut problems {
                            problem.push_str(" (the value of its default)");
                        }
                    }
                }
                None if required.iter().any(|r| r == name.as_str()) && self.may_be_required(definition, name, &mut problems) => {
                    problems.push(format!("inputs.{name}: is required"));
                }
                None => {}
            }
            self.problems.extend(problems.into_iter().map(|p| (order + 1, p)));
        }
        values
    }

    fn set_form(&mut self, values: &Map<String, Value>) {
        if let Value::Object(context) = &mut self.context {
            context.insert("form".to_owned(), Value::Object(values.clone()));
        }
    }

    /// The first output of `code` on the context; the error in one line.
    fn first(&self, code: &str) -> Result<Option<Value>, String> {
        self.programs.first(code, &self.context).map_err(|err| one_line(&err.to_string()))
    }

    /// The names `trigger.userInputs.required` lists, or its jqQuery gives.
    fn required_names<'d>(&mut self, required: Option<&'d Value>) -> Vec<Cow<'d, str>> {
        let names = match required {
            Some(Value::Array(names)) => return names.iter().filter_map(Value::as_str).map(Cow::Borrowed).collect(),
            Some(query) => match jq_code(query) {
                Some(code) => self.first(code),
                None => return Vec::new(),
            },
            None => return Vec::new(),
        };
        match names {
            Ok(Some(Value::Array(names))) if names.iter().all(Value::is_string) => {
                names.into_iter().filter_map(|n| n.as_str().map(|n| Cow::Owned(n.to_owned()))).collect()
            }
            Ok(None | Some(Value::Null)) => Vec::new(),
            Ok(Some(other)) => {
                self.problems
                    .push((0, format!("inputs: the jqQuery of `required` gave {}, not an array of input names", quote(&other))));
                Vec::new()
            }
            Err(err) => {
                self.problems.push((0, format!("inputs: the jqQuery of `required` failed: {err}")));
                Vec::new()
            }
        }
    }

    /// Whether a required input left out is to be given: not when it is hidden (`visible`
    /// false, or a jqQuery giving false) or disabled (`disabled` true, or a jqQuery giving
    /// true), as Port's form leaves such inputs out of its required ones.
    fn may_be_required(&mut self, definition: &Map<String, Value>, name: &str, problems: &mut Vec<String>) -> bool {
        for (key, excludes) in [("visible", false), ("disabled", true)] {
            let flag = match definition.get(key) {
                Some(Value::Bool(flag)) => Some(*flag),
                Some(query) => match jq_code(query).map(|code| self.first(code)) {
                    Some(Ok(value)) => value.and_then(|v| v.as_bool()),
                    Some(Err(err)) => {
                        problems.push(format!("inputs.{name}: the jqQuery of its `{key}` failed: {err}"));
                        return false;
                    }
                    None => None,
                },
                None => None,
            };
            if flag == Some(excludes) {
                return false;
            }
        }
        true
    }

    /// The choices of `definition.enum`: the list, or what its jqQuery gives (a problem, and
    /// no choices, when that is not a list).
    fn choices<'d>(
        &mut self,
        definition: &'d Map<String, Value>,
        name: &str,
        problems: &mut Vec<String>,
    ) -> Option<Cow<'d, [Value]>> {
        match definition.get("enum") {
            Some(Value::Array(choices)) => Some(Cow::Borrowed(choices)),
            Some(query) => match jq_code(query).map(|code| self.first(code)) {
                Some(Ok(Some(Value::Array(choices)))) => Some(Cow::Owned(choices)),
                Some(Ok(other)) => {
                    let gave = other.as_ref().map_or_else(|| "no output".to_owned(), quote);
                    problems.push(format!("inputs.{name}: the jqQuery of its enum gave {gave}, not an array of choices"));
                    None
                }
                Some(Err(err)) => {
                    problems.push(format!("inputs.{name}: the jqQuery of its enum failed: {err}"));
                    None
                }
                None => None,
            },
            None => None,
        }
    }

    /// Checks one value (an input's, or an element's against `items`) at `name` (`tags`,
    /// `tags[2]`), with the choices of its `enum` already resolved.
    fn check_value(
        &mut self,
        definition: &Map<String, Value>,
        choices: Option<&[Value]>,
        value: &Value,
        name: &str,
        problems: &mut Vec<String>,
    ) {
        if definition.get("format").and_then(Value::as_str) == Some("entity") {
            self.check_entity(definition, choices, value, name, problems);
            return;
        }
        if let Some(kind) = definition.get("type").and_then(Value::as_str)
            && !has_type(kind, value)
        {
            problems.push(format!("inputs.{name}: must be {}, not {}", a(kind), a(type_name(value))));
            return;
        }
        if let Some(choices) = choices
            && !choices.contains(value)
        {
            problems.push(format!("inputs.{name}: must be one of {}, not {}", list_choices(choices), quote(value)));
            return;
        }
        match value {
            Value::String(text) => self.check_string(definition, text, name, problems),
            Value::Number(number) => {
                let number = number.as_f64().unwrap_or(f64::NAN);
                if let Some(bound) = definition.get("minimum").filter(|b| b.as_f64().is_some_and(|b| number < b)) {
                    problems.push(format!("inputs.{name}: must be at least {bound}, not {value}"));
                }
                if let Some(bound) = definition.get("maximum").filter(|b| b.as_f64().is_some_and(|b| number > b)) {
                    problems.push(format!("inputs.{name}: must be at most {bound}, not {value}"));
                }
            }
            Value::Array(elements) => {
                let count = elements.len() as f64;
                if let Some(bound) = definition.get("minItems").filter(|b| b.as_f64().is_some_and(|b| count < b)) {
                    problems.push(format!("inputs.{name}: must have at least {bound} {}, not {}", items(bound), elements.len()));
                }
                if let Some(bound) = definition.get("maxItems").filter(|b| b.as_f64().is_some_and(|b| count > b)) {
                    problems.push(format!("inputs.{name}: must have at most {bound} {}, not {}", items(bound), elements.len()));
                }
                if let Some(item) = definition.get("items").and_then(Value::as_object) {
                    let choices = self.choices(item, name, problems);
                    for (i, element) in elements.iter().enumerate() {
                        self.check_value(item, choices.as_deref(), element, &format!("{name}[{i}]"), problems);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_string(&mut self, definition: &Map<String, Value>, text: &str, name: &str, problems: &mut Vec<String>) {
        let length = text.chars().count();
        let count = length as f64;
        if let Some(bound) = definition.get("minLength").filter(|b| b.as_f64().is_some_and(|b| count < b)) {
            problems.push(format!("inputs.{name}: must be at least {bound} {} long, not {length}", characters(bound)));
        }
        if let Some(bound) = definition.get("maxLength").filter(|b| b.as_f64().is_some_and(|b| count > b)) {
            problems.push(format!("inputs.{name}: must be at most {bound} {} long, not {length}", characters(bound)));
        }
        if let Some(format) = definition.get("format").and_then(Value::as_str)
            && let Some(expected) = format_problem(format, text)
        {
            problems.push(format!("inputs.{name}: must be {expected}, not {}", quote(&Value::String(text.to_owned()))));
        }
        if let Some(pattern) = definition.get("pattern").and_then(Value::as_str) {
            match self.matches(pattern, text) {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "inputs.{name}: must match the pattern `{}`, not {}",
                    cut(pattern),
                    quote(&Value::String(text.to_owned()))
                )),
                Err(err) => problems.push(format!("inputs.{name}: its pattern `{}` cannot be used: {err}", cut(pattern))),
            }
        }
    }

    /// Whether `text` matches `pattern` (jq's `test`).
    fn matches(&mut self, pattern: &str, text: &str) -> Result<bool, String> {
        let program = self
            .pattern
            .get_or_insert_with(|| {
                Program::compile_with_vars("test($pattern)", &["pattern"]).map_err(|e| one_line(&e.to_string()))
            })
            .clone()?;
        let outputs = program
            .run_with_vars(&Value::String(text.to_owned()), &[Value::String(pattern.to_owned())])
            .map_err(|e| one_line(&e.to_string()))?;
        Ok(outputs.first() == Some(&Value::Bool(true)))
    }

    /// An entity input's value: an identifier, or an entity object with one (and, if it
    /// says, of the input's blueprint). The identifier is recorded for the engine.
    fn check_entity(
        &mut self,
        definition: &Map<String, Value>,
        choices: Option<&[Value]>,
        value: &Value,
        name: &str,
        problems: &mut Vec<String>,
    ) {
        let (identifier, stated_blueprint) = match value {
            Value::String(identifier) => (identifier.as_str(), None),
            Value::Object(entity) => match entity.get("identifier") {
                Some(Value::String(identifier)) => (identifier.as_str(), entity.get("blueprint").and_then(Value::as_str)),
                _ => {
                    problems.push(format!("inputs.{name}: must be an entity identifier or an entity object with an `identifier`; this object has no string `identifier`"));
                    return;
                }
            },
            other => {
                problems.push(format!(
                    "inputs.{name}: must be an entity identifier (a string) or an entity object, not {}",
                    a(type_name(other))
                ));
                return;
            }
        };
        if let Some(choices) = choices {
            let chosen = choices.iter().any(|choice| {
                choice == value
                    || choice.as_str() == Some(identifier)
                    || choice.get("identifier").and_then(Value::as_str) == Some(identifier)
            });
            if !chosen {
                problems.push(format!("inputs.{name}: must be one of {}, not {}", list_choices(choices), quote(value)));
                return;
            }
        }
        let blueprint = match definition.get("blueprint").and_then(Value::as_str) {
            Some(template) if template.contains("{{") => {
                let rendered =
                    Renderer::new(&self.programs, &self.context).throw_on_error(true).render(&Value::String(template.to_owned()));
                match rendered.map(|r| r.value) {
                    Ok(Some(Value::String(blueprint))) => blueprint,
                    Ok(other) => {
                        let gave = other.as_ref().map_or_else(|| "no output".to_owned(), quote);
                        problems.push(format!("inputs.{name}: its blueprint template gave {gave}, not a blueprint identifier"));
                        return;
                    }
                    Err(err) => {
                        problems.push(format!("inputs.{name}: its blueprint template failed: {}", one_line(&err.to_string())));
                        return;
                    }
                }
            }
            Some(blueprint) => blueprint.to_owned(),
            None => {
                problems.push(format!("inputs.{name}: the action names no `blueprint` for this entity input"));
                return;
            }
        };
        if let Some(stated) = stated_blueprint
            && stated != blueprint
        {
            problems.push(format!("inputs.{name}: must be an entity of blueprint `{blueprint}`, not of `{stated}`"));
            return;
        }
        self.entity_refs.push(EntityRef { input: name.to_owned(), blueprint, identifier: identifier.to_owned() });
    }
}

/// The code of a `{"jqQuery": "…"}`.
fn jq_code(value: &Value) -> Option<&str> {
    value.as_object()?.get("jqQuery")?.as_str()
}

fn has_type(kind: &str, value: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        // A type the action's validation would have refused: nothing to check against.
        _ => true,
    }
}

/// What a string of `format` must be, when `text` is not (`None`: it is, or the format is
/// free-form).
fn format_problem(format: &str, text: &str) -> Option<&'static str> {
    let (ok, expected) = match format {
        "date-time" => (
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok(),
            "a date-time (RFC 3339, such as 2024-01-31T12:00:00Z)",
        ),
        "url" => (
            url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()),
            "an absolute http or https URL",
        ),
        "email" => (is_email(text), "an email address (such as someone@example.com)"),
        "ipv4" => (text.parse::<std::net::Ipv4Addr>().is_ok(), "an IPv4 address"),
        "ipv6" => (text.parse::<std::net::Ipv6Addr>().is_ok(), "an IPv6 address"),
        _ => (true, ""),
    };
    (!ok).then_some(expected)
}

/// The email check of blueprint properties: something, `@`, a domain with a dot inside.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

fn unknown_input(name: &str, definitions: &Map<String, Value>) -> String {
    if definitions.is_empty() {
        return format!("inputs.{name}: is not an input of this action, which has none");
    }
    let mut names: Vec<String> = definitions.keys().take(LISTED_CHOICES).map(|n| format!("`{n}`")).collect();
    if definitions.len() > LISTED_CHOICES {
        names.push("…".to_owned());
    }
    format!("inputs.{name}: is not an input of this action (its inputs: {})", names.join(", "))
}

/// `a string`, `an array`, `null`.
fn a(kind: &str) -> String {
    match kind {
        "null" => "null".to_owned(),
        "object" | "array" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn items(bound: &Value) -> &'static str {
    if bound.as_f64() == Some(1.0) { "item" } else { "items" }
}

fn characters(bound: &Value) -> &'static str {
    if bound.as_f64() == Some(1.0) { "character" } else { "characters" }
}

/// A value as JSON, cut to [`QUOTE_CHARS`] characters.
fn quote(value: &Value) -> String {
    cut(&value.to_string())
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn list_choices(choices: &[Value]) -> String {
    let mut listed: Vec<String> = choices.iter().take(LISTED_CHOICES).map(quote).collect();
    if choices.len() > LISTED_CHOICES {
        listed.push(format!("… ({} in all)", choices.len()));
    }
    listed.join(", ")
}

/// jq's message on one line (a compile error spans several).
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ErrorKind;

    /// An action document with these user inputs.
    fn action(user_inputs: Value) -> Value {
        json!({
            "identifier": "deploy",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service", "userInputs": user_inputs},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com"}
        })
    }

    fn inputs(properties: Value) -> Value {
        action(json!({"properties": properties}))
    }

    fn check(action: &Value, given: Value) -> Result<CheckedInputs, Error> {
        check_inputs(action, &given, &json!({"user": {"email": "ada@example.com"}, "entity": {}, "trigger": {}}))
    }

    /// The message of the refusal, after checking it is a 422 `invalid_inputs`.
    fn refused(action: &Value, given: Value) -> String {
        let err = check(action, given).expect_err("the inputs should be refused");
        assert_eq!((err.kind, err.code), (ErrorKind::Unprocessable, CODE), "{}", err.message);
        err.message
    }

    #[test]
    fn the_action_document_saved_is_what_is_checked_against() {
        let doc = inputs(json!({"version": {"type": "string", "enum": ["1.0", "2.0"]}}));
        crate::action::ActionDef::parse(doc.clone(), None).expect("the test action is a valid action");
        assert_eq!(
            check(&doc, json!({"version": "2.0"})).unwrap().values,
            json!({"version": "2.0"}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn null_given_is_no_inputs() {
        let doc = inputs(json!({"note": {"type": "string"}}));
        let checked = check(&doc, Value::Null).unwrap();
        assert!(checked.values.is_empty());
        assert!(checked.entity_refs.is_empty());
        // An action without userInputs at all takes `{}` and null.
        let bare = json!({"identifier": "a", "trigger": {"type": "self-service", "operation": "CREATE"}});
        assert!(check(&bare, Value::Null).unwrap().values.is_empty());
        assert!(check(&bare, json!({})).unwrap().values.is_empty());
    }

    #[test]
    fn given_must_be_an_object() {
        let doc = inputs(json!({}));
        assert_eq!(refused(&doc, json!(["a"])), "inputs: must be an object of input values, not an array");
        assert_eq!(refused(&doc, json!("a")), "inputs: must be an object of input values, not a string");
    }

    #[test]
    fn unknown_keys_are_named() {
        let doc = inputs(json!({"version": {"type": "string"}}));
        assert_eq!(
            refused(&doc, json!({"verison": "1"})),
            "inputs.verison: is not an input of this action (its inputs: `version`)"
        );
        let none = inputs(json!({}));
        assert_eq!(refused(&none, json!({"x": 1})), "inputs.x: is not an input of this action, which has none");
    }

    #[test]
    fn each_value_has_its_inputs_type() {
        let doc = inputs(json!({
            "replicas": {"type": "number"}, "name": {"type": "string"}, "dry": {"type": "boolean"},
            "extra": {"type": "object"}, "tags": {"type": "array"}
        }));
        let ok = json!({"replicas": 2.5, "name": "a", "dry": false, "extra": {"a": 1}, "tags": [1, "x"]});
        assert_eq!(Value::Object(check(&doc, ok.clone()).unwrap().values), ok);
        assert_eq!(check(&doc, json!({"replicas": -3})).unwrap().values["replicas"], json!(-3));
        assert_eq!(refused(&doc, json!({"replicas": "3"})), "inputs.replicas: must be a number, not a string");
        assert_eq!(refused(&doc, json!({"name": 1})), "inputs.name: must be a string, not a number");
        assert_eq!(refused(&doc, json!({"dry": "false"})), "inputs.dry: must be a boolean, not a string");
        assert_eq!(refused(&doc, json!({"extra": []})), "inputs.extra: must be an object, not an array");
        assert_eq!(refused(&doc, json!({"tags": {}})), "inputs.tags: must be an array, not an object");
    }

    #[test]
    fn enum_lists_the_choices() {
        let doc =
            inputs(json!({"version": {"type": "string", "enum": ["1.0", "2.0"]}, "size": {"type": "number", "enum": [1, 2]}}));
        assert_eq!(refused(&doc, json!({"version": "3.0"})), r#"inputs.version: must be one of "1.0", "2.0", not "3.0""#);
        assert_eq!(refused(&doc, json!({"size": 3})), "inputs.size: must be one of 1, 2, not 3");
        check(&doc, json!({"version": "1.0", "size": 2})).unwrap();
    }

    #[test]
    fn enum_from_a_jq_query_reads_the_context_and_the_form() {
        let doc = inputs(json!({
            "language": {"type": "string", "enum": ["python", "go"]},
            "sdk": {"type": "string", "enum": {"jqQuery": "if .form.language == \"go\" then [\"gin\"] else [\"flask\", \"django\"] end"}},
            "owner": {"type": "string", "enum": {"jqQuery": "[.user.email]"}}
        }));
        check(&doc, json!({"language": "go", "sdk": "gin", "owner": "ada@example.com"})).unwrap();
        assert_eq!(
            refused(&doc, json!({"language": "python", "sdk": "gin"})),
            r#"inputs.sdk: must be one of "flask", "django", not "gin""#
        );
        assert_eq!(
            refused(&doc, json!({"owner": "bob@example.com"})),
            r#"inputs.owner: must be one of "ada@example.com", not "bob@example.com""#
        );
        let bad = inputs(json!({"x": {"type": "string", "enum": {"jqQuery": ".user.email"}}}));
        assert_eq!(
            refused(&bad, json!({"x": "a"})),
            r#"inputs.x: the jqQuery of its enum gave "ada@example.com", not an array of choices"#
        );
    }

    #[test]
    fn string_formats_are_checked() {
        let doc = inputs(json!({
            "at": {"type": "string", "format": "date-time"}, "link": {"type": "string", "format": "url"},
            "mail": {"type": "string", "format": "email"}, "v4": {"type": "string", "format": "ipv4"},
            "v6": {"type": "string", "format": "ipv6"}, "config": {"type": "string", "format": "yaml"},
            "who": {"type": "string", "format": "user"}
        }));
        let ok = json!({
            "at": "2024-06-06T05:21:00.565Z", "link": "https://example.com/a?b=c", "mail": "ada@example.com",
            "v4": "10.0.0.1", "v6": "::1", "config": "a: [1", "who": "anything at all"
        });
        check(&doc, ok).unwrap();
        assert_eq!(
            refused(&doc, json!({"at": "2024-06-06"})),
            r#"inputs.at: must be a date-time (RFC 3339, such as 2024-01-31T12:00:00Z), not "2024-06-06""#
        );
        assert_eq!(
            refused(&doc, json!({"link": "ftp://example.com"})),
            r#"inputs.link: must be an absolute http or https URL, not "ftp://example.com""#
        );
        assert!(refused(&doc, json!({"link": "/relative"})).starts_with("inputs.link: must be an absolute http or https URL"));
        assert!(refused(&doc, json!({"mail": "ada@localhost"})).starts_with("inputs.mail: must be an email address"));
        assert_eq!(refused(&doc, json!({"v4": "300.0.0.1"})), r#"inputs.v4: must be an IPv4 address, not "300.0.0.1""#);
        assert_eq!(refused(&doc, json!({"v6": "10.0.0.1"})), r#"inputs.v6: must be an IPv6 address, not "10.0.0.1""#);
    }

    #[test]
    fn lengths_count_characters() {
        let doc = inputs(json!({"name": {"type": "string", "minLength": 2, "maxLength": 3}}));
        check(&doc, json!({"name": "éé"})).unwrap();
        check(&doc, json!({"name": "ééé"})).unwrap();
        assert_eq!(refused(&doc, json!({"name": "é"})), "inputs.name: must be at least 2 characters long, not 1");
        assert_eq!(refused(&doc, json!({"name": "abcd"})), "inputs.name: must be at most 3 characters long, not 4");
    }

    #[test]
    fn numbers_stay_within_their_bounds() {
        let doc = inputs(json!({"replicas": {"type": "number", "minimum": 1, "maximum": 10.5}}));
        check(&doc, json!({"replicas": 1})).unwrap();
        check(&doc, json!({"replicas": 10.5})).unwrap();
        assert_eq!(refused(&doc, json!({"replicas": 0})), "inputs.replicas: must be at least 1, not 0");
        assert_eq!(refused(&doc, json!({"replicas": 11})), "inputs.replicas: must be at most 10.5, not 11");
    }

    #[test]
    fn patterns_are_tested_unanchored() {
        let doc = inputs(json!({"tag": {"type": "string", "pattern": "^v[0-9]+$"}, "word": {"type": "string", "pattern": "ab"}}));
        check(&doc, json!({"tag": "v12", "word": "xaby"})).unwrap();
        assert_eq!(refused(&doc, json!({"tag": "12"})), r#"inputs.tag: must match the pattern `^v[0-9]+$`, not "12""#);
        let broken = inputs(json!({"x": {"type": "string", "pattern": "(unclosed"}}));
        assert!(refused(&broken, json!({"x": "a"})).starts_with("inputs.x: its pattern `(unclosed` cannot be used: "));
    }

    #[test]
    fn array_items_are_checked_element_by_element() {
        let doc = inputs(json!({
            "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "enum": ["a", "b"]}},
            "hosts": {"type": "array", "items": {"type": "string", "format": "ipv4"}}
        }));
        check(&doc, json!({"tags": ["a", "b", "a"], "hosts": ["10.0.0.1"]})).unwrap();
        assert_eq!(refused(&doc, json!({"tags": ["a", "b", 3]})), "inputs.tags[2]: must be a string, not a number");
        assert_eq!(refused(&doc, json!({"tags": ["c"]})), r#"inputs.tags[0]: must be one of "a", "b", not "c""#);
        assert_eq!(refused(&doc, json!({"tags": []})), "inputs.tags: must have at least 1 item, not 0");
        assert_eq!(refused(&doc, json!({"tags": ["a", "a", "a", "a"]})), "inputs.tags: must have at most 3 items, not 4");
        assert_eq!(refused(&doc, json!({"hosts": ["10.0.0.1", "x"]})), r#"inputs.hosts[1]: must be an IPv4 address, not "x""#);
    }

    #[test]
    fn required_names_must_be_given_and_not_null() {
        let doc = action(json!({"properties": {"name": {"type": "string"}, "note": {"type": "string"}}, "required": ["name"]}));
        check(&doc, json!({"name": "a"})).unwrap();
        assert_eq!(refused(&doc, json!({"note": "x"})), "inputs.name: is required");
        assert_eq!(refused(&doc, json!({"name": null})), "inputs.name: is required");
        assert_eq!(refused(&doc, Value::Null), "inputs.name: is required");
    }

    #[test]
    fn hidden_or_disabled_inputs_are_not_required() {
        let doc = action(json!({
            "properties": {
                "env": {"type": "string"},
                "secret": {"type": "string", "visible": false},
                "locked": {"type": "string", "disabled": true},
                "canary": {"type": "number", "visible": {"jqQuery": ".form.env == \"canary\""}}
            },
            "required": ["secret", "locked", "canary"]
        }));
        check(&doc, json!({"env": "prod"})).unwrap();
        assert_eq!(refused(&doc, json!({"env": "canary"})), "inputs.canary: is required");
    }

    #[test]
    fn required_from_a_jq_query() {
        let doc = action(json!({
            "properties": {"env": {"type": "string"}, "approver": {"type": "string"}},
            "required": {"jqQuery": "if .form.env == \"prod\" then [\"env\", \"approver\"] else [\"env\"] end"}
        }));
        check(&doc, json!({"env": "dev"})).unwrap();
        check(&doc, json!({"env": "prod", "approver": "ada"})).unwrap();
        assert_eq!(refused(&doc, json!({"env": "prod"})), "inputs.approver: is required");
        assert_eq!(refused(&doc, json!({})), "inputs.env: is required");
        let bad = action(json!({"properties": {"env": {"type": "string"}}, "required": {"jqQuery": "\"env\""}}));
        assert_eq!(refused(&bad, json!({})), r#"inputs: the jqQuery of `required` gave "env", not an array of input names"#);
    }

    #[test]
    fn literal_defaults_fill_absent_inputs() {
        let doc = action(json!({
            "properties": {"version": {"type": "string", "enum": ["1", "2"], "default": "1"}, "dry": {"type": "boolean", "default": false}},
            "required": ["version", "dry"]
        }));
        let checked = check(&doc, json!({"dry": true})).unwrap();
        assert_eq!(Value::Object(checked.values), json!({"dry": true, "version": "1"}));
        let checked = check(&doc, json!({"version": null})).unwrap();
        assert_eq!(Value::Object(checked.values), json!({"version": "1", "dry": false}));
        assert_eq!(refused(&doc, json!({"version": "3"})), r#"inputs.version: must be one of "1", "2", not "3""#);
    }

    #[test]
    fn jq_query_defaults_read_the_context_and_earlier_inputs() {
        let doc = action(json!({
            "properties": {
                "service": {"type": "string"},
                "repo": {"type": "string", "default": {"jqQuery": ".form.service + \"-repo\""}},
                "requester": {"type": "string", "format": "email", "default": {"jqQuery": ".user.email"}},
                "nothing": {"type": "string", "default": {"jqQuery": "empty"}}
            },
            "required": ["repo", "requester"]
        }));
        let checked = check(&doc, json!({"service": "api"})).unwrap();
        assert_eq!(Value::Object(checked.values), json!({"service": "api", "repo": "api-repo", "requester": "ada@example.com"}));
        let given = check(&doc, json!({"service": "api", "repo": "mine"})).unwrap();
        assert_eq!(given.values["repo"], json!("mine"));
        // A default is checked as a given value would be.
        let typed = action(json!({"properties": {"n": {"type": "number", "default": {"jqQuery": "\"three\""}}}}));
        assert_eq!(refused(&typed, json!({})), "inputs.n: must be a number, not a string (the value of its default)");
        // A jq error names the input.
        let failing = action(json!({"properties": {"n": {"type": "number", "default": {"jqQuery": "error(\"boom\")"}}}}));
        let message = refused(&failing, json!({}));
        assert!(message.starts_with("inputs.n: the jqQuery of its default failed: ") && message.contains("boom"), "{message}");
    }

    #[test]
    fn a_runaway_jq_query_is_stopped_and_named() {
        let doc = action(json!({"properties": {"n": {"type": "number", "default": {"jqQuery": "last(range(1e12))"}}}}));
        let message = refused(&doc, json!({}));
        assert!(message.starts_with("inputs.n: the jqQuery of its default failed: "), "{message}");
    }

    #[test]
    fn entity_inputs_take_an_identifier_or_an_entity_object() {
        let doc = inputs(json!({
            "service": {"type": "string", "format": "entity", "blueprint": "service"},
            "services": {"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "service"}}
        }));
        let given = json!({
            "service": {"identifier": "api", "title": "API", "blueprint": "service", "properties": {}},
            "services": ["web", {"identifier": "db"}]
        });
        let checked = check(&doc, given.clone()).unwrap();
        assert_eq!(Value::Object(checked.values), given, "values are kept as given");
        let refs: Vec<(&str, &str, &str)> =
            checked.entity_refs.iter().map(|r| (r.input.as_str(), r.blueprint.as_str(), r.identifier.as_str())).collect();
        assert_eq!(refs, [("service", "service", "api"), ("services[0]", "service", "web"), ("services[1]", "service", "db")]);
        assert_eq!(
            refused(&doc, json!({"service": 3})),
            "inputs.service: must be an entity identifier (a string) or an entity object, not a number"
        );
        assert!(
            refused(&doc, json!({"service": {"title": "x"}}))
                .starts_with("inputs.service: must be an entity identifier or an entity object")
        );
        assert_eq!(
            refused(&doc, json!({"services": [{"identifier": "t", "blueprint": "team"}]})),
            "inputs.services[0]: must be an entity of blueprint `service`, not of `team`"
        );
    }

    #[test]
    fn a_templated_entity_blueprint_is_rendered() {
        let doc = inputs(
            json!({"target": {"type": "string", "format": "entity", "blueprint": "{{ .form.kind }}"}, "kind": {"type": "string"}}),
        );
        let checked = check(&doc, json!({"kind": "team", "target": "rocket"})).unwrap();
        assert_eq!(
            checked.entity_refs,
            [EntityRef { input: "target".into(), blueprint: "team".into(), identifier: "rocket".into() }]
        );
    }

    #[test]
    fn every_problem_is_reported_in_the_order_of_the_inputs() {
        let doc = action(json!({
            "properties": {"version": {"type": "string", "enum": ["1.0", "2.0"]}, "replicas": {"type": "number"}, "name": {"type": "string"}},
            "required": ["name"]
        }));
        let message = refused(&doc, json!({"replicas": "2", "version": "3.0", "bogus": 1}));
        assert_eq!(
            message,
            r#"inputs.bogus: is not an input of this action (its inputs: `version`, `replicas`, `name`); inputs.version: must be one of "1.0", "2.0", not "3.0"; inputs.replicas: must be a number, not a string; inputs.name: is required"#
        );
        // Past MAX_PROBLEMS, the rest are counted.
        let many = inputs(json!({"tags": {"type": "array", "items": {"type": "number"}}}));
        let message = refused(&many, json!({"tags": vec!["x"; MAX_PROBLEMS + 5]}));
        assert_eq!(message.matches("must be a number").count(), MAX_PROBLEMS);
        assert!(message.ends_with("; and 5 more problems"), "{message}");
    }

    /// Seed 002's automation runs Port's `slack_notify` self-service action through Port's API
    /// with `"body": {"properties": {"message": "…"}}`: those properties are this run's inputs.
    #[test]
    fn port_seed_002_slack_notify() {
        let doc = json!({
            "identifier": "slack_notify",
            "title": "Notify via Slack",
            "trigger": {
                "type": "self-service",
                "operation": "CREATE",
                "userInputs": {"properties": {"message": {"title": "Message", "type": "string"}}, "required": ["message"]}
            },
            "invocationMethod": {"type": "WEBHOOK", "url": "https://hooks.slack.com/services/{{ .secrets.slack }}", "synchronized": true}
        });
        crate::action::ActionDef::parse(doc.clone(), None).expect("a valid action");
        let properties = json!({"message": "Service My service has degraded from `Passed` to `Not passed`."});
        assert_eq!(Value::Object(check(&doc, properties.clone()).unwrap().values), properties);
        // "If the action does not require any inputs, pass an empty object": this one does.
        assert_eq!(refused(&doc, json!({})), "inputs.message: is required");
    }

    #[test]
    fn encrypted_inputs_are_replaced_by_what_encrypt_makes() {
        let doc = json!({"trigger": {"userInputs": {"properties": {
            "token": {"type": "string", "encryption": "aes256-gcm"},
            "config": {"type": "object", "encryption": "aes256-gcm"},
            "plain": {"type": "string"},
            "absent": {"type": "string", "encryption": "aes256-gcm"}
        }}}});
        let names = encrypted_inputs(&doc);
        assert_eq!(names, ["token", "config", "absent"]);
        let mut values = json!({"token": "s3cret", "config": {"a": 1}, "plain": "p"}).as_object().unwrap().clone();
        encrypt_inputs(&mut values, &names, |text| Ok::<_, ()>(format!("enc({text})"))).unwrap();
        assert_eq!(Value::Object(values), json!({"token": "enc(s3cret)", "config": "enc({\"a\":1})", "plain": "p"}));
    }
}
