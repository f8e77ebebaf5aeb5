//! Workflows (seed 001, SPEC §9, reference §4): Port's node graph (`/v1/workflows`). Nodes are
//! triggers (`SELF_SERVE_TRIGGER`, `EVENT_TRIGGER`, `SCHEDULE_TRIGGER`), actions (`WEBHOOK`,
//! `UPSERT_ENTITY`) and `CONDITION`s; connections lead from one node (or one outlet of a
//! condition) to the next.
//!
//! As for actions, a document copied from Port's documentation is taken unchanged and answered
//! as written; every key is known (an unknown one is a 422 naming its path), and every template
//! and jq expression compiles when the workflow is saved ([`check_programs`]). The parts a
//! workflow shares with an action (user inputs, an event and its condition, a WEBHOOK request,
//! an upsert's mapping) are read by `action`'s readers, their paths moved to the node's
//! (`nodes[1].config.body`). The graph is checked on save: one outgoing connection per node or
//! outlet, triggers only as sources, no cycles, every node reachable from a trigger.
//!
//! Port's spellings changed during its beta (reference §4); the newest is followed and the older
//! ones are read too: a CONDITION's `options` or `conditions` (with `connectionIdentifier` and
//! `defaultConnectionIdentifier`, naming connections by their `identifier`) for `outlets`, and a
//! connection's `sourceOptionIdentifier` for `sourceOutletIdentifier`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use wharf_jq::template::{expressions, is_spread_key};

use crate::Error;
use crate::action::{self, AutomationEvent, Condition, EventType, Invocation, MAX_EXPRESSION, Method, Source};
use crate::blueprint::{Audited, Blueprint};
use crate::change::Change;
use crate::entity::{MAX_ICON, MAX_VALUE_DEPTH};
use crate::json::{check_depth, check_length, type_name};
use crate::schedule::Schedule;
use crate::time::Timestamp;

const CODE: &str = "invalid_workflow";

/// Port's workflow identifiers (reference §4.1): `^[\p{L}0-9@_:-]+$`, at most 60 characters.
pub const MAX_WORKFLOW_IDENTIFIER: usize = 60;
/// Nodes one workflow may have (SPEC §12).
pub const MAX_NODES: usize = 100;
/// A node's identifier: `^[A-Za-z0-9_-]+$`, at most 100 characters.
pub const MAX_NODE_IDENTIFIER: usize = 100;
/// Titles of workflows and nodes (reference §4.1).
pub const MAX_TITLE: usize = 100;
/// Descriptions of workflows, nodes and connections (reference §4.1).
pub const MAX_DESCRIPTION: usize = 1_100;
/// A workflow's `category` (reference §4.1).
pub const MAX_CATEGORY: usize = 40;
/// A node's `links` (reference §4.1).
pub const MAX_LINKS: usize = 3;
/// Outlets one CONDITION node may have (Port documents none).
pub const MAX_OUTLETS: usize = 50;

/// Keys of an answer that a client may send back (a `GET` body used as a `PUT`): ignored.
const RESPONSE_ONLY: [&str; 7] = ["createdAt", "updatedAt", "createdBy", "updatedBy", "id", "versionIdentifier", "version"];

const WORKFLOW_KEYS: [&str; 8] =
    ["identifier", "title", "icon", "description", "category", "allowAnyoneToViewRuns", "nodes", "connections"];
const NODE_KEYS: [&str; 8] = ["identifier", "title", "icon", "description", "config", "variables", "links", "verbose"];
const CONNECTION_KEYS: [&str; 7] = [
    "identifier",
    "sourceIdentifier",
    "targetIdentifier",
    "description",
    "sourceOutletIdentifier",
    "sourceOptionIdentifier",
    "fallback",
];

/// The node types Wharf runs.
const NODE_TYPES: [&str; 6] =
    ["SELF_SERVE_TRIGGER", "EVENT_TRIGGER", "SCHEDULE_TRIGGER", "WEBHOOK", "UPSERT_ENTITY", "CONDITION"];
/// Port's node types that Wharf does not run.
const UNSUPPORTED_NODES: [&str; 9] =
    ["KAFKA", "INTEGRATION_ACTION", "AI", "AI_AGENT", "CURSOR_AGENT", "INPUT", "GITHUB", "GITLAB", "AZURE_DEVOPS"];
/// An `EVENT_TRIGGER`'s event types; `TIMER_PROPERTY_EXPIRED` (the automations' name) is read
/// as `TIMER_EXPIRED`.
const EVENT_TYPES: [&str; 5] = ["ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED", "ANY_ENTITY_CHANGE", "TIMER_EXPIRED"];
/// Where a CONDITION lists its outlets, newest first.
const OUTLET_KEYS: [&str; 3] = ["outlets", "options", "conditions"];

/// An EVENT_TRIGGER node that fires: the node, what it listens to, its condition.
#[derive(Debug, Clone, Copy)]
pub struct Fired<'a> {
    pub node: &'a Node,
    pub event: &'a AutomationEvent,
    pub condition: Option<&'a Condition>,
}

/// The event a `TIMER_EXPIRED` trigger's run starts with: the automations' timer event
/// ([`crate::automation::timer_event`]) under the workflows' name of it.
pub fn timer_expired_event(org: &str, blueprint: &str, property: &str, entity: &Value, at: Timestamp) -> Value {
    let mut event = crate::automation::timer_event(org, blueprint, property, entity, at);
    event["action"] = Value::String("TIMER_EXPIRED".to_owned());
    event
}

/// A saved workflow: its current version's definition, the version's id (`wfv_…`, a new one
/// each save) and the audit fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub def: WorkflowDef,
    pub version_id: String,
    pub audited: Audited,
}

impl Workflow {
    /// Port's answer: the document as written, then `versionIdentifier`, `createdAt`,
    /// `updatedAt`, `createdBy`, `updatedBy`.
    pub fn to_json(&self) -> Value {
        let mut doc = self.def.document.clone();
        if let (Value::Object(map), Ok(Value::Object(audit))) = (&mut doc, serde_json::to_value(&self.audited)) {
            map.insert("versionIdentifier".to_owned(), Value::String(self.version_id.clone()));
            map.extend(audit);
        }
        doc
    }
}

/// A workflow document, validated: what the engine reads of it, and the document as written.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    pub identifier: String,
    pub title: Option<String>,
    /// In document order.
    pub nodes: Vec<Node>,
    /// In document order; each with its outlet or fallback resolved (older spellings too).
    pub connections: Vec<Connection>,
    /// Blueprints the document names that must exist, with where
    /// (`nodes[0].config.event.blueprintIdentifier`). Templated names are not listed.
    blueprint_references: Vec<(String, String)>,
    /// `TIMER_EXPIRED` triggers: where, the blueprint, and its property that must be a timer.
    timer_properties: Vec<(String, String, String)>,
    /// The document as the user wrote it (response-only keys dropped).
    document: Value,
}

/// One node of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub identifier: String,
    pub title: Option<String>,
    pub icon: Option<String>,
    pub config: NodeConfig,
    /// `variables`: name -> template (any JSON, its strings templated), evaluated after the node
    /// runs; when present they replace the node's output. `None` when not given or `{}`.
    pub variables: Option<Map<String, Value>>,
    /// Log full request and response bodies. `false` when not given.
    pub verbose: bool,
}

impl Node {
    /// Whether the node starts runs (a trigger) rather than running in one.
    pub fn is_trigger(&self) -> bool {
        matches!(self.config, NodeConfig::SelfServeTrigger | NodeConfig::EventTrigger { .. } | NodeConfig::ScheduleTrigger { .. })
    }

    /// The node's `config.type` (a node run's `nodeConfigType`).
    pub fn config_type(&self) -> &'static str {
        match self.config {
            NodeConfig::SelfServeTrigger => "SELF_SERVE_TRIGGER",
            NodeConfig::EventTrigger { .. } => "EVENT_TRIGGER",
            NodeConfig::ScheduleTrigger { .. } => "SCHEDULE_TRIGGER",
            NodeConfig::Webhook { .. } => "WEBHOOK",
            NodeConfig::UpsertEntity { .. } => "UPSERT_ENTITY",
            NodeConfig::Condition { .. } => "CONDITION",
        }
    }
}

/// A node's `config`. Templates are kept as written; they are compiled by [`check_programs`]
/// and rendered when the node runs.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeConfig {
    /// `userInputs` (an action's shape), `permissions`, `contexts`, `variant`, `published` and
    /// the button texts are validated and kept in the document
    /// ([`WorkflowDef::inputs_document`] gives the inputs to check a run's against).
    SelfServeTrigger,
    /// `event.type` `TIMER_EXPIRED` (or `TIMER_PROPERTY_EXPIRED`) is
    /// [`action::EventType::TimerPropertyExpired`].
    EventTrigger {
        event: AutomationEvent,
        condition: Option<Condition>,
        published: bool,
    },
    ScheduleTrigger {
        cron: Schedule,
    },
    Webhook {
        /// A template.
        url: String,
        method: Method,
        /// Header names and value templates, in the order written.
        headers: Map<String, Value>,
        /// The body template (an object or an array).
        body: Option<Value>,
        /// Wait for the answer and keep it as the node's output. `true` when not given.
        synchronized: bool,
        agent: bool,
        on_failure: OnFailure,
        on_timeout: OnTimeout,
    },
    UpsertEntity {
        /// A blueprint's identifier, or a template giving one.
        blueprint: String,
        /// `{identifier?, title, team, icon, properties, relations}`, every string a template; an
        /// identifier left out is generated.
        mapping: Value,
        on_failure: OnFailure,
    },
    Condition {
        outlets: Vec<Outlet>,
    },
}

/// One way out of a CONDITION node: taken when its expression is the first to give `true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlet {
    pub identifier: String,
    pub title: Option<String>,
    /// Plain jq over the run's variables (no `{{ }}`).
    pub expression: String,
}

/// `onFailure`: what a failed action node does to its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The run ends, failed (the default).
    Terminate,
    /// The node run fails with `error.message` in its output, and the run goes on.
    Continue,
}

/// `onTimeout`: what a WEBHOOK node that timed out does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// The node fails (then `onFailure` applies): the default.
    Fail,
    /// The node succeeds with `{"timeout": true}`.
    Continue,
}

/// A connection from `source` (or its `outlet`, or its `fallback`) to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub source: String,
    pub target: String,
    /// The source CONDITION's outlet this connection leaves by.
    pub outlet: Option<String>,
    /// The connection a CONDITION takes when no outlet's expression is true.
    pub fallback: bool,
    pub description: Option<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(CODE, message)
}

/// An error of `action`'s readers, told as a workflow's.
fn ours(err: Error) -> Error {
    invalid(err.message)
}

/// An error of `action`'s readers, told as a workflow's, its paths moved from `from` (an
/// action's `trigger.userInputs`) to `to` (the node's `nodes[0].config.userInputs`).
fn moved(err: Error, from: &str, to: &str) -> Error {
    invalid(err.message.replace(&format!("`{from}"), &format!("`{to}")))
}

/// A path of `action`'s readers moved as [`moved`] moves a message's.
fn moved_path(path: &str, from: &str, to: &str) -> String {
    match path.strip_prefix(from) {
        Some(rest) => format!("{to}{rest}"),
        None => path.to_owned(),
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    action::object(value, path).map_err(ours)
}

fn known_keys(map: &Map<String, Value>, path: &str, known: &[&str]) -> Result<(), Error> {
    action::known_keys(map, path, known).map_err(ours)
}

fn string<'a>(map: &'a Map<String, Value>, path: &str, key: &str) -> Result<Option<&'a str>, Error> {
    action::string(map, path, key).map_err(ours)
}

fn required_string<'a>(map: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a str, Error> {
    action::required_string(map, path, key).map_err(ours)
}

fn boolean(map: &Map<String, Value>, path: &str, key: &str) -> Result<Option<bool>, Error> {
    action::boolean(map, path, key).map_err(ours)
}

fn one_of<'a>(map: &'a Map<String, Value>, path: &str, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, Error> {
    action::one_of(map, path, key, allowed).map_err(ours)
}

/// A string of at most `max` characters at `map[key]`, if given.
fn text<'a>(map: &'a Map<String, Value>, path: &str, key: &str, max: usize) -> Result<Option<&'a str>, Error> {
    let value = string(map, path, key)?;
    if let Some(value) = value {
        check_length(CODE, value, &action::at(path, key), 0, max)?;
    }
    Ok(value)
}

/// Port's workflow identifier pattern `^[\p{L}0-9@_:-]+$`, at most 60 characters, and not
/// `runs` or `nodes` (Wharf's `/v1/workflows/runs` and `/v1/workflows/nodes/runs/{id}`).
pub fn check_workflow_identifier(value: &str, path: &str) -> Result<(), Error> {
    if value.is_empty() || value.chars().count() > MAX_WORKFLOW_IDENTIFIER {
        return Err(invalid(format!("`{path}` must be 1 to {MAX_WORKFLOW_IDENTIFIER} characters long")));
    }
    if !value.chars().all(|c| c.is_alphabetic() || c.is_ascii_digit() || "@_:-".contains(c)) {
        return Err(invalid(format!("`{path}` is `{value}`: use letters, digits and @ _ : -")));
    }
    if value == "runs" || value == "nodes" {
        return Err(invalid(format!("`{path}` cannot be `{value}`, which names routes (`/v1/workflows/{value}`)")));
    }
    Ok(())
}

/// A node's (or an outlet's) identifier: `^[A-Za-z0-9_-]+$`, at most 100 characters.
fn check_node_identifier(value: &str, path: &str) -> Result<(), Error> {
    if value.is_empty() || value.chars().count() > MAX_NODE_IDENTIFIER {
        return Err(invalid(format!("`{path}` must be 1 to {MAX_NODE_IDENTIFIER} characters long")));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid(format!("`{path}` is `{value}`: use letters, digits, _ and -")));
    }
    Ok(())
}

fn on_failure(map: &Map<String, Value>, path: &str) -> Result<OnFailure, Error> {
    match string(map, path, "onFailure")? {
        None => Ok(OnFailure::Terminate),
        Some(value) if value.eq_ignore_ascii_case("terminate") => Ok(OnFailure::Terminate),
        Some(value) if value.eq_ignore_ascii_case("continue") => Ok(OnFailure::Continue),
        Some(value) => Err(invalid(format!("`{path}.onFailure` is `{value}`; it must be `terminate` or `continue`"))),
    }
}

fn on_timeout(map: &Map<String, Value>, path: &str) -> Result<OnTimeout, Error> {
    match string(map, path, "onTimeout")? {
        None => Ok(OnTimeout::Fail),
        Some(value) if value.eq_ignore_ascii_case("fail") => Ok(OnTimeout::Fail),
        Some(value) if value.eq_ignore_ascii_case("continue") => Ok(OnTimeout::Continue),
        Some(value) => Err(invalid(format!("`{path}.onTimeout` is `{value}`; it must be `fail` or `continue`"))),
    }
}

/// What reading the nodes gathers for the rest of the document.
#[derive(Default)]
struct Reading {
    blueprints: Vec<(String, String)>,
    timers: Vec<(String, String, String)>,
    /// CONDITION nodes written with `conditions`: their routes by connection identifier.
    routes: HashMap<String, LegacyRoutes>,
}

/// A CONDITION written with `conditions` (Port's oldest spelling) names its connections by
/// their `identifier`: each condition's `connectionIdentifier`, and `defaultConnectionIdentifier`.
#[derive(Default)]
struct LegacyRoutes {
    /// Connection identifier -> outlet identifier.
    outlets: HashMap<String, String>,
    fallback: Option<String>,
}

impl WorkflowDef {
    /// Reads and validates a workflow document (a new one, or one replacing the workflow
    /// `route`, whose identifier it must keep and may leave out). jq is compiled by
    /// [`check_programs`].
    pub fn parse(mut doc: Value, route: Option<&str>) -> Result<Self, Error> {
        let Value::Object(map) = &mut doc else {
            return Err(invalid(format!("a workflow must be a JSON object, not {}", type_name(&doc))));
        };
        for key in RESPONSE_ONLY {
            map.shift_remove(key);
        }
        // Stored and answered whole, and read back by serde: no deeper than an entity.
        check_depth(CODE, &doc, "workflow", MAX_VALUE_DEPTH)?;
        let def = Self::read(&doc, route)?;
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

    /// Reads a workflow stored by [`WorkflowDef::parse`].
    pub fn from_stored(doc: Value) -> Result<Self, Error> {
        Self::parse(doc, None)
    }

    /// The document as written (what is stored).
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The node named `identifier`.
    pub fn node(&self, identifier: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.identifier == identifier)
    }

    /// The trigger nodes, in document order.
    pub fn triggers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_trigger())
    }

    /// The node after `from`: the connection whose source is `from` (for a CONDITION: whose
    /// outlet is `outlet`, or with `outlet` `None` the `fallback` connection). `None`: the run
    /// ends there.
    pub fn next(&self, from: &str, outlet: Option<&str>) -> Option<&Node> {
        let node = self.node(from)?;
        let mut leaving = self.connections.iter().filter(|c| c.source == from);
        let connection = if matches!(node.config, NodeConfig::Condition { .. }) {
            match outlet {
                Some(outlet) => leaving.find(|c| c.outlet.as_deref() == Some(outlet)),
                None => leaving.find(|c| c.fallback),
            }
        } else {
            leaving.next()
        };
        self.node(&connection?.target)
    }

    /// The blueprints whose existence (and properties) the workflow relies on, each once, for
    /// the caller to look up before [`WorkflowDef::check_references`]: event triggers'
    /// blueprints, UPSERT_ENTITY blueprints (not templated ones), entity inputs' blueprints and
    /// `CREATE_ENTITY` contexts' blueprints.
    pub fn referenced_blueprints(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.blueprint_references.iter().map(|(_, name)| name.as_str()).collect();
        names.extend(self.timer_properties.iter().map(|(_, blueprint, _)| blueprint.as_str()));
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Checks what the workflow names against the catalog: every blueprint it names exists,
    /// and a `TIMER_EXPIRED` trigger's property is a `timer` property of its blueprint (422
    /// `invalid_workflow` naming the path). `blueprint` finds a blueprint among those
    /// [`WorkflowDef::referenced_blueprints`] lists.
    pub fn check_references<'b>(&self, blueprint: impl Fn(&str) -> Option<&'b Blueprint>) -> Result<(), Error> {
        for (path, name) in &self.blueprint_references {
            if blueprint(name).is_none() {
                return Err(invalid(format!("`{path}` is `{name}`, which is not an existing blueprint")));
            }
        }
        for (path, name, property) in &self.timer_properties {
            match blueprint(name).and_then(|b| b.property(property)).map(|p| p.format.as_deref()) {
                Some(Some("timer")) => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "`{path}` is `{property}`, which is not a `timer` property of `{name}` (`format: \"timer\"`)"
                    )));
                }
                None => return Err(invalid(format!("`{path}` is `{property}`, which is not a property of `{name}`"))),
            }
        }
        Ok(())
    }

    /// For the SELF_SERVE_TRIGGER node `node`: a document shaped `{"trigger": {"userInputs":
    /// …}}`, so that `run_inputs::check_inputs` checks a run's inputs exactly as an action's.
    pub fn inputs_document(&self, node: &Node) -> Value {
        let index = self.nodes.iter().position(|n| n.identifier == node.identifier);
        match index.and_then(|i| self.document.pointer(&format!("/nodes/{i}/config/userInputs"))) {
            Some(inputs) if !inputs.is_null() => json!({"trigger": {"userInputs": inputs}}),
            _ => json!({"trigger": {}}),
        }
    }

    /// The SELF_SERVE_TRIGGER a run through the API starts from: 422 `not_self_serve` when
    /// the workflow has none.
    pub fn self_serve_trigger(&self) -> Result<&Node, Error> {
        self.triggers().find(|node| matches!(node.config, NodeConfig::SelfServeTrigger)).ok_or_else(|| {
            Error::invalid(
                "not_self_serve",
                format!("workflow `{}` has no SELF_SERVE_TRIGGER node; it cannot be run through the API", self.identifier),
            )
        })
    }

    /// The EVENT_TRIGGER nodes of this workflow (saved at `saved_at`) that fire on `change`,
    /// before their condition: published, listening to the change's type and blueprint, and
    /// the change committed after the save (a workflow never sees earlier changes).
    pub fn fires_on_change<'a>(&'a self, saved_at: Timestamp, change: &'a Change) -> impl Iterator<Item = Fired<'a>> {
        let after_save = change.trigger.at >= saved_at;
        self.event_triggers().filter(move |fired| after_save && crate::automation::listens_to(fired.event, change))
    }

    /// The EVENT_TRIGGER nodes that fire, before their condition, when the timer `property` of
    /// an entity of `blueprint` expires (`TIMER_EXPIRED`).
    pub fn fires_on_timer<'a>(&'a self, blueprint: &'a str, property: &'a str) -> impl Iterator<Item = Fired<'a>> {
        self.event_triggers().filter(move |fired| {
            fired.event.kind == EventType::TimerPropertyExpired
                && fired.event.blueprint.as_deref() == Some(blueprint)
                && fired.event.property.as_deref() == Some(property)
        })
    }

    /// The timers (blueprint, property) the published `TIMER_EXPIRED` triggers wait on.
    pub fn timers(&self) -> Vec<(String, String)> {
        self.event_triggers()
            .filter(|fired| fired.event.kind == EventType::TimerPropertyExpired)
            .filter_map(|fired| Some((fired.event.blueprint.clone()?, fired.event.property.clone()?)))
            .collect()
    }

    /// The published EVENT_TRIGGER nodes.
    fn event_triggers(&self) -> impl Iterator<Item = Fired<'_>> {
        self.nodes.iter().filter_map(|node| match &node.config {
            NodeConfig::EventTrigger { event, condition, published: true } => {
                Some(Fired { node, event, condition: condition.as_ref() })
            }
            _ => None,
        })
    }

    /// The next tick after `after` of each SCHEDULE_TRIGGER node: (node, tick).
    pub fn next_ticks(&self, after: Timestamp) -> Vec<(String, Timestamp)> {
        self.nodes
            .iter()
            .filter_map(|node| match &node.config {
                NodeConfig::ScheduleTrigger { cron } => cron.next_after(after).map(|at| (node.identifier.clone(), at)),
                _ => None,
            })
            .collect()
    }

    fn read(doc: &Value, route: Option<&str>) -> Result<Self, Error> {
        let map = object(doc, "workflow")?;
        if let Some(key) = map.keys().find(|k| !WORKFLOW_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!("`{key}` is not a known key; a workflow may have {}", action::list(&WORKFLOW_KEYS))));
        }
        let identifier = match (string(map, "", "identifier")?, route) {
            (Some(identifier), Some(route)) if identifier != route => {
                return Err(invalid(format!(
                    "`identifier` is `{identifier}`, but the route names `{route}`; workflow identifiers cannot be changed"
                )));
            }
            (_, Some(route)) => {
                check_workflow_identifier(route, "identifier")?;
                route.to_owned()
            }
            (Some(identifier), None) => {
                check_workflow_identifier(identifier, "identifier")?;
                identifier.to_owned()
            }
            (None, None) => return Err(invalid("`identifier` is required")),
        };
        let title = text(map, "", "title", MAX_TITLE)?;
        text(map, "", "icon", MAX_ICON)?;
        text(map, "", "description", MAX_DESCRIPTION)?;
        text(map, "", "category", MAX_CATEGORY)?;
        boolean(map, "", "allowAnyoneToViewRuns")?;

        let nodes = match map.get("nodes") {
            None | Some(Value::Null) => return Err(invalid("`nodes` is required: a workflow has 1 to 100 nodes")),
            Some(Value::Array(nodes)) => nodes,
            Some(other) => return Err(invalid(format!("`nodes` must be an array, not {}", type_name(other)))),
        };
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(invalid(format!("`nodes` has {} nodes; a workflow has 1 to {MAX_NODES}", nodes.len())));
        }
        let mut reading = Reading::default();
        let nodes = nodes.iter().enumerate().map(|(i, node)| read_node(node, i, &mut reading)).collect::<Result<Vec<_>, _>>()?;

        let empty = Vec::new();
        let connections = match map.get("connections") {
            None | Some(Value::Null) => &empty,
            Some(Value::Array(connections)) => connections,
            Some(other) => return Err(invalid(format!("`connections` must be an array, not {}", type_name(other)))),
        };
        let connections = connections
            .iter()
            .enumerate()
            .map(|(j, connection)| read_connection(connection, j))
            .collect::<Result<Vec<_>, _>>()?;
        let connections = check_graph(&nodes, connections, &reading.routes)?;
        Ok(Self {
            identifier,
            title: title.map(str::to_owned),
            nodes,
            connections,
            blueprint_references: reading.blueprints,
            timer_properties: reading.timers,
            document: Value::Null,
        })
    }
}

fn read_node(value: &Value, i: usize, reading: &mut Reading) -> Result<Node, Error> {
    let path = format!("nodes[{i}]");
    let map = object(value, &path)?;
    known_keys(map, &path, &NODE_KEYS)?;
    let identifier = required_string(map, &path, "identifier")?;
    check_node_identifier(identifier, &format!("{path}.identifier"))?;
    let title = text(map, &path, "title", MAX_TITLE)?;
    let icon = text(map, &path, "icon", MAX_ICON)?;
    text(map, &path, "description", MAX_DESCRIPTION)?;
    let verbose = boolean(map, &path, "verbose")?.unwrap_or(false);
    // `{}` is no variables, not an empty output: Port's own example puts `"variables": {}` on
    // a trigger whose output the next node reads.
    let variables = match map.get("variables") {
        None | Some(Value::Null) => None,
        Some(variables) => Some(object(variables, &format!("{path}.variables"))?.clone()).filter(|v| !v.is_empty()),
    };
    match map.get("links") {
        None | Some(Value::Null) => {}
        Some(Value::Array(links)) => {
            if links.len() > MAX_LINKS {
                return Err(invalid(format!("`{path}.links` has {} links; a node may have at most {MAX_LINKS}", links.len())));
            }
            for (k, link) in links.iter().enumerate() {
                if !link.is_string() {
                    return Err(invalid(format!("`{path}.links[{k}]` must be a string (a template), not {}", type_name(link))));
                }
            }
        }
        Some(other) => {
            return Err(invalid(format!("`{path}.links` must be an array of templates, not {}", type_name(other))));
        }
    }
    let config = match map.get("config") {
        None | Some(Value::Null) => return Err(invalid(format!("`{path}.config` is required"))),
        Some(config) => read_config(config, &format!("{path}.config"), identifier, reading)?,
    };
    let node = Node {
        identifier: identifier.to_owned(),
        title: title.map(str::to_owned),
        icon: icon.map(str::to_owned),
        config,
        variables,
        verbose,
    };
    if node.identifier == "trigger" && !node.is_trigger() {
        return Err(invalid(format!(
            "`{path}.identifier` is `trigger`, which names the trigger that fired (`.outputs.trigger`); only a trigger node may be called so"
        )));
    }
    Ok(node)
}

fn read_config(value: &Value, path: &str, node: &str, reading: &mut Reading) -> Result<NodeConfig, Error> {
    let map = object(value, path)?;
    let Some(kind) = string(map, path, "type")? else {
        return Err(invalid(format!("`{path}.type` is required: one of {}", action::list(&NODE_TYPES))));
    };
    match kind {
        "SELF_SERVE_TRIGGER" => self_serve_trigger(map, path, reading),
        "EVENT_TRIGGER" => event_trigger(map, path, reading),
        "SCHEDULE_TRIGGER" => {
            known_keys(map, path, &["type", "cron"])?;
            let cron = required_string(map, path, "cron")?;
            let cron = Schedule::parse(cron).map_err(|message| invalid(format!("`{path}.cron`: {message}")))?;
            Ok(NodeConfig::ScheduleTrigger { cron })
        }
        "WEBHOOK" => {
            known_keys(
                map,
                path,
                &["type", "url", "method", "headers", "body", "synchronized", "agent", "onFailure", "onTimeout"],
            )?;
            let synchronized = boolean(map, path, "synchronized")?.unwrap_or(true);
            let agent = boolean(map, path, "agent")?.unwrap_or(false);
            let on_failure = on_failure(map, path)?;
            let on_timeout = on_timeout(map, path)?;
            match invocation(map, path, &["synchronized", "agent", "onFailure", "onTimeout"], reading)? {
                Invocation::Webhook { url, method, headers, body, .. } => {
                    Ok(NodeConfig::Webhook { url, method, headers, body, synchronized, agent, on_failure, on_timeout })
                }
                Invocation::UpsertEntity { .. } => Err(invalid(format!("`{path}` is not a WEBHOOK node"))),
            }
        }
        "UPSERT_ENTITY" => {
            known_keys(map, path, &["type", "blueprintIdentifier", "mapping", "onFailure"])?;
            let on_failure = on_failure(map, path)?;
            match invocation(map, path, &["onFailure"], reading)? {
                Invocation::UpsertEntity { blueprint, mapping } => {
                    Ok(NodeConfig::UpsertEntity { blueprint, mapping, on_failure })
                }
                Invocation::Webhook { .. } => Err(invalid(format!("`{path}` is not an UPSERT_ENTITY node"))),
            }
        }
        "CONDITION" => condition(map, path, node, reading),
        other if UNSUPPORTED_NODES.contains(&other) => Err(invalid(format!(
            "`{path}.type` is `{other}`: Wharf does not run `{other}` nodes; it runs {}",
            action::list(&NODE_TYPES)
        ))),
        other => Err(invalid(format!("`{path}.type` is `{other}`; it must be one of {}", action::list(&NODE_TYPES)))),
    }
}

/// A WEBHOOK or UPSERT_ENTITY node's request, read as an action's `invocationMethod` (less the
/// node's own keys `skip`), its paths moved to the node's.
fn invocation(map: &Map<String, Value>, path: &str, skip: &[&str], reading: &mut Reading) -> Result<Invocation, Error> {
    let mut rest = map.clone();
    for key in skip {
        rest.shift_remove(*key);
    }
    let mut found = Vec::new();
    let invocation =
        action::read_invocation(&Value::Object(rest), &mut found).map_err(|err| moved(err, "invocationMethod", path))?;
    reading.blueprints.extend(found.into_iter().map(|(at, name)| (moved_path(&at, "invocationMethod", path), name)));
    Ok(invocation)
}

fn self_serve_trigger(map: &Map<String, Value>, path: &str, reading: &mut Reading) -> Result<NodeConfig, Error> {
    known_keys(
        map,
        path,
        &[
            "type",
            "userInputs",
            "permissions",
            "contexts",
            "variant",
            "published",
            "actionCardButtonText",
            "executeActionButtonText",
        ],
    )?;
    one_of(map, path, "variant", &["DEFAULT", "ALERT"])?;
    boolean(map, path, "published")?;
    for key in ["actionCardButtonText", "executeActionButtonText"] {
        if let Some(text) = string(map, path, key)? {
            check_length(CODE, text, &action::at(path, key), 1, action::MAX_BUTTON_TEXT)?;
            if text.trim() != text {
                return Err(invalid(format!("`{}` may not start or end with a space", action::at(path, key))));
            }
        }
    }
    if let Some(permissions) = map.get("permissions").filter(|v| !v.is_null()) {
        // Port's permission documents are kept as written; Wharf's API clients run what their
        // organization has.
        object(permissions, &format!("{path}.permissions"))?;
    }
    let inputs_path = format!("{path}.userInputs");
    let mut input_names = Vec::new();
    if let Some(inputs) = map.get("userInputs").filter(|v| !v.is_null()) {
        let mut found = Vec::new();
        action::user_inputs(inputs, &mut found).map_err(|err| moved(err, "trigger.userInputs", &inputs_path))?;
        reading
            .blueprints
            .extend(found.into_iter().map(|(at, name)| (moved_path(&at, "trigger.userInputs", &inputs_path), name)));
        if let Some(properties) = inputs.get("properties").and_then(Value::as_object) {
            input_names.extend(properties.keys().map(String::as_str));
        }
    }
    match map.get("contexts") {
        None | Some(Value::Null) => {}
        Some(Value::Array(contexts)) => {
            for (k, context) in contexts.iter().enumerate() {
                let context_path = format!("{path}.contexts[{k}]");
                let context = object(context, &context_path)?;
                match one_of(context, &context_path, "on", &["CREATE_ENTITY", "ENTITY"])? {
                    Some("CREATE_ENTITY") => {
                        known_keys(context, &context_path, &["on", "blueprintIdentifier"])?;
                        let name = required_string(context, &context_path, "blueprintIdentifier")?;
                        let at = format!("{context_path}.blueprintIdentifier");
                        action::check_blueprint_name(name, &at).map_err(ours)?;
                        reading.blueprints.push((at, name.to_owned()));
                    }
                    Some(_) => {
                        known_keys(context, &context_path, &["on", "userInput"])?;
                        let input = required_string(context, &context_path, "userInput")?;
                        if !input_names.contains(&input) {
                            return Err(invalid(format!(
                                "`{context_path}.userInput` is `{input}`, which is not an input of `{inputs_path}.properties`"
                            )));
                        }
                    }
                    None => {
                        return Err(invalid(format!("`{context_path}.on` is required (`CREATE_ENTITY` or `ENTITY`)")));
                    }
                }
            }
        }
        Some(other) => return Err(invalid(format!("`{path}.contexts` must be an array, not {}", type_name(other)))),
    }
    Ok(NodeConfig::SelfServeTrigger)
}

fn event_trigger(map: &Map<String, Value>, path: &str, reading: &mut Reading) -> Result<NodeConfig, Error> {
    known_keys(map, path, &["type", "event", "condition", "published"])?;
    let published = boolean(map, path, "published")?.unwrap_or(true);
    let event_path = format!("{path}.event");
    let event = match map.get("event") {
        None | Some(Value::Null) => return Err(invalid(format!("`{event_path}` is required"))),
        Some(event) => event,
    };
    let fields = object(event, &event_path)?;
    let mut accepted = EVENT_TYPES.to_vec();
    accepted.push("TIMER_PROPERTY_EXPIRED");
    let written = match one_of(fields, &event_path, "type", &accepted) {
        Ok(Some(kind)) => kind,
        // The names a workflow documents, without the automations' alias.
        Ok(None) | Err(_) => {
            let given = match fields.get("type") {
                None | Some(Value::Null) => "is required".to_owned(),
                Some(Value::String(kind)) => format!("is `{kind}`"),
                Some(other) => format!("is {}", type_name(other)),
            };
            return Err(invalid(format!("`{event_path}.type` {given}; it must be one of {}", action::list(&EVENT_TYPES))));
        }
    };
    let mut automation = fields.clone();
    if written == "TIMER_EXPIRED" {
        automation.insert("type".to_owned(), Value::String("TIMER_PROPERTY_EXPIRED".to_owned()));
    }
    let (mut found, mut timer) = (Vec::new(), None);
    let event = action::automation_event(&Value::Object(automation), &mut found, &mut timer).map_err(|err| {
        let mut err = moved(err, "trigger.event", &event_path);
        err.message = err.message.replace("`TIMER_PROPERTY_EXPIRED` events", &format!("`{written}` events"));
        err
    })?;
    reading.blueprints.extend(found.into_iter().map(|(at, name)| (moved_path(&at, "trigger.event", &event_path), name)));
    if let Some((blueprint, property)) = timer {
        reading.timers.push((format!("{event_path}.propertyIdentifier"), blueprint, property));
    }
    let condition = match map.get("condition") {
        None | Some(Value::Null) => None,
        Some(condition) => Some(
            action::automation_condition(condition)
                .map_err(|err| moved(err, "trigger.condition", &format!("{path}.condition")))?,
        ),
    };
    Ok(NodeConfig::EventTrigger { event, condition, published })
}

fn condition(map: &Map<String, Value>, path: &str, node: &str, reading: &mut Reading) -> Result<NodeConfig, Error> {
    known_keys(map, path, &["type", "outlets", "options", "conditions", "defaultConnectionIdentifier"])?;
    let written: Vec<&str> = OUTLET_KEYS.into_iter().filter(|k| map.get(*k).is_some_and(|v| !v.is_null())).collect();
    let key = match written.as_slice() {
        [key] => *key,
        [] => return Err(invalid(format!("`{path}.outlets` is required: a CONDITION node's outlets"))),
        [first, second, ..] => {
            return Err(invalid(format!("`{path}` has both `{first}` and `{second}`; write its outlets once, as `outlets`")));
        }
    };
    let legacy = key == "conditions";
    let fallback = string(map, path, "defaultConnectionIdentifier")?;
    if fallback.is_some() && !legacy {
        return Err(invalid(format!(
            "`{path}.defaultConnectionIdentifier` goes with `conditions`; with `{key}`, the fallback is the connection with `fallback: true`"
        )));
    }
    let list_path = format!("{path}.{key}");
    let items = match map.get(key) {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(invalid(format!("`{list_path}` must be an array, not {}", type_name(other)))),
        None => return Err(invalid(format!("`{list_path}` is required"))),
    };
    if items.len() > MAX_OUTLETS {
        return Err(invalid(format!(
            "`{list_path}` has {} outlets; a CONDITION node may have at most {MAX_OUTLETS}",
            items.len()
        )));
    }
    let mut outlets: Vec<Outlet> = Vec::with_capacity(items.len());
    let mut routes = LegacyRoutes { fallback: fallback.map(str::to_owned), ..LegacyRoutes::default() };
    for (k, item) in items.iter().enumerate() {
        let item_path = format!("{list_path}[{k}]");
        let fields = object(item, &item_path)?;
        let identifier = if legacy {
            known_keys(fields, &item_path, &["identifier", "title", "expression", "connectionIdentifier"])?;
            let connection = required_string(fields, &item_path, "connectionIdentifier")?;
            let identifier = string(fields, &item_path, "identifier")?.unwrap_or(connection);
            routes.outlets.insert(connection.to_owned(), identifier.to_owned());
            identifier
        } else {
            known_keys(fields, &item_path, &["identifier", "title", "expression", "statusLabel", "workflowStatusLabel"])?;
            for key in ["statusLabel", "workflowStatusLabel"] {
                text(fields, &item_path, key, MAX_TITLE)?;
            }
            required_string(fields, &item_path, "identifier")?
        };
        check_node_identifier(identifier, &format!("{item_path}.identifier"))?;
        if outlets.iter().any(|o| o.identifier == identifier) {
            return Err(invalid(format!(
                "`{item_path}.identifier` is `{identifier}`, which an earlier outlet of node `{node}` has; outlet identifiers are unique"
            )));
        }
        let title = text(fields, &item_path, "title", MAX_TITLE)?;
        let expression = required_string(fields, &item_path, "expression")?;
        outlets.push(Outlet {
            identifier: identifier.to_owned(),
            title: title.map(str::to_owned),
            expression: expression.to_owned(),
        });
    }
    if legacy {
        reading.routes.insert(node.to_owned(), routes);
    }
    Ok(NodeConfig::Condition { outlets })
}

/// A connection as written, and its `identifier` (Port's older documents name connections).
fn read_connection(value: &Value, j: usize) -> Result<(Connection, Option<String>), Error> {
    let path = format!("connections[{j}]");
    let map = object(value, &path)?;
    known_keys(map, &path, &CONNECTION_KEYS)?;
    let identifier = string(map, &path, "identifier")?;
    let source = required_string(map, &path, "sourceIdentifier")?;
    let target = required_string(map, &path, "targetIdentifier")?;
    let description = text(map, &path, "description", MAX_DESCRIPTION)?;
    let outlet = match (string(map, &path, "sourceOutletIdentifier")?, string(map, &path, "sourceOptionIdentifier")?) {
        (Some(outlet), Some(option)) if outlet != option => {
            return Err(invalid(format!(
                "`{path}` has `sourceOutletIdentifier` `{outlet}` and `sourceOptionIdentifier` `{option}`; write one, `sourceOutletIdentifier`"
            )));
        }
        (outlet, option) => outlet.or(option),
    };
    let fallback = boolean(map, &path, "fallback")?.unwrap_or(false);
    let connection = Connection {
        source: source.to_owned(),
        target: target.to_owned(),
        outlet: outlet.map(str::to_owned),
        fallback,
        description: description.map(str::to_owned),
    };
    Ok((connection, identifier.map(str::to_owned)))
}

/// The graph rules (reference §4.1): unique node identifiers, at least one trigger, triggers
/// only as sources, connections between nodes that exist, one connection out of each node (of
/// a CONDITION: out of each outlet, and one fallback), no cycles, every node reachable from a
/// trigger. Gives the connections with their outlets resolved.
fn check_graph(
    nodes: &[Node],
    connections: Vec<(Connection, Option<String>)>,
    routes: &HashMap<String, LegacyRoutes>,
) -> Result<Vec<Connection>, Error> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        if let Some(first) = index.insert(&node.identifier, i) {
            return Err(invalid(format!(
                "`nodes[{i}].identifier` is `{}`, which `nodes[{first}]` already has; node identifiers are unique",
                node.identifier
            )));
        }
    }
    if !nodes.iter().any(Node::is_trigger) {
        return Err(invalid(
            "a workflow needs a trigger node (`SELF_SERVE_TRIGGER`, `EVENT_TRIGGER` or `SCHEDULE_TRIGGER`) to start its runs",
        ));
    }
    let mut named: HashMap<String, usize> = HashMap::new();
    // (source, outlet or "" for a plain connection, fallback) -> the connection that takes it.
    let mut taken: HashMap<(usize, Option<String>, bool), usize> = HashMap::new();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut resolved = Vec::with_capacity(connections.len());
    for (j, (mut connection, identifier)) in connections.into_iter().enumerate() {
        let path = format!("connections[{j}]");
        if let Some(identifier) = &identifier
            && let Some(first) = named.insert(identifier.clone(), j)
        {
            return Err(invalid(format!(
                "`{path}.identifier` is `{identifier}`, which `connections[{first}]` already has; connection identifiers are unique"
            )));
        }
        let end = |key: &str, name: &str| {
            index
                .get(name)
                .copied()
                .ok_or_else(|| invalid(format!("`{path}.{key}` is `{name}`, which is not a node of this workflow")))
        };
        let source = end("sourceIdentifier", &connection.source)?;
        let target = end("targetIdentifier", &connection.target)?;
        if nodes[target].is_trigger() {
            return Err(invalid(format!(
                "`{path}`: node `{}` is a trigger; a trigger starts runs and has no incoming connections",
                connection.target
            )));
        }
        if source == target {
            return Err(invalid(format!("`{path}` connects node `{}` to itself; workflows have no cycles", connection.source)));
        }
        let from = &nodes[source];
        if let NodeConfig::Condition { outlets } = &from.config {
            if connection.outlet.is_none()
                && !connection.fallback
                && let (Some(identifier), Some(routes)) = (&identifier, routes.get(&from.identifier))
            {
                connection.outlet = routes.outlets.get(identifier).cloned();
                connection.fallback = routes.fallback.as_ref() == Some(identifier);
            }
            let names = || action::list(&outlets.iter().map(|o| o.identifier.as_str()).collect::<Vec<_>>());
            match (&connection.outlet, connection.fallback) {
                (Some(_), true) => {
                    return Err(invalid(format!(
                        "`{path}` has both `sourceOutletIdentifier` and `fallback: true`; a connection leaves a CONDITION node by one"
                    )));
                }
                (None, false) => {
                    return Err(invalid(format!(
                        "`{path}` leaves CONDITION node `{}`: it needs `sourceOutletIdentifier` (one of {}) or `fallback: true`",
                        from.identifier,
                        names()
                    )));
                }
                (Some(outlet), false) if !outlets.iter().any(|o| o.identifier == *outlet) => {
                    return Err(invalid(format!(
                        "`{path}.sourceOutletIdentifier` is `{outlet}`, which is not an outlet of node `{}` (its outlets: {})",
                        from.identifier,
                        names()
                    )));
                }
                _ => {}
            }
        } else if connection.outlet.is_some() || connection.fallback {
            let key = if connection.fallback { "fallback" } else { "sourceOutletIdentifier" };
            return Err(invalid(format!(
                "`{path}.{key}` applies to a connection leaving a CONDITION node; `{}` is a {} node",
                from.identifier,
                from.config_type()
            )));
        }
        if let Some(first) = taken.insert((source, connection.outlet.clone(), connection.fallback), j) {
            let what = match (&connection.outlet, connection.fallback) {
                (Some(outlet), _) => format!("outlet `{outlet}` of node `{}` already has a connection", from.identifier),
                (None, true) => format!("node `{}` already has a fallback connection", from.identifier),
                (None, false) => format!("node `{}` already has an outgoing connection", from.identifier),
            };
            return Err(invalid(format!("`{path}`: {what} (`connections[{first}]`); fan-out is not supported")));
        }
        edges[source].push(target);
        resolved.push(connection);
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|&i| format!("`{}`", nodes[i].identifier)).collect();
        return Err(invalid(format!("the connections form a cycle ({}); workflows have no cycles", names.join(" → "))));
    }
    let mut reached = vec![false; nodes.len()];
    let mut pending: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].is_trigger()).collect();
    while let Some(i) = pending.pop() {
        if !std::mem::replace(&mut reached[i], true) {
            pending.extend(edges[i].iter().copied());
        }
    }
    if let Some(i) = reached.iter().position(|r| !r) {
        return Err(invalid(format!(
            "`nodes[{i}]` (`{}`) is not reachable from a trigger; connect it or remove it",
            nodes[i].identifier
        )));
    }
    Ok(resolved)
}

/// A cycle of `edges` (node indices), as the nodes along it with the first repeated at the
/// end; `None` if there is none. Iterative depth-first search.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    for start in 0..edges.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // The open path: each node and how many of its edges were followed.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Open;
        while let Some(top) = path.last_mut() {
            let node = top.0;
            let Some(&to) = edges[node].get(top.1) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            top.1 += 1;
            match marks[to] {
                Mark::New => {
                    marks[to] = Mark::Open;
                    path.push((to, 0));
                }
                Mark::Open => {
                    let from = path.iter().position(|&(n, _)| n == to).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                    cycle.push(to);
                    return Some(cycle);
                }
                Mark::Done => {}
            }
        }
    }
    None
}

/// Compiles every program of `def`: each node's templates (a WEBHOOK's URL, headers and body;
/// an UPSERT_ENTITY's blueprint and mapping; `variables`; `links`), each outlet's expression,
/// each event trigger's condition expressions, and every `jqQuery` of the user inputs. All
/// failures are reported at once, each with its path and jq's message (422 `invalid_jq`, as
/// for actions); a string over [`MAX_EXPRESSION`] bytes is refused before anything compiles.
pub fn check_programs(def: &WorkflowDef) -> Result<(), Error> {
    let mut programs: Vec<(String, Source<'_>)> = Vec::new();
    for (i, node) in def.nodes.iter().enumerate() {
        let path = format!("nodes[{i}]");
        let written = def.document.pointer(&format!("/nodes/{i}"));
        match &node.config {
            NodeConfig::SelfServeTrigger => {
                if let Some(inputs) = written.and_then(|n| n.pointer("/config/userInputs")) {
                    action::jq_queries(inputs, &format!("{path}.config.userInputs"), &mut programs);
                }
            }
            NodeConfig::EventTrigger { condition, .. } => {
                for (k, code) in condition.iter().flat_map(|c| c.expressions.iter()).enumerate() {
                    programs.push((format!("{path}.config.condition.expressions[{k}]"), Source::Jq(code)));
                }
            }
            NodeConfig::ScheduleTrigger { .. } => {}
            NodeConfig::Webhook { url, headers, body, .. } => {
                programs.push((format!("{path}.config.url"), Source::Template(url)));
                for (name, value) in headers {
                    let header_path = format!("{path}.config.headers.{name}");
                    programs.push((header_path.clone(), Source::Key(name)));
                    if let Value::String(text) = value {
                        programs.push((header_path, Source::Template(text)));
                    }
                }
                if let Some(body) = body {
                    action::templates(body, &format!("{path}.config.body"), &mut programs);
                }
            }
            NodeConfig::UpsertEntity { blueprint, mapping, .. } => {
                programs.push((format!("{path}.config.blueprintIdentifier"), Source::Template(blueprint)));
                action::templates(mapping, &format!("{path}.config.mapping"), &mut programs);
            }
            NodeConfig::Condition { outlets } => {
                let key = written
                    .and_then(|n| n.get("config"))
                    .and_then(|config| OUTLET_KEYS.into_iter().find(|k| config.get(*k).is_some_and(|v| !v.is_null())))
                    .unwrap_or("outlets");
                for (k, outlet) in outlets.iter().enumerate() {
                    programs.push((format!("{path}.config.{key}[{k}].expression"), Source::Jq(&outlet.expression)));
                }
            }
        }
        for (name, value) in node.variables.iter().flatten() {
            action::templates(value, &format!("{path}.variables.{name}"), &mut programs);
        }
        if let Some(Value::Array(links)) = written.and_then(|n| n.get("links")) {
            for (k, link) in links.iter().enumerate() {
                if let Value::String(text) = link {
                    programs.push((format!("{path}.links[{k}]"), Source::Template(text)));
                }
            }
        }
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
            Source::Jq(code) => action::compile(code, path, "a valid jq expression", &mut errors),
            Source::Key(key) if is_spread_key(key) => {}
            Source::Template(text) | Source::Key(text) => match expressions(text) {
                Ok(found) => {
                    for code in found {
                        action::compile(code, path, "a valid template", &mut errors);
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

/// A synchronized WEBHOOK node's output (SPEC §9): `{"response": {"status", "data"}}` and,
/// when `data` is an object, its top-level fields beside `response` (so both
/// `.outputs.node.id` and `.outputs.node.response.data.id` read the answer's `id`); a field
/// named `response` does not replace the wrapper.
pub fn webhook_output(status: u16, data: Value) -> Value {
    let mut output = Map::new();
    let copied = match &data {
        Value::Object(fields) => fields.iter().filter(|(k, _)| *k != "response").map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    };
    output.insert("response".to_owned(), json!({"status": status, "data": data}));
    output.extend(copied);
    Value::Object(output)
}

/// A failed node's output under `onFailure: "continue"`: `{"error": {"message": …}}`.
pub fn failure_output(message: &str) -> Value {
    json!({"error": {"message": message}})
}

/// A timed-out node's output under `onTimeout: "continue"`: `{"timeout": true}`.
pub fn timeout_output() -> Value {
    json!({"timeout": true})
}

/// An UPSERT_ENTITY node's output: `{"response": {"data": {"identifier": …}}}`.
pub fn upsert_output(identifier: &str) -> Value {
    json!({"response": {"data": {"identifier": identifier}}})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::action::Combinator;

    fn trigger() -> Value {
        json!({"identifier": "trigger", "title": "Start", "config": {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {"properties": {"service": {"type": "string", "title": "Service"},
                                          "name": {"type": "string"}},
                           "required": ["service"]}
        }})
    }

    fn webhook(identifier: &str) -> Value {
        json!({"identifier": identifier, "config": {"type": "WEBHOOK", "url": "https://example.com/{{ .outputs.trigger.service }}"}})
    }

    fn link(source: &str, target: &str) -> Value {
        json!({"sourceIdentifier": source, "targetIdentifier": target})
    }

    fn workflow(nodes: Vec<Value>, connections: Vec<Value>) -> Value {
        json!({"identifier": "wf", "title": "A workflow", "nodes": nodes, "connections": connections})
    }

    /// The message of the refusal of `doc`, checked to be a 422 `invalid_workflow`.
    fn refused(doc: Value) -> String {
        let err = WorkflowDef::parse(doc, None).expect_err("refused");
        assert_eq!(err.code, CODE, "{err:?}");
        assert_eq!(err.kind, crate::ErrorKind::Unprocessable);
        err.message
    }

    fn assert_refused(doc: Value, expected: &str) {
        let message = refused(doc);
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
    }

    /// A chain: `trigger`, then each of `nodes` after the one before it.
    fn chain(nodes: Vec<Value>) -> Value {
        let mut all = vec![trigger()];
        all.extend(nodes);
        let connections = all
            .windows(2)
            .map(|pair| link(pair[0]["identifier"].as_str().unwrap(), pair[1]["identifier"].as_str().unwrap()))
            .collect();
        workflow(all, connections)
    }

    #[test]
    fn event_triggers_fire_on_their_changes_and_timers() {
        let listening = |kind: &str, published: bool| {
            let mut event = json!({"type": kind, "blueprintIdentifier": "service"});
            if kind == "TIMER_EXPIRED" {
                event["propertyIdentifier"] = json!("expires");
            }
            json!({"identifier": format!("on-{}", kind.to_lowercase()), "config": {"type": "EVENT_TRIGGER", "published": published, "event": event}})
        };
        let def = WorkflowDef::parse(
            workflow(
                vec![
                    listening("ENTITY_CREATED", true),
                    listening("ANY_ENTITY_CHANGE", false),
                    listening("TIMER_EXPIRED", true),
                    webhook("a"),
                    webhook("b"),
                    webhook("c"),
                ],
                vec![link("on-entity_created", "a"), link("on-any_entity_change", "b"), link("on-timer_expired", "c")],
            ),
            None,
        )
        .unwrap();
        let saved = Timestamp::from_millis(1_000);
        let change = |blueprint: &str, at: i64| {
            let trigger = crate::change::Trigger::api("org", "client", Timestamp::from_millis(at));
            Change::with_id(
                "chg_1".into(),
                crate::change::ResourceType::Entity,
                blueprint,
                Some("api"),
                &trigger,
                None,
                Some(json!({})),
            )
        };
        let fired = |c: &Change| def.fires_on_change(saved, c).map(|f| f.node.identifier.clone()).collect::<Vec<_>>();
        assert_eq!(fired(&change("service", 2_000)), ["on-entity_created"], "published only, of its type");
        assert!(fired(&change("other", 2_000)).is_empty(), "another blueprint");
        assert!(fired(&change("service", 500)).is_empty(), "a change before the save");
        let timed: Vec<_> = def.fires_on_timer("service", "expires").map(|f| f.node.identifier.clone()).collect();
        assert_eq!(timed, ["on-timer_expired"]);
        assert_eq!(def.fires_on_timer("service", "other").count(), 0);
        assert_eq!(def.timers(), [("service".to_owned(), "expires".to_owned())]);
        let event = timer_expired_event("org", "service", "expires", &json!({"identifier": "api"}), saved);
        assert_eq!(event["action"], "TIMER_EXPIRED");
        assert_eq!(event["context"]["entityIdentifier"], "api");
    }

    #[test]
    fn the_self_serve_trigger_the_ticks_and_the_answer() {
        let def = WorkflowDef::parse(chain(vec![webhook("call")]), None).unwrap();
        assert_eq!(def.self_serve_trigger().unwrap().identifier, "trigger");
        assert!(def.next_ticks(Timestamp::from_millis(0)).is_empty());
        let scheduled = WorkflowDef::parse(
            workflow(
                vec![json!({"identifier": "tick", "config": {"type": "SCHEDULE_TRIGGER", "cron": "0 3 * * *"}}), webhook("call")],
                vec![link("tick", "call")],
            ),
            None,
        )
        .unwrap();
        let err = scheduled.self_serve_trigger().unwrap_err();
        assert_eq!(err.code, "not_self_serve");
        assert!(err.message.contains("no SELF_SERVE_TRIGGER"), "{}", err.message);
        let midnight = Timestamp::parse("2026-12-07T00:00:00Z").unwrap();
        assert_eq!(scheduled.next_ticks(midnight), vec![("tick".to_owned(), Timestamp::parse("2026-12-07T03:00:00Z").unwrap())]);
        let saved = Workflow { def, version_id: "wfv_1".into(), audited: Audited::new("client", midnight) };
        let answer = saved.to_json();
        assert_eq!(answer["identifier"], "wf");
        assert_eq!(answer["versionIdentifier"], "wfv_1");
        assert_eq!(answer["createdBy"], "client");
        assert_eq!(answer["updatedAt"], "2026-12-07T00:00:00.000Z");
    }

    /// Seed 001's node examples, verbatim; those that are a `config` alone get an identifier.
    const SEED_NODES: [&str; 9] = [
        r#"{
"identifier": "send-webhook",
"title": "Send Webhook",
"config": {
"type": "WEBHOOK",
"url": "https://api.example.com/deploy",
"method": "POST",
"body": {
"service": "{{ .outputs.trigger.service }}",
"version": "{{ .outputs.trigger.version }}",
"environment": "{{ .outputs.trigger.environment }}"
}
}
}"#,
        r#"{
"config": {
"type": "WEBHOOK",
"url": "https://api.example.com/webhook",
"method": "POST",
"headers": {
"Content-Type": "application/json",
"X-Custom-Header": "custom-value",
"Authorization": "Bearer {{ .secrets[\"api-token\"] }}"
},
"body": {
"data": "{{ .outputs.trigger.data }}"
}
}
}"#,
        r#"{
"config": {
"type": "WEBHOOK",
"url": "https://api.example.com/webhook?token={{ .secrets[\"webhook-token\"] }}",
"method": "POST",
"headers": {
"Authorization": "Bearer {{ .secrets[\"api-key\"] }}"
},
"body": {
"message": "Hello from Port"
}
}
}"#,
        r#"{
"identifier": "create_resource",
"config": {
"type": "WEBHOOK",
"url": "https://api.example.com/resources",
"method": "POST",
"synchronized": true,
"body": {
"name": "{{ .outputs.trigger.name }}"
}
}
}"#,
        r#"{
"config": {
"type": "WEBHOOK",
"url": "https://api.example.com/long-running-task",
"synchronized": false,
"body": {
"task": "{{ .outputs.trigger.task }}"
}
}
}"#,
        r#"{
"identifier": "slack-notify",
"title": "Send Slack Message",
"config": {
"type": "WEBHOOK",
"url": "https://hooks.slack.com/services/xxx/yyy/zzz",
"method": "POST",
"body": {
"text": "Deployment started",
"blocks": [
{
"type": "section",
"text": {
"type": "mrkdwn",
"text": "*{{ .outputs.trigger.service }}* is being deployed to *{{ .outputs.trigger.environment }}*"
}
}
]
}
}
}"#,
        r#"{
"identifier": "trigger-github",
"title": "Trigger GitHub Workflow",
"config": {
"type": "WEBHOOK",
"url": "https://api.github.com/repos/{{ .outputs.trigger.repo }}/actions/workflows/deploy.yml/dispatches",
"method": "POST",
"headers": {
"Accept": "application/vnd.github.v3+json",
"Authorization": "Bearer {{ .secrets[\"github-token\"] }}"
},
"body": {
"ref": "main",
"inputs": {
"environment": "{{ .outputs.trigger.environment }}",
"version": "{{ .outputs.trigger.version }}"
}
}
}
}"#,
        r#"{
"identifier": "create_port_entity",
"title": "Create Port Entity",
"config": {
"type": "WEBHOOK",
"url": "https://api.getport.io/v1/blueprints/deployment/entities",
"method": "POST",
"body": {
"identifier": "{{ .outputs.trigger.service }}_{{ .outputs.trigger.environment }}",
"title": "{{ .outputs.trigger.service }} ({{ .outputs.trigger.environment }})",
"properties": {
"version": "{{ .outputs.trigger.version }}",
"deployedAt": "{{ now | todateiso8601 }}"
},
"relations": {
"service": "{{ .outputs.trigger.service }}"
}
}
}
}"#,
        // "Reference the response in later nodes": a body, in a node after `create_resource`.
        r#"{
"body": {
"resourceId": "{{ .outputs.create_resource.id }}"
}
}"#,
    ];

    #[test]
    fn seed_001_nodes_are_accepted() {
        let mut nodes = Vec::new();
        for (k, text) in SEED_NODES.iter().enumerate() {
            let mut node: Value = serde_json::from_str(text).expect("seed JSON");
            if node.get("config").is_none() {
                let body = node["body"].take();
                node = json!({"config": {"type": "WEBHOOK", "url": "https://api.example.com/resources/use", "body": body}});
            }
            if node.get("identifier").is_none() {
                node["identifier"] = json!(format!("node-{k}"));
            }
            nodes.push(node);
        }
        let doc = chain(nodes);
        let def = WorkflowDef::parse(doc.clone(), None).unwrap();
        check_programs(&def).unwrap();
        assert_eq!(def.document(), &doc);
        assert_eq!(def.nodes.len(), 10);
        let Some(NodeConfig::Webhook { synchronized, method, on_failure, on_timeout, agent, .. }) =
            def.node("send-webhook").map(|n| &n.config)
        else {
            panic!("a webhook node")
        };
        assert!(*synchronized, "synchronized is true by default");
        assert!(!agent);
        assert_eq!((*method, *on_failure, *on_timeout), (Method::Post, OnFailure::Terminate, OnTimeout::Fail));
        let Some(NodeConfig::Webhook { synchronized, .. }) = def.node("node-4").map(|n| &n.config) else {
            panic!("a webhook node")
        };
        assert!(!synchronized);
        assert_eq!(def.next("trigger", None).unwrap().identifier, "send-webhook");
        assert_eq!(def.next("create_resource", None).unwrap().identifier, "node-4");
        assert!(def.next("node-8", None).is_none(), "the run ends after the last node");
        assert_eq!(def.triggers().map(|n| n.identifier.as_str()).collect::<Vec<_>>(), ["trigger"]);
        assert_eq!(WorkflowDef::from_stored(def.document().clone()).unwrap(), def);
    }

    #[test]
    fn port_documentation_examples_are_accepted() {
        // docs/workflows/define.md: a connection with an identifier, `"variables": {}`.
        let doc = json!({
          "identifier": "notify_on_demand", "title": "Notify on demand",
          "description": "Send a notification based on user input", "allowAnyoneToViewRuns": false,
          "nodes": [
            {"identifier": "trigger", "title": "Start",
             "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"message": {"type": "string", "title": "Message"}}, "required": ["message"]}},
             "variables": {}},
            {"identifier": "send_webhook", "title": "Send webhook",
             "config": {"type": "WEBHOOK", "url": "https://example.com/webhook", "method": "POST", "synchronized": true,
                        "headers": {"Content-Type": "application/json"}, "body": {"message": "{{ .outputs.trigger.message }}"}},
             "variables": {"request_id": "{{ .response.data.requestId }}"}}
          ],
          "connections": [{"identifier": "trigger_to_webhook", "sourceIdentifier": "trigger", "targetIdentifier": "send_webhook"}]
        });
        let def = WorkflowDef::parse(doc, None).unwrap();
        check_programs(&def).unwrap();
        assert_eq!(def.node("send_webhook").unwrap().variables.as_ref().unwrap()["request_id"], "{{ .response.data.requestId }}");
        assert_eq!(def.node("trigger").unwrap().variables, None, "`{{}}` keeps the trigger's output");
        // docs/workflows/build-workflows/event-trigger.md: a timer, an upsert, a webhook.
        let doc = json!({
          "identifier": "expire-environment", "title": "Expire Environment on TTL",
          "nodes": [
            {"identifier": "trigger", "title": "On TTL Expired",
             "config": {"type": "EVENT_TRIGGER", "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "environment", "propertyIdentifier": "ttl"}}},
            {"identifier": "update-status", "title": "Mark as Expired",
             "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "environment",
                        "mapping": {"identifier": "{{ .outputs.trigger.diff.after.identifier }}", "properties": {"status": "expired"}}}},
            {"identifier": "notify", "title": "Notify Owner",
             "config": {"type": "WEBHOOK", "url": "https://api.example.com/notify",
                        "body": {"message": "Environment {{ .outputs.trigger.diff.after.title }} has expired"}}}
          ],
          "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "update-status"},
                          {"sourceIdentifier": "update-status", "targetIdentifier": "notify"}]
        });
        let def = WorkflowDef::parse(doc, None).unwrap();
        check_programs(&def).unwrap();
        let NodeConfig::EventTrigger { event, condition, published } = &def.nodes[0].config else { panic!("an event trigger") };
        assert_eq!(event.kind, EventType::TimerPropertyExpired);
        assert_eq!((event.blueprint.as_deref(), event.property.as_deref()), (Some("environment"), Some("ttl")));
        assert!(condition.is_none() && *published);
        assert_eq!(def.referenced_blueprints(), ["environment"]);
        assert!(matches!(def.nodes[1].config, NodeConfig::UpsertEntity { on_failure: OnFailure::Terminate, .. }));
    }

    #[test]
    fn reads_each_node_type() {
        let doc = workflow(
            vec![
                json!({"identifier": "on_update", "config": {"type": "EVENT_TRIGGER",
                    "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"},
                    "condition": {"type": "JQ", "expressions": [".diff.after.properties.tier == \"1\""], "combinator": "or"},
                    "published": false}}),
                json!({"identifier": "nightly", "config": {"type": "SCHEDULE_TRIGGER", "cron": "0 3 * * *"}}),
                json!({"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                    {"identifier": "prod", "title": "Production", "expression": ".outputs.trigger.env == \"prod\""},
                    {"identifier": "dev", "expression": "true", "statusLabel": "Dev"}]}}),
                json!({"identifier": "save", "verbose": true, "icon": "Service", "links": ["https://x/{{ .result.id }}"],
                    "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "{{ .outputs.trigger.blueprint }}",
                               "mapping": {"title": "{{ .outputs.trigger.title }}", "team": ["a"]}, "onFailure": "CONTINUE"}}),
                json!({"identifier": "call", "config": {"type": "WEBHOOK", "url": "https://x", "method": "PUT",
                    "synchronized": false, "agent": true, "onFailure": "continue", "onTimeout": "Continue",
                    "headers": {"X-Run": "{{ .workflowRun.identifier }}"}, "body": [1, "{{ .outputs }}"]}}),
            ],
            vec![
                link("on_update", "check"),
                link("nightly", "check"),
                json!({"sourceIdentifier": "check", "targetIdentifier": "save", "sourceOutletIdentifier": "prod"}),
                json!({"sourceIdentifier": "check", "targetIdentifier": "call", "fallback": true, "description": "otherwise"}),
            ],
        );
        let def = WorkflowDef::parse(doc, None).unwrap();
        check_programs(&def).unwrap();
        let types: Vec<&str> = def.nodes.iter().map(Node::config_type).collect();
        assert_eq!(types, ["EVENT_TRIGGER", "SCHEDULE_TRIGGER", "CONDITION", "UPSERT_ENTITY", "WEBHOOK"]);
        assert_eq!(def.triggers().count(), 2);
        let NodeConfig::EventTrigger { condition: Some(condition), published, .. } = &def.nodes[0].config else {
            panic!("an event trigger")
        };
        assert_eq!(condition.combinator, Combinator::Or);
        assert!(!published);
        let NodeConfig::ScheduleTrigger { cron } = &def.nodes[1].config else { panic!("a schedule") };
        assert_eq!(cron.source(), "0 3 * * *");
        let NodeConfig::Condition { outlets } = &def.nodes[2].config else { panic!("a condition") };
        assert_eq!(
            outlets[0],
            Outlet {
                identifier: "prod".into(),
                title: Some("Production".into()),
                expression: ".outputs.trigger.env == \"prod\"".into()
            }
        );
        let save = &def.nodes[3];
        assert!(save.verbose && save.icon.as_deref() == Some("Service"));
        assert!(
            matches!(&save.config, NodeConfig::UpsertEntity { on_failure: OnFailure::Continue, blueprint, .. } if blueprint.contains("{{"))
        );
        let NodeConfig::Webhook { method, synchronized, agent, on_failure, on_timeout, body, .. } = &def.nodes[4].config else {
            panic!("a webhook")
        };
        assert_eq!((*method, *synchronized, *agent), (Method::Put, false, true));
        assert_eq!((*on_failure, *on_timeout), (OnFailure::Continue, OnTimeout::Continue));
        assert_eq!(body, &Some(json!([1, "{{ .outputs }}"])));
        assert_eq!(def.connections[3].description.as_deref(), Some("otherwise"));
        // Templated blueprints are not listed; the event's is.
        assert_eq!(def.referenced_blueprints(), ["service"]);
    }

    #[test]
    fn next_follows_outlets_and_the_fallback() {
        let doc = workflow(
            vec![
                trigger(),
                json!({"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                    {"identifier": "a", "expression": "true"}, {"identifier": "b", "expression": "false"},
                    {"identifier": "c", "expression": "false"}]}}),
                webhook("on-a"),
                webhook("on-b"),
                webhook("otherwise"),
            ],
            vec![
                link("trigger", "check"),
                json!({"sourceIdentifier": "check", "targetIdentifier": "on-a", "sourceOutletIdentifier": "a"}),
                json!({"sourceIdentifier": "check", "targetIdentifier": "on-b", "sourceOptionIdentifier": "b"}),
                json!({"sourceIdentifier": "check", "targetIdentifier": "otherwise", "fallback": true}),
            ],
        );
        let def = WorkflowDef::parse(doc, None).unwrap();
        assert_eq!(def.next("trigger", None).unwrap().identifier, "check");
        assert_eq!(def.next("check", Some("a")).unwrap().identifier, "on-a");
        assert_eq!(def.next("check", Some("b")).unwrap().identifier, "on-b");
        assert!(def.next("check", Some("c")).is_none(), "an outlet without a connection ends the run");
        assert_eq!(def.next("check", None).unwrap().identifier, "otherwise");
        assert!(def.next("on-a", None).is_none());
        assert!(def.next("nope", None).is_none());
    }

    #[test]
    fn older_condition_spellings_are_read() {
        // `options` and `sourceOptionIdentifier` (docs.port.io's condition page).
        let doc = workflow(
            vec![
                trigger(),
                json!({"identifier": "check-environment", "title": "Check Environment", "config": {"type": "CONDITION", "options": [
                    {"identifier": "production", "title": "Production", "expression": ".outputs.trigger.environment == \"production\""},
                    {"identifier": "staging", "title": "Staging", "expression": ".outputs.trigger.environment == \"staging\""}]}}),
                webhook("production-deploy"),
                webhook("staging-deploy"),
                webhook("default-deploy"),
            ],
            vec![
                link("trigger", "check-environment"),
                json!({"sourceIdentifier": "check-environment", "targetIdentifier": "production-deploy", "sourceOptionIdentifier": "production"}),
                json!({"sourceIdentifier": "check-environment", "targetIdentifier": "staging-deploy", "sourceOptionIdentifier": "staging"}),
                json!({"sourceIdentifier": "check-environment", "targetIdentifier": "default-deploy", "fallback": true}),
            ],
        );
        let def = WorkflowDef::parse(doc.clone(), None).unwrap();
        check_programs(&def).unwrap();
        assert_eq!(def.next("check-environment", Some("staging")).unwrap().identifier, "staging-deploy");
        assert_eq!(def.document(), &doc, "kept as written");
        // `conditions`, `connectionIdentifier` and `defaultConnectionIdentifier` (docs/workflows/nodes.md).
        let doc = workflow(
            vec![
                trigger(),
                json!({"identifier": "decide_path", "title": "Choose a path", "config": {"type": "CONDITION",
                    "conditions": [{"title": "Tier 1 service", "expression": ".outputs.trigger.tier == \"tier_1\"", "connectionIdentifier": "tier_1_path"}],
                    "defaultConnectionIdentifier": "default_path"}}),
                webhook("tier-1"),
                webhook("other"),
            ],
            vec![
                link("trigger", "decide_path"),
                json!({"identifier": "tier_1_path", "sourceIdentifier": "decide_path", "targetIdentifier": "tier-1"}),
                json!({"identifier": "default_path", "sourceIdentifier": "decide_path", "targetIdentifier": "other"}),
            ],
        );
        let def = WorkflowDef::parse(doc, None).unwrap();
        assert_eq!(def.next("decide_path", Some("tier_1_path")).unwrap().identifier, "tier-1");
        assert_eq!(def.next("decide_path", None).unwrap().identifier, "other");
        let mut broken = def.document().clone();
        broken["nodes"][1]["config"]["conditions"][0]["expression"] = json!("{{ .x }}");
        let err = check_programs(&WorkflowDef::parse(broken, None).unwrap()).unwrap_err();
        assert!(
            err.message.contains("`nodes[1].config.conditions[0].expression` is not a valid jq expression"),
            "{}",
            err.message
        );
        let mut both = doc_with_condition();
        both["nodes"][1]["config"]["options"] = json!([]);
        assert_refused(both, "has both `outlets` and `options`");
        let mut default = doc_with_condition();
        default["nodes"][1]["config"]["defaultConnectionIdentifier"] = json!("x");
        assert_refused(default, "`nodes[1].config.defaultConnectionIdentifier` goes with `conditions`");
    }

    fn doc_with_condition() -> Value {
        workflow(
            vec![
                trigger(),
                json!({"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                    {"identifier": "a", "expression": "true"}, {"identifier": "b", "expression": "false"}]}}),
                webhook("x"),
                webhook("y"),
            ],
            vec![
                link("trigger", "check"),
                json!({"sourceIdentifier": "check", "targetIdentifier": "x", "sourceOutletIdentifier": "a"}),
                json!({"sourceIdentifier": "check", "targetIdentifier": "y", "fallback": true}),
            ],
        )
    }

    #[test]
    fn graph_rules_are_checked_on_save() {
        WorkflowDef::parse(doc_with_condition(), None).unwrap();
        assert_refused(workflow(vec![], vec![]), "`nodes` has 0 nodes; a workflow has 1 to 100");
        let many: Vec<Value> = (0..=MAX_NODES).map(|k| webhook(&format!("n{k}"))).collect();
        assert_refused(workflow(many, vec![]), "`nodes` has 101 nodes");
        assert_refused(json!({"identifier": "wf"}), "`nodes` is required");
        assert_refused(
            workflow(vec![trigger(), webhook("a"), webhook("a")], vec![link("trigger", "a")]),
            "`nodes[2].identifier` is `a`, which `nodes[1]` already has",
        );
        assert_refused(workflow(vec![webhook("a")], vec![]), "a workflow needs a trigger node");
        assert_refused(
            workflow(vec![trigger(), webhook("a")], vec![link("trigger", "a"), link("a", "trigger")]),
            "`connections[1]`: node `trigger` is a trigger; a trigger starts runs and has no incoming connections",
        );
        assert_refused(
            workflow(vec![trigger(), webhook("a")], vec![link("trigger", "b")]),
            "`connections[0].targetIdentifier` is `b`, which is not a node of this workflow",
        );
        assert_refused(
            workflow(vec![trigger(), webhook("a")], vec![link("c", "a")]),
            "`connections[0].sourceIdentifier` is `c`, which is not a node of this workflow",
        );
        assert_refused(
            workflow(vec![trigger(), webhook("a"), webhook("b")], vec![link("trigger", "a"), link("trigger", "b")]),
            "`connections[1]`: node `trigger` already has an outgoing connection (`connections[0]`); fan-out is not supported",
        );
        assert_refused(
            workflow(vec![trigger(), webhook("a"), webhook("b")], vec![link("trigger", "a"), link("a", "b"), link("b", "a")]),
            "the connections form a cycle (`a` → `b` → `a`); workflows have no cycles",
        );
        assert_refused(
            workflow(vec![trigger(), webhook("a")], vec![link("trigger", "a"), link("a", "a")]),
            "`connections[1]` connects node `a` to itself",
        );
        assert_refused(
            workflow(vec![trigger(), webhook("a"), webhook("b")], vec![link("trigger", "a")]),
            "`nodes[2]` (`b`) is not reachable from a trigger; connect it or remove it",
        );
        // Unreachable even with connections among themselves.
        assert_refused(
            workflow(vec![trigger(), webhook("a"), webhook("b"), webhook("c")], vec![link("trigger", "a"), link("b", "c")]),
            "`nodes[2]` (`b`) is not reachable from a trigger",
        );
        // Fan-in is fine: two outlets may lead to one node.
        let mut fan_in = doc_with_condition();
        fan_in["connections"][2]["targetIdentifier"] = json!("x");
        fan_in["nodes"].as_array_mut().unwrap().pop();
        WorkflowDef::parse(fan_in, None).unwrap();
    }

    #[test]
    fn condition_connections_need_an_outlet_or_the_fallback() {
        let with = |connection: Value| {
            let mut doc = doc_with_condition();
            doc["connections"].as_array_mut().unwrap().push(connection);
            doc["nodes"].as_array_mut().unwrap().push(webhook("z"));
            doc
        };
        assert_refused(
            with(link("check", "z")),
            "`connections[3]` leaves CONDITION node `check`: it needs `sourceOutletIdentifier` (one of `a`, `b`) or `fallback: true`",
        );
        assert_refused(
            with(json!({"sourceIdentifier": "check", "targetIdentifier": "z", "sourceOutletIdentifier": "a", "fallback": true})),
            "`connections[3]` has both `sourceOutletIdentifier` and `fallback: true`",
        );
        assert_refused(
            with(json!({"sourceIdentifier": "check", "targetIdentifier": "z", "sourceOutletIdentifier": "q"})),
            "`connections[3].sourceOutletIdentifier` is `q`, which is not an outlet of node `check` (its outlets: `a`, `b`)",
        );
        assert_refused(
            with(json!({"sourceIdentifier": "check", "targetIdentifier": "z", "sourceOutletIdentifier": "a"})),
            "`connections[3]`: outlet `a` of node `check` already has a connection (`connections[1]`); fan-out is not supported",
        );
        assert_refused(
            with(json!({"sourceIdentifier": "check", "targetIdentifier": "z", "fallback": true})),
            "`connections[3]`: node `check` already has a fallback connection (`connections[2]`)",
        );
        assert_refused(
            with(json!({"sourceIdentifier": "x", "targetIdentifier": "z", "sourceOutletIdentifier": "a"})),
            "`connections[3].sourceOutletIdentifier` applies to a connection leaving a CONDITION node; `x` is a WEBHOOK node",
        );
        assert_refused(
            with(json!({"sourceIdentifier": "x", "targetIdentifier": "z", "fallback": true})),
            "`connections[3].fallback` applies to a connection leaving a CONDITION node",
        );
        assert_refused(
            with(
                json!({"sourceIdentifier": "x", "targetIdentifier": "z", "sourceOutletIdentifier": "a", "sourceOptionIdentifier": "b"}),
            ),
            "write one, `sourceOutletIdentifier`",
        );
        let mut named = with(json!({"identifier": "c", "sourceIdentifier": "x", "targetIdentifier": "z"}));
        named["connections"][0]["identifier"] = json!("c");
        assert_refused(named, "`connections[3].identifier` is `c`, which `connections[0]` already has");
        let mut duplicate = doc_with_condition();
        duplicate["nodes"][1]["config"]["outlets"][1]["identifier"] = json!("a");
        assert_refused(duplicate, "`nodes[1].config.outlets[1].identifier` is `a`, which an earlier outlet of node `check` has");
        let mut no_outlets = doc_with_condition();
        no_outlets["nodes"][1]["config"].as_object_mut().unwrap().remove("outlets");
        assert_refused(no_outlets, "`nodes[1].config.outlets` is required");
        let mut no_expression = doc_with_condition();
        no_expression["nodes"][1]["config"]["outlets"][0].as_object_mut().unwrap().remove("expression");
        assert_refused(no_expression, "`nodes[1].config.outlets[0].expression` is required");
    }

    #[test]
    fn documents_are_checked_with_paths() {
        let base = || chain(vec![webhook("a")]);
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut doc = base();
            edit(&mut doc);
            doc
        };
        WorkflowDef::parse(base(), None).unwrap();
        assert_refused(json!([1]), "a workflow must be a JSON object, not array");
        assert_refused(with(&|d| d["owner"] = json!(1)), "`owner` is not a known key; a workflow may have `identifier`");
        assert_refused(with(&|d| d["nodes"][1]["foo"] = json!(1)), "`nodes[1].foo` is not a known key; `nodes[1]` may have");
        assert_refused(
            with(&|d| d["nodes"][1]["config"]["foo"] = json!(1)),
            "`nodes[1].config.foo` is not a known key; `nodes[1].config` may have",
        );
        assert_refused(
            with(&|d| d["nodes"][0]["config"]["userInputs"]["properties"]["service"]["type"] = json!(1)),
            "`nodes[0].config.userInputs.properties.service.type` must be a string",
        );
        assert_refused(
            with(&|d| d["nodes"][0]["config"]["userInputs"]["required"] = json!(["nope"])),
            "`nodes[0].config.userInputs.required[0]` is `nope`, which is not an input of `nodes[0].config.userInputs.properties`",
        );
        assert_refused(with(&|d| d["identifier"] = json!("a b")), "`identifier` is `a b`: use letters, digits and @ _ : -");
        assert_refused(with(&|d| d["identifier"] = json!("x".repeat(61))), "`identifier` must be 1 to 60 characters long");
        assert_refused(with(&|d| d["identifier"] = json!("runs")), "`identifier` cannot be `runs`");
        assert_refused(with(&|d| d["identifier"] = json!("nodes")), "`identifier` cannot be `nodes`");
        WorkflowDef::parse(with(&|d| d["identifier"] = json!("équipe@v1:deploy-x_y")), None).unwrap();
        assert_refused(with(&|d| d["title"] = json!("t".repeat(101))), "`title` must be 0 to 100 characters long");
        assert_refused(with(&|d| d["description"] = json!("d".repeat(1_101))), "`description` must be 0 to 1100");
        assert_refused(with(&|d| d["category"] = json!("c".repeat(41))), "`category` must be 0 to 40");
        assert_refused(with(&|d| d["allowAnyoneToViewRuns"] = json!("yes")), "`allowAnyoneToViewRuns` must be a boolean");
        assert_refused(
            with(&|d| d["nodes"][1]["identifier"] = json!("a.b")),
            "`nodes[1].identifier` is `a.b`: use letters, digits, _ and -",
        );
        assert_refused(with(&|d| d["nodes"][1]["title"] = json!("t".repeat(101))), "`nodes[1].title` must be 0 to 100");
        assert_refused(with(&|d| d["nodes"][1]["links"] = json!(["a", "b", "c", "d"])), "`nodes[1].links` has 4 links");
        assert_refused(with(&|d| d["nodes"][1]["links"] = json!([1])), "`nodes[1].links[0]` must be a string");
        assert_refused(with(&|d| d["nodes"][1]["variables"] = json!([])), "`nodes[1].variables` must be an object, not array");
        assert_refused(with(&|d| d["nodes"][1]["verbose"] = json!(1)), "`nodes[1].verbose` must be a boolean");
        assert_refused(with(&|d| d["nodes"][1].as_object_mut().unwrap().clear()), "`nodes[1].identifier` is required");
        assert_refused(with(&|d| d["nodes"][1]["config"] = json!(null)), "`nodes[1].config` is required");
        assert_refused(
            with(&|d| d["nodes"][1]["config"] = json!({"url": "x"})),
            "`nodes[1].config.type` is required: one of `SELF_SERVE_TRIGGER`",
        );
        assert_refused(
            with(&|d| d["nodes"][1]["config"]["type"] = json!("SOMETHING")),
            "`nodes[1].config.type` is `SOMETHING`; it must be one of",
        );
        assert_refused(with(&|d| d["connections"] = json!({})), "`connections` must be an array, not object");
        assert_refused(with(&|d| d["connections"][0]["foo"] = json!(1)), "`connections[0].foo` is not a known key");
        assert_refused(
            with(&|d| d["connections"][0] = json!({"sourceIdentifier": "trigger"})),
            "`connections[0].targetIdentifier` is required",
        );
        // The literal `trigger` is kept for trigger nodes.
        assert_refused(
            workflow(
                vec![
                    json!({"identifier": "start", "config": {"type": "SCHEDULE_TRIGGER", "cron": "* * * * *"}}),
                    webhook("trigger"),
                ],
                vec![link("start", "trigger")],
            ),
            "`nodes[1].identifier` is `trigger`, which names the trigger that fired",
        );
    }

    #[test]
    fn unsupported_node_types_say_so() {
        for kind in ["KAFKA", "INTEGRATION_ACTION", "AI", "AI_AGENT", "CURSOR_AGENT", "INPUT"] {
            let doc = chain(vec![json!({"identifier": "x", "config": {"type": kind, "payload": {}}})]);
            assert_refused(doc, &format!("`nodes[1].config.type` is `{kind}`: Wharf does not run `{kind}` nodes"));
        }
    }

    #[test]
    fn node_configs_are_checked_with_paths() {
        let node = |config: Value| chain(vec![json!({"identifier": "x", "config": config})]);
        assert_refused(node(json!({"type": "WEBHOOK"})), "`nodes[1].config.url` is required");
        assert_refused(node(json!({"type": "WEBHOOK", "url": "u", "method": "TRACE"})), "`nodes[1].config.method` is `TRACE`");
        assert_refused(
            node(json!({"type": "WEBHOOK", "url": "u", "headers": {"a": 1}})),
            "`nodes[1].config.headers.a` must be a string",
        );
        assert_refused(
            node(json!({"type": "WEBHOOK", "url": "u", "body": "x"})),
            "`nodes[1].config.body` must be an object or an array",
        );
        assert_refused(
            node(json!({"type": "WEBHOOK", "url": "u", "synchronized": "{{ true }}"})),
            "`nodes[1].config.synchronized` must be a boolean",
        );
        assert_refused(node(json!({"type": "WEBHOOK", "url": "u", "agent": 1})), "`nodes[1].config.agent` must be a boolean");
        assert_refused(
            node(json!({"type": "WEBHOOK", "url": "u", "onFailure": "retry"})),
            "`nodes[1].config.onFailure` is `retry`; it must be `terminate` or `continue`",
        );
        assert_refused(
            node(json!({"type": "WEBHOOK", "url": "u", "onTimeout": "continue!"})),
            "`nodes[1].config.onTimeout` is `continue!`; it must be `fail` or `continue`",
        );
        assert_refused(
            node(json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "s"})),
            "`nodes[1].config.mapping` is required",
        );
        assert_refused(
            node(json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "s", "mapping": {"foo": 1}})),
            "`nodes[1].config.mapping.foo` is not a known key",
        );
        assert_refused(
            node(json!({"type": "UPSERT_ENTITY", "blueprintIdentifier": "s", "mapping": {}, "onTimeout": "fail"})),
            "`nodes[1].config.onTimeout` is not a known key",
        );
        assert_refused(
            node(json!({"type": "CONDITION", "outlets": {}})),
            "`nodes[1].config.outlets` must be an array, not object",
        );
        let outlets: Vec<Value> =
            (0..=MAX_OUTLETS).map(|k| json!({"identifier": format!("o{k}"), "expression": "true"})).collect();
        assert_refused(node(json!({"type": "CONDITION", "outlets": outlets})), "a CONDITION node may have at most 50");

        let trigger_node =
            |config: Value| workflow(vec![json!({"identifier": "t", "config": config}), webhook("a")], vec![link("t", "a")]);
        assert_refused(trigger_node(json!({"type": "SCHEDULE_TRIGGER"})), "`nodes[0].config.cron` is required");
        assert_refused(
            trigger_node(json!({"type": "SCHEDULE_TRIGGER", "cron": "0 */5 * * * *"})),
            "`nodes[0].config.cron`: `0 */5 * * * *` has 6 fields",
        );
        assert_refused(
            trigger_node(json!({"type": "SCHEDULE_TRIGGER", "cron": "* * * * *", "timezone": "UTC"})),
            "`nodes[0].config.timezone` is not a known key",
        );
        assert_refused(trigger_node(json!({"type": "EVENT_TRIGGER"})), "`nodes[0].config.event` is required");
        assert_refused(
            trigger_node(json!({"type": "EVENT_TRIGGER", "event": {"type": "RUN_CREATED", "actionIdentifier": "a"}})),
            "`nodes[0].config.event.type` is `RUN_CREATED`; it must be one of `ENTITY_CREATED`, `ENTITY_UPDATED`, `ENTITY_DELETED`, `ANY_ENTITY_CHANGE`, `TIMER_EXPIRED`",
        );
        assert_refused(
            trigger_node(json!({"type": "EVENT_TRIGGER", "event": {"blueprintIdentifier": "s"}})),
            "`nodes[0].config.event.type` is required; it must be one of",
        );
        assert_refused(
            trigger_node(json!({"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED"}})),
            "`nodes[0].config.event.blueprintIdentifier` is required for `ENTITY_CREATED` events",
        );
        assert_refused(
            trigger_node(json!({"type": "EVENT_TRIGGER", "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "s"}})),
            "`nodes[0].config.event.propertyIdentifier` is required for `TIMER_EXPIRED` events",
        );
        assert_refused(
            trigger_node(
                json!({"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "s", "x": 1}}),
            ),
            "`nodes[0].config.event.x` is not a known key",
        );
        assert_refused(
            trigger_node(json!({"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "s"},
                                "condition": {"type": "JQ"}})),
            "`nodes[0].config.condition.expressions` is required",
        );
        // The automations' name for the timer is read too.
        let def = WorkflowDef::parse(
            trigger_node(json!({"type": "EVENT_TRIGGER",
                "event": {"type": "TIMER_PROPERTY_EXPIRED", "blueprintIdentifier": "env", "propertyIdentifier": "ttl"}})),
            None,
        )
        .unwrap();
        assert!(
            matches!(&def.nodes[0].config, NodeConfig::EventTrigger { event, .. } if event.kind == EventType::TimerPropertyExpired)
        );
        assert_refused(
            trigger_node(json!({"type": "SELF_SERVE_TRIGGER", "variant": "LOUD"})),
            "`nodes[0].config.variant` is `LOUD`",
        );
        assert_refused(
            trigger_node(json!({"type": "SELF_SERVE_TRIGGER", "executeActionButtonText": " Go "})),
            "`nodes[0].config.executeActionButtonText` may not start or end with a space",
        );
        assert_refused(
            trigger_node(json!({"type": "SELF_SERVE_TRIGGER", "permissions": []})),
            "`nodes[0].config.permissions` must be an object",
        );
        assert_refused(
            trigger_node(json!({"type": "SELF_SERVE_TRIGGER", "contexts": [{"on": "ENTITY", "userInput": "svc"}]})),
            "`nodes[0].config.contexts[0].userInput` is `svc`, which is not an input of `nodes[0].config.userInputs.properties`",
        );
        assert_refused(
            trigger_node(json!({"type": "SELF_SERVE_TRIGGER", "contexts": [{"on": "CREATE_ENTITY"}]})),
            "`nodes[0].config.contexts[0].blueprintIdentifier` is required",
        );
        let def = WorkflowDef::parse(
            trigger_node(json!({"type": "SELF_SERVE_TRIGGER", "variant": "ALERT", "published": false,
                "permissions": {"execute": {"roles": ["Admin"]}},
                "userInputs": {"properties": {"svc": {"type": "string", "format": "entity", "blueprint": "service"}}},
                "contexts": [{"on": "CREATE_ENTITY", "blueprintIdentifier": "deployment"}, {"on": "ENTITY", "userInput": "svc"}],
                "actionCardButtonText": "Deploy", "executeActionButtonText": "Go"})),
            None,
        )
        .unwrap();
        assert_eq!(def.referenced_blueprints(), ["deployment", "service"]);
    }

    #[test]
    fn programs_are_compiled_with_paths() {
        let doc = chain(vec![
            json!({"identifier": "a", "config": {"type": "WEBHOOK", "url": "https://x/{{ .a | nope }}",
                "body": {"name": "{{ .outputs.trigger.name | }}"}}, "variables": {"v": {"deep": ["{{ ( }}"]}},
                "links": ["{{ [ }}"]}),
            json!({"identifier": "b", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "s",
                "mapping": {"properties": {"p": "{{ .x | nope2 }}"}}}}),
        ]);
        let mut doc = doc;
        doc["nodes"][0]["config"]["userInputs"]["properties"]["service"]["default"] = json!({"jqQuery": ".[ "});
        let def = WorkflowDef::parse(doc, None).unwrap();
        let err = check_programs(&def).unwrap_err();
        assert_eq!(err.code, "invalid_jq");
        for path in [
            "`nodes[1].config.url`",
            "`nodes[1].config.body.name`",
            "`nodes[1].variables.v.deep[0]`",
            "`nodes[1].links[0]`",
            "`nodes[2].config.mapping.properties.p`",
            "`nodes[0].config.userInputs.properties.service.default.jqQuery`",
        ] {
            assert!(err.message.contains(path), "{path} in {}", err.message);
        }
        let doc = workflow(
            vec![
                json!({"identifier": "t", "config": {"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "s"},
                    "condition": {"type": "JQ", "expressions": ["true", ".a |"]}}}),
                json!({"identifier": "c", "config": {"type": "CONDITION", "outlets": [{"identifier": "o", "expression": "{{ .x }}"}]}}),
                json!({"identifier": "w", "config": {"type": "WEBHOOK", "url": "u", "headers": {"{{ .k | }}": "v"}}}),
            ],
            vec![link("t", "c"), json!({"sourceIdentifier": "c", "targetIdentifier": "w", "fallback": true})],
        );
        let err = check_programs(&WorkflowDef::parse(doc, None).unwrap()).unwrap_err();
        for path in [
            "`nodes[0].config.condition.expressions[1]`",
            "`nodes[1].config.outlets[0].expression`",
            "`nodes[2].config.headers.{{ .k | }}`",
        ] {
            assert!(err.message.contains(path), "{path} in {}", err.message);
        }
        let long = chain(vec![json!({"identifier": "a", "config": {"type": "WEBHOOK", "url": "x".repeat(MAX_EXPRESSION + 1)}})]);
        let err = check_programs(&WorkflowDef::parse(long, None).unwrap()).unwrap_err();
        assert!(err.message.contains("`nodes[1].config.url` is 65537 bytes long"), "{}", err.message);
    }

    #[test]
    fn replacing_keeps_the_identifier_and_drops_answer_keys() {
        let mut doc = chain(vec![webhook("a")]);
        doc.as_object_mut().unwrap().remove("identifier");
        doc["createdAt"] = json!("2026-01-01T00:00:00.000Z");
        doc["versionIdentifier"] = json!("wfv_1");
        let def = WorkflowDef::parse(doc, Some("wf")).unwrap();
        assert_eq!(def.identifier, "wf");
        let stored = def.document().as_object().unwrap();
        assert_eq!(stored.keys().next().map(String::as_str), Some("identifier"));
        assert!(!stored.contains_key("createdAt") && !stored.contains_key("versionIdentifier"));
        let err = WorkflowDef::parse(chain(vec![webhook("a")]), Some("other")).unwrap_err();
        assert!(err.message.contains("workflow identifiers cannot be changed"), "{}", err.message);
        WorkflowDef::parse(chain(vec![webhook("a")]), Some("wf")).unwrap();
        assert_refused(
            {
                let mut doc = chain(vec![webhook("a")]);
                doc.as_object_mut().unwrap().remove("identifier");
                doc
            },
            "`identifier` is required",
        );
    }

    #[test]
    fn deep_documents_are_refused() {
        let mut deep = json!("{{ .x }}");
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let doc = chain(vec![json!({"identifier": "a", "config": {"type": "WEBHOOK", "url": "u", "body": {"x": deep}}})]);
        assert_refused(doc, "the workflow nests");
    }

    #[test]
    fn references_are_checked_against_the_catalog() {
        let doc = workflow(
            vec![
                json!({"identifier": "t", "config": {"type": "EVENT_TRIGGER",
                    "event": {"type": "TIMER_EXPIRED", "blueprintIdentifier": "env", "propertyIdentifier": "ttl"}}}),
                json!({"identifier": "u", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service", "mapping": {}}}),
            ],
            vec![link("t", "u")],
        );
        let def = WorkflowDef::parse(doc, None).unwrap();
        assert_eq!(def.referenced_blueprints(), ["env", "service"]);
        let blueprint = |doc: Value| Blueprint {
            def: crate::blueprint::BlueprintDef::parse(doc).unwrap(),
            audited: crate::blueprint::Audited::new("test", crate::time::Timestamp::from_millis(0)),
        };
        let env = blueprint(json!({"identifier": "env", "title": "Env", "schema": {"properties": {
            "ttl": {"type": "string", "format": "timer"}, "name": {"type": "string"}}}}));
        let service = blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}}));
        def.check_references(|name| match name {
            "env" => Some(&env),
            "service" => Some(&service),
            _ => None,
        })
        .unwrap();
        let err = def.check_references(|name| (name == "env").then_some(&env)).unwrap_err();
        assert_eq!(err.message, "`nodes[1].config.blueprintIdentifier` is `service`, which is not an existing blueprint");
        let mut not_a_timer = def.clone();
        not_a_timer.timer_properties[0].2 = "name".into();
        let err = not_a_timer.check_references(|name| Some(if name == "env" { &env } else { &service })).unwrap_err();
        assert!(
            err.message
                .contains("`nodes[0].config.event.propertyIdentifier` is `name`, which is not a `timer` property of `env`")
        );
        not_a_timer.timer_properties[0].2 = "nope".into();
        let err = not_a_timer.check_references(|name| Some(if name == "env" { &env } else { &service })).unwrap_err();
        assert!(err.message.contains("is `nope`, which is not a property of `env`"));
    }

    #[test]
    fn inputs_document_is_shaped_as_an_action() {
        let def = WorkflowDef::parse(chain(vec![webhook("a")]), None).unwrap();
        let trigger = def.node("trigger").unwrap();
        let inputs = def.inputs_document(trigger);
        assert_eq!(inputs.pointer("/trigger/userInputs/required"), Some(&json!(["service"])));
        let checked = crate::run_inputs::check_inputs(&inputs, &json!({"service": "api"}), &json!({})).unwrap();
        assert_eq!(checked.values["service"], "api");
        let err = crate::run_inputs::check_inputs(&inputs, &json!({}), &json!({})).unwrap_err();
        assert!(err.message.contains("service"), "{}", err.message);
        // A trigger without inputs takes none.
        let bare = workflow(
            vec![json!({"identifier": "go", "config": {"type": "SELF_SERVE_TRIGGER"}}), webhook("a")],
            vec![link("go", "a")],
        );
        let def = WorkflowDef::parse(bare, None).unwrap();
        assert_eq!(def.inputs_document(&def.nodes[0]), json!({"trigger": {}}));
    }

    #[test]
    fn outputs() {
        assert_eq!(
            webhook_output(201, json!({"id": "r1", "response": "inner", "n": 2})),
            json!({"response": {"status": 201, "data": {"id": "r1", "response": "inner", "n": 2}}, "id": "r1", "n": 2})
        );
        assert_eq!(webhook_output(200, json!([1])), json!({"response": {"status": 200, "data": [1]}}));
        assert_eq!(webhook_output(204, Value::Null), json!({"response": {"status": 204, "data": null}}));
        assert_eq!(failure_output("boom"), json!({"error": {"message": "boom"}}));
        assert_eq!(timeout_output(), json!({"timeout": true}));
        assert_eq!(upsert_output("svc-1"), json!({"response": {"data": {"identifier": "svc-1"}}}));
    }
}
