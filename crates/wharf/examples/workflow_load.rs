//! Load for the workflow benchmark (see BENCHMARKS.md and bench/workflows.sh). Creates a
//! blueprint `bench` and a three-node workflow `bench-flow`: a SELF_SERVE_TRIGGER, a
//! synchronized WEBHOOK to a receiver inside this process (a minimal hyper server answering
//! 200 at once; the body carries the run's input `n`), and an UPSERT_ENTITY writing entity
//! `run-{n}`. Then:
//!
//! - `--mode drain`: starts `--runs` runs (`POST /v1/workflows/bench-flow/runs`) from
//!   `--concurrency` clients and waits until no run is in progress (polling `GET
//!   /v1/workflows/runs?active=true&limit=1` every 50 ms); prints POSTs/s and completed runs
//!   per second, both from the first POST, and checks that every run's request arrived and
//!   every run completed `SUCCESS`.
//! - `--mode latency`: starts `--rate` runs per second for `--seconds` (open loop), waits
//!   until they completed, and prints p50/p99 of each run's duration as the run records it
//!   (`completedAt` − `createdAt`: from the commit that started it to the one that ended it,
//!   both nodes included).
//!
//! Prints one JSON line. Wharf must allow the receiver's address (`--allow-network
//! 127.0.0.1/32`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use common::{Arrivals, Poster, closed_loop, open_loop, percentile, slots, start_receiver};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Drain,
    Latency,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    token: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Runs started (drain).
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Runs per second (latency).
    #[arg(long, default_value_t = 100)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

const WORKFLOW: &str = "bench-flow";

fn body_number(_headers: &HeaderMap, body: &[u8]) -> Option<usize> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body["n"].as_u64().and_then(|n| usize::try_from(n).ok())
}

async fn call(client: &reqwest::Client, args: &Args, method: reqwest::Method, path: &str, doc: Option<Value>) -> Value {
    let mut request = client.request(method, format!("{}{path}", args.url)).bearer_auth(&args.token);
    if let Some(doc) = doc {
        request = request.json(&doc);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn setup(client: &reqwest::Client, args: &Args, receiver: &str) {
    let blueprint = json!({"identifier": "bench", "title": "Bench", "schema": {"properties": {"n": {"type": "number"}}}});
    call(client, args, reqwest::Method::POST, "/v1/blueprints", Some(blueprint)).await;
    let workflow = json!({
        "identifier": WORKFLOW, "title": "Bench flow",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"n": {"type": "number"}}, "required": ["n"]}}},
            {"identifier": "call", "config": {"type": "WEBHOOK", "url": receiver,
                "body": {"n": "{{ .outputs.trigger.n }}", "run": "{{ .workflowRun.identifier }}"}}},
            {"identifier": "record", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "bench",
                "mapping": {"identifier": "run-{{ .outputs.trigger.n }}", "properties": {"n": "{{ .outputs.trigger.n }}"}}}}
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "call"},
            {"sourceIdentifier": "call", "targetIdentifier": "record"}
        ]
    });
    call(client, args, reqwest::Method::POST, "/v1/workflows", Some(workflow)).await;
}

/// Waits until no run is in progress; when that was seen.
async fn all_completed(client: &reqwest::Client, args: &Args, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let active = call(client, args, reqwest::Method::GET, "/v1/workflows/runs?active=true&limit=1", None).await;
        if active["workflowRuns"].as_array().is_some_and(Vec::is_empty) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "runs still in progress after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every run of the workflow (pages of 1,000).
async fn runs(client: &reqwest::Client, args: &Args) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let path = format!("/v1/workflows/runs?workflow_identifier={WORKFLOW}&limit=1000&offset={}", all.len());
        let page =
            call(client, args, reqwest::Method::GET, &path, None).await["workflowRuns"].as_array().cloned().unwrap_or_default();
        let done = page.len() < 1000;
        all.extend(page);
        if done {
            return all;
        }
    }
}

fn millis(value: &Value) -> f64 {
    let text = value.as_str().unwrap_or_default();
    wharf_core::time::Timestamp::parse(text).map_or(f64::NAN, |t| t.millis() as f64)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    wharf_engine::delivery::client::install_tls_provider();
    let client = reqwest::Client::builder().build().expect("HTTP client");
    let count = match args.mode {
        Mode::Drain => args.runs,
        Mode::Latency => usize::try_from(args.rate * args.seconds).unwrap_or(usize::MAX),
    };
    let arrivals = Arrivals::new(count);
    let receiver = start_receiver(arrivals.clone(), body_number).await;
    setup(&client, &args, &receiver).await;
    let poster = Poster::new(&format!("{}/v1/workflows/{WORKFLOW}/runs", args.url), &args.token, args.concurrency);
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..count).map(|n| Bytes::from(serde_json::to_vec(&json!({"inputs": {"n": n}})).expect("JSON serializes"))).collect(),
    );
    let each = move |n: usize| {
        let (poster, bodies) = (poster.clone(), bodies.clone());
        async move { poster.post(n, &bodies[n]).await }
    };
    let line = match args.mode {
        Mode::Drain => {
            let first = Instant::now();
            closed_loop(args.concurrency, count, each).await;
            let posted = first.elapsed();
            let done = all_completed(&client, &args, Duration::from_secs(900)).await - first;
            arrivals.wait_all(Duration::from_secs(10)).await;
            let runs = runs(&client, &args).await;
            let failed = runs.iter().filter(|r| r["result"] != "SUCCESS").count();
            json!({
                "mode": "drain", "requests": count, "concurrency": args.concurrency,
                "posted_per_s": count as f64 / posted.as_secs_f64(),
                "runs_per_s": count as f64 / done.as_secs_f64(),
                "completed": runs.len(), "failed": failed, "duplicates": arrivals.duplicates(),
            })
        }
        Mode::Latency => {
            let sent = slots(count);
            open_loop(args.rate, &arrivals, &sent, each).await;
            all_completed(&client, &args, Duration::from_secs(300)).await;
            let runs = runs(&client, &args).await;
            let mut durations: Vec<f64> = runs.iter().map(|r| millis(&r["completedAt"]) - millis(&r["createdAt"])).collect();
            durations.retain(|d| d.is_finite());
            durations.sort_by(f64::total_cmp);
            let failed = runs.iter().filter(|r| r["result"] != "SUCCESS").count();
            json!({
                "mode": "latency", "rate": args.rate, "requests": count, "completed": runs.len(), "failed": failed,
                "p50_ms": percentile(&durations, 0.50), "p99_ms": percentile(&durations, 0.99),
                "max_ms": durations.last().copied().unwrap_or(0.0),
            })
        }
    };
    println!("{line}");
}
