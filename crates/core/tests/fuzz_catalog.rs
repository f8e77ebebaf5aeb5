//! Property tests (a fuzzer in the test suite) over what the catalog and the ingest path read
//! from users and senders: search queries and bodies (page, cursor, include/exclude), entity writes, calculation and mirror properties, webhook bodies and their mapping. Whatever the
//! input, they answer or refuse, never panic, and what they accept can be stored and read back.
//!
//! The default is 64 cases per property; for a long run:
//! `PROPTEST_CASES=200000 cargo test --release -p wharf-core --test fuzz_catalog`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};
use wharf_core::blueprint::{Audited, Blueprint, BlueprintDef};
use wharf_core::entity::{EntityInput, MAX_VALUE_DEPTH, WriteMode, plan_write};
use wharf_core::ingest::{BodyKind, check_body, jq_input, parse_body};
use wharf_core::json::{MAX_DEPTH, depth};
use wharf_core::mapping::{map_input, map_webhook_event};
use wharf_core::search::{Query, SearchRequest, cursor_after};
use wharf_core::time::Timestamp;
use wharf_core::webhook::{CompiledWebhook, WebhookDef, compile};

/// 64 cases, or `PROPTEST_CASES`.
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Strings that mean something to the query reader, and a few that do not.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "and",
            "or",
            "combinator",
            "rules",
            "property",
            "relation",
            "operator",
            "value",
            "blueprint",
            "direction",
            "required",
            "from",
            "to",
            "preset",
            "today",
            "lastWeek",
            "upstream",
            "downstream",
            "relatedTo",
            "=",
            "!=",
            ">",
            "<=",
            "in",
            "notIn",
            "contains",
            "containsAny",
            "beginsWith",
            "endsWith",
            "isEmpty",
            "exists",
            "between",
            "$identifier",
            "$title",
            "$team",
            "$blueprint",
            "$createdAt",
            "lang",
            "stars",
            "tags",
            "when",
            "owner",
            "2024-06-01T00:00:00Z",
        ])
        .prop_map(str::to_owned),
        ".{0,6}",
    ]
}

/// Any JSON value, biased towards the shapes of queries and entities.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..5).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A value wrapped in `levels` arrays or objects: around and past every depth limit.
fn deep_value() -> impl Strategy<Value = Value> {
    (0usize..MAX_DEPTH + 20, json_value(), any::<bool>()).prop_map(|(levels, inner, objects)| {
        (0..levels).fold(inner, |value, _| if objects { json!({"a": value}) } else { json!([value]) })
    })
}

/// A query document: a group of rules (some groups, some comparisons), or anything at all.
fn query_doc() -> impl Strategy<Value = Value> {
    let rule = (word(), word(), json_value())
        .prop_map(|(property, operator, value)| json!({"property": property, "operator": operator, "value": value}));
    let group = rule.prop_recursive(5, 32, 4, |inner| {
        (prop::sample::select(vec!["and", "or", "xor"]), prop::collection::vec(inner, 0..4))
            .prop_map(|(combinator, rules)| json!({"combinator": combinator, "rules": rules}))
    });
    prop_oneof![
        4 => group.prop_map(|rules| json!({"combinator": "and", "rules": [rules]})),
        1 => json_value(),
        1 => (1usize..60).prop_map(|levels| {
            let rule = json!({"property": "stars", "operator": "=", "value": 5});
            (0..levels).fold(rule, |inner, _| json!({"combinator": "or", "rules": [inner]}))
        }),
    ]
}

/// A path for `include`/`exclude`: words joined by dots, sometimes with Port's `$` or an
/// empty step.
fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop_oneof![4 => word(), 1 => Just(String::new())], 1..4), any::<bool>())
        .prop_map(|(steps, meta)| format!("{}{}", if meta { "$" } else { "" }, steps.join(".")))
}

/// An entity of the fuzz blueprint with no properties.
fn entity_named(identifier: &str) -> wharf_core::entity::Entity {
    wharf_core::entity::Entity {
        identifier: identifier.to_owned(),
        title: None,
        icon: None,
        blueprint: "service".to_owned(),
        team: Vec::new(),
        properties: Map::new(),
        relations: Map::new(),
        audited: Audited::new("fuzz", Timestamp::from_millis(0)),
    }
}

fn blueprint() -> Blueprint {
    let def = BlueprintDef::parse(json!({
        "identifier": "service", "title": "Service",
        "schema": {"properties": {
            "lang": {"type": "string", "enum": ["rust", "go"]},
            "stars": {"type": "number", "minimum": 0, "maximum": 10},
            "url": {"type": "string", "format": "url"},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string", "format": "email"}},
            "meta": {"type": "object"},
            "on": {"type": "boolean"}
        }},
        "relations": {"owner": {"target": "team"}, "uses": {"target": "service", "many": true}}
    }))
    .expect("the fuzzed blueprint is valid");
    Blueprint { def, audited: Audited::new("fuzz", Timestamp::from_millis(0)) }
}

/// An entity's properties: known names and others, any values, some nested past the limit.
fn properties() -> impl Strategy<Value = Map<String, Value>> {
    let name = prop_oneof![
        prop::sample::select(vec!["lang", "stars", "url", "when", "tags", "meta", "on"]).prop_map(str::to_owned),
        "[a-z]{1,4}",
    ];
    let value = prop_oneof![3 => json_value(), 1 => deep_value()];
    prop::collection::vec((name, value), 0..6).prop_map(|fields| fields.into_iter().collect())
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        prop::sample::select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.github+json",
            "text/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
            ";",
            "APPLICATION/JSON",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ])
}

/// Bodies: arbitrary bytes, JSON documents, brackets nested around the parser's limit, forms.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        deep_value().prop_map(|v| v.to_string().into_bytes()),
        (0usize..300, any::<bool>()).prop_map(|(n, closed)| {
            let mut text = "[".repeat(n);
            if closed {
                text.push_str(&"]".repeat(n));
            }
            text.into_bytes()
        }),
        (json_value(), ".{0,8}").prop_map(|(payload, other)| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .append_pair("x", &other)
                .finish()
                .into_bytes()
        }),
    ]
}

/// A webhook whose mappings read a body the way Port's examples do, and the ways a hostile
/// one might: items, every path, a round trip through text, deep constructions.
fn hostile_webhook() -> CompiledWebhook {
    let def = WebhookDef::parse(json!({"identifier": "fuzz", "title": "Fuzz", "mappings": [
        {"blueprint": "service", "filter": ".body | type == \"object\"", "entity": {
            "identifier": ".body.id // .body.a // \"x\" | tostring",
            "title": ".body.title",
            "properties": {"all": ".body", "paths": "[.body | paths] | length", "text": ".body | tojson | fromjson",
                           "deep": "reduce range(200) as $i (.body; [.])", "keys": ".body | keys? // []"},
            "relations": {"owner": ".body.owner"}}},
        {"blueprint": "service", "itemsToParse": ".body | if type == \"array\" then . else [.[]?] end",
         "entity": {"identifier": ".item | tostring", "properties": {"item": ".item", "n": ".item | length"}}},
        {"blueprint": "service", "operation": {"type": "delete", "deleteDependents": true}, "filter": ".body.gone == true",
         "entity": {"identifier": ".body.id | tostring"}}
    ]}))
    .expect("the webhook parses");
    compile(&def).expect("the webhook compiles")
}

/// Takes a value apart level by level: dropping a deep one recurses once per level.
/// A blueprint's `calculationProperties`: definitions of known shape with expressions built
/// from jq fragments (some that fail, run long or do not compile), or any JSON at all.
fn calculations() -> impl Strategy<Value = Value> {
    let fragment = prop::sample::select(vec![
        ".properties.stars",
        ".identifier",
        ".relations.owner",
        " + ",
        " / ",
        "'x'",
        "1",
        "[",
        "]",
        ".[]",
        "error",
        "empty",
        "range(1e9)",
        "last(",
        ")",
        " | ",
        "tostring",
        "{a: 1}",
        "[.properties[]]",
        "def f: f; f",
    ]);
    let expression = prop::collection::vec(fragment, 1..6).prop_map(|parts| parts.concat());
    let kind = prop::sample::select(vec!["string", "number", "boolean", "object", "array", "date"]);
    let definition = (expression, kind).prop_map(|(calculation, kind)| json!({"type": kind, "calculation": calculation}));
    let name = prop_oneof!["[a-z]{1,4}", Just("stars".to_owned())];
    let entry = prop_oneof![4 => definition, 1 => json_value()];
    prop_oneof![
        4 => prop::collection::vec((name, entry), 0..4).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        1 => json_value(),
    ]
}

/// A blueprint's `mirrorProperties`: paths built from relation and field names (some that do
/// not resolve), or any JSON at all.
fn mirror_properties() -> impl Strategy<Value = Value> {
    let segment = prop::sample::select(vec!["owner", "uses", "slack", "$title", "$team", "$nope", "stars", ""]);
    let path = prop::collection::vec(segment, 0..5).prop_map(|parts| parts.join("."));
    let entry = prop_oneof![4 => path.prop_map(|path| json!({"path": path})), 1 => json_value()];
    let name = prop_oneof!["[a-z]{1,4}", Just("stars".to_owned())];
    prop_oneof![
        4 => prop::collection::vec((name, entry), 0..4).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        1 => json_value(),
    ]
}

fn dismantle(value: Value) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => pending.extend(fields.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn queries_parse_or_refuse_and_match_without_panicking(doc in query_doc(), props in properties()) {
        if let Ok(mut query) = Query::parse(&doc) {
            for related in query.related_rules_mut() {
                related.matches = Some(Default::default());
            }
            let planned = plan_write(
                &blueprint(),
                "api",
                None,
                EntityInput { properties: Some(props.clone()), ..EntityInput::default() },
                WriteMode::Create,
                "fuzz",
                Timestamp::from_millis(0),
            );
            let mut entity = match planned {
                Ok(planned) => planned.entity().clone(),
                Err(_) => return Ok(()),
            };
            entity.properties = props;
            let _ = query.matches(&entity, Timestamp::from_millis(1_717_200_000_000));
            let _ = query.blueprint_scope();
        }
        dismantle(doc);
    }

    #[test]
    fn search_bodies_parse_or_refuse_and_project_without_panicking(
        doc in query_doc(),
        limit in json_value(),
        from in prop_oneof![json_value(), word().prop_map(Value::String), word().prop_map(|w| Value::String(cursor_after(&entity_named(&w))))],
        include in prop_oneof![json_value(), prop::collection::vec(path(), 0..6).prop_map(|p| json!(p))],
        exclude in prop_oneof![json_value(), prop::collection::vec(path(), 0..6).prop_map(|p| json!(p))],
        props in properties(),
    ) {
        let body = json!({"query": doc, "limit": limit, "from": from, "include": include, "exclude": exclude});
        if let Ok(request) = SearchRequest::parse(&body) {
            if let Some(limit) = request.page.limit {
                prop_assert!((1..=1000).contains(&limit));
            }
            let mut entity = entity_named("api");
            entity.properties = props;
            let _ = request.projection.apply(entity.to_json());
        }
        dismantle(body);
    }

    #[test]
    fn accepted_entities_read_back_from_every_document_around_them(props in properties()) {
        let input = EntityInput { properties: Some(props.clone()), ..EntityInput::default() };
        let planned = plan_write(&blueprint(), "api", None, input, WriteMode::Create, "fuzz", Timestamp::from_millis(0));
        match planned {
            Ok(planned) => {
                let entity = planned.entity();
                prop_assert!(entity.properties.values().all(|v| depth(v) <= MAX_VALUE_DEPTH));
                // The deepest document built around an entity: an audit log answer.
                let answer = json!({"ok": true, "audits": [{"diff": {"before": null, "after": entity.to_json()}}]});
                let text = answer.to_string();
                prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "cannot read back {}", text);
            }
            Err(err) => prop_assert!(err.kind == wharf_core::ErrorKind::Unprocessable, "{err:?}"),
        }
        for value in props.into_iter().map(|(_, v)| v) {
            dismantle(value);
        }
    }

    #[test]
    fn bodies_parse_or_refuse_by_content_type(content_type in content_type(), body in body()) {
        let kind = BodyKind::of(content_type.as_deref());
        let parsed = parse_body(kind, &body);
        // The ingest path checks a body without building it; both must agree.
        prop_assert_eq!(parsed.is_ok(), check_body(kind, &body).is_ok());
        match (kind, parsed) {
            (BodyKind::Json, Err(err)) => prop_assert_eq!(err.code, "invalid_json"),
            (_, Err(err)) => prop_assert!(false, "only JSON bodies are refused: {err:?}"),
            (kind, Ok(value)) => {
                prop_assert!(kind != BodyKind::Text || value.is_string());
                prop_assert!(kind != BodyKind::Form || value.is_object());
                // What is accepted is stored as the request document, which must read back.
                let stored = jq_input(value, Map::new(), Map::new()).to_string();
                prop_assert!(serde_json::from_str::<Value>(&stored).is_ok(), "cannot read back {}", stored);
            }
        }
    }

    /// Any `calculationProperties` and `mirrorProperties` are accepted or refused when the
    /// blueprint is written; on any entity, an accepted blueprint answers every mirror property
    /// and, for each calculation, a value of its type or `null`, within the answer's budget.
    #[test]
    fn computed_properties_are_refused_or_answered(
        calculations in calculations(),
        mirrors in mirror_properties(),
        props in properties(),
    ) {
        let written = json!({"identifier": "service", "title": "Service",
            "schema": {"properties": {"stars": {"type": "number"}}}, "calculationProperties": calculations,
            "relations": {"owner": {"target": "team"}, "uses": {"target": "service", "many": true}},
            "mirrorProperties": mirrors});
        let Ok(def) = BlueprintDef::parse(written) else { return Ok(()) };
        if wharf_core::calculation::check_programs(&def).is_err() {
            return Ok(());
        }
        let team = BlueprintDef::parse(json!({"identifier": "team", "title": "Team",
            "schema": {"properties": {"slack": {"type": "string"}}}})).expect("a valid blueprint");
        let find = |name: &str| (name == "team").then_some(&team);
        let resolved = wharf_core::mirror::mirrors(&def, &find);
        let mut entity = entity_named("api");
        entity.properties = props.clone();
        entity.relations = json!({"owner": "core", "uses": ["api", "web"]}).as_object().cloned().unwrap_or_default();
        let mut core = entity_named("core");
        core.blueprint = "team".into();
        core.properties = json!({"slack": "#core"}).as_object().cloned().unwrap_or_default();
        let mut reached = wharf_core::mirror::Reached::default();
        reached.insert(core);
        reached.insert(entity.clone());
        let mut doc = entity.to_json();
        wharf_core::mirror::add_to(&def, &resolved, &entity, &reached, &mut doc);
        for name in def.mirror_properties.keys() {
            prop_assert!(doc["properties"].get(name).is_some(), "mirror {name} missing from {doc}");
        }
        let cache = wharf_jq::ProgramCache::default();
        let calculations = wharf_core::calculation::Calculations::of(&def, &cache);
        wharf_jq::with_budget(wharf_core::calculation::ANSWER_LIMITS, || calculations.add_to(&mut doc));
        for (name, written) in &def.calculation_properties {
            let kind: wharf_core::blueprint::PropertyType = serde_json::from_value(written["type"].clone()).expect("an accepted type");
            let value = &doc["properties"][name];
            prop_assert!(value.is_null() || kind.admits(value), "{name}: {value} is not a {}", kind.name());
        }
    }

    /// Any accepted body maps without a panic, and the mapper's path (the stored request's
    /// text parsed straight into the projection) maps it exactly as the `Value` path does.
    #[test]
    fn any_accepted_body_maps_alike_from_text_and_from_a_value(body in prop_oneof![json_value(), deep_value()]) {
        let text = body.to_string();
        if check_body(BodyKind::Json, text.as_bytes()).is_err() {
            return Ok(()); // refused at ingest: never stored, never mapped
        }
        // A request reaches a mapping as text, parsed once on either path (serde_json's float
        // parsing, without `float_roundtrip`, may land one ulp off the value that was printed,
        // so both paths must start from the same text).
        let request = jq_input(body, Map::new(), Map::new()).to_string();
        let webhook = hostile_webhook();
        let from_value = map_webhook_event(&webhook.mappings, &serde_json::from_str(&request).expect("a stored request parses"));
        let input = wharf_core::ingest::event_input(&webhook.input_demand, Some(&request))
            .map_err(|e| TestCaseError::fail(format!("a stored request did not parse: {e}")))?;
        let from_text = map_input(&webhook.mappings, &input);
        prop_assert_eq!(from_value, from_text);
    }
}
