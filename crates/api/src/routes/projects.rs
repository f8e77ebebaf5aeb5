//! `/organizations/{organizationId}/projects…` (seed 004): projects, and publishing events to
//! them. These routes answer the object itself (`_id`, no `ok` wrapper), as seed 004 shows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use wharf_core::project::{PublishInput, PublishReceipt};

use super::ErrorBody;
use crate::docs;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, RawBody, parse_json};
use crate::state::AppState;

/// Create a project.
#[utoipa::path(post, path = "/organizations/{organizationId}/projects", tag = "Projects",
    params(("organizationId" = String, Path, description = "Organization id (24 hex characters)")),
    request_body(content = docs::ProjectDoc, description = "`name` (2–100), `slug` (`^[a-z0-9-]{2,100}$`), `description` (≤255), `status` (`draft`, `active`, `archived`), `appIconUrl`"),
    responses((status = 201, description = "The project: `_id`, `name`, `slug`, `organization`, `status`, `createdAt`, `updatedAt`", body = docs::Project),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "The slug is taken", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(org): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok((StatusCode::CREATED, Json(state.projects.create_project(&org, doc).await?.to_json())))
}

/// List the organization's projects.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects", tag = "Projects",
    params(("organizationId" = String, Path, description = "Organization id")),
    responses((status = 200, description = "An array of projects", body = docs::Projects), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth, Path(org): Path<String>) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok(Json(Value::Array(state.projects.projects(&org).await?.iter().map(|p| p.to_json()).collect())))
}

/// Get a project.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}", tag = "Projects",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = docs::Project), (status = 400, description = "Malformed id", body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok(Json(state.projects.project(&org, &project).await?.to_json()))
}

/// Change some fields of a project.
#[utoipa::path(patch, path = "/organizations/{organizationId}/projects/{projectId}", tag = "Projects",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id")),
    request_body(content = docs::ProjectPatch, description = "Any of `name`, `slug`, `description`, `status`, `appIconUrl`"),
    responses((status = 200, description = "The project", body = docs::Project), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "The slug is taken", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project)): Path<(String, String)>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok(Json(state.projects.patch_project(&org, &project, doc).await?.to_json()))
}

/// Delete a project with its webhooks, events and deliveries.
#[utoipa::path(delete, path = "/organizations/{organizationId}/projects/{projectId}", tag = "Projects",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    state.projects.delete_project(&org, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publish an event to the project's webhooks.
///
/// Every active webhook whose `events` match `type` gets a signed delivery of
/// `{"type","timestamp","data"}`. The answer comes once the event and its deliveries are
/// stored. An `id` already published to this project is a 409, so retrying a publish is safe.
#[utoipa::path(post, path = "/organizations/{organizationId}/projects/{projectId}/events", tag = "Projects",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id")),
    request_body(content = docs::PublishDoc, description = "`{\"type\": \"invoice.paid\", \"data\": {…}, \"id\"?: \"…\"}`"),
    responses((status = 202, description = "`{\"id\",\"type\",\"timestamp\",\"deliveries\"}`", body = docs::PublishAnswer),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "This id was already published", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<PublishReceipt>)> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    // The usual document is read straight from its bytes; anything else through a value,
    // whose errors say what is wrong with it.
    let input = match PublishInput::from_slice(&body) {
        Some(input) => input?,
        None => PublishInput::parse(parse_json(&body)?)?,
    };
    Ok((StatusCode::ACCEPTED, Json(state.projects.publish(&org, &project, input).await?)))
}
