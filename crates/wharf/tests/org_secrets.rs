//! Organization secrets (issue 24, point 5; reference §3.9) through the HTTP API of a real
//! server, on both stores: create, list, read, change and delete; documents refused with the
//! field named; names unique per organization; organizations apart; the cap of 1,000; and a
//! value that never comes back: not in any answer, not in the log, not in the database in
//! clear (SQLite's files, PostgreSQL's rows), while the engine still opens it.
//!
//! (`tests/suite/secrets.rs` is about secrets at rest of another kind: file modes and API clients.)

mod common;

use std::sync::Arc;

use common::{Backend, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wharf_engine::Secrets;

both_stores!(
    secrets_are_created_listed_read_changed_and_deleted,
    bad_documents_are_refused_naming_the_field,
    secrets_belong_to_their_organization,
    a_secret_value_never_comes_back,
    an_organization_has_at_most_1000_secrets,
    the_documented_examples_are_taken,
);

const SECRETS: &str = "/v1/organization/secrets";

/// A value no other test uses.
fn unique_value(tag: &str) -> String {
    format!("{tag}-{}-value", wharf_ids::random_base62(24))
}

fn secret_path(name: &str) -> String {
    format!("{SECRETS}/{name}")
}

async fn create(server: &TestServer, doc: Value) -> Value {
    let (status, body) = server.post(SECRETS, doc).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    body["secret"].clone()
}

async fn secrets_are_created_listed_read_changed_and_deleted(server: TestServer) {
    let created =
        create(&server, json!({"secretName": "slack_token-1", "secretValue": "xoxb-1", "description": "Posts to #deploys"}))
            .await;
    assert_eq!(created["secretName"], "slack_token-1");
    assert_eq!(created["description"], "Posts to #deploys");
    assert_eq!(created["createdBy"], common::CLIENT_ID);
    assert_eq!(created["updatedBy"], common::CLIENT_ID);
    assert!(created["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{created}");
    assert_eq!(created["createdAt"], created["updatedAt"]);
    assert!(created.get("secretValue").is_none(), "{created}");
    create(&server, json!({"secretName": "aws", "secretValue": "AKIA-2"})).await;

    let (status, list) = server.get(SECRETS).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["ok"], true);
    let names: Vec<&str> = list["secrets"].as_array().unwrap().iter().map(|s| s["secretName"].as_str().unwrap()).collect();
    assert_eq!(names, ["aws", "slack_token-1"], "listed by name: {list}");
    assert!(list["secrets"][0].get("description").is_none(), "{list}");

    let (status, got) = server.get(&secret_path("slack_token-1")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["secret"], created);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, patched) = server.patch(&secret_path("slack_token-1"), json!({"secretValue": "xoxb-2"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let patched = &patched["secret"];
    assert_eq!(patched["description"], "Posts to #deploys", "a PATCH keeps what it does not name");
    assert_eq!(patched["createdAt"], created["createdAt"]);
    assert!(patched["updatedAt"].as_str() > created["updatedAt"].as_str(), "{patched}");
    let (status, patched) = server.patch(&secret_path("slack_token-1"), json!({"description": null})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["secret"].get("description").is_none(), "`null` removes the description: {patched}");
    let (_, got) = server.get(&secret_path("slack_token-1")).await;
    assert_eq!(got["secret"], patched["secret"], "the change is stored");

    let (status, deleted) = server.delete(&secret_path("slack_token-1")).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({"ok": true})));
    assert_error(&server.get(&secret_path("slack_token-1")).await, StatusCode::NOT_FOUND, "`slack_token-1` does not exist");
    assert_error(&server.delete(&secret_path("slack_token-1")).await, StatusCode::NOT_FOUND, "does not exist");
    let (_, list) = server.get(SECRETS).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1, "{list}");
    // The name is free again.
    create(&server, json!({"secretName": "slack_token-1", "secretValue": "xoxb-3"})).await;

    // Secrets are kept across a restart, and the engine opens each as its latest value.
    let mut server = server;
    server.restart().await;
    let (_, list) = server.get(SECRETS).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 2, "{list}");
    let values = opened(&server).await;
    assert_eq!(values.get("slack_token-1").map(|v| v.expose().to_owned()).as_deref(), Some("xoxb-3"));
    assert_eq!(values.get("aws").map(|v| v.expose().to_owned()).as_deref(), Some("AKIA-2"));
    assert_eq!(values.context(), json!({"aws": "AKIA-2", "slack_token-1": "xoxb-3"}));
}

/// The default organization's secrets as the engine opens them for a template's `.secrets`,
/// through a store and master key of its own on the server's data.
async fn opened(server: &TestServer) -> std::sync::Arc<wharf_core::secret::SecretValues> {
    let org = organization(server, &server.token).await;
    let store = wharf::server::open_store(&server.settings).await.expect("the store opens");
    let master = wharf::server::master_key(&server.settings).expect("the master key");
    let values = Secrets::new(store.clone(), master).open_all(&org).await.expect("every secret opens");
    store.close().await;
    values
}

async fn organization(server: &TestServer, token: &str) -> String {
    let (status, body) = server.call_as(Some(token), Method::GET, "/v1/organization", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["organization"]["id"].as_str().unwrap().to_owned()
}

async fn bad_documents_are_refused_naming_the_field(server: TestServer) {
    let refused = |doc: Value, part: &'static str| {
        let server = &server;
        async move {
            let answer = server.post(SECRETS, doc.clone()).await;
            assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, part);
            assert_eq!(answer.1["error"], "invalid_secret", "{doc}: {}", answer.1);
        }
    };
    let long = "n".repeat(101);
    for name in ["", "a b", "a.b", "a/b", "ä", long.as_str()] {
        refused(json!({"secretName": name, "secretValue": "v"}), "`secretName` must be 1 to 100").await;
    }
    refused(json!({"secretValue": "v"}), "`secretName` is required").await;
    refused(json!({"secretName": 7, "secretValue": "v"}), "`secretName` must be a string").await;
    refused(json!({"secretName": "a"}), "`secretValue` is required").await;
    refused(json!({"secretName": "a", "secretValue": ""}), "`secretValue` must not be empty").await;
    refused(json!({"secretName": "a", "secretValue": {"k": 1}}), "`secretValue` must be a string").await;
    refused(json!({"secretName": "a", "secretValue": "v".repeat(64 * 1024 + 1)}), "more than the 65536 bytes").await;
    refused(json!({"secretName": "a", "secretValue": "v", "description": ["x"]}), "`description` must be a string").await;
    refused(json!({"secretName": "a", "secretValue": "v", "description": "d".repeat(2001)}), "`description` is longer").await;
    refused(json!({"secretName": "a", "secretValue": "v", "value": "v"}), "unknown key `value`").await;
    refused(json!(["secretName"]), "must be a JSON object").await;
    // At the limits: taken.
    create(&server, json!({"secretName": "n".repeat(100), "secretValue": "v".repeat(64 * 1024)})).await;
    create(&server, json!({"secretName": "A-z_0", "secretValue": " "})).await;
    // Not JSON at all: 400.
    assert_error(&server.post_text(SECRETS, "{\"secretName\": ").await, StatusCode::BAD_REQUEST, "");

    // A taken name is a 409; the first secret is unchanged.
    let first = create(&server, json!({"secretName": "db-password", "secretValue": "one", "description": "first"})).await;
    assert_error(
        &server.post(SECRETS, json!({"secretName": "db-password", "secretValue": "two"})).await,
        StatusCode::CONFLICT,
        "a secret named `db-password` already exists",
    );
    assert_eq!(server.get(&secret_path("db-password")).await.1["secret"], first);
    // Names are case-sensitive.
    create(&server, json!({"secretName": "DB-PASSWORD", "secretValue": "three"})).await;

    // Unknown names: 404 for every route, whatever the name looks like.
    let long = "m".repeat(101);
    for name in ["missing", "not%20a%20name", long.as_str()] {
        let path = secret_path(name);
        assert_error(&server.get(&path).await, StatusCode::NOT_FOUND, "does not exist");
        assert_error(&server.patch(&path, json!({"secretValue": "x"})).await, StatusCode::NOT_FOUND, "does not exist");
        assert_error(&server.delete(&path).await, StatusCode::NOT_FOUND, "does not exist");
    }
    // A PATCH document is checked too: 422 naming the field, nothing changed.
    let path = secret_path("db-password");
    assert_error(&server.patch(&path, json!({"secretValue": ""})).await, StatusCode::UNPROCESSABLE_ENTITY, "`secretValue`");
    assert_error(&server.patch(&path, json!({"secretValue": 1})).await, StatusCode::UNPROCESSABLE_ENTITY, "`secretValue`");
    assert_error(&server.patch(&path, json!({"secretName": "x"})).await, StatusCode::UNPROCESSABLE_ENTITY, "cannot be changed");
    assert_error(&server.patch(&path, json!({"tier": 1})).await, StatusCode::UNPROCESSABLE_ENTITY, "unknown key `tier`");
    assert_error(&server.patch(&path, json!(7)).await, StatusCode::UNPROCESSABLE_ENTITY, "JSON object");
    assert_eq!(server.get(&path).await.1["secret"], first);
    // No token: 401.
    let (status, _) = server.call_as(None, Method::GET, SECRETS, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn secrets_belong_to_their_organization(server: TestServer) {
    let ours = create(&server, json!({"secretName": "token", "secretValue": "ours"})).await;
    let (_, other) = server.other_organization("Other").await;
    let as_other = |method: Method, path: String, body: Option<Value>| {
        let (server, other) = (&server, &other);
        async move { server.call_as(Some(other), method, &path, body).await }
    };
    let (status, list) = as_other(Method::GET, SECRETS.into(), None).await;
    assert_eq!((status, list), (StatusCode::OK, json!({"ok": true, "secrets": []})));
    assert_error(&as_other(Method::GET, secret_path("token"), None).await, StatusCode::NOT_FOUND, "does not exist");
    assert_error(
        &as_other(Method::PATCH, secret_path("token"), Some(json!({"secretValue": "stolen"}))).await,
        StatusCode::NOT_FOUND,
        "does not exist",
    );
    assert_error(&as_other(Method::DELETE, secret_path("token"), None).await, StatusCode::NOT_FOUND, "does not exist");
    // The same name is free in another organization, and each keeps its own.
    let (status, theirs) =
        as_other(Method::POST, SECRETS.into(), Some(json!({"secretName": "token", "secretValue": "theirs"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_ne!(theirs["secret"]["createdBy"], ours["createdBy"], "made by the other organization's client");
    assert_eq!(server.get(&secret_path("token")).await.1["secret"], ours);
    let (_, list) = server.get(SECRETS).await;
    assert_eq!(list["secrets"], json!([ours]));
    assert_eq!(opened(&server).await.get("token").map(|v| v.expose().to_owned()).as_deref(), Some("ours"));
    let (status, _) = as_other(Method::DELETE, secret_path("token"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get(&secret_path("token")).await.0, StatusCode::OK, "deleting theirs leaves ours");
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

async fn a_secret_value_never_comes_back(server: TestServer) {
    let log = common::captured_log();
    let first = unique_value("first");
    let second = unique_value("second");
    let mut answers: Vec<(StatusCode, Value)> = Vec::new();
    let name = format!("leak-check-{}", wharf_ids::random_base62(8));
    let path = secret_path(&name);

    answers.push(
        server.post(SECRETS, json!({"secretName": name, "secretValue": first, "description": "a value to look for"})).await,
    );
    assert_eq!(answers[0].0, StatusCode::CREATED, "{}", answers[0].1);
    answers.push(server.get(SECRETS).await);
    answers.push(server.get(&path).await);
    // Refusals do not quote the value either: a duplicate, a value too large, an unknown key.
    answers.push(server.post(SECRETS, json!({"secretName": name, "secretValue": first})).await);
    answers
        .push(server.post(SECRETS, json!({"secretName": "big", "secretValue": first.repeat(64 * 1024 / first.len() + 1)})).await);
    answers.push(server.post(SECRETS, json!({"secretName": "k", "secretValue": first, "extra": true})).await);
    answers.push(server.post(SECRETS, json!({"secretName": "bad name", "secretValue": first})).await);
    answers.push(server.patch(&path, json!({"secretValue": second})).await);
    answers.push(server.patch(&path, json!({"secretValue": second, "other": 1})).await);
    answers.push(server.patch(&secret_path("missing"), json!({"secretValue": second})).await);
    answers.push(server.get(&path).await);
    answers.push(server.get(SECRETS).await);
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| status.as_u16()).collect();
    assert_eq!(statuses, [201, 200, 200, 409, 422, 422, 422, 200, 422, 404, 200, 200], "{answers:?}");
    for (status, body) in &answers {
        let text = body.to_string();
        assert!(!text.contains(&first) && !text.contains(&second), "an answer ({status}) carries a value: {text}");
    }

    // The log: live (it has this secret's lines), without the values.
    let logged = log.text();
    assert!(logged.contains("secret created") && logged.contains(&name), "the log is captured");
    assert!(!logged.contains(&first) && !logged.contains(&second), "a value is in the log");

    // The database holds the value only sealed.
    let store = wharf::server::open_store(&server.settings).await.expect("the store opens");
    let rows = store.secret_rows_as_text().await.expect("the rows read");
    store.close().await;
    let row = rows.iter().find(|row| row.contains(&name)).unwrap_or_else(|| panic!("the secret's row: {rows:?}"));
    assert!(row.contains("a value to look for"), "{row}");
    for row in &rows {
        assert!(!row.contains(&first) && !row.contains(&second), "a value is stored in clear: {row}");
    }
    if server.backend == Backend::Sqlite {
        let mut all = Vec::new();
        for file in ["wharf.db", "wharf.db-wal"] {
            let Ok(bytes) = std::fs::read(server.data_dir().join(file)) else { continue };
            assert!(!contains(&bytes, &first) && !contains(&bytes, &second), "{file} holds a value in clear");
            all.extend(bytes);
        }
        // The search looks where the row is (in the database file or still in its WAL).
        assert!(contains(&all, &name), "the SQLite files hold the secret's row");
    }
    // And the value is there: the engine opens it.
    let values = opened(&server).await;
    assert_eq!(values.get(&name).map(|v| v.expose().to_owned()).as_deref(), Some(second.as_str()), "stored, and opens");
}

async fn an_organization_has_at_most_1000_secrets(server: TestServer) {
    // 1,010 creates, 16 at a time: exactly 1,000 pass, however they interleave.
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..16 {
        let (http, base, token, next) = (server.http.clone(), server.base.clone(), server.token.clone(), next.clone());
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 1010 {
                    return statuses;
                }
                let response = http
                    .post(format!("{base}{SECRETS}"))
                    .bearer_auth(&token)
                    .json(&json!({"secretName": format!("s{i}"), "secretValue": "v"}))
                    .send()
                    .await
                    .expect("request sent");
                statuses.push(response.status());
            }
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = tasks.join_next().await {
        statuses.extend(done.expect("task"));
    }
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let full = statuses.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY).count();
    assert_eq!((created, full), (1000, 10), "{statuses:?}");
    let (_, list) = server.get(SECRETS).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1000);
    let answer = server.post(SECRETS, json!({"secretName": "one-more", "secretValue": "v"})).await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "has 1000 secrets, the most it may have (1000)");
    assert_eq!(answer.1["error"], "too_many_secrets");
    // Another organization has room of its own; deleting one makes room.
    let (_, other) = server.other_organization("Roomy").await;
    let (status, body) =
        server.call_as(Some(&other), Method::POST, SECRETS, Some(json!({"secretName": "one-more", "secretValue": "v"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let taken = list["secrets"][0]["secretName"].as_str().unwrap().to_owned();
    assert_eq!(server.delete(&secret_path(&taken)).await.0, StatusCode::OK);
    create(&server, json!({"secretName": "one-more", "secretValue": "v"})).await;
}

async fn the_documented_examples_are_taken(server: TestServer) {
    let (status, doc) = server.call_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["SecretDoc"]["properties"]["secretValue"]["writeOnly"], true, "{}", schemas["SecretDoc"]);
    assert_eq!(schemas["SecretPatch"]["properties"]["secretValue"]["writeOnly"], true);
    assert!(schemas["Secret"]["properties"].get("secretValue").is_none(), "answers have no value");
    let name = &doc["paths"]["/v1/organization/secrets/{name}"]["get"]["parameters"][0]["schema"];
    assert_eq!(name["pattern"], "^[A-Za-z0-9_-]+$", "{name}");
    for (method, path) in [("post", SECRETS.to_owned()), ("get", SECRETS.to_owned()), ("patch", format!("{SECRETS}/{{name}}"))] {
        assert!(doc["paths"][&path][method].is_object(), "{method} {path} is documented");
    }
    let example = |schema: &str| schemas[schema]["examples"][0].clone();
    let created = create(&server, example("SecretDoc")).await;
    let path = secret_path(created["secretName"].as_str().unwrap());
    let (status, patched) = server.patch(&path, example("SecretPatch")).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
}
