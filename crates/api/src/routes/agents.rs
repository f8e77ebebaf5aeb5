//! Port's polling protocol for execution agents (reference §5.2): `POST
//! /v1/actions/runs/claim-pending`, `PATCH /v1/actions/runs/ack`, and the workflow node runs'
//! twins, which Port's agent polls every loop. Agents report through the run routes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use wharf_core::agent::{Claim, parse_ack, parse_node_run_ack};

use super::{ErrorBody, ok};
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Claim runs waiting for an execution agent.
///
/// Up to `limit` of the organization's `agent: true` runs that no claim holds, oldest first.
/// Each is hidden from other claims for `visibilityTimeoutMs` (default 60 s): acknowledge it
/// within that time, or it can be claimed again. With `waitMs`, the claim waits that long for
/// a run when none is claimable. Each run's `payload` is its request as it is to be sent.
#[utoipa::path(post, path = "/v1/actions/runs/claim-pending", tag = "Agents",
    request_body = docs::AgentClaimDoc,
    responses((status = 200, description = "`{\"ok\":true,\"runs\":[…]}`", body = docs::AgentClaimAnswer),
              (status = 401, body = ErrorBody),
              (status = 422, description = "A bad claim, naming the field", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn claim(State(state): State<AppState>, Auth(principal): Auth, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let claim = Claim::parse(body, false).map_err(ApiError::from)?;
    let runs = state.runs.claim_for_agent(&principal.org_id, &claim).await?;
    Ok(ok("runs", Value::Array(runs)))
}

/// Acknowledge claimed runs: they are taken for good, never handed out again.
///
/// Runs not claimed, already acknowledged (by this or another agent) or unknown count
/// nothing; `acked` lists those taken by this acknowledgement, so an agent sends only those.
#[utoipa::path(patch, path = "/v1/actions/runs/ack", tag = "Agents",
    request_body = docs::AgentAckDoc,
    responses((status = 200, description = "`{\"ok\":true,\"ackedCount\":n,\"acked\":[…]}`", body = docs::AgentAckAnswer),
              (status = 401, body = ErrorBody),
              (status = 422, description = "A bad body", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ack(State(state): State<AppState>, Auth(principal): Auth, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let run_ids = parse_ack(body).map_err(ApiError::from)?;
    let acked = state.runs.ack_for_agent(&principal.org_id, &run_ids).await?;
    Ok(Json(json!({"ok": true, "ackedCount": acked.len(), "acked": acked})))
}

/// Claim workflow node runs waiting for an execution agent.
///
/// Port's agent polls this every loop beside the action runs' claim. Up to `limit` node runs of
/// `agent: true` WEBHOOK nodes, each with its `config` rendered (secrets in clear), hidden from
/// other claims for `visibilityTimeoutMs` unless acknowledged.
#[utoipa::path(post, path = "/v1/workflows/runs/claim-pending", tag = "Agents",
    request_body = docs::NodeRunClaimDoc,
    responses((status = 200, description = "`{\"ok\":true,\"nodeRuns\":[{\"identifier\",\"config\",\"agentClaim\"}]}`", body = docs::NodeRunClaimAnswer),
              (status = 401, body = ErrorBody),
              (status = 422, description = "A bad claim, naming the field", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn claim_node_runs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let claim = Claim::parse(body, true).map_err(ApiError::from)?;
    let node_runs = state.workflows.claim_for_agent(&principal.org_id, &claim).await?;
    Ok(ok("nodeRuns", Value::Array(node_runs)))
}

/// Acknowledge a claimed workflow node run: taken for good, never handed out again.
#[utoipa::path(patch, path = "/v1/workflows/runs/ack", tag = "Agents",
    request_body = docs::NodeRunAckDoc,
    responses((status = 200, description = "`{\"ok\":true,\"acked\":true}`", body = docs::NodeRunAckAnswer),
              (status = 404, description = "No such node run", body = ErrorBody),
              (status = 409, description = "Acknowledged already, or not waiting for an agent", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 422, description = "No `nodeRunIdentifier`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ack_node_run(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let id = parse_node_run_ack(body).map_err(ApiError::from)?;
    state.workflows.ack_for_agent(&principal.org_id, &id).await?;
    Ok(Json(json!({"ok": true, "acked": true})))
}
