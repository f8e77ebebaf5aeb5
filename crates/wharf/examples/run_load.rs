//! Load for the run and automation benchmarks (see BENCHMARKS.md and bench/runs.sh). Creates
//! a blueprint `bench` of `--entities` entities, a self-service action `bench-run` (WEBHOOK,
//! asynchronous) and an automation `bench-on-update` (ENTITY_UPDATED on `bench`, WEBHOOK),
//! both sending to a receiver inside this process (a minimal hyper server answering 200 at
//! once); each request's templated body carries the number it is matched by (`{"n": …}`,
//! the run's input `n` or the updated entity's property `seq`), and the run id. Then:
//!
//! - `--mode runs-drain`: starts `--runs` runs (`POST /v1/actions/bench-run/runs`) from
//!   `--concurrency` clients and waits until every run's request has arrived; prints POSTs/s
//!   and arrivals/s, both from the first POST (to the last answer, to the last arrival).
//! - `--mode agent-drain`: the same through an execution agent: the action is `agent: true`,
//!   so Wharf keeps each run for an agent (bench/runs.sh starts `wharf agent` beside this
//!   tool) which claims it, sends it to the receiver and reports back.
//! - `--mode runs-latency`: starts `--rate` runs per second for `--seconds` (open loop) and
//!   prints p50/p99 from each POST being sent to its run's request arriving.
//! - `--mode automations-drain`: sends `--runs` entity upserts (`POST
//!   /v1/blueprints/bench/entities?upsert=true&merge=true`, each setting `seq` on one of the
//!   entities) from `--concurrency` clients and waits until every automation's request has
//!   arrived; prints upserts/s and automations fired (arrived) per second.
//! - `--mode automations-latency`: sends `--rate` upserts per second for `--seconds` (open
//!   loop) and prints p50/p99 from each upsert being sent to its automation's request
//!   arriving.
//!
//! Prints one JSON line. Wharf must allow the receiver's address (`--allow-network
//! 127.0.0.1/32`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use common::{Arrivals, Poster, closed_loop, open_loop, percentile, slots, start_receiver};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    RunsDrain,
    AgentDrain,
    RunsLatency,
    AutomationsDrain,
    AutomationsLatency,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::RunsDrain => "runs-drain",
            Self::AgentDrain => "agent-drain",
            Self::RunsLatency => "runs-latency",
            Self::AutomationsDrain => "automations-drain",
            Self::AutomationsLatency => "automations-latency",
        }
    }

    fn automations(self) -> bool {
        matches!(self, Self::AutomationsDrain | Self::AutomationsLatency)
    }
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    token: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Runs started, or entity upserts sent (the drain modes).
    #[arg(long, default_value_t = 20_000)]
    runs: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Runs or upserts per second (the latency modes).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Entities the upserts update in turn (upsert n updates entity `e-{n % entities}`).
    #[arg(long, default_value_t = 1_000)]
    entities: usize,
}

const BLUEPRINT: &str = "bench";
const ACTION: &str = "bench-run";
const AUTOMATION: &str = "bench-on-update";

/// The number the request's body carries as `n` (a number, or a string of one).
fn body_number(_headers: &HeaderMap, body: &[u8]) -> Option<usize> {
    let body: Value = serde_json::from_slice(body).ok()?;
    match &body["n"] {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(n) => n.parse().ok(),
        _ => None,
    }
}

async fn post(client: &reqwest::Client, args: &Args, path: &str, doc: Value) -> Value {
    let response = client.post(format!("{}{path}", args.url)).bearer_auth(&args.token).json(&doc).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// The blueprint and its entities, then the action and the automation, both sending to
/// `receiver`.
async fn setup(client: &reqwest::Client, args: &Args, receiver: &str) {
    let blueprint = json!({"identifier": BLUEPRINT, "title": "Bench", "schema": {"properties": {"seq": {"type": "number"}}}});
    post(client, args, "/v1/blueprints", blueprint).await;
    let identifiers: Vec<usize> = (0..args.entities).collect();
    for chunk in identifiers.chunks(20) {
        let entities: Vec<Value> =
            chunk.iter().map(|k| json!({"identifier": format!("e-{k}"), "properties": {"seq": -1}})).collect();
        let path = format!("/v1/blueprints/{BLUEPRINT}/entities/bulk?upsert=true&merge=true");
        post(client, args, &path, json!({"entities": entities})).await;
    }
    post(
        client,
        args,
        "/v1/actions",
        json!({
            "identifier": ACTION, "title": "Bench run",
            "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {
                "properties": {"n": {"type": "number"}}, "required": ["n"]}},
            "invocationMethod": {"type": "WEBHOOK", "url": receiver, "synchronized": false, "agent": args.mode == Mode::AgentDrain,
                "body": {"n": "{{ .inputs.n }}", "runId": "{{ .run.id }}"}}
        }),
    )
    .await;
    // An automation sees the changes committed after it is saved: the entities above are
    // older (timestamps in ms), and nothing waits on them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    post(
        client,
        args,
        "/v1/actions",
        json!({
            "identifier": AUTOMATION, "title": "Bench automation",
            "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": BLUEPRINT}},
            "invocationMethod": {"type": "WEBHOOK", "url": receiver,
                "body": {"n": "{{ .event.diff.after.properties.seq }}", "runId": "{{ .run.id }}"}}
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Every request's body, serialized before the clock starts (the load tool shares the cores
/// with Wharf, so it does as little as it can while measuring).
fn bodies(mode: Mode, count: usize, entities: usize) -> Arc<Vec<Bytes>> {
    let body = |n: usize| {
        if mode.automations() {
            json!({"identifier": format!("e-{}", n % entities.max(1)), "properties": {"seq": n}})
        } else {
            json!({"properties": {"n": n}})
        }
    };
    Arc::new((0..count).map(|n| Bytes::from(serde_json::to_vec(&body(n)).expect("JSON serializes"))).collect())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    wharf_engine::delivery::client::install_tls_provider();
    let client = reqwest::Client::builder().build().expect("HTTP client");
    let count = match args.mode {
        Mode::RunsDrain | Mode::AgentDrain | Mode::AutomationsDrain => args.runs,
        Mode::RunsLatency | Mode::AutomationsLatency => usize::try_from(args.rate * args.seconds).unwrap_or(usize::MAX),
    };
    let arrivals = Arrivals::new(count);
    let receiver = start_receiver(arrivals.clone(), body_number).await;
    setup(&client, &args, &receiver).await;
    let path = if args.mode.automations() {
        format!("/v1/blueprints/{BLUEPRINT}/entities?upsert=true&merge=true")
    } else {
        format!("/v1/actions/{ACTION}/runs")
    };
    let poster = Poster::new(&format!("{}{path}", args.url), &args.token, args.concurrency);
    let bodies = bodies(args.mode, count, args.entities);
    let each = move |n: usize| {
        let (poster, bodies) = (poster.clone(), bodies.clone());
        async move { poster.post(n, &bodies[n]).await }
    };
    let line = match args.mode {
        Mode::RunsDrain | Mode::AgentDrain | Mode::AutomationsDrain => {
            let started = arrivals.start.elapsed();
            closed_loop(args.concurrency, count, each).await;
            let posted = arrivals.start.elapsed() - started;
            arrivals.wait_all(Duration::from_secs(600)).await;
            let arrived = arrivals.last() - started;
            let (sent, fired) =
                if args.mode.automations() { ("upserted_per_s", "automations_per_s") } else { ("posted_per_s", "runs_per_s") };
            json!({
                "mode": args.mode.name(), "requests": count, "concurrency": args.concurrency,
                sent: count as f64 / posted.as_secs_f64(),
                fired: count as f64 / arrived.as_secs_f64(),
                "duplicates": arrivals.duplicates(),
            })
        }
        Mode::RunsLatency | Mode::AutomationsLatency => {
            let sent = slots(count);
            open_loop(args.rate, &arrivals, &sent, each).await;
            arrivals.wait_all(Duration::from_secs(120)).await;
            let latencies = arrivals.latencies(&sent);
            json!({
                "mode": args.mode.name(), "rate": args.rate, "requests": count,
                "p50_ms": percentile(&latencies, 0.50), "p99_ms": percentile(&latencies, 0.99),
                "max_ms": latencies.last().copied().unwrap_or(0.0), "duplicates": arrivals.duplicates(),
            })
        }
    };
    println!("{line}");
}
