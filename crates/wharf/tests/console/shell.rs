//! The console's shell: how it is served (policy, files, errors), sign-in and sign-out, the
//! session's end, the phone layout, and that nothing is loaded from anywhere but Wharf.

use crate::common;

use common::browser::Browser;
use common::{CLIENT_ID, TestServer};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};

async fn the_console_is_served_with_a_strict_policy(server: TestServer) {
    let page = server.http.get(format!("{}/", server.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let policy = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(directive), "`{directive}` not in `{policy}`");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert!(policy.contains("style-src 'self' 'sha256-"), "the inlined stylesheet is allowed by its hash: {policy}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js">"#), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page names no other site: {html}");

    let script = server.http.get(format!("{}/console/app.js", server.base)).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()[CONTENT_TYPE].to_str().unwrap().contains("javascript"));
    let etag = script.headers()["etag"].clone();
    let again = server.http.get(format!("{}/console/app.js", server.base)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "a file the browser has is not sent again");

    for missing in
        ["/console/nope.js", "/console/..%2f..%2fCargo.toml", "/console/../../Cargo.toml", "/console/%2e%2e/index.html"]
    {
        let answer = server.http.get(format!("{}{missing}", server.base)).send().await.unwrap();
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
        assert_eq!(body["ok"], false, "{missing}: {body}");
    }
}

async fn signing_in_keeps_the_token_in_the_tab_and_signing_out_forgets_it(server: TestServer) {
    let Some(browser) = Browser::open(&server, (1280, 800)).await else { return };
    browser.wait_for_text("Sign in to Wharf").await;
    browser.assert_accessible("sign-in").await;
    browser.screenshot("sign-in").await;

    browser.sign_in_expecting_error(CLIENT_ID, "not-the-secret").await;
    browser.wait_for_text("Sign-in failed").await;

    browser.sign_in(CLIENT_ID, common::CLIENT_SECRET).await;
    browser.wait_for_text("Overview").await;
    // The stylesheet inlined in the page applies under its policy: the top bar is laid out by it.
    let top_bar = browser.eval("return getComputedStyle(document.querySelector('.topbar')).display").await;
    assert_eq!(top_bar, "flex", "the page's stylesheet did not apply");
    browser.wait_for_text(CLIENT_ID).await;
    let stored = browser.eval("return sessionStorage.getItem('wharf.session')").await;
    assert!(stored.as_str().is_some_and(|s| s.contains("token")), "the token is in the tab's storage: {stored}");
    assert_eq!(browser.eval("return document.cookie").await, "", "no cookie holds the token");
    assert_eq!(browser.eval("return localStorage.length").await, 0, "nothing outlives the tab");

    // A reload keeps the session (the same tab).
    browser.goto("#/").await;
    browser.wait_for_text("webhooks accepted per second").await;
    browser.assert_accessible("overview").await;

    // Signing out leaves the screen: the next client to sign in starts at the overview.
    browser.goto("#/catalog/blueprints").await;
    browser.wait_for_text("No blueprints yet").await;
    browser.click_button("Sign out").await;
    browser.wait_for_text("Sign in to Wharf").await;
    assert!(browser.eval("return sessionStorage.getItem('wharf.session')").await.is_null());
    assert_eq!(browser.eval("return location.hash").await, "#/");
    browser.close().await;
}

/// One session through every area: nothing loads from anywhere but Wharf, an unknown page
/// says so, and a token the server no longer accepts brings back the sign-in form.
async fn a_session_loads_only_from_wharf_and_ends_on_a_401(server: TestServer) {
    let Some(browser) = Browser::signed_in(&server).await else { return };
    for route in [
        "#/",
        "#/catalog/blueprints",
        "#/catalog/entities",
        "#/ingestion/webhooks",
        "#/delivery/projects",
        "#/act/actions",
        "#/act/runs",
        "#/act/workflows",
    ] {
        browser.goto(route).await;
        browser.wait_until("document.querySelector('#main .page')").await;
        let elsewhere = browser.requests_elsewhere().await;
        assert!(elsewhere.is_empty(), "{route} loaded from elsewhere: {elsewhere:?}");
    }

    browser.goto("#/no/such/screen").await;
    browser.wait_for_text("The console has no page at /no/such/screen.").await;
    browser.click_link("overview").await;
    browser.wait_for_text("webhooks accepted per second").await;

    // A token the server no longer accepts (as after its expiry or a key rotation).
    browser
        .eval("const s = JSON.parse(sessionStorage.getItem('wharf.session')); s.token = 'expired'; sessionStorage.setItem('wharf.session', JSON.stringify(s));")
        .await;
    browser.goto("#/catalog/blueprints").await;
    browser.wait_for_text("Your session ended: sign in again.").await;
    browser.wait_for_selector("#client-id").await;
    browser.close().await;
}

async fn on_a_phone_the_menu_opens_and_navigates(server: TestServer) {
    let Some(browser) = Browser::open(&server, (390, 844)).await else { return };
    browser.sign_in(CLIENT_ID, common::CLIENT_SECRET).await;
    let sidebar_shown = "getComputedStyle(document.getElementById('sidebar')).display !== 'none'";
    assert_eq!(browser.eval(&format!("return {sidebar_shown}")).await, false, "the menu is folded on a phone");
    browser.click_button("Menu").await;
    browser.wait_until(sidebar_shown).await;
    browser.click_link("Blueprints").await;
    browser.wait_until("location.hash === '#/catalog/blueprints'").await;
    browser.wait_until(&format!("!({sidebar_shown})")).await;
    let overflow = browser.eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the page fits the phone's width (overflow {overflow} px)");
    browser.close().await;
}

async fn the_overview_shows_the_figures_of_metrics(server: TestServer) {
    server.blueprint(serde_json::json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}})).await;
    let hook = server
        .webhook(serde_json::json!({"identifier": "hook", "title": "Hook",
            "mappings": [{"blueprint": "service", "entity": {"identifier": ".body.id", "title": ".body.id"}}]}))
        .await;
    let key = hook["webhookKey"].as_str().expect("a webhook key").to_owned();
    for i in 0..3 {
        server.ingest(&key, &serde_json::json!({"id": format!("svc-{i}")}), &[]).await;
    }
    let Some(browser) = Browser::signed_in(&server).await else { return };
    browser.goto("#/").await;
    // The figures are this process's (the suite's servers share one recorder): at least ours.
    let accepted =
        "[...document.querySelectorAll('.stat')].find((s) => s.querySelector('.label').textContent === 'accepted since start')";
    browser.wait_until(&format!("Number(({accepted}).querySelector('.value').textContent.replace(/[^0-9]/g, '')) >= 3")).await;
    browser.wait_for_text("queue depth").await;
    browser.wait_for_text("oldest due delivery waiting").await;
    // The second reading, 5 s later, turns the rates from "…" into numbers.
    browser.wait_until("![...document.querySelectorAll('.stat .value')].some((v) => v.textContent === '…')").await;
    browser.assert_accessible("overview").await;
    browser.screenshot("overview").await;
    browser.close().await;
}

both_stores!(
    the_overview_shows_the_figures_of_metrics,
    the_console_is_served_with_a_strict_policy,
    signing_in_keeps_the_token_in_the_tab_and_signing_out_forgets_it,
    a_session_loads_only_from_wharf_and_ends_on_a_401,
    on_a_phone_the_menu_opens_and_navigates,
);
