//! What the load examples share (`delivery_load`, `run_load`): the in-process receiver that
//! records when each numbered request arrived, a bare hyper client that posts prepared
//! bodies, closed- and open-loop drivers, and percentiles.
//!
//! Not an example itself: cargo finds examples at `examples/*.rs` and `examples/*/main.rs`.

#![allow(dead_code)] // Each example uses its own part of this module.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Which of the numbered requests a received request is (`None`: not one of them).
pub type Key = fn(&HeaderMap, &[u8]) -> Option<usize>;

/// What the receiver saw: the arrival time of each numbered request (ns since `start` + 1;
/// 0 = not yet), and how many requests came in all.
pub struct Arrivals {
    pub start: Instant,
    pub at: Vec<AtomicU64>,
    pub total: AtomicUsize,
    pub first: AtomicUsize,
}

impl Arrivals {
    pub fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            at: (0..count).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicUsize::new(0),
            first: AtomicUsize::new(0),
        })
    }

    /// Nanoseconds since `start`.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn record(&self, n: Option<usize>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = n.and_then(|n| self.at.get(n)) else { return };
        if slot.compare_exchange(0, self.now() + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.first.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests that arrived more than once, or that were not numbered.
    pub fn duplicates(&self) -> usize {
        self.total.load(Ordering::Relaxed).saturating_sub(self.first.load(Ordering::Relaxed))
    }

    /// When the last numbered request arrived, since `start`.
    pub fn last(&self) -> Duration {
        Duration::from_nanos(self.at.iter().map(|a| a.load(Ordering::Relaxed)).max().unwrap_or(1) - 1)
    }

    /// Waits until every numbered request has arrived (panics past `limit`).
    pub async fn wait_all(&self, limit: Duration) {
        let started = Instant::now();
        let count = self.at.len();
        while self.first.load(Ordering::Relaxed) < count {
            assert!(started.elapsed() < limit, "only {} of {count} arrived", self.first.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sorted latencies in ms, from `sent[n]` (ns since `start`) to request n's arrival.
    pub fn latencies(&self, sent: &[AtomicU64]) -> Vec<f64> {
        let mut latencies: Vec<f64> = sent
            .iter()
            .zip(&self.at)
            .map(|(sent, at)| (at.load(Ordering::Relaxed) - 1).saturating_sub(sent.load(Ordering::Relaxed)) as f64 / 1e6)
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    }
}

/// The `p` quantile (0..=1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn receive(arrivals: Arc<Arrivals>, key: Key, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    arrivals.record(key(&parts.headers, &body));
    Ok(Response::new(Full::new(Bytes::new())))
}

/// A minimal hyper server on 127.0.0.1 answering 200 at once, recording arrivals by `key`;
/// its URL (path `/hook`).
pub async fn start_receiver(arrivals: Arc<Arrivals>, key: Key) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| receive(arrivals.clone(), key, req));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    format!("http://{addr}/hook")
}

/// Posts prepared bodies to one URL through a bare hyper client with the URI and headers
/// made once: the load tool shares the two cores with Wharf, so its own cost per request is
/// kept small.
#[derive(Clone)]
pub struct Poster {
    http: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    auth: HeaderValue,
}

impl Poster {
    pub fn new(url: &str, token: &str, concurrency: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(concurrency.max(256)).build(connector);
        let auth = HeaderValue::from_str(&format!("Bearer {token}")).expect("the token is a header value");
        Self { http, uri: url.parse().expect("the URL is a URI"), auth }
    }

    /// Posts `body` until it is taken (a 2xx, or 409: taken by an earlier try), up to ten
    /// tries 50 ms apart; panics after that.
    pub async fn post(&self, n: usize, body: &Bytes) {
        for _ in 0..10 {
            let request = Request::post(self.uri.clone())
                .header(AUTHORIZATION, self.auth.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Full::new(body.clone()))
                .expect("the request is valid");
            match self.http.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let answer = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    if status.is_success() || status == 409 {
                        return;
                    }
                    eprintln!("post {n}: {status} {}", String::from_utf8_lossy(&answer));
                }
                Err(err) => eprintln!("post {n}: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("request {n} could not be posted");
    }
}

/// Calls `each(n)` for n in 0..count from `concurrency` workers, each waiting for its call
/// before the next (closed loop); returns when all have answered.
pub async fn closed_loop<F, Fut>(concurrency: usize, count: usize, each: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, each) = (next.clone(), each.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return;
                }
                each(n).await;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Starts `each(n)` for n in 0..count at `rate` per second (open loop: a slow answer does
/// not delay the next start), recording in `sent[n]` when each started (ns since
/// `arrivals.start`); returns when all have answered.
pub async fn open_loop<F, Fut>(rate: u64, arrivals: &Arc<Arrivals>, sent: &Arc<Vec<AtomicU64>>, each: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(sent.len());
    for n in 0..sent.len() {
        ticker.tick().await;
        let (each, sent, arrivals) = (each.clone(), sent.clone(), arrivals.clone());
        tasks.push(tokio::spawn(async move {
            sent[n].store(arrivals.now(), Ordering::Relaxed);
            each(n).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// `count` zeroed slots for [`open_loop`].
pub fn slots(count: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..count).map(|_| AtomicU64::new(0)).collect())
}
