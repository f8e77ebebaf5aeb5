//! Property tests (a fuzzer in the test suite) over what a sender or a tenant controls: the
//! JSON reader of jq inputs (`Input::parse`, `Input::project`) and of `fromjson`, on arbitrary
//! bytes and arbitrary nestings, and the jq compiler and evaluator on arbitrary programs.
//! Whatever the input: a value or an error, never a panic, never a stack overflow (each case
//! runs on the test thread's 2 MiB stack), and JSON nested `MAX_DEPTH` deep is refused.
//!
//! CI runs a small number of cases per property (seconds); for a long campaign:
//! `PROPTEST_CASES=200000 cargo test -p wharf-jq --test fuzz_inputs`.

use proptest::prelude::*;
use serde_json::{Value, json};
use wharf_jq::{CountingAlloc, DEFAULT_LIMITS, Demand, Input, JqError, Limits, MAX_DEPTH, Program};

/// As the server: allocations are counted, so memory limits hold during the campaign.
#[global_allocator]
static ALLOCATOR: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

/// Small budgets: a fuzzed program is stopped quickly, whatever it does.
const SMALL: Limits = Limits { steps: 20_000, memory: 16 << 20, ..DEFAULT_LIMITS };

fn config() -> ProptestConfig {
    // `PROPTEST_CASES` overrides the default count, as for any proptest.
    ProptestConfig { cases: ProptestConfig::default().cases.min(128), ..ProptestConfig::default() }
}

/// JSON-ish text: the characters that matter to a JSON reader, in any order.
fn jsonish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("["),
            Just("]"),
            Just("{"),
            Just("}"),
            Just(","),
            Just(":"),
            Just("\""),
            Just("\\"),
            Just("\\u00"),
            Just("\\ud800"),
            Just("1"),
            Just("-0.5e10"),
            Just("1e400"),
            Just("null"),
            Just("true"),
            Just(" "),
            Just("\"a\""),
            Just("é"),
            Just("NaN"),
            Just("#"),
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

/// A document nested `depth` levels deep in arrays or objects, around `leaf`.
fn nested(depth: usize, objects: bool, leaf: &str) -> String {
    if objects {
        format!("{}{leaf}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// jq-ish source: tokens of the language, builtins that do work, nesting.
fn jqish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("."),
            Just(".a"),
            Just("|"),
            Just(","),
            Just("("),
            Just(")"),
            Just("["),
            Just("]"),
            Just("{"),
            Just("}"),
            Just(":"),
            Just("1"),
            Just("\"s\""),
            Just("+"),
            Just("*"),
            Just("-"),
            Just("/"),
            Just("as $x"),
            Just("$x"),
            Just("if . then 1 else 2 end"),
            Just("reduce range(9) as $i (0; [.])"),
            Just("try"),
            Just("catch"),
            Just("?"),
            Just("//"),
            Just("def f: f;"),
            Just("f"),
            Just("tojson"),
            Just("fromjson"),
            Just("tostring"),
            Just("test(\"a+\")"),
            Just("gsub(\"a\"; \"bb\")"),
            Just("implode"),
            Just("explode"),
            Just("todate"),
            Just("range(1e9)"),
            Just("stderr"),
            Just("debug"),
            Just("contains"),
            Just("indices"),
            Just("env"),
            Just("input"),
            Just("halt"),
            Just("'q'"),
            Just(" "),
        ],
        0..24,
    )
    .prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_input_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), text in jsonish()) {
        for document in [String::from_utf8_lossy(&bytes).into_owned(), text] {
            let _ = Input::parse(&Demand::All, &document);
            let program = Program::compile("try fromjson catch \"refused\"").unwrap().with_limits(SMALL);
            let _ = program.first(&json!(document));
        }
    }

    #[test]
    fn deep_nestings_are_refused_at_max_depth(depth in 1usize..20_000, objects in any::<bool>(), leaf in prop::sample::select(vec!["1", "[]", "{}", "\"x\""])) {
        let containers = depth + usize::from(leaf == "[]" || leaf == "{}");
        let document = nested(depth, objects, leaf);
        let parsed = Input::parse(&Demand::All, &document);
        prop_assert_eq!(parsed.is_ok(), containers < MAX_DEPTH, "{} levels", containers);
        if let Err(message) = parsed {
            prop_assert!(message.starts_with("JSON nested too deeply"), "{}", message);
        }
        let fromjson = Program::compile("fromjson | tojson | length").unwrap().first(&json!(document));
        prop_assert_eq!(fromjson.is_ok(), containers < MAX_DEPTH, "{:?}", fromjson);
        // What is accepted reads back through serde_json: nothing stored is unreadable.
        if containers < MAX_DEPTH {
            prop_assert!(serde_json::from_str::<Value>(&document).is_ok());
        }
    }

    #[test]
    fn arbitrary_programs_compile_and_run_within_their_budget(source in jqish(), input in jsonish()) {
        let input: Value = serde_json::from_str(&input).unwrap_or(json!({"a": [1, "a", null]}));
        match Program::compile(&source) {
            Ok(program) => {
                let outcome = program.with_limits(SMALL).run(&input);
                if let Err(err) = outcome {
                    prop_assert!(!matches!(err, JqError::Compile { .. }), "{:?}", err);
                }
            }
            Err(err) => prop_assert!(matches!(err, JqError::Compile { .. }), "{:?}", err),
        }
    }
}
