//! `POST /ingest/{webhookKey}`: where tools send their webhooks. Authenticated by the key and
//! the webhook's signature settings, not by tokens. The steps and their order are SPEC §6's;
//! the rules are in the core and the engine's `Ingestor`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use wharf_core::ingest::{form_object, headers_object};
use wharf_core::project::{MAX_DELIVERY_HOPS, is_change_delivery};
use wharf_engine::webhooks::{IngestRequest, Ingested};

use super::ErrorBody;
use crate::docs;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Receive an event.
#[utoipa::path(post, path = "/ingest/{webhook_key}", tag = "Ingest",
    params(("webhook_key" = String, Path, description = "The webhook's key (from its `url`)")),
    request_body(content = docs::IngestBody, description = "Any body: JSON, form-encoded (GitHub's `payload` field is parsed), or text"),
    responses((status = 202, description = "`{\"ok\":true,\"eventId\"}`; a repeat: `{\"ok\":true,\"duplicate\":true,\"eventId\"}`; disabled: `{\"ok\":true,\"ignored\":\"webhook disabled\"}`", body = docs::IngestAnswer),
              (status = 400, description = "A JSON content type with a body that is not JSON", body = ErrorBody),
              (status = 401, description = "Missing or wrong signature", body = ErrorBody),
              (status = 404, description = "No webhook has this key", body = ErrorBody),
              (status = 413, description = "The body is over the ingest limit (512 KiB by default)", body = ErrorBody),
              (status = 508, description = "The sixth hop of a delivery loop (a `webhook-id` naming an entity change whose chain through this ingest endpoint is 5 hops long)", body = ErrorBody)))]
pub async fn post(
    state: State<AppState>,
    key: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    ingest(state, key, query, headers, body).await
}

/// Receive an event sent with `PUT` (same as `POST`).
#[utoipa::path(put, path = "/ingest/{webhook_key}", tag = "Ingest",
    params(("webhook_key" = String, Path, description = "The webhook's key")),
    request_body(content = docs::IngestBody, description = "Any body"),
    responses((status = 202, description = "As for POST", body = docs::IngestAnswer), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 508, description = "As for POST", body = ErrorBody)))]
pub async fn put(
    state: State<AppState>,
    key: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    ingest(state, key, query, headers, body).await
}

async fn ingest(
    State(state): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    receive(&state, &key, query.as_deref(), headers, body).await
}

/// What an accepted (or ignored) event is answered with.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    ok: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<&'static str>,
}

/// The endpoint, for the route above and for the ingest lane (`app.rs`).
pub(crate) async fn receive(
    state: &AppState,
    key: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Receipt>)> {
    let ingestor = &state.ingestor;
    if !ingestor.knows(key).await {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", "no webhook has this ingest URL"));
    }
    // Invariant: a chain subscription → ingestion → entity change → subscription is cut
    // after MAX_DELIVERY_HOPS; the refusal is recorded as the delivering attempt's answer.
    if let Some(delivery) = headers.get("webhook-id").and_then(|v| v.to_str().ok()).filter(|id| is_change_delivery(id)) {
        let hop = state.projects.delivery_hop(delivery).await?;
        if hop > MAX_DELIVERY_HOPS {
            return Err(ApiError::new(
                StatusCode::LOOP_DETECTED,
                "loop_detected",
                format!(
                    "this request would be hop {hop} of a delivery loop (a subscription delivering entity changes to \
                     this ingest URL, whose mapping changes entities again); Wharf cuts such chains after \
                     {MAX_DELIVERY_HOPS} hops"
                ),
            ));
        }
    }
    let limit = ingestor.body_limit();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        if std::error::Error::source(&err).is_some_and(|e| e.is::<http_body_util::LengthLimitError>()) {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than the {limit}-byte ingest limit"),
            )
        } else {
            ApiError::bad_request("invalid_body", format!("the body could not be read: {err}"))
        }
    })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let request = IngestRequest {
        headers: headers_object(headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))),
        query: form_object(query.unwrap_or_default().as_bytes()),
        body: &bytes,
    };
    let receipt = |event_id: String, duplicate| Receipt { ok: true, duplicate, event_id: Some(event_id), ignored: None };
    Ok(match ingestor.ingest(key, content_type, request).await? {
        Ingested::Accepted { event_id } => (StatusCode::ACCEPTED, Json(receipt(event_id, false))),
        Ingested::Duplicate { event_id } => (StatusCode::ACCEPTED, Json(receipt(event_id, true))),
        Ingested::Disabled => (
            StatusCode::ACCEPTED,
            Json(Receipt { ok: true, duplicate: false, event_id: None, ignored: Some("webhook disabled") }),
        ),
        Ingested::Rejected { event_id, reason } => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                format!("{reason} (event {event_id} recorded as REJECTED)"),
            ));
        }
    })
}
