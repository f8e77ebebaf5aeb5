//! Runs: one execution of an action (reference §3.8). What a run is, how each API call and
//! each send moves it (the engine passes in the time, the ids and what the backend answered),
//! the template context it renders with (§3.4), and the request it sends.
//!
//! Architecture Invariant: a run's status moves only through the methods here, and an ended
//! run (`SUCCESS`, `FAILURE`, `DECLINED`) refuses every change but a plain log line (SPEC §8):
//! the engine never sets a status itself.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::action::{ActionDef, ActionTrigger, Operation};
use crate::delivery::NextStep;
use crate::json::type_name;
use crate::time::Timestamp;

/// A chain of automations triggering each other through runs stops past this depth.
pub const MAX_CHAIN_DEPTH: u32 = 10;
/// The header a run's call of Wharf's own API carries: the calling run's id, so what the call
/// does (a run it starts, an entity it writes) continues that run's chain.
pub const CAUSING_RUN_HEADER: &str = "x-wharf-run-id";
/// The most characters of a backend's response body kept in a failed run's summary.
pub const SUMMARY_RESPONSE_CHARS: usize = 1_000;
/// The most characters of a run log message.
pub const MAX_LOG_MESSAGE: usize = 10_000;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    InProgress,
    Success,
    Failure,
    WaitingForApproval,
    Declined,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::WaitingForApproval => "WAITING_FOR_APPROVAL",
            Self::Declined => "DECLINED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run has ended: nothing moves it any more.
    pub fn has_ended(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Declined)
    }

    /// The statuses of runs that are active (`true`: not ended) or ended (`false`), as the run
    /// list's `active` filter selects them.
    pub fn when_active(active: bool) -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(move |status| status.has_ended() != active)
    }

    const ALL: [Self; 5] = [Self::InProgress, Self::Success, Self::Failure, Self::WaitingForApproval, Self::Declined];
}

/// Who started a run (Port's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunSource {
    Ui,
    Api,
    Automation,
}

impl RunSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ui => "UI",
            Self::Api => "API",
            Self::Automation => "AUTOMATION",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Ui, Self::Api, Self::Automation].into_iter().find(|s| s.as_str() == text)
    }
}

/// The action a run belongs to, as the run shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunAction {
    pub identifier: String,
    pub title: Option<String>,
    pub icon: Option<String>,
    pub deleted: bool,
}

/// One run, in Port's shape (`GET /v1/actions/runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    /// `{identifier, title, icon, deleted}` of the action's blueprint, or `null`.
    pub blueprint: Option<Value>,
    /// The entity the run acts on (DAY-2, DELETE), or `null`.
    pub entity: Option<Value>,
    pub action: RunAction,
    /// The inputs, as checked (defaults filled in).
    pub properties: Map<String, Value>,
    /// The inputs as given.
    pub raw_properties: Map<String, Value>,
    pub source: RunSource,
    pub status: RunStatus,
    pub status_label: Option<String>,
    pub link: Vec<String>,
    pub summary: Option<String>,
    pub external_run_id: Option<String>,
    pub required_approval: bool,
    pub approval: Option<Value>,
    /// The request the run sends (`{type, url, agent, synchronized, method, headers, body}`),
    /// secrets masked; for UPSERT_ENTITY, `{type, blueprintIdentifier, mapping}` rendered.
    pub payload: Option<Value>,
    /// What the backend answered (synchronized runs) or reported.
    pub response: Option<Value>,
    pub ended_at: Option<Timestamp>,
    pub created_by: String,
    /// The user a `run_as` named.
    pub impersonated_by: Option<String>,
    pub updated_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Wharf's addition: how deep in a chain of automations this run is (0: started by a
    /// person or a client; an automation's run is one deeper than what triggered it).
    pub chain_depth: u32,
}

/// What an action's run needs to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub id: String,
    pub action: &'a ActionDef,
    /// The action's blueprint as the run shows it.
    pub blueprint: Option<Value>,
    pub entity: Option<Value>,
    pub properties: Map<String, Value>,
    pub raw_properties: Map<String, Value>,
    pub source: RunSource,
    pub by: String,
    pub impersonated_by: Option<String>,
    pub chain_depth: u32,
    pub at: Timestamp,
}

impl Run {
    /// A new run: waiting for approval when the action requires one, else in progress.
    pub fn new(new: NewRun<'_>) -> Self {
        let required_approval = new.action.approval != crate::action::Approval::None;
        let doc = new.action.document();
        let text = |key: &str| doc.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            id: new.id,
            blueprint: new.blueprint,
            entity: new.entity,
            action: RunAction {
                identifier: new.action.identifier.clone(),
                title: text("title"),
                icon: text("icon"),
                deleted: false,
            },
            properties: new.properties,
            raw_properties: new.raw_properties,
            source: new.source,
            status: if required_approval { RunStatus::WaitingForApproval } else { RunStatus::InProgress },
            status_label: None,
            link: Vec::new(),
            summary: None,
            external_run_id: None,
            required_approval,
            approval: None,
            payload: None,
            response: None,
            ended_at: None,
            created_by: new.by.clone(),
            impersonated_by: new.impersonated_by,
            updated_by: new.by,
            created_at: new.at,
            updated_at: new.at,
            chain_depth: new.chain_depth,
        }
    }

    /// Port's run object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A run stored by [`Run::to_json`].
    pub fn from_json(doc: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(doc)
    }

    /// The entity's identifier, when the run has one.
    pub fn entity_identifier(&self) -> Option<&str> {
        self.entity.as_ref().and_then(|e| e.get("identifier")).and_then(Value::as_str)
    }

    /// The blueprint's identifier, when the run has one.
    pub fn blueprint_identifier(&self) -> Option<&str> {
        self.blueprint.as_ref().and_then(|b| b.get("identifier")).and_then(Value::as_str)
    }

    fn refuse_if_ended(&self) -> Result<(), Error> {
        if self.status.has_ended() {
            return Err(Error::conflict(
                "run_ended",
                format!("run `{}` has ended ({}); it cannot be modified", self.id, self.status.as_str()),
            ));
        }
        Ok(())
    }

    fn touch(&mut self, by: &str, at: Timestamp) {
        self.updated_by = by.to_owned();
        self.updated_at = at;
    }

    fn end(&mut self, status: RunStatus, at: Timestamp) {
        self.status = status;
        self.ended_at = Some(at);
    }

    /// `PATCH /v1/actions/runs/{id}`: each given key overrides the previous value; a status
    /// ends the run. 409 once ended.
    pub fn patch(&mut self, patch: &RunPatch, by: &str, at: Timestamp) -> Result<(), Error> {
        self.refuse_if_ended()?;
        if self.status == RunStatus::WaitingForApproval {
            return Err(Error::conflict(
                "run_waiting_for_approval",
                format!("run `{}` is waiting for approval; approve or decline it first", self.id),
            ));
        }
        if let Some(label) = &patch.status_label {
            self.status_label = Some(label.clone());
        }
        if let Some(link) = &patch.link {
            self.link = link.clone();
        }
        if let Some(summary) = &patch.summary {
            self.summary = Some(summary.clone());
        }
        if let Some(external) = &patch.external_run_id {
            self.external_run_id = Some(external.clone());
        }
        if let Some(status) = patch.status {
            self.end(status, at);
        }
        self.touch(by, at);
        Ok(())
    }

    /// `POST /v1/actions/runs/{id}/logs`: a plain line is accepted whatever the status (Port's
    /// agent writes its last line after the final status); a `terminationStatus` ends the run,
    /// and answers 409 when it has ended already. Whether the run changed.
    pub fn log(&mut self, log: &RunLogInput, by: &str, at: Timestamp) -> Result<bool, Error> {
        let Some(status) = log.termination_status else {
            if log.status_label.is_some() {
                self.refuse_if_ended()?;
                self.status_label = log.status_label.clone();
                self.touch(by, at);
                return Ok(true);
            }
            return Ok(false);
        };
        self.refuse_if_ended()?;
        if let Some(label) = &log.status_label {
            self.status_label = Some(label.clone());
        }
        self.end(status, at);
        self.touch(by, at);
        Ok(true)
    }

    /// `PATCH /v1/actions/runs/{id}/response`: the backend's answer, kept as the run's
    /// `response` (Port's agent sends it before the status). 409 once ended.
    pub fn respond(&mut self, response: Value, by: &str, at: Timestamp) -> Result<(), Error> {
        self.refuse_if_ended()?;
        self.response = Some(response);
        self.touch(by, at);
        Ok(())
    }

    /// `PATCH /v1/actions/runs/{id}/approval`: 409 unless the run is waiting for approval.
    /// The approver's `description` (why, shown beside the decision) is kept in `approval`.
    pub fn decide(&mut self, decision: Decision, description: Option<String>, by: &str, at: Timestamp) -> Result<(), Error> {
        if self.status != RunStatus::WaitingForApproval {
            return Err(Error::conflict(
                "run_not_waiting_for_approval",
                format!("run `{}` is {}, not waiting for approval", self.id, self.status.as_str()),
            ));
        }
        let state = match decision {
            Decision::Approve => {
                self.status = RunStatus::InProgress;
                "APPROVED"
            }
            Decision::Decline => {
                self.end(RunStatus::Declined, at);
                "DECLINED"
            }
        };
        let mut approval = json!({"userId": by, "state": state});
        if let Some(description) = description {
            approval["description"] = Value::String(description);
        }
        self.approval = Some(approval);
        self.touch(by, at);
        Ok(())
    }

    /// After the one attempt of a synchronized run: a 2xx ends it `SUCCESS` with the answer as
    /// its `response`; anything else ends it `FAILURE` with Port's summary. Nothing changes
    /// an ended run (the backend may have ended it through the API meanwhile): `false`.
    pub fn after_synchronized(&mut self, answer: &Answer, at: Timestamp) -> bool {
        if self.status.has_ended() {
            return false;
        }
        match answer.status {
            Some(code) if (200..300).contains(&code) => {
                self.response = Some(answer.response_value());
                self.end(RunStatus::Success, at);
            }
            _ => {
                self.summary = Some(answer.failure_summary());
                self.end(RunStatus::Failure, at);
            }
        }
        self.touch("wharf", at);
        true
    }

    /// After an asynchronous run's request failed for good (retries exhausted, or refused
    /// before sending): the run ends `FAILURE` with the reason, unless it has ended.
    pub fn after_undelivered(&mut self, answer: &Answer, at: Timestamp) -> bool {
        if self.status.has_ended() {
            return false;
        }
        self.summary = Some(answer.failure_summary());
        self.end(RunStatus::Failure, at);
        self.touch("wharf", at);
        true
    }

    /// An UPSERT_ENTITY run after its write: `SUCCESS`, or `FAILURE` with the catalog's message.
    pub fn after_upsert(&mut self, result: Result<(), &str>, at: Timestamp) {
        match result {
            Ok(()) => self.end(RunStatus::Success, at),
            Err(message) => {
                self.summary = Some(message.to_owned());
                self.end(RunStatus::Failure, at);
            }
        }
        self.touch("wharf", at);
    }

    /// Ends a run that could not be carried out before anything was sent (a template that
    /// failed to render, a secret that cannot be opened).
    pub fn fail(&mut self, summary: String, at: Timestamp) {
        self.summary = Some(summary);
        self.end(RunStatus::Failure, at);
        self.touch("wharf", at);
    }
}

/// One attempt of a run's request, as recorded (its answer and error masked), and as
/// `GET /v1/actions/runs/{id}/attempts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAttempt {
    pub id: String,
    pub run_id: String,
    pub attempted_at: Timestamp,
    pub duration_ms: i64,
    /// Its error class ([`crate::delivery::AttemptOutcome::class`]).
    pub outcome: String,
    pub status_code: Option<i64>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// What the backend answered one attempt (or why there was no answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub status: Option<u16>,
    /// The response body as text (the first bytes of it).
    pub body: Option<String>,
    /// Why there is no status: the transport error, or why the request was not sent.
    pub error: Option<String>,
}

impl Answer {
    /// The body as JSON when it is JSON, else as a string (`null` when empty).
    pub fn response_value(&self) -> Value {
        match self.body.as_deref() {
            None | Some("") => Value::Null,
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        }
    }

    /// Port's summary of a failed invocation.
    pub fn failure_summary(&self) -> String {
        match (self.status, &self.error) {
            (Some(code), _) => {
                let body: String = self.body.as_deref().unwrap_or_default().chars().take(SUMMARY_RESPONSE_CHARS).collect();
                format!("Failed to invoke the webhook with status code: {code}. Response: {body}")
            }
            (None, Some(error)) => format!("Failed to invoke the webhook: {error}"),
            (None, None) => "Failed to invoke the webhook".to_owned(),
        }
    }
}

/// Whether an attempt of a run's request, going on as `step` says, settles its run: a
/// synchronized run's one attempt does, whatever its answer; an asynchronous run's request only
/// when it has finally failed (a delivered one leaves the run to its backend).
pub fn attempt_settles_run(synchronized: bool, step: &NextStep) -> bool {
    match step {
        NextStep::Succeeded => synchronized,
        NextStep::RetryAt(_) => false,
        NextStep::Exhausted | NextStep::DisableTarget(_) => true,
    }
}

/// `PATCH /v1/actions/runs/{id}/response`'s body: `{"response": …}` and nothing else; the value.
pub fn parse_response(doc: &Value) -> Result<Value, Error> {
    match doc {
        Value::Object(map) if map.len() == 1 && map.contains_key("response") => Ok(map["response"].clone()),
        _ => Err(invalid("the body must be `{\"response\": …}`")),
    }
}

/// A blueprint as a run shows it (`run.blueprint`).
pub fn shown_blueprint(identifier: &str, title: &str, icon: Option<&str>) -> Value {
    json!({"identifier": identifier, "title": title, "icon": icon, "deleted": false})
}

/// `PATCH /v1/actions/runs/{id}`'s body (Port's apispec, `additionalProperties: false`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPatch {
    pub status: Option<RunStatus>,
    pub status_label: Option<String>,
    pub link: Option<Vec<String>>,
    pub summary: Option<String>,
    pub external_run_id: Option<String>,
}

const CODE: &str = "invalid_run";

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(CODE, message)
}

fn object_of<'a>(doc: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Error> {
    doc.as_object().ok_or_else(|| invalid(format!("{what} must be a JSON object, not {}", type_name(doc))))
}

fn refuse_unknown(map: &Map<String, Value>, known: &[&str]) -> Result<(), Error> {
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        return Err(invalid(format!("`{key}` is not a known key; the body may have {}", list.join(", "))));
    }
    Ok(())
}

fn optional_text(map: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(invalid(format!("`{key}` must be at most {max} characters long"))),
        Some(other) => Err(invalid(format!("`{key}` must be a string, not {}", type_name(other)))),
    }
}

/// A final status: `SUCCESS` or `FAILURE` (what a backend may set).
fn final_status(map: &Map<String, Value>, key: &str) -> Result<Option<RunStatus>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text == "SUCCESS" => Ok(Some(RunStatus::Success)),
        Some(Value::String(text)) if text == "FAILURE" => Ok(Some(RunStatus::Failure)),
        Some(other) => Err(invalid(format!("`{key}` is {other}; it must be `SUCCESS` or `FAILURE`"))),
    }
}

impl RunPatch {
    pub fn parse(doc: &Value) -> Result<Self, Error> {
        let map = object_of(doc, "a run update")?;
        refuse_unknown(map, &["status", "statusLabel", "link", "summary", "externalRunId", "message"])?;
        let link = match map.get("link") {
            None | Some(Value::Null) => None,
            Some(Value::String(link)) => Some(vec![link.clone()]),
            Some(Value::Array(links)) => Some(
                links
                    .iter()
                    .enumerate()
                    .map(|(i, link)| {
                        link.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| invalid(format!("`link[{i}]` must be a string, not {}", type_name(link))))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(invalid(format!("`link` must be a string or an array of strings, not {}", type_name(other))));
            }
        };
        // `message` is Port's deprecated name of `summary`.
        let summary = match optional_text(map, "summary", 10_000)? {
            Some(summary) => Some(summary),
            None => optional_text(map, "message", 10_000)?,
        };
        Ok(Self {
            status: final_status(map, "status")?,
            status_label: optional_text(map, "statusLabel", 200)?,
            link,
            summary,
            external_run_id: optional_text(map, "externalRunId", 500)?,
        })
    }
}

/// `POST /v1/actions/runs/{id}/logs`'s body.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLogInput {
    pub message: String,
    pub termination_status: Option<RunStatus>,
    pub status_label: Option<String>,
}

impl RunLogInput {
    pub fn parse(doc: &Value) -> Result<Self, Error> {
        let map = object_of(doc, "a run log")?;
        refuse_unknown(map, &["message", "terminationStatus", "statusLabel"])?;
        let message = optional_text(map, "message", MAX_LOG_MESSAGE)?.ok_or_else(|| invalid("`message` is required"))?;
        Ok(Self {
            message,
            termination_status: final_status(map, "terminationStatus")?,
            status_label: optional_text(map, "statusLabel", 200)?,
        })
    }
}

/// One line of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLog {
    pub id: String,
    pub run_id: String,
    pub message: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// `PATCH /v1/actions/runs/{id}/approval`'s decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Decline,
}

impl Decision {
    pub fn parse(doc: &Value) -> Result<(Self, Option<String>), Error> {
        let map = object_of(doc, "an approval")?;
        refuse_unknown(map, &["status", "description"])?;
        let decision = match map.get("status").and_then(Value::as_str) {
            Some("APPROVE") => Self::Approve,
            Some("DECLINE") => Self::Decline,
            _ => return Err(invalid("`status` must be `APPROVE` or `DECLINE`")),
        };
        Ok((decision, optional_text(map, "description", 1_000)?))
    }
}

/// `GET /v1/actions/runs`'s filters (Port's query parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub entity: Option<String>,
    pub blueprint: Option<String>,
    pub action: Option<String>,
    /// `true`: only runs that have not ended; `false`: only ended ones.
    pub active: Option<bool>,
    pub user: Option<String>,
    pub external_run_id: Option<String>,
    pub sources: Vec<RunSource>,
    pub limit: u32,
    pub offset: u32,
}

/// `GET /v1/actions/runs` answers at most this many runs.
pub const MAX_RUNS_PAGE: u32 = 1_000;

impl RunFilter {
    pub fn from_query<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error> {
        let bad = |key: &str, value: &str, why: &str| {
            Error::bad_request("invalid_query", format!("query parameter `{key}` is `{value}`: {why}"))
        };
        let mut filter = Self { limit: 100, ..Self::default() };
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "entity" => filter.entity = Some(value.to_owned()),
                "blueprint" => filter.blueprint = Some(value.to_owned()),
                "action" => filter.action = Some(value.to_owned()),
                "active" => {
                    filter.active = Some(value.parse::<bool>().map_err(|_| bad(key, value, "it must be `true` or `false`"))?);
                }
                "user_email" | "user_id" => filter.user = Some(value.to_owned()),
                "external_run_id" => filter.external_run_id = Some(value.to_owned()),
                "source" | "source[]" => filter
                    .sources
                    .push(RunSource::parse(value).ok_or_else(|| bad(key, value, "it must be UI, API or AUTOMATION"))?),
                "limit" => {
                    filter.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_RUNS_PAGE).contains(l))
                        .ok_or_else(|| bad(key, value, "it must be a number from 1 to 1000"))?;
                }
                "offset" => filter.offset = value.parse().map_err(|_| bad(key, value, "it must be a number"))?,
                // Port's `version` and `exclude` shape the answer; Wharf has one shape.
                "version" | "exclude" => {}
                _ => return Err(Error::bad_request("invalid_query", format!("`{key}` is not a query parameter of this route"))),
            }
        }
        Ok(filter)
    }
}

/// `POST /v1/actions/{id}/runs`'s body: `properties` and an optional `entity`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInput {
    pub properties: Value,
    pub entity: Option<String>,
}

impl RunInput {
    pub fn parse(doc: &Value) -> Result<Self, Error> {
        let map = object_of(doc, "a run")?;
        refuse_unknown(map, &["properties", "entity"])?;
        let entity = match map.get("entity") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(other) => return Err(invalid(format!("`entity` must be an entity identifier, not {}", type_name(other)))),
        };
        let properties = map.get("properties").cloned().unwrap_or(Value::Null);
        if !matches!(properties, Value::Null | Value::Object(_)) {
            return Err(Error::invalid(
                "invalid_inputs",
                format!("`properties` must be an object, not {}", type_name(&properties)),
            ));
        }
        Ok(Self { properties, entity })
    }

    /// Decides the entity rule of the action's operation: a DAY-2 or DELETE action of a
    /// blueprint needs an entity; a CREATE action takes none.
    pub fn check_entity_rule(&self, action: &ActionDef) -> Result<(), Error> {
        match (&action.trigger, &self.entity) {
            (ActionTrigger::SelfService { operation: Operation::Create, .. }, Some(_)) => {
                Err(invalid(format!("action `{}` creates entities: a run of it names no `entity`", action.identifier)))
            }
            (ActionTrigger::SelfService { operation: Operation::Day2 | Operation::Delete, blueprint: Some(bp) }, None) => Err(
                invalid(format!("action `{}` acts on an entity of `{bp}`: the run must name its `entity`", action.identifier)),
            ),
            (ActionTrigger::Automation { .. }, _) => {
                Err(invalid(format!("`{}` is an automation: it runs on its events, not through this route", action.identifier)))
            }
            _ => Ok(()),
        }
    }
}

/// Port's `trigger` of the template context (reference §3.4): who, from where, when, and
/// for self-service actions the operation.
pub fn trigger_context(
    org: &str,
    by: &str,
    user: Option<&str>,
    source: RunSource,
    at: Timestamp,
    operation: Option<Operation>,
) -> Value {
    let mut trigger = json!({
        "by": {"orgId": org, "userId": by, "user": {"email": user, "id": by}},
        "origin": source.as_str(),
        "at": at,
    });
    if let (Some(operation), Value::Object(map)) = (operation, &mut trigger) {
        map.insert("operation".to_owned(), Value::String(operation.name().to_owned()));
    }
    trigger
}

/// The template context of a run (reference §3.4), without `.secrets` (added at render time,
/// never stored).
pub fn context(run: &Run, action: &ActionDef, trigger: Value, event: Option<Value>) -> Value {
    let automation = matches!(action.trigger, ActionTrigger::Automation { .. });
    let mut action_context = json!({"identifier": action.identifier});
    if !automation {
        action_context["blueprint"] = json!(action.trigger.blueprint());
        action_context["encryptedProperties"] = json!([]);
    }
    json!({
        "inputs": if automation { Value::Null } else { Value::Object(run.properties.clone()) },
        "trigger": trigger,
        "event": event,
        "entity": if automation { Value::Null } else { run.entity.clone().unwrap_or_else(|| json!({})) },
        "action": action_context,
        "run": {"id": run.id},
    })
}

/// SPEC §8's body when a WEBHOOK invocation gives none.
pub fn default_body(action: &ActionDef) -> Value {
    match action.trigger {
        ActionTrigger::SelfService { .. } => {
            json!({"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}"}})
        }
        ActionTrigger::Automation { .. } => json!({"event": "{{ .event }}", "port_context": {"runId": "{{ .run.id }}"}}),
    }
}

/// A WEBHOOK invocation rendered: exactly what is sent (secrets in clear; never stored so).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The exact bytes sent and signed (compact JSON); `None` for a GET or DELETE without one.
    pub body: Option<String>,
    pub synchronized: bool,
    pub agent: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // It may hold secrets in clear: only the method is shown.
        f.debug_struct("Request").field("method", &self.method).finish_non_exhaustive()
    }
}

/// Reads a rendered `synchronized`/`agent` flag: a boolean, or the strings `true`/`false`.
pub fn rendered_flag(value: &Value, path: &str) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::Null => Ok(false),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" || text.is_empty() => Ok(false),
        other => Err(format!("`{path}` rendered to {other}, which is not a boolean")),
    }
}

impl Run {
    /// Whether the run's request waits for an execution agent (`agent: true`) rather than
    /// being sent by Wharf.
    pub fn for_agent(&self) -> bool {
        self.payload.as_ref().is_some_and(|p| p.get("type") == Some(&json!("WEBHOOK")) && p.get("agent") == Some(&json!(true)))
    }
}

/// The rendered invocation as a run's `payload` shows it.
/// [`payload_of`] with the body as sent: JSON when it is JSON, else its text (what an
/// execution agent is shown of a request it is to send).
pub fn sent_payload(request: &Request) -> Value {
    let body = request.body.as_deref().map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())));
    payload_of(request, body.as_ref())
}

pub fn payload_of(request: &Request, body: Option<&Value>) -> Value {
    let headers: Map<String, Value> =
        request.headers.iter().map(|(name, value)| (name.clone(), Value::String(value.clone()))).collect();
    json!({
        "type": "WEBHOOK",
        "url": request.url,
        "agent": request.agent,
        "synchronized": request.synchronized,
        "method": request.method,
        "headers": headers,
        "body": body,
    })
}

/// The invocation of an action as `UPSERT_ENTITY` shows in a run's `payload`.
pub fn upsert_payload(blueprint: &str, mapping: &Value) -> Value {
    json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": blueprint, "mapping": mapping})
}

/// The hosts of Port's API (reference §1.7: EU `api.port.io`, US `api.us.port.io`, and the
/// older `api.getport.io`): a WEBHOOK sent to one of them is served by Wharf itself while
/// `--port-api-alias` is on (SPEC §8), so Port's "Trigger Port API" examples work verbatim.
pub const PORT_API_HOSTS: [&str; 3] = ["api.getport.io", "api.port.io", "api.us.port.io"];

/// Whether a run's request calls Wharf's own API, and on what path: the path and query to
/// send to Wharf itself, or `None` for a request sent as any other.
///
/// It does when `url` has the origin of `public_url` (scheme, host and port, a default port
/// spelled or not) and its path lies under the public URL's path (whole segments; that prefix
/// is taken off, as the proxy in front of Wharf takes it off), or, when `port_api_alias` is on,
/// when it is `https` on port 443 of one of [`PORT_API_HOSTS`] (a fully qualified name's final
/// dot allowed). The query is kept (Port's `run_as` is there); the fragment is not sent.
/// Nothing else counts: not a host that merely starts or ends like Port's
/// (`api.getport.io.evil.com`, `evil-api.port.io`), nor Port's host as a userinfo
/// (`https://api.port.io@evil.com/`).
pub fn self_call_path(url: &str, public_url: &str, port_api_alias: bool) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return None;
    }
    let with_query = |path: &str| match url.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    if let Ok(public) = url::Url::parse(public_url)
        && public.origin().is_tuple()
        && public.origin() == url.origin()
    {
        let prefix = public.path().trim_end_matches('/');
        let rest = url.path().strip_prefix(prefix)?;
        return match rest {
            "" => Some(with_query("/")),
            rest if rest.starts_with('/') => Some(with_query(rest)),
            _ => None,
        };
    }
    let port_host = match url.host() {
        Some(url::Host::Domain(host)) => PORT_API_HOSTS.contains(&host.strip_suffix('.').unwrap_or(host)),
        _ => false,
    };
    (port_api_alias && port_host && url.scheme() == "https" && url.port_or_known_default() == Some(443))
        .then(|| with_query(url.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_s_api_hosts_are_wharf_itself_while_the_alias_is_on() {
        let public = "https://wharf.example.com";
        let path = |url: &str| self_call_path(url, public, true);
        assert_eq!(
            path("https://api.getport.io/v1/blueprints/service/entities?upsert=true").as_deref(),
            Some("/v1/blueprints/service/entities?upsert=true")
        );
        assert_eq!(
            path("https://api.port.io/v1/actions/notify/runs?run_as=user@x.com").as_deref(),
            Some("/v1/actions/notify/runs?run_as=user@x.com")
        );
        assert_eq!(path("https://API.US.PORT.IO:443/v1/actions#frag").as_deref(), Some("/v1/actions"));
        assert_eq!(path("https://api.getport.io.").as_deref(), Some("/"));
        // Look-alikes, other schemes and ports, and Port's host anywhere but the host.
        for url in [
            "https://api.getport.io.evil.com/v1/actions",
            "https://evil-api.port.io/v1/actions",
            "https://port.io/v1/actions",
            "https://app.getport.io/v1/actions",
            "https://api.port.io@evil.com/v1/actions",
            "https://evil.com/api.port.io/v1/actions",
            "https://evil.com/?u=https://api.port.io/v1",
            "http://api.port.io/v1/actions",
            "https://api.port.io:8443/v1/actions",
            "https://ingest.getport.io/abc",
            "not a url",
            "mailto:api.port.io",
        ] {
            assert_eq!(path(url), None, "{url}");
        }
        // Off: Port's hosts are hosts like any other.
        assert_eq!(self_call_path("https://api.getport.io/v1/actions", public, false), None);
    }

    #[test]
    fn wharf_s_public_url_is_wharf_itself_under_its_path() {
        let path = |url: &str, public: &str| self_call_path(url, public, false);
        let public = "https://wharf.example.com";
        assert_eq!(
            path("https://wharf.example.com/v1/actions/x/runs?run_as=a", public).as_deref(),
            Some("/v1/actions/x/runs?run_as=a")
        );
        assert_eq!(path("https://WHARF.example.com:443/v1/x", public).as_deref(), Some("/v1/x"));
        assert_eq!(path("https://wharf.example.com", public).as_deref(), Some("/"));
        for url in [
            "http://wharf.example.com/v1/x",
            "https://wharf.example.com:8443/v1/x",
            "https://wharf.example.com.evil.com/v1/x",
            "https://other.example.com/v1/x",
        ] {
            assert_eq!(path(url, public), None, "{url}");
        }
        // A public URL with a path: only under it, whole segments, the prefix taken off.
        for public in ["http://127.0.0.1:8080/wharf", "http://127.0.0.1:8080/wharf/"] {
            assert_eq!(path("http://127.0.0.1:8080/wharf/v1/x?a=1", public).as_deref(), Some("/v1/x?a=1"));
            assert_eq!(path("http://127.0.0.1:8080/wharf", public).as_deref(), Some("/"));
            assert_eq!(path("http://127.0.0.1:8080/wharfx/v1/x", public), None);
            assert_eq!(path("http://127.0.0.1:8080/v1/x", public), None);
        }
        // An unusable public URL matches nothing, and Port's hosts still work.
        assert_eq!(path("https://wharf.example.com/v1/x", "not a url"), None);
        assert_eq!(self_call_path("https://api.port.io/v1/x", "not a url", true).as_deref(), Some("/v1/x"));
    }

    fn action(doc: Value) -> ActionDef {
        ActionDef::parse(doc, None).unwrap()
    }

    fn deploy() -> ActionDef {
        action(json!({
            "identifier": "deploy", "title": "Deploy",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                        "userInputs": {"properties": {"version": {"type": "string"}}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/deploy"}
        }))
    }

    fn run(def: &ActionDef) -> Run {
        Run::new(NewRun {
            id: "r_1".into(),
            action: def,
            blueprint: Some(json!({"identifier": "service"})),
            entity: Some(json!({"identifier": "api"})),
            properties: Map::new(),
            raw_properties: Map::new(),
            source: RunSource::Api,
            by: "client".into(),
            impersonated_by: None,
            chain_depth: 0,
            at: Timestamp::from_millis(1),
        })
    }

    #[test]
    fn a_run_reads_back_what_it_wrote() {
        let def = deploy();
        let run = run(&def);
        let doc = run.to_json();
        assert_eq!(doc["status"], "IN_PROGRESS");
        assert_eq!(doc["action"]["identifier"], "deploy");
        assert_eq!(doc["createdAt"], "1970-01-01T00:00:00.001Z");
        assert_eq!(Run::from_json(doc).unwrap(), run);
    }

    #[test]
    fn a_status_ends_a_run_and_an_ended_run_refuses_changes() {
        let def = deploy();
        let mut run = run(&def);
        let label = RunPatch::parse(&json!({"statusLabel": "building", "link": "https://ci/1"})).unwrap();
        run.patch(&label, "c", Timestamp::from_millis(2)).unwrap();
        assert_eq!((run.status, run.link.clone()), (RunStatus::InProgress, vec!["https://ci/1".to_owned()]));
        let done = RunPatch::parse(&json!({"status": "SUCCESS", "summary": "deployed"})).unwrap();
        run.patch(&done, "c", Timestamp::from_millis(3)).unwrap();
        assert_eq!((run.status, run.ended_at), (RunStatus::Success, Some(Timestamp::from_millis(3))));
        let err = run.patch(&label, "c", Timestamp::from_millis(4)).unwrap_err();
        assert_eq!((err.kind, err.code), (crate::error::ErrorKind::Conflict, "run_ended"));
        // A plain log line is still accepted; a second termination is not.
        let line = RunLogInput::parse(&json!({"message": "bye"})).unwrap();
        assert_eq!(run.log(&line, "c", Timestamp::from_millis(5)), Ok(false));
        let end = RunLogInput::parse(&json!({"message": "x", "terminationStatus": "FAILURE"})).unwrap();
        assert!(run.log(&end, "c", Timestamp::from_millis(5)).is_err());
        assert!(run.respond(json!({}), "c", Timestamp::from_millis(5)).is_err());
        assert!(!run.after_synchronized(&Answer { status: Some(500), ..Answer::default() }, Timestamp::from_millis(6)));
        assert_eq!(run.status, RunStatus::Success);
    }

    #[test]
    fn patches_are_checked_whole() {
        for (doc, part) in [
            (json!({"status": "IN_PROGRESS"}), "`status`"),
            (json!({"colour": "red"}), "`colour` is not a known key"),
            (json!({"link": [1]}), "`link[0]`"),
            (json!([]), "must be a JSON object"),
        ] {
            let err = RunPatch::parse(&doc).unwrap_err();
            assert!(err.message.contains(part), "{doc}: {err}");
        }
        assert!(RunLogInput::parse(&json!({"terminationStatus": "SUCCESS"})).unwrap_err().message.contains("`message`"));
    }

    #[test]
    fn a_synchronized_answer_decides_the_run() {
        let def = deploy();
        let mut ok = run(&def);
        assert!(ok.after_synchronized(
            &Answer { status: Some(201), body: Some("{\"n\":1}".into()), error: None },
            Timestamp::from_millis(9)
        ));
        assert_eq!((ok.status, ok.response.clone()), (RunStatus::Success, Some(json!({"n": 1}))));
        let mut text = run(&def);
        text.after_synchronized(&Answer { status: Some(200), body: Some("done".into()), error: None }, Timestamp::from_millis(9));
        assert_eq!(text.response, Some(json!("done")));
        let mut failed = run(&def);
        failed
            .after_synchronized(&Answer { status: Some(503), body: Some("down".into()), error: None }, Timestamp::from_millis(9));
        assert_eq!(failed.status, RunStatus::Failure);
        assert_eq!(failed.summary.as_deref(), Some("Failed to invoke the webhook with status code: 503. Response: down"));
        let mut refused = run(&def);
        refused.after_synchronized(
            &Answer { error: Some("connection refused".into()), ..Answer::default() },
            Timestamp::from_millis(9),
        );
        assert_eq!(refused.summary.as_deref(), Some("Failed to invoke the webhook: connection refused"));
    }

    #[test]
    fn approval_moves_only_a_waiting_run() {
        let def = action(json!({
            "identifier": "drop", "requiredApproval": true,
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {"properties": {}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com"}
        }));
        let mut approved = run(&def);
        assert_eq!(approved.status, RunStatus::WaitingForApproval);
        assert!(approved.patch(&RunPatch::default(), "c", Timestamp::from_millis(2)).is_err());
        approved.decide(Decision::Approve, None, "boss", Timestamp::from_millis(2)).unwrap();
        assert_eq!(approved.status, RunStatus::InProgress);
        assert_eq!(approved.approval, Some(json!({"userId": "boss", "state": "APPROVED"})));
        assert!(approved.decide(Decision::Decline, None, "boss", Timestamp::from_millis(3)).is_err());
        let mut declined = run(&def);
        declined.decide(Decision::Decline, Some("not on a Friday".into()), "boss", Timestamp::from_millis(2)).unwrap();
        assert_eq!((declined.status, declined.ended_at.is_some()), (RunStatus::Declined, true));
        assert_eq!(declined.approval, Some(json!({"userId": "boss", "state": "DECLINED", "description": "not on a Friday"})));
    }

    #[test]
    fn the_context_is_ports() {
        let def = deploy();
        let run = run(&def);
        let trigger = trigger_context("org", "client", None, RunSource::Api, Timestamp::from_millis(1), Some(Operation::Day2));
        let context = context(&run, &def, trigger, None);
        assert_eq!(context["entity"]["identifier"], "api");
        assert_eq!(context["action"], json!({"identifier": "deploy", "blueprint": "service", "encryptedProperties": []}));
        assert_eq!(context["run"], json!({"id": "r_1"}));
        assert_eq!(context["trigger"]["operation"], "DAY-2");
        assert_eq!(context["event"], Value::Null);
        assert_eq!(context["inputs"], json!({}));
    }

    #[test]
    fn which_attempts_settle_a_run() {
        let later = NextStep::RetryAt(Timestamp::from_millis(5));
        assert!(attempt_settles_run(true, &NextStep::Succeeded) && attempt_settles_run(true, &NextStep::Exhausted));
        assert!(
            !attempt_settles_run(false, &NextStep::Succeeded),
            "a delivered request of an asynchronous run leaves it to its backend"
        );
        assert!(
            attempt_settles_run(false, &NextStep::Exhausted)
                && attempt_settles_run(false, &NextStep::DisableTarget("gone".into()))
        );
        assert!(!attempt_settles_run(false, &later) && !attempt_settles_run(true, &later));
        let active: Vec<RunStatus> = RunStatus::when_active(true).collect();
        assert_eq!(active, [RunStatus::InProgress, RunStatus::WaitingForApproval]);
        assert_eq!(RunStatus::when_active(false).count(), 3);
        assert_eq!(parse_response(&json!({"response": {"a": 1}})).unwrap(), json!({"a": 1}));
        assert!(parse_response(&json!({"response": 1, "other": 2})).is_err());
    }

    #[test]
    fn run_filters_read_ports_query() {
        let filter =
            RunFilter::from_query([("entity", "api"), ("active", "true"), ("limit", "5"), ("source", "AUTOMATION")]).unwrap();
        assert_eq!(filter.entity.as_deref(), Some("api"));
        assert_eq!((filter.active, filter.limit, filter.sources.clone()), (Some(true), 5, vec![RunSource::Automation]));
        assert!(RunFilter::from_query([("limit", "0")]).is_err());
        assert!(RunFilter::from_query([("active", "yes")]).is_err());
        assert!(RunFilter::from_query([("colour", "red")]).is_err());
    }
}
