//! Ingestion webhooks through HTTP: the `/v1/webhooks` routes, the ingest endpoint's steps
//! in order, and the event log's tools. Every test runs on SQLite and PostgreSQL.

use crate::common;

use common::{TestServer, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn service_blueprint(server: &TestServer) {
    server
        .blueprint(json!({
            "identifier": "repo", "title": "Repository",
            "schema": {"properties": {"url": {"type": "string"}}}
        }))
        .await;
    server
        .blueprint(json!({
            "identifier": "pullRequest", "title": "Pull request",
            "schema": {"properties": {
                "author": {"type": "string"}, "state": {"type": "string"}, "url": {"type": "string"},
                "additions": {"type": "number"}, "labels": {"type": "array"}, "merged": {"type": "boolean"}
            }, "required": []},
            "relations": {"repository": {"target": "repo", "required": false, "many": false}}
        }))
        .await;
}

fn pr_mapping() -> Value {
    json!({
        "blueprint": "pullRequest",
        "filter": ".headers['x-github-event'] == 'pull_request'",
        "entity": {
            "identifier": ".body.pull_request.id | tostring",
            "title": ".body.pull_request.title",
            "properties": {
                "author": ".body.pull_request.user.login",
                "state": ".body.pull_request.state",
                "url": ".body.pull_request.html_url"
            },
            "relations": {"repository": ".body.repository.name"}
        }
    })
}

fn pr_event(id: u64, title: &str) -> Value {
    json!({
        "action": "opened",
        "pull_request": {"id": id, "title": title, "state": "open", "html_url": format!("https://github.com/o/r/pull/{id}"),
                          "user": {"login": "octocat"}},
        "repository": {"name": "wharf"}
    })
}

const GITHUB_SECRET: &str = "It's a Secret to Everybody";

fn github_signature(body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn crud_matches_port(server: TestServer) {
    service_blueprint(&server).await;
    let created = server
        .webhook(json!({"title": "GitHub", "mappings": [pr_mapping()], "security": {"secret": "s3cret", "signatureHeaderName": "x-hub-signature-256", "signatureAlgorithm": "sha256", "signaturePrefix": "sha256="}}))
        .await;
    let identifier = created["identifier"].as_str().unwrap().to_owned();
    assert!(identifier.len() <= 30, "{identifier}");
    let key = created["webhookKey"].as_str().unwrap();
    assert!(key.len() >= 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
    // The address the server listens on (test servers ask for port 0 and get another).
    assert_eq!(created["url"], format!("{}/ingest/{key}", server.base));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["integrationType"], "custom");
    assert_eq!(created["createdBy"], common::CLIENT_ID);
    assert!(created["createdAt"].is_string() && created["updatedAt"].is_string());
    assert!(created["security"].get("secret").is_none(), "the secret is never returned: {created}");
    assert_eq!(created["security"]["signatureHeaderName"], "x-hub-signature-256");

    let (status, got) = server.get(&format!("/v1/webhooks/{identifier}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["integration"], created);
    let (_, list) = server.get("/v1/webhooks").await;
    assert_eq!(list["integrations"].as_array().unwrap().len(), 1);
    let (_, metadata) = server.get("/v1/webhooks/metadata").await;
    assert_eq!(metadata["integrations"][0]["identifier"], identifier.as_str());
    assert_eq!(metadata["integrations"][0]["title"], "GitHub");
    assert!(metadata["integrations"][0].get("mappings").is_none());

    // PATCH changes only what it names.
    let (status, patched) =
        server.patch(&format!("/v1/webhooks/{identifier}"), json!({"description": "PRs", "enabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["integration"]["description"], "PRs");
    assert_eq!(patched["integration"]["enabled"], false);
    assert_eq!(patched["integration"]["mappings"], created["mappings"]);
    assert_eq!(patched["integration"]["webhookKey"], created["webhookKey"]);

    // PUT replaces the document; what it leaves out is gone.
    let (status, replaced) =
        server.put(&format!("/v1/webhooks/{identifier}"), json!({"title": "GitHub 2", "enabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["integration"]["title"], "GitHub 2");
    assert_eq!(replaced["integration"]["mappings"], json!([]));
    assert!(replaced["integration"].get("description").is_none());
    assert_eq!(replaced["integration"]["createdAt"], created["createdAt"]);

    let (status, _) = server.delete(&format!("/v1/webhooks/{identifier}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&server.get(&format!("/v1/webhooks/{identifier}")).await, StatusCode::NOT_FOUND, "was not found");
    let (status, _) = server.ingest_raw(key, "", &[], "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted webhook's URL is gone at once");
}

async fn validation_names_the_path(server: TestServer) {
    service_blueprint(&server).await;
    server.webhook(json!({"identifier": "gh", "title": "GitHub"})).await;
    assert_error(
        &server.post("/v1/webhooks", json!({"identifier": "gh", "title": "again"})).await,
        StatusCode::CONFLICT,
        "already exists",
    );
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "x", "colour": "red"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "colour",
    );
    assert_error(&server.post("/v1/webhooks", json!({"identifier": "x"})).await, StatusCode::UNPROCESSABLE_ENTITY, "title");
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "a title that is far longer than thirty characters"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`title` must be 1 to 30 characters",
    );
    assert_error(
        &server.post("/v1/webhooks", json!({"identifier": "this-identifier-is-longer-than-30", "title": "x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "identifier",
    );
    let mut bad = pr_mapping();
    bad["entity"]["properties"]["author"] = json!(".body.pull_request.user.login | ");
    let result = server.post("/v1/webhooks", json!({"title": "x", "mappings": [pr_mapping(), bad]})).await;
    assert_error(&result, StatusCode::UNPROCESSABLE_ENTITY, "mappings[1].entity.properties.author");
    assert_eq!(result.1["error"], "invalid_jq");
    let mut unknown = pr_mapping();
    unknown["blueprint"] = json!("nope");
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "x", "mappings": [unknown]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`mappings[0].blueprint` is `nope`",
    );
    let mut extra = pr_mapping();
    extra["entity"]["colour"] = json!("'red'");
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "x", "mappings": [extra]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "colour",
    );
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "x", "security": {"requestIdentifierPath": ".headers["}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "security.requestIdentifierPath",
    );
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "x", "security": {"signatureAlgorithm": "md5"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signatureAlgorithm",
    );
    let delete_with_title =
        json!({"blueprint": "repo", "operation": "delete", "entity": {"identifier": ".body.id", "title": ".x"}});
    assert_error(
        &server.post("/v1/webhooks", json!({"title": "x", "mappings": [delete_with_title]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a delete mapping has only `identifier`",
    );
    assert_error(&server.patch("/v1/webhooks/missing", json!({"title": "y"})).await, StatusCode::NOT_FOUND, "missing");
    // A saved webhook is unchanged by a refused update.
    assert_error(
        &server.patch("/v1/webhooks/gh", json!({"mappings": [{"blueprint": "repo", "entity": {"identifier": "..."}}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "mappings[0].entity.identifier",
    );
    let (_, gh) = server.get("/v1/webhooks/gh").await;
    assert_eq!(gh["integration"]["mappings"], json!([]));
}

async fn ingest_steps_in_order(server: TestServer) {
    service_blueprint(&server).await;
    let hook = server
        .webhook(json!({"identifier": "gh", "title": "GitHub", "mappings": [pr_mapping()],
            "security": {"secret": GITHUB_SECRET, "signatureHeaderName": "X-Hub-Signature-256", "signatureAlgorithm": "sha256", "signaturePrefix": "sha256="}}))
        .await;
    let key = hook["webhookKey"].as_str().unwrap();

    // 1. Unknown key → 404; body over the limit → 413.
    assert_error(
        &server.ingest_raw("no-such-key-0000000000000000000000000000", "", &[], "{}").await,
        StatusCode::NOT_FOUND,
        "no webhook",
    );
    let huge = vec![b'x'; 600 * 1024];
    let (status, body) = server.ingest_raw(key, "", &[("content-type", "text/plain")], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // 3. Signature: missing or wrong → 401 and a rejected event without the body.
    let body = pr_event(1, "First").to_string();
    let result = server.ingest_raw(key, "", &[("content-type", "application/json")], body.clone()).await;
    assert_error(&result, StatusCode::UNAUTHORIZED, "X-Hub-Signature-256");
    assert_eq!(result.1["error"], "invalid_signature");
    let wrong = github_signature(b"other body");
    let result =
        server.ingest_raw(key, "", &[("content-type", "application/json"), ("x-hub-signature-256", &wrong)], body.clone()).await;
    assert_error(&result, StatusCode::UNAUTHORIZED, "does not match");
    let (_, rejected) = server.get("/v1/webhooks/gh/events?status=REJECTED").await;
    assert_eq!(rejected["events"].as_array().unwrap().len(), 2, "{rejected}");
    let rejected_id = rejected["events"][0]["id"].as_str().unwrap();
    let (_, detail) = server.get(&format!("/v1/webhooks/gh/events/{rejected_id}")).await;
    assert_eq!(detail["event"]["request"], Value::Null, "a rejected event keeps no request");
    assert_error(
        &server.post(&format!("/v1/webhooks/gh/events/{rejected_id}/replay"), json!({})).await,
        StatusCode::CONFLICT,
        "rejected",
    );

    // Header names match case-insensitively; the 202 carries the event id.
    let signature = github_signature(body.as_bytes());
    let (status, accepted) = server
        .ingest_raw(
            key,
            "?a=1&tag=x&tag=y",
            &[("Content-Type", "application/json"), ("X-HUB-SIGNATURE-256", &signature), ("X-GitHub-Event", "pull_request")],
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let event_id = accepted["eventId"].as_str().unwrap();
    assert!(event_id.starts_with("whe_"), "{accepted}");
    assert_eq!(accepted, json!({"ok": true, "eventId": event_id}));

    // 5. The stored request is the jq input: lowercase headers, query strings (arrays when repeated).
    let event = server.mapped_event("gh", event_id).await;
    assert_eq!(event["status"], "SUCCESS", "{event}");
    assert_eq!(event["request"]["headers"]["x-github-event"], "pull_request");
    assert_eq!(event["request"]["queryParams"], json!({"a": "1", "tag": ["x", "y"]}));
    assert_eq!(event["request"]["body"], pr_event(1, "First"));
    let entity = server.get("/v1/blueprints/pullRequest/entities/1").await.1["entity"].clone();
    assert_eq!(entity["title"], "First");
    assert_eq!(entity["properties"]["author"], "octocat");
    assert_eq!(entity["relations"]["repository"], "wharf");

    // 4. Broken JSON with a JSON content type → 400, naming the position.
    let broken = "{\"pull_request\": ";
    let result = server
        .ingest_raw(
            key,
            "",
            &[("content-type", "application/json"), ("x-hub-signature-256", &github_signature(broken.as_bytes()))],
            broken,
        )
        .await;
    assert_error(&result, StatusCode::BAD_REQUEST, "line 1");

    // 2. Disabled → 202 ignored, nothing stored (checked before the signature).
    let (_, before) = server.get("/v1/webhooks/gh/events").await;
    server.patch("/v1/webhooks/gh", json!({"enabled": false})).await;
    let (status, ignored) = server.ingest_raw(key, "", &[("content-type", "application/json")], body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(ignored, json!({"ok": true, "ignored": "webhook disabled"}));
    let (_, after) = server.get("/v1/webhooks/gh/events").await;
    assert_eq!(before["events"], after["events"]);
}

/// `POST`/`PUT /ingest/{key}` takes a lane of its own beside the router (`app.rs`); whichever
/// path a request takes, it gets the same answer, the same request id and the same metrics.
async fn ingest_answers_alike_beside_the_router(server: TestServer) {
    service_blueprint(&server).await;
    let hook = server.webhook(json!({"identifier": "lane", "title": "Lane", "mappings": [pr_mapping()]})).await;
    let key = hook["webhookKey"].as_str().unwrap().to_owned();
    let route = "route=\"/ingest/{webhook_key}\"";
    let puts_before = metric(&server, &format!("http_requests_total{{method=\"PUT\",{route},status=\"202\"}}")).await;
    let send = |method: reqwest::Method, path: String, request_id: Option<&'static str>| {
        let mut request = server
            .http
            .request(method, format!("{}{path}", server.base))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .body(pr_event(7, "Lane").to_string());
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        async move {
            let response = request.send().await.unwrap();
            let id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
            (response.status(), id, response.json::<Value>().await.unwrap())
        }
    };

    // The sender's request id comes back and is stored with the request; without one, the id
    // made for it is both answered and stored.
    for (method, given) in [(reqwest::Method::POST, Some("sender-id-1")), (reqwest::Method::PUT, None)] {
        let (status, answered, body) = send(method.clone(), format!("/ingest/{key}"), given).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{method}: {body}");
        let answered = answered.expect("every response carries a request id");
        assert_eq!(given.unwrap_or(&answered), answered);
        let event = server.mapped_event("lane", body["eventId"].as_str().unwrap()).await;
        assert_eq!(event["request"]["headers"]["x-request-id"], answered.as_str(), "{event}");
        assert_eq!(event["status"], "SUCCESS", "{event}");
    }

    // A percent-encoded key is decoded by the router: the same event, the same answer.
    let encoded = format!("%{:02X}{}", key.as_bytes()[0], &key[1..]);
    let (status, answered, body) = send(reqwest::Method::POST, format!("/ingest/{encoded}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(answered.is_some() && body["eventId"].as_str().unwrap().starts_with("whe_"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");

    // What the lane does not take, the router answers in Port's shape.
    let (status, _, body) = send(reqwest::Method::GET, format!("/ingest/{key}"), None).await;
    assert_error(&(status, body.clone()), StatusCode::METHOD_NOT_ALLOWED, "does not accept GET");
    let (status, _, body) = send(reqwest::Method::POST, format!("/ingest/{key}/more"), None).await;
    assert_error(&(status, body), StatusCode::NOT_FOUND, "no route");

    // The lane counts its requests under the route's name, as the router does.
    let puts_after = metric(&server, &format!("http_requests_total{{method=\"PUT\",{route},status=\"202\"}}")).await;
    assert!(puts_after > puts_before, "{puts_before} → {puts_after}");
    assert!(metric(&server, &format!("http_requests_total{{method=\"POST\",{route},status=\"202\"}}")).await >= 2.0);
}

/// A sample's value in `/metrics` (0 before it is first recorded).
async fn metric(server: &TestServer, sample: &str) -> f64 {
    let text = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(sample).map(|value| value.trim().parse::<f64>().unwrap())).unwrap_or(0.0)
}

async fn bodies_of_every_kind(server: TestServer) {
    server
        .blueprint(json!({"identifier": "note", "title": "Note", "schema": {"properties": {"text": {"type": "string"}}}}))
        .await;
    let hook = server
        .webhook(json!({"identifier": "notes", "title": "Notes", "mappings": [{
            "blueprint": "note",
            "entity": {"identifier": ".queryParams.id", "properties": {"text": ".body | if type == \"object\" then (.payload.text // .text) else . end"}}
        }]}))
        .await;
    let key = hook["webhookKey"].as_str().unwrap();
    // GitHub's form encoding: a `payload` field holding JSON.
    let form = format!("payload={}", urlencode(&json!({"text": "from a form"}).to_string()));
    let (status, reply) =
        server.ingest_raw(key, "?id=form", &[("content-type", "application/x-www-form-urlencoded")], form).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let event = server.mapped_event("notes", reply["eventId"].as_str().unwrap()).await;
    assert_eq!(event["request"]["body"]["payload"]["text"], "from a form");
    let (status, reply) = server.ingest_raw(key, "?id=text", &[("content-type", "text/plain")], "just text").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.mapped_event("notes", reply["eventId"].as_str().unwrap()).await;
    let (status, reply) = server.ingest_raw(key, "?id=json", &[], "{\"text\": \"no content type\"}").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.mapped_event("notes", reply["eventId"].as_str().unwrap()).await;
    for (id, text) in [("form", "from a form"), ("text", "just text"), ("json", "no content type")] {
        let (_, entity) = server.get(&format!("/v1/blueprints/note/entities/{id}")).await;
        assert_eq!(entity["entity"]["properties"]["text"], text, "{entity}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn signature_algorithms(server: TestServer) {
    // The known answers of signatures.json, through HTTP (the core test runs all of them).
    let cases = [
        ("sha1", "X-Hub-Signature", "sha1=", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"),
        ("sha256", "X-Signature", "", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
    ];
    for (i, (algorithm, header, prefix, expected)) in cases.iter().enumerate() {
        let hook = server
            .webhook(json!({"identifier": format!("h{i}"), "title": "h", "security": {
                "secret": GITHUB_SECRET, "signatureHeaderName": header, "signatureAlgorithm": algorithm, "signaturePrefix": prefix}}))
            .await;
        let key = hook["webhookKey"].as_str().unwrap();
        let (status, body) = server.ingest_raw(key, "", &[(header, expected)], "Hello, World!").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{algorithm}: {body}");
        let (status, _) = server.ingest_raw(key, "", &[(header, expected)], "Hello, World?").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{algorithm}: a tampered body is refused");
        let upper = expected.to_uppercase();
        let (status, _) = server.ingest_raw(key, "", &[(header, &upper)], "Hello, World!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{algorithm}: only lowercase hex");
    }
    let plain = server
        .webhook(json!({"identifier": "plain", "title": "p", "security": {"secret": "tok/en+", "signatureHeaderName": "X-Token", "signatureAlgorithm": "plain"}}))
        .await;
    let key = plain["webhookKey"].as_str().unwrap();
    assert_eq!(server.ingest_raw(key, "", &[("x-token", "tok/en+")], "{}").await.0, StatusCode::ACCEPTED);
    assert_eq!(server.ingest_raw(key, "", &[("x-token", "tok/en-")], "{}").await.0, StatusCode::UNAUTHORIZED);

    // The secret is write-only and survives updates that do not mention it.
    let (status, _) = server
        .put(
            "/v1/webhooks/plain",
            json!({"title": "p2", "security": {"signatureHeaderName": "X-Token", "signatureAlgorithm": "plain"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.ingest_raw(key, "", &[("x-token", "tok/en-")], "{}").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.ingest_raw(key, "", &[("x-token", "tok/en+")], "{}").await.0, StatusCode::ACCEPTED);
    server
        .patch(
            "/v1/webhooks/plain",
            json!({"security": {"secret": "new", "signatureHeaderName": "X-Token", "signatureAlgorithm": "plain"}}),
        )
        .await;
    assert_eq!(server.ingest_raw(key, "", &[("x-token", "tok/en+")], "{}").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.ingest_raw(key, "", &[("x-token", "new")], "{}").await.0, StatusCode::ACCEPTED);
    // Secrets are sealed at rest: the database never holds them in clear.
    if server.backend == common::Backend::Sqlite {
        let db = std::fs::read(server.data_dir().join("wharf.db")).unwrap();
        let wal = std::fs::read(server.data_dir().join("wharf.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(!bytes.windows(7).any(|w| w == b"tok/en+"), "secret stored in clear");
        }
    }
}

/// A webhook `gh` that deduplicates by the `X-GitHub-Delivery` header; its ingest key.
async fn deduplicating_webhook(server: &TestServer) -> String {
    service_blueprint(server).await;
    let hook = server
        .webhook(json!({"identifier": "gh", "title": "GitHub", "mappings": [pr_mapping()],
            "security": {"requestIdentifierPath": ".headers['x-github-delivery']"}}))
        .await;
    hook["webhookKey"].as_str().unwrap().to_owned()
}

async fn duplicates_are_acknowledged_once(server: TestServer) {
    let key = &deduplicating_webhook(&server).await;
    let headers = [("x-github-event", "pull_request"), ("X-GitHub-Delivery", "delivery-1")];
    let first = server.ingest(key, &pr_event(7, "Seven"), &headers).await;
    let (status, again) = server
        .ingest_raw(key, "", &[("content-type", "application/json"), headers[0], headers[1]], pr_event(7, "Changed").to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, json!({"ok": true, "duplicate": true, "eventId": first}));
    let other = server.ingest(key, &pr_event(8, "Eight"), &[headers[0], ("x-github-delivery", "delivery-2")]).await;
    assert_ne!(other, first);
    server.mapped_event("gh", &first).await;
    server.mapped_event("gh", &other).await;
    let (_, events) = server.get("/v1/webhooks/gh/events").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "the duplicate was not stored");
    assert_eq!(server.get("/v1/blueprints/pullRequest/entities/7").await.1["entity"]["title"], "Seven");
    assert_eq!(events["events"][1]["requestId"], "delivery-1");
}

fn short_dedupe_window(settings: &mut wharf::config::Settings) {
    settings.ingest.dedupe_window = std::time::Duration::from_millis(300);
}

/// A request identifier is remembered for the dedupe window only: after it, the same id is a
/// new event, which then holds the id for a window of its own.
async fn dedupe_ends_with_its_window(server: TestServer) {
    let key = &deduplicating_webhook(&server).await;
    let headers = [("x-github-event", "pull_request"), ("x-github-delivery", "delivery-1")];
    let send = || async {
        let all = [("content-type", "application/json"), headers[0], headers[1]];
        server.ingest_raw(key, "", &all, pr_event(7, "Seven").to_string()).await
    };
    let first = send().await.1;
    assert_eq!(send().await.1["duplicate"], true, "within the window");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (status, later) = send().await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(later["duplicate"], Value::Null, "after the window the id is taken over: {later}");
    assert_ne!(later["eventId"], first["eventId"]);
    assert_eq!(send().await.1, json!({"ok": true, "duplicate": true, "eventId": later["eventId"]}));
}

mod dedupe_window {
    use super::*;
    both_stores!(configure = short_dedupe_window; dedupe_ends_with_its_window);
}

both_stores!(
    crud_matches_port,
    validation_names_the_path,
    ingest_steps_in_order,
    ingest_answers_alike_beside_the_router,
    bodies_of_every_kind,
    signature_algorithms,
    duplicates_are_acknowledged_once,
);
