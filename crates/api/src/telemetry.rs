//! Metrics: the process's Prometheus recorder, and the request metrics every API route records.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of the `…_seconds` histograms: a millisecond to the retry schedule's hours.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 36000.0];
/// Bucket bounds of the `…_batch_size` histograms (group commits).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// How often recorded samples are folded into the histograms.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The metrics recorder: installed once per process, shared by every server in it.
///
/// Histograms are Prometheus histograms with fixed buckets (they aggregate across nodes,
/// unlike summaries). The exporter buffers every recorded sample until its upkeep folds them
/// in; `install` would start that upkeep on the runtime, but the recorder outlives any one
/// runtime (tests start many), so a thread of its own runs it. Without it, a node nobody
/// scrapes would hold every sample it ever recorded.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|builder| builder.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS))
                // Both bucket lists are constants and not empty, the only error `set_buckets_for_metric` has.
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just isn't global.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            let started = std::thread::Builder::new().name("wharf-metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(err) = started {
                tracing::warn!(error = %err, "cannot start the metrics upkeep thread; samples are folded in at each scrape only");
            }
            handle
        })
        .clone()
}

/// The request counter and duration histogram of one (method, status) and route.
type Handles = (Counter, Histogram);

/// Handles registered once per (method, status, route). Building a metric's key (three
/// owned labels, hashed, then looked up in the registry) on every request cost more than
/// the rest of the middleware stack together: `/healthz` answered 40k requests/s with it,
/// 52k without it.
static REQUEST_METRICS: OnceLock<RwLock<ByMethodAndStatus>> = OnceLock::new();

/// Handles by (method, status), then by route.
type ByMethodAndStatus = HashMap<(Method, u16), HashMap<String, Handles>>;

/// `http_requests_total` and `http_request_duration_seconds`, by method, route and status.
pub(crate) async fn record_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    record(&method, route, response.status().as_u16(), started.elapsed());
    response
}

/// Counts one answered request and records how long it took.
pub(crate) fn record(method: &Method, route: &str, status: u16, took: Duration) {
    let (requests, duration) = handles(known_method(method), route, status);
    requests.increment(1);
    duration.record(took.as_secs_f64());
}

/// The request's method, or `OTHER` for extension methods: labels come from a small, known set.
fn known_method(method: &Method) -> Method {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(method) {
        method.clone()
    } else {
        // `OTHER` is a valid token, so this cannot fail.
        Method::from_bytes(b"OTHER").unwrap_or_default()
    }
}

fn handles(method: Method, route: &str, status: u16) -> Handles {
    let all = REQUEST_METRICS.get_or_init(RwLock::default);
    let key = (method, status);
    if let Some(found) = all.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).and_then(|r| r.get(route)) {
        return found.clone();
    }
    let labels = [("method", key.0.to_string()), ("route", route.to_owned()), ("status", status.to_string())];
    let made = (metrics::counter!("http_requests_total", &labels), metrics::histogram!("http_request_duration_seconds", &labels));
    let mut all = all.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    all.entry(key).or_default().insert(route.to_owned(), made.clone());
    made
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The exporter's buffer is drained by a scrape too, so `/metrics` cannot show whether the
    /// upkeep runs; the thread that runs it can be seen among the process's threads.
    #[test]
    fn the_recorder_starts_its_upkeep_thread() {
        let _handle = super::metrics_handle();
        let names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("Linux lists a process's threads")
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs; the kernel keeps 15 bytes of the name.
        for _ in 0..200 {
            if names().iter().any(|name| name == "wharf-metrics-u") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no upkeep thread among {:?}", names());
    }
}
