//! `wharf jq` and `wharf render` as a user runs them.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn wharf(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wharf runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin written");
    child.wait_with_output().expect("wharf exits")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn filters_a_stream_like_jq() {
    let out = wharf(&["jq", "-c", ".a[]"], "{\"a\":[1,\"x\"]}\n{\"a\":[{\"b\":2}]}");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n\"x\"\n{\"b\":2}\n");

    let out = wharf(&["jq", "."], "{\"z\":1,\"a\":[]}");
    assert_eq!(stdout(&out), "{\n  \"z\": 1,\n  \"a\": []\n}\n", "pretty by default, key order kept");

    let out = wharf(&["jq", "-r", ".headers['x-request-id']"], "{\"headers\":{\"x-request-id\":\"r-1\"}}");
    assert_eq!(stdout(&out), "r-1\n", "Port's single quotes and raw output");

    let out = wharf(&["jq", "-n", "-c", "--arg", "x", "a\"b", "--argjson", "y", "{\"k\":[1]}", "[$x, $y, 4/2]"], "");
    assert_eq!(stdout(&out), "[\"a\\\"b\",{\"k\":[1]},2]\n");
}

#[test]
fn reads_filters_and_inputs_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("mapping.jq");
    std::fs::write(&filter, "{identifier: (.id | tostring), title: .name}").unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}\n").unwrap();
    let out = wharf(&["jq", "-c", "-f", filter.to_str().unwrap(), events.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"identifier\":\"1\",\"title\":\"a\"}\n{\"identifier\":\"2\",\"title\":\"b\"}\n");
}

#[test]
fn exit_statuses_and_messages() {
    let out = wharf(&["jq", "-n", "foo"], "");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("jq: compile error: foo/0 is not defined at <top-level>, line 1:"), "{}", stderr(&out));

    let out = wharf(&["jq", "-n", "1, error(\"boom\"), 2"], "");
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(stdout(&out), "1\n", "outputs before the error are printed");
    assert!(stderr(&out).contains("boom"));

    let out = wharf(&["jq", "-n", "env, $ENV"], "");
    assert_eq!(stdout(&out), "{}\n{}\n", "the environment never reaches filters");

    let out = wharf(&["jq", "."], "{broken");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid JSON"));
}

/// `count` pretty-printed documents `{"a": i, "pad": …}` (four lines each), over the size
/// from which the input is read and scanned by every core at once.
fn large_stream(count: usize) -> String {
    (0..count).map(|i| format!("{{\n  \"a\": {i},\n  \"pad\": \"{}\"\n}}\n", "x".repeat(20))).collect()
}

#[test]
fn large_inputs_are_read_in_parallel_with_the_same_results_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.json");
    let count = 40_000; // about 2 MiB: documents span lines, so pieces start inside them
    std::fs::write(&file, large_stream(count)).unwrap();
    let out = wharf(&["jq", "-c", ".a", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: String = (0..count).map(|i| format!("{i}\n")).collect();
    assert!(stdout(&out) == expected, "every document once, in order");

    // A broken document in the second half: the outputs before it, then the error at its
    // line in the whole file, exactly as one scan reports it.
    let mut text = large_stream(count);
    let broken_line = 4 * 30_000 + 2;
    let at = text.match_indices('\n').nth(broken_line - 2).map(|(i, _)| i + 1).unwrap();
    text.insert_str(at, "  ]");
    std::fs::write(&file, &text).unwrap();
    let out = wharf(&["jq", "-c", ".a", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out).lines().count(), 30_000, "the documents before the broken one");
    assert!(
        stderr(&out).contains(&format!("invalid JSON: key must be a string at line {broken_line} column 3")),
        "{}",
        stderr(&out)
    );

    // Bytes that are not UTF-8 are refused, wherever they are.
    let mut bytes = large_stream(count).into_bytes();
    let at = bytes.len() - 10;
    bytes[at] = 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let out = wharf(&["jq", "-c", ".a", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
}

#[test]
fn renders_templates_with_ports_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context.json");
    std::fs::write(&context, r#"{"inputs": {"name": "api", "replicas": 3}, "run": {"id": "r_1"}}"#).unwrap();
    let template = dir.path().join("body.json");
    std::fs::write(
        &template,
        r#"{"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}"}, "url": "https://x/{{ .inputs.name }}", "bad": "{{ .inputs.name.x }}"}"#,
    )
    .unwrap();
    let out = wharf(&["render", "-c", "--context", context.to_str().unwrap(), template.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"name\":\"api\",\"replicas\":3,\"port_context\":{\"runId\":\"r_1\"},\"url\":\"https://x/api\",\"bad\":null}\n"
    );
    assert!(stderr(&out).contains("`.inputs.name.x` rendered as null"), "{}", stderr(&out));

    std::fs::write(&template, r#"{"a": "{{ .x "}"#).unwrap();
    let out = wharf(&["render", "--context", context.to_str().unwrap(), template.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("Found opening double braces in index 0 without closing double braces"), "{}", stderr(&out));
}

/// Deep values (issue 22): an output nested too deeply is an error and an exit status, not
/// an abort; deep input is refused with its position; `stderr` and `debug` print to the
/// user's terminal, as in jq.
#[test]
fn deep_values_are_errors_and_logs_reach_the_terminal() {
    let out = wharf(&["jq", "-n", "reduce range(200000) as $i (0; [.])"], "");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("nested too deeply"), "{}", stderr(&out));

    let out = wharf(&["jq", "-n", "-r", "reduce range(200000) as $i (0; [.]) | tojson | length"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", 257 * 2 + "<skipped: too deep>".len()), "printed as jq prints it");

    let out = wharf(&["jq", "."], &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nested too deeply"), "{}", stderr(&out));

    let out = wharf(&["jq", "-c", "stderr | debug | .a"], "{\"a\":\"x\\ny\"}");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "\"x\\ny\"\n");
    assert!(stderr(&out).contains("{\"a\":\"x\\ny\"}\n[\"DEBUG:\",{\"a\":\"x\\ny\"}]"), "{}", stderr(&out));
}
