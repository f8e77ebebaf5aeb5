//! Wharf's HTTP API: Port-compatible routes over the engine, with auth, Port-shaped errors,
//! metrics and a generated OpenAPI document.

mod app;
pub mod docs;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;
mod telemetry;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::app::App;
use crate::error::ApiError;
pub use crate::state::AppState;
pub use crate::telemetry::metrics_handle;

/// The default limit on API request bodies (Port: "The body of all requests is limited to 1 MiB").
pub const API_BODY_LIMIT: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Wharf", description = "Self-hosted webhook engine with Port-compatible APIs."),
    modifiers(&BearerAuth),
    tags(
        (name = "Authentication"), (name = "Organization"), (name = "Blueprints"), (name = "Entities"),
        (name = "Audit log"), (name = "Webhooks"), (name = "Ingest"), (name = "Projects"),
        (name = "Project webhooks"), (name = "Secrets"), (name = "Operations"),
        (name = "Actions"), (name = "Action runs"), (name = "Agents"),
        (name = "Workflows"), (name = "Workflow runs")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Every route and its documentation, from the same handler list.
fn routes() -> OpenApiRouter<AppState> {
    use routes::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::access_token))
        .routes(routes!(auth::organization, auth::patch_organization))
        .routes(routes!(blueprints::create, blueprints::list))
        .routes(routes!(blueprints::get, blueprints::replace, blueprints::patch, blueprints::delete))
        .routes(routes!(entities::create, entities::list))
        .routes(routes!(entities::bulk))
        .routes(routes!(entities::get, entities::patch, entities::replace, entities::delete))
        .routes(routes!(entities::search_blueprint))
        .routes(routes!(entities::search))
        .routes(routes!(audit::list))
        .routes(routes!(parked::list_parked))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::metadata))
        .routes(routes!(webhooks::get, webhooks::replace, webhooks::patch, webhooks::delete))
        .routes(routes!(webhooks::events))
        .routes(routes!(webhooks::event))
        .routes(routes!(webhooks::replay_event))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::test))
        .routes(routes!(ingest::post, ingest::put))
        .routes(routes!(actions::create, actions::list))
        .routes(routes!(actions::get, actions::replace, actions::delete))
        .routes(routes!(runs::start))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get, runs::patch))
        .routes(routes!(runs::respond))
        .routes(routes!(runs::approval))
        .routes(routes!(runs::add_log, runs::logs))
        .routes(routes!(runs::attempts))
        .routes(routes!(agents::claim))
        .routes(routes!(agents::ack))
        .routes(routes!(agents::claim_node_runs))
        .routes(routes!(agents::ack_node_run))
        .routes(routes!(workflows::create, workflows::list))
        .routes(routes!(workflows::get, workflows::replace, workflows::delete))
        .routes(routes!(workflows::start))
        .routes(routes!(workflows::runs))
        .routes(routes!(workflows::run))
        .routes(routes!(workflows::node_run, workflows::patch_node_run))
        .routes(routes!(workflows::patch_node_run_older))
        .routes(routes!(workflows::add_node_logs))
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(projects::get, projects::patch, projects::delete))
        .routes(routes!(projects::publish))
        .routes(routes!(subscriptions::create, subscriptions::list))
        .routes(routes!(subscriptions::get, subscriptions::patch, subscriptions::delete))
        .routes(routes!(subscriptions::secret))
        .routes(routes!(subscriptions::rotate))
        .routes(routes!(subscriptions::deliveries))
        .routes(routes!(subscriptions::delivery))
        .routes(routes!(subscriptions::attempts))
        .routes(routes!(subscriptions::resend))
        .routes(routes!(subscriptions::recover))
        .routes(routes!(secrets::create, secrets::list))
        .routes(routes!(secrets::get, secrets::patch, secrets::delete))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
}

/// The OpenAPI document of every route (served at `/openapi.json`): what utoipa generates
/// from the handlers' attributes, completed by [`docs::complete`].
pub fn openapi() -> serde_json::Value {
    let generated = routes().split_for_parts().1;
    // utoipa's document is a tree of plain data, which always serializes.
    docs::complete(serde_json::to_value(generated).expect("the OpenAPI document serializes"))
}

/// The request id header: kept from the request, else made; on every response.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application: the router and its layers, and the ingest lane beside them
/// (see `app.rs`).
pub fn app(state: AppState) -> App {
    let (router, _) = routes().split_for_parts();
    let router = router
        .merge(wharf_console::router())
        .fallback(not_found)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(middleware::from_fn(port_errors))
        .layer(middleware::from_fn(telemetry::record_request))
        .layer(CatchPanicLayer::custom(app::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let no_id = HeaderValue::from_static("-");
            request_span(req.method(), req.uri().path(), req.headers().get(REQUEST_ID).unwrap_or(&no_id))
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId));
    App::new(state, router)
}

/// The span every request runs in.
fn request_span(method: &Method, path: &str, request_id: &HeaderValue) -> tracing::Span {
    let id = request_id.to_str().unwrap_or("-");
    tracing::info_span!("request", method = %method, path = %path, request_id = %id)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {} {}", req.method(), req.uri().path()))
}

/// axum answers some failures itself with a bare body (405 for a wrong method, a plain-text
/// 400 for a path parameter that is not UTF-8 once decoded); give them Port's error shape, as
/// the OpenAPI document says every error answer has.
async fn port_errors(req: Request, next: Next) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let response = next.run(req).await;
    let plain_text =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    if response.status() == StatusCode::BAD_REQUEST && plain_text {
        // axum's rejection texts are one short line; a longer body is cut, not refused.
        let text = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
        let message = format!("{}: {}", uri.path(), String::from_utf8_lossy(&text));
        return ApiError::bad_request("invalid_path", message).into_response();
    }
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::CONTENT_TYPE) {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut replaced = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} does not accept {method}", uri.path()),
        )
        .into_response();
        if let Some(allow) = allow {
            replaced.headers_mut().insert(header::ALLOW, allow);
        }
        return replaced;
    }
    response
}

/// Request ids: a random prefix per process and a counter, so ids are unique across nodes and
/// restarts without a call to the OS random source per request.
#[derive(Clone)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// A new request id: the process's random prefix and the next number.
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| wharf_ids::random_base62(12));
    let id = format!("{prefix}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed));
    // Base62 and hex digits are visible ASCII, all a header value needs.
    HeaderValue::from_str(&id).expect("base62 and hex digits make a valid header value")
}
