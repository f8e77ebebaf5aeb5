//! Small helpers for reading request documents with errors that name the JSON path.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Deserializes `value` into `T`; a mismatch is a 422 naming the path (`schema.properties.x.type`)
/// and what serde expected there.
pub fn from_value<T: DeserializeOwned>(value: Value, code: &'static str, what: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        if path == "." {
            Error::invalid(code, format!("invalid {what}: {inner}"))
        } else {
            Error::invalid(code, format!("invalid {what} at `{path}`: {inner}"))
        }
    })
}

/// Checks that a string has `min` to `max` characters; a 422 with `code` names the path.
pub fn check_length(code: &'static str, value: &str, path: &str, min: usize, max: usize) -> Result<(), Error> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(Error::invalid(code, format!("`{path}` must be {min} to {max} characters long, but has {len}")));
    }
    Ok(())
}

/// The JSON type name of a value, as users read it in messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
