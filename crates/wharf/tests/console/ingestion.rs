//! The console's ingestion screens in Chromium: a webhook made through its JSON form, its
//! mapping tried live on the events it stored (edits, a broken expression, discard, save), and
//! its event log filtered by status, one event read and replayed.

use crate::common;

use common::TestServer;
use common::browser::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "It is a secret";

/// The README's blueprint of pull requests.
async fn pull_request_blueprint(server: &TestServer) {
    server
        .blueprint(json!({
            "identifier": "pullRequest", "title": "Pull request",
            "schema": {"properties": {"author": {"type": "string"}, "state": {"type": "string"}, "url": {"type": "string"}}}
        }))
        .await;
}

/// The README's GitHub webhook (a signature secret, a request identifier), mapping to `blueprint`.
fn github_webhook(blueprint: &str) -> Value {
    json!({
        "identifier": "github", "title": "GitHub",
        "mappings": [{
            "blueprint": blueprint,
            "filter": ".headers[\"x-github-event\"] == \"pull_request\"",
            "entity": {
                "identifier": ".body.pull_request.id | tostring",
                "title": ".body.pull_request.title",
                "properties": {"author": ".body.pull_request.user.login", "state": ".body.pull_request.state",
                               "url": ".body.pull_request.html_url"}
            }
        }],
        "security": {"secret": SECRET, "signatureHeaderName": "x-hub-signature-256", "signatureAlgorithm": "sha256",
                     "signaturePrefix": "sha256=", "requestIdentifierPath": ".headers[\"x-github-delivery\"]"}
    })
}

fn pull_request(id: u64, title: &str, author: &str) -> Value {
    json!({
        "action": "opened", "number": id - 1000,
        "pull_request": {"id": id, "number": id - 1000, "state": "open", "title": title,
                         "html_url": format!("https://github.com/acme/api/pull/{}", id - 1000), "user": {"login": author}},
        "repository": {"full_name": "acme/api"}
    })
}

/// GitHub's signature of `body` with [`SECRET`].
fn signature(body: &Value) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.to_string().as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends a signed GitHub event and waits until it is mapped; returns the event.
async fn deliver(server: &TestServer, key: &str, kind: &str, delivery: &str, body: &Value) -> Value {
    let signed = signature(body);
    let headers = [("x-github-event", kind), ("x-github-delivery", delivery), ("x-hub-signature-256", signed.as_str())];
    let id = server.ingest(key, body, &headers).await;
    server.mapped_event("github", &id).await
}

/// The webhook's key, read through the API.
async fn webhook_key(server: &TestServer) -> String {
    let (status, body) = server.get("/v1/webhooks/github").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["integration"]["webhookKey"].as_str().expect("webhookKey").to_owned()
}

/// The event page's sections: its summary, what mapping it did, the request as received.
const SUMMARY: &str = "section[aria-labelledby=\"event-summary\"]";
const RESULT: &str = "section[aria-labelledby=\"event-result\"]";
const REQUEST: &str = "section[aria-labelledby=\"event-request\"]";

/// The JS that is true when the events table shows exactly `ids` (in any order).
fn events_shown(ids: &[&str]) -> String {
    let ids = serde_json::to_string(ids).expect("a list serializes");
    format!(
        "(() => {{ const rows = [...document.querySelectorAll('#main tbody tr td:first-child')].map((td) => td.innerText.trim()); \
         const want = {ids}; return rows.length === want.length && want.every((id) => rows.includes(id)); }})()"
    )
}

async fn a_webhook_is_made_and_its_mapping_tested_live(server: TestServer) {
    pull_request_blueprint(&server).await;
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/ingestion/webhooks").await;
    browser.wait_for_text("No webhooks yet.").await;

    // Created through the JSON form: a mapping to a blueprint that does not exist is refused (422).
    browser.click_button("Create webhook").await;
    browser.fill("Webhook (JSON)", &github_webhook("pullRequests").to_string()).await;
    browser.click_button("Create webhook").await;
    browser
        .wait_for_text(
            "The webhook was not created: `mappings[0].blueprint` is `pullRequests`, which is not an existing blueprint",
        )
        .await;
    browser.wait_for_text("422 invalid_webhook").await;
    browser.fill("Webhook (JSON)", &github_webhook("pullRequest").to_string()).await;
    browser.click_button("Create webhook").await;
    browser.wait_for_text("Webhook “GitHub” created.").await;
    let (status, created) = server.get("/v1/webhooks/github").await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let url = created["integration"]["url"].as_str().unwrap().to_owned();
    let key = webhook_key(&server).await;
    assert!(url.ends_with(&format!("/ingest/{key}")), "{url}");
    assert_eq!(browser.eval("return document.getElementById('created-url').innerText").await, url.as_str());
    assert!(created["integration"]["security"].get("secret").is_none(), "the secret is never shown");

    // Three events: one the filter leaves out, then two pull requests (the newest last).
    let filtered = deliver(&server, &key, "issues", "d-1", &json!({"action": "opened", "issue": {"id": 5}})).await;
    assert_eq!(filtered["status"], "FILTERED", "{filtered}");
    let first = deliver(&server, &key, "pull_request", "d-2", &pull_request(1001, "Add retries", "octocat")).await;
    assert_eq!(first["status"], "SUCCESS", "{first}");
    let newest = deliver(&server, &key, "pull_request", "d-3", &pull_request(1002, "Fix the docs", "hubot")).await;
    assert_eq!(newest["status"], "SUCCESS", "{newest}");
    let newest_id = newest["id"].as_str().unwrap();

    // The webhook's page: the live test runs on the newest stored event at once.
    browser.click_link("Open the webhook and its mappings").await;
    browser.wait_until("location.hash === '#/ingestion/webhooks/github'").await;
    browser.wait_for_text(&url).await;
    browser.wait_for_text("header x-hub-signature-256, HMAC-SHA256 of the body").await;
    browser.wait_for_text("1 entity: 1 unchanged.").await;
    assert_eq!(browser.eval("return document.getElementById('test-source').value").await, newest_id);
    for shown in ["\"1002\"", "\"Fix the docs\"", "\"hubot\"", "\"https://github.com/acme/api/pull/2\""] {
        browser.wait_for_text(shown).await;
    }
    browser.assert_accessible("webhook").await;

    // An edit shows in the result before it is saved.
    browser.fill("Title", ".body.pull_request.title | ascii_upcase").await;
    browser.wait_for_text("\"FIX THE DOCS\"").await;
    browser.wait_for_text("1 entity: 1 would be updated.").await;
    browser.wait_for_text("Unsaved changes").await;

    // A broken expression: the API's 422 names the field, and the field shows it.
    browser.fill_id("m0-identifier", ".body.pull_request.id | ").await;
    browser.wait_for_text("The test could not run: `mappings[0].entity.identifier` is not a valid jq expression").await;
    browser.wait_for_text("422 invalid_jq").await;
    browser
        .wait_until(
            "(document.getElementById('m0-identifier-errors')?.innerText || '').includes('`mappings[0].entity.identifier`')",
        )
        .await;
    assert_eq!(browser.eval("return document.getElementById('m0-identifier').getAttribute('aria-invalid')").await, "true");

    // Discard: the saved mapping again, and its result.
    browser.click_button("Discard changes").await;
    browser.wait_until("document.getElementById('m0-identifier').value === '.body.pull_request.id | tostring'").await;
    browser.wait_until("document.getElementById('m0-title').value === '.body.pull_request.title'").await;
    browser.wait_for_text("1 entity: 1 unchanged.").await;
    browser.wait_until("!document.body.innerText.includes('Unsaved changes')").await;

    // Save a change: the webhook's mapping is changed in the API.
    browser.fill("Title", ".body.pull_request.title | ascii_upcase").await;
    browser.wait_for_text("\"FIX THE DOCS\"").await;
    browser.click_button("Save mappings").await;
    browser.wait_for_text("Mappings saved.").await;
    let (_, saved) = server.get("/v1/webhooks/github").await;
    let mapping = &saved["integration"]["mappings"][0];
    assert_eq!(mapping["entity"]["title"], ".body.pull_request.title | ascii_upcase", "{saved}");
    assert_eq!(mapping["entity"]["identifier"], ".body.pull_request.id | tostring", "{saved}");
    assert_eq!(mapping["filter"], ".headers[\"x-github-event\"] == \"pull_request\"", "{saved}");
    assert_eq!(
        saved["integration"]["security"]["signatureHeaderName"], "x-hub-signature-256",
        "saving mappings keeps the security"
    );
    browser.wait_for_text("1 entity: 1 would be updated.").await;
    browser.eval("document.querySelector('.ing-workbench').scrollIntoView({block: 'start'})").await;
    browser.screenshot("ingestion-mapping").await;
    browser.close().await;
}

async fn the_event_log_filters_and_replays(server: TestServer) {
    pull_request_blueprint(&server).await;
    server.webhook(github_webhook("pullRequest")).await;
    let key = webhook_key(&server).await;
    let success = deliver(&server, &key, "pull_request", "d-1", &pull_request(1001, "Add retries", "octocat")).await;
    assert_eq!(success["status"], "SUCCESS", "{success}");
    let filtered = deliver(&server, &key, "issues", "d-2", &json!({"action": "opened", "issue": {"id": 5}})).await;
    assert_eq!(filtered["status"], "FILTERED", "{filtered}");
    let forged = pull_request(1002, "Forged", "mallory");
    let (status, answer) = server
        .ingest_raw(
            &key,
            "",
            &[("content-type", "application/json"), ("x-github-event", "pull_request"), ("x-hub-signature-256", "sha256=00")],
            forged.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (_, log) = server.get("/v1/webhooks/github/events?status=REJECTED").await;
    let rejected = log["events"][0]["id"].as_str().expect("a REJECTED event").to_owned();
    let (success_id, filtered_id) = (success["id"].as_str().unwrap(), filtered["id"].as_str().unwrap());

    // The log: every event, newest first, with its status.
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/ingestion/webhooks/github/events").await;
    browser.wait_until(&events_shown(&[success_id, filtered_id, &rejected])).await;
    for status in ["SUCCESS", "FILTERED", "REJECTED"] {
        browser
            .wait_until(&format!("[...document.querySelectorAll('#main tbody .badge')].some((b) => b.innerText === '{status}')"))
            .await;
    }
    assert_eq!(
        browser.eval("return document.querySelector('#main tbody tr td:first-child').innerText.trim()").await,
        rejected.as_str(),
        "newest first"
    );
    browser.assert_accessible("events").await;
    browser.screenshot("ingestion-events").await;

    // Filtered by status (kept in the URL), then every event again.
    browser.select("Status", "FILTERED").await;
    browser.click_button("Apply filters").await;
    browser.wait_until("location.hash.includes('status=FILTERED')").await;
    browser.wait_until(&events_shown(&[filtered_id])).await;
    browser.select("Status", "REJECTED").await;
    browser.click_button("Apply filters").await;
    browser.wait_until(&events_shown(&[&rejected])).await;
    browser.wait_for_text("the `x-hub-signature-256` header does not match the signature of the body").await;
    browser.click_button("Clear filters").await;
    browser.wait_until("!location.hash.includes('status=')").await;
    browser.wait_until(&events_shown(&[success_id, filtered_id, &rejected])).await;

    // One event: the request as received and the entity it wrote, linked to the catalog.
    browser.click_link(success_id).await;
    browser.wait_until(&format!("location.hash === '#/ingestion/webhooks/github/events/{success_id}'")).await;
    browser.wait_for_text("Request as received").await;
    let request_cell =
        |text: &str| format!("[...document.querySelectorAll('{REQUEST} td')].some((td) => td.innerText === '{text}')");
    browser.wait_until(&request_cell("x-github-event")).await;
    browser.wait_until(&request_cell("d-1")).await;
    browser
        .wait_until(&format!("document.querySelector('{REQUEST} pre.json').innerText.includes('\"title\": \"Add retries\"')"))
        .await;
    browser.wait_until(&format!("document.querySelector('{RESULT} a[href=\"#/catalog/entities/pullRequest/1001\"]')")).await;
    browser.wait_for_text("Entities written\n1").await;
    browser.assert_accessible("event").await;

    // Replay: PENDING again, then mapped again (a new processing time), SUCCESS.
    let before = success["processedAt"].as_str().unwrap().to_owned();
    let processed = format!("document.querySelectorAll('{SUMMARY} time')[1]?.getAttribute('datetime')");
    browser.click_button("Replay").await;
    browser.wait_for_text("Replayed: the event is PENDING again").await;
    browser
        .wait_until(&format!(
            "{processed} && {processed} !== new Date('{before}').toISOString() \
             && [...document.querySelectorAll('{SUMMARY} .badge')].some((b) => b.innerText === 'SUCCESS')"
        ))
        .await;
    let again = server.mapped_event("github", success_id).await;
    assert_eq!(again["status"], "SUCCESS", "{again}");
    assert_ne!(again["processedAt"], before.as_str(), "the replay mapped the event again: {again}");
    let shown = browser
        .eval_with(&format!("return {processed} === new Date(arguments[0]).toISOString()"), vec![again["processedAt"].clone()])
        .await;
    assert_eq!(shown, true, "the page shows the new processing time");

    // The entity it wrote, in the catalog.
    browser.click_link("1001").await;
    browser.wait_until("location.hash === '#/catalog/entities/pullRequest/1001'").await;
    browser.wait_for_text("Add retries").await;
    browser.wait_for_text("octocat").await;
    browser.close().await;
}

both_stores!(a_webhook_is_made_and_its_mapping_tested_live, the_event_log_filters_and_replays);
