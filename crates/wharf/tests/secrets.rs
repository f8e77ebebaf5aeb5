//! Secrets at rest and revocation: file modes, client secret rotation and deletion revoking
//! access tokens (through the real CLI and the real server).

mod common;

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

/// A database file left readable by others (an older Wharf, a copy) is made 0600 at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_database_files_are_narrowed_at_start() {
    let mut server = TestServer::start(Backend::Sqlite).await.expect("sqlite");
    let db = server.data_dir().join("wharf.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    server.restart().await;
    assert_eq!(mode(&db), 0o600);
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

both_stores!(rotating_a_secret_revokes_its_tokens, deleting_a_client_revokes_its_tokens);
