//! Load for the delivery benchmarks (see BENCHMARKS.md and bench/deliveries.sh). Creates a
//! project with one webhook pointing at a receiver inside this process (a minimal hyper server
//! answering 200 at once), then:
//!
//! - `--mode drain`: publishes `--events` events from `--concurrency` workers
//!   (`POST …/events`) and waits until every one has arrived; prints publishes/s and
//!   deliveries/s from the first publish to the last arrival.
//! - `--mode latency`: publishes `--rate` events per second for `--seconds` (open loop) and
//!   prints p50/p99 from each publish being sent to its delivery arriving.
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

#[derive(Clone, Copy, Debug, ValueEnum)]
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
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Other nodes' base URLs (repeatable): events are published round-robin over `--url`
    /// and these (`bench/nodes.sh`); the project is made through `--url`.
    #[arg(long)]
    spread: Vec<String>,
}

/// Event n's `id` is `b-n`, which its delivery carries as `webhook-id`.
fn event_number(headers: &HeaderMap, _body: &[u8]) -> Option<usize> {
    headers.get("webhook-id")?.to_str().ok()?.strip_prefix("b-")?.parse().ok()
}

/// A project with one webhook to `receiver`; the path of its events route (on any node).
async fn setup(client: &reqwest::Client, args: &Args, receiver: &str) -> String {
    let get = |path: &str| client.get(format!("{}{path}", args.url)).bearer_auth(&args.token);
    let org: Value = get("/v1/organization").send().await.unwrap().json().await.unwrap();
    let org = org["organization"]["id"].as_str().expect("organization id").to_owned();
    let slug = format!("bench-{}", std::process::id());
    let project: Value = client
        .post(format!("{}/organizations/{org}/projects", args.url))
        .bearer_auth(&args.token)
        .json(&json!({"name": "Bench", "slug": slug}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/organizations/{org}/projects/{}", project["_id"].as_str().expect("project id"));
    let created = client
        .post(format!("{}{path}/settings/webhooks", args.url))
        .bearer_auth(&args.token)
        .json(&json!({"name": "receiver", "url": receiver, "events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "webhook not created: {}", created.text().await.unwrap_or_default());
    format!("{path}/events")
}

/// A realistic event: an invoice of about 450 bytes.
fn event(n: usize) -> Value {
    json!({"type": "invoice.paid", "id": format!("b-{n}"), "data": {
        "invoice": format!("in_{n:08}"), "customer": {"id": format!("cus_{:06}", n % 5000), "email": "billing@acme.example", "name": "Acme Corp"},
        "amount": 12_000 + n % 997, "currency": "eur", "paid_at": "2026-11-22T10:15:00Z",
        "lines": [{"sku": "wharf-pro", "quantity": 3, "unit_amount": 4000}, {"sku": "support", "quantity": 1, "unit_amount": 0}],
        "metadata": {"order": format!("ord_{n}"), "region": "eu-west-1"}}})
}

/// Every event's body, serialized before the clock starts (the load tool shares the cores
/// with Wharf, so it does as little as it can while measuring).
fn bodies(events: usize) -> Arc<Vec<Bytes>> {
    Arc::new((0..events).map(|n| Bytes::from(serde_json::to_vec(&event(n)).expect("JSON serializes"))).collect())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    wharf_engine::delivery::client::install_tls_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency.max(256)).build().expect("HTTP client");
    let events = match args.mode {
        Mode::Drain => args.events,
        Mode::Latency => usize::try_from(args.rate * args.seconds).unwrap_or(usize::MAX),
    };
    let arrivals = Arrivals::new(events);
    let receiver = start_receiver(arrivals.clone(), event_number).await;
    let path = setup(&client, &args, &receiver).await;
    // One poster per node; event n goes to node n % nodes.
    let publisher: Arc<Vec<Poster>> = Arc::new(
        std::iter::once(&args.url)
            .chain(&args.spread)
            .map(|base| Poster::new(&format!("{base}{path}"), &args.token, args.concurrency))
            .collect(),
    );
    match args.mode {
        Mode::Drain => drain(&publisher, &args, &arrivals, events).await,
        Mode::Latency => latency(&publisher, &args, &arrivals, events).await,
    }
}

async fn drain(publisher: &Arc<Vec<Poster>>, args: &Args, arrivals: &Arc<Arrivals>, events: usize) {
    let bodies = bodies(events);
    let started = arrivals.start.elapsed();
    let publisher = publisher.clone();
    closed_loop(args.concurrency, events, move |n| {
        let (publisher, bodies) = (publisher.clone(), bodies.clone());
        async move { publisher[n % publisher.len()].post(n, &bodies[n]).await }
    })
    .await;
    let published = arrivals.start.elapsed() - started;
    arrivals.wait_all(Duration::from_secs(600)).await;
    let delivered = arrivals.last() - started;
    println!(
        "{}",
        json!({
            "mode": "drain", "events": events,
            "published_per_s": events as f64 / published.as_secs_f64(),
            "deliveries_per_s": events as f64 / delivered.as_secs_f64(),
            "duplicates": arrivals.duplicates(),
        })
    );
}

async fn latency(publisher: &Arc<Vec<Poster>>, args: &Args, arrivals: &Arc<Arrivals>, events: usize) {
    let bodies = bodies(events);
    let sent = slots(events);
    let publisher = publisher.clone();
    open_loop(args.rate, arrivals, &sent, move |n| {
        let (publisher, bodies) = (publisher.clone(), bodies.clone());
        async move { publisher[n % publisher.len()].post(n, &bodies[n]).await }
    })
    .await;
    arrivals.wait_all(Duration::from_secs(120)).await;
    let latencies = arrivals.latencies(&sent);
    println!(
        "{}",
        json!({"mode": "latency", "rate": args.rate, "events": events, "p50_ms": percentile(&latencies, 0.50),
               "p99_ms": percentile(&latencies, 0.99), "max_ms": latencies.last().copied().unwrap_or(0.0)})
    );
}
