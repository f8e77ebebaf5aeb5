//! `/v1/blueprints` and `/v1/blueprints/{identifier}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::{ErrorBody, api_trigger, ok};
use crate::docs;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, Query};
use crate::state::AppState;

/// Create a blueprint.
#[utoipa::path(post, path = "/v1/blueprints", tag = "Blueprints",
    request_body(content = docs::BlueprintDoc, description = "Port's blueprint: identifier, title, schema {properties, required}, relations, …"),
    responses((status = 201, description = "`{\"ok\":true,\"blueprint\":…}`", body = docs::BlueprintAnswer),
              (status = 409, description = "The identifier is taken", body = ErrorBody),
              (status = 422, description = "Invalid blueprint (names the path)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let blueprint = state.catalog.create_blueprint(&api_trigger(&principal, None), doc).await?;
    Ok((StatusCode::CREATED, ok("blueprint", blueprint.to_json())))
}

/// List the organization's blueprints.
#[utoipa::path(get, path = "/v1/blueprints", tag = "Blueprints",
    responses((status = 200, description = "`{\"ok\":true,\"blueprints\":[…]}`", body = docs::BlueprintsAnswer)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Value>> {
    let blueprints = state.catalog.blueprints(&principal.org_id).await?;
    Ok(ok("blueprints", blueprints.iter().map(|b| b.to_json()).collect()))
}

/// Get a blueprint.
#[utoipa::path(get, path = "/v1/blueprints/{identifier}", tag = "Blueprints",
    params(("identifier" = String, Path, description = "Blueprint identifier")),
    responses((status = 200, description = "`{\"ok\":true,\"blueprint\":…}`", body = docs::BlueprintAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Auth(principal): Auth, Path(identifier): Path<String>) -> ApiResult<Json<Value>> {
    let blueprint = state.catalog.blueprint(&principal.org_id, &identifier).await?;
    Ok(ok("blueprint", blueprint.to_json()))
}

/// Replace a blueprint. A property's type cannot change; removed properties and relations
/// are removed from the blueprint's entities.
#[utoipa::path(put, path = "/v1/blueprints/{identifier}", tag = "Blueprints",
    params(("identifier" = String, Path, description = "Blueprint identifier")),
    request_body(content = docs::BlueprintDoc, description = "The whole blueprint"),
    responses((status = 200, description = "`{\"ok\":true,\"blueprint\":…}`", body = docs::BlueprintAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let blueprint = state.catalog.replace_blueprint(&api_trigger(&principal, None), &identifier, doc).await?;
    Ok(ok("blueprint", blueprint.to_json()))
}

/// Update part of a blueprint: top-level keys replace; `schema.properties`, `relations` and
/// the other keyed maps merge by key (`null` removes an entry).
#[utoipa::path(patch, path = "/v1/blueprints/{identifier}", tag = "Blueprints",
    params(("identifier" = String, Path, description = "Blueprint identifier")),
    request_body(content = docs::BlueprintPatch, description = "The keys to change"),
    responses((status = 200, description = "`{\"ok\":true,\"blueprint\":…}`", body = docs::BlueprintAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let blueprint = state.catalog.patch_blueprint(&api_trigger(&principal, None), &identifier, doc).await?;
    Ok(ok("blueprint", blueprint.to_json()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Also delete the blueprint's entities (otherwise a blueprint with entities is not deleted).
    #[serde(default)]
    delete_entities: bool,
}

/// Delete a blueprint.
#[utoipa::path(delete, path = "/v1/blueprints/{identifier}", tag = "Blueprints",
    params(("identifier" = String, Path, description = "Blueprint identifier"), DeleteParams),
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer),
              (status = 404, body = ErrorBody),
              (status = 409, description = "It has entities, or is a relation target", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    state.catalog.delete_blueprint(&api_trigger(&principal, None), &identifier, params.delete_entities).await?;
    Ok(Json(json!({"ok": true})))
}
