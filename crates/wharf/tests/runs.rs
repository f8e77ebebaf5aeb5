//! Runs of actions (issue 24, points 2, 3 and 5; reference §3.6–3.8) through the HTTP API of
//! a real server, with a real recording receiver, on both stores: synchronized runs that
//! succeed and fail (one attempt), asynchronous runs the backend reports on (PATCH, logs,
//! response) and that end when their request finally fails, 409 once ended, approval,
//! UPSERT_ENTITY runs, inputs refused with the input named, and secrets sent in clear but
//! masked in every stored copy (answers, the log, the database). This binary logs Wharf's
//! crates at `trace` to memory (`common::captured_log`). Every request carries Port's `X-Port-Signature`, checked here
//! as Port's documentation checks it.

mod common;

use base64::Engine;
use common::receiver::Receiver;
use common::{Backend, CLIENT_SECRET, TestServer, assert_error};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

both_stores!(
    a_synchronized_run_ends_with_the_answer,
    a_synchronized_run_that_fails_makes_one_attempt,
    an_asynchronous_run_is_reported_by_its_backend,
    log_lines_sent_at_once_apply_in_order_and_are_refused_alone,
    an_asynchronous_run_whose_request_fails_ends_failed,
    runs_wait_for_approval,
    an_upsert_entity_run_writes_through_the_catalog,
    bad_inputs_are_refused_naming_the_input,
    secrets_are_sent_but_never_stored,
    runs_are_listed_and_filtered,
    the_next_run_uses_what_was_just_saved,
);

/// Port's documented check (`docs-sig`): `v1,` + base64 HMAC-SHA256 of `timestamp.body`,
/// keyed with the organization's client secret.
fn assert_signed(call: &common::receiver::Call) {
    let timestamp = call.header("x-port-timestamp");
    assert!(!timestamp.is_empty() && timestamp.parse::<i64>().is_ok(), "X-Port-Timestamp: {timestamp:?}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", call.body).as_bytes());
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(call.header("x-port-signature"), expected, "signature of {}", call.body);
}

async fn service_blueprint(server: &TestServer) {
    server
        .blueprint(json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {"tier": {"type": "number"}, "owner": {"type": "string"}}}
        }))
        .await;
}

async fn start(server: &TestServer, action: &str, body: Value) -> Value {
    server.start_run(action, body).await
}

/// Waits (up to 10 s) until the run's status is `status`.
async fn run_until(server: &TestServer, id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let found = server.run(id).await;
        if found["status"] == status {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never became {status}: {}", server.run(id).await);
}

async fn attempts(server: &TestServer, id: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/v1/actions/runs/{id}/attempts")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["attempts"].as_array().unwrap().clone()
}

fn webhook_action(identifier: &str, url: &str, synchronized: bool) -> Value {
    json!({
        "identifier": identifier, "title": "Deploy", "icon": "Rocket",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {
            "properties": {"version": {"type": "string", "enum": ["1.0", "2.0"]}, "replicas": {"type": "number", "default": 2}},
            "required": ["version"]
        }},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": synchronized}
    })
}

async fn a_synchronized_run_ends_with_the_answer(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(webhook_action("deploy", &receiver.url("/ok/deploy"), true)).await;
    let started = start(&server, "deploy", json!({"properties": {"version": "2.0"}})).await;
    let id = started["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("r_") && id.len() == 18, "{id}");
    assert_eq!(started["status"], "IN_PROGRESS");
    assert_eq!(started["source"], "API");
    assert_eq!(started["action"]["identifier"], "deploy");
    assert_eq!(started["properties"], json!({"version": "2.0", "replicas": 2}), "defaults filled in");

    let ended = run_until(&server, &id, "SUCCESS").await;
    assert_eq!(ended["response"], json!({"received": true}));
    assert!(ended["endedAt"].is_string());
    let calls = receiver.wait_for("/ok/deploy", 1).await;
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.header("content-type"), "application/json");
    assert_signed(call);
    // SPEC §8's default body: the inputs spread, and the run id; compact, in template order.
    assert_eq!(call.body, format!(r#"{{"version":"2.0","replicas":2,"port_context":{{"runId":"{id}"}}}}"#));
    assert_eq!(ended["payload"]["body"], json!({"version": "2.0", "replicas": 2, "port_context": {"runId": id}}));
    assert_eq!(ended["payload"]["synchronized"], true);
    assert_eq!(attempts(&server, &id).await.len(), 1);

    // A text answer is kept as text.
    server.create_action(webhook_action("say", &receiver.url("/text/say"), true)).await;
    let said = start(&server, "say", json!({"properties": {"version": "1.0"}})).await;
    let said = run_until(&server, said["id"].as_str().unwrap(), "SUCCESS").await;
    assert_eq!(said["response"], "plain words");
}

async fn a_synchronized_run_that_fails_makes_one_attempt(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(webhook_action("deploy", &receiver.url("/fail/deploy"), true)).await;
    let id = start(&server, "deploy", json!({"properties": {"version": "1.0"}})).await["id"].as_str().unwrap().to_owned();
    let ended = run_until(&server, &id, "FAILURE").await;
    assert_eq!(ended["summary"], "Failed to invoke the webhook with status code: 500. Response: boom");
    // Past every retry of the test schedule (100 ms, 200 ms): still one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.calls("/fail/deploy").len(), 1);
    let tried = attempts(&server, &id).await;
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0]["statusCode"], 500);

    // Nobody listening: a transport error, named.
    server.create_action(webhook_action("nowhere", &common::receiver::refused_url(), true)).await;
    let id = start(&server, "nowhere", json!({"properties": {"version": "1.0"}})).await["id"].as_str().unwrap().to_owned();
    let ended = run_until(&server, &id, "FAILURE").await;
    assert!(ended["summary"].as_str().unwrap().starts_with("Failed to invoke the webhook: "), "{ended}");
}

async fn an_asynchronous_run_is_reported_by_its_backend(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(webhook_action("deploy", &receiver.url("/ok/async"), false)).await;
    let id = start(&server, "deploy", json!({"properties": {"version": "1.0"}})).await["id"].as_str().unwrap().to_owned();
    let call = receiver.wait_for("/ok/async", 1).await.remove(0);
    assert_signed(&call);
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["port_context"]["runId"], id.as_str());
    // Delivered, and still the backend's to end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/v1/actions/runs/{id}");
    assert_eq!(server.run(&id).await["status"], "IN_PROGRESS");

    let (status, patched) =
        server.patch(&path, json!({"statusLabel": "Building", "link": "https://ci.example/1", "externalRunId": "ci-1"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["run"]["status"], "IN_PROGRESS");
    assert_eq!(patched["run"]["statusLabel"], "Building");
    assert_eq!(patched["run"]["link"], json!(["https://ci.example/1"]));
    let (status, _) = server.post(&format!("{path}/logs"), json!({"message": "step 1 of 2"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server.patch(&format!("{path}/response"), json!({"response": {"url": "https://svc"}})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ended) = server
        .post(&format!("{path}/logs"), json!({"message": "done", "terminationStatus": "SUCCESS", "statusLabel": "Deployed"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ended}");
    let ended = server.run(&id).await;
    assert_eq!((ended["status"].as_str(), ended["statusLabel"].as_str()), (Some("SUCCESS"), Some("Deployed")));
    assert_eq!(ended["response"], json!({"url": "https://svc"}));

    // Ended: no more changes (409), but a plain log line is still taken.
    assert_error(&server.patch(&path, json!({"statusLabel": "again"})).await, StatusCode::CONFLICT, "has ended");
    assert_error(&server.patch(&path, json!({"status": "FAILURE"})).await, StatusCode::CONFLICT, "has ended");
    assert_error(
        &server.post(&format!("{path}/logs"), json!({"message": "x", "terminationStatus": "FAILURE"})).await,
        StatusCode::CONFLICT,
        "has ended",
    );
    assert_error(&server.patch(&format!("{path}/response"), json!({"response": 1})).await, StatusCode::CONFLICT, "has ended");
    let (status, _) = server.post(&format!("{path}/logs"), json!({"message": "bye"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, logs) = server.get(&format!("{path}/logs")).await;
    assert_eq!(status, StatusCode::OK);
    let messages: Vec<&str> = logs["runLogs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["step 1 of 2", "done", "bye"]);
    assert_eq!(logs["runLogs"][0]["runId"], id.as_str());

    // A PATCH that ends the run directly.
    let other = start(&server, "deploy", json!({"properties": {"version": "2.0"}})).await["id"].as_str().unwrap().to_owned();
    let (status, failed) =
        server.patch(&format!("/v1/actions/runs/{other}"), json!({"status": "FAILURE", "summary": "no"})).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!((failed["run"]["status"].as_str(), failed["run"]["summary"].as_str()), (Some("FAILURE"), Some("no")));
    // Bad reports are refused, naming the key.
    assert_error(&server.patch(&path, json!({"colour": 1})).await, StatusCode::UNPROCESSABLE_ENTITY, "`colour`");
    assert_error(&server.get("/v1/actions/runs/r_missing").await, StatusCode::NOT_FOUND, "r_missing");
}

/// Fifty log lines sent at once (the log committer writes many in one commit): each run's
/// lines are listed in the order they applied, a later line sees what an earlier one did to
/// its run even among lines sent together, and a line core refuses (an ended run: 409;
/// another organization's run: 404) is refused alone, the others written.
async fn log_lines_sent_at_once_apply_in_order_and_are_refused_alone(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(webhook_action("deploy", &receiver.url("/ok/logs"), false)).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(start(&server, "deploy", json!({"properties": {"version": "1.0"}})).await["id"].as_str().unwrap().to_owned());
    }
    receiver.wait_for("/ok/logs", 5).await;
    let (status, ended) = server.patch(&format!("/v1/actions/runs/{}", ids[4]), json!({"status": "SUCCESS"})).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let (_, other_org) = server.other_organization("Other").await;

    // Each task sends its lines one after the other: (run, body, status, answer) of each.
    let mut tasks = tokio::task::JoinSet::new();
    let mut send = |token: String, run: String, bodies: Vec<Value>| {
        let (http, base) = (server.http.clone(), server.base.clone());
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for body in bodies {
                let response =
                    http.post(format!("{base}/v1/actions/runs/{run}/logs")).bearer_auth(&token).json(&body).send().await.unwrap();
                let status = response.status();
                answers.push((run.clone(), body, status, response.json::<Value>().await.unwrap()));
            }
            answers
        });
    };
    // Three runs, twelve lines each, in order; the runs side by side.
    for (n, id) in ids[..3].iter().enumerate() {
        send(server.token.clone(), id.clone(), (0..12).map(|i| json!({"message": format!("{n}-{i}")})).collect());
    }
    // A fourth: nine labels and an end, all at once.
    for i in 0..9 {
        send(
            server.token.clone(),
            ids[3].clone(),
            vec![json!({"message": format!("label {i}"), "statusLabel": format!("step {i}")})],
        );
    }
    send(server.token.clone(), ids[3].clone(), vec![json!({"message": "end", "terminationStatus": "FAILURE"})]);
    // The ended run: an end refused, a plain line taken. Another organization's: not found.
    send(server.token.clone(), ids[4].clone(), vec![json!({"message": "late", "terminationStatus": "SUCCESS"})]);
    send(server.token.clone(), ids[4].clone(), vec![json!({"message": "plain"})]);
    send(other_org.clone(), ids[0].clone(), vec![json!({"message": "not yours"})]);
    send(other_org, ids[4].clone(), vec![json!({"message": "not yours", "terminationStatus": "FAILURE"})]);
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.extend(done.unwrap());
    }
    assert_eq!(answers.len(), 50);

    let listed = |id: String| {
        let server = &server;
        async move {
            let (status, logs) = server.get(&format!("/v1/actions/runs/{id}/logs")).await;
            assert_eq!(status, StatusCode::OK, "{logs}");
            logs["runLogs"].as_array().unwrap().clone()
        }
    };
    let ids_of = |logs: &[Value]| logs.iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    for (n, id) in ids[..3].iter().enumerate() {
        let sent: Vec<&(String, Value, StatusCode, Value)> =
            answers.iter().filter(|(run, body, ..)| run == id && body["message"] != "not yours").collect();
        for (_, body, status, answer) in &sent {
            assert_eq!(
                (*status, answer["runLog"]["runId"].as_str()),
                (StatusCode::CREATED, Some(id.as_str())),
                "{body}: {answer}"
            );
        }
        let logs = listed(id.clone()).await;
        let messages: Vec<String> = logs.iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect();
        assert_eq!(messages, (0..12).map(|i| format!("{n}-{i}")).collect::<Vec<_>>());
        let answered: Vec<String> = sent.iter().map(|(.., answer)| answer["runLog"]["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids_of(&logs), answered, "listed as answered, in order");
        assert_eq!(server.run(id).await["status"], "IN_PROGRESS");
    }

    // The fourth: the end is taken; every label before it too, every label after it refused
    // (the run had ended), so the end is listed last and the run keeps the last label taken.
    let fourth: Vec<&(String, Value, StatusCode, Value)> = answers.iter().filter(|(run, ..)| *run == ids[3]).collect();
    let taken: Vec<String> = fourth
        .iter()
        .filter(|(.., status, _)| *status == StatusCode::CREATED)
        .map(|(.., answer)| answer["runLog"]["id"].as_str().unwrap().to_owned())
        .collect();
    for (_, body, status, answer) in &fourth {
        if *status != StatusCode::CREATED {
            assert!(body["statusLabel"].is_string(), "{body}");
            assert_error(&(*status, answer.clone()), StatusCode::CONFLICT, "has ended");
        }
    }
    let logs = listed(ids[3].clone()).await;
    let mut listed_ids = ids_of(&logs);
    assert_eq!(logs.last().unwrap()["message"], "end", "{logs:?}");
    listed_ids.sort();
    let mut taken_sorted = taken.clone();
    taken_sorted.sort();
    assert_eq!(listed_ids, taken_sorted, "every line taken is listed, no refused one");
    let run = server.run(&ids[3]).await;
    assert_eq!(run["status"], "FAILURE");
    let last_label = logs.iter().rev().find_map(|l| l["message"].as_str().unwrap().strip_prefix("label "));
    assert_eq!(run["statusLabel"].as_str(), last_label.map(|i| format!("step {i}")).as_deref(), "{run}");

    // The ended run and the other organization's lines.
    for (run, body, status, answer) in answers.iter().filter(|(run, ..)| *run == ids[4] || *run == ids[0]) {
        let result = (*status, answer.clone());
        match body["message"].as_str().unwrap() {
            "late" => assert_error(&result, StatusCode::CONFLICT, "has ended"),
            "plain" => assert_eq!(*status, StatusCode::CREATED, "{answer}"),
            "not yours" => assert_error(&result, StatusCode::NOT_FOUND, run),
            _ => {}
        }
    }
    let logs = listed(ids[4].clone()).await;
    assert_eq!(logs.iter().map(|l| l["message"].as_str().unwrap()).collect::<Vec<_>>(), ["plain"]);
    assert_eq!(server.run(&ids[4]).await["status"], "SUCCESS");
}

async fn an_asynchronous_run_whose_request_fails_ends_failed(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(webhook_action("deploy", &receiver.url("/fail/async"), false)).await;
    let id = start(&server, "deploy", json!({"properties": {"version": "1.0"}})).await["id"].as_str().unwrap().to_owned();
    let ended = run_until(&server, &id, "FAILURE").await;
    // The test schedule: the first attempt and two retries, each signed, the same run id.
    let calls = receiver.calls("/fail/async");
    assert_eq!(calls.len(), 3, "{calls:?}");
    for call in &calls {
        assert_signed(call);
        assert!(call.body.contains(&id));
    }
    assert_eq!(ended["summary"], "Failed to invoke the webhook with status code: 500. Response: boom");
    assert_eq!(attempts(&server, &id).await.len(), 3);

    // A flaky backend: retried, delivered, and the run left to it.
    server.create_action(webhook_action("flaky", &receiver.url("/flaky/async"), false)).await;
    let id = start(&server, "flaky", json!({"properties": {"version": "1.0"}})).await["id"].as_str().unwrap().to_owned();
    receiver.wait_for("/flaky/async", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.run(&id).await["status"], "IN_PROGRESS");
    assert_eq!(attempts(&server, &id).await.len(), 2);
}

async fn runs_wait_for_approval(server: TestServer) {
    let receiver = Receiver::start().await;
    let mut action = webhook_action("drop-db", &receiver.url("/ok/drop"), false);
    action["requiredApproval"] = json!(true);
    server.create_action(action).await;
    let approved = start(&server, "drop-db", json!({"properties": {"version": "1.0"}})).await;
    assert_eq!(approved["status"], "WAITING_FOR_APPROVAL");
    assert_eq!(approved["requiredApproval"], true);
    let declined = start(&server, "drop-db", json!({"properties": {"version": "2.0"}})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.calls("/ok/drop").is_empty(), "nothing is sent before approval");
    let path = |run: &Value| format!("/v1/actions/runs/{}", run["id"].as_str().unwrap());
    assert_error(&server.patch(&path(&approved), json!({"status": "SUCCESS"})).await, StatusCode::CONFLICT, "approval");

    let (status, answer) = server.patch(&format!("{}/approval", path(&approved)), json!({"status": "APPROVE"})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["run"]["status"], "IN_PROGRESS");
    assert_eq!(answer["run"]["approval"]["state"], "APPROVED");
    let calls = receiver.wait_for("/ok/drop", 1).await;
    assert!(calls[0].body.contains(approved["id"].as_str().unwrap()));

    let decline = json!({"status": "DECLINE", "description": "Not during the freeze"});
    let (status, answer) = server.patch(&format!("{}/approval", path(&declined)), decline).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["run"]["status"], "DECLINED");
    // The reason stays with the run, where the requester reads it.
    assert_eq!(server.run(declined["id"].as_str().unwrap()).await["approval"]["description"], "Not during the freeze");
    assert_error(
        &server.patch(&format!("{}/approval", path(&declined)), json!({"status": "APPROVE"})).await,
        StatusCode::CONFLICT,
        "not waiting for approval",
    );
    assert_error(
        &server.patch(&format!("{}/approval", path(&declined)), json!({"status": "MAYBE"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "APPROVE",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.calls("/ok/drop").len(), 1, "a declined run sends nothing");
}

async fn an_upsert_entity_run_writes_through_the_catalog(server: TestServer) {
    service_blueprint(&server).await;
    server
        .create_action(json!({
            "identifier": "register", "title": "Register a service",
            "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service", "userInputs": {
                "properties": {"name": {"type": "string"}, "tier": {"type": "string"}}, "required": ["name"]
            }},
            "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {
                "identifier": "{{ .inputs.name }}", "title": "{{ .inputs.name | ascii_upcase }}",
                "properties": {"tier": "{{ .inputs.tier as $t | ($t | tonumber?) // $t }}", "owner": "{{ .trigger.by.userId }}"}
            }}
        }))
        .await;
    let done = start(&server, "register", json!({"properties": {"name": "api", "tier": "2"}})).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["payload"]["type"], "UPSERT_ENTITY");
    let (status, entity) = server.get("/v1/blueprints/service/entities/api").await;
    assert_eq!(status, StatusCode::OK, "{entity}");
    assert_eq!(entity["entity"]["title"], "API");
    assert_eq!(entity["entity"]["properties"]["tier"], 2);
    assert_eq!(entity["entity"]["properties"]["owner"], common::CLIENT_ID);
    // The change is the run's: the audit log links it.
    let (_, audit) = server.get("/v1/audit-log?entity=api").await;
    let linked = audit["audits"].as_array().unwrap().iter().any(|a| a["additionalData"]["runId"] == done["id"]);
    assert!(linked, "{audit}");

    // The catalog refuses (a tier that is not a number): the run fails with its message, and
    // nothing is written.
    let failed = start(&server, "register", json!({"properties": {"name": "web", "tier": "x"}})).await;
    assert_eq!(failed["status"], "FAILURE", "{failed}");
    assert!(failed["summary"].as_str().unwrap().contains("tier"), "{failed}");
    assert_eq!(server.get("/v1/blueprints/service/entities/web").await.0, StatusCode::NOT_FOUND);
}

async fn bad_inputs_are_refused_naming_the_input(server: TestServer) {
    service_blueprint(&server).await;
    server.create_action(webhook_action("deploy", "https://example.invalid/deploy", false)).await;
    let path = "/v1/actions/deploy/runs";
    assert_error(
        &server.post(path, json!({"properties": {"version": "3.0"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "inputs.version",
    );
    assert_error(&server.post(path, json!({"properties": {}})).await, StatusCode::UNPROCESSABLE_ENTITY, "inputs.version");
    assert_error(
        &server.post(path, json!({"properties": {"version": "1.0", "replicas": "two"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "inputs.replicas",
    );
    assert_error(
        &server.post(path, json!({"properties": {"version": "1.0", "colour": 1}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "colour",
    );
    assert_error(&server.post("/v1/actions/missing/runs", json!({})).await, StatusCode::NOT_FOUND, "missing");
    // A DAY-2 action: its entity must exist (404), and entity inputs name existing entities.
    server
        .create_action(json!({
            "identifier": "restart",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service", "userInputs": {
                "properties": {"peer": {"type": "string", "format": "entity", "blueprint": "service"}}
            }},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://example.invalid"}
        }))
        .await;
    assert_error(&server.post("/v1/actions/restart/runs", json!({"entity": "ghost"})).await, StatusCode::NOT_FOUND, "ghost");
    assert_error(&server.post("/v1/actions/restart/runs", json!({})).await, StatusCode::UNPROCESSABLE_ENTITY, "entity");
    server.upsert("service", json!({"identifier": "api"})).await;
    assert_error(
        &server.post("/v1/actions/restart/runs", json!({"entity": "api", "properties": {"peer": "ghost"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "inputs.peer",
    );
    let run = start(&server, "restart", json!({"entity": "api", "properties": {"peer": "api"}})).await;
    assert_eq!(run["entity"]["identifier"], "api");
    assert_eq!(run["blueprint"]["identifier"], "service");
}

async fn secrets_are_sent_but_never_stored(server: TestServer) {
    let log = common::captured_log();
    let receiver = Receiver::start().await;
    let value = format!("s3cr3t-{}", wharf_ids::random_base62(16));
    let (status, body) = server.post("/v1/organization/secrets", json!({"secretName": "api-token", "secretValue": value})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server
        .create_action(json!({
            "identifier": "call",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {
                "type": "WEBHOOK", "synchronized": true,
                "url": format!("{}?token={{{{ .secrets[\"api-token\"] }}}}", receiver.url("/echo/call")),
                "headers": {"Authorization": "Bearer {{ .secrets[\"api-token\"] }}"},
                "body": {"token": "{{ .secrets[\"api-token\"] }}", "run": "{{ .run.id }}"}
            }
        }))
        .await;
    let id = start(&server, "call", json!({})).await["id"].as_str().unwrap().to_owned();
    let ended = run_until(&server, &id, "SUCCESS").await;
    // Sent in clear where the template put it.
    let call = receiver.wait_for("/echo/call", 1).await.remove(0);
    assert_eq!(call.header("authorization"), format!("Bearer {value}"));
    assert_eq!(call.query.as_deref(), Some(format!("token={value}").as_str()));
    assert!(call.body.contains(&value));
    assert_signed(&call);
    // Every stored copy masked: the payload, the echoed response, the attempt.
    assert_eq!(ended["payload"]["headers"]["Authorization"], "Bearer ****");
    assert_eq!(ended["payload"]["body"]["token"], "****");
    assert!(ended["payload"]["url"].as_str().unwrap().ends_with("?token=****"));
    assert_eq!(ended["response"]["token"], "****", "{ended}");
    let mut answers = vec![ended.to_string(), json!(attempts(&server, &id).await).to_string()];
    answers.push(server.get("/v1/actions/runs").await.1.to_string());
    answers.push(server.get("/v1/audit-log").await.1.to_string());
    for answer in &answers {
        assert!(!answer.contains(&value), "an answer carries the secret: {answer}");
    }
    // The log (this binary logs every level of Wharf's crates to memory) is live, without it.
    let logged = log.text();
    assert!(logged.contains("run request attempt") && logged.contains(&id), "the log is captured");
    assert!(!logged.contains(&value), "the secret is in the log");
    if server.backend == Backend::Sqlite {
        for file in ["wharf.db", "wharf.db-wal"] {
            let Ok(bytes) = std::fs::read(server.data_dir().join(file)) else { continue };
            assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "{file} holds the secret in clear");
        }
    }
}

async fn runs_are_listed_and_filtered(server: TestServer) {
    service_blueprint(&server).await;
    server.upsert("service", json!({"identifier": "api"})).await;
    server.upsert("service", json!({"identifier": "web"})).await;
    server.create_action(
        json!({
            "identifier": "restart",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://example.invalid/restart"}
        }),
    )
    .await;
    let first = start(&server, "restart", json!({"entity": "api"})).await;
    let second = start(&server, "restart", json!({"entity": "web"})).await;
    let (status, _) =
        server.patch(&format!("/v1/actions/runs/{}", second["id"].as_str().unwrap()), json!({"status": "SUCCESS"})).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |body: &Value| -> Vec<String> {
        body["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let (first_id, second_id) = (first["id"].as_str().unwrap().to_owned(), second["id"].as_str().unwrap().to_owned());
    assert_eq!(ids(&server.get("/v1/actions/runs").await.1), [second_id.as_str(), first_id.as_str()], "newest first");
    assert_eq!(ids(&server.get("/v1/actions/runs?entity=api").await.1), [first_id.as_str()]);
    assert_eq!(ids(&server.get("/v1/actions/runs?active=true").await.1), [first_id.as_str()]);
    assert_eq!(ids(&server.get("/v1/actions/runs?active=false").await.1), [second_id.as_str()]);
    assert_eq!(ids(&server.get("/v1/actions/runs?blueprint=service&limit=1").await.1), [second_id.as_str()]);
    assert_eq!(ids(&server.get("/v1/actions/runs?source=AUTOMATION").await.1), Vec::<String>::new());
    assert_eq!(ids(&server.get(&format!("/v1/actions/runs?user_email={}", common::CLIENT_ID)).await.1).len(), 2);
    assert_error(&server.get("/v1/actions/runs?limit=0").await, StatusCode::BAD_REQUEST, "limit");
    // Another organization sees none of them.
    let (_, token) = server.other_organization("other").await;
    let (status, body) = server.call_as(Some(&token), reqwest::Method::GET, "/v1/actions/runs", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["runs"], json!([]));
    let (status, _) = server.call_as(Some(&token), reqwest::Method::GET, &format!("/v1/actions/runs/{first_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A run reads its action and secrets from a moment-long cache; a save on this node forgets
/// it, so the next run uses what was just saved.
async fn the_next_run_uses_what_was_just_saved(server: TestServer) {
    let receiver = Receiver::start().await;
    let (status, _) = server.post("/v1/organization/secrets", json!({"secretName": "token", "secretValue": "first"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let action = |path: &str| {
        json!({
            "identifier": "call",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": receiver.url(path), "headers": {"X-Token": "{{ .secrets.token }}"}}
        })
    };
    server.create_action(action("/ok/before")).await;
    start(&server, "call", json!({})).await;
    assert_eq!(receiver.wait_for("/ok/before", 1).await[0].header("x-token"), "first");
    let (status, body) = server.put("/v1/actions/call", action("/ok/after")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server.patch("/v1/organization/secrets/token", json!({"secretValue": "second"})).await;
    assert_eq!(status, StatusCode::OK);
    start(&server, "call", json!({})).await;
    assert_eq!(receiver.wait_for("/ok/after", 1).await[0].header("x-token"), "second");
    let (status, _) = server.delete("/v1/actions/call").await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&server.post("/v1/actions/call/runs", json!({})).await, StatusCode::NOT_FOUND, "call");
}
