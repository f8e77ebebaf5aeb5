//! Wharf against a PostgreSQL of the test's own (`initdb` in a temporary directory, `ssl =
//! on` with a server certificate for `localhost` signed by a CA made here), which a test can
//! stop and start (issue 27):
//! - over TLS (point 1): libpq's `sslmode` and `sslrootcert` in the database URL, with
//!   rustls. A real Wharf serves under `verify-full` and its connections are TLS
//!   (`pg_stat_ssl`); a certificate from another CA, and a host the certificate does not name,
//!   are refused with an error that names the host, the `sslmode` and the reason; `verify-ca`
//!   checks the chain but not the name; `disable` connects in clear;
//! - through an outage (point 4): while PostgreSQL is stopped, writes and ingestion answer 503
//!   with `Retry-After` and `/readyz` is not ready; once it is back, every worker resumes on
//!   its own and nothing acknowledged before is lost.
//!
//! Runs with the PostgreSQL suite (`WHARF_TEST_DATABASE_URL`), and fails, never skips, when
//! PostgreSQL's binaries are missing.

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::receiver::Receiver;
use common::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use wharf_store::{Store, StoreOptions};

/// A CA, and a certificate it signed for `names`: (CA PEM, certificate PEM, key PEM).
fn certificates(ca_name: &str, names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    server.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

/// PostgreSQL's binaries (the newest version installed).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries are installed (/usr/lib/postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("initdb is installed")
}

/// A PostgreSQL of the test's own, stopped when dropped.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// The server's options (`pg_ctl -o`).
    options: String,
}

/// Runs a PostgreSQL binary as the `postgres` user when this is root (PostgreSQL refuses root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    fn start(cert_pem: &str, key_pem: &str) -> Self {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, data) = (dir.path().join("server.crt"), dir.path().join("server.key"), dir.path().join("data"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        // The files and the directory belong to the user PostgreSQL runs as.
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let status = as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(status.status.success(), "initdb: {}", String::from_utf8_lossy(&status.stderr));
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            dir.path().display(),
            cert.display(),
            key.display()
        );
        let started = as_postgres(&bin.join("pg_ctl"))
            .args(["start", "-w", "-l"])
            .arg(dir.path().join("log"))
            .args(["-D"])
            .arg(&data)
            .args(["-o", &options])
            .output()
            .expect("pg_ctl runs");
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        assert!(started.status.success(), "pg_ctl start: {} {log}", String::from_utf8_lossy(&started.stderr));
        Self { dir, port, bin, options }
    }

    /// Stops it (`pg_ctl stop -m fast`: connections are cut).
    fn stop(&self) {
        let stopped = as_postgres(&self.bin.join("pg_ctl"))
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.dir.path().join("data"))
            .output()
            .expect("pg_ctl runs");
        assert!(stopped.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
    }

    /// Starts it again on the same port.
    fn start_again(&self) {
        let started = as_postgres(&self.bin.join("pg_ctl"))
            .args(["start", "-w", "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-o", &self.options])
            .output()
            .expect("pg_ctl runs");
        assert!(started.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&started.stderr));
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .output();
    }
}

/// Whether the connections named `application` use TLS, seen from the server.
async fn tls_connections(postgres: &PrivatePostgres, application: &str) -> Vec<bool> {
    let admin = postgres.url("127.0.0.1", "sslmode=disable&application_name=tls-test-admin");
    wharf_store::testing::tls_connections(&admin, application).await.unwrap()
}

async fn open(url: &str) -> Result<Store, String> {
    Store::open(url, &StoreOptions::default()).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wharf_reaches_postgresql_over_tls_and_refuses_what_does_not_verify() {
    if common::postgres_admin_url().is_none() {
        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates("Wharf test CA", &["localhost"]);
    let (other_ca, _, _) = certificates("Another CA", &["localhost"]);
    let (ca_file, other_ca_file) = (dir.path().join("ca.crt"), dir.path().join("other-ca.crt"));
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&other_ca_file, other_ca).unwrap();
    let postgres = PrivatePostgres::start(&cert, &key);

    // verify-full: a whole Wharf serves on it; its connections are TLS.
    let verified = postgres
        .url("localhost", &format!("sslmode=verify-full&sslrootcert={}&application_name=wharf-verified", ca_file.display()));
    let server = TestServer::start_with(Backend::Postgres, |settings| settings.database_url = Some(verified.clone()))
        .await
        .expect("the PostgreSQL suite is on");
    server.blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}})).await;
    let (status, body) = server.get("/v1/blueprints/service").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tls = tls_connections(&postgres, "wharf-verified").await;
    assert!(!tls.is_empty() && tls.iter().all(|ssl| *ssl), "every connection of Wharf is TLS: {tls:?}");
    drop(server);

    // A certificate another CA signed: refused, saying where, with which sslmode, and why.
    let wrong_ca = postgres.url("localhost", &format!("sslmode=verify-full&sslrootcert={}", other_ca_file.display()));
    let err = open(&wrong_ca).await.expect_err("a certificate from another CA is refused");
    assert!(err.contains(&format!("localhost:{} (sslmode verify-full)", postgres.port)), "{err}");
    assert!(err.contains("invalid peer certificate") && err.contains("UnknownIssuer"), "{err}");
    // A host the certificate does not name: refused under verify-full, taken under verify-ca.
    let by_address = postgres.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()));
    let err = open(&by_address).await.expect_err("a certificate for another name is refused");
    assert!(err.contains(&format!("127.0.0.1:{} (sslmode verify-full)", postgres.port)), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
    let chain_only = postgres.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", ca_file.display()));
    open(&chain_only).await.expect("verify-ca checks the chain, not the name").close().await;
    // require: TLS without verification; disable: in clear.
    let required =
        open(&postgres.url("127.0.0.1", "sslmode=require&application_name=wharf-required")).await.expect("require connects");
    let tls = tls_connections(&postgres, "wharf-required").await;
    assert!(!tls.is_empty() && tls.iter().all(|ssl| *ssl), "require is TLS: {tls:?}");
    required.close().await;
    // Every session has a statement, lock and idle-transaction timeout, unless the URL sets
    // its own (libpq's `options`).
    let limited = open(&postgres.url("127.0.0.1", "sslmode=disable")).await.unwrap();
    let setting = |store: &Store, name: &'static str| {
        let store = store.clone();
        async move { wharf_store::testing::session_setting(&store, name).await.unwrap() }
    };
    assert_eq!(setting(&limited, "statement_timeout").await, "2min");
    assert_eq!(setting(&limited, "lock_timeout").await, "30s");
    assert_eq!(setting(&limited, "idle_in_transaction_session_timeout").await, "2min");
    limited.close().await;
    let own = open(&postgres.url("127.0.0.1", "sslmode=disable&options=-c%20statement_timeout%3D5s")).await.unwrap();
    assert_eq!(setting(&own, "statement_timeout").await, "5s");
    assert_eq!(setting(&own, "lock_timeout").await, "30s");
    own.close().await;
    let clear = open(&postgres.url("127.0.0.1", "sslmode=disable&application_name=wharf-clear")).await.expect("disable connects");
    let tls = tls_connections(&postgres, "wharf-clear").await;
    assert!(!tls.is_empty() && tls.iter().all(|ssl| !ssl), "disable connects in clear: {tls:?}");
    clear.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_out_a_database_outage_and_every_worker_resumes() {
    if common::postgres_admin_url().is_none() {
        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
        return;
    }
    let (_, cert, key) = certificates("Wharf test CA", &["localhost"]);
    let postgres = PrivatePostgres::start(&cert, &key);
    let url = postgres.url("127.0.0.1", "sslmode=disable&application_name=wharf-outage");
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(Backend::Postgres, |settings| settings.database_url = Some(url.clone()))
        .await
        .expect("the PostgreSQL suite is on");
    server
        .blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {"n": {"type": "number"}}}}))
        .await;
    let webhook = server
        .webhook(json!({"identifier": "events", "title": "Events", "mappings": [{
            "blueprint": "service", "entity": {"identifier": ".body.id", "title": ".body.id", "properties": {"n": ".body.n"}}}]}))
        .await;
    let key = webhook["webhookKey"].as_str().expect("the webhook's key").to_owned();
    let (status, body) = server
        .post(
            "/v1/workflows",
            json!({"identifier": "ping", "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
            {"identifier": "call", "config": {"type": "WEBHOOK", "url": receiver.url("/ok/ping")}}],
            "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.upsert("service", json!({"identifier": "before", "properties": {"n": 1}})).await;

    // Down: writes and ingestion answer 503 with Retry-After; /readyz is not ready.
    postgres.stop();
    let write = server
        .http
        .post(format!("{}/v1/blueprints/service/entities", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"identifier": "during", "properties": {"n": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(write.headers()["retry-after"], "5");
    let body: serde_json::Value = write.json().await.unwrap();
    assert_eq!(body["ok"], false, "{body}");
    let ingest =
        server.http.post(format!("{}/ingest/{key}", server.base)).json(&json!({"id": "lost", "n": 3})).send().await.unwrap();
    assert_eq!(ingest.status(), StatusCode::SERVICE_UNAVAILABLE, "nothing is acknowledged that was not stored");
    assert_eq!(ingest.headers()["retry-after"], "5");
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["message"], "the database is unreachable", "{body}");

    // Back: ready again on its own; writes, the mapper and the stepper work; nothing lost.
    postgres.start_again();
    let mut ready = false;
    for _ in 0..200 {
        if server.get("/readyz").await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz is ready again once PostgreSQL is back");
    server.upsert("service", json!({"identifier": "after", "properties": {"n": 4}})).await;
    let ingest =
        server.http.post(format!("{}/ingest/{key}", server.base)).json(&json!({"id": "mapped", "n": 5})).send().await.unwrap();
    assert_eq!(ingest.status(), StatusCode::ACCEPTED);
    let (status, body) = server.post("/v1/workflows/ping/runs", json!({"inputs": {}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    receiver.wait_for("/ok/ping", 1).await;
    let mut mapped = false;
    for _ in 0..200 {
        if server.get("/v1/blueprints/service/entities/mapped").await.0 == StatusCode::OK {
            mapped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(mapped, "the mapper resumed");
    for (identifier, expected) in [
        ("before", StatusCode::OK),
        ("after", StatusCode::OK),
        ("during", StatusCode::NOT_FOUND),
        ("lost", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(server.get(&format!("/v1/blueprints/service/entities/{identifier}")).await.0, expected, "{identifier}");
    }

    // Every connection of Wharf ended under writers (transactions in progress included): each
    // write is acknowledged (201) or refused (503, to retry), and every acknowledged one is
    // there; the pool connects again by itself.
    let admin = postgres.url("127.0.0.1", "sslmode=disable&application_name=tls-test-admin");
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (http, base, token) = (server.http.clone(), server.base.clone(), server.token.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..40 {
                    let identifier = format!("cut-{writer}-{n}");
                    let reply = http
                        .post(format!("{base}/v1/blueprints/service/entities"))
                        .bearer_auth(&token)
                        .json(&json!({"identifier": identifier, "properties": {"n": n}}))
                        .send()
                        .await
                        .unwrap();
                    match reply.status() {
                        StatusCode::CREATED => acknowledged.push(identifier),
                        StatusCode::SERVICE_UNAVAILABLE => assert_eq!(reply.headers()["retry-after"], "5"),
                        other => panic!("a write answers 201 or 503, not {other}: {}", reply.text().await.unwrap()),
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let ended = wharf_store::testing::terminate_connections(&admin, "wharf-outage").await.unwrap();
    assert!(ended > 0, "Wharf's connections were ended");
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    for identifier in &acknowledged {
        assert_eq!(server.get(&format!("/v1/blueprints/service/entities/{identifier}")).await.0, StatusCode::OK, "{identifier}");
    }
    server.upsert("service", json!({"identifier": "after-cut", "properties": {"n": 6}})).await;
}

/// What a sender under an outage saw.
#[derive(Debug, Default)]
struct Tally {
    /// Acknowledged: (id, what the answer named: the webhook event's id, or the id again).
    acknowledged: Vec<(String, String)>,
    /// Ids refused at least once (503, or no answer) before they were acknowledged.
    refused: Vec<String>,
    unavailable: usize,
    connection_errors: usize,
    /// The longest a 503 took to come.
    slowest_refusal: std::time::Duration,
}

/// Sends events `{prefix}-0`… to `url` (made by `body` from the id and `n`) until `stop`:
/// each one until it is acknowledged, honouring `Retry-After` after a 503 and waiting 200 ms
/// after a connection error.
async fn send_through_outage(
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    prefix: String,
    body: fn(&str, u64) -> serde_json::Value,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Tally {
    use std::time::{Duration, Instant};
    let mut tally = Tally::default();
    for n in 0.. {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let id = format!("{prefix}-{n}");
        let mut refused = false;
        loop {
            let mut request = http.post(&url).json(&body(&id, n)).timeout(Duration::from_secs(30));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let sent = Instant::now();
            match request.send().await {
                Ok(reply) if reply.status() == StatusCode::ACCEPTED || reply.status() == StatusCode::CONFLICT => {
                    let answer: serde_json::Value = reply.json().await.unwrap_or_default();
                    let named = answer["eventId"].as_str().unwrap_or(&id).to_owned();
                    tally.acknowledged.push((id.clone(), named));
                    break;
                }
                Ok(reply) if reply.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    tally.unavailable += 1;
                    tally.slowest_refusal = tally.slowest_refusal.max(sent.elapsed());
                    let wait: u64 = reply.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                    let answer: serde_json::Value = reply.json().await.unwrap();
                    assert_eq!(answer["ok"], false, "{answer}");
                    refused = true;
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                Ok(reply) => panic!("{id}: 202 or 503, not {}: {}", reply.status(), reply.text().await.unwrap_or_default()),
                Err(_) => {
                    tally.connection_errors += 1;
                    refused = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if refused {
            tally.refused.push(id);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_outage_under_load_loses_nothing_acknowledged() {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    if common::postgres_admin_url().is_none() {
        eprintln!("PostgreSQL suite off: set WHARF_TEST_DATABASE_URL to run it");
        return;
    }
    const SENDERS: usize = 4;
    const OUTAGE: Duration = Duration::from_secs(30);
    let (_, cert, key) = certificates("Wharf test CA", &["localhost"]);
    let postgres = PrivatePostgres::start(&cert, &key);
    let url = postgres.url("127.0.0.1", "sslmode=disable&application_name=wharf-long-outage");
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(Backend::Postgres, |settings| settings.database_url = Some(url.clone()))
        .await
        .expect("the PostgreSQL suite is on");
    let target_concurrency = server.settings.delivery.target_concurrency;
    server.blueprint(json!({"identifier": "order", "title": "Order", "schema": {"properties": {"n": {"type": "number"}}}})).await;
    let webhook = server
        .webhook(json!({"identifier": "orders", "title": "Orders", "security": {"requestIdentifierPath": ".body.id"},
            "mappings": [{"blueprint": "order", "entity": {"identifier": ".body.id", "title": ".body.id", "properties": {"n": ".body.n"}}}]}))
        .await;
    let key = webhook["webhookKey"].as_str().expect("the webhook's key").to_owned();
    let (_, org) = server.get("/v1/organization").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let (status, project) =
        server.post(&format!("/organizations/{org}/projects"), json!({"name": "Outage", "slug": "outage"})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let path = format!("/organizations/{org}/projects/{}", project["_id"].as_str().unwrap());
    let (status, body) = server
        .post(
            &format!("{path}/settings/webhooks"),
            json!({"name": "receiver", "url": receiver.url("/ok/outage"), "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Senders ingest and publish, each event until acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut ingesters = Vec::new();
    let mut publishers = Vec::new();
    for sender in 0..SENDERS {
        ingesters.push(tokio::spawn(send_through_outage(
            server.http.clone(),
            format!("{}/ingest/{key}", server.base),
            None,
            format!("i{sender}"),
            |id, n| json!({"id": id, "n": n}),
            stop.clone(),
        )));
        publishers.push(tokio::spawn(send_through_outage(
            server.http.clone(),
            format!("{}{path}/events", server.base),
            Some(server.token.clone()),
            format!("p{sender}"),
            |id, n| json!({"type": "order.created", "id": id, "data": {"n": n}}),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Down for 30 s: not ready meanwhile.
    let down_at = Instant::now();
    postgres.stop();
    let readyz = Instant::now();
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let readyz = readyz.elapsed();
    tokio::time::sleep(OUTAGE.saturating_sub(down_at.elapsed())).await;

    // Back: ready again on its own, and the senders get through.
    postgres.start_again();
    let up_at = Instant::now();
    let mut ready_after = None;
    for _ in 0..300 {
        if server.get("/readyz").await.0 == StatusCode::OK {
            ready_after = Some(up_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = ready_after.expect("/readyz is ready again on its own once PostgreSQL is back");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ingested, mut published) = (Vec::new(), Vec::new());
    for sender in ingesters {
        ingested.push(sender.await.unwrap());
    }
    for sender in publishers {
        published.push(sender.await.unwrap());
    }
    let tallies = || ingested.iter().chain(&published);
    let unavailable: usize = tallies().map(|t| t.unavailable).sum();
    assert!(unavailable > 0, "the senders were refused during the outage");
    // Every id refused was retried until acknowledged.
    for tally in tallies() {
        let acknowledged: HashSet<&str> = tally.acknowledged.iter().map(|(id, _)| id.as_str()).collect();
        assert!(tally.refused.iter().all(|id| acknowledged.contains(id.as_str())));
    }

    // Every acknowledged ingest is stored and mapped.
    let mut drained = false;
    for _ in 0..300 {
        let (status, pending) = server.get("/v1/webhooks/orders/events?status=PENDING&limit=1").await;
        assert_eq!(status, StatusCode::OK, "{pending}");
        if pending["events"].as_array().is_some_and(Vec::is_empty) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(drained, "every webhook event was mapped after the outage");
    let (status, log) = server.get("/v1/audit-log?webhookId=orders&limit=10000").await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let mapped: HashMap<&str, &str> = log["audits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["additionalData"]["webhookEventId"].as_str().unwrap(), e["context"]["entityIdentifier"].as_str().unwrap()))
        .collect();
    let ingest_acks: Vec<&(String, String)> = ingested.iter().flat_map(|t| &t.acknowledged).collect();
    assert!(mapped.len() < 10_000 && ingest_acks.len() < 10_000, "the audit log holds every change");
    for (id, event) in &ingest_acks {
        assert_eq!(mapped.get(event.as_str()), Some(&id.as_str()), "acknowledged event {id} ({event}) was mapped");
    }

    // Every acknowledged publish is delivered at least once; a repeat has the same id and
    // body and comes of an attempt made before the database was back (its record was lost),
    // at most as many as the dispatcher had in flight.
    let publish_acks: Vec<&str> = published.iter().flat_map(|t| t.acknowledged.iter().map(|(id, _)| id.as_str())).collect();
    let mut by_id: HashMap<String, Vec<common::receiver::Call>> = HashMap::new();
    for _ in 0..300 {
        by_id.clear();
        for call in receiver.calls("/ok/outage") {
            by_id.entry(call.header("webhook-id").to_owned()).or_default().push(call);
        }
        if publish_acks.iter().all(|id| by_id.contains_key(*id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<&&str> = publish_acks.iter().filter(|id| !by_id.contains_key(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged publishes never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let mut repeats = 0;
    for (id, calls) in &by_id {
        if calls.len() > 1 {
            repeats += calls.len() - 1;
            assert!(calls.iter().all(|c| c.body == calls[0].body), "a repeat of {id} differs");
            assert!(calls[0].at < up_at, "{id} was repeated, but its first attempt came after the database was back");
        }
    }
    assert!(repeats <= target_concurrency, "{repeats} repeats: more than were in flight at the outage");

    let slowest = tallies().map(|t| t.slowest_refusal).max().unwrap_or_default();
    let refused: usize = tallies().map(|t| t.refused.len()).sum();
    let errors: usize = tallies().map(|t| t.connection_errors).sum();
    eprintln!(
        "outage of {OUTAGE:?} under load: {} ingests and {} publishes acknowledged ({refused} of them refused first: \
         {unavailable} 503s, the slowest after {slowest:?}, {errors} connection errors); /readyz said 503 after {readyz:?}, \
         ready {ready_after:?} after PostgreSQL was back; {repeats} repeated deliveries",
        ingest_acks.len(),
        publish_acks.len(),
    );
}
