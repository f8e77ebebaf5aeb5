//! Hot paths of every entity write and search: parsing an entity document, planning and
//! validating the write, and matching a search query. `cargo bench -p wharf-core`.

use divan::{Bencher, black_box};
use serde_json::{Value, json};
use wharf_core::blueprint::{Audited, Blueprint, BlueprintDef};
use wharf_core::entity::{Entity, EntityInput, Planned, WriteMode, plan_write};
use wharf_core::search::Query;
use wharf_core::time::Timestamp;

fn main() {
    divan::main();
}

fn blueprint() -> Blueprint {
    let def = BlueprintDef::parse(json!({
        "identifier": "service", "title": "Service",
        "schema": {"properties": {
            "language": {"type": "string", "enum": ["rust", "go"]}, "stars": {"type": "number"},
            "public": {"type": "boolean"}, "url": {"type": "string", "format": "url"},
            "tier": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}
        }, "required": ["language"]},
        "relations": {"owner": {"target": "team", "required": true}}
    }))
    .expect("benchmark blueprint is valid");
    Blueprint { def, audited: Audited::new("bench", Timestamp::from_millis(0)) }
}

fn document(i: usize) -> Value {
    json!({
        "identifier": format!("svc-{i}"), "title": format!("Service {i}"),
        "properties": {"language": "rust", "stars": i, "public": true, "url": format!("https://git.example/{i}"),
                       "tier": "gold", "tags": ["a", "b"]},
        "relations": {"owner": "core"}
    })
}

#[divan::bench]
fn parse_entity_document(bencher: Bencher) {
    let doc = document(7);
    bencher.bench(|| EntityInput::parse(black_box(&doc), "service"));
}

#[divan::bench]
fn plan_and_validate_create(bencher: Bencher) {
    let (bp, doc) = (blueprint(), document(7));
    bencher
        .with_inputs(|| EntityInput::parse(&doc, "service").expect("valid"))
        .bench_values(|input| plan_write(&bp, "svc-7", None, input, WriteMode::UpsertMerge, "bench", Timestamp::from_millis(1)));
}

#[divan::bench]
fn plan_and_validate_merge(bencher: Bencher) {
    let bp = blueprint();
    let doc = document(7);
    let stored = match plan_write(
        &bp,
        "svc-7",
        None,
        EntityInput::parse(&doc, "service").expect("valid"),
        WriteMode::Create,
        "b",
        Timestamp::from_millis(1),
    ) {
        Ok(Planned::Create(entity)) => entity,
        other => panic!("{other:?}"),
    };
    let patch = json!({"properties": {"stars": 8}});
    bencher.with_inputs(|| (stored.clone(), EntityInput::parse(&patch, "service").expect("valid"))).bench_values(
        |(stored, input)| {
            plan_write(&bp, "svc-7", Some(stored), input, WriteMode::UpsertMerge, "bench", Timestamp::from_millis(2))
        },
    );
}

#[divan::bench(args = [1_000, 10_000])]
fn search_entities(bencher: Bencher, n: usize) {
    let bp = blueprint();
    let entities: Vec<Entity> = (0..n)
        .map(|i| {
            let input = EntityInput::parse(&document(i), "service").expect("valid");
            plan_write(&bp, &format!("svc-{i}"), None, input, WriteMode::Create, "b", Timestamp::from_millis(1))
                .expect("valid")
                .entity()
                .clone()
        })
        .collect();
    let query = Query::parse(&json!({"combinator": "and", "rules": [
        {"property": "$blueprint", "operator": "=", "value": "service"},
        {"property": "stars", "operator": ">", "value": 100},
        {"combinator": "or", "rules": [
            {"property": "tags", "operator": "contains", "value": "b"},
            {"property": "$identifier", "operator": "beginsWith", "value": "svc-9"}
        ]}
    ]}))
    .expect("valid query");
    let now = Timestamp::from_millis(0);
    bencher.bench(|| entities.iter().filter(|e| query.matches(e, now)).count());
}
