//! Organization secrets (reference §3.9): named values an organization stores write-only, for
//! templates (`{{ .secrets.NAME }}`), and the masking that keeps their values out of every
//! stored copy of what a template rendered.
//!
//! A value never leaves Wharf through the API: answers carry metadata only ([`Secret`]). At
//! rest it is sealed under the master key bound to its organization and name
//! ([`bound_plaintext`], [`unbind`]), so a sealed value copied to another row does not open.
//! In memory it is a [`SecretValue`], whose `Debug` prints `****`, so no log line can carry it.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

use crate::Error;
use crate::time::Timestamp;

/// The longest secret name (Port's apispec: 1 to 100 characters of `^[A-Za-z0-9-_]*$`).
pub const MAX_NAME_CHARS: usize = 100;
/// The largest secret value: 64 KiB of UTF-8 (Port documents none).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The longest description, in characters (Port documents none).
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Secrets one organization may have (SPEC §12 names none for secrets; the same 1,000 as its
/// webhooks and actions).
pub const SECRETS_PER_ORG: usize = 1_000;
/// What every occurrence of a secret value becomes in a stored copy.
pub const MASK: &str = "****";

const CODE: &str = "invalid_secret";

/// A secret's value in clear. Its `Debug` is redacted, and it is not `Serialize`: the only
/// ways out are [`SecretValue::expose`] and [`SecretValues::context`] (a template's `.secrets`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(****)")
    }
}

/// A secret's metadata: everything the API shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub org_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The API client that created it, then the one that changed it last.
    pub created_by: String,
    pub updated_by: String,
}

impl Secret {
    /// The API's shape: `{"secretName", "description"?, "createdAt", "updatedAt", "createdBy", "updatedBy"}`.
    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "secretName": self.name,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "createdBy": self.created_by,
            "updatedBy": self.updated_by,
        });
        if let Some(description) = &self.description {
            doc["description"] = json!(description);
        }
        doc
    }
}

/// `POST /v1/organization/secrets`: `{"secretName", "secretValue", "description"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub name: String,
    pub value: SecretValue,
    pub description: Option<String>,
}

/// `PATCH /v1/organization/secrets/{name}`: `{"secretValue"?, "description"?}`; a `null`
/// description removes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretChange {
    pub value: Option<SecretValue>,
    /// `None`: keep; `Some(None)`: remove; `Some(Some(text))`: replace.
    pub description: Option<Option<String>>,
}

impl NewSecret {
    /// Reads and checks a create document; every refusal is a 422 naming the field.
    pub fn parse(doc: Value) -> Result<Self, Error> {
        let fields = object(doc)?;
        let (mut name, mut value, mut description) = (None, None, None);
        for (key, field) in fields {
            match key.as_str() {
                "secretName" => {
                    let text = string(&key, field)?;
                    check_name(&text)?;
                    name = Some(text);
                }
                "secretValue" => value = Some(parse_value(field)?),
                "description" => description = parse_description(field)?,
                other => return Err(unknown_key(other, "`secretName`, `secretValue` or `description`")),
            }
        }
        let missing = |key: &str| Error::invalid(CODE, format!("`{key}` is required"));
        Ok(Self {
            name: name.ok_or_else(|| missing("secretName"))?,
            value: value.ok_or_else(|| missing("secretValue"))?,
            description,
        })
    }

    /// The metadata of the secret this creates.
    pub fn secret(&self, org_id: &str, actor: &str, now: Timestamp) -> Secret {
        Secret {
            org_id: org_id.to_owned(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_at: now,
            updated_at: now,
            created_by: actor.to_owned(),
            updated_by: actor.to_owned(),
        }
    }
}

impl SecretChange {
    /// Reads and checks a PATCH document; every refusal is a 422 naming the field.
    pub fn parse(doc: Value) -> Result<Self, Error> {
        let mut change = Self::default();
        for (key, field) in object(doc)? {
            match key.as_str() {
                "secretValue" => change.value = Some(parse_value(field)?),
                "description" => change.description = Some(parse_description(field)?),
                "secretName" => {
                    return Err(Error::invalid(
                        CODE,
                        "`secretName` cannot be changed: create a secret under the new name and delete this one",
                    ));
                }
                other => return Err(unknown_key(other, "`secretValue` or `description`")),
            }
        }
        Ok(change)
    }

    /// The metadata after this change.
    pub fn apply(&self, mut secret: Secret, actor: &str, now: Timestamp) -> Secret {
        if let Some(description) = &self.description {
            secret.description = description.clone();
        }
        secret.updated_at = now;
        secret.updated_by = actor.to_owned();
        secret
    }
}

/// A secret name: 1 to 100 characters, each a letter, a digit, `-` or `_` (Port's pattern).
pub fn check_name(name: &str) -> Result<(), Error> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !name.chars().all(valid) {
        return Err(Error::invalid(
            CODE,
            format!("`secretName` must be 1 to {MAX_NAME_CHARS} letters, digits, `-` or `_` (`^[A-Za-z0-9-_]*$`), got `{name}`"),
        ));
    }
    Ok(())
}

fn object(doc: Value) -> Result<Map<String, Value>, Error> {
    match doc {
        Value::Object(fields) => Ok(fields),
        _ => Err(Error::invalid(CODE, "the secret must be a JSON object")),
    }
}

fn string(key: &str, value: Value) -> Result<String, Error> {
    match value {
        Value::String(text) => Ok(text),
        _ => Err(Error::invalid(CODE, format!("`{key}` must be a string"))),
    }
}

fn unknown_key(key: &str, expected: &str) -> Error {
    Error::invalid(CODE, format!("unknown key `{key}`: expected {expected}"))
}

/// A value: a non-empty string of at most [`MAX_VALUE_BYTES`]. Messages never quote it.
fn parse_value(value: Value) -> Result<SecretValue, Error> {
    let text = string("secretValue", value)?;
    if text.is_empty() {
        return Err(Error::invalid(CODE, "`secretValue` must not be empty"));
    }
    if text.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            CODE,
            format!("`secretValue` is {} bytes, more than the {MAX_VALUE_BYTES} bytes (64 KiB) a secret may hold", text.len()),
        ));
    }
    Ok(SecretValue(text))
}

fn parse_description(value: Value) -> Result<Option<String>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
            Err(Error::invalid(CODE, format!("`description` is longer than {MAX_DESCRIPTION_CHARS} characters")))
        }
        Value::String(text) => Ok(Some(text)),
        _ => Err(Error::invalid(CODE, "`description` must be a string or null")),
    }
}

/// What is sealed for a secret: its organization, name and value together, so that the sealed
/// text opens as this secret only (the AEAD authenticates all three; [`unbind`] checks them).
pub fn bound_plaintext(org_id: &str, name: &str, value: &SecretValue) -> String {
    format!("{BINDING}\n{org_id}\n{name}\n{}", value.0)
}

/// The value of what [`bound_plaintext`] made, when it was made for `org_id` and `name`;
/// `None` for a sealed value of another secret (copied into this row).
pub fn unbind(org_id: &str, name: &str, opened: &str) -> Option<SecretValue> {
    let rest = opened.strip_prefix(BINDING)?.strip_prefix('\n')?;
    let rest = rest.strip_prefix(org_id)?.strip_prefix('\n')?;
    let value = rest.strip_prefix(name)?.strip_prefix('\n')?;
    Some(SecretValue(value.to_owned()))
}

const BINDING: &str = "wharf-secret/v1";

/// An organization's secrets in clear, by name: a template's `.secrets`, and what
/// [`mask`] removes from a stored copy. Its `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues {
    by_name: BTreeMap<String, SecretValue>,
    /// Every form a value may take in a rendered request (as given, JSON-escaped, URL-encoded),
    /// non-empty and without repeats.
    forms: Vec<String>,
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValues").field("names", &self.by_name.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl FromIterator<(String, SecretValue)> for SecretValues {
    fn from_iter<I: IntoIterator<Item = (String, SecretValue)>>(iter: I) -> Self {
        let by_name: BTreeMap<String, SecretValue> = iter.into_iter().collect();
        let mut forms: Vec<String> = by_name.values().flat_map(|value| forms_of(&value.0)).collect();
        forms.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self { by_name, forms }
    }
}

/// The forms `value` may take in a rendered request: as given, inside a JSON string, and
/// URL-encoded (`+` and `%20` for spaces). Empty for an empty value.
fn forms_of(value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![value.to_owned()];
    let quoted = Value::String(value.to_owned()).to_string();
    forms.push(quoted[1..quoted.len() - 1].to_owned());
    let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    forms.push(encoded.replace('+', "%20"));
    forms.push(encoded);
    forms.sort_unstable();
    forms.dedup();
    forms
}

impl SecretValues {
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The template context's `.secrets`: `{name: value}`.
    pub fn context(&self) -> Value {
        Value::Object(self.by_name.iter().map(|(name, value)| (name.clone(), Value::String(value.0.clone()))).collect())
    }

    /// [`mask`] with these values.
    pub fn mask(&self, text: &str) -> String {
        mask(text, self)
    }
}

/// `text` with every occurrence of every secret value (in each of its forms: as given,
/// JSON-escaped, URL-encoded) replaced by [`MASK`]; empty values are skipped.
///
/// Every occurrence is found in `text` itself, overlapping ones included, and each stretch of
/// text covered by one or more occurrences becomes one `****`: so a value that contains
/// another (`abc`, `abcdef`) is masked whole whatever the order, and no part of an occurrence
/// is left beside a mask. Invariant: a value that has no `*` does not occur in the result
/// (what is left of `text` between masks holds no occurrence, and a mask holds only `*`).
pub fn mask(text: &str, values: &SecretValues) -> String {
    let mut covered: Vec<(usize, usize)> = Vec::new();
    for form in &values.forms {
        let mut from = 0;
        while let Some(at) = text[from..].find(form.as_str()) {
            let start = from + at;
            covered.push((start, start + form.len()));
            // The next search starts one character later, so overlapping occurrences count.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if covered.is_empty() {
        return text.to_owned();
    }
    covered.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let (mut pos, mut i) = (0, 0);
    while i < covered.len() {
        let (start, mut end) = covered[i];
        i += 1;
        while i < covered.len() && covered[i].0 <= end {
            end = end.max(covered[i].1);
            i += 1;
        }
        out.push_str(&text[pos..start]);
        out.push_str(MASK);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// `value` with [`mask`] applied to every string, object key and number in it (a number in
/// which a value occurs becomes the string `****`), walked without recursion. Two keys that
/// mask alike keep the later one's value.
pub fn mask_json(value: &mut Value, values: &SecretValues) {
    if values.forms.is_empty() {
        return;
    }
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => {
                let masked = mask(text, values);
                if masked != *text {
                    *text = masked;
                }
            }
            Value::Number(number) => {
                let text = number.to_string();
                if mask(&text, values) != text {
                    *value = Value::String(MASK.to_owned());
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(fields) => {
                if fields.keys().any(|key| mask(key, values) != *key) {
                    let old = std::mem::take(fields);
                    for (key, field) in old {
                        fields.insert(mask(&key, values), field);
                    }
                }
                stack.extend(fields.values_mut());
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn values(list: &[&str]) -> SecretValues {
        list.iter().enumerate().map(|(i, v)| (format!("s{i}"), SecretValue::new(*v))).collect()
    }

    #[test]
    fn a_create_document_is_read_and_checked() {
        let new =
            NewSecret::parse(json!({"secretName": "slack-token_2", "secretValue": "xoxb", "description": "Slack"})).unwrap();
        assert_eq!(new.name, "slack-token_2");
        assert_eq!(new.value.expose(), "xoxb");
        assert_eq!(new.description.as_deref(), Some("Slack"));
        let plain = NewSecret::parse(json!({"secretName": "a", "secretValue": "b", "description": null})).unwrap();
        assert_eq!(plain.description, None);

        let refused = |doc: Value, part: &str| {
            let err = NewSecret::parse(doc).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unprocessable);
            assert_eq!(err.code, CODE);
            assert!(err.message.contains(part), "`{part}` not in `{}`", err.message);
        };
        refused(json!([]), "JSON object");
        refused(json!({"secretValue": "v"}), "`secretName` is required");
        refused(json!({"secretName": "a"}), "`secretValue` is required");
        let long = "x".repeat(101);
        for name in ["", "a b", "a.b", "ü", "a/b", long.as_str()] {
            refused(json!({"secretName": name, "secretValue": "v"}), "`secretName` must be 1 to 100");
        }
        assert!(NewSecret::parse(json!({"secretName": "x".repeat(100), "secretValue": "v"})).is_ok());
        refused(json!({"secretName": 1, "secretValue": "v"}), "`secretName` must be a string");
        refused(json!({"secretName": "a", "secretValue": ""}), "`secretValue` must not be empty");
        refused(json!({"secretName": "a", "secretValue": 5}), "`secretValue` must be a string");
        refused(json!({"secretName": "a", "secretValue": "v".repeat(MAX_VALUE_BYTES + 1)}), "65537 bytes");
        assert!(NewSecret::parse(json!({"secretName": "a", "secretValue": "v".repeat(MAX_VALUE_BYTES)})).is_ok());
        refused(json!({"secretName": "a", "secretValue": "v", "description": 3}), "`description` must be a string or null");
        refused(json!({"secretName": "a", "secretValue": "v", "description": "d".repeat(2001)}), "`description` is longer");
        refused(json!({"secretName": "a", "secretValue": "v", "value": "v"}), "unknown key `value`");
    }

    #[test]
    fn refusals_never_quote_the_value() {
        let value = "do-not-print-me".repeat(5000);
        let err = NewSecret::parse(json!({"secretName": "a", "secretValue": value})).unwrap_err();
        assert!(!err.message.contains("do-not-print-me"), "{}", err.message);
        let new = NewSecret::parse(json!({"secretName": "a", "secretValue": "hunter2"})).unwrap();
        assert!(!format!("{new:?}").contains("hunter2"), "{new:?}");
        let change = SecretChange::parse(json!({"secretValue": "hunter2"})).unwrap();
        assert!(!format!("{change:?}").contains("hunter2"), "{change:?}");
        let all = values(&["hunter2"]);
        assert!(!format!("{all:?}").contains("hunter2"), "{all:?}");
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let secret = NewSecret::parse(json!({"secretName": "a", "secretValue": "v", "description": "old"})).unwrap().secret(
            "org",
            "client-1",
            Timestamp::from_millis(1),
        );
        let change = SecretChange::parse(json!({"secretValue": "w"})).unwrap();
        assert_eq!(change.value.as_ref().map(SecretValue::expose), Some("w"));
        let changed = change.apply(secret.clone(), "client-2", Timestamp::from_millis(2));
        assert_eq!(changed.description.as_deref(), Some("old"));
        assert_eq!((changed.created_by.as_str(), changed.updated_by.as_str()), ("client-1", "client-2"));
        assert_eq!((changed.created_at, changed.updated_at), (Timestamp::from_millis(1), Timestamp::from_millis(2)));
        let removed = SecretChange::parse(json!({"description": null})).unwrap().apply(secret, "c", Timestamp::from_millis(3));
        assert_eq!(removed.description, None);
        let err = SecretChange::parse(json!({"secretName": "b"})).unwrap_err();
        assert!(err.message.contains("`secretName` cannot be changed"), "{}", err.message);
        assert!(SecretChange::parse(json!({"secretValue": ""})).unwrap_err().message.contains("must not be empty"));
        assert!(SecretChange::parse(json!({"x": 1})).unwrap_err().message.contains("unknown key `x`"));
    }

    #[test]
    fn a_sealed_value_opens_as_its_own_secret_only() {
        let value = SecretValue::new("line one\nline two");
        let bound = bound_plaintext("org1", "token", &value);
        assert_eq!(unbind("org1", "token", &bound), Some(value.clone()));
        assert_eq!(unbind("org1", "token2", &bound), None);
        assert_eq!(unbind("org1", "tok", &bound), None);
        assert_eq!(unbind("org2", "token", &bound), None);
        assert_eq!(unbind("org1", "token", "line one"), None);
    }

    #[test]
    fn the_metadata_has_no_value() {
        let secret = NewSecret::parse(json!({"secretName": "a", "secretValue": "hunter2"})).unwrap().secret(
            "org",
            "c",
            Timestamp::from_millis(0),
        );
        let doc = secret.to_json();
        assert_eq!(doc["secretName"], "a");
        assert_eq!(doc["createdBy"], "c");
        assert!(doc.get("description").is_none(), "{doc}");
        assert!(!doc.to_string().contains("hunter2"));
    }

    #[test]
    fn masking_replaces_every_occurrence_in_every_form() {
        let all = values(&["abc", "abcdef", "", "p\"w d"]);
        assert_eq!(mask("x abcdef y abc z", &all), "x **** y **** z");
        assert_eq!(mask("abcabc", &all), "****", "adjacent occurrences are one covered stretch");
        assert_eq!(mask("nothing here", &all), "nothing here");
        assert_eq!(mask(r#"{"k":"p\"w d"}"#, &all), r#"{"k":"****"}"#, "JSON-escaped");
        assert_eq!(mask("?t=p%22w+d&u=p%22w%20d", &all), "?t=****&u=****", "URL-encoded");
        assert_eq!(mask("p\"w d", &all), "****");
        assert_eq!(mask("aaaa", &values(&["aaa"])), "****", "overlapping occurrences");
        assert_eq!(mask("héllo wörld", &values(&["ö"])), "héllo w****rld");
        assert_eq!(mask("anything", &SecretValues::default()), "anything");
        assert_eq!(values(&["a", "b"]).context(), json!({"s0": "a", "s1": "b"}));
    }

    #[test]
    fn masking_json_reaches_every_string_key_and_number() {
        let all = values(&["hunter2", "4242"]);
        let mut doc = json!({"token": "Bearer hunter2", "hunter2": [1, {"deep": ["x hunter2"]}], "pin": 4242, "n": 7});
        mask_json(&mut doc, &all);
        assert_eq!(doc, json!({"token": "Bearer ****", "****": [1, {"deep": ["x ****"]}], "pin": "****", "n": 7}));
        let mut deep = json!("hunter2");
        for _ in 0..1_000 {
            deep = json!([deep]);
        }
        mask_json(&mut deep, &all);
        assert!(!deep.to_string().contains("hunter2"));
    }

    proptest! {
        /// No secret value (without the mask's `*`) survives masking, whatever the text and
        /// however the values overlap one another; text without any is unchanged.
        #[test]
        fn no_secret_value_survives(
            secrets in proptest::collection::vec("[ab\"% +é]{0,4}", 0..5),
            text in "[ab\"% +é*x]{0,40}",
        ) {
            let all: SecretValues = secrets.iter().enumerate().map(|(i, v)| (format!("s{i}"), SecretValue::new(v.clone()))).collect();
            let masked = mask(&text, &all);
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                prop_assert!(!masked.contains(secret.as_str()), "{secret:?} survives in {masked:?} (from {text:?})");
            }
            if all.forms.iter().all(|form| !text.contains(form.as_str())) {
                prop_assert_eq!(&masked, &text);
            }
            // (`k`, `[`, `{` and `:` are outside the values' alphabet.)
            let mut doc = json!({"k": text.clone(), text.clone(): [text.clone()]});
            mask_json(&mut doc, &all);
            let shown = doc.to_string();
            for secret in secrets.iter().filter(|s| !s.is_empty() && !s.contains(['"', '\\'])) {
                prop_assert!(!shown.contains(secret.as_str()), "{secret:?} survives in {shown}");
            }
        }
    }
}
