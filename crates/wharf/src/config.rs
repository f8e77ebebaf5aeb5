//! Settings: every option is a flag, a `WHARF_*` environment variable, and a key in an
//! optional `wharf.toml`, in that order of precedence, then the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::connections::ConnectionLimits;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use wharf_core::network::NetworkPolicy;
pub use wharf_engine::delivery::DeliverySettings;
pub use wharf_engine::webhooks::IngestSettings;
use wharf_store::StoreOptions;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./wharf-data";
pub const DEFAULT_CONFIG: &str = "wharf.toml";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The variables `wharf serve` reads that have no flag (README, "Configuration").
const SERVE_ENV_HELP: &str = "\
Environment only (no flag):
  WHARF_MASTER_KEY               64 hex characters: seals secrets and signs tokens (or `master_key`
                                 in wharf.toml); else the key file <data-dir>/master.key, created
                                 on first start. Nodes sharing one PostgreSQL must share it
  WHARF_BOOTSTRAP_CLIENT_ID      On first start with an empty store: the first organization's
  WHARF_BOOTSTRAP_CLIENT_SECRET  admin API client (both or neither; random and printed once
                                 when unset)
  WHARF_LOG                      Log filter, tracing's EnvFilter syntax [default: info,sqlx=warn]
                                 (e.g. `debug`, `info,wharf_engine=debug`)";

/// Where the data lives; shared by every command that opens the store.
#[derive(Debug, Clone, Args, Default)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite database, the master key file and the first-start
    /// credentials [default: ./wharf-data]
    #[arg(long, env = "WHARF_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL URL (`postgres://user@host/db`); when absent, SQLite in the data directory
    #[arg(long, env = "WHARF_DATABASE_URL", value_name = "URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Connections this node opens to PostgreSQL at most (on SQLite: reading connections,
    /// beside the one writer); nodes sharing a database share its `max_connections`
    /// [default: 16]
    #[arg(long, env = "WHARF_DATABASE_POOL_SIZE", value_name = "N", global = true)]
    pub database_pool_size: Option<u32>,

    /// Configuration file [default: ./wharf.toml, when it exists]
    #[arg(long, env = "WHARF_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// Options of `wharf serve`.
#[derive(Debug, Clone, Args, Default)]
#[command(after_help = SERVE_ENV_HELP)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "WHARF_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Public base URL of this server, used in the URLs Wharf hands out (ingest URLs)
    /// [default: http://<listen>]
    #[arg(long, env = "WHARF_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Log format [default: text]
    #[arg(long, env = "WHARF_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Largest ingest request body in bytes; larger ones get 413 [default: 524288]
    #[arg(long, env = "WHARF_INGEST_BODY_LIMIT", value_name = "BYTES")]
    pub ingest_body_limit: Option<usize>,

    /// Days a webhook's `requestIdentifierPath` value marks repeats as duplicates [default: 7]
    #[arg(long, env = "WHARF_DEDUPE_WINDOW_DAYS", value_name = "DAYS")]
    pub dedupe_window_days: Option<u64>,

    /// Days webhook events are kept before they are pruned [default: 30]
    #[arg(long, env = "WHARF_EVENT_RETENTION_DAYS", value_name = "DAYS")]
    pub event_retention_days: Option<u64>,

    /// Workers mapping webhook events into the catalog [default: 2]
    #[arg(long, env = "WHARF_MAPPER_WORKERS", value_name = "N")]
    pub mapper_workers: Option<usize>,

    /// Let outbound deliveries reach this range, which the SSRF guard blocks by default
    /// (loopback, private, link-local, CGNAT…); a CIDR or an address, repeatable or
    /// comma-separated, e.g. 127.0.0.0/8 [default: none]
    #[arg(long, env = "WHARF_ALLOW_NETWORK", value_name = "CIDR", value_delimiter = ',')]
    pub allow_network: Vec<String>,

    /// Seconds an outbound request may take, body included [default: 30]
    #[arg(long, env = "WHARF_DELIVERY_TIMEOUT", value_name = "SECS")]
    pub delivery_timeout: Option<u64>,

    /// Delays between delivery attempts, e.g. 5s,5m,30m,2h (units ms, s, m, h), each jittered
    /// by ±20% [default: 5s,5m,30m,2h,5h,10h,10h]
    #[arg(long, env = "WHARF_RETRY_SCHEDULE", value_name = "DELAYS")]
    pub retry_schedule: Option<String>,

    /// Deliveries in flight on this node at most [default: 512]
    #[arg(long, env = "WHARF_DELIVERY_CONCURRENCY", value_name = "N")]
    pub delivery_concurrency: Option<usize>,

    /// Deliveries in flight to one webhook at most [default: 64]
    #[arg(long, env = "WHARF_TARGET_CONCURRENCY", value_name = "N")]
    pub target_concurrency: Option<usize>,

    /// Hours a webhook may keep failing before Wharf disables it (checked when a delivery
    /// runs out of attempts) [default: 120]
    #[arg(long, env = "WHARF_DISABLE_AFTER_HOURS", value_name = "HOURS")]
    pub disable_after_hours: Option<u64>,

    /// Let subscriptions deliver to Wharf itself (its --public-url or its listen address),
    /// which it refuses by default: a subscription to its own ingest URL is a loop
    #[arg(long, env = "WHARF_ALLOW_SELF_DELIVERY")]
    pub allow_self_delivery: bool,

    /// Serve a run's requests to Port's API (https://api.getport.io, https://api.port.io,
    /// https://api.us.port.io) with Wharf itself, as the organization's API client, as those
    /// to --public-url always are; `false` sends them out like any other [default: true]
    #[arg(long, env = "WHARF_PORT_API_ALIAS", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub port_api_alias: Option<bool>,

    /// Seconds a client has to send a request's headers, and to start its next request on a
    /// kept-alive connection [default: 10]
    #[arg(long, env = "WHARF_HEADER_READ_TIMEOUT", value_name = "SECS")]
    pub header_read_timeout: Option<u64>,

    /// Seconds a connection may pass without a byte moving either way (a stalled body, a
    /// client that does not read its answer) before it is closed [default: 60]
    #[arg(long, env = "WHARF_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<u64>,

    /// Connections served at once; past it a new one gets 503 and is closed [default: 10000]
    #[arg(long, env = "WHARF_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
}

/// The keys `wharf.toml` may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_pool_size: Option<u32>,
    public_url: Option<String>,
    log_format: Option<LogFormat>,
    master_key: Option<String>,
    ingest_body_limit: Option<usize>,
    dedupe_window_days: Option<u64>,
    event_retention_days: Option<u64>,
    mapper_workers: Option<usize>,
    allow_network: Option<Vec<String>>,
    delivery_timeout: Option<u64>,
    retry_schedule: Option<String>,
    delivery_concurrency: Option<usize>,
    target_concurrency: Option<usize>,
    disable_after_hours: Option<u64>,
    allow_self_delivery: Option<bool>,
    port_api_alias: Option<bool>,
    header_read_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections: Option<usize>,
}

/// The server's edges: the connections it accepts, and whether it delivers to and calls
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    pub connections: ConnectionLimits,
    /// `--allow-self-delivery`.
    pub allow_self_delivery: bool,
    /// `--port-api-alias`: a run's request to Port's API is served by Wharf itself.
    pub port_api_alias: bool,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self { connections: ConnectionLimits::default(), allow_self_delivery: false, port_api_alias: true }
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// Connections to the database at most (`--database-pool-size`).
    pub database_pool_size: u32,
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// Hex master key (`WHARF_MASTER_KEY` or `master_key`); else a key file in the data dir.
    pub master_key: Option<String>,
    /// `WHARF_BOOTSTRAP_CLIENT_ID` / `WHARF_BOOTSTRAP_CLIENT_SECRET`.
    pub bootstrap_client: Option<(String, String)>,
    /// Ingestion limits and timings.
    pub ingest: IngestSettings,
    /// How deliveries are sent and retried.
    pub delivery: DeliverySettings,
    /// Connection limits and self-delivery.
    pub edge: EdgeSettings,
}

impl Settings {
    /// Settings for `serve`.
    pub fn for_serve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = load_file(args.store.config.as_deref())?;
        let ingest = ingest_settings(args, &file);
        let delivery = delivery_settings(args, &file)?;
        let edge = edge_settings(args, &file);
        let listen = args.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
        let public_url = args.public_url.clone().or(file.public_url);
        if let Some(url) = &public_url {
            check_public_url(url)?;
        }
        Ok(Self {
            listen,
            data_dir: args.store.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: args.store.database_url.clone().or(file.database_url),
            database_pool_size: args
                .store
                .database_pool_size
                .or(file.database_pool_size)
                .unwrap_or(StoreOptions::default().max_connections)
                .max(2),
            public_url,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            master_key: std::env::var("WHARF_MASTER_KEY").ok().filter(|k| !k.is_empty()).or(file.master_key),
            bootstrap_client: bootstrap_client()?,
            ingest,
            delivery,
            edge,
        })
    }

    /// Settings for commands that only open the store (`migrate`, `admin`).
    pub fn for_store(args: &StoreArgs) -> anyhow::Result<Self> {
        Self::for_serve(&ServeArgs { store: args.clone(), ..ServeArgs::default() })
    }

    /// The public base URL without a trailing slash (from the `listen` setting when none is
    /// set: before binding, port 0 stays 0; a server asks [`Settings::public_url_at`]).
    pub fn public_url(&self) -> String {
        self.public_url_at(self.listen)
    }

    /// The public base URL without a trailing slash; `http://{bound}` when none is set, where
    /// `bound` is the address the server listens on (the port it got when `listen` asked for 0).
    pub fn public_url_at(&self, bound: std::net::SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{bound}")).trim_end_matches('/').to_owned()
    }
}

fn ingest_settings(args: &ServeArgs, file: &FileSettings) -> IngestSettings {
    let defaults = IngestSettings::default();
    let days = |d: u64| Duration::from_secs(d.saturating_mul(24 * 3600));
    IngestSettings {
        body_limit: args.ingest_body_limit.or(file.ingest_body_limit).unwrap_or(defaults.body_limit),
        dedupe_window: args.dedupe_window_days.or(file.dedupe_window_days).map_or(defaults.dedupe_window, days),
        event_retention: args.event_retention_days.or(file.event_retention_days).map_or(defaults.event_retention, days),
        mapper_workers: args.mapper_workers.or(file.mapper_workers).unwrap_or(defaults.mapper_workers).max(1),
        ..defaults
    }
}

fn edge_settings(args: &ServeArgs, file: &FileSettings) -> EdgeSettings {
    let defaults = ConnectionLimits::default();
    let secs = Duration::from_secs;
    EdgeSettings {
        connections: ConnectionLimits {
            header_read_timeout: args
                .header_read_timeout
                .or(file.header_read_timeout)
                .map_or(defaults.header_read_timeout, |s| secs(s.max(1))),
            idle_timeout: args.idle_timeout.or(file.idle_timeout).map_or(defaults.idle_timeout, |s| secs(s.max(1))),
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(defaults.max_connections).max(1),
        },
        allow_self_delivery: args.allow_self_delivery || file.allow_self_delivery.unwrap_or(false),
        port_api_alias: args.port_api_alias.or(file.port_api_alias).unwrap_or(true),
    }
}

fn delivery_settings(args: &ServeArgs, file: &FileSettings) -> anyhow::Result<DeliverySettings> {
    let defaults = DeliverySettings::default();
    let allowed =
        if args.allow_network.is_empty() { file.allow_network.clone().unwrap_or_default() } else { args.allow_network.clone() };
    let allowed = NetworkPolicy::parse_allowed(&allowed).map_err(|e| anyhow::anyhow!("--allow-network: {e}"))?;
    let mut policy = defaults.policy.clone();
    if let Some(schedule) = args.retry_schedule.as_ref().or(file.retry_schedule.as_ref()) {
        policy.schedule = parse_schedule(schedule)?;
    }
    Ok(DeliverySettings {
        policy,
        timeout: args.delivery_timeout.or(file.delivery_timeout).map_or(defaults.timeout, Duration::from_secs),
        max_in_flight: args.delivery_concurrency.or(file.delivery_concurrency).unwrap_or(defaults.max_in_flight).max(1),
        target_concurrency: args.target_concurrency.or(file.target_concurrency).unwrap_or(defaults.target_concurrency).max(1),
        disable_after: args
            .disable_after_hours
            .or(file.disable_after_hours)
            .map_or(defaults.disable_after, |h| Duration::from_secs(h.saturating_mul(3600))),
        network: NetworkPolicy::new(allowed),
        ..defaults
    })
}

/// `5s,5m,30m,2h` → delays (units `ms`, `s`, `m`, `h`; an empty string means no retries).
pub fn parse_schedule(text: &str) -> anyhow::Result<Vec<Duration>> {
    text.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|delay| {
            let split = delay.find(|c: char| !c.is_ascii_digit()).unwrap_or(delay.len());
            let (number, unit) = delay.split_at(split);
            let n: u64 = number.parse().with_context(|| format!("--retry-schedule: `{delay}` does not start with a number"))?;
            Ok(match unit {
                "ms" => Duration::from_millis(n),
                "s" | "" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                other => bail!("--retry-schedule: unknown unit `{other}` in `{delay}` (use ms, s, m or h)"),
            })
        })
        .collect()
}

fn load_file(explicit: Option<&Path>) -> anyhow::Result<FileSettings> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(FileSettings::default()),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration file {}", path.display()))
}

fn check_public_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--public-url must start with http:// or https://, got `{url}`");
    }
    Ok(())
}

fn bootstrap_client() -> anyhow::Result<Option<(String, String)>> {
    let id = std::env::var("WHARF_BOOTSTRAP_CLIENT_ID").ok().filter(|v| !v.is_empty());
    let secret = std::env::var("WHARF_BOOTSTRAP_CLIENT_SECRET").ok().filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        _ => bail!("set both WHARF_BOOTSTRAP_CLIENT_ID and WHARF_BOOTSTRAP_CLIENT_SECRET, or neither"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_fill_in_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\ndata_dir = \"/tmp/x\"\nlog_format = \"json\"\n").unwrap();
        let mut args =
            ServeArgs { store: StoreArgs { config: Some(path.clone()), ..StoreArgs::default() }, ..ServeArgs::default() };
        let settings = Settings::for_serve(&args).unwrap();
        assert_eq!(settings.listen.port(), 9999);
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.public_url(), "http://127.0.0.1:9999");
        args.listen = Some("127.0.0.1:7000".parse().unwrap());
        assert_eq!(Settings::for_serve(&args).unwrap().listen.port(), 7000);
    }

    #[test]
    fn edge_options_default_and_come_from_the_file() {
        let settings = Settings::for_serve(&ServeArgs::default()).unwrap();
        assert_eq!(settings.edge, EdgeSettings::default());
        assert_eq!(settings.edge.connections.header_read_timeout, Duration::from_secs(10));
        assert_eq!(settings.edge.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(settings.edge.connections.max_connections, 10_000);
        assert!(!settings.edge.allow_self_delivery);
        assert!(settings.edge.port_api_alias, "on by default");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, "allow_self_delivery = true\nheader_read_timeout = 3\nidle_timeout = 4\nmax_connections = 5\n")
            .unwrap();
        let mut args = ServeArgs { store: StoreArgs { config: Some(path), ..StoreArgs::default() }, ..ServeArgs::default() };
        let edge = Settings::for_serve(&args).unwrap().edge;
        assert!(edge.allow_self_delivery);
        assert_eq!(
            edge.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(3),
                idle_timeout: Duration::from_secs(4),
                max_connections: 5
            }
        );
        args.max_connections = Some(7);
        assert_eq!(Settings::for_serve(&args).unwrap().edge.connections.max_connections, 7);
    }

    #[test]
    fn the_port_api_alias_is_on_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, "port_api_alias = false\n").unwrap();
        let mut args = ServeArgs { store: StoreArgs { config: Some(path), ..StoreArgs::default() }, ..ServeArgs::default() };
        assert!(!Settings::for_serve(&args).unwrap().edge.port_api_alias);
        args.port_api_alias = Some(true);
        assert!(Settings::for_serve(&args).unwrap().edge.port_api_alias, "the flag wins");
        // The flag takes a value: `--port-api-alias false`.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["wharf", "--port-api-alias", "false"]).unwrap();
        assert_eq!(parsed.serve.port_api_alias, Some(false));
        let parsed = <Cli as clap::Parser>::try_parse_from(["wharf", "--port-api-alias", "off"]).unwrap();
        assert_eq!(parsed.serve.port_api_alias, Some(false));
        assert!(<Cli as clap::Parser>::try_parse_from(["wharf", "--port-api-alias", "maybe"]).is_err());
    }

    #[test]
    fn delivery_options_parse() {
        assert_eq!(
            parse_schedule("50ms, 5s,5m,2h").unwrap(),
            vec![Duration::from_millis(50), Duration::from_secs(5), Duration::from_secs(300), Duration::from_secs(7200)]
        );
        assert!(parse_schedule("5x").unwrap_err().to_string().contains("unknown unit"));
        let args = ServeArgs { allow_network: vec!["127.0.0.0/8".into()], ..ServeArgs::default() };
        let settings = Settings::for_serve(&args).unwrap();
        assert!(settings.delivery.network.check("127.0.0.1".parse().unwrap()).is_ok());
        let args = ServeArgs { allow_network: vec!["localhost".into()], ..ServeArgs::default() };
        assert!(format!("{:#}", Settings::for_serve(&args).unwrap_err()).contains("not a CIDR"));
    }

    #[test]
    fn the_database_pool_size_defaults_and_comes_from_the_file() {
        assert_eq!(Settings::for_serve(&ServeArgs::default()).unwrap().database_pool_size, 16);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, "database_pool_size = 5\n").unwrap();
        let mut store = StoreArgs { config: Some(path), ..StoreArgs::default() };
        assert_eq!(Settings::for_store(&store).unwrap().database_pool_size, 5);
        store.database_pool_size = Some(7);
        assert_eq!(Settings::for_store(&store).unwrap().database_pool_size, 7, "the flag wins");
        store.database_pool_size = Some(0);
        assert_eq!(Settings::for_store(&store).unwrap().database_pool_size, 2, "at least 2");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9999\"\n").unwrap();
        let args = ServeArgs { store: StoreArgs { config: Some(path), ..StoreArgs::default() }, ..ServeArgs::default() };
        let err = format!("{:#}", Settings::for_serve(&args).unwrap_err());
        assert!(err.contains("lisen"), "{err}");
    }
}
