//! What is reported after an answer, and the signed request, as Port's agent decides and
//! signs them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wharf_agent::message::{self, Rebuilt};
use wharf_agent::payload::{PayloadConfig, Prepared, Request};
use wharf_agent::report::{Answer, Report, response_to_report};
use wharf_agent::request::{RequestError, sign};

fn answer(status: u16, text: &str) -> Answer {
    Answer { status, headers: vec![("content-type".into(), "application/json".into())], text: text.into() }
}

// ---- The report decision ----------------------------------------------------------------

#[test]
fn a_synchronized_run_answered_below_400_succeeds_with_its_response() {
    let ok = answer(200, r#"{"deployed": true}"#);
    assert_eq!(Report::default_for(true, &ok).to_patch(), Some(json!({"status": "SUCCESS"})));
    assert_eq!(response_to_report(true, &ok), Some(json!({"deployed": true})));
    // Not JSON: the text; empty (or JSON's falsy values): nothing to report.
    assert_eq!(response_to_report(true, &answer(201, "done")), Some(json!("done")));
    for empty in ["", "{}", "[]", "null", "0", "\"\""] {
        assert_eq!(response_to_report(true, &answer(200, empty)), None, "{empty:?}");
    }
    // `requests`' `ok` is a status below 400: a 3xx left unfollowed counts.
    assert_eq!(Report::default_for(true, &answer(304, "")).to_patch(), Some(json!({"status": "SUCCESS"})));
}

#[test]
fn an_asynchronous_run_answered_below_400_is_left_to_its_backend() {
    let ok = answer(202, r#"{"queued": true}"#);
    assert_eq!(Report::default_for(false, &ok).to_patch(), None, "no status: the backend reports");
    assert_eq!(response_to_report(false, &ok), None);
}

#[test]
fn an_answer_of_400_or_more_fails_the_run_with_ports_summary() {
    for synchronized in [true, false] {
        let failed = Report::default_for(synchronized, &answer(500, "boom"));
        assert_eq!(
            failed.to_patch(),
            Some(json!({"status": "FAILURE", "summary": "Failed to invoke the webhook with status code: 500. Response: boom"}))
        );
    }
    // A synchronized run's response is reported whatever its status, as Port's agent does.
    assert_eq!(response_to_report(true, &answer(404, "nope")), Some(json!("nope")));
    // The summary keeps the response's first 1,000 characters (Wharf's own invoker's).
    let long = "x".repeat(5_000);
    let summary = Report::default_for(false, &answer(502, &long)).summary;
    assert_eq!(summary.as_str().unwrap().len(), "Failed to invoke the webhook with status code: 502. Response: ".len() + 1_000);
}

fn prepared(config: &PayloadConfig, synchronized: bool) -> Prepared {
    let run = json!({"id": "r_1", "payload": {
        "type": "WEBHOOK", "url": "http://ci.internal/run", "agent": true, "synchronized": synchronized,
        "method": "POST", "headers": {}, "body": {"inputs": {"ref": "main"}}
    }});
    let Ok(Rebuilt::Run(message)) = message::rebuild("r_1", &run) else { panic!("a run") };
    config.prepare(message.message, &message.invocation, "").unwrap()
}

#[test]
fn a_report_mapping_reads_body_request_and_response() {
    let config = PayloadConfig::parse(
        r#"[{
            "report": {
                "link": ".response.json.web_url",
                "externalRunId": ".response.json.id | tostring",
                "summary": "\"ran \" + .body.inputs.ref + \" with \" + .request.method + \" → \" + (.response.statusCode | tostring) + \" \" + .response.headers[\"content-type\"]",
                "status": "if .response.json.ok then \"SUCCESS\" else \"FAILURE\" end"
            }
        }]"#,
    )
    .unwrap();
    let run = prepared(&config, false);
    let report = config.report(&run, &answer(201, r#"{"ok": true, "id": 42, "web_url": "https://ci/p/42"}"#));
    assert_eq!(
        report.to_patch(),
        Some(json!({
            "status": "SUCCESS",
            "link": "https://ci/p/42",
            "summary": "ran main with POST → 201 application/json",
            "externalRunId": "42"
        }))
    );
}

#[test]
fn a_report_field_replaces_the_default_even_with_null() {
    // Port's fixture mapping: `report.link` alone, the default status and summary kept.
    let config =
        PayloadConfig::parse(r#"[{"report": {"link": "\"http://test.com\"", "status": ".response.json.status"}}]"#).unwrap();
    let run = prepared(&config, true);
    let report = config.report(&run, &answer(500, "down"));
    assert_eq!(
        report.to_patch(),
        Some(json!({"link": "http://test.com", "summary": "Failed to invoke the webhook with status code: 500. Response: down"})),
        "`status` mapped to null takes the default FAILURE away"
    );
    assert_eq!(config.report(&run, &answer(200, "")).to_patch(), Some(json!({"link": "http://test.com"})));
    // Without a report mapping: the default.
    let plain = PayloadConfig::default();
    assert_eq!(plain.report(&prepared(&plain, true), &answer(200, "")).to_patch(), Some(json!({"status": "SUCCESS"})));
}

#[test]
fn the_response_seen_by_report_expressions_is_ports() {
    let answered = Answer { status: 418, headers: vec![("x-a".into(), "1, 2".into())], text: "short and stout".into() };
    assert_eq!(
        answered.to_value(),
        json!({"statusCode": 418, "headers": {"x-a": "1, 2"}, "text": "short and stout", "json": null})
    );
    assert!(!answered.ok());
}

// ---- The signed request -----------------------------------------------------------------

fn hmac_v1(secret: &str, signed: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signed);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn request(body: Value) -> Request {
    Request {
        method: json!("post"),
        url: json!("https://ci.internal/hook?x=1"),
        body,
        headers: json!({"Authorization": "Bearer t", "X-Count": 3, "X-Skip": null}),
        query: json!({"ref": "main", "tags": ["a", "b"], "none": null, "n": 2}),
    }
}

#[test]
fn the_body_is_signed_as_port_documents_and_sent_as_signed() {
    let secret = "client-secret";
    let body = json!({"b": 1, "a": ["é", {"z": null}], "port_context": {"runId": "r_1"}});
    let mut prepared = request(body.clone());
    let outgoing = sign(&mut prepared, secret, 1_713_277_889).expect("a valid request");
    let sent = outgoing.body.clone().expect("a body");
    assert_eq!(sent, serde_json::to_vec(&body).unwrap(), "compact JSON, keys in order");
    assert_eq!(String::from_utf8(sent.clone()).unwrap(), r#"{"b":1,"a":["é",{"z":null}],"port_context":{"runId":"r_1"}}"#);
    let mut signed = b"1713277889.".to_vec();
    signed.extend_from_slice(&sent);
    let signature = hmac_v1(secret, &signed);
    let header = |name: &str| outgoing.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("X-Port-Timestamp"), Some("1713277889"));
    assert_eq!(header("X-Port-Signature"), Some(signature.as_str()));
    assert_eq!(header("Content-Type"), Some("application/json"));
    assert_eq!(header("Authorization"), Some("Bearer t"));
    assert_eq!(header("X-Count"), Some("3"));
    assert_eq!(header("X-Skip"), None, "a null header is left out");
    assert_eq!(outgoing.method, "POST");
    assert_eq!(outgoing.url.as_str(), "https://ci.internal/hook?x=1&ref=main&tags=a&tags=b&n=2");
    // As in Port's agent, report expressions see the signature headers in `.request.headers`.
    assert_eq!(prepared.headers["X-Port-Signature"], signature);
    assert_eq!(prepared.headers["X-Port-Timestamp"], "1713277889");
}

#[test]
fn ports_known_signature_is_reproduced() {
    // Port's agent's test vector (tests/unit/processors/kafka/conftest.py): secret `test`,
    // timestamp 1713277889, over the compact JSON of the run message with its signature
    // headers taken out.
    let message = json!({
        "action": "Create",
        "resourceType": "run",
        "status": "TRIGGERED",
        "trigger": {"by": {"orgId": "test_org", "userId": "test_user"}, "origin": "UI", "at": "2022-11-16T16:31:32.447Z"},
        "context": {"entity": null, "blueprint": "Service", "runId": "r_jE5FhDURh4Uen2Qr"},
        "payload": {
            "entity": null,
            "action": {
                "id": "action_34aweFQtayw7SCVb",
                "identifier": "Create",
                "title": "Create",
                "icon": "DefaultBlueprint",
                "userInputs": {
                    "properties": {
                        "foo": {"type": "string", "description": "Description"},
                        "bar": {"type": "number", "description": "Description"}
                    },
                    "required": []
                },
                "invocationMethod": {"type": "WEBHOOK", "agent": true, "url": "http://localhost:80/api/test"},
                "trigger": "CREATE",
                "description": "",
                "blueprint": "Service",
                "createdAt": "2022-11-15T09:58:52.863Z",
                "createdBy": "test_user",
                "updatedAt": "2022-11-15T09:58:52.863Z",
                "updatedBy": "test_user"
            },
            "properties": {}
        },
        "headers": {}
    });
    let mut prepared = Request {
        method: json!("POST"),
        url: json!("http://localhost:80/api/test"),
        body: message,
        headers: json!({}),
        query: json!({}),
    };
    sign(&mut prepared, "test", 1_713_277_889).unwrap();
    assert_eq!(prepared.headers["X-Port-Signature"], "v1,uuBMfcio3oscejO5bOtL97K1AmiZjxDvou7sChjMNeE=");
}

#[test]
fn a_null_body_is_signed_as_null_and_not_sent() {
    let mut prepared = request(Value::Null);
    let outgoing = sign(&mut prepared, "s", 1).unwrap();
    assert_eq!(outgoing.body, None);
    assert!(!outgoing.headers.iter().any(|(n, _)| n == "Content-Type"));
    assert_eq!(prepared.headers["X-Port-Signature"], hmac_v1("s", b"1.null"));
}

#[test]
fn requests_that_cannot_be_sent_are_refused_without_quoting_values() {
    let refused = |change: fn(&mut Request)| {
        let mut prepared = request(json!({}));
        change(&mut prepared);
        sign(&mut prepared, "s", 1).expect_err("refused")
    };
    assert_eq!(refused(|r| r.headers = json!("x")), RequestError::HeadersNotObject("a string"));
    assert_eq!(refused(|r| r.url = Value::Null), RequestError::UrlNotString("null"));
    assert_eq!(refused(|r| r.url = json!("ftp://files/x?token=secret")), RequestError::UnsupportedScheme);
    assert!(matches!(refused(|r| r.url = json!("not a url token=secret")), RequestError::InvalidUrl(m) if !m.contains("secret")));
    assert_eq!(refused(|r| r.method = json!(1)), RequestError::MethodNotString("a number"));
    assert_eq!(refused(|r| r.method = json!("GET /")), RequestError::InvalidMethod);
    assert_eq!(
        refused(|r| r.headers = json!({"X": {"a": 1}})),
        RequestError::HeaderNotText { name: "X".into(), kind: "an object" }
    );
    assert_eq!(refused(|r| r.headers = json!({"Bad Name": "v"})), RequestError::InvalidHeaderName("Bad Name".into()));
    assert_eq!(refused(|r| r.headers = json!({"X": "a\nb"})), RequestError::InvalidHeaderValue("X".into()));
    assert_eq!(refused(|r| r.query = json!([1])), RequestError::QueryNotObject("an array"));
    assert_eq!(refused(|r| r.query = json!({"q": {"a": 1}})), RequestError::QueryNotText { name: "q".into(), kind: "an object" });
    // A string query is added as it is.
    let mut raw = request(json!({}));
    raw.query = json!("a=1&b=two");
    assert_eq!(sign(&mut raw, "s", 1).unwrap().url.as_str(), "https://ci.internal/hook?x=1&a=1&b=two");
}
