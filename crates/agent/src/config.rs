//! What an agent is started with.

use std::time::Duration;

use url::Url;

use crate::payload::PayloadConfig;

/// The longest long poll Wharf accepts (`waitMs`).
pub const MAX_LONG_POLL: Duration = Duration::from_secs(30);

/// The most runs one claim asks for (Port's `POLLING_RUNS_BATCH_SIZE`).
pub const MAX_CLAIM: usize = 100;

/// Everything an [`crate::Agent`] needs.
#[derive(Clone)]
pub struct AgentConfig {
    /// Wharf's base URL (`https://wharf.example.com`; a path prefix is kept).
    pub wharf_url: Url,
    pub client_id: String,
    /// Gets tokens, signs requests and decrypts `fieldsToDecryptPaths`. Never logged.
    pub client_secret: String,
    /// Which agent claims (`installationId`).
    pub installation_id: String,
    /// The pause after a claim that found nothing (the least time between two claims).
    pub poll_interval: Duration,
    /// How long Wharf may hold a claim open until a run is claimable (`waitMs`); zero claims
    /// without waiting. At most [`MAX_LONG_POLL`].
    pub long_poll: Duration,
    /// Runs carried out at once; a claim asks for as many as there are free slots.
    pub concurrency: usize,
    /// `visibilityTimeoutMs` of the claims (Wharf's default when `None`).
    pub visibility_timeout: Option<Duration>,
    /// The timeout of each request to a target (Port's `WEBHOOK_INVOKER_TIMEOUT`) and of
    /// each call of Wharf (a long poll's wait added).
    pub request_timeout: Duration,
    /// Accept any TLS certificate from targets (Port's `WEBHOOK_VERIFY_SSL=false`).
    pub accept_invalid_certs: bool,
    /// The payload mappings (Port's default unless a file is given).
    pub payload: PayloadConfig,
    /// How long runs in flight may go on after a stop before they are reported as stopped.
    pub shutdown_grace: Duration,
    /// The pauses between claims while Wharf is unreachable.
    pub claim_backoff: Backoff,
    /// How reports (logs, responses, statuses, acknowledgements) are retried while Wharf is
    /// unreachable.
    pub report_retry: crate::client::Retry,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("wharf_url", &self.wharf_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("installation_id", &self.installation_id)
            .field("poll_interval", &self.poll_interval)
            .field("long_poll", &self.long_poll)
            .field("concurrency", &self.concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("mappings", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// The defaults: Port's payload config, a 1 s poll interval, a 20 s long poll, 8 runs at
    /// once, 30 s request timeout, 8 s to finish on a stop.
    pub fn new(wharf_url: Url, client_id: String, client_secret: String) -> Self {
        Self {
            wharf_url,
            client_id,
            client_secret,
            installation_id: default_installation_id(),
            poll_interval: Duration::from_secs(1),
            long_poll: Duration::from_secs(20),
            concurrency: 8,
            visibility_timeout: None,
            request_timeout: Duration::from_secs(30),
            accept_invalid_certs: false,
            payload: PayloadConfig::default(),
            shutdown_grace: Duration::from_secs(8),
            claim_backoff: Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60) },
            report_retry: crate::client::Retry {
                attempts: 5,
                backoff: Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(4) },
            },
        }
    }
}

/// `wharf-agent-<hostname>`.
pub fn default_installation_id() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("wharf-agent-{hostname}")
}

/// Exponential backoff with jitter: `initial`, doubled after each failure up to `max`, plus
/// up to a tenth more at random (Port's agent's `POLLING_BACKOFF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The pause after `failures` failures in a row (0: the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << failures.min(20)).min(self.max);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.1);
        base + jitter
    }
}
