//! `/v1/organization/secrets…`: the organization's secrets (reference §3.9). Values are
//! write-only: every answer carries the metadata only (`{"ok":true,"secret":…}`,
//! `{"ok":true,"secrets":[…]}`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ErrorBody, ok};
use crate::docs;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Create a secret.
///
/// Its value is sealed at rest and never returned; templates read it as
/// `{{ .secrets.NAME }}` or `{{ .secrets["a-b"] }}`.
#[utoipa::path(post, path = "/v1/organization/secrets", tag = "Secrets",
    request_body(content = docs::SecretDoc, description = "`secretName` (`^[A-Za-z0-9-_]*$`, 1–100), `secretValue` (non-empty, at most 64 KiB; write-only), `description`"),
    responses((status = 201, description = "`{\"ok\":true,\"secret\":…}`: the metadata, never the value", body = docs::OrgSecretAnswer),
              (status = 409, description = "The organization has a secret of this name", body = ErrorBody),
              (status = 422, description = "Invalid document (names the field), or the organization has 1,000 secrets", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let secret = state.secrets.create(&principal.org_id, &principal.client_id, doc).await?;
    Ok((StatusCode::CREATED, ok("secret", secret.to_json())))
}

/// List the organization's secrets (metadata only), by name.
#[utoipa::path(get, path = "/v1/organization/secrets", tag = "Secrets",
    responses((status = 200, description = "`{\"ok\":true,\"secrets\":[…]}`", body = docs::OrgSecretsAnswer)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Value>> {
    let secrets = state.secrets.list(&principal.org_id).await?;
    Ok(ok("secrets", Value::Array(secrets.iter().map(|s| s.to_json()).collect())))
}

/// Get a secret's metadata.
#[utoipa::path(get, path = "/v1/organization/secrets/{name}", tag = "Secrets",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 200, description = "`{\"ok\":true,\"secret\":…}` (never the value)", body = docs::OrgSecretAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Auth(principal): Auth, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("secret", state.secrets.get(&principal.org_id, &name).await?.to_json()))
}

/// Change a secret's value or description; what the document leaves out is kept.
#[utoipa::path(patch, path = "/v1/organization/secrets/{name}", tag = "Secrets",
    params(("name" = String, Path, description = "Secret name")),
    request_body(content = docs::SecretPatch, description = "`secretValue` (write-only), `description` (`null` removes it)"),
    responses((status = 200, description = "`{\"ok\":true,\"secret\":…}`", body = docs::OrgSecretAnswer),
              (status = 404, body = ErrorBody), (status = 422, description = "Invalid document (names the field)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(name): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("secret", state.secrets.patch(&principal.org_id, &principal.client_id, &name, doc).await?.to_json()))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/v1/organization/secrets/{name}", tag = "Secrets",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(State(state): State<AppState>, Auth(principal): Auth, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    state.secrets.delete(&principal.org_id, &name).await?;
    Ok(Json(json!({"ok": true})))
}
