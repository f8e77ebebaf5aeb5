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
//! Architecture Invariant: every answer from here carries [`CONTENT_SECURITY_POLICY`]. Scripts,
//! styles and connections are limited to this origin, no inline script runs, and no other site
//! may frame the console. The token the console signs in with lives in the tab's
//! `sessionStorage`, never in a cookie.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The policy on every console answer: this origin only, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The path the console's files are served under (`index.html` is also served at `/`).
pub const ASSETS_PREFIX: &str = "/console/";

/// The console's routes: `GET /` (the page) and `GET /console/{*path}` (its files).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/console/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// One embedded file, with its type, an ETag from its hash (the browser revalidates each time
/// and gets a 304 for what it has) and the console's security headers.
fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        let message = format!("the console has no file `{path}`");
        let body = serde_json::json!({"ok": false, "error": "not_found", "message": message});
        return secured((StatusCode::NOT_FOUND, axum::Json(body)).into_response());
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { file.data.into_owned().into_response() };
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    if let Ok(etag) = HeaderValue::from_str(&etag) {
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

    #[test]
    fn a_known_etag_answers_304() {
        let first = serve("app.js", &HeaderMap::new());
        let etag = first.headers().get(header::ETAG).expect("an etag").clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("app.js", &request).status(), StatusCode::NOT_MODIFIED);
    }
}
