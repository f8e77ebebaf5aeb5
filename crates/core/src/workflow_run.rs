//! Workflow runs and node runs (reference §4.6, SPEC §9): what a run is, how ending each node
//! run moves it on, the template context a node renders with (§4.5), and the documents the
//! backends and agents send back (`PATCH /v1/workflows/nodes/runs/{id}`, node logs).
//!
//! Architecture Invariant: a workflow run moves only through [`end_node_run`] (and
//! [`WorkflowRun::cancel`]); the engine writes what it decided and decides nothing itself. A
//! run has at most one node run in progress (the graph has no fan-out), so its outputs and its
//! next node are never contended.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::json::type_name;
use crate::run::Answer;
use crate::time::Timestamp;
use crate::workflow::{Node, OnFailure, OnTimeout, WorkflowDef, failure_output, webhook_output};

const CODE: &str = "invalid_node_run";
/// The most characters of one node log message.
pub const MAX_NODE_LOG_MESSAGE: usize = 10_000;
/// The most log lines one request may add.
pub const MAX_NODE_LOGS_PER_REQUEST: usize = 100;

/// Where a workflow run or a node run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        [Self::InProgress, Self::Completed].into_iter().find(|s| s.as_str() == text)
    }
}

/// How a completed run or node run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Success,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Success, Self::Failed, Self::Cancelled].into_iter().find(|s| s.as_str() == text)
    }
}

/// Who or what started a run (`.workflowRun.trigger`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// The trigger node that fired.
    pub identifier: String,
    /// `SELF_SERVE_TRIGGER`, `EVENT_TRIGGER` or `SCHEDULE_TRIGGER`.
    pub config_type: String,
    /// The user (`{email, firstName, lastName}`); `{}` for events and schedules.
    pub by: Value,
}

/// A workflow run (`wfr_…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    pub identifier: String,
    pub workflow_identifier: String,
    pub workflow_version_identifier: String,
    pub status: Status,
    pub result: Option<Outcome>,
    /// Each node run's output by node identifier (`.outputs`), the trigger's included.
    pub outputs: Map<String, Value>,
    pub trigger: Started,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// A node run (`wfnr_…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRun {
    pub identifier: String,
    pub workflow_run_identifier: String,
    pub node_identifier: String,
    pub node_title: Option<String>,
    pub node_icon: Option<String>,
    pub node_config_type: String,
    pub status: Status,
    pub result: Option<Outcome>,
    pub output: Option<Value>,
    /// What a WEBHOOK node sent, secrets masked (`{method, url, headers, body}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// A node run's log line.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLog {
    pub level: String,
    pub message: String,
    pub tags: Option<Value>,
    pub created_at: Timestamp,
}

impl NodeLog {
    /// Port's shape (`logLevel`, `log`), with `message` too (the agent's and Ocean's word).
    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "logLevel": self.level, "log": self.message, "message": self.message, "createdAt": self.created_at.to_iso(),
        });
        if let Some(tags) = &self.tags {
            doc["tags"] = tags.clone();
        }
        doc
    }
}

impl WorkflowRun {
    /// A run of `def` (version `version`) that `trigger` started; the trigger's node run
    /// ends first ([`end_node_run`]), giving `.outputs` the trigger's output.
    pub fn start(id: String, def: &WorkflowDef, version: &str, trigger: Started, by: &str, now: Timestamp) -> Self {
        Self {
            identifier: id,
            workflow_identifier: def.identifier.clone(),
            workflow_version_identifier: version.to_owned(),
            status: Status::InProgress,
            result: None,
            outputs: Map::new(),
            trigger,
            created_at: now,
            created_by: by.to_owned(),
            updated_at: now,
            completed_at: None,
        }
    }

    pub fn from_json(doc: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(doc)
    }

    /// What is stored.
    pub fn to_stored(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Port's shape: the run, `variables.outputs`, and (given) its node runs.
    pub fn to_json(&self, node_runs: Option<Vec<Value>>) -> Value {
        let mut doc = json!({
            "identifier": self.identifier,
            "workflowIdentifier": self.workflow_identifier,
            "workflowVersionIdentifier": self.workflow_version_identifier,
            "status": self.status.as_str(),
            "result": self.result.map(Outcome::as_str),
            "variables": {"outputs": self.outputs_with_alias()},
            "trigger": self.trigger,
            "createdAt": self.created_at.to_iso(),
            "createdBy": self.created_by,
            "updatedAt": self.updated_at.to_iso(),
            "completedAt": self.completed_at.map(Timestamp::to_iso),
        });
        if let Some(node_runs) = node_runs {
            doc["nodeRuns"] = Value::Array(node_runs);
        }
        doc
    }

    /// `.outputs`: every node's output, and `trigger` for the trigger that fired (reference
    /// §4.5: "always aliased to whichever trigger node actually fired").
    pub fn outputs_with_alias(&self) -> Value {
        let mut outputs = self.outputs.clone();
        if let Some(fired) = self.outputs.get(&self.trigger.identifier) {
            outputs.entry("trigger").or_insert_with(|| fired.clone());
        }
        Value::Object(outputs)
    }

    pub fn has_ended(&self) -> bool {
        self.status == Status::Completed
    }

    fn end(&mut self, outcome: Outcome, now: Timestamp) {
        self.status = Status::Completed;
        self.result = Some(outcome);
        self.completed_at = Some(now);
        self.updated_at = now;
    }

    /// Ends a run that cannot go on (its version is gone, a node vanished): `FAILED`.
    pub fn cancel(&mut self, outcome: Outcome, now: Timestamp) {
        self.end(outcome, now);
    }
}

impl NodeRun {
    /// A node run of `node` in `run`, in progress.
    pub fn start(id: String, run: &WorkflowRun, node: &Node, now: Timestamp) -> Self {
        Self {
            identifier: id,
            workflow_run_identifier: run.identifier.clone(),
            node_identifier: node.identifier.clone(),
            node_title: node.title.clone(),
            node_icon: node.icon.clone(),
            node_config_type: node.config_type().to_owned(),
            status: Status::InProgress,
            result: None,
            output: None,
            request: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
        }
    }

    pub fn from_json(doc: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(doc)
    }

    pub fn to_stored(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Port's shape, with its logs.
    pub fn to_json(&self, logs: &[NodeLog]) -> Value {
        let mut doc = self.to_stored();
        doc["status"] = json!(self.status.as_str());
        doc["result"] = json!(self.result.map(Outcome::as_str));
        doc["createdAt"] = json!(self.created_at.to_iso());
        doc["updatedAt"] = json!(self.updated_at.to_iso());
        doc["completedAt"] = json!(self.completed_at.map(Timestamp::to_iso));
        doc["nodeRunLogs"] = Value::Array(logs.iter().map(NodeLog::to_json).collect());
        doc
    }

    pub fn has_ended(&self) -> bool {
        self.status == Status::Completed
    }
}

/// What ending a node run makes of its workflow run: the node run ends with `outcome` and
/// `output` (the node's `variables` already applied), the output joins `.outputs`, and the
/// answer is the node to run next, or `None` when the run ended (a failure the node does
/// not continue past ends it `FAILED`; a path that ends, `SUCCESS`). `outlet`: the CONDITION
/// outlet that held (`None`: its fallback). A node run that already ended changes nothing.
pub fn end_node_run<'d>(
    def: &'d WorkflowDef,
    run: &mut WorkflowRun,
    node_run: &mut NodeRun,
    outcome: Outcome,
    output: Value,
    outlet: Option<&str>,
    now: Timestamp,
) -> Option<&'d Node> {
    if node_run.has_ended() || run.has_ended() {
        return None;
    }
    node_run.status = Status::Completed;
    node_run.result = Some(outcome);
    node_run.output = Some(output.clone());
    node_run.completed_at = Some(now);
    node_run.updated_at = now;
    run.outputs.insert(node_run.node_identifier.clone(), output);
    run.updated_at = now;
    let goes_on = match outcome {
        Outcome::Success => true,
        Outcome::Failed => def.node(&node_run.node_identifier).is_some_and(|node| on_failure(node) == OnFailure::Continue),
        Outcome::Cancelled => false,
    };
    if !goes_on {
        run.end(outcome, now);
        return None;
    }
    match def.next(&node_run.node_identifier, outlet) {
        Some(next) => Some(next),
        None => {
            run.end(Outcome::Success, now);
            None
        }
    }
}

/// What one send of a WEBHOOK node makes of its node run (SPEC §9, reference §4.3).
#[derive(Debug, Clone, PartialEq)]
pub enum AfterSend {
    /// Synchronized, answered 2xx: the node succeeds with `{"response":{"status","data"}}`
    /// (and the answer's fields beside it).
    Answered { status: u16, output: Value },
    /// Asynchronous and accepted (2xx), or timed out under `onTimeout: continue`: the node
    /// run waits for its report.
    Waits,
    /// Synchronized, timed out under `onTimeout: continue`: the node succeeds with
    /// `{"timeout": true}`.
    TimedOutGoingOn,
    /// Anything else (a non-2xx, a transport error, a timeout under `onTimeout: fail`): the
    /// node fails with Port's summary as `error.message`, and the answer as `response` when
    /// there was one.
    Failed { summary: String, output: Value },
}

impl AfterSend {
    /// The verdict on an `answer` to a node's one send: `timed_out` when no answer came within
    /// the timeout.
    pub fn of(answer: &Answer, timed_out: bool, synchronized: bool, on_timeout: OnTimeout) -> Self {
        match answer.status {
            Some(status) if (200..300).contains(&status) && synchronized => {
                Self::Answered { status, output: webhook_output(status, answer.response_value()) }
            }
            Some(status) if (200..300).contains(&status) => Self::Waits,
            _ if timed_out && on_timeout == OnTimeout::Continue => {
                if synchronized {
                    Self::TimedOutGoingOn
                } else {
                    Self::Waits
                }
            }
            _ => {
                let summary = answer.failure_summary();
                let mut output = failure_output(&summary);
                if let Some(status) = answer.status {
                    output["response"] = json!({"status": status, "data": answer.response_value()});
                }
                Self::Failed { summary, output }
            }
        }
    }
}

/// A node's `onFailure` (terminate for nodes that have none).
pub fn on_failure(node: &Node) -> OnFailure {
    use crate::workflow::NodeConfig;
    match &node.config {
        NodeConfig::Webhook { on_failure, .. } | NodeConfig::UpsertEntity { on_failure, .. } => *on_failure,
        _ => OnFailure::Terminate,
    }
}

/// The template context of a node run (reference §4.5), without `.secrets` (the engine adds
/// them where it renders).
pub fn context(run: &WorkflowRun, node_run: &NodeRun) -> Value {
    json!({
        "outputs": run.outputs_with_alias(),
        "workflow": {"identifier": run.workflow_identifier, "versionIdentifier": run.workflow_version_identifier},
        "workflowRun": {
            "identifier": run.identifier,
            "createdAt": run.created_at.to_iso(),
            "trigger": {"identifier": run.trigger.identifier, "by": run.trigger.by},
        },
        "workflowNodeRun": {"identifier": node_run.identifier, "createdAt": node_run.created_at.to_iso()},
    })
}

/// The context a node's `variables` render in: the node run's context, its raw output as
/// `.result`, and the output's fields at the top (`.response`), as both Port's docs and its
/// skills write them (reference §4.5).
pub fn variables_context(run: &WorkflowRun, node_run: &NodeRun, raw: &Value) -> Value {
    let mut context = context(run, node_run);
    if let (Value::Object(fields), Value::Object(ctx)) = (raw, &mut context) {
        for (key, value) in fields {
            ctx.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    context["result"] = raw.clone();
    context
}

/// Runs `GET /v1/workflows/runs` answers by default, and at most.
pub const RUN_PAGE: u32 = 100;
pub const MAX_RUN_PAGE: u32 = 1_000;

/// The page size of the run list: `limit` (1 to [`MAX_RUN_PAGE`]), or [`RUN_PAGE`].
pub fn run_page(limit: Option<u32>) -> Result<u32, Error> {
    let limit = limit.unwrap_or(RUN_PAGE);
    if !(1..=MAX_RUN_PAGE).contains(&limit) {
        return Err(Error::invalid("invalid_query", format!("`limit` is {limit}; it must be 1 to {MAX_RUN_PAGE}")));
    }
    Ok(limit)
}

/// The inputs of `POST /v1/workflows/{identifier}/runs`: `{"inputs": {…}}` (Port's; an
/// action run's `properties` is taken too), `{}` when none are given.
pub fn run_inputs(body: &Value) -> Result<Value, Error> {
    let Value::Object(map) = body else {
        return Err(Error::invalid("invalid_inputs", format!("a workflow run must be an object, not {}", type_name(body))));
    };
    if let Some(key) = map.keys().find(|k| !["inputs", "properties"].contains(&k.as_str())) {
        return Err(Error::invalid("invalid_inputs", format!("`{key}` is not a known key; a run takes `inputs`")));
    }
    Ok(map.get("inputs").or_else(|| map.get("properties")).cloned().unwrap_or_else(|| json!({})))
}

/// `PATCH /v1/workflows/nodes/runs/{id}`: what a backend or an agent reports of a node run.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRunPatch {
    /// `COMPLETED` with its outcome; `None`: the node run stays in progress.
    pub completed: Option<Outcome>,
    pub output: Option<Value>,
    pub logs: Vec<NodeLog>,
}

impl NodeRunPatch {
    /// Reads a report; its log lines are written at `now`.
    pub fn parse(doc: &Value, now: Timestamp) -> Result<Self, Error> {
        let map =
            doc.as_object().ok_or_else(|| invalid(format!("a node run update must be an object, not {}", type_name(doc))))?;
        if let Some(key) = map.keys().find(|k| !["status", "result", "output", "logs", "statusLabel"].contains(&k.as_str())) {
            return Err(invalid(format!(
                "`{key}` is not a known key; a node run update may have `status`, `result`, `output`, `logs`"
            )));
        }
        let status = match map.get("status") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(
                Status::parse(text)
                    .ok_or_else(|| invalid(format!("`status` is `{text}`; it must be `IN_PROGRESS` or `COMPLETED`")))?,
            ),
            Some(other) => return Err(invalid(format!("`status` must be a string, not {}", type_name(other)))),
        };
        let result = match map.get("result") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(
                Outcome::parse(text)
                    .ok_or_else(|| invalid(format!("`result` is `{text}`; it must be `SUCCESS`, `FAILED` or `CANCELLED`")))?,
            ),
            Some(other) => return Err(invalid(format!("`result` must be a string, not {}", type_name(other)))),
        };
        let completed = match (status, result) {
            (Some(Status::Completed), Some(result)) => Some(result),
            (Some(Status::Completed), None) => return Err(invalid("`result` is required when `status` is `COMPLETED`")),
            (Some(Status::InProgress) | None, Some(_)) => {
                return Err(invalid("`result` is only given with `\"status\": \"COMPLETED\"`"));
            }
            (_, None) => None,
        };
        let output = map.get("output").filter(|v| !v.is_null()).cloned();
        if let Some(output) = &output {
            crate::json::check_depth(CODE, output, "output", crate::entity::MAX_VALUE_DEPTH)?;
        }
        let logs = match map.get("logs") {
            None | Some(Value::Null) => Vec::new(),
            Some(logs) => parse_logs(logs, "logs", now)?,
        };
        Ok(Self { completed, output, logs })
    }
}

/// `POST /v1/workflows/nodes/runs/{id}/logs`: `{"logs":[…]}` (the agent's), or one line
/// (`{"message"}` / `{"log"}`), written at `now`.
pub fn parse_log_request(doc: &Value, now: Timestamp) -> Result<Vec<NodeLog>, Error> {
    let map = doc.as_object().ok_or_else(|| invalid(format!("node logs must be an object, not {}", type_name(doc))))?;
    match map.get("logs") {
        Some(logs) => {
            if let Some(key) = map.keys().find(|k| k.as_str() != "logs") {
                return Err(invalid(format!("`{key}` is not a known key beside `logs`")));
            }
            parse_logs(logs, "logs", now)
        }
        None => Ok(vec![parse_log(doc, "", now)?]),
    }
}

/// Log lines in any of Port's shapes: `{"logLevel","log","tags"}` (docs), `{"logLevel",
/// "message","tags"}` (Ocean), `{"level","message"}` (the agent).
fn parse_logs(value: &Value, path: &str, now: Timestamp) -> Result<Vec<NodeLog>, Error> {
    let Value::Array(items) = value else {
        return Err(invalid(format!("`{path}` must be an array, not {}", type_name(value))));
    };
    if items.len() > MAX_NODE_LOGS_PER_REQUEST {
        return Err(invalid(format!("`{path}` has {} lines; at most {MAX_NODE_LOGS_PER_REQUEST} per request", items.len())));
    }
    items.iter().enumerate().map(|(i, item)| parse_log(item, &format!("{path}[{i}]"), now)).collect()
}

fn parse_log(value: &Value, path: &str, now: Timestamp) -> Result<NodeLog, Error> {
    let shown = if path.is_empty() { "a log line".to_owned() } else { format!("`{path}`") };
    let map = value.as_object().ok_or_else(|| invalid(format!("{shown} must be an object, not {}", type_name(value))))?;
    let key = |k: &str| if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") };
    if let Some(unknown) = map.keys().find(|k| !["logLevel", "level", "log", "message", "tags"].contains(&k.as_str())) {
        return Err(invalid(format!("`{}` is not a known key of a log line", key(unknown))));
    }
    let message = match map.get("log").or_else(|| map.get("message")) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => return Err(invalid(format!("`{}` must be a string, not {}", key("message"), type_name(other)))),
        None => return Err(invalid(format!("`{}` is required", key("message")))),
    };
    if message.chars().count() > MAX_NODE_LOG_MESSAGE {
        return Err(invalid(format!("`{}` is longer than {MAX_NODE_LOG_MESSAGE} characters", key("message"))));
    }
    let level = match map.get("logLevel").or_else(|| map.get("level")) {
        None | Some(Value::Null) => "INFO".to_owned(),
        Some(Value::String(text)) => match text.to_ascii_uppercase().as_str() {
            level @ ("DEBUG" | "INFO" | "WARN" | "ERROR") => level.to_owned(),
            "WARNING" => "WARN".to_owned(),
            _ => return Err(invalid(format!("`{}` is `{text}`; it must be DEBUG, INFO, WARN or ERROR", key("logLevel")))),
        },
        Some(other) => return Err(invalid(format!("`{}` must be a string, not {}", key("logLevel"), type_name(other)))),
    };
    let tags = map.get("tags").filter(|v| !v.is_null()).cloned();
    if let Some(tags) = &tags {
        crate::json::check_depth(CODE, tags, &key("tags"), 8)?;
    }
    Ok(NodeLog { level, message, tags, created_at: now })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(CODE, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(on_failure: &str) -> WorkflowDef {
        WorkflowDef::parse(
            json!({
                "identifier": "w",
                "nodes": [
                    {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
                    {"identifier": "call", "config": {"type": "WEBHOOK", "url": "https://x.example", "onFailure": on_failure}},
                    {"identifier": "branch", "config": {"type": "CONDITION", "outlets": [{"identifier": "yes", "expression": "true"}]}},
                    {"identifier": "done", "config": {"type": "WEBHOOK", "url": "https://y.example"}}
                ],
                "connections": [
                    {"sourceIdentifier": "trigger", "targetIdentifier": "call"},
                    {"sourceIdentifier": "call", "targetIdentifier": "branch"},
                    {"sourceIdentifier": "branch", "targetIdentifier": "done", "sourceOutletIdentifier": "yes"}
                ]
            }),
            None,
        )
        .unwrap()
    }

    fn started(def: &WorkflowDef) -> (WorkflowRun, NodeRun) {
        let at = Timestamp::from_millis(1_000);
        let trigger = def.node("trigger").unwrap();
        let started = Started { identifier: "trigger".into(), config_type: "SELF_SERVE_TRIGGER".into(), by: json!({}) };
        let mut run = WorkflowRun::start("wfr_1".into(), def, "wfv_1", started, "client", at);
        let mut fired = NodeRun::start("wfnr_0".into(), &run, trigger, at);
        let next = end_node_run(def, &mut run, &mut fired, Outcome::Success, json!({"version": "1"}), None, at);
        assert_eq!(next.map(|n| n.identifier.as_str()), Some("call"));
        let call = NodeRun::start("wfnr_1".into(), &run, next.unwrap(), at);
        (run, call)
    }

    #[test]
    fn a_run_moves_node_by_node_and_ends_where_its_path_ends() {
        let def = def("terminate");
        let (mut run, mut call) = started(&def);
        assert_eq!(run.outputs_with_alias()["trigger"], json!({"version": "1"}), "`.outputs.trigger` aliases the trigger");
        let at = Timestamp::from_millis(2_000);
        let next = end_node_run(&def, &mut run, &mut call, Outcome::Success, json!({"ok": true}), None, at);
        assert_eq!(next.map(|n| n.identifier.as_str()), Some("branch"));
        let mut branch = NodeRun::start("wfnr_2".into(), &run, next.unwrap(), at);
        // The outlet that held leads on; no outlet and no fallback ends the path: SUCCESS.
        let next = end_node_run(&def, &mut run.clone(), &mut branch.clone(), Outcome::Success, json!({}), Some("yes"), at);
        assert_eq!(next.map(|n| n.identifier.as_str()), Some("done"));
        assert_eq!(end_node_run(&def, &mut run, &mut branch, Outcome::Success, json!({}), None, at).map(|n| &n.identifier), None);
        assert_eq!((run.status, run.result, run.completed_at), (Status::Completed, Some(Outcome::Success), Some(at)));
        // Ended: nothing moves it any more.
        let mut late = NodeRun::start("wfnr_3".into(), &run, def.node("done").unwrap(), at);
        assert!(end_node_run(&def, &mut run, &mut late, Outcome::Failed, json!({}), None, at).is_none());
        assert_eq!(run.result, Some(Outcome::Success));
        assert_eq!(late.status, Status::InProgress);
    }

    #[test]
    fn a_failure_ends_the_run_unless_the_node_continues() {
        let terminating = def("terminate");
        let (mut run, mut call) = started(&terminating);
        let at = Timestamp::from_millis(2_000);
        let output = json!({"error": {"message": "boom"}});
        assert!(end_node_run(&terminating, &mut run, &mut call, Outcome::Failed, output.clone(), None, at).is_none());
        assert_eq!((run.status, run.result), (Status::Completed, Some(Outcome::Failed)));
        assert_eq!(run.outputs["call"], output);

        let continuing = def("continue");
        let (mut run, mut call) = started(&continuing);
        let next = end_node_run(&continuing, &mut run, &mut call, Outcome::Failed, output.clone(), None, at);
        assert_eq!(next.map(|n| n.identifier.as_str()), Some("branch"));
        assert_eq!((call.status, call.result), (Status::Completed, Some(Outcome::Failed)));
        assert_eq!(run.status, Status::InProgress);
    }

    #[test]
    fn the_context_and_the_variables_context() {
        let def = def("terminate");
        let (run, call) = started(&def);
        let context = context(&run, &call);
        assert_eq!(context["workflow"], json!({"identifier": "w", "versionIdentifier": "wfv_1"}));
        assert_eq!(context["workflowRun"]["identifier"], "wfr_1");
        assert_eq!(context["workflowRun"]["trigger"]["identifier"], "trigger");
        assert_eq!(context["workflowNodeRun"]["identifier"], "wfnr_1");
        let raw = json!({"response": {"status": 200, "data": {"id": 7}}});
        let variables = variables_context(&run, &call, &raw);
        assert_eq!(variables["result"], raw);
        assert_eq!(variables["response"]["data"]["id"], 7);
        assert_eq!(variables["outputs"]["trigger"]["version"], "1");
    }

    #[test]
    fn reports_and_log_lines_in_ports_shapes() {
        let at = Timestamp::from_millis(5);
        let patch = NodeRunPatch::parse(
            &json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"a": 1},
            "logs": [{"logLevel": "WARNING", "log": "x", "tags": {"k": "v"}}, {"level": "info", "message": "y"}]}),
            at,
        )
        .unwrap();
        assert_eq!(patch.completed, Some(Outcome::Success));
        assert_eq!(patch.output, Some(json!({"a": 1})));
        assert_eq!(
            patch.logs,
            vec![
                NodeLog { level: "WARN".into(), message: "x".into(), tags: Some(json!({"k": "v"})), created_at: at },
                NodeLog { level: "INFO".into(), message: "y".into(), tags: None, created_at: at }
            ]
        );
        let only_logs = NodeRunPatch::parse(&json!({"logs": []}), at).unwrap();
        assert_eq!(only_logs.completed, None);
        for (doc, part) in [
            (json!({"status": "COMPLETED"}), "`result` is required"),
            (json!({"result": "SUCCESS"}), "only given with"),
            (json!({"status": "DONE"}), "`status` is `DONE`"),
            (json!({"result": "OK", "status": "COMPLETED"}), "`result` is `OK`"),
            (json!({"extra": 1}), "`extra` is not a known key"),
            (json!([]), "must be an object"),
            (json!({"logs": [{"level": "LOUD", "message": "x"}]}), "`logs[0].logLevel` is `LOUD`"),
            (json!({"logs": [{"level": "INFO"}]}), "`logs[0].message` is required"),
        ] {
            let err = NodeRunPatch::parse(&doc, at).unwrap_err();
            assert!(err.message.contains(part), "{doc}: `{part}` in {}", err.message);
        }
        let one = NodeLog { level: "INFO".into(), message: "one".into(), tags: None, created_at: at };
        assert_eq!(parse_log_request(&json!({"message": "one"}), at).unwrap(), vec![one]);
        assert_eq!(parse_log_request(&json!({"logs": [{"log": "two"}]}), at).unwrap().len(), 1);
        let many: Vec<Value> = (0..=MAX_NODE_LOGS_PER_REQUEST).map(|i| json!({"log": i.to_string()})).collect();
        assert!(parse_log_request(&json!({"logs": many}), at).unwrap_err().message.contains("at most"));
        assert_eq!((run_page(None).unwrap(), run_page(Some(1_000)).unwrap()), (RUN_PAGE, 1_000));
        assert!(run_page(Some(0)).unwrap_err().message.contains("`limit` is 0"));
        assert!(run_page(Some(1_001)).is_err());
        assert_eq!(run_inputs(&json!({"inputs": {"v": 1}})).unwrap(), json!({"v": 1}));
        assert_eq!(run_inputs(&json!({"properties": {"v": 1}})).unwrap(), json!({"v": 1}));
        assert_eq!(run_inputs(&json!({})).unwrap(), json!({}));
        assert!(run_inputs(&json!({"input": {}})).unwrap_err().message.contains("`input` is not a known key"));
        assert!(run_inputs(&json!([])).unwrap_err().message.contains("must be an object"));
    }

    #[test]
    fn what_a_send_makes_of_its_node_run() {
        let ok = Answer { status: Some(200), body: Some(r#"{"id":7}"#.into()), error: None };
        let refused = Answer { status: Some(500), body: Some("boom".into()), error: None };
        let silent = Answer { status: None, body: None, error: Some("timed out".into()) };
        let answered = AfterSend::of(&ok, false, true, OnTimeout::Fail);
        assert_eq!(
            answered,
            AfterSend::Answered { status: 200, output: json!({"response": {"status": 200, "data": {"id": 7}}, "id": 7}) }
        );
        assert_eq!(AfterSend::of(&ok, false, false, OnTimeout::Fail), AfterSend::Waits, "accepted: waits for its report");
        let AfterSend::Failed { summary, output } = AfterSend::of(&refused, false, true, OnTimeout::Continue) else { panic!() };
        assert!(summary.starts_with("Failed to invoke the webhook with status code: 500"), "{summary}");
        assert_eq!(output["error"]["message"], summary);
        assert_eq!(output["response"], json!({"status": 500, "data": "boom"}));
        assert_eq!(AfterSend::of(&silent, true, true, OnTimeout::Continue), AfterSend::TimedOutGoingOn);
        assert_eq!(AfterSend::of(&silent, true, false, OnTimeout::Continue), AfterSend::Waits);
        let AfterSend::Failed { output, .. } = AfterSend::of(&silent, true, true, OnTimeout::Fail) else { panic!() };
        assert!(output.get("response").is_none(), "no answer, no response: {output}");
        assert!(
            matches!(AfterSend::of(&silent, false, true, OnTimeout::Continue), AfterSend::Failed { .. }),
            "a transport error is not a timeout"
        );
    }

    #[test]
    fn runs_and_node_runs_read_back_what_they_store() {
        let def = def("terminate");
        let (run, call) = started(&def);
        assert_eq!(WorkflowRun::from_json(run.to_stored()).unwrap(), run);
        assert_eq!(NodeRun::from_json(call.to_stored()).unwrap(), call);
        let shown = run.to_json(Some(vec![call.to_json(&[])]));
        assert_eq!(shown["status"], "IN_PROGRESS");
        assert_eq!(shown["nodeRuns"][0]["nodeConfigType"], "WEBHOOK");
        assert_eq!(shown["nodeRuns"][0]["createdAt"], "1970-01-01T00:00:01.000Z");
    }
}
