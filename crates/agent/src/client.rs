//! The agent's calls of Wharf's API: an access token from the client id and secret (renewed
//! before it expires, and once on a 401), Port's polling routes, and the run reports.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::Backoff;

/// Why a call of Wharf failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer, or one that says to try again (5xx, 429): worth retrying.
    #[error("Wharf is unreachable: {0}")]
    Unreachable(String),
    /// Wharf refused the call (another 4xx): retrying will not help.
    #[error("Wharf answered {status}: {text}")]
    Refused { status: u16, text: String },
    /// Wharf refused the client id and secret.
    #[error("Wharf refused the client id and secret ({status}): {text}")]
    Credentials { status: u16, text: String },
    /// Wharf's answer is not what the protocol says.
    #[error("Wharf's answer is not understood: {0}")]
    Invalid(String),
}

impl CallError {
    fn retryable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// How reports are retried while Wharf is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least one).
    pub attempts: u32,
    pub backoff: Backoff,
}

/// The most characters of an error answer kept in an error.
const ERROR_TEXT_CHARS: usize = 500;

/// A client of Wharf's API, shared by the agent's tasks.
pub struct Wharf {
    http: reqwest::Client,
    /// With a trailing `/`, so that `v1/…` joins under it.
    base: Url,
    client_id: String,
    client_secret: String,
    timeout: Duration,
    token: Mutex<Option<Token>>,
}

struct Token {
    value: String,
    renew_at: Instant,
}

impl Wharf {
    pub fn new(http: reqwest::Client, base: &Url, client_id: String, client_secret: String, timeout: Duration) -> Self {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Self { http, base, client_id, client_secret, timeout, token: Mutex::new(None) }
    }

    /// A token, renewed when it is due.
    async fn token(&self) -> Result<String, CallError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let body = json!({"clientId": self.client_id, "clientSecret": self.client_secret});
        let url = self.url(&["v1", "auth", "access_token"]);
        let answer = self.send(Method::POST, url, None, Some(&body), self.timeout).await.map_err(|err| match err {
            CallError::Refused { status, text } if matches!(status, 400 | 401 | 403 | 404 | 422) => {
                CallError::Credentials { status, text }
            }
            other => other,
        })?;
        let value =
            answer.get("accessToken").and_then(Value::as_str).ok_or_else(|| CallError::Invalid("no `accessToken`".into()))?;
        let lifetime = answer.get("expiresIn").and_then(Value::as_u64).unwrap_or(3600);
        // Renewed at four fifths of its life, so that no call carries an expired token.
        let renew_at = Instant::now() + Duration::from_secs(lifetime.saturating_mul(4) / 5);
        *held = Some(Token { value: value.to_owned(), renew_at });
        Ok(value.to_owned())
    }

    /// Forgets `token` if it is the one held (a 401 said it no longer works).
    async fn forget(&self, token: &str) {
        let mut held = self.token.lock().await;
        if held.as_ref().is_some_and(|t| t.value == token) {
            *held = None;
        }
    }

    /// Gets a token now (at start: wrong credentials are found before anything else).
    pub async fn authenticate(&self) -> Result<(), CallError> {
        self.token().await.map(drop)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend(segments);
        url
    }

    /// One call with the token, renewed and tried again once on a 401.
    async fn call(&self, method: Method, url: Url, body: &Value, timeout: Duration) -> Result<Value, CallError> {
        let token = self.token().await?;
        match self.send(method.clone(), url.clone(), Some(&token), Some(body), timeout).await {
            Err(CallError::Refused { status: 401, .. }) => {
                self.forget(&token).await;
                let token = self.token().await?;
                self.send(method, url, Some(&token), Some(body), timeout).await
            }
            other => other,
        }
    }

    /// [`Wharf::call`], tried again while Wharf is unreachable, `retry.attempts` times at most.
    async fn call_with_retry(&self, method: Method, url: Url, body: &Value, retry: Retry) -> Result<Value, CallError> {
        let mut failures = 0;
        loop {
            match self.call(method.clone(), url.clone(), body, self.timeout).await {
                Err(err) if err.retryable() && failures + 1 < retry.attempts => {
                    tracing::debug!(%url, error = %err, "a report to Wharf failed; trying again");
                    tokio::time::sleep(retry.backoff.delay(failures)).await;
                    failures += 1;
                }
                other => return other,
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let mut request = self.http.request(method, url).timeout(timeout).header("x-port-reserved-usage", "true");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CallError::Unreachable(describe(&e)))?;
        if status.is_success() {
            return if text.trim().is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_str(&text).map_err(|e| CallError::Invalid(format!("not JSON: {e}")))
            };
        }
        let text: String = text.chars().take(ERROR_TEXT_CHARS).collect();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
            Err(CallError::Unreachable(format!("{status}: {text}")))
        } else {
            Err(CallError::Refused { status: status.as_u16(), text })
        }
    }

    /// `PATCH /v1/organization` `{"settings":{"portAgentStreamerName":"POLLING"}}`, as Port's
    /// agent says at start which way it takes runs.
    pub async fn set_streamer(&self, retry: Retry) -> Result<(), CallError> {
        let body = json!({"settings": {"portAgentStreamerName": "POLLING"}});
        self.call_with_retry(Method::PATCH, self.url(&["v1", "organization"]), &body, retry).await.map(drop)
    }

    /// `POST /v1/actions/runs/claim-pending`: up to `limit` pending WEBHOOK runs for the agent;
    /// with `wait`, Wharf answers as soon as one is claimable or after it (a long poll).
    pub async fn claim(
        &self,
        installation_id: &str,
        limit: usize,
        visibility: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<Vec<Value>, CallError> {
        let mut body = json!({"installationId": installation_id, "limit": limit, "invocationMethod": "WEBHOOK"});
        if let Some(visibility) = visibility {
            body["visibilityTimeoutMs"] = json!(millis(visibility));
        }
        if let Some(wait) = wait {
            body["waitMs"] = json!(millis(wait));
        }
        // A long poll is answered after `wait` at the latest.
        let timeout = self.timeout + wait.unwrap_or_default();
        let answer = self.call(Method::POST, self.url(&["v1", "actions", "runs", "claim-pending"]), &body, timeout).await?;
        match answer.get("runs") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(runs)) => Ok(runs.clone()),
            Some(_) => Err(CallError::Invalid("`runs` is not an array".into())),
        }
    }

    /// `PATCH /v1/actions/runs/ack`: the ids of `run_ids` that this agent acknowledged (the
    /// others were acknowledged by another agent, or are no longer pending).
    pub async fn ack(&self, run_ids: &[String], retry: Retry) -> Result<Vec<String>, CallError> {
        let body = json!({"runIds": run_ids});
        let answer = self.call_with_retry(Method::PATCH, self.url(&["v1", "actions", "runs", "ack"]), &body, retry).await?;
        if let Some(acked) = answer.get("acked").and_then(Value::as_array) {
            return Ok(acked
                .iter()
                .filter_map(Value::as_str)
                .filter(|id| run_ids.iter().any(|r| r == id))
                .map(str::to_owned)
                .collect());
        }
        // Port's answer has only the count: all of them or, not knowing which, none.
        match answer.get("ackedCount").and_then(Value::as_u64) {
            Some(count) if count as usize == run_ids.len() => Ok(run_ids.to_vec()),
            Some(_) => Err(CallError::Invalid("`ackedCount` without `acked`: which runs were acknowledged is unknown".into())),
            None => Err(CallError::Invalid("no `acked`".into())),
        }
    }

    /// `POST /v1/actions/runs/{id}/logs` `{"message"}`.
    pub async fn log(&self, run_id: &str, message: &str, retry: Retry) -> Result<(), CallError> {
        let url = self.url(&["v1", "actions", "runs", run_id, "logs"]);
        self.call_with_retry(Method::POST, url, &json!({"message": message}), retry).await.map(drop)
    }

    /// `PATCH /v1/actions/runs/{id}/response` `{"response"}`.
    pub async fn report_response(&self, run_id: &str, response: &Value, retry: Retry) -> Result<(), CallError> {
        let url = self.url(&["v1", "actions", "runs", run_id, "response"]);
        self.call_with_retry(Method::PATCH, url, &json!({"response": response}), retry).await.map(drop)
    }

    /// `PATCH /v1/actions/runs/{id}` with `{status, link, summary, externalRunId}`.
    pub async fn report_status(&self, run_id: &str, patch: &Value, retry: Retry) -> Result<(), CallError> {
        let url = self.url(&["v1", "actions", "runs", run_id]);
        self.call_with_retry(Method::PATCH, url, patch, retry).await.map(drop)
    }
}

/// Workflow node runs (Port's agent's `claim_pending_wf_node_runs`, `ack_wf_node_run`,
/// `wf_node_run_logger_factory`, `report_wf_node_run_status`).
impl Wharf {
    /// `POST /v1/workflows/runs/claim-pending`: up to `limit` node runs waiting for an agent,
    /// each with its rendered `config`; with `wait`, a long poll.
    pub async fn claim_node_runs(
        &self,
        installation_id: &str,
        limit: usize,
        visibility: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<Vec<Value>, CallError> {
        let mut body = json!({"installationId": installation_id, "limit": limit});
        if let Some(visibility) = visibility {
            body["visibilityTimeoutMs"] = json!(millis(visibility));
        }
        if let Some(wait) = wait {
            body["waitMs"] = json!(millis(wait));
        }
        let timeout = self.timeout + wait.unwrap_or_default();
        let answer = self.call(Method::POST, self.url(&["v1", "workflows", "runs", "claim-pending"]), &body, timeout).await?;
        match answer.get("nodeRuns") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(node_runs)) => Ok(node_runs.clone()),
            Some(_) => Err(CallError::Invalid("`nodeRuns` is not an array".into())),
        }
    }

    /// `PATCH /v1/workflows/runs/ack` `{"nodeRunIdentifier"}`: `true` when this agent took
    /// it; `false` when another agent did, or it is no longer waiting (409, 404).
    pub async fn ack_node_run(&self, node_run_id: &str, retry: Retry) -> Result<bool, CallError> {
        let body = json!({"nodeRunIdentifier": node_run_id});
        match self.call_with_retry(Method::PATCH, self.url(&["v1", "workflows", "runs", "ack"]), &body, retry).await {
            Ok(answer) => match answer.get("acked") {
                Some(Value::Bool(acked)) => Ok(*acked),
                _ => Err(CallError::Invalid("no `acked`".into())),
            },
            Err(CallError::Refused { status: 404 | 409, .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// `POST /v1/workflows/nodes/runs/{id}/logs` `{"logs": [{"level": "INFO", "message"}]}`.
    pub async fn node_log(&self, node_run_id: &str, message: &str, retry: Retry) -> Result<(), CallError> {
        let url = self.url(&["v1", "workflows", "nodes", "runs", node_run_id, "logs"]);
        let body = json!({"logs": [{"level": "INFO", "message": message}]});
        self.call_with_retry(Method::POST, url, &body, retry).await.map(drop)
    }

    /// `PATCH /v1/workflows/nodes/runs/{id}` with `{status, result, output}`.
    pub async fn report_node_run(&self, node_run_id: &str, patch: &Value, retry: Retry) -> Result<(), CallError> {
        let url = self.url(&["v1", "workflows", "nodes", "runs", node_run_id]);
        self.call_with_retry(Method::PATCH, url, patch, retry).await.map(drop)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A transport error in words, without its URL.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the answer was cut short"
    } else if err.is_redirect() {
        "too many redirects"
    } else {
        "the request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    match causes.last() {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}
