//! The message the agent works on, rebuilt from a claimed run as Port's agent rebuilds it in
//! polling mode (`polling_streamer.py`, `polling_to_webhook_processor.py`): the run's rendered
//! `payload.body`, with `headers`, `payload.action.invocationMethod` and `context.runId` set.

use serde_json::{Map, Value, json};

/// A run claimed from Wharf, ready to carry out.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMessage {
    /// The run's id (`r_…`).
    pub run_id: String,
    /// The invocation method as Port's agent rebuilds it from the run's `payload`: `type`,
    /// `url`, `synchronized` (default `false`), `method` (default `POST`), `headers` (default
    /// `{}`); `agent` is taken out.
    pub invocation: Value,
    /// What the payload mapping reads (and, by default, the body sent): the run's
    /// `payload.body` with `headers`, `payload.action.invocationMethod` and `context.runId`.
    pub message: Value,
}

/// What a claimed run turns out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Rebuilt {
    /// A run for the agent.
    Run(RunMessage),
    /// Its invocation method's `agent` is not true: Port's agent skips such a run (with a
    /// warning, and without reporting anything).
    NotForAgent,
}

/// Why a claimed run cannot be carried out: Port's agent fails such a run with
/// `"Agent failed to process the run"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the run has no `payload` object")]
    NoPayload,
    #[error("the run's payload has no `{0}`")]
    Missing(&'static str),
    #[error("the run's `payload.body` is {0}, not an object")]
    BodyNotObject(&'static str),
    #[error("the run's `payload.body.{0}` is not an object")]
    NotObject(&'static str),
}

/// The id of a claimed run document, when it has one.
pub fn run_id(run: &Value) -> Option<&str> {
    run.get("id").and_then(Value::as_str).filter(|id| !id.is_empty())
}

/// Rebuilds the message of a claimed run (`run_id` is its `id`).
pub fn rebuild(run_id: &str, run: &Value) -> Result<Rebuilt, MessageError> {
    let payload = run.get("payload").and_then(Value::as_object).ok_or(MessageError::NoPayload)?;
    let required = |key: &'static str| payload.get(key).cloned().ok_or(MessageError::Missing(key));
    // `payload.get(key, default)`: a key that is there keeps its value, `null` included.
    let or = |key: &str, default: Value| payload.get(key).cloned().unwrap_or(default);
    let invocation = json!({
        "type": required("type")?,
        "url": required("url")?,
        "synchronized": or("synchronized", Value::Bool(false)),
        "method": or("method", Value::from("POST")),
        "headers": or("headers", json!({})),
    });
    if !truthy(&required("agent")?) {
        return Ok(Rebuilt::NotForAgent);
    }
    let mut message = match required("body")? {
        Value::Object(body) => body,
        other => return Err(MessageError::BodyNotObject(type_name(&other))),
    };
    message.insert("headers".into(), invocation["headers"].clone());
    let payload = object_at(&mut message, "payload", "payload")?;
    let action = object_at(payload, "action", "payload.action")?;
    action.insert("invocationMethod".into(), invocation.clone());
    let context = object_at(&mut message, "context", "context")?;
    context.insert("runId".into(), Value::from(run_id));
    Ok(Rebuilt::Run(RunMessage { run_id: run_id.to_owned(), invocation, message: Value::Object(message) }))
}

/// The object under `key`, made `{}` when it is missing.
fn object_at<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a mut Map<String, Value>, MessageError> {
    map.entry(key).or_insert_with(|| json!({})).as_object_mut().ok_or(MessageError::NotObject(path))
}

/// Python's truthiness of a JSON value, as Port's agent tests `agent`, `synchronized` and a
/// response body: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The invocation method in a message (`payload.action.invocationMethod`), as Port's agent
/// reads it for the report (`get_invocation_method_object`).
pub fn invocation_of(message: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    message.pointer("/payload/action/invocationMethod").unwrap_or(&EMPTY)
}
