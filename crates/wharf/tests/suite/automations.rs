//! Automations (issue 24, point 4; reference §3.5) through the HTTP API of a real server,
//! with a real recording receiver, on both stores: every trigger type, with and without a
//! condition; what an automation's run sends (SPEC §8's default body: the event and the run
//! id); unpublished automations and changes older than the automation; a chain of
//! automations stopped at depth 10 with the reason in the log of the run that would have
//! gone on; and a timer that fires once, also when its moment passes while Wharf is down.

use crate::common;

use common::TestServer;
use common::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

both_stores!(
    entity_events_fire_their_automations,
    run_events_fire_their_automations,
    conditions_decide_and_unpublished_automations_stay_quiet,
    a_chain_of_automations_stops_at_depth_ten,
    a_timer_fires_once_across_a_restart,
    changes_no_automation_acts_on_are_passed_over,
);

async fn service_blueprint(server: &TestServer) {
    let (status, body) = server
        .post(
            "/v1/blueprints",
            json!({
                "identifier": "service", "title": "Service",
                "schema": {"properties": {
                    "tier": {"type": "number"}, "count": {"type": "number"},
                    "expires": {"type": "string", "format": "timer"}
                }}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn automation(identifier: &str, event: Value, condition: Option<Value>, url: &str) -> Value {
    let mut trigger = json!({"type": "automation", "event": event});
    if let Some(condition) = condition {
        trigger["condition"] = condition;
    }
    json!({"identifier": identifier, "trigger": trigger, "invocationMethod": {"type": "WEBHOOK", "url": url}})
}

async fn runs_of(server: &TestServer, action: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/v1/actions/runs?action={action}&limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["runs"].as_array().unwrap().clone()
}

/// The JSON bodies received on `path`, once `n` arrived.
async fn bodies(receiver: &Receiver, path: &str, n: usize) -> Vec<Value> {
    receiver.wait_for(path, n).await.iter().map(|c| serde_json::from_str(&c.body).unwrap()).collect()
}

async fn entity_events_fire_their_automations(server: TestServer) {
    service_blueprint(&server).await;
    let receiver = Receiver::start().await;
    for (name, kind) in [
        ("on-create", "ENTITY_CREATED"),
        ("on-update", "ENTITY_UPDATED"),
        ("on-delete", "ENTITY_DELETED"),
        ("on-any", "ANY_ENTITY_CHANGE"),
    ] {
        let event = json!({"type": kind, "blueprintIdentifier": "service"});
        server.create_action(automation(name, event, None, &receiver.url(&format!("/ok/{name}")))).await;
    }
    server.upsert("service", json!({"identifier": "api", "properties": {"tier": 1}})).await;
    let (status, _) = server.patch("/v1/blueprints/service/entities/api", json!({"properties": {"tier": 2}})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.delete("/v1/blueprints/service/entities/api").await;
    assert_eq!(status, StatusCode::OK);

    let created = bodies(&receiver, "/ok/on-create", 1).await.remove(0);
    assert_eq!(created["event"]["action"], "CREATE");
    assert_eq!(created["event"]["resourceType"], "entity");
    assert_eq!(created["event"]["diff"]["before"], Value::Null);
    assert_eq!(created["event"]["diff"]["after"]["identifier"], "api");
    assert_eq!(created["event"]["context"]["entityIdentifier"], "api");
    let updated = bodies(&receiver, "/ok/on-update", 1).await.remove(0);
    assert_eq!(
        (
            updated["event"]["diff"]["before"]["properties"]["tier"].as_i64(),
            updated["event"]["diff"]["after"]["properties"]["tier"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let deleted = bodies(&receiver, "/ok/on-delete", 1).await.remove(0);
    assert_eq!(deleted["event"]["diff"]["after"], Value::Null);
    let any = bodies(&receiver, "/ok/on-any", 3).await;
    // Requests are sent concurrently: they arrive in any order.
    let mut actions: Vec<&str> = any.iter().map(|b| b["event"]["action"].as_str().unwrap()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["CREATE", "DELETE", "UPDATE"]);

    // Each fired once, as a run of the automation (SPEC §8: its own identifier), from the
    // automation source, whose id the body carries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, n) in [("on-create", 1), ("on-update", 1), ("on-delete", 1), ("on-any", 3)] {
        assert_eq!(receiver.calls(&format!("/ok/{name}")).len(), n, "{name}");
        let runs = runs_of(&server, name).await;
        assert_eq!(runs.len(), n, "{name}: {runs:?}");
        assert!(runs.iter().all(|r| r["source"] == "AUTOMATION" && r["action"]["identifier"] == name));
    }
    let run = &runs_of(&server, "on-create").await[0];
    assert_eq!(created["port_context"]["runId"], run["id"]);
    assert_eq!(run["chainDepth"], 1);
    let (_, automations) = server.get("/v1/actions/runs?source=AUTOMATION&limit=1000").await;
    assert_eq!(automations["runs"].as_array().unwrap().len(), 6);
}

async fn run_events_fire_their_automations(server: TestServer) {
    let receiver = Receiver::start().await;
    server
        .create_action(json!({
            "identifier": "deploy",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/ok/deploy")}
        }))
        .await;
    for (name, kind) in [("run-created", "RUN_CREATED"), ("run-updated", "RUN_UPDATED"), ("run-any", "ANY_RUN_CHANGE")] {
        let event = json!({"type": kind, "actionIdentifier": "deploy"});
        server.create_action(automation(name, event, None, &receiver.url(&format!("/ok/{name}")))).await;
    }
    // A report with a condition on the run's new status (Port's guide: notify on failure).
    server
        .create_action(automation(
            "on-failure",
            json!({"type": "RUN_UPDATED", "actionIdentifier": "deploy"}),
            Some(json!({"type": "JQ", "expressions": [".diff.after.status == \"FAILURE\""], "combinator": "and"})),
            &receiver.url("/ok/on-failure"),
        ))
        .await;
    let (_, started) = server.post("/v1/actions/deploy/runs", json!({})).await;
    let id = started["run"]["id"].as_str().unwrap().to_owned();
    receiver.wait_for("/ok/deploy", 1).await;
    let (status, _) = server.patch(&format!("/v1/actions/runs/{id}"), json!({"statusLabel": "half way"})).await;
    assert_eq!(status, StatusCode::OK);
    // A log line is not a change (reference §3.5).
    server.post(&format!("/v1/actions/runs/{id}/logs"), json!({"message": "working"})).await;
    let (status, _) = server.patch(&format!("/v1/actions/runs/{id}"), json!({"status": "FAILURE"})).await;
    assert_eq!(status, StatusCode::OK);

    let created = bodies(&receiver, "/ok/run-created", 1).await.remove(0);
    assert_eq!(created["event"]["resourceType"], "run");
    assert_eq!(created["event"]["action"], "CREATE");
    assert_eq!(created["event"]["diff"]["after"]["id"], id.as_str());
    assert_eq!(created["event"]["context"]["actionIdentifier"], "deploy");
    assert!(created["event"]["id"].as_str().unwrap().starts_with("chg_"));
    let updates = bodies(&receiver, "/ok/run-updated", 2).await;
    let labels: Vec<Value> = updates.iter().map(|b| b["event"]["diff"]["after"]["statusLabel"].clone()).collect();
    assert_eq!(labels, [json!("half way"), json!("half way")]);
    let mut statuses: Vec<&str> = updates.iter().map(|b| b["event"]["diff"]["after"]["status"].as_str().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["FAILURE", "IN_PROGRESS"], "in any order (sent concurrently)");
    bodies(&receiver, "/ok/run-any", 3).await;
    let failure = bodies(&receiver, "/ok/on-failure", 1).await.remove(0);
    assert_eq!(failure["event"]["diff"]["before"]["status"], "IN_PROGRESS");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.calls("/ok/run-created").len(), 1);
    assert_eq!(receiver.calls("/ok/run-updated").len(), 2, "the log line triggered nothing");
    assert_eq!(receiver.calls("/ok/run-any").len(), 3);
    assert_eq!(receiver.calls("/ok/on-failure").len(), 1, "the condition held once");
    // The automations' own runs do not trigger the automations on `deploy`.
    assert_eq!(runs_of(&server, "run-created").await[0]["chainDepth"], 1);
}

async fn conditions_decide_and_unpublished_automations_stay_quiet(server: TestServer) {
    service_blueprint(&server).await;
    let receiver = Receiver::start().await;
    // Written before the automations exist: seen by none of them.
    server.upsert("service", json!({"identifier": "old", "properties": {"tier": 1}})).await;
    let rising = json!({"type": "JQ", "combinator": "and", "expressions": [
        ".diff.before.properties.tier == 1", ".diff.after.properties.tier == 2"]});
    let either = json!({"type": "JQ", "combinator": "or", "expressions": [
        ".diff.after.properties.tier == 5", ".context.entityIdentifier == \"web\""]});
    let broken = json!({"type": "JQ", "combinator": "and", "expressions": [".diff.after.properties.tier | error(\"no\")"]});
    let event = json!({"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "service"});
    server.create_action(automation("rising", event.clone(), Some(rising), &receiver.url("/ok/rising"))).await;
    server.create_action(automation("either", event.clone(), Some(either), &receiver.url("/ok/either"))).await;
    server.create_action(automation("broken", event.clone(), Some(broken), &receiver.url("/ok/broken"))).await;
    let mut off = automation("off", event.clone(), None, &receiver.url("/ok/off"));
    off["publish"] = json!(false);
    server.create_action(off).await;
    server.create_action(automation("always", event, None, &receiver.url("/ok/always"))).await;

    server.upsert("service", json!({"identifier": "api", "properties": {"tier": 1}})).await;
    server.patch("/v1/blueprints/service/entities/api", json!({"properties": {"tier": 2}})).await;
    server.patch("/v1/blueprints/service/entities/api", json!({"properties": {"tier": 3}})).await;
    server.upsert("service", json!({"identifier": "web", "properties": {"tier": 1}})).await;
    server.patch("/v1/blueprints/service/entities/api", json!({"properties": {"tier": 5}})).await;

    receiver.wait_for("/ok/always", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.calls("/ok/always").len(), 5, "every change after the save, none before");
    let rising = bodies(&receiver, "/ok/rising", 1).await;
    assert_eq!(rising.len(), 1, "only the 1 → 2 change");
    assert_eq!(rising[0]["event"]["diff"]["after"]["properties"]["tier"], 2);
    let either = bodies(&receiver, "/ok/either", 2).await;
    let mut which: Vec<i64> =
        either.iter().map(|b| b["event"]["diff"]["after"]["properties"]["tier"].as_i64().unwrap()).collect();
    which.sort_unstable();
    assert_eq!(which, [1, 5], "web's creation, and tier 5");
    assert!(receiver.calls("/ok/broken").is_empty(), "a condition that fails does not hold");
    assert!(receiver.calls("/ok/off").is_empty(), "an unpublished automation does not run");
}

async fn a_chain_of_automations_stops_at_depth_ten(server: TestServer) {
    service_blueprint(&server).await;
    // Each run writes the entity it was triggered by, one more: a loop without end, but for
    // the depth limit.
    server
        .create_action(json!({
            "identifier": "count",
            "trigger": {"type": "automation", "event": {"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "service"},
                        "condition": {"type": "JQ", "expressions": [".diff.after != null"], "combinator": "and"}},
            "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {
                "identifier": "{{ .event.diff.after.identifier }}",
                "properties": {"count": "{{ (.event.diff.after.properties.count // 0) + 1 }}"}
            }}
        }))
        .await;
    server.upsert("service", json!({"identifier": "loop", "properties": {"count": 0}})).await;
    // The chain ends when the worker refuses an eleventh run, and says why in the log of the
    // tenth, where the user looks. Wait for that line rather than for a while: on PostgreSQL
    // another test's transaction can hold the tenth run's change back from the worker for
    // seconds (the snapshot horizon is the cluster's).
    let stopped = |logs: &Value| {
        logs["runLogs"].as_array().into_iter().flatten().any(|line| {
            let message = line["message"].as_str().unwrap_or_default();
            message.contains("automation `count` was not triggered") && message.contains("limit of 10")
        })
    };
    let mut logs = Value::Null;
    for _ in 0..300 {
        let runs = runs_of(&server, "count").await;
        if runs.len() >= 10 {
            logs = server.get(&format!("/v1/actions/runs/{}/logs", runs[0]["id"].as_str().unwrap())).await.1;
            if stopped(&logs) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped(&logs), "the last run's log says why the chain stopped: {logs}");
    // The refusal is decided: the runs are all there is.
    let runs = runs_of(&server, "count").await;
    assert_eq!(runs.len(), 10, "ten runs, then the chain stops: {runs:?}");
    let depths: Vec<i64> = runs.iter().rev().map(|r| r["chainDepth"].as_i64().unwrap()).collect();
    assert_eq!(depths, (1..=10).collect::<Vec<_>>());
    assert!(runs.iter().all(|r| r["status"] == "SUCCESS"), "{runs:?}");
    let (_, entity) = server.get("/v1/blueprints/service/entities/loop").await;
    assert_eq!(entity["entity"]["properties"]["count"], 10);
}

async fn a_timer_fires_once_across_a_restart(mut server: TestServer) {
    service_blueprint(&server).await;
    let receiver = Receiver::start().await;
    let event = json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service", "propertyIdentifier": "expires"});
    server.create_action(automation("expired", event, None, &receiver.url("/ok/expired"))).await;
    let soon = |millis: i64| {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + millis;
        wharf_core::time::Timestamp::from_millis(at).to_iso()
    };
    // One is removed before it passes; one passes while Wharf runs; one while it is down.
    // On PostgreSQL another test's transaction can hold changes back from the automation
    // worker for seconds (the snapshot horizon is the cluster's), so each step waits for the
    // one before: the removed one's moment is far enough out that its removal is read first,
    // and the one for the stop is set once the first has fired.
    let gone_passes = std::time::Instant::now() + Duration::from_millis(4_000);
    server.upsert("service", json!({"identifier": "gone", "properties": {"expires": soon(4_000)}})).await;
    server.patch("/v1/blueprints/service/entities/gone", json!({"properties": {"expires": null}})).await;
    server.upsert("service", json!({"identifier": "now", "properties": {"expires": soon(300)}})).await;
    let first = bodies(&receiver, "/ok/expired", 1).await.remove(0);
    assert_eq!(first["event"]["action"], "TIMER_PROPERTY_EXPIRED");
    assert_eq!(first["event"]["context"]["entityIdentifier"], "now");
    assert_eq!(first["event"]["context"]["propertyIdentifier"], "expires");
    assert_eq!(first["event"]["diff"]["after"]["identifier"], "now");

    server.upsert("service", json!({"identifier": "down", "properties": {"expires": soon(500)}})).await;
    server.restart_after(Duration::from_millis(2_000)).await;
    let fired = bodies(&receiver, "/ok/expired", 2).await;
    assert_eq!(fired[1]["event"]["context"]["entityIdentifier"], "down");
    tokio::time::sleep_until((gone_passes + Duration::from_millis(1_000)).into()).await;
    let which: Vec<String> = receiver
        .calls("/ok/expired")
        .iter()
        .map(|c| {
            serde_json::from_str::<Value>(&c.body).unwrap()["event"]["context"]["entityIdentifier"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(which, ["now", "down"], "each timer once; a removed one never");
}

/// The worker passes over the changes no automation may act on (here runs, and another
/// blueprint's entities) without taking its cursor (on SQLite it looks ahead on a reader), and
/// fires on the next change one acts on, once, also when a restart makes it look at the same
/// changes again.
async fn changes_no_automation_acts_on_are_passed_over(mut server: TestServer) {
    service_blueprint(&server).await;
    let (status, body) =
        server.post("/v1/blueprints", json!({"identifier": "team", "title": "Team", "schema": {"properties": {}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let receiver = Receiver::start().await;
    let event = json!({"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"});
    server.create_action(automation("on-update", event, None, &receiver.url("/ok/updated"))).await;
    server
        .create_action(json!({
            "identifier": "ping", "title": "Ping", "trigger": {"type": "self-service", "operation": "CREATE"},
            "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/ok/ping")}
        }))
        .await;
    server.upsert("service", json!({"identifier": "api", "properties": {"tier": 1}})).await;
    passed_over(&server).await;
    receiver.wait_for("/ok/ping", 20).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"tier": 2}})).await;
    let first = bodies(&receiver, "/ok/updated", 1).await.remove(0);
    assert_eq!(first["event"]["diff"]["after"]["properties"]["tier"], 2, "{first}");

    passed_over(&server).await;
    server.restart().await;
    passed_over(&server).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"tier": 3}})).await;
    let fired = bodies(&receiver, "/ok/updated", 2).await;
    assert_eq!(fired[1]["event"]["diff"]["after"]["properties"]["tier"], 3, "{fired:?}");
    receiver.wait_for("/ok/ping", 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tiers: Vec<Value> = receiver
        .calls("/ok/updated")
        .iter()
        .map(|c| serde_json::from_str::<Value>(&c.body).unwrap()["event"]["diff"]["after"]["properties"]["tier"].clone())
        .collect();
    assert_eq!(tiers, [json!(2), json!(3)], "each update fired once");
    assert_eq!(runs_of(&server, "on-update").await.len(), 2);
}

/// Twenty runs and twenty entities of `team`: changes no automation of the test above acts on.
async fn passed_over(server: &TestServer) {
    for n in 0..20 {
        server.start_run("ping", json!({"properties": {}})).await;
        server.upsert("team", json!({"identifier": format!("t{n}")})).await;
    }
}

/// Workers that would look for work only once a minute.
fn slow_poll(settings: &mut wharf::config::Settings) {
    settings.delivery.poll_interval = Duration::from_secs(60);
}

mod woken {
    use super::*;
    both_stores!(configure = slow_poll; a_commit_wakes_the_automations_at_once);
}

/// A change committed on this node wakes the automation worker, and the run it starts wakes
/// the invoker: the request arrives long before any poll would have found them.
async fn a_commit_wakes_the_automations_at_once(server: TestServer) {
    service_blueprint(&server).await;
    let receiver = Receiver::start().await;
    let event = json!({"type": "ENTITY_CREATED", "blueprintIdentifier": "service"});
    server.create_action(automation("on-create", event, None, &receiver.url("/ok/woken"))).await;
    // The worker is idle, waiting for its next poll, a minute away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.upsert("service", json!({"identifier": "api"})).await;
    // `wait_for` gives up after 15 s.
    let body = bodies(&receiver, "/ok/woken", 1).await.remove(0);
    assert_eq!(body["event"]["diff"]["after"]["identifier"], "api");

    // On PostgreSQL, a transaction of another application on the cluster, in another
    // database, holds the change back past its commit (the snapshot horizon is the
    // cluster's) for 2 s: the woken worker keeps looking and finds it once it ends.
    if server.backend == common::Backend::Postgres {
        let admin = common::postgres_admin_url().unwrap();
        let held = tokio::spawn(async move { wharf_store::testing::hold_transaction(&admin, Duration::from_secs(2)).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.upsert("service", json!({"identifier": "held"})).await;
        let bodies = bodies(&receiver, "/ok/woken", 2).await;
        assert_eq!(bodies[1]["event"]["diff"]["after"]["identifier"], "held");
        held.await.unwrap().unwrap();
    }
}
