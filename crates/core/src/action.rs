//! Actions and automations (seeds 002 and 003, reference §3): one resource, Port's document
//! (`POST/PUT /v1/actions`). A self-service action (`trigger.type: "self-service"`) is run by
//! a user; an automation (`trigger.type: "automation"`) by an event.
//!
//! A document copied from Port's documentation is taken unchanged and answered as written
//! (plus the audit fields). Every key is known: an unknown one is a 422 naming its path, as
//! Port's schema does for the invocation method (`additionalProperties: false`). Every
//! `{{ … }}` template (URL, headers, body, an upsert's mapping), every automation condition
//! and every `jqQuery` of the user inputs is compiled when the action is saved
//! ([`check_programs`]): one that does not compile is a 422 naming its path and jq's message,
//! never a surprise when the action runs. User input definitions are checked with their
//! paths too (`trigger.userInputs.properties.version.enum`).

use serde_json::{Map, Value};
use wharf_jq::Program;
use wharf_jq::template::{expressions, is_spread_key};

use crate::Error;
use crate::blueprint::{Audited, Blueprint};
use crate::entity::{MAX_ICON, MAX_VALUE_DEPTH};
use crate::json::{check_depth, check_length, type_name};

const CODE: &str = "invalid_action";

/// Port's action identifiers: at most 100 characters.
pub const MAX_IDENTIFIER: usize = 100;
/// Titles (Port documents none): a line.
pub const MAX_TITLE: usize = 200;
/// `actionCardButtonText` and `executeActionButtonText` (Port's apispec: 1 to 15 characters,
/// not starting or ending with a space).
pub const MAX_BUTTON_TEXT: usize = 15;
/// Descriptions (Port documents none): a few paragraphs of markdown.
pub const MAX_DESCRIPTION: usize = 2_000;
/// The longest template string or jq expression, in bytes (SPEC §12: 64 KiB).
pub const MAX_EXPRESSION: usize = 64 * 1024;
/// User inputs one action may define (Port documents none).
pub const MAX_USER_INPUTS: usize = 200;

/// Keys of an answer that a client may send back (a `GET` body used as a `PUT`): ignored.
const RESPONSE_ONLY: [&str; 5] = ["createdAt", "updatedAt", "createdBy", "updatedBy", "id"];

/// Port's invocation types that Wharf does not run.
const UNSUPPORTED_INVOCATIONS: [&str; 5] = ["KAFKA", "GITHUB", "GITLAB", "AZURE_DEVOPS", "INTEGRATION_ACTION"];

/// The formats of user inputs (Port's apispec).
const INPUT_FORMATS: &[&str] = &[
    "date-time",
    "url",
    "email",
    "ipv4",
    "ipv6",
    "yaml",
    "entity",
    "user",
    "team",
    "proto",
    "markdown",
    "multi-line",
    "labeled-url",
];

/// What a self-service action does to its blueprint's entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Day2,
    Delete,
}

impl Operation {
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Create, Self::Day2, Self::Delete].into_iter().find(|o| o.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Day2 => "DAY-2",
            Self::Delete => "DELETE",
        }
    }
}

/// The event an automation waits for (reference §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    EntityCreated,
    EntityUpdated,
    EntityDeleted,
    AnyEntityChange,
    TimerPropertyExpired,
    RunCreated,
    RunUpdated,
    AnyRunChange,
}

impl EventType {
    const ALL: [(&'static str, EventType); 8] = [
        ("ENTITY_CREATED", Self::EntityCreated),
        ("ENTITY_UPDATED", Self::EntityUpdated),
        ("ENTITY_DELETED", Self::EntityDeleted),
        ("ANY_ENTITY_CHANGE", Self::AnyEntityChange),
        ("TIMER_PROPERTY_EXPIRED", Self::TimerPropertyExpired),
        ("RUN_CREATED", Self::RunCreated),
        ("RUN_UPDATED", Self::RunUpdated),
        ("ANY_RUN_CHANGE", Self::AnyRunChange),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, t)| *t == self).map_or("", |(n, _)| n)
    }

    /// Whether the event is about runs of an action (`actionIdentifier`) rather than entities
    /// of a blueprint (`blueprintIdentifier`).
    pub fn is_run_event(self) -> bool {
        matches!(self, Self::RunCreated | Self::RunUpdated | Self::AnyRunChange)
    }
}

/// How an automation's condition expressions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combinator {
    And,
    Or,
}

/// An automation's `condition`: jq expressions over the event object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub expressions: Vec<String>,
    pub combinator: Combinator,
}

/// An automation's `trigger.event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomationEvent {
    pub kind: EventType,
    pub blueprint: Option<String>,
    pub property: Option<String>,
    pub action: Option<String>,
}

/// The `trigger` of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionTrigger {
    SelfService { operation: Operation, blueprint: Option<String> },
    Automation { event: AutomationEvent, condition: Option<Condition> },
}

impl ActionTrigger {
    /// `self-service` or `automation` (the `trigger_type` filter of a list).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::SelfService { .. } => "self-service",
            Self::Automation { .. } => "automation",
        }
    }

    /// The blueprint the action acts on or listens to, if any.
    pub fn blueprint(&self) -> Option<&str> {
        match self {
            Self::SelfService { blueprint, .. } => blueprint.as_deref(),
            Self::Automation { event, .. } => event.blueprint.as_deref(),
        }
    }
}

/// An HTTP method a WEBHOOK invocation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Get,
    Delete,
}

impl Method {
    const ALL: [(&'static str, Method); 5] =
        [("POST", Self::Post), ("PUT", Self::Put), ("PATCH", Self::Patch), ("GET", Self::Get), ("DELETE", Self::Delete)];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, m)| *m == self).map_or("POST", |(n, _)| n)
    }
}

/// How an action is carried out (`invocationMethod`). Templates are kept as written; they are
/// compiled by [`check_programs`] and rendered when the action runs.
#[derive(Debug, Clone, PartialEq)]
// One per action, built once per save or read: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Invocation {
    Webhook {
        /// A template.
        url: String,
        /// `true`, `false` or a template (Port: boolean or string).
        agent: Value,
        /// `true`, `false` or a template; `false` (asynchronous) when not given.
        synchronized: Value,
        method: Method,
        /// Header names and value templates, in the order written.
        headers: Map<String, Value>,
        /// The body template (an object or an array); `None`: SPEC §8's default body.
        body: Option<Value>,
    },
    UpsertEntity {
        blueprint: String,
        /// `{identifier, title, team, icon, properties, relations}`, every string a template.
        mapping: Value,
    },
}

/// `requiredApproval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    None,
    /// `true` or `{"type": "ANY"}`: one approver suffices.
    Any,
    /// `{"type": "ALL"}`: every approver must approve.
    All,
}

/// An action document, validated: what the engine reads of it, and the document as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDef {
    pub identifier: String,
    pub title: Option<String>,
    pub trigger: ActionTrigger,
    pub invocation: Invocation,
    pub approval: Approval,
    /// Automations: `false` turns it off. `true` when not given.
    pub publish: bool,
    /// Blueprints the document names that must exist, with where (`trigger.blueprintIdentifier`,
    /// `trigger.userInputs.properties.service.blueprint`). Templated names are not listed.
    pub blueprint_references: Vec<(String, String)>,
    /// `TIMER_PROPERTY_EXPIRED`: the blueprint's property that must have `format: "timer"`.
    pub timer_property: Option<(String, String)>,
    /// The document as the user wrote it (response-only keys dropped).
    document: Value,
}

/// Which actions `GET /v1/actions` shows (Port's query parameters; an empty list filters
/// nothing, a filter only about automations or only about self-service actions leaves the
/// other kind out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionFilter {
    /// `action_identifier`: only these actions.
    pub identifiers: Vec<String>,
    /// `blueprint_identifier`: only the actions of (or the automations listening to) these
    /// blueprints.
    pub blueprints: Vec<String>,
    /// `operation`: only self-service actions of these operations.
    pub operations: Vec<Operation>,
    /// `published`: self-service actions, and the automations whose `publish` is this.
    pub published: Option<bool>,
    /// `trigger_type`: `self-service` or `automation`.
    pub trigger_type: Option<String>,
    /// `trigger_event`: only automations on these event types.
    pub events: Vec<EventType>,
    /// `trigger_event_action_identifier`: only automations on runs of these actions.
    pub event_actions: Vec<String>,
}

impl ActionFilter {
    /// Reads Port's list query, its pairs in order (a repeated key adds a value; unknown keys
    /// are ignored); a value a key cannot take is a 400 `invalid_query`.
    pub fn from_query<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error> {
        let refused = |key: &str, value: &str, expected: &str| {
            Error::bad_request("invalid_query", format!("`{key}={value}`: expected {expected}"))
        };
        let mut filter = Self::default();
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "action_identifier" => filter.identifiers.push(value.to_owned()),
                "blueprint_identifier" => filter.blueprints.push(value.to_owned()),
                "operation" => {
                    filter.operations.push(Operation::parse(value).ok_or_else(|| refused(key, value, "CREATE, DAY-2 or DELETE"))?)
                }
                "published" => {
                    filter.published = Some(match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(refused(key, value, "true or false")),
                    });
                }
                "trigger_type" if ["self-service", "automation"].contains(&value) => filter.trigger_type = Some(value.to_owned()),
                "trigger_type" => return Err(refused(key, value, "`self-service` or `automation`")),
                "trigger_event" => {
                    let names = EventType::ALL.map(|(name, _)| name).join(", ");
                    filter.events.push(EventType::parse(value).ok_or_else(|| refused(key, value, &names))?);
                }
                "trigger_event_action_identifier" => filter.event_actions.push(value.to_owned()),
                "version" if ["v1", "v2"].contains(&value) => {}
                "version" => return Err(refused(key, value, "v1 or v2")),
                _ => {}
            }
        }
        Ok(filter)
    }

    /// Whether the list shows `def`.
    pub fn admits(&self, def: &ActionDef) -> bool {
        fn any<T: PartialEq<U>, U>(list: &[T], value: Option<U>) -> bool {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| *l == v))
        }
        let (operation, event, event_action, published) = match &def.trigger {
            ActionTrigger::SelfService { operation, .. } => (Some(*operation), None, None, true),
            ActionTrigger::Automation { event, .. } => (None, Some(event.kind), event.action.as_deref(), def.publish),
        };
        any(&self.identifiers, Some(def.identifier.as_str()))
            && any(&self.blueprints, def.trigger.blueprint())
            && any(&self.operations, operation)
            && self.published.is_none_or(|p| !matches!(def.trigger, ActionTrigger::Automation { .. }) || p == published)
            && self.trigger_type.as_deref().is_none_or(|t| def.trigger.type_name() == t)
            && any(&self.events, event)
            && any(&self.event_actions, event_action)
    }
}

/// A stored action: the definition and who changed it when.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub def: ActionDef,
    pub audited: Audited,
}

impl Action {
    /// Port's answer: the document as written, then `createdAt`, `updatedAt`, `createdBy`,
    /// `updatedBy`.
    pub fn to_json(&self) -> Value {
        let mut doc = self.def.document.clone();
        if let (Value::Object(map), Ok(Value::Object(audit))) = (&mut doc, serde_json::to_value(&self.audited)) {
            map.extend(audit);
        }
        doc
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(CODE, message)
}

/// `path.key`, or `key` at the top.
pub(crate) fn at(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// An object at `path`, or a 422 saying what is there instead.
pub(crate) fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    value.as_object().ok_or_else(|| invalid(format!("`{path}` must be an object, not {}", type_name(value))))
}

/// Refuses the keys of `map` (at `path`) that are not in `known`.
pub(crate) fn known_keys(map: &Map<String, Value>, path: &str, known: &[&str]) -> Result<(), Error> {
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(format!("`{}` is not a known key; `{}` may have {}", at(path, key), display(path), list(known))));
    }
    Ok(())
}

fn display(path: &str) -> &str {
    if path.is_empty() { "an action" } else { path }
}

pub(crate) fn list(words: &[&str]) -> String {
    words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

/// An optional string at `map[key]` (`null` counts as absent).
pub(crate) fn string<'a>(map: &'a Map<String, Value>, path: &str, key: &str) -> Result<Option<&'a str>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(invalid(format!("`{}` must be a string, not {}", at(path, key), type_name(other)))),
    }
}

pub(crate) fn required_string<'a>(map: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a str, Error> {
    string(map, path, key)?.ok_or_else(|| invalid(format!("`{}` is required", at(path, key))))
}

pub(crate) fn boolean(map: &Map<String, Value>, path: &str, key: &str) -> Result<Option<bool>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(invalid(format!("`{}` must be a boolean, not {}", at(path, key), type_name(other)))),
    }
}

/// One of `allowed` at `map[key]`.
pub(crate) fn one_of<'a>(map: &'a Map<String, Value>, path: &str, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, Error> {
    let Some(value) = string(map, path, key)? else { return Ok(None) };
    if !allowed.contains(&value) {
        return Err(invalid(format!("`{}` is `{value}`; it must be one of {}", at(path, key), list(allowed))));
    }
    Ok(Some(value))
}

/// Port's action identifier pattern `^(?!\.{1,2}$)[\p{L}0-9@_.+:=-]+$`, at most 100 characters, and not
/// `runs` (Wharf's `/v1/actions/runs` lists runs).
pub fn check_action_identifier(value: &str, path: &str) -> Result<(), Error> {
    if value.is_empty() || value.chars().count() > MAX_IDENTIFIER {
        return Err(invalid(format!("`{path}` must be 1 to {MAX_IDENTIFIER} characters long")));
    }
    let allowed = |c: char| c.is_alphabetic() || c.is_ascii_digit() || "@_.+:=-".contains(c);
    if value == "." || value == ".." || !value.chars().all(allowed) {
        return Err(invalid(format!("`{path}` is `{value}`: use letters, digits and @ _ . + : = -")));
    }
    if value == "runs" {
        return Err(invalid(format!("`{path}` cannot be `runs`, which names the run routes (`/v1/actions/runs`)")));
    }
    Ok(())
}

/// A blueprint name the document refers to (Port's wider blueprint pattern, so a blueprint
/// made under it can be named).
pub(crate) fn check_blueprint_name(value: &str, path: &str) -> Result<(), Error> {
    crate::blueprint::check_identifier(value, path, 100, crate::blueprint::IdentifierKind::BlueprintReference)
        .map_err(|err| invalid(err.message))
}

pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{")
}

impl ActionDef {
    /// Reads and validates an action document (a new one, or one replacing the action
    /// `route`, whose identifier it must keep). jq is compiled by [`check_programs`].
    pub fn parse(mut doc: Value, route: Option<&str>) -> Result<Self, Error> {
        let Value::Object(map) = &mut doc else {
            return Err(invalid(format!("an action must be a JSON object, not {}", type_name(&doc))));
        };
        for key in RESPONSE_ONLY {
            map.shift_remove(key);
        }
        // Stored and answered whole, and read back by serde: no deeper than an entity.
        check_depth(CODE, &doc, "action", MAX_VALUE_DEPTH)?;
        let def = Self::read(&doc, route)?;
        // A replacement may leave the identifier out (the route names it): stored with it.
        if let Value::Object(map) = &mut doc
            && !map.contains_key("identifier")
        {
            let mut named = Map::new();
            named.insert("identifier".to_owned(), Value::String(def.identifier.clone()));
            named.append(map);
            *map = named;
        }
        Ok(Self { document: doc, ..def })
    }

    /// Reads an action stored by [`ActionDef::parse`].
    pub fn from_stored(doc: Value) -> Result<Self, Error> {
        Self::parse(doc, None)
    }

    /// The document as written (what is stored).
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The blueprints whose existence (and properties) the action relies on, each once, for the
    /// caller to look up before [`ActionDef::check_references`].
    pub fn referenced_blueprints(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.blueprint_references.iter().map(|(_, name)| name.as_str()).collect();
        names.extend(self.timer_property.as_ref().map(|(blueprint, _)| blueprint.as_str()));
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Checks what the action names against the catalog: every blueprint it names exists, and a
    /// timer automation's property is a `timer` property of its blueprint (422 `invalid_action`
    /// naming the path). `blueprint` finds a blueprint among those
    /// [`ActionDef::referenced_blueprints`] lists.
    pub fn check_references<'b>(&self, blueprint: impl Fn(&str) -> Option<&'b Blueprint>) -> Result<(), Error> {
        for (path, name) in &self.blueprint_references {
            if blueprint(name).is_none() {
                return Err(invalid(format!("`{path}` is `{name}`, which is not an existing blueprint")));
            }
        }
        if let Some((name, property)) = &self.timer_property {
            match blueprint(name).and_then(|b| b.property(property)).map(|p| p.format.as_deref()) {
                Some(Some("timer")) => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "`trigger.event.propertyIdentifier` is `{property}`, which is not a `timer` property of `{name}` (`format: \"timer\"`)"
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "`trigger.event.propertyIdentifier` is `{property}`, which is not a property of `{name}`"
                    )));
                }
            }
        }
        Ok(())
    }

    fn read(doc: &Value, route: Option<&str>) -> Result<Self, Error> {
        let map = object(doc, "action")?;
        known_keys(
            map,
            "",
            &[
                "identifier",
                "title",
                "icon",
                "description",
                "trigger",
                "invocationMethod",
                "requiredApproval",
                "approvalNotification",
                "publish",
                "allowAnyoneToViewRuns",
            ],
        )?;
        let identifier = match (string(map, "", "identifier")?, route) {
            (Some(identifier), Some(route)) if identifier != route => {
                return Err(invalid(format!(
                    "`identifier` is `{identifier}`, but the route names `{route}`; action identifiers cannot be changed"
                )));
            }
            // The stored action's identifier, which was checked when it was made.
            (_, Some(route)) => route.to_owned(),
            (Some(identifier), None) => {
                check_action_identifier(identifier, "identifier")?;
                identifier.to_owned()
            }
            (None, None) => return Err(invalid("`identifier` is required")),
        };
        let title = string(map, "", "title")?;
        if let Some(title) = title {
            check_length(CODE, title, "title", 0, MAX_TITLE)?;
        }
        if let Some(icon) = string(map, "", "icon")? {
            check_length(CODE, icon, "icon", 0, MAX_ICON)?;
        }
        if let Some(description) = string(map, "", "description")? {
            check_length(CODE, description, "description", 0, MAX_DESCRIPTION)?;
        }
        let publish = boolean(map, "", "publish")?.unwrap_or(true);
        boolean(map, "", "allowAnyoneToViewRuns")?;
        let approval = approval(map.get("requiredApproval"))?;
        if let Some(notification) = map.get("approvalNotification").filter(|v| !v.is_null()) {
            approval_notification(notification)?;
        }
        let mut blueprint_references = Vec::new();
        let mut timer_property = None;
        let trigger = match map.get("trigger") {
            None | Some(Value::Null) => return Err(invalid("`trigger` is required")),
            Some(trigger) => read_trigger(trigger, &mut blueprint_references, &mut timer_property)?,
        };
        let invocation = match map.get("invocationMethod") {
            None | Some(Value::Null) => return Err(invalid("`invocationMethod` is required")),
            Some(invocation) => read_invocation(invocation, &mut blueprint_references)?,
        };
        Ok(Self {
            identifier,
            title: title.map(str::to_owned),
            trigger,
            invocation,
            approval,
            publish,
            blueprint_references,
            timer_property,
            document: Value::Null,
        })
    }
}

fn approval(value: Option<&Value>) -> Result<Approval, Error> {
    const PATH: &str = "requiredApproval";
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(Approval::None),
        Some(Value::Bool(true)) => Ok(Approval::Any),
        Some(Value::Object(map)) => {
            known_keys(map, PATH, &["type"])?;
            match one_of(map, PATH, "type", &["ANY", "ALL"])? {
                Some("ALL") => Ok(Approval::All),
                Some(_) => Ok(Approval::Any),
                None => Err(invalid("`requiredApproval.type` is required (`ANY` or `ALL`)")),
            }
        }
        Some(other) => Err(invalid(format!(
            "`requiredApproval` must be a boolean or `{{\"type\": \"ANY\"|\"ALL\"}}`, not {}",
            type_name(other)
        ))),
    }
}

fn approval_notification(value: &Value) -> Result<(), Error> {
    const PATH: &str = "approvalNotification";
    let map = object(value, PATH)?;
    match one_of(map, PATH, "type", &["email", "webhook"])? {
        Some("email") => known_keys(map, PATH, &["type"]),
        Some(_) => {
            known_keys(map, PATH, &["type", "url", "format"])?;
            required_string(map, PATH, "url")?;
            one_of(map, PATH, "format", &["json", "slack"])?;
            Ok(())
        }
        None => Err(invalid("`approvalNotification.type` is required (`email` or `webhook`)")),
    }
}

fn read_trigger(
    value: &Value,
    blueprints: &mut Vec<(String, String)>,
    timer: &mut Option<(String, String)>,
) -> Result<ActionTrigger, Error> {
    const PATH: &str = "trigger";
    let map = object(value, PATH)?;
    match one_of(map, PATH, "type", &["self-service", "automation"])? {
        Some("self-service") => {
            known_keys(
                map,
                PATH,
                &[
                    "type",
                    "operation",
                    "blueprintIdentifier",
                    "userInputs",
                    "condition",
                    "actionCardButtonText",
                    "executeActionButtonText",
                ],
            )?;
            let operation = match one_of(map, PATH, "operation", &["CREATE", "DAY-2", "DELETE"])? {
                Some("CREATE") => Operation::Create,
                Some("DAY-2") => Operation::Day2,
                Some(_) => Operation::Delete,
                None => return Err(invalid("`trigger.operation` is required (`CREATE`, `DAY-2` or `DELETE`)")),
            };
            // Optional for every operation, as in Port: an action need not be tied to a blueprint.
            let blueprint = string(map, PATH, "blueprintIdentifier")?;
            if let Some(name) = blueprint {
                check_blueprint_name(name, "trigger.blueprintIdentifier")?;
                blueprints.push(("trigger.blueprintIdentifier".to_owned(), name.to_owned()));
            }
            for key in ["actionCardButtonText", "executeActionButtonText"] {
                if let Some(text) = string(map, PATH, key)? {
                    check_length(CODE, text, &at(PATH, key), 1, MAX_BUTTON_TEXT)?;
                    if text.trim() != text {
                        return Err(invalid(format!("`{}` may not start or end with a space", at(PATH, key))));
                    }
                }
            }
            if let Some(condition) = map.get("condition").filter(|v| !v.is_null()) {
                let condition = object(condition, "trigger.condition")?;
                known_keys(condition, "trigger.condition", &["type", "rules", "combinator"])?;
                one_of(condition, "trigger.condition", "type", &["SEARCH"])?;
                one_of(condition, "trigger.condition", "combinator", &["and", "or"])?;
                if let Some(rules) = condition.get("rules")
                    && !rules.is_array()
                {
                    return Err(invalid(format!("`trigger.condition.rules` must be an array, not {}", type_name(rules))));
                }
            }
            if let Some(inputs) = map.get("userInputs").filter(|v| !v.is_null()) {
                user_inputs(inputs, blueprints)?;
            }
            Ok(ActionTrigger::SelfService { operation, blueprint: blueprint.map(str::to_owned) })
        }
        Some(_) => {
            known_keys(map, PATH, &["type", "event", "condition"])?;
            let event = match map.get("event") {
                None | Some(Value::Null) => return Err(invalid("`trigger.event` is required")),
                Some(event) => automation_event(event, blueprints, timer)?,
            };
            let condition = match map.get("condition") {
                None | Some(Value::Null) => None,
                Some(condition) => Some(automation_condition(condition)?),
            };
            Ok(ActionTrigger::Automation { event, condition })
        }
        None => Err(invalid("`trigger.type` is required (`self-service` or `automation`)")),
    }
}

pub(crate) fn automation_event(
    value: &Value,
    blueprints: &mut Vec<(String, String)>,
    timer: &mut Option<(String, String)>,
) -> Result<AutomationEvent, Error> {
    const PATH: &str = "trigger.event";
    let map = object(value, PATH)?;
    known_keys(map, PATH, &["type", "blueprintIdentifier", "propertyIdentifier", "actionIdentifier"])?;
    let names: Vec<&str> = EventType::ALL.iter().map(|(n, _)| *n).collect();
    let kind = match one_of(map, PATH, "type", &names)? {
        Some(name) => EventType::parse(name).unwrap_or(EventType::AnyEntityChange),
        None => return Err(invalid(format!("`trigger.event.type` is required: one of {}", list(&names)))),
    };
    let blueprint = string(map, PATH, "blueprintIdentifier")?;
    let property = string(map, PATH, "propertyIdentifier")?;
    let action = string(map, PATH, "actionIdentifier")?;
    let needs = |key: &str, present: bool| {
        if present { Ok(()) } else { Err(invalid(format!("`trigger.event.{key}` is required for `{}` events", kind.name()))) }
    };
    let refuses = |key: &str, present: bool| {
        if present { Err(invalid(format!("`trigger.event.{key}` does not apply to `{}` events", kind.name()))) } else { Ok(()) }
    };
    if kind.is_run_event() {
        needs("actionIdentifier", action.is_some())?;
        refuses("blueprintIdentifier", blueprint.is_some())?;
        refuses("propertyIdentifier", property.is_some())?;
        if let Some(action) = action {
            check_action_identifier(action, "trigger.event.actionIdentifier")?;
        }
    } else {
        needs("blueprintIdentifier", blueprint.is_some())?;
        refuses("actionIdentifier", action.is_some())?;
        if kind == EventType::TimerPropertyExpired {
            needs("propertyIdentifier", property.is_some())?;
        } else {
            refuses("propertyIdentifier", property.is_some())?;
        }
    }
    if let Some(name) = blueprint {
        check_blueprint_name(name, "trigger.event.blueprintIdentifier")?;
        blueprints.push(("trigger.event.blueprintIdentifier".to_owned(), name.to_owned()));
        if let Some(property) = property {
            *timer = Some((name.to_owned(), property.to_owned()));
        }
    }
    Ok(AutomationEvent {
        kind,
        blueprint: blueprint.map(str::to_owned),
        property: property.map(str::to_owned),
        action: action.map(str::to_owned),
    })
}

pub(crate) fn automation_condition(value: &Value) -> Result<Condition, Error> {
    const PATH: &str = "trigger.condition";
    let map = object(value, PATH)?;
    known_keys(map, PATH, &["type", "expressions", "combinator"])?;
    if one_of(map, PATH, "type", &["JQ"])?.is_none() {
        return Err(invalid("`trigger.condition.type` is required (`JQ`)"));
    }
    let combinator = match one_of(map, PATH, "combinator", &["and", "or"])? {
        Some("or") => Combinator::Or,
        _ => Combinator::And,
    };
    let expressions = match map.get("expressions") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(code) => Ok(code.clone()),
                other => Err(invalid(format!(
                    "`trigger.condition.expressions[{i}]` must be a jq expression (a string), not {}",
                    type_name(other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => return Err(invalid("`trigger.condition.expressions` is required")),
        Some(other) => {
            return Err(invalid(format!("`trigger.condition.expressions` must be an array, not {}", type_name(other))));
        }
    };
    Ok(Condition { expressions, combinator })
}

/// `trigger.userInputs`: `properties` (each a user input definition), `required` (names, or
/// a `jqQuery`), `order`, `steps`, `titles`.
pub(crate) fn user_inputs(value: &Value, blueprints: &mut Vec<(String, String)>) -> Result<(), Error> {
    const PATH: &str = "trigger.userInputs";
    let map = object(value, PATH)?;
    known_keys(map, PATH, &["properties", "required", "order", "steps", "titles"])?;
    let empty = Map::new();
    let properties = match map.get("properties") {
        None | Some(Value::Null) => &empty,
        Some(properties) => object(properties, "trigger.userInputs.properties")?,
    };
    if properties.len() > MAX_USER_INPUTS {
        return Err(invalid(format!(
            "`trigger.userInputs.properties` has {} inputs; an action may have at most {MAX_USER_INPUTS}",
            properties.len()
        )));
    }
    for (name, definition) in properties {
        let path = format!("trigger.userInputs.properties.{name}");
        if !is_input_name(name) {
            return Err(invalid(format!("`{path}`: an input's name is 1 to 100 characters of A-Z a-z 0-9 @ _ = -")));
        }
        user_input(definition, &path, properties, blueprints)?;
    }
    let names = |value: &Value, path: &str| -> Result<(), Error> {
        let Value::Array(items) = value else {
            return Err(invalid(format!("`{path}` must be an array of input names, not {}", type_name(value))));
        };
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(name) if properties.contains_key(name) => {}
                Value::String(name) => {
                    return Err(invalid(format!("`{path}[{i}]` is `{name}`, which is not an input of `{PATH}.properties`")));
                }
                other => return Err(invalid(format!("`{path}[{i}]` must be an input name, not {}", type_name(other)))),
            }
        }
        Ok(())
    };
    match map.get("required") {
        None | Some(Value::Null) => {}
        Some(Value::Object(query)) => jq_query(query, "trigger.userInputs.required")?,
        Some(required) => names(required, "trigger.userInputs.required")?,
    }
    if let Some(order) = map.get("order").filter(|v| !v.is_null()) {
        names(order, "trigger.userInputs.order")?;
    }
    if let Some(steps) = map.get("steps").filter(|v| !v.is_null()) {
        let Value::Array(steps) = steps else {
            return Err(invalid(format!("`trigger.userInputs.steps` must be an array, not {}", type_name(steps))));
        };
        for (i, step) in steps.iter().enumerate() {
            let path = format!("trigger.userInputs.steps[{i}]");
            let step = object(step, &path)?;
            known_keys(step, &path, &["title", "order", "visible"])?;
            required_string(step, &path, "title")?;
            if let Some(order) = step.get("order").filter(|v| !v.is_null()) {
                names(order, &format!("{path}.order"))?;
            }
            visibility(step, &path, "visible")?;
        }
    }
    if let Some(titles) = map.get("titles").filter(|v| !v.is_null()) {
        for (name, title) in object(titles, "trigger.userInputs.titles")? {
            let path = format!("trigger.userInputs.titles.{name}");
            let title = object(title, &path)?;
            known_keys(title, &path, &["title", "description", "visible"])?;
            if let Some(text) = string(title, &path, "title")? {
                check_length(CODE, text, &at(&path, "title"), 1, 140)?;
            }
            if let Some(text) = string(title, &path, "description")? {
                check_length(CODE, text, &at(&path, "description"), 0, 1_000)?;
            }
            visibility(title, &path, "visible")?;
        }
    }
    Ok(())
}

/// Port's names of inputs: `^[A-Za-z0-9@_=-]+$`, at most 100 characters.
fn is_input_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || "@_=-".contains(c))
}

/// `visible`/`disabled`: a boolean or a `{"jqQuery"}`.
fn visibility(map: &Map<String, Value>, path: &str, key: &str) -> Result<(), Error> {
    match map.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(Value::Object(query)) => jq_query(query, &at(path, key)),
        Some(other) => {
            Err(invalid(format!("`{}` must be a boolean or a `{{\"jqQuery\"}}`, not {}", at(path, key), type_name(other))))
        }
    }
}

/// `{"jqQuery": "…"}`: nothing else, and a string (compiled by [`check_programs`]).
fn jq_query(map: &Map<String, Value>, path: &str) -> Result<(), Error> {
    known_keys(map, path, &["jqQuery"])?;
    required_string(map, path, "jqQuery")?;
    Ok(())
}

fn is_jq_query(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.contains_key("jqQuery"))
}

/// The types of user inputs (as blueprint properties).
const INPUT_TYPES: [&str; 5] = ["string", "number", "boolean", "object", "array"];

fn admits(kind: &str, value: &Value) -> bool {
    matches!(
        (kind, value),
        ("string", Value::String(_))
            | ("number", Value::Number(_))
            | ("boolean", Value::Bool(_))
            | ("object", Value::Object(_))
            | ("array", Value::Array(_))
    )
}

/// One user input definition at `path`: Port's keys are JSON-schema-like and open (a
/// `dataset`, `sort`, `encryption`…), so unknown keys are kept; the keys Wharf reads are
/// checked.
fn user_input(
    value: &Value,
    path: &str,
    inputs: &Map<String, Value>,
    blueprints: &mut Vec<(String, String)>,
) -> Result<(), Error> {
    let map = object(value, path)?;
    let kind = match one_of(map, path, "type", &INPUT_TYPES)? {
        Some(kind) => kind,
        None => return Err(invalid(format!("`{path}.type` is required: one of {}", list(&INPUT_TYPES)))),
    };
    for key in ["title", "description", "icon", "pattern"] {
        string(map, path, key)?;
    }
    if let Some(title) = string(map, path, "title")? {
        check_length(CODE, title, &at(path, "title"), 0, MAX_TITLE)?;
    }
    for key in ["minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems"] {
        if let Some(bound) = map.get(key).filter(|v| !v.is_null())
            && !bound.is_number()
        {
            return Err(invalid(format!("`{}` must be a number, not {}", at(path, key), type_name(bound))));
        }
    }
    for key in ["visible", "disabled"] {
        visibility(map, path, key)?;
    }
    if let Some(encryption) = string(map, path, "encryption")? {
        let encryption_path = at(path, "encryption");
        if encryption != crate::run_inputs::INPUT_ENCRYPTION {
            return Err(invalid(format!(
                "`{encryption_path}` is `{encryption}`; Wharf encrypts inputs with `{}` only",
                crate::run_inputs::INPUT_ENCRYPTION
            )));
        }
        if !matches!(kind, "string" | "object") {
            return Err(invalid(format!("`{encryption_path}` applies to a `string` or `object` input, not `{kind}`")));
        }
    }
    let format = string(map, path, "format")?;
    if let Some(format) = format {
        if !INPUT_FORMATS.contains(&format) {
            return Err(invalid(format!("`{path}.format` is `{format}`; it must be one of {}", list(INPUT_FORMATS))));
        }
        if format == "entity" && kind != "string" {
            return Err(invalid(format!("`{path}.format` `entity` applies to a `string` input, not `{kind}`")));
        }
    }
    if format == Some("entity") {
        entity_blueprint(map, path, blueprints)?;
    } else if map.contains_key("blueprint") && kind != "array" {
        return Err(invalid(format!("`{path}.blueprint` applies to an input with `format: \"entity\"`")));
    }
    if kind == "array"
        && let Some(items) = map.get("items").filter(|v| !v.is_null())
    {
        let items_path = at(path, "items");
        let items = object(items, &items_path)?;
        let item_kind = one_of(items, &items_path, "type", &INPUT_TYPES)?;
        if let Some(item_format) = string(items, &items_path, "format")? {
            if !INPUT_FORMATS.contains(&item_format) {
                return Err(invalid(format!(
                    "`{items_path}.format` is `{item_format}`; it must be one of {}",
                    list(INPUT_FORMATS)
                )));
            }
            if item_format == "entity" {
                if item_kind.is_some_and(|k| k != "string") {
                    return Err(invalid(format!("`{items_path}.format` `entity` applies to `string` items")));
                }
                entity_blueprint(items, &items_path, blueprints)?;
            }
        }
    } else if let Some(items) = map.get("items").filter(|v| !v.is_null()) {
        object(items, &at(path, "items"))?;
        return Err(invalid(format!("`{path}.items` applies to an `array` input, not `{kind}`")));
    }
    match map.get("enum") {
        None | Some(Value::Null) => {}
        Some(Value::Array(choices)) => {
            if choices.is_empty() {
                return Err(invalid(format!("`{path}.enum` must list at least one value")));
            }
            for (i, choice) in choices.iter().enumerate() {
                if !admits(kind, choice) {
                    return Err(invalid(format!("`{path}.enum[{i}]` is {}, but the input is a `{kind}`", type_name(choice))));
                }
            }
        }
        Some(Value::Object(query)) => jq_query(query, &at(path, "enum"))?,
        Some(other) => {
            return Err(invalid(format!("`{path}.enum` must be an array or a `{{\"jqQuery\"}}`, not {}", type_name(other))));
        }
    }
    match map.get("default") {
        None | Some(Value::Null) => {}
        Some(default) if is_jq_query(default) => jq_query(object(default, &at(path, "default"))?, &at(path, "default"))?,
        Some(default) => {
            if !admits(kind, default) {
                return Err(invalid(format!("`{path}.default` is {}, but the input is a `{kind}`", type_name(default))));
            }
            if let Some(Value::Array(choices)) = map.get("enum")
                && !choices.contains(default)
            {
                return Err(invalid(format!("`{path}.default` is {default}, which is not one of `{path}.enum`")));
            }
        }
    }
    match map.get("dependsOn") {
        None | Some(Value::Null) => {}
        Some(Value::Array(names)) => {
            for (i, name) in names.iter().enumerate() {
                match name {
                    Value::String(name) if inputs.contains_key(name) => {}
                    Value::String(name) => {
                        return Err(invalid(format!(
                            "`{path}.dependsOn[{i}]` is `{name}`, which is not an input of this action"
                        )));
                    }
                    other => {
                        return Err(invalid(format!("`{path}.dependsOn[{i}]` must be an input name, not {}", type_name(other))));
                    }
                }
            }
        }
        Some(other) => {
            return Err(invalid(format!("`{path}.dependsOn` must be an array of input names, not {}", type_name(other))));
        }
    }
    if let Some(dataset) = map.get("dataset").filter(|v| !v.is_null()) {
        object(dataset, &at(path, "dataset"))?;
    }
    Ok(())
}

/// An entity input's `blueprint`: required, a blueprint name (listed to exist) or a template.
fn entity_blueprint(map: &Map<String, Value>, path: &str, blueprints: &mut Vec<(String, String)>) -> Result<(), Error> {
    let Some(name) = string(map, path, "blueprint")? else {
        return Err(invalid(format!("`{path}.blueprint` is required for an input with `format: \"entity\"`")));
    };
    let name_path = at(path, "blueprint");
    if !is_template(name) {
        check_blueprint_name(name, &name_path)?;
        blueprints.push((name_path, name.to_owned()));
    }
    Ok(())
}

pub(crate) fn read_invocation(value: &Value, blueprints: &mut Vec<(String, String)>) -> Result<Invocation, Error> {
    const PATH: &str = "invocationMethod";
    let map = object(value, PATH)?;
    let kind = required_string(map, PATH, "type")?;
    match kind {
        "WEBHOOK" => {
            known_keys(map, PATH, &["type", "url", "agent", "synchronized", "method", "headers", "body"])?;
            let url = required_string(map, PATH, "url")?.to_owned();
            let flag = |key: &str| -> Result<Value, Error> {
                match map.get(key) {
                    None | Some(Value::Null) => Ok(Value::Bool(false)),
                    Some(given @ (Value::Bool(_) | Value::String(_))) => Ok(given.clone()),
                    Some(other) => Err(invalid(format!(
                        "`invocationMethod.{key}` must be a boolean (or a template string), not {}",
                        type_name(other)
                    ))),
                }
            };
            let (agent, synchronized) = (flag("agent")?, flag("synchronized")?);
            let names: Vec<&str> = Method::ALL.iter().map(|(n, _)| *n).collect();
            let method = match one_of(map, PATH, "method", &names)? {
                Some(name) => Method::ALL.iter().find(|(n, _)| *n == name).map_or(Method::Post, |(_, m)| *m),
                None => Method::Post,
            };
            let headers = match map.get("headers") {
                None | Some(Value::Null) => Map::new(),
                Some(headers) => {
                    let headers = object(headers, "invocationMethod.headers")?;
                    for (name, value) in headers {
                        if !value.is_string() {
                            return Err(invalid(format!(
                                "`invocationMethod.headers.{name}` must be a string, not {}",
                                type_name(value)
                            )));
                        }
                    }
                    headers.clone()
                }
            };
            let body = match map.get("body") {
                None | Some(Value::Null) => None,
                Some(body @ (Value::Object(_) | Value::Array(_))) => Some(body.clone()),
                Some(other) => {
                    return Err(invalid(format!(
                        "`invocationMethod.body` must be an object or an array, not {}",
                        type_name(other)
                    )));
                }
            };
            Ok(Invocation::Webhook { url, agent, synchronized, method, headers, body })
        }
        "UPSERT_ENTITY" => {
            known_keys(map, PATH, &["type", "blueprintIdentifier", "mapping"])?;
            let blueprint = required_string(map, PATH, "blueprintIdentifier")?;
            if !is_template(blueprint) {
                check_blueprint_name(blueprint, "invocationMethod.blueprintIdentifier")?;
                blueprints.push(("invocationMethod.blueprintIdentifier".to_owned(), blueprint.to_owned()));
            }
            let mapping = match map.get("mapping") {
                None | Some(Value::Null) => return Err(invalid("`invocationMethod.mapping` is required")),
                Some(mapping) => mapping,
            };
            const MAPPING: &str = "invocationMethod.mapping";
            let fields = object(mapping, MAPPING)?;
            known_keys(fields, MAPPING, &["identifier", "title", "team", "icon", "properties", "relations"])?;
            // Every field is optional in Port's schema (an identifier left out is generated
            // when the entity is written).
            for key in ["identifier", "title", "icon"] {
                string(fields, MAPPING, key)?;
            }
            if let Some(team) = fields.get("team").filter(|v| !v.is_null())
                && !team.is_string()
                && !team.is_array()
            {
                return Err(invalid(format!(
                    "`invocationMethod.mapping.team` must be a string or an array, not {}",
                    type_name(team)
                )));
            }
            if let Some(properties) = fields.get("properties").filter(|v| !v.is_null()) {
                object(properties, "invocationMethod.mapping.properties")?;
            }
            if let Some(relations) = fields.get("relations").filter(|v| !v.is_null()) {
                for (name, target) in object(relations, "invocationMethod.mapping.relations")? {
                    let targets_ok = match target {
                        Value::Null | Value::String(_) => true,
                        Value::Array(items) => items.iter().all(Value::is_string),
                        _ => false,
                    };
                    if !targets_ok {
                        return Err(invalid(format!(
                            "`invocationMethod.mapping.relations.{name}` must be a string, an array of strings or null, not {}",
                            type_name(target)
                        )));
                    }
                }
            }
            Ok(Invocation::UpsertEntity { blueprint: blueprint.to_owned(), mapping: mapping.clone() })
        }
        other if UNSUPPORTED_INVOCATIONS.contains(&other) => Err(invalid(format!(
            "`invocationMethod.type` is `{other}`: Wharf runs actions with `WEBHOOK` and `UPSERT_ENTITY` only"
        ))),
        other => Err(invalid(format!(
            "`invocationMethod.type` is `{other}`; it must be `WEBHOOK` or `UPSERT_ENTITY` (Wharf does not run {})",
            list(&UNSUPPORTED_INVOCATIONS)
        ))),
    }
}

/// Compiles every program of `def`: the invocation's templates (URL, headers, body, the
/// flags given as strings; an upsert's blueprint and mapping), the automation's condition
/// expressions, and every `jqQuery` of the user inputs. All failures are reported at once,
/// each with its path and jq's message (422 `invalid_jq`); a string over [`MAX_EXPRESSION`]
/// bytes is refused before anything compiles.
pub fn check_programs(def: &ActionDef) -> Result<(), Error> {
    let mut programs: Vec<(String, Source<'_>)> = Vec::new();
    match &def.invocation {
        Invocation::Webhook { url, agent, synchronized, headers, body, .. } => {
            programs.push(("invocationMethod.url".to_owned(), Source::Template(url)));
            for (key, flag) in [("agent", agent), ("synchronized", synchronized)] {
                if let Value::String(text) = flag {
                    programs.push((format!("invocationMethod.{key}"), Source::Template(text)));
                }
            }
            for (name, value) in headers {
                let path = format!("invocationMethod.headers.{name}");
                programs.push((path.clone(), Source::Key(name)));
                if let Value::String(text) = value {
                    programs.push((path, Source::Template(text)));
                }
            }
            if let Some(body) = body {
                templates(body, "invocationMethod.body", &mut programs);
            }
        }
        Invocation::UpsertEntity { blueprint, mapping } => {
            programs.push(("invocationMethod.blueprintIdentifier".to_owned(), Source::Template(blueprint)));
            templates(mapping, "invocationMethod.mapping", &mut programs);
        }
    }
    if let ActionTrigger::Automation { condition: Some(condition), .. } = &def.trigger {
        for (i, code) in condition.expressions.iter().enumerate() {
            programs.push((format!("trigger.condition.expressions[{i}]"), Source::Jq(code)));
        }
    }
    if let Some(inputs) = def.document.pointer("/trigger/userInputs") {
        jq_queries(inputs, "trigger.userInputs", &mut programs);
    }
    for (path, source) in &programs {
        let text = match source {
            Source::Template(text) | Source::Key(text) | Source::Jq(text) => text,
        };
        if text.len() > MAX_EXPRESSION {
            return Err(invalid(format!(
                "`{path}` is {} bytes long; a template or jq expression may have at most {MAX_EXPRESSION}",
                text.len()
            )));
        }
    }
    let mut errors = Vec::new();
    for (path, source) in &programs {
        match source {
            Source::Jq(code) => compile(code, path, "a valid jq expression", &mut errors),
            Source::Key(key) if is_spread_key(key) => {}
            Source::Template(text) | Source::Key(text) => match expressions(text) {
                Ok(found) => {
                    for code in found {
                        compile(code, path, "a valid template", &mut errors);
                    }
                }
                Err(err) => errors.push(format!("`{path}` is not a valid template: {err}")),
            },
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid("invalid_jq", errors.join("; ")));
    }
    Ok(())
}

/// A program to compile: a template string, an object key (a template, or
/// `{{ spreadValue() }}`), or a jq expression.
pub(crate) enum Source<'a> {
    Template(&'a str),
    Key(&'a str),
    Jq(&'a str),
}

pub(crate) fn compile(code: &str, path: &str, what: &str, errors: &mut Vec<String>) {
    if let Err(err) = Program::compile(code) {
        let message = err.to_string();
        let message: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        errors.push(format!("`{path}` is not {what}: {}", message.join(" ")));
    }
}

/// Every key and string of a template value, with its path.
pub(crate) fn templates<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, Source<'a>)>) {
    let mut pending = vec![(value, path.to_owned())];
    while let Some((value, path)) = pending.pop() {
        match value {
            Value::String(text) => out.push((path, Source::Template(text))),
            Value::Array(items) => pending.extend(items.iter().enumerate().map(|(i, v)| (v, format!("{path}[{i}]")))),
            Value::Object(fields) => {
                for (key, v) in fields {
                    let key_path = format!("{path}.{key}");
                    out.push((key_path.clone(), Source::Key(key)));
                    pending.push((v, key_path));
                }
            }
            _ => {}
        }
    }
}

/// Every `{"jqQuery": "…"}` under the user inputs, with its path.
pub(crate) fn jq_queries<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, Source<'a>)>) {
    let mut pending = vec![(value, path.to_owned())];
    while let Some((value, path)) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items.iter().enumerate().map(|(i, v)| (v, format!("{path}[{i}]")))),
            Value::Object(fields) => {
                for (key, v) in fields {
                    match (key.as_str(), v) {
                        ("jqQuery", Value::String(code)) => out.push((format!("{path}.jqQuery"), Source::Jq(code))),
                        _ => pending.push((v, format!("{path}.{key}"))),
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook_action() -> Value {
        json!({
            "identifier": "deploy", "title": "Deploy",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                        "userInputs": {"properties": {"version": {"type": "string", "enum": ["1", "2"], "default": "1"}},
                                       "required": ["version"], "order": ["version"]}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/{{ .inputs.version }}",
                                 "headers": {"RUN_ID": "{{ .run.id }}"},
                                 "body": {"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}"}}}
        })
    }

    #[test]
    fn reads_a_self_service_action() {
        let def = ActionDef::parse(webhook_action(), None).unwrap();
        assert_eq!(def.trigger, ActionTrigger::SelfService { operation: Operation::Day2, blueprint: Some("service".into()) });
        assert_eq!(def.blueprint_references, vec![("trigger.blueprintIdentifier".to_owned(), "service".to_owned())]);
        check_programs(&def).unwrap();
        assert_eq!(def.document(), &webhook_action());
    }

    #[test]
    fn errors_name_their_path() {
        let mut doc = webhook_action();
        doc["invocationMethod"]["body"]["x"] = json!("{{ .a | nope }}");
        let def = ActionDef::parse(doc, None).unwrap();
        let err = check_programs(&def).unwrap_err();
        assert!(err.message.contains("`invocationMethod.body.x`"), "{}", err.message);
        let mut doc = webhook_action();
        doc["trigger"]["userInputs"]["properties"]["version"]["default"] = json!("3");
        let err = ActionDef::parse(doc, None).unwrap_err();
        assert!(err.message.contains("`trigger.userInputs.properties.version.default`"), "{}", err.message);
        let mut doc = webhook_action();
        doc["invocationMethod"]["type"] = json!("KAFKA");
        let err = ActionDef::parse(doc, None).unwrap_err();
        assert!(err.message.contains("`WEBHOOK` and `UPSERT_ENTITY`"), "{}", err.message);
    }
}
