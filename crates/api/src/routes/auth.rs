//! `POST /v1/auth/access_token` and `GET /v1/organization`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use wharf_core::auth::ACCESS_TOKEN_TTL_SECS;

use super::{ErrorBody, ok};
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Client credentials, as printed at first start or by `wharf admin client create`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessTokenRequest {
    client_id: String,
    client_secret: String,
}

/// Exchange client credentials for a Bearer token valid three hours.
#[utoipa::path(post, path = "/v1/auth/access_token", tag = "Authentication",
    request_body = docs::AccessTokenDoc,
    responses(
        (status = 200, description = "`{\"ok\":true,\"accessToken\",\"expiresIn\":10800,\"tokenType\":\"Bearer\"}`", body = docs::AccessTokenAnswer),
        (status = 401, description = "Wrong credentials", body = ErrorBody),
        (status = 422, description = "Missing fields", body = ErrorBody)))]
pub async fn access_token(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let request: AccessTokenRequest =
        wharf_core::json::from_value(body, "invalid_request", "access token request").map_err(ApiError::from)?;
    let token = state.tenancy.issue_token(&request.client_id, &request.client_secret).await?;
    Ok(Json(json!({"ok": true, "accessToken": token, "expiresIn": ACCESS_TOKEN_TTL_SECS, "tokenType": "Bearer"})))
}

/// The organization of the caller's token.
#[utoipa::path(get, path = "/v1/organization", tag = "Organization",
    responses((status = 200, description = "`{\"ok\":true,\"organization\":{id,name,createdAt,updatedAt}}`", body = docs::OrganizationAnswer),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn organization(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Value>> {
    let org = state.tenancy.organization(&principal.org_id).await?;
    Ok(ok("organization", org.to_json()))
}

/// Change the organization: its name, and the settings Port's clients write. Port's execution
/// agent sends `{"settings":{"portAgentStreamerName":"POLLING"}}` at startup; Wharf serves
/// agents by polling only, so any other streamer is refused (422) rather than left to fail
/// later.
#[utoipa::path(patch, path = "/v1/organization", tag = "Organization",
    request_body = docs::OrganizationPatchDoc,
    responses((status = 200, description = "`{\"ok\":true,\"organization\":…}`", body = docs::OrganizationAnswer),
              (status = 401, body = ErrorBody),
              (status = 422, description = "An unknown setting, or a streamer other than `POLLING`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_organization(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let patch = wharf_core::agent::OrganizationPatch::parse(body).map_err(ApiError::from)?;
    let org = state.tenancy.patch_organization(&principal.org_id, patch).await?;
    Ok(ok("organization", org.to_json()))
}
