//! `wharf agent`: Wharf's execution agent ([`wharf_agent`]) on the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value};
use url::Url;
use wharf_agent::{Agent, AgentConfig, PayloadConfig};

use crate::config::LogFormat;

/// The variable that holds the client secret: kept out of what `env` shows the payload
/// config's expressions.
const SECRET_VARIABLE: &str = "WHARF_CLIENT_SECRET";

#[derive(Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct AgentArgs {
    /// Wharf's URL (its public URL: https://wharf.example.com)
    #[arg(long, env = "WHARF_URL", value_name = "URL")]
    pub url: Url,

    /// The id of the organization's API client the agent acts as
    #[arg(long, env = "WHARF_CLIENT_ID", value_name = "ID")]
    pub client_id: String,

    /// That API client's secret: it gets access tokens, signs the requests the agent sends
    /// (X-Port-Signature) and decrypts `fieldsToDecryptPaths`
    #[arg(long, env = SECRET_VARIABLE, value_name = "SECRET", hide_env_values = true)]
    pub client_secret: String,

    /// The pause after a claim that found no run (with --long-poll, the least time between
    /// two claims)
    #[arg(long, env = "WHARF_AGENT_POLL_INTERVAL", value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// How long Wharf may hold a claim open until a run is claimable (at most 30s); 0 turns
    /// long polling off: the agent then claims every --poll-interval
    #[arg(long, env = "WHARF_AGENT_LONG_POLL", value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub long_poll: Duration,

    /// Port's control-the-payload file (a JSON array of mappings) [default: Port's default
    /// mapping: the whole message, POSTed to the invocation's URL]
    #[arg(long, env = "WHARF_AGENT_PAYLOAD_CONFIG", value_name = "FILE")]
    pub payload_config: Option<PathBuf>,

    /// Runs carried out at once; each claim asks for as many as there are free slots
    #[arg(long, env = "WHARF_AGENT_CONCURRENCY", value_name = "N", default_value_t = 8)]
    pub concurrency: usize,

    /// Which agent claims (`installationId`) [default: wharf-agent-<hostname>]
    #[arg(long, env = "WHARF_AGENT_INSTALLATION_ID", value_name = "ID")]
    pub installation_id: Option<String>,

    /// How long a claimed run stays invisible to other agents until it is acknowledged
    /// (`visibilityTimeoutMs`) [default: Wharf's, 60s]
    #[arg(long, env = "WHARF_AGENT_VISIBILITY_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub visibility_timeout: Option<Duration>,

    /// Timeout of each request to a target, and of each call of Wharf
    #[arg(long, env = "WHARF_AGENT_REQUEST_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Accept any TLS certificate from targets (Port's WEBHOOK_VERIFY_SSL=false)
    #[arg(long, env = "WHARF_AGENT_INSECURE")]
    pub insecure: bool,

    /// Log format
    #[arg(long, env = "WHARF_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl std::fmt::Debug for AgentArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentArgs")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("payload_config", &self.payload_config)
            .finish_non_exhaustive()
    }
}

const AFTER_HELP: &str = "\
The agent runs inside a private network. It claims the runs of actions whose invocation method
has `agent: true` (POST /v1/actions/runs/claim-pending), acknowledges them, sends each run's
request from here and reports the result (run logs, the response of a synchronized run, its
status), as Port's execution agent does in its POLLING mode. It claims the workflow node runs
of WEBHOOK nodes with `agent: true` beside them (POST /v1/workflows/runs/claim-pending), within
the same --concurrency, sends the node's request and completes the node run as Port's agent does.

Requests are signed as Port signs them: X-Port-Timestamp and X-Port-Signature: v1,<base64
HMAC-SHA256(client secret, \"<timestamp>.<body>\")>; the body sent is the exact compact JSON
that was signed.

In --payload-config, every string is jq on the run's message; `env` is this process's
environment, less WHARF_CLIENT_SECRET.

While Wharf is unreachable the agent backs off and tries again; it never exits for that.
On SIGTERM or SIGINT it stops claiming, lets the runs in flight finish and report for up to
8 s, reports any still going as failed, and exits 0.";

/// The agent `args` describe, checked and ready to run.
pub fn agent(args: AgentArgs) -> anyhow::Result<Agent> {
    let payload = match &args.payload_config {
        None => PayloadConfig::default(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read --payload-config {}", path.display()))?;
            PayloadConfig::parse(&text).with_context(|| format!("invalid --payload-config {}", path.display()))?
        }
    };
    for warning in payload.warnings() {
        tracing::warn!("--payload-config: {warning}");
    }
    let env: Map<String, Value> =
        std::env::vars().filter(|(name, _)| name != SECRET_VARIABLE).map(|(name, value)| (name, Value::String(value))).collect();
    let mut config = AgentConfig::new(args.url, args.client_id, args.client_secret);
    config.payload = payload.with_env(env);
    if let Some(id) = args.installation_id {
        config.installation_id = id;
    }
    config.poll_interval = args.poll_interval;
    config.long_poll = args.long_poll;
    config.concurrency = args.concurrency;
    config.visibility_timeout = args.visibility_timeout;
    config.request_timeout = args.request_timeout;
    config.accept_invalid_certs = args.insecure;
    Ok(Agent::new(config)?)
}

/// `500ms`, `1s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration (500ms, 1s, 2m, 1h)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        other => Err(format!("unknown unit `{other}` in `{text}` (use ms, s, m or h)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_flags_document_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit `d`"));
    }
}
