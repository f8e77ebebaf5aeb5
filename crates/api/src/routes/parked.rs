//! `GET /v1/changes/parked`: the caller's organization's changes that the router set aside.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::ErrorBody;
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Query};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ParkedParams {
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

/// Changes that could not be routed to subscriptions (a stored change that cannot be read
/// back, a value the database refuses), newest first, each with the reason. The router moved
/// past them: no `entity.*` event is delivered for them, and later changes are routed.
#[utoipa::path(get, path = "/v1/changes/parked", tag = "Audit log",
    params(ParkedParams),
    responses((status = 200, description = "`{\"ok\":true,\"parked\":[{changeId,seq,consumer,reason,parkedAt}]}`", body = docs::ParkedChangesAnswer),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_parked(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(params): Query<ParkedParams>,
) -> ApiResult<Json<Value>> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request("invalid_query", format!("`limit={limit}`: expected 1 to {MAX_LIMIT}")));
    }
    let parked = state.catalog.parked_changes(&principal.org_id, limit).await?;
    let parked: Vec<Value> = parked
        .into_iter()
        .map(|p| {
            json!({
                "changeId": p.change_id,
                "seq": p.seq,
                "consumer": p.consumer,
                "reason": p.reason,
                "parkedAt": p.parked_at,
            })
        })
        .collect();
    Ok(Json(json!({"ok": true, "parked": parked})))
}
