//! Port's own template and exec test cases (`fixtures/port-templates.json`, from
//! port-labs/jq-node-bindings) run through Wharf's programs.
//!
//! Every case must pass except those in `KNOWN_DIFFERENCES`, each with its reason; a listed
//! case that starts passing fails the test too, so the list only ever shrinks.

mod common;

use common::same;
use serde_json::Value;
use wharf_jq::ProgramCache;
use wharf_jq::template::{RenderError, Renderer};

/// As the server: allocations are counted, so the budgets' memory limits hold here too.
#[global_allocator]
static ALLOCATOR: wharf_jq::CountingAlloc<std::alloc::System> = wharf_jq::CountingAlloc(std::alloc::System);

/// Cases Wharf does not match, by name, and why: deliberately (`NO_ENV`), or not yet (the
/// jq-compatibility work of the jq programs issue).
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[("template: test disable env #2", NO_ENV), ("exec: test disable env #2", NO_ENV)];

const NO_ENV: &str = "deliberate: Port's `enableEnv` option exposes the process environment; Wharf never does (SPEC §5)";

/// Cases that cannot be expressed through a typed Rust API, by name, and why.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("template: non template should work #2", "the template is JS `undefined`, which has no JSON form"),
    ("exec: should break for invalid input #1", "the filter is a JS number; Wharf's filters are strings by type"),
    ("exec: should break for invalid input #2", "the filter is JS `undefined`; Wharf's filters are strings by type"),
    ("exec: should break for invalid input #3", "the filter is JS `null`; Wharf's filters are strings by type"),
];

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/port-templates.json")).expect("fixture parses")
}

fn is_undefined(value: &Value) -> bool {
    value.get("$undefined") == Some(&Value::Bool(true))
}

/// JSON.stringify's view: undefined array elements become null, undefined values drop.
fn as_json(value: &Value) -> Value {
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| if is_undefined(i) { Value::Null } else { as_json(i) }).collect())
        }
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, v)| !is_undefined(v)).map(|(k, v)| (k.clone(), as_json(v))).collect())
        }
        other => other.clone(),
    }
}

/// Checks one case's outcome; `Err` says how it differs.
fn check(case: &Value, result: Result<Option<Value>, String>) -> Result<(), String> {
    if let Some(expected) = case.get("error").and_then(Value::as_str) {
        return match result {
            Err(message) if message.contains(expected) => Ok(()),
            Err(message) => Err(format!("error `{message}` does not contain `{expected}`")),
            Ok(value) => Err(format!("expected error `{expected}`, got {value:?}")),
        };
    }
    let value = result.map_err(|e| format!("unexpected error: {e}"))?;
    if case.get("expect_undefined") == Some(&Value::Bool(true)) {
        return if value.is_none() { Ok(()) } else { Err(format!("expected undefined, got {value:?}")) };
    }
    if let Some(not) = case.get("expect_not") {
        return match &value {
            Some(v) if same(v, not) => Err(format!("expected anything but {not}")),
            _ => Ok(()),
        };
    }
    let expected = case.get("expect_as_json").or_else(|| case.get("expect")).map(as_json).expect("an outcome");
    match value {
        Some(v) if same(&v, &expected) => Ok(()),
        other => Err(format!("expected {expected}, got {other:?}")),
    }
}

fn throw_on_error(case: &Value) -> bool {
    case.pointer("/options/throwOnError") == Some(&Value::Bool(true))
}

fn run_template(programs: &ProgramCache, case: &Value) -> Option<Result<Option<Value>, String>> {
    let template = case.get("template")?;
    if is_undefined(template) {
        return None;
    }
    let context = case.get("context").cloned().unwrap_or(Value::Null);
    let rendered = Renderer::new(programs, &context).throw_on_error(throw_on_error(case)).render(&as_json(template));
    Some(rendered.map(|r| r.value).map_err(|e: RenderError| e.to_string()))
}

fn run_exec(programs: &ProgramCache, case: &Value) -> Option<Result<Option<Value>, String>> {
    let filter = case.get("filter")?.as_str()?;
    let input = case.get("input").cloned().unwrap_or(Value::Null);
    Some(match programs.first(filter, &input) {
        Ok(value) => Ok(Some(value.unwrap_or(Value::Null))),
        Err(err) if throw_on_error(case) => Err(err.to_string()),
        Err(_) => Ok(Some(Value::Null)),
    })
}

#[test]
fn port_template_and_exec_cases() {
    let fixture = fixture();
    let programs = ProgramCache::default();
    let mut failures = Vec::new();
    let mut unexpected_passes = Vec::new();
    let mut ran = 0;
    for (kind, runner) in [("template", run_template as fn(&ProgramCache, &Value) -> _), ("exec", run_exec)] {
        for case in fixture[kind].as_array().expect("cases") {
            let name = format!("{kind}: {}", case["name"].as_str().unwrap_or("?"));
            let outcome = match runner(&programs, case) {
                None => {
                    if !NOT_APPLICABLE.iter().any(|(n, _)| *n == name) {
                        failures.push(format!("{name}: cannot run, and is not listed in NOT_APPLICABLE"));
                    }
                    continue;
                }
                Some(result) => check(case, result),
            };
            ran += 1;
            let known = KNOWN_DIFFERENCES.iter().any(|(n, _)| *n == name);
            match (outcome, known) {
                (Err(why), false) => failures.push(format!("{name}: {why}")),
                (Ok(()), true) => unexpected_passes.push(name),
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{} of {ran} cases fail:\n{}", failures.len(), failures.join("\n"));
    assert!(unexpected_passes.is_empty(), "now passing, remove from KNOWN_DIFFERENCES: {unexpected_passes:?}");
}
