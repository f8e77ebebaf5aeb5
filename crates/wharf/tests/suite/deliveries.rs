//! Projects, their webhook subscriptions and the delivery engine (seed 004, SPEC §7 and §10),
//! through HTTP, with a real recording receiver, on both stores.

use crate::common;

use std::time::Duration;

use common::receiver::{Receiver, count_by_path, refused_url, slow_body_server};
use common::{TestServer, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf::config::Settings;
use wharf_core::network::NetworkPolicy;
use wharf_core::signing::SigningSecret;
use wharf_ids::Fresh;

/// The organization's id and a new project's path (`/organizations/{org}/projects/{id}`).
async fn project(server: &TestServer) -> String {
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let slug = format!("p-{}", wharf_ids::random_base62(8).to_lowercase());
    let (status, project) = server.post(&format!("/organizations/{org}/projects"), json!({"name": "Shop", "slug": slug})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap())
}

/// Creates a subscription; returns its path and its secret.
async fn subscribe(server: &TestServer, project: &str, doc: Value) -> (String, String) {
    let (status, webhook) = server.post(&format!("{project}/settings/webhooks"), doc).await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let path = format!("{project}/settings/webhooks/{}", webhook["_id"].as_str().unwrap());
    (path, webhook["secret"].as_str().unwrap().to_owned())
}

async fn publish(server: &TestServer, project: &str, doc: Value) -> Value {
    let (status, event) = server.post(&format!("{project}/events"), doc).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    event
}

fn verify(secret: &str, call: &common::receiver::Call) -> Result<(), wharf_core::signing::SignatureError> {
    let headers: Vec<(&str, &str)> =
        call.headers.iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default())).collect();
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
    SigningSecret::parse(secret).unwrap().verify(headers, call.body.as_bytes(), now, Some(300))
}

async fn projects_and_webhooks_are_managed(server: TestServer) {
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let projects = format!("/organizations/{org}/projects");
    let (status, created) =
        server.post(&projects, json!({"name": "Billing", "slug": "billing", "description": "Invoices"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["organization"], org.as_str());
    let id = created["_id"].as_str().unwrap().to_owned();
    assert!(wharf_core::ids::is_object_id(&id));
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    let project = format!("{projects}/{id}");

    // Ids are accepted in either case; malformed ids are 400, unknown ones 404, another
    // organization's 403.
    assert_eq!(server.get(&format!("{projects}/{}", id.to_uppercase())).await.1["_id"], id.as_str());
    assert_error(&server.get(&format!("{projects}/not-an-id")).await, StatusCode::BAD_REQUEST, "24 hex");
    assert_error(&server.get(&format!("{projects}/{}", "0".repeat(24))).await, StatusCode::NOT_FOUND, "does not exist");
    assert_error(
        &server.get(&format!("/organizations/{}/projects", "a".repeat(24))).await,
        StatusCode::FORBIDDEN,
        "organization",
    );
    assert_error(&server.get("/organizations/xyz/projects").await, StatusCode::BAD_REQUEST, "24 hex");

    // Validation names the field.
    assert_error(
        &server.post(&projects, json!({"name": "B", "slug": "b-2"})).await,
        StatusCode::BAD_REQUEST,
        "`name` must be 2 to 100",
    );
    assert_error(&server.post(&projects, json!({"name": "Bee", "slug": "Bee"})).await, StatusCode::BAD_REQUEST, "slug");
    assert_error(&server.post(&projects, json!({"name": "Bee", "slug": "billing"})).await, StatusCode::CONFLICT, "billing");
    assert_error(
        &server.post(&projects, json!({"name": "Bee", "slug": "bee", "colour": 1})).await,
        StatusCode::BAD_REQUEST,
        "colour",
    );
    let (status, patched) = server.patch(&project, json!({"status": "active", "description": null})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["status"], "active");
    assert!(patched.get("description").is_none(), "{patched}");
    assert_eq!(server.get(&projects).await.1.as_array().unwrap().len(), 1);

    // Webhooks.
    let hooks = format!("{project}/settings/webhooks");
    let doc =
        json!({"name": "Invoices", "url": "https://example.com/hook", "headers": {"x-team": "billing"}, "events": ["invoice.*"]});
    let (status, webhook) = server.post(&hooks, doc).await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    assert_eq!(webhook["active"], true);
    assert!(webhook["secret"].as_str().unwrap().starts_with("whsec_"));
    let hook = format!("{hooks}/{}", webhook["_id"].as_str().unwrap());
    let (_, listed) = server.get(&hooks).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("secret").is_none(), "secrets are not listed: {listed}");
    assert!(server.get(&hook).await.1.get("secret").is_none());
    assert_eq!(server.get(&format!("{hook}/secret")).await.1["key"], webhook["secret"]);
    for (doc, part) in [
        (json!({"url": "https://x.example", "events": ["a"]}), "`name` is required"),
        (json!({"name": "n", "events": ["a"]}), "`url` is required"),
        (json!({"name": "n", "url": "https://x.example"}), "`events` is required"),
        (json!({"name": "n", "url": "https://x.example", "events": []}), "at least one"),
        (json!({"name": "n", "url": "ftp://x.example", "events": ["a"]}), "http:// or https://"),
        (json!({"name": "n", "url": "https://x.example", "events": ["a..b"]}), "events[0]"),
        (json!({"name": "n", "url": "https://x.example", "events": ["a"], "headers": {"x": 1}}), "headers.x"),
    ] {
        assert_error(&server.post(&hooks, doc).await, StatusCode::BAD_REQUEST, part);
    }
    let (status, patched) = server.patch(&hook, json!({"active": false, "events": ["*"]})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!((patched["active"].clone(), patched["events"].clone()), (json!(false), json!(["*"])));
    assert_eq!(patched["name"], "Invoices");
    assert_error(&server.get(&format!("{hooks}/{}", "f".repeat(24))).await, StatusCode::NOT_FOUND, "does not exist");
    assert_error(&server.get(&format!("{hooks}/nope")).await, StatusCode::BAD_REQUEST, "24 hex");
    assert_eq!(server.delete(&hook).await.0, StatusCode::NO_CONTENT);
    assert_eq!(server.get(&hook).await.0, StatusCode::NOT_FOUND);
    assert_eq!(server.delete(&project).await.0, StatusCode::NO_CONTENT);
    assert_eq!(server.get(&project).await.0, StatusCode::NOT_FOUND);
}

async fn published_events_are_signed_and_delivered(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (_, secret) = subscribe(
        &server,
        &project,
        json!({"name": "all", "url": receiver.url("/ok/all"), "headers": {"x-team": "billing"}, "events": ["*"]}),
    )
    .await;
    let data = json!({"invoice": "in_1", "amount": 1200, "url": "https://shop.example/in/1", "customer": "Zoë"});
    let event = publish(&server, &project, json!({"type": "invoice.paid", "data": data, "id": "evt-1"})).await;
    assert_eq!(event["id"], "evt-1");
    assert_eq!(event["deliveries"], 1);
    let calls = receiver.wait_for("/ok/all", 1).await;
    let call = &calls[0];
    // The exact body: compact, keys in order, integers as integers, `/` and non-ASCII as is.
    let expected = format!(
        r#"{{"type":"invoice.paid","timestamp":"{}","data":{{"invoice":"in_1","amount":1200,"url":"https://shop.example/in/1","customer":"Zoë"}}}}"#,
        event["timestamp"].as_str().unwrap()
    );
    assert_eq!(call.body, expected);
    assert_eq!(call.header("webhook-id"), "evt-1");
    assert_eq!(call.header("content-type"), "application/json");
    assert_eq!(call.header("x-team"), "billing");
    assert!(call.header("user-agent").starts_with("Wharf"));
    verify(&secret, call).expect("the signature verifies with the webhook's secret");
    assert!(verify(&SigningSecret::generate().expose(), call).is_err());

    // Publishing is idempotent by id.
    assert_error(
        &server.post(&format!("{project}/events"), json!({"type": "invoice.paid", "data": {}, "id": "evt-1"})).await,
        StatusCode::CONFLICT,
        "evt-1",
    );
    assert_error(
        &server.post(&format!("{project}/events"), json!({"type": "a b", "data": {}})).await,
        StatusCode::BAD_REQUEST,
        "type",
    );
    assert_error(&server.post(&format!("{project}/events"), json!({"type": "a"})).await, StatusCode::BAD_REQUEST, "data");

    // The delivery log.
    let hooks = server.get(&format!("{project}/settings/webhooks")).await.1;
    let webhook = format!("{project}/settings/webhooks/{}", hooks[0]["_id"].as_str().unwrap());
    let delivery = server.settled_delivery(&webhook).await;
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    assert_eq!((delivery["eventId"].clone(), delivery["eventType"].clone()), (json!("evt-1"), json!("invoice.paid")));
    let tries = server.delivery_attempts(&webhook, &delivery).await;
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0]["statusCode"], 200);
    assert_eq!(tries[0]["outcome"], "success");
    assert_eq!(tries[0]["responseBody"], "{\"received\":true}");
    assert_eq!(tries[0]["responseHeaders"]["content-type"], "application/json");
    // One delivery, with the body its attempts sent.
    let (status, one) = server.get(&format!("{webhook}/deliveries/{}", delivery["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["id"].clone(), one["status"].clone()), (delivery["id"].clone(), json!("succeeded")));
    assert_eq!(one["payload"], serde_json::from_str::<Value>(&call.body).unwrap(), "the body the receiver got");
    assert_error(&server.get(&format!("{webhook}/deliveries/dlv_nope")).await, StatusCode::NOT_FOUND, "dlv_nope");

    // Metrics.
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    for name in ["wharf_delivery_attempts_total", "wharf_delivery_latency_seconds", "wharf_delivery_queue_depth"] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Latency is a Prometheus histogram with buckets (aggregatable across nodes), not a summary.
    assert!(metrics.contains("wharf_delivery_latency_seconds_bucket{le=\"0.005\"}"), "{metrics}");

    // A publish is read from its bytes; `data` goes out compact whatever its layout and
    // escapes, as it would from a parsed value.
    let pretty =
        "{\n  \"type\": \"invoice.paid\",\n  \"id\": \"evt-2\",\n  \"data\": { \"name\": \"caf\\u00e9\", \"n\": 1e2 }\n}";
    let (status, event) = server.post_text(&format!("{project}/events"), pretty).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    let calls = receiver.wait_for("/ok/all", 2).await;
    let expected = format!(
        r#"{{"type":"invoice.paid","timestamp":"{}","data":{{"name":"café","n":100.0}}}}"#,
        event["timestamp"].as_str().unwrap()
    );
    assert_eq!(calls[1].body, expected);
    // A repeated key takes the other path and keeps its last value, as any parsed document.
    let repeated = r#"{"type": "x.y", "type": "invoice.paid", "data": {}, "id": "evt-3"}"#;
    let (status, event) = server.post_text(&format!("{project}/events"), repeated).await;
    assert_eq!((status, event["type"].clone()), (StatusCode::ACCEPTED, json!("invoice.paid")), "{event}");
    let broken = server.post_text(&format!("{project}/events"), r#"{"type": "a.b", "data": {"x": }}"#).await;
    assert_error(&broken, StatusCode::BAD_REQUEST, "not valid JSON");
    let broken = server.post_text(&format!("{project}/events"), r#"["not", "an", "object"]"#).await;
    assert_error(&broken, StatusCode::BAD_REQUEST, "must be a JSON object");
}

async fn event_types_pick_the_webhooks(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    for (name, events) in [
        ("invoices", json!(["invoice.*"])),
        ("everything", json!(["*"])),
        ("orders", json!(["order.created"])),
        ("exact", json!(["invoice.paid"])),
    ] {
        subscribe(&server, &project, json!({"name": name, "url": receiver.url(&format!("/ok/{name}")), "events": events})).await;
    }
    let (inactive, _) = subscribe(
        &server,
        &project,
        json!({"name": "inactive", "url": receiver.url("/ok/inactive"), "events": ["*"], "active": false}),
    )
    .await;
    let other = self::project(&server).await;
    subscribe(&server, &other, json!({"name": "other", "url": receiver.url("/ok/other"), "events": ["*"]})).await;

    assert_eq!(publish(&server, &project, json!({"type": "invoice.paid", "data": {}})).await["deliveries"], 3);
    assert_eq!(publish(&server, &project, json!({"type": "invoice.paid.late", "data": {}})).await["deliveries"], 1);
    assert_eq!(publish(&server, &project, json!({"type": "order.created", "data": {}})).await["deliveries"], 2);
    receiver.wait_for("/ok/everything", 3).await;
    receiver.wait_for("/ok/orders", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = count_by_path(&receiver.all());
    assert_eq!(counts.get("/ok/invoices"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("/ok/exact"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("/ok/everything"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("/ok/inactive"), None, "inactive webhooks receive nothing");
    assert_eq!(counts.get("/ok/other"), None, "other projects receive nothing");
    // Re-activated, it receives what is published next.
    server.patch(&inactive, json!({"active": true})).await;
    publish(&server, &project, json!({"type": "x.y", "data": {}})).await;
    receiver.wait_for("/ok/inactive", 1).await;
}

async fn failures_are_retried_and_recorded(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (slow_body, _) = slow_body_server().await;
    let targets = [
        ("flaky", receiver.url("/flaky/1")),
        ("busy", receiver.url("/busy/1")),
        ("refused", refused_url()),
        ("timeout", receiver.url("/slow/1")),
        ("slow-body", slow_body),
        ("redirect", receiver.url("/redirect/1")),
        ("failing", receiver.url("/fail/1")),
    ];
    let mut hooks = Vec::new();
    for (name, url) in &targets {
        let events = json!([format!("test.{name}")]);
        hooks.push(subscribe(&server, &project, json!({"name": name, "url": url, "events": events})).await.0);
    }
    for (name, _) in &targets {
        publish(&server, &project, json!({"type": format!("test.{name}"), "data": {"n": 1}})).await;
    }
    let mut results = std::collections::HashMap::new();
    for ((name, _), hook) in targets.iter().zip(&hooks) {
        let delivery = server.settled_delivery(hook).await;
        let tries = server.delivery_attempts(hook, &delivery).await;
        results.insert(*name, (delivery, tries));
    }
    let outcomes = |name: &str| results[name].1.iter().map(|a| a["outcome"].as_str().unwrap().to_owned()).collect::<Vec<_>>();

    // 5xx, then success on the retry.
    assert_eq!(results["flaky"].0["status"], "succeeded");
    assert_eq!(outcomes("flaky"), ["server_error", "success"]);
    assert_eq!(results["flaky"].1[0]["responseBody"], "try again");
    let flaky = receiver.calls("/flaky/1");
    assert_eq!(flaky[0].header("webhook-id"), flaky[1].header("webhook-id"), "a retry carries the same webhook-id");
    // 429 with Retry-After: 1 (clamped to [1×, 2×] of the 100 ms step, and at least the
    // 300 ms floor of this test's settings), then success.
    assert_eq!(outcomes("busy"), ["rate_limited", "success"]);
    let busy = receiver.calls("/busy/1");
    assert!(busy[1].at - busy[0].at >= Duration::from_millis(300), "{:?}", busy[1].at - busy[0].at);
    // Connection refused: every attempt of the schedule (1 + 2 retries), then failed.
    assert_eq!(results["refused"].0["status"], "failed");
    assert_eq!(outcomes("refused"), ["connection_error"; 3]);
    assert!(results["refused"].1[0]["error"].as_str().unwrap().contains("connect"), "{:?}", results["refused"].1[0]);
    // Timeouts: no answer within 1 s, or an answer whose body never ends.
    assert_eq!(outcomes("timeout"), ["timeout"; 3]);
    assert_eq!(outcomes("slow-body"), ["timeout"; 3]);
    assert_eq!(results["slow-body"].1[0]["statusCode"], 200);
    assert!(results["slow-body"].1[0]["error"].as_str().unwrap().contains("body"));
    // Redirects are failures, recorded with their Location, never followed.
    assert_eq!(outcomes("redirect"), ["redirect"; 3]);
    assert_eq!(results["redirect"].1[0]["statusCode"], 302);
    assert!(results["redirect"].1[0]["error"].as_str().unwrap().contains("/ok/redirected"));
    assert!(receiver.calls("/ok/redirected").is_empty(), "the redirect was followed");
    // Every attempt is recorded with its time and duration.
    assert_eq!(results["failing"].0["attempts"], 3);
    assert_eq!(results["failing"].0["lastStatusCode"], 500);
    for attempt in &results["failing"].1 {
        assert!(attempt["attemptedAt"].is_string() && attempt["durationMs"].is_number(), "{attempt}");
    }
    // A webhook failing for less than the disable threshold (5 days) stays active.
    assert_eq!(server.get(&hooks[6]).await.1["active"], true);
}

async fn gone_disables_the_webhook(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (hook, _) = subscribe(&server, &project, json!({"name": "gone", "url": receiver.url("/gone/1"), "events": ["*"]})).await;
    publish(&server, &project, json!({"type": "a.b", "data": {}})).await;
    let delivery = server.settled_delivery(&hook).await;
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts"], 1, "410 is not retried");
    let webhook = server.get(&hook).await.1;
    assert_eq!(webhook["active"], false, "{webhook}");
    assert!(webhook["disabledReason"].as_str().unwrap().contains("410"), "{webhook}");
    assert_eq!(publish(&server, &project, json!({"type": "a.b", "data": {}})).await["deliveries"], 0);
    // Re-enabling clears the reason.
    let webhook = server.patch(&hook, json!({"active": true})).await.1;
    assert!(webhook.get("disabledReason").is_none(), "{webhook}");
}

fn disable_quickly(settings: &mut Settings) {
    settings.delivery.disable_after = Duration::ZERO;
}

async fn failing_webhooks_are_disabled_with_a_reason(server: TestServer) {
    let project = project(&server).await;
    let (hook, _) = subscribe(&server, &project, json!({"name": "down", "url": refused_url(), "events": ["*"]})).await;
    publish(&server, &project, json!({"type": "a.b", "data": {}})).await;
    assert_eq!(server.settled_delivery(&hook).await["status"], "failed");
    for _ in 0..100 {
        if server.get(&hook).await.1["active"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let webhook = server.get(&hook).await.1;
    assert_eq!(webhook["active"], false, "{webhook}");
    let reason = webhook["disabledReason"].as_str().unwrap();
    assert!(reason.contains("failing since") && reason.contains("connect"), "{reason}");
}

fn guard_on(settings: &mut Settings) {
    settings.delivery.network = NetworkPolicy::default();
}

async fn private_addresses_are_blocked_by_default(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    let urls = [
        ("name", format!("http://localhost:{port}/ok/name")),
        ("literal", format!("http://127.0.0.1:{port}/ok/literal")),
        ("decimal", format!("http://2130706433:{port}/ok/decimal")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}/ok/mapped")),
    ];
    for (name, url) in &urls {
        let (hook, _) = subscribe(&server, &project, json!({"name": name, "url": url, "events": [format!("t.{name}")]})).await;
        publish(&server, &project, json!({"type": format!("t.{name}"), "data": {}})).await;
        let delivery = server.settled_delivery(&hook).await;
        let tries = server.delivery_attempts(&hook, &delivery).await;
        assert_eq!(tries[0]["outcome"], "blocked", "{name}: {:?}", tries[0]);
        let error = tries[0]["error"].as_str().unwrap();
        assert!(error.contains("127.0.0.1") && error.contains("--allow-network"), "{name}: {error}");
    }
    assert!(receiver.all().is_empty(), "a blocked address was reached: {:?}", receiver.all());
}

async fn allowed_networks_are_reachable(server: TestServer) {
    // The default test settings allow 127.0.0.0/8: the same URLs arrive.
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    for (name, url) in
        [("name", format!("http://localhost:{port}/ok/name")), ("decimal", format!("http://2130706433:{port}/ok/decimal"))]
    {
        subscribe(&server, &project, json!({"name": name, "url": url, "events": ["*"]})).await;
    }
    publish(&server, &project, json!({"type": "a.b", "data": {}})).await;
    receiver.wait_for("/ok/name", 1).await;
    receiver.wait_for("/ok/decimal", 1).await;
}

async fn rotation_signs_with_both_keys(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (hook, old) = subscribe(&server, &project, json!({"name": "r", "url": receiver.url("/ok/r"), "events": ["*"]})).await;
    let (status, rotated) = server.post(&format!("{hook}/secret/rotate"), json!({"gracePeriodSeconds": 3600})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(server.get(&format!("{hook}/secret")).await.1["key"], new.as_str());
    publish(&server, &project, json!({"type": "a.b", "data": {"n": 1}})).await;
    let call = receiver.wait_for("/ok/r", 1).await.remove(0);
    assert_eq!(call.header("webhook-signature").split(' ').count(), 2, "{}", call.header("webhook-signature"));
    verify(&new, &call).expect("the new key verifies");
    verify(&old, &call).expect("the old key verifies during the grace period");

    // A rotation with no grace period, to a key the caller chose, revokes every old key: only
    // the chosen one signs.
    let chosen = SigningSecret::generate().expose();
    let (status, rotated) = server.post(&format!("{hook}/secret/rotate"), json!({"key": chosen, "gracePeriodSeconds": 0})).await;
    assert_eq!((status, rotated["key"].as_str().unwrap()), (StatusCode::OK, chosen.as_str()));
    publish(&server, &project, json!({"type": "a.b", "data": {"n": 2}})).await;
    let call = receiver.wait_for("/ok/r", 2).await.remove(1);
    verify(&chosen, &call).expect("the chosen key verifies");
    assert_eq!(call.header("webhook-signature").split(' ').count(), 1);
    assert!(verify(&new, &call).is_err() && verify(&old, &call).is_err(), "a revoked key still signs");
    assert_error(
        &server.post(&format!("{hook}/secret/rotate"), json!({"gracePeriodSeconds": -1})).await,
        StatusCode::BAD_REQUEST,
        "gracePeriodSeconds",
    );
    assert_error(&server.post(&format!("{hook}/secret/rotate"), json!({"key": "whsec_"})).await, StatusCode::BAD_REQUEST, "key");
}

async fn resend_and_recover(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (hook, _) = subscribe(&server, &project, json!({"name": "down", "url": refused_url(), "events": ["*"]})).await;
    let since = wharf_core::time::Timestamp::from_millis(wharf_engine::now().millis() - 1000).to_iso();
    for n in 0..3 {
        publish(&server, &project, json!({"type": "a.b", "data": {"n": n}, "id": format!("e{n}")})).await;
    }
    for _ in 0..200 {
        let list = server.get(&format!("{hook}/deliveries?status=failed")).await.1;
        if list.as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = server.get(&format!("{hook}/deliveries?status=failed")).await.1;
    assert_eq!(failed.as_array().unwrap().len(), 3, "{failed}");
    server.patch(&hook, json!({"url": receiver.url("/ok/back")})).await;

    // Resend one: a new delivery, tried once, with the same webhook-id.
    let (status, resent) =
        server.post(&format!("{hook}/deliveries/{}/resend", failed[0]["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
    assert_eq!(resent["manual"], true);
    let call = receiver.wait_for("/ok/back", 1).await.remove(0);
    assert_eq!(call.header("webhook-id"), failed[0]["eventId"].as_str().unwrap());
    assert_error(&server.post(&format!("{hook}/deliveries/dlv_nope/resend"), json!({})).await, StatusCode::NOT_FOUND, "dlv_nope");

    // An event's deliveries: the resend, then the first, and nothing of the other events.
    let event = failed[0]["eventId"].as_str().unwrap();
    let of_event = server.get(&format!("{hook}/deliveries?eventId={event}")).await.1;
    let ids: Vec<&Value> = of_event.as_array().unwrap().iter().map(|d| &d["id"]).collect();
    assert_eq!(ids, [&resent["id"], &failed[0]["id"]], "{of_event}");
    assert!(of_event.as_array().unwrap().iter().all(|d| d["eventId"] == event), "{of_event}");
    let failed_of_event = server.get(&format!("{hook}/deliveries?eventId={event}&status=failed")).await.1;
    assert_eq!(failed_of_event.as_array().unwrap().len(), 1, "{failed_of_event}");
    assert_eq!(server.get(&format!("{hook}/deliveries?eventId=e-none")).await.1, json!([]));

    // Recover: every event whose deliveries in the window all failed is sent again, once.
    let (status, recovered) = server.post(&format!("{hook}/recover"), json!({"since": since})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{recovered}");
    assert_eq!(recovered["recovered"], 2, "the resent event has a succeeded delivery");
    let calls = receiver.wait_for("/ok/back", 3).await;
    let mut ids: Vec<&str> = calls.iter().map(|c| c.header("webhook-id")).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["e0", "e1", "e2"]);
    assert_error(&server.post(&format!("{hook}/recover"), json!({})).await, StatusCode::BAD_REQUEST, "since");
}

async fn catalog_changes_are_system_events(mut server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (_, secret) =
        subscribe(&server, &project, json!({"name": "services", "url": receiver.url("/ok/svc"), "events": ["entity.service.*"]}))
            .await;
    server
        .blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {"tier": {"type": "string"}}}}))
        .await;
    server.blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {}}})).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"tier": "gold"}})).await;
    server.upsert("team", json!({"identifier": "core"})).await;
    server.upsert("service", json!({"identifier": "api", "properties": {"tier": "silver"}})).await;
    assert_eq!(server.delete("/v1/blueprints/service/entities/api").await.0, StatusCode::OK);
    // Deliveries of one webhook run concurrently, so they may arrive in any order (as with
    // Svix); each carries its own type.
    let calls = receiver.wait_for("/ok/svc", 3).await;
    let bodies: Vec<Value> = calls.iter().map(|c| serde_json::from_str(&c.body).unwrap()).collect();
    let mut types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(types, ["entity.service.created", "entity.service.deleted", "entity.service.updated"]);
    let updated = bodies.iter().find(|b| b["type"] == "entity.service.updated").unwrap();
    assert_eq!(updated["data"]["diff"]["before"]["properties"]["tier"], "gold", "{updated}");
    assert_eq!(updated["data"]["diff"]["after"]["properties"]["tier"], "silver", "{updated}");
    verify(&secret, &calls[0]).unwrap();
    // Across a restart nothing is routed twice.
    server.restart().await;
    server.upsert("service", json!({"identifier": "web"})).await;
    let calls = receiver.wait_for("/ok/svc", 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.calls("/ok/svc").len(), 4, "{calls:?}");
    let ids: std::collections::HashSet<&str> = calls.iter().map(|c| c.header("webhook-id")).collect();
    assert_eq!(ids.len(), 4);
}

/// A run's changes are system events too (`run.<action>.created|updated`), their data the
/// run change's event object; a subscription receives only the actions it names.
async fn run_changes_are_system_events(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    subscribe(&server, &project, json!({"name": "deploys", "url": receiver.url("/ok/deploys"), "events": ["run.deploy.*"]}))
        .await;
    for identifier in ["deploy", "other"] {
        server
            .create_action(json!({
                "identifier": identifier, "title": identifier, "trigger": {"type": "self-service", "operation": "CREATE"},
                "invocationMethod": {"type": "WEBHOOK", "url": receiver.url(&format!("/ok/backend-{identifier}"))}
            }))
            .await;
    }
    let other = server.start_run("other", json!({"properties": {}})).await;
    let run = server.start_run("deploy", json!({"properties": {}})).await;
    let id = run["id"].as_str().unwrap();
    receiver.wait_for("/ok/backend-deploy", 1).await;
    let (status, patched) =
        server.patch(&format!("/v1/actions/runs/{id}"), json!({"status": "SUCCESS", "summary": "done"})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let calls = receiver.wait_for("/ok/deploys", 2).await;
    let bodies: Vec<Value> = calls.iter().map(|c| serde_json::from_str(&c.body).unwrap()).collect();
    let created = bodies.iter().find(|b| b["type"] == "run.deploy.created").expect("run.deploy.created");
    let updated = bodies.iter().find(|b| b["type"] == "run.deploy.updated").expect("run.deploy.updated");
    assert_eq!(created["data"]["resourceType"], "run", "{created}");
    assert_eq!(created["data"]["diff"]["after"]["id"], id, "{created}");
    assert_eq!(updated["data"]["diff"]["before"]["status"], "IN_PROGRESS", "{updated}");
    assert_eq!(updated["data"]["diff"]["after"]["status"], "SUCCESS", "{updated}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = receiver
        .calls("/ok/deploys")
        .iter()
        .map(|c| serde_json::from_str::<Value>(&c.body).unwrap()["data"]["diff"]["after"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [id, id], "`other`'s run ({}) is not sent", other["id"]);
}

async fn failed_ingestion_is_a_system_event(server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    subscribe(&server, &project, json!({"name": "ops", "url": receiver.url("/ok/ops"), "events": ["webhook.*.failed"]})).await;
    server.blueprint(json!({"identifier": "order", "title": "Order", "schema": {"properties": {"n": {"type": "number"}}}})).await;
    let webhook = server
        .webhook(json!({"identifier": "shop", "title": "Shop", "mappings": [
            {"blueprint": "order", "entity": {"identifier": ".body.id", "properties": {"n": ".body.n"}}}]}))
        .await;
    let key = webhook["webhookKey"].as_str().unwrap();
    let good = server.ingest(key, &json!({"id": "o1", "n": 1}), &[]).await;
    let bad = server.ingest(key, &json!({"id": "o2", "n": "not a number"}), &[]).await;
    assert_eq!(server.mapped_event("shop", &good).await["status"], "SUCCESS");
    assert_eq!(server.mapped_event("shop", &bad).await["status"], "FAILURE");
    let call = receiver.wait_for("/ok/ops", 1).await.remove(0);
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["type"], "webhook.shop.failed", "{body}");
    assert_eq!(body["data"]["eventId"], bad.as_str(), "{body}");
    assert_eq!(body["data"]["result"]["status"], "FAILURE", "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.calls("/ok/ops").len(), 1, "only the failed event is published");
}

async fn a_clean_restart_sends_nothing_twice(mut server: TestServer) {
    let receiver = Receiver::start().await;
    let project = project(&server).await;
    let (hook, _) =
        subscribe(&server, &project, json!({"name": "slow", "url": receiver.url("/slowish/1"), "events": ["*"]})).await;
    for n in 0..20 {
        publish(&server, &project, json!({"type": "a.b", "data": {}, "id": format!("e{n}")})).await;
    }
    // Each delivery takes 300 ms: the stop waits for those in flight and for their attempts
    // to be written, so none is left leased to be sent again after the restart.
    server.restart().await;
    receiver.wait_for("/slowish/1", 20).await;
    tokio::time::sleep(Duration::from_secs(8)).await; // longer than a lease (2 × 1 s + 5 s)
    let calls = receiver.calls("/slowish/1");
    assert_eq!(calls.len(), 20, "a delivery was sent twice");
    let list = server.get(&format!("{hook}/deliveries")).await.1;
    assert!(list.as_array().unwrap().iter().all(|d| d["status"] == "succeeded" && d["attempts"] == 1), "{list}");
}

both_stores!(
    a_clean_restart_sends_nothing_twice,
    failed_ingestion_is_a_system_event,
    projects_and_webhooks_are_managed,
    published_events_are_signed_and_delivered,
    event_types_pick_the_webhooks,
    failures_are_retried_and_recorded,
    gone_disables_the_webhook,
    allowed_networks_are_reachable,
    rotation_signs_with_both_keys,
    resend_and_recover,
    catalog_changes_are_system_events,
    run_changes_are_system_events,
);

mod disabling {
    use super::*;
    both_stores!(configure = disable_quickly; failing_webhooks_are_disabled_with_a_reason);
}

mod guard {
    use super::*;
    both_stores!(configure = guard_on; private_addresses_are_blocked_by_default);
}
