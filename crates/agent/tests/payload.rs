//! The message rebuilt from a claimed run, control-the-payload mappings and decryption, as
//! Port's agent does them (its unit tests' fixtures where it has them).

use aes_gcm::AesGcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use wharf_agent::decrypt::{DecryptError, decrypt_paths};
use wharf_agent::message::{self, MessageError, Rebuilt, RunMessage, truthy};
use wharf_agent::payload::{ConfigError, PayloadConfig, Request};
use wharf_core::agent::FieldCryptoError;
use wharf_core::agent::decrypt_field;

/// Port's fixture (`tests/unit/processors/polling/test_polling_to_webhook_processor.py`).
fn sample_run() -> Value {
    json!({
        "id": "run_123",
        "payload": {
            "type": "WEBHOOK",
            "url": "http://localhost:8080/webhook",
            "agent": true,
            "synchronized": false,
            "method": "PUT",
            "headers": {"X-Team": "a"},
            "body": {
                "context": {"entity": "entity_123", "blueprint": "microservice"},
                "payload": {"action": {"identifier": "deploy"}, "properties": {"environment": "production"}},
                "trigger": {"by": {"userId": "user_123"}}
            }
        }
    })
}

fn rebuilt(run: &Value) -> RunMessage {
    match message::rebuild(message::run_id(run).expect("an id"), run).expect("a run") {
        Rebuilt::Run(message) => message,
        Rebuilt::NotForAgent => panic!("a run for the agent"),
    }
}

fn prepare(config: &PayloadConfig, run: &Value) -> Request {
    let message = rebuilt(run);
    config.prepare(message.message, &message.invocation, "").expect("a mapping is enabled").request
}

// ---- The message ------------------------------------------------------------------------

#[test]
fn the_message_is_the_body_with_headers_invocation_method_and_run_id() {
    let message = rebuilt(&sample_run());
    let invocation = json!({
        "type": "WEBHOOK", "url": "http://localhost:8080/webhook", "synchronized": false,
        "method": "PUT", "headers": {"X-Team": "a"}
    });
    assert_eq!(message.run_id, "run_123");
    assert_eq!(message.invocation, invocation);
    assert_eq!(
        message.message,
        json!({
            "context": {"entity": "entity_123", "blueprint": "microservice", "runId": "run_123"},
            "payload": {
                "action": {"identifier": "deploy", "invocationMethod": invocation},
                "properties": {"environment": "production"}
            },
            "trigger": {"by": {"userId": "user_123"}},
            "headers": {"X-Team": "a"}
        })
    );
}

#[test]
fn the_claimed_run_id_wins_and_missing_parts_are_made() {
    // Port's `test_process_run_overwrites_body_run_id` and `..._adds_run_id_to_context`.
    let run = json!({"id": "r_888", "payload": {
        "type": "WEBHOOK", "url": "http://x/", "agent": true, "body": {"context": {"runId": "existing"}}
    }});
    let message = rebuilt(&run);
    assert_eq!(message.message["context"]["runId"], "r_888");
    assert_eq!(message.message["headers"], json!({}));
    assert_eq!(message.invocation["method"], "POST");
    assert_eq!(message.invocation["synchronized"], false);
    assert_eq!(message.message["payload"]["action"]["invocationMethod"], message.invocation);
    assert!(message.invocation.get("agent").is_none(), "`agent` is taken out");
}

#[test]
fn runs_not_for_the_agent_are_skipped_and_malformed_runs_refused() {
    let mut run = sample_run();
    run["payload"]["agent"] = json!(false);
    assert_eq!(message::rebuild("run_123", &run), Ok(Rebuilt::NotForAgent));
    let mut run = sample_run();
    run["payload"].as_object_mut().unwrap().remove("url");
    assert_eq!(message::rebuild("run_123", &run), Err(MessageError::Missing("url")));
    let mut run = sample_run();
    run["payload"]["body"] = json!([1]);
    assert_eq!(message::rebuild("run_123", &run), Err(MessageError::BodyNotObject("an array")));
    let mut run = sample_run();
    run["payload"]["body"]["payload"] = json!("text");
    assert_eq!(message::rebuild("run_123", &run), Err(MessageError::NotObject("payload")));
    assert_eq!(message::rebuild("x", &json!({"id": "x"})), Err(MessageError::NoPayload));
    assert_eq!(message::run_id(&json!({"id": 5})), None);
}

#[test]
fn truthiness_is_pythons() {
    for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!(""), json!([]), json!({})] {
        assert!(!truthy(&falsy), "{falsy}");
    }
    for true_ in [json!(true), json!(1), json!("x"), json!([0]), json!({"a": null})] {
        assert!(truthy(&true_), "{true_}");
    }
}

// ---- Control the payload ----------------------------------------------------------------

#[test]
fn ports_default_mapping_sends_the_message_to_the_invocation_url() {
    let run = sample_run();
    let request = prepare(&PayloadConfig::default(), &run);
    assert_eq!(request.method, "PUT");
    assert_eq!(request.url, "http://localhost:8080/webhook");
    assert_eq!(request.body, rebuilt(&run).message, "the whole message is the body");
    assert_eq!(request.headers, json!({}), "the invocation's headers travel in the body, not as headers");
    assert_eq!(request.query, json!({}));

    // `method // "POST"` when the run has none.
    let mut run = sample_run();
    run["payload"]["method"] = Value::Null;
    assert_eq!(prepare(&PayloadConfig::default(), &run).method, "POST");
}

#[test]
fn a_mapping_makes_body_headers_query_and_url_from_jq() {
    let config = PayloadConfig::parse(
        r#"[{
            "enabled": true,
            "url": "\"https://ci.internal/deploy/\" + .payload.properties.environment",
            "method": "\"post\"",
            "body": {
                "env": ".payload.properties.environment",
                "literal": "\"im a string\"",
                "count": 3,
                "flag": false,
                "nothing": null,
                "nested": {"who": ".trigger.by.userId", "empty": {}},
                "gone": {"inner": {}},
                "list": [".context.runId", {"x": "1 + 1"}, {}]
            },
            "headers": {"Authorization": "\"Bearer \" + .headers[\"X-Team\"]", "X-Run": ".context.runId"},
            "query": {"ref": "\"main\"", "n": "2"}
        }]"#,
    )
    .expect("a valid config");
    let request = prepare(&config, &sample_run());
    assert_eq!(request.url, "https://ci.internal/deploy/production");
    assert_eq!(request.method, "post");
    assert_eq!(
        request.body,
        json!({
            "env": "production",
            "literal": "im a string",
            "count": 3,
            "flag": false,
            "nothing": null,
            "nested": {"who": "user_123"},
            "list": ["run_123", {"x": 2}, {}]
        }),
        "objects with no leaf inside an object disappear, as Port's flatten/unflatten loses them"
    );
    assert_eq!(request.headers, json!({"Authorization": "Bearer a", "X-Run": "run_123"}));
    assert_eq!(request.query, json!({"ref": "main", "n": 2}));
}

#[test]
fn a_jq_string_may_make_the_whole_body_or_headers() {
    let config =
        PayloadConfig::parse(r#"[{"body": ".payload.properties", "headers": "{\"X-Env\": .payload.properties.environment}"}]"#)
            .unwrap();
    let request = prepare(&config, &sample_run());
    assert_eq!(request.body, json!({"environment": "production"}));
    assert_eq!(request.headers, json!({"X-Env": "production"}));
    assert_eq!(request.url, "http://localhost:8080/webhook", "no `url`: the invocation's");
}

#[test]
fn the_first_enabled_mapping_is_used_and_a_jq_error_is_null() {
    // Port's `mock_control_the_payload_config`: `.payload.non-existing-field` is a jq error
    // (a subtraction of undefined names), so null, so the first mapping is not enabled.
    let config = PayloadConfig::parse(
        r#"[
            {"enabled": ".payload.non-existing-field", "body": ".", "headers": {"MY-HEADER": ".resourceType"}},
            {"enabled": ".payload.action.invocationMethod.type == \"GITHUB\"", "body": "\"github\""},
            {"enabled": false, "body": "\"disabled\""},
            {"enabled": ".payload.action.invocationMethod.type == \"WEBHOOK\"",
             "body": {"ok": ".context.runId", "broken": ".context.runId | tonumber", "none": "empty"},
             "headers": {"MY-HEADER": ".resourceType", "X-Bad": "error(\"boom\")"}},
            {"enabled": true, "body": "\"catch-all\""}
        ]"#,
    )
    .unwrap();
    let message = rebuilt(&sample_run());
    assert_eq!(config.find(&message.message), Some(3));
    let prepared = config.prepare(message.message, &message.invocation, "").unwrap();
    assert_eq!(prepared.mapping, 3);
    assert_eq!(prepared.request.body, json!({"ok": "run_123", "broken": null, "none": null}));
    assert_eq!(prepared.request.headers, json!({"MY-HEADER": null, "X-Bad": null}));
}

#[test]
fn enabled_must_be_exactly_true() {
    let config = PayloadConfig::parse(r#"[{"enabled": ".context.runId"}, {"enabled": "1 == 1", "body": "\"second\""}]"#).unwrap();
    let message = rebuilt(&sample_run());
    assert_eq!(config.find(&message.message), Some(1), "a truthy string is not `true`");
    let none = PayloadConfig::parse(r#"[{"enabled": false}, {"enabled": "null"}]"#).unwrap();
    assert_eq!(none.find(&message.message), None);
    assert_eq!(none.prepare(message.message, &message.invocation, ""), None);
}

#[test]
fn env_reads_what_the_agent_is_given() {
    let mut env = Map::new();
    env.insert("DEPLOY_TOKEN".into(), json!("t0k3n"));
    let config = PayloadConfig::parse(
        r#"[{"headers": {"Authorization": "\"Bearer \" + env.DEPLOY_TOKEN", "X-Env": "$ENV.DEPLOY_TOKEN"}}]"#,
    )
    .unwrap();
    let without = prepare(&config, &sample_run());
    assert_eq!(without.headers, json!({"Authorization": "Bearer ", "X-Env": null}), "no environment given: `env` is {{}}");
    let with = prepare(&config.with_env(env), &sample_run());
    assert_eq!(with.headers, json!({"Authorization": "Bearer t0k3n", "X-Env": "t0k3n"}));
}

#[test]
fn a_runaway_expression_is_stopped_by_its_budget() {
    let config = PayloadConfig::parse(
        r#"[{"body": {"loop": "def f: f; f", "huge": "[range(infinite)] | length", "after": ".context.runId"}}]"#,
    )
    .unwrap();
    let request = prepare(&config, &sample_run());
    assert_eq!(request.body["loop"], Value::Null);
    assert_eq!(request.body["huge"], Value::Null);
    assert_eq!(request.body["after"], "run_123", "what the budget left is enough for the rest");
}

#[test]
fn expressions_that_do_not_compile_are_null_and_named() {
    let config = PayloadConfig::parse(
        r#"[{"enabled": ".payload.non-existing-field"}, {"body": {"ref": ".a | nope", "ok": ".context.runId"}}]"#,
    )
    .expect("compile errors do not refuse the file, as in Port's agent");
    assert_eq!(config.warnings().len(), 2, "{:?}", config.warnings());
    assert!(
        config.warnings()[0]
            .starts_with("mappings[0]: `enabled` is not valid jq (.payload.non-existing-field): jq: compile error:")
    );
    assert!(
        config.warnings()[1]
            .starts_with("mappings[1]: `body.ref` is not valid jq (.a | nope): jq: compile error: nope/0 is not defined"),
        "{}",
        config.warnings()[1]
    );
    assert!(config.warnings()[1].ends_with("; it is null"));
    let request = prepare(&config, &sample_run());
    assert_eq!(request.body, json!({"ref": null, "ok": "run_123"}));
    assert!(PayloadConfig::default().warnings().is_empty());
}

#[test]
fn values_of_the_wrong_type_refuse_the_config() {
    let refused = |text: &str| PayloadConfig::parse(text).expect_err(text);
    assert!(matches!(refused("{"), ConfigError::Json(_)));
    assert_eq!(refused(r#"{"enabled": true}"#), ConfigError::NotArray("an object"));
    for (text, expected) in [
        (r#"[{"enabled": 1}]"#, "`enabled` must be true, false or a jq string, not a number"),
        (r#"[{"url": ["x"]}]"#, "`url` must be a jq string, not an array"),
        (r#"[{"headers": {"X": 1}}]"#, "`headers.X` must be a jq string, not a number"),
        (r#"[{"query": 5}]"#, "`query` must be a jq string or an object of jq strings, not a number"),
        (r#"[{"report": {"status": true}}]"#, "`report.status` must be a jq string, not a boolean"),
        (r#"[{"fieldsToDecryptPaths": "a.b"}]"#, "`fieldsToDecryptPaths` must be an array of strings, not a string"),
        (r#"[3]"#, "a mapping must be an object, not a number"),
    ] {
        let ConfigError::Mapping { index, message } = refused(text) else { panic!("{text}") };
        assert_eq!((index, message.as_str()), (0, expected), "{text}");
    }
    let ConfigError::Mapping { index, .. } = refused(r#"[{}, {"url": 1}]"#) else { panic!("a mapping error") };
    assert_eq!(index, 1);
    assert_eq!(
        PayloadConfig::parse(r#"[{"unknown": 1}]"#).unwrap().len(),
        1,
        "unknown keys are ignored, as Port's agent ignores them"
    );
}

// ---- Decryption -------------------------------------------------------------------------

/// Encrypts as Port's tests do (`encrypt_field`): a random 16-byte IV, `IV | ciphertext | tag`.
fn encrypt(plain: &str, key: &str) -> String {
    let iv: [u8; 16] = rand::random();
    let cipher = AesGcm::<Aes256, U16>::new_from_slice(&key.as_bytes()[..32]).unwrap();
    let mut buffer = plain.as_bytes().to_vec();
    let tag = cipher.encrypt_inout_detached(&Array::from(iv), &[], buffer.as_mut_slice().into()).unwrap();
    let mut data = iv.to_vec();
    data.extend_from_slice(&buffer);
    data.extend_from_slice(&tag);
    STANDARD.encode(data)
}

#[test]
fn fields_to_decrypt_are_decrypted_before_the_mapping_reads_them() {
    let secret = "s3cr3t-client-secret-of-40-bytes-long!!!";
    let mut run = sample_run();
    run["payload"]["body"]["payload"]["properties"]["token"] = json!(encrypt("deploy-token", secret));
    let config = PayloadConfig::parse(
        r#"[{"fieldsToDecryptPaths": ["payload.properties.token"],
             "headers": {"Authorization": "\"Bearer \" + .payload.properties.token"}}]"#,
    )
    .unwrap();
    let message = rebuilt(&run);
    let prepared = config.prepare(message.message.clone(), &message.invocation, secret).unwrap();
    assert_eq!(prepared.request.headers, json!({"Authorization": "Bearer deploy-token"}));
    assert_eq!(prepared.message["payload"]["properties"]["token"], "deploy-token");
    assert_eq!(prepared.request.body["payload"]["properties"]["token"], "deploy-token");
    assert!(prepared.decrypt_failures.is_empty());

    // Without the secret nothing is decrypted; with another one the value stays as it was.
    let kept = config.prepare(message.message.clone(), &message.invocation, "").unwrap();
    assert_eq!(kept.message, message.message);
    let wrong = config.prepare(message.message.clone(), &message.invocation, &"w".repeat(32)).unwrap();
    assert_eq!(wrong.message, message.message);
    assert_eq!(
        wrong.decrypt_failures,
        [("payload.properties.token".to_owned(), DecryptError::Field(FieldCryptoError::Authentication))]
    );
}

#[test]
fn nested_paths_and_array_indexes_are_decrypted_in_place() {
    // Port's `test_decrypt_payload_fields_complex`, with a 40-byte secret (its first 32 are the key).
    let key = format!("{}{}", "a".repeat(32), "ignored!");
    let sealed = encrypt("secret_value", &key);
    let mut payload = json!({
        "level1": {
            "level2": {"secret": sealed, "other": "not encrypted"},
            "list": [{"deep": {"secret": sealed}}, {"deep": {"not_secret": "foo"}}]
        },
        "top_secret": sealed,
        "nothing": null
    });
    let paths: Vec<String> =
        ["level1.level2.secret", "top_secret", "level1.list.0.deep.secret", "missing.path", "nothing", "level1.list.9"]
            .map(String::from)
            .into();
    assert_eq!(decrypt_paths(&mut payload, &paths, &key), []);
    assert_eq!(
        payload,
        json!({
            "level1": {
                "level2": {"secret": "secret_value", "other": "not encrypted"},
                "list": [{"deep": {"secret": "secret_value"}}, {"deep": {"not_secret": "foo"}}]
            },
            "top_secret": "secret_value",
            "nothing": null
        })
    );
}

#[test]
fn values_that_do_not_decrypt_are_left_as_they_are_with_a_clear_error() {
    let key = "k".repeat(32);
    let mut payload = json!({
        "tampered": encrypt("x", &"o".repeat(32)),
        "short": "aGVsbG8=",
        "text": "not base64!",
        "number": 5,
        "forged": STANDARD.encode([b'a'; 48])
    });
    let before = payload.clone();
    let paths: Vec<String> = ["tampered", "short", "text", "number", "forged"].map(String::from).into();
    let failures = decrypt_paths(&mut payload, &paths, &key);
    assert_eq!(payload, before, "nothing is changed");
    assert_eq!(
        failures,
        [
            ("tampered".to_owned(), DecryptError::Field(FieldCryptoError::Authentication)),
            ("short".to_owned(), DecryptError::Field(FieldCryptoError::TooShort)),
            ("text".to_owned(), DecryptError::Field(FieldCryptoError::NotBase64)),
            ("number".to_owned(), DecryptError::NotAString("a number")),
            ("forged".to_owned(), DecryptError::Field(FieldCryptoError::Authentication)),
        ]
    );
    assert_eq!(failures[0].1.to_string(), "the value does not decrypt with this key: wrong key, or the data was altered");
    assert_eq!(decrypt_field("short", &STANDARD.encode([b'a'; 32])), Err(FieldCryptoError::KeyTooShort));
    assert_eq!(decrypt_field(&key, &encrypt("héllo", &key)).as_deref(), Ok("héllo"));
}
