//! The outbound HTTP client: pooled, no redirects followed, no proxies from the environment,
//! a timeout per request that covers the body, at most 64 KiB of the response kept, and the
//! SSRF guard.
//!
//! The guard resolves names itself, drops every address the [`NetworkPolicy`] blocks, and
//! hands reqwest only the addresses it checked, so the socket connects to exactly what was
//! checked (no DNS-rebinding window). reqwest skips the resolver for IP-literal URLs
//! (`http://127.0.0.1/`, `http://2130706433/`), so those are checked here before sending; the
//! URL parser has already turned every IPv4 notation into the address itself.
//!
//! Wharf does not deliver to itself unless told to (`--allow-self-delivery`): a subscription
//! pointed at one of its own ingest URLs makes every entity change it maps a new delivery,
//! a loop. A target is Wharf's own when it has the origin of `--public-url`, or names the
//! address the server listens on (an unspecified listen address stands for loopback too), by
//! IP literal or by a name that resolves to it (names are resolved for this only when their
//! port is the listen port). A name that resolves to another of this machine's addresses, or
//! through a proxy in front of Wharf other than its public URL, is not recognized: the hop
//! limit on deliveries is what cuts such loops.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use wharf_core::delivery::{AttemptOutcome, parse_retry_after};
use wharf_core::network::{Blocked, NetworkPolicy};

/// How much of a response body is recorded.
pub const RESPONSE_EXCERPT: usize = 64 * 1024;
/// Target URLs whose checks are kept; past it the cache starts over.
const CHECKED_URLS: usize = 10_000;

/// What one request produced.
#[derive(Debug, Clone)]
pub struct Response {
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    /// Response headers as a JSON object of strings.
    pub headers: Option<String>,
    /// The first 64 KiB of the body (lossy UTF-8).
    pub body: Option<String>,
    /// What went wrong, for the attempt log (a redirect names its `Location`).
    pub error: Option<String>,
    pub duration: Duration,
}

impl Response {
    /// An attempt that ended before an answer.
    pub fn failed(outcome: AttemptOutcome, error: String, duration: Duration) -> Self {
        Self { outcome, status: None, headers: None, body: None, error: Some(error), duration }
    }
}

/// Wharf's own addresses, and whether deliveries may reach them.
#[derive(Debug, Clone, Default)]
pub struct OwnAddresses {
    /// `--public-url`: the base of every ingest URL Wharf hands out.
    pub public_url: Option<String>,
    /// The address the server listens on (after binding, so port 0 is resolved).
    pub listen: Option<SocketAddr>,
    /// `--allow-self-delivery`: deliver to Wharf's own addresses like any other.
    pub allow_self_delivery: bool,
}

impl OwnAddresses {
    /// Whether a connection to `addr` reaches this server.
    fn is_listen_address(&self, addr: SocketAddr) -> bool {
        let Some(listen) = self.listen else { return false };
        if addr.port() != listen.port() {
            return false;
        }
        let ip = canonical_ip(addr.ip());
        let listen_ip = canonical_ip(listen.ip());
        ip == listen_ip || (listen_ip.is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What the client decided about a target URL; it depends on the URL and the settings only,
/// so it is decided once per URL.
#[derive(Clone)]
enum Checked {
    /// Send to `url`; through the unguarded client when `own` (Wharf's own address, with
    /// self-delivery allowed). `resolve_port`: a name on the listen port, resolved before each
    /// send to see whether it is Wharf itself.
    Send { url: url::Url, own: bool, resolve_port: Option<u16> },
    /// Not sent: an invalid URL, an IP literal the policy blocks, or Wharf itself.
    Refused(AttemptOutcome, String),
}

/// The attempt error of a delivery to Wharf itself.
fn self_delivery_refused(url: &url::Url) -> String {
    format!(
        "{} is Wharf's own address: Wharf does not deliver to itself, since a subscription to its own ingest \
         URL makes a loop. To allow it, start Wharf with --allow-self-delivery (or WHARF_ALLOW_SELF_DELIVERY)",
        url.origin().ascii_serialization()
    )
}

/// The client every delivery goes through. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    guarded: reqwest::Client,
    /// For Wharf's own addresses, when self-delivery is allowed.
    own: reqwest::Client,
    own_origin: Option<url::Origin>,
    own_addresses: Arc<OwnAddresses>,
    policy: Arc<NetworkPolicy>,
    checked: Arc<Mutex<HashMap<String, Checked>>>,
}

struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut blocked = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(err) => {
                        blocked.get_or_insert(err);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), blocked) {
                (true, Some(blocked)) => Err(Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Installs the process-wide TLS provider (rustls with *ring*), which every reqwest client in
/// the process needs before it is built. Wharf is built with `ring` rather than reqwest's
/// default `aws-lc-rs` to keep builds short on small machines. Calling it again is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpClient {
    /// A client applying `policy`; Wharf's `own` addresses are refused, or reachable whatever
    /// the policy when self-delivery is allowed.
    pub fn new(policy: NetworkPolicy, own: OwnAddresses) -> Result<Self, reqwest::Error> {
        install_tls_provider();
        let policy = Arc::new(policy);
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .user_agent(concat!("Wharf-Webhooks/", env!("CARGO_PKG_VERSION")))
        };
        let guarded = builder().dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() })).build()?;
        let own_origin = own.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()).map(|u| u.origin());
        let own_addresses = Arc::new(own);
        let own = builder().build()?;
        Ok(Self { guarded, own, own_origin, own_addresses, policy, checked: Arc::default() })
    }

    /// Sends `body` to `url` with `headers`; never fails: every way it can go wrong is an
    /// outcome to record.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: String, timeout: Duration) -> Response {
        self.send(reqwest::Method::POST, url, headers, Some(body), timeout).await
    }

    /// Sends a request of `method` (a run's: POST, PUT, PATCH, GET or DELETE) through the
    /// same guard, pool and limits as [`HttpClient::post`].
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: HeaderMap,
        body: Option<String>,
        timeout: Duration,
    ) -> Response {
        let started = Instant::now();
        let (url, own) = match self.check(url) {
            Checked::Send { url, resolve_port: Some(port), .. } if self.resolves_to_self(&url, port).await => {
                return Response::failed(AttemptOutcome::Blocked, self_delivery_refused(&url), started.elapsed());
            }
            Checked::Send { url, own, .. } => (url, own),
            Checked::Refused(outcome, error) => return Response::failed(outcome, error, started.elapsed()),
        };
        let client = if own { &self.own } else { &self.guarded };
        let mut request = client.request(method, url).timeout(timeout).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        match request.send().await {
            Ok(response) => read(response, started).await,
            Err(err) => {
                let (outcome, message) = classify(&err);
                Response::failed(outcome, message, started.elapsed())
            }
        }
    }

    /// Sends a request to Wharf itself: to the address it listens on (loopback for an
    /// unspecified one), at `path_and_query` (which starts with `/`), whatever the policy and
    /// `--allow-self-delivery` say. Only for a run's call of Wharf's own API, whose URL was
    /// rewritten to a path ([`wharf_core::run::self_call_path`]): no caller-given URL reaches
    /// it.
    pub async fn send_to_self(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Option<String>,
        timeout: Duration,
    ) -> Response {
        let started = Instant::now();
        let Some(listen) = self.own_addresses.listen else {
            let error = "Wharf's own API cannot be called: this node has no listen address".to_owned();
            return Response::failed(AttemptOutcome::Network, error, started.elapsed());
        };
        let ip = match listen.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        // The path is set, not joined: a path like `//host/x` must stay a path on Wharf.
        let Some(path) = path_and_query.split('?').next().filter(|path| path.starts_with('/')) else {
            let error = format!("Wharf's own API cannot be called at `{path_and_query}`: not a path");
            return Response::failed(AttemptOutcome::Network, error, started.elapsed());
        };
        let mut url =
            url::Url::parse(&format!("http://{}/", SocketAddr::new(ip, listen.port()))).expect("a socket address makes a URL");
        url.set_path(path);
        url.set_query(path_and_query.split_once('?').map(|(_, query)| query));
        let mut request = self.own.request(method, url).timeout(timeout).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        match request.send().await {
            Ok(response) => read(response, started).await,
            Err(err) => {
                let (outcome, message) = classify(&err);
                Response::failed(outcome, message, started.elapsed())
            }
        }
    }

    /// The decision about `url`, from the cache or made now.
    fn check(&self, url: &str) -> Checked {
        let mut checked = self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(decision) = checked.get(url) {
            return decision.clone();
        }
        let decision = match url::Url::parse(url) {
            Err(err) => Checked::Refused(AttemptOutcome::Network, format!("invalid URL: {err}")),
            Ok(parsed) => self.decide(parsed),
        };
        if checked.len() >= CHECKED_URLS {
            checked.clear();
        }
        checked.insert(url.to_owned(), decision.clone());
        decision
    }

    /// Wharf's own addresses first, then the policy.
    fn decide(&self, url: url::Url) -> Checked {
        let own_addresses = &self.own_addresses;
        let port = url.port_or_known_default();
        let literal = literal_ip(&url);
        let own = self.own_origin.as_ref().is_some_and(|origin| *origin == url.origin())
            || literal.zip(port).is_some_and(|(ip, port)| own_addresses.is_listen_address(SocketAddr::new(ip, port)));
        if own {
            return match own_addresses.allow_self_delivery {
                true => Checked::Send { url, own: true, resolve_port: None },
                false => Checked::Refused(AttemptOutcome::Blocked, self_delivery_refused(&url)),
            };
        }
        if let Some(err) = literal.and_then(|ip| self.policy.check(ip).err()) {
            return Checked::Refused(AttemptOutcome::Blocked, err.to_string());
        }
        let listen_port = own_addresses.listen.map(|listen| listen.port());
        let resolve_port = match (&literal, port) {
            (None, Some(port)) if !own_addresses.allow_self_delivery && Some(port) == listen_port => Some(port),
            _ => None,
        };
        Checked::Send { url, own: false, resolve_port }
    }

    /// Whether `url`'s host name resolves to the address Wharf listens on.
    async fn resolves_to_self(&self, url: &url::Url, port: u16) -> bool {
        let Some(host) = url.host_str() else { return false };
        match tokio::net::lookup_host((host, port)).await {
            Ok(mut addrs) => addrs.any(|addr| self.own_addresses.is_listen_address(addr)),
            // The send fails on the same name, with the resolver's error.
            Err(_) => false,
        }
    }
}

/// The address of an IP-literal host.
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(_) => None,
    }
}

async fn read(mut response: reqwest::Response, started: Instant) -> Response {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, crate::now()));
    let location = response.headers().get(reqwest::header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = Vec::new();
    let mut error = None;
    let mut outcome = AttemptOutcome::Response { status, retry_after };
    while body.len() < RESPONSE_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_EXCERPT - body.len())]),
            Ok(None) => break,
            Err(err) => {
                // The status arrived but the body did not, in time: the attempt failed.
                let (class, message) = classify(&err);
                outcome = class;
                error = Some(format!("reading the response body: {message}"));
                break;
            }
        }
    }
    if error.is_none() && (300..400).contains(&status) {
        error = Some(format!(
            "redirect to {} not followed (webhook URLs must answer 2xx themselves)",
            location.as_deref().unwrap_or("?")
        ));
    } else if error.is_none() && !(200..300).contains(&status) {
        error = Some(format!("the endpoint answered {status}"));
    }
    Response {
        outcome,
        status: Some(status),
        headers: Some(headers_json(response.headers())),
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        error,
        duration: started.elapsed(),
    }
}

/// Response headers as a JSON object of strings; a repeated header keeps its last value.
fn headers_json(headers: &HeaderMap) -> String {
    struct Object<'a>(&'a HeaderMap);
    impl serde::Serialize for Object<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.keys().filter_map(|name| {
                let value = self.0.get_all(name).iter().next_back()?;
                Some((name.as_str(), String::from_utf8_lossy(value.as_bytes())))
            }))
        }
    }
    // Strings always serialize.
    serde_json::to_string(&Object(headers)).expect("strings serialize")
}

/// An error's outcome class and its message (with its causes: reqwest's top line alone says
/// little).
fn classify(err: &reqwest::Error) -> (AttemptOutcome, String) {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    let mut blocked = false;
    while let Some(cause) = source {
        if let Some(b) = cause.downcast_ref::<Blocked>() {
            return (AttemptOutcome::Blocked, b.to_string());
        }
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        blocked |= text.contains("blocked range");
        source = cause.source();
    }
    if blocked {
        (AttemptOutcome::Blocked, message)
    } else if err.is_timeout() {
        (AttemptOutcome::Timeout, message)
    } else {
        (AttemptOutcome::Network, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(listen: &str, allow_self_delivery: bool) -> HttpClient {
        let own = OwnAddresses {
            public_url: Some("https://hooks.example.com".into()),
            listen: Some(listen.parse().unwrap()),
            allow_self_delivery,
        };
        let allowed = NetworkPolicy::parse_allowed(&["127.0.0.0/8".into()]).unwrap();
        HttpClient::new(NetworkPolicy::new(allowed), own).unwrap()
    }

    fn refused(client: &HttpClient, url: &str) -> Option<String> {
        match client.check(url) {
            Checked::Refused(_, error) => Some(error),
            Checked::Send { .. } => None,
        }
    }

    #[test]
    fn wharf_s_own_addresses_are_refused_unless_allowed() {
        let guarded = client("127.0.0.1:8080", false);
        for url in [
            "https://hooks.example.com/ingest/k",
            "https://hooks.example.com:443/x",
            "http://127.0.0.1:8080/ingest/k",
            "http://[::ffff:127.0.0.1]:8080/",
        ] {
            let error = refused(&guarded, url).unwrap_or_else(|| panic!("{url} was not refused"));
            assert!(error.contains("--allow-self-delivery"), "{error}");
        }
        // Another port, scheme or host is someone else.
        for url in ["http://127.0.0.1:9000/", "http://hooks.example.com/", "https://other.example.com/"] {
            assert_eq!(refused(&guarded, url), None, "{url}");
        }
        // A name on the listen port is resolved before sending; elsewhere it is not.
        assert!(matches!(guarded.check("http://localhost:8080/"), Checked::Send { resolve_port: Some(8080), .. }));
        assert!(matches!(guarded.check("http://localhost:9000/"), Checked::Send { resolve_port: None, .. }));

        let open = client("127.0.0.1:8080", true);
        assert!(matches!(open.check("http://127.0.0.1:8080/ingest/k"), Checked::Send { own: true, .. }));
        assert!(matches!(open.check("https://hooks.example.com/ingest/k"), Checked::Send { own: true, .. }));
    }

    #[test]
    fn an_unspecified_listen_address_stands_for_loopback_too() {
        let own = OwnAddresses { public_url: None, listen: Some("0.0.0.0:8080".parse().unwrap()), allow_self_delivery: false };
        assert!(own.is_listen_address("127.0.0.1:8080".parse().unwrap()));
        assert!(own.is_listen_address("0.0.0.0:8080".parse().unwrap()));
        assert!(!own.is_listen_address("127.0.0.1:8081".parse().unwrap()));
        assert!(!own.is_listen_address("8.8.8.8:8080".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_the_listen_address_is_refused() {
        let guarded = client("127.0.0.1:8080", false);
        let response =
            guarded.post("http://localhost:8080/ingest/k", HeaderMap::new(), String::new(), Duration::from_secs(1)).await;
        let error = response.error.unwrap();
        assert!(error.contains("--allow-self-delivery"), "{error}");
    }

    /// A call of Wharf's own API goes to the listen address (loopback for an unspecified
    /// one), whatever the policy, with its path kept as a path (`//host` is not a host).
    #[tokio::test]
    async fn a_self_call_goes_to_the_listen_address_with_its_path() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = vec![0; 4096];
            let n = socket.read(&mut head).await.unwrap();
            socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await.unwrap();
            String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_owned()
        });
        // Loopback is blocked by this policy, and self-delivery is off.
        let own =
            OwnAddresses { public_url: None, listen: Some(SocketAddr::from(([0, 0, 0, 0], port))), allow_self_delivery: false };
        let client = HttpClient::new(NetworkPolicy::default(), own).unwrap();
        let response = client
            .send_to_self(reqwest::Method::GET, "//evil.example/x?run_as=a@b.c", HeaderMap::new(), None, Duration::from_secs(5))
            .await;
        assert_eq!((response.status, response.body.as_deref()), (Some(200), Some("ok")), "{:?}", response.error);
        assert_eq!(server.await.unwrap(), "GET //evil.example/x?run_as=a@b.c HTTP/1.1");
        let refused = client.send_to_self(reqwest::Method::GET, "v1/x", HeaderMap::new(), None, Duration::from_secs(1)).await;
        assert!(refused.error.unwrap().contains("not a path"));
    }
}
