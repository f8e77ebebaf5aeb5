//! Workflow node runs: a WEBHOOK node with `agent: true` waits for an execution agent, which
//! claims it from `POST /v1/workflows/runs/claim-pending`, acknowledges it (`PATCH
//! /v1/workflows/runs/ack`), sends its request and completes it (`PATCH
//! /v1/workflows/nodes/runs/{id}`), as Port's agent does (`polling_streamer.py`
//! `process_wf_node_run`, `polling_to_webhook_processor.py`, `webhook_invoker.py`
//! `_invoke_wf_node_run`; reference §5.4).
//!
//! The message the payload config reads is Port's: `{"headers", "payload": {"action":
//! {"invocationMethod"}}, "context": {"runId", "nodeConfig"}}`. Where the mapping gives no
//! body or headers, the node's own (`config.body`, `config.headers`, rendered by Wharf) are
//! sent: Port's agent would send the whole message with no headers, which is not the request
//! the workflow describes.

use serde_json::{Value, json};

use crate::message::{truthy, type_name};
use crate::payload::Defaults;
use crate::report::Answer;

/// The node run log lines, Port's agent's words (the status lines are the action run's,
/// [`crate::report::logs`]).
pub mod logs {
    pub const RECEIVED: &str = "A workflow node run has been received";
    pub const FINISHED: &str = "Port agent finished processing the workflow node run";
}

/// A node run claimed from Wharf, ready to carry out.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRunMessage {
    /// The node run's id (`wfnr_…`).
    pub node_run_id: String,
    /// The invocation method as Port's agent rebuilds it from the node's `config`: `type`,
    /// `url`, `synchronized` (default `false`), `method` (default `POST`), `headers` (default
    /// `{}`); `agent` is taken out.
    pub invocation: Value,
    /// What the payload mapping reads; the node's rendered config (`type`, `url`, `method`,
    /// `headers`, `body`, `synchronized`, `agent`) is its `context.nodeConfig`.
    pub message: Value,
}

/// What a claimed node run turns out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum RebuiltNodeRun {
    NodeRun(NodeRunMessage),
    /// Its config's `agent` is not true: Port's agent skips it (with a warning, reporting
    /// nothing).
    NotForAgent,
}

/// Why a claimed node run cannot be carried out (it is then completed `FAILED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeRunError {
    #[error("the node run's `config` is {0}, not an object")]
    ConfigNotObject(&'static str),
}

/// The id of a claimed node run document (`identifier`), when it has one.
pub fn node_run_id(node_run: &Value) -> Option<&str> {
    node_run.get("identifier").and_then(Value::as_str).filter(|id| !id.is_empty())
}

/// Rebuilds the message of a claimed node run (`node_run_id` is its `identifier`); a missing
/// `config` is `{}`, as Port's agent reads it.
pub fn rebuild(node_run_id: &str, node_run: &Value) -> Result<RebuiltNodeRun, NodeRunError> {
    let config = match node_run.get("config") {
        None | Some(Value::Null) => json!({}),
        Some(config @ Value::Object(_)) => config.clone(),
        Some(other) => return Err(NodeRunError::ConfigNotObject(type_name(other))),
    };
    let get = |key: &str| config.get(key).cloned().unwrap_or(Value::Null);
    // `config.get(key, default)`: a key that is there keeps its value, `null` included.
    let or = |key: &str, default: Value| config.get(key).cloned().unwrap_or(default);
    let invocation = json!({
        "type": get("type"),
        "url": get("url"),
        "synchronized": or("synchronized", Value::Bool(false)),
        "method": or("method", Value::from("POST")),
        "headers": or("headers", json!({})),
    });
    if !truthy(&get("agent")) {
        return Ok(RebuiltNodeRun::NotForAgent);
    }
    let message = json!({
        "headers": invocation["headers"],
        "payload": {"action": {"invocationMethod": invocation}},
        "context": {"runId": node_run_id, "nodeConfig": config},
    });
    Ok(RebuiltNodeRun::NodeRun(NodeRunMessage { node_run_id: node_run_id.to_owned(), invocation, message }))
}

impl NodeRunMessage {
    /// Whether the node waits for its response (then the agent completes it).
    pub fn synchronized(&self) -> bool {
        truthy(&self.invocation["synchronized"])
    }

    /// The request where the mapping does not say: the invocation's method and URL, the
    /// node's body (`null`: none is sent) and headers.
    pub fn defaults(&self) -> Defaults {
        let config = &self.message["context"]["nodeConfig"];
        let headers = match config.get("headers") {
            Some(headers @ Value::Object(_)) => headers.clone(),
            Some(Value::Null) | None => json!({}),
            Some(other) => other.clone(),
        };
        Defaults {
            method: self.invocation["method"].clone(),
            url: self.invocation["url"].clone(),
            body: Some(config.get("body").cloned().unwrap_or(Value::Null)),
            headers,
        }
    }
}

/// `{"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status", "data"}}}`:
/// a synchronized node run answered below 400; `data` is the response body (JSON, else its
/// text), `{}` when that is empty.
pub fn success_patch(answer: &Answer) -> Value {
    let body = answer.body();
    let data = if truthy(&body) { body } else { json!({}) };
    json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status": answer.status, "data": data}}})
}

/// `{"status": "COMPLETED", "result": "FAILED"}`: a node run whose request failed or could not
/// be made.
pub fn failed_patch() -> Value {
    json!({"status": "COMPLETED", "result": "FAILED"})
}
