//! API errors: Port's body `{"ok": false, "error": code, "message": text}` with the status
//! that the domain error's kind maps to. Internal failures are logged with their cause and
//! answered with a generic message, so nothing about the database leaks to clients.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wharf_core::{Error as DomainError, ErrorKind};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (a 503 while the database is unreachable).
    pub retry_after: Option<u32>,
}

/// What a 503 asks a client to wait before trying again, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 503 with `Retry-After`: the request may succeed once the database is back.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self { retry_after: Some(RETRY_AFTER_SECS), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"ok": false, "error": self.code, "message": self.message}))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let status = match err.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, err.code, err.message)
    }
}

impl From<wharf_engine::Error> for ApiError {
    fn from(err: wharf_engine::Error) -> Self {
        match err {
            wharf_engine::Error::Domain(err) => err.into(),
            wharf_engine::Error::Store(err) if err.is_unique_violation() => {
                Self::new(StatusCode::CONFLICT, "conflict", "a concurrent request created the same resource; retry")
            }
            wharf_engine::Error::Store(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "the database is unavailable");
                Self::unavailable("database_unavailable", "the database cannot be reached now; retry")
            }
            wharf_engine::Error::Store(err) => Self::internal(&err),
            wharf_engine::Error::Unavailable(reason) => {
                tracing::error!(%reason, "service unavailable");
                Self::unavailable("unavailable", "the server cannot take this request now; retry")
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
