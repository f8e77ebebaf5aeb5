//! The test harness: a real Wharf started in-process on port 0, on SQLite (a temporary data
//! directory) or PostgreSQL (a database created for the test and dropped after it).
//!
//! `both_stores!(test_a, test_b)` runs each `async fn test_x(server: TestServer)` once per
//! store. The PostgreSQL variants run when `WHARF_TEST_DATABASE_URL` is set (CI sets it) and
//! then fail, not skip, if PostgreSQL cannot be reached.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use wharf::Server;

use wharf::config::{DeliverySettings, IngestSettings, LogFormat, Settings};
use wharf_core::delivery::RetryPolicy;
use wharf_core::network::NetworkPolicy;
use wharf_engine::node::Stopped;

pub mod browser;
pub mod node;
pub mod receiver;

pub const CLIENT_ID: &str = "test-admin-client";
pub const CLIENT_SECRET: &str = "test-admin-secret-0123456789abcdefghij";

/// Connections each server a test starts opens to its database at most (`--database-pool-size`):
/// the suite's tests run side by side, and with the default 16 a few servers (and the nodes
/// tests' three) would pass a stock PostgreSQL's `max_connections` of 100.
pub const POOL_SIZE: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running Wharf with an authenticated HTTP client.
pub struct TestServer {
    server: Option<Server>,
    pub settings: Settings,
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

/// Delivery settings for tests: loopback allowed (receivers listen there), retries after
/// 100 ms and 200 ms without jitter, a 300 ms floor after 429s and timeouts, a 1 s timeout.
pub fn test_delivery_settings() -> DeliverySettings {
    DeliverySettings {
        policy: RetryPolicy {
            schedule: vec![Duration::from_millis(100), Duration::from_millis(200)],
            jitter: 0.0,
            overload_floor: Duration::from_millis(300),
        },
        timeout: Duration::from_secs(1),
        poll_interval: Duration::from_millis(50),
        network: NetworkPolicy::new(NetworkPolicy::parse_allowed(&["127.0.0.0/8".into()]).unwrap()),
        ..DeliverySettings::default()
    }
}

/// An HTTP client for tests (the TLS provider installed first, as in Wharf itself).
pub fn http() -> reqwest::Client {
    wharf_engine::delivery::client::install_tls_provider();
    reqwest::Client::new()
}

/// A new, empty PostgreSQL database for a test that manages its own servers: `(admin URL,
/// database URL)`, or `None` (with a note) when the PostgreSQL suite is off. Drop it with
/// `wharf_store::testing::drop_postgres_database` at the end.
pub async fn scratch_postgres() -> Option<(String, String)> {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
        return None;
    };
    let url = wharf_store::testing::create_postgres_database(&admin)
        .await
        .unwrap_or_else(|e| panic!("WHARF_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
    Some((admin, url))
}

/// The admin URL of the test PostgreSQL, when the PostgreSQL suite is on.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("WHARF_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

impl TestServer {
    /// Starts a server on `backend`; `None` when that backend's suite is off.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server on `backend` with settings changed by `configure`.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let url = wharf_store::testing::create_postgres_database(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("WHARF_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
                Some((admin, url))
            }
        };
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url: postgres.as_ref().map(|(_, url)| url.clone()),
            database_pool_size: POOL_SIZE,
            public_url: None,
            log_format: LogFormat::Text,
            master_key: None,
            bootstrap_client: Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())),
            ingest: IngestSettings { index_refresh_interval: Duration::from_millis(100), ..IngestSettings::default() },
            delivery: test_delivery_settings(),
            edge: Default::default(),
        };
        let mut settings = settings;
        configure(&mut settings);
        let server = Server::start(&settings).await.expect("server starts");
        let base = format!("http://{}", server.addr());
        let mut test =
            Self { server: Some(server), settings, base, http: http(), token: String::new(), backend, _dir: dir, postgres };
        test.token = test.token_for(CLIENT_ID, CLIENT_SECRET).await;
        Some(test)
    }

    /// Exchanges client credentials for a token (panics if refused).
    pub async fn token_for(&self, client_id: &str, secret: &str) -> String {
        let (status, body) = self
            .call_as(None, Method::POST, "/v1/auth/access_token", Some(json!({"clientId": client_id, "clientSecret": secret})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["accessToken"].as_str().expect("accessToken").to_owned()
    }

    /// Stops the server gracefully and starts it again on the same data.
    pub async fn restart(&mut self) {
        let _ = self.restart_reporting().await;
    }

    /// Stops the server gracefully, stays down for `down`, and starts it again on the same
    /// data (for what must happen across a restart that spans a moment).
    pub async fn restart_after(&mut self, down: Duration) {
        let _ = self.server.take().expect("running").shutdown().await.expect("clean stop");
        tokio::time::sleep(down).await;
        let server = Server::start(&self.settings).await.expect("server restarts");
        self.base = format!("http://{}", server.addr());
        self.server = Some(server);
    }

    /// [`TestServer::restart`], telling how the stop went.
    pub async fn restart_reporting(&mut self) -> Stopped {
        let stopped = self.server.take().expect("running").shutdown().await.expect("clean stop");
        let server = Server::start(&self.settings).await.expect("server restarts");
        self.base = format!("http://{}", server.addr());
        self.server = Some(server);
        stopped
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Runs `wharf <args>` (the real binary) against this server's data, returning stdout
    /// parsed as JSON.
    pub fn wharf_cli(&self, args: &[&str]) -> Value {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
        command.args(args).arg("--data-dir").arg(&self.settings.data_dir);
        if let Some(url) = &self.settings.database_url {
            command.arg("--database-url").arg(url);
        }
        let output = command.env("WHARF_LOG", "warn").output().expect("wharf runs");
        assert!(output.status.success(), "wharf {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    /// A second organization, made with the admin CLI as an operator would: its id and a
    /// token of its first client.
    pub async fn other_organization(&self, name: &str) -> (String, String) {
        let created = self.wharf_cli(&["admin", "create-org", "--name", name]);
        let token = self.token_for(created["clientId"].as_str().unwrap(), created["clientSecret"].as_str().unwrap()).await;
        (created["organizationId"].as_str().unwrap().to_owned(), token)
    }

    /// Waits until the newest delivery of the subscription at path `webhook` is no longer
    /// pending; returns it.
    pub async fn settled_delivery(&self, webhook: &str) -> Value {
        for _ in 0..300 {
            let (status, list) = self.get(&format!("{webhook}/deliveries")).await;
            assert_eq!(status, StatusCode::OK, "{list}");
            if let Some(first) = list.as_array().and_then(|l| l.first())
                && first["status"] != "pending"
            {
                return first.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the delivery of {webhook} did not settle");
    }

    /// The attempts of `delivery` (as listed) of the subscription at path `webhook`.
    pub async fn delivery_attempts(&self, webhook: &str, delivery: &Value) -> Vec<Value> {
        let (status, list) = self.get(&format!("{webhook}/deliveries/{}/attempts", delivery["id"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array().unwrap().clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    /// A request with this server's admin token.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(Some(&self.token), method, path, body).await
    }

    /// A request with the given token (or none).
    pub async fn call_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body)
    }

    /// A POST with the admin token and `text` as the body, byte for byte.
    pub async fn post_text(&self, path: &str, text: &str) -> (StatusCode, Value) {
        let request = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token);
        let response =
            request.header("content-type", "application/json").body(text.to_owned()).send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a blueprint, asserting success.
    pub async fn blueprint(&self, doc: Value) {
        let (status, body) = self.post("/v1/blueprints", doc).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates a webhook, asserting success; returns it (with `webhookKey`).
    pub async fn webhook(&self, doc: Value) -> Value {
        let (status, body) = self.post("/v1/webhooks", doc).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["integration"].clone()
    }

    /// Sends a request to an ingest URL: `body` as raw bytes with the given headers.
    pub async fn ingest_raw(
        &self,
        key: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}/ingest/{key}{query}", self.base)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sends a JSON event, asserting 202; returns the event id.
    pub async fn ingest(&self, key: &str, body: &Value, headers: &[(&str, &str)]) -> String {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let (status, reply) = self.ingest_raw(key, "", &all, body.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
        reply["eventId"].as_str().expect("eventId").to_owned()
    }

    /// Waits until an event is mapped (no longer PENDING) and returns it in full.
    pub async fn mapped_event(&self, webhook: &str, event_id: &str) -> Value {
        for _ in 0..400 {
            let (status, body) = self.get(&format!("/v1/webhooks/{webhook}/events/{event_id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["event"]["status"] != "PENDING" {
                return body["event"].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("event {event_id} of {webhook} was not mapped within 10 s");
    }

    /// Upserts (with merge) an entity, asserting success; returns it.
    /// Creates an action (or automation), which must be taken (201).
    pub async fn create_action(&self, doc: Value) {
        let (status, body) = self.post("/v1/actions", doc).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Starts a run of `action` (202); the run as answered.
    pub async fn start_run(&self, action: &str, body: Value) -> Value {
        let (status, answer) = self.post(&format!("/v1/actions/{action}/runs"), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answer["run"].clone()
    }

    /// A run, which must exist.
    pub async fn run(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/actions/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["run"].clone()
    }

    /// Writes `docs` through the bulk route `path` (with its query), twenty a request (the
    /// route's most), asserting each request succeeds.
    pub async fn bulk(&self, path: &str, docs: &[Value]) {
        for chunk in docs.chunks(20) {
            let (status, body) = self.post(path, json!({"entities": chunk})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }

    pub async fn upsert(&self, blueprint: &str, doc: Value) -> Value {
        let (status, body) = self.post(&format!("/v1/blueprints/{blueprint}/entities?upsert=true&merge=true"), doc).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["entity"].clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some((admin, url)) = self.postgres.take() {
            // Drop runs outside async; a short-lived runtime on its own thread drops the database.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(wharf_store::testing::drop_postgres_database(&admin, &url))
            })
            .join();
        }
    }
}

/// The identifiers of a list or search answer's `entities`, in order.
pub fn identifiers(body: &Value) -> Vec<String> {
    body["entities"]
        .as_array()
        .unwrap_or_else(|| panic!("no entities: {body}"))
        .iter()
        .map(|e| e["identifier"].as_str().unwrap_or_else(|| panic!("an entity without identifier: {body}")).to_owned())
        .collect()
}

/// Asserts an error response: the status and Port's body, with `message` containing `part`.
pub fn assert_error(result: &(StatusCode, Value), status: StatusCode, part: &str) {
    let (actual, body) = result;
    assert_eq!(*actual, status, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(part), "`{part}` not in `{message}`");
}

/// Runs each named `async fn(TestServer)` against SQLite and PostgreSQL; with
/// `configure = f;` first, each server's settings are changed by `f(&mut Settings)`.
#[macro_export]
macro_rules! both_stores {
    (configure = $configure:ident; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::common::TestServer::start_with($crate::common::Backend::Sqlite, super::$configure)
                        .await
                        .expect("sqlite");
                    super::$name(server).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) =
                        $crate::common::TestServer::start_with($crate::common::Backend::Postgres, super::$configure).await
                    else {
                        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
                        return;
                    };
                    super::$name(server).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::common::TestServer::start($crate::common::Backend::Sqlite).await.expect("sqlite");
                    super::$name(server).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = $crate::common::TestServer::start($crate::common::Backend::Postgres).await else {
                        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
                        return;
                    };
                    super::$name(server).await;
                }
            )*
        }
    };
}

/// Everything this test binary's servers log (they run in this process), at every level.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

/// Installs (once) the log subscriber of this test binary: Wharf's crates at `trace`, the
/// others at `debug`, written to memory.
pub fn captured_log() -> &'static CapturedLog {
    static LOG: std::sync::OnceLock<CapturedLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let writer = log.clone();
        let filter = "debug,wharf=trace,wharf_api=trace,wharf_engine=trace,wharf_store=trace,wharf_core=trace";
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only log subscriber of this test binary");
        log
    })
}
