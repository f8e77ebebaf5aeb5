//! First contact (issue 27, point 7), through the real binary as a newcomer meets it: a port
//! already taken stops the start before any credentials exist; a database that cannot be
//! reached or does not exist is one line naming host, port and cause, for every command that
//! opens the store; `/readyz` is 503 while the SQLite database cannot be written, and a start
//! on such a file is refused; a PostgreSQL session that is read-only is not ready; a SIGTERM
//! after ingestion stops Wharf well within its grace on both stores; `wharf serve --help` names
//! every variable the README's Configuration lists.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn wharf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    // A backtrace would be printed after an `anyhow` error returned from `main`: the one line
    // must hold even so.
    command.env("RUST_BACKTRACE", "1").env_remove("WHARF_DATABASE_URL").env_remove("WHARF_LISTEN");
    command
}

/// The lines a command wrote to stderr, less empty ones.
fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// A failed command's stderr is exactly one line, which holds each of `parts`.
fn assert_one_line(what: &str, output: &Output, parts: &[&str]) {
    assert!(!output.status.success(), "{what} exits non-zero");
    let lines = stderr_lines(output);
    assert_eq!(lines.len(), 1, "{what}: one line, got {lines:#?}");
    assert!(lines[0].starts_with("error: "), "{what}: {}", lines[0]);
    for part in parts {
        assert!(lines[0].contains(part), "{what}: `{part}` not in `{}`", lines[0]);
    }
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `WHARF_*` names in the README between `start` and the next heading of its level.
fn readme_variables(start: &str) -> BTreeSet<String> {
    let readme = include_str!("../../../../README.md");
    let from = readme.find(start).unwrap_or_else(|| panic!("README has `{start}`"));
    let level = start.chars().take_while(|c| *c == '#').count();
    let next = format!("\n{} ", "#".repeat(level));
    let section = &readme[from + start.len()..];
    let section = &section[..section.find(&next).unwrap_or(section.len())];
    let mut names = BTreeSet::new();
    let mut rest = section;
    while let Some(at) = rest.find("WHARF_") {
        let name: String = rest[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        // A name ending in `_` is a prefix in prose, not a variable; the tests' own are not Wharf's.
        if !name.ends_with('_') && !name.starts_with("WHARF_TEST_") {
            names.insert(name);
        }
    }
    names
}

#[test]
fn serve_and_agent_help_name_every_variable_the_readme_lists() {
    for (command, section, least) in [("serve", "## Configuration", 20), ("agent", "### `wharf agent`", 10)] {
        let names = readme_variables(section);
        assert!(names.len() >= least, "the README's {section} lists its variables: {names:?}");
        let help = wharf().args([command, "--help"]).output().unwrap();
        assert!(help.status.success());
        let text = String::from_utf8_lossy(&help.stdout);
        let missing: Vec<_> = names.iter().filter(|name| !text.contains(name.as_str())).collect();
        assert!(missing.is_empty(), "`wharf {command} --help` does not name {missing:?}:\n{text}");
    }
}

/// `serve`, `migrate`, `admin` and `backup` against PostgreSQL on a port nobody listens on,
/// and (with the PostgreSQL suite) against a database that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_reached_is_one_line_naming_host_port_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let refused = format!("postgres://wharf@127.0.0.1:{port}/wharf");
    let target = format!("cannot connect to PostgreSQL at 127.0.0.1:{port}");
    let commands: [&[&str]; 3] = [&["serve", "--listen", "127.0.0.1:0"], &["migrate"], &["admin", "list-orgs"]];
    for args in commands {
        let output = wharf().args(args).arg("--data-dir").arg(dir.path()).args(["--database-url", &refused]).output().unwrap();
        assert_one_line(&args.join(" "), &output, &[&target, "connection refused"]);
    }
    let output = wharf().args(["backup", "--database-url", &refused]).arg(dir.path().join("copy.db")).output().unwrap();
    assert_one_line("backup", &output, &["pg_dump"]);
    let output =
        wharf().args(["backup", "--data-dir"]).arg(dir.path().join("none")).arg(dir.path().join("copy.db")).output().unwrap();
    assert_one_line("backup of nothing", &output, &["there is no database at"]);

    let Some(admin) = common::postgres_admin_url() else {
        eprintln!("PostgreSQL suite off: the missing database is not checked");
        return;
    };
    let base = url::Url::parse(&admin).unwrap();
    let mut missing = base.clone();
    missing.set_path("wharf_first_contact_nosuch");
    let (host, port) = (base.host_str().unwrap().to_owned(), base.port().unwrap_or(5432));
    for args in commands {
        let output =
            wharf().args(args).arg("--data-dir").arg(dir.path()).args(["--database-url", missing.as_str()]).output().unwrap();
        assert_one_line(
            &args.join(" "),
            &output,
            &[
                &format!("cannot connect to PostgreSQL at {host}:{port}"),
                "database \"wharf_first_contact_nosuch\" does not exist",
            ],
        );
    }
}

/// A fresh start on a port already taken exits non-zero with one line naming the address and
/// creates nothing: no credentials file, no organization (a start on a free port over the same
/// store then prints the banner, whose credentials work).
async fn a_port_taken_stops_the_start_before_any_credentials(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut clash = wharf();
    clash.args(["serve", "--listen", &address, "--data-dir"]).arg(&data);
    if let Some(url) = database_url {
        clash.args(["--database-url", url]);
    }
    let output = clash.env_remove("WHARF_BOOTSTRAP_CLIENT_ID").env_remove("WHARF_BOOTSTRAP_CLIENT_SECRET").output().unwrap();
    assert_one_line("serve on a taken port", &output, &[&format!("cannot listen on {address}")]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("clientSecret"), "no banner");
    assert!(!data.join("credentials.json").exists(), "no credentials were written");
    drop(taken);

    let mut child = wharf();
    child.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"]).arg(&data);
    if let Some(url) = database_url {
        child.args(["--database-url", url]);
    }
    let mut child = child
        .env_remove("WHARF_BOOTSTRAP_CLIENT_ID")
        .env_remove("WHARF_BOOTSTRAP_CLIENT_SECRET")
        .env("WHARF_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let common::node::Started { client_id, client_secret, listen, console } = common::node::read_start(&mut stderr);
    let listen = listen.expect("the second start serves");
    assert_eq!(console.as_deref(), Some(format!("http://{listen}/").as_str()), "the console's address is printed");
    let page = common::http().get(format!("http://{listen}/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the printed console answers");
    assert!(page.text().await.unwrap().contains("/console/app.js"), "it is the console's page");
    let (client_id, client_secret) =
        (client_id.expect("the banner of a first start"), client_secret.expect("the banner holds the secret"));
    let token = common::http()
        .post(format!("http://{listen}/v1/auth/access_token"))
        .json(&json!({"clientId": client_id, "clientSecret": client_secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200, "the printed credentials work");
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_stops_the_start_before_any_credentials_sqlite() {
    a_port_taken_stops_the_start_before_any_credentials(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_stops_the_start_before_any_credentials_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    a_port_taken_stops_the_start_before_any_credentials(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}

/// A SIGTERM after ingestion (events accepted and mapped) ends Wharf with 0 well within the
/// intake's 10 s grace: no worker waits out a sleep or a lease.
async fn a_stop_after_ingestion_is_quick(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = common::node::Node::start(dir.path(), database_url, &[]).await;
    let http = common::http();
    let token = node.token(&http).await;
    let post = |path: &str, body: Value| http.post(format!("{}{path}", node.base)).bearer_auth(&token).json(&body).send();
    let blueprint = json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}});
    assert_eq!(post("/v1/blueprints", blueprint).await.unwrap().status(), 201);
    let webhook = json!({"identifier": "hook", "title": "Hook",
        "mappings": [{"blueprint": "service", "entity": {"identifier": ".body.id", "title": ".body.id"}}]});
    let reply: Value = post("/v1/webhooks", webhook).await.unwrap().json().await.unwrap();
    let url = reply["integration"]["url"].as_str().expect("the webhook's URL").to_owned();
    for i in 0..40 {
        let accepted = http.post(&url).json(&json!({"id": format!("s{i}")})).send().await.unwrap();
        assert_eq!(accepted.status(), 202);
    }
    let mut mapped = 0;
    for _ in 0..200 {
        let found: Value = http
            .get(format!("{}/v1/blueprints/service/entities", node.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        mapped = found["entities"].as_array().map_or(0, Vec::len);
        if mapped == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mapped, 40, "every event was mapped");
    // The mapper has just drained: the moment a stop used to wait for.
    let stopping = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &node.child.id().to_string()]).status().unwrap().success());
    let status = node.child.wait().unwrap();
    let took = stopping.elapsed();
    assert!(status.success(), "a stop exits 0, got {status}");
    assert!(took < Duration::from_secs(5), "a stop took {took:?}: something waited out its grace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_after_ingestion_is_quick_sqlite() {
    a_stop_after_ingestion_is_quick(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_after_ingestion_is_quick_postgres() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    a_stop_after_ingestion_is_quick(Some(&url)).await;
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}

/// Who runs Wharf in the SQLite test: this process's user, or, under root (whom file modes do
/// not stop), `nobody`, owning the data directory.
fn as_unprivileged(command: &mut Command, data: &Path) {
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    if me == 0 {
        let nobody = 65534;
        for entry in [data.to_path_buf(), data.join("wharf.db")] {
            if entry.exists() {
                std::os::unix::fs::chown(&entry, Some(nobody), Some(nobody)).unwrap();
            }
        }
        command.uid(nobody).gid(nobody);
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

async fn readyz(http: &reqwest::Client, base: &str) -> u16 {
    http.get(format!("{base}/readyz")).send().await.map_or(0, |r| r.status().as_u16())
}

/// A SQLite database made read-only under a serving Wharf: `/readyz` answers 503 (it answered
/// 200 while every write failed), and 200 again once it can be written; a start on the
/// read-only file is refused with one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_sqlite_database_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    set_mode(dir.path(), 0o755);
    set_mode(&data, 0o700);
    let port = closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve = |data: &Path| {
        let mut command = wharf();
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data)
            .env("WHARF_MASTER_KEY", "33".repeat(32))
            .env("WHARF_LOG", "error");
        as_unprivileged(&mut command, data);
        command
    };
    let mut child = serve(&data).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let http = common::http();
    let mut status = 0;
    for _ in 0..400 {
        status = readyz(&http, &base).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, 200, "ready on a writable database");

    let db = data.join("wharf.db");
    set_mode(&db, 0o400);
    let reply = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(reply.status(), 503, "not ready while the database cannot be written");
    let body: serde_json::Value = reply.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("cannot be written"), "the answer says why: {body}");
    set_mode(&db, 0o600);
    assert_eq!(readyz(&http, &base).await, 200, "ready again once it can");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());

    set_mode(&db, 0o400);
    let output = serve(&data).output().unwrap();
    assert_one_line("serve on a read-only database", &output, &[&db.display().to_string(), "for writing", "ermission denied"]);
}

/// A PostgreSQL session that is read-only (`default_transaction_read_only`, as on a standby's
/// connections) is not ready; the same database through a writable session is. And a start
/// through such a session is refused in one line, by the migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgresql_session_is_not_ready() {
    let Some((admin, url)) = common::scratch_postgres().await else { return };
    let options = wharf_store::StoreOptions::default();
    let store = wharf_store::Store::open(&url, &options).await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.is_ready().await.unwrap(), "a writable session is ready");
    store.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let read_only = format!("{url}{separator}options=-c%20default_transaction_read_only%3Don");
    let store = wharf_store::Store::open(&read_only, &options).await.unwrap();
    assert!(!store.is_ready().await.unwrap(), "a read-only session is not ready");
    store.close().await;

    let dir = tempfile::tempdir().unwrap();
    let output = wharf()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &read_only, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_one_line("serve on a read-only session", &output, &["cannot migrate the database", "read-only"]);
    wharf_store::testing::drop_postgres_database(&admin, &url).await.unwrap();
}
