//! The OpenAPI document's schemas and the rules that complete every operation's answers.
//!
//! Request and response bodies are JSON documents whose rules (patterns, lengths, `oneOf`,
//! unknown keys refused) are written here as JSON Schema, mirroring what the core's parsers
//! accept. Why not `#[derive(ToSchema)]` on the core's types: the core reads most documents by
//! hand or through `serde_json::Value` (to name the path of an error), so there is no type to
//! derive from, and utoipa's schema model has no `const`, `not` or pattern-keyed maps. A route
//! names a schema by its marker type (`request_body(content = docs::BlueprintDoc)`); utoipa
//! puts a `$ref` to it in the operation, and [`complete`] replaces the marker's placeholder
//! with the JSON Schema below.
//!
//! Invariant: every marker has a schema in [`schemas`] (the `documents!` macro makes both from
//! one list), so no `$ref` points at an empty schema (tests/suite/openapi.rs checks the document).

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};

/// Port's blueprint identifier (its apispec): letters of any script, digits, `@_.+:\/-`,
/// not `.` or `..`, at most 100 characters.
pub const BLUEPRINT_IDENTIFIER: &str = r"^(?!\.{1,2}$)[\p{L}0-9@_.+:\\/-]+$";
/// Port's entity identifier: the blueprint's characters and `=`, at most 1000 characters.
pub const ENTITY_IDENTIFIER: &str = r"^(?!\.{1,2}$)[\p{L}0-9@_.+:\\/=-]+$";
/// A new blueprint's or ingestion webhook's identifier (SPEC §12): route segments, so no `/`
/// or `.`. Ones made under Port's wider pattern before stay usable ([`BLUEPRINT_IDENTIFIER`]).
pub const NEW_IDENTIFIER: &str = r"^[A-Za-z0-9@_=-]+$";
/// Port's action identifier: letters of any script, digits, `@_.+:=-`, not `.` or `..`, at
/// most 100 characters.
/// A workflow's identifier (reference §4.1).
pub const WORKFLOW_IDENTIFIER: &str = r"^[\p{L}0-9@_:-]+$";
pub const ACTION_IDENTIFIER: &str = r"^(?!\.{1,2}$)[\p{L}0-9@_.+:=-]+$";
/// Property and relation names.
pub const PROPERTY_NAME: &str = r"^[A-Za-z0-9@_=\-]+$";
/// Organization, project and subscription ids (seed 004), accepted in either case.
pub const HEX_ID: &str = "^[0-9a-fA-F]{24}$";
/// A published event's type (`invoice.paid`): dot-separated segments of letters, digits, `_` and `-`.
pub const PUBLISHED_EVENT_TYPE: &str = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$";
/// A subscription's pattern of published event types: `*` matches one segment; a lone `*` matches everything.
pub const PUBLISHED_EVENT_PATTERN: &str = r"^(\*|[A-Za-z0-9_-]+)(\.(\*|[A-Za-z0-9_-]+))*$";
/// A signing secret as Wharf reads it: `whsec_` (optional), then base64 of one byte or more,
/// with or without its padding.
pub const SIGNING_SECRET: &str = "^(whsec_)?(?=[A-Za-z0-9+/])([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}(==)?|[A-Za-z0-9+/]{3}=?)?$";
/// An organization secret's name (Port's pattern, at least one character).
pub const SECRET_NAME: &str = "^[A-Za-z0-9_-]+$";
/// A date-time as Wharf reads it (RFC 3339).
const DATE_TIME: &str = "date-time";

/// Declares marker types (named in route attributes) and the JSON Schema of each.
macro_rules! documents {
    ($($(#[$meta:meta])* $name:ident => $schema:expr;)*) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                /// A placeholder: [`complete`] puts the real schema in its place.
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new().into()
                }
            }

            impl utoipa::ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        )*

        /// Every marker's name and its JSON Schema.
        pub fn schemas() -> Vec<(&'static str, Value)> {
            vec![$((stringify!($name), $schema)),*]
        }
    };
}

fn string(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max})
}

/// Any JSON value, spelled out (Schemathesis's generator fails on an empty schema `{}`).
fn any_value() -> Value {
    json!({"type": ["object", "array", "string", "number", "boolean", "null"]})
}

/// A key of the answer that a document may carry back (a GET's object sent again): accepted
/// and ignored.
fn response_only() -> Value {
    json!({"description": "Response-only: accepted and ignored"})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

/// An icon's name: at most 100 characters (README "Limits").
fn icon() -> Value {
    json!({"type": ["string", "null"], "maxLength": 100})
}

fn error_body() -> Value {
    json!({
        "type": "object",
        "description": "Port's error body: what is wrong, and where.",
        "required": ["ok", "error", "message"],
        "properties": {
            "ok": {"const": false},
            "error": {"type": "string", "description": "A machine-readable code, e.g. `entity_not_found`"},
            "message": {"type": "string"}
        }
    })
}

fn timestamp() -> Value {
    json!({"type": "string", "format": DATE_TIME})
}

/// A date-time or `null` (`anyOf`: generators read `format` only on a single type).
fn optional_timestamp() -> Value {
    json!({"anyOf": [timestamp(), {"type": "null"}]})
}

/// A workflow document: Port's keys; `required` differs between create and replace.
fn workflow_doc(required: &[&str]) -> Value {
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": {
            "identifier": {"type": "string", "maxLength": 60},
            "title": {"type": ["string", "null"], "maxLength": 100},
            "icon": icon(),
            "description": {"type": ["string", "null"], "maxLength": 1100},
            "category": {"type": ["string", "null"], "maxLength": 40},
            "allowAnyoneToViewRuns": {"type": ["boolean", "null"]},
            "nodes": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "object", "required": ["identifier", "config"]}},
            "connections": {"type": "array", "items": {"type": "object", "required": ["sourceIdentifier", "targetIdentifier"]}},
            "createdAt": response_only(), "updatedAt": response_only(), "createdBy": response_only(),
            "updatedBy": response_only(), "versionIdentifier": response_only()
        }
    })
}

/// A node log line in any of Port's shapes.
fn node_log() -> Value {
    json!({
        "type": "object",
        "properties": {
            "logLevel": {"enum": ["DEBUG", "INFO", "WARN", "WARNING", "ERROR"]},
            "level": {"enum": ["DEBUG", "INFO", "WARN", "WARNING", "ERROR"]},
            "log": {"type": "string", "maxLength": 10_000},
            "message": {"type": "string", "maxLength": 10_000},
            "tags": {"type": ["object", "null"]}
        }
    })
}

/// `{"ok": true, key: schema}` (Port's success wrapper).
fn wrapped(key: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "required": ["ok", key],
        "properties": {"ok": {"const": true}, key: schema}
    })
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn blueprint_property() -> Value {
    json!({
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["string", "number", "boolean", "object", "array"]},
            "title": nullable_string(),
            "description": nullable_string(),
            "icon": icon(),
            "format": nullable_string(),
            "enum": {"type": ["array", "null"]},
            "items": {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["string", "number", "boolean", "object", "array"]},
                "format": {"type": "string"},
                "enum": {"type": "array"}
            }},
            "minLength": {"type": "integer", "minimum": 0},
            "maxLength": {"type": "integer", "minimum": 0},
            "minimum": {"type": "number"},
            "maximum": {"type": "number"}
        },
        "description": "A property: `type` and Port's JSON-schema keywords (`format`, `enum`, `default`, `items`, lengths, bounds, …)."
    })
}

fn blueprint_doc(required: &[&str]) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "identifier": {"type": "string", "pattern": NEW_IDENTIFIER, "minLength": 1, "maxLength": 100},
            "title": string(1, 100),
            "description": {"type": ["string", "null"], "maxLength": 200},
            "icon": icon(),
            "schema": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "properties": {
                        "type": "object",
                        "propertyNames": {"pattern": PROPERTY_NAME, "maxLength": 100},
                        "additionalProperties": blueprint_property()
                    },
                    "required": {"type": "array", "items": {"type": "string"},
                                 "description": "Names of properties of this schema"}
                }
            },
            "relations": {
                "type": "object",
                "propertyNames": {"pattern": PROPERTY_NAME, "maxLength": 100},
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["target"],
                    "properties": {
                        "title": nullable_string(),
                        "description": nullable_string(),
                        "target": {"type": "string", "pattern": BLUEPRINT_IDENTIFIER, "minLength": 1, "maxLength": 100,
                                   "description": "An existing blueprint (or this one)"},
                        "required": {"type": "boolean"},
                        "many": {"type": "boolean"}
                    }
                }
            },
            "calculationProperties": {
                "type": "object",
                "description": "Port's calculation properties: a jq `calculation` over each entity, whose first output of `type` every read answers in the entity's `properties` (calculated when read, never stored; `null` when it fails)",
                "propertyNames": {"pattern": PROPERTY_NAME, "maxLength": 100},
                "additionalProperties": {
                    "type": "object",
                    "required": ["calculation", "type"],
                    "properties": {
                        "title": nullable_string(),
                        "description": nullable_string(),
                        "calculation": {"type": "string", "description": "A jq expression over the entity (`.identifier`, `.properties.x`, `.relations.y`, …)"},
                        "type": {"type": "string", "enum": ["string", "number", "boolean", "object", "array"]}
                    }
                }
            },
            "mirrorProperties": {
                "type": "object",
                "description": "Port's mirror properties: a `path` of relations to a property (or `$` meta-property) of the entities it reaches, whose value every read answers in the entity's `properties` (an array through a `many` relation; read, never stored)",
                "propertyNames": {"pattern": PROPERTY_NAME, "maxLength": 100},
                "additionalProperties": {
                    "type": "object",
                    "required": ["path"],
                    "properties": {
                        "title": nullable_string(),
                        "description": nullable_string(),
                        "path": {"type": "string", "description": "Relations then a field, joined by dots: `owner.slack`, `owner.domain.$title`"}
                    }
                }
            },
            "aggregationProperties": {"type": "object"},
            "ownership": any_value(),
            "teamInheritance": any_value(),
            "changelogDestination": any_value(),
            "createdAt": response_only(),
            "createdBy": response_only(),
            "updatedAt": response_only(),
            "updatedBy": response_only()
        }
    })
}

fn entity_doc() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "A `blueprint` key, when sent, must name the route's blueprint (422 otherwise).",
        "properties": {
            "identifier": {"type": "string", "pattern": ENTITY_IDENTIFIER, "minLength": 1, "maxLength": 1000},
            "title": nullable_string(),
            "icon": icon(),
            "team": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            "properties": {"type": ["object", "null"], "description": "Values checked against the blueprint's schema"},
            "relations": {
                "type": ["object", "null"],
                "description": "Each an entity identifier, a list of them, or `null`",
                "additionalProperties": {"anyOf": [{"type": ["string", "null"]}, {"type": "array", "items": {"type": "string"}}]}
            },
            "createdAt": response_only(),
            "createdBy": response_only(),
            "updatedAt": response_only(),
            "updatedBy": response_only()
        }
    })
}

fn search_group() -> Value {
    json!({
        "type": "object",
        "required": ["combinator", "rules"],
        "properties": {
            "combinator": {"enum": ["and", "or"]},
            "rules": {"type": "array", "items": {"oneOf": [
                reference("SearchQuery"),
                {
                    "type": "object",
                    "not": {"required": ["combinator"]},
                    "required": ["operator"],
                    "anyOf": [
                        {"required": ["property"]},
                        {"required": ["relation"]},
                        {"properties": {"operator": {"const": "relatedTo"}}}
                    ],
                    "properties": {
                        "operator": {"enum": ["=", "!=", ">", ">=", "<", "<=", "in", "notIn", "contains", "containsAny",
                                               "doesNotContains", "beginsWith", "endsWith", "doesNotBeginsWith",
                                               "doesNotEndsWith", "isEmpty", "isNotEmpty", "exists", "between",
                                               "notBetween", "relatedTo"]},
                        "property": {"description": "A property, or `$identifier`, `$title`, `$team`, …"},
                        "relation": {"description": "A relation to compare (when `property` is not a string)"},
                        "value": {"description": "What to compare with; `relatedTo`: an identifier or a list of them"},
                        "blueprint": {"description": "`relatedTo`: the related blueprint"},
                        "direction": {"description": "`relatedTo`: `upstream` or `downstream` (default both)"},
                        "required": {"description": "`relatedTo`: only entities related through a required relation"}
                    }
                }
            ]}}
        }
    })
}

/// An action or automation document (Port's `POST /v1/actions`), `required` its required keys.
fn action_doc(required: &[&str]) -> Value {
    let template = json!({"type": "string", "description": "A string with `{{ jq }}` templates"});
    let flag = json!({"type": ["boolean", "string", "null"], "description": "A boolean, or a template"});
    let jq_condition = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type", "expressions"],
        "properties": {
            "type": {"const": "JQ"},
            "expressions": {"type": "array", "items": {"type": "string", "description": "A jq expression over the event"}},
            "combinator": {"enum": ["and", "or"]}
        }
    });
    let blueprint = json!({"type": "string", "pattern": BLUEPRINT_IDENTIFIER, "maxLength": 100});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "identifier": {"type": "string", "pattern": ACTION_IDENTIFIER, "maxLength": 100},
            "title": {"type": ["string", "null"], "maxLength": 200},
            "icon": icon(),
            "description": {"type": ["string", "null"], "maxLength": 2000},
            "trigger": {"oneOf": [
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["type", "operation"],
                    "properties": {
                        "type": {"const": "self-service"},
                        "operation": {"enum": ["CREATE", "DAY-2", "DELETE"]},
                        "blueprintIdentifier": {"type": ["string", "null"], "pattern": BLUEPRINT_IDENTIFIER, "maxLength": 100,
                                                "description": "Must exist when given"},
                        "userInputs": {"type": "object", "additionalProperties": false, "properties": {
                            "properties": {"type": "object", "propertyNames": {"pattern": PROPERTY_NAME, "maxLength": 100},
                                           "additionalProperties": {"type": "object", "required": ["type"]}},
                            "required": {"type": ["array", "object"], "description": "Input names, or `{\"jqQuery\"}`"},
                            "order": {"type": "array", "items": {"type": "string"}},
                            "steps": {"type": "array", "items": {"type": "object"}},
                            "titles": {"type": "object"}
                        }},
                        "condition": {"type": ["object", "null"], "description": "Port's `{\"type\": \"SEARCH\", rules, combinator}`"},
                        "actionCardButtonText": {"type": ["string", "null"], "minLength": 1, "maxLength": 15},
                        "executeActionButtonText": {"type": ["string", "null"], "minLength": 1, "maxLength": 15}
                    }
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["type", "event"],
                    "properties": {
                        "type": {"const": "automation"},
                        "event": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["type"],
                            "properties": {
                                "type": {"enum": ["ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED", "ANY_ENTITY_CHANGE",
                                                  "TIMER_PROPERTY_EXPIRED", "RUN_CREATED", "RUN_UPDATED", "ANY_RUN_CHANGE"]},
                                "blueprintIdentifier": blueprint,
                                "propertyIdentifier": {"type": "string"},
                                "actionIdentifier": {"type": "string", "pattern": ACTION_IDENTIFIER, "maxLength": 100}
                            }
                        },
                        "condition": {"anyOf": [jq_condition, {"type": "null"}]}
                    }
                }
            ]},
            "invocationMethod": {"oneOf": [
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["type", "url"],
                    "properties": {
                        "type": {"const": "WEBHOOK"},
                        "url": template,
                        "agent": flag,
                        "synchronized": flag,
                        "method": {"enum": ["POST", "PUT", "PATCH", "GET", "DELETE"]},
                        "headers": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                        "body": {"type": ["object", "array", "null"], "description": "A JSON template; SPEC §8's default body when omitted"}
                    }
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["type", "blueprintIdentifier", "mapping"],
                    "properties": {
                        "type": {"const": "UPSERT_ENTITY"},
                        "blueprintIdentifier": {"type": "string"},
                        "mapping": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "identifier": template,
                                "title": template,
                                "team": {"type": ["string", "array", "null"]},
                                "icon": template,
                                "properties": {"type": ["object", "null"]},
                                "relations": {"type": ["object", "null"]}
                            }
                        }
                    }
                }
            ]},
            "requiredApproval": {"anyOf": [
                {"type": ["boolean", "null"]},
                {"type": "object", "additionalProperties": false, "required": ["type"], "properties": {"type": {"enum": ["ANY", "ALL"]}}}
            ]},
            "approvalNotification": {"type": ["object", "null"], "description": "`{\"type\": \"email\"}` or `{\"type\": \"webhook\", url, format}`"},
            "publish": {"type": ["boolean", "null"]},
            "allowAnyoneToViewRuns": {"type": ["boolean", "null"]},
            "createdAt": response_only(),
            "updatedAt": response_only(),
            "createdBy": response_only(),
            "updatedBy": response_only(),
            "id": response_only()
        }
    })
}

fn webhook_doc(required: &[&str]) -> Value {
    let jq = json!({"type": ["string", "null"], "description": "A jq expression"});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "identifier": {"type": "string", "pattern": format!("^$|{NEW_IDENTIFIER}"), "maxLength": 30,
                           "description": "Generated when omitted or empty (in a replace, the route's)"},
            "title": string(1, 30),
            "description": {"type": ["string", "null"], "maxLength": 200},
            "icon": icon(),
            "enabled": {"type": "boolean"},
            "mappings": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["blueprint", "entity"],
                "properties": {
                    "blueprint": {"type": "string", "pattern": BLUEPRINT_IDENTIFIER, "minLength": 1, "maxLength": 100},
                    "operation": {"description": "`create` (default) or `delete`, or `{\"type\": \"delete\", \"deleteDependents\"}`"},
                    "filter": jq,
                    "itemsToParse": jq,
                    "entity": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["identifier"],
                        "properties": {
                            "identifier": {"description": "A jq expression, or a search query matching one entity"},
                            "title": jq,
                            "icon": jq,
                            "team": jq,
                            "properties": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                            "relations": {"type": ["object", "null"], "description": "jq expressions or search queries"}
                        }
                    }
                }
            }},
            "security": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "secret": {"type": ["string", "null"], "description": "Write-only"},
                    "signatureHeaderName": {"type": ["string", "null"]},
                    "signatureAlgorithm": {"enum": ["sha1", "sha256", "plain", null]},
                    "signaturePrefix": {"type": ["string", "null"]},
                    "requestIdentifierPath": {"type": ["string", "null"], "description": "A jq expression"}
                }
            },
            "integrationType": {"enum": ["custom", "template"]},
            "webhookKey": response_only(),
            "url": response_only(),
            "createdAt": response_only(),
            "updatedAt": response_only(),
            "createdBy": response_only(),
            "updatedBy": response_only()
        }
    })
}

/// `kind`, or `kind` and `null` in a patch (where `null` leaves a field as it is).
fn nullable_if(patch: bool, kind: &str) -> Value {
    if patch { json!([kind, "null"]) } else { json!(kind) }
}

/// `schema`, or `null`.
fn or_null(schema: &mut Value) {
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
        return;
    }
    match schema.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = std::mem::take(kind);
            schema["type"] = json!([kind, "null"]);
        }
        Some(Value::Array(kinds)) if !kinds.contains(&json!("null")) => kinds.push(json!("null")),
        _ => {}
    }
}

fn project_doc(required: &[&str]) -> Value {
    let patch = required.is_empty();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "name": {"type": nullable_if(patch, "string"), "minLength": 2, "maxLength": 100},
            "slug": {"type": nullable_if(patch, "string"), "pattern": "^[a-z0-9-]{2,100}$"},
            "description": {"type": ["string", "null"], "maxLength": 255},
            "status": {"enum": ["draft", "active", "archived", null]},
            "appIconUrl": nullable_string()
        }
    })
}

fn subscription_doc(required: &[&str]) -> Value {
    let patch = required.is_empty();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "name": {"type": nullable_if(patch, "string"), "minLength": 1, "maxLength": 100},
            "url": {"type": nullable_if(patch, "string"), "format": "iri", "pattern": "^https?://", "maxLength": 2048,
                    "description": "An http:// or https:// URL with a host"},
            "headers": {
                "type": ["object", "null"],
                "description": "Sent with every delivery; not Wharf's own `webhook-*` headers nor HTTP's",
                "propertyNames": {"pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"},
                "additionalProperties": {"type": "string", "pattern": "^[^\\r\\n\\u0000]*$"}
            },
            "headersNotSecret": {
                "type": ["array", "null"],
                "description": "Names of `headers` shown in clear; every other header value is a secret, sealed at rest and shown as `[redacted]`",
                "items": {"type": "string"}
            },
            "active": {"type": ["boolean", "null"]},
            "events": {"type": nullable_if(patch, "array"), "minItems": 1,
                       "items": {"type": "string", "pattern": PUBLISHED_EVENT_PATTERN, "minLength": 1, "maxLength": 256}}
        }
    })
}

/// A secret document: `required` names the keys a create needs (a PATCH needs none, and
/// cannot rename).
fn secret_doc(required: &[&str]) -> Value {
    let mut properties = json!({
        "secretValue": {"type": "string", "minLength": 1, "maxLength": 65536, "writeOnly": true,
                        "description": "Non-empty, at most 64 KiB of UTF-8; never returned"},
        "description": {"type": ["string", "null"], "maxLength": 2000}
    });
    if !required.is_empty() {
        properties["secretName"] = json!({"type": "string", "pattern": SECRET_NAME, "minLength": 1, "maxLength": 100});
    }
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

fn subscription() -> Value {
    json!({
        "type": "object",
        "required": ["_id", "name", "url", "active", "events", "createdAt", "updatedAt"],
        "properties": {
            "_id": {"type": "string", "pattern": HEX_ID},
            "name": {"type": "string"},
            "url": {"type": "string"},
            "headers": {"type": "object", "description": "Values shown as `[redacted]` except those named in `headersNotSecret`"},
            "headersNotSecret": {"type": "array", "items": {"type": "string"}},
            "active": {"type": "boolean"},
            "events": {"type": "array", "items": {"type": "string"}},
            "disabledReason": {"type": "string"},
            "createdAt": timestamp(),
            "updatedAt": timestamp()
        }
    })
}

fn delivery() -> Value {
    json!({
        "type": "object",
        "required": ["id", "eventId", "eventType", "status", "attempts", "createdAt", "updatedAt"],
        "properties": {
            "id": {"type": "string"},
            "eventId": {"type": "string"},
            "eventType": {"type": "string"},
            "status": {"enum": ["pending", "succeeded", "failed"]},
            "attempts": {"type": "integer"},
            "manual": {"type": "boolean"},
            "nextAttemptAt": timestamp(),
            "lastStatusCode": {"type": "integer"},
            "lastError": {"type": "string"},
            "createdAt": timestamp(),
            "updatedAt": timestamp()
        }
    })
}

documents! {
    /// Port's error body.
    ErrorBody => error_body();
    /// A blueprint to create (or replace).
    BlueprintDoc => blueprint_doc(&["identifier", "title", "schema"]);
    /// The keys of a blueprint to change.
    BlueprintPatch => {
        let mut doc = blueprint_doc(&[]);
        // In a patch, a `null` entry of a keyed map removes it.
        or_null(&mut doc["properties"]["relations"]["additionalProperties"]);
        or_null(&mut doc["properties"]["schema"]["properties"]["properties"]["additionalProperties"]);
        doc["description"] = json!("Top-level keys replace; `schema.properties`, `relations` and the other keyed maps merge by key (`null` removes an entry).");
        doc
    };
    /// A stored blueprint.
    Blueprint => json!({
        "type": "object",
        "required": ["identifier", "title", "schema", "createdAt", "updatedAt"],
        "properties": {
            "identifier": {"type": "string"},
            "title": {"type": "string"},
            "schema": {"type": "object"},
            "relations": {"type": "object"},
            "createdAt": timestamp(),
            "updatedAt": timestamp(),
            "createdBy": {"type": "string"},
            "updatedBy": {"type": "string"}
        }
    });
    BlueprintAnswer => wrapped("blueprint", reference("Blueprint"));
    BlueprintsAnswer => wrapped("blueprints", json!({"type": "array", "items": reference("Blueprint")}));
    /// An entity as written (its properties are checked against the blueprint's schema).
    EntityDoc => entity_doc();
    /// Up to 20 entities, each written or refused on its own.
    BulkDoc => json!({
        "type": "object",
        "required": ["entities"],
        "properties": {"entities": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
            "description": "An entity (see `EntityDoc`); each is checked on its own, and one that is refused is an entry of `errors` in a 207"
        }}}
    });
    /// A stored entity.
    Entity => json!({
        "type": "object",
        "required": ["identifier", "blueprint", "properties", "relations"],
        "properties": {
            "identifier": {"type": "string"},
            "blueprint": {"type": "string"},
            "title": nullable_string(),
            "icon": icon(),
            "team": {"type": "array", "items": {"type": "string"}},
            "properties": {"type": "object"},
            "relations": {"type": "object"},
            "createdAt": timestamp(),
            "updatedAt": timestamp(),
            "createdBy": {"type": "string"},
            "updatedBy": {"type": "string"}
        }
    });
    EntityAnswer => wrapped("entity", reference("Entity"));
    EntitiesAnswer => {
        let mut doc = wrapped("entities", json!({"type": "array", "items": reference("Entity")}));
        doc["properties"]["next"] = json!({"type": "string", "description": "Present when more remain: the `from` of the next page"});
        doc
    };
    BulkAnswer => json!({
        "type": "object",
        "required": ["ok", "entities", "errors"],
        "properties": {
            "ok": {"const": true},
            "entities": {"type": "array", "items": {"type": "object", "required": ["index", "created"], "properties": {
                "identifier": {"type": "string"}, "index": {"type": "integer"}, "created": {"type": "boolean"}}}},
            "errors": {"type": "array", "items": {"type": "object", "required": ["index", "statusCode", "error", "message"], "properties": {
                "index": {"type": "integer"}, "statusCode": {"type": "integer"},
                "error": {"type": "string"}, "message": {"type": "string"}}}}
        }
    });
    /// A search: `{combinator, rules}`; a rule compares a `property` (or `relation`) with an
    /// `operator` and a `value`, or is itself a group.
    SearchQuery => search_group();
    /// A search body: a query, `{"query": query}`, or `{}` for every entity.
    SearchDoc => json!({
        "anyOf": [
            reference("SearchQuery"),
            {"type": "object", "required": ["query"], "properties": {
                "query": reference("SearchQuery"),
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many matches; without it, every match"},
                "from": {"type": "string", "description": "The `next` of the page before, to read the page after it"},
                "include": {"type": "array", "items": {"type": "string"}, "description": "Paths each match keeps (`identifier`, `properties.stars`, `$createdAt`)"},
                "exclude": {"type": "array", "items": {"type": "string"}, "description": "Paths each match leaves out"}
            }},
            {"type": "object", "not": {"anyOf": [{"required": ["query"]}, {"required": ["combinator"]}]},
             "description": "`{}` (or an object with neither key) searches every entity"},
            {"not": {"type": "object"}, "description": "So does a body that is not an object"}
        ]
    });
    /// `POST /v1/auth/access_token`.
    AccessTokenDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["clientId", "clientSecret"],
        "properties": {"clientId": {"type": "string"}, "clientSecret": {"type": "string"}}
    });
    AccessTokenAnswer => json!({
        "type": "object",
        "required": ["ok", "accessToken", "expiresIn", "tokenType"],
        "properties": {
            "ok": {"const": true}, "accessToken": {"type": "string"},
            "expiresIn": {"type": "integer"}, "tokenType": {"const": "Bearer"}
        }
    });
    OrganizationAnswer => wrapped("organization", json!({
        "type": "object",
        "required": ["id", "name", "settings", "createdAt", "updatedAt"],
        "properties": {"id": {"type": "string", "pattern": HEX_ID}, "name": {"type": "string"},
                       "settings": {"type": "object", "properties": {"portAgentStreamerName": {"enum": ["POLLING"]}}},
                       "createdAt": timestamp(), "updatedAt": timestamp()}
    }));
    /// What `PATCH /v1/organization` changes (Port's agent sets `portAgentStreamerName`).
    OrganizationPatchDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "settings": {"type": "object", "additionalProperties": false,
                         "properties": {"portAgentStreamerName": {"enum": ["POLLING"], "description": "Wharf serves agents by polling only"}}}
        }
    });
    /// An ingestion webhook to create (or replace).
    WebhookDoc => webhook_doc(&["title"]);
    /// The keys of an ingestion webhook to change.
    WebhookPatch => {
        let mut doc = webhook_doc(&[]);
        doc["description"] = json!("Keys replace; `null` removes a key (its default applies).");
        // A key removed is one the webhook does not have: any name is taken with `null`.
        doc["additionalProperties"] = json!({"type": "null"});
        if let Some(Value::Object(properties)) = doc.get_mut("properties") {
            properties.values_mut().for_each(or_null);
        }
        doc
    };
    /// A stored ingestion webhook (its secret is never shown).
    Webhook => json!({
        "type": "object",
        "required": ["identifier", "title", "enabled", "mappings", "webhookKey", "url"],
        "properties": {
            "identifier": {"type": "string"},
            "title": {"type": "string"},
            "enabled": {"type": "boolean"},
            "mappings": {"type": "array"},
            "security": {"type": "object"},
            "webhookKey": {"type": "string"},
            "url": {"type": "string"},
            "createdAt": timestamp(),
            "updatedAt": timestamp()
        }
    });
    /// `GET /v1/changes/parked`.
    ParkedChangesAnswer => wrapped("parked", json!({"type": "array", "items": {
        "type": "object",
        "required": ["changeId", "seq", "consumer", "reason", "parkedAt"],
        "properties": {
            "changeId": {"type": "string"},
            "seq": {"type": "integer"},
            "consumer": {"type": "string", "description": "The reader that set it aside (`router`)"},
            "reason": {"type": "string"},
            "parkedAt": timestamp()
        }
    }}));
    /// An action or automation to create.
    ActionDoc => action_doc(&["identifier", "trigger", "invocationMethod"]);
    /// An action or automation that replaces one (`identifier` may be left out).
    ActionReplaceDoc => action_doc(&["trigger", "invocationMethod"]);
    /// A stored action or automation: the document as written and the audit fields.
    Action => json!({
        "type": "object",
        "required": ["identifier", "trigger", "invocationMethod", "createdAt", "updatedAt", "createdBy", "updatedBy"],
        "properties": {
            "identifier": {"type": "string"},
            "title": {"type": "string"},
            "trigger": {"type": "object"},
            "invocationMethod": {"type": "object"},
            "createdAt": timestamp(),
            "updatedAt": timestamp(),
            "createdBy": {"type": "string"},
            "updatedBy": {"type": "string"}
        }
    });
    ActionAnswer => wrapped("action", reference("Action"));
    ActionsAnswer => wrapped("actions", json!({"type": "array", "items": reference("Action")}));
    WebhookAnswer => wrapped("integration", reference("Webhook"));
    WebhooksAnswer => wrapped("integrations", json!({"type": "array", "items": reference("Webhook")}));
    WebhookMetadataAnswer => wrapped("integrations", json!({"type": "array", "items": {
        "type": "object", "required": ["identifier", "title"],
        "properties": {"identifier": {"type": "string"}, "title": {"type": "string"}}
    }}));
    /// One received event and its mapping result.
    WebhookEvent => json!({
        "type": "object",
        "required": ["id", "status", "receivedAt"],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": ["PENDING", "SUCCESS", "PARTIAL", "FAILURE", "FILTERED", "REJECTED"]},
            "receivedAt": timestamp()
        }
    });
    EventsAnswer => json!({
        "type": "object",
        "required": ["ok", "events"],
        "properties": {
            "ok": {"const": true},
            "events": {"type": "array", "items": reference("WebhookEvent")},
            "next": {"type": ["string", "null"], "description": "The `cursor` of the next page"}
        }
    });
    EventAnswer => wrapped("event", reference("WebhookEvent"));
    ReplayedAnswer => json!({
        "type": "object", "required": ["ok", "replayed"],
        "properties": {"ok": {"const": true}, "replayed": {"type": "integer", "minimum": 0}}
    });
    /// Which stored events to map again.
    ReplayDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "from": optional_timestamp(),
            "to": optional_timestamp(),
            "status": {"enum": ["PENDING", "SUCCESS", "PARTIAL", "FAILURE", "FILTERED", "REJECTED", null]}
        }
    });
    /// An event to map without writing: a stored one (`eventId`) or one given here, with the
    /// webhook's mappings or proposed ones.
    TestDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "eventId": {"type": "string"},
            "body": any_value(),
            "headers": {"type": ["object", "null"], "description": "Header values are strings (others read as empty)"},
            "queryParams": {"type": ["object", "null"]},
            "mappings": {"type": "array", "items": {"type": "object"}}
        }
    });
    TestAnswer => json!({
        "type": "object",
        "required": ["ok", "status", "entities", "errors"],
        "properties": {
            "ok": {"const": true},
            "status": {"type": "string"},
            "entities": {"type": "array"},
            "errors": {"type": "array"}
        }
    });
    /// What an event is answered with.
    IngestAnswer => json!({
        "type": "object",
        "required": ["ok"],
        "properties": {
            "ok": {"const": true},
            "eventId": {"type": "string"},
            "duplicate": {"const": true},
            "ignored": {"type": "string"}
        }
    });
    /// Any body: JSON, form-encoded, or text.
    IngestBody => {
        let mut any = any_value();
        any["description"] = json!("JSON (any value), form-encoded, or text");
        any
    };
    AuditAnswer => wrapped("audits", json!({"type": "array", "items": {"type": "object"}}));
    /// A project to create.
    ProjectDoc => project_doc(&["name", "slug"]);
    /// The fields of a project to change.
    ProjectPatch => project_doc(&[]);
    Project => json!({
        "type": "object",
        "required": ["_id", "name", "slug", "organization", "status", "createdAt", "updatedAt"],
        "properties": {
            "_id": {"type": "string", "pattern": HEX_ID},
            "name": {"type": "string"},
            "slug": {"type": "string"},
            "organization": {"type": "string"},
            "status": {"type": "string"},
            "description": {"type": "string"},
            "appIconUrl": {"type": "string"},
            "createdAt": timestamp(),
            "updatedAt": timestamp()
        }
    });
    Projects => json!({"type": "array", "items": reference("Project")});
    /// An event to publish to the project's webhooks.
    PublishDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type", "data"],
        "properties": {
            "type": {"type": "string", "pattern": PUBLISHED_EVENT_TYPE, "minLength": 1, "maxLength": 256},
            "data": any_value(),
            "id": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_.:-]+$", "minLength": 1, "maxLength": 256,
                   "description": "Makes the publish idempotent: an id already published is a 409"}
        }
    });
    PublishAnswer => json!({
        "type": "object",
        "required": ["id", "type", "timestamp", "deliveries"],
        "properties": {"id": {"type": "string"}, "type": {"type": "string"}, "timestamp": timestamp(),
                       "deliveries": {"type": "integer", "minimum": 0}}
    });
    /// A project webhook (subscription) to create.
    SubscriptionDoc => subscription_doc(&["name", "url", "events"]);
    /// The fields of a project webhook to change.
    SubscriptionPatch => subscription_doc(&[]);
    Subscription => subscription();
    /// A new project webhook, with its signing secret.
    CreatedSubscription => {
        let mut doc = subscription();
        doc["required"].as_array_mut().expect("required is a list").push(json!("secret"));
        doc["properties"]["secret"] = json!({"type": "string", "pattern": "^whsec_"});
        doc
    };
    Subscriptions => json!({"type": "array", "items": reference("Subscription")});
    SecretAnswer => json!({
        "type": "object", "required": ["key"], "properties": {"key": {"type": "string", "pattern": "^whsec_"}}
    });
    /// A rotation: the new secret (generated when omitted) and how long the old one still signs.
    RotateDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "key": {"anyOf": [{"type": "string", "pattern": SIGNING_SECRET}, {"type": "null"}],
                    "description": "`whsec_` (optional) and base64, padded or not, of at least one byte; generated when omitted"},
            "gracePeriodSeconds": {"type": "integer", "minimum": 0, "maximum": 604800}
        }
    });
    Delivery => delivery();
    Deliveries => json!({"type": "array", "items": reference("Delivery")});
    /// A delivery with the body its attempts send.
    DeliverySent => {
        let mut doc = delivery();
        doc["required"].as_array_mut().expect("required is a list").push(json!("payload"));
        doc["properties"]["payload"] = json!({"description": "The event's data, as published: the body of every attempt"});
        doc
    };
    Attempts => json!({"type": "array", "items": {"type": "object", "required": ["id", "attemptedAt"], "properties": {
        "id": {"type": "string"}, "attemptedAt": timestamp(), "durationMs": {"type": "integer"},
        "url": {"type": "string"}, "outcome": {"type": "string"}
    }}});
    /// The window of failed deliveries to send again.
    RecoverDoc => json!({
        "type": "object",
        "required": ["since"],
        "properties": {"since": timestamp(), "until": optional_timestamp()}
    });
    RecoveredAnswer => json!({
        "type": "object", "required": ["recovered"], "properties": {"recovered": {"type": "integer", "minimum": 0}}
    });
    /// This document.
    OpenApiDocument => json!({"type": "object", "required": ["openapi", "info", "paths"]});
    /// A secret to create: its value is write-only.
    SecretDoc => secret_doc(&["secretName", "secretValue"]);
    /// The fields of a secret to change.
    SecretPatch => secret_doc(&[]);
    Secret => json!({
        "type": "object",
        "description": "A secret's metadata; its value is never returned.",
        "required": ["secretName", "createdAt", "updatedAt", "createdBy", "updatedBy"],
        "properties": {
            "secretName": {"type": "string", "pattern": SECRET_NAME, "maxLength": 100},
            "description": {"type": "string"},
            "createdAt": timestamp(),
            "updatedAt": timestamp(),
            "createdBy": {"type": "string", "description": "The API client that created it"},
            "updatedBy": {"type": "string", "description": "The API client that changed it last"}
        }
    });
    OrgSecretAnswer => wrapped("secret", reference("Secret"));
    OrgSecretsAnswer => wrapped("secrets", json!({"type": "array", "items": reference("Secret")}));
    /// A run to start: the inputs, and the entity of a DAY-2 or DELETE action.
    RunDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "properties": {"type": ["object", "null"], "description": "The inputs, by name"},
            "entity": {"type": ["string", "null"], "description": "The entity's identifier"}
        }
    });
    /// A run (Port's run object).
    Run => json!({
        "type": "object",
        "required": ["id", "action", "status", "source", "properties", "createdAt", "updatedAt"],
        "properties": {
            "id": {"type": "string", "pattern": "^r_"},
            "blueprint": {"type": ["object", "null"]},
            "entity": {"type": ["object", "null"]},
            "action": {"type": "object"},
            "properties": {"type": "object"},
            "rawProperties": {"type": "object"},
            "source": {"enum": ["UI", "API", "AUTOMATION"]},
            "status": {"enum": ["IN_PROGRESS", "SUCCESS", "FAILURE", "WAITING_FOR_APPROVAL", "DECLINED"]},
            "statusLabel": {"type": ["string", "null"]},
            "link": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": ["string", "null"]},
            "externalRunId": {"type": ["string", "null"]},
            "requiredApproval": {"type": "boolean"},
            "approval": {"type": ["object", "null"], "description": "The decision: `userId`, `state` (`APPROVED` or `DECLINED`) and the approver's `description`, when given"},
            "payload": {"type": ["object", "null"], "description": "The request sent (secrets masked as `****`)"},
            "response": {"description": "What the backend answered (synchronized runs) or reported"},
            "endedAt": optional_timestamp(),
            "createdBy": {"type": "string"},
            "impersonatedBy": {"type": ["string", "null"]},
            "updatedBy": {"type": "string"},
            "createdAt": timestamp(),
            "updatedAt": timestamp(),
            "chainDepth": {"type": "integer", "minimum": 0, "description": "How deep in a chain of automations"},
            "agentClaim": {
                "type": "object",
                "description": "Runs for agents (`agent: true`) once claimed: who claimed, when, and until when the claim hides the run unless acknowledged",
                "properties": {
                    "installationId": {"type": "string"}, "claimedAt": timestamp(),
                    "visibleAgainAt": timestamp(), "ackedAt": optional_timestamp()
                }
            }
        }
    });
    RunAnswer => wrapped("run", reference("Run"));
    /// An execution agent's claim of runs waiting for agents (Port's polling protocol).
    AgentClaimDoc => json!({
        "type": "object",
        "required": ["installationId"],
        "additionalProperties": false,
        "properties": {
            "installationId": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Who claims (Port's agent: `_PORT_EXEC_AGENT`)"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "invocationMethod": {"enum": ["WEBHOOK"]},
            "visibilityTimeoutMs": {"type": "integer", "minimum": 1000, "maximum": 43_200_000, "default": 60_000,
                                    "description": "A run claimed and not acknowledged within it can be claimed again"},
            "waitMs": {"type": "integer", "minimum": 0, "maximum": 30_000, "default": 0,
                       "description": "Wharf's addition: wait this long for a claimable run when none is (a long poll)"}
        }
    });
    AgentClaimAnswer => wrapped("runs", json!({"type": "array", "items": reference("Run"),
        "description": "Each run's `payload` is its request as it is to be sent, secrets in clear"}));
    /// The claimed runs an agent takes for good.
    AgentAckDoc => json!({
        "type": "object",
        "required": ["runIds"],
        "additionalProperties": false,
        "properties": {"runIds": {"type": "array", "maxItems": 1000, "items": {"type": "string"}}}
    });
    AgentAckAnswer => json!({
        "type": "object",
        "required": ["ok", "ackedCount", "acked"],
        "properties": {
            "ok": {"const": true},
            "ackedCount": {"type": "integer", "minimum": 0},
            "acked": {"type": "array", "items": {"type": "string"}, "description": "Wharf's addition: the ids taken by this acknowledgement"}
        }
    });
    /// An execution agent's claim of workflow node runs.
    NodeRunClaimDoc => json!({
        "type": "object",
        "required": ["installationId"],
        "additionalProperties": false,
        "properties": {
            "installationId": {"type": "string", "minLength": 1, "maxLength": 200},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "visibilityTimeoutMs": {"type": "integer", "minimum": 1000, "maximum": 43_200_000},
            "waitMs": {"type": "integer", "minimum": 0, "maximum": 30_000}
        }
    });
    NodeRunClaimAnswer => wrapped("nodeRuns", json!({"type": "array", "items": {"type": "object"}}));
    /// An acknowledgement of a workflow node run.
    NodeRunAckDoc => json!({
        "type": "object",
        "required": ["nodeRunIdentifier"],
        "properties": {"nodeRunIdentifier": {"type": "string"}, "visibilityTimeoutMs": {"type": "integer"}}
    });
    /// A workflow to create (Port's shape, reference §4.1).
    WorkflowDoc => workflow_doc(&["identifier", "nodes"]);
    /// A workflow that replaces one (`identifier` may be left out).
    WorkflowReplaceDoc => workflow_doc(&["nodes"]);
    /// A stored workflow: the document as written, its version and the audit fields.
    Workflow => json!({
        "type": "object",
        "required": ["identifier", "nodes", "versionIdentifier", "createdAt", "updatedAt"],
        "properties": {
            "identifier": {"type": "string"},
            "nodes": {"type": "array", "items": {"type": "object"}},
            "connections": {"type": "array", "items": {"type": "object"}},
            "versionIdentifier": {"type": "string", "pattern": "^wfv_", "description": "This version (a PUT makes a new one)"},
            "createdAt": timestamp(), "updatedAt": timestamp(),
            "createdBy": {"type": "string"}, "updatedBy": {"type": "string"}
        }
    });
    WorkflowAnswer => wrapped("workflow", reference("Workflow"));
    WorkflowsAnswer => wrapped("workflows", json!({"type": "array", "items": reference("Workflow")}));
    /// A workflow run to start: the self-serve trigger's inputs.
    WorkflowRunDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {"inputs": {"type": ["object", "null"], "description": "The inputs, by name"}}
    });
    /// A node run (reference §4.6).
    NodeRun => json!({
        "type": "object",
        "required": ["identifier", "workflowRunIdentifier", "nodeIdentifier", "nodeConfigType", "status", "createdAt"],
        "properties": {
            "identifier": {"type": "string", "pattern": "^wfnr_"},
            "workflowRunIdentifier": {"type": "string", "pattern": "^wfr_"},
            "nodeIdentifier": {"type": "string"},
            "nodeTitle": nullable_string(), "nodeIcon": nullable_string(),
            "nodeConfigType": {"type": "string"},
            "status": {"enum": ["IN_PROGRESS", "COMPLETED"]},
            "result": {"enum": ["SUCCESS", "FAILED", "CANCELLED", null]},
            "output": {"description": "The node's output (after its `variables`)"},
            "request": {"type": "object", "description": "What a WEBHOOK node sent (secrets masked as `****`)"},
            "nodeRunLogs": {"type": "array", "items": {"type": "object"}},
            "createdAt": timestamp(), "updatedAt": timestamp(), "completedAt": optional_timestamp()
        }
    });
    /// A workflow run (reference §4.6).
    WorkflowRun => json!({
        "type": "object",
        "required": ["identifier", "workflowIdentifier", "workflowVersionIdentifier", "status", "variables", "createdAt"],
        "properties": {
            "identifier": {"type": "string", "pattern": "^wfr_"},
            "workflowIdentifier": {"type": "string"},
            "workflowVersionIdentifier": {"type": "string", "pattern": "^wfv_"},
            "status": {"enum": ["IN_PROGRESS", "COMPLETED"]},
            "result": {"enum": ["SUCCESS", "FAILED", "CANCELLED", null]},
            "variables": {"type": "object", "properties": {"outputs": {"type": "object"}}},
            "trigger": {"type": "object"},
            "nodeRuns": {"type": "array", "items": reference("NodeRun")},
            "createdAt": timestamp(), "updatedAt": timestamp(), "completedAt": optional_timestamp(),
            "createdBy": {"type": "string"}
        }
    });
    WorkflowRunAnswer => wrapped("workflowRun", reference("WorkflowRun"));
    WorkflowRunsAnswer => wrapped("workflowRuns", json!({"type": "array", "items": reference("WorkflowRun")}));
    NodeRunAnswer => wrapped("nodeRun", reference("NodeRun"));
    /// A report on a node run.
    NodeRunPatchDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "status": {"enum": ["IN_PROGRESS", "COMPLETED"]},
            "result": {"enum": ["SUCCESS", "FAILED", "CANCELLED"], "description": "Required with `COMPLETED`"},
            "output": {"type": ["object", "array", "string", "number", "boolean", "null"]},
            "statusLabel": {"type": "string"},
            "logs": {"type": "array", "maxItems": 100, "items": node_log()}
        }
    });
    /// Node log lines.
    NodeLogsDoc => json!({
        "type": "object",
        "properties": {"logs": {"type": "array", "maxItems": 100, "items": node_log()}}
    });
    NodeLogsAnswer => wrapped("logs", json!({"type": "array", "items": {"type": "object"}}));
    NodeRunAckAnswer => json!({"type": "object", "required": ["ok", "acked"], "properties": {"ok": {"const": true}, "acked": {"const": true}}});
    RunsAnswer => wrapped("runs", json!({"type": "array", "items": reference("Run")}));
    /// What a backend reports about a run.
    RunPatchDoc => json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "status": {"enum": ["SUCCESS", "FAILURE"]},
            "statusLabel": {"type": "string"},
            "link": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "summary": {"type": "string"},
            "externalRunId": {"type": "string"},
            "message": {"type": "string", "description": "Deprecated: `summary`"}
        }
    });
    RunResponseDoc => json!({"type": "object", "required": ["response"], "additionalProperties": false, "properties": {"response": any_value()}});
    RunApprovalDoc => json!({
        "type": "object",
        "required": ["status"],
        "additionalProperties": false,
        "properties": {
            "status": {"enum": ["APPROVE", "DECLINE"]},
            "description": {"type": "string", "maxLength": 1000, "description": "Why: kept in the run's `approval.description`"}
        }
    });
    RunLogDoc => json!({
        "type": "object",
        "required": ["message"],
        "additionalProperties": false,
        "properties": {
            "message": {"type": "string"},
            "terminationStatus": {"enum": ["SUCCESS", "FAILURE"]},
            "statusLabel": {"type": "string"}
        }
    });
    RunLog => json!({
        "type": "object",
        "required": ["id", "runId", "message", "createdBy", "createdAt"],
        "properties": {
            "id": {"type": "string"}, "runId": {"type": "string"}, "message": {"type": "string"},
            "createdBy": {"type": "string"}, "createdAt": timestamp()
        }
    });
    RunLogAnswer => wrapped("runLog", reference("RunLog"));
    RunLogsAnswer => wrapped("runLogs", json!({"type": "array", "items": reference("RunLog")}));
    RunAttemptsAnswer => wrapped("attempts", json!({"type": "array", "items": {
        "type": "object",
        "required": ["id", "runId", "attemptedAt", "durationMs", "outcome"],
        "properties": {
            "id": {"type": "string"}, "runId": {"type": "string"}, "attemptedAt": timestamp(),
            "durationMs": {"type": "integer"}, "outcome": {"type": "string"},
            "statusCode": {"type": ["integer", "null"]}, "responseBody": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]}
        }
    }}));
    /// `{"ok": true}`.
    OkAnswer => json!({"type": "object", "required": ["ok"], "properties": {"ok": {"const": true}}});
}

/// The answers every operation can give beside its own, added where an operation does not
/// name them: 401 where a token is required, 400 and 413 where a body is read, 400 where
/// query or path parameters are parsed, 403 on organization routes, 500 everywhere, 503
/// wherever the store or a worker is involved.
fn complete_answers(path: &str, operation: &mut Map<String, Value>) {
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": reference("ErrorBody")}}});
    let secured = operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let has_body = operation.contains_key("requestBody");
    let has_query =
        operation.get("parameters").and_then(Value::as_array).is_some_and(|params| params.iter().any(|p| p["in"] == "query"));
    let answers = operation.entry("responses").or_insert_with(|| json!({}));
    let Value::Object(answers) = answers else { return };
    let mut add = |status: &str, description: &str| {
        answers.entry(status).or_insert_with(|| error(description));
    };
    if secured {
        add("401", "Missing, unknown or expired token");
    }
    let mut bad_request = Vec::new();
    if has_body {
        bad_request.push("the body is not JSON");
    }
    if has_query {
        bad_request.push("a query parameter does not parse");
    }
    if path.contains('{') {
        bad_request.push("a path parameter is not UTF-8 once percent-decoded, or an id is malformed");
    }
    if !bad_request.is_empty() {
        add("400", &format!("Refused: {} (the message names which)", bad_request.join("; ")));
    }
    if path.starts_with("/v1/blueprints/{blueprint}/entities/{identifier}") {
        add("405", "The identifier is `search` or `bulk`, which name routes of their own (POST only)");
    }
    if path.contains("{organizationId}") {
        add("403", "The organization is not the token's");
    }
    if has_body {
        add("413", "The body is over the limit");
    }
    add("500", "An internal error (logged with its cause)");
    // Only these three answer without the store or a background worker.
    if !matches!(path, "/healthz" | "/metrics" | "/openapi.json") {
        add("503", "The server cannot take this request now (its store or a worker is unavailable); retry");
    }
    // Each answer that names no content is one without a body (204); every other error answer
    // carries Port's error body. OpenAPI requires a description on every answer.
    for (status, answer) in answers.iter_mut() {
        if answer.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            answer["description"] = json!(default_description(status));
        }
        if status.starts_with(['4', '5']) && answer.get("content").is_none() {
            answer["content"] = json!({"application/json": {"schema": reference("ErrorBody")}});
        }
    }
}

/// The schema of a path parameter, by the route's path and the parameter's name: the
/// identifier patterns and the id shapes Wharf makes.
fn path_parameter(path: &str, name: &str) -> Option<Value> {
    let generated = |prefix: &str| json!({"type": "string", "pattern": format!("^{prefix}[0-9A-Za-z]{{20}}$")});
    Some(match name {
        "organizationId" | "projectId" | "webhookId" => json!({"type": "string", "pattern": HEX_ID}),
        // A bulk write to a blueprint that does not exist answers 207 with an error per entity,
        // not a 404: any text is a valid blueprint there.
        "blueprint" if path.ends_with("/bulk") => return None,
        "blueprint" => json!({"type": "string", "pattern": BLUEPRINT_IDENTIFIER, "maxLength": 100}),
        // `…/entities/search` and `…/entities/bulk` are routes of their own (POST only), so an
        // entity named `search` or `bulk` cannot be read, changed or deleted by these routes.
        "identifier" if path.starts_with("/v1/blueprints/{blueprint}/") => json!({
            "type": "string", "pattern": ENTITY_IDENTIFIER, "maxLength": 1000,
            "not": {"enum": ["search", "bulk"]}
        }),
        "identifier" if path.starts_with("/v1/blueprints/") => {
            json!({"type": "string", "pattern": BLUEPRINT_IDENTIFIER, "maxLength": 100})
        }
        "identifier" if path.starts_with("/v1/webhooks/") => {
            json!({"type": "string", "pattern": ENTITY_IDENTIFIER, "maxLength": 30})
        }
        // `/v1/actions/runs` is the run list, so no action is named `runs`.
        "action_identifier" => {
            json!({"type": "string", "pattern": ACTION_IDENTIFIER, "maxLength": 100, "not": {"enum": ["runs"]}})
        }
        "run_id" => generated("r_"),
        "workflow_identifier" => {
            json!({"type": "string", "pattern": WORKFLOW_IDENTIFIER, "maxLength": 60, "not": {"enum": ["runs", "nodes"]}})
        }
        "workflow_run_id" => json!({"type": "string", "pattern": "^wfr_[0-9A-Za-z]+$"}),
        "node_run_id" => json!({"type": "string", "pattern": "^wfnr_[0-9A-Za-z]+$"}),
        "event_id" => generated("whe_"),
        "deliveryId" => generated("dlv_"),
        "name" if path.starts_with("/v1/organization/secrets/") => {
            json!({"type": "string", "pattern": SECRET_NAME, "maxLength": 100})
        }
        "webhook_key" => json!({"type": "string", "minLength": 32}),
        _ => return None,
    })
}

/// One example of each request document, consistent with one another: the entity, the
/// webhook's mapping and the search are about the blueprint `service`. Schemathesis sends them
/// first; tests/suite/openapi.rs checks that the server takes each.
pub fn examples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "BlueprintDoc",
            json!({
                "identifier": "service", "title": "Service", "icon": "Service",
                "schema": {"properties": {
                    "url": {"type": "string", "format": "url", "title": "URL"},
                    "language": {"type": "string", "enum": ["rust", "go"]},
                    "replicas": {"type": "number"}
                }, "required": ["url"]},
                "relations": {"dependsOn": {"target": "service", "many": true}}
            }),
        ),
        ("BlueprintPatch", json!({"title": "Services", "schema": {"properties": {"tier": {"type": "string"}}}})),
        (
            "EntityDoc",
            json!({
                "identifier": "checkout", "title": "Checkout", "team": [],
                "properties": {"url": "https://checkout.example.com", "language": "rust", "replicas": 3},
                "relations": {"dependsOn": []}
            }),
        ),
        (
            "BulkDoc",
            json!({"entities": [
                {"identifier": "cart", "properties": {"url": "https://cart.example.com"}},
                {"identifier": "search", "properties": {"url": "https://search.example.com"}}
            ]}),
        ),
        (
            "SearchDoc",
            json!({"combinator": "and", "rules": [
                {"property": "$blueprint", "operator": "=", "value": "service"},
                {"property": "language", "operator": "in", "value": ["rust", "go"]}
            ]}),
        ),
        (
            "WebhookDoc",
            json!({
                "identifier": "github-services", "title": "GitHub services", "enabled": true,
                "mappings": [{
                    "blueprint": "service",
                    "filter": ".headers[\"x-github-event\"] == \"repository\"",
                    "entity": {
                        "identifier": ".body.repository.name",
                        "title": ".body.repository.full_name",
                        "properties": {"url": ".body.repository.html_url"}
                    }
                }],
                "security": {"requestIdentifierPath": ".headers[\"x-github-delivery\"]"}
            }),
        ),
        ("WebhookPatch", json!({"description": "Repositories become services", "enabled": true})),
        ("ReplayDoc", json!({"from": "2026-01-01T00:00:00Z", "status": "FAILURE"})),
        (
            "TestDoc",
            json!({
                "body": {"repository": {"name": "api", "full_name": "acme/api", "html_url": "https://github.com/acme/api"}},
                "headers": {"x-github-event": "repository"},
                "queryParams": {}
            }),
        ),
        ("ProjectDoc", json!({"name": "Shop", "slug": "shop", "description": "Our storefront", "status": "active"})),
        ("ProjectPatch", json!({"description": "The storefront", "status": "active"})),
        (
            "SubscriptionDoc",
            json!({
                "name": "Billing", "url": "https://billing.example.com/webhooks",
                "headers": {"x-team": "billing"}, "events": ["invoice.*", "entity.service.created"]
            }),
        ),
        ("SubscriptionPatch", json!({"active": false})),
        ("PublishDoc", json!({"type": "invoice.paid", "data": {"invoice": "in_1", "amount": 1200}, "id": "evt_1"})),
        ("RotateDoc", json!({"gracePeriodSeconds": 3600})),
        ("RecoverDoc", json!({"since": "2026-01-01T00:00:00Z"})),
        (
            "SecretDoc",
            json!({"secretName": "slack-token", "secretValue": "xoxb-example-value", "description": "Posts to #deploys"}),
        ),
        ("SecretPatch", json!({"secretValue": "xoxb-rotated-value"})),
        (
            "WorkflowDoc",
            json!({
                "identifier": "deploy_flow", "title": "Deploy",
                "nodes": [
                    {"identifier": "trigger", "title": "Deploy", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                        "properties": {"version": {"type": "string"}}, "required": ["version"]}}},
                    {"identifier": "dispatch", "config": {"type": "WEBHOOK", "url": "https://ci.example.com/deploy",
                        "body": {"version": "{{ .outputs.trigger.version }}", "run": "{{ .workflowRun.identifier }}"}}},
                    {"identifier": "accepted", "config": {"type": "CONDITION", "outlets": [
                        {"identifier": "ok", "expression": ".outputs.dispatch.response.status == 200"}]}},
                    {"identifier": "record", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                        "mapping": {"identifier": "checkout", "properties": {"language": "rust"}}}}
                ],
                "connections": [
                    {"sourceIdentifier": "trigger", "targetIdentifier": "dispatch"},
                    {"sourceIdentifier": "dispatch", "targetIdentifier": "accepted"},
                    {"sourceIdentifier": "accepted", "targetIdentifier": "record", "sourceOutletIdentifier": "ok"}
                ]
            }),
        ),
        ("WorkflowRunDoc", json!({"inputs": {"version": "1.4.2"}})),
        (
            "ActionDoc",
            json!({
                "identifier": "deploy_service", "title": "Deploy", "icon": "Rocket",
                "trigger": {
                    "type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                    "userInputs": {"properties": {"version": {"type": "string", "title": "Version"}}, "required": ["version"]}
                },
                "invocationMethod": {
                    "type": "WEBHOOK", "url": "https://deploy.example.com/hooks", "synchronized": false, "method": "POST",
                    "headers": {"RUN_ID": "{{ .run.id }}"},
                    "body": {"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}"}}
                }
            }),
        ),
        (
            "ActionReplaceDoc",
            json!({
                "title": "Deploy a version",
                "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service"},
                "invocationMethod": {"type": "WEBHOOK", "url": "https://deploy.example.com/hooks"}
            }),
        ),
    ]
}

/// A pattern matching any of `words` in any case (the server upper-cases what it reads).
fn any_case(words: &[&str]) -> String {
    let word = |w: &str| -> String {
        w.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    format!("^({})$", words.iter().map(|w| word(w)).collect::<Vec<_>>().join("|"))
}

/// The schema of a query parameter, by the route's path and the parameter's name: the values
/// the handler accepts (anything else is a 400 naming the parameter).
fn query_parameter(path: &str, name: &str) -> Option<Value> {
    let limit = |max: u32| json!({"type": "integer", "minimum": 1, "maximum": max});
    Some(match name {
        "limit" if path.starts_with("/v1/webhooks/") || path.starts_with("/organizations/") || path == "/v1/changes/parked" => {
            limit(1000)
        }
        "limit" => limit(10_000),
        "from" | "to" if !path.starts_with("/v1/blueprints/") => json!({"type": "string", "format": DATE_TIME}),
        "status" if path == "/v1/audit-log" => json!({"type": "string", "pattern": any_case(&["SUCCESS", "FAILURE"])}),
        "status" if path.starts_with("/v1/webhooks/") => json!({"type": "string", "pattern": any_case(&[
            "PENDING", "SUCCESS", "PARTIAL", "FAILURE", "FILTERED", "REJECTED"])}),
        "status" if path.starts_with("/organizations/") => json!({"enum": ["pending", "succeeded", "failed"]}),
        "action" => json!({"type": "string", "pattern": any_case(&["CREATE", "UPDATE", "DELETE"])}),
        "resources" => {
            let one = "(blueprint|entity|run|webhook|scorecard|action|integration)?";
            json!({"type": "string", "pattern": format!("^{one}(,{one})*$")})
        }
        "trigger_type" => json!({"enum": ["self-service", "automation"]}),
        "blueprint_identifier" | "action_identifier" | "trigger_event_action_identifier" if path == "/v1/actions" => {
            json!({"type": "array", "items": {"type": "string"}})
        }
        "operation" if path == "/v1/actions" => json!({"type": "array", "items": {"enum": ["CREATE", "DAY-2", "DELETE"]}}),
        "trigger_event" => json!({"type": "array", "items": {"enum": [
            "ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED", "ANY_ENTITY_CHANGE",
            "TIMER_PROPERTY_EXPIRED", "RUN_CREATED", "RUN_UPDATED", "ANY_RUN_CHANGE"]}}),
        "published" if path == "/v1/actions" => json!({"type": "boolean"}),
        "version" if path == "/v1/actions" => json!({"enum": ["v1", "v2"]}),
        "cursor" if path.starts_with("/v1/webhooks/") => json!({"type": "string", "pattern": "^[+-]?[0-9]{1,18}$"}),
        "cursor" => json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
        _ => return None,
    })
}

/// What an answer of `status` means when its operation says nothing more.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" | "201" | "202" => "Done",
        "204" => "Done, nothing to answer",
        "400" => "A malformed request (the message names what and where)",
        "403" => "Not allowed for this token",
        "404" => "No such resource (or one of another organization)",
        "409" => "A conflict with the current state (the message says which)",
        "422" => "A document that is not valid (the message names the path)",
        _ => "See the error body",
    }
}

/// A unique `operationId`: utoipa takes the handler's name (`get`, `list`, …), unique only in
/// its module; each tag is one module's, so the tag and the name are unique together.
fn operation_id(operation: &Map<String, Value>) -> Option<String> {
    let tag = operation.get("tags")?.get(0)?.as_str()?;
    let name = operation.get("operationId")?.as_str()?;
    Some(format!("{}_{name}", tag.to_ascii_lowercase().replace(' ', "_")))
}

/// The document utoipa generated, with the schemas of [`schemas`] in place of their markers
/// and every operation's answers completed.
pub fn complete(mut doc: Value) -> Value {
    let components = &mut doc["components"]["schemas"];
    if !components.is_object() {
        *components = json!({});
    }
    for (name, schema) in schemas() {
        components[name] = schema;
    }
    for (name, example) in examples() {
        components[name]["examples"] = json!([example]);
    }
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Value::Object(item) = item else { continue };
            for operation in item.values_mut() {
                let Value::Object(operation) = operation else { continue };
                if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
                    for parameter in parameters.iter_mut() {
                        let name = parameter["name"].as_str().unwrap_or_default();
                        let schema = match parameter["in"].as_str() {
                            Some("path") => path_parameter(path, name),
                            Some("query") => query_parameter(path, name),
                            _ => None,
                        };
                        if let Some(schema) = schema {
                            parameter["schema"] = schema;
                        }
                    }
                }
                // These read an empty body as none: the ingest endpoint (any body) and a
                // rotation (every key optional).
                if (path.starts_with("/ingest/") || path.ends_with("/secret/rotate"))
                    && let Some(body) = operation.get_mut("requestBody")
                {
                    body["required"] = json!(false);
                }
                if let Some(id) = operation_id(operation) {
                    operation.insert("operationId".to_owned(), json!(id));
                }
                complete_answers(path, operation);
            }
        }
    }
    doc
}
