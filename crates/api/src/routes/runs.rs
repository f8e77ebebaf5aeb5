//! `/v1/actions/{action_identifier}/runs` and `/v1/actions/runs…`: runs of actions
//! (reference §3.8), Port's routes and shapes (`{"ok":true,"run":…}`, `runs`, `runLogs`).

use axum::Json;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use wharf_core::run::RunFilter;
use wharf_engine::runs::Caller;
use wharf_engine::tenancy::Principal;

use super::{ErrorBody, ok};
use crate::docs;
use crate::error::ApiResult;
use crate::extract::{Auth, CausingRun, JsonBody};
use crate::state::AppState;

fn caller(principal: &Principal, run_as: Option<String>) -> Caller {
    Caller { org_id: principal.org_id.clone(), client_id: principal.client_id.clone(), run_as, cause: None }
}

/// `POST …/runs`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartParams {
    /// The user the run is made for (its `impersonatedBy`, and `.trigger.by.user.email`).
    run_as: Option<String>,
}

/// Run an action.
///
/// The inputs are checked against the action's `userInputs`; the invocation is rendered,
/// and a WEBHOOK request is queued (sent at once, signed with `X-Port-Signature`), or an
/// UPSERT_ENTITY write is made, in the transaction that creates the run.
#[utoipa::path(post, path = "/v1/actions/{action_identifier}/runs", tag = "Action runs",
    params(("action_identifier" = String, Path, description = "Action identifier"), StartParams),
    request_body(content = docs::RunDoc, description = "`properties` (the inputs) and `entity` (DAY-2 and DELETE actions)"),
    responses((status = 202, description = "`{\"ok\":true,\"run\":…}`", body = docs::RunAnswer),
              (status = 404, description = "No such action, or the entity named does not exist", body = ErrorBody),
              (status = 422, description = "Invalid inputs, naming each (`inputs.version: must be one of …`); or a run's call of Wharf's API past the chain depth of 10", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    Auth(principal): Auth,
    CausingRun(cause): CausingRun,
    Path(action): Path<String>,
    Query(params): Query<StartParams>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let caller = Caller { cause, ..caller(&principal, params.run_as) };
    let run = state.runs.start(&caller, &action, &doc).await?;
    Ok((StatusCode::ACCEPTED, ok("run", run)))
}

/// `GET /v1/actions/runs`'s query (documentation only: the handler reads the query itself,
/// since `source` repeats).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
pub struct ListParams {
    /// Only runs on this entity.
    entity: Option<String>,
    /// Only runs of actions of this blueprint.
    blueprint: Option<String>,
    /// Only runs of this action.
    action: Option<String>,
    /// `true`: runs that have not ended; `false`: ended runs.
    active: Option<bool>,
    /// Only runs made by, or for (`run_as`), this user or client.
    user_email: Option<String>,
    /// Same as `user_email`.
    user_id: Option<String>,
    /// Only the run with this `externalRunId`.
    external_run_id: Option<String>,
    /// Only runs from these sources (`UI`, `API`, `AUTOMATION`; repeat the key).
    source: Option<Vec<String>>,
    /// At most this many (1–1000, default 100), newest first.
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u32>,
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/actions/runs", tag = "Action runs",
    params(ListParams),
    responses((status = 200, description = "`{\"ok\":true,\"runs\":[…]}`", body = docs::RunsAnswer),
              (status = 400, description = "A query parameter has a value it cannot take", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let filter = RunFilter::from_query(form_urlencoded::parse(query.unwrap_or_default().as_bytes()))?;
    Ok(ok("runs", Value::Array(state.runs.list(&principal.org_id, &filter).await?)))
}

/// Get a run.
#[utoipa::path(get, path = "/v1/actions/runs/{run_id}", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id (`r_…`)")),
    responses((status = 200, description = "`{\"ok\":true,\"run\":…}`", body = docs::RunAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Auth(principal): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("run", state.runs.get(&principal.org_id, &id).await?))
}

/// Update a run: `status` (`SUCCESS`/`FAILURE`, which ends it), `statusLabel`, `link`,
/// `summary`, `externalRunId`. Each key given replaces its value.
#[utoipa::path(patch, path = "/v1/actions/runs/{run_id}", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id")),
    request_body(content = docs::RunPatchDoc, description = "What changes"),
    responses((status = 200, description = "`{\"ok\":true,\"run\":…}`", body = docs::RunAnswer),
              (status = 404, body = ErrorBody),
              (status = 409, description = "The run has ended (or waits for approval)", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("run", state.runs.patch(&caller(&principal, None), &id, &doc).await?))
}

/// Report the backend's response (Port's agent route): kept as the run's `response`.
#[utoipa::path(patch, path = "/v1/actions/runs/{run_id}/response", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id")),
    request_body(content = docs::RunResponseDoc, description = "`{\"response\": …}`"),
    responses((status = 200, description = "`{\"ok\":true,\"run\":…}`", body = docs::RunAnswer),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn respond(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("run", state.runs.respond(&caller(&principal, None), &id, &doc).await?))
}

/// Approve or decline a run that waits for approval; an approved run's request is sent.
#[utoipa::path(patch, path = "/v1/actions/runs/{run_id}/approval", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id")),
    request_body(content = docs::RunApprovalDoc, description = "`{\"status\": \"APPROVE\" | \"DECLINE\"}`"),
    responses((status = 201, description = "`{\"ok\":true,\"run\":…}`", body = docs::RunAnswer),
              (status = 404, body = ErrorBody), (status = 409, description = "The run does not wait for approval", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn approval(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, ok("run", state.runs.decide(&caller(&principal, None), &id, &doc).await?)))
}

/// Add a line to a run's log; `terminationStatus` ends the run.
#[utoipa::path(post, path = "/v1/actions/runs/{run_id}/logs", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id")),
    request_body(content = docs::RunLogDoc, description = "`message`, and `terminationStatus`/`statusLabel`"),
    responses((status = 201, description = "`{\"ok\":true,\"runLog\":…}`", body = docs::RunLogAnswer),
              (status = 404, body = ErrorBody),
              (status = 409, description = "A `terminationStatus` for a run that has ended", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, ok("runLog", state.runs.log(&caller(&principal, None), &id, &doc).await?)))
}

/// `GET …/logs`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// At most this many lines (1–50, default 50).
    limit: Option<u32>,
    offset: Option<u32>,
}

/// A run's log, oldest line first.
#[utoipa::path(get, path = "/v1/actions/runs/{run_id}/logs", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id"), LogsParams),
    responses((status = 200, description = "`{\"ok\":true,\"runLogs\":[…]}`", body = docs::RunLogsAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Query(params): Query<LogsParams>,
) -> ApiResult<Json<Value>> {
    let limit = params.limit.unwrap_or(50).clamp(1, 50);
    let logs = state.runs.logs(&principal.org_id, &id, limit, params.offset.unwrap_or(0)).await?;
    Ok(ok("runLogs", serde_json::to_value(logs).unwrap_or(Value::Array(Vec::new()))))
}

/// The attempts of a run's request (Wharf's addition), oldest first; secrets masked.
#[utoipa::path(get, path = "/v1/actions/runs/{run_id}/attempts", tag = "Action runs",
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 200, description = "`{\"ok\":true,\"attempts\":[…]}`", body = docs::RunAttemptsAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn attempts(State(state): State<AppState>, Auth(principal): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let attempts = state.runs.attempts(&principal.org_id, &id).await?;
    Ok(ok("attempts", serde_json::to_value(attempts).unwrap_or(Value::Array(Vec::new()))))
}
