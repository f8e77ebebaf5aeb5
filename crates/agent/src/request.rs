//! A prepared request, signed and checked, ready to send (`WebhookInvoker._request`).
//!
//! The body is sent as compact JSON, and those exact bytes are signed:
//! `X-Port-Timestamp` (Unix seconds) and `X-Port-Signature: v1,<base64 HMAC-SHA256(client
//! secret, "<timestamp>.<body>")>`. Port's agent signs the compact JSON but sends Python's
//! spaced serialization, so that its receivers must verify a re-serialization; this agent's
//! receivers may verify the raw body as well. A `null` body is signed as `null` and not sent
//! (as Port's agent does).

use serde_json::{Map, Value};
use url::Url;
use wharf_core::signing::port_signature;

use crate::message::type_name;
use crate::payload::Request;

pub const TIMESTAMP_HEADER: &str = "X-Port-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Port-Signature";

/// Why a prepared request cannot be sent. Values are not quoted: they may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request's headers are {0}, not an object")]
    HeadersNotObject(&'static str),
    #[error("the request's method is {0}, not a string")]
    MethodNotString(&'static str),
    #[error("the request's method is not an HTTP method")]
    InvalidMethod,
    #[error("the request's URL is {0}, not a string")]
    UrlNotString(&'static str),
    #[error("the request's URL is not a valid URL: {0}")]
    InvalidUrl(String),
    #[error("the request's URL must be http or https")]
    UnsupportedScheme,
    #[error("the request's header `{0}` is not a valid header name")]
    InvalidHeaderName(String),
    #[error("the request's header `{name}` is {kind}, not a string")]
    HeaderNotText { name: String, kind: &'static str },
    #[error("the request's header `{0}` has a value that cannot be sent in a header")]
    InvalidHeaderValue(String),
    #[error("the request's query is {0}, not an object or a string")]
    QueryNotObject(&'static str),
    #[error("the request's query parameter `{name}` is {kind}, not a string")]
    QueryNotText { name: String, kind: &'static str },
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Upper case (`post` is sent as `POST`).
    pub method: String,
    /// With the query added.
    pub url: Url,
    /// In the order given; `Content-Type: application/json` added for a body when none is.
    pub headers: Vec<(String, String)>,
    /// The compact JSON sent (and signed), or none for a `null` body.
    pub body: Option<Vec<u8>>,
}

/// Signs `request` at `timestamp` (Unix seconds) with `secret`, adding the two headers to its
/// `headers` (as Port's agent does: report expressions see them in `.request.headers`), and
/// checks what it must be to be sent.
pub fn sign(request: &mut Request, secret: &str, timestamp: i64) -> Result<Outgoing, RequestError> {
    let Value::Object(headers) = &mut request.headers else {
        return Err(RequestError::HeadersNotObject(type_name(&request.headers)));
    };
    let body = serde_json::to_vec(&request.body).expect("a JSON value serializes");
    let signature = port_signature(secret.as_bytes(), timestamp, &body);
    headers.insert(TIMESTAMP_HEADER.into(), Value::String(timestamp.to_string()));
    headers.insert(SIGNATURE_HEADER.into(), Value::String(signature));
    let body = (!request.body.is_null()).then_some(body);
    let method = match &request.method {
        Value::String(method) if is_token(method) => method.to_ascii_uppercase(),
        Value::String(_) => return Err(RequestError::InvalidMethod),
        other => return Err(RequestError::MethodNotString(type_name(other))),
    };
    let url = match &request.url {
        Value::String(url) => Url::parse(url.trim()).map_err(|e| RequestError::InvalidUrl(e.to_string()))?,
        other => return Err(RequestError::UrlNotString(type_name(other))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RequestError::UnsupportedScheme);
    }
    let url = with_query(url, &request.query)?;
    let mut outgoing = Vec::with_capacity(headers.len() + 1);
    for (name, value) in headers.iter() {
        if !is_token(name) {
            return Err(RequestError::InvalidHeaderName(name.clone()));
        }
        let Some(text) = text_of(value).map_err(|kind| RequestError::HeaderNotText { name: name.clone(), kind })? else {
            continue;
        };
        if text.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(RequestError::InvalidHeaderValue(name.clone()));
        }
        outgoing.push((name.clone(), text));
    }
    if body.is_some() && !outgoing.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        outgoing.push(("Content-Type".into(), "application/json".into()));
    }
    Ok(Outgoing { method, url, headers: outgoing, body })
}

/// A header's or query parameter's text: strings as they are, numbers and booleans as JSON,
/// `None` for `null` (left out, as `requests` leaves it out); arrays and objects are refused.
fn text_of(value: &Value) -> Result<Option<String>, &'static str> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(_) | Value::Bool(_) => Ok(Some(value.to_string())),
        other => Err(type_name(other)),
    }
}

/// `url` with the query added to its own (`requests`' `params`): an object's parameters (an
/// array value repeats its name), or a string as it is.
fn with_query(mut url: Url, query: &Value) -> Result<Url, RequestError> {
    match query {
        Value::Null => {}
        Value::String(raw) if raw.is_empty() => {}
        Value::String(raw) => {
            let joined = match url.query() {
                Some(existing) if !existing.is_empty() => format!("{existing}&{raw}"),
                _ => raw.clone(),
            };
            url.set_query(Some(&joined));
        }
        Value::Object(params) => {
            let pairs = query_pairs(params)?;
            if !pairs.is_empty() {
                let mut serializer = url.query_pairs_mut();
                for (name, value) in &pairs {
                    serializer.append_pair(name, value);
                }
            }
        }
        other => return Err(RequestError::QueryNotObject(type_name(other))),
    }
    Ok(url)
}

fn query_pairs(params: &Map<String, Value>) -> Result<Vec<(String, String)>, RequestError> {
    let mut pairs = Vec::new();
    for (name, value) in params {
        let values: &[Value] = match value {
            Value::Array(items) => items,
            single => std::slice::from_ref(single),
        };
        for value in values {
            match text_of(value) {
                Ok(Some(text)) => pairs.push((name.clone(), text)),
                Ok(None) => {}
                Err(kind) => return Err(RequestError::QueryNotText { name: name.clone(), kind }),
            }
        }
    }
    Ok(pairs)
}

/// An HTTP token (RFC 9110): a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
