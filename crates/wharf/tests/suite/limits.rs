//! SPEC §12's limits, enforced when a resource is saved (issue 22, point 4; crash 3): each
//! refusal is a 4xx naming the field, and documents too deep for the JSON reader are a 400,
//! never an abort. Both stores.

use crate::common;

use common::{TestServer, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf::config::Settings;

/// Few webhooks and subscriptions per organization, so that the caps are reached in a test.
fn three_webhooks(settings: &mut Settings) {
    settings.ingest.webhooks_per_org = 3;
    settings.delivery.subscriptions_per_org = 3;
}

fn nested_text(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

async fn service_blueprint(server: &TestServer) {
    server
        .blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {"lang": {"type": "string"}}}}))
        .await;
}

fn mapping() -> Value {
    json!({"blueprint": "service", "entity": {"identifier": ".body.name", "properties": {"lang": ".body.lang"}}})
}

async fn webhook_documents_are_bounded(server: TestServer) {
    service_blueprint(&server).await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    // 3,000 identical mappings are refused before any is compiled, on every route that takes them.
    let many = |n: usize| Value::Array(vec![mapping(); n]);
    let doc = |mappings: Value| json!({"identifier": "gh", "title": "GitHub", "mappings": mappings});
    assert_error(&server.post("/v1/webhooks", doc(many(3_000))).await, unprocessable, "at most 50");
    assert_error(&server.post("/v1/webhooks", doc(many(51))).await, unprocessable, "`mappings` has 51 mappings");
    server.webhook(doc(many(50))).await;
    assert_error(&server.put("/v1/webhooks/gh", doc(many(3_000))).await, unprocessable, "at most 50");
    assert_error(&server.patch("/v1/webhooks/gh", json!({"mappings": many(3_000)})).await, unprocessable, "at most 50");
    let test = json!({"body": {"name": "api"}, "mappings": many(3_000)});
    assert_error(&server.post("/v1/webhooks/gh/test", test).await, unprocessable, "at most 50");

    // One expression of more than 64 KiB, wherever it stands.
    let long = format!(".body.name // \"{}\"", "x".repeat(64 * 1024));
    let mut one = mapping();
    one["entity"]["properties"]["lang"] = json!(long);
    assert_error(
        &server.patch("/v1/webhooks/gh", json!({"mappings": [one]})).await,
        unprocessable,
        &format!("`mappings[0].entity.properties.lang` is {} bytes long; a jq expression may have at most 65536", long.len()),
    );
    let mut query = mapping();
    query["entity"]["identifier"] =
        json!({"combinator": "'and'", "rules": [{"property": "'$title'", "operator": "'='", "value": long}]});
    assert_error(
        &server.patch("/v1/webhooks/gh", json!({"mappings": [query]})).await,
        unprocessable,
        &format!("`mappings[0].entity.identifier.rules[0].value` is {} bytes", long.len()),
    );
    assert_error(
        &server.patch("/v1/webhooks/gh", json!({"security": {"requestIdentifierPath": long}})).await,
        unprocessable,
        "`security.requestIdentifierPath`",
    );

    // Identifiers are route segments; icons are names; shapes are objects.
    for (identifier, part) in [("a/b", "use A-Z a-z 0-9 @ _ = -"), ("../x", "`identifier` is `../x`"), ("a.b", "a.b")] {
        assert_error(&server.post("/v1/webhooks", json!({"identifier": identifier, "title": "T"})).await, unprocessable, part);
    }
    assert_error(
        &server.post("/v1/webhooks", json!({"identifier": "x".repeat(31), "title": "T"})).await,
        unprocessable,
        "1 to 30 characters",
    );
    assert_error(&server.post("/v1/webhooks", json!({"title": "T", "icon": "i".repeat(101)})).await, unprocessable, "`icon`");
    for (doc, part) in [
        (json!({"title": "T", "security": []}), "`security` must be an object, not array"),
        (
            json!({"title": "T", "integrationType": {"custom": null}}),
            "`integrationType` must be \"custom\" or \"template\", not object",
        ),
        (json!({"title": "T", "mappings": [["service"]]}), "`mappings[0]` must be an object"),
        (
            json!({"title": "T", "mappings": [{"blueprint": "service", "entity": [".body.name"]}]}),
            "`mappings[0].entity` must be an object",
        ),
    ] {
        assert_error(&server.post("/v1/webhooks", doc).await, unprocessable, part);
    }
    // Stored documents nest at most 100 levels (their answers and changes wrap them further);
    // one nested deeper than the JSON reader takes is a 400 before it is looked at.
    let mut deep_operation = mapping();
    deep_operation["operation"] = serde_json::from_str(&nested_text(110)).unwrap();
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "T", "mappings": [deep_operation]})).await,
        unprocessable,
        "the webhook nests 113 levels of arrays or objects; at most 100",
    );
    let deep = format!(r#"{{"title": "T", "mappings": {}}}"#, nested_text(200));
    assert_error(&server.post_text("/v1/webhooks", &deep).await, StatusCode::BAD_REQUEST, "recursion limit");
    let (status, list) = server.get("/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["integrations"].as_array().map(Vec::len), Some(1), "{list}");
}

async fn webhooks_per_organization_are_capped(server: TestServer) {
    for i in 0..3 {
        server.webhook(json!({"identifier": format!("w{i}"), "title": "W"})).await;
    }
    let refused = server.post("/v1/webhooks", json!({"identifier": "w3", "title": "W"})).await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "has 3 ingestion webhooks, the most it may have (3)");
    assert_eq!(refused.1["error"], "too_many_webhooks");
    assert_eq!(server.delete("/v1/webhooks/w0").await.0, StatusCode::OK);
    server.webhook(json!({"identifier": "w3", "title": "W"})).await;
}

/// The cap counts an organization's subscriptions over all its projects, and deleting one
/// makes room again.
async fn subscriptions_per_organization_are_capped(server: TestServer) {
    let org = server.get("/v1/organization").await.1["organization"]["id"].as_str().unwrap().to_owned();
    let mut projects = Vec::new();
    for slug in ["shop", "billing"] {
        let (status, project) = server.post(&format!("/organizations/{org}/projects"), json!({"name": slug, "slug": slug})).await;
        assert_eq!(status, StatusCode::CREATED, "{project}");
        projects.push(format!("/organizations/{org}/projects/{}/settings/webhooks", project["_id"].as_str().unwrap()));
    }
    let doc = |i: usize| json!({"name": format!("hook {i}"), "url": "https://example.com/hook", "events": ["*"]});
    let mut made = Vec::new();
    for i in 0..3 {
        let (status, body) = server.post(&projects[i % 2], doc(i)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        made.push(format!("{}/{}", projects[i % 2], body["_id"].as_str().unwrap()));
    }
    let refused = server.post(&projects[1], doc(3)).await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "has 3 project webhooks, the most it may have (3)");
    assert_eq!(refused.1["error"], "too_many_webhooks");
    // Another organization has room of its own.
    let (other_org, other) = server.other_organization("Other Corp").await;
    let (status, project) = server
        .call_as(
            Some(&other),
            reqwest::Method::POST,
            &format!("/organizations/{other_org}/projects"),
            Some(json!({"name": "Other shop", "slug": "other-shop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let path = format!("/organizations/{other_org}/projects/{}/settings/webhooks", project["_id"].as_str().unwrap());
    assert_eq!(server.call_as(Some(&other), reqwest::Method::POST, &path, Some(doc(0))).await.0, StatusCode::CREATED);

    assert_eq!(server.delete(&made[0]).await.0, StatusCode::NO_CONTENT);
    assert_eq!(server.post(&projects[1], doc(3)).await.0, StatusCode::CREATED);
}

async fn blueprint_documents_are_bounded(server: TestServer) {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let doc = |identifier: &str| json!({"identifier": identifier, "title": "T", "schema": {"properties": {}}});
    for bad in ["a/b", "../x", "a.b", "a:b"] {
        assert_error(&server.post("/v1/blueprints", doc(bad)).await, unprocessable, "use A-Z a-z 0-9 @ _ = -");
    }
    assert_error(&server.post("/v1/blueprints", doc(&"b".repeat(101))).await, unprocessable, "1 to 100 characters");
    server.blueprint(doc("svc_2=@x-y")).await;
    for (changes, part) in [
        (json!({"schema": []}), "`schema` must be an object, not array"),
        (json!({"schema": {"properties": []}}), "`schema.properties` must be an object"),
        (json!({"schema": {"properties": {"p": ["string"]}}}), "`schema.properties.p` must be an object"),
        (json!({"icon": "i".repeat(101)}), "`icon` must be 0 to 100"),
        (json!({"description": "d".repeat(201)}), "`description` must be 0 to 200"),
        (
            json!({"schema": {"properties": {"p": {"type": "string", "description": "d".repeat(2_001)}}}}),
            "schema.properties.p.description",
        ),
        (json!({"relations": {"r": ["svc"]}}), "`relations.r` must be an object"),
    ] {
        let mut full = doc("other");
        for (key, value) in changes.as_object().unwrap() {
            full[key] = value.clone();
        }
        assert_error(&server.post("/v1/blueprints", full).await, unprocessable, part);
    }
    assert_error(
        &server.patch("/v1/blueprints/svc_2=@x-y", json!({"schema": []})).await,
        unprocessable,
        "`schema` must be an object",
    );
    let ownership = |levels: usize| {
        format!(
            r#"{{"identifier": "deep", "title": "T", "schema": {{"properties": {{}}}}, "ownership": {}}}"#,
            nested_text(levels)
        )
    };
    assert_error(
        &server.post_text("/v1/blueprints", &ownership(110)).await,
        unprocessable,
        "the blueprint nests 111 levels of arrays or objects; at most 100",
    );
    let deep = ownership(200);
    assert_error(&server.post_text("/v1/blueprints", &deep).await, StatusCode::BAD_REQUEST, "recursion limit");
    let (status, list) = server.get("/v1/blueprints").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["blueprints"].as_array().map(Vec::len), Some(1), "{list}");
}

async fn entity_documents_are_bounded(server: TestServer) {
    service_blueprint(&server).await;
    // Port's entity pattern allows `/` and `.`.
    for identifier in ["org/repo", "../x", "a.b:c+d=e@f"] {
        server.upsert("service", json!({"identifier": identifier})).await;
    }
    assert_error(
        &server.post("/v1/blueprints/service/entities", json!({"identifier": "api", "icon": "i".repeat(101)})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`icon`",
    );
    let deep = format!(r#"{{"identifier": "deep", "properties": {{"lang": {}}}}}"#, nested_text(200));
    assert_error(&server.post_text("/v1/blueprints/service/entities", &deep).await, StatusCode::BAD_REQUEST, "recursion limit");
}

async fn search_queries_are_bounded(server: TestServer) {
    service_blueprint(&server).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"lang": "rust"}})).await;
    let rule = json!({"property": "lang", "operator": "=", "value": "rust"});
    let groups = |levels: usize| (0..levels).fold(rule.clone(), |inner, _| json!({"combinator": "and", "rules": [inner]}));

    // Crash 3: a query nested ~1,500 deep is refused by the JSON reader (400); the server answers on.
    let text = (0..1_500).fold(rule.to_string(), |inner, _| format!(r#"{{"combinator":"and","rules":[{inner}]}}"#));
    assert_error(&server.post_text("/v1/entities/search", &text).await, StatusCode::BAD_REQUEST, "recursion limit");
    assert_error(
        &server.post("/v1/entities/search", groups(40)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nests more than 32 groups of rules",
    );
    let (status, found) = server.post("/v1/entities/search", groups(32)).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["entities"][0]["identifier"], "api");

    // Through a mapping, a search-query identifier whose rules come from the event: the item
    // fails with the reason, and the next event maps.
    server
        .webhook(json!({"identifier": "find", "title": "Find", "mappings": [{
            "blueprint": "service",
            "entity": {"identifier": {"combinator": "'and'", "rules": ".body.rules"}, "properties": {"lang": ".body.lang"}}
        }]}))
        .await;
    let (_, hook) = server.get("/v1/webhooks/find").await;
    let key = hook["integration"]["webhookKey"].as_str().unwrap().to_owned();
    let deep = json!({"rules": [groups(40)], "lang": "go"});
    let event = server.ingest(&key, &deep, &[]).await;
    let event = server.mapped_event("find", &event).await;
    assert_eq!(event["status"], "FAILURE", "{event}");
    assert!(event["result"]["errors"][0]["message"].as_str().unwrap().contains("nests more than 32 groups"), "{event}");
    let event = server.ingest(&key, &json!({"rules": [rule], "lang": "go"}), &[]).await;
    assert_eq!(server.mapped_event("find", &event).await["status"], "SUCCESS");
    assert_eq!(server.get("/v1/blueprints/service/entities/api").await.1["entity"]["properties"]["lang"], "go");
}

async fn bodies_too_deep_to_read_back_are_refused_at_ingest(server: TestServer) {
    service_blueprint(&server).await;
    // With and without a request identifier (which parses the body at ingest).
    for (identifier, security) in
        [("plain", json!({})), ("dedupe", json!({"requestIdentifierPath": ".body | tostring | .[0:8]"}))]
    {
        let hook =
            server.webhook(json!({"identifier": identifier, "title": "T", "security": security, "mappings": [mapping()]})).await;
        let key = hook["webhookKey"].as_str().unwrap();
        let send = |levels: usize| server.ingest_raw(key, "", &[("content-type", "application/json")], nested_text(levels));
        // The body is stored inside `{"body": …}`: 126 levels are the most that read back.
        let (status, accepted) = send(126).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let event = server.mapped_event(identifier, accepted["eventId"].as_str().unwrap()).await;
        assert_ne!(event["status"], "PENDING", "{event}");
        assert_error(&send(127).await, StatusCode::BAD_REQUEST, "the body nests more than 126 arrays or objects");
        // 100,000 levels (200 KB) used to be stored, then fail every read of the event.
        let refused = send(100_000).await;
        assert_error(&refused, StatusCode::BAD_REQUEST, "the body");
        assert_eq!(refused.1["error"], "invalid_json");
        let (status, events) = server.get(&format!("/v1/webhooks/{identifier}/events")).await;
        assert_eq!(status, StatusCode::OK, "{events}");
        assert_eq!(events["events"].as_array().map(Vec::len), Some(1), "{events}");
    }
}

async fn blueprints_named_under_the_old_pattern_stay_usable(server: TestServer) {
    // A blueprint an earlier Wharf accepted under Port's wider pattern, written through the
    // store as it was then.
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let store = wharf::server::open_store(&server.settings).await.unwrap();
    let def: wharf_core::blueprint::BlueprintDef =
        serde_json::from_value(json!({"identifier": "legacy.bp", "title": "Legacy", "schema": {"properties": {}}})).unwrap();
    let audited = wharf_core::blueprint::Audited::new("old-wharf", wharf_core::time::Timestamp::from_millis(0));
    let mut tx = store.begin().await.unwrap();
    tx.put_blueprint(&org, &wharf_core::blueprint::Blueprint { def, audited }).await.unwrap();
    tx.commit().await.unwrap();
    store.close().await;

    let (status, patched) = server.patch("/v1/blueprints/legacy.bp", json!({"title": "Still here"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    server
        .blueprint(json!({"identifier": "svc", "title": "S", "schema": {"properties": {}}, "relations": {"up": {"target": "legacy.bp"}}}))
        .await;
    let hook = json!({"identifier": "old", "title": "T", "mappings": [{"blueprint": "legacy.bp", "entity": {"identifier": ".body.id"}}]});
    server.webhook(hook).await;
    // New ones follow SPEC §12's pattern; a reference to a blueprint that does not exist is refused.
    let refused =
        server.post("/v1/blueprints", json!({"identifier": "new.bp", "title": "N", "schema": {"properties": {}}})).await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "use A-Z a-z 0-9 @ _ = -");
    let dangling =
        json!({"identifier": "s2", "title": "S", "schema": {"properties": {}}, "relations": {"up": {"target": "a/b"}}});
    assert_error(&server.post("/v1/blueprints", dangling).await, StatusCode::UNPROCESSABLE_ENTITY, "not an existing blueprint");
}

both_stores!(
    configure = three_webhooks;
    webhook_documents_are_bounded,
    webhooks_per_organization_are_capped,
    subscriptions_per_organization_are_capped,
    blueprint_documents_are_bounded,
    entity_documents_are_bounded,
    search_queries_are_bounded,
    bodies_too_deep_to_read_back_are_refused_at_ingest,
    blueprints_named_under_the_old_pattern_stay_usable,
);
