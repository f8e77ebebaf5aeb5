//! `/v1/webhooks…`: ingestion webhooks (Port's routes, wrapped as `integration`) and their
//! event log (list, detail, test mapping, replay).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use wharf_core::mapping::WebhookEventStatus;
use wharf_core::time::Timestamp;
use wharf_engine::WebhookEventFilter;

use super::{ErrorBody, api_trigger, ok};
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, JsonBody, Query};
use crate::state::AppState;

const DEFAULT_EVENTS: u32 = 100;
const MAX_EVENTS: u32 = 1000;

/// Create an ingestion webhook.
#[utoipa::path(post, path = "/v1/webhooks", tag = "Webhooks",
    request_body(content = docs::WebhookDoc, description = "Port's webhook: identifier, title, description, icon, enabled, mappings, security, integrationType"),
    responses((status = 201, description = "`{\"ok\":true,\"integration\":…}` with `webhookKey` and `url`", body = docs::WebhookAnswer),
              (status = 409, description = "The identifier is taken", body = ErrorBody),
              (status = 422, description = "Invalid webhook: names the path (`mappings[1].entity.properties.author`) and the jq error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let webhook = state.webhooks.create(&api_trigger(&principal, None), doc).await?;
    Ok((StatusCode::CREATED, ok("integration", webhook)))
}

/// List the organization's webhooks.
#[utoipa::path(get, path = "/v1/webhooks", tag = "Webhooks",
    responses((status = 200, description = "`{\"ok\":true,\"integrations\":[…]}`", body = docs::WebhooksAnswer)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Value>> {
    Ok(ok("integrations", Value::Array(state.webhooks.list(&principal.org_id).await?)))
}

/// Each webhook's identifier, title, icon and last update.
#[utoipa::path(get, path = "/v1/webhooks/metadata", tag = "Webhooks",
    responses((status = 200, description = "`{\"ok\":true,\"integrations\":[{identifier,title,icon,updatedAt}]}`", body = docs::WebhookMetadataAnswer)),
    security(("bearer" = [])))]
pub async fn metadata(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Value>> {
    Ok(ok("integrations", Value::Array(state.webhooks.metadata(&principal.org_id).await?)))
}

/// Get a webhook.
#[utoipa::path(get, path = "/v1/webhooks/{identifier}", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier")),
    responses((status = 200, description = "`{\"ok\":true,\"integration\":…}` (the secret is never returned)", body = docs::WebhookAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Auth(principal): Auth, Path(identifier): Path<String>) -> ApiResult<Json<Value>> {
    Ok(ok("integration", state.webhooks.get(&principal.org_id, &identifier).await?))
}

/// Replace a webhook. The stored secret is kept unless `security.secret` is given (or `null`).
#[utoipa::path(put, path = "/v1/webhooks/{identifier}", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier")),
    request_body(content = docs::WebhookDoc, description = "The whole webhook"),
    responses((status = 200, description = "`{\"ok\":true,\"integration\":…}`", body = docs::WebhookAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("integration", state.webhooks.replace(&api_trigger(&principal, None), &identifier, doc).await?))
}

/// Change some keys of a webhook; the others keep their values.
#[utoipa::path(patch, path = "/v1/webhooks/{identifier}", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier")),
    request_body(content = docs::WebhookPatch, description = "The keys to change"),
    responses((status = 200, description = "`{\"ok\":true,\"integration\":…}`", body = docs::WebhookAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(ok("integration", state.webhooks.patch(&api_trigger(&principal, None), &identifier, doc).await?))
}

/// Delete a webhook and its events.
#[utoipa::path(delete, path = "/v1/webhooks/{identifier}", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier")),
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
) -> ApiResult<Json<Value>> {
    state.webhooks.delete(&api_trigger(&principal, None), &identifier).await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Only events with this status (`PENDING`, `SUCCESS`, `PARTIAL`, `FAILURE`, `FILTERED`, `REJECTED`).
    status: Option<String>,
    /// Events received at or after this time (ISO 8601).
    from: Option<String>,
    /// Events received at or before this time (ISO 8601).
    to: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

fn status(text: &str) -> Result<WebhookEventStatus, ApiError> {
    WebhookEventStatus::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!("`status={text}`: expected PENDING, SUCCESS, PARTIAL, FAILURE, FILTERED or REJECTED"),
        )
    })
}

fn time(key: &str, text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(text)
        .ok_or_else(|| ApiError::bad_request("invalid_query", format!("`{key}={text}`: expected an ISO 8601 date-time")))
}

impl EventsParams {
    fn filter(&self) -> Result<WebhookEventFilter, ApiError> {
        Ok(WebhookEventFilter {
            status: self.status.as_deref().map(status).transpose()?,
            from: self.from.as_deref().map(|t| time("from", t)).transpose()?,
            to: self.to.as_deref().map(|t| time("to", t)).transpose()?,
            before: self
                .cursor
                .as_deref()
                .map(|c| {
                    c.parse::<i64>().map_err(|_| {
                        ApiError::bad_request("invalid_query", format!("`cursor={c}` is not a cursor this API gave"))
                    })
                })
                .transpose()?,
        })
    }
}

/// A webhook's events, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{identifier}/events", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier"), EventsParams),
    responses((status = 200, description = "`{\"ok\":true,\"events\":[{id,status,receivedAt,processedAt,requestId,entities,errors}],\"next\"}`", body = docs::EventsAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    Query(params): Query<EventsParams>,
) -> ApiResult<Json<Value>> {
    let limit = params.limit.unwrap_or(DEFAULT_EVENTS);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(ApiError::bad_request("invalid_query", format!("`limit={limit}`: expected 1 to {MAX_EVENTS}")));
    }
    let (events, next) = state.webhooks.events(&principal.org_id, &identifier, &params.filter()?, limit).await?;
    Ok(Json(json!({"ok": true, "events": events, "next": next})))
}

/// One event: the request as received (headers, query, body) and the mapping result.
#[utoipa::path(get, path = "/v1/webhooks/{identifier}/events/{event_id}", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier"), ("event_id" = String, Path, description = "Event id (`whe_…`)")),
    responses((status = 200, description = "`{\"ok\":true,\"event\":{id,status,request,result,…}}`", body = docs::EventAnswer),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((identifier, event_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(ok("event", state.webhooks.event(&principal.org_id, &identifier, &event_id).await?))
}

/// Map one stored event again, with the current mappings.
#[utoipa::path(post, path = "/v1/webhooks/{identifier}/events/{event_id}/replay", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier"), ("event_id" = String, Path, description = "Event id")),
    responses((status = 202, description = "`{\"ok\":true,\"replayed\":1}`: the event is pending again", body = docs::ReplayedAnswer),
              (status = 404, body = ErrorBody), (status = 409, description = "A rejected event has no request to replay", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay_event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((identifier, event_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let replayed = state.webhooks.replay(&principal.org_id, &identifier, Some(&event_id), &WebhookEventFilter::default()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"ok": true, "replayed": replayed}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRange {
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
}

/// Map again every stored event received between `from` and `to` (ISO 8601, both optional),
/// optionally only those with `status`.
#[utoipa::path(post, path = "/v1/webhooks/{identifier}/replay", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier")),
    request_body(content = docs::ReplayDoc, description = "`{\"from\", \"to\", \"status\"}`, each optional"),
    responses((status = 202, description = "`{\"ok\":true,\"replayed\":N}`", body = docs::ReplayedAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let range: ReplayRange = wharf_core::json::from_value(doc, "invalid_request", "replay range")?;
    let filter = WebhookEventFilter {
        status: range.status.as_deref().map(status).transpose()?,
        from: range.from.as_deref().map(|t| time("from", t)).transpose()?,
        to: range.to.as_deref().map(|t| time("to", t)).transpose()?,
        before: None,
    };
    let replayed = state.webhooks.replay(&principal.org_id, &identifier, None, &filter).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"ok": true, "replayed": replayed}))))
}

/// Port's "Test mapping": what the mappings would write for an event, without writing.
#[utoipa::path(post, path = "/v1/webhooks/{identifier}/test", tag = "Webhooks",
    params(("identifier" = String, Path, description = "Webhook identifier")),
    request_body(content = docs::TestDoc, description = "`{\"eventId\"}` or `{\"body\",\"headers\",\"queryParams\"}`, and optionally proposed `mappings`"),
    responses((status = 200, description = "`{\"ok\":true,\"status\",\"entities\":[…],\"errors\":[…]}`", body = docs::TestAnswer),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(identifier): Path<String>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let result = state.webhooks.test(&principal.org_id, &identifier, &doc).await?;
    let mut body = serde_json::Map::new();
    body.insert("ok".into(), Value::Bool(true));
    if let Value::Object(fields) = result {
        body.extend(fields);
    }
    Ok(Json(Value::Object(body)))
}
