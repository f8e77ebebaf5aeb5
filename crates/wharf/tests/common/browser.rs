//! A real headless Chromium for the console's tests, driven through chromedriver (WebDriver)
//! with fantoccini.
//!
//! Each [`Browser`] has its own chromedriver, Chromium and profile, killed with their process
//! group when it is dropped (a failed test leaves no browser behind). At most
//! [`AT_ONCE`] run at a time in a test binary: Chromium is heavy for two cores.
//!
//! The browser tests run when chromedriver and Chromium are installed (Debian: `apt-get
//! install chromium chromium-driver`; `WHARF_TEST_CHROMEDRIVER` and `WHARF_TEST_CHROMIUM`
//! name other paths). With `WHARF_TEST_BROWSER=required` (as in `.ci/run`) a missing browser
//! fails the tests instead of skipping them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{CLIENT_ID, CLIENT_SECRET, TestServer};

/// Browsers open at once in one test binary.
pub const AT_ONCE: usize = 3;
static SLOTS: Semaphore = Semaphore::const_new(AT_ONCE);

/// How long a wait for the page lasts before the test fails.
const WAIT: Duration = Duration::from_secs(15);

const AXE: &str = include_str!("../fixtures/axe/axe.min.js");

pub struct Browser {
    client: Option<Client>,
    pub base: String,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// Chromedriver and Chromium, or `None` (with a note) when they are not installed and the
/// browser suite is not required.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let driver = tool("WHARF_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = tool("WHARF_TEST_CHROMIUM", "/usr/bin/chromium");
    if driver.exists() && chromium.exists() {
        return Some((driver, chromium));
    }
    let why = format!("the console's browser tests need {} and {}", driver.display(), chromium.display());
    if std::env::var("WHARF_TEST_BROWSER").is_ok_and(|v| v == "required") {
        panic!("{why} (WHARF_TEST_BROWSER=required): apt-get install chromium chromium-driver");
    }
    eprintln!("browser suite off: {why} (apt-get install chromium chromium-driver)");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// A new Chromium at 1280×800 on the console of `server`, signed in as the test admin.
    pub async fn signed_in(server: &TestServer) -> Option<Self> {
        let browser = Self::open(server, (1280, 800)).await?;
        browser.sign_in(CLIENT_ID, CLIENT_SECRET).await;
        Some(browser)
    }

    /// A new Chromium with a window of `size`, on the console's sign-in page.
    pub async fn open(server: &TestServer, size: (u32, u32)) -> Option<Self> {
        let (driver_path, chromium) = browser_tools()?;
        let slot = SLOTS.acquire().await.expect("the semaphore is never closed");
        let profile = tempfile::tempdir().expect("a profile directory");
        let port = free_port();
        let driver = std::process::Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display()));
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            format!("--window-size={},{}", size.0, size.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
        capabilities.insert("pageLoadStrategy".into(), json!("normal"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("chromedriver at {url} did not start a session: {err}"),
            }
        };
        let browser = Self { client: Some(client), base: server.base.clone(), driver, _profile: profile, _slot: slot };
        browser.client().goto(&format!("{}/", browser.base)).await.expect("the console loads");
        Some(browser)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open until close")
    }

    /// Signs in through the form and waits for the shell.
    pub async fn sign_in(&self, client_id: &str, secret: &str) {
        self.submit_sign_in(client_id, secret).await;
        self.wait_for_selector("#main .page").await;
    }

    /// Fills the sign-in form and submits it, without waiting for the outcome.
    pub async fn sign_in_expecting_error(&self, client_id: &str, secret: &str) {
        self.submit_sign_in(client_id, secret).await;
    }

    async fn submit_sign_in(&self, client_id: &str, secret: &str) {
        self.wait_for_selector("#client-id").await;
        self.fill_id("client-id", client_id).await;
        self.fill_id("client-secret", secret).await;
        self.click_button("Sign in").await;
    }

    /// Goes to a console route, e.g. `#/catalog/blueprints`.
    pub async fn goto(&self, route: &str) {
        let route = route.trim_start_matches('/');
        self.client().goto(&format!("{}/{route}", self.base)).await.expect("navigation");
        self.wait_until("document.readyState === 'complete' && !!document.querySelector('#main, .signin')").await;
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.eval("return document.body.innerText").await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn eval_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client().execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.eval_with(script, Vec::new()).await
    }

    /// Waits until `condition` (a JS expression) is truthy; fails the test after 15 s.
    pub async fn wait_until(&self, condition: &str) {
        let script = format!("return !!({condition})");
        let deadline = Instant::now() + WAIT;
        loop {
            if self.client().execute(&script, Vec::new()).await.ok().and_then(|v| v.as_bool()) == Some(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.text().await;
                panic!("waited 15 s for `{condition}`; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's text contains `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let quoted = serde_json::to_string(text).expect("a string serializes");
        self.wait_until(&format!("document.body.innerText.includes({quoted})")).await;
    }

    /// Waits until no element matches `selector`... and until one does, for `wait_for_selector`.
    pub async fn wait_for_selector(&self, selector: &str) {
        let quoted = serde_json::to_string(selector).expect("a string serializes");
        self.wait_until(&format!("document.querySelector({quoted})")).await;
    }

    /// The first visible element that `xpath` matches, waiting for it.
    async fn visible(&self, xpath: &str, what: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(elements) = self.client().find_all(Locator::XPath(xpath)).await {
                for element in elements {
                    if element.is_displayed().await.unwrap_or(false) {
                        return element;
                    }
                }
            }
            if Instant::now() > deadline {
                let text = self.text().await;
                panic!("no visible {what} after 15 s; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the enabled button whose text is `label` (or starts with it).
    pub async fn click_button(&self, label: &str) {
        let xpath = format!(
            "//button[not(@disabled)][normalize-space()={q} or starts-with(normalize-space(), {q}) or @aria-label={q}]",
            q = xpath_string(label)
        );
        self.visible(&xpath, &format!("button `{label}`")).await.click().await.expect("click");
    }

    /// Clicks the link whose text is `label` (or contains it).
    pub async fn click_link(&self, label: &str) {
        let xpath = format!("//a[normalize-space()={q} or contains(normalize-space(), {q})]", q = xpath_string(label));
        self.visible(&xpath, &format!("link `{label}`")).await.click().await.expect("click");
    }

    /// The id of the form control whose `<label>` text is `label` (or starts with it).
    async fn control_id(&self, label: &str) -> String {
        let xpath =
            format!("//label[normalize-space()={q} or starts-with(normalize-space(), {q})][@for]", q = xpath_string(label));
        let element = self.visible(&xpath, &format!("label `{label}`")).await;
        element.attr("for").await.ok().flatten().unwrap_or_else(|| panic!("label `{label}` names no control"))
    }

    /// Types `value` into the control labelled `label`, replacing what it held.
    pub async fn fill(&self, label: &str, value: &str) {
        let id = self.control_id(label).await;
        self.fill_id(&id, value).await;
    }

    /// Types `value` into the control with id `id`, replacing what it held.
    pub async fn fill_id(&self, id: &str, value: &str) {
        let element = self.client().find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no #{id}: {e}"));
        element.clear().await.expect("clear");
        // Cleared by script too (a textarea's clear leaves Preact's state behind): select all, then type.
        self.eval_with(
            "const e = document.getElementById(arguments[0]); e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![json!(id)],
        )
        .await;
        element.send_keys(value).await.expect("typing");
    }

    /// Picks the option with value `value` in the select labelled `label`.
    pub async fn select(&self, label: &str, value: &str) {
        let id = self.control_id(label).await;
        let element = self.client().find(Locator::Id(&id)).await.expect("the select");
        element.select_by_value(value).await.unwrap_or_else(|e| panic!("no option `{value}` in `{label}`: {e}"));
    }

    /// Ticks or clears the checkbox labelled `label`.
    pub async fn check(&self, label: &str, on: bool) {
        let id = self.control_id(label).await;
        let element = self.client().find(Locator::Id(&id)).await.expect("the checkbox");
        if element.is_selected().await.unwrap_or(false) != on {
            element.click().await.expect("click");
        }
    }

    /// Fails the test when axe-core finds a serious or critical accessibility violation on the
    /// page as it is now.
    pub async fn assert_accessible(&self, screen: &str) {
        // Once per document: the console's screens change by hash, in the same document.
        if self.eval("return typeof window.axe === 'undefined'").await == Value::Bool(true) {
            self.eval(AXE).await;
        }
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']}).then(
              (r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}))),
              (e) => done([{id: 'axe-error', help: String(e)}]));
        "#;
        let violations = self.client().execute_async(script, Vec::new()).await.expect("axe runs");
        let violations = violations.as_array().cloned().unwrap_or_default();
        assert!(violations.is_empty(), "{screen}: axe-core found {} violations:\n{violations:#?}", violations.len());
    }

    /// The addresses the page loaded anything from that are not this server's.
    pub async fn requests_elsewhere(&self) -> Vec<String> {
        let entries = self
            .eval("return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map((e) => e.name)")
            .await;
        let base = format!("{}/", self.base);
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .filter(|u| !u.starts_with(&base))
            .map(str::to_owned)
            .collect()
    }

    /// Writes a PNG of the window to `target/console-screenshots/NAME.png`, and to
    /// `docs/screenshots/NAME.png` with `WHARF_UPDATE_SCREENSHOTS=1` (the README's pictures).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.expect("a screenshot");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut places = vec![root.join("target/console-screenshots")];
        if std::env::var("WHARF_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            places.push(root.join("docs/screenshots"));
        }
        for dir in places {
            std::fs::create_dir_all(&dir).expect("screenshot directory");
            std::fs::write(dir.join(format!("{name}.png")), &png).expect("screenshot written");
        }
    }

    /// Ends the WebDriver session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromedriver leads a process group of its own: Chromium and its helpers go with it.
        let group = format!("-{}", self.driver.id());
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.wait();
    }
}

/// `text` as an XPath 1.0 string literal (which has no escapes: quotes are joined with concat).
fn xpath_string(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}
