//! Property tests (a fuzzer in the test suite) over workflow documents (`WorkflowDef::parse`,
//! then `check_programs`, which compiles every template, outlet and condition) and the cron of
//! schedule triggers (`Schedule::parse`, `next_after`). Whatever the input, each answers or
//! refuses with an error, never panics; what `parse` accepts reads back as the same workflow,
//! and a schedule's next tick is strictly after the time asked.
//!
//! Inputs are valid documents with one part replaced (so the reader gets deep into its checks,
//! the graph rules among them) and arbitrary values. The default is 64 cases per property; for
//! a long run: `PROPTEST_CASES=200000 cargo test --release -p wharf-core --test fuzz_workflows`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use wharf_core::schedule::Schedule;
use wharf_core::time::Timestamp;
use wharf_core::workflow::{WorkflowDef, check_programs};

/// 64 cases, or `PROPTEST_CASES`.
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Words a workflow document gives meaning to, templates and jq among them, and a few others.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "identifier",
            "title",
            "nodes",
            "connections",
            "config",
            "type",
            "variables",
            "links",
            "verbose",
            "trigger",
            "SELF_SERVE_TRIGGER",
            "EVENT_TRIGGER",
            "SCHEDULE_TRIGGER",
            "WEBHOOK",
            "UPSERT_ENTITY",
            "CONDITION",
            "KAFKA",
            "INPUT",
            "userInputs",
            "properties",
            "required",
            "contexts",
            "on",
            "ENTITY",
            "CREATE_ENTITY",
            "userInput",
            "event",
            "ENTITY_UPDATED",
            "TIMER_EXPIRED",
            "TIMER_PROPERTY_EXPIRED",
            "RUN_CREATED",
            "blueprintIdentifier",
            "propertyIdentifier",
            "condition",
            "JQ",
            "expressions",
            "cron",
            "*/5 * * * *",
            "0 */5 * * * *",
            "@daily",
            "url",
            "method",
            "headers",
            "body",
            "synchronized",
            "agent",
            "onFailure",
            "onTimeout",
            "continue",
            "mapping",
            "outlets",
            "options",
            "conditions",
            "connectionIdentifier",
            "defaultConnectionIdentifier",
            "expression",
            "sourceIdentifier",
            "targetIdentifier",
            "sourceOutletIdentifier",
            "sourceOptionIdentifier",
            "fallback",
            "send",
            "check",
            "yes",
            "{{ .outputs.trigger }}",
            "{{ spreadValue() }}",
            "{{ .secrets.token }}",
            "{{ .outputs.trigger | keys",
            "{{ }}",
            "}}{{",
            ".outputs.trigger.env == \"prod\"",
            "[.[] | select(",
            "def f: f; f",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9 ._{}|\\[\\]\"*/@-]{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..4).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Documents Wharf accepts: a self-serve workflow with a condition, and an event- and
/// schedule-triggered one.
fn valid_documents() -> Vec<Value> {
    vec![
        json!({
            "identifier": "deploy", "title": "Deploy",
            "nodes": [
                {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER",
                    "userInputs": {"properties": {"env": {"type": "string", "enum": ["prod", "dev"]},
                                                  "svc": {"type": "string", "format": "entity", "blueprint": "service"}},
                                   "required": ["env"]},
                    "contexts": [{"on": "ENTITY", "userInput": "svc"}]}},
                {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                    {"identifier": "prod", "expression": ".outputs.trigger.env == \"prod\""}]}},
                {"identifier": "send", "config": {"type": "WEBHOOK", "url": "https://x/{{ .outputs.trigger.env }}",
                    "headers": {"X-Run": "{{ .workflowRun.identifier }}"}, "body": {"{{ spreadValue() }}": "{{ .outputs.trigger }}"},
                    "onFailure": "continue"},
                 "variables": {"id": "{{ .response.data.id }}"}},
                {"identifier": "save", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                    "mapping": {"identifier": "{{ .outputs.trigger.svc }}", "properties": {"deployed": true}}}}
            ],
            "connections": [
                {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
                {"sourceIdentifier": "check", "targetIdentifier": "send", "sourceOutletIdentifier": "prod"},
                {"sourceIdentifier": "check", "targetIdentifier": "save", "fallback": true}
            ]
        }),
        json!({
            "identifier": "watch",
            "nodes": [
                {"identifier": "on_update", "config": {"type": "EVENT_TRIGGER",
                    "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "env", "propertyIdentifier": "ttl"},
                    "condition": {"type": "JQ", "expressions": [".diff.after != null"], "combinator": "and"}}},
                {"identifier": "nightly", "config": {"type": "SCHEDULE_TRIGGER", "cron": "0 3 * * *"}},
                {"identifier": "decide", "config": {"type": "CONDITION",
                    "conditions": [{"expression": "true", "connectionIdentifier": "yes"}], "defaultConnectionIdentifier": "no"}},
                {"identifier": "a", "config": {"type": "WEBHOOK", "url": "https://a"}},
                {"identifier": "b", "config": {"type": "WEBHOOK", "url": "https://b", "synchronized": false}}
            ],
            "connections": [
                {"sourceIdentifier": "on_update", "targetIdentifier": "decide"},
                {"sourceIdentifier": "nightly", "targetIdentifier": "a"},
                {"identifier": "yes", "sourceIdentifier": "decide", "targetIdentifier": "a"},
                {"identifier": "no", "sourceIdentifier": "decide", "targetIdentifier": "b"}
            ]
        }),
    ]
}

/// Replaces the part of `doc` that `path` leads to (each step picks a child by its index,
/// modulo how many there are; a step past a leaf stops there) with `replacement`, or, where
/// `insert` is set and the part is an object, adds `replacement` under `key` beside its keys.
fn mutate(doc: &mut Value, path: &[usize], replacement: Value, insert: Option<String>) {
    let mut at = doc;
    for step in path {
        let len = match &*at {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        };
        if len == 0 {
            break;
        }
        at = match at {
            Value::Object(map) => map.values_mut().nth(step % len).expect("an index below the length"),
            Value::Array(items) => &mut items[step % len],
            _ => unreachable!("only objects and arrays have children"),
        };
    }
    match (insert, &mut *at) {
        (Some(key), Value::Object(map)) => {
            map.insert(key, replacement);
        }
        _ => *at = replacement,
    }
}

/// What an accepted document must give: its programs compile or are refused with a path; the
/// document stored reads back as the same workflow; the engine's walks answer.
fn accepted_reads_back(def: &WorkflowDef) {
    if let Err(err) = check_programs(def) {
        assert_eq!(err.code, "invalid_jq", "{err:?}");
        assert!(!err.message.is_empty());
    }
    let stored = def.document().clone();
    let again = WorkflowDef::from_stored(stored.clone()).expect("an accepted workflow reads back");
    assert_eq!(&again, def);
    assert!(def.triggers().count() >= 1);
    for node in &def.nodes {
        let _ = def.next(&node.identifier, None);
        if node.is_trigger() {
            assert!(def.inputs_document(node).get("trigger").is_some());
        }
    }
    let _ = def.referenced_blueprints();
}

proptest! {
    #![proptest_config(config())]

    /// A valid workflow with one part replaced or one key added anywhere: accepted, or refused
    /// with a 422 that says what; never a panic.
    #[test]
    fn altered_workflows_are_accepted_or_refused(
        which in 0usize..2,
        path in prop::collection::vec(any::<usize>(), 0..7),
        replacement in json_value(),
        insert in prop::option::of(word()),
    ) {
        let mut doc = valid_documents().swap_remove(which);
        mutate(&mut doc, &path, replacement, insert);
        match WorkflowDef::parse(doc, None) {
            Ok(def) => accepted_reads_back(&def),
            Err(err) => prop_assert!(!err.code.is_empty() && !err.message.is_empty(), "{err:?}"),
        }
    }

    /// Any JSON at all as a workflow, created or replacing one.
    #[test]
    fn arbitrary_documents_are_accepted_or_refused(doc in json_value(), route in prop::option::of(word())) {
        match WorkflowDef::parse(doc, route.as_deref()) {
            Ok(def) => accepted_reads_back(&def),
            Err(err) => prop_assert!(!err.message.is_empty(), "{err:?}"),
        }
    }

    /// A value nested past the limit anywhere in a valid workflow is refused cleanly. (Deeper
    /// than serde_json reads, 128, but not so deep that dropping the value, which recurses
    /// once per level, overflows a test thread's stack.)
    #[test]
    fn deep_values_are_refused(which in 0usize..2, path in prop::collection::vec(any::<usize>(), 1..7), depth in 101usize..600) {
        let mut deep = json!("{{ .x }}");
        for level in 0..depth {
            deep = if level % 2 == 0 { json!([deep]) } else { json!({"k": deep}) };
        }
        let mut doc = valid_documents().swap_remove(which);
        mutate(&mut doc, &path, deep, None);
        let err = WorkflowDef::parse(doc, None).expect_err("too deep");
        prop_assert!(err.message.contains("nests"), "{}", err.message);
    }

    /// Cron text of words, numbers and cron's punctuation: parsed or refused with a message,
    /// and a parsed schedule's next tick is strictly after the time asked.
    #[test]
    fn cron_is_parsed_or_refused(
        fields in prop::collection::vec(prop_oneof![
            "[0-9*/,LW#?-]{1,6}",
            prop::sample::select(vec!["MON-FRI", "JAN", "@daily", "@hourly", "*/5", "0"]).prop_map(str::to_owned),
        ], 0..8),
        after in -10_000_000_000_000i64..10_000_000_000_000i64,
    ) {
        let text = fields.join(" ");
        match Schedule::parse(&text) {
            Ok(schedule) => {
                prop_assert_eq!(schedule.source(), text.as_str());
                let after = Timestamp::from_millis(after);
                if let Some(next) = schedule.next_after(after) {
                    prop_assert!(next > after);
                }
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }
}

#[test]
fn the_valid_documents_are_valid() {
    for doc in valid_documents() {
        let def = WorkflowDef::parse(doc, None).expect("valid");
        check_programs(&def).expect("compiles");
        accepted_reads_back(&def);
    }
}
