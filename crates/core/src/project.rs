//! Projects and their webhook subscriptions (seed 004, SPEC §10): the documents users send,
//! their validation, event-type patterns, and the body every subscriber receives.
//!
//! These routes answer seed 004's shapes (the object itself with `_id`, no `ok` wrapper);
//! invalid documents are 400s naming the field.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::change::{Change, ChangeAction, ResourceType};
use crate::time::Timestamp;

const CODE: &str = "invalid_request";

/// A project's lifecycle status (seed 004 names `draft` as the default and cuts the list
/// off; Wharf decides `draft`, `active`, `archived`).
pub const PROJECT_STATUSES: &[&str] = &["draft", "active", "archived"];

/// A stored project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub status: String,
    pub app_icon_url: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Project {
    /// Seed 004's project object.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "_id": self.id,
            "name": self.name,
            "slug": self.slug,
            "organization": self.org_id,
            "status": self.status,
            "createdAt": self.created_at.to_iso(),
            "updatedAt": self.updated_at.to_iso(),
        });
        if let Some(description) = &self.description {
            out["description"] = json!(description);
        }
        if let Some(url) = &self.app_icon_url {
            out["appIconUrl"] = json!(url);
        }
        out
    }
}

/// The keys a project document may hold (all optional: a create checks what is required).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub app_icon_url: Option<Option<String>>,
}

/// Tells a key set to `null` (`Some(None)`) from an absent one (`None`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn parse<T: serde::de::DeserializeOwned>(doc: Value, what: &str) -> Result<T, Error> {
    if !doc.is_object() {
        return Err(Error::bad_request(CODE, format!("the {what} must be a JSON object")));
    }
    serde_path_to_error::deserialize(doc).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        if path == "." {
            Error::bad_request(CODE, format!("invalid {what}: {inner}"))
        } else {
            Error::bad_request(CODE, format!("invalid {what} at `{path}`: {inner}"))
        }
    })
}

fn length(value: &str, path: &str, min: usize, max: usize) -> Result<(), Error> {
    crate::json::check_length(CODE, value, path, min, max).map_err(|e| Error::bad_request(CODE, e.message))
}

impl ProjectInput {
    pub fn parse(doc: Value) -> Result<Self, Error> {
        parse(doc, "project")
    }

    /// A new project from a create document (`name` and `slug` required).
    pub fn create(self, id: String, org_id: String, now: Timestamp) -> Result<Project, Error> {
        let missing = |key: &str| Error::bad_request(CODE, format!("`{key}` is required"));
        let project = Project {
            id,
            org_id,
            name: self.name.clone().ok_or_else(|| missing("name"))?,
            slug: self.slug.clone().ok_or_else(|| missing("slug"))?,
            description: None,
            status: "draft".to_owned(),
            app_icon_url: None,
            created_at: now,
            updated_at: now,
        };
        self.apply(project, now)
    }

    /// The project with this document's keys changed (PATCH), checked whole.
    pub fn apply(self, mut project: Project, now: Timestamp) -> Result<Project, Error> {
        if let Some(name) = self.name {
            project.name = name;
        }
        if let Some(slug) = self.slug {
            project.slug = slug;
        }
        if let Some(description) = self.description {
            project.description = description;
        }
        if let Some(status) = self.status {
            project.status = status;
        }
        if let Some(url) = self.app_icon_url {
            project.app_icon_url = url;
        }
        project.updated_at = now;
        check_project(&project)?;
        Ok(project)
    }
}

fn check_project(project: &Project) -> Result<(), Error> {
    length(&project.name, "name", 2, 100)?;
    length(&project.slug, "slug", 2, 100)?;
    if !project.slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(Error::bad_request(
            CODE,
            format!("`slug` must match ^[a-z0-9-]{{2,100}}$ (lowercase letters, digits, dashes), got `{}`", project.slug),
        ));
    }
    if let Some(description) = &project.description {
        length(description, "description", 0, 255)?;
    }
    if !PROJECT_STATUSES.contains(&project.status.as_str()) {
        return Err(Error::bad_request(
            CODE,
            format!("`status` must be one of {}, got `{}`", PROJECT_STATUSES.join(", "), project.status),
        ));
    }
    Ok(())
}

/// Hops a delivery chain may take (SPEC §12): a subscription delivering entity changes to
/// one of Wharf's ingest URLs, whose mapping changes entities, which the subscription
/// delivers again… The request that would be the next hop is refused.
pub const MAX_DELIVERY_HOPS: u32 = 5;

/// Whether a delivery's `webhook-id` names one of Wharf's entity changes (the id of the
/// `entity.*` event it delivers is the change's id): the only deliveries that can be links
/// of such a chain.
pub fn is_change_delivery(webhook_id: &str) -> bool {
    webhook_id.starts_with("chg_")
}

/// What a subscription shows instead of a secret header's value. Sent back in a `PATCH` or
/// `PUT` for a header the subscription has, it keeps the stored value, so a document read and
/// sent back never overwrites a secret with its mask.
pub const MASKED_HEADER: &str = "[redacted]";

/// A webhook subscription of a project (seed 004's "project webhook").
///
/// Header values are secrets by default (an `Authorization` is the usual reason to set
/// one): they are sealed at rest and masked when shown; the names in `headers_not_secret`
/// (`headersNotSecret` in the document) are stored and shown in clear. See
/// [`Subscription::stored_headers`] for the stored form.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub org_id: String,
    pub project_id: String,
    pub name: String,
    pub url: String,
    /// Names and values in clear, except on the way to and from the store, where they are
    /// in their stored form ([`Subscription::stored_headers`], [`open_stored_headers`]).
    pub headers: Map<String, Value>,
    /// Headers whose values are not secret (compared without case).
    pub headers_not_secret: Vec<String>,
    pub active: bool,
    pub events: Vec<String>,
    /// Why Wharf disabled it (410 Gone, or failing for too long), until it is re-activated.
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Subscription {
    /// Seed 004's webhook object (the secret is shown only on create and by its own route).
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "_id": self.id,
            "name": self.name,
            "url": self.url,
            "headers": self.masked_headers(),
            "headersNotSecret": self.headers_not_secret,
            "active": self.active,
            "events": self.events,
            "project": self.project_id,
            "organization": self.org_id,
            "createdAt": self.created_at.to_iso(),
            "updatedAt": self.updated_at.to_iso(),
        });
        if let Some(reason) = &self.disabled_reason {
            out["disabledReason"] = json!(reason);
        }
        out
    }

    /// Whether the header `name`'s value is a secret.
    pub fn is_secret_header(&self, name: &str) -> bool {
        !self.headers_not_secret.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The headers as shown: secret values replaced by [`MASKED_HEADER`].
    pub fn masked_headers(&self) -> Map<String, Value> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let shown = if self.is_secret_header(name) { Value::from(MASKED_HEADER) } else { value.clone() };
                (name.clone(), shown)
            })
            .collect()
    }

    /// The headers as stored: a secret value as `{"sealed": …}` (sealed by `seal`), one not
    /// secret as `{"value": …}`. A plain string is a value stored before headers were
    /// sealed; it is read as a secret and sealed by the next save.
    pub fn stored_headers(&self, seal: impl Fn(&str) -> String) -> Map<String, Value> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let text = value.as_str().unwrap_or_default();
                let stored = if self.is_secret_header(name) { json!({"sealed": seal(text)}) } else { json!({"value": text}) };
                (name.clone(), stored)
            })
            .collect()
    }

    /// Whether any header is stored as a plain string (before headers were sealed).
    pub fn has_unsealed_headers(stored: &Map<String, Value>) -> bool {
        stored.values().any(Value::is_string)
    }

    /// Whether this subscription wants events of `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.active && subscribes_to(&self.events, event_type)
    }
}

/// Stored headers ([`Subscription::stored_headers`]) in clear, with the names not secret;
/// `open` opens a sealed value.
pub fn open_stored_headers<E>(
    stored: &Map<String, Value>,
    open: impl Fn(&str) -> Result<String, E>,
) -> Result<(Map<String, Value>, Vec<String>), E> {
    let mut headers = Map::new();
    let mut not_secret = Vec::new();
    for (name, value) in stored {
        let clear = match value {
            Value::Object(form) => {
                match (form.get("sealed").and_then(Value::as_str), form.get("value").and_then(Value::as_str)) {
                    (Some(sealed), _) => open(sealed)?,
                    (None, Some(value)) => {
                        not_secret.push(name.clone());
                        value.to_owned()
                    }
                    (None, None) => continue,
                }
            }
            Value::String(value) => value.clone(),
            _ => continue,
        };
        headers.insert(name.clone(), Value::String(clear));
    }
    Ok((headers, not_secret))
}

/// The value to send for one stored header, in any of its stored forms; `None` for a value
/// that is not a header (which saving a subscription refuses).
pub fn stored_header_value<E>(stored: &Value, open: impl Fn(&str) -> Result<String, E>) -> Option<Result<String, E>> {
    match stored {
        Value::String(value) => Some(Ok(value.clone())),
        Value::Object(form) => match (form.get("sealed").and_then(Value::as_str), form.get("value").and_then(Value::as_str)) {
            (Some(sealed), _) => Some(open(sealed)),
            (None, Some(value)) => Some(Ok(value.to_owned())),
            (None, None) => None,
        },
        _ => None,
    }
}

/// The keys a subscription document may hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub headers: Option<Map<String, Value>>,
    /// Names of `headers` whose values are not secret: stored and shown in clear.
    #[serde(rename = "headersNotSecret")]
    pub headers_not_secret: Option<Vec<String>>,
    pub active: Option<bool>,
    pub events: Option<Vec<String>>,
}

/// Headers a subscription may not set: Wharf's own signature headers and those HTTP owns.
const RESERVED_HEADERS: &[&str] =
    &["webhook-id", "webhook-timestamp", "webhook-signature", "content-length", "host", "transfer-encoding", "connection"];

impl SubscriptionInput {
    pub fn parse(doc: Value) -> Result<Self, Error> {
        parse(doc, "webhook")
    }

    /// A new subscription (`name`, `url` and `events` required; `active` defaults to true).
    pub fn create(self, id: String, org_id: String, project_id: String, now: Timestamp) -> Result<Subscription, Error> {
        let missing = |key: &str| Error::bad_request(CODE, format!("`{key}` is required"));
        let subscription = Subscription {
            id,
            org_id,
            project_id,
            name: self.name.clone().ok_or_else(|| missing("name"))?,
            url: self.url.clone().ok_or_else(|| missing("url"))?,
            headers: Map::new(),
            headers_not_secret: Vec::new(),
            active: true,
            events: self.events.clone().ok_or_else(|| missing("events"))?,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        self.apply(subscription, now)
    }

    /// The subscription with this document's keys changed (PATCH), checked whole. Setting
    /// `active` clears a recorded disable reason.
    pub fn apply(self, mut subscription: Subscription, now: Timestamp) -> Result<Subscription, Error> {
        if let Some(name) = self.name {
            subscription.name = name;
        }
        if let Some(url) = self.url {
            subscription.url = url;
        }
        if let Some(mut headers) = self.headers {
            // A masked value sent back keeps the stored one.
            for (name, value) in headers.iter_mut() {
                if value.as_str() == Some(MASKED_HEADER) && subscription.is_secret_header(name) {
                    match subscription.headers.get(name) {
                        Some(stored) => *value = stored.clone(),
                        None => {
                            return Err(Error::invalid(
                                CODE,
                                format!(
                                    "`headers.{name}` is `{MASKED_HEADER}`, the mask shown for a secret value, but the webhook \
                                     has no secret `{name}` to keep; send the value itself"
                                ),
                            ));
                        }
                    }
                }
            }
            subscription.headers = headers;
        }
        if let Some(not_secret) = self.headers_not_secret {
            for (i, name) in not_secret.iter().enumerate() {
                if !subscription.headers.keys().any(|h| h.eq_ignore_ascii_case(name)) {
                    // A document of the right shape whose names do not match: 422, as a relation to a
                    // missing blueprint is (the OpenAPI document cannot say which names exist).
                    return Err(Error::invalid(CODE, format!("`headersNotSecret[{i}]`: the webhook has no header `{name}`")));
                }
            }
            subscription.headers_not_secret = not_secret;
        }
        // Names of headers that are gone are forgotten.
        let headers = &subscription.headers;
        subscription.headers_not_secret.retain(|n| headers.keys().any(|h| h.eq_ignore_ascii_case(n)));
        if let Some(active) = self.active {
            subscription.active = active;
            subscription.disabled_reason = None;
        }
        if let Some(events) = self.events {
            subscription.events = events;
        }
        subscription.updated_at = now;
        check_subscription(&subscription)?;
        Ok(subscription)
    }
}

fn check_subscription(s: &Subscription) -> Result<(), Error> {
    length(&s.name, "name", 1, 100)?;
    check_url(&s.url)?;
    for (name, value) in &s.headers {
        let path = format!("headers.{name}");
        let Value::String(value) = value else {
            return Err(Error::bad_request(CODE, format!("`{path}` must be a string")));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(Error::bad_request(CODE, format!("`{path}`: `{name}` is not a valid HTTP header name")));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Error::bad_request(CODE, format!("`{path}`: Wharf sets `{name}` itself")));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Error::bad_request(CODE, format!("`{path}` must not contain line breaks")));
        }
    }
    if s.events.is_empty() {
        return Err(Error::bad_request(CODE, "`events` must list at least one event type or pattern (`*` for all)"));
    }
    for (i, pattern) in s.events.iter().enumerate() {
        check_published_event_type(pattern, &format!("events[{i}]"), true)?;
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), Error> {
    length(url, "url", 1, 2048)?;
    let parsed = url::Url::parse(url).map_err(|err| Error::bad_request(CODE, format!("`url` is not a URL ({err}): `{url}`")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(Error::bad_request(CODE, format!("`url` must be an http:// or https:// URL with a host, got `{url}`")));
    }
    Ok(())
}

/// Checks an event type (`deployment.build.created`) or, with `pattern`, a pattern (`*`
/// stands for one segment; a lone `*` for everything).
pub fn check_published_event_type(text: &str, path: &str, pattern: bool) -> Result<(), Error> {
    length(text, path, 1, 256)?;
    if pattern && text == "*" {
        return Ok(());
    }
    for segment in text.split('.') {
        let ok = (pattern && segment == "*")
            || (!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !ok {
            let what = if pattern { "an event type pattern" } else { "an event type" };
            return Err(Error::bad_request(
                CODE,
                format!(
                    "`{path}` is not {what}: `{text}` (dot-separated segments of letters, digits, `_` and `-`{})",
                    if pattern { "; `*` matches one segment" } else { "" }
                ),
            ));
        }
    }
    Ok(())
}

/// The type of the system event a change publishes, when it publishes one (SPEC §9):
/// `entity.<blueprint>.created|updated|deleted` for an entity's, `run.<action>.created|updated`
/// for a run's; a blueprint's publishes none.
pub fn system_event_type(change: &Change) -> Option<String> {
    let verb = system_event_verb(change.resource_type, change.action)?;
    match change.resource_type {
        ResourceType::Entity => Some(format!("entity.{}.{verb}", change.blueprint)),
        ResourceType::Run => Some(format!("run.{}.{verb}", change.run_action()?)),
        ResourceType::Blueprint => None,
    }
}

/// The last segment of the system event of a change of this kind and action.
fn system_event_verb(kind: ResourceType, action: ChangeAction) -> Option<&'static str> {
    match (kind, action) {
        (ResourceType::Blueprint, _) => None,
        (_, ChangeAction::Create) => Some("created"),
        (ResourceType::Entity, ChangeAction::Update) => Some("updated"),
        (ResourceType::Entity, ChangeAction::Delete) => Some("deleted"),
        (ResourceType::Run, ChangeAction::Update | ChangeAction::Delete) => Some("updated"),
    }
}

/// Whether a subscription with these `events` patterns may receive the system event of a
/// change known only by its head: its kind, action and blueprint. Exactly for an entity's; for
/// a run's, whose action identifier the head does not hold, whether a pattern matches
/// `run.<some action>.<verb>`. It errs towards yes: whenever [`subscribes_to`] accepts
/// [`system_event_type`] of a change, this accepts the change's head.
pub fn may_receive_system_event(patterns: &[String], kind: ResourceType, action: ChangeAction, blueprint: &str) -> bool {
    let Some(verb) = system_event_verb(kind, action) else { return false };
    let wanted: [Option<&str>; 3] = match kind {
        ResourceType::Entity => [Some("entity"), Some(blueprint), Some(verb)],
        ResourceType::Run => [Some("run"), None, Some(verb)],
        ResourceType::Blueprint => return false,
    };
    patterns.iter().any(|pattern| {
        pattern == "*" || {
            let segments: Vec<&str> = pattern.split('.').collect();
            segments.len() == wanted.len() && segments.iter().zip(wanted).all(|(p, t)| *p == "*" || t.is_none_or(|t| *p == t))
        }
    })
}

/// Whether a subscription with these `events` patterns receives events of `event_type`.
pub fn subscribes_to(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|pattern| pattern_matches(pattern, event_type))
}

/// Whether an event-type pattern matches a type: segment by segment, `*` matching any one
/// segment; a lone `*` matches every type.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (mut p, mut t) = (pattern.split('.'), event_type.split('.'));
    loop {
        match (p.next(), t.next()) {
            (None, None) => return true,
            (Some(p), Some(t)) if p == "*" || p == t => {}
            _ => return false,
        }
    }
}

/// An event published to a project: by `POST …/events`, or by Wharf itself (system events).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedEvent {
    /// Also the `webhook-id` of every delivery of it, so receivers can deduplicate.
    pub id: String,
    pub event_type: String,
    pub timestamp: Timestamp,
    /// The exact body every subscriber receives: `{"type","timestamp","data"}`.
    pub payload: String,
}

/// The response to a publish: `{"id","type","timestamp","deliveries"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PublishReceipt {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: Timestamp,
    /// How many deliveries the event made (one per matching active subscription).
    pub deliveries: usize,
}

/// The body of `POST …/events`.
#[derive(Debug, Clone)]
pub struct PublishInput {
    pub event_type: String,
    /// `data` as compact JSON text, exactly as it goes into the payload.
    pub data_json: String,
    pub id: Option<String>,
}

impl PublishInput {
    /// The hot path of a publish: takes a well-formed document apart straight from its bytes,
    /// writing `data` out compactly as it is read (no tree of values is built, copied or
    /// dropped). The text is what [`PublishInput::parse`] gives for the same document.
    ///
    /// `None` when the bytes are not a JSON object of exactly `type`, `data` and `id` with the
    /// right types, each key once: the caller parses them as a value and hands that to
    /// [`PublishInput::parse`], whose error says what is wrong (or which accepts a repeated
    /// key, keeping its last value, as every JSON document parsed elsewhere does).
    pub fn from_slice(body: &[u8]) -> Option<Result<Self, Error>> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Plain {
            #[serde(rename = "type")]
            event_type: String,
            data: CompactJson,
            #[serde(default)]
            id: Option<String>,
        }
        // serde's derived structs also accept an array of the fields in order.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let plain: Plain = serde_json::from_slice(body).ok()?;
        let input = Self { event_type: plain.event_type, data_json: plain.data.0, id: plain.id };
        Some(input.checked())
    }

    /// Takes the document apart by hand rather than through serde: deserializing a `Value`
    /// field from a `Value` rebuilds it whole, and `data` is the largest part of a publish.
    /// Here it is moved, never copied.
    pub fn parse(doc: Value) -> Result<Self, Error> {
        let invalid = |message: String| Error::bad_request(CODE, format!("invalid event{message}"));
        let Value::Object(mut doc) = doc else {
            return Err(Error::bad_request(CODE, "the event must be a JSON object"));
        };
        if let Some(key) = doc.keys().find(|key| !matches!(key.as_str(), "type" | "data" | "id")) {
            return Err(invalid(format!(": unknown field `{key}`, expected one of `type`, `data`, `id`")));
        }
        let string = |key: &str, value: Value| match value {
            Value::String(text) => Ok(text),
            other => Err(invalid(format!(" at `{key}`: expected a string, got {}", crate::json::type_name(&other)))),
        };
        let event_type = string("type", doc.remove("type").ok_or_else(|| invalid(": missing field `type`".into()))?)?;
        let data = doc.remove("data").ok_or_else(|| invalid(": missing field `data`".into()))?;
        let id = match doc.remove("id") {
            None | Some(Value::Null) => None,
            Some(id) => Some(string("id", id)?),
        };
        Self { event_type, data_json: data.to_string(), id }.checked()
    }

    fn checked(self) -> Result<Self, Error> {
        check_published_event_type(&self.event_type, "type", false)?;
        if let Some(id) = &self.id {
            check_published_event_id(id)?;
        }
        Ok(self)
    }
}

/// Any JSON value, read and written back as compact JSON text in one pass (serde-transcode
/// drives the serializer from the deserializer's events), byte for byte what serializing
/// the parsed [`Value`] gives, except that a repeated key is kept as often as it was sent.
struct CompactJson(String);

impl<'de> Deserialize<'de> for CompactJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut out = Vec::with_capacity(512);
        serde_transcode::transcode(deserializer, &mut serde_json::Serializer::new(&mut out)).map_err(D::Error::custom)?;
        // serde_json writes UTF-8 only; the check is a scan, not a copy.
        String::from_utf8(out).map(CompactJson).map_err(D::Error::custom)
    }
}

/// An event id is sent as the `webhook-id` header: 1–256 characters of letters, digits and
/// `_-.:`.
fn check_published_event_id(id: &str) -> Result<(), Error> {
    length(id, "id", 1, 256)?;
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)) {
        return Err(Error::bad_request(CODE, format!("`id` may hold letters, digits and `_-.:` only, got `{id}`")));
    }
    Ok(())
}

impl PublishedEvent {
    /// The event and the body its subscribers receive: compact JSON, keys in this order,
    /// `data` as given (integers stay integers, `/` and non-ASCII are not escaped).
    pub fn new(id: String, event_type: String, data: &Value, timestamp: Timestamp) -> Self {
        Self::with_data_json(id, event_type, &data.to_string(), timestamp)
    }

    /// [`PublishedEvent::new`] for `data` already written as compact JSON text (a publish's
    /// [`PublishInput::data_json`]).
    pub fn with_data_json(id: String, event_type: String, data_json: &str, timestamp: Timestamp) -> Self {
        let iso = timestamp.to_iso();
        let mut payload = String::with_capacity(48 + event_type.len() + iso.len() + data_json.len());
        payload.push_str(r#"{"type":"#);
        // A string always serializes.
        payload.push_str(&serde_json::to_string(&event_type).expect("strings serialize"));
        payload.push_str(r#","timestamp":""#);
        payload.push_str(&iso);
        payload.push_str(r#"","data":"#);
        payload.push_str(data_json);
        payload.push('}');
        Self { id, event_type, timestamp, payload }
    }

    /// The response to a publish, before the deliveries are known.
    pub fn receipt(&self) -> PublishReceipt {
        PublishReceipt { id: self.id.clone(), event_type: self.event_type.clone(), timestamp: self.timestamp, deliveries: 0 }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_change_publishes_its_system_event_and_its_head_says_who_may_receive_it() {
        use crate::change::Trigger;
        let trigger = Trigger::api("org", "client", Timestamp::from_millis(0));
        let run = json!({"id": "r_1", "action": {"identifier": "deploy"}});
        let changes = [
            Change::with_id("chg_1".into(), ResourceType::Entity, "service", Some("api"), &trigger, None, Some(json!({}))),
            Change::with_id(
                "chg_1".into(),
                ResourceType::Entity,
                "service",
                Some("api"),
                &trigger,
                Some(json!({})),
                Some(json!({})),
            ),
            Change::with_id("chg_1".into(), ResourceType::Entity, "team", Some("a"), &trigger, Some(json!({})), None),
            Change::with_id("chg_1".into(), ResourceType::Run, "service", None, &trigger, None, Some(run.clone())),
            Change::with_id("chg_1".into(), ResourceType::Run, "", None, &trigger, Some(run.clone()), Some(run)),
            Change::with_id("chg_1".into(), ResourceType::Blueprint, "service", None, &trigger, None, Some(json!({}))),
        ];
        let types: Vec<Option<String>> = changes.iter().map(system_event_type).collect();
        let expected = [
            "entity.service.created",
            "entity.service.updated",
            "entity.team.deleted",
            "run.deploy.created",
            "run.deploy.updated",
        ];
        assert_eq!(types[..5].iter().map(|t| t.as_deref().unwrap()).collect::<Vec<_>>(), expected);
        assert_eq!(types[5], None, "a blueprint's change publishes nothing");
        let patterns = [
            "*",
            "entity.*.*",
            "entity.service.*",
            "entity.service.updated",
            "*.*.created",
            "run.*.*",
            "run.deploy.*",
            "run.other.*",
            "run.*.updated",
            "entity.team.created",
            "service.*",
            "*.service.deleted",
        ];
        let mut received = 0;
        for pattern in patterns {
            let one = [pattern.to_owned()];
            for (change, event_type) in changes.iter().zip(&types) {
                let head = may_receive_system_event(&one, change.resource_type, change.action, &change.blueprint);
                if event_type.as_deref().is_some_and(|t| subscribes_to(&one, t)) {
                    received += 1;
                    assert!(head, "`{pattern}` receives {event_type:?}, but the head is passed over");
                }
            }
        }
        assert_eq!(received, 18, "the patterns that receive each event");
        // What a head alone rules out.
        let head =
            |pattern: &str, kind, action, blueprint| may_receive_system_event(&[pattern.to_owned()], kind, action, blueprint);
        assert!(!head("entity.team.*", ResourceType::Entity, ChangeAction::Update, "service"));
        assert!(!head("entity.*.*", ResourceType::Run, ChangeAction::Create, ""));
        assert!(!head("run.*.created", ResourceType::Run, ChangeAction::Update, ""));
        assert!(!head("*", ResourceType::Blueprint, ChangeAction::Create, "service"));
        assert!(head("run.deploy.updated", ResourceType::Run, ChangeAction::Update, ""), "any action may be `deploy`");
        assert!(!may_receive_system_event(&[], ResourceType::Entity, ChangeAction::Create, "service"), "no subscription");
    }

    use super::*;

    #[test]
    fn patterns_match_by_segment() {
        assert!(pattern_matches("*", "entity.service.created"));
        assert!(pattern_matches("entity.*.created", "entity.service.created"));
        assert!(pattern_matches("deployment.build.created", "deployment.build.created"));
        assert!(!pattern_matches("entity.*", "entity.service.created"));
        assert!(!pattern_matches("entity.*.created", "entity.service.updated"));
        assert!(!pattern_matches("entity.service.created.x", "entity.service.created"));
        assert!(check_published_event_type("entity.*.created", "events[0]", true).is_ok());
        assert!(check_published_event_type("entity.*.created", "type", false).is_err());
        assert!(check_published_event_type("a..b", "type", false).is_err());
    }

    #[test]
    fn subscriptions_are_checked_whole() {
        let doc = json!({"name": "n", "url": "ftp://x", "events": ["a"]});
        let err = SubscriptionInput::parse(doc).unwrap().create("1".into(), "o".into(), "p".into(), Timestamp::from_millis(0));
        assert!(err.unwrap_err().message.contains("http://"));
        let doc = json!({"name": "n", "url": "https://x.example", "events": []});
        let err = SubscriptionInput::parse(doc).unwrap().create("1".into(), "o".into(), "p".into(), Timestamp::from_millis(0));
        assert!(err.unwrap_err().message.contains("events"));
        let doc = json!({"name": "n", "url": "https://x.example", "events": ["*"], "headers": {"Webhook-Id": "x"}});
        let err = SubscriptionInput::parse(doc).unwrap().create("1".into(), "o".into(), "p".into(), Timestamp::from_millis(0));
        assert!(err.unwrap_err().message.contains("sets `Webhook-Id` itself"));
        assert!(SubscriptionInput::parse(json!({"nme": "x"})).unwrap_err().message.contains("nme"));
    }

    #[test]
    fn header_values_are_secret_unless_marked() {
        let at = Timestamp::from_millis(0);
        let doc = json!({"name": "n", "url": "https://x.example", "events": ["*"],
            "headers": {"Authorization": "Bearer s3cret", "X-Tenant": "acme"}, "headersNotSecret": ["x-tenant"]});
        let sub = SubscriptionInput::parse(doc).unwrap().create("1".into(), "o".into(), "p".into(), at).unwrap();
        let shown = sub.to_json();
        assert_eq!(shown["headers"], json!({"Authorization": MASKED_HEADER, "X-Tenant": "acme"}));
        assert_eq!(shown["headersNotSecret"], json!(["x-tenant"]));
        // Stored: sealed and clear forms; read back whole.
        let stored = sub.stored_headers(|v| format!("sealed({v})"));
        assert_eq!(
            stored,
            *json!({"Authorization": {"sealed": "sealed(Bearer s3cret)"}, "X-Tenant": {"value": "acme"}}).as_object().unwrap()
        );
        let open = |v: &str| -> Result<String, ()> { Ok(v.trim_start_matches("sealed(").trim_end_matches(')').to_owned()) };
        let (clear, not_secret) = open_stored_headers(&stored, open).unwrap();
        assert_eq!((clear, not_secret), (sub.headers.clone(), vec!["X-Tenant".to_owned()]));
        assert_eq!(stored_header_value(&stored["Authorization"], open), Some(Ok("Bearer s3cret".into())));
        assert_eq!(stored_header_value(&json!("legacy"), open), Some(Ok("legacy".into())));
        // A masked value sent back keeps the secret; a mask for a header it lacks is refused.
        let echo = json!({"headers": {"Authorization": MASKED_HEADER, "X-Tenant": "globex"}});
        let patched = SubscriptionInput::parse(echo).unwrap().apply(sub.clone(), at).unwrap();
        assert_eq!(patched.headers["Authorization"], "Bearer s3cret");
        assert_eq!(patched.headers["X-Tenant"], "globex");
        let unknown = json!({"headers": {"X-Api-Key": MASKED_HEADER}});
        let err = SubscriptionInput::parse(unknown).unwrap().apply(sub.clone(), at).unwrap_err();
        assert!(err.message.contains("headers.X-Api-Key"), "{}", err.message);
        let err = SubscriptionInput::parse(json!({"headersNotSecret": ["X-Nope"]})).unwrap().apply(sub, at).unwrap_err();
        assert!(err.message.contains("headersNotSecret[0]"), "{}", err.message);
    }

    #[test]
    fn publishes_are_checked() {
        let parse = |doc| PublishInput::parse(doc).map_err(|e| e.message);
        let input = parse(json!({"type": "a.b", "data": {"x": [1]}, "id": "e-1"})).unwrap();
        assert_eq!(
            (input.event_type.as_str(), input.data_json.as_str(), input.id.as_deref()),
            ("a.b", r#"{"x":[1]}"#, Some("e-1"))
        );
        assert_eq!(parse(json!({"type": "a.b", "data": null, "id": null})).unwrap().id, None);
        assert_eq!(parse(json!([])).unwrap_err(), "the event must be a JSON object");
        assert_eq!(
            parse(json!({"type": "a.b", "data": 1, "kind": 2})).unwrap_err(),
            "invalid event: unknown field `kind`, expected one of `type`, `data`, `id`"
        );
        assert_eq!(parse(json!({"data": 1})).unwrap_err(), "invalid event: missing field `type`");
        assert_eq!(parse(json!({"type": "a.b"})).unwrap_err(), "invalid event: missing field `data`");
        assert_eq!(parse(json!({"type": 1, "data": 1})).unwrap_err(), "invalid event at `type`: expected a string, got number");
        assert_eq!(
            parse(json!({"type": "a.b", "data": 1, "id": 7})).unwrap_err(),
            "invalid event at `id`: expected a string, got number"
        );
        assert!(parse(json!({"type": "a..b", "data": 1})).unwrap_err().contains("type"));
        assert!(parse(json!({"type": "a.b", "data": 1, "id": "a b"})).unwrap_err().contains("`id` may hold"));
    }

    #[test]
    fn publishes_read_from_bytes_match_publishes_read_from_values() {
        let documents = [
            r#"{"type":"a.b","data":{"x":[1,2.5,-0,1e2,18446744073709551615,-9223372036854775808],"y":null}}"#,
            "{ \"id\" : \"e-1\" ,\n \"type\": \"invoice.paid\",\n  \"data\": {\n    \"name\": \"caf\\u00e9 \\\"q\\\" \\/ \\n\",\n    \"ok\": true\n  }\n}",
            r#"{"type":"a.b","data":"text","id":null}"#,
            r#"{"data":[{"a":{"b":[]}},{}],"type":"a.b"}"#,
        ];
        for text in documents {
            let fast = PublishInput::from_slice(text.as_bytes()).expect("a plain document").expect("a valid one");
            let slow = PublishInput::parse(serde_json::from_str(text).unwrap()).unwrap();
            assert_eq!((&fast.event_type, &fast.data_json, &fast.id), (&slow.event_type, &slow.data_json, &slow.id), "{text}");
        }
        let fast = PublishInput::from_slice(br#"{"type":"a.b","data":{"k": "\u00e9\/"}}"#).unwrap().unwrap();
        assert_eq!(fast.data_json, r#"{"k":"é/"}"#);
    }

    #[test]
    fn publishes_that_are_not_plain_are_left_to_the_value_path() {
        let not_plain = [
            "",
            "[]",
            r#"["a.b", {}, "e-1"]"#,
            r#"{"type":"a.b"}"#,
            r#"{"type":"a.b","data":1,"kind":2}"#,
            r#"{"type":1,"data":1}"#,
            r#"{"type":"a.b","data":1,"id":7}"#,
            r#"{"type":"a.b","type":"c.d","data":1}"#,
            r#"{"type":"a.b","data":{"x":}}"#,
        ];
        for text in not_plain {
            assert!(PublishInput::from_slice(text.as_bytes()).is_none(), "{text}");
        }
        let refused = PublishInput::from_slice(br#"{"type":"a..b","data":1}"#).expect("plain").unwrap_err();
        let by_value = PublishInput::parse(json!({"type": "a..b", "data": 1})).unwrap_err();
        assert_eq!(refused.message, by_value.message);
        assert!(
            PublishInput::from_slice(br#"{"type":"a.b","data":1,"id":"a b"}"#)
                .unwrap()
                .unwrap_err()
                .message
                .contains("`id` may hold")
        );
    }

    #[test]
    fn the_payload_is_exact() {
        let data = json!({"n": 1, "url": "https://a/b", "name": "café", "f": 1.5});
        let event = PublishedEvent::new("e1".into(), "a.b".into(), &data, Timestamp::from_millis(0));
        assert_eq!(
            event.payload,
            r#"{"type":"a.b","timestamp":"1970-01-01T00:00:00.000Z","data":{"n":1,"url":"https://a/b","name":"café","f":1.5}}"#
        );
    }

    #[test]
    fn projects_are_checked() {
        let now = Timestamp::from_millis(0);
        let create = |doc| ProjectInput::parse(doc).and_then(|i| i.create("1".into(), "o".into(), now));
        assert_eq!(create(json!({"name": "Shop", "slug": "shop"})).unwrap().status, "draft");
        assert!(create(json!({"name": "Shop", "slug": "Shop"})).unwrap_err().message.contains("slug"));
        assert!(create(json!({"name": "S", "slug": "shop"})).unwrap_err().message.contains("`name` must be 2 to 100"));
        assert!(create(json!({"slug": "shop"})).unwrap_err().message.contains("`name` is required"));
        assert!(create(json!({"name": "Shop", "slug": "shop", "status": "x"})).unwrap_err().message.contains("status"));
    }
}
