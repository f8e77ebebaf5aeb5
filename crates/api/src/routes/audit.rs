//! `GET /v1/audit-log`.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Map, Value};
use wharf_core::change::{ChangeAction, ResourceType};
use wharf_core::time::Timestamp;
use wharf_engine::AuditFilter;

use super::{ErrorBody, ok};
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

/// The parsed query: the store's filter plus what is applied here.
struct AuditQuery {
    filter: AuditFilter,
    /// `status=FAILURE` matches no change (changes are recorded only when they succeed), and
    /// neither does a `resources` list of types Wharf does not record yet.
    matches_nothing: bool,
    /// `includes`: the keys each entry keeps (all when empty).
    includes: Vec<String>,
}

fn parse(query: &str) -> Result<AuditQuery, ApiError> {
    let mut parsed = AuditQuery {
        filter: AuditFilter { limit: DEFAULT_LIMIT, ..AuditFilter::default() },
        matches_nothing: false,
        includes: Vec::new(),
    };
    let invalid = |key: &str, value: &str, expected: &str| {
        ApiError::bad_request("invalid_query", format!("`{key}={value}`: expected {expected}"))
    };
    let time = |key: &str, value: &str| Timestamp::parse(value).ok_or_else(|| invalid(key, value, "an ISO 8601 date-time"));
    let f = &mut parsed.filter;
    let mut resources_given = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (key, value) = (key.trim_end_matches("[]"), value.as_ref());
        match key {
            "identifier" => f.identifier = Some(value.to_owned()),
            "entity" => f.entity = Some(value.to_owned()),
            "blueprint" => f.blueprint = Some(value.to_owned()),
            "webhookId" => f.webhook_id = Some(value.to_owned()),
            "webhookEventId" => f.webhook_event_id = Some(value.to_owned()),
            "run_id" | "runId" => f.run_id = Some(value.to_owned()),
            "resources" => {
                for resource in value.split(',').filter(|r| !r.is_empty()) {
                    resources_given = true;
                    match ResourceType::parse(resource) {
                        Some(r) => f.resources.push(r),
                        None if is_port_resource(resource) => {}
                        None => {
                            return Err(invalid(
                                key,
                                resource,
                                "blueprint, entity, run, webhook, scorecard, action or integration",
                            ));
                        }
                    }
                }
            }
            "action" => {
                f.action = Some(ChangeAction::parse(value).ok_or_else(|| invalid(key, value, "CREATE, UPDATE or DELETE"))?)
            }
            "status" => match value.to_ascii_uppercase().as_str() {
                "SUCCESS" => {}
                "FAILURE" => parsed.matches_nothing = true,
                _ => return Err(invalid(key, value, "SUCCESS or FAILURE")),
            },
            "from" => f.from = Some(time(key, value)?),
            "to" => f.to = Some(time(key, value)?),
            "limit" => {
                f.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| invalid(key, value, "a number from 1 to 10000"))?;
            }
            "includes" => parsed.includes.extend(value.split(',').filter(|s| !s.is_empty()).map(str::to_owned)),
            _ => {} // Port's other filters (origin, InstallationId, actionType) select nothing Wharf records yet.
        }
    }
    parsed.matches_nothing |= resources_given && parsed.filter.resources.is_empty();
    Ok(parsed)
}

fn is_port_resource(resource: &str) -> bool {
    matches!(resource, "run" | "webhook" | "scorecard" | "action" | "integration")
}

/// The audit log: every recorded change, newest first.
#[utoipa::path(get, path = "/v1/audit-log", tag = "Audit log",
    params(
        ("identifier" = Option<String>, Query, description = "The audit entry's identifier"),
        ("entity" = Option<String>, Query, description = "Entity identifier"),
        ("blueprint" = Option<String>, Query, description = "Blueprint identifier"),
        ("webhookId" = Option<String>, Query, description = "Ingestion webhook identifier"),
        ("webhookEventId" = Option<String>, Query, description = "Ingestion webhook event id"),
        ("run_id" = Option<String>, Query, description = "Action run id"),
        ("resources" = Option<String>, Query, description = "Comma-separated resource types (entity, blueprint, …)"),
        ("action" = Option<String>, Query, description = "CREATE, UPDATE or DELETE"),
        ("status" = Option<String>, Query, description = "SUCCESS or FAILURE"),
        ("from" = Option<String>, Query, description = "ISO 8601: entries at or after"),
        ("to" = Option<String>, Query, description = "ISO 8601: entries at or before"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 10000)"),
        ("includes" = Option<String>, Query, description = "Comma-separated keys to keep in each entry")),
    responses((status = 200, description = "`{\"ok\":true,\"audits\":[{identifier,action,resourceType,status,trigger,context,diff,additionalData?}]}`", body = docs::AuditAnswer),
              (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let query = parse(query.as_deref().unwrap_or_default())?;
    if query.matches_nothing {
        return Ok(ok("audits", Value::Array(Vec::new())));
    }
    let changes = state.catalog.audit_log(&principal.org_id, &query.filter).await?;
    let audits = changes.iter().map(|change| project(change.audit_entry(), &query.includes)).collect();
    Ok(ok("audits", Value::Array(audits)))
}

fn project(entry: Value, includes: &[String]) -> Value {
    match entry {
        Value::Object(map) if !includes.is_empty() => {
            Value::Object(map.into_iter().filter(|(k, _)| includes.iter().any(|i| i == k)).collect::<Map<_, _>>())
        }
        other => other,
    }
}
