//! Wharf's domain: the types and rules of the catalog, ingestion webhooks, tenancy, project
//! subscriptions, deliveries and signatures.
//!
//! Everything here is pure and synchronous: no I/O, no async, no clocks (callers pass `now`).
//! The store persists these types, the engine orchestrates them, the API exposes them; none of
//! those layers decides a business rule on its own.

pub mod action;
pub mod agent;
pub mod auth;
pub mod automation;
pub mod blueprint;
pub mod calculation;
pub mod change;
pub mod crypto;
pub mod delivery;
pub mod entity;
pub mod error;
pub mod ids;
pub mod ingest;
pub mod json;
pub mod mapping;
pub mod mirror;
pub mod network;
pub mod project;
pub mod projection;
pub mod run;
pub mod run_inputs;
pub mod schedule;
pub mod search;
pub mod secret;
pub mod signing;
pub mod tenancy;
pub mod time;
pub mod webhook;
pub mod workflow;
pub mod workflow_run;

pub use error::{Error, ErrorKind};
