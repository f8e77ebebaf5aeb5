//! The listener: how connections are accepted, bounded and closed.
//!
//! axum's `serve` has no header-read timeout, idle timeout or connection cap, so Wharf accepts
//! connections itself and serves each with hyper's HTTP/1 connection, configured:
//! - **Header-read timeout** (hyper's `header_read_timeout`): a request's head must arrive
//!   whole within it. hyper starts that clock when the connection starts waiting for a
//!   request, so it also closes a keep-alive connection that sends nothing (and a connection
//!   that never sends anything). hyper arms it for every request, so its timer is
//!   [`CoarseTimer`], not tokio's.
//! - **Idle timeout** ([`IdleTimeout`]): a connection on which no byte moves either way for
//!   this long is closed, whatever it waits for: a body that stops half-way, or a client that
//!   stops reading its answer. hyper has no such option, hence the wrapper. A request whose
//!   handler runs longer than it without answering is cut too; every unit of work has a
//!   budget far below the default (60 s).
//! - **A cap on concurrent connections**: past it a new connection gets `503` with Port's
//!   error body and `Connection: close`, written once its request's head has arrived (its
//!   body is not read), and is closed. An answer rather than a silent close, so a client (and its operator) sees why;
//!   written by a task that lives at most a second, so refusals hold no slot (and at most
//!   1,024 refusals are written at once; past that a connection is closed without one).
//!
//! A clean stop stops accepting, lets requests in flight finish and closes idle connections
//! (hyper-util's `GracefulShutdown`).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::Service;
use wharf_api::App;

/// The listener's limits (`--header-read-timeout`, `--idle-timeout`, `--max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60), max_connections: 10_000 }
    }
}

/// How long a refused connection may take to be told so.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Refusals being written at once at most; past it a connection is closed without an answer,
/// so a flood past the cap cannot hold more sockets than this besides the served ones.
const REFUSALS: usize = 1024;

/// The answer past `--max-connections` (its length computed, not written by hand).
static REFUSAL: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = serde_json::json!({
        "ok": false,
        "error": "service_unavailable",
        "message": "Wharf has --max-connections connections open; try again on a new connection",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Serves `app` on `listener` until `stopped` resolves, then drains gracefully.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: ConnectionLimits,
    stopped: impl Future<Output = ()>,
) -> io::Result<()> {
    let (timer, ticker) = CoarseTimer::start(limits.header_read_timeout);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(timer).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let graceful = GracefulShutdown::new();
    // Invariant: a served connection holds one permit until it is closed, so at most
    // `max_connections` are served at once.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        // Answers are small and must not wait for Nagle's algorithm.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on a connection");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut app = app.clone();
            app.call(req.map(Body::new))
        });
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout)), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    ticker.abort();
    Ok(())
}

/// hyper's timer for the header-read timeout: coarse, so that a request costs no timer.
///
/// hyper arms its header-read timer for every request head it waits for. With tokio's timer
/// that was an entry inserted into and cancelled from the timer wheel per request, and
/// accepting on SQLite ran 6 % slower than without it (an alternated A/B, BENCHMARKS.md
/// "Hardening"). Here a sleep is a deadline; only once it is polled and still pending does it
/// leave its waker in a shared map, and one ticker task wakes those whose deadline has passed.
/// So a timeout fires between its deadline and one tick later (a tenth of the timeout, at most
/// a second). Written by hand: hyper-util's only timer is tokio's.
#[derive(Clone)]
struct CoarseTimer {
    sleeps: Arc<Sleeps>,
}

#[derive(Default)]
struct Sleeps {
    next: AtomicU64,
    /// Pending sleeps by deadline (and a number, for sleeps with the same one).
    waiting: Mutex<BTreeMap<(std::time::Instant, u64), Waker>>,
}

impl Sleeps {
    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<(std::time::Instant, u64), Waker>> {
        // Nothing panics while holding it; a poisoned map is still a map.
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every sleep whose deadline is `now` or earlier.
    fn wake_expired(&self, now: std::time::Instant) {
        let expired = {
            let mut waiting = self.waiting();
            let later = waiting.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *waiting, later)
        };
        expired.into_values().for_each(Waker::wake);
    }
}

impl CoarseTimer {
    /// The timer, and the task that ticks for it (abort it when the listener stops).
    fn start(timeout: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let sleeps = Arc::new(Sleeps::default());
        let tick = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let ticking = Arc::downgrade(&sleeps);
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(sleeps) = ticking.upgrade() else { return };
                sleeps.wake_expired(std::time::Instant::now());
            }
        });
        (Self { sleeps }, ticker)
    }
}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep { deadline, key: None, sleeps: self.sleeps.clone() })
    }
}

struct CoarseSleep {
    deadline: std::time::Instant,
    /// Where its waker waits in the map, once it has been polled.
    key: Option<(std::time::Instant, u64)>,
    sleeps: Arc<Sleeps>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::time::Instant::now() >= self.deadline {
            if let Some(key) = self.key.take() {
                self.sleeps.waiting().remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = (self.deadline, self.sleeps.next.fetch_add(1, Ordering::Relaxed));
                self.key = Some(key);
                key
            }
        };
        self.sleeps.waiting().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.sleeps.waiting().remove(&key);
        }
    }
}

/// An accept that failed: a connection reset before it was accepted is nothing; running out
/// of file descriptors would fail every accept at once, so wait a little (as axum does).
async fn accept_failed(err: io::Error) {
    if matches!(err.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused)
    {
        return;
    }
    tracing::error!(error = %err, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Tells a connection past the cap why it is closed, and closes it.
async fn refuse(mut stream: TcpStream) {
    // One warning per ten seconds at most: a flood past the cap must not flood the log.
    static LAST_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST_WARNING.load(std::sync::atomic::Ordering::Relaxed);
    if now >= last + 10
        && LAST_WARNING
            .compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!("refusing connections: --max-connections reached");
    }
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        // The request's head first: a client that gets an answer before it has sent its
        // request takes it for a broken connection (hyper's client does).
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        stream.write_all(&REFUSAL).await?;
        stream.shutdown().await?;
        // Read what the client sent before closing: closing with unread bytes would reset the
        // connection, and the client could lose the answer.
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// A connection that fails with `TimedOut` once no byte has moved either way for `idle`.
///
/// The timer is reset lazily: progress only records its instant, and when the timer fires
/// early it is pushed to the last progress plus `idle`, so busy connections touch the timer
/// once per `idle`, not once per read.
pub struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        Self { inner, idle, last_progress: now, timer: Box::pin(tokio::time::sleep_until(now + idle)) }
    }

    /// Called while the I/O waits: `Ready` with an error once the connection has been idle.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last_progress + self.idle;
            if deadline <= Instant::now() {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the connection was idle past --idle-timeout"));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use hyper::rt::Timer;

    use super::*;

    /// A coarse sleep ends within a tick of its deadline, and one dropped before it leaves
    /// nothing behind in the shared map.
    #[tokio::test]
    async fn coarse_sleeps_end_and_leave_nothing_behind() {
        let (timer, ticker) = CoarseTimer::start(Duration::from_millis(200)); // ticks every 20 ms
        let started = std::time::Instant::now();
        timer.sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50), "woke before its deadline");
        assert!(timer.sleeps.waiting().is_empty(), "an ended sleep is not left waiting");

        let mut pending = timer.sleep(Duration::from_secs(3600));
        let waker = std::task::Waker::noop();
        assert!(pending.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
        assert_eq!(timer.sleeps.waiting().len(), 1);
        drop(pending);
        assert!(timer.sleeps.waiting().is_empty(), "a dropped sleep is forgotten");
        ticker.abort();
    }

    #[test]
    fn the_refusal_is_a_whole_answer() {
        let text = std::str::from_utf8(&REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["ok"], false);
    }
}
