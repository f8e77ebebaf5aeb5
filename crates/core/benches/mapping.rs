//! Mapping one event: the webhook mapping of `bench/ingest.sh` (identifier, title, six
//! properties, two relations: ten jq programs) on a ~2 KiB `pull_request` event, as the mapper
//! runs it for each pending event. `cargo bench -p wharf-core --bench mapping`.

use divan::{Bencher, black_box};
use serde_json::json;
use wharf_core::mapping::map_event;
use wharf_core::webhook::{MappingDef, compile_mappings};

fn main() {
    divan::main();
}

#[divan::bench]
fn map_pull_request_event(bencher: Bencher) {
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
    let mappings = compile_mappings(&[def]).expect("the benchmark mapping compiles");
    let input = json!({
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
    });
    let mapped = map_event(&mappings, &input);
    assert!(mapped.errors.is_empty() && mapped.entities.len() == 1, "{mapped:?}");
    bencher.bench(|| map_event(black_box(&mappings), black_box(&input)));
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
    let mapped = map_event(&mappings, &input);
    assert!(mapped.errors.is_empty() && mapped.entities.len() == 500, "{:?}", mapped.errors);
    bencher.bench(|| map_event(black_box(&mappings), black_box(&input)));
}
