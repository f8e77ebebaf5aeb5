//! `/v1/actions…`: actions and automations, one resource (Port's routes, wrapped as
//! `action` / `actions`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa::IntoParams;
use wharf_core::action::ActionFilter;

use super::{ErrorBody, api_trigger, ok};
use crate::docs;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Create an action or an automation.
#[utoipa::path(post, path = "/v1/actions", tag = "Actions",
    request_body(content = docs::ActionDoc, description = "Port's action: identifier, title, icon, description, trigger (self-service or automation), invocationMethod (WEBHOOK or UPSERT_ENTITY), requiredApproval, approvalNotification, publish, allowAnyoneToViewRuns"),
    responses((status = 201, description = "`{\"ok\":true,\"action\":…}`: the document as written, with `createdAt`, `updatedAt`, `createdBy`, `updatedBy`", body = docs::ActionAnswer),
              (status = 409, description = "The identifier is taken", body = ErrorBody),
              (status = 422, description = "Invalid action: names the path (`invocationMethod.body.x`, `trigger.condition.expressions[1]`) and jq's message; a blueprint it names does not exist; the organization has 1,000 actions", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let action = state.actions.create(&api_trigger(&principal, None), doc).await?;
    Ok((StatusCode::CREATED, ok("action", action)))
}

/// `GET /v1/actions`'s query, as Port's apispec lists it (documentation only: the handler
/// reads the query itself, since a list parameter repeats its key).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
pub struct ListParams {
    /// Only these actions (repeat the key for several).
    action_identifier: Option<Vec<String>>,
    /// Only the actions of (or the automations listening to) these blueprints.
    blueprint_identifier: Option<Vec<String>>,
    /// Only self-service actions of these operations (`CREATE`, `DAY-2`, `DELETE`).
    operation: Option<Vec<String>>,
    /// Automations only: whether they are published (`publish`).
    published: Option<bool>,
    /// Only self-service actions (`self-service`) or automations (`automation`).
    trigger_type: Option<String>,
    /// Only automations on these events (`ENTITY_CREATED`, …).
    trigger_event: Option<Vec<String>>,
    /// Only automations on runs of these actions.
    trigger_event_action_identifier: Option<Vec<String>>,
    /// `v1` or `v2` (Wharf answers one shape).
    version: Option<String>,
}

/// List the organization's actions and automations.
#[utoipa::path(get, path = "/v1/actions", tag = "Actions",
    params(ListParams),
    responses((status = 200, description = "`{\"ok\":true,\"actions\":[…]}`, by identifier", body = docs::ActionsAnswer)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let filter = ActionFilter::from_query(form_urlencoded::parse(query.unwrap_or_default().as_bytes()))?;
    Ok(ok("actions", Value::Array(state.actions.list(&principal.org_id, &filter).await?)))
}

/// Get an action or an automation.
#[utoipa::path(get, path = "/v1/actions/{action_identifier}", tag = "Actions",
    params(("action_identifier" = String, Path, description = "Action identifier")),
    responses((status = 200, description = "`{\"ok\":true,\"action\":…}`", body = docs::ActionAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Auth(principal): Auth, Path(identifier): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("action", state.actions.get(&principal.org_id, &identifier).await?))
}

/// Replace an action or an automation (its identifier stays).
#[utoipa::path(put, path = "/v1/actions/{action_identifier}", tag = "Actions",
    params(("action_identifier" = String, Path, description = "Action identifier")),
    request_body(content = docs::ActionReplaceDoc, description = "The whole action (`identifier` may be left out; if given, it is the route's)"),
    responses((status = 200, description = "`{\"ok\":true,\"action\":…}`", body = docs::ActionAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("action", state.actions.replace(&api_trigger(&principal, None), &identifier, doc).await?))
}

/// Delete an action or an automation.
#[utoipa::path(delete, path = "/v1/actions/{action_identifier}", tag = "Actions",
    params(("action_identifier" = String, Path, description = "Action identifier")),
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
) -> ApiResult<Json<Value>> {
    state.actions.delete(&api_trigger(&principal, None), &identifier).await?;
    Ok(Json(json!({"ok": true})))
}
