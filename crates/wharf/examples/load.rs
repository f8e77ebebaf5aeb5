//! A closed-loop HTTP load generator for Wharf's benchmarks (see BENCHMARKS.md).
//!
//! `cargo run --release --example load -- --url http://127.0.0.1:8080 --token T --mode upsert`
//! sends `--requests` requests from `--concurrency` workers and prints one JSON line:
//! throughput, latency percentiles and errors. `upsert` writes distinct entities (each a real
//! create with six properties and a relation); `healthz` measures the loopback ceiling with the
//! same client and concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Upsert,
    Healthz,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "")]
    token: String,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Prefix for entity identifiers, so that repeated runs create new entities.
    #[arg(long, default_value = "e")]
    prefix: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    wharf_engine::delivery::client::install_tls_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build().expect("HTTP client");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, url, token, prefix, total, mode) =
            (client.clone(), next.clone(), args.url.clone(), args.token.clone(), args.prefix.clone(), args.requests, args.mode);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let request = match mode {
                    Mode::Healthz => client.get(format!("{url}/healthz")),
                    Mode::Upsert => client
                        .post(format!("{url}/v1/blueprints/service/entities?upsert=true&merge=true"))
                        .bearer_auth(&token)
                        .json(&json!({
                            "identifier": format!("{prefix}-{i}"),
                            "title": format!("Service {i}"),
                            "properties": {"language": "rust", "stars": i, "public": i % 2 == 0,
                                           "url": format!("https://git.example/{i}"), "tier": "gold", "tags": ["a", "b"]},
                            "relations": {"owner": "core"}
                        })),
                };
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(sent.elapsed());
                    }
                    Ok(response) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("HTTP {}: {}", response.status(), response.text().await.unwrap_or_default());
                        }
                    }
                    Err(err) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("request failed: {err}");
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        json!({
            "mode": format!("{:?}", args.mode).to_lowercase(), "requests": args.requests, "concurrency": args.concurrency,
            "seconds": seconds, "rps": latencies.len() as f64 / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": errors
        })
    );
}
