//! Property tests (a fuzzer in the test suite) over the documents users write for acting:
//! action and automation documents (`ActionDef::parse`, then `check_programs`, which compiles
//! every template and jq condition), secret documents, and the documents of runs: a run's
//! start (`RunInput`, its inputs through `run_inputs::check_inputs`), a backend's report
//! (`RunPatch`, `RunLogInput`, `Decision`), the run list's query, and an execution agent's
//! documents (`Claim`, `parse_ack`, `OrganizationPatch`) and encrypted fields. Whatever the input, each
//! answers or refuses, never panics, and what it accepts reads back as the same action.
//!
//! Inputs are valid documents with one part replaced (so the reader gets deep into its
//! checks) and arbitrary values. The default is 64 cases per property; for a long run:
//! `PROPTEST_CASES=200000 cargo test --release -p wharf-core --test fuzz_actions`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use wharf_core::action::{ActionDef, check_programs};
use wharf_core::agent::{Claim, OrganizationPatch, decrypt_field, encrypt_field, parse_ack};
use wharf_core::run::{Decision, RunFilter, RunInput, RunLogInput, RunPatch};
use wharf_core::run_inputs::check_inputs;
use wharf_core::secret::{NewSecret, SecretChange};

/// 64 cases, or `PROPTEST_CASES`.
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Words an action document gives meaning to, templates and jq among them, and a few others.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "identifier",
            "title",
            "trigger",
            "type",
            "self-service",
            "automation",
            "operation",
            "CREATE",
            "DAY-2",
            "DELETE",
            "blueprintIdentifier",
            "userInputs",
            "properties",
            "required",
            "order",
            "steps",
            "format",
            "entity",
            "blueprint",
            "enum",
            "default",
            "dependsOn",
            "jqQuery",
            "event",
            "ENTITY_UPDATED",
            "TIMER_PROPERTY_EXPIRED",
            "RUN_CREATED",
            "propertyIdentifier",
            "actionIdentifier",
            "condition",
            "JQ",
            "expressions",
            "combinator",
            "and",
            "or",
            "invocationMethod",
            "WEBHOOK",
            "UPSERT_ENTITY",
            "KAFKA",
            "url",
            "agent",
            "synchronized",
            "method",
            "headers",
            "body",
            "mapping",
            "requiredApproval",
            "publish",
            "{{ .inputs }}",
            "{{ spreadValue() }}",
            "{{ .run.id }}",
            "{{ .secrets.token }}",
            "{{ .diff.after | keys",
            "{{ }}",
            "}}{{",
            ".diff.after.properties.tier != .diff.before.properties.tier",
            "[.[] | select(",
            "def f: f; f",
            "secretName",
            "secretValue",
            "description",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9 ._{}|\\[\\]\"-]{0,12}",
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

/// Documents Wharf accepts: a self-service action and an automation.
fn valid_documents() -> Vec<Value> {
    vec![
        json!({
            "identifier": "deploy", "title": "Deploy",
            "trigger": {
                "type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                "userInputs": {
                    "properties": {
                        "version": {"type": "string", "enum": ["1", "2"]},
                        "replicas": {"type": "number", "default": 1},
                        "owner": {"type": "string", "format": "entity", "blueprint": "team"}
                    },
                    "required": ["version"], "order": ["version", "replicas", "owner"]
                }
            },
            "invocationMethod": {
                "type": "WEBHOOK", "url": "https://deploy.example.com/{{ .inputs.version }}",
                "synchronized": true, "method": "POST", "headers": {"RUN_ID": "{{ .run.id }}"},
                "body": {"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}"}}
            },
            "requiredApproval": false
        }),
        json!({
            "identifier": "notify_tier_change", "title": "Notify",
            "trigger": {
                "type": "automation",
                "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"},
                "condition": {
                    "type": "JQ",
                    "expressions": [".diff.before.properties.tier != .diff.after.properties.tier"],
                    "combinator": "and"
                }
            },
            "invocationMethod": {
                "type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                "mapping": {"identifier": "{{ .event.diff.after.identifier }}", "properties": {"notified": true}}
            },
            "publish": true
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

/// What an accepted document must give: its programs compile or are refused with a path, and
/// the document stored reads back as the same action.
fn accepted_reads_back(def: &ActionDef) {
    if let Err(err) = check_programs(def) {
        assert_eq!(err.code, "invalid_jq", "{err:?}");
        assert!(!err.message.is_empty());
    }
    let stored = def.document().clone();
    let again = ActionDef::from_stored(stored.clone()).expect("an accepted action reads back");
    assert_eq!(again.document(), &stored);
}

proptest! {
    #![proptest_config(config())]

    /// A valid action with one part replaced or one key added anywhere: accepted, or refused
    /// with a 4xx error that says what; never a panic.
    #[test]
    fn altered_actions_are_accepted_or_refused(
        which in 0usize..2,
        path in prop::collection::vec(any::<usize>(), 0..6),
        replacement in json_value(),
        insert in prop::option::of(word()),
    ) {
        let mut doc = valid_documents().swap_remove(which);
        mutate(&mut doc, &path, replacement, insert);
        match ActionDef::parse(doc, None) {
            Ok(def) => accepted_reads_back(&def),
            Err(err) => prop_assert!(!err.code.is_empty() && !err.message.is_empty(), "{err:?}"),
        }
    }

    /// Any JSON at all as an action, created or replacing one.
    #[test]
    fn arbitrary_documents_are_accepted_or_refused(doc in json_value(), route in prop::option::of(word())) {
        match ActionDef::parse(doc, route.as_deref()) {
            Ok(def) => accepted_reads_back(&def),
            Err(err) => prop_assert!(!err.message.is_empty(), "{err:?}"),
        }
    }

    /// Secret documents: created or changed, or refused naming the field; a refusal never
    /// quotes the value it was given.
    #[test]
    fn secret_documents_are_accepted_or_refused(doc in json_value(), value in "[a-z]{12}") {
        for attempt in [doc.clone(), json!({"secretName": "token", "secretValue": value, "description": doc})] {
            if let Err(err) = NewSecret::parse(attempt.clone()) {
                prop_assert!(!err.message.contains(&value), "{}", err.message);
            }
            if let Err(err) = SecretChange::parse(attempt) {
                prop_assert!(!err.message.contains(&value), "{}", err.message);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A run's start and a backend's reports: accepted or refused with a message; inputs are
    /// checked against the self-service action, alone and inside a start document.
    #[test]
    fn run_documents_are_accepted_or_refused(doc in json_value(), inputs in json_value()) {
        let action = valid_documents().swap_remove(0);
        for attempt in [doc.clone(), json!({"properties": inputs, "entity": "api"}), json!({"status": doc})] {
            if let Err(err) = RunInput::parse(&attempt) {
                prop_assert!(!err.message.is_empty());
            }
            if let Err(err) = RunPatch::parse(&attempt) {
                prop_assert!(!err.message.is_empty());
            }
            if let Err(err) = RunLogInput::parse(&attempt) {
                prop_assert!(!err.message.is_empty());
            }
            if let Err(err) = Decision::parse(&attempt) {
                prop_assert!(!err.message.is_empty());
            }
        }
        for given in [&inputs, &doc] {
            match check_inputs(&action, given, &json!({"entity": {"identifier": "api"}})) {
                Ok(checked) => prop_assert!(checked.values.contains_key("version"), "a required input is there"),
                Err(err) => prop_assert!(err.message.starts_with("inputs"), "{}", err.message),
            }
        }
    }

    /// An execution agent's documents (claims, acknowledgements, the organization's settings)
    /// and the fields encrypted for it: accepted or refused with a message, never a panic; a
    /// field round-trips under any key of 32 bytes or more.
    #[test]
    fn agent_documents_are_accepted_or_refused(doc in json_value(), text in ".{0,64}", key in "[ -~]{0,48}", iv in any::<[u8; 16]>()) {
        let attempts = [doc.clone(), json!({"installationId": doc.clone()}), json!({"installationId": "a", "limit": doc.clone()}),
                        json!({"runIds": doc.clone()}), json!({"settings": doc.clone()}), json!({"name": doc})];
        for attempt in attempts {
            for node_runs in [false, true] {
                match Claim::parse(attempt.clone(), node_runs) {
                    Ok(claim) => prop_assert!(claim.limit >= 1 && !claim.installation_id.is_empty()),
                    Err(err) => prop_assert!(!err.message.is_empty()),
                }
            }
            if let Err(err) = parse_ack(attempt.clone()) {
                prop_assert!(!err.message.is_empty());
            }
            if let Err(err) = OrganizationPatch::parse(attempt) {
                prop_assert!(!err.message.is_empty());
            }
        }
        match encrypt_field(&key, iv, text.as_bytes()) {
            Ok(encrypted) => prop_assert_eq!(decrypt_field(&key, &encrypted).unwrap(), text.clone()),
            Err(_) => prop_assert!(key.len() < 32),
        }
        prop_assert!(decrypt_field(&key, &text).is_err(), "arbitrary text is not a field encrypted under this key");
    }

    /// The run list's query: any keys and values are taken or refused with a 400.
    #[test]
    fn run_queries_are_taken_or_refused(pairs in prop::collection::vec((word(), word()), 0..6)) {
        if let Err(err) = RunFilter::from_query(pairs) {
            prop_assert_eq!(err.kind, wharf_core::ErrorKind::BadRequest);
        }
    }
}

#[test]
fn the_valid_documents_are_valid() {
    for doc in valid_documents() {
        let def = ActionDef::parse(doc, None).expect("valid");
        check_programs(&def).expect("compiles");
        accepted_reads_back(&def);
    }
}
