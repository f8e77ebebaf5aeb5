//! Calling Wharf's own API from a run (issue 24 point 6, reference §3.2 "Trigger Port API",
//! SPEC §8), through a real server on both stores: a WEBHOOK to Port's API hosts, or to
//! Wharf's public URL, is served by Wharf itself as the organization's API client (no token in
//! the template; a wrong one replaced), `run_as` honoured, Wharf's answer the synchronized
//! run's response; with `--port-api-alias false`, Port's hosts are sent out like any other.

use crate::common;

use common::receiver::Receiver;
use common::{CLIENT_ID, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use wharf::config::Settings;

async fn service_blueprint(server: &TestServer) {
    server
        .blueprint(json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {"tier": {"type": "number"}}}
        }))
        .await;
}

async fn start(server: &TestServer, action: &str, body: Value) -> String {
    server.start_run(action, body).await["id"].as_str().unwrap().to_owned()
}

/// Waits (up to 10 s) until the run has ended; returns it.
async fn ended(server: &TestServer, id: &str) -> Value {
    for _ in 0..200 {
        let found = server.run(id).await;
        if found["endedAt"].is_string() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never ended: {}", server.run(id).await);
}

async fn attempts(server: &TestServer, id: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/v1/actions/runs/{id}/attempts")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["attempts"].as_array().unwrap().clone()
}

/// A synchronized action that upserts the service named by its `name` input at `url`, with
/// a wrong token of its own in `Authorization`.
fn register_action(url: &str) -> Value {
    json!({
        "identifier": "register", "title": "Register",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {
            "properties": {"name": {"type": "string"}}, "required": ["name"]
        }},
        "invocationMethod": {
            "type": "WEBHOOK", "url": url, "synchronized": true,
            "headers": {"Authorization": "Bearer not-a-token"},
            "body": {"identifier": "{{ .inputs.name }}", "title": "{{ .inputs.name | ascii_upcase }}", "properties": {"tier": 2}}
        }
    })
}

/// Runs `register` for `name` and checks that Wharf wrote the entity and answered the run.
async fn registers_through_wharf(server: &TestServer, url: &str, name: &str) {
    server.create_action(register_action(url)).await;
    let id = start(server, "register", json!({"properties": {"name": name}})).await;
    let done = ended(server, &id).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    // Wharf's own answer is the response.
    assert_eq!(done["response"]["ok"], true, "{done}");
    assert_eq!(done["response"]["entity"]["identifier"], name, "{done}");
    assert_eq!(done["payload"]["url"], url, "the payload keeps the URL as rendered");
    let tried = attempts(server, &id).await;
    assert_eq!(tried.len(), 1, "{tried:?}");
    assert!(tried[0]["statusCode"].as_i64().is_some_and(|s| (200..300).contains(&s)), "{tried:?}");
    let (status, entity) = server.get(&format!("/v1/blueprints/service/entities/{name}")).await;
    assert_eq!(status, StatusCode::OK, "{entity}");
    assert_eq!(entity["entity"]["title"], name.to_ascii_uppercase());
    assert_eq!(entity["entity"]["properties"]["tier"], 2);
    assert_eq!(entity["entity"]["createdBy"], CLIENT_ID, "made as the organization's API client");
}

/// (a) Port's entity route on `api.getport.io`, synchronized: Wharf writes the entity and
/// answers; an error of Wharf's is the run's failure.
async fn port_s_api_is_wharf_itself(server: TestServer) {
    service_blueprint(&server).await;
    registers_through_wharf(&server, "https://api.getport.io/v1/blueprints/service/entities?upsert=true", "api").await;

    // A blueprint that does not exist: Wharf's 404, with its message, ends the run.
    let mut missing = register_action("https://api.getport.io/v1/blueprints/ghost/entities");
    missing["identifier"] = json!("ghostly");
    server.create_action(missing).await;
    let id = start(&server, "ghostly", json!({"properties": {"name": "web"}})).await;
    let failed = ended(&server, &id).await;
    assert_eq!(failed["status"], "FAILURE", "{failed}");
    let summary = failed["summary"].as_str().unwrap();
    assert!(summary.starts_with("Failed to invoke the webhook with status code: 404") && summary.contains("ghost"), "{summary}");
}

/// (b) Port's run route on `api.port.io` with `run_as`: a run of the other action, made for
/// that user; the calling run is asynchronous (delivered, and left to its backend).
async fn a_run_starts_another_as_its_run_as_user(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(
        json!({
            "identifier": "other", "title": "Other",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {"note": {"type": "string"}}}},
            "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/ok/other")}
        }),
    )
    .await;
    server
        .create_action(json!({
            "identifier": "caller", "title": "Caller",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {
                "type": "WEBHOOK", "url": "https://api.port.io/v1/actions/other/runs?run_as=someone@example.com",
                "body": {"properties": {"note": "from {{ .run.id }}"}}
            }
        }))
        .await;
    let caller = start(&server, "caller", json!({})).await;
    let mut started = None;
    for _ in 0..200 {
        let (status, list) = server.get("/v1/actions/runs?user_email=someone@example.com").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        if let Some(found) = list["runs"].as_array().unwrap().first() {
            started = Some(found.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = started.expect("the caller's run started `other`");
    assert_eq!(started["action"]["identifier"], "other");
    assert_eq!(started["impersonatedBy"], "someone@example.com");
    assert_eq!(started["createdBy"], CLIENT_ID);
    assert_eq!(started["properties"]["note"], format!("from {caller}"));
    // `other` sends its own request as usual.
    let call = receiver.wait_for("/ok/other", 1).await.remove(0);
    assert!(call.body.contains(started["id"].as_str().unwrap()), "{}", call.body);
    // The caller's request was delivered once, and the caller left to its backend.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.run(&caller).await["status"], "IN_PROGRESS");
    let tried = attempts(&server, &caller).await;
    assert_eq!(tried.len(), 1, "{tried:?}");
    assert_eq!(tried[0]["statusCode"], 202, "{tried:?}");
}

fn public_url(settings: &mut Settings) {
    settings.public_url = Some("https://wharf.example.com/base/".to_owned());
}

/// (c) The server's own public URL (here with a path, which the proxy in front takes off).
async fn the_public_url_is_wharf_itself(server: TestServer) {
    service_blueprint(&server).await;
    registers_through_wharf(&server, "https://wharf.example.com/base/v1/blueprints/service/entities?upsert=true", "api").await;
}

fn alias_off(settings: &mut Settings) {
    public_url(settings);
    settings.edge.port_api_alias = false;
}

/// (d) `--port-api-alias false`: Port's host is sent out like any other (and fails here,
/// with no network); nothing is written in Wharf. The public URL still is Wharf.
async fn without_the_alias_port_s_api_is_sent_out(server: TestServer) {
    service_blueprint(&server).await;
    server.create_action(register_action("https://api.getport.io/v1/blueprints/service/entities?upsert=true")).await;
    let id = start(&server, "register", json!({"properties": {"name": "api"}})).await;
    let failed = ended(&server, &id).await;
    assert_eq!(failed["status"], "FAILURE", "{failed}");
    assert!(failed["summary"].as_str().unwrap().starts_with("Failed to invoke the webhook"), "{failed}");
    let tried = attempts(&server, &id).await;
    assert_eq!(tried.len(), 1, "{tried:?}");
    // A transport error naming Port's host (the test machines have no network), not Wharf.
    assert!(["connection_error", "timeout", "blocked"].contains(&tried[0]["outcome"].as_str().unwrap()), "{tried:?}");
    assert!(tried[0]["error"].as_str().unwrap().contains("api.getport.io"), "{tried:?}");
    assert_eq!(server.get("/v1/blueprints/service/entities/api").await.0, StatusCode::NOT_FOUND);

    let mut own = register_action("https://wharf.example.com/base/v1/blueprints/service/entities?upsert=true");
    own["identifier"] = json!("register-here");
    server.create_action(own).await;
    let id = start(&server, "register-here", json!({"properties": {"name": "web"}})).await;
    assert_eq!(ended(&server, &id).await["status"], "SUCCESS");
    assert_eq!(server.get("/v1/blueprints/service/entities/web").await.0, StatusCode::OK);
}

/// An action whose request runs itself again through Wharf's API: each run is one deeper than
/// the one that called; the eleventh call is refused (422 `chain_too_deep`), so the chain ends
/// with ten runs past the first, the last one failed with the refusal as its summary.
async fn an_action_that_runs_itself_stops_at_depth_ten(server: TestServer) {
    server
        .create_action(json!({
            "identifier": "again",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://api.getport.io/v1/actions/again/runs", "synchronized": true,
                                 "body": {"properties": {}}}
        }))
        .await;
    start(&server, "again", json!({})).await;
    for _ in 0..200 {
        let (_, body) = server.get("/v1/actions/runs?action=again&limit=100").await;
        let runs = body["runs"].as_array().unwrap();
        if runs.len() >= 11 && runs.iter().all(|r| r["endedAt"].is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = server.get("/v1/actions/runs?action=again&limit=100").await;
    let runs = body["runs"].as_array().unwrap();
    let mut depths: Vec<i64> = runs.iter().map(|r| r["chainDepth"].as_i64().unwrap()).collect();
    depths.sort_unstable();
    assert_eq!(depths, (0..=10).collect::<Vec<_>>(), "{runs:?}");
    let deepest = runs.iter().find(|r| r["chainDepth"] == 10).unwrap();
    assert_eq!(deepest["status"], "FAILURE", "{deepest}");
    assert!(deepest["summary"].as_str().unwrap().contains("chain_too_deep"), "{deepest}");
    assert!(runs.iter().filter(|r| r["chainDepth"] != 10).all(|r| r["status"] == "SUCCESS"), "{runs:?}");
}

mod with_alias {
    use super::*;
    both_stores!(
        port_s_api_is_wharf_itself,
        a_run_starts_another_as_its_run_as_user,
        an_action_that_runs_itself_stops_at_depth_ten
    );
}

mod with_public_url {
    use super::*;
    both_stores!(configure = public_url; the_public_url_is_wharf_itself);
}

mod without_alias {
    use super::*;
    both_stores!(configure = alias_off; without_the_alias_port_s_api_is_sent_out);
}
