//! Wharf's engine: the application services that apply the core's rules to the store, and
//! the workers that map webhook events, route catalog changes to subscriptions and deliver.
//!
//! Every write here runs in one store transaction together with the change it records, so
//! the outbox never misses or invents a change.

pub mod actions;
pub mod automations;
pub mod catalog;
pub mod delivery;
pub mod jq_pool;
pub mod node;
pub mod org_cache;
mod outbox;
pub mod projects;
pub mod runs;
pub mod secrets;
pub mod tenancy;
pub mod webhooks;
pub mod workflows;

use wharf_core::time::Timestamp;

pub use actions::Actions;
pub use catalog::Catalog;
pub use node::{Node, NodeConfig};
pub use projects::Projects;
pub use runs::Runs;
pub use secrets::Secrets;
pub use webhooks::Webhooks;
/// The store's read models the API shows; the API names them through the engine, never the
/// store. (Deliveries and attempts are core types: `wharf_core::delivery::{Delivery, Attempt}`.)
pub use wharf_store::{AuditFilter, ParkedChange, Readiness, WebhookEventFilter};
pub use workflows::Workflows;

/// Why an engine operation failed: a domain rule refused it, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] wharf_core::Error),
    #[error(transparent)]
    Store(#[from] wharf_store::Error),
    /// A part of the service cannot take work now (shutting down, or the store failed).
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The current time, read once per operation and passed down (the core never reads clocks).
pub fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_millis(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}
