//! Property tests (a fuzzer in the test suite) over what an agent reads from others: a
//! control-the-payload file (`PayloadConfig::parse`, any JSON, and mappings whose every leaf is
//! arbitrary jq) run over arbitrary claimed messages and answers. Whatever the input, the
//! config is taken or refused with a message, and a taken one prepares and reports or finds
//! no mapping: never a panic, never a hang (each run is one budget).
//!
//! The default is 64 cases per property; for a long run:
//! `PROPTEST_CASES=100000 cargo test --release -p wharf-agent --test fuzz_payload`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use wharf_agent::PayloadConfig;
use wharf_agent::report::Answer;

fn config() -> Config {
    Config { cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64), ..Config::default() }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// jq-looking text: paths, literals, operators and builtins, in any order.
fn jq_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("."),
        Just(".payload"),
        Just(".body"),
        Just(".response.json"),
        Just("|"),
        Just("//"),
        Just("\"x\""),
        Just("1"),
        Just("["),
        Just("]"),
        Just("{"),
        Just("}"),
        Just("tostring"),
        Just("length"),
        Just("range(0; 3)"),
        Just("if . then 1 else 2 end"),
        Just("error"),
        Just("env"),
        Just(","),
        Just("+"),
        Just("$x"),
        Just("def f: f; f"),
    ];
    prop::collection::vec(part, 0..8).prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_configs_are_taken_or_refused(doc in json_value()) {
        match PayloadConfig::parse(&doc.to_string()) {
            Ok(config) => prop_assert!(config.len() <= doc.as_array().map_or(0, Vec::len)),
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn jq_mappings_prepare_and_report_over_any_message(
        enabled in jq_text(), url in jq_text(), body in jq_text(), header in jq_text(), status in jq_text(),
        message in json_value(), text in "[ -~]{0,40}", code in 100u16..600,
    ) {
        let doc = json!([{
            "enabled": enabled, "url": url, "method": "\"POST\"", "body": {"a": body, "b": [body]},
            "headers": {"X-A": header}, "query": {"q": header},
            "report": {"status": status, "summary": body, "link": url, "externalRunId": header},
            "fieldsToDecryptPaths": ["a.b", "0"]
        }]);
        let Ok(config) = PayloadConfig::parse(&doc.to_string()) else { return Ok(()) };
        let message = json!({"body": message, "payload": {"action": {"invocationMethod": {"url": "http://x", "synchronized": true}}}});
        let invocation = json!({"url": "http://x", "method": "POST"});
        if let Some(prepared) = config.prepare(message, &invocation, "0123456789abcdef0123456789abcdef") {
            let answer = Answer { status: code, headers: vec![("content-type".into(), "application/json".into())], text };
            let _ = config.report(&prepared, &answer);
        }
    }
}
