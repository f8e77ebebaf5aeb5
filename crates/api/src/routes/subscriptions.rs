//! `/organizations/{organizationId}/projects/{projectId}/settings/webhooks…` (seed 004): a
//! project's webhook subscriptions, their signing secrets, and their deliveries with the
//! attempts of each, resend and recover.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use wharf_core::delivery::{Attempt, Delivery, DeliveryFilter, DeliveryStatus};

use super::ErrorBody;
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, JsonBody, Query, parse_json};
use crate::state::AppState;

const DEFAULT_DELIVERIES: u32 = 100;
const MAX_DELIVERIES: u32 = 1000;

/// Create a webhook: its signing secret (`whsec_…`) is in the answer.
#[utoipa::path(post, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id")),
    request_body(content = docs::SubscriptionDoc, description = "`name` and `url` (http/https) required, `headers` (object of strings; values are secrets, sealed at rest and shown as `[redacted]`, except those named in `headersNotSecret`), `headersNotSecret` (header names shown in clear), `active` (default true), `events` (non-empty: types or patterns, `*` matches one segment, a lone `*` everything)"),
    responses((status = 201, description = "The webhook: `_id`, `name`, `url`, `headers`, `active`, `events`, `createdAt`, `updatedAt`, and `secret`", body = docs::CreatedSubscription),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "`headersNotSecret` names a header the webhook lacks, a masked value has no stored secret to keep, or (on create) the organization has its most webhooks", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project)): Path<(String, String)>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let (subscription, secret) = state.projects.create_subscription(&org, &project, doc).await?;
    let mut body = subscription.to_json();
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// List a project's webhooks.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id")),
    responses((status = 200, description = "An array of webhooks (without secrets)", body = docs::Subscriptions), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let subscriptions = state.projects.subscriptions(&org, &project).await?;
    Ok(Json(Value::Array(subscriptions.iter().map(|s| s.to_json()).collect())))
}

/// Get a webhook.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook (`disabledReason` when Wharf disabled it)", body = docs::Subscription),
              (status = 400, description = "Malformed id", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok(Json(state.projects.subscription(&org, &project, &id).await?.to_json()))
}

/// Change some fields of a webhook; `"active": true` re-enables one Wharf disabled.
#[utoipa::path(patch, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id")),
    request_body(content = docs::SubscriptionPatch, description = "Any of `name`, `url`, `headers`, `headersNotSecret`, `active`, `events`; a header sent back as `[redacted]` keeps its stored value"),
    responses((status = 200, description = "The webhook", body = docs::Subscription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "`headersNotSecret` names a header the webhook lacks, a masked value has no stored secret to keep, or (on create) the organization has its most webhooks", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
    JsonBody(doc): JsonBody,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok(Json(state.projects.patch_subscription(&org, &project, &id, doc).await?.to_json()))
}

/// Delete a webhook with its deliveries.
#[utoipa::path(delete, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    state.projects.delete_subscription(&org, &project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's current signing secret.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/secret", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "`{\"key\": \"whsec_…\"}`", body = docs::SecretAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn secret(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    Ok(Json(json!({"key": state.projects.secret(&org, &project, &id).await?})))
}

/// Rotate the signing secret. The old secret keeps signing (deliveries carry both
/// signatures) for `gracePeriodSeconds` (default 86400, at most 604800).
#[utoipa::path(post, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/secret/rotate", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id")),
    request_body(content = docs::RotateDoc, description = "Optional: `{\"key\"?: \"whsec_…\", \"gracePeriodSeconds\"?: n}`"),
    responses((status = 200, description = "`{\"key\": \"whsec_…\"}`: the new secret", body = docs::SecretAnswer),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let doc = if body.iter().all(u8::is_ascii_whitespace) { None } else { Some(parse_json(&body)?) };
    Ok(Json(json!({"key": state.projects.rotate_secret(&org, &project, &id, doc).await?})))
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Only deliveries with this status (`pending`, `succeeded`, `failed`).
    status: Option<String>,
    /// Only the deliveries of this event (its `id` as published): the first and its resends.
    #[serde(rename = "eventId")]
    event_id: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<i64>,
}

/// The webhook's deliveries, newest first.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id"), DeliveriesParams),
    responses((status = 200, description = "An array of deliveries: `id`, `eventId`, `eventType`, `status`, `attempts`, `nextAttemptAt`, `lastStatusCode`, `lastError`; the `x-next-cursor` header pages", body = docs::Deliveries),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
    Query(params): Query<DeliveriesParams>,
) -> ApiResult<([(String, String); 1], Json<Value>)> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let limit = params.limit.unwrap_or(DEFAULT_DELIVERIES);
    if limit == 0 || limit > MAX_DELIVERIES {
        return Err(ApiError::bad_request("invalid_query", format!("`limit={limit}`: expected 1 to {MAX_DELIVERIES}")));
    }
    let status = params
        .status
        .as_deref()
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("`status={s}`: expected pending, succeeded or failed"))
            })
        })
        .transpose()?;
    let filter = DeliveryFilter { status, event_id: params.event_id.as_deref() };
    let found = state.projects.deliveries(&org, &project, &id, filter, params.cursor, limit).await?;
    let next = if found.len() == limit as usize { found.last().map(|d| d.seq.to_string()) } else { None };
    Ok(([("x-next-cursor".to_owned(), next.unwrap_or_default())], Json(Value::Array(found.iter().map(delivery_json).collect()))))
}

/// One delivery, with the body every attempt of it sends (`payload`: the event's data as
/// published; the `webhook-*` headers are made at each attempt and not kept).
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries/{deliveryId}", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id"), ("deliveryId" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses((status = 200, description = "The delivery and its `payload`", body = docs::DeliverySent), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delivery(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id, delivery)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let (found, payload) = state.projects.delivery_sent(&org, &project, &id, &delivery).await?;
    let mut out = delivery_json(&found);
    // Stored as the JSON text that was published; sent as is.
    out["payload"] = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    Ok(Json(out))
}

/// A delivery's attempts, oldest first: time, duration, status, response headers and the
/// first 64 KiB of the body, error class and message.
#[utoipa::path(get, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries/{deliveryId}/attempts", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id"), ("deliveryId" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses((status = 200, description = "An array of attempts", body = docs::Attempts), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn attempts(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id, delivery)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let attempts = state.projects.attempts(&org, &project, &id, &delivery).await?;
    Ok(Json(Value::Array(attempts.iter().map(attempt_json).collect())))
}

/// Send a delivery's event again, once (same `webhook-id`, so receivers can deduplicate).
#[utoipa::path(post, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/deliveries/{deliveryId}/resend", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id"), ("deliveryId" = String, Path, description = "Delivery id")),
    responses((status = 202, description = "The new delivery", body = docs::Delivery), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resend(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id, delivery)): Path<(String, String, String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let new = state.projects.resend(&org, &project, &id, &delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_json(&new))))
}

/// Send again every event whose deliveries created between `since` and `until` (default:
/// now) all failed, with the full retry schedule.
#[utoipa::path(post, path = "/organizations/{organizationId}/projects/{projectId}/settings/webhooks/{webhookId}/recover", tag = "Project webhooks",
    params(("organizationId" = String, Path, description = "Organization id"), ("projectId" = String, Path, description = "Project id"),
           ("webhookId" = String, Path, description = "Webhook id")),
    request_body(content = docs::RecoverDoc, description = "`{\"since\": \"2026-01-01T00:00:00Z\", \"until\"?: …}`"),
    responses((status = 202, description = "`{\"recovered\": N}`", body = docs::RecoveredAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn recover(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((org, project, id)): Path<(String, String, String)>,
    JsonBody(doc): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = state.projects.organization(&principal.org_id, &org)?;
    let recovered = state.projects.recover(&org, &project, &id, doc).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"recovered": recovered}))))
}

/// A delivery as the API shows it.
fn delivery_json(d: &Delivery) -> Value {
    let mut out = json!({
        "id": d.id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "manual": !d.retries,
        "createdAt": d.created_at.to_iso(),
        "updatedAt": d.updated_at.to_iso(),
    });
    if d.status == DeliveryStatus::Pending {
        out["nextAttemptAt"] = json!(d.next_attempt_at.to_iso());
    }
    if let Some(status) = d.last_status {
        out["lastStatusCode"] = json!(status);
    }
    if let Some(error) = &d.last_error {
        out["lastError"] = json!(error);
    }
    out
}

/// An attempt as the API shows it.
fn attempt_json(a: &Attempt) -> Value {
    let headers = a.response_headers.as_deref().and_then(|h| serde_json::from_str::<Value>(h).ok());
    json!({
        "id": a.id,
        "attemptedAt": a.attempted_at.to_iso(),
        "durationMs": a.duration_ms,
        "url": a.url,
        "outcome": a.outcome,
        "statusCode": a.status_code,
        "responseHeaders": headers,
        "responseBody": a.response_body,
        "error": a.error,
    })
}
