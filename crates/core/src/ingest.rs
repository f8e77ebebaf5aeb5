//! What the ingest endpoint decides about a request, before anything is stored: the
//! signature, the body's shape, the jq input object, and the request identifier.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use wharf_jq::{Demand, Input};

use crate::Error;
use crate::json::{MAX_DEPTH, depth};
use crate::webhook::{CompiledWebhook, Security, SignatureAlgorithm};

/// Why a signature was refused (recorded on the rejected event; the response stays generic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no `{0}` header")]
    Missing(String),
    #[error("the `{0}` header does not match the signature of the body")]
    Mismatch(String),
}

/// Checks the request's signature header against `security` (SPEC §6 step 3): the header,
/// found case-insensitively, must equal `prefix + lowercase_hex(HMAC(secret, body))` for
/// `sha1`/`sha256` (`sha256` when no algorithm is set), or `prefix + secret` for `plain`.
/// The comparison takes the same time wherever the values differ.
pub fn verify_signature(security: &Security, headers: &Map<String, Value>, body: &[u8]) -> Result<(), SignatureError> {
    let (Some(secret), Some(name)) = (&security.secret, &security.signature_header_name) else {
        return Ok(());
    };
    let received = header(headers, name).ok_or_else(|| SignatureError::Missing(name.clone()))?;
    let prefix = security.signature_prefix.as_deref().unwrap_or("");
    let expected = match security.signature_algorithm.unwrap_or(SignatureAlgorithm::Sha256) {
        SignatureAlgorithm::Plain => format!("{prefix}{secret}"),
        SignatureAlgorithm::Sha1 => format!("{prefix}{}", hmac_sha1_hex(secret.as_bytes(), body)),
        SignatureAlgorithm::Sha256 => format!("{prefix}{}", hmac_sha256_hex(secret.as_bytes(), body)),
    };
    // `ct_eq` on slices of different lengths returns false at once; the length of the
    // expected value is not secret (it follows from the algorithm and the prefix).
    if bool::from(expected.as_bytes().ct_eq(received.as_bytes())) { Ok(()) } else { Err(SignatureError::Mismatch(name.clone())) }
}

fn hmac_sha1_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// With the `plain` algorithm the signature header carries the secret itself: its value is
/// replaced before the request is stored or shown, so the secret is never kept in clear.
pub fn redact_secret_header(security: &Security, headers: &mut Map<String, Value>) {
    if security.signature_algorithm == Some(SignatureAlgorithm::Plain)
        && let Some(name) = &security.signature_header_name
        && let Some(value) = headers.get_mut(&name.to_ascii_lowercase())
    {
        *value = Value::String("[redacted]".into());
    }
}

/// A header's value by name, case-insensitively (names in `headers` are lowercase).
pub fn header<'a>(headers: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    headers.get(&name.to_ascii_lowercase()).and_then(Value::as_str)
}

/// The jq input's `headers`: names lowercased (Port tells users to write them so); repeated
/// headers are joined with `, ` as HTTP allows. Values that are not UTF-8 are read lossily.
pub fn headers_object<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Map<String, Value> {
    let mut headers = Map::new();
    for (name, value) in pairs {
        let value = String::from_utf8_lossy(value);
        // One lookup per header: a repeated one is rare, and every header is looked up.
        match headers.entry(name.to_ascii_lowercase()) {
            serde_json::map::Entry::Occupied(mut seen) => {
                if let Value::String(existing) = seen.get_mut() {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
            }
            serde_json::map::Entry::Vacant(new) => {
                new.insert(Value::String(value.into_owned()));
            }
        }
    }
    headers
}

/// The jq input's `queryParams` (or a form body): strings, or arrays of strings when a name
/// repeats.
pub fn form_object(encoded: &[u8]) -> Map<String, Value> {
    let mut fields = Map::new();
    for (name, value) in form_urlencoded::parse(encoded) {
        let value = Value::String(value.into_owned());
        match fields.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                fields.insert(name.into_owned(), value);
            }
        }
    }
    fields
}

/// How a body is read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`, `…+json`: must parse (400 otherwise).
    Json,
    /// `application/x-www-form-urlencoded`: an object of fields; a `payload` field holding
    /// JSON (as GitHub sends) is parsed.
    Form,
    /// No content type: JSON when it parses, else the text.
    Unknown,
    /// Anything else: the text.
    Text,
}

impl BodyKind {
    pub fn of(content_type: Option<&str>) -> Self {
        let Some(content_type) = content_type else { return Self::Unknown };
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence == "application/json" || essence == "text/json" || essence.ends_with("+json") {
            Self::Json
        } else if essence == "application/x-www-form-urlencoded" {
            Self::Form
        } else if essence.is_empty() {
            Self::Unknown
        } else {
            Self::Text
        }
    }
}

/// The most arrays and objects a body may nest: it is stored inside the request document
/// (`{"body": …}`), which must stay below [`MAX_DEPTH`] to be read back. [`check_body`]'s
/// reader stops at the same depth.
pub const MAX_BODY_DEPTH: usize = MAX_DEPTH - 2;

/// Reads a body as SPEC §6 step 4 says. Only a body that claims to be JSON and is not (or
/// nests more than [`MAX_BODY_DEPTH`] levels) is an error (400, naming the position).
pub fn parse_body(kind: BodyKind, bytes: &[u8]) -> Result<Value, Error> {
    match kind {
        BodyKind::Json => {
            let value: Value = serde_json::from_slice(bytes).map_err(|err| {
                Error::bad_request(
                    "invalid_json",
                    format!("the body is not valid JSON: {err} (line {}, column {})", err.line(), err.column()),
                )
            })?;
            if depth(&value) > MAX_BODY_DEPTH {
                return Err(too_deep());
            }
            Ok(value)
        }
        BodyKind::Form => {
            let mut fields = form_object(bytes);
            // The payload sits one level into the body; one too deep stays the text it was.
            if let Some(Value::String(payload)) = fields.get("payload")
                && let Ok(parsed) = serde_json::from_str::<Value>(payload)
                && depth(&parsed) < MAX_BODY_DEPTH
            {
                fields.insert("payload".into(), parsed);
            }
            Ok(Value::Object(fields))
        }
        BodyKind::Unknown => Ok(serde_json::from_slice(bytes)
            .ok()
            .filter(|value| depth(value) <= MAX_BODY_DEPTH)
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into_owned()))),
        BodyKind::Text => Ok(Value::String(String::from_utf8_lossy(bytes).into_owned())),
    }
}

/// Checks that a JSON body parses and nests at most [`MAX_BODY_DEPTH`] levels, without
/// building it (the ingest path stores the bytes and the mapper parses them), as
/// [`parse_body`] decides.
pub fn check_body(kind: BodyKind, bytes: &[u8]) -> Result<(), Error> {
    if kind == BodyKind::Json {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|err| {
            Error::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {err} (line {}, column {})", err.line(), err.column()),
            )
        })?;
        // serde_json skips an ignored value without its recursion limit, so a body of
        // 100,000 `[` passed here and was stored, unreadable.
        if nests_deeper_than(bytes, MAX_BODY_DEPTH) {
            return Err(too_deep());
        }
    }
    Ok(())
}

fn too_deep() -> Error {
    Error::bad_request("invalid_json", format!("the body nests more than {MAX_BODY_DEPTH} arrays or objects"))
}

/// Whether JSON text, already known to be valid, nests more than `max` arrays or objects.
/// Strings, most of a webhook's bytes, are jumped over with `memchr` to their closing quote;
/// only the bytes between them are looked at one by one. (A `Value` would allocate the whole
/// body; a serde visitor that counts levels reads every string into a `&str`, and a
/// byte-by-byte scan was the ingest path's most expensive function: both measured, BENCHMARKS.md.)
fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let (mut levels, mut at) = (0usize, 0usize);
    while let Some(&byte) = json.get(at) {
        match byte {
            b'"' => {
                at += 1;
                // To the closing quote, stepping over each escape (`\"` included).
                loop {
                    match memchr::memchr2(b'"', b'\\', json.get(at..).unwrap_or_default()) {
                        Some(found) if json[at + found] == b'\\' => at += found + 2,
                        Some(found) => {
                            at += found + 1;
                            break;
                        }
                        None => return false,
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                levels += 1;
                if levels > max {
                    return true;
                }
            }
            b']' | b'}' => levels = levels.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

/// The object every mapping expression reads: `{"body", "headers", "queryParams"}`.
pub fn jq_input(body: Value, headers: Map<String, Value>, query: Map<String, Value>) -> Value {
    let mut input = Map::with_capacity(3);
    input.insert("body".into(), body);
    input.insert("headers".into(), Value::Object(headers));
    input.insert("queryParams".into(), Value::Object(query));
    Value::Object(input)
}

/// The jq input of a stored request (`{"body","headers","queryParams"}` as the ingest path
/// writes it): the same object, with missing or malformed parts made empty, and anything
/// that is not such an object read as the body.
pub fn stored_input(request: Value) -> Value {
    match request {
        Value::Object(mut fields) => {
            let body = fields.remove("body").unwrap_or(Value::Null);
            let object = |v: Option<Value>| match v {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            jq_input(body, object(fields.remove("headers")), object(fields.remove("queryParams")))
        }
        other => jq_input(other, Map::new(), Map::new()),
    }
}

/// A stored request's jq input with only what `demand` observes, parsed straight from its
/// text: what `Input::project(demand, &stored_input(request))` gives, without the
/// `serde_json::Value` of the whole event. Requests of another shape than the ingest path
/// writes (none are written today) take that slower way. An error means the text is not JSON.
pub fn event_input(demand: &Demand, request: Option<&str>) -> Result<Input, String> {
    let text = request.unwrap_or("null");
    let parsed = Input::parse(demand, text)?;
    // The projection keeps every key that a program could observe, so a key it drops cannot
    // change what a program sees, and one it keeps is checked here.
    if parsed.is_object_of(&["body", "headers", "queryParams"], &["headers", "queryParams"]) {
        return Ok(parsed);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Input::project(demand, &stored_input(value))
}

/// The request's identifier for deduplication (`requestIdentifierPath`): a string (numbers
/// are written as text); `None` when unset, or when the expression yields nothing usable,
/// in which case the request is not deduplicated.
pub fn request_identifier(webhook: &CompiledWebhook, input: &Value) -> Option<String> {
    let program = webhook.request_identifier.as_ref()?;
    match program.first(input).ok()?? {
        Value::String(id) if !id.is_empty() => Some(id),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_are_read_by_content_type() {
        assert_eq!(BodyKind::of(Some("application/json; charset=utf-8")), BodyKind::Json);
        assert_eq!(BodyKind::of(Some("application/vnd.github+json")), BodyKind::Json);
        assert_eq!(BodyKind::of(Some("application/x-www-form-urlencoded")), BodyKind::Form);
        assert_eq!(BodyKind::of(Some("text/plain")), BodyKind::Text);
        assert_eq!(BodyKind::of(None), BodyKind::Unknown);
        assert_eq!(
            parse_body(BodyKind::Form, b"payload=%7B%22a%22%3A1%7D&x=1&x=2").unwrap(),
            json!({"payload": {"a": 1}, "x": ["1", "2"]})
        );
        assert_eq!(parse_body(BodyKind::Unknown, b"{\"a\":1}").unwrap(), json!({"a": 1}));
        assert_eq!(parse_body(BodyKind::Unknown, b"a=1").unwrap(), json!("a=1"));
        let err = parse_body(BodyKind::Json, b"{\"a\":").unwrap_err();
        assert!(err.message.contains("line 1"), "{}", err.message);
        assert!(check_body(BodyKind::Json, b"[1,").is_err());
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        for kind_check in [|b: &[u8]| check_body(BodyKind::Json, b), |b: &[u8]| parse_body(BodyKind::Json, b).map(drop)] {
            assert!(kind_check(nested(MAX_BODY_DEPTH).as_bytes()).is_ok());
            let err = kind_check(nested(MAX_BODY_DEPTH + 1).as_bytes()).unwrap_err();
            assert!(err.message.contains("nests more than 126"), "{}", err.message);
            assert!(kind_check(nested(100_000).as_bytes()).is_err());
        }
        let in_strings = format!(r#"{{"s": "{}\"{}", "t": 1}}"#, "[".repeat(300), "{".repeat(300));
        assert!(check_body(BodyKind::Json, in_strings.as_bytes()).is_ok());
        assert!(check_body(BodyKind::Text, b"[1,").is_ok());
        assert!(check_body(BodyKind::Json, b"[1] x").is_err(), "trailing characters");
        assert!(check_body(BodyKind::Json, b" {\"a\": [1, 2.5, -3, true, null, \"\\u00e9\"]} ").is_ok());
        let escapes = format!(r#"["\\", "\"[[", "{}", "\\\"{{", 1]"#, "[".repeat(200));
        assert!(check_body(BodyKind::Json, escapes.as_bytes()).is_ok(), "{escapes}");
        assert!(!nests_deeper_than(br#"["\"#, 1), "a string cut short ends the scan");
    }

    #[test]
    fn headers_are_lowercase_and_joined() {
        let headers = headers_object([("X-Hub", b"a".as_slice()), ("x-hub", b"b".as_slice()), ("Accept", b"*/*".as_slice())]);
        assert_eq!(Value::Object(headers.clone()), json!({"x-hub": "a, b", "accept": "*/*"}));
        assert_eq!(header(&headers, "X-HUB"), Some("a, b"));
    }
}
