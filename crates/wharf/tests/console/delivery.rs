//! The console's delivery screens in Chromium: a project and a subscription made through their
//! forms, a test message published and followed to its delivery, its attempt and its resend; a
//! subscription disabled, enabled, its secret rotated and its failed deliveries recovered; the
//! organization named in their paths kept for the session and forgotten at sign-out.

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::browser::Browser;
use common::receiver::{Receiver, refused_url};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf_core::signing::SigningSecret;

/// The organization's projects path (`/organizations/{org}/projects`).
async fn projects_path(server: &TestServer) -> String {
    let (status, org) = server.get("/v1/organization").await;
    assert_eq!(status, StatusCode::OK, "{org}");
    format!("/organizations/{}/projects", org["organization"]["id"].as_str().unwrap())
}

/// The API path of the subscription whose console page is open
/// (`#/delivery/projects/{project}/subscriptions/{subscription}`).
async fn open_subscription_path(server: &TestServer, browser: &Browser) -> String {
    let hash = browser.eval("return location.hash").await;
    let parts: Vec<&str> = hash.as_str().unwrap().split('/').collect();
    assert!(parts.len() >= 6 && parts[2] == "projects" && parts[4] == "subscriptions", "{hash}");
    format!("{}/{}/settings/webhooks/{}", projects_path(server).await, parts[3], parts[5])
}

/// The value of the form control whose label starts with `label`.
async fn value_of(browser: &Browser, label: &str) -> String {
    let value = browser
        .eval_with(
            "const label = [...document.querySelectorAll('label[for]')].find((l) => l.textContent.trim().startsWith(arguments[0]));
             return document.getElementById(label.htmlFor).value;",
            vec![json!(label)],
        )
        .await;
    value.as_str().unwrap_or_default().to_owned()
}

/// The secret a `SecretOnce` shows, waiting for it.
async fn shown_secret(browser: &Browser) -> String {
    browser.wait_for_selector("code.secret").await;
    browser.eval("return document.querySelector('code.secret').textContent").await.as_str().unwrap().to_owned()
}

/// Presses "I have saved it" and waits until the secret is gone from the page.
async fn dismiss_secret(browser: &Browser, secret: &str) {
    browser.click_button("I have saved it").await;
    browser.wait_until("!document.querySelector('code.secret')").await;
    assert!(!browser.text().await.contains(secret), "the secret is shown no more");
}

/// Rows in the table of the section headed by `#id`.
fn rows_of(id: &str) -> String {
    format!("document.querySelectorAll('section[aria-labelledby={id}] tbody tr').length")
}

/// Whether every signature check of `call` by `secret` passes.
fn signed_by(secret: &str, call: &common::receiver::Call) -> bool {
    let headers: Vec<(&str, &str)> =
        call.headers.iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default())).collect();
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
    SigningSecret::parse(secret).unwrap().verify(headers, call.body.as_bytes(), now, Some(300)).is_ok()
}

async fn a_subscription_delivers_and_a_delivery_is_resent(server: TestServer) {
    let receiver = Receiver::start().await;
    let Some(browser) = Browser::signed_in(&server).await else { return };

    // An empty organization: the projects screen says what to do, with the form open.
    browser.goto("#/delivery/projects").await;
    browser.wait_for_text("No projects yet.").await;
    browser.fill("Name", "Billing").await;
    browser.fill("Description", "Invoices and payments").await;
    assert_eq!(value_of(&browser, "Slug").await, "billing", "the slug follows the name");
    browser.click_button("Create project").await;
    browser.wait_until("/^#\\/delivery\\/projects\\/[0-9a-f]{24}$/.test(location.hash)").await;
    browser.wait_for_text("Project billing · draft · Invoices and payments").await;
    let (status, projects) = server.get(&projects_path(&server).await).await;
    assert_eq!(status, StatusCode::OK, "{projects}");
    assert_eq!((projects[0]["name"].as_str(), projects[0]["slug"].as_str()), (Some("Billing"), Some("billing")), "{projects}");

    // A subscription to the receiver, with a header (secret by default).
    browser.wait_for_text("No subscriptions yet.").await;
    browser.fill("Name", "Invoices to ERP").await;
    browser.fill("URL", &receiver.url("/ok/erp")).await;
    browser.fill("Event types", "invoice.*").await;
    browser.click_button("Add header").await;
    browser.fill("Header 1 name", "x-team").await;
    browser.fill("Header 1 value", "billing-ops").await;
    browser.click_button("Create subscription").await;
    browser.wait_for_text("Signing secret of Invoices to ERP — shown this once").await;
    let secret = shown_secret(&browser).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser.wait_for_text("Subscription Invoices to ERP created.").await;
    // The list, read again after the creation, shows it.
    browser
        .wait_until(&format!(
            "document.querySelector('section[aria-labelledby=dl-subscriptions] tbody')?.innerText.includes({:?})",
            receiver.url("/ok/erp")
        ))
        .await;
    dismiss_secret(&browser, &secret).await;

    // A test message, published through the project's form.
    browser.fill("Event type", "invoice.paid").await;
    browser.fill("Data", r#"{"invoice": "inv_42", "amount": 1200}"#).await;
    browser.click_button("Publish").await;
    browser.wait_for_text("1 delivery queued").await;
    browser.assert_accessible("project").await;

    let call = receiver.wait_for("/ok/erp", 1).await.remove(0);
    assert_eq!(call.method, "POST");
    assert_eq!(call.header("x-team"), "billing-ops", "the subscription's header is sent in clear");
    assert!(signed_by(&secret, &call), "signed with the secret shown once: {:?}", call.headers);
    let sent: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(sent["type"], "invoice.paid", "{sent}");
    assert_eq!(sent["data"], json!({"invoice": "inv_42", "amount": 1200}), "{sent}");
    let event_id = call.header("webhook-id").to_owned();
    assert!(event_id.starts_with("msg_"), "{event_id}");

    // The subscription's page lists the delivery as succeeded.
    browser.click_link("Open subscription Invoices to ERP").await;
    browser.wait_for_text("Invoices to ERP").await;
    let hook = open_subscription_path(&server, &browser).await;
    assert_eq!(server.get(&format!("{hook}/secret")).await.1["key"], secret.as_str());
    let delivery = server.settled_delivery(&hook).await;
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    let delivery_id = delivery["id"].as_str().unwrap().to_owned();
    browser
        .wait_until(
            "[...document.querySelectorAll('section[aria-labelledby=dl-deliveries] tbody tr')]
               .some((tr) => tr.querySelector('td[data-label=Status] .badge')?.textContent === 'succeeded' && tr.innerText.includes('HTTP 200'))",
        )
        .await;
    let text = browser.text().await;
    assert!(text.contains(&delivery_id) && text.contains("invoice.paid"), "{text}");
    assert!(text.contains("x-team: [redacted]"), "a secret header's value is not shown: {text}");
    assert!(!text.contains("billing-ops"), "{text}");
    browser.assert_accessible("subscription").await;
    // The picture shows the deliveries, with the details above them.
    browser.eval("document.querySelector('section[aria-labelledby=dl-deliveries]').scrollIntoView({block: 'end'})").await;
    browser.screenshot("delivery-subscription").await;

    // The delivery: its attempt, what was sent and what came back.
    browser.click_link(&delivery_id).await;
    browser.wait_for_text("Attempt 1").await;
    browser.wait_for_text("HTTP 200").await;
    let block = |label: &str| format!("return document.querySelector('pre[aria-label=\"{label}\"]')?.textContent || ''");
    let response = browser.eval(&block("Response body of attempt 1")).await;
    assert!(response.as_str().unwrap().contains("\"received\": true"), "{response}");
    let request = browser.eval(&block("Request body of attempt 1")).await;
    let request = request.as_str().unwrap();
    assert!(request.contains("\"type\": \"invoice.paid\"") && request.contains("\"invoice\": \"inv_42\""), "{request}");
    let status_code = browser.eval("return document.querySelector('article.dl-attempt dd strong').textContent").await;
    assert_eq!(status_code, "200");
    let text = browser.text().await;
    assert!(text.contains(&format!("webhook-id: {event_id}")), "{text}");
    assert!(text.contains(&format!("POST {}", receiver.url("/ok/erp"))), "{text}");
    browser.assert_accessible("delivery").await;
    // The picture shows the attempt: the request sent and the response.
    browser.eval("document.querySelector('article.dl-attempt').scrollIntoView({block: 'start'}); window.scrollBy(0, -56)").await;
    browser.screenshot("delivery-attempts").await;

    // Resend: a new delivery of the same event, with the same webhook-id.
    browser.click_button("Resend").await;
    browser.wait_for_text("Sent again as a new delivery").await;
    let calls = receiver.wait_for("/ok/erp", 2).await;
    assert_eq!(calls[1].header("webhook-id"), event_id, "a resend keeps the webhook-id");
    browser.wait_until(&format!("{} === 2", rows_of("dl-same-event"))).await;
    browser
        .wait_until(
            "[...document.querySelectorAll('section[aria-labelledby=dl-same-event] tbody tr')]
               .every((tr) => tr.querySelector('td[data-label=Status] .badge')?.textContent === 'succeeded')",
        )
        .await;
    let (status, deliveries) = server.get(&format!("{hook}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[0]["manual"], true, "the resend is the newest: {deliveries:?}");
    assert_eq!(deliveries[0]["eventId"], event_id.as_str());
    let resent_id = deliveries[0]["id"].as_str().unwrap();
    browser.click_link(resent_id).await;
    browser.wait_until(&format!("location.hash.endsWith('/deliveries/{resent_id}')")).await;
    browser.wait_for_text("a resend: one attempt, no retries").await;

    // The projects screen lists the project, linked.
    browser.goto("#/delivery/projects").await;
    browser.wait_for_text("Invoices and payments").await;
    browser.assert_accessible("projects").await;
    browser.click_link("Billing").await;
    browser.wait_for_text("Invoices to ERP").await;
    browser.close().await;
}

async fn a_subscription_is_disabled_rotated_and_recovered(server: TestServer) {
    let receiver = Receiver::start().await;
    let projects = projects_path(&server).await;
    let (status, project) = server.post(&projects, json!({"name": "Shop", "slug": "shop", "status": "active"})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project = format!("{projects}/{}", project["_id"].as_str().unwrap());
    let (status, made) = server
        .post(&format!("{project}/settings/webhooks"), json!({"name": "Orders", "url": refused_url(), "events": ["order.*"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let first_secret = made["secret"].as_str().unwrap().to_owned();
    let hook = format!("{project}/settings/webhooks/{}", made["_id"].as_str().unwrap());
    let mut events = Vec::new();
    for n in 0..2 {
        let (status, event) = server.post(&format!("{project}/events"), json!({"type": "order.placed", "data": {"n": n}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}");
        events.push(event["id"].as_str().unwrap().to_owned());
    }
    // Both fail (nothing listens), after the tests' short retry schedule.
    for _ in 0..300 {
        if server.get(&format!("{hook}/deliveries?status=failed")).await.1.as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.get(&format!("{hook}/deliveries?status=failed")).await.1.as_array().unwrap().len(), 2);

    let Some(browser) = Browser::signed_in(&server).await else { return };
    let route = hook.split_once("/projects/").unwrap().1.replace("/settings/webhooks/", "/subscriptions/");
    browser.goto(&format!("#/delivery/projects/{route}")).await;
    browser.wait_for_text("Orders").await;
    browser.wait_until(&format!("{} === 2", rows_of("dl-deliveries"))).await;
    browser.wait_for_text("Connection refused").await;

    // Disable, then enable again, through the page.
    browser.click_button("Disable").await;
    browser.wait_for_text("Turned off: nothing is delivered until it is enabled.").await;
    assert_eq!(server.get(&hook).await.1["active"], false);
    browser.click_button("Enable").await;
    browser.wait_until("[...document.querySelectorAll('button')].some((b) => b.textContent.trim() === 'Disable')").await;
    assert!(!browser.text().await.contains("Turned off"));
    assert_eq!(server.get(&hook).await.1["active"], true);

    // Rotate the secret: the new one is shown once, and it is the one the API holds.
    browser.click_button("Rotate secret").await;
    browser.wait_for_text("Rotate the signing secret?").await;
    browser.fill("Old secret keeps signing for (hours)", "0").await;
    browser.click_button("Rotate now").await;
    browser.wait_for_text("New signing secret of Orders — shown this once").await;
    let secret = shown_secret(&browser).await;
    assert!(secret.starts_with("whsec_") && secret != first_secret, "{secret}");
    assert_eq!(server.get(&format!("{hook}/secret")).await.1["key"], secret.as_str());
    dismiss_secret(&browser, &secret).await;

    // The receiver is back at a new URL, edited through the page.
    browser.click_button("Edit").await;
    browser.fill("URL", &receiver.url("/ok/back")).await;
    browser.click_button("Save subscription").await;
    browser.wait_until(&format!("document.querySelector('.page-head p')?.textContent === {:?}", receiver.url("/ok/back"))).await;
    assert_eq!(server.get(&hook).await.1["url"], receiver.url("/ok/back").as_str());

    // Recover since an hour ago: both failed events are sent again, signed by the new secret.
    let since = browser
        .eval(
            "const label = [...document.querySelectorAll('label')].find((l) => l.textContent.startsWith('Since'));
             const input = document.getElementById(label.htmlFor);
             const d = new Date(Date.now() - 3600 * 1000);
             const p = (n) => String(n).padStart(2, '0');
             input.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
             input.dispatchEvent(new Event('input', {bubbles: true}));
             return input.value;",
        )
        .await;
    assert!(since.as_str().is_some_and(|s| s.len() == 16), "{since}");
    browser.click_button("Recover").await;
    browser.wait_for_text("2 events queued again.").await;
    let calls = receiver.wait_for("/ok/back", 2).await;
    let mut ids: Vec<String> = calls.iter().map(|c| c.header("webhook-id").to_owned()).collect();
    ids.sort_unstable();
    events.sort_unstable();
    assert_eq!(ids, events);
    assert!(calls.iter().all(|c| signed_by(&secret, c)), "signed by the rotated secret");
    assert!(!calls.iter().any(|c| signed_by(&first_secret, c)), "the old secret signs no more (no grace)");
    browser.wait_until(&format!("{} === 4", rows_of("dl-deliveries"))).await;
    browser
        .wait_until(
            "[...document.querySelectorAll('section[aria-labelledby=dl-deliveries] tbody td[data-label=Status] .badge')]
               .filter((b) => b.textContent === 'succeeded').length === 2",
        )
        .await;

    browser.close().await;
}

both_stores!(
    a_subscription_delivers_and_a_delivery_is_resent,
    a_subscription_is_disabled_rotated_and_recovered,
    the_organization_is_the_signed_in_clients,
);

/// The delivery screens name the signed-in client's organization in their paths. Its id is
/// kept with the session, so a reload does not ask for it again; signing out forgets it, and a
/// client of another organization then sees its own projects, not a 404 for the first one's.
async fn the_organization_is_the_signed_in_clients(server: TestServer) {
    let (status, body) = server.post(&projects_path(&server).await, json!({"name": "Shop", "slug": "shop"})).await;
    assert!(status.is_success(), "{body}");
    let other = server.wharf_cli(&["admin", "create-org", "--name", "Other Corp"]);
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/delivery/projects").await;
    browser.wait_for_text("Shop").await;
    let kept = "return JSON.parse(sessionStorage.getItem('wharf.session')).kept?.organizationId ?? null";
    let first = browser.eval(kept).await;
    assert!(first.is_string(), "the organization's id is kept with the session: {first}");

    let asked = "return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/v1/organization')).length";
    browser.eval("location.reload()").await;
    browser.wait_until("document.readyState === 'complete' && !!document.querySelector('#main .page')").await;
    browser.wait_for_text("Shop").await;
    assert_eq!(browser.eval(asked).await, 0, "a reload asked for the organization again");

    browser.click_button("Sign out").await;
    browser.wait_for_text("Sign in to Wharf").await;
    browser.sign_in(other["clientId"].as_str().unwrap(), other["clientSecret"].as_str().unwrap()).await;
    browser.goto("#/delivery/projects").await;
    browser.wait_for_text("No projects yet.").await;
    let text = browser.text().await;
    assert!(!text.contains("Shop") && !text.contains("Cannot"), "another organization's projects or an error: {text}");
    let second = browser.eval(kept).await;
    assert!(second.is_string() && second != first, "the new session keeps its own organization: {second} after {first}");
    browser.close().await;
}
