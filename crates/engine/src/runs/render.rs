//! Rendering an action's invocation for one run: Port's `{{ }}` templates over the run's
//! context (reference §3.4) plus `.secrets`, one budget for the whole invocation. What is
//! sent keeps the secrets in clear and is sealed before it is stored; what the run shows
//! (`payload`) is masked.
//!
//! Runs on a jq thread ([`crate::jq_pool`]): callers hand it owned values.
//!
//! [`preview`] is the same rendering for `wharf render --action`, over a context that
//! [`preview_context`] completes: what a run would send, shown before any run exists.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wharf_core::action::{ActionDef, ActionTrigger, Invocation};
use wharf_core::crypto::MasterKey;
use wharf_core::run::{
    NewRun, Request, Run, RunSource, context, default_body, payload_of, rendered_flag, trigger_context, upsert_payload,
};
use wharf_core::secret::{SecretValue, SecretValues, mask_json};
use wharf_core::time::Timestamp;
use wharf_ids::Seal;
use wharf_jq::ProgramCache;
use wharf_jq::template::{RENDER_LIMITS, Renderer};

/// What a run does, rendered.
#[derive(Debug)]
pub(crate) enum Rendered {
    /// A WEBHOOK request, and the secrets it holds (to mask what comes back).
    Webhook { request: Request, secrets: Vec<(String, SecretValue)>, payload: Value },
    /// An UPSERT_ENTITY write of `entity` into `blueprint`.
    Upsert { blueprint: String, entity: Value, payload: Value },
}

/// What is sealed into `run_requests.request_sealed`: the request as sent and the secrets it
/// holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct SealedRequest {
    pub request: Request,
    pub secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for SealedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRequest").finish_non_exhaustive()
    }
}

impl SealedRequest {
    /// The request and the secrets it holds ([`held_secrets`]).
    pub fn of(request: Request, held: Vec<(String, SecretValue)>) -> Self {
        Self { request, secrets: held.into_iter().map(|(name, value)| (name, value.expose().to_owned())).collect() }
    }

    /// Sealed with the master key, as it is stored.
    pub fn seal(&self, master: &MasterKey) -> String {
        // A request and names and values of strings always serialize.
        master.seal(&serde_json::to_string(self).unwrap_or_default())
    }

    /// Opened from what [`SealedRequest::seal`] stored; why not, when it cannot be.
    pub fn open(master: &MasterKey, sealed: &str) -> Result<Self, String> {
        let text = master.open(sealed).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    pub fn masks(&self) -> SecretValues {
        self.secrets.iter().map(|(name, value)| (name.clone(), SecretValue::new(value.clone()))).collect()
    }
}

/// Renders `def`'s invocation over `context` (which has no `.secrets` yet) and `secrets`.
/// An error says which part failed.
pub(crate) fn render(
    def: &ActionDef,
    context: &Value,
    secrets: &SecretValues,
    programs: &ProgramCache,
) -> Result<Rendered, String> {
    render_noting(def, context, secrets, programs, &mut Vec::new())
}

/// [`render`], noting in `nulls` each jq error that rendered as `null` (`` `path`: `expression`
/// rendered as null: message ``), secrets in clear.
fn render_noting(
    def: &ActionDef,
    context: &Value,
    secrets: &SecretValues,
    programs: &ProgramCache,
    nulls: &mut Vec<String>,
) -> Result<Rendered, String> {
    let mut full = context.clone();
    full["secrets"] = secrets.context();
    let budgeted = wharf_jq::with_budget(RENDER_LIMITS, || render_in(def, &full, secrets, programs, nulls));
    if let Some(exceeded) = budgeted.exceeded {
        return Err(format!("rendering the invocation crossed its budget: {}", exceeded.message()));
    }
    budgeted.value
}

fn render_in(
    def: &ActionDef,
    context: &Value,
    secrets: &SecretValues,
    programs: &ProgramCache,
    nulls: &mut Vec<String>,
) -> Result<Rendered, String> {
    let mut template = |value: &Value, path: &str| -> Result<Value, String> {
        let rendered = Renderer::new(programs, context).render(value).map_err(|e| format!("`{path}`: {e}"))?;
        for failure in &rendered.errors {
            let message = failure.error.to_string();
            let message = message.lines().next().unwrap_or_default();
            nulls.push(format!("`{path}`: `{}` rendered as null: {message}", failure.expression.trim()));
        }
        Ok(rendered.value.unwrap_or(Value::Null))
    };
    match &def.invocation {
        Invocation::Webhook { url, agent, synchronized, method, headers, body } => {
            let url = match template(&Value::String(url.clone()), "invocationMethod.url")? {
                Value::String(url) => url,
                other => return Err(format!("`invocationMethod.url` rendered to {other}, not a URL")),
            };
            let synchronized =
                rendered_flag(&template(synchronized, "invocationMethod.synchronized")?, "invocationMethod.synchronized")?;
            let agent = rendered_flag(&template(agent, "invocationMethod.agent")?, "invocationMethod.agent")?;
            let mut sent_headers = Vec::with_capacity(headers.len() + 1);
            for (name, value) in headers {
                match template(value, &format!("invocationMethod.headers.{name}"))? {
                    Value::Null => {}
                    Value::String(text) => sent_headers.push((name.clone(), text)),
                    other => sent_headers.push((name.clone(), other.to_string())),
                }
            }
            let body_template = body.clone().unwrap_or_else(|| default_body(def));
            let body_value = template(&body_template, "invocationMethod.body")?;
            let method = method.name().to_owned();
            let body_text = (method != "GET").then(|| body_value.to_string());
            if body_text.is_some() && !sent_headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                sent_headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            }
            let request = Request { method, url, headers: sent_headers, body: body_text, synchronized, agent };
            let mut payload = payload_of(&request, body_text_value(&request, body_value).as_ref());
            mask_json(&mut payload, secrets);
            let secrets = held_secrets(&request, secrets);
            Ok(Rendered::Webhook { request, secrets, payload })
        }
        Invocation::UpsertEntity { blueprint, mapping } => {
            let blueprint = match template(&Value::String(blueprint.clone()), "invocationMethod.blueprintIdentifier")? {
                Value::String(name) => name,
                other => return Err(format!("`invocationMethod.blueprintIdentifier` rendered to {other}, not a name")),
            };
            let entity = template(mapping, "invocationMethod.mapping")?;
            if !entity.is_object() {
                return Err(format!("`invocationMethod.mapping` rendered to {entity}, not an entity object"));
            }
            let mut payload = upsert_payload(&blueprint, &entity);
            mask_json(&mut payload, secrets);
            Ok(Rendered::Upsert { blueprint, entity, payload })
        }
    }
}

/// The body as the payload shows it: the value sent (none for a GET).
fn body_text_value(request: &Request, body: Value) -> Option<Value> {
    request.body.as_ref().map(|_| body)
}

/// The secrets whose value the request holds, in any form `mask` knows.
pub(crate) fn held_secrets(request: &Request, secrets: &SecretValues) -> Vec<(String, SecretValue)> {
    if secrets.is_empty() {
        return Vec::new();
    }
    let mut text = request.url.clone();
    for (name, value) in &request.headers {
        text.push_str(name);
        text.push_str(value);
    }
    text.push_str(request.body.as_deref().unwrap_or_default());
    secrets
        .names()
        .filter_map(|name| {
            let value = secrets.get(name)?;
            let one: SecretValues = [(name.to_owned(), value.clone())].into_iter().collect();
            (one.mask(&text) != text).then(|| (name.to_owned(), value.clone()))
        })
        .collect()
}

/// The run id a preview renders with when its context names none.
pub const PREVIEW_RUN_ID: &str = "r_preview";
/// The organization and user a preview's `.trigger` names when its context gives no trigger.
pub const PREVIEW_ORG_ID: &str = "org_preview";
pub const PREVIEW_USER_ID: &str = "preview";

/// The keys of a template context (reference §3.4); `.secrets` comes from the secrets given.
const CONTEXT_KEYS: [&str; 6] = ["inputs", "trigger", "event", "entity", "action", "run"];

/// Completes a preview's context as a run of `def` started at `at` would have it (reference
/// §3.4, the shape [`context`] builds for real runs): every key `given` has replaces Wharf's,
/// except that a self-service action's `.inputs` are checked against its `userInputs` with
/// their defaults filled in, as `POST /v1/actions/{id}/runs` does (an invalid input is an
/// error naming it; whether the entities inputs name exist is not checked). What `given`
/// lacks: `.run.id` [`PREVIEW_RUN_ID`]; `.action` `{identifier, blueprint,
/// encryptedProperties: []}` (`{identifier}` for automations); `.trigger` an API call by
/// [`PREVIEW_USER_ID`] of [`PREVIEW_ORG_ID`] at `at` (`origin: "AUTOMATION"` for
/// automations); `.entity` `{}` (`null` for automations); `.inputs` `{}` and defaults
/// (`null` for automations); `.event` `null`.
pub fn preview_context(def: &ActionDef, given: &Value, at: Timestamp) -> Result<Value, String> {
    let Value::Object(given) = given else {
        return Err(format!("the context must be a JSON object, not {}", wharf_core::json::type_name(given)));
    };
    if given.contains_key("secrets") {
        return Err("`secrets`: give secrets in their own file (--secrets), so that they are masked".to_owned());
    }
    if let Some(key) = given.keys().find(|k| !CONTEXT_KEYS.contains(&k.as_str())) {
        let known: Vec<String> = CONTEXT_KEYS.iter().map(|k| format!("`{k}`")).collect();
        return Err(format!("`{key}` is not a key of an action's template context; it has {}", known.join(", ")));
    }
    let entity = given.get("entity").filter(|e| !e.is_null()).cloned();
    let (properties, trigger) = match def.trigger {
        ActionTrigger::SelfService { operation, .. } => {
            let inputs = given.get("inputs").cloned().unwrap_or(Value::Null);
            let checked = wharf_core::run_inputs::check_inputs(def.document(), &inputs, &json!({"entity": entity}))
                .map_err(|err| err.message)?;
            let trigger = trigger_context(PREVIEW_ORG_ID, PREVIEW_USER_ID, None, RunSource::Api, at, Some(operation));
            (checked.values, trigger)
        }
        ActionTrigger::Automation { .. } => {
            let trigger = json!({"by": {"orgId": PREVIEW_ORG_ID, "userId": PREVIEW_USER_ID}, "origin": "AUTOMATION", "at": at});
            (Map::new(), trigger)
        }
    };
    let run = Run::new(NewRun {
        id: PREVIEW_RUN_ID.to_owned(),
        action: def,
        blueprint: None,
        entity,
        properties,
        raw_properties: Map::new(),
        source: RunSource::Api,
        by: PREVIEW_USER_ID.to_owned(),
        impersonated_by: None,
        chain_depth: 0,
        at,
    });
    let mut full = context(&run, def, trigger, None);
    let automation = matches!(def.trigger, ActionTrigger::Automation { .. });
    for (key, value) in given {
        if key != "inputs" || automation {
            full[key.as_str()] = value.clone();
        }
    }
    Ok(full)
}

/// What a run of an action would do, rendered by the engine's own rendering ([`preview`]).
#[derive(Debug, Clone)]
pub enum Previewed {
    /// A WEBHOOK request: `sent` as Wharf would send it, secrets in clear (to sign it: never
    /// show it), `shown` with every secret value masked `****`, and the names of the secrets
    /// it holds. Port's `X-Port-Timestamp`/`X-Port-Signature` are not in either: they are
    /// added at each send.
    Webhook { sent: Request, shown: Request, held: Vec<String> },
    /// An UPSERT_ENTITY write of `entity` (secrets masked) into `blueprint`, merged into the
    /// entity when it exists.
    Upsert { blueprint: String, entity: Value },
}

/// A preview: what the run would do, and the jq errors that rendered as `null` (secrets
/// masked), which a run does not stop at.
#[derive(Debug, Clone)]
pub struct Preview {
    pub previewed: Previewed,
    pub nulls: Vec<String>,
}

/// Renders `def`'s invocation over `context` (complete, as [`preview_context`] makes it,
/// without `.secrets`) and `secrets`, exactly as a run renders it: the same templates, default
/// body, headers and budget. An error says which part failed. Runs jq: call it on a thread
/// with a large stack.
pub fn preview(def: &ActionDef, context: &Value, secrets: &SecretValues) -> Result<Preview, String> {
    let programs = ProgramCache::default();
    let mut nulls = Vec::new();
    let rendered = render_noting(def, context, secrets, &programs, &mut nulls).map_err(|why| secrets.mask(&why))?;
    let nulls = nulls.iter().map(|null| secrets.mask(null)).collect();
    let previewed = match rendered {
        Rendered::Webhook { request, secrets: held, .. } => {
            let shown = Request {
                url: secrets.mask(&request.url),
                headers: request.headers.iter().map(|(name, value)| (secrets.mask(name), secrets.mask(value))).collect(),
                body: request.body.as_deref().map(|body| secrets.mask(body)),
                ..request.clone()
            };
            Previewed::Webhook { sent: request, shown, held: held.into_iter().map(|(name, _)| name).collect() }
        }
        Rendered::Upsert { blueprint, mut entity, .. } => {
            mask_json(&mut entity, secrets);
            Previewed::Upsert { blueprint: secrets.mask(&blueprint), entity }
        }
    };
    Ok(Preview { previewed, nulls })
}

/// A run's inputs object as `Map` (the context's `.inputs`).
pub(crate) fn as_map(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(doc: Value) -> ActionDef {
        ActionDef::parse(doc, None).unwrap()
    }

    #[test]
    fn a_preview_context_is_a_runs_with_what_is_given() {
        let deploy = action(json!({
            "identifier": "deploy",
            "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                        "userInputs": {"properties": {"v": {"type": "string", "default": "1"}}}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://x.example"}
        }));
        let at = Timestamp::from_millis(1_000);
        let context = preview_context(&deploy, &json!({"entity": {"identifier": "api"}}), at).unwrap();
        assert_eq!(context["inputs"], json!({"v": "1"}), "defaults filled in");
        assert_eq!(context["run"], json!({"id": PREVIEW_RUN_ID}));
        assert_eq!(context["action"], json!({"identifier": "deploy", "blueprint": "service", "encryptedProperties": []}));
        assert_eq!(context["trigger"]["operation"], "DAY-2");
        assert_eq!(context["trigger"]["at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(context["entity"]["identifier"], "api");
        let given = preview_context(&deploy, &json!({"run": {"id": "r_x"}, "inputs": {"v": "2"}}), at).unwrap();
        assert_eq!((given["run"]["id"].as_str(), given["inputs"]["v"].as_str()), (Some("r_x"), Some("2")));
        assert!(preview_context(&deploy, &json!({"inputs": {"w": 1}}), at).unwrap_err().contains("inputs.w"));
        assert!(preview_context(&deploy, &json!({"secrets": {}}), at).unwrap_err().contains("--secrets"));

        let automation = action(json!({
            "identifier": "notify",
            "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"}},
            "invocationMethod": {"type": "WEBHOOK", "url": "https://x.example"}
        }));
        let context = preview_context(&automation, &json!({"event": {"action": "UPDATE"}}), at).unwrap();
        assert_eq!((context["inputs"].clone(), context["entity"].clone()), (Value::Null, Value::Null));
        assert_eq!(context["trigger"]["origin"], "AUTOMATION");
        assert_eq!(context["event"], json!({"action": "UPDATE"}));
        let preview = preview(&automation, &context, &SecretValues::default()).unwrap();
        let Previewed::Webhook { sent, .. } = preview.previewed else { panic!("a webhook") };
        assert_eq!(sent.body.as_deref(), Some(r#"{"event":{"action":"UPDATE"},"port_context":{"runId":"r_preview"}}"#));
    }
}
