//! Port's "control the payload" configuration (`control_the_payload_config.json`,
//! `app/invokers/webhook_invoker.py`): which request a run's message becomes, and what is
//! reported once it has been answered.
//!
//! The file is a JSON array of mappings; the first whose `enabled` is `true`, or a jq
//! expression whose first output is `true`, is used. Its `method`, `url`, `body`, `headers` and
//! `query` replace the defaults (the invocation method's method and URL, the whole message as
//! the body, no headers, no query); `report` (`status`, `link`, `summary`, `externalRunId`)
//! replaces the default report; `fieldsToDecryptPaths` names values decrypted first.
//!
//! Every string in a mapping is jq run on the message (a literal string is `"\"text\""`),
//! and its first output is the value; a jq error, or no output, is `null`. Objects are
//! evaluated leaf by leaf and rebuilt (Port flattens and unflattens them, so an object with
//! no leaf inside another object disappears); arrays item by item; numbers, booleans and
//! `null` stay as they are. Report expressions read `{"body": message, "request": the
//! request as sent, "response": {"statusCode", "headers", "text", "json"}}`.
//!
//! Every expression is compiled when the file is loaded; one that does not compile is `null`
//! at each run, as in Port's agent (whose own tests rely on `.payload.non-existing-field`
//! being no mapping's `true`), and is named in [`PayloadConfig::warnings`] so that the agent
//! can say so at start. A value of the wrong type (`"enabled": 1`) refuses the file, as
//! Port's agent's pydantic models refuse it. `env` and `$ENV`
//! are what [`PayloadConfig::with_env`] gives (Port's mappings read tokens from the agent's
//! environment, `env.GITLAB_URL`); everything runs on Wharf's jq, under one budget per run
//! ([`MAPPING_LIMITS`]) so that a runaway expression cannot hang the agent.

use std::time::Duration;

use serde_json::{Map, Value, json};
use wharf_jq::{Limits, Program};

use crate::decrypt::{DecryptError, decrypt_paths};
use crate::message::{invocation_of, truthy, type_name};
use crate::report::{Answer, Report};

/// The budget of one unit of work: choosing the mapping and making one run's request, or
/// making its report. Each expression also stays within `wharf_jq::DEFAULT_LIMITS`.
pub const MAPPING_LIMITS: Limits = Limits { steps: 10_000_000, time: Duration::from_secs(2), stack: 1 << 20, memory: 256 << 20 };

/// The global variable holding the environment that `env` and `$ENV` read.
const ENV_VAR: &str = "__wharf_agent_env";

/// Port's own default (`app/control_the_payload_config.json`), less its GitLab mapping, which
/// applies to `GITLAB` invocations only and Wharf claims `WEBHOOK` runs alone.
pub const PORT_DEFAULT: &str = r#"[
  {
    "enabled": true,
    "url": ".payload.action.invocationMethod.url // .changelogDestination.url",
    "method": ".payload.action.invocationMethod.method // \"POST\"",
    "fieldsToDecryptPaths": []
  }
]"#;

/// Why a payload configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the payload config is not JSON: {0}")]
    Json(String),
    #[error("the payload config must be a JSON array of mappings, not {0}")]
    NotArray(&'static str),
    #[error("mappings[{index}]: {message}")]
    Mapping { index: usize, message: String },
}

/// A loaded payload configuration, every expression compiled.
#[derive(Debug, Clone)]
pub struct PayloadConfig {
    mappings: Vec<Mapping>,
    env: Value,
    warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct Mapping {
    enabled: Enabled,
    method: Option<Field>,
    url: Option<Field>,
    body: Option<Field>,
    headers: Option<Field>,
    query: Option<Field>,
    report: Option<ReportMapping>,
    decrypt: Vec<String>,
}

#[derive(Debug, Clone)]
enum Enabled {
    Always(bool),
    When(Expr),
}

#[derive(Debug, Clone, Default)]
struct ReportMapping {
    status: Option<Expr>,
    link: Option<Expr>,
    summary: Option<Expr>,
    external_run_id: Option<Expr>,
}

/// A mapping's value: every string in it is jq.
#[derive(Debug, Clone)]
enum Field {
    Jq(Expr),
    Literal(Value),
    Array(Vec<Field>),
    Object(Vec<(String, Field)>),
}

#[derive(Debug, Clone)]
struct Expr {
    source: String,
    /// The program, or why it does not compile (it is then `null`).
    program: Result<Program, String>,
}

/// The request a mapping made of a message, as Port's agent holds it (`RequestPayload`):
/// whatever the expressions gave, checked only when it is sent ([`crate::request`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Value,
    pub url: Value,
    pub body: Value,
    pub headers: Value,
    pub query: Value,
}

impl Request {
    /// `{"method", "url", "body", "headers", "query"}`: what report expressions see as
    /// `.request`.
    pub fn to_value(&self) -> Value {
        json!({
            "method": self.method,
            "url": self.url,
            "body": self.body,
            "headers": self.headers,
            "query": self.query,
        })
    }
}

/// What a request is where its mapping does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub method: Value,
    pub url: Value,
    /// `None`: the message itself (after its `fieldsToDecryptPaths` are decrypted).
    pub body: Option<Value>,
    pub headers: Value,
}

impl Defaults {
    /// Port's (`_prepare_payload`): the invocation method's method (`POST` when it has none)
    /// and URL (`""`), the whole message as the body, no headers.
    pub fn of_invocation(invocation: &Value) -> Self {
        Self {
            method: invocation.get("method").cloned().unwrap_or_else(|| Value::from("POST")),
            url: invocation.get("url").cloned().unwrap_or_else(|| Value::from("")),
            body: None,
            headers: json!({}),
        }
    }
}

/// What the mapping made of one run's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The index of the mapping used.
    pub mapping: usize,
    /// The message, its `fieldsToDecryptPaths` decrypted.
    pub message: Value,
    /// The request to send.
    pub request: Request,
    /// The paths that did not decrypt (left as they were), with why.
    pub decrypt_failures: Vec<(String, DecryptError)>,
}

impl Default for PayloadConfig {
    /// Port's default configuration ([`PORT_DEFAULT`]).
    fn default() -> Self {
        Self::parse(PORT_DEFAULT).expect("Port's default payload config compiles")
    }
}

impl PayloadConfig {
    /// Reads a configuration in Port's format (a JSON array of mappings).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::from_value(&doc)
    }

    /// As [`PayloadConfig::parse`], from a JSON value.
    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let Value::Array(items) = doc else {
            return Err(ConfigError::NotArray(type_name(doc)));
        };
        let mut warnings = Vec::new();
        let mut mappings = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let mut not_compiled = Vec::new();
            let mapping = Mapping::compile(item, &mut not_compiled).map_err(|message| ConfigError::Mapping { index, message })?;
            warnings.extend(not_compiled.into_iter().map(|message| format!("mappings[{index}]: {message}; it is null")));
            mappings.push(mapping);
        }
        Ok(Self { mappings, env: json!({}), warnings })
    }

    /// The expressions that do not compile (each is `null` when evaluated), in words.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The same configuration whose expressions read `env` (and `$ENV`) as these variables;
    /// without it they are `{}`, as everywhere in Wharf.
    pub fn with_env(mut self, env: Map<String, Value>) -> Self {
        self.env = Value::Object(env);
        self
    }

    /// How many mappings there are.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// The index of the mapping for `message`: the first enabled one.
    pub fn find(&self, message: &Value) -> Option<usize> {
        self.mappings.iter().position(|mapping| match &mapping.enabled {
            Enabled::Always(on) => *on,
            Enabled::When(expr) => expr.eval(message, &self.env) == Value::Bool(true),
        })
    }

    /// Chooses the mapping for a run's `message`, decrypts its `fieldsToDecryptPaths` with
    /// `decryption_key` (the client secret; nothing is decrypted when it is empty) and makes
    /// the request, defaulting to `invocation`'s method and URL. `None` when no mapping is
    /// enabled. One unit of work under [`MAPPING_LIMITS`]: call it where blocking is allowed.
    pub fn prepare(&self, message: Value, invocation: &Value, decryption_key: &str) -> Option<Prepared> {
        self.prepare_with(message, Defaults::of_invocation(invocation), decryption_key)
    }

    /// As [`PayloadConfig::prepare`], the request's fields defaulting to `defaults` where the
    /// mapping does not give them (a workflow node run's own request, say).
    pub fn prepare_with(&self, message: Value, defaults: Defaults, decryption_key: &str) -> Option<Prepared> {
        let budgeted = wharf_jq::with_budget(MAPPING_LIMITS, || self.prepare_within_budget(message, defaults, decryption_key));
        if let Some(exceeded) = budgeted.exceeded {
            tracing::warn!(
                limit = exceeded.message(),
                "the payload mapping exceeded its budget; the rest of its fields are null"
            );
        }
        budgeted.value
    }

    fn prepare_within_budget(&self, mut message: Value, defaults: Defaults, decryption_key: &str) -> Option<Prepared> {
        let index = self.find(&message)?;
        let mapping = &self.mappings[index];
        let decrypt_failures = if decryption_key.is_empty() || mapping.decrypt.is_empty() {
            Vec::new()
        } else {
            decrypt_paths(&mut message, &mapping.decrypt, decryption_key)
        };
        let mut request = Request {
            method: defaults.method,
            url: defaults.url,
            body: defaults.body.unwrap_or_else(|| message.clone()),
            headers: defaults.headers,
            query: json!({}),
        };
        let env = &self.env;
        let fields = [
            (&mapping.method, &mut request.method),
            (&mapping.url, &mut request.url),
            (&mapping.body, &mut request.body),
            (&mapping.headers, &mut request.headers),
            (&mapping.query, &mut request.query),
        ];
        for (field, slot) in fields {
            if let Some(field) = field {
                *slot = field.eval(&message, env);
            }
        }
        Some(Prepared { mapping: index, message, request, decrypt_failures })
    }

    /// What to report once `answer` came back for `prepared` (whose request carries the
    /// headers it was sent with): Port's default ([`Report::default_for`]), each field of
    /// the mapping's `report` replacing its own, `null` included. One unit of work under
    /// [`MAPPING_LIMITS`].
    pub fn report(&self, prepared: &Prepared, answer: &Answer) -> Report {
        let synchronized = truthy(invocation_of(&prepared.message).get("synchronized").unwrap_or(&Value::Null));
        let mut report = Report::default_for(synchronized, answer);
        let Some(mapping) = self.mappings.get(prepared.mapping).and_then(|m| m.report.as_ref()) else {
            return report;
        };
        let context = json!({
            "body": prepared.message,
            "request": prepared.request.to_value(),
            "response": answer.to_value(),
        });
        let budgeted = wharf_jq::with_budget(MAPPING_LIMITS, || {
            let fields = [
                (&mapping.status, &mut report.status),
                (&mapping.link, &mut report.link),
                (&mapping.summary, &mut report.summary),
                (&mapping.external_run_id, &mut report.external_run_id),
            ];
            for (expr, slot) in fields {
                if let Some(expr) = expr {
                    *slot = expr.eval(&context, &self.env);
                }
            }
        });
        if let Some(exceeded) = budgeted.exceeded {
            tracing::warn!(limit = exceeded.message(), "the report mapping exceeded its budget; the rest of its fields are null");
        }
        report
    }
}

impl Mapping {
    fn compile(item: &Value, not_compiled: &mut Vec<String>) -> Result<Self, String> {
        let errors = std::cell::RefCell::new(Vec::new());
        let compiled = Self::compile_reporting(item, &errors);
        not_compiled.extend(errors.into_inner());
        compiled
    }

    fn compile_reporting(item: &Value, errors: &std::cell::RefCell<Vec<String>>) -> Result<Self, String> {
        let compile = |code: &str, path: &str| Expr::compile(code, path, errors);
        let Value::Object(map) = item else {
            return Err(format!("a mapping must be an object, not {}", type_name(item)));
        };
        for key in map.keys() {
            if !["enabled", "method", "url", "body", "headers", "query", "report", "fieldsToDecryptPaths"].contains(&key.as_str())
            {
                tracing::warn!(key, "the payload config has a key Port's agent does not know; it is ignored");
            }
        }
        let present = |key: &str| map.get(key).filter(|v| !v.is_null());
        let enabled = match present("enabled") {
            None => Enabled::Always(true),
            Some(Value::Bool(on)) => Enabled::Always(*on),
            Some(Value::String(code)) => Enabled::When(compile(code, "enabled")),
            Some(other) => return Err(format!("`enabled` must be true, false or a jq string, not {}", type_name(other))),
        };
        let jq_string = |key: &str| -> Result<Option<Field>, String> {
            match present(key) {
                None => Ok(None),
                Some(Value::String(code)) => Ok(Some(Field::Jq(compile(code, key)))),
                Some(other) => Err(format!("`{key}` must be a jq string, not {}", type_name(other))),
            }
        };
        // `headers` and `query`: a jq string, or an object of jq strings.
        let jq_or_object_of_jq = |key: &str| -> Result<Option<Field>, String> {
            match present(key) {
                Some(Value::Object(fields)) => {
                    let fields = fields
                        .iter()
                        .map(|(name, value)| match value {
                            Value::String(code) => Ok((name.clone(), Field::Jq(compile(code, &format!("{key}.{name}"))))),
                            other => Err(format!("`{key}.{name}` must be a jq string, not {}", type_name(other))),
                        })
                        .collect::<Result<_, String>>()?;
                    Ok(Some(Field::Object(fields)))
                }
                Some(Value::String(_)) | None => jq_string(key),
                Some(other) => Err(format!("`{key}` must be a jq string or an object of jq strings, not {}", type_name(other))),
            }
        };
        let body = match present("body") {
            Some(Value::Object(fields)) => Some(Field::Object(Field::compile_object(fields, "body", &compile)?)),
            Some(Value::String(_)) | None => jq_string("body")?,
            Some(other) => return Err(format!("`body` must be a jq string or an object, not {}", type_name(other))),
        };
        let report = match present("report") {
            None => None,
            Some(Value::Object(fields)) => {
                let expr = |key: &str| -> Result<Option<Expr>, String> {
                    match fields.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(code)) => Ok(Some(compile(code, &format!("report.{key}")))),
                        Some(other) => Err(format!("`report.{key}` must be a jq string, not {}", type_name(other))),
                    }
                };
                Some(ReportMapping {
                    status: expr("status")?,
                    link: expr("link")?,
                    summary: expr("summary")?,
                    external_run_id: expr("externalRunId")?,
                })
            }
            Some(other) => return Err(format!("`report` must be an object, not {}", type_name(other))),
        };
        let decrypt = match present("fieldsToDecryptPaths") {
            None => Vec::new(),
            Some(Value::Array(paths)) => paths
                .iter()
                .map(|p| {
                    p.as_str().map(str::to_owned).ok_or_else(|| "`fieldsToDecryptPaths` must be an array of strings".to_owned())
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("`fieldsToDecryptPaths` must be an array of strings, not {}", type_name(other))),
        };
        Ok(Self {
            enabled,
            method: jq_string("method")?,
            url: jq_string("url")?,
            body,
            headers: jq_or_object_of_jq("headers")?,
            query: jq_or_object_of_jq("query")?,
            report,
            decrypt,
        })
    }
}

impl Field {
    fn compile(value: &Value, path: &str, compile: &dyn Fn(&str, &str) -> Expr) -> Result<Self, String> {
        Ok(match value {
            Value::String(code) => Field::Jq(compile(code, path)),
            Value::Array(items) => Field::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Field::compile(item, &format!("{path}[{i}]"), compile))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(fields) => Field::Object(Self::compile_object(fields, path, compile)?),
            other => Field::Literal(other.clone()),
        })
    }

    /// An object's fields, less the objects inside it that hold no leaf: Port flattens an
    /// object to its leaves and back, which loses them.
    fn compile_object(
        fields: &Map<String, Value>,
        path: &str,
        compile: &dyn Fn(&str, &str) -> Expr,
    ) -> Result<Vec<(String, Field)>, String> {
        let mut compiled = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            let path = format!("{path}.{key}");
            let field = match value {
                Value::Object(inner) => {
                    let inner = Self::compile_object(inner, &path, compile)?;
                    if inner.is_empty() {
                        continue;
                    }
                    Field::Object(inner)
                }
                other => Field::compile(other, &path, compile)?,
            };
            compiled.push((key.clone(), field));
        }
        Ok(compiled)
    }

    fn eval(&self, input: &Value, env: &Value) -> Value {
        match self {
            Field::Jq(expr) => expr.eval(input, env),
            Field::Literal(value) => value.clone(),
            Field::Array(items) => Value::Array(items.iter().map(|item| item.eval(input, env)).collect()),
            Field::Object(fields) => {
                Value::Object(fields.iter().map(|(key, field)| (key.clone(), field.eval(input, env))).collect())
            }
        }
    }
}

impl Expr {
    /// Compiles `code`; one that does not compile is recorded in `errors` (with `path`).
    fn compile(code: &str, path: &str, errors: &std::cell::RefCell<Vec<String>>) -> Self {
        // `env` and `$ENV` shadow wharf-jq's empty ones, on the same line so that jq's line
        // numbers in errors stay the user's.
        let wrapped = format!("def env: ${ENV_VAR}; ${ENV_VAR} as $ENV | {code}");
        let program = Program::compile_with_vars(&wrapped, &[ENV_VAR]).map_err(|err| {
            let message = match err {
                wharf_jq::JqError::Compile { message, .. } => message,
                other => other.to_string(),
            };
            let message = format!("`{path}` is not valid jq ({code}): {message}");
            errors.borrow_mut().push(message.clone());
            message
        });
        Self { source: code.to_owned(), program }
    }

    /// The first output on `input`; `null` when there is none or the expression fails
    /// (Port's `_jq_exec`). The failure is logged without the values it may quote.
    fn eval(&self, input: &Value, env: &Value) -> Value {
        let Ok(program) = &self.program else {
            return Value::Null;
        };
        let mut first = None;
        match program.for_each_output(input, std::slice::from_ref(env), 1, |value| first = Some(value)) {
            Ok(()) => first.unwrap_or(Value::Null),
            Err(err) => {
                let source = self.source.as_str();
                tracing::warn!(expression = source, "a payload config expression failed; its value is null");
                tracing::debug!(expression = source, error = %err, "the payload config expression's error");
                Value::Null
            }
        }
    }
}
