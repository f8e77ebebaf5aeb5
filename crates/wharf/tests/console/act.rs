//! The console's act screens in Chromium: an action created through its JSON form and run
//! through the form drawn from its inputs (and through a JSON request the API refuses), and a
//! workflow drawn as its graph and run node by node.

use crate::common;

use common::TestServer;
use common::browser::Browser;
use common::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A self-service action whose synchronized request goes to `url`: an `enum` input and a
/// required string input.
fn notify_action(url: &str, reason_template: &str) -> Value {
    json!({
        "identifier": "notify_team",
        "title": "Notify the team",
        "description": "Tells the on-call team about a change",
        "trigger": {
            "type": "self-service",
            "operation": "CREATE",
            "userInputs": {
                "properties": {
                    "environment": {"type": "string", "title": "Environment", "enum": ["staging", "production"]},
                    "reason": {"type": "string", "title": "Reason", "description": "Why the team is told"}
                },
                "required": ["reason"],
                "order": ["environment", "reason"]
            }
        },
        "invocationMethod": {
            "type": "WEBHOOK",
            "url": url,
            "method": "POST",
            "synchronized": true,
            "body": {"environment": "{{ .inputs.environment }}", "reason": reason_template, "runId": "{{ .run.id }}"}
        }
    })
}

/// The text of the element `selector` matches ('' when none).
async fn text_of(browser: &Browser, selector: &str) -> String {
    let value = browser.eval_with("return document.querySelector(arguments[0])?.textContent || ''", vec![json!(selector)]).await;
    value.as_str().unwrap_or_default().to_owned()
}

/// Opens the `<details>` whose summary reads `summary`.
async fn open_details(browser: &Browser, summary: &str) {
    browser
        .eval_with(
            "const s = [...document.querySelectorAll('summary')].find((s) => s.textContent.trim() === arguments[0]); s.click();",
            vec![json!(summary)],
        )
        .await;
}

/// An entity input offers one page of the blueprint's entities that match what is typed (the
/// search API's `limit`), and says when more match.
async fn an_entity_input_lists_one_page_of_matches(server: TestServer) {
    let receiver = Receiver::start().await;
    server.blueprint(json!({"identifier": "svc", "title": "Service", "schema": {"properties": {}}})).await;
    let entities: Vec<Value> =
        (0..120).map(|i| json!({"identifier": format!("svc-{i:03}"), "title": format!("Service {i}")})).collect();
    server.bulk("/v1/blueprints/svc/entities/bulk", &entities).await;
    let action = json!({
        "identifier": "restart", "title": "Restart",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "svc", "userInputs": {
            "properties": {"target": {"type": "string", "format": "entity", "blueprint": "svc", "title": "Target"}},
            "required": ["target"]
        }},
        "invocationMethod": {"type": "WEBHOOK", "url": receiver.url("/restart"), "method": "POST"}
    });
    let (status, body) = server.post("/v1/actions", action).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/act/actions/restart").await;
    let hint = "document.getElementById('run-in-target-found')?.textContent";
    let listed = "return document.getElementById('run-in-target-list').options.length";

    browser.wait_until(&format!("{hint}?.startsWith('More than 100 svc entities match')")).await;
    assert_eq!(browser.eval(listed).await, 100);
    browser.fill("Target", "svc-11").await;
    browser.wait_until(&format!("{hint} === '10 svc entities match; type to narrow.'")).await;
    assert_eq!(browser.eval(listed).await, 10);
    browser.fill("Target", "svc-110").await;
    browser.wait_until(&format!("{hint} === 'Service 110 — an entity of svc.'")).await;
    browser.fill("Target", "nothing-like-it").await;
    browser.wait_until(&format!("{hint} === '0 svc entities match.'")).await;
    browser.close().await;
}

async fn an_action_runs_from_its_form(server: TestServer) {
    let receiver = Receiver::start().await;
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/act/actions").await;
    browser.wait_for_text("No actions or automations yet.").await;
    browser.click_button("Create action").await;
    browser.wait_until("location.hash.includes('new=1')").await;

    // A template that does not compile: the API's 422 names its path.
    let url = receiver.url("/ok/notify");
    let broken = notify_action(&url, "{{ .inputs.reason | nope }}");
    browser.fill("Action JSON", &broken.to_string()).await;
    browser.click_button("Create").await;
    browser
        .wait_for_text("`invocationMethod.body.reason` is not a valid template: jq: compile error: nope/0 is not defined")
        .await;
    assert!(browser.text().await.contains("422 invalid_jq"));
    assert_eq!(server.get("/v1/actions").await.1["actions"], json!([]));

    browser.fill("Action JSON", &notify_action(&url, "{{ .inputs.reason }}").to_string()).await;
    browser.click_button("Create").await;
    browser.wait_until("location.hash === '#/act/actions/notify_team'").await;
    browser.wait_for_text("Notify the team").await;
    browser.wait_for_text("No runs of this action yet.").await;
    let (status, created) = server.get("/v1/actions/notify_team").await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["action"]["invocationMethod"]["synchronized"], true);

    // The form drawn from the inputs: the choice offers the enum, the required input is checked
    // in the browser before anything is sent.
    let options =
        browser.eval("return [...document.getElementById('run-in-environment').options].map((o) => o.textContent)").await;
    assert_eq!(options, json!(["— none —", "staging", "production"]));
    browser.click_button("Run action").await;
    browser.wait_for_text("Check the inputs: Reason is required.").await;
    browser.wait_until("document.getElementById('run-in-reason').getAttribute('aria-invalid') === 'true'").await;
    assert_eq!(browser.eval("return document.activeElement.id").await, "run-in-reason", "the first invalid input has the focus");
    assert_eq!(server.get("/v1/actions/runs?action=notify_team").await.1["runs"], json!([]), "nothing was sent");

    browser.select("Environment", "\"production\"").await;
    browser.fill("Reason", "deploying the hotfix").await;
    browser.wait_until("!document.body.innerText.includes('Check the inputs')").await;
    browser.screenshot("act-action").await;
    browser.click_button("Run action").await;
    browser.wait_for_text("Open the run").await;
    browser.click_link("Open the run").await;
    browser.wait_until("location.hash.startsWith('#/act/runs/')").await;

    // The run page: SUCCESS, the request with the inputs, the receiver's answer, the attempt.
    browser.wait_until("document.querySelector('.page-head .badge')?.textContent === 'SUCCESS'").await;
    let run_id = browser.eval("return decodeURIComponent(location.hash.split('/').pop())").await;
    let run_id = run_id.as_str().unwrap().to_owned();
    let sent = text_of(&browser, "pre[aria-label='Body sent']").await;
    let sent: Value = serde_json::from_str(&sent).unwrap_or_else(|e| panic!("{e}: {sent}"));
    assert_eq!(sent, json!({"environment": "production", "reason": "deploying the hotfix", "runId": run_id}));
    browser.wait_for_text(&format!("POST {url}")).await;
    let response = text_of(&browser, "pre[aria-label='Response']").await;
    assert!(response.contains("\"received\": true"), "{response}");
    let inputs = text_of(&browser, "pre[aria-label='Inputs, with defaults filled in']").await;
    assert!(inputs.contains("\"reason\": \"deploying the hotfix\""), "{inputs}");
    let status_codes = browser
        .eval("return [...document.querySelectorAll('section[aria-labelledby=run-attempts] td[data-label=\"HTTP status\"]')].map((td) => td.textContent)")
        .await;
    assert_eq!(status_codes, json!(["200"]));
    assert_eq!(text_of(&browser, "section[aria-labelledby=run-attempts] .badge").await, "success");
    let call = receiver.wait_for("/ok/notify", 1).await.remove(0);
    let received: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(received, sent, "the receiver got the body the page shows");
    assert_eq!(server.run(&run_id).await["status"], "SUCCESS");
    browser.assert_accessible("run").await;
    browser.screenshot("act-run").await;

    // A JSON run request without the required input: the API's 422 names it.
    browser.click_link("Notify the team").await;
    browser.wait_until("location.hash === '#/act/actions/notify_team'").await;
    browser.wait_for_text(&run_id).await;
    browser.assert_accessible("action").await;
    open_details(&browser, "Run with a JSON request").await;
    browser.fill("Run request JSON", r#"{"properties": {"environment": "staging"}}"#).await;
    browser.click_button("Send run request").await;
    browser.wait_for_text("inputs.reason: is required").await;
    assert!(browser.text().await.contains("422 invalid_inputs"));
    let (_, runs) = server.get("/v1/actions/runs?action=notify_team").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "the refused request made no run: {runs}");

    // The list shows the action, linked to its runs.
    browser.goto("#/act/actions").await;
    browser.wait_for_text("notify_team").await;
    assert!(browser.text().await.contains("synchronized"));
    browser.assert_accessible("actions").await;
    // The Runs link of the row (its text is "Runs"; its name says whose).
    browser.eval("document.querySelector('a[aria-label=\"Runs of notify_team\"]').click()").await;
    browser.wait_until("location.hash.startsWith('#/act/runs?action=notify_team')").await;
    browser.wait_for_text(&run_id).await;
    browser.close().await;
}

/// A workflow: a form, a request to the receiver, a check of its answer, a second request.
fn release_workflow(receiver: &Receiver) -> Value {
    json!({
        "identifier": "release",
        "title": "Release",
        "description": "Announces a release, then thanks the team once it was heard",
        "nodes": [
            {"identifier": "trigger", "title": "Release", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {
                    "version": {"type": "string", "title": "Version"},
                    "environment": {"type": "string", "title": "Environment", "enum": ["staging", "production"], "default": "staging"}
                },
                "required": ["version"]
            }}},
            {"identifier": "announce", "title": "Announce the release", "config": {
                "type": "WEBHOOK",
                "url": receiver.url("/ok/release"),
                "body": {"version": "{{ .outputs.trigger.version }}", "environment": "{{ .outputs.trigger.environment }}", "run": "{{ .workflowRun.identifier }}"}
            }},
            {"identifier": "heard", "title": "Was it heard?", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "ok", "title": "Heard", "expression": ".outputs.announce.response.status == 200"}
            ]}},
            {"identifier": "thanks", "title": "Thank the team", "config": {
                "type": "WEBHOOK", "url": receiver.url("/ok/thanks"), "body": {"text": "Released {{ .outputs.trigger.version }}"}
            }}
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "announce"},
            {"sourceIdentifier": "announce", "targetIdentifier": "heard"},
            {"sourceIdentifier": "heard", "targetIdentifier": "thanks", "sourceOutletIdentifier": "ok"}
        ]
    })
}

async fn a_workflow_is_drawn_and_run(server: TestServer) {
    let receiver = Receiver::start().await;
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/act/workflows").await;
    browser.wait_for_text("No workflows yet.").await;
    browser.click_button("Create workflow").await;
    browser.fill("Workflow JSON", &release_workflow(&receiver).to_string()).await;
    browser.click_button("Create").await;
    browser.wait_until("location.hash === '#/act/workflows/release'").await;
    browser.wait_for_text("Announces a release, then thanks the team once it was heard").await;
    assert_eq!(server.get("/v1/workflows/release").await.0, StatusCode::OK);

    // The graph: one box per node, one arrow per connection, the outlet named on its arrow.
    browser.wait_for_selector("svg.act-graph").await;
    let titles =
        browser.eval("return [...document.querySelectorAll('svg.act-graph .act-node-title')].map((t) => t.textContent)").await;
    let mut titles: Vec<String> = serde_json::from_value(titles).unwrap();
    titles.sort_unstable();
    assert_eq!(titles, ["Announce the release", "Release", "Thank the team", "Was it heard?"]);
    assert_eq!(browser.eval("return document.querySelectorAll('svg.act-graph g.act-edge path.edge').length").await, 3);
    assert_eq!(text_of(&browser, "svg.act-graph .act-edge-label").await, "Heard");
    assert_eq!(text_of(&browser, "svg.act-graph desc").await, "trigger → announce; announce → heard; heard → thanks (Heard)");
    assert_eq!(text_of(&browser, "svg.act-graph > title").await, "Release: 4 nodes, 3 connections");
    // Laid out in layers from the trigger down.
    let tops = browser
        .eval("return [...document.querySelectorAll('svg.act-graph g.act-node')].map((g) => g.transform.baseVal.getItem(0).matrix.f)")
        .await;
    let tops: Vec<f64> = serde_json::from_value(tops).unwrap();
    assert!(tops.windows(2).all(|w| w[0] < w[1]), "each node below the one before it: {tops:?}");
    browser.wait_for_text("No workflow runs yet.").await;
    browser.assert_accessible("workflow").await;

    // Run it from its trigger's form.
    assert_eq!(browser.eval("return document.getElementById('wf-in-environment').value").await, "\"staging\"");
    browser.click_button("Run workflow").await;
    browser.wait_for_text("Check the inputs: Version is required.").await;
    browser.fill("Version", "2.0.0").await;
    browser.select("Environment", "\"production\"").await;
    browser.click_button("Run workflow").await;
    browser.wait_for_text("Open the run").await;
    browser.click_link("Open the run").await;
    browser.wait_until("location.hash.startsWith('#/act/workflows/release/runs/')").await;

    // The run page: each node run's status, on the graph too.
    browser.wait_until("document.querySelector('.page-head .badge')?.textContent === 'SUCCESS'").await;
    browser.wait_until("document.querySelectorAll('article.act-node-run').length === 4").await;
    let statuses = browser
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('article.act-node-run')]
               .map((a) => [a.querySelector('h3 code').textContent, a.querySelector('h3 .badge').textContent]))",
        )
        .await;
    assert_eq!(statuses, json!({"trigger": "SUCCESS", "announce": "SUCCESS", "heard": "SUCCESS", "thanks": "SUCCESS"}));
    assert_eq!(browser.eval("return document.querySelectorAll('svg.act-graph g.act-node.good').length").await, 4);
    assert_eq!(browser.eval("return document.querySelectorAll('svg.act-graph g.act-edge.taken').length").await, 3);
    let run_id = browser.eval("return location.hash.split('/').pop()").await;
    let run_id = run_id.as_str().unwrap().to_owned();
    let outputs = text_of(&browser, "pre[aria-label='Outputs']").await;
    assert!(outputs.contains("\"version\": \"2.0.0\""), "{outputs}");

    let call = receiver.wait_for("/ok/release", 1).await.remove(0);
    let sent: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(sent, json!({"version": "2.0.0", "environment": "production", "run": run_id}));
    let thanks = receiver.wait_for("/ok/thanks", 1).await.remove(0);
    assert_eq!(serde_json::from_str::<Value>(&thanks.body).unwrap(), json!({"text": "Released 2.0.0"}));
    let (_, run) = server.get(&format!("/v1/workflows/runs/{run_id}")).await;
    assert_eq!(run["workflowRun"]["result"], "SUCCESS", "{run}");
    browser.assert_accessible("workflow run").await;
    browser.screenshot("act-workflow").await;

    // The workflow's page lists the run.
    browser.click_link("Release").await;
    browser.wait_until("location.hash === '#/act/workflows/release'").await;
    browser.wait_for_text(&run_id).await;
    browser.close().await;
}

both_stores!(an_action_runs_from_its_form, an_entity_input_lists_one_page_of_matches, a_workflow_is_drawn_and_run);
