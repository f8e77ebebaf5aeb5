//! The platform around the catalog: authentication, tenant isolation, errors, operations
//! endpoints, OpenAPI, persistence across restarts, and the admin CLI — on both stores.

use crate::common;

use std::collections::BTreeSet;

use common::{TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_stores!(
    access_tokens,
    organizations_are_isolated,
    request_errors_are_port_shaped,
    operations_endpoints,
    openapi_documents_every_route,
    data_survives_restart,
    bootstrap_writes_private_credentials,
);

async fn access_tokens(server: TestServer) {
    let (status, body) = server
        .call_as(
            None,
            Method::POST,
            "/v1/auth/access_token",
            Some(json!({"clientId": common::CLIENT_ID, "clientSecret": common::CLIENT_SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ok"], true);
    assert_eq!(body["expiresIn"], 10800);
    assert_eq!(body["tokenType"], "Bearer");

    let wrong = json!({"clientId": common::CLIENT_ID, "clientSecret": "wrong"});
    assert_error(
        &server.call_as(None, Method::POST, "/v1/auth/access_token", Some(wrong)).await,
        StatusCode::UNAUTHORIZED,
        "wrong",
    );
    let unknown = json!({"clientId": "nobody", "clientSecret": "x"});
    assert_error(
        &server.call_as(None, Method::POST, "/v1/auth/access_token", Some(unknown)).await,
        StatusCode::UNAUTHORIZED,
        "wrong",
    );
    assert_error(
        &server.call_as(None, Method::POST, "/v1/auth/access_token", Some(json!({"clientId": "x"}))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "clientSecret",
    );

    assert_error(&server.call_as(None, Method::GET, "/v1/organization", None).await, StatusCode::UNAUTHORIZED, "Bearer");
    assert_error(
        &server.call_as(Some("not-a-token"), Method::GET, "/v1/blueprints", None).await,
        StatusCode::UNAUTHORIZED,
        "invalid",
    );
    let tampered = format!("{}x", server.token);
    assert_error(
        &server.call_as(Some(&tampered), Method::GET, "/v1/blueprints", None).await,
        StatusCode::UNAUTHORIZED,
        "invalid",
    );

    let (status, body) = server.get("/v1/organization").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["organization"]["id"].as_str().unwrap();
    assert!(wharf_core::ids::is_object_id(id), "{id}");
    assert_eq!(body["organization"]["name"], "Default organization");
}

async fn organizations_are_isolated(server: TestServer) {
    // A second organization, made with the admin CLI as an operator would.
    let created = server.wharf_cli(&["admin", "create-org", "--name", "Other Corp"]);
    let other = server.token_for(created["clientId"].as_str().unwrap(), created["clientSecret"].as_str().unwrap()).await;
    let as_other = |method: Method, path: &'static str, body: Option<Value>| {
        let (server, other) = (&server, other.clone());
        async move { server.call_as(Some(&other), method, path, body).await }
    };

    server
        .blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {"secret": {"type": "string"}}}}))
        .await;
    server.upsert("service", json!({"identifier": "api", "properties": {"secret": "ours"}})).await;

    let (_, org) = as_other(Method::GET, "/v1/organization", None).await;
    assert_eq!(org["organization"]["name"], "Other Corp");
    assert_eq!(org["organization"]["id"], created["organizationId"]);
    assert_error(&as_other(Method::GET, "/v1/blueprints/service", None).await, StatusCode::NOT_FOUND, "service");
    assert_error(&as_other(Method::GET, "/v1/blueprints/service/entities/api", None).await, StatusCode::NOT_FOUND, "service");
    assert_error(
        &as_other(Method::PATCH, "/v1/blueprints/service/entities/api", Some(json!({"title": "x"}))).await,
        StatusCode::NOT_FOUND,
        "service",
    );
    assert_error(&as_other(Method::DELETE, "/v1/blueprints/service/entities/api", None).await, StatusCode::NOT_FOUND, "service");
    assert_error(&as_other(Method::DELETE, "/v1/blueprints/service", None).await, StatusCode::NOT_FOUND, "service");
    let (_, list) = as_other(Method::GET, "/v1/blueprints", None).await;
    assert_eq!(list["blueprints"], json!([]));
    let (_, found) = as_other(Method::POST, "/v1/entities/search", Some(json!({"combinator": "and", "rules": []}))).await;
    assert_eq!(found["entities"], json!([]));
    let (_, audits) = as_other(Method::GET, "/v1/audit-log", None).await;
    assert_eq!(audits["audits"], json!([]));

    // The same identifiers live side by side.
    let (status, _) =
        as_other(Method::POST, "/v1/blueprints", Some(json!({"identifier": "service", "title": "Theirs", "schema": {}}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, ours) = server.get("/v1/blueprints/service").await;
    assert_eq!(ours["blueprint"]["title"], "Service");
    let (_, entity) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(entity["entity"]["properties"]["secret"], "ours");

    // Rotating a client's secret stops the old one at once.
    let rotated = server.wharf_cli(&["admin", "rotate-secret", "--client", created["clientId"].as_str().unwrap()]);
    let old = json!({"clientId": created["clientId"], "clientSecret": created["clientSecret"]});
    assert_error(
        &server.call_as(None, Method::POST, "/v1/auth/access_token", Some(old)).await,
        StatusCode::UNAUTHORIZED,
        "wrong",
    );
    server.token_for(rotated["clientId"].as_str().unwrap(), rotated["clientSecret"].as_str().unwrap()).await;
    let clients = server.wharf_cli(&["admin", "list-clients", "--org", created["organizationId"].as_str().unwrap()]);
    assert_eq!(clients.as_array().unwrap().len(), 1);
    assert!(clients[0].get("clientSecret").is_none(), "secrets are never listed");
}

async fn request_errors_are_port_shaped(server: TestServer) {
    let send = |body: Vec<u8>| {
        let server = &server;
        async move {
            let response = server
                .http
                .post(format!("{}/v1/blueprints", server.base))
                .bearer_auth(&server.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    assert_error(&send(b"{\n  \"identifier\": \"x\",\n  \"title\": }".to_vec()).await, StatusCode::BAD_REQUEST, "line 3, column");
    assert_error(&send(Vec::new()).await, StatusCode::BAD_REQUEST, "empty");
    let mut big = b"{\"identifier\": \"x\", \"title\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 1));
    big.extend(b"\"}");
    assert_error(&send(big).await, StatusCode::PAYLOAD_TOO_LARGE, "larger than the limit");

    assert_error(&server.get("/v1/nothing-here").await, StatusCode::NOT_FOUND, "no route");
    let (status, body) = server.call(Method::DELETE, "/v1/organization", None).await;
    assert_error(&(status, body), StatusCode::METHOD_NOT_ALLOWED, "does not accept DELETE");
    assert_error(&server.get("/v1/blueprints/x/entities?limit=-1").await, StatusCode::BAD_REQUEST, "limit");
}

async fn operations_endpoints(server: TestServer) {
    let (status, body) = server.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    let (status, body) = server.call_as(None, Method::GET, "/readyz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    server.get("/v1/blueprints").await;
    // An extension method is counted, under a label from a fixed set (clients cannot grow it).
    let purge = Method::from_bytes(b"PURGE").unwrap();
    server.http.request(purge, format!("{}/healthz", server.base)).send().await.unwrap();
    let response = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains("http_requests_total{method=\"GET\",route=\"/v1/blueprints\",status=\"200\"}"), "{text}");
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    assert!(text.contains("http_requests_total{method=\"OTHER\",route=\"/healthz\",status=\"405\"}"), "{text}");
    assert!(!text.contains("PURGE"), "{text}");
    let response = server.http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"), "every response carries a request id");
}

async fn openapi_documents_every_route(server: TestServer) {
    let (status, doc) = server.call_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone())))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("POST", "/v1/auth/access_token"),
        ("GET", "/v1/organization"),
        ("POST", "/v1/blueprints"),
        ("GET", "/v1/blueprints"),
        ("GET", "/v1/blueprints/{identifier}"),
        ("PUT", "/v1/blueprints/{identifier}"),
        ("PATCH", "/v1/blueprints/{identifier}"),
        ("DELETE", "/v1/blueprints/{identifier}"),
        ("POST", "/v1/blueprints/{blueprint}/entities"),
        ("GET", "/v1/blueprints/{blueprint}/entities"),
        ("POST", "/v1/blueprints/{blueprint}/entities/bulk"),
        ("GET", "/v1/blueprints/{blueprint}/entities/{identifier}"),
        ("PATCH", "/v1/blueprints/{blueprint}/entities/{identifier}"),
        ("PUT", "/v1/blueprints/{blueprint}/entities/{identifier}"),
        ("DELETE", "/v1/blueprints/{blueprint}/entities/{identifier}"),
        ("POST", "/v1/blueprints/{blueprint}/entities/search"),
        ("POST", "/v1/entities/search"),
        ("GET", "/v1/audit-log"),
        ("GET", "/v1/changes/parked"),
        ("POST", "/v1/actions"),
        ("GET", "/v1/actions"),
        ("GET", "/v1/actions/{action_identifier}"),
        ("PUT", "/v1/actions/{action_identifier}"),
        ("DELETE", "/v1/actions/{action_identifier}"),
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/webhooks/metadata"),
        ("GET", "/v1/webhooks/{identifier}"),
        ("PUT", "/v1/webhooks/{identifier}"),
        ("PATCH", "/v1/webhooks/{identifier}"),
        ("DELETE", "/v1/webhooks/{identifier}"),
        ("GET", "/v1/webhooks/{identifier}/events"),
        ("GET", "/v1/webhooks/{identifier}/events/{event_id}"),
        ("POST", "/v1/webhooks/{identifier}/events/{event_id}/replay"),
        ("POST", "/v1/webhooks/{identifier}/replay"),
        ("POST", "/v1/webhooks/{identifier}/test"),
        ("POST", "/ingest/{webhook_key}"),
        ("PUT", "/ingest/{webhook_key}"),
        ("POST", "/organizations/{organizationId}/projects"),
        ("GET", "/organizations/{organizationId}/projects"),
        ("GET", "/organizations/{organizationId}/projects/{projectId}"),
        ("PATCH", "/organizations/{organizationId}/projects/{projectId}"),
        ("DELETE", "/organizations/{organizationId}/projects/{projectId}"),
        ("POST", "/organizations/{organizationId}/projects/{projectId}/events"),
        ("POST", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks"),
        ("GET", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks"),
        ("GET", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}"),
        ("PATCH", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}"),
        ("DELETE", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}"),
        ("GET", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/secret"),
        ("POST", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/secret/rotate"),
        ("GET", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries"),
        ("GET", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries/{deliveryId}"),
        (
            "GET",
            "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries/{deliveryId}/attempts",
        ),
        (
            "POST",
            "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries/{deliveryId}/resend",
        ),
        ("POST", "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/recover"),
        ("POST", "/v1/organization/secrets"),
        ("GET", "/v1/organization/secrets"),
        ("GET", "/v1/organization/secrets/{name}"),
        ("PATCH", "/v1/organization/secrets/{name}"),
        ("DELETE", "/v1/organization/secrets/{name}"),
        ("POST", "/v1/actions/{action_identifier}/runs"),
        ("GET", "/v1/actions/runs"),
        ("GET", "/v1/actions/runs/{run_id}"),
        ("PATCH", "/v1/actions/runs/{run_id}"),
        ("PATCH", "/v1/actions/runs/{run_id}/response"),
        ("PATCH", "/v1/actions/runs/{run_id}/approval"),
        ("POST", "/v1/actions/runs/{run_id}/logs"),
        ("GET", "/v1/actions/runs/{run_id}/logs"),
        ("GET", "/v1/actions/runs/{run_id}/attempts"),
        ("POST", "/v1/actions/runs/claim-pending"),
        ("PATCH", "/v1/actions/runs/ack"),
        ("POST", "/v1/workflows/runs/claim-pending"),
        ("PATCH", "/v1/workflows/runs/ack"),
        ("POST", "/v1/workflows"),
        ("GET", "/v1/workflows"),
        ("GET", "/v1/workflows/{workflow_identifier}"),
        ("PUT", "/v1/workflows/{workflow_identifier}"),
        ("DELETE", "/v1/workflows/{workflow_identifier}"),
        ("POST", "/v1/workflows/{workflow_identifier}/runs"),
        ("GET", "/v1/workflows/runs"),
        ("GET", "/v1/workflows/runs/{workflow_run_id}"),
        ("GET", "/v1/workflows/nodes/runs/{node_run_id}"),
        ("PATCH", "/v1/workflows/nodes/runs/{node_run_id}"),
        ("PATCH", "/v1/workflows/runs/{workflow_run_id}/nodes/{node_run_id}"),
        ("POST", "/v1/workflows/nodes/runs/{node_run_id}/logs"),
        ("PATCH", "/v1/organization"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(documented, expected);
    // Every documented route is served (none answers the fallback's "no route").
    for (method, path) in &documented {
        let concrete = path
            .replace("{identifier}", "x")
            .replace("{blueprint}", "x")
            .replace("{event_id}", "x")
            .replace("{webhook_key}", "x")
            .replace("{organizationId}", "x")
            .replace("{projectId}", "x")
            .replace("{webhookId}", "x")
            .replace("{deliveryId}", "x");
        let (status, body) = server.call(Method::from_bytes(method.as_bytes()).unwrap(), &concrete, None).await;
        assert!(!(status == StatusCode::NOT_FOUND && body["error"] == "not_found"), "{method} {path} is not served");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

async fn data_survives_restart(mut server: TestServer) {
    server
        .blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {"n": {"type": "number"}}}}))
        .await;
    server.upsert("service", json!({"identifier": "api", "properties": {"n": 1}})).await;
    server.restart().await;
    // Tokens stay valid across restarts: the master key is kept in the data directory.
    let (status, body) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entity"]["properties"]["n"], 1);
    let (_, audits) = server.get("/v1/audit-log").await;
    assert_eq!(audits["audits"].as_array().unwrap().len(), 2);
    assert!(server.server().bootstrap.is_none(), "a second start does not bootstrap again");
}

async fn bootstrap_writes_private_credentials(server: TestServer) {
    use std::os::unix::fs::PermissionsExt;
    let path = server.data_dir().join("credentials.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let credentials: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(credentials["clientId"], common::CLIENT_ID);
    assert_eq!(credentials["clientSecret"], common::CLIENT_SECRET);
    let key_mode = std::fs::metadata(server.data_dir().join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
}
