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

/// What a node would do, for `wharf render --workflow`: its request (as sent, and as shown
/// with secrets masked, and the names of the secrets it holds), its entity, or its outlet.
#[derive(Debug)]
pub enum NodePreview {
    Webhook { sent: Request, shown: Request, held: Vec<String> },
    Upsert { blueprint: String, entity: Value },
    Branch { outlet: Option<String> },
}

/// Renders `node` over `context` (a node run's, see [`preview_context`]) as the stepper
/// does, offline: the same rendering, budget and generated identifier.
pub fn preview_node(node: &Node, context: &Value, secrets: &SecretValues) -> Result<NodePreview, String> {
    let programs = ProgramCache::default();
    let work = render_node(node, context, secrets, &programs).map_err(|why| secrets.mask(&why))?;
    Ok(match work {
        Work::Send { request, .. } => {
            let held = crate::runs::held_secrets(&request, secrets).into_iter().map(|(name, _)| name).collect();
            let shown = Request {
                url: secrets.mask(&request.url),
                headers: request.headers.iter().map(|(name, value)| (secrets.mask(name), secrets.mask(value))).collect(),
                body: request.body.as_deref().map(|body| secrets.mask(body)),
                ..request.clone()
            };
            NodePreview::Webhook { sent: request, shown, held }
        }
        Work::Upsert { blueprint, mut entity } => {
            mask_json(&mut entity, secrets);
            NodePreview::Upsert { blueprint: secrets.mask(&blueprint), entity }
        }
        Work::Branch { outlet } => NodePreview::Branch { outlet },
    })
}

/// The preview's run id, node run id and version id, when the context names none.
pub const PREVIEW_RUN_ID: &str = "wfr_preview";
pub const PREVIEW_NODE_RUN_ID: &str = "wfnr_preview";
pub const PREVIEW_VERSION_ID: &str = "wfv_preview";

/// Completes a preview's context as a node run of `def` at `at` would have it (reference
/// §4.5): every key `given` has stays; `.outputs` defaults to `{}`, and `.outputs.trigger`
/// aliases the output of the workflow's first trigger that `.outputs` holds;
/// `.workflow` `{identifier, versionIdentifier}`, `.workflowRun` `{identifier, createdAt,
/// trigger}` and `.workflowNodeRun` `{identifier, createdAt}` are filled in where missing.
pub fn preview_context(def: &wharf_core::workflow::WorkflowDef, given: &Value, at: wharf_core::time::Timestamp) -> Value {
    let mut context = match given {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let outputs = context.entry("outputs").or_insert_with(|| Value::Object(Map::new()));
    let fired = def.triggers().find(|t| outputs.get(&t.identifier).is_some()).or_else(|| def.triggers().next());
    if let (Value::Object(outputs), Some(fired)) = (outputs, fired)
        && let Some(output) = outputs.get(&fired.identifier).cloned()
    {
        outputs.entry("trigger").or_insert(output);
    }
    let when = Value::String(at.to_iso());
    let fill = |context: &mut Map<String, Value>, key: &str, defaults: Value| {
        let entry = context.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if let (Value::Object(entry), Value::Object(defaults)) = (entry, defaults) {
            for (k, v) in defaults {
                entry.entry(k).or_insert(v);
            }
        }
    };
    fill(&mut context, "workflow", serde_json::json!({"identifier": def.identifier, "versionIdentifier": PREVIEW_VERSION_ID}));
    let trigger = fired.map(|t| t.identifier.clone()).unwrap_or_default();
    fill(
        &mut context,
        "workflowRun",
        serde_json::json!({"identifier": PREVIEW_RUN_ID, "createdAt": when, "trigger": {"identifier": trigger, "by": {}}}),
    );
    fill(&mut context, "workflowNodeRun", serde_json::json!({"identifier": PREVIEW_NODE_RUN_ID, "createdAt": when}));
    Value::Object(context)
}
