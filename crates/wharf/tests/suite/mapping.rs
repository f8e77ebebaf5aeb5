//! Mapping webhook events into the catalog, through HTTP: every feature of SPEC §6
//! "Mapping", the event log, test mapping, replay, reloading and pruning, on both stores.

use crate::common;

use std::time::Duration;

use common::{Backend, TestServer, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn catalog(server: &TestServer) {
    server
        .blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {"slack": {"type": "string"}}}}))
        .await;
    server
        .blueprint(json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {
                "language": {"type": "string"}, "tier": {"type": "number"}, "onCall": {"type": "string"},
                "version": {"type": "string"}
            }},
            "relations": {
                "owner": {"target": "team", "required": false, "many": false},
                "dependsOn": {"target": "service", "required": false, "many": true}
            }
        }))
        .await;
    server
        .blueprint(json!({
            "identifier": "deployment", "title": "Deployment", "schema": {"properties": {"env": {"type": "string"}}},
            "relations": {"service": {"target": "service", "required": true, "many": false}}
        }))
        .await;
}

/// Creates webhook `identifier` with `mappings`; returns its ingest key.
async fn hook(server: &TestServer, identifier: &str, mappings: Value) -> String {
    let created = server.webhook(json!({"identifier": identifier, "title": identifier, "mappings": mappings})).await;
    created["webhookKey"].as_str().unwrap().to_owned()
}

async fn send(server: &TestServer, identifier: &str, key: &str, body: Value) -> Value {
    let event_id = server.ingest(key, &body, &[]).await;
    server.mapped_event(identifier, &event_id).await
}

async fn entity(server: &TestServer, blueprint: &str, id: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/blueprints/{blueprint}/entities/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{blueprint}/{id}: {body}");
    body["entity"].clone()
}

async fn create_merges_and_filters(server: TestServer) {
    catalog(&server).await;
    server.upsert("service", json!({"identifier": "api", "title": "API", "properties": {"language": "rust", "tier": 1}})).await;
    let key = hook(
        &server,
        "pagerduty",
        json!([{
            "blueprint": "service",
            "filter": ".body.event.event_type == 'incident.triggered'",
            "entity": {"identifier": ".body.event.data.service.summary", "properties": {"onCall": ".body.event.data.assignees[0].summary"}}
        }]),
    )
    .await;
    let triggered = json!({"event": {"event_type": "incident.triggered",
        "data": {"service": {"summary": "api"}, "assignees": [{"summary": "Ada"}]}}});
    let event = send(&server, "pagerduty", &key, triggered).await;
    assert_eq!(event["status"], "SUCCESS", "{event}");
    assert_eq!(
        event["result"]["entities"],
        json!([{"blueprint": "service", "identifier": "api", "operation": "updated", "mapping": 0}])
    );
    // Upsert with merge: the mapped property changes, the others keep their values.
    let api = entity(&server, "service", "api").await;
    assert_eq!(api["properties"], json!({"language": "rust", "tier": 1, "onCall": "Ada"}));
    assert_eq!(api["title"], "API");
    let resolved = json!({"event": {"event_type": "incident.resolved", "data": {"service": {"summary": "api"}}}});
    let event = send(&server, "pagerduty", &key, resolved).await;
    assert_eq!(event["status"], "FILTERED", "{event}");
    assert_eq!(event["result"]["entities"], json!([]));

    // The changes name the webhook and the event, and the audit log finds them by both.
    let (_, log) = server.get(&format!("/v1/audit-log?webhookEventId={}", "none")).await;
    assert_eq!(log["audits"].as_array().map_or(0, Vec::len), 0, "{log}");
    let (_, events) = server.get("/v1/webhooks/pagerduty/events?status=SUCCESS").await;
    let event_id = events["events"][0]["id"].as_str().unwrap();
    let (_, log) = server.get(&format!("/v1/audit-log?webhookId=pagerduty&webhookEventId={event_id}")).await;
    let audits = log["audits"].as_array().unwrap();
    assert_eq!(audits.len(), 1, "{log}");
    assert_eq!(audits[0]["trigger"]["origin"], "WEBHOOK");
    assert_eq!(audits[0]["additionalData"]["webhookEventId"], event_id);
    assert_eq!(audits[0]["diff"]["after"]["properties"]["onCall"], "Ada");
}

async fn items_to_parse(server: TestServer) {
    catalog(&server).await;
    let key = hook(
        &server,
        "bulk",
        json!([{
            "blueprint": "service",
            "itemsToParse": ".body.services",
            "entity": {"identifier": ".item.name", "title": ".item.name | ascii_upcase", "properties": {"tier": ".item.tier"},
                       "relations": {"owner": ".body.team"}}
        }]),
    )
    .await;
    let services: Vec<Value> = (0..503).map(|i| json!({"name": format!("svc-{i}"), "tier": i % 3})).collect();
    let event = send(&server, "bulk", &key, json!({"team": "platform", "services": services})).await;
    assert_eq!(event["status"], "SUCCESS", "{}", event["result"]["errors"]);
    assert_eq!(event["result"]["entities"].as_array().unwrap().len(), 500, "only the first 500 items are mapped");
    assert_eq!(event["result"]["truncatedItems"], 3);
    assert_eq!(event["result"]["entities"][499]["item"], 499);
    let svc = entity(&server, "service", "svc-42").await;
    assert_eq!(svc["title"], "SVC-42");
    assert_eq!(svc["properties"]["tier"], 0);
    assert_eq!(svc["relations"]["owner"], "platform");
    // A missing related entity is created (as Port's integrations do).
    entity(&server, "team", "platform").await;
    let (status, _) = server.get("/v1/blueprints/service/entities/svc-500").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // itemsToParse that is not an array is an error of that mapping.
    let event = send(&server, "bulk", &key, json!({"services": "nope"})).await;
    assert_eq!(event["status"], "FAILURE");
    assert_eq!(event["result"]["errors"][0]["expression"], "mappings[0].itemsToParse");
}

async fn delete_and_dependents(server: TestServer) {
    catalog(&server).await;
    server.upsert("service", json!({"identifier": "api"})).await;
    server.upsert("service", json!({"identifier": "web"})).await;
    server.upsert("deployment", json!({"identifier": "api-prod", "relations": {"service": "api"}})).await;
    server.upsert("deployment", json!({"identifier": "web-prod", "relations": {"service": "web"}})).await;
    let key = hook(
        &server,
        "deletes",
        json!([
            {"blueprint": "service", "operation": "delete", "filter": ".body.keep | not", "entity": {"identifier": ".body.name"}},
            {"blueprint": "service", "operation": {"type": "delete", "deleteDependents": false}, "filter": ".body.keep", "entity": {"identifier": ".body.name"}}
        ]),
    )
    .await;
    // deleteDependents defaults to true: the deployment goes with its service.
    let event = send(&server, "deletes", &key, json!({"name": "api", "keep": false})).await;
    assert_eq!(event["status"], "SUCCESS", "{event}");
    assert_eq!(event["result"]["entities"][0]["operation"], "deleted");
    assert_eq!(server.get("/v1/blueprints/deployment/entities/api-prod").await.0, StatusCode::NOT_FOUND);
    // With deleteDependents false a required dependent blocks the delete: a recorded failure.
    let event = send(&server, "deletes", &key, json!({"name": "web", "keep": true})).await;
    assert_eq!(event["status"], "FAILURE", "{event}");
    assert!(event["result"]["errors"][0]["message"].as_str().unwrap().contains("web-prod"), "{event}");
    entity(&server, "service", "web").await;
    // Deleting what does not exist is not an error.
    let event = send(&server, "deletes", &key, json!({"name": "ghost", "keep": false})).await;
    assert_eq!(event["status"], "SUCCESS");
    assert_eq!(event["result"]["entities"][0]["operation"], "absent");
}

async fn search_queries(server: TestServer) {
    catalog(&server).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"version": "1.2.0", "language": "rust"}})).await;
    server.upsert("service", json!({"identifier": "web", "properties": {"version": "2.0.0", "language": "rust"}})).await;
    let key = hook(
        &server,
        "argo",
        json!([{
            "blueprint": "service",
            "entity": {
                "identifier": {"combinator": "'and'", "rules": [{"property": "'version'", "operator": "'='", "value": ".body.version"}]},
                "properties": {"onCall": ".body.who"},
                "relations": {"dependsOn": {"combinator": "'and'", "rules": [{"property": "'language'", "operator": "'='", "value": "'rust'"},
                                                                            {"property": "'version'", "operator": "'!='", "value": ".body.version"}]}}
            }
        }]),
    )
    .await;
    let event = send(&server, "argo", &key, json!({"version": "1.2.0", "who": "Grace"})).await;
    assert_eq!(event["status"], "SUCCESS", "{event}");
    let api = entity(&server, "service", "api").await;
    assert_eq!(api["properties"]["onCall"], "Grace");
    assert_eq!(api["relations"]["dependsOn"], json!(["web"]));
    // No match: nothing is created, and the event says why.
    let event = send(&server, "argo", &key, json!({"version": "9.9.9", "who": "Linus"})).await;
    assert_eq!(event["status"], "FAILURE");
    assert!(event["result"]["errors"][0]["message"].as_str().unwrap().contains("matched no entity"), "{event}");
    // Two matches for one identifier: nothing is written, and the event says why.
    server.upsert("service", json!({"identifier": "cli", "properties": {"version": "2.0.0", "language": "go"}})).await;
    let event = send(&server, "argo", &key, json!({"version": "2.0.0", "who": "Ada"})).await;
    assert_eq!(event["status"], "FAILURE", "{event}");
    let message = event["result"]["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("matched more than one entity of blueprint `service`"), "{event}");
    assert!(entity(&server, "service", "web").await["properties"].get("onCall").is_none());
}

async fn errors_are_recorded_per_item(server: TestServer) {
    catalog(&server).await;
    let key = hook(
        &server,
        "mixed",
        json!([{
            "blueprint": "service",
            "itemsToParse": ".body.items",
            "entity": {"identifier": ".item.id", "properties": {"tier": ".item.tier", "language": ".item.lang | ascii_downcase"}}
        }]),
    )
    .await;
    let items = json!([
        {"id": "ok", "tier": 1, "lang": "Rust"},
        {"id": "bad-type", "tier": "high", "lang": "Go"},
        {"id": 42, "tier": 1, "lang": "Go"},
        {"id": "jq-error", "tier": 1, "lang": 7}
    ]);
    let event = send(&server, "mixed", &key, json!({"items": items})).await;
    assert_eq!(event["status"], "PARTIAL", "{event}");
    let errors = event["result"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{event}");
    let by_item = |i: u64| errors.iter().find(|e| e["item"] == i).cloned().unwrap_or(Value::Null);
    assert!(by_item(1)["message"].as_str().unwrap().contains("tier"), "schema validation: {errors:?}");
    assert_eq!(by_item(2)["expression"], "mappings[0].entity.identifier");
    assert!(by_item(2)["message"].as_str().unwrap().contains("tostring"));
    assert_eq!(by_item(3)["expression"], "mappings[0].entity.properties.language");
    assert!(by_item(3)["message"].as_str().unwrap().starts_with("jq: error"), "{errors:?}");
    assert_eq!(entity(&server, "service", "ok").await["properties"]["language"], "rust");
    assert_eq!(server.get("/v1/blueprints/service/entities/bad-type").await.0, StatusCode::NOT_FOUND);
    // The list shows counts; the filter by status finds it.
    let (_, list) = server.get("/v1/webhooks/mixed/events?status=PARTIAL").await;
    assert_eq!(list["events"][0]["entities"], 1);
    assert_eq!(list["events"][0]["errors"], 3);
    assert_error(&server.get("/v1/webhooks/mixed/events?status=MAYBE").await, StatusCode::BAD_REQUEST, "status=MAYBE");
    assert_error(&server.get("/v1/webhooks/mixed/events/whe_nope").await, StatusCode::NOT_FOUND, "whe_nope");
}

async fn test_mapping_writes_nothing(server: TestServer) {
    catalog(&server).await;
    let key = hook(
        &server,
        "gh",
        json!([{"blueprint": "service", "entity": {"identifier": ".body.name", "properties": {"language": ".body.lang"}}}]),
    )
    .await;
    let (status, result) =
        server.post("/v1/webhooks/gh/test", json!({"body": {"name": "api", "lang": "rust"}, "headers": {"X-A": "1"}})).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["ok"], true);
    assert_eq!(result["status"], "SUCCESS");
    assert_eq!(result["entities"][0]["identifier"], "api");
    assert_eq!(result["entities"][0]["blueprint"], "service");
    assert_eq!(result["entities"][0]["properties"]["language"], "rust");
    assert_eq!(result["entities"][0]["operation"], "created");
    assert_eq!(server.get("/v1/blueprints/service/entities/api").await.0, StatusCode::NOT_FOUND, "a test writes nothing");
    // A stored event with proposed mappings; their jq errors come back with their paths.
    let event = send(&server, "gh", &key, json!({"name": "web", "lang": "go"})).await;
    let proposed = json!([{"blueprint": "service", "entity": {"identifier": ".body.name", "title": ".body.lang | ascii_upcase", "properties": {"tier": ".body.nope.x.y | tonumber"}}}]);
    let (status, result) = server.post("/v1/webhooks/gh/test", json!({"eventId": event["id"], "mappings": proposed})).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["status"], "FAILURE", "{result}");
    assert_eq!(result["errors"][0]["expression"], "mappings[0].entity.properties.tier");
    let (status, result) = server
        .post(
            "/v1/webhooks/gh/test",
            json!({"eventId": event["id"], "mappings": [{"blueprint": "service", "entity": {"identifier": ".["}}]}),
        )
        .await;
    assert_error(&(status, result), StatusCode::UNPROCESSABLE_ENTITY, "mappings[0].entity.identifier");
    assert_error(
        &server.post("/v1/webhooks/gh/test", json!({"event": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown key `event`",
    );
    assert_eq!(entity(&server, "service", "web").await["title"], Value::Null);
}

async fn replay_and_reload(server: TestServer) {
    catalog(&server).await;
    let key = hook(&server, "gh", json!([{"blueprint": "service", "entity": {"identifier": ".body.name"}}])).await;
    let first = send(&server, "gh", &key, json!({"name": "api", "lang": "rust"})).await;
    let second = send(&server, "gh", &key, json!({"name": "web", "lang": "go"})).await;
    assert_eq!(entity(&server, "service", "api").await["properties"], json!({}));
    // A changed webhook takes effect for the next request, without a restart.
    let (status, _) = server
        .patch("/v1/webhooks/gh", json!({"mappings": [{"blueprint": "service", "entity": {"identifier": ".body.name", "properties": {"language": ".body.lang"}}}]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    send(&server, "gh", &key, json!({"name": "db", "lang": "sql"})).await;
    assert_eq!(entity(&server, "service", "db").await["properties"]["language"], "sql");
    // Replay one event, then a range: stored events run through the current mappings.
    let (status, replayed) =
        server.post(&format!("/v1/webhooks/gh/events/{}/replay", first["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["replayed"], 1);
    let again = server.mapped_event("gh", first["id"].as_str().unwrap()).await;
    assert_eq!(again["result"]["entities"][0]["operation"], "updated");
    assert_eq!(entity(&server, "service", "api").await["properties"]["language"], "rust");
    let (status, replayed) =
        server.post("/v1/webhooks/gh/replay", json!({"from": second["receivedAt"], "to": second["receivedAt"]})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["replayed"], 1);
    server.mapped_event("gh", second["id"].as_str().unwrap()).await;
    assert_eq!(entity(&server, "service", "web").await["properties"]["language"], "go");
    assert_error(
        &server.post("/v1/webhooks/gh/replay", json!({"from": "yesterday"})).await,
        StatusCode::BAD_REQUEST,
        "from=yesterday",
    );
    assert_error(&server.post("/v1/webhooks/gh/replay", json!({"since": 1})).await, StatusCode::UNPROCESSABLE_ENTITY, "since");
    // The audit log links each write to its event.
    let (_, log) = server.get(&format!("/v1/audit-log?webhookEventId={}", first["id"].as_str().unwrap())).await;
    assert_eq!(log["audits"].as_array().unwrap().len(), 2, "created, then updated by the replay: {log}");
}

async fn events_page_newest_first(server: TestServer) {
    catalog(&server).await;
    let key = hook(&server, "gh", json!([])).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.ingest(&key, &json!({"i": i}), &[]).await);
    }
    let (_, page) = server.get("/v1/webhooks/gh/events?limit=2").await;
    let got: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    let next = page["next"].as_str().unwrap();
    let (_, page) = server.get(&format!("/v1/webhooks/gh/events?limit=2&cursor={next}")).await;
    assert_eq!(page["events"][0]["id"], ids[2].as_str());
    assert_error(&server.get("/v1/webhooks/gh/events?limit=0").await, StatusCode::BAD_REQUEST, "limit=0");
    assert_error(&server.get("/v1/webhooks/nope/events").await, StatusCode::NOT_FOUND, "nope");
}

async fn events_are_mapped_in_arrival_order(server: TestServer) {
    catalog(&server).await;
    let key = hook(
        &server,
        "counter",
        json!([{"blueprint": "service", "entity": {"identifier": "'api'", "properties": {"tier": ".body.n"}}}]),
    )
    .await;
    let mut last = String::new();
    for n in 0..60 {
        last = server.ingest(&key, &json!({"n": n}), &[]).await;
    }
    server.mapped_event("counter", &last).await;
    for _ in 0..200 {
        let (_, pending) = server.get("/v1/webhooks/counter/events?status=PENDING&limit=1").await;
        if pending["events"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(entity(&server, "service", "api").await["properties"]["tier"], 59, "the last event wins");
    let (_, log) = server.get("/v1/audit-log?webhookId=counter&limit=100").await;
    let tiers: Vec<i64> = log["audits"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| a["diff"]["after"]["properties"]["tier"].as_i64().unwrap())
        .collect();
    assert_eq!(tiers, (0..60).collect::<Vec<i64>>(), "one change per event, in arrival order");
}

/// A request damaged on disk fails its own event, with the reason; the webhook's later
/// events are mapped as before (they are not held behind it).
async fn a_damaged_request_fails_its_own_event(server: TestServer) {
    catalog(&server).await;
    let key = hook(&server, "gh", json!([{"blueprint": "service", "entity": {"identifier": ".body.name"}}])).await;
    let first = send(&server, "gh", &key, json!({"name": "api"})).await;
    let id = first["id"].as_str().unwrap();
    assert_eq!(first["status"], "SUCCESS", "{first}");
    let database =
        server.settings.database_url.clone().unwrap_or_else(|| server.data_dir().join("wharf.db").display().to_string());
    wharf_store::testing::damage_stored_request(&database, id).await.unwrap();
    let (status, replayed) = server.post(&format!("/v1/webhooks/gh/events/{id}/replay"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    let failed = server.mapped_event("gh", id).await;
    assert_eq!(failed["status"], "FAILURE", "{failed}");
    assert_eq!(failed["request"], Value::Null, "{failed}");
    let message = failed["result"]["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("compressed webhook request is unreadable"), "{failed}");
    let second = send(&server, "gh", &key, json!({"name": "web"})).await;
    assert_eq!(second["status"], "SUCCESS", "{second}");
    assert_eq!(entity(&server, "service", "web").await["identifier"], "web");
}

/// Events mapped in one batch each see the catalog as the one before left it, although the
/// batch reads its entities in bulk first: a ranged replay puts a webhook's events back in
/// the queue together, so they are mapped in one batch.
async fn a_batch_sees_its_own_writes(server: TestServer) {
    catalog(&server).await;
    let key = hook(
        &server,
        "gh",
        json!([{"blueprint": "service", "entity": {
            "identifier": "'api'", "properties": {"tier": ".body.n"}, "relations": {"owner": ".body.team"}}}]),
    )
    .await;
    let teams = ["t0", "t2", "t0", "t2", "t1"];
    let mut events = Vec::new();
    for (n, team) in teams.iter().enumerate() {
        events.push(send(&server, "gh", &key, json!({"n": n, "team": team})).await);
    }
    // `t2` was created for the relation; delete it, so that the replay must create it again,
    // once, and then find it.
    let (status, body) = server.delete("/v1/blueprints/team/entities/t2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, replayed) = server
        .post("/v1/webhooks/gh/replay", json!({"from": events[0]["receivedAt"], "to": events[teams.len() - 1]["receivedAt"]}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["replayed"], teams.len());
    for event in &events {
        let mapped = server.mapped_event("gh", event["id"].as_str().unwrap()).await;
        assert_eq!(mapped["status"], "SUCCESS", "{mapped}");
        assert_eq!(mapped["result"]["entities"][0]["operation"], "updated", "{mapped}");
    }
    // Each replayed write starts from the one before it, the first from the last original.
    let (_, log) = server.get("/v1/audit-log?blueprint=service&entity=api&limit=100").await;
    let diffs: Vec<&Value> = log["audits"].as_array().unwrap().iter().rev().map(|a| &a["diff"]).collect();
    assert_eq!(diffs.len(), 2 * teams.len(), "{log}");
    for (n, diff) in diffs[teams.len()..].iter().enumerate() {
        let before = if n == 0 { teams.len() - 1 } else { n - 1 };
        assert_eq!(diff["before"]["properties"]["tier"], before, "{diff}");
        assert_eq!(diff["before"]["relations"]["owner"], teams[before], "{diff}");
        assert_eq!(diff["after"]["properties"]["tier"], n, "{diff}");
        assert_eq!(diff["after"]["relations"]["owner"], teams[n], "{diff}");
    }
    // `t2`: created, deleted, created again by the replay's first event that names it.
    let (_, log) = server.get("/v1/audit-log?blueprint=team&entity=t2&limit=100").await;
    let actions: Vec<&str> = log["audits"].as_array().unwrap().iter().rev().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["CREATE", "DELETE", "CREATE"], "{log}");
    assert_eq!(entity(&server, "service", "api").await["relations"]["owner"], "t1");
    // Within one event: the first mapping deletes `api`, the second names it as a required
    // relation, which must find it gone and create it again.
    let key = hook(
        &server,
        "redeploy",
        json!([
            {"blueprint": "service", "entity": {"identifier": "'api'"}, "operation": "delete"},
            {"blueprint": "deployment", "entity": {"identifier": ".body.id", "relations": {"service": "'api'"}}}
        ]),
    )
    .await;
    let mapped = send(&server, "redeploy", &key, json!({"id": "d1"})).await;
    assert_eq!(mapped["status"], "SUCCESS", "{mapped}");
    let (_, log) = server.get("/v1/audit-log?blueprint=service&entity=api&webhookId=redeploy&limit=100").await;
    let actions: Vec<&str> = log["audits"].as_array().unwrap().iter().rev().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["DELETE", "CREATE"], "{log}");
    assert_eq!(entity(&server, "deployment", "d1").await["relations"]["service"], "api");
}

both_stores!(
    events_are_mapped_in_arrival_order,
    a_batch_sees_its_own_writes,
    create_merges_and_filters,
    items_to_parse,
    delete_and_dependents,
    search_queries,
    errors_are_recorded_per_item,
    test_mapping_writes_nothing,
    replay_and_reload,
    events_page_newest_first,
    a_damaged_request_fails_its_own_event,
);

/// Events older than the retention period are pruned in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_are_pruned() {
    let server = TestServer::start_with(Backend::Sqlite, |settings| {
        settings.ingest.event_retention = Duration::from_millis(300);
        settings.ingest.prune_interval = Duration::from_millis(100);
    })
    .await
    .unwrap();
    let key = hook(&server, "gh", json!([])).await;
    let event_id = server.ingest(&key, &json!({}), &[]).await;
    server.mapped_event("gh", &event_id).await;
    for _ in 0..100 {
        let (status, _) = server.get(&format!("/v1/webhooks/gh/events/{event_id}")).await;
        if status == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the event was not pruned");
}

/// Two nodes sharing PostgreSQL: a webhook created on one serves on the other, and its
/// events are mapped once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_webhooks() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
        return;
    };
    let url = first.settings.database_url.clone();
    let master = std::fs::read_to_string(first.data_dir().join("master.key")).unwrap();
    let second = TestServer::start_with(Backend::Sqlite, |settings| {
        settings.database_url = url;
        settings.master_key = Some(master.trim().to_owned());
    })
    .await
    .unwrap();
    catalog(&first).await;
    let key = hook(&first, "gh", json!([{"blueprint": "service", "entity": {"identifier": ".body.name"}}])).await;
    let mut accepted = None;
    for _ in 0..100 {
        let (status, reply) = second.ingest_raw(&key, "", &[("content-type", "application/json")], "{\"name\": \"api\"}").await;
        if status == StatusCode::ACCEPTED {
            accepted = reply["eventId"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event_id = accepted.expect("the second node learned the webhook");
    let event = first.mapped_event("gh", &event_id).await;
    assert_eq!(event["status"], "SUCCESS");
    let (_, log) = first.get(&format!("/v1/audit-log?webhookEventId={event_id}")).await;
    assert_eq!(log["audits"].as_array().unwrap().len(), 1);
    // A deleted webhook stops serving on the other node too.
    first.delete("/v1/webhooks/gh").await;
    for _ in 0..100 {
        if second.ingest_raw(&key, "", &[], "{}").await.0 == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the second node still serves a deleted webhook");
}
