//! A recording webhook receiver: a real axum server on 127.0.0.1:0 that keeps every request
//! and answers by the first segment of the path:
//!
//! - `/ok/…` 200; `/fail/…` 500 always; `/flaky/…` 500 the first time, then 200;
//! - `/busy/…` 429 with `Retry-After: 1` the first time, then 200;
//! - `/slow/…` answers after 3 s, `/slowish/…` after 300 ms; `/gone/…` 410; `/redirect/…` 302
//!   to `/ok/redirected`; `/text/…` 200 with a plain-text body; `/echo/…` 200 with the
//!   request's body as its own.
//!
//! Plus a raw TCP server whose response body never finishes, and a URL nothing listens on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One received request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Call {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Clone, Default)]
struct Recorded {
    calls: Arc<Mutex<Vec<Call>>>,
    base: Arc<Mutex<String>>,
}

/// A running receiver.
pub struct Receiver {
    pub base: String,
    recorded: Recorded,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
        let addr: SocketAddr = listener.local_addr().unwrap();
        let recorded = Recorded::default();
        let base = format!("http://{addr}");
        *recorded.base.lock().unwrap() = base.clone();
        let app = axum::Router::new().fallback(record).with_state(recorded.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, recorded }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The requests received on `path` so far.
    pub fn calls(&self, path: &str) -> Vec<Call> {
        self.recorded.calls.lock().unwrap().iter().filter(|c| c.path == path).cloned().collect()
    }

    /// How many requests were received so far (without copying them, as [`Receiver::all`] does).
    pub fn count(&self) -> usize {
        self.recorded.calls.lock().unwrap().len()
    }

    /// Every request received so far.
    pub fn all(&self) -> Vec<Call> {
        self.recorded.calls.lock().unwrap().clone()
    }

    /// Waits (up to 15 s) until `path` received `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Call> {
        for _ in 0..300 {
            let calls = self.calls(path);
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} received {} requests, expected {n}", self.calls(path).len());
    }
}

async fn record(
    State(recorded): State<Recorded>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let seen = {
        let mut calls = recorded.calls.lock().unwrap();
        let seen = calls.iter().filter(|c| c.path == path).count();
        calls.push(Call {
            method: method.to_string(),
            path: path.clone(),
            query: uri.query().map(str::to_owned),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        seen
    };
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    match first {
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "flaky" if seen == 0 => (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response(),
        "busy" if seen == 0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, "late").into_response()
        }
        "slowish" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            (StatusCode::OK, "done").into_response()
        }
        "gone" => (StatusCode::GONE, "unsubscribed").into_response(),
        "text" => (StatusCode::OK, "plain words").into_response(),
        "echo" => (StatusCode::OK, [("content-type", "application/json")], body).into_response(),
        "redirect" => {
            let to = format!("{}/ok/redirected", recorded.base.lock().unwrap());
            (StatusCode::FOUND, [("location", to)], "").into_response()
        }
        _ => (StatusCode::OK, [("content-type", "application/json")], "{\"received\":true}").into_response(),
    }
}

/// A URL on a port nothing listens on (connection refused).
pub fn refused_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/hook")
}

/// A raw server that answers `200` with a body it never finishes; returns its URL and how
/// many requests it got.
pub async fn slow_body_server() -> (String, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow-body", listener.local_addr().unwrap());
    let hits: Arc<Mutex<usize>> = Arc::default();
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            *counter.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart").await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
        }
    });
    (url, hits)
}

/// Counts requests per path (for assertions on fan-out).
pub fn count_by_path(calls: &[Call]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for call in calls {
        *counts.entry(call.path.clone()).or_default() += 1;
    }
    counts
}
