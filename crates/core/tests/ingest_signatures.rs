//! The ingest signature known-answers of `signatures.json` (copied from the shared vectors):
//! every case's verdict, through the same function the ingest endpoint calls.

use serde_json::Value;
use wharf_core::ingest::{headers_object, verify_signature};
use wharf_core::webhook::{Security, SignatureAlgorithm};

#[test]
fn every_ingest_known_answer_holds() {
    let vectors: Value = serde_json::from_str(include_str!("fixtures/signatures.json")).unwrap();
    let cases = vectors["ingest"].as_array().unwrap();
    assert!(cases.len() >= 16, "the ingest vectors are all here");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config = &case["config"];
        let algorithm = match config["algorithm"].as_str().unwrap() {
            "sha1" => SignatureAlgorithm::Sha1,
            "sha256" => SignatureAlgorithm::Sha256,
            "plain" => SignatureAlgorithm::Plain,
            other => panic!("{name}: unknown algorithm {other}"),
        };
        let security = Security {
            secret: config["secret"].as_str().map(str::to_owned),
            signature_header_name: config["signature_header_name"].as_str().map(str::to_owned),
            signature_algorithm: Some(algorithm),
            signature_prefix: config["prefix"].as_str().map(str::to_owned),
            request_identifier_path: None,
        };
        let headers: Vec<(&str, &[u8])> =
            case["headers"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap().as_bytes())).collect();
        let headers = headers_object(headers);
        let verdict = verify_signature(&security, &headers, case["body"].as_str().unwrap().as_bytes());
        match case["verdict"].as_str().unwrap() {
            "accept" => assert_eq!(verdict, Ok(()), "{name}"),
            "reject" => assert!(verdict.is_err(), "{name}: accepted"),
            other => panic!("{name}: unknown verdict {other}"),
        }
    }
}

#[test]
fn no_secret_means_no_check() {
    let security = Security { signature_header_name: Some("x-sig".into()), ..Security::default() };
    assert_eq!(verify_signature(&security, &headers_object([]), b"anything"), Ok(()));
}
