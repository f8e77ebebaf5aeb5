//! `/v1/blueprints/{blueprint}/entities…` and `/v1/entities/search`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use wharf_core::Error as DomainError;
use wharf_core::entity::WriteMode;
use wharf_core::projection::Projection;
use wharf_core::search::SearchRequest;
use wharf_engine::catalog::WriteOptions;

use super::{ErrorBody, api_trigger, ok};
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, CausingRun, JsonBody, Projected, Query, Shaped};
use crate::state::AppState;

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// Update the entity when it exists (otherwise an existing identifier is a 409).
    #[serde(default)]
    upsert: bool,
    /// With `upsert`: change only the fields sent, keep the others.
    #[serde(default)]
    merge: bool,
    /// Validate and return the result without writing anything.
    #[serde(default)]
    validation_only: bool,
    /// Create related entities that do not exist yet, with only their identifier.
    #[serde(default)]
    create_missing_related_entities: bool,
    /// The action run this write belongs to (recorded with the change).
    run_id: Option<String>,
}

impl WriteParams {
    fn mode(&self) -> WriteMode {
        WriteMode::for_post(self.upsert, self.merge)
    }

    fn options(&self) -> WriteOptions {
        WriteOptions {
            create_missing_related_entities: self.create_missing_related_entities,
            validation_only: self.validation_only,
        }
    }
}

/// Create (or with `upsert`, update) an entity.
#[utoipa::path(post, path = "/v1/blueprints/{blueprint}/entities", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), WriteParams),
    request_body(content = docs::EntityDoc, description = "Port's entity: identifier, title, icon, team, properties, relations"),
    responses((status = 201, description = "`{\"ok\":true,\"entity\":…}`", body = docs::EntityAnswer),
              (status = 200, description = "With `validation_only` (nothing is written): `{\"ok\":true,\"entity\":…}`", body = docs::EntityAnswer),
              (status = 404, description = "No such blueprint", body = ErrorBody),
              (status = 409, description = "Exists (without upsert)", body = ErrorBody),
              (status = 422, description = "Does not match the schema", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    CausingRun(cause): CausingRun,
    Path(blueprint): Path<String>,
    Query(params): Query<WriteParams>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let trigger = api_trigger(&principal, params.run_id.as_deref().or(cause.as_deref()));
    let write = state.catalog.write_entity(&trigger, &blueprint, None, &doc, params.mode(), params.options()).await?;
    let status = if params.validation_only { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, ok("entity", write.entity.to_json())))
}

/// Create or update up to 20 entities; each succeeds or fails on its own.
#[utoipa::path(post, path = "/v1/blueprints/{blueprint}/entities/bulk", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), WriteParams),
    request_body(content = docs::BulkDoc, description = "`{\"entities\": [entity, …]}`, at most 20"),
    responses((status = 200, description = "All written: `{\"ok\":true,\"entities\":[{identifier,index,created}],\"errors\":[]}`", body = docs::BulkAnswer),
              (status = 207, description = "Some failed: `errors` lists them with index, statusCode, error, message", body = docs::BulkAnswer),
              (status = 422, description = "Not a list of 1 to 20 entities", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn bulk(
    State(state): State<AppState>,
    Auth(principal): Auth,
    CausingRun(cause): CausingRun,
    Path(blueprint): Path<String>,
    Query(params): Query<WriteParams>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(Value::Array(docs)) = doc.get("entities") else {
        return Err(DomainError::invalid("invalid_bulk", "the body must be {\"entities\": [ … ]}").into());
    };
    let trigger = api_trigger(&principal, params.run_id.as_deref().or(cause.as_deref()));
    let results = state.catalog.write_entities(&trigger, &blueprint, docs, params.mode(), params.options()).await?;
    let (mut entities, mut errors) = (Vec::new(), Vec::new());
    for (index, (result, doc)) in results.into_iter().zip(docs).enumerate() {
        match result {
            Ok(write) => entities.push(json!({"identifier": write.entity.identifier, "index": index, "created": write.created})),
            Err(err) => {
                let err = ApiError::from(err);
                errors.push(json!({
                    "identifier": doc.get("identifier"), "index": index,
                    "statusCode": err.status.as_u16(), "error": err.code, "message": err.message,
                }));
            }
        }
    }
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(json!({"ok": true, "entities": entities, "errors": errors}))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size (1 to 10000). Without it, every entity is returned, as in Port.
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    from: Option<String>,
}

/// Port's `include` and `exclude` query parameters, as [`Projected`] reads them (documentation
/// only).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ProjectionParams {
    /// Paths of each entity to keep, the parameter repeated for each: `identifier`,
    /// `properties.stars`, `$createdAt`. Without it, everything is kept.
    include: Option<Vec<String>>,
    /// Paths of each entity to leave out, the parameter repeated for each.
    exclude: Option<Vec<String>>,
}

/// Port's `exclude_calculated_properties` and `attach_title_to_relation`, as [`Shaped`] reads
/// them (documentation only).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ShapeParams {
    /// `true`: leave out the values of the blueprint's mirror and calculation properties, which
    /// each entity otherwise carries in `properties` (computed when read).
    exclude_calculated_properties: Option<bool>,
    /// `true`: each related entity as `{"identifier", "title"}` instead of its identifier.
    attach_title_to_relation: Option<bool>,
}

/// List a blueprint's entities in identifier order.
#[utoipa::path(get, path = "/v1/blueprints/{blueprint}/entities", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), ListParams, ProjectionParams, ShapeParams),
    responses((status = 200, description = "`{\"ok\":true,\"entities\":[…],\"next\"?}`; `next` is present when more remain", body = docs::EntitiesAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(blueprint): Path<String>,
    Query(params): Query<ListParams>,
    Projected(projection): Projected,
    Shaped(shape): Shaped,
) -> ApiResult<Json<Value>> {
    let limit = match params.limit {
        Some(limit @ 1..=10_000) => limit,
        Some(other) => {
            return Err(ApiError::bad_request("invalid_query", format!("`limit` must be between 1 and 10000, not {other}")));
        }
        None => u32::MAX - 1,
    };
    let (page, next) = state.catalog.entities_page(&principal.org_id, &blueprint, params.from.as_deref(), limit, shape).await?;
    Ok(entities_answer(page, next, &projection))
}

/// Get one entity.
#[utoipa::path(get, path = "/v1/blueprints/{blueprint}/entities/{identifier}", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), ("identifier" = String, Path, description = "Entity identifier"), ProjectionParams, ShapeParams),
    responses((status = 200, description = "`{\"ok\":true,\"entity\":…}`", body = docs::EntityAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((blueprint, identifier)): Path<(String, String)>,
    Projected(projection): Projected,
    Shaped(shape): Shaped,
) -> ApiResult<Json<Value>> {
    let entity = state.catalog.entity(&principal.org_id, &blueprint, &identifier, shape).await?;
    Ok(ok("entity", projection.apply(entity)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateParams {
    /// Create related entities that do not exist yet.
    #[serde(default)]
    create_missing_related_entities: bool,
    /// The action run this write belongs to.
    run_id: Option<String>,
}

async fn update(
    state: &AppState,
    trigger: &wharf_core::change::Trigger,
    blueprint: &str,
    identifier: &str,
    params: UpdateParams,
    doc: &Value,
    mode: WriteMode,
) -> ApiResult<Json<Value>> {
    let options =
        WriteOptions { create_missing_related_entities: params.create_missing_related_entities, validation_only: false };
    let write = state.catalog.write_entity(trigger, blueprint, Some(identifier), doc, mode, options).await?;
    Ok(ok("entity", write.entity.to_json()))
}

/// Change the fields sent; the others keep their values.
#[utoipa::path(patch, path = "/v1/blueprints/{blueprint}/entities/{identifier}", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), ("identifier" = String, Path, description = "Entity identifier"), UpdateParams),
    request_body(content = docs::EntityDoc, description = "The fields to change"),
    responses((status = 200, description = "`{\"ok\":true,\"entity\":…}`", body = docs::EntityAnswer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    CausingRun(cause): CausingRun,
    Path((blueprint, identifier)): Path<(String, String)>,
    Query(params): Query<UpdateParams>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let trigger = api_trigger(&principal, params.run_id.as_deref().or(cause.as_deref()));
    update(&state, &trigger, &blueprint, &identifier, params, &doc, WriteMode::Patch).await
}

/// Replace the entity with what is sent.
#[utoipa::path(put, path = "/v1/blueprints/{blueprint}/entities/{identifier}", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), ("identifier" = String, Path, description = "Entity identifier"), UpdateParams),
    request_body(content = docs::EntityDoc, description = "The whole entity"),
    responses((status = 200, description = "`{\"ok\":true,\"entity\":…}`", body = docs::EntityAnswer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    CausingRun(cause): CausingRun,
    Path((blueprint, identifier)): Path<(String, String)>,
    Query(params): Query<UpdateParams>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let trigger = api_trigger(&principal, params.run_id.as_deref().or(cause.as_deref()));
    update(&state, &trigger, &blueprint, &identifier, params, &doc, WriteMode::Replace).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Also delete the entities that relate to this one.
    #[serde(default)]
    delete_dependents: bool,
    /// The action run this delete belongs to.
    run_id: Option<String>,
}

/// Delete an entity.
#[utoipa::path(delete, path = "/v1/blueprints/{blueprint}/entities/{identifier}", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), ("identifier" = String, Path, description = "Entity identifier"), DeleteParams),
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer), (status = 404, body = ErrorBody),
              (status = 409, description = "Entities depend on it through required relations", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    CausingRun(cause): CausingRun,
    Path((blueprint, identifier)): Path<(String, String)>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    let trigger = api_trigger(&principal, params.run_id.as_deref().or(cause.as_deref()));
    state.catalog.delete_entity(&trigger, &blueprint, &identifier, params.delete_dependents).await?;
    Ok(Json(json!({"ok": true})))
}

/// A page of answered entities as the request's projection keeps them, with the `next` of the
/// page when more remain (a list's or a search's).
fn entities_answer(answered: Vec<Value>, next: Option<String>, projection: &Projection) -> Json<Value> {
    let mut body = json!({"ok": true, "entities": answered.into_iter().map(|e| projection.apply(e)).collect::<Vec<_>>()});
    if let Some(next) = next {
        body["next"] = Value::String(next);
    }
    Json(body)
}

/// Search a blueprint's entities.
#[utoipa::path(post, path = "/v1/blueprints/{blueprint}/entities/search", tag = "Entities",
    params(("blueprint" = String, Path, description = "Blueprint identifier"), ShapeParams),
    request_body(content = docs::SearchDoc, description = "`{\"query\": {combinator, rules}, \"limit\"?, \"from\"?, \"include\"?, \"exclude\"?}` (or `{combinator, rules}`); operators =, !=, >, >=, <, <=, in, notIn, contains, containsAny, doesNotContains, beginsWith, endsWith, isEmpty, isNotEmpty, exists, between, notBetween, relatedTo"),
    responses((status = 200, description = "`{\"ok\":true,\"entities\":[…],\"next\"?}`, ordered by identifier; `next` is present when more match than `limit`", body = docs::EntitiesAnswer),
              (status = 404, description = "No such blueprint", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn search_blueprint(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(blueprint): Path<String>,
    Shaped(shape): Shaped,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let SearchRequest { query, page, projection } = SearchRequest::parse(&body)?;
    let (answered, next) = state.catalog.search_answer(&principal.org_id, Some(&blueprint), query, &page, shape).await?;
    Ok(entities_answer(answered, next, &projection))
}

/// Search entities of every blueprint.
#[utoipa::path(post, path = "/v1/entities/search", tag = "Entities",
    params(ProjectionParams, ShapeParams),
    request_body(content = docs::SearchDoc, description = "`{combinator, rules}`, as for a blueprint's search, and its page (`{\"query\": …, \"limit\", \"from\"}`)"),
    responses((status = 200, description = "`{\"ok\":true,\"entities\":[…],\"next\"?}`, ordered by blueprint and identifier", body = docs::EntitiesAnswer), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Projected(in_query): Projected,
    Shaped(shape): Shaped,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let SearchRequest { query, page, projection } = SearchRequest::parse(&body)?;
    let projection = projection.or(in_query);
    let (answered, next) = state.catalog.search_answer(&principal.org_id, None, query, &page, shape).await?;
    Ok(entities_answer(answered, next, &projection))
}
