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

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
}

/// What the receiver saw: the arrival time of each event (ns since `start` + 1; 0 = not
/// yet), and how many requests came in all.
struct Arrivals {
    start: Instant,
    at: Vec<AtomicU64>,
    total: AtomicUsize,
    first: AtomicUsize,
}

impl Arrivals {
    fn record(&self, id: Option<&str>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let Some(n) = id.and_then(|id| id.strip_prefix("b-")).and_then(|n| n.parse::<usize>().ok()) else { return };
        let Some(slot) = self.at.get(n) else { return };
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX) + 1;
        if slot.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.first.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn receive(arrivals: Arc<Arrivals>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = request.headers().get("webhook-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let _ = request.into_body().collect().await;
    arrivals.record(id.as_deref());
    Ok(Response::new(Full::new(Bytes::new())))
}

async fn start_receiver(arrivals: Arc<Arrivals>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| receive(arrivals.clone(), req));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    format!("http://{addr}/hook")
}

/// A project with one webhook to `receiver`; the path of its events route.
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
    format!("{}{path}/events", args.url)
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

/// Publishes events through a bare hyper client with the URI and headers made once: the
/// load tool shares the two cores with Wharf, so its own cost per request is kept small.
#[derive(Clone)]
struct Publisher {
    http: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    auth: HeaderValue,
}

impl Publisher {
    fn new(url: &str, token: &str, concurrency: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(concurrency.max(256)).build(connector);
        let auth = HeaderValue::from_str(&format!("Bearer {token}")).expect("the token is a header value");
        Self { http, uri: url.parse().expect("the events URL is a URI"), auth }
    }

    async fn publish(&self, n: usize, body: &Bytes) {
        for _ in 0..10 {
            let request = Request::post(self.uri.clone())
                .header(AUTHORIZATION, self.auth.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Full::new(body.clone()))
                .expect("the request is valid");
            match self.http.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    if status == 202 || status == 409 {
                        return;
                    }
                    eprintln!("publish {n}: {status}");
                }
                Err(err) => eprintln!("publish {n}: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("event {n} could not be published");
    }
}

async fn wait_all(arrivals: &Arrivals, events: usize, limit: Duration) {
    let started = Instant::now();
    while arrivals.first.load(Ordering::Relaxed) < events {
        assert!(started.elapsed() < limit, "only {} of {events} arrived", arrivals.first.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let arrivals = Arc::new(Arrivals {
        start: Instant::now(),
        at: (0..events).map(|_| AtomicU64::new(0)).collect(),
        total: AtomicUsize::new(0),
        first: AtomicUsize::new(0),
    });
    let receiver = start_receiver(arrivals.clone()).await;
    let url = setup(&client, &args, &receiver).await;
    let publisher = Publisher::new(&url, &args.token, args.concurrency);
    match args.mode {
        Mode::Drain => drain(&publisher, &args, &arrivals, events).await,
        Mode::Latency => latency(&publisher, &args, &arrivals, events).await,
    }
}

async fn drain(publisher: &Publisher, args: &Args, arrivals: &Arc<Arrivals>, events: usize) {
    let bodies = bodies(events);
    let next = Arc::new(AtomicUsize::new(0));
    let started = arrivals.start.elapsed();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (publisher, next, bodies) = (publisher.clone(), next.clone(), bodies.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    return;
                }
                publisher.publish(n, &bodies[n]).await;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let published = arrivals.start.elapsed() - started;
    wait_all(arrivals, events, Duration::from_secs(600)).await;
    let last = arrivals.at.iter().map(|a| a.load(Ordering::Relaxed)).max().unwrap_or(0);
    let delivered = Duration::from_nanos(last) - started;
    println!(
        "{}",
        json!({
            "mode": "drain", "events": events,
            "published_per_s": events as f64 / published.as_secs_f64(),
            "deliveries_per_s": events as f64 / delivered.as_secs_f64(),
            "duplicates": arrivals.total.load(Ordering::Relaxed) - events,
        })
    );
}

async fn latency(publisher: &Publisher, args: &Args, arrivals: &Arc<Arrivals>, events: usize) {
    let bodies = bodies(events);
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(events);
    for n in 0..events {
        ticker.tick().await;
        let (publisher, sent, arrivals) = (publisher.clone(), sent.clone(), arrivals.clone());
        let body = bodies[n].clone();
        tasks.push(tokio::spawn(async move {
            sent[n].store(u64::try_from(arrivals.start.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
            publisher.publish(n, &body).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_all(arrivals, events, Duration::from_secs(120)).await;
    let mut latencies: Vec<f64> = (0..events)
        .map(|n| (arrivals.at[n].load(Ordering::Relaxed) - 1).saturating_sub(sent[n].load(Ordering::Relaxed)) as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{}",
        json!({"mode": "latency", "rate": args.rate, "events": events, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
               "max_ms": latencies.last().copied().unwrap_or(0.0)})
    );
}
