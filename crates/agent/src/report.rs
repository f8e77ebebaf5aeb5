//! What the agent reports to Wharf once a run's request was answered, as Port's agent decides
//! it (`WebhookInvoker._prepare_report`, `_invoke_run`).

use serde_json::{Map, Value, json};
use wharf_core::run::SUMMARY_RESPONSE_CHARS;

use crate::message::truthy;

/// Port's summary of a run that could not be carried out (a processing failure).
pub const PROCESSING_FAILURE_SUMMARY: &str = "Agent failed to process the run";

/// The summary of a run the agent was stopped in the middle of (Wharf's; Port's agent has no
/// graceful stop).
pub const STOPPED_SUMMARY: &str = "The agent stopped before the run finished";

/// The run log lines, Port's agent's words.
pub mod logs {
    pub const RECEIVED: &str = "An action message has been received";
    pub const PREPARING: &str = "Preparing the payload for the request";
    pub const SENDING: &str = "Sending the request";
    pub const REPORTING_RESPONSE: &str = "Reporting the run response";
    /// With Port's trailing space.
    pub const RESPONSE_REPORTED: &str = "The run response was reported successfully ";
    pub const FINISHED: &str = "Port agent finished processing the action run";

    /// After a response of status below 400.
    pub fn succeeded(status: u16) -> String {
        format!("Action invocation has completed successfully with status code: {status}")
    }

    /// After a response of status 400 or more (Port's `DETAILED_LOGGING`, on by default, adds
    /// the response).
    pub fn failed(status: u16, text: &str) -> String {
        format!("Action invocation failed with status code: {status} and response: {}", super::clip(text))
    }

    pub fn response_not_reported(status: u16, text: &str) -> String {
        format!("The run response failed to be reported with status code: {status} and response: {}", super::clip(text))
    }

    pub fn status_not_reported(status: u16, text: &str) -> String {
        format!("The run state failed to be reported with status code: {status} and response: {}", super::clip(text))
    }
}

/// What the target answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub status: u16,
    /// Header names (lower case) and values; a name that came several times has its values
    /// joined with `", "`.
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced).
    pub text: String,
}

impl Answer {
    /// Whether the request succeeded: a status below 400 (Python's `requests`' `ok`).
    pub fn ok(&self) -> bool {
        self.status < 400
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    /// The body as JSON when it is JSON, else as a string (`get_response_body`).
    pub fn body(&self) -> Value {
        self.json().unwrap_or_else(|| Value::String(self.text.clone()))
    }

    /// `{"statusCode", "headers", "text", "json"}`: what report expressions see as `.response`.
    pub fn to_value(&self) -> Value {
        let headers: Map<String, Value> = self.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        json!({"statusCode": self.status, "headers": headers, "text": self.text, "json": self.json()})
    }
}

/// `PATCH /v1/actions/runs/{id}`'s fields; `null` ones are left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub status: Value,
    pub link: Value,
    pub summary: Value,
    pub external_run_id: Value,
}

impl Report {
    /// Port's default: a response below 400 ends a synchronized run `SUCCESS` and leaves an
    /// asynchronous one to its backend (no status); any other ends the run `FAILURE` with the
    /// summary `Failed to invoke the webhook with status code: N. Response: …` (the response's
    /// first [`SUMMARY_RESPONSE_CHARS`] characters, as Wharf's own invoker keeps them).
    pub fn default_for(synchronized: bool, answer: &Answer) -> Self {
        if answer.ok() {
            let status = if synchronized { Value::from("SUCCESS") } else { Value::Null };
            return Self { status, ..Self::default() };
        }
        let summary =
            format!("Failed to invoke the webhook with status code: {}. Response: {}", answer.status, clip(&answer.text));
        Self { status: Value::from("FAILURE"), summary: Value::String(summary), ..Self::default() }
    }

    /// The body of the run's PATCH, or `None` when there is nothing to report.
    pub fn to_patch(&self) -> Option<Value> {
        let fields = [
            ("status", &self.status),
            ("link", &self.link),
            ("summary", &self.summary),
            ("externalRunId", &self.external_run_id),
        ];
        let patch: Map<String, Value> = fields
            .into_iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| (key.to_owned(), value.clone()))
            .collect();
        (!patch.is_empty()).then_some(Value::Object(patch))
    }
}

/// The response to report (`PATCH /v1/actions/runs/{id}/response`): a synchronized run's
/// non-empty response body, whatever its status; `None` otherwise.
pub fn response_to_report(synchronized: bool, answer: &Answer) -> Option<Value> {
    let body = answer.body();
    (synchronized && truthy(&body)).then_some(body)
}

/// The first [`SUMMARY_RESPONSE_CHARS`] characters of a response, for a summary or a log
/// line (Wharf keeps at most 10,000 of either).
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(SUMMARY_RESPONSE_CHARS).collect()
}
