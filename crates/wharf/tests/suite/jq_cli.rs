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

/// Port's documented check (`docs-sig`): `v1,` + base64 HMAC-SHA256 of `timestamp.body`.
fn port_signature(key: &str, timestamp: &str, body: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// `wharf render --action` (issue 24, point 7): the request a run of a Port action would send,
/// rendered by the engine's rendering: SPEC §8's default body with the inputs' defaults filled
/// in, templated headers and URL, secrets masked, Port's signature when the client secret is
/// given; bad files named by path, exit 2.
#[test]
fn renders_the_request_an_action_would_send() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let action = file(
        "deploy.json",
        r#"{
          "identifier": "deploy", "title": "Deploy",
          "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service", "userInputs": {
            "properties": {"version": {"type": "string"}, "replicas": {"type": "number", "default": 2}},
            "required": ["version"]}},
          "invocationMethod": {"type": "WEBHOOK", "url": "https://deploy.example.com/{{ .entity.identifier }}?token={{ .secrets[\"api-token\"] }}",
            "headers": {"RUN_ID": "{{ .run.id }}", "Authorization": "Bearer {{ .secrets[\"api-token\"] }}", "X-Who": "{{ .trigger.by.userId }}"}}
        }"#,
    );
    let context = file("context.json", r#"{"inputs": {"version": "2.0"}, "entity": {"identifier": "api"}}"#);
    let secret_value = "s3cr3t-value";
    let secrets = file("secrets.json", &format!(r#"{{"api-token": "{secret_value}"}}"#));

    // Unsigned, as text: the request, then a note that Port's headers are added at send time.
    let out = wharf(&["render", "--action", &action, "--context", &context, "--secrets", &secrets], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "POST https://deploy.example.com/api?token=****",
            "RUN_ID: r_preview",
            "Authorization: Bearer ****",
            "X-Who: preview",
            "Content-Type: application/json",
            "",
            r#"{"version":"2.0","replicas":2,"port_context":{"runId":"r_preview"}}"#,
        ],
        "{text}"
    );
    assert!(text.contains("X-Port-Signature are added when Wharf sends it"), "{text}");
    assert!(text.contains("asynchronous"), "{text}");
    assert!(!text.contains(secret_value) && !stderr(&out).contains(secret_value));

    // Signed, as JSON, with the run id and time the context and flag give: the signature is
    // Port's, over the exact body printed, with the client secret.
    let context = file(
        "context.json",
        r#"{"inputs": {"version": "1.0", "replicas": 5}, "entity": {"identifier": "web"}, "run": {"id": "r_given"}}"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "render",
            "--action",
            &action,
            "--context",
            &context,
            "--secrets",
            &secrets,
            "--json",
            "--timestamp",
            "1700000000",
        ])
        .env("WHARF_CLIENT_SECRET", "client-secret-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let body = doc["body"].as_str().unwrap();
    assert_eq!(body, r#"{"version":"1.0","replicas":5,"port_context":{"runId":"r_given"}}"#);
    assert_eq!(doc["method"], "POST");
    assert_eq!(doc["url"], "https://deploy.example.com/web?token=****");
    assert_eq!(doc["headers"]["RUN_ID"], "r_given");
    assert_eq!(doc["headers"]["Authorization"], "Bearer ****");
    assert_eq!(doc["headers"]["X-Port-Timestamp"], "1700000000");
    assert_eq!(doc["headers"]["X-Port-Signature"], port_signature("client-secret-1", "1700000000", body).as_str());
    assert_eq!((doc["signed"].as_bool(), doc["synchronized"].as_bool()), (Some(true), Some(false)));
    assert_eq!(doc["maskedSecrets"], serde_json::json!(["api-token"]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret_value));

    // A secret in the body: masked in the output, signed as sent (in clear).
    let echo = file(
        "echo.json",
        r#"{"identifier": "echo", "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://x.example", "method": "PUT", "synchronized": true,
                                 "body": {"token": "{{ .secrets[\"api-token\"] }}", "when": "{{ .trigger.at }}"}}}"#,
    );
    let out =
        wharf(&["render", "--action", &echo, "--secrets", &secrets, "--timestamp", "1700000000", "--client-secret", "k"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("PUT https://x.example\n"), "{text}");
    assert!(text.contains(r#"{"token":"****","when":"2023-11-14T22:13:20.000Z"}"#), "{text}");
    let sent = format!(r#"{{"token":"{secret_value}","when":"2023-11-14T22:13:20.000Z"}}"#);
    assert!(text.contains(&format!("X-Port-Signature: {}\n", port_signature("k", "1700000000", &sent))), "{text}");
    assert!(text.contains("synchronized") && !text.contains(secret_value), "{text}");

    // UPSERT_ENTITY: the entity it would write; jq errors render as null and are listed.
    let register = file(
        "register.json",
        r#"{"identifier": "register", "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
              "userInputs": {"properties": {"name": {"type": "string"}}}},
            "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
              "mapping": {"identifier": "{{ .inputs.name }}", "properties": {"owner": "{{ .trigger.by.userId }}", "x": "{{ .inputs.name.x }}"}}}}"#,
    );
    let context = file("context.json", r#"{"inputs": {"name": "api"}}"#);
    let out = wharf(&["render", "--action", &register, "--context", &context, "--json", "-c"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"type\":\"UPSERT_ENTITY\",\"action\":\"register\",\"blueprintIdentifier\":\"service\",\
         \"entity\":{\"identifier\":\"api\",\"properties\":{\"owner\":\"preview\",\"x\":null}}}\n"
    );
    assert!(stderr(&out).contains("`invocationMethod.mapping`: `.inputs.name.x` rendered as null"), "{}", stderr(&out));

    // Refusals name the file and the path in it, exit 2.
    let bad = file(
        "bad.json",
        r#"{"identifier": "deploy", "trigger": {"type": "self-service", "operation": "LATER", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://x.example"}}"#,
    );
    let out = wharf(&["render", "--action", &bad], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{bad}: `trigger.operation` is `LATER`")), "{}", stderr(&out));
    let broken = file(
        "broken.json",
        r#"{"identifier": "deploy", "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://x.example", "body": {"a": "{{ nope }}"}}}"#,
    );
    let out = wharf(&["render", "--action", &broken], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{broken}: `invocationMethod.body.a`")), "{}", stderr(&out));
    let out = wharf(&["render", "--action", &action, "--context", &context], "");
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(message.contains(&format!("{context}: ")) && message.contains("inputs.version: is required"), "{message}");
    let wrong = file("wrong.json", r#"{"inputs": {"version": "1.0"}, "input": {}}"#);
    let out = wharf(&["render", "--action", &action, "--context", &wrong], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{wrong}: `input` is not a key")), "{}", stderr(&out));
    let numbers = file("numbers.json", r#"{"api-token": 1}"#);
    let out = wharf(&["render", "--action", &echo, "--secrets", &numbers], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{numbers}: `api-token` must be a string")), "{}", stderr(&out));
    let out = wharf(&["render", "--action", &dir.path().join("missing.json").to_string_lossy()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
}

/// `wharf render --workflow --node` (issue 26, point 6): what one node of seed 001's GitHub
/// dispatch would do in a run, rendered by the stepper's rendering over a run context.
#[test]
fn renders_what_a_workflow_node_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let workflow = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/workflows/github-deploy.json");
    let context = file(
        "run.json",
        r#"{"outputs": {"trigger": {"repo": "acme/api", "environment": "staging", "version": "1.4.0"},
            "trigger-github": {"response": {"status": 204, "data": null}}}}"#,
    );
    let secrets = file("secrets.json", r#"{"github-token": "ghp_example"}"#);
    // The WEBHOOK node: its request, the secret masked, signed when given the client secret.
    let out = wharf(
        &["render", "--workflow", workflow, "--node", "trigger-github", "--context", &context, "--secrets", &secrets, "--json"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let request: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(request["node"], "trigger-github");
    assert_eq!(request["url"], "https://api.github.com/repos/acme/api/actions/workflows/deploy.yml/dispatches");
    assert_eq!(request["headers"]["Authorization"], "Bearer ****");
    assert_eq!(request["body"], r#"{"ref":"main","inputs":{"environment":"staging","version":"1.4.0"}}"#);
    assert_eq!(request["synchronized"], true, "WEBHOOK nodes are synchronized by default");
    let out = wharf(
        &[
            "render",
            "--workflow",
            workflow,
            "--node",
            "trigger-github",
            "--context",
            &context,
            "--timestamp",
            "1700000000",
            "--client-secret",
            "k",
        ],
        "",
    );
    let text = stdout(&out);
    assert!(text.contains("X-Port-Signature: v1,"), "{text}");
    assert!(text.contains("node `trigger-github` of workflow `deploy`"), "{text}");
    // The CONDITION: the outlet that holds; the UPSERT_ENTITY: the entity, with the run's id.
    let out = wharf(&["render", "--workflow", workflow, "--node", "dispatched", "--context", &context, "--json", "-c"], "");
    assert_eq!(stdout(&out).trim(), r#"{"type":"CONDITION","node":"dispatched","outlet":"accepted"}"#);
    let out = wharf(&["render", "--workflow", workflow, "--node", "record", "--context", &context, "--json", "-c"], "");
    let entity: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(entity["entity"]["identifier"], "acme-api-1.4.0");
    assert_eq!(entity["entity"]["properties"]["run"], "wfr_preview");
    // Refusals name the file and what is wrong.
    let out = wharf(&["render", "--workflow", workflow, "--node", "nope", "--context", &context], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has no node `nope`"), "{}", stderr(&out));
    let out = wharf(&["render", "--workflow", workflow, "--node", "trigger", "--context", &context], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is a trigger"), "{}", stderr(&out));
    let broken =
        file("broken.json", r#"{"identifier": "w", "nodes": [{"identifier": "a", "config": {"type": "WEBHOOK", "url": "x"}}]}"#);
    let out = wharf(&["render", "--workflow", &broken, "--node", "a"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("trigger"), "{}", stderr(&out));
}
