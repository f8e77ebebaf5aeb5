//! The real `wharf` binary as a child process, for the tests that kill it with SIGKILL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const CLIENT_ID: &str = "crash-client";
pub const CLIENT_SECRET: &str = "crash-secret-0123456789";

/// A running `wharf serve`.
pub struct Node {
    pub child: Child,
    pub base: String,
}

impl Node {
    /// Starts `wharf serve` on a free port over `data_dir` (SQLite) or `database_url`, with
    /// `args` added, and waits until it is ready. Every node shares one master key.
    pub async fn start(data_dir: &Path, database_url: Option<&str>, args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("WHARF_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
            .env("WHARF_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
            .env("WHARF_MASTER_KEY", "22".repeat(32))
            .env("WHARF_LOG", "warn")
            .env("WHARF_DATABASE_POOL_SIZE", super::POOL_SIZE.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().expect("wharf starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = super::http();
        for _ in 0..400 {
            if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Self { child, base };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("wharf did not become ready");
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM (a graceful stop: HTTP, then the intake, then the sends in flight and their
    /// attempts), and wait (up to 30 s) for the process to exit; returns whether it exited
    /// cleanly.
    pub async fn stop(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM to wharf {pid}");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        panic!("wharf {pid} did not stop within 30 s of SIGTERM");
    }

    /// An access token for the bootstrap client.
    pub async fn token(&self, http: &reqwest::Client) -> String {
        let reply: Value = http
            .post(format!("{}/v1/auth/access_token", self.base))
            .json(&json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["accessToken"].as_str().unwrap().to_owned()
    }
}

impl Drop for Node {
    /// A node a failed test leaves running is killed, not left behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a first start prints before it serves: the banner's credentials (when this start
/// created them) and the address from the JSON log line "wharf is serving" (`None` when the
/// output ended first). Reads `lines` up to that line.
#[derive(Debug, Default)]
pub struct Started {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub listen: Option<String>,
    /// The console's address, as printed on the terminal.
    pub console: Option<String>,
}

pub fn read_start(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Started {
    let mut started = Started::default();
    for line in lines {
        let line = line.unwrap();
        if let Some(id) = line.trim().strip_prefix("clientId:") {
            started.client_id = Some(id.trim().to_owned());
        }
        if let Some(secret) = line.trim().strip_prefix("clientSecret:") {
            started.client_secret = Some(secret.trim().to_owned());
        }
        if let Some(console) = line.trim().strip_prefix("Console:") {
            started.console = console.split_whitespace().next().map(str::to_owned);
        }
        if let Ok(event) = serde_json::from_str::<Value>(&line)
            && event["fields"]["message"] == "wharf is serving"
        {
            started.listen = event["fields"]["listen"].as_str().map(str::to_owned);
            break;
        }
    }
    started
}
