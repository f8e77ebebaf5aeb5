//! What a node does, worked out on a jq thread ([`crate::jq_pool`]): its `config` templates
//! rendered over the node run's context plus `.secrets` (one budget per node), a CONDITION's
//! outlets evaluated in order, and a node's `variables` rendered over its raw output.
//! Callers hand it owned values.

use serde_json::{Map, Value};
use wharf_core::run::{Request, payload_of};
use wharf_core::secret::{SecretValues, mask_json};
use wharf_core::workflow::{Node, NodeConfig};
use wharf_jq::ProgramCache;
use wharf_jq::template::{RENDER_LIMITS, Renderer};

/// What a node does, rendered.
#[derive(Debug)]
pub(crate) enum Work {
    /// Send this request; `shown` is it masked (`{method, url, headers, body}`).
    Send { request: Request, shown: Value },
    /// Write this entity into `blueprint` (its identifier filled in).
    Upsert { blueprint: String, entity: Value },
    /// The CONDITION outlet that held (`None`: the fallback).
    Branch { outlet: Option<String> },
}

/// Renders `node`'s config over `context` (without `.secrets`) and `secrets`. An error says
/// which part failed, as the node run's failure message.
pub(crate) fn render_node(node: &Node, context: &Value, secrets: &SecretValues, programs: &ProgramCache) -> Result<Work, String> {
    let mut full = context.clone();
    full["secrets"] = secrets.context();
    let budgeted = wharf_jq::with_budget(RENDER_LIMITS, || render_in(node, &full, secrets, programs));
    if let Some(exceeded) = budgeted.exceeded {
        return Err(format!("rendering node `{}` crossed its budget: {}", node.identifier, exceeded.message()));
    }
    budgeted.value
}

fn template(programs: &ProgramCache, context: &Value, value: &Value, path: &str) -> Result<Value, String> {
    let rendered = Renderer::new(programs, context).render(value).map_err(|e| format!("`{path}`: {e}"))?;
    Ok(rendered.value.unwrap_or(Value::Null))
}

fn render_in(node: &Node, context: &Value, secrets: &SecretValues, programs: &ProgramCache) -> Result<Work, String> {
    match &node.config {
        NodeConfig::Webhook { url, method, headers, body, synchronized, agent, .. } => {
            let url = match template(programs, context, &Value::String(url.clone()), "config.url")? {
                Value::String(url) => url,
                other => return Err(format!("`config.url` rendered to {other}, not a URL")),
            };
            let mut sent_headers = Vec::with_capacity(headers.len() + 1);
            for (name, value) in headers {
                match template(programs, context, value, &format!("config.headers.{name}"))? {
                    Value::Null => {}
                    Value::String(text) => sent_headers.push((name.clone(), text)),
                    other => sent_headers.push((name.clone(), other.to_string())),
                }
            }
            let method = method.name().to_owned();
            let body_value = match body {
                Some(body) => Some(template(programs, context, body, "config.body")?),
                None => None,
            };
            let body_text = body_value.as_ref().filter(|_| method != "GET").map(Value::to_string);
            if body_text.is_some() && !sent_headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                sent_headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            }
            let request =
                Request { method, url, headers: sent_headers, body: body_text, synchronized: *synchronized, agent: *agent };
            let body_shown = request.body.as_ref().and(body_value);
            let mut shown = payload_of(&request, body_shown.as_ref());
            mask_json(&mut shown, secrets);
            Ok(Work::Send { request, shown })
        }
        NodeConfig::UpsertEntity { blueprint, mapping, .. } => {
            let blueprint = match template(programs, context, &Value::String(blueprint.clone()), "config.blueprintIdentifier")? {
                Value::String(name) => name,
                other => return Err(format!("`config.blueprintIdentifier` rendered to {other}, not a name")),
            };
            let mut entity = template(programs, context, mapping, "config.mapping")?;
            let Value::Object(fields) = &mut entity else {
                return Err(format!("`config.mapping` rendered to {entity}, not an entity object"));
            };
            // Reference §4.4: "If omitted, Port will auto-generate" the identifier.
            if fields.get("identifier").is_none_or(Value::is_null) {
                fields.insert("identifier".to_owned(), Value::String(generated_identifier(context)));
            }
            Ok(Work::Upsert { blueprint, entity })
        }
        NodeConfig::Condition { outlets } => {
            for (i, outlet) in outlets.iter().enumerate() {
                match programs.first(&outlet.expression, context) {
                    Ok(Some(Value::Bool(true))) => return Ok(Work::Branch { outlet: Some(outlet.identifier.clone()) }),
                    Ok(_) => {}
                    Err(err) => return Err(format!("`config.outlets[{i}].expression` ({}): {err}", outlet.identifier)),
                }
            }
            Ok(Work::Branch { outlet: None })
        }
        _ => Err(format!("node `{}` ({}) is a trigger; it does not run", node.identifier, node.config_type())),
    }
}

/// An identifier for an entity an UPSERT_ENTITY node writes without one: derived from the node
/// run's id, so a node run that is run again writes the same entity.
fn generated_identifier(context: &Value) -> String {
    context["workflowNodeRun"]["identifier"].as_str().map_or_else(|| "wfnr".to_owned(), |id| id.replace("wfnr_", "e_"))
}

/// Renders a node's `variables` over `context` (the node run's, with its raw output as
/// `.result` and at the top): the node's output.
pub(crate) fn render_variables(
    variables: &Map<String, Value>,
    context: &Value,
    secrets: &SecretValues,
    programs: &ProgramCache,
) -> Result<Value, String> {
    let mut full = context.clone();
    full["secrets"] = secrets.context();
    let budgeted = wharf_jq::with_budget(RENDER_LIMITS, || {
        let mut output = Map::new();
        for (name, value) in variables {
            output.insert(name.clone(), template(programs, &full, value, &format!("variables.{name}"))?);
        }
        Ok::<Value, String>(Value::Object(output))
    });
    if let Some(exceeded) = budgeted.exceeded {
        return Err(format!("rendering the variables crossed their budget: {}", exceeded.message()));
    }
    let mut output = budgeted.value?;
    mask_json(&mut output, secrets);
    Ok(output)
}
