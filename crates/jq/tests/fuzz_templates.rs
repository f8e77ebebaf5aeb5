//! Property tests (a fuzzer in the test suite) over the template scanner and renderer and the
//! single-quote lexer: whatever the input, they return a value or an error, never panic.
//!
//! CI runs the default 256 cases per property; for a long run:
//! `PROPTEST_CASES=2000000 cargo test --release -p wharf-jq --test fuzz_templates`.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use wharf_jq::ProgramCache;
use wharf_jq::rewrite::rewrite_single_quotes;
use wharf_jq::template::Renderer;

/// As the server: allocations are counted, so the budgets' memory limits hold here too.
#[global_allocator]
static ALLOCATOR: wharf_jq::CountingAlloc<std::alloc::System> = wharf_jq::CountingAlloc(std::alloc::System);

/// Strings built from the characters that matter to the scanner and the lexer.
fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("{{"),
            Just("}}"),
            Just("{"),
            Just("}"),
            Just("\""),
            Just("'"),
            Just("\\"),
            Just("."),
            Just("a"),
            Just(" "),
            Just("$"),
            Just("("),
            Just(")"),
            Just("#"),
            Just("\n"),
            Just("é"),
            Just("spreadValue()"),
            Just(".foo"),
            Just("|"),
            Just("1"),
            Just("null"),
            Just("empty"),
            Just("\\("),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn template() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![tricky_string().prop_map(Value::String), Just(json!(1)), Just(json!(null)), Just(json!(true))];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((tricky_string(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #[test]
    fn rendering_never_panics(template in template()) {
        let programs = ProgramCache::default();
        let context = json!({"foo": "bar", "n": 1, "obj": {"a": [1, 2]}});
        let _ = Renderer::new(&programs, &context).render(&template);
        let _ = Renderer::new(&programs, &context).throw_on_error(true).render(&template);
    }

    #[test]
    fn text_without_braces_renders_unchanged(text in "[^{}]{0,40}") {
        let programs = ProgramCache::default();
        let rendered = Renderer::new(&programs, &json!({})).render(&Value::String(text.clone())).unwrap();
        prop_assert_eq!(rendered.value, Some(Value::String(text)));
    }

    #[test]
    fn the_lexer_never_panics_and_leaves_quote_free_code_alone(code in tricky_string()) {
        let rewritten = rewrite_single_quotes(&code);
        if !code.contains('\'') {
            prop_assert_eq!(rewritten, code);
        }
    }
}
