//! Workflows (issue 26; reference §4, SPEC §9) through the HTTP API of a real server, with a
//! real recording receiver, on both stores: each node type, synchronized and asynchronous
//! webhooks, `onFailure` and `onTimeout` both ways, the graph rules refused with their
//! messages, versions pinned to runs, schedule ticks fired at a chosen time (a missed tick
//! fires once), event triggers, node runs for execution agents, seed 001's examples as
//! written, and runs that resume after the binary is killed mid-run.

use crate::common;

use common::node::Node;
use common::receiver::Receiver;
use common::{TestServer, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use wharf_core::time::Timestamp;

both_stores!(
    a_self_serve_run_calls_branches_and_records,
    graph_rules_are_refused_with_their_messages,
    an_asynchronous_webhook_waits_for_its_report,
    on_failure_continue_goes_on_and_terminate_stops,
    on_timeout_continue_goes_on_and_fail_stops,
    runs_keep_the_version_they_started_with,
    schedule_ticks_fire_once_each,
    event_triggers_start_runs_on_entity_changes,
    agents_claim_and_complete_node_runs,
    bad_inputs_and_reports_are_refused,
    variables_replace_outputs_and_nodes_call_ports_api,
    a_timer_expiring_starts_a_run,
    seed_001s_examples_run_as_written,
);

fn self_serve(inputs: Value) -> Value {
    json!({"identifier": "trigger", "title": "Run it", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": inputs}})
}

fn connection(source: &str, target: &str) -> Value {
    json!({"sourceIdentifier": source, "targetIdentifier": target})
}

async fn create(server: &TestServer, doc: Value) -> Value {
    let (status, body) = server.post("/v1/workflows", doc).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["workflow"].clone()
}

async fn start(server: &TestServer, workflow: &str, inputs: Value) -> String {
    let (status, body) = server.post(&format!("/v1/workflows/{workflow}/runs"), json!({"inputs": inputs})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["workflowRun"]["identifier"].as_str().unwrap().to_owned()
}

async fn run(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/workflows/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["workflowRun"].clone()
}

/// Waits (up to 10 s) until the run has completed.
async fn completed(server: &TestServer, id: &str) -> Value {
    for _ in 0..200 {
        let run = run(server, id).await;
        if run["status"] == "COMPLETED" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not complete: {}", run(server, id).await);
}

/// Waits (up to 10 s) until the run has a node run of `node` that is `IN_PROGRESS` and no
/// longer `ready` to be stepped (it waits for a report or an agent).
async fn node_run_of(server: &TestServer, id: &str, node: &str) -> Value {
    for _ in 0..200 {
        let run = run(server, id).await;
        if let Some(found) = run["nodeRuns"].as_array().unwrap().iter().find(|n| n["nodeIdentifier"] == node) {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} has no node run of {node}: {}", run(server, id).await);
}

fn node<'a>(run: &'a Value, node: &str) -> &'a Value {
    run["nodeRuns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeIdentifier"] == node)
        .unwrap_or_else(|| panic!("{node} ran: {run}"))
}

async fn deployments(server: &TestServer) {
    server
        .blueprint(json!({
            "identifier": "deployment", "title": "Deployment",
            "schema": {"properties": {"version": {"type": "string"}, "outcome": {"type": "string"}, "status": {"type": "number"}}}
        }))
        .await;
}

/// Seed 001's GitHub dispatch, against a receiver standing in for GitHub: the trigger's inputs
/// go out in a signed request; a CONDITION on the response picks the outlet; an UPSERT_ENTITY
/// records the result through the catalog.
async fn a_self_serve_run_calls_branches_and_records(server: TestServer) {
    let receiver = Receiver::start().await;
    deployments(&server).await;
    let (status, secret) =
        server.post("/v1/organization/secrets", json!({"secretName": "github-token", "secretValue": "ghp_s3cr3t"})).await;
    assert_eq!(status, StatusCode::CREATED, "{secret}");
    create(
        &server,
        json!({
            "identifier": "deploy", "title": "Deploy",
            "nodes": [
                self_serve(json!({"properties": {"repo": {"type": "string"}, "version": {"type": "string"}}, "required": ["repo"]})),
                {"identifier": "trigger-github", "title": "Trigger GitHub Workflow", "config": {
                    "type": "WEBHOOK",
                    "url": format!("{}/echo/repos/{{{{ .outputs.trigger.repo }}}}/dispatches", receiver.base),
                    "method": "POST",
                    "headers": {"Accept": "application/vnd.github.v3+json", "Authorization": "Bearer {{ .secrets[\"github-token\"] }}"},
                    "body": {"ref": "main", "inputs": {"version": "{{ .outputs.trigger.version }}"}, "run": "{{ .workflowRun.identifier }}"}
                }},
                {"identifier": "accepted", "config": {"type": "CONDITION", "outlets": [
                    {"identifier": "ok", "title": "Dispatched", "expression": ".outputs[\"trigger-github\"].response.status == 200"}
                ]}},
                {"identifier": "record", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "deployment", "mapping": {
                    "identifier": "{{ .outputs.trigger.repo | gsub(\"/\"; \"-\") }}",
                    "title": "{{ .outputs.trigger.version }}",
                    "properties": {"version": "{{ .outputs[\"trigger-github\"].ref }}", "status": "{{ .outputs[\"trigger-github\"].response.status }}", "outcome": "dispatched"}
                }}},
                {"identifier": "record-failure", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "deployment", "mapping": {
                    "title": "failed", "properties": {"outcome": "failed"}
                }}}
            ],
            "connections": [
                connection("trigger", "trigger-github"),
                connection("trigger-github", "accepted"),
                {"sourceIdentifier": "accepted", "targetIdentifier": "record", "sourceOutletIdentifier": "ok"},
                {"sourceIdentifier": "accepted", "targetIdentifier": "record-failure", "fallback": true}
            ]
        }),
    )
    .await;
    let id = start(&server, "deploy", json!({"repo": "acme/api", "version": "1.2.3"})).await;
    assert!(id.starts_with("wfr_"), "{id}");
    let done = completed(&server, &id).await;
    assert_eq!(done["result"], "SUCCESS", "{done}");
    // The request: templated, the secret in clear on the wire, signed, with the node run's id.
    let calls = receiver.wait_for("/echo/repos/acme/api/dispatches", 1).await;
    let call = &calls[0];
    assert_eq!(call.header("authorization"), "Bearer ghp_s3cr3t");
    assert_eq!(call.header("accept"), "application/vnd.github.v3+json");
    assert!(call.header("x-port-signature").starts_with("v1,"), "{:?}", call.headers);
    let sent: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(sent, json!({"ref": "main", "inputs": {"version": "1.2.3"}, "run": id}));
    let webhook = node(&done, "trigger-github");
    assert_eq!(call.header("x-wharf-node-run-id"), webhook["identifier"].as_str().unwrap());
    // The webhook's output: the response, and the body's fields beside it (SPEC §9).
    assert_eq!(webhook["output"]["response"]["status"], 200);
    assert_eq!(webhook["output"]["response"]["data"]["ref"], "main");
    assert_eq!(webhook["output"]["ref"], "main");
    // The secret is masked in what is stored.
    assert_eq!(webhook["request"]["headers"]["Authorization"], "Bearer ****", "{webhook}");
    assert!(!done.to_string().contains("ghp_s3cr3t"), "{done}");
    // The condition took its outlet; the fallback did not run.
    assert_eq!(node(&done, "accepted")["output"]["outlet"], "ok");
    assert!(done["nodeRuns"].as_array().unwrap().iter().all(|n| n["nodeIdentifier"] != "record-failure"));
    // The trigger has a node run of its own, and `.outputs.trigger` aliases it.
    assert_eq!(node(&done, "trigger")["result"], "SUCCESS");
    assert_eq!(done["variables"]["outputs"]["trigger"]["repo"], "acme/api");
    // The entity, through the catalog.
    let (status, entity) = server.get("/v1/blueprints/deployment/entities/acme-api").await;
    assert_eq!(status, StatusCode::OK, "{entity}");
    assert_eq!(entity["entity"]["properties"], json!({"version": "main", "status": 200, "outcome": "dispatched"}));
    assert_eq!(node(&done, "record")["output"], json!({"response": {"data": {"identifier": "acme-api"}}}));
    // The list shows it.
    let (_, list) = server.get("/v1/workflows/runs?workflow_identifier=deploy").await;
    assert_eq!(list["workflowRuns"][0]["identifier"], id);
}

async fn graph_rules_are_refused_with_their_messages(server: TestServer) {
    let hook = |id: &str| json!({"identifier": id, "config": {"type": "WEBHOOK", "url": "http://127.0.0.1:9/x"}});
    let cases = [
        (json!({"identifier": "w", "nodes": [hook("a")], "connections": []}), "trigger"),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a"), hook("b")],
                   "connections": [connection("trigger", "a"), connection("a", "b"), connection("b", "a")]}),
            "cycle",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a"), hook("b")],
                   "connections": [connection("trigger", "a"), connection("trigger", "b")]}),
            "fan-out",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a")],
                   "connections": [connection("trigger", "a"), connection("a", "trigger")]}),
            "trigger",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})),
                   {"identifier": "c", "config": {"type": "CONDITION", "outlets": [{"identifier": "yes", "expression": "true"}]}}, hook("a")],
                   "connections": [connection("trigger", "c"), connection("c", "a")]}),
            "sourceOutletIdentifier",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a")],
                   "connections": [connection("trigger", "a"), connection("a", "nowhere")]}),
            "nowhere",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})),
                   {"identifier": "a", "config": {"type": "WEBHOOK", "url": "http://x/{{ .outputs | nope( }}"}}],
                   "connections": [connection("trigger", "a")]}),
            "nodes[1].config.url",
        ),
        // One connection per outlet; an outlet that exists; a node reachable from a trigger;
        // identifiers once; a connection leaves a CONDITION by an outlet or its fallback.
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})),
                   {"identifier": "c", "config": {"type": "CONDITION", "outlets": [{"identifier": "yes", "expression": "true"}]}}, hook("a"), hook("b")],
                   "connections": [connection("trigger", "c"),
                       {"sourceIdentifier": "c", "targetIdentifier": "a", "sourceOutletIdentifier": "yes"},
                       {"sourceIdentifier": "c", "targetIdentifier": "b", "sourceOutletIdentifier": "yes"}]}),
            "fan-out is not supported",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})),
                   {"identifier": "c", "config": {"type": "CONDITION", "outlets": [{"identifier": "yes", "expression": "true"}]}}, hook("a")],
                   "connections": [connection("trigger", "c"), {"sourceIdentifier": "c", "targetIdentifier": "a", "sourceOutletIdentifier": "maybe"}]}),
            "not an outlet of node `c`",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})),
                   {"identifier": "c", "config": {"type": "CONDITION", "outlets": [{"identifier": "yes", "expression": "true"}]}}, hook("a")],
                   "connections": [connection("trigger", "c"),
                       {"sourceIdentifier": "c", "targetIdentifier": "a", "sourceOutletIdentifier": "yes", "fallback": true}]}),
            "has both `sourceOutletIdentifier` and `fallback: true`",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a"), hook("orphan")], "connections": [connection("trigger", "a")]}),
            "(`orphan`) is not reachable from a trigger",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a"), hook("a")], "connections": [connection("trigger", "a")]}),
            "`a`",
        ),
        (
            json!({"identifier": "w", "nodes": [self_serve(json!({})), {"identifier": "k", "config": {"type": "KAFKA", "payload": {}}}],
                   "connections": [connection("trigger", "k")]}),
            "KAFKA",
        ),
        (json!({"identifier": "runs", "nodes": [self_serve(json!({}))]}), "runs"),
    ];
    for (doc, part) in cases {
        let answer = server.post("/v1/workflows", doc.clone()).await;
        assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{doc}: {}", answer.1);
        assert!(answer.1["message"].as_str().unwrap().contains(part), "{doc}: `{part}` in {}", answer.1);
    }
    // Nothing was saved.
    let (_, list) = server.get("/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]));
    // A duplicate is 409; an unknown one 404.
    let doc =
        json!({"identifier": "w", "nodes": [self_serve(json!({})), hook("a")], "connections": [connection("trigger", "a")]});
    create(&server, doc.clone()).await;
    assert_error(&server.post("/v1/workflows", doc).await, StatusCode::CONFLICT, "already exists");
    assert_error(&server.get("/v1/workflows/missing").await, StatusCode::NOT_FOUND, "missing");
    let (status, body) = server.delete("/v1/workflows/w").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
}

async fn an_asynchronous_webhook_waits_for_its_report(server: TestServer) {
    let receiver = Receiver::start().await;
    create(
        &server,
        json!({
            "identifier": "long", "nodes": [
                self_serve(json!({"properties": {"task": {"type": "string"}}})),
                {"identifier": "start-task", "config": {"type": "WEBHOOK", "synchronized": false,
                    "url": format!("{}/ok/tasks", receiver.base), "body": {"task": "{{ .outputs.trigger.task }}", "callback": "{{ .workflowNodeRun.identifier }}"}}},
                {"identifier": "notify", "config": {"type": "WEBHOOK", "url": format!("{}/ok/notify", receiver.base),
                    "body": {"result": "{{ .outputs[\"start-task\"].artifact }}"}}}
            ],
            "connections": [connection("trigger", "start-task"), connection("start-task", "notify")]
        }),
    )
    .await;
    let id = start(&server, "long", json!({"task": "build"})).await;
    let calls = receiver.wait_for("/ok/tasks", 1).await;
    let sent: Value = serde_json::from_str(&calls[0].body).unwrap();
    let node_run_id = sent["callback"].as_str().unwrap().to_owned();
    assert!(node_run_id.starts_with("wfnr_"), "{sent}");
    // Accepted, it waits: the next node does not run. (The receiver has the request a moment
    // before the stepper records its 2xx, and the request with it.)
    let mut waiting = node_run_of(&server, &id, "start-task").await;
    for _ in 0..100 {
        if waiting.get("request").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting = node_run_of(&server, &id, "start-task").await;
    }
    assert_eq!(waiting["status"], "IN_PROGRESS", "{waiting}");
    assert_eq!(waiting["request"]["body"]["task"], "build", "what it sent is kept while it waits: {waiting}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.calls("/ok/notify").is_empty());
    assert_eq!(run(&server, &id).await["status"], "IN_PROGRESS");
    // The older path names the run: another run's id does not reach the node run.
    assert_error(
        &server
            .patch(
                &format!("/v1/workflows/runs/wfr_other/nodes/{node_run_id}"),
                json!({"status": "COMPLETED", "result": "SUCCESS"}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "is not a node run of workflow run `wfr_other`",
    );
    assert_error(&server.get("/v1/workflows/runs?limit=0").await, StatusCode::UNPROCESSABLE_ENTITY, "`limit` is 0");
    // Logs, then the report (the older path, with its run id) completes it.
    let (status, logs) = server
        .post(
            &format!("/v1/workflows/nodes/runs/{node_run_id}/logs"),
            json!({"logs": [{"level": "INFO", "message": "building"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{logs}");
    let (status, body) = server
        .patch(
            &format!("/v1/workflows/runs/{id}/nodes/{node_run_id}"),
            json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"artifact": "build-7"},
                   "logs": [{"logLevel": "INFO", "log": "done", "tags": {"step": "final"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["nodeRun"]["result"], "SUCCESS");
    let notified = receiver.wait_for("/ok/notify", 1).await;
    assert_eq!(serde_json::from_str::<Value>(&notified[0].body).unwrap(), json!({"result": "build-7"}));
    let done = completed(&server, &id).await;
    assert_eq!(done["result"], "SUCCESS");
    let task = node(&done, "start-task");
    let lines: Vec<&str> = task["nodeRunLogs"].as_array().unwrap().iter().map(|l| l["log"].as_str().unwrap()).collect();
    assert!(lines.contains(&"building") && lines.contains(&"done"), "{lines:?}");
    // A completed node run cannot be reported on again.
    assert_error(
        &server
            .patch(&format!("/v1/workflows/nodes/runs/{node_run_id}"), json!({"status": "COMPLETED", "result": "FAILED"}))
            .await,
        StatusCode::CONFLICT,
        "completed",
    );
}

async fn on_failure_continue_goes_on_and_terminate_stops(server: TestServer) {
    let receiver = Receiver::start().await;
    for (identifier, on_failure) in [("goes-on", "continue"), ("stops", "terminate")] {
        create(
            &server,
            json!({
                "identifier": identifier, "nodes": [
                    self_serve(json!({})),
                    {"identifier": "call", "config": {"type": "WEBHOOK", "url": format!("{}/fail/{identifier}", receiver.base), "onFailure": on_failure}},
                    {"identifier": "after", "config": {"type": "WEBHOOK", "url": format!("{}/ok/{identifier}", receiver.base),
                        "body": {"error": "{{ .outputs.call.error.message }}"}}}
                ],
                "connections": [connection("trigger", "call"), connection("call", "after")]
            }),
        )
        .await;
    }
    let goes_on = completed(&server, &start(&server, "goes-on", json!({})).await).await;
    assert_eq!(goes_on["result"], "SUCCESS", "{goes_on}");
    let call = node(&goes_on, "call");
    assert_eq!(call["result"], "FAILED");
    let message = call["output"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("Failed to invoke the webhook with status code: 500"), "{message}");
    let after = receiver.wait_for("/ok/goes-on", 1).await;
    assert!(after[0].body.contains("status code: 500"), "{}", after[0].body);
    let stops = completed(&server, &start(&server, "stops", json!({})).await).await;
    assert_eq!(stops["result"], "FAILED", "{stops}");
    assert!(stops["nodeRuns"].as_array().unwrap().iter().all(|n| n["nodeIdentifier"] != "after"));
    // One attempt each: a synchronized node is not retried.
    assert_eq!(receiver.calls("/fail/goes-on").len(), 1);
    assert_eq!(receiver.calls("/fail/stops").len(), 1);
    assert!(receiver.calls("/ok/stops").is_empty());
}

async fn on_timeout_continue_goes_on_and_fail_stops(server: TestServer) {
    // The test server's outbound timeout is 1 s; `/slow/…` answers after 3 s.
    let receiver = Receiver::start().await;
    for (identifier, on_timeout) in [("patient", "continue"), ("strict", "fail")] {
        create(
            &server,
            json!({
                "identifier": identifier, "nodes": [
                    self_serve(json!({})),
                    {"identifier": "call", "config": {"type": "WEBHOOK", "url": format!("{}/slow/{identifier}", receiver.base), "onTimeout": on_timeout}},
                    {"identifier": "after", "config": {"type": "WEBHOOK", "url": format!("{}/ok/{identifier}", receiver.base),
                        "body": {"timedOut": "{{ .outputs.call.timeout }}"}}}
                ],
                "connections": [connection("trigger", "call"), connection("call", "after")]
            }),
        )
        .await;
    }
    let patient = completed(&server, &start(&server, "patient", json!({})).await).await;
    assert_eq!(patient["result"], "SUCCESS", "{patient}");
    assert_eq!(node(&patient, "call")["output"], json!({"timeout": true}));
    assert_eq!(
        serde_json::from_str::<Value>(&receiver.wait_for("/ok/patient", 1).await[0].body).unwrap(),
        json!({"timedOut": true})
    );
    let strict = completed(&server, &start(&server, "strict", json!({})).await).await;
    assert_eq!(strict["result"], "FAILED", "{strict}");
    assert!(node(&strict, "call")["output"]["error"]["message"].as_str().unwrap().contains("Failed to invoke the webhook"));
    assert!(receiver.calls("/ok/strict").is_empty());
}

async fn runs_keep_the_version_they_started_with(server: TestServer) {
    let receiver = Receiver::start().await;
    let doc = |next: &str| {
        json!({
            "identifier": "pinned", "nodes": [
                self_serve(json!({})),
                {"identifier": "wait", "config": {"type": "WEBHOOK", "synchronized": false, "url": format!("{}/ok/wait", receiver.base)}},
                {"identifier": "next", "config": {"type": "WEBHOOK", "url": format!("{}/ok/{next}", receiver.base)}}
            ],
            "connections": [connection("trigger", "wait"), connection("wait", "next")]
        })
    };
    let first = create(&server, doc("first")).await;
    let old = start(&server, "pinned", json!({})).await;
    let waiting = node_run_of(&server, &old, "wait").await;
    let (status, second) = server.put("/v1/workflows/pinned", doc("second")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["workflow"]["versionIdentifier"], first["versionIdentifier"]);
    let new = start(&server, "pinned", json!({})).await;
    let new_waiting = node_run_of(&server, &new, "wait").await;
    for node_run in [&waiting, &new_waiting] {
        let id = node_run["identifier"].as_str().unwrap();
        let (status, body) =
            server.patch(&format!("/v1/workflows/nodes/runs/{id}"), json!({"status": "COMPLETED", "result": "SUCCESS"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let old = completed(&server, &old).await;
    let new = completed(&server, &new).await;
    assert_eq!(old["workflowVersionIdentifier"], first["versionIdentifier"]);
    assert_eq!(new["workflowVersionIdentifier"], second["workflow"]["versionIdentifier"]);
    assert_eq!(receiver.calls("/ok/first").len(), 1);
    assert_eq!(receiver.calls("/ok/second").len(), 1);
}

async fn schedule_ticks_fire_once_each(server: TestServer) {
    let receiver = Receiver::start().await;
    // Yearly: the server's own worker will not fire it during the test; the test's clock does.
    let saved = create(
        &server,
        json!({
            "identifier": "nightly", "nodes": [
                {"identifier": "tick", "config": {"type": "SCHEDULE_TRIGGER", "cron": "0 3 1 1 *"}},
                {"identifier": "call", "config": {"type": "WEBHOOK", "url": format!("{}/ok/tick", receiver.base),
                    "body": {"at": "{{ .outputs.trigger.scheduledAt }}"}}}
            ],
            "connections": [connection("tick", "call")]
        }),
    )
    .await;
    let saved_at = Timestamp::parse(saved["updatedAt"].as_str().unwrap()).unwrap();
    let schedules = server.server().node().schedules();
    // Not due yet.
    assert_eq!(schedules.fire_due(saved_at).await.unwrap(), 0);
    // Three years of missed ticks: one run, not three.
    let later = saved_at.plus_millis(3 * 366 * 24 * 3600 * 1000);
    assert_eq!(schedules.fire_due(later).await.unwrap(), 1);
    assert_eq!(schedules.fire_due(later).await.unwrap(), 0, "a tick fires once");
    // Two firers at once (two nodes): the tick fires once.
    let next_year = later.plus_millis(366 * 24 * 3600 * 1000);
    let neighbour = server.server().node().schedules();
    let (a, b) = tokio::join!(schedules.fire_due(next_year), neighbour.fire_due(next_year));
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let (_, runs) = server.get("/v1/workflows/runs?workflow_identifier=nightly").await;
    let runs = runs["workflowRuns"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for listed in &runs {
        let done = completed(&server, listed["identifier"].as_str().unwrap()).await;
        assert_eq!(done["result"], "SUCCESS");
        assert_eq!(done["trigger"]["configType"], "SCHEDULE_TRIGGER");
    }
    let ticks = receiver.wait_for("/ok/tick", 2).await;
    let at: Value = serde_json::from_str(&ticks[0].body).unwrap();
    assert!(at["at"].as_str().unwrap().ends_with("-01-01T03:00:00.000Z"), "{at}");
    // Invalid cron is refused on save.
    assert_error(
        &server
            .post("/v1/workflows", json!({"identifier": "bad", "nodes": [{"identifier": "t", "config": {"type": "SCHEDULE_TRIGGER", "cron": "* * * * * *"}}]}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cron",
    );
}

async fn event_triggers_start_runs_on_entity_changes(server: TestServer) {
    let receiver = Receiver::start().await;
    deployments(&server).await;
    create(
        &server,
        json!({
            "identifier": "on-deploy", "nodes": [
                {"identifier": "changed", "config": {"type": "EVENT_TRIGGER",
                    "event": {"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "deployment"},
                    "condition": {"type": "JQ", "expressions": [".diff.after.properties.outcome == \"failed\""], "combinator": "and"}}},
                {"identifier": "page", "config": {"type": "WEBHOOK", "url": format!("{}/ok/page", receiver.base),
                    "body": {"entity": "{{ .outputs.trigger.diff.after.identifier }}", "action": "{{ .outputs.changed.action }}"}}}
            ],
            "connections": [connection("changed", "page")]
        }),
    )
    .await;
    server.upsert("deployment", json!({"identifier": "fine", "properties": {"outcome": "dispatched"}})).await;
    server.upsert("deployment", json!({"identifier": "broken", "properties": {"outcome": "failed"}})).await;
    let pages = receiver.wait_for("/ok/page", 1).await;
    assert_eq!(serde_json::from_str::<Value>(&pages[0].body).unwrap(), json!({"entity": "broken", "action": "CREATE"}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.calls("/ok/page").len(), 1, "the condition held once");
    let (_, runs) = server.get("/v1/workflows/runs?workflow_identifier=on-deploy").await;
    assert_eq!(runs["workflowRuns"].as_array().unwrap().len(), 1);
}

async fn agents_claim_and_complete_node_runs(mut server: TestServer) {
    create(
        &server,
        json!({
            "identifier": "private", "nodes": [
                self_serve(json!({"properties": {"host": {"type": "string"}}})),
                {"identifier": "inside", "config": {"type": "WEBHOOK", "agent": true, "url": "http://10.0.0.7/deploy",
                    "headers": {"X-Host": "{{ .outputs.trigger.host }}"}, "body": {"host": "{{ .outputs.trigger.host }}"}}}
            ],
            "connections": [connection("trigger", "inside")]
        }),
    )
    .await;
    let id = start(&server, "private", json!({"host": "db-1"})).await;
    let claim = json!({"installationId": "office", "limit": 10, "waitMs": 5000});
    let (status, claimed) = server.post("/v1/workflows/runs/claim-pending", claim.clone()).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let node_runs = claimed["nodeRuns"].as_array().unwrap();
    assert_eq!(node_runs.len(), 1, "{claimed}");
    let config = &node_runs[0]["config"];
    assert_eq!(config["url"], "http://10.0.0.7/deploy");
    assert_eq!(config["agent"], true);
    assert_eq!(config["body"], json!({"host": "db-1"}));
    assert_eq!(config["headers"]["X-Host"], "db-1");
    let node_run_id = node_runs[0]["identifier"].as_str().unwrap().to_owned();
    // Hidden from other claims until acknowledged or its visibility ends.
    let (_, again) = server.post("/v1/workflows/runs/claim-pending", json!({"installationId": "other"})).await;
    assert_eq!(again["nodeRuns"], json!([]));
    let (status, acked) = server.patch("/v1/workflows/runs/ack", json!({"nodeRunIdentifier": node_run_id})).await;
    assert_eq!((status, acked), (StatusCode::OK, json!({"ok": true, "acked": true})));
    assert_error(
        &server.patch("/v1/workflows/runs/ack", json!({"nodeRunIdentifier": node_run_id})).await,
        StatusCode::CONFLICT,
        "acknowledged",
    );
    // The agent reports as Port's agent does (reference §5.4).
    let (status, _) = server
        .post(
            &format!("/v1/workflows/nodes/runs/{node_run_id}/logs"),
            json!({"logs": [{"level": "INFO", "message": "A workflow node run has been received"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = server
        .patch(
            &format!("/v1/workflows/nodes/runs/{node_run_id}"),
            json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status": 200, "data": {"deployed": true}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = completed(&server, &id).await;
    assert_eq!(done["result"], "SUCCESS");
    assert_eq!(node(&done, "inside")["output"]["response"]["data"]["deployed"], true);
    assert_eq!(node(&done, "inside")["request"]["url"], "http://10.0.0.7/deploy", "what the agent was to send is kept");

    // A server that stops answers a waiting node run claim (empty) rather than holding it.
    let waiting = common::http()
        .post(format!("{}/v1/workflows/runs/claim-pending", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"installationId": "office", "waitMs": 30_000}))
        .send();
    let waiting = tokio::spawn(async move {
        let answer = waiting.await.expect("the claim is answered, not cut");
        (answer.status(), answer.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await;
    let (status, answer) = waiting.await.unwrap();
    assert_eq!((status, answer["nodeRuns"].clone()), (StatusCode::OK, json!([])));
}

async fn bad_inputs_and_reports_are_refused(server: TestServer) {
    create(
        &server,
        json!({
            "identifier": "strict", "nodes": [
                self_serve(json!({"properties": {"version": {"type": "string", "enum": ["1", "2"]}}, "required": ["version"]})),
                {"identifier": "wait", "config": {"type": "WEBHOOK", "synchronized": false, "url": "http://127.0.0.1:9/never"}}
            ],
            "connections": [connection("trigger", "wait")]
        }),
    )
    .await;
    assert_error(
        &server.post("/v1/workflows/strict/runs", json!({"inputs": {"version": "3"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "inputs.version",
    );
    assert_error(
        &server.post("/v1/workflows/strict/runs", json!({"inputs": {}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "version",
    );
    assert_error(&server.post("/v1/workflows/missing/runs", json!({"inputs": {}})).await, StatusCode::NOT_FOUND, "missing");
    assert_error(
        &server.patch("/v1/workflows/nodes/runs/wfnr_nothing", json!({"status": "COMPLETED", "result": "SUCCESS"})).await,
        StatusCode::NOT_FOUND,
        "wfnr_nothing",
    );
    let id = start(&server, "strict", json!({"version": "1"})).await;
    let trigger = node_run_of(&server, &id, "trigger").await;
    let trigger_id = trigger["identifier"].as_str().unwrap();
    assert_error(
        &server.patch(&format!("/v1/workflows/nodes/runs/{trigger_id}"), json!({"status": "COMPLETED"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`result` is required",
    );
    assert_error(
        &server.patch(&format!("/v1/workflows/nodes/runs/{trigger_id}"), json!({"status": "DONE"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "status",
    );
    // Another organization sees none of it.
    let (_, token) = server.other_organization("other").await;
    let (status, _) = server.call_as(Some(&token), reqwest::Method::GET, &format!("/v1/workflows/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call_as(Some(&token), reqwest::Method::GET, "/v1/workflows/strict", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Node `variables` replace a node's output, over its raw output as `.result` and at the top
/// (`.response`); a node calls Port's API (`https://api.getport.io/…`) with no token, served
/// by Wharf itself; an UPSERT_ENTITY without an identifier gets one; `verbose` logs the
/// request and the response.
async fn variables_replace_outputs_and_nodes_call_ports_api(server: TestServer) {
    let receiver = Receiver::start().await;
    deployments(&server).await;
    create(
        &server,
        json!({
            "identifier": "shaped", "nodes": [
                self_serve(json!({})),
                {"identifier": "call", "verbose": true, "config": {"type": "WEBHOOK", "url": format!("{}/echo/items", receiver.base),
                    "body": {"items": [1, 2, 3], "name": "api"}},
                 "variables": {"count": "{{ .result.response.data.items | length }}", "name": "{{ .response.data.name }}",
                               "workflow": "{{ .workflow.identifier }}", "node": "{{ .workflowNodeRun.identifier }}"}},
                {"identifier": "create_port_entity", "config": {"type": "WEBHOOK", "method": "POST",
                    "url": "https://api.getport.io/v1/blueprints/deployment/entities",
                    "body": {"identifier": "{{ .outputs.call.name }}-{{ .outputs.call.count }}", "title": "{{ .outputs.call.workflow }}",
                             "properties": {"version": "v{{ .outputs.call.count }}"}}}},
                {"identifier": "note", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "deployment",
                    "mapping": {"title": "{{ .outputs.create_port_entity.entity.identifier }}", "properties": {"outcome": "noted"}}}}
            ],
            "connections": [connection("trigger", "call"), connection("call", "create_port_entity"), connection("create_port_entity", "note")]
        }),
    )
    .await;
    let done = completed(&server, &start(&server, "shaped", json!({})).await).await;
    assert_eq!(done["result"], "SUCCESS", "{done}");
    let call = node(&done, "call");
    assert_eq!(
        call["output"],
        json!({"count": 3, "name": "api", "workflow": "shaped", "node": call["identifier"]}),
        "the variables replace the output"
    );
    let logs = call["nodeRunLogs"].to_string();
    assert!(logs.contains("Request: ") && logs.contains("Response: "), "verbose logs both: {logs}");
    // Port's API, served by Wharf as the organization's client: the entity exists.
    let port = node(&done, "create_port_entity");
    assert_eq!(port["output"]["response"]["status"], 201, "{port}");
    let (status, entity) = server.get("/v1/blueprints/deployment/entities/api-3").await;
    assert_eq!(status, StatusCode::OK, "{entity}");
    assert_eq!(entity["entity"]["title"], "shaped");
    assert_eq!(entity["entity"]["properties"]["version"], "v3");
    // The generated identifier: the node run's, so a resumed write writes the same entity.
    let note = node(&done, "note");
    let generated = note["output"]["response"]["data"]["identifier"].as_str().unwrap();
    assert_eq!(generated, note["identifier"].as_str().unwrap().replace("wfnr_", "e_"));
    let (status, entity) = server.get(&format!("/v1/blueprints/deployment/entities/{generated}")).await;
    assert_eq!(status, StatusCode::OK, "{entity}");
    assert_eq!(entity["entity"]["title"], "api-3");
}

async fn a_timer_expiring_starts_a_run(server: TestServer) {
    let receiver = Receiver::start().await;
    server
        .blueprint(json!({"identifier": "lease", "title": "Lease", "schema": {"properties": {"expires": {"type": "string", "format": "timer"}}}}))
        .await;
    create(
        &server,
        json!({
            "identifier": "expiry", "nodes": [
                {"identifier": "expired", "config": {"type": "EVENT_TRIGGER",
                    "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "lease", "propertyIdentifier": "expires"}}},
                {"identifier": "tell", "config": {"type": "WEBHOOK", "url": format!("{}/ok/expired", receiver.base),
                    "body": {"entity": "{{ .outputs.trigger.context.entityIdentifier }}", "action": "{{ .outputs.trigger.action }}"}}}
            ],
            "connections": [connection("expired", "tell")]
        }),
    )
    .await;
    let soon = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 300,
    );
    server.upsert("lease", json!({"identifier": "db", "properties": {"expires": soon.to_iso()}})).await;
    let calls = receiver.wait_for("/ok/expired", 1).await;
    assert_eq!(serde_json::from_str::<Value>(&calls[0].body).unwrap(), json!({"entity": "db", "action": "TIMER_EXPIRED"}));
}

/// Seed 001's node examples (`tests/fixtures/workflows/seed-001-nodes.json`, as the seed
/// prints them; the fragments that are a `config` or a `body` alone get an identifier, and the
/// body one the URL of a node) chained after a SELF_SERVE_TRIGGER and run, their hosts pointed
/// at the local receiver; Port's API (`https://api.getport.io`) is Wharf itself.
async fn seed_001s_examples_run_as_written(server: TestServer) {
    let receiver = Receiver::start().await;
    let seed: Vec<Value> =
        serde_json::from_str(include_str!("../fixtures/workflows/seed-001-nodes.json")).expect("the seed's nodes are JSON");
    let mut nodes = vec![self_serve(json!({"properties": {
        "service": {"type": "string"}, "version": {"type": "string"}, "environment": {"type": "string"},
        "data": {"type": "string"}, "name": {"type": "string"}, "task": {"type": "string"}, "repo": {"type": "string"}}}))];
    let mut asynchronous = None;
    for (k, node) in seed.into_iter().enumerate() {
        let mut node = match node.get("config") {
            Some(_) => node,
            None => json!({"config": {"type": "WEBHOOK", "url": "https://api.example.com/resources/use", "body": node["body"]}}),
        };
        if node.get("identifier").is_none() {
            node["identifier"] = json!(format!("example-{k}"));
        }
        let text = node
            .to_string()
            .replace("https://api.example.com", &format!("{}/echo/example", receiver.base))
            .replace("https://hooks.slack.com", &format!("{}/ok/slack", receiver.base))
            .replace("https://api.github.com", &format!("{}/ok/github", receiver.base));
        let node: Value = serde_json::from_str(&text).unwrap();
        // The asynchronous one waits for its report: it goes last.
        if node["config"]["synchronized"] == false {
            asynchronous = Some(node);
        } else {
            nodes.push(node);
        }
    }
    nodes.extend(asynchronous);
    let connections: Vec<Value> = nodes
        .windows(2)
        .map(|pair| connection(pair[0]["identifier"].as_str().unwrap(), pair[1]["identifier"].as_str().unwrap()))
        .collect();
    for (name, value) in [("api-token", "t-api"), ("webhook-token", "t-hook"), ("api-key", "t-key"), ("github-token", "t-gh")] {
        let (status, body) = server.post("/v1/organization/secrets", json!({"secretName": name, "secretValue": value})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server.blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}})).await;
    server
        .blueprint(json!({"identifier": "deployment", "title": "Deployment",
            "schema": {"properties": {"version": {"type": "string"}, "deployedAt": {"type": "string", "format": "date-time"}}},
            "relations": {"service": {"target": "service", "many": false, "required": false}}}))
        .await;
    server.upsert("service", json!({"identifier": "api", "title": "API"})).await;
    create(&server, json!({"identifier": "seed-001", "nodes": nodes, "connections": connections})).await;
    let inputs = json!({"service": "api", "version": "1.2.3", "environment": "staging", "data": "d", "name": "res",
        "task": "build", "repo": "acme/api"});
    let id = start(&server, "seed-001", inputs).await;
    // Each request as the seed's templates render it.
    let deploy = receiver.wait_for("/echo/example/deploy", 1).await;
    assert_eq!(
        serde_json::from_str::<Value>(&deploy[0].body).unwrap(),
        json!({"service": "api", "version": "1.2.3", "environment": "staging"})
    );
    let headers = receiver.wait_for("/echo/example/webhook", 2).await;
    assert_eq!(headers[0].header("x-custom-header"), "custom-value");
    assert_eq!(headers[0].header("authorization"), "Bearer t-api");
    assert_eq!(headers[1].query.as_deref(), Some("token=t-hook"));
    assert_eq!(headers[1].header("authorization"), "Bearer t-key");
    let slack = receiver.wait_for("/ok/slack/services/xxx/yyy/zzz", 1).await;
    assert!(slack[0].body.contains("*api* is being deployed to *staging*"), "{}", slack[0].body);
    let github = receiver.wait_for("/ok/github/repos/acme/api/actions/workflows/deploy.yml/dispatches", 1).await;
    assert_eq!(github[0].header("authorization"), "Bearer t-gh");
    // The asynchronous task waits for its report, then the run completes.
    let task = receiver.wait_for("/echo/example/long-running-task", 1).await;
    assert_eq!(serde_json::from_str::<Value>(&task[0].body).unwrap(), json!({"task": "build"}));
    let waiting = node_run_of(&server, &id, task_node(&nodes)).await;
    let (status, body) = server
        .patch(
            &format!("/v1/workflows/nodes/runs/{}", waiting["identifier"].as_str().unwrap()),
            json!({"status": "COMPLETED", "result": "SUCCESS"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = completed(&server, &id).await;
    assert_eq!(done["result"], "SUCCESS", "{done}");
    assert_eq!(node(&done, "create_resource")["output"]["response"]["data"], json!({"name": "res"}));
    // "Call Port API": the entity, written by Wharf's own API, with its relation.
    let (status, entity) = server.get("/v1/blueprints/deployment/entities/api_staging").await;
    assert_eq!(status, StatusCode::OK, "{entity}");
    assert_eq!(entity["entity"]["title"], "api (staging)");
    assert_eq!(entity["entity"]["relations"]["service"], "api");
    assert_eq!(entity["entity"]["properties"]["version"], "1.2.3");
}

/// The identifier of the chain's asynchronous node (its last).
fn task_node(nodes: &[Value]) -> &str {
    nodes.last().and_then(|n| n["identifier"].as_str()).unwrap()
}

// Crash: the real binary killed mid-run.
//
// Workflow runs survive a crash: the real `wharf` binary is killed with SIGKILL while runs
// are in their first WEBHOOK node (its receiver answers after 300 ms, so sends are cut off
// mid-flight), then restarted on the same data. Every run completes from the node it was
// in; each node's request reached the receiver, and a request was sent again only when its
// attempt had been cut off mid-send (the resend carries the same node run id, and the node
// run's log says so); the UPSERT_ENTITY node wrote each run's entity once. SQLite, and
// PostgreSQL when `WHARF_TEST_DATABASE_URL` is set.

const CRASH_RUNS: usize = 24;

async fn crash_and_resume(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // A 1 s outbound timeout: a node run claimed by the killed node is claimed again after
    // its lease (twice the timeout and 5 s).
    let args = ["--allow-network", "127.0.0.0/8", "--delivery-timeout", "1"];
    let mut node = Node::start(dir.path(), database_url, &args).await;
    let http = common::http();
    let token = node.token(&http).await;
    let post = |base: String, token: String, path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).bearer_auth(token).json(&body);
        async move {
            let reply = request.send().await.unwrap();
            let status = reply.status();
            let body: Value = reply.json().await.unwrap();
            assert!(status.is_success(), "{status}: {body}");
            body
        }
    };
    let blueprint = json!({"identifier": "build", "title": "Build", "schema": {"properties": {"n": {"type": "number"}}}});
    post(node.base.clone(), token.clone(), "/v1/blueprints", blueprint).await;
    let workflow = json!({
        "identifier": "pipeline",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"n": {"type": "number"}}}}},
            {"identifier": "first", "config": {"type": "WEBHOOK", "url": receiver.url("/slowish/first"), "body": {"n": "{{ .outputs.trigger.n }}"}}},
            {"identifier": "record", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "build",
                "mapping": {"identifier": "build-{{ .outputs.trigger.n }}", "properties": {"n": "{{ .outputs.trigger.n }}"}}}},
            {"identifier": "after", "config": {"type": "WEBHOOK", "url": receiver.url("/ok/after"), "body": {"n": "{{ .outputs.trigger.n }}"}}}
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "first"},
            {"sourceIdentifier": "first", "targetIdentifier": "record"},
            {"sourceIdentifier": "record", "targetIdentifier": "after"}
        ]
    });
    post(node.base.clone(), token.clone(), "/v1/workflows", workflow).await;
    let mut ids = Vec::new();
    for n in 0..CRASH_RUNS {
        let run = post(node.base.clone(), token.clone(), "/v1/workflows/pipeline/runs", json!({"inputs": {"n": n}})).await;
        ids.push(run["workflowRun"]["identifier"].as_str().unwrap().to_owned());
    }
    // Kill once the first node's sends are under way (some answered, some in flight).
    receiver.wait_for("/slowish/first", 4).await;
    node.kill();
    let before = receiver.all().len();

    let node = Node::start(dir.path(), database_url, &args).await;
    let token = node.token(&http).await;
    let get = |path: String| {
        let request = http.get(format!("{}{path}", node.base)).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut runs = Vec::new();
    for id in &ids {
        let mut run = Value::Null;
        for _ in 0..400 {
            run = get(format!("/v1/workflows/runs/{id}")).await["workflowRun"].clone();
            if run["status"] == "COMPLETED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(run["result"], "SUCCESS", "run {id} resumed and completed: {run}");
        runs.push(run);
    }
    // Each node's request reached the receiver; a second send of one node run only after an
    // attempt cut off mid-send, with the same node run id, said in its log.
    let mut sends: HashMap<String, usize> = HashMap::new();
    for call in receiver.all() {
        *sends.entry(call.header("x-wharf-node-run-id").to_owned()).or_default() += 1;
    }
    let mut resent = 0;
    for run in &runs {
        for node_run in run["nodeRuns"].as_array().unwrap() {
            if node_run["nodeConfigType"] != "WEBHOOK" {
                continue;
            }
            let id = node_run["identifier"].as_str().unwrap();
            let count = sends.get(id).copied().unwrap_or(0);
            assert!(count >= 1, "node run {id} was sent: {node_run}");
            if count > 1 {
                resent += 1;
                assert_eq!(count, 2, "node run {id} sent again once, after one cut-off: {node_run}");
                let logs = node_run["nodeRunLogs"].to_string();
                assert!(logs.contains("stopped mid-step"), "node run {id} says it was sent again: {logs}");
            }
        }
    }
    // Each run's entity, written once (merged on a resumed write).
    let entities = get("/v1/blueprints/build/entities?limit=1000".into()).await;
    assert_eq!(entities["entities"].as_array().unwrap().len(), CRASH_RUNS, "{entities}");
    eprintln!(
        "workflow crash test: {CRASH_RUNS} runs completed after SIGKILL; {before} requests before it, {} in all, {resent} node runs sent again",
        receiver.all().len()
    );
    let mut node = node;
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_resume_across_sigkill_sqlite() {
    crash_and_resume(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_resume_across_sigkill_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    crash_and_resume(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
