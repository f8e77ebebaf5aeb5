//! The outbound signature known-answers of `signatures.json` (copied from the shared vectors):
//! Standard Webhooks signing, secrets and verification, and Port's `X-Port-Signature`.

use serde_json::Value;
use wharf_core::signing::{SigningSecret, port_signature};

fn vectors() -> Value {
    serde_json::from_str(include_str!("fixtures/signatures.json")).unwrap()
}

fn payload(case: &Value) -> Vec<u8> {
    if let Some(text) = case["payload"].as_str() {
        return text.as_bytes().to_vec();
    }
    let generator = &case["payload_generator"];
    let count = usize::try_from(generator["count"].as_u64().unwrap()).unwrap();
    generator["repeat"].as_str().unwrap().repeat(count).into_bytes()
}

#[test]
fn every_standard_webhooks_known_answer_holds() {
    let vectors = vectors();
    let cases = vectors["standard_webhooks"].as_array().unwrap();
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        match case["op"].as_str().unwrap() {
            // v1a (ed25519) is optional in the vectors; Wharf signs with v1 (HMAC-SHA256).
            "sign" if case["scheme"] == "v1a" => continue,
            // Timestamps given as strings exist only for PHP's API; Wharf's is an integer.
            "sign" if !case["timestamp"].is_i64() => continue,
            "sign" => {
                let secret = SigningSecret::parse(case["secret"].as_str().unwrap()).unwrap();
                let signature =
                    secret.sign(case["msg_id"].as_str().unwrap(), case["timestamp"].as_i64().unwrap(), &payload(case));
                assert_eq!(signature, case["expect"].as_str().unwrap(), "{name}");
            }
            "parse_secret" => {
                let err = SigningSecret::parse(case["secret"].as_str().unwrap()).unwrap_err();
                assert_eq!(err.code(), case["expect"].as_str().unwrap(), "{name}");
            }
            "verify" => {
                // Unpadded secrets: Wharf follows the Python library and accepts them.
                let secret = SigningSecret::parse(case["secret"].as_str().unwrap()).unwrap();
                let headers: Vec<(&str, &str)> =
                    case["headers"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
                let tolerance = if case["check_timestamp"] == false { None } else { case["tolerance_s"].as_i64() };
                let verdict = secret.verify(headers, &payload(case), case["now"].as_i64().unwrap(), tolerance);
                let code = verdict.err().map_or("ok", |e| e.code());
                assert_eq!(code, case["expect"].as_str().unwrap(), "{name}");
            }
            other => panic!("{name}: unknown op {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} cases checked");
}

#[test]
fn every_port_signature_known_answer_holds() {
    let vectors = vectors();
    let mut checked = 0;
    for case in vectors["port_v1"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (Some(signed), Some(expect)) = (case["signed_string"].as_str(), case["expect"].as_str()) else { continue };
        let timestamp: i64 = match &case["timestamp"] {
            Value::String(s) => s.parse().unwrap(),
            other => other.as_i64().unwrap(),
        };
        let body = signed.strip_prefix(&format!("{timestamp}.")).unwrap_or_else(|| panic!("{name}: signed string shape"));
        let secret = case["secret"].as_str().unwrap().as_bytes();
        assert_eq!(port_signature(secret, timestamp, body.as_bytes()), expect, "{name}");
        assert_ne!(port_signature(b"other", timestamp, body.as_bytes()), expect, "{name}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} cases checked");
}
