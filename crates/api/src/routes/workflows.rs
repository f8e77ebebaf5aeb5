//! `/v1/workflows…`: workflows (Port's routes, wrapped as `workflow` / `workflows`), their
//! runs, and the node run reports backends and agents send.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use wharf_engine::runs::Caller;
use wharf_engine::workflows::WorkflowRunFilter;

use super::{ErrorBody, api_trigger, ok};
use crate::docs;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Create a workflow.
#[utoipa::path(post, path = "/v1/workflows", tag = "Workflows",
    request_body(content = docs::WorkflowDoc, description = "Port's workflow: identifier, title, icon, description, category, allowAnyoneToViewRuns, nodes (triggers SELF_SERVE_TRIGGER, EVENT_TRIGGER, SCHEDULE_TRIGGER; WEBHOOK, UPSERT_ENTITY, CONDITION) and connections"),
    responses((status = 201, description = "`{\"ok\":true,\"workflow\":…}`: the document as written, with `versionIdentifier` and the audit fields", body = docs::WorkflowAnswer),
              (status = 409, description = "The identifier is taken", body = ErrorBody),
              (status = 422, description = "Invalid workflow: names the node, connection or path (`nodes[1].config.url`), a graph rule broken, jq's message; a blueprint it names does not exist; the organization has 1,000 workflows", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let workflow = state.workflows.create(&api_trigger(&principal, None), doc).await?;
    Ok((StatusCode::CREATED, ok("workflow", workflow)))
}

/// List the organization's workflows.
#[utoipa::path(get, path = "/v1/workflows", tag = "Workflows",
    responses((status = 200, description = "`{\"ok\":true,\"workflows\":[…]}`, by identifier", body = docs::WorkflowsAnswer)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Value>> {
    Ok(ok("workflows", Value::Array(state.workflows.list(&principal.org_id).await?)))
}

/// Get a workflow (its current version).
#[utoipa::path(get, path = "/v1/workflows/{workflow_identifier}", tag = "Workflows",
    params(("workflow_identifier" = String, Path, description = "Workflow identifier")),
    responses((status = 200, description = "`{\"ok\":true,\"workflow\":…}`", body = docs::WorkflowAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Auth(principal): Auth, Path(identifier): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("workflow", state.workflows.get(&principal.org_id, &identifier).await?))
}

/// Replace a workflow: a new version. Runs in progress keep the version they started with.
#[utoipa::path(put, path = "/v1/workflows/{workflow_identifier}", tag = "Workflows",
    params(("workflow_identifier" = String, Path, description = "Workflow identifier")),
    request_body(content = docs::WorkflowReplaceDoc, description = "The whole workflow (`identifier` may be left out; if given, it is the route's)"),
    responses((status = 200, description = "`{\"ok\":true,\"workflow\":…}` with its new `versionIdentifier`", body = docs::WorkflowAnswer),
              (status = 404, body = ErrorBody),
              (status = 422, description = "Invalid workflow, naming the node, connection or path", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("workflow", state.workflows.replace(&api_trigger(&principal, None), &identifier, doc).await?))
}

/// Delete a workflow. Its runs stay; those in progress finish with their version.
#[utoipa::path(delete, path = "/v1/workflows/{workflow_identifier}", tag = "Workflows",
    params(("workflow_identifier" = String, Path, description = "Workflow identifier")),
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
) -> ApiResult<Json<Value>> {
    state.workflows.delete(&api_trigger(&principal, None), &identifier).await?;
    Ok(Json(json!({"ok": true})))
}

/// `POST …/runs`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartParams {
    /// The user the run is made for (`.workflowRun.trigger.by.email`).
    run_as: Option<String>,
}

/// Run a workflow through its SELF_SERVE_TRIGGER.
///
/// The inputs are checked against the trigger's `userInputs` as an action's are; the run
/// starts at once and goes on in the background.
#[utoipa::path(post, path = "/v1/workflows/{workflow_identifier}/runs", tag = "Workflow runs",
    params(("workflow_identifier" = String, Path, description = "Workflow identifier"), StartParams),
    request_body(content = docs::WorkflowRunDoc, description = "`{\"inputs\": {…}}`"),
    responses((status = 202, description = "`{\"ok\":true,\"workflowRun\":…}`", body = docs::WorkflowRunAnswer),
              (status = 404, body = ErrorBody),
              (status = 422, description = "An input is invalid (named), or the workflow has no SELF_SERVE_TRIGGER", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    Query(params): Query<StartParams>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let caller =
        Caller { org_id: principal.org_id.clone(), client_id: principal.client_id.clone(), run_as: params.run_as, cause: None };
    let run = state.workflows.start(&caller, &identifier, &doc).await?;
    Ok((StatusCode::ACCEPTED, ok("workflowRun", run)))
}

/// `GET /v1/workflows/runs`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "snake_case")]
pub struct ListParams {
    /// Only the runs of this workflow.
    workflow_identifier: Option<String>,
    /// `true`: runs in progress; `false`: completed runs.
    active: Option<bool>,
    /// At most this many (1 to 1,000; 100 by default), newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u32>,
}

/// List workflow runs, newest first.
#[utoipa::path(get, path = "/v1/workflows/runs", tag = "Workflow runs",
    params(ListParams),
    responses((status = 200, description = "`{\"ok\":true,\"workflowRuns\":[…]}`", body = docs::WorkflowRunsAnswer),
              (status = 422, description = "`limit` out of range", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn runs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = wharf_core::workflow_run::run_page(params.limit)?;
    let filter = WorkflowRunFilter {
        workflow: params.workflow_identifier,
        active: params.active,
        limit,
        offset: params.offset.unwrap_or(0),
    };
    Ok(ok("workflowRuns", Value::Array(state.workflows.runs(&principal.org_id, &filter).await?)))
}

/// Get a workflow run with every node run, its output and its logs.
#[utoipa::path(get, path = "/v1/workflows/runs/{workflow_run_id}", tag = "Workflow runs",
    params(("workflow_run_id" = String, Path, description = "Workflow run id (`wfr_…`)")),
    responses((status = 200, description = "`{\"ok\":true,\"workflowRun\":…}` with `nodeRuns`", body = docs::WorkflowRunAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(State(state): State<AppState>, Auth(principal): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("workflowRun", state.workflows.run(&principal.org_id, &id).await?))
}

/// Get a node run with its logs.
#[utoipa::path(get, path = "/v1/workflows/nodes/runs/{node_run_id}", tag = "Workflow runs",
    params(("node_run_id" = String, Path, description = "Node run id (`wfnr_…`)")),
    responses((status = 200, description = "`{\"ok\":true,\"nodeRun\":…}`", body = docs::NodeRunAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn node_run(State(state): State<AppState>, Auth(principal): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("nodeRun", state.workflows.node_run(&principal.org_id, &id).await?))
}

/// Report on a node run: `{"status":"COMPLETED","result":"SUCCESS"|"FAILED"|"CANCELLED",
/// "output":{…},"logs":[…]}` completes it (an asynchronous WEBHOOK node's backend, an agent)
/// and the run goes on, seeing the output; without `status`, only logs are added.
#[utoipa::path(patch, path = "/v1/workflows/nodes/runs/{node_run_id}", tag = "Workflow runs",
    params(("node_run_id" = String, Path, description = "Node run id (`wfnr_…`)")),
    request_body = docs::NodeRunPatchDoc,
    responses((status = 200, description = "`{\"ok\":true,\"nodeRun\":…}`", body = docs::NodeRunAnswer),
              (status = 404, body = ErrorBody),
              (status = 409, description = "The node run has completed", body = ErrorBody),
              (status = 422, description = "A bad report, naming the field", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_node_run(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("nodeRun", state.workflows.patch_node_run(&principal.org_id, None, &id, &body).await?))
}

/// The older path of the same report (reference §4.6).
#[utoipa::path(patch, path = "/v1/workflows/runs/{workflow_run_id}/nodes/{node_run_id}", tag = "Workflow runs",
    params(("workflow_run_id" = String, Path, description = "Workflow run id (`wfr_…`)"),
           ("node_run_id" = String, Path, description = "Node run id (`wfnr_…`)")),
    request_body = docs::NodeRunPatchDoc,
    responses((status = 200, description = "`{\"ok\":true,\"nodeRun\":…}`", body = docs::NodeRunAnswer),
              (status = 404, body = ErrorBody),
              (status = 409, description = "The node run has completed", body = ErrorBody),
              (status = 422, description = "A bad report, naming the field", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_node_run_older(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((run_id, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("nodeRun", state.workflows.patch_node_run(&principal.org_id, Some(&run_id), &id, &body).await?))
}

/// Add log lines to a node run: `{"logs":[{"logLevel"|"level", "log"|"message", "tags"}]}` or
/// one line. Accepted after the node run completed too (an agent's last line).
#[utoipa::path(post, path = "/v1/workflows/nodes/runs/{node_run_id}/logs", tag = "Workflow runs",
    params(("node_run_id" = String, Path, description = "Node run id (`wfnr_…`)")),
    request_body = docs::NodeLogsDoc,
    responses((status = 201, description = "`{\"ok\":true,\"logs\":[…]}`", body = docs::NodeLogsAnswer),
              (status = 404, body = ErrorBody),
              (status = 422, description = "A bad line, naming it", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_node_logs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(state.workflows.log_node_run(&principal.org_id, &id, &body).await?)))
}
