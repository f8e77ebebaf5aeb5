//! Route handlers, one module per resource. Handlers parse the request, call the engine, and
//! shape the response; rules live in the core and the engine.

pub mod actions;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod blueprints;
pub mod entities;
pub mod ingest;
pub mod ops;
pub mod parked;
pub mod projects;
pub mod runs;
pub mod secrets;
pub mod subscriptions;
pub mod webhooks;
pub mod workflows;

use axum::Json;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use wharf_core::change::Trigger;
use wharf_engine::tenancy::Principal;

/// Port's success wrapper: `{"ok": true, key: value}`.
pub(crate) fn ok(key: &str, value: Value) -> Json<Value> {
    let mut body = Map::new();
    body.insert("ok".to_owned(), Value::Bool(true));
    body.insert(key.to_owned(), value);
    Json(Value::Object(body))
}

/// The trigger of a write made through the API by `principal`.
pub(crate) fn api_trigger(principal: &Principal, run_id: Option<&str>) -> Trigger {
    let mut trigger = Trigger::api(&principal.org_id, &principal.client_id, wharf_engine::now());
    trigger.run_id = run_id.map(str::to_owned);
    trigger
}

pub use crate::docs::ErrorBody;

/// A JSON document in Port's shape (described in the operation).
#[derive(ToSchema)]
#[schema(value_type = Object)]
#[allow(dead_code)] // documentation only
pub struct Document(Value);
