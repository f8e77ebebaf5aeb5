//! Rendering an action's invocation for one run: Port's `{{ }}` templates over the run's
//! context (reference §3.4) plus `.secrets`, one budget for the whole invocation. What is
//! sent keeps the secrets in clear and is sealed before it is stored; what the run shows
//! (`payload`) is masked.
//!
//! Runs on a jq thread ([`crate::jq_pool`]): callers hand it owned values.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wharf_core::action::{ActionDef, Invocation};
use wharf_core::run::{Request, default_body, payload_of, rendered_flag, upsert_payload};
use wharf_core::secret::{SecretValue, SecretValues, mask_json};
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
    let mut full = context.clone();
    full["secrets"] = secrets.context();
    let budgeted = wharf_jq::with_budget(RENDER_LIMITS, || render_in(def, &full, secrets, programs));
    if let Some(exceeded) = budgeted.exceeded {
        return Err(format!("rendering the invocation crossed its budget: {}", exceeded.message()));
    }
    budgeted.value
}

fn render_in(def: &ActionDef, context: &Value, secrets: &SecretValues, programs: &ProgramCache) -> Result<Rendered, String> {
    let template = |value: &Value, path: &str| -> Result<Value, String> {
        let rendered = Renderer::new(programs, context).render(value).map_err(|e| format!("`{path}`: {e}"))?;
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
fn held_secrets(request: &Request, secrets: &SecretValues) -> Vec<(String, SecretValue)> {
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

/// A run's inputs object as `Map` (the context's `.inputs`).
pub(crate) fn as_map(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}
