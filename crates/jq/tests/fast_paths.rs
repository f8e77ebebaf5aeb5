//! The engine's fast paths give exactly what the general evaluation gives: inputs built with
//! only the part a program can observe, object constructions with constant keys built in one
//! step, and paths of constant keys walked directly. Each case runs a program and a twin that
//! forces the general path, and compares every output and the first error.

use serde_json::{Value, json};
use wharf_jq::{Demand, Program};

/// As the server: allocations are counted, so the budgets' memory limits hold here too.
#[global_allocator]
static ALLOCATOR: wharf_jq::CountingAlloc<std::alloc::System> = wharf_jq::CountingAlloc(std::alloc::System);

/// Inputs with what trips projections up: non-objects where a path expects an object,
/// duplicate keys, nesting, arrays, nulls, keys with escapes.
fn inputs() -> Vec<Value> {
    let mut inputs = vec![
        json!({"body": {"pull_request": {"id": 7, "title": "t", "labels": [{"name": "a"}, {"name": "b"}]}, "ref": "refs/heads/main"},
               "headers": {"x-github-event": "push"}, "other": {"big": [1, 2, 3]}}),
        json!({"body": "a string", "headers": null}),
        json!({"body": {"pull_request": 5}}),
        json!({"body": {"pull_request": [1, 2]}}),
        json!({"body": null}),
        json!([1, {"a": 2}]),
        json!("text"),
        json!(12.5),
        json!(null),
        json!({"a": {"b": {"c": 1}, "x": {"y": 2}}, "z": false, "q\"uote": 1}),
    ];
    // Duplicate keys can only be written as text.
    inputs.push(serde_json::from_str(r#"{"a": {"b": 1}, "c": 2}"#).unwrap());
    inputs
}

/// Every output, then the first error (as its message), of `program` on `input` parsed from
/// `text` as the command line parses it.
fn outputs(program: &Program, text: &str) -> (Vec<Value>, Option<String>) {
    let mut out = Vec::new();
    let error = match program.parse_input(text) {
        Ok(input) => program.for_each_output_of(input, &[], 1000, |v| out.push(v)).err().map(|e| e.to_string()),
        Err(e) => Some(e),
    };
    (out, error)
}

fn same(fast: &str, general: &str) {
    let (f, g) = (Program::compile(fast).unwrap(), Program::compile(general).unwrap());
    let mut texts: Vec<String> = inputs().iter().map(Value::to_string).collect();
    texts.push(r#"{"a": {"b": 1}, "a": {"c": 2}, "b": 3}"#.into());
    for text in texts {
        assert_eq!(outputs(&f, &text), outputs(&g, &text), "`{fast}` and `{general}` differ on {text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(f.run(&value), g.run(&value), "`{fast}` and `{general}` differ on {text} (as a value)");
    }
}

/// The same program, reading its input whole: `. as $whole` demands all of it.
fn whole(program: &str) -> String {
    format!(". as $whole | ({program})")
}

#[test]
fn projected_inputs_change_no_output_or_error() {
    let programs = [
        include_str!("../../../bench/mapping.jq"),
        ".body.pull_request.id",
        ".body.pull_request.labels[]?.name",
        "[.body.pull_request.labels[].name]",
        ".body.pull_request.title // .body.ref",
        "if .headers[\"x-github-event\"] == \"push\" then .body.ref else .body.pull_request end",
        "try .body.pull_request.id catch .",
        "try (.body.pull_request + 1) catch .",
        "try (.a.b | keys) catch .",
        ".a.b?.c",
        ".a | .b",
        ".a.b, .a.x.y, .z",
        "[.a.b.c, .\"q\\\"uote\"]",
        "{a: .a.b, n: (.body | length)}",
        ".a as $x | $x.b",
        "(.body.ref | ltrimstr(\"refs/heads/\")) // \"none\"",
        "[.a.b] | length",
        "if .z then 1 else .a.x end",
        "label $out | .a | ., break $out",
        "try error(.a) catch .",
        "[paths] | length",
        "reduce .a.b as $v (0; . + 1)",
    ];
    for program in programs {
        same(program, &whole(program));
    }
}

#[test]
fn constant_key_objects_yield_what_sums_of_single_objects_yield() {
    let cases = [
        ("{a: 1, b: 2}", "{a: 1} + ({b: 2})"),
        ("{a: (1, 2), b: (3, 4), c: 5}", "{a: (1, 2)} + ({b: (3, 4)} + {c: 5})"),
        ("{a: 1, b: 2, a: 3}", "{a: 1} + ({b: 2} + {a: 3})"),
        ("{a: error(\"x\"), b: (1, 2)}", "{a: error(\"x\")} + {b: (1, 2)}"),
        ("{a: (1, error(\"e1\")), b: (error(\"e2\"), 5)}", "{a: (1, error(\"e1\"))} + {b: (error(\"e2\"), 5)}"),
        ("[{a: (1, 2), b: empty, c: 3}]", "[{a: (1, 2)} + ({b: empty} + {c: 3})]"),
        (
            "[.[]? | try {a: (1, error(\"e1\")), b: (error(\"e2\"), 5)} catch .]",
            "[.[]? | try ({a: (1, error(\"e1\"))} + {b: (error(\"e2\"), 5)}) catch .]",
        ),
        ("{\"x y\": .a, z: .z}", "{\"x y\": .a} + {z: .z}"),
        ("[limit(3; {a: (1, 2, 3), b: (4, 5)})]", "[limit(3; {a: (1, 2, 3)} + {b: (4, 5)})]"),
    ];
    for (fast, general) in cases {
        same(fast, general);
    }
}

#[test]
fn constant_key_paths_yield_what_computed_keys_yield() {
    let cases = [
        (".a.b", ".[(\"a\" | .)][(\"b\" | .)]"),
        (".a.b?", ".[(\"a\" | .)][(\"b\" | .)]?"),
        (".a?.b", ".[(\"a\" | .)]?[(\"b\" | .)]"),
        ("[.[]? | .a.b]", "[.[]? | .[(\"a\" | .)][(\"b\" | .)]]"),
        ("[(.a, .z) | .b?]", "[(.a, .z) | .[(\"b\" | .)]?]"),
        ("try .body.pull_request.id catch .", "try .[(\"body\" | .)][(\"pull_request\" | .)][(\"id\" | .)] catch ."),
        ("[.body?.pull_request?.id?]", "[.[(\"body\" | .)]?[(\"pull_request\" | .)]?[(\"id\" | .)]?]"),
    ];
    for (fast, general) in cases {
        same(fast, general);
    }
}

#[test]
fn demand_names_exactly_the_keys_a_mapping_reads() {
    let mapping = Program::compile(include_str!("../../../bench/mapping.jq")).unwrap();
    let Demand::Keys(top) = mapping.input_demand() else { panic!("the mapping reads a few keys") };
    assert_eq!(top.keys().collect::<Vec<_>>(), ["body", "headers"]);
    let Demand::Keys(body) = &top["body"] else { panic!("the body is read by key") };
    assert_eq!(
        body.keys().collect::<Vec<_>>(),
        ["compare", "head_commit", "pull_request", "pusher", "ref", "repository", "sender"]
    );
    let Demand::Keys(pull_request) = &body["pull_request"] else { panic!("the pull request is read by key") };
    assert_eq!(pull_request["labels"], Demand::All, "labels are iterated: needed whole");
    assert_eq!(pull_request["head"], Demand::Keys([("ref".to_owned(), Demand::All)].into()));

    for program in [".", "keys", ".[]", "..", "tostring", "[paths]", ". as {a: $x} | $x", ".a |= 1", "length"] {
        assert_eq!(Program::compile(program).unwrap().input_demand(), &Demand::All, "`{program}` reads its input whole");
    }
    let a_whole = Demand::Keys([("a".to_owned(), Demand::All)].into());
    for program in [".a[0]", ".a | keys", ".a[]", "[.a]", ".a + 1"] {
        assert_eq!(Program::compile(program).unwrap().input_demand(), &a_whole, "`{program}` reads `.a` whole");
    }
    assert_eq!(Program::compile("1, \"x\"").unwrap().input_demand(), &Demand::Keys(Default::default()), "constants read nothing");
}
