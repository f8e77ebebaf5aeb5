//! Actions and automations through HTTP (`/v1/actions`): Port's documents taken unchanged,
//! validation that names the path, templates and jq compiled at save time, the
//! per-organization cap, tenancy. Every test runs on SQLite and PostgreSQL.

use crate::common;

use common::{TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/actions");

/// The blueprint Port's examples act on: `passed` (seed 002), `version`, and a timer `ttl`.
async fn service_blueprint(server: &TestServer) {
    server
        .blueprint(json!({
            "identifier": "service", "title": "Service",
            "schema": {"properties": {
                "passed": {"type": "string", "enum": ["Passed", "Not passed"]},
                "version": {"type": "string"},
                "ttl": {"type": "string", "format": "timer"}
            }}
        }))
        .await;
}

fn deploy() -> Value {
    json!({
        "identifier": "deploy", "title": "Deploy", "icon": "Rocket", "description": "Deploy a version",
        "trigger": {
            "type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
            "userInputs": {
                "properties": {
                    "version": {"type": "string", "title": "Version", "enum": ["1.0", "2.0"], "default": "1.0"},
                    "replicas": {"type": "number", "dependsOn": ["version"]},
                    "target": {"type": "string", "format": "entity", "blueprint": "service"},
                    "notify": {"type": "boolean", "visible": {"jqQuery": ".form.replicas > 1"}}
                },
                "required": ["version"],
                "order": ["version", "replicas", "target", "notify"]
            },
            "actionCardButtonText": "Deploy"
        },
        "invocationMethod": {
            "type": "WEBHOOK", "url": "https://deploy.example.com/{{ .entity.identifier }}", "synchronized": true,
            "method": "PUT", "headers": {"RUN_ID": "{{ .run.id }}", "Authorization": "Bearer {{ .secrets.token }}"},
            "body": {"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}"}, "list": ["{{ .run.id }}", 1]}
        },
        "requiredApproval": false,
        "allowAnyoneToViewRuns": true
    })
}

/// An answer's action without the audit fields.
fn written(action: &Value) -> Value {
    let mut doc = action.clone();
    for key in ["createdAt", "updatedAt", "createdBy", "updatedBy"] {
        doc.as_object_mut().unwrap().shift_remove(key);
    }
    doc
}

async fn crud_round_trip(server: TestServer) {
    service_blueprint(&server).await;
    let (status, created) = server.post("/v1/actions", deploy()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["ok"], true);
    let action = &created["action"];
    assert_eq!(written(action), deploy(), "answered as written");
    assert_eq!(action["createdBy"], common::CLIENT_ID);
    assert_eq!(action["updatedBy"], common::CLIENT_ID);
    assert!(action["createdAt"].is_string() && action["updatedAt"].is_string(), "{action}");
    let keys: Vec<&String> = action.as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "identifier", "in the order written: {keys:?}");

    let (status, got) = server.get("/v1/actions/deploy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["action"], *action);
    let (_, listed) = server.get("/v1/actions").await;
    assert_eq!(listed["ok"], true);
    assert_eq!(listed["actions"], json!([action]));

    assert_error(&server.post("/v1/actions", deploy()).await, StatusCode::CONFLICT, "`deploy` already exists");

    // PUT replaces the whole document; the identifier may be left out; a GET body sent back
    // (with its audit fields) is taken.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut replacement = deploy();
    replacement.as_object_mut().unwrap().shift_remove("identifier");
    replacement["title"] = json!("Deploy again");
    replacement.as_object_mut().unwrap().shift_remove("description");
    let (status, replaced) = server.put("/v1/actions/deploy", replacement).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let replaced = &replaced["action"];
    assert_eq!(replaced["identifier"], "deploy");
    assert_eq!(replaced["title"], "Deploy again");
    assert!(replaced.get("description").is_none(), "replaced, not merged: {replaced}");
    assert_eq!(replaced["createdAt"], action["createdAt"]);
    assert_ne!(replaced["updatedAt"], action["updatedAt"]);
    let (status, again) = server.put("/v1/actions/deploy", replaced.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(written(&again["action"]), written(replaced));
    assert_eq!(server.get("/v1/actions/deploy").await.1["action"]["title"], "Deploy again");
    let mut renamed = deploy();
    renamed["identifier"] = json!("other");
    assert_error(&server.put("/v1/actions/deploy", renamed).await, StatusCode::UNPROCESSABLE_ENTITY, "cannot be changed");

    // Filters.
    let automation = json!({
        "identifier": "on_update", "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"}},
        "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com"}
    });
    assert_eq!(server.post("/v1/actions", automation).await.0, StatusCode::CREATED);
    let identifiers = |list: &Value| -> Vec<String> {
        list["actions"].as_array().unwrap().iter().map(|a| a["identifier"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(identifiers(&server.get("/v1/actions").await.1), ["deploy", "on_update"]);
    assert_eq!(identifiers(&server.get("/v1/actions?trigger_type=automation").await.1), ["on_update"]);
    assert_eq!(identifiers(&server.get("/v1/actions?trigger_type=self-service").await.1), ["deploy"]);
    assert_eq!(identifiers(&server.get("/v1/actions?blueprint_identifier=service").await.1), ["deploy", "on_update"]);
    assert!(identifiers(&server.get("/v1/actions?blueprint_identifier=other").await.1).is_empty());
    assert_error(&server.get("/v1/actions?trigger_type=manual").await, StatusCode::BAD_REQUEST, "trigger_type=manual");
    // Port's list parameters repeat their key.
    assert_eq!(
        identifiers(&server.get("/v1/actions?action_identifier=deploy&action_identifier=on_update").await.1),
        ["deploy", "on_update"]
    );
    assert_eq!(identifiers(&server.get("/v1/actions?action_identifier=deploy&action_identifier=gone").await.1), ["deploy"]);
    assert_eq!(identifiers(&server.get("/v1/actions?operation=DAY-2").await.1), ["deploy"]);
    assert!(identifiers(&server.get("/v1/actions?operation=CREATE&operation=DELETE").await.1).is_empty());
    assert_eq!(
        identifiers(&server.get("/v1/actions?trigger_event=ENTITY_UPDATED&trigger_event=RUN_CREATED").await.1),
        ["on_update"]
    );
    assert!(identifiers(&server.get("/v1/actions?trigger_event=RUN_CREATED").await.1).is_empty());
    assert_eq!(identifiers(&server.get("/v1/actions?published=true").await.1), ["deploy", "on_update"]);
    assert_eq!(
        identifiers(&server.get("/v1/actions?published=false").await.1),
        ["deploy"],
        "self-service actions have no `publish`"
    );
    assert_eq!(identifiers(&server.get("/v1/actions?version=v2&trigger_type=automation").await.1), ["on_update"]);
    assert_error(&server.get("/v1/actions?operation=UPDATE").await, StatusCode::BAD_REQUEST, "operation=UPDATE");
    assert_error(
        &server.get("/v1/actions?trigger_event=ENTITY_CHANGED").await,
        StatusCode::BAD_REQUEST,
        "trigger_event=ENTITY_CHANGED",
    );
    assert_error(&server.get("/v1/actions?published=yes").await, StatusCode::BAD_REQUEST, "published=yes");

    // DELETE, then 404 everywhere.
    let (status, deleted) = server.delete("/v1/actions/deploy").await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({"ok": true})));
    assert_error(&server.get("/v1/actions/deploy").await, StatusCode::NOT_FOUND, "action `deploy` was not found");
    assert_error(&server.delete("/v1/actions/deploy").await, StatusCode::NOT_FOUND, "`deploy`");
    assert_error(&server.put("/v1/actions/deploy", deploy()).await, StatusCode::NOT_FOUND, "`deploy`");
    assert_eq!(identifiers(&server.get("/v1/actions").await.1), ["on_update"]);
    // The identifier is free again.
    assert_eq!(server.post("/v1/actions", deploy()).await.0, StatusCode::CREATED);
}

/// Every example of Port's documentation (seeds 002 and 003, reference §3) is taken as
/// written and answered as written.
async fn port_examples_are_taken_unchanged(server: TestServer) {
    service_blueprint(&server).await;
    let mut files: Vec<_> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    let mut taken = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = match serde_json::from_str::<Value>(&text).unwrap() {
            Value::Array(docs) => docs,
            doc => vec![doc],
        };
        for doc in docs {
            // The document's own bytes, not a re-serialization.
            let (status, created) = server.post("/v1/actions", doc.clone()).await;
            assert_eq!(status, StatusCode::CREATED, "{}: {created}", file.display());
            assert_eq!(written(&created["action"]), doc, "{}", file.display());
            let identifier = doc["identifier"].as_str().unwrap();
            assert_eq!(written(&server.get(&format!("/v1/actions/{identifier}")).await.1["action"]), doc);
            taken += 1;
        }
    }
    assert_eq!(taken, 7);
    // Seed 002's text, byte for byte.
    let seed = std::fs::read_to_string(format!("{FIXTURES}/seed002_slack_notify_on_service_failure.json")).unwrap();
    server.delete("/v1/actions/slack_notify_on_service_failure").await;
    let (status, created) = server.post_text("/v1/actions", &seed).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["action"]["invocationMethod"]["synchronized"], true);
}

/// A change made to a valid document.
type Edit = Box<dyn Fn(&mut Value)>;

/// What each bad document is answered with: the status and a part of the message that names
/// the path.
async fn validation_names_the_path(server: TestServer) {
    service_blueprint(&server).await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no identifier",
            Box::new(|d: &mut Value| drop(d.as_object_mut().unwrap().shift_remove("identifier"))),
            "`identifier` is required",
        ),
        ("bad identifier", Box::new(|d: &mut Value| d["identifier"] = json!("a/b")), "`identifier` is `a/b`"),
        ("dots", Box::new(|d: &mut Value| d["identifier"] = json!("..")), "`identifier` is `..`"),
        ("runs", Box::new(|d: &mut Value| d["identifier"] = json!("runs")), "cannot be `runs`"),
        ("long identifier", Box::new(|d: &mut Value| d["identifier"] = json!("a".repeat(101))), "`identifier` must be 1 to 100"),
        ("unknown key", Box::new(|d: &mut Value| d["colour"] = json!("red")), "`colour` is not a known key"),
        ("title type", Box::new(|d: &mut Value| d["title"] = json!(3)), "`title` must be a string, not number"),
        (
            "no trigger",
            Box::new(|d: &mut Value| drop(d.as_object_mut().unwrap().shift_remove("trigger"))),
            "`trigger` is required",
        ),
        ("trigger type", Box::new(|d: &mut Value| d["trigger"]["type"] = json!("manual")), "`trigger.type` is `manual`"),
        ("operation", Box::new(|d: &mut Value| d["trigger"]["operation"] = json!("UPDATE")), "`trigger.operation` is `UPDATE`"),
        (
            "button text",
            Box::new(|d: &mut Value| d["trigger"]["actionCardButtonText"] = json!("Deploy it right now")),
            "`trigger.actionCardButtonText` must be 1 to 15",
        ),
        (
            "input name",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["properties"]["a b"] = json!({"type": "string"})),
            "`trigger.userInputs.properties.a b`: an input's name",
        ),
        (
            "step key",
            Box::new(|d: &mut Value| {
                d["trigger"]["userInputs"]["steps"] = json!([{"title": "One", "order": ["version"], "help": "x"}])
            }),
            "`trigger.userInputs.steps[0].help` is not a known key",
        ),
        ("trigger key", Box::new(|d: &mut Value| d["trigger"]["event"] = json!({})), "`trigger.event` is not a known key"),
        (
            "input type",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["properties"]["version"]["type"] = json!("text")),
            "`trigger.userInputs.properties.version.type` is `text`",
        ),
        (
            "input enum",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["properties"]["version"]["enum"] = json!(["1.0", 2])),
            "`trigger.userInputs.properties.version.enum[1]` is number",
        ),
        (
            "input default",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["properties"]["version"]["default"] = json!("3.0")),
            "`trigger.userInputs.properties.version.default`",
        ),
        (
            "input format",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["properties"]["version"]["format"] = json!("semver")),
            "`trigger.userInputs.properties.version.format` is `semver`",
        ),
        (
            "entity input without blueprint",
            Box::new(|d: &mut Value| {
                drop(d["trigger"]["userInputs"]["properties"]["target"].as_object_mut().unwrap().shift_remove("blueprint"))
            }),
            "`trigger.userInputs.properties.target.blueprint` is required",
        ),
        (
            "dependsOn",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["properties"]["replicas"]["dependsOn"] = json!(["nope"])),
            "`trigger.userInputs.properties.replicas.dependsOn[0]` is `nope`",
        ),
        (
            "required",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["required"] = json!(["ghost"])),
            "`trigger.userInputs.required[0]` is `ghost`",
        ),
        (
            "order",
            Box::new(|d: &mut Value| d["trigger"]["userInputs"]["order"] = json!("version")),
            "`trigger.userInputs.order` must be an array",
        ),
        (
            "invocation key",
            Box::new(|d: &mut Value| d["invocationMethod"]["timeout"] = json!(5)),
            "`invocationMethod.timeout` is not a known key",
        ),
        (
            "method",
            Box::new(|d: &mut Value| d["invocationMethod"]["method"] = json!("HEAD")),
            "`invocationMethod.method` is `HEAD`",
        ),
        (
            "url",
            Box::new(|d: &mut Value| drop(d["invocationMethod"].as_object_mut().unwrap().shift_remove("url"))),
            "`invocationMethod.url` is required",
        ),
        (
            "header",
            Box::new(|d: &mut Value| d["invocationMethod"]["headers"]["X-N"] = json!(1)),
            "`invocationMethod.headers.X-N` must be a string",
        ),
        (
            "body",
            Box::new(|d: &mut Value| d["invocationMethod"]["body"] = json!("text")),
            "`invocationMethod.body` must be an object or an array",
        ),
        (
            "synchronized",
            Box::new(|d: &mut Value| d["invocationMethod"]["synchronized"] = json!(1)),
            "`invocationMethod.synchronized` must be a boolean",
        ),
        (
            "approval",
            Box::new(|d: &mut Value| d["requiredApproval"] = json!({"type": "SOME"})),
            "`requiredApproval.type` is `SOME`",
        ),
        (
            "notification",
            Box::new(|d: &mut Value| d["approvalNotification"] = json!({"type": "webhook"})),
            "`approvalNotification.url` is required",
        ),
        (
            "kafka",
            Box::new(|d: &mut Value| d["invocationMethod"] = json!({"type": "KAFKA"})),
            "Wharf runs actions with `WEBHOOK` and `UPSERT_ENTITY` only",
        ),
        (
            "github",
            Box::new(|d: &mut Value| d["invocationMethod"] = json!({"type": "GITHUB", "org": "o", "repo": "r", "workflow": "w"})),
            "`GITHUB`",
        ),
        (
            "unknown invocation",
            Box::new(|d: &mut Value| d["invocationMethod"] = json!({"type": "SMOKE"})),
            "`invocationMethod.type` is `SMOKE`",
        ),
        (
            "upsert key",
            Box::new(
                |d: &mut Value| d["invocationMethod"] = json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {"identifier": "x", "colour": "y"}}),
            ),
            "`invocationMethod.mapping.colour` is not a known key",
        ),
        (
            "upsert identifier",
            Box::new(|d: &mut Value| {
                d["invocationMethod"] =
                    json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {"identifier": 3}})
            }),
            "`invocationMethod.mapping.identifier` must be a string",
        ),
        (
            "upsert relation",
            Box::new(|d: &mut Value| {
                d["invocationMethod"] =
                    json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {"relations": {"owner": 1}}})
            }),
            "`invocationMethod.mapping.relations.owner` must be a string, an array of strings or null",
        ),
        ("not an object", Box::new(|d: &mut Value| *d = json!([1])), "an action must be a JSON object"),
    ];
    for (name, change, message) in cases {
        let mut doc = deploy();
        change(&mut doc);
        let answer = server.post("/v1/actions", doc).await;
        assert_eq!(answer.1["error"], "invalid_action", "{name}: {}", answer.1);
        assert_error(&answer, unprocessable, message);
    }
    let automation = |event: Value| {
        json!({"identifier": "auto", "trigger": {"type": "automation", "event": event},
               "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com"}})
    };
    for (event, message) in [
        (json!({"type": "ENTITY_CHANGED", "blueprintIdentifier": "service"}), "`trigger.event.type` is `ENTITY_CHANGED`"),
        (json!({"type": "ENTITY_CREATED"}), "`trigger.event.blueprintIdentifier` is required for `ENTITY_CREATED`"),
        (json!({"type": "RUN_UPDATED", "blueprintIdentifier": "service"}), "`trigger.event.actionIdentifier` is required"),
        (json!({"type": "RUN_CREATED", "actionIdentifier": "deploy", "blueprintIdentifier": "service"}), "does not apply"),
        (
            json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service"}),
            "`trigger.event.propertyIdentifier` is required",
        ),
        (
            json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service", "propertyIdentifier": "version"}),
            "not a `timer` property",
        ),
        (
            json!({"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "service", "propertyIdentifier": "gone"}),
            "not a property of `service`",
        ),
        (
            json!({"type": "ENTITY_CREATED", "blueprintIdentifier": "service", "extra": 1}),
            "`trigger.event.extra` is not a known key",
        ),
    ] {
        assert_error(&server.post("/v1/actions", automation(event)).await, unprocessable, message);
    }
    let mut conditioned = automation(json!({"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}));
    conditioned["trigger"]["condition"] = json!({"type": "SEARCH", "expressions": ["true"]});
    assert_error(&server.post("/v1/actions", conditioned.clone()).await, unprocessable, "`trigger.condition.type` is `SEARCH`");
    conditioned["trigger"]["condition"] = json!({"type": "JQ", "expressions": ["true", 3]});
    assert_error(
        &server.post("/v1/actions", conditioned.clone()).await,
        unprocessable,
        "`trigger.condition.expressions[1]` must be a jq",
    );
    conditioned["trigger"]["condition"] = json!({"type": "JQ", "expressions": ["true"], "combinator": "xor"});
    assert_error(&server.post("/v1/actions", conditioned).await, unprocessable, "`trigger.condition.combinator` is `xor`");

    // Blueprints the action names must exist.
    let mut missing = deploy();
    missing["trigger"]["blueprintIdentifier"] = json!("ghost");
    assert_error(
        &server.post("/v1/actions", missing).await,
        unprocessable,
        "`trigger.blueprintIdentifier` is `ghost`, which is not an existing blueprint",
    );
    let mut missing = deploy();
    missing["trigger"]["userInputs"]["properties"]["target"]["blueprint"] = json!("ghost");
    assert_error(
        &server.post("/v1/actions", missing).await,
        unprocessable,
        "`trigger.userInputs.properties.target.blueprint` is `ghost`",
    );
    let missing = automation(json!({"type": "ENTITY_DELETED", "blueprintIdentifier": "ghost"}));
    assert_error(&server.post("/v1/actions", missing).await, unprocessable, "`trigger.event.blueprintIdentifier` is `ghost`");
    let missing = json!({"identifier": "up", "trigger": {"type": "self-service", "operation": "CREATE"},
                         "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "ghost", "mapping": {"identifier": "x"}}});
    assert_error(&server.post("/v1/actions", missing).await, unprocessable, "`invocationMethod.blueprintIdentifier` is `ghost`");
    // A body that is not JSON is a 400.
    assert_eq!(server.post_text("/v1/actions", "{\"identifier\": ").await.0, StatusCode::BAD_REQUEST);
    // Nothing was stored.
    assert_eq!(server.get("/v1/actions").await.1["actions"], json!([]));
}

/// A template or a jq expression that does not compile is a 422 at save time, naming its
/// path and jq's message; every failure is listed at once.
async fn templates_and_jq_compile_at_save(server: TestServer) {
    service_blueprint(&server).await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let mut doc = deploy();
    doc["invocationMethod"]["body"]["x"] = json!("{{ .inputs | nope }}");
    doc["invocationMethod"]["headers"]["X-Id"] = json!("id-{{ .run.id | }}");
    let answer = server.post("/v1/actions", doc).await;
    assert_eq!(answer.1["error"], "invalid_jq", "{}", answer.1);
    assert_error(
        &answer,
        unprocessable,
        "`invocationMethod.body.x` is not a valid template: jq: compile error: nope/0 is not defined",
    );
    assert_error(&answer, unprocessable, "`invocationMethod.headers.X-Id` is not a valid template");
    for (change, message) in [
        (
            json!({"url": "https://x/{{ .entity.identifier"}),
            "`invocationMethod.url` is not a valid template: Found opening double braces",
        ),
        (json!({"url": "https://x/{{ .a }}}} "}), "`invocationMethod.url` is not a valid template"),
        (json!({"body": {"{{ .a[ }}": 1}}), "`invocationMethod.body.{{ .a[ }}` is not a valid template"),
        (
            json!({"body": [{"a": ["ok", "{{ {{ .x }} }}"]}]}),
            "`invocationMethod.body[0].a[1]` is not a valid template: Found double braces",
        ),
        (json!({"synchronized": "{{ .inputs.sync | ( }}"}), "`invocationMethod.synchronized` is not a valid template"),
    ] {
        let mut doc = deploy();
        for (key, value) in change.as_object().unwrap() {
            doc["invocationMethod"][key] = value.clone();
        }
        assert_error(&server.post("/v1/actions", doc).await, unprocessable, message);
    }
    let mut doc = deploy();
    doc["trigger"]["userInputs"]["properties"]["notify"]["visible"] = json!({"jqQuery": ".form | bad_fn"});
    assert_error(
        &server.post("/v1/actions", doc).await,
        unprocessable,
        "`trigger.userInputs.properties.notify.visible.jqQuery` is not a valid jq expression",
    );
    let mut doc = deploy();
    doc["trigger"]["userInputs"]["required"] = json!({"jqQuery": "if then"});
    assert_error(&server.post("/v1/actions", doc).await, unprocessable, "`trigger.userInputs.required.jqQuery`");
    let automation = json!({
        "identifier": "auto",
        "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"},
                    "condition": {"type": "JQ", "expressions": [".diff.after != null", ".diff.after.properties | ~~", "'single' == \"single\""], "combinator": "or"}},
        "invocationMethod": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                             "mapping": {"identifier": "{{ .event.context.entityIdentifier }}", "properties": {"version": "{{ .x | nope_fn }}"}}}
    });
    let answer = server.post("/v1/actions", automation.clone()).await;
    assert_error(&answer, unprocessable, "`trigger.condition.expressions[1]` is not a valid jq expression");
    assert_error(&answer, unprocessable, "`invocationMethod.mapping.properties.version` is not a valid template");
    assert!(!answer.1["message"].as_str().unwrap().contains("expressions[0]"), "{}", answer.1);
    assert!(!answer.1["message"].as_str().unwrap().contains("expressions[2]"), "Port's single quotes compile: {}", answer.1);
    // Fixed, the same document is taken; a jq error at run time is not a compile error.
    let mut fixed = automation;
    fixed["trigger"]["condition"]["expressions"][1] = json!(".diff.after.properties | length > 0");
    fixed["invocationMethod"]["mapping"]["properties"]["version"] = json!("{{ .x | error(\"at run time\") }}");
    let (status, created) = server.post("/v1/actions", fixed).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // PUT compiles too, and a failed PUT changes nothing.
    let mut broken = created["action"].clone();
    broken["trigger"]["condition"]["expressions"] = json!(["nope("]);
    assert_error(&server.put("/v1/actions/auto", broken).await, unprocessable, "`trigger.condition.expressions[0]`");
    assert_eq!(server.get("/v1/actions/auto").await.1["action"], created["action"]);
    // Nothing else was stored.
    assert_eq!(server.get("/v1/actions").await.1["actions"].as_array().unwrap().len(), 1);
}

/// SPEC §12: 1,000 actions and automations per organization, counted under a lock (creates
/// race here), with a message that says how to make room; another organization is not
/// affected.
async fn actions_per_organization_are_capped(server: TestServer) {
    let action = |i: usize| {
        json!({"identifier": format!("a{i}"), "trigger": {"type": "self-service", "operation": "CREATE"},
               "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/{{ .run.id }}"}})
    };
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, base, token) = (server.http.clone(), server.base.clone(), server.token.clone());
        let docs: Vec<Value> = (0..1_000).filter(|i| i % 8 == worker).map(action).collect();
        tasks.spawn(async move {
            for doc in docs {
                let response = http.post(format!("{base}/v1/actions")).bearer_auth(&token).json(&doc).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let full = server.post("/v1/actions", action(1_000)).await;
    assert_error(
        &full,
        StatusCode::UNPROCESSABLE_ENTITY,
        "has 1000 actions and automations, the most it may have (1000); delete one first",
    );
    assert_eq!(full.1["error"], "too_many_actions");
    assert_eq!(server.get("/v1/actions").await.1["actions"].as_array().unwrap().len(), 1_000);
    // Racing creates cannot pass the cap together.
    let mut racing = tokio::task::JoinSet::new();
    for i in 1_000..1_004 {
        let (http, base, token, doc) = (server.http.clone(), server.base.clone(), server.token.clone(), action(i));
        racing.spawn(async move {
            http.post(format!("{base}/v1/actions")).bearer_auth(&token).json(&doc).send().await.unwrap().status()
        });
    }
    while let Some(status) = racing.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(server.delete("/v1/actions/a7").await.0, StatusCode::OK);
    assert_eq!(server.post("/v1/actions", action(1_000)).await.0, StatusCode::CREATED, "room again after a delete");
    let (_, other) = server.other_organization("Other").await;
    let answer = server.call_as(Some(&other), Method::POST, "/v1/actions", Some(action(1))).await;
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
}

/// Another organization cannot see, change or delete an action, and may use the same
/// identifier for its own.
async fn organizations_do_not_see_each_others_actions(server: TestServer) {
    service_blueprint(&server).await;
    assert_eq!(server.post("/v1/actions", deploy()).await.0, StatusCode::CREATED);
    let (_, other) = server.other_organization("Other").await;
    let call = |method: Method, path: &'static str, body: Option<Value>| {
        let (server, other) = (&server, other.clone());
        async move { server.call_as(Some(&other), method, path, body).await }
    };
    assert_eq!(call(Method::GET, "/v1/actions", None).await.1["actions"], json!([]));
    assert_error(&call(Method::GET, "/v1/actions/deploy", None).await, StatusCode::NOT_FOUND, "`deploy`");
    assert_error(&call(Method::PUT, "/v1/actions/deploy", Some(deploy())).await, StatusCode::NOT_FOUND, "`deploy`");
    assert_error(&call(Method::DELETE, "/v1/actions/deploy", None).await, StatusCode::NOT_FOUND, "`deploy`");
    // Its own blueprints: `service` is not one of them.
    assert_error(
        &call(Method::POST, "/v1/actions", Some(deploy())).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`trigger.blueprintIdentifier` is `service`, which is not an existing blueprint",
    );
    let own = json!({"identifier": "deploy", "title": "Theirs", "trigger": {"type": "self-service", "operation": "CREATE"},
                     "invocationMethod": {"type": "WEBHOOK", "url": "https://other.example.com"}});
    let (status, created) = call(Method::POST, "/v1/actions", Some(own)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(server.get("/v1/actions/deploy").await.1["action"]["title"], "Deploy", "ours is unchanged");
    assert_eq!(call(Method::GET, "/v1/actions/deploy", None).await.1["action"]["title"], "Theirs");
    assert_eq!(call(Method::DELETE, "/v1/actions/deploy", None).await.0, StatusCode::OK);
    assert_eq!(server.get("/v1/actions/deploy").await.0, StatusCode::OK, "ours survives theirs");
    // Without a token: 401.
    assert_eq!(server.call_as(None, Method::GET, "/v1/actions", None).await.0, StatusCode::UNAUTHORIZED);
}

/// The OpenAPI document's examples of the action documents are taken (Schemathesis sends them
/// first), and the routes are documented with their patterns.
async fn documented_examples_are_taken(server: TestServer) {
    service_blueprint(&server).await;
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    let (status, created) = server.post("/v1/actions", schemas["ActionDoc"]["examples"][0].clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let identifier = created["action"]["identifier"].as_str().unwrap().to_owned();
    let replacement = schemas["ActionReplaceDoc"]["examples"][0].clone();
    let (status, replaced) = server.put(&format!("/v1/actions/{identifier}"), replacement).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    for (path, methods) in
        [("/v1/actions", &["get", "post"][..]), ("/v1/actions/{action_identifier}", &["get", "put", "delete"][..])]
    {
        for method in methods {
            let operation = &doc["paths"][path][method];
            assert!(operation["responses"]["401"].is_object(), "{method} {path}: {operation}");
        }
    }
    let parameter = &doc["paths"]["/v1/actions/{action_identifier}"]["get"]["parameters"][0]["schema"];
    assert_eq!(parameter["maxLength"], 100, "{parameter}");
    assert_eq!(schemas["ActionDoc"]["additionalProperties"], false);
}

/// Inputs whose checks run jq (a `pattern`, `jqQuery` defaults, conditions and `required`)
/// are checked when a run starts. Their programs compile on the jq pool, never in a quick
/// unit on a runtime worker: on a worker's 2 MiB stack a debug build overflowed it and
/// aborted the server.
async fn inputs_that_run_jq_are_checked_when_a_run_starts(server: TestServer) {
    service_blueprint(&server).await;
    server
        .create_action(json!({
            "identifier": "jq_inputs", "title": "Inputs with jq",
            "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service",
                "userInputs": {"properties": {
                    "name": {"type": "string", "pattern": "^[a-z]+$"},
                    "env": {"type": "string", "default": {"jqQuery": "\"stag\" + \"ing\""}},
                    "notify": {"type": "boolean", "visible": {"jqQuery": ".form.name != null"}}
                }, "required": {"jqQuery": "[\"name\"]"}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://deploy.example.com/hook"}
        }))
        .await;
    let run = server.start_run("jq_inputs", json!({"properties": {"name": "api"}})).await;
    assert_eq!((run["properties"]["name"].clone(), run["properties"]["env"].clone()), (json!("api"), json!("staging")), "{run}");
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let refused = server.post("/v1/actions/jq_inputs/runs", json!({"properties": {"name": "API"}})).await;
    assert_error(&refused, unprocessable, "inputs.name");
    assert_error(&server.post("/v1/actions/jq_inputs/runs", json!({"properties": {}})).await, unprocessable, "inputs.name");
}

/// A run's inputs and templates are checked and rendered on the request's own worker when they
/// fit jq's quick budget, and on a jq thread when they do not: both give what jq computes.
/// Each heavy template produces just over the quick budget's 20,000 steps (a step per value
/// produced) and stays far below the full budget's second, even in a debug build under load:
/// about 5 ms each there, quiet. (`[range(21000)] | add` took 75 ms, and past the second once
/// in CI, with the suite's other servers on the same 2 cores.)
async fn templates_past_the_quick_budget_render_in_full(server: TestServer) {
    server
        .create_action(json!({
            "identifier": "heavy", "title": "Heavy templates",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {
                "n": {"type": "number"},
                "total": {"type": "number", "default": {"jqQuery": "[range(22000)] | length"}}
            }, "required": ["n"]}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://deploy.example.com/hook", "body": {
                "n": "{{ .inputs.n }}",
                "last": "{{ last(range(21000)) }}",
                "total": "{{ .inputs.total }}"
            }}
        }))
        .await;
    let on_jq_threads = || async {
        let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
        let line = "wharf_jq_units_total{where=\"jq_thread\"} ";
        metrics.lines().find_map(|l| l.strip_prefix(line).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    let before = on_jq_threads().await;
    for n in [1, 2] {
        let run = server.start_run("heavy", json!({"properties": {"n": n}})).await;
        let body = &run["payload"]["body"];
        assert_eq!(run["properties"]["total"], 22000, "{run}");
        assert_eq!(
            (body["n"].clone(), body["last"].clone(), body["total"].clone()),
            (json!(n), json!(20_999), json!(22000)),
            "{run}"
        );
    }
    // Both runs' inputs and templates went past the quick budget (the counter is this
    // process's: the tests beside this one only add to it).
    assert!(on_jq_threads().await >= before + 4, "the heavy units ran on jq threads");
}

both_stores!(
    templates_past_the_quick_budget_render_in_full,
    inputs_that_run_jq_are_checked_when_a_run_starts,
    documented_examples_are_taken,
    crud_round_trip,
    port_examples_are_taken_unchanged,
    validation_names_the_path,
    templates_and_jq_compile_at_save,
    actions_per_organization_are_capped,
    organizations_do_not_see_each_others_actions,
);
