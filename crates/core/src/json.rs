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

/// How many arrays and objects a stored JSON document may nest before it cannot be read back:
/// serde_json's recursion limit, which every reader of stored JSON goes through (SPEC §12).
/// Invariant: a document whose [`depth`] is below this parses again. It is jq's limit too
/// (`wharf_jq::MAX_DEPTH`), so one number bounds what jq builds and what the store keeps.
pub const MAX_DEPTH: usize = wharf_jq::MAX_DEPTH;
const _: () = assert!(MAX_DEPTH == 128, "serde_json's recursion limit");

/// How deeply `value` nests arrays and objects: 0 for a scalar, 1 for `[]` or `{"a": 1}`,
/// 2 for `[[]]`. Iterative, so it measures a value of any depth without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    // Invariant: every entry's level is how many containers hold it, itself included.
    let mut pending: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, level)) = pending.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(level + 1);
                pending.extend(items.iter().map(|item| (item, level + 1)));
            }
            Value::Object(fields) => {
                deepest = deepest.max(level + 1);
                pending.extend(fields.values().map(|field| (field, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Refuses a user's document (a blueprint, a webhook) nested more than `max` levels, a 422
/// with `code`. Measured iteratively, before anything walks the document recursively.
pub fn check_depth(code: &'static str, document: &Value, what: &str, max: usize) -> Result<(), Error> {
    let levels = depth(document);
    if levels > max {
        return Err(Error::invalid(
            code,
            format!("the {what} nests {levels} levels of arrays or objects; at most {max} are allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_nested_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}], "c": 2})), 4);
    }

    #[test]
    fn depth_matches_what_serde_json_reads_back() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let readable: Value = serde_json::from_str(&nested(MAX_DEPTH - 1)).unwrap();
        assert_eq!(depth(&readable), MAX_DEPTH - 1);
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_err());
    }

    #[test]
    fn depth_measures_values_deeper_than_the_stack_allows() {
        let mut value = json!(null);
        for _ in 0..200_000 {
            value = Value::Array(vec![value]);
        }
        assert_eq!(depth(&value), 200_000);
        // Dropping it would recurse once per level: take it apart level by level instead.
        let mut rest = value;
        while let Value::Array(mut items) = rest {
            rest = items.pop().unwrap_or(Value::Null);
        }
    }
}
