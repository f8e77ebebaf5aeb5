//! Hot paths of every delivery: reading a publish and building the payload, signing it (one key, and two during a
//! rotation), routing an event type through a subscription's patterns, checking an address
//! against the SSRF rules, and choosing the next attempt. `cargo bench -p wharf-core --bench delivery`.

use divan::{Bencher, black_box};
use serde_json::json;
use wharf_core::delivery::{AttemptOutcome, RetryPolicy};
use wharf_core::network::NetworkPolicy;
use wharf_core::project::{PublishInput, PublishedEvent, pattern_matches};
use wharf_core::signing::{SigningSecret, signature_header};
use wharf_core::time::Timestamp;

fn main() {
    divan::main();
}

fn event() -> PublishedEvent {
    let data = json!({
        "invoice": "in_00001234", "customer": {"id": "cus_000042", "email": "billing@acme.example", "name": "Acme Corp"},
        "amount": 12345, "currency": "eur", "paid_at": "2026-11-22T10:15:00Z",
        "lines": [{"sku": "wharf-pro", "quantity": 3, "unit_amount": 4000}, {"sku": "support", "quantity": 1, "unit_amount": 0}],
        "metadata": {"order": "ord_1234", "region": "eu-west-1"}});
    PublishedEvent::new(
        "msg_2Lq8rT0aB3cD4eF5gH6iJ7kL".into(),
        "invoice.paid".into(),
        &data,
        Timestamp::from_millis(1_763_806_500_000),
    )
}

#[divan::bench]
fn build_payload(bencher: Bencher) {
    let data = json!({"invoice": "in_1", "amount": 1200, "lines": [{"sku": "a", "quantity": 1}]});
    bencher.bench(|| PublishedEvent::new("msg_1".into(), "invoice.paid".into(), black_box(&data), Timestamp::from_millis(0)));
}

/// The body of the delivery benchmark's publishes (`examples/delivery_load.rs`).
const PUBLISH_BODY: &str = r#"{"type":"invoice.paid","id":"b-1234","data":{"invoice":"in_00001234","customer":{"id":"cus_001234","email":"billing@acme.example","name":"Acme Corp"},"amount":12345,"currency":"eur","paid_at":"2026-11-22T10:15:00Z","lines":[{"sku":"wharf-pro","quantity":3,"unit_amount":4000},{"sku":"support","quantity":1,"unit_amount":0}],"metadata":{"order":"ord_1234","region":"eu-west-1"}}}"#;

/// A publish as the server reads it: the body taken apart straight from its bytes, and the
/// payload built.
#[divan::bench]
fn publish_from_bytes(bencher: Bencher) {
    bencher.bench(|| {
        let input = PublishInput::from_slice(black_box(PUBLISH_BODY.as_bytes())).unwrap().unwrap();
        PublishedEvent::with_data_json(input.id.unwrap(), input.event_type, &input.data_json, Timestamp::from_millis(0))
    });
}

/// The same through a parsed value (the path of documents that are not plain, and the only
/// path before): for comparison with `publish_from_bytes`.
#[divan::bench]
fn publish_from_value(bencher: Bencher) {
    bencher.bench(|| {
        let doc: serde_json::Value = serde_json::from_slice(black_box(PUBLISH_BODY.as_bytes())).unwrap();
        let input = PublishInput::parse(doc).unwrap();
        PublishedEvent::with_data_json(input.id.unwrap(), input.event_type, &input.data_json, Timestamp::from_millis(0))
    });
}

#[divan::bench(args = [1, 2])]
fn sign(bencher: Bencher, keys: usize) {
    let event = event();
    let secrets: Vec<SigningSecret> = (0..keys).map(|n| SigningSecret::from_bytes([n as u8; 24])).collect();
    bencher.bench(|| signature_header(black_box(&secrets), &event.id, 1_763_806_500, event.payload.as_bytes()));
}

#[divan::bench]
fn route_event_type(bencher: Bencher) {
    let patterns = ["order.*", "invoice.refunded", "customer.*.deleted", "invoice.*"];
    bencher.bench(|| black_box(patterns).iter().any(|p| pattern_matches(p, black_box("invoice.paid"))));
}

#[divan::bench]
fn check_address(bencher: Bencher) {
    let policy = NetworkPolicy::default();
    let addrs: Vec<std::net::IpAddr> =
        ["93.184.215.14", "10.0.0.1", "2606:4700::1111", "::ffff:127.0.0.1"].iter().map(|a| a.parse().unwrap()).collect();
    bencher.bench(|| black_box(&addrs).iter().filter(|a| policy.check(**a).is_ok()).count());
}

#[divan::bench]
fn next_attempt(bencher: Bencher) {
    let policy = RetryPolicy::default();
    let outcome = AttemptOutcome::Response { status: 503, retry_after: None };
    bencher.bench(|| policy.next_step(black_box(3), &outcome, Timestamp::from_millis(0), 0.3, true));
}
