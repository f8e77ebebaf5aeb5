//! Load for the ingest benchmarks (see BENCHMARKS.md and bench/ingest.sh): real-shaped,
//! signed GitHub `pull_request` events of about 2 KiB, each with its own pull request id.
//!
//! - `--mode drain`: sends `--events` events from `--concurrency` workers, then waits until
//!   none is pending; prints accepted/s and mapped entities/s, end to end.
//! - `--mode latency`: sends `--rate` events per second for `--seconds` (open loop) and
//!   watches the event log; prints p50/p99 from each 202 to its event being mapped (its
//!   entity visible: the mapping and the event's result commit together).
//!
//! Prints one JSON line.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use wharf_core::time::Timestamp;

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
    /// The webhook's identifier (for the event log) and key (for the ingest URL).
    #[arg(long)]
    webhook: String,
    #[arg(long)]
    key: String,
    #[arg(long)]
    secret: String,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Offset for pull request ids, so that repeated runs create new entities.
    #[arg(long, default_value_t = 0)]
    first_id: u64,
    /// Other nodes' base URLs (repeatable): events go round-robin over `--url` and these
    /// (`bench/nodes.sh`); everything else asks `--url`.
    #[arg(long)]
    spread: Vec<String>,
}

impl Args {
    /// The node event `id` goes to.
    fn node(&self, id: u64) -> &str {
        match (id % (self.spread.len() as u64 + 1)) as usize {
            0 => &self.url,
            i => &self.spread[i - 1],
        }
    }
}

/// A ~2 KiB `pull_request` event for pull request `id`.
pub fn pull_request(id: u64) -> String {
    let login = ["octocat", "hubot", "mona", "jdoe"][(id % 4) as usize];
    json!({
        "action": "opened",
        "number": id,
        "pull_request": {
            "id": id, "number": id, "state": "open", "locked": false,
            "title": format!("Retry deliveries on 429 with Retry-After ({id})"),
            "user": {"login": login, "id": 583231, "type": "User", "site_admin": false,
                     "html_url": format!("https://github.com/{login}")},
            "body": "Deliveries that get a 429 now wait for the Retry-After the receiver asked for, with jitter, and never less than the floor.",
            "html_url": format!("https://github.com/acme/wharf/pull/{id}"),
            "created_at": "2026-11-20T10:15:00Z", "updated_at": "2026-11-20T10:15:00Z",
            "head": {"ref": format!("feature/retry-{id}"), "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
            "base": {"ref": "main", "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b"},
            "labels": [{"name": "delivery"}, {"name": "enhancement"}],
            "draft": false, "merged": false, "comments": 0, "commits": 3, "additions": 120, "deletions": 14, "changed_files": 5
        },
        "repository": {"id": 1296269, "name": "wharf", "full_name": "acme/wharf", "private": false,
                       "html_url": "https://github.com/acme/wharf", "default_branch": "main", "language": "Rust",
                       "owner": {"login": "acme", "id": 9919, "type": "Organization"}},
        "sender": {"login": login, "id": 583231, "type": "User"}
    })
    .to_string()
}

fn sign(secret: &str, body: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send(client: &reqwest::Client, args: &Args, id: u64) -> Option<String> {
    let body = pull_request(id);
    let response = client
        .post(format!("{}/ingest/{}", args.node(id), args.key))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-hub-signature-256", sign(&args.secret, &body))
        .body(body)
        .send()
        .await
        .ok()?;
    if response.status() != 202 {
        eprintln!("HTTP {}: {}", response.status(), response.text().await.unwrap_or_default());
        return None;
    }
    let reply: Value = response.json().await.ok()?;
    reply["eventId"].as_str().map(str::to_owned)
}

async fn pending(client: &reqwest::Client, args: &Args) -> bool {
    let url = format!("{}/v1/webhooks/{}/events?status=PENDING&limit=1", args.url, args.webhook);
    let Ok(response) = client.get(url).bearer_auth(&args.token).send().await else { return true };
    let page: Value = response.json().await.unwrap_or_default();
    page["events"].as_array().is_none_or(|events| !events.is_empty())
}

async fn drain(args: Arc<Args>, client: reqwest::Client) -> Value {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (args, client, next, errors) = (args.clone(), client.clone(), next.clone(), errors.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.events {
                        return;
                    }
                    if send(&client, &args, args.first_id + i as u64).await.is_none() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let accepted = started.elapsed().as_secs_f64();
    while pending(&client, &args).await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mapped = started.elapsed().as_secs_f64();
    let ok = args.events - errors.load(Ordering::Relaxed);
    json!({"mode": "drain", "events": args.events, "errors": args.events - ok, "accept_seconds": accepted,
           "accepted_per_s": ok as f64 / accepted, "mapped_seconds": mapped, "entities_per_s": ok as f64 / mapped})
}

/// What the latency watcher knows: when each event was acknowledged, when it was first seen
/// mapped, and the acknowledged events not yet seen mapped, by the time they were sent.
#[derive(Default)]
struct Watch {
    /// When each event was acknowledged, the Unix ms just before it was sent, and the Unix
    /// ms when it was acknowledged (its `receivedAt` lies between).
    acknowledged: HashMap<String, (Instant, i64, i64)>,
    mapped: HashMap<String, Instant>,
    /// (Unix ms just before sending, event id) of the acknowledged events not seen mapped.
    unseen: BTreeSet<(i64, String)>,
}

impl Watch {
    fn acknowledged(&mut self, event: String, sent_ms: i64) {
        if !self.mapped.contains_key(&event) {
            self.unseen.insert((sent_ms, event.clone()));
        }
        self.acknowledged.insert(event, (Instant::now(), sent_ms, unix_ms()));
    }

    /// The oldest event not seen mapped, and the `receivedAt` to list back from: 150 ms
    /// after it was sent, and no earlier than its 202 (it was received between the two).
    fn frontier(&self) -> Option<(String, i64)> {
        let (sent_ms, event) = self.unseen.first()?;
        let acked_ms = self.acknowledged.get(event).map_or(0, |(_, _, acked_ms)| *acked_ms);
        Some((event.clone(), (sent_ms + 150).max(acked_ms + 1)))
    }

    fn seen_mapped(&mut self, event: &str, now: Instant) {
        if self.mapped.contains_key(event) {
            return;
        }
        self.mapped.insert(event.to_owned(), now);
        if let Some((_, sent_ms, _)) = self.acknowledged.get(event) {
            self.unseen.remove(&(*sent_ms, event.to_owned()));
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn latency(args: Arc<Args>, client: reqwest::Client) -> Value {
    let watch: Arc<Mutex<Watch>> = Arc::default();
    let total = (args.rate * args.seconds) as usize;
    let sending = {
        let (args, client, watch) = (args.clone(), client.clone(), watch.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::with_capacity(total);
            for i in 0..total {
                tick.tick().await;
                let (args, client, watch) = (args.clone(), client.clone(), watch.clone());
                tasks.push(tokio::spawn(async move {
                    let sent_ms = unix_ms();
                    if let Some(event) = send(&client, &args, args.first_id + i as u64).await {
                        watch.lock().unwrap().acknowledged(event, sent_ms);
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        })
    };
    // The watcher, every 2 ms: the 200 newest events received up to `Watch::frontier`, just
    // after the oldest one not yet seen mapped (events are mapped in arrival order, so that is
    // where events turn mapped, however far behind the mapping is), and the first sighting of
    // each as mapped; 1,000 when that event was not in the last page. (Watching only the
    // newest 200 saw nothing more once mapping lagged 200 events behind.)
    let url = format!("{}/v1/webhooks/{}/events", args.url, args.webhook);
    let deadline = Instant::now() + Duration::from_secs(args.seconds + 60);
    let mut limit = 200;
    loop {
        let frontier = watch.lock().unwrap().frontier();
        let page_url = match &frontier {
            Some((_, to)) => format!("{url}?limit={limit}&to={}", Timestamp::from_millis(*to).to_iso()),
            None => format!("{url}?limit=200"),
        };
        if let Ok(response) = client.get(&page_url).bearer_auth(&args.token).send().await {
            let now = Instant::now();
            let page: Value = response.json().await.unwrap_or_default();
            let events = page["events"].as_array().map(Vec::as_slice).unwrap_or_default();
            let held = |id: &str| events.iter().any(|event| event["id"] == id);
            limit = if frontier.is_some_and(|(oldest, _)| !held(&oldest)) { 1000 } else { 200 };
            let mut watch = watch.lock().unwrap();
            for event in events {
                if event["status"] != "PENDING"
                    && let Some(id) = event["id"].as_str()
                {
                    watch.seen_mapped(id, now);
                }
            }
        }
        let done = {
            let watch = watch.lock().unwrap();
            sending.is_finished() && watch.unseen.is_empty()
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let watch = watch.lock().unwrap();
    let mut latencies: Vec<f64> = watch
        .acknowledged
        .iter()
        .filter_map(|(id, (at, _, _))| {
            watch.mapped.get(id).map(|seen| seen.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    json!({"mode": "latency", "rate": args.rate, "events": total, "acknowledged": watch.acknowledged.len(), "observed": latencies.len(),
           "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99)})
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    wharf_engine::delivery::client::install_tls_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency.max(256)).build().expect("HTTP client");
    let result = match args.mode {
        Mode::Drain => drain(args, client).await,
        Mode::Latency => latency(args, client).await,
    };
    println!("{result}");
}
