//! Extractors whose failures are Port-shaped errors: JSON bodies (400 naming the line and
//! column of a syntax error, 413 over the limit), query strings, and the Bearer principal.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wharf_core::projection::Projection;
use wharf_engine::catalog::AnswerShape;
use wharf_engine::tenancy::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// A request body parsed as JSON (any content type: Port clients are not always careful).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A request body as bytes, with [`JsonBody`]'s errors for a body over the limit or cut off.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(body_error)
    }
}

pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty; send a JSON document"));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "the request body is not valid JSON: {} (line {}, column {})",
                strip_position(&err),
                err.line(),
                err.column()
            ),
        )
    })
}

/// serde_json's message without its own " at line X column Y" suffix (we add ours).
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the limit (1 MiB by default)",
        )
    } else {
        ApiError::bad_request("invalid_body", rejection.body_text())
    }
}

/// Query parameters, with a 400 naming the parameter that does not parse.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|err| {
            ApiError::bad_request("invalid_query", format!("invalid query parameter `{}`: {}", err.path(), err.inner()))
        })
    }
}

/// The run whose call of Wharf's own API this request is (`X-Wharf-Run-Id`, set by the
/// invoker's self calls): what the request does continues that run's chain.
pub struct CausingRun(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for CausingRun {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let run = parts.headers.get(wharf_core::run::CAUSING_RUN_HEADER).and_then(|v| v.to_str().ok());
        Ok(CausingRun(run.filter(|r| !r.is_empty() && r.len() <= 64).map(str::to_owned)))
    }
}

/// The authenticated caller: `Authorization: Bearer <token>` from `/v1/auth/access_token`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing `Authorization: Bearer <token>`; get a token from POST /v1/auth/access_token",
                )
            })?;
        Ok(Auth(state.tenancy.authenticate(token).await?))
    }
}

/// The request's query string as `(key, value)` pairs, in order, repeated keys kept.
fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
        .map_err(|err| ApiError::bad_request("invalid_query", format!("invalid query string: {err}")))
}

/// Port's `include` and `exclude` query parameters, each repeated or spelt `include[]`: what
/// each entity of the answer keeps. A path that cannot be one is a 422 naming it.
pub struct Projected(pub Projection);

impl<S: Send + Sync> FromRequestParts<S> for Projected {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (mut include, mut exclude) = (None, Vec::new());
        for (key, path) in query_pairs(parts)? {
            match key.as_str() {
                "include" | "include[]" => include.get_or_insert_with(Vec::new).push(path),
                "exclude" | "exclude[]" => exclude.push(path),
                _ => {}
            }
        }
        Ok(Self(Projection::from_lists(include, exclude)?))
    }
}

/// Port's `exclude_calculated_properties` and `attach_title_to_relation` query parameters:
/// how a read answers each entity ([`AnswerShape`]). Each is `true` or `false`; anything else
/// is a 400 naming it.
pub struct Shaped(pub AnswerShape);

impl<S: Send + Sync> FromRequestParts<S> for Shaped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let flag = |name: &str, value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ApiError::bad_request("invalid_query", format!("`{name}` must be `true` or `false`, not `{other}`"))),
        };
        let mut shape = AnswerShape::default();
        for (key, value) in query_pairs(parts)? {
            match key.as_str() {
                "exclude_calculated_properties" => shape.computed = !flag(&key, &value)?,
                "attach_title_to_relation" => shape.relation_titles = flag(&key, &value)?,
                _ => {}
            }
        }
        Ok(Self(shape))
    }
}
