//! The server's edges: deliveries to Wharf itself, and the connections it accepts (timeouts,
//! the connection cap), through real sockets.

use crate::common;

use std::time::Duration;

use common::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf::config::Settings;

/// The organization's id and a new project's path.
async fn project(server: &TestServer) -> String {
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let (status, project) = server.post(&format!("/organizations/{org}/projects"), json!({"name": "Loop", "slug": "loop"})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap())
}

async fn subscribe(server: &TestServer, project: &str, url: &str) -> String {
    let (status, webhook) =
        server.post(&format!("{project}/settings/webhooks"), json!({"name": "self", "url": url, "events": ["*"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    format!("{project}/settings/webhooks/{}", webhook["_id"].as_str().unwrap())
}

/// An ingestion webhook without mappings: its event log shows what reached it.
async fn ingest_url(server: &TestServer) -> String {
    let hook = server.webhook(json!({"identifier": "inbox", "title": "Inbox", "mappings": []})).await;
    format!("{}/ingest/{}", server.base, hook["webhookKey"].as_str().unwrap())
}

async fn inbox_events(server: &TestServer) -> usize {
    let (status, events) = server.get("/v1/webhooks/inbox/events").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events["events"].as_array().unwrap().len()
}

/// A subscription pointed at Wharf's own ingest URL (its listen address, which the test's
/// `--allow-network 127.0.0.0/8` would otherwise let through) or at its public URL gets failed
/// attempts that name the flag; nothing is ingested.
async fn deliveries_to_wharf_itself_are_refused(server: TestServer) {
    let url = ingest_url(&server).await;
    let project = project(&server).await;
    let own = subscribe(&server, &project, &url).await;
    let public = subscribe(&server, &project, "https://hooks.wharf.example/ingest/anything").await;
    let (status, event) = server.post(&format!("{project}/events"), json!({"type": "order.paid", "data": {"n": 1}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    for webhook in [&own, &public] {
        let delivery = server.settled_delivery(webhook).await;
        assert_eq!(delivery["status"], "failed", "{delivery}");
        let attempts = server.delivery_attempts(webhook, &delivery).await;
        assert!(!attempts.is_empty());
        for attempt in &attempts {
            let error = attempt["error"].as_str().unwrap_or_default();
            assert!(error.contains("Wharf's own address") && error.contains("--allow-self-delivery"), "{attempt}");
            assert!(attempt["statusCode"].is_null(), "{attempt}");
        }
    }
    assert_eq!(inbox_events(&server).await, 0, "nothing reached the ingest endpoint");
}

fn public_url(settings: &mut Settings) {
    settings.public_url = Some("https://hooks.wharf.example".into());
}

/// With `--allow-self-delivery`, the same subscription delivers to Wharf's ingest endpoint.
async fn self_delivery_is_allowed_by_the_flag(server: TestServer) {
    let url = ingest_url(&server).await;
    let project = project(&server).await;
    let own = subscribe(&server, &project, &url).await;
    let (status, event) = server.post(&format!("{project}/events"), json!({"type": "order.paid", "data": {"n": 1}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    let delivery = server.settled_delivery(&own).await;
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    assert_eq!(inbox_events(&server).await, 1);
}

fn allow_self_delivery(settings: &mut Settings) {
    settings.edge.allow_self_delivery = true;
}

/// With self-delivery allowed, a subscription to every event, pointed at an ingest URL whose
/// mapping changes an entity, is a loop: each change is delivered, ingested and mapped into
/// the next change. The sixth request of the chain is refused (508 with the reason, in the
/// subscription's attempt log), so exactly five events are ingested.
async fn a_delivery_loop_is_cut_after_five_hops(server: TestServer) {
    server
        .blueprint(json!({"identifier": "thing", "title": "Thing", "schema": {"properties": {"via": {"type": "string"}}}}))
        .await;
    let hook = server
        .webhook(json!({"identifier": "inbox", "title": "Inbox", "mappings": [{
            "blueprint": "thing",
            "entity": {"identifier": "\"t1\"", "properties": {"via": ".headers[\"webhook-id\"]"}}}]}))
        .await;
    let url = format!("{}/ingest/{}", server.base, hook["webhookKey"].as_str().unwrap());
    let project = project(&server).await;
    let subscription = subscribe(&server, &project, &url).await;
    server.upsert("thing", json!({"identifier": "t1", "properties": {"via": "api"}})).await;

    let mut refused = None;
    for _ in 0..400 {
        let (_, deliveries) = server.get(&format!("{subscription}/deliveries")).await;
        if let Some(failed) = deliveries.as_array().unwrap().iter().find(|d| d["status"] == "failed") {
            refused = Some(failed.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("a delivery of the loop was refused");
    let attempts = server.delivery_attempts(&subscription, &refused).await;
    for attempt in &attempts {
        assert_eq!(attempt["statusCode"], 508, "{attempt}");
        let body = attempt["responseBody"].as_str().unwrap_or_default();
        assert!(body.contains("loop_detected") && body.contains("after 5 hops"), "{body}");
    }
    assert_eq!(inbox_events(&server).await, 5, "five hops were ingested, the sixth refused");
    let (_, deliveries) = server.get(&format!("{subscription}/deliveries")).await;
    assert_eq!(deliveries.as_array().unwrap().len(), 6, "{deliveries}");
    let (_, thing) = server.get("/v1/blueprints/thing/entities/t1").await;
    assert!(thing["entity"]["properties"]["via"].as_str().unwrap().starts_with("chg_"), "{thing}");
}

mod refused {
    use super::*;
    both_stores!(configure = public_url; deliveries_to_wharf_itself_are_refused);
}

mod allowed {
    use super::*;
    both_stores!(configure = allow_self_delivery; self_delivery_is_allowed_by_the_flag, a_delivery_loop_is_cut_after_five_hops);
}

/// Reads until the server closes the connection; what it sent first. Panics if it stays open
/// for 10 s (the timeouts under test are a fraction of that).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open; it sent {:?}", String::from_utf8_lossy(&received));
    String::from_utf8_lossy(&received).into_owned()
}

async fn server_with(configure: impl FnOnce(&mut Settings)) -> TestServer {
    TestServer::start_with(Backend::Sqlite, configure).await.expect("sqlite")
}

/// A connection that sends nothing, and one that sends half a request head (slow-loris), are
/// closed by the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_headers_are_cut_off() {
    let server = server_with(|s| {
        s.edge.connections.header_read_timeout = Duration::from_millis(300);
        s.edge.connections.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut silent = TcpStream::connect(server.server().addr()).await.unwrap();
    read_until_closed(&mut silent).await;

    let mut loris = TcpStream::connect(server.server().addr()).await.unwrap();
    loris.write_all(b"GET /healthz HTTP/1.1\r\nHost: wharf\r\nX-Slow: ").await.unwrap();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Trickling more bytes does not buy more time.
        if loris.write_all(b"a").await.is_err() {
            break;
        }
    }
    let answer = read_until_closed(&mut loris).await;
    assert!(!answer.contains("200 OK"), "{answer}");

    // A kept-alive connection that sends no next request is closed the same way; the first
    // request was answered.
    let mut kept = TcpStream::connect(server.server().addr()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: wharf\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A request whose body stops half-way is closed by the idle timeout (the header timeout is
/// long here, so only the idle timeout can close it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off() {
    let server = server_with(|s| {
        s.edge.connections.header_read_timeout = Duration::from_secs(60);
        s.edge.connections.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(server.server().addr()).await.unwrap();
    let head = format!(
        "POST /v1/blueprints HTTP/1.1\r\nHost: wharf\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"identifier\"",
        server.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("201"), "{answer}");
    // On a new connection: the harness's pooled one (from the token request) sat idle past the
    // 300 ms too, and the server may close it just as the client reuses it.
    let answer =
        common::http().get(format!("{}/v1/blueprints", server.base)).bearer_auth(&server.token).send().await.expect("an answer");
    assert_eq!(answer.status(), StatusCode::OK, "the server still answers");
}

/// Past `--max-connections` a new connection is told why (503, Port's error body,
/// `Connection: close`) and closed; once connections close, new ones are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_with_503() {
    let server = server_with(|s| s.edge.connections.max_connections = 2).await;
    let addr = server.server().addr();
    let held: Vec<TcpStream> = vec![TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
    let mut refused = TcpStream::connect(addr).await.unwrap();
    refused.write_all(b"GET /healthz HTTP/1.1\r\nHost: wharf\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut refused).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["ok"], false);
    assert!(body["message"].as_str().unwrap().contains("--max-connections"), "{body}");
    // An HTTP client reads it as a whole answer (its length is right).
    let answer = common::http().get(format!("{}/healthz", server.base)).send().await.expect("an answer");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answer.json().await.expect("Port's error body");
    assert_eq!(body["error"], "service_unavailable");

    drop(held);
    let mut served = false;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: wharf\r\nConnection: close\r\n\r\n").await.unwrap();
        if read_until_closed(&mut stream).await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "connections are served again once the held ones close");
}
