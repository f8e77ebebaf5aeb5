//! Operations: liveness, readiness, metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ErrorBody;
use crate::docs;
use crate::state::AppState;
use wharf_engine::Readiness;

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "Operations", responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// Readiness: the store answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "Operations",
    responses((status = 200, description = "`{\"ok\":true}`", body = docs::OkAnswer),
              (status = 503, description = "Store unreachable, migrations pending, or read-only", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let not_ready =
        |message: String| (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ok": false, "error": "not_ready", "message": message})));
    match state.catalog.readiness().await {
        Ok(Readiness::Ready) => (StatusCode::OK, Json(json!({"ok": true}))),
        Ok(Readiness::MigrationsPending { applied, known }) => {
            not_ready(format!("the database has {applied} of this build's {known} migrations: run `wharf migrate` or restart"))
        }
        Ok(Readiness::ReadOnly) => not_ready("the database cannot be written (a read-only file or session)".into()),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            not_ready("the database is unreachable".into())
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "Operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The gauges read from the database are read at each scrape.
    if let Err(err) = state.runs.observe_agent_queue().await {
        tracing::warn!(error = %err, "cannot read the runs waiting for agents");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// This document: the OpenAPI 3.1 description of every route, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations", responses((status = 200, description = "OpenAPI 3.1 JSON", body = docs::OpenApiDocument)))]
pub async fn openapi_json() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = DOCUMENT.get_or_init(|| crate::openapi().to_string());
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}
