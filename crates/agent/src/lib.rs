//! `wharf agent`: Wharf's own execution agent. It runs inside a private network, claims the
//! runs of actions whose invocation method has `agent: true`, and the workflow node runs of
//! WEBHOOK nodes with `agent: true`, from Wharf's polling routes (Port's: `claim-pending`,
//! `ack`), sends their requests there and reports the results, as Port's agent does in its
//! `POLLING` mode (<https://github.com/port-labs/port-agent>): the same message, the same
//! control-the-payload mappings, the same run logs and reports.
//!
//! What it adds: a long poll (`waitMs`), runs carried out concurrently up to a bound, retries
//! of reports while Wharf is unreachable, a graceful stop, a body sent as the exact bytes it
//! signed, and a node run's own body and headers sent where the mapping gives none
//! ([`node_run`]).
//!
//! [`Agent::new`] checks an [`AgentConfig`]; [`Agent::run`] runs until its stop token is
//! cancelled.

mod agent;
pub mod client;
pub mod config;
pub mod decrypt;
pub mod message;
pub mod node_run;
pub mod payload;
pub mod report;
pub mod request;

pub use agent::{Agent, AgentError, MAX_RESPONSE_BYTES};
pub use client::{CallError, Retry};
pub use config::{AgentConfig, Backoff, MAX_LONG_POLL, default_installation_id};
pub use payload::{ConfigError, Defaults, PayloadConfig};
