//! The `wharf` binary's library: settings, server assembly and the commands, so that tests
//! run exactly what the binary runs.

pub mod admin;
pub mod agent_cli;
pub mod config;
pub mod connections;
pub mod jq_cli;
pub mod server;

pub use server::Server;
