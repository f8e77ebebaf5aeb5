//! The OpenAPI document stays truthful without Python: every body has a real schema, every
//! `$ref` resolves, identifiers and ids have their patterns, every operation lists the errors
//! it can give with Port's error body, and what the server answers for the common failures is
//! among what the document lists, and the server takes the document's examples — on both
//! stores. (The full conformance run is Schemathesis:
//! README, "API conformance (Schemathesis)".)

use crate::common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

both_stores!(
    every_body_has_a_real_schema,
    every_operation_lists_its_errors_with_the_error_body,
    identifiers_and_ids_have_patterns,
    operation_ids_are_unique,
    the_server_answers_what_the_document_lists,
    the_server_takes_the_documented_examples,
);

async fn document(server: &TestServer) -> Value {
    let (status, doc) = server.call_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// Every operation: `(METHOD, path, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, Map<String, Value>)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            found.push((method.to_uppercase(), path.clone(), operation.as_object().expect("operation").clone()));
        }
    }
    assert!(found.len() > 40, "the document lists every route ({} found)", found.len());
    found
}

/// The schema a `$ref` names (panics when it does not resolve).
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a local schema: {reference}"));
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "`{reference}` resolves");
    schema
}

/// Every `$ref` in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

async fn every_body_has_a_real_schema(server: TestServer) {
    let doc = document(&server).await;
    let mut all = Vec::new();
    references(&doc, &mut all);
    for reference in &all {
        let schema = resolve(&doc, reference);
        let keys: Vec<&String> = schema.as_object().unwrap().keys().filter(|k| *k != "description").collect();
        assert!(!keys.is_empty(), "`{reference}` says something about the value: {schema}");
    }
    for (method, path, operation) in operations(&doc) {
        let Some(body) = operation.get("requestBody") else { continue };
        let schema = &body["content"]["application/json"]["schema"];
        let reference = schema["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path}: a named body schema: {body}"));
        let resolved = resolve(&doc, reference);
        assert!(
            resolved.get("type").is_some() || resolved.get("anyOf").is_some(),
            "{method} {path}: the body schema has a type: {resolved}"
        );
    }
    // The documents that name their keys refuse the others, as the server does.
    for name in ["BlueprintDoc", "EntityDoc", "WebhookDoc", "ProjectDoc", "SubscriptionDoc", "PublishDoc", "AccessTokenDoc"] {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
        assert!(schema["properties"].as_object().is_some_and(|p| !p.is_empty()), "{name}: {schema}");
    }
    let blueprint = &doc["components"]["schemas"]["BlueprintDoc"];
    assert_eq!(blueprint["required"], serde_json::json!(["identifier", "title", "schema"]));
    assert_eq!(doc["components"]["schemas"]["BulkDoc"]["properties"]["entities"]["maxItems"], 20);
}

async fn every_operation_lists_its_errors_with_the_error_body(server: TestServer) {
    let doc = document(&server).await;
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["ok", "error", "message"]));
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: responses"));
        let secured = operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
        let open = ["/v1/auth/access_token", "/healthz", "/readyz", "/metrics", "/openapi.json"];
        assert_eq!(
            secured,
            !open.contains(&path.as_str()) && !path.starts_with("/ingest/"),
            "{method} {path}: a token is required exactly on the API routes"
        );
        let mut expected = vec!["500"];
        if !["/healthz", "/metrics", "/openapi.json"].contains(&path.as_str()) {
            expected.push("503");
        }
        if secured {
            expected.push("401");
        }
        if operation.contains_key("requestBody") {
            expected.extend(["400", "413"]);
        }
        if operation.get("parameters").and_then(Value::as_array).is_some_and(|ps| ps.iter().any(|p| p["in"] == "query")) {
            expected.push("400");
        }
        if path.contains('{') {
            expected.push("400");
        }
        if path.contains("{organizationId}") {
            expected.push("403");
        }
        // A route that names a resource answers 404 when there is none (the organization of
        // the path is the token's, or 403).
        let names_a_resource = path.replace("{organizationId}", "").contains('{');
        // (A bulk write answers a missing blueprint with an error per entity, in a 207.)
        if names_a_resource && !path.starts_with("/ingest/") && !path.ends_with("/bulk") {
            expected.push("404");
        }
        for status in expected {
            assert!(responses.contains_key(status), "{method} {path} lists {status}: {:?}", responses.keys());
        }
        for (status, answer) in responses {
            assert!(answer["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}: a description");
            if status.starts_with(['4', '5']) {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {status} carries the error body"
                );
            }
        }
    }
}

async fn operation_ids_are_unique(server: TestServer) {
    let doc = document(&server).await;
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: an operationId")).to_owned();
        assert!(seen.insert(id.clone()), "{method} {path}: `{id}` is another operation's too");
    }
}

async fn identifiers_and_ids_have_patterns(server: TestServer) {
    let doc = document(&server).await;
    for (method, path, operation) in operations(&doc) {
        for parameter in operation.get("parameters").and_then(Value::as_array).into_iter().flatten() {
            if parameter["in"] != "path" {
                continue;
            }
            let schema = &parameter["schema"];
            let name = parameter["name"].as_str().unwrap();
            let constrained = schema.get("pattern").is_some() || schema.get("minLength").is_some();
            // A bulk write names any blueprint (an unknown one is an error per entity).
            if !(name == "blueprint" && path.ends_with("/bulk")) {
                assert!(constrained, "{method} {path}: `{name}` has a pattern: {schema}");
            }
        }
    }
    let org = doc["paths"]["/organizations/{organizationId}/projects"]["get"]["parameters"][0]["schema"]["pattern"].clone();
    assert_eq!(org, "^[0-9a-fA-F]{24}$");
    let event = &doc["paths"]["/v1/webhooks/{identifier}/events/{event_id}"]["get"]["parameters"];
    assert!(event.to_string().contains("^whe_"), "{event}");
}

/// What the document lists for `method path`.
fn listed(doc: &Value, method: &str, path: &str) -> Vec<String> {
    doc["paths"][path][method.to_lowercase()]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is documented"))
        .keys()
        .cloned()
        .collect()
}

async fn the_server_answers_what_the_document_lists(server: TestServer) {
    let doc = document(&server).await;
    let answer_listed = |method: &str, template: &str, (status, body): &(StatusCode, Value)| {
        let listed = listed(&doc, method, template);
        assert!(
            listed.contains(&status.as_u16().to_string()),
            "{method} {template} answered {status}, listed {listed:?}: {body}"
        );
        if !status.is_success() {
            assert_eq!(body["ok"], false, "{body}");
            assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
        }
    };
    // No token.
    for (method, template, concrete) in [
        ("GET", "/v1/blueprints", "/v1/blueprints"),
        ("POST", "/v1/webhooks", "/v1/webhooks"),
        ("GET", "/v1/audit-log", "/v1/audit-log"),
        ("GET", "/organizations/{organizationId}/projects", "/organizations/0123456789abcdef01234567/projects"),
    ] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = server.call_as(None, method.clone(), concrete, None).await;
        assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
        answer_listed(method.as_str(), template, &answer);
    }
    // A body that is not JSON, and a query parameter that does not parse.
    let answer = server.post_text("/v1/blueprints", "{\"identifier\": ").await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    answer_listed("POST", "/v1/blueprints", &answer);
    let answer = server.get("/v1/blueprints/nothing/entities?limit=0").await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    answer_listed("GET", "/v1/blueprints/{blueprint}/entities", &answer);
    // A path parameter that is not UTF-8 once decoded (axum's own answer, in Port's shape).
    let response = server.http.get(format!("{}/v1/blueprints/%FF", server.base)).bearer_auth(&server.token).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer = (response.status(), response.json::<Value>().await.unwrap());
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    assert_eq!(answer.1["error"], "invalid_path", "{}", answer.1);
    answer_listed("GET", "/v1/blueprints/{identifier}", &answer);
    // An organization that is not the token's, and a malformed id.
    let answer = server.get("/organizations/0123456789abcdef01234567/projects").await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN);
    answer_listed("GET", "/organizations/{organizationId}/projects", &answer);
    let answer = server.get("/organizations/nothex/projects").await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    answer_listed("GET", "/organizations/{organizationId}/projects", &answer);
    // A document the schema refuses (an unknown key) is refused by the server too, and one it
    // describes is taken.
    let answer =
        server.post("/v1/blueprints", serde_json::json!({"identifier": "svc", "title": "S", "schema": {}, "x": 1})).await;
    assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY);
    answer_listed("POST", "/v1/blueprints", &answer);
    let answer = server
        .post(
            "/v1/blueprints",
            serde_json::json!({"identifier": "svc", "title": "S", "schema": {"properties": {"url": {"type": "string"}}}}),
        )
        .await;
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    answer_listed("POST", "/v1/blueprints", &answer);
    let answer = server.get("/v1/blueprints/svc/entities/missing").await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND);
    answer_listed("GET", "/v1/blueprints/{blueprint}/entities/{identifier}", &answer);
    // `search` and `bulk` are routes of their own: no entity route reaches an entity so named.
    let answer = server.get("/v1/blueprints/svc/entities/search").await;
    assert_eq!(answer.0, StatusCode::METHOD_NOT_ALLOWED);
    answer_listed("GET", "/v1/blueprints/{blueprint}/entities/{identifier}", &answer);
    let identifier = &doc["paths"]["/v1/blueprints/{blueprint}/entities/{identifier}"]["get"]["parameters"][1]["schema"];
    assert_eq!(identifier["not"]["enum"], serde_json::json!(["search", "bulk"]), "{identifier}");
    let answer = server.post("/v1/blueprints/nothing/entities/search", serde_json::json!({})).await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND);
    answer_listed("POST", "/v1/blueprints/{blueprint}/entities/search", &answer);
}

/// The example of schema `name` in the document.
fn example(doc: &Value, name: &str) -> Value {
    let example = doc["components"]["schemas"][name]["examples"][0].clone();
    assert!(example.is_object(), "{name} has an example");
    example
}

async fn the_server_takes_the_documented_examples(server: TestServer) {
    let doc = document(&server).await;
    let org = server.get("/v1/organization").await.1["organization"]["id"].as_str().unwrap().to_owned();
    let call = |method: Method, path: String, name: &'static str| {
        let body = example(&doc, name);
        let server = &server;
        async move {
            let (status, answer) = server.call(method.clone(), &path, Some(body)).await;
            assert!(status.is_success(), "{method} {path} with the example of {name}: {status} {answer}");
            answer
        }
    };
    call(Method::POST, "/v1/blueprints".into(), "BlueprintDoc").await;
    call(Method::PATCH, "/v1/blueprints/service".into(), "BlueprintPatch").await;
    call(Method::POST, "/v1/blueprints/service/entities".into(), "EntityDoc").await;
    let bulk = call(Method::POST, "/v1/blueprints/service/entities/bulk".into(), "BulkDoc").await;
    assert_eq!(bulk["errors"], serde_json::json!([]), "{bulk}");
    let found = call(Method::POST, "/v1/entities/search".into(), "SearchDoc").await;
    assert!(found["entities"].as_array().unwrap().iter().any(|e| e["identifier"] == "checkout"), "{found}");
    call(Method::POST, "/v1/webhooks".into(), "WebhookDoc").await;
    call(Method::PATCH, "/v1/webhooks/github-services".into(), "WebhookPatch").await;
    let tested = call(Method::POST, "/v1/webhooks/github-services/test".into(), "TestDoc").await;
    assert_eq!(tested["entities"][0]["identifier"], "api", "{tested}");
    call(Method::POST, "/v1/webhooks/github-services/replay".into(), "ReplayDoc").await;
    let project = call(Method::POST, format!("/organizations/{org}/projects"), "ProjectDoc").await;
    let project = format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap());
    call(Method::PATCH, project.clone(), "ProjectPatch").await;
    let subscription = call(Method::POST, format!("{project}/settings/webhooks"), "SubscriptionDoc").await;
    let subscription = format!("{project}/settings/webhooks/{}", subscription["_id"].as_str().unwrap());
    call(Method::POST, format!("{project}/events"), "PublishDoc").await;
    call(Method::POST, format!("{subscription}/secret/rotate"), "RotateDoc").await;
    call(Method::POST, format!("{subscription}/recover"), "RecoverDoc").await;
    call(Method::PATCH, subscription, "SubscriptionPatch").await;
    call(Method::POST, "/v1/workflows".into(), "WorkflowDoc").await;
    let run = call(Method::POST, "/v1/workflows/deploy_flow/runs".into(), "WorkflowRunDoc").await;
    assert_eq!(run["workflowRun"]["status"], "IN_PROGRESS", "{run}");
}
