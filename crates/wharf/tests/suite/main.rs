//! Wharf's integration suite: one test binary for the behaviour of a real server (in process
//! on port 0, or the real `wharf` binary where a test kills, restarts or runs several nodes),
//! on SQLite and, when `WHARF_TEST_DATABASE_URL` is set, on PostgreSQL.
//!
//! One binary rather than a binary per file: the suite is compiled and linked once, and its
//! tests run side by side (`cargo test` runs test binaries one after another), so the crash,
//! outage and node tests spend their waits beside the others instead of in a row. A module is
//! a file of tests; `cargo test -p wharf --test suite <module>::` runs one, e.g.
//! `cargo test -p wharf --test suite crash::`.
//!
//! A few files stay binaries of their own, each because it needs its process to itself:
//! `hostile_jq.rs` and `search_budget.rs` count the process's allocations (their own global
//! allocator), `runs.rs` and `org_secrets.rs` capture the process's log at `trace` to look for
//! secrets in it, and `fairness.rs` bounds how long another organization's event may wait, a
//! figure other tests' load beside it would blur. The console's browser tests are the binary
//! `console` (`tests/console/main.rs` says why).

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod actions;
mod agent_protocol;
mod automation_crash;
mod automations;
mod binary;
mod catalog;
mod crash;
mod deliveries;
mod delivery_crash;
mod edge;
mod first_contact;
mod jq_cli;
mod layers;
mod limits;
mod mapping;
mod nodes;
mod openapi;
mod platform;
mod poisoned_store;
mod port_agent;
mod private_postgres;
mod secrets;
mod self_call;
mod serving;
mod shutdown;
mod webhooks;
mod wharf_agent;
mod workflows;
