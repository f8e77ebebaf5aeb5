//! `POST /ingest/{webhookKey}`: where tools send their webhooks. Authenticated by the key and
//! the webhook's signature settings, not by tokens. The steps and their order are SPEC §6's;
//! the rules are in the core and the engine's `Ingestor`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use wharf_core::ingest::{form_object, headers_object};
use wharf_engine::webhooks::{IngestRequest, Ingested};

use super::{Document, ErrorBody};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Receive an event.
#[utoipa::path(post, path = "/ingest/{webhook_key}", tag = "Ingest",
    params(("webhook_key" = String, Path, description = "The webhook's key (from its `url`)")),
    request_body(content = Document, description = "Any body: JSON, form-encoded (GitHub's `payload` field is parsed), or text"),
    responses((status = 202, description = "`{\"ok\":true,\"eventId\"}`; a repeat: `{\"ok\":true,\"duplicate\":true,\"eventId\"}`; disabled: `{\"ok\":true,\"ignored\":\"webhook disabled\"}`", body = Document),
              (status = 400, description = "A JSON content type with a body that is not JSON", body = ErrorBody),
              (status = 401, description = "Missing or wrong signature", body = ErrorBody),
              (status = 404, description = "No webhook has this key", body = ErrorBody),
              (status = 413, description = "The body is over the ingest limit (512 KiB by default)", body = ErrorBody)))]
pub async fn post(
    state: State<AppState>,
    key: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ingest(state, key, query, headers, body).await
}

/// Receive an event sent with `PUT` (same as `POST`).
#[utoipa::path(put, path = "/ingest/{webhook_key}", tag = "Ingest",
    params(("webhook_key" = String, Path, description = "The webhook's key")),
    request_body(content = Document, description = "Any body"),
    responses((status = 202, description = "As for POST", body = Document), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put(
    state: State<AppState>,
    key: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ingest(state, key, query, headers, body).await
}

async fn ingest(
    State(state): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ingestor = &state.ingestor;
    if !ingestor.knows(&key) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", "no webhook has this ingest URL"));
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
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = IngestRequest {
        headers: headers_object(headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))),
        query: form_object(query.unwrap_or_default().as_bytes()),
        body: &bytes,
    };
    Ok(match ingestor.ingest(&key, content_type.as_deref(), request).await? {
        Ingested::Accepted { event_id } => (StatusCode::ACCEPTED, Json(json!({"ok": true, "eventId": event_id}))),
        Ingested::Duplicate { event_id } => {
            (StatusCode::ACCEPTED, Json(json!({"ok": true, "duplicate": true, "eventId": event_id})))
        }
        Ingested::Disabled => (StatusCode::ACCEPTED, Json(json!({"ok": true, "ignored": "webhook disabled"}))),
        Ingested::Rejected { event_id, reason } => (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"ok": false, "error": "invalid_signature", "message": format!("{reason} (event {event_id} recorded as REJECTED)")}),
            ),
        ),
    })
}
