//! The catalog through the HTTP API: blueprints, entities, relations, bulk, search and the
//! audit log, on both stores.

use crate::common;

use common::{TestServer, assert_error, identifiers};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_stores!(
    blueprint_lifecycle,
    blueprint_updates_keep_entities_valid,
    entity_write_modes,
    entity_validation,
    relations_and_missing_related,
    delete_dependents,
    bulk_writes,
    search_queries,
    search_pages_and_projections,
    searches_that_name_their_candidates,
    calculation_properties,
    mirror_properties,
    relation_titles,
    list_pagination,
    audit_log_records_every_change,
    concurrent_writes_share_commits,
);

fn team_bp() -> Value {
    json!({"identifier": "team", "title": "Team", "schema": {"properties": {"slack": {"type": "string"}}}})
}

fn service_bp() -> Value {
    json!({
        "identifier": "service", "title": "Service", "icon": "Service",
        "schema": {
            "properties": {
                "language": {"type": "string", "enum": ["rust", "go", "python"]},
                "stars": {"type": "number"},
                "public": {"type": "boolean"},
                "url": {"type": "string", "format": "url"},
                "deployedAt": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "tier": {"type": "string", "default": "silver"}
            },
            "required": ["language"]
        },
        "relations": {
            "owner": {"title": "Owner", "target": "team", "required": false, "many": false},
            "dependsOn": {"target": "service", "many": true}
        }
    })
}

async fn catalog(server: &TestServer) {
    server.blueprint(team_bp()).await;
    server.blueprint(service_bp()).await;
}

async fn blueprint_lifecycle(server: TestServer) {
    catalog(&server).await;
    let (status, body) = server.get("/v1/blueprints/service").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["blueprint"]["identifier"], "service");
    assert_eq!(body["blueprint"]["schema"]["properties"]["tier"]["default"], "silver");
    assert_eq!(body["blueprint"]["createdBy"], common::CLIENT_ID);
    let keys: Vec<&String> = body["blueprint"]["schema"]["properties"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["language", "stars", "public", "url", "deployedAt", "tags", "tier"], "key order is kept");

    assert_error(&server.post("/v1/blueprints", service_bp()).await, StatusCode::CONFLICT, "already exists");
    let (_, list) = server.get("/v1/blueprints").await;
    assert_eq!(list["blueprints"].as_array().unwrap().len(), 2);

    let mut bad = service_bp();
    bad["identifier"] = json!("svc2");
    bad["relations"]["owner"]["target"] = json!("nobody");
    assert_error(&server.post("/v1/blueprints", bad).await, StatusCode::UNPROCESSABLE_ENTITY, "relations.owner.target");
    assert_error(
        &server.post("/v1/blueprints", json!({"identifier": "x", "title": "X", "schema": {}, "extra": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "extra",
    );
    assert_error(
        &server
            .post("/v1/blueprints", json!({"identifier": "x", "title": "X", "schema": {"properties": {"p": {"type": "strin"}}}}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema.properties.p.type",
    );
    assert_error(&server.get("/v1/blueprints/nope").await, StatusCode::NOT_FOUND, "nope");

    let (status, body) = server
        .patch("/v1/blueprints/service", json!({"title": "Services", "schema": {"properties": {"owners": {"type": "number"}}}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["blueprint"]["title"], "Services");
    assert!(body["blueprint"]["schema"]["properties"]["language"].is_object(), "patch merges properties");
    let mut changed = service_bp();
    changed["schema"]["properties"]["stars"] = json!({"type": "string"});
    assert_error(
        &server.put("/v1/blueprints/service", changed).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cannot be changed from number to string",
    );

    server.upsert("team", json!({"identifier": "core"})).await;
    assert_error(&server.delete("/v1/blueprints/team").await, StatusCode::CONFLICT, "relation `owner` of blueprint `service`");
    let (status, body) = server.delete("/v1/blueprints/service").await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"ok": true})));
    assert_error(&server.delete("/v1/blueprints/team").await, StatusCode::CONFLICT, "has 1 entities");
    let (status, _) = server.delete("/v1/blueprints/team?delete_entities=true").await;
    assert_eq!(status, StatusCode::OK);
}

async fn blueprint_updates_keep_entities_valid(server: TestServer) {
    catalog(&server).await;
    server
        .upsert(
            "service",
            json!({"identifier": "api", "properties": {"language": "rust", "stars": 3}, "relations": {"dependsOn": []}}),
        )
        .await;
    let (status, body) = server.patch("/v1/blueprints/service", json!({"schema": {"properties": {"stars": null}}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, entity) = server.get("/v1/blueprints/service/entities/api").await;
    assert!(entity["entity"]["properties"].get("stars").is_none(), "a removed property leaves the entities: {entity}");
    server.upsert("service", json!({"identifier": "api", "title": "API"})).await;

    assert_error(&server.delete("/v1/blueprints/service").await, StatusCode::CONFLICT, "has 1 entities");
    let (status, _) = server.delete("/v1/blueprints/service?delete_entities=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&server.get("/v1/blueprints/service").await, StatusCode::NOT_FOUND, "service");
    let (_, audits) = server.get("/v1/audit-log?entity=api&action=DELETE").await;
    assert_eq!(audits["audits"].as_array().unwrap().len(), 1, "the entity's deletion is recorded: {audits}");
}

async fn entity_write_modes(server: TestServer) {
    catalog(&server).await;
    let base = "/v1/blueprints/service/entities";
    let (status, body) = server
        .post(base, json!({"identifier": "api", "title": "API", "team": "core", "properties": {"language": "rust", "stars": 3}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let entity = &body["entity"];
    assert_eq!(entity["properties"]["tier"], "silver", "defaults apply on create");
    assert_eq!(entity["team"], json!(["core"]));
    assert_eq!(entity["blueprint"], "service");
    assert!(entity["createdAt"].as_str().unwrap().ends_with('Z'));

    assert_error(
        &server.post(base, json!({"identifier": "api", "properties": {"language": "go"}})).await,
        StatusCode::CONFLICT,
        "already exists",
    );

    // Upsert with merge: only what is sent changes.
    let merged = server.upsert("service", json!({"identifier": "api", "properties": {"stars": 4}})).await;
    assert_eq!(merged["properties"]["language"], "rust");
    assert_eq!(merged["properties"]["stars"], 4);
    assert_eq!(merged["title"], "API");

    // Upsert without merge: the entity becomes what is sent.
    let (status, body) =
        server.post(&format!("{base}?upsert=true"), json!({"identifier": "api", "properties": {"language": "go"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["entity"]["properties"], json!({"language": "go", "tier": "silver"}));
    assert_eq!(body["entity"]["title"], Value::Null);
    assert_eq!(body["entity"]["createdAt"], entity["createdAt"], "creation time is kept");

    // PATCH merges; PUT replaces; both need the entity to exist.
    let (status, body) = server.patch(&format!("{base}/api"), json!({"title": "The API", "properties": {"stars": 10}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entity"]["properties"]["language"], "go");
    assert_eq!(body["entity"]["properties"]["stars"], 10);
    let (status, body) = server.put(&format!("{base}/api"), json!({"properties": {"language": "python"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entity"]["title"], Value::Null);
    assert!(body["entity"]["properties"].get("stars").is_none());
    assert_error(&server.patch(&format!("{base}/nope"), json!({"title": "x"})).await, StatusCode::NOT_FOUND, "nope");
    assert_error(
        &server.put(&format!("{base}/api"), json!({"identifier": "other"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cannot be changed",
    );

    // validation_only writes nothing.
    let (status, body) = server
        .post(&format!("{base}?validation_only=true"), json!({"identifier": "ghost", "properties": {"language": "go"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(&server.get(&format!("{base}/ghost")).await, StatusCode::NOT_FOUND, "ghost");

    // An entity without an identifier gets one.
    let (status, body) = server.post(base, json!({"properties": {"language": "go"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["entity"]["identifier"].as_str().unwrap().starts_with("e_"));

    // Identifiers with slashes travel percent-encoded.
    server.upsert("service", json!({"identifier": "org/repo", "properties": {"language": "go"}})).await;
    let (status, body) = server.get(&format!("{base}/org%2Frepo")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _) = server.delete(&format!("{base}/api")).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&server.get(&format!("{base}/api")).await, StatusCode::NOT_FOUND, "api");
    assert_error(&server.delete(&format!("{base}/api")).await, StatusCode::NOT_FOUND, "api");
    assert_error(
        &server.post("/v1/blueprints/nope/entities", json!({"identifier": "x"})).await,
        StatusCode::NOT_FOUND,
        "blueprint `nope`",
    );
}

async fn entity_validation(server: TestServer) {
    catalog(&server).await;
    let base = "/v1/blueprints/service/entities";
    let cases = [
        (json!({"identifier": "a", "properties": {}}), "required property `language`"),
        (json!({"identifier": "a", "properties": {"language": "cobol"}}), "must be one of"),
        (json!({"identifier": "a", "properties": {"language": "go", "stars": "many"}}), "`stars` must be of type number"),
        (json!({"identifier": "a", "properties": {"language": "go", "url": "not a url"}}), "valid url"),
        (json!({"identifier": "a", "properties": {"language": "go", "deployedAt": "yesterday"}}), "valid date-time"),
        (json!({"identifier": "a", "properties": {"language": "go", "tags": ["a", 1]}}), "tags[1]"),
        (json!({"identifier": "a", "properties": {"language": "go", "colour": "red"}}), "`colour` is not defined"),
        (
            json!({"identifier": "a", "properties": {"language": "go"}, "relations": {"nope": "x"}}),
            "relation `nope` is not defined",
        ),
        (
            json!({"identifier": "a", "properties": {"language": "go"}, "relations": {"owner": ["x"]}}),
            "relation `owner` is single",
        ),
        (
            json!({"identifier": "a", "properties": {"language": "go"}, "relations": {"dependsOn": "x"}}),
            "relation `dependsOn` is many",
        ),
        (json!({"identifier": "..", "properties": {"language": "go"}}), "identifier"),
        (json!({"identifier": "a", "colour": "red"}), "unknown key `colour`"),
        (json!(["not", "an", "object"]), "must be a JSON object"),
    ];
    for (doc, part) in cases {
        assert_error(&server.post(base, doc.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, part);
    }
    let (status, body) = server.post(base, json!({"identifier": "a", "properties": {"language": "go", "public": true, "deployedAt": "2024-06-01T10:00:00Z", "url": "https://x.io"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn relations_and_missing_related(server: TestServer) {
    catalog(&server).await;
    let base = "/v1/blueprints/service/entities";
    let doc = json!({"identifier": "api", "properties": {"language": "go"}, "relations": {"owner": "core", "dependsOn": ["db", "api"]}});
    assert_error(&server.post(base, doc.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, "`core` of blueprint `team`");
    let (status, body) = server.post(&format!("{base}?create_missing_related_entities=true"), doc.clone()).await;
    // `db` is a service, and services require `language`: creating it empty must fail, naming why.
    assert_error(&(status, body), StatusCode::UNPROCESSABLE_ENTITY, "required property `language`");
    server.upsert("service", json!({"identifier": "db", "properties": {"language": "rust"}})).await;
    let (status, body) = server.post(&format!("{base}?create_missing_related_entities=true"), doc).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["entity"]["relations"], json!({"owner": "core", "dependsOn": ["db", "api"]}));
    let (status, team) = server.get("/v1/blueprints/team/entities/core").await;
    assert_eq!(status, StatusCode::OK, "the missing team was created: {team}");
}

async fn delete_dependents(server: TestServer) {
    server.blueprint(team_bp()).await;
    server
        .blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}},
            "relations": {"owner": {"target": "team", "required": true}, "backup": {"target": "team"}}}))
        .await;
    server.upsert("team", json!({"identifier": "core"})).await;
    server.upsert("team", json!({"identifier": "infra"})).await;
    server.upsert("service", json!({"identifier": "api", "relations": {"owner": "core", "backup": "infra"}})).await;
    server.upsert("service", json!({"identifier": "web", "relations": {"owner": "infra", "backup": "core"}})).await;

    assert_error(&server.delete("/v1/blueprints/team/entities/core").await, StatusCode::CONFLICT, "required relation `owner`");
    let (status, body) = server.delete("/v1/blueprints/team/entities/core?delete_dependents=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(&server.get("/v1/blueprints/service/entities/api").await, StatusCode::NOT_FOUND, "api");
    assert_error(&server.get("/v1/blueprints/service/entities/web").await, StatusCode::NOT_FOUND, "web");
    // `infra` was only referenced optionally by `api` (now gone): it stays.
    let (status, _) = server.get("/v1/blueprints/team/entities/infra").await;
    assert_eq!(status, StatusCode::OK);

    // An optional reference is unlinked (and recorded) when its target goes.
    server.upsert("team", json!({"identifier": "core"})).await;
    server.upsert("service", json!({"identifier": "svc", "relations": {"owner": "core", "backup": "infra"}})).await;
    let (status, _) = server.delete("/v1/blueprints/team/entities/infra").await;
    assert_eq!(status, StatusCode::OK);
    let (_, svc) = server.get("/v1/blueprints/service/entities/svc").await;
    assert_eq!(svc["entity"]["relations"]["backup"], Value::Null, "{svc}");
    let (_, audits) = server.get("/v1/audit-log?entity=svc&action=UPDATE").await;
    assert_eq!(audits["audits"].as_array().unwrap().len(), 1, "{audits}");
}

async fn bulk_writes(server: TestServer) {
    catalog(&server).await;
    let url = "/v1/blueprints/service/entities/bulk?upsert=true&merge=true";
    let entities: Vec<Value> = (0..3).map(|i| json!({"identifier": format!("s{i}"), "properties": {"language": "go"}})).collect();
    let (status, body) = server.post(url, json!({"entities": entities})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entities"].as_array().unwrap().len(), 3);
    assert_eq!(body["entities"][0], json!({"identifier": "s0", "index": 0, "created": true}));

    let mixed = json!({"entities": [{"identifier": "s0", "properties": {"stars": 1}}, {"identifier": "bad", "properties": {"stars": "x"}}]});
    let (status, body) = server.post(url, mixed).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["entities"][0], json!({"identifier": "s0", "index": 0, "created": false}));
    assert_eq!(body["errors"][0]["index"], 1);
    assert_eq!(body["errors"][0]["statusCode"], 422);
    assert_error(&server.get("/v1/blueprints/service/entities/bad").await, StatusCode::NOT_FOUND, "bad");

    let too_many: Vec<Value> = (0..21).map(|i| json!({"identifier": format!("t{i}")})).collect();
    assert_error(&server.post(url, json!({"entities": too_many})).await, StatusCode::UNPROCESSABLE_ENTITY, "1 to 20");
    assert_error(&server.post(url, json!({"nope": []})).await, StatusCode::UNPROCESSABLE_ENTITY, "entities");
}

async fn search_queries(server: TestServer) {
    catalog(&server).await;
    server.upsert("team", json!({"identifier": "core"})).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"language": "rust", "stars": 50, "deployedAt": "2024-06-01T00:00:00Z"}, "relations": {"owner": "core"}})).await;
    server
        .upsert(
            "service",
            json!({"identifier": "web", "properties": {"language": "go", "stars": 5}, "relations": {"dependsOn": ["api"]}}),
        )
        .await;
    server.upsert("service", json!({"identifier": "cli", "properties": {"language": "python", "stars": 500}})).await;

    let server = &server;
    let search = |query: Value| async move { server.post("/v1/entities/search", query).await };
    let (status, body) = search(json!({"combinator": "and", "rules": [
        {"property": "$blueprint", "operator": "=", "value": "service"},
        {"property": "stars", "operator": ">", "value": 10}
    ]}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(identifiers(&body), ["api", "cli"]);

    let (_, body) = search(json!({"combinator": "or", "rules": [
        {"property": "language", "operator": "=", "value": "go"},
        {"combinator": "and", "rules": [
            {"property": "language", "operator": "in", "value": ["python", "rust"]},
            {"property": "stars", "operator": "<", "value": 100}
        ]}
    ]}))
    .await;
    assert_eq!(identifiers(&body), ["api", "web"]);

    let (_, body) = search(json!({"combinator": "and", "rules": [{"property": "deployedAt", "operator": "between", "value": {"from": "2024-05-01T00:00:00Z", "to": "2024-07-01T00:00:00Z"}}]})).await;
    assert_eq!(identifiers(&body), ["api"]);

    // relatedTo follows relations through other entities: web → api → core.
    let (_, body) = search(json!({"combinator": "and", "rules": [{"operator": "relatedTo", "blueprint": "team", "value": "core", "direction": "downstream"}]})).await;
    assert_eq!(identifiers(&body), ["api", "web"]);
    let (_, body) = search(json!({"combinator": "and", "rules": [{"operator": "relatedTo", "blueprint": "service", "value": "web", "direction": "upstream"}]})).await;
    assert_eq!(identifiers(&body), ["api", "core"]);

    let (_, body) = server.post("/v1/blueprints/team/entities/search", json!({"combinator": "and", "rules": []})).await;
    assert_eq!(identifiers(&body), ["core"]);
    let (_, body) = server.post("/v1/blueprints/service/entities/search", json!({"query": {"combinator": "and", "rules": [{"property": "$identifier", "operator": "beginsWith", "value": "c"}]}})).await;
    assert_eq!(identifiers(&body), ["cli"]);

    assert_error(
        &search(json!({"combinator": "and", "rules": [{"property": "x", "operator": "~~", "value": 1}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rules[0].operator",
    );
    assert_error(&server.post("/v1/blueprints/nope/entities/search", json!({})).await, StatusCode::NOT_FOUND, "nope");
}

/// Every page of a search, following `next`: the identifiers of each page.
async fn search_pages(server: &TestServer, path: &str, mut body: Value) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let (status, page) = server.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages.push(identifiers(&page));
        match page.get("next") {
            Some(next) => body["from"] = next.clone(),
            None => return pages,
        }
        assert!(pages.len() < 100, "a search that never ends: {} pages, the last {:?}", pages.len(), pages.last());
    }
}

/// Port's paging of a search (`limit`, `from` = the `next` of the page before) and its
/// `include`/`exclude`. 620 entities: more than one of the pages of candidates the engine
/// reads (500), so matches are found on both sides of that boundary.
async fn search_pages_and_projections(server: TestServer) {
    server.blueprint(team_bp()).await;
    server
        .blueprint(json!({"identifier": "item", "title": "Item", "schema": {"properties": {"n": {"type": "number"}}},
                          "relations": {"team": {"target": "team", "many": false}}}))
        .await;
    server.upsert("team", json!({"identifier": "core"})).await;
    let name = |i: usize| format!("i{i:05}");
    let docs: Vec<Value> =
        (0..620).map(|i| json!({"identifier": name(i), "properties": {"n": i}, "relations": {"team": "core"}})).collect();
    server.bulk("/v1/blueprints/item/entities/bulk", &docs).await;
    let items = "/v1/blueprints/item/entities/search";

    // Dense matches: full pages, and the last one without `next`.
    let at_least_100 = json!({"combinator": "and", "rules": [{"property": "n", "operator": ">=", "value": 100}]});
    let pages = search_pages(&server, items, json!({"query": at_least_100, "limit": 200})).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [200, 200, 120]);
    assert_eq!(pages.concat(), (100..620).map(name).collect::<Vec<_>>());
    // Without `limit`, every match at once, as before.
    assert_eq!(search_pages(&server, items, json!({"query": at_least_100})).await, [(100..620).map(name).collect::<Vec<_>>()]);

    // Sparse matches on both sides of the engine's page of candidates; a page that holds the
    // last match exactly has no `next`.
    let few = |ids: &[usize]| json!({"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": ids.iter().map(|&i| name(i)).collect::<Vec<_>>()}]});
    let pages = search_pages(&server, items, json!({"query": few(&[3, 498, 499, 501, 610]), "limit": 2})).await;
    assert_eq!(pages, [vec![name(3), name(498)], vec![name(499), name(501)], vec![name(610)]]);
    assert_eq!(search_pages(&server, items, json!({"query": few(&[7, 9]), "limit": 2})).await, [[name(7), name(9)]]);

    // The search of every blueprint pages across blueprints, in blueprint then identifier order.
    let two = json!({"combinator": "or", "rules": [
        {"property": "$identifier", "operator": "=", "value": "core"},
        {"property": "$identifier", "operator": "=", "value": name(1)}
    ]});
    let pages = search_pages(&server, "/v1/entities/search", json!({"query": two, "limit": 1})).await;
    assert_eq!(pages, [vec![name(1)], vec!["core".to_owned()]]);

    // `include` and `exclude`: in the body of either search, and in the query string of the
    // search of every blueprint and of a blueprint's list, as Port takes them.
    let (_, body) =
        server.post(items, json!({"query": few(&[5]), "include": ["identifier", "properties.n", "$blueprint"]})).await;
    assert_eq!(body["entities"], json!([{"identifier": name(5), "properties": {"n": 5}, "blueprint": "item"}]));
    let (_, body) =
        server.post(items, json!({"query": few(&[5]), "exclude": ["properties", "relations.team", "createdAt"]})).await;
    let entity = body["entities"][0].as_object().unwrap();
    assert!(entity.contains_key("updatedAt") && entity["relations"] == json!({}), "{body}");
    assert!(!entity.contains_key("properties") && !entity.contains_key("createdAt"), "{body}");
    let (_, body) = server.post("/v1/entities/search?include=identifier&include[]=relations.team", few(&[6])).await;
    assert_eq!(body["entities"], json!([{"identifier": name(6), "relations": {"team": "core"}}]));
    let (_, body) = server.get("/v1/blueprints/item/entities?limit=2&exclude=properties&exclude=relations&exclude=$createdAt&exclude=$updatedAt&exclude=createdBy&exclude=updatedBy").await;
    assert_eq!(
        body["entities"][1],
        json!({"identifier": name(1), "title": null, "icon": null, "blueprint": "item", "team": []}),
        "{body}"
    );
    assert_eq!(body["next"], name(1));
    let (_, body) =
        server.get(&format!("/v1/blueprints/item/entities/{}?include[]=properties.n&include[]=identifier", name(2))).await;
    assert_eq!(body["entity"], json!({"identifier": name(2), "properties": {"n": 2}}));

    // What cannot be a page or a path is refused, naming it.
    for (body, names) in [
        (json!({"limit": 0}), "`limit` must be a whole number from 1 to 1000"),
        (json!({"limit": 1001}), "`limit`"),
        (json!({"from": "i00001"}), "`from` is not the `next`"),
        (json!({"include": "identifier"}), "`include` must be an array"),
        (json!({"exclude": ["properties..n"]}), "`exclude[0]`"),
    ] {
        assert_error(&server.post(items, body).await, StatusCode::UNPROCESSABLE_ENTITY, names);
    }
    assert_error(
        &server.post("/v1/entities/search?include=a..b", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`include[0]`",
    );
}

/// A search whose query names its candidates (`$identifier` `=`/`in`, a relation `=` an
/// identifier) reads them by key instead of every page of the blueprint: it answers what the
/// same rules answer inside a group, which reads every page. 601 services, past the engine's
/// 500-candidate pages.
async fn searches_that_name_their_candidates(server: TestServer) {
    server.blueprint(team_bp()).await;
    server
        .blueprint(json!({"identifier": "svc", "title": "Service", "schema": {"properties": {"n": {"type": "number"}}},
                          "relations": {"owner": {"target": "team", "many": false}, "deps": {"target": "svc", "many": true}}}))
        .await;
    server
        .blueprint(json!({"identifier": "job", "title": "Job", "schema": {"properties": {}}, "relations": {"owner": {"target": "team", "many": false}}}))
        .await;
    for team in ["core", "web"] {
        server.upsert("team", json!({"identifier": team})).await;
    }
    server.upsert("job", json!({"identifier": "j1", "relations": {"owner": "core"}})).await;
    let docs: Vec<Value> = (0..601)
        .map(|i| {
            let deps = if i % 5 == 0 && i > 0 { json!(["s000", format!("s{:03}", i - 1)]) } else { json!([]) };
            json!({"identifier": format!("s{i:03}"), "properties": {"n": i},
                   "relations": {"owner": if i % 3 == 0 { "core" } else { "web" }, "deps": deps}})
        })
        .collect();
    // In any order: a service may name one that a later write of the same request makes.
    server.bulk("/v1/blueprints/svc/entities/bulk?upsert=true&create_missing_related_entities=true", &docs).await;
    // The same rules in a group: not named at the top level, so every page is read.
    let grouped = |rules: &Value| json!({"combinator": "and", "rules": [{"combinator": "and", "rules": rules}]});
    let all_pages = |path: &'static str, query: Value, limit: Option<u64>| {
        let server = &server;
        async move {
            let body = match limit {
                Some(limit) => json!({"query": query, "limit": limit}),
                None => json!({"query": query}),
            };
            search_pages(server, path, body).await.concat()
        }
    };
    let svc = "/v1/blueprints/svc/entities/search";
    let every = "/v1/entities/search";
    let cases: Vec<(&'static str, Value, usize)> = vec![
        (svc, json!([{"property": "$identifier", "operator": "=", "value": "s003"}]), 1),
        (svc, json!([{"property": "$identifier", "operator": "=", "value": 3}]), 0),
        (
            svc,
            json!([{"property": "$identifier", "operator": "in", "value": ["s599", "nope", "s003", "s001", "s003", 7]}, {"relation": "owner", "operator": "=", "value": "web"}]),
            2,
        ),
        (svc, json!([{"relation": "owner", "operator": "=", "value": "core"}]), 201),
        (
            svc,
            json!([{"relation": "owner", "operator": "=", "value": "core"}, {"property": "n", "operator": ">", "value": 550}]),
            17,
        ),
        (svc, json!([{"relation": "deps", "operator": "=", "value": "s000"}]), 120),
        (svc, json!([{"relation": "deps", "operator": "=", "value": "s599"}]), 1),
        (svc, json!([{"relation": "nothing", "operator": "=", "value": "core"}]), 0),
        (every, json!([{"property": "$identifier", "operator": "in", "value": ["s003", "j1", "core", "web"]}]), 4),
        (every, json!([{"relation": "owner", "operator": "=", "value": "core"}]), 202),
    ];
    for (path, rules, count) in cases {
        let named = json!({"combinator": "and", "rules": rules});
        let whole = all_pages(path, named.clone(), None).await;
        assert_eq!(whole.len(), count, "{rules}: {whole:?}");
        assert_eq!(whole, all_pages(path, grouped(&rules), None).await, "{rules}");
        assert_eq!(whole, all_pages(path, named, Some(50)).await, "{rules}, 50 a page");
    }
}

/// Port's calculation properties: every read answers them in `properties`, calculated from
/// the entity as it is now and by the blueprint as it is now; a calculation that fails or
/// runs away is `null`, never a failed read.
async fn calculation_properties(server: TestServer) {
    server.blueprint(team_bp()).await;
    let mut service = json!({
        "identifier": "service", "title": "Service",
        "schema": {"properties": {"mb": {"type": "number"}}},
        "relations": {"owner": {"target": "team", "many": false}},
        "calculationProperties": {
            "endless": {"title": "Runs away", "type": "number", "calculation": "last(range(1e12))"},
            "gb": {"title": "GB", "type": "number", "calculation": ".properties.mb / 1024"},
            "url": {"title": "URL", "type": "string", "format": "url", "calculation": "'https://github.com/acme/' + .identifier"},
            "ownedBy": {"type": "string", "calculation": ".relations.owner", "colorized": true},
            "mistyped": {"type": "string", "calculation": ".properties.mb"}
        }
    });
    // Definitions are checked, and their expressions compiled, when the blueprint is written.
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let mut broken = service.clone();
    broken["calculationProperties"]["gb"]["calculation"] = json!(".properties.mb /");
    assert_error(&server.post("/v1/blueprints", broken).await, unprocessable, "calculationProperties.gb.calculation");
    let mut untyped = service.clone();
    untyped["calculationProperties"]["gb"].as_object_mut().unwrap().remove("type");
    assert_error(&server.post("/v1/blueprints", untyped).await, unprocessable, "calculationProperties.gb.type");
    server.blueprint(service.clone()).await;

    server.upsert("team", json!({"identifier": "core"})).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"mb": 2048}, "relations": {"owner": "core"}})).await;
    server.upsert("service", json!({"identifier": "web", "properties": {"mb": 512}})).await;
    let calculated = |entity: &Value| {
        let p = &entity["properties"];
        (p["mb"].clone(), p["gb"].clone(), p["url"].clone(), p["ownedBy"].clone(), p["mistyped"].clone(), p["endless"].clone())
    };
    let api = (json!(2048), json!(2), json!("https://github.com/acme/api"), json!("core"), Value::Null, Value::Null);
    let web = (json!(512), json!(0.5), json!("https://github.com/acme/web"), Value::Null, Value::Null, Value::Null);

    // One entity, a list, and both searches.
    let (status, one) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(calculated(&one["entity"]), api, "{one}");
    let (_, list) = server.get("/v1/blueprints/service/entities").await;
    assert_eq!(list["entities"].as_array().unwrap().iter().map(calculated).collect::<Vec<_>>(), [api.clone(), web.clone()]);
    let heavy = json!({"combinator": "and", "rules": [{"property": "mb", "operator": ">", "value": 1000}]});
    let (_, found) = server.post("/v1/blueprints/service/entities/search", json!({"query": heavy})).await;
    assert_eq!(
        found["entities"].as_array().unwrap().iter().map(calculated).collect::<Vec<_>>(),
        std::slice::from_ref(&api),
        "{found}"
    );
    let (_, found) = server.post("/v1/entities/search", heavy).await;
    assert_eq!(
        found["entities"].as_array().unwrap().iter().map(calculated).collect::<Vec<_>>(),
        std::slice::from_ref(&api),
        "{found}"
    );

    // Port's `exclude_calculated_properties`, and `include` naming a calculated value.
    let (_, bare) = server.get("/v1/blueprints/service/entities/api?exclude_calculated_properties=true").await;
    assert_eq!(bare["entity"]["properties"], json!({"mb": 2048}), "{bare}");
    let (_, bare) = server
        .post(
            "/v1/entities/search?exclude_calculated_properties=true",
            json!({"query": {"combinator": "and", "rules": []}, "limit": 3}),
        )
        .await;
    assert!(bare["entities"].as_array().unwrap().iter().all(|e| e["properties"].get("url").is_none()), "{bare}");
    let (_, urls) = server.get("/v1/blueprints/service/entities?include=properties.url").await;
    assert_eq!(
        urls["entities"],
        json!([{"properties": {"url": "https://github.com/acme/api"}}, {"properties": {"url": "https://github.com/acme/web"}}])
    );
    assert_error(
        &server.get("/v1/blueprints/service/entities?exclude_calculated_properties=yes").await,
        StatusCode::BAD_REQUEST,
        "exclude_calculated_properties",
    );

    // A search's rules read calculated values as any property (computed for each entity the
    // search reads), and answer what the request asks for, with or without them.
    let by_gb = json!({"combinator": "and", "rules": [{"property": "gb", "operator": "<", "value": 1}]});
    let (_, found) = server.post("/v1/blueprints/service/entities/search", by_gb.clone()).await;
    assert_eq!(
        found["entities"].as_array().unwrap().iter().map(calculated).collect::<Vec<_>>(),
        std::slice::from_ref(&web),
        "{found}"
    );
    let (_, found) = server.post("/v1/entities/search?exclude_calculated_properties=true", by_gb).await;
    assert_eq!(found["entities"][0]["properties"], json!({"mb": 512}), "{found}");
    // A calculated value is not stored: an entity change does not carry it.
    let (_, audits) = server.get("/v1/audit-log?entity=api&blueprint=service").await;
    assert_eq!(audits["audits"][0]["diff"]["after"]["properties"], json!({"mb": 2048}), "{audits}");

    // An entity sent back as it was read, calculated values and all, is written without them.
    let (_, one) = server.get("/v1/blueprints/service/entities/api").await;
    let (status, body) = server.put("/v1/blueprints/service/entities/api", one["entity"].clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entity"]["properties"], json!({"mb": 2048}), "{body}");

    // A changed calculation applies to every entity at once.
    service["calculationProperties"]["gb"]["calculation"] = json!(".properties.mb / 1000");
    let (status, body) = server.put("/v1/blueprints/service", service).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one) = server.get("/v1/blueprints/service/entities/web").await;
    assert_eq!(one["entity"]["properties"]["gb"], 0.512, "{one}");
}

/// Port's mirror properties: a path of relations to a field of the entities it reaches,
/// answered in `properties` by every read and in a run's `.entity`, as those entities are now;
/// calculations see them.
async fn mirror_properties(server: TestServer) {
    server
        .blueprint(json!({"identifier": "domain", "title": "Domain", "schema": {"properties": {"tier": {"type": "number"}}}}))
        .await;
    server
        .blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {"slack": {"type": "string"}}},
                          "relations": {"domain": {"target": "domain"}}}))
        .await;
    let service = json!({
        "identifier": "service", "title": "Service", "schema": {"properties": {}},
        "relations": {"owner": {"target": "team"}, "uses": {"target": "team", "many": true}},
        "mirrorProperties": {
            "slack": {"title": "Owner's Slack", "path": "owner.slack"},
            "ownerName": {"path": "owner.$title"},
            "tier": {"path": "owner.domain.tier"},
            "slacks": {"path": "uses.slack"}
        },
        "calculationProperties": {"loud": {"type": "string", "calculation": ".properties.slack + \"!\""}}
    });
    // Each path is checked against the blueprints it crosses when the blueprint is written.
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for (path, part) in
        [("owner.nope", "`nope`, which is not a property of blueprint `team`"), ("nope.slack", "`nope` is not a relation")]
    {
        let mut broken = service.clone();
        broken["mirrorProperties"]["slack"]["path"] = json!(path);
        assert_error(&server.post("/v1/blueprints", broken).await, unprocessable, part);
    }
    server.blueprint(service.clone()).await;

    server.upsert("domain", json!({"identifier": "pay", "properties": {"tier": 1}})).await;
    server
        .upsert(
            "team",
            json!({"identifier": "core", "title": "Core", "properties": {"slack": "#core"}, "relations": {"domain": "pay"}}),
        )
        .await;
    server.upsert("team", json!({"identifier": "web", "properties": {"slack": "#web"}})).await;
    server.upsert("service", json!({"identifier": "api", "relations": {"owner": "core", "uses": ["web", "core"]}})).await;
    server.upsert("service", json!({"identifier": "lone"})).await;
    let api = json!({"slack": "#core", "ownerName": "Core", "tier": 1, "slacks": ["#web", "#core"], "loud": "#core!"});
    // jq: `null + "!"` is `"!"`.
    let lone = json!({"slack": null, "ownerName": null, "tier": null, "slacks": [], "loud": "!"});

    let (_, one) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(one["entity"]["properties"], api, "{one}");
    let (_, list) = server.get("/v1/blueprints/service/entities").await;
    let properties =
        |body: &Value| body["entities"].as_array().unwrap().iter().map(|e| e["properties"].clone()).collect::<Vec<_>>();
    assert_eq!(properties(&list), [api.clone(), lone.clone()], "{list}");
    let all = json!({"query": {"combinator": "and", "rules": [{"property": "$blueprint", "operator": "=", "value": "service"}]}});
    let (_, found) = server.post("/v1/entities/search", all.clone()).await;
    assert_eq!(properties(&found), [api.clone(), lone.clone()], "{found}");

    // Read as the related entities are now.
    server.upsert("team", json!({"identifier": "core", "properties": {"slack": "#core-team"}})).await;
    let (_, one) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(
        (one["entity"]["properties"]["slack"].clone(), one["entity"]["properties"]["loud"].clone()),
        (json!("#core-team"), json!("#core-team!"))
    );
    let (_, bare) = server.get("/v1/blueprints/service/entities/api?exclude_calculated_properties=true").await;
    assert_eq!(bare["entity"]["properties"], json!({}), "{bare}");

    // A search filters on them as the related entities are now, through a mirror a
    // calculation reads too, and by key with a relation rule beside.
    let by_slack = |slack: &str| json!({"combinator": "and", "rules": [{"property": "slack", "operator": "=", "value": slack}]});
    let (_, found) = server.post("/v1/blueprints/service/entities/search", by_slack("#core-team")).await;
    assert_eq!(identifiers(&found), ["api"], "{found}");
    let (_, found) = server.post("/v1/entities/search", by_slack("#core")).await;
    assert_eq!(identifiers(&found), Vec::<String>::new(), "{found}");
    let loud = json!({"combinator": "and", "rules": [
        {"relation": "owner", "operator": "=", "value": "core"},
        {"property": "loud", "operator": "endsWith", "value": "-team!"}
    ]});
    let (_, found) = server.post("/v1/blueprints/service/entities/search", loud).await;
    assert_eq!(identifiers(&found), ["api"], "{found}");
    // Not stored: sent back, they are left out.
    let (status, body) = server.put("/v1/blueprints/service/entities/api", one["entity"].clone()).await;
    assert_eq!((status, body["entity"]["properties"].clone()), (StatusCode::OK, json!({})), "{body}");

    // A run's `.entity` is the entity as the API answers it, computed values and all.
    server
        .create_action(json!({
            "identifier": "notify", "title": "Notify the owner",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://chat.example.com/hook",
                                 "body": {"channel": "{{ .entity.properties.slack }}", "text": "{{ .entity.properties.loud }}"}}
        }))
        .await;
    let run = server.start_run("notify", json!({"entity": "api", "properties": {}})).await;
    assert_eq!(run["payload"]["body"], json!({"channel": "#core-team", "text": "#core-team!"}), "{run}");

    // A path that no longer resolves (the property it ends at removed) reads as null.
    let (status, body) = server.patch("/v1/blueprints/team", json!({"schema": {"properties": {"slack": null}}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(one["entity"]["properties"]["slack"], Value::Null, "{one}");
    assert_eq!(one["entity"]["properties"]["tier"], 1, "{one}");
}

/// Port's `attach_title_to_relation`: each related entity answered with its title.
async fn relation_titles(server: TestServer) {
    server.blueprint(team_bp()).await;
    server.blueprint(service_bp()).await;
    server.upsert("team", json!({"identifier": "core", "title": "Core"})).await;
    server.upsert("service", json!({"identifier": "db", "properties": {"language": "go"}})).await;
    server
        .upsert(
            "service",
            json!({"identifier": "api", "title": "API", "properties": {"language": "rust"},
                                    "relations": {"owner": "core", "dependsOn": ["db"]}}),
        )
        .await;
    let titled = json!({"owner": {"identifier": "core", "title": "Core"}, "dependsOn": [{"identifier": "db", "title": null}]});

    let (_, one) = server.get("/v1/blueprints/service/entities/api?attach_title_to_relation=true").await;
    assert_eq!(one["entity"]["relations"], titled, "{one}");
    let (_, list) = server.get("/v1/blueprints/service/entities?attach_title_to_relation=true").await;
    assert_eq!(list["entities"][0]["relations"], titled, "{list}");
    assert_eq!(list["entities"][1]["identifier"], "db", "{list}");
    let api = json!({"query": {"combinator": "and", "rules": [{"property": "$identifier", "operator": "=", "value": "api"}]}});
    let (_, found) = server.post("/v1/blueprints/service/entities/search?attach_title_to_relation=true", api.clone()).await;
    assert_eq!(found["entities"][0]["relations"], titled, "{found}");
    let (_, found) = server.post("/v1/entities/search?attach_title_to_relation=true&include=relations.owner", api.clone()).await;
    assert_eq!(found["entities"], json!([{"relations": {"owner": {"identifier": "core", "title": "Core"}}}]), "{found}");

    // Without it (or with `false`), identifiers only, as stored.
    let (_, plain) = server.post("/v1/entities/search?attach_title_to_relation=false", api).await;
    assert_eq!(plain["entities"][0]["relations"], json!({"owner": "core", "dependsOn": ["db"]}), "{plain}");
    assert_error(
        &server.get("/v1/blueprints/service/entities/api?attach_title_to_relation=1").await,
        StatusCode::BAD_REQUEST,
        "`attach_title_to_relation` must be `true` or `false`",
    );
}

async fn list_pagination(server: TestServer) {
    server.blueprint(team_bp()).await;
    for i in 0..7 {
        server.upsert("team", json!({"identifier": format!("t{i}")})).await;
    }
    let (_, all) = server.get("/v1/blueprints/team/entities").await;
    assert_eq!(all["entities"].as_array().unwrap().len(), 7);
    assert!(all.get("next").is_none());

    let mut seen = Vec::new();
    let mut path = "/v1/blueprints/team/entities?limit=3".to_owned();
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["entities"].as_array().unwrap().iter().map(|e| e["identifier"].as_str().unwrap().to_owned()));
        match page.get("next").and_then(Value::as_str) {
            Some(next) => path = format!("/v1/blueprints/team/entities?limit=3&from={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);
    assert_error(&server.get("/v1/blueprints/team/entities?limit=0").await, StatusCode::BAD_REQUEST, "limit");
    assert_error(&server.get("/v1/blueprints/team/entities?limit=many").await, StatusCode::BAD_REQUEST, "limit");
}

async fn audit_log_records_every_change(server: TestServer) {
    catalog(&server).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"language": "go", "stars": 1}})).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"stars": 2}})).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"stars": 2}})).await; // no change: not recorded
    server.delete("/v1/blueprints/service/entities/api?run_id=r_test").await;

    let (status, body) = server.get("/v1/audit-log?entity=api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audits = body["audits"].as_array().unwrap();
    let actions: Vec<&str> = audits.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["DELETE", "UPDATE", "CREATE"], "newest first, no-op not recorded");
    let update = &audits[1];
    assert_eq!(update["resourceType"], "entity");
    assert_eq!(update["status"], "SUCCESS");
    assert_eq!(
        update["context"],
        json!({"blueprintIdentifier": "service", "entityIdentifier": "api", "propertyIdentifier": null})
    );
    assert_eq!(update["diff"]["before"]["properties"]["stars"], 1);
    assert_eq!(update["diff"]["after"]["properties"]["stars"], 2);
    assert_eq!(update["trigger"]["by"]["userId"], common::CLIENT_ID);
    assert_eq!(update["trigger"]["origin"], "API");
    assert!(update["identifier"].as_str().unwrap().starts_with("chg_"));
    assert_eq!(audits[0]["diff"]["after"], Value::Null);
    assert_eq!(audits[0]["additionalData"]["runId"], "r_test");

    let count = |q: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.get(&format!("/v1/audit-log?{q}")).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            body["audits"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("resources=blueprint").await, 2);
    assert_eq!(count("resources=entity,blueprint").await, 5);
    assert_eq!(count("resources=run").await, 0);
    assert_eq!(count("blueprint=service&action=CREATE").await, 2);
    assert_eq!(count("limit=2").await, 2);
    assert_eq!(count("status=FAILURE").await, 0);
    assert_eq!(count("run_id=r_test").await, 1);
    assert_eq!(count("from=2999-01-01T00:00:00Z").await, 0);
    assert_eq!(count("to=2000-01-01T00:00:00Z").await, 0);
    let identifier = audits[1]["identifier"].as_str().unwrap().to_owned();
    let (_, one) = server.get(&format!("/v1/audit-log?identifier={identifier}&includes=identifier,action")).await;
    assert_eq!(one["audits"], json!([{"identifier": identifier, "action": "UPDATE"}]));
    assert_error(&server.get("/v1/audit-log?action=EXPLODE").await, StatusCode::BAD_REQUEST, "action=EXPLODE");
    assert_error(&server.get("/v1/audit-log?from=yesterday").await, StatusCode::BAD_REQUEST, "from=yesterday");
}

/// Entity writes through the API are group-committed: concurrent requests share a commit,
/// each is answered after it, and a write the catalog refuses is refused alone, the writes
/// beside it stored as if each had been alone. Concurrent updates of one entity are applied
/// one after the other (each change's `before` is the previous change's `after`).
async fn concurrent_writes_share_commits(server: TestServer) {
    catalog(&server).await;
    server.upsert("team", json!({"identifier": "core"})).await;
    server.upsert("service", json!({"identifier": "hot", "properties": {"language": "go", "stars": 0}})).await;
    server.upsert("service", json!({"identifier": "doomed", "properties": {"language": "go"}})).await;

    let post = |doc: Value| {
        let (http, base, token) = (server.http.clone(), server.base.clone(), server.token.clone());
        tokio::spawn(async move {
            let reply = http
                .post(format!("{base}/v1/blueprints/service/entities?upsert=true&merge=true"))
                .bearer_auth(&token)
                .json(&doc)
                .send()
                .await
                .unwrap();
            let status = reply.status();
            (status, reply.json::<Value>().await.unwrap())
        })
    };
    let mut accepted = Vec::new();
    let mut refused_type = Vec::new();
    let mut refused_related = Vec::new();
    let mut updates = Vec::new();
    for n in 0..80 {
        match n % 8 {
            5 => refused_type.push(post(json!({"identifier": format!("bad-{n}"), "properties": {"language": "go", "stars": "many"}}))),
            6 => refused_related.push(post(
                json!({"identifier": format!("orphan-{n}"), "properties": {"language": "go"}, "relations": {"owner": "nobody"}}),
            )),
            7 => updates.push(post(json!({"identifier": "hot", "properties": {"stars": n}}))),
            _ => accepted.push((
                format!("svc-{n}"),
                post(json!({"identifier": format!("svc-{n}"), "properties": {"language": "rust", "stars": n}, "relations": {"owner": "core"}})),
            )),
        }
    }
    let deleted = {
        let (http, base, token) = (server.http.clone(), server.base.clone(), server.token.clone());
        tokio::spawn(async move {
            http.delete(format!("{base}/v1/blueprints/service/entities/doomed"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    for (identifier, reply) in accepted {
        let (status, body) = reply.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{identifier}: {body}");
        assert_eq!(body["entity"]["relations"]["owner"], "core", "{body}");
        let (status, stored) = server.get(&format!("/v1/blueprints/service/entities/{identifier}")).await;
        assert_eq!(status, StatusCode::OK, "{identifier} is stored once answered: {stored}");
        let (_, audits) = server.get(&format!("/v1/audit-log?entity={identifier}")).await;
        assert_eq!(audits["audits"].as_array().unwrap().len(), 1, "one change for {identifier}: {audits}");
    }
    for reply in refused_type {
        let result = reply.await.unwrap();
        assert_error(&result, StatusCode::UNPROCESSABLE_ENTITY, "stars");
    }
    for reply in refused_related {
        let result = reply.await.unwrap();
        assert_error(&result, StatusCode::UNPROCESSABLE_ENTITY, "nobody");
    }
    for reply in updates {
        let (status, body) = reply.await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
    }
    assert_eq!(deleted.await.unwrap(), StatusCode::OK);
    assert_error(&server.get("/v1/blueprints/service/entities/doomed").await, StatusCode::NOT_FOUND, "doomed");
    for n in [5, 13, 6, 14] {
        let id = if n % 8 == 5 { format!("bad-{n}") } else { format!("orphan-{n}") };
        assert_error(&server.get(&format!("/v1/blueprints/service/entities/{id}")).await, StatusCode::NOT_FOUND, &id);
    }
    assert_error(&server.get("/v1/blueprints/team/entities/nobody").await, StatusCode::NOT_FOUND, "nobody");

    // The ten updates of `hot`, oldest first: each starts where the one before ended.
    let (_, audits) = server.get("/v1/audit-log?entity=hot&action=UPDATE").await;
    let mut chain: Vec<&Value> = audits["audits"].as_array().unwrap().iter().collect();
    chain.reverse();
    assert_eq!(chain.len(), 10, "{audits}");
    let mut stars = 0;
    for change in &chain {
        assert_eq!(change["diff"]["before"]["properties"]["stars"], stars, "{audits}");
        stars = change["diff"]["after"]["properties"]["stars"].as_i64().unwrap();
    }
    let (_, hot) = server.get("/v1/blueprints/service/entities/hot").await;
    assert_eq!(hot["entity"]["properties"]["stars"], stars);

    // Some commit carried several writes (the histogram's sum outgrows its count); the
    // exporter folds samples in a moment.
    let mut shared = false;
    for _ in 0..50 {
        let text = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
        let sample = |name: &str| -> f64 {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
        };
        if sample("wharf_entity_commit_batch_size_sum ") > sample("wharf_entity_commit_batch_size_count ") {
            shared = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shared, "concurrent entity writes share commits");
}
