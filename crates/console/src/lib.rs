//! Wharf's web console: a browser client of the public API, served by `wharf serve` on the
//! API's own port.
//!
//! The console is plain ES modules over a vendored view library (Preact with htm, 13 KiB, in
//! `assets/vendor/`): no build step, no bundler, nothing fetched from the internet. Release
//! builds embed `assets/` in the binary; debug builds read the same files from disk
//! (rust-embed's behaviour), so a change to the console shows on reload.
//!
//! Architecture Invariant: the console holds no privilege of its own. Every screen reads and
//! writes through the public API with the signed-in client's token, so it can do nothing the
//! API cannot; this crate serves files and nothing else (it does not depend on the engine).
//!
//! Architecture Invariant: every answer from here carries [`CONTENT_SECURITY_POLICY`] (the page
//! itself, [`page_policy`]: the same, plus the hash of the one stylesheet inlined in it). Scripts,
//! styles and connections are limited to this origin, no inline script runs, and no other site
//! may frame the console. The token the console signs in with lives in the tab's
//! `sessionStorage`, never in a cookie.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use base64::Engine as _;
use rust_embed::RustEmbed;
use sha2::{Digest as _, Sha256};

mod modules;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The policy on every console answer: this origin only, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The stylesheet link in `index.html` that [`make_page`] replaces with the stylesheet itself.
const STYLESHEET_LINK: &str = r#"<link rel="stylesheet" href="/console/app.css">"#;

/// The path the console's files are served under (`index.html` is also served at `/`).
pub const ASSETS_PREFIX: &str = "/console/";

/// The console's routes: `GET /` (the page) and `GET /console/{*path}` (its files).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/console/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve_page(&headers)
}

/// `GET /`: [`page`], with its own ETag and policy.
fn serve_page(request: &HeaderMap) -> Response {
    let Some(page) = page() else { return serve("index.html", request) };
    let mut response = revalidated(request, &page.etag, "text/html; charset=utf-8", || page.html.clone());
    if let Ok(policy) = HeaderValue::from_str(&page.policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// `index.html` as `GET /` serves it.
struct Page {
    html: Bytes,
    etag: String,
    policy: String,
}

/// The page, made once in a release build (its files are embedded and cannot change) and on
/// each request in a debug build (they are read from disk, so an edit shows on reload).
fn page() -> Option<Arc<Page>> {
    if cfg!(debug_assertions) {
        return make_page().map(Arc::new);
    }
    static PAGE: OnceLock<Option<Arc<Page>>> = OnceLock::new();
    PAGE.get_or_init(|| make_page().map(Arc::new)).clone()
}

/// `index.html` made ready to paint at once and to load an area in one round trip:
/// - `app.css` inlined in a `<style>` element, so the first paint waits for no request (a
///   linked stylesheet blocks rendering until it arrives; on a cold load that was a round trip
///   behind the page, beside every module's). The policy allows that one element by its hash
///   ([`page_policy`]); no other inline style, and no inline script, runs.
/// - the module graph ([`modules::graph`]) in a JSON data block (`#modules`, never executed),
///   which `app.js` reads to preload all of an area's modules when the area is first shown.
///
/// `None` when a file is missing or the page no longer links the stylesheet: then the page is
/// served as it is.
fn make_page() -> Option<Page> {
    let index = Assets::get("index.html")?;
    let css = Assets::get("app.css")?;
    let html = std::str::from_utf8(&index.data).ok()?;
    let style = std::str::from_utf8(&css.data).ok()?;
    if !html.contains(STYLESHEET_LINK) || !html.contains("</head>") {
        return None;
    }
    let sources = Assets::iter().filter_map(|path| {
        let file = Assets::get(&path)?;
        Some((path.into_owned(), String::from_utf8(file.data.into_owned()).ok()?))
    });
    let graph = serde_json::to_string(&modules::graph(sources)).ok()?.replace("</", "<\\/");
    let html = html.replacen(STYLESHEET_LINK, &format!("<style>{style}</style>"), 1).replacen(
        "</head>",
        &format!("<script type=\"application/json\" id=\"modules\">{graph}</script>\n</head>"),
        1,
    );
    // The graph follows from the files, and the files from the binary's build.
    let etag = format!("\"{}\"", hex(&Sha256::digest(html.as_bytes())[..12]));
    let policy = page_policy(&css.metadata.sha256_hash());
    Some(Page { html: Bytes::from(html), etag, policy })
}

/// [`CONTENT_SECURITY_POLICY`] with the inline stylesheet whose SHA-256 is `css_hash` allowed
/// (CSP's `'sha256-…'` source: the hash of the element's text, in base64).
fn page_policy(css_hash: &[u8; 32]) -> String {
    let allowed = format!("style-src 'self' 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(css_hash));
    CONTENT_SECURITY_POLICY.replacen("style-src 'self'", &allowed, 1)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// One embedded file, with its type and an ETag from its hash ([`revalidated`]).
fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        let message = format!("the console has no file `{path}`");
        let body = serde_json::json!({"ok": false, "error": "not_found", "message": message});
        return secured((StatusCode::NOT_FOUND, axum::Json(body)).into_response());
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    revalidated(request, &etag, file.metadata.mimetype(), || Bytes::from(file.data.into_owned()))
}

/// `body()` of `content_type`, or a 304 when the browser already has `etag`: each answer carries
/// the ETag, `no-cache` (the browser asks again each time and gets a 304 for what it has) and
/// the console's security headers.
fn revalidated(request: &HeaderMap, etag: &str, content_type: &str, body: impl FnOnce() -> Bytes) -> Response {
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { body().into_response() };
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secured(response)
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The embedded files and their sizes, for `wharf` to report and the tests to bound.
pub fn files() -> impl Iterator<Item = (String, usize)> {
    Assets::iter().filter_map(|path| Assets::get(&path).map(|file| (path.into_owned(), file.data.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_the_view_library_are_embedded() {
        let names: Vec<String> = files().map(|(name, _)| name).collect();
        for needed in ["index.html", "app.js", "api.js", "app.css", "vendor/preact-htm.mjs"] {
            assert!(names.iter().any(|n| n == needed), "{needed} is not among {names:?}");
        }
    }

    /// Issue 28 allows the console 2 MiB of the binary; its files take at most half of it.
    #[test]
    fn the_files_stay_within_half_the_binary_budget() {
        let total: usize = files().map(|(_, size)| size).sum();
        assert!(total < 1024 * 1024, "the console's files take {total} bytes");
    }

    #[test]
    fn a_missing_file_is_named_in_a_json_error() {
        let response = serve("nope\".js", &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }

    /// The page paints with no request (its stylesheet is inline), the policy lets exactly that
    /// stylesheet apply (its hash is the SHA-256 of the element's text), and it carries the module
    /// graph of the catalog's screens.
    #[test]
    fn the_page_inlines_its_stylesheet_and_carries_the_module_graph() {
        let page = page().expect("index.html links app.css and has a head");
        let html = std::str::from_utf8(&page.html).expect("the page is UTF-8");
        assert!(!html.contains(STYLESHEET_LINK), "the stylesheet is not fetched");
        let css = Assets::get("app.css").expect("app.css");
        let style = std::str::from_utf8(&css.data).expect("app.css is UTF-8");
        assert!(html.contains(&format!("<style>{style}</style>")));
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
        assert!(page.policy.contains(&format!("style-src 'self' 'sha256-{hash}';")), "{}", page.policy);
        assert!(!page.policy.contains("unsafe"), "{}", page.policy);

        let start = html.find(r#"<script type="application/json" id="modules">"#).expect("the module graph");
        let json = &html[start..][html[start..].find('>').expect("its tag ends") + 1..];
        let json = &json[..json.find("</script>").expect("its element ends")];
        let graph: std::collections::BTreeMap<String, Vec<String>> = serde_json::from_str(json).expect("the graph is JSON");
        assert!(graph["screens/catalog.js"].contains(&"screens/catalog-entity.js".to_owned()), "{graph:?}");
        assert!(graph["app.js"].contains(&"ui.js".to_owned()), "{graph:?}");
    }

    #[test]
    fn a_known_page_etag_answers_304() {
        let first = serve_page(&HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers().get(header::ETAG).expect("an etag").clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        let again = serve_page(&request);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("'sha256-"));
    }

    #[test]
    fn a_known_etag_answers_304() {
        let first = serve("app.js", &HeaderMap::new());
        let etag = first.headers().get(header::ETAG).expect("an etag").clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("app.js", &request).status(), StatusCode::NOT_MODIFIED);
    }
}
