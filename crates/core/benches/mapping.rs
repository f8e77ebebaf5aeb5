//! Mapping one event: the webhook mapping of `bench/ingest.sh` (identifier, title, six
//! properties, two relations: ten jq programs) on a ~2 KiB `pull_request` event, as the mapper
//! runs it for each pending event. `cargo bench -p wharf-core --bench mapping`.
//!
//! `map_stored_request`: the mapper's whole work per event, from the stored request's text,
//! two ways: `from_text` parses it straight into the mappings' projection (what the mapper
//! does), `via_value` parses it into a `serde_json::Value` first (what it did before).

use divan::{Bencher, black_box};
use serde_json::json;
use wharf_core::ingest::{event_input, stored_input};
use wharf_core::mapping::{map_input, map_webhook_event};
use wharf_core::webhook::{CompiledMapping, MappingDef, compile_mappings, input_demand};

fn main() {
    divan::main();
}

/// The mapping of `bench/ingest.sh`.
fn pull_request_mapping() -> Vec<CompiledMapping> {
    let def: MappingDef = serde_json::from_value(json!({
        "blueprint": "pullRequest",
        "entity": {
            "identifier": "(.body.pull_request.id // .body.head_commit.id) | tostring",
            "title": ".body.pull_request.title // .body.head_commit.message",
            "properties": {
                "author": ".body.pull_request.user.login // .body.pusher.name",
                "url": ".body.pull_request.html_url // .body.compare",
                "status": "if .headers[\"x-github-event\"] == \"push\" then \"pushed\" else .body.pull_request.state end",
                "branch": ".body.pull_request.head.ref // (.body.ref | ltrimstr(\"refs/heads/\"))",
                "createdAt": ".body.pull_request.created_at // .body.head_commit.timestamp",
                "labels": "[.body.pull_request.labels[]?.name]"
            },
            "relations": {"repository": ".body.repository.full_name", "sender": ".body.sender.login"}
        }
    }))
    .expect("the benchmark mapping is a mapping");
    compile_mappings(&[def]).expect("the benchmark mapping compiles")
}

/// The event of `bench/ingest.sh`, as the ingest path stores it.
fn pull_request_event() -> serde_json::Value {
    json!({
        "body": {
            "action": "opened", "number": 1,
            "pull_request": {"id": 1, "number": 1, "state": "open", "title": "Retry deliveries on 429 with Retry-After",
                "user": {"login": "octocat", "id": 583231, "type": "User", "site_admin": false, "html_url": "https://github.com/octocat"},
                "body": "Deliveries that get a 429 now wait for the Retry-After the receiver asked for, with jitter. ".repeat(13),
                "html_url": "https://github.com/acme/wharf/pull/1", "created_at": "2026-11-20T10:15:00Z",
                "head": {"ref": "feature/retry", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
                "base": {"ref": "main", "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b"},
                "labels": [{"name": "delivery"}, {"name": "enhancement"}], "additions": 120, "deletions": 14},
            "repository": {"id": 1296269, "name": "wharf", "full_name": "acme/wharf", "html_url": "https://github.com/acme/wharf"},
            "sender": {"login": "octocat", "id": 583231, "type": "User"}
        },
        "headers": {"content-type": "application/json", "x-github-event": "pull_request", "x-hub-signature-256": "[redacted]"},
        "queryParams": {}
    })
}

#[divan::bench]
fn map_pull_request_event(bencher: Bencher) {
    let mappings = pull_request_mapping();
    let input = pull_request_event();
    let mapped = map_webhook_event(&mappings, &input);
    assert!(mapped.errors.is_empty() && mapped.entities.len() == 1, "{mapped:?}");
    bencher.bench(|| map_webhook_event(black_box(&mappings), black_box(&input)));
}

#[divan::bench_group]
mod map_stored_request {
    use super::*;

    #[divan::bench]
    fn from_text(bencher: Bencher) {
        let mappings = pull_request_mapping();
        let demand = input_demand(&mappings);
        let text = pull_request_event().to_string();
        let map = |text: &str| event_input(&demand, Some(text)).map(|input| map_input(&mappings, &input));
        assert_eq!(map(&text).map(|mapped| mapped.entities.len()), Ok(1));
        bencher.bench(|| map(black_box(&text)));
    }

    #[divan::bench]
    fn via_value(bencher: Bencher) {
        let mappings = pull_request_mapping();
        let text = pull_request_event().to_string();
        let map = |text: &str| serde_json::from_str(text).map(|value| map_webhook_event(&mappings, &stored_input(value)));
        assert_eq!(map(&text).map(|mapped| mapped.entities.len()).ok(), Some(1));
        bencher.bench(|| map(black_box(&text)));
    }
}

/// `itemsToParse` at its cap: 500 items, each mapped from `.item` (each item's input must not
/// carry the whole array again).
#[divan::bench]
fn map_500_items(bencher: Bencher) {
    let def: MappingDef = serde_json::from_value(json!({
        "blueprint": "service",
        "itemsToParse": ".body.services",
        "entity": {"identifier": ".item.name", "properties": {"tier": ".item.tier"}}
    }))
    .expect("the benchmark mapping is a mapping");
    let mappings = compile_mappings(&[def]).expect("the benchmark mapping compiles");
    let services: Vec<_> = (0..500).map(|i| json!({"name": format!("svc-{i}"), "tier": i % 3, "owner": "core"})).collect();
    let input = json!({"body": {"services": services}, "headers": {}, "queryParams": {}});
    let mapped = map_webhook_event(&mappings, &input);
    assert!(mapped.errors.is_empty() && mapped.entities.len() == 500, "{:?}", mapped.errors);
    bencher.bench(|| map_webhook_event(black_box(&mappings), black_box(&input)));
}
