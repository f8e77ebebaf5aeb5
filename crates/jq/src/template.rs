//! Port's `{{ … }}` templates inside JSON, rendered with Port's semantics (from its
//! `jq-node-bindings` library, `lib/template.js`):
//!
//! - a string that is exactly one template yields the jq result with its JSON type;
//! - other strings interpolate: strings as they are, other values as compact JSON;
//! - object keys are templates too: a key that renders to null, nothing or `""` drops its
//!   entry, a non-string key is an error, and `"{{ spreadValue() }}": value` merges the
//!   rendered object into its parent;
//! - arrays and objects are rendered recursively; other scalars are kept;
//! - a jq error yields `null` (and is reported to the caller), unless the caller asks for
//!   errors to be raised; template syntax errors (unbalanced braces) are always raised.

use serde_json::{Map, Value};

use crate::{JqError, ProgramCache};

/// A template that cannot be rendered, with Port's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Unbalanced or nested braces, or a key that does not render to a string.
    #[error("{0}")]
    Template(String),
    /// A jq error, raised because the caller asked for errors (`throw_on_error`).
    #[error(transparent)]
    Jq(#[from] JqError),
}

/// A jq error that rendered as `null`: which expression failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionError {
    pub expression: String,
    pub error: JqError,
}

/// The result of rendering: the value (`None` when the template yields nothing, as
/// `{{ empty }}` does) and the jq errors that became `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub value: Option<Value>,
    pub errors: Vec<ExpressionError>,
}

/// A `{{ … }}` region of a string: byte offsets of the opening braces and past the closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    start: usize,
    end: usize,
}

impl Region {
    fn expression(self, text: &str) -> &str {
        &text[self.start + 2..self.end - 2]
    }
}

/// Finds the template regions of `text`. Inside a template, quoted strings (single or
/// double, with `\` escapes) may contain braces; `{{{`/`}}}` attach the extra brace to the
/// expression. Indices in messages are character positions, as in Port.
fn regions(text: &str) -> Result<Vec<Region>, RenderError> {
    let bytes = text.as_bytes();
    let char_index = |byte: usize| text[..byte].chars().count();
    let mut found = Vec::new();
    let mut open: Option<usize> = None;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if open.is_some() {
            if let Some(q) = quote {
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            if c == b'"' || c == b'\'' {
                quote = Some(c);
                i += 1;
                continue;
            }
        }
        if bytes[i..].starts_with(b"{{") {
            if let Some(start) = open {
                return Err(RenderError::Template(format!(
                    "Found double braces in index {} inside other one in index {}",
                    char_index(i),
                    char_index(start)
                )));
            }
            open = Some(i);
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(b"}}") {
            while bytes.get(i + 2) == Some(&b'}') {
                i += 1;
            }
            let Some(start) = open.take() else {
                return Err(RenderError::Template(format!(
                    "Found closing double braces in index {} without opening double braces",
                    char_index(i)
                )));
            };
            found.push(Region { start, end: i + 2 });
            i += 2;
            continue;
        }
        i += 1;
    }
    match open {
        Some(start) => Err(RenderError::Template(format!(
            "Found opening double braces in index {} without closing double braces",
            char_index(start)
        ))),
        None => Ok(found),
    }
}

/// The jq expressions of one template string, in order, as a render would evaluate them (a
/// string without `{{ … }}` has none); an unbalanced brace is Port's error. What a save
/// compiles, so that a template that cannot render is refused before it ever runs.
pub fn expressions(text: &str) -> Result<Vec<&str>, RenderError> {
    Ok(regions(text)?.into_iter().map(|region| region.expression(text)).collect())
}

/// Whether an object key is `{{ spreadValue() }}`: its value is spread into the parent, and
/// the key itself is never evaluated.
pub fn is_spread_key(key: &str) -> bool {
    let Some(inner) = key.trim().strip_prefix("{{").and_then(|k| k.strip_suffix("}}")) else { return false };
    let Some(args) = inner.trim().strip_prefix("spreadValue") else { return false };
    let args = args.trim_start();
    args.strip_prefix('(').and_then(|a| a.strip_suffix(')')).is_some_and(|a| a.trim().is_empty())
}

/// JavaScript's `JSON.stringify` of a rendered value, as Port's messages and interpolation
/// print it (compact; nothing for no value).
fn stringify(value: Option<&Value>) -> String {
    value.map_or_else(|| "undefined".to_owned(), Value::to_string)
}

/// The budget of one render, all of its expressions together (SPEC §12: 1 M steps, 1 s,
/// 64 MiB allocated): the same as one evaluation's default.
pub const RENDER_LIMITS: crate::Limits = crate::DEFAULT_LIMITS;

/// Renders templates against one context.
pub struct Renderer<'a> {
    programs: &'a ProgramCache,
    context: &'a Value,
    throw_on_error: bool,
    errors: Vec<ExpressionError>,
}

impl<'a> Renderer<'a> {
    pub fn new(programs: &'a ProgramCache, context: &'a Value) -> Self {
        Self { programs, context, throw_on_error: false, errors: Vec::new() }
    }

    /// Raise jq errors instead of rendering them as `null`.
    pub fn throw_on_error(mut self, throw: bool) -> Self {
        self.throw_on_error = throw;
        self
    }

    /// Renders `template`, all of it under one budget ([`RENDER_LIMITS`]): crossing it is an
    /// error of the render, whether or not jq errors are raised.
    pub fn render(mut self, template: &Value) -> Result<Rendered, RenderError> {
        let run = crate::with_budget(RENDER_LIMITS, || self.value(template));
        if let Some(exceeded) = run.exceeded {
            return Err(RenderError::Jq(JqError::Budget(exceeded)));
        }
        Ok(Rendered { value: run.value?, errors: self.errors })
    }

    fn value(&mut self, template: &Value) -> Result<Option<Value>, RenderError> {
        match template {
            Value::String(text) => self.string(text),
            // An element that renders to nothing becomes null, as JSON.stringify writes it.
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.value(item)?.unwrap_or(Value::Null));
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(entries) => self.object(entries).map(|map| Some(Value::Object(map))),
            scalar => Ok(Some(scalar.clone())),
        }
    }

    fn object(&mut self, entries: &Map<String, Value>) -> Result<Map<String, Value>, RenderError> {
        let mut out = Map::with_capacity(entries.len());
        for (key, template) in entries {
            if is_spread_key(key) {
                match self.value(template)? {
                    Some(Value::Object(spread)) => out.extend(spread),
                    other => {
                        let original = template.as_str().map_or_else(|| template.to_string(), str::to_owned);
                        return Err(RenderError::Template(format!(
                            "Evaluated value should be an object if the key is {{{{ spreadValue() }}}}. Original value: {original}, evaluated to: {}",
                            stringify(other.as_ref())
                        )));
                    }
                }
                continue;
            }
            let name = match self.string(key)? {
                None | Some(Value::Null) => continue,
                Some(Value::String(name)) if name.is_empty() => continue,
                Some(Value::String(name)) => name,
                Some(other) => {
                    return Err(RenderError::Template(format!(
                        "Evaluated object key should be undefined, null or string. Original key: {key}, evaluated to: {other}"
                    )));
                }
            };
            // A value that renders to nothing drops its key, as JSON.stringify does.
            if let Some(value) = self.value(template)? {
                out.insert(name, value);
            }
        }
        Ok(out)
    }

    fn string(&mut self, text: &str) -> Result<Option<Value>, RenderError> {
        let found = regions(text)?;
        if found.is_empty() {
            return Ok(Some(Value::String(text.to_owned())));
        }
        let trimmed = text.trim();
        if found.len() == 1 && trimmed.starts_with("{{") && trimmed.ends_with("}}") {
            return self.evaluate(found[0].expression(text));
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for region in found {
            out.push_str(&text[last..region.start]);
            match self.evaluate(region.expression(text))? {
                Some(Value::String(s)) => out.push_str(&s),
                // Nothing interpolates as nothing (Port would print `undefined`).
                None => {}
                Some(other) => out.push_str(&other.to_string()),
            }
            last = region.end;
        }
        out.push_str(&text[last..]);
        Ok(Some(Value::String(out)))
    }

    fn evaluate(&mut self, expression: &str) -> Result<Option<Value>, RenderError> {
        if let Some(exceeded) = crate::budget_exceeded() {
            return Err(RenderError::Jq(JqError::Budget(exceeded)));
        }
        match self.programs.first(expression, self.context) {
            Ok(value) => Ok(value),
            Err(error) if self.throw_on_error => Err(RenderError::Jq(error)),
            Err(error) => {
                self.errors.push(ExpressionError { expression: expression.to_owned(), error });
                Ok(Some(Value::Null))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: Value, context: Value) -> Result<Rendered, RenderError> {
        Renderer::new(&ProgramCache::default(), &context).render(&template)
    }

    #[test]
    fn regions_and_brace_errors() {
        assert_eq!(regions("a {{ .b }} c {{.d}}").unwrap().len(), 2);
        assert_eq!(regions("{{{}}").unwrap(), [Region { start: 0, end: 5 }]);
        assert_eq!(regions("{{ {a:1}}}").unwrap()[0].expression("{{ {a:1}}}"), " {a:1}");
        let err = |t: &str| regions(t).unwrap_err().to_string();
        assert_eq!(err("prefix{{.foo}postfix"), "Found opening double braces in index 6 without closing double braces");
        assert_eq!(err("prefix{.foo}}postfix"), "Found closing double braces in index 11 without opening double braces");
        assert_eq!(err("prefix{{ .foo {{ }}postfix"), "Found double braces in index 14 inside other one in index 6");
        assert_eq!(
            err("prefix{{ \"{{\" + .foo }} }}postfix"),
            "Found closing double braces in index 24 without opening double braces"
        );
        assert_eq!(err("é{{"), "Found opening double braces in index 1 without closing double braces");
    }

    #[test]
    fn typed_interpolated_keys_and_spread() {
        let ctx = json!({"foo": "bar", "n": 1, "obj": {"a": [1]}});
        assert_eq!(render(json!("{{ .n }}"), ctx.clone()).unwrap().value, Some(json!(1)));
        assert_eq!(render(json!(" {{ .obj }} "), ctx.clone()).unwrap().value, Some(json!({"a": [1]})));
        assert_eq!(
            render(json!("q={{.foo}}&o={{.obj}}&x={{empty}}"), ctx.clone()).unwrap().value,
            Some(json!("q=bar&o={\"a\":[1]}&x="))
        );
        assert_eq!(render(json!("{{empty}}"), ctx.clone()).unwrap().value, None);
        let out = render(
            json!({"{{.foo}}": "{{.n}}", "{{null}}": 1, "{{''}}": 2, "keep": "{{empty}}", "{{ spreadValue() }}": "{{ .obj }}"}),
            ctx.clone(),
        );
        assert_eq!(out.unwrap().value, Some(json!({"bar": 1, "a": [1]})));
        let err = render(json!({"{{1}}": "x"}), ctx.clone()).unwrap_err().to_string();
        assert_eq!(err, "Evaluated object key should be undefined, null or string. Original key: {{1}}, evaluated to: 1");
        let err = render(json!({"{{ spreadValue() }}": "str"}), ctx).unwrap_err().to_string();
        assert_eq!(
            err,
            "Evaluated value should be an object if the key is {{ spreadValue() }}. Original value: str, evaluated to: \"str\""
        );
    }

    #[test]
    fn jq_errors_become_null_and_are_reported() {
        let rendered = render(json!({"a": "{{ .foo.bar }}", "b": "x{{ nope }}y"}), json!({"foo": "s"})).unwrap();
        assert_eq!(rendered.value, Some(json!({"a": null, "b": "xnully"})));
        assert_eq!(rendered.errors.len(), 2);
        assert_eq!(rendered.errors[1].expression, " nope ");
        let thrown = Renderer::new(&ProgramCache::default(), &json!({})).throw_on_error(true).render(&json!("{{ nope }}"));
        assert!(matches!(thrown, Err(RenderError::Jq(JqError::Compile { .. }))));
    }
}
