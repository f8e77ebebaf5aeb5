//! Port's `include` and `exclude`: which parts of each entity an answer carries.
//!
//! A path names a field of the entity's JSON (`identifier`, `properties.stars`,
//! `relations.team`); Port's meta-property spelling is accepted too (`$identifier`,
//! `$createdAt`). With `include`, an entity keeps only the paths named (those it has); with
//! `exclude`, it loses them; with both, `exclude` applies to what `include` kept.
//!
//! Paths go through objects only: `properties.tags.0` names a key `0`, not an array element.

use serde_json::{Map, Value};

use crate::Error;

const CODE: &str = "invalid_request";

/// The most paths one `include` or `exclude` may name.
pub const MAX_PATHS: usize = 100;

/// The longest path, in bytes.
pub const MAX_PATH_LEN: usize = 1000;

/// What an answer keeps of each entity. The default keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    include: Option<Vec<Vec<String>>>,
    exclude: Vec<Vec<String>>,
}

impl Projection {
    /// Reads `include` and `exclude` from a request body, where each is an array of paths
    /// (absent or `null`: no such list).
    pub fn from_body(include: Option<&Value>, exclude: Option<&Value>) -> Result<Self, Error> {
        let list = |name: &str, value: Option<&Value>| -> Result<Option<Vec<String>>, Error> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::String(path) => Ok(path.clone()),
                        other => Err(Error::invalid(
                            CODE,
                            format!(
                                "`{name}[{i}]` must be a string (a path such as `properties.stars`), not {}",
                                crate::json::type_name(other)
                            ),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(other) => Err(Error::invalid(
                    CODE,
                    format!("`{name}` must be an array of paths, not {}", crate::json::type_name(other)),
                )),
            }
        };
        Self::from_lists(list("include", include)?, list("exclude", exclude)?.unwrap_or_default())
    }

    /// Builds a projection from lists of paths, checking each.
    pub fn from_lists(include: Option<Vec<String>>, exclude: Vec<String>) -> Result<Self, Error> {
        let paths = |name: &str, list: Vec<String>| -> Result<Vec<Vec<String>>, Error> {
            if list.len() > MAX_PATHS {
                return Err(Error::invalid(
                    CODE,
                    format!("`{name}` names {} paths; at most {MAX_PATHS} are allowed", list.len()),
                ));
            }
            list.iter().enumerate().map(|(i, path)| parse_path(name, i, path)).collect()
        };
        Ok(Self { include: include.map(|list| paths("include", list)).transpose()?, exclude: paths("exclude", exclude)? })
    }

    /// Whether every entity is answered whole.
    pub fn keeps_everything(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// This projection, or `fallback` when this one keeps everything: a request's body names
    /// its lists, or else its query string does (Port's search of every blueprint takes them
    /// there).
    pub fn or(self, fallback: Projection) -> Projection {
        if self.keeps_everything() { fallback } else { self }
    }

    /// What remains of `doc` (an entity's JSON).
    pub fn apply(&self, mut doc: Value) -> Value {
        if let Some(include) = &self.include {
            let mut kept = Value::Object(Map::new());
            for path in include {
                if let Some(value) = take(&mut doc, path) {
                    put(&mut kept, path, value);
                }
            }
            doc = kept;
        }
        for path in &self.exclude {
            take(&mut doc, path);
        }
        doc
    }
}

/// `properties.stars` → `["properties", "stars"]`; `$createdAt` → `["createdAt"]`.
fn parse_path(name: &str, index: usize, path: &str) -> Result<Vec<String>, Error> {
    if path.len() > MAX_PATH_LEN {
        return Err(Error::invalid(CODE, format!("`{name}[{index}]` is longer than {MAX_PATH_LEN} bytes")));
    }
    let path = path.strip_prefix('$').unwrap_or(path);
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(Error::invalid(
            CODE,
            format!("`{name}[{index}]` (`{path}`) is not a path: name fields joined by dots, such as `properties.stars`"),
        ));
    }
    Ok(segments)
}

/// Removes and returns the value at `path`, if every step is an object holding the next key.
fn take(doc: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut at = doc;
    for key in parents {
        at = at.as_object_mut()?.get_mut(key)?;
    }
    at.as_object_mut()?.remove(last)
}

/// Sets `value` at `path`, making the objects on the way (`doc` and every step are objects:
/// [`Projection::apply`] builds them).
fn put(doc: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = doc;
    for key in parents {
        let Some(object) = at.as_object_mut() else { return };
        at = object.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(object) = at.as_object_mut() {
        object.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity() -> Value {
        json!({
            "identifier": "svc", "title": "Service", "blueprint": "service", "team": [],
            "properties": {"stars": 3, "lang": "rust", "meta": {"owner": "ann"}},
            "relations": {"team": "core"}, "createdAt": "2026-01-01T00:00:00.000Z"
        })
    }

    fn projection(include: Option<&[&str]>, exclude: &[&str]) -> Projection {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Projection::from_lists(include.map(owned), owned(exclude)).unwrap()
    }

    #[test]
    fn include_keeps_only_the_paths_named_that_exist() {
        let kept =
            projection(Some(&["identifier", "properties.stars", "properties.meta.owner", "properties.nope", "$createdAt"]), &[])
                .apply(entity());
        assert_eq!(
            kept,
            json!({"identifier": "svc", "properties": {"stars": 3, "meta": {"owner": "ann"}}, "createdAt": "2026-01-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn exclude_removes_the_paths_named_and_applies_after_include() {
        let mut expected = entity();
        expected["properties"].as_object_mut().unwrap().remove("lang");
        expected.as_object_mut().unwrap().remove("relations");
        assert_eq!(projection(None, &["properties.lang", "$relations", "properties.stars.deeper"]).apply(entity()), expected);
        assert_eq!(
            projection(Some(&["identifier", "properties"]), &["properties.meta"]).apply(entity()),
            json!({"identifier": "svc", "properties": {"stars": 3, "lang": "rust"}})
        );
    }

    #[test]
    fn no_lists_keep_everything() {
        let whole = Projection::from_body(None, Some(&Value::Null)).unwrap();
        assert!(whole.keeps_everything());
        assert_eq!(whole.apply(entity()), entity());
        // An empty `include` is a list: it keeps nothing.
        assert_eq!(Projection::from_body(Some(&json!([])), None).unwrap().apply(entity()), json!({}));
    }

    #[test]
    fn a_body_s_lists_win_over_the_query_string_s() {
        let body = projection(Some(&["identifier"]), &[]);
        let query = projection(None, &["properties"]);
        assert_eq!(body.clone().or(query.clone()), body);
        assert_eq!(Projection::default().or(query.clone()), query);
    }

    #[test]
    fn bad_lists_are_refused_naming_the_place() {
        let message = |include: Value, exclude: Value| Projection::from_body(Some(&include), Some(&exclude)).unwrap_err().message;
        assert!(message(json!("identifier"), json!([])).contains("`include` must be an array"));
        assert!(message(json!([]), json!(["ok", 3])).contains("`exclude[1]` must be a string"));
        assert!(message(json!(["properties..x"]), json!([])).contains("`include[0]`"));
        assert!(message(json!([""]), json!([])).contains("not a path"));
        assert!(message(json!(vec!["identifier"; MAX_PATHS + 1]), json!([])).contains("at most 100"));
        assert!(message(json!(["x".repeat(MAX_PATH_LEN + 1)]), json!([])).contains("longer than"));
    }
}
