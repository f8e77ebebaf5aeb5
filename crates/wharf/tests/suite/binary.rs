//! The `wharf` binary as a user runs it: first start prints credentials, the server answers,
//! and SIGTERM stops it cleanly; `wharf migrate` and `--help` work; `wharf agent` stops on
//! SIGTERM while Wharf is unreachable and refuses a bad payload config; `wharf backup` copies
//! the SQLite database while Wharf serves and writes, and the copy restores.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

fn wharf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_credentials_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = wharf()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(dir.path())
        .env_remove("WHARF_BOOTSTRAP_CLIENT_ID")
        .env_remove("WHARF_BOOTSTRAP_CLIENT_SECRET")
        .env("WHARF_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let common::node::Started { client_id, listen, .. } = common::node::read_start(&mut stderr);
    let listen = listen.expect("the server logs its address as JSON");
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("credentials.json")).unwrap()).unwrap();
    assert_eq!(credentials["clientId"].as_str(), client_id.as_deref(), "the printed credentials are the saved ones");

    let http = common::http();
    let token: Value = http
        .post(format!("http://{listen}/v1/auth/access_token"))
        .json(&serde_json::json!({"clientId": credentials["clientId"], "clientSecret": credentials["clientSecret"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = http
        .get(format!("http://{listen}/v1/organization"))
        .bearer_auth(token["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), 200);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert!(stderr.any(|l| l.unwrap().contains("shutting down")));
}

#[test]
fn migrate_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let output = wharf().args(["migrate", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("wharf.db").exists());

    let help = wharf().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for option in ["--listen", "--data-dir", "--database-url", "--public-url", "--log-format", "WHARF_LISTEN", "127.0.0.1:8080"] {
        assert!(text.contains(option), "`{option}` missing from serve --help:\n{text}");
    }
    let bad = wharf().args(["serve", "--public-url", "ftp://x", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--public-url must start with http"));
}

#[test]
fn agent_stops_on_sigterm_while_wharf_is_unreachable() {
    // Nothing listens there: the agent backs off, and a SIGTERM still ends it, with 0.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = wharf()
        .args(["agent", "--url", &format!("http://{closed}"), "--client-id", "id", "--log-format", "json"])
        .env("WHARF_CLIENT_SECRET", "secret-of-the-agent")
        .env("WHARF_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let backing_off = stderr.by_ref().map(|l| l.unwrap()).find(|l| l.contains("backing off"));
    assert!(backing_off.is_some_and(|l| !l.contains("secret-of-the-agent")), "the agent logs that it backs off");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "a stopped agent exits 0, got {status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let help = wharf().args(["agent", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--url",
        "WHARF_URL",
        "--client-id",
        "--client-secret",
        "--poll-interval",
        "--payload-config",
        "--concurrency",
        "--long-poll",
    ] {
        assert!(text.contains(option), "`{option}` missing from agent --help:\n{text}");
    }
}

#[test]
fn agent_refuses_a_payload_config_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("payload.json");
    std::fs::write(&config, r#"[{"enabled": 1}]"#).unwrap();
    let output = wharf()
        .args(["agent", "--url", "http://127.0.0.1:1", "--client-id", "id", "--client-secret", "s", "--payload-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid --payload-config") && stderr.contains("`enabled` must be true, false or a jq string"),
        "{stderr}"
    );
}

/// `wharf backup` (issue 27, point 6): a copy taken while writers keep writing holds every
/// entity acknowledged before it started and none half-written; restored into a new data
/// directory with the master key, Wharf serves it. A target that exists is refused, as is
/// PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_the_database_while_it_serves_and_the_copy_restores() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = common::node::Node::start(&data, None, &[]).await;
    let http = common::http();
    let token = node.token(&http).await;
    let blueprint =
        serde_json::json!({"identifier": "item", "title": "Item", "schema": {"properties": {"n": {"type": "number"}}}});
    let reply = http.post(format!("{}/v1/blueprints", node.base)).bearer_auth(&token).json(&blueprint).send().await.unwrap();
    assert!(reply.status().is_success());
    let (created, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (http, url, token, created, stop) =
            (http.clone(), format!("{}/v1/blueprints/item/entities", node.base), token.clone(), created.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let body = serde_json::json!({"identifier": format!("i-{writer}-{n}"), "properties": {"n": n}});
                let reply = http.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                assert!(reply.status().is_success());
                created.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while created.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Readiness is polled by load balancers while backups run: the probe must not drop
    // SQLite's locks on the database files (it once opened them, and the backup's open then
    // reset the shared memory under the server: SIGBUS).
    let ready = http.get(format!("{}/readyz", node.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let copy = dir.path().join("copy.db");
    let before = created.load(Ordering::Relaxed);
    let backup = {
        let (data, copy) = (data.clone(), copy.clone());
        tokio::task::spawn_blocking(move || wharf().args(["backup", "--data-dir"]).arg(&data).arg(&copy).output().unwrap())
            .await
            .unwrap()
    };
    let after = created.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert!(String::from_utf8_lossy(&backup.stderr).contains("backed up"), "{}", String::from_utf8_lossy(&backup.stderr));
    // A target that exists is refused (nothing is overwritten); PostgreSQL is pg_dump's.
    let again = wharf().args(["backup", "--data-dir"]).arg(&data).arg(&copy).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists"));
    let postgres =
        wharf().args(["backup", "--database-url", "postgres://127.0.0.1/x"]).arg(dir.path().join("pg.db")).output().unwrap();
    assert!(!postgres.status.success() && String::from_utf8_lossy(&postgres.stderr).contains("pg_dump"));
    node.kill();

    // Restored into a new data directory (the node's master key comes from WHARF_MASTER_KEY).
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&copy, restored.join("wharf.db")).unwrap();
    let mut node = common::node::Node::start(&restored, None, &[]).await;
    let token = node.token(&http).await;
    let list: Value = http
        .get(format!("{}/v1/blueprints/item/entities", node.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entities = list["entities"].as_array().unwrap();
    assert!(
        (before..=after).contains(&entities.len()),
        "the copy holds the {before} entities acknowledged before it began, and at most the {after} acknowledged by its end: {}",
        entities.len()
    );
    assert!(entities.iter().all(|e| e["properties"]["n"].is_number()), "every entity whole");
    node.kill();
}
