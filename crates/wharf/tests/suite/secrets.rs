//! Secrets at rest and revocation: file modes, client secret rotation and deletion revoking
//! access tokens (through the real CLI and the real server).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Backend, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The data directory is 0700 and every file Wharf writes in it 0600: the SQLite database
/// and its WAL and shared-memory files, the master key, the first-start credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private() {
    let server = TestServer::start(Backend::Sqlite).await.expect("sqlite");
    // A write, so that the WAL has been used.
    server.blueprint(json!({"identifier": "service", "title": "Service", "schema": {}})).await;
    let dir = server.data_dir();
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for name in ["wharf.db", "wharf.db-wal", "wharf.db-shm", "master.key", "credentials.json"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}

/// A database or key file left readable by others (an older Wharf, a copy) is made 0600 at
/// start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_database_files_are_narrowed_at_start() {
    let mut server = TestServer::start(Backend::Sqlite).await.expect("sqlite");
    let db = server.data_dir().join("wharf.db");
    let key = server.data_dir().join("master.key");
    for file in [&db, &key] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    server.restart().await;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&key), 0o600);
}

/// Polls until `token` is refused (revocations made by another process reach the server
/// within its refresh interval, a second); panics after 10 s.
async fn until_revoked(server: &TestServer, token: &str) {
    for _ in 0..200 {
        let (status, body) = server.call_as(Some(token), Method::GET, "/v1/organization", None).await;
        if status == StatusCode::UNAUTHORIZED {
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("revoked"), "{body}");
            return;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the token was not revoked within 10 s");
}

fn credentials(value: &Value) -> Value {
    json!({"clientId": value["clientId"], "clientSecret": value["clientSecret"]})
}

/// `wharf admin rotate-secret` revokes the client's access tokens, not only its secret; a
/// token of the new secret works.
async fn rotating_a_secret_revokes_its_tokens(server: TestServer) {
    let created = server.wharf_cli(&["admin", "create-org", "--name", "Rotating"]);
    let client = created["clientId"].as_str().unwrap();
    let old_token = server.token_for(client, created["clientSecret"].as_str().unwrap()).await;
    let (status, _) = server.call_as(Some(&old_token), Method::GET, "/v1/organization", None).await;
    assert_eq!(status, StatusCode::OK);

    let rotated = server.wharf_cli(&["admin", "rotate-secret", "--client", client]);
    until_revoked(&server, &old_token).await;
    assert_error(
        &server.call_as(None, Method::POST, "/v1/auth/access_token", Some(credentials(&created))).await,
        StatusCode::UNAUTHORIZED,
        "wrong",
    );
    let new_token = server.token_for(client, rotated["clientSecret"].as_str().unwrap()).await;
    let (status, org) = server.call_as(Some(&new_token), Method::GET, "/v1/organization", None).await;
    assert_eq!(status, StatusCode::OK, "{org}");
    assert_eq!(org["organization"]["name"], "Rotating");
    // The server's own admin client is untouched.
    assert_eq!(server.get("/v1/organization").await.0, StatusCode::OK);
}

/// `wharf admin delete-client` deletes the client and revokes its tokens.
async fn deleting_a_client_revokes_its_tokens(server: TestServer) {
    let created = server.wharf_cli(&["admin", "create-org", "--name", "Leaving"]);
    let org = created["organizationId"].as_str().unwrap();
    let second = server.wharf_cli(&["admin", "create-client", "--org", org, "--name", "ci"]);
    let client = second["clientId"].as_str().unwrap();
    let token = server.token_for(client, second["clientSecret"].as_str().unwrap()).await;
    let kept = server.token_for(created["clientId"].as_str().unwrap(), created["clientSecret"].as_str().unwrap()).await;

    let deleted = server.wharf_cli(&["admin", "delete-client", "--client", client]);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["clientId"], client);
    until_revoked(&server, &token).await;
    assert_error(
        &server.call_as(None, Method::POST, "/v1/auth/access_token", Some(credentials(&second))).await,
        StatusCode::UNAUTHORIZED,
        "wrong",
    );
    let clients = server.wharf_cli(&["admin", "list-clients", "--org", org]);
    assert_eq!(clients.as_array().unwrap().len(), 1, "{clients}");
    // The organization's other client keeps working.
    assert_eq!(server.call_as(Some(&kept), Method::GET, "/v1/organization", None).await.0, StatusCode::OK);

    // Deleting it again is an error naming the client.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["admin", "delete-client", "--client", client, "--data-dir"])
        .arg(server.data_dir())
        .args(server.settings.database_url.iter().flat_map(|url| ["--database-url", url.as_str()]))
        .env("WHARF_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(client), "{}", String::from_utf8_lossy(&output.stderr));
}

/// The server's database, opened beside it.
async fn database(server: &TestServer) -> wharf_store::Store {
    let options = wharf_store::StoreOptions::default();
    match &server.settings.database_url {
        Some(url) => wharf_store::Store::open(url, &options).await.unwrap(),
        None => wharf_store::Store::open_sqlite(&server.data_dir().join("wharf.db"), &options).await.unwrap(),
    }
}

/// The subscription headers as stored.
async fn stored_headers(server: &TestServer, org: &str, project_id: &str) -> Value {
    let store = database(server).await;
    let subscriptions = store.subscriptions(org, project_id).await.unwrap();
    store.close().await;
    Value::Object(subscriptions[0].headers.clone())
}

/// Subscription header values are sealed at rest and masked when shown, except those marked
/// not secret; deliveries carry the real values; a masked value sent back keeps the secret.
async fn subscription_headers_are_sealed_and_masked(server: TestServer) {
    let receiver = common::receiver::Receiver::start().await;
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let (status, project) = server.post(&format!("/organizations/{org}/projects"), json!({"name": "Shop", "slug": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project_id = project["_id"].as_str().unwrap().to_owned();
    let project = format!("/organizations/{org}/projects/{project_id}");
    let doc = json!({"name": "hook", "url": receiver.url("/ok/hook"), "events": ["*"],
        "headers": {"Authorization": "Bearer s3cret-token", "X-Tenant": "acme"}, "headersNotSecret": ["X-Tenant"]});
    let (status, created) = server.post(&format!("{project}/settings/webhooks"), doc).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hook = format!("{project}/settings/webhooks/{}", created["_id"].as_str().unwrap());
    let masked = json!({"Authorization": "[redacted]", "X-Tenant": "acme"});
    assert_eq!(created["headers"], masked);
    let (_, shown) = server.get(&hook).await;
    assert_eq!(shown["headers"], masked, "{shown}");
    assert_eq!(shown["headersNotSecret"], json!(["X-Tenant"]));
    let (_, listed) = server.get(&format!("{project}/settings/webhooks")).await;
    assert_eq!(listed[0]["headers"], masked);

    let stored = stored_headers(&server, &org, &project_id).await;
    assert!(!stored.to_string().contains("s3cret"), "the secret is stored in clear: {stored}");
    assert!(stored["Authorization"]["sealed"].is_string(), "{stored}");
    assert_eq!(stored["X-Tenant"], json!({"value": "acme"}));

    let publish = |n: u32| {
        let (server, project) = (&server, project.clone());
        async move {
            let (status, event) = server.post(&format!("{project}/events"), json!({"type": "a.b", "data": {"n": n}})).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{event}");
        }
    };
    publish(1).await;
    let calls = receiver.wait_for("/ok/hook", 1).await;
    assert_eq!(calls[0].header("authorization"), "Bearer s3cret-token");
    assert_eq!(calls[0].header("x-tenant"), "acme");

    // The document as shown, sent back with one change: the secret is kept.
    let mut echo = shown.clone();
    echo["headers"]["X-Tenant"] = json!("globex");
    let patch = json!({"headers": echo["headers"], "headersNotSecret": echo["headersNotSecret"]});
    let (status, patched) = server.patch(&hook, patch).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["headers"], json!({"Authorization": "[redacted]", "X-Tenant": "globex"}));
    publish(2).await;
    let calls = receiver.wait_for("/ok/hook", 2).await;
    assert_eq!(calls[1].header("authorization"), "Bearer s3cret-token");
    assert_eq!(calls[1].header("x-tenant"), "globex");

    // A mask for a header the webhook does not have, and a non-secret name it lacks: documents
    // of the right shape whose names do not hold, 422s.
    assert_error(
        &server.patch(&hook, json!({"headers": {"X-Api-Key": "[redacted]"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "headers.X-Api-Key",
    );
    assert_error(
        &server.patch(&hook, json!({"headersNotSecret": ["X-Nope"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "headersNotSecret[0]",
    );
}

/// Header values stored in clear by an earlier version are sealed at the next start (as
/// secrets), and still sent.
async fn headers_stored_in_clear_are_sealed_at_start(mut server: TestServer) {
    let receiver = common::receiver::Receiver::start().await;
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let (_, project) = server.post(&format!("/organizations/{org}/projects"), json!({"name": "Old", "slug": "old"})).await;
    let project_id = project["_id"].as_str().unwrap().to_owned();
    let project = format!("/organizations/{org}/projects/{project_id}");
    let doc = json!({"name": "hook", "url": receiver.url("/ok/old"), "events": ["*"]});
    let (status, created) = server.post(&format!("{project}/settings/webhooks"), doc).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["_id"].as_str().unwrap().to_owned();
    // What an earlier version stored: plain strings.
    let store = database(&server).await;
    let mut tx = store.begin().await.unwrap();
    let legacy = json!({"Authorization": "Bearer legacy-token"});
    tx.set_subscription_headers(&org, &id, legacy.as_object().unwrap()).await.unwrap();
    tx.commit().await.unwrap();
    store.close().await;

    server.restart().await;
    let stored = stored_headers(&server, &org, &project_id).await;
    assert!(!stored.to_string().contains("legacy-token"), "{stored}");
    let (_, shown) = server.get(&format!("{project}/settings/webhooks/{id}")).await;
    assert_eq!(shown["headers"], json!({"Authorization": "[redacted]"}));
    let (status, _) = server.post(&format!("{project}/events"), json!({"type": "a.b", "data": {}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(receiver.wait_for("/ok/old", 1).await[0].header("authorization"), "Bearer legacy-token");
}

both_stores!(
    rotating_a_secret_revokes_its_tokens,
    deleting_a_client_revokes_its_tokens,
    subscription_headers_are_sealed_and_masked,
    headers_stored_in_clear_are_sealed_at_start
);
