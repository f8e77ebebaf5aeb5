//! Calls of Wharf's own API (issue 24 point 6, reference §3.2 "Trigger Port API"): a run's
//! WEBHOOK whose URL is Wharf's public URL, or Port's API while `--port-api-alias` is on
//! (SPEC §8), is served by Wharf itself: sent to the address this node listens on, at the
//! URL's path and query (so `run_as` stays in the query), as the organization's API client
//! (the first, whose secret signs its requests) with a fresh access token in
//! `Authorization`, in place of any the template set. Which URLs count is core's rule
//! ([`wharf_core::run::self_call_path`]); the send bypasses the guard against Wharf's own
//! addresses for this rewritten path only ([`HttpClient::send_to_self`]).
//!
//! The attempt is recorded like any other, and a synchronized run gets Wharf's answer.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use wharf_core::delivery::AttemptOutcome;
use wharf_core::run::self_call_path;

use crate::delivery::client::{HttpClient, Response};
use crate::tenancy::Tenancy;

/// Who calls Wharf's own API: the organization's first API client (`None`: it has none), as
/// which the call is made, and the run whose call it is (`X-Wharf-Run-Id`), if any.
#[derive(Debug, Clone, Copy)]
pub struct SelfCaller<'a> {
    pub client_id: Option<&'a str>,
    pub cause: Option<&'a str>,
}

/// What a node needs to call its own API. Cheap to clone.
#[derive(Clone)]
pub struct SelfCalls {
    tenancy: Tenancy,
    client: HttpClient,
    /// The public base URL (no trailing slash needed).
    public_url: String,
    /// `--port-api-alias`: Port's API hosts are Wharf too.
    port_api_alias: bool,
}

impl SelfCalls {
    pub fn new(tenancy: Tenancy, client: HttpClient, public_url: String, port_api_alias: bool) -> Self {
        Self { tenancy, client, public_url, port_api_alias }
    }

    /// The path and query to call on Wharf itself when `url` is its own API.
    pub fn path(&self, url: &str) -> Option<String> {
        self_call_path(url, &self.public_url, self.port_api_alias)
    }

    /// Sends the request to Wharf itself at `path`, authorized as the organization's API
    /// client; never fails: what goes wrong is the attempt's error.
    pub async fn send(
        &self,
        caller: SelfCaller<'_>,
        method: reqwest::Method,
        path: &str,
        mut headers: HeaderMap,
        body: Option<String>,
        timeout: Duration,
    ) -> Response {
        let failed = |error: String| Response::failed(AttemptOutcome::Network, error, Duration::ZERO);
        let SelfCaller { client_id, cause } = caller;
        let Some(client_id) = client_id else {
            return failed("Wharf's own API cannot be called: the organization has no API client".to_owned());
        };
        let token = match self.tenancy.token_for_client(client_id).await {
            Ok(token) => token,
            Err(err) => return failed(format!("Wharf's own API cannot be called: no access token for the client: {err}")),
        };
        let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
            return failed("Wharf's own API cannot be called: the access token is not a header value".to_owned());
        };
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
        // What the call does continues this run's chain (its chain depth, its audit link).
        if let Some(Ok(run)) = cause.map(HeaderValue::from_str) {
            headers.insert(wharf_core::run::CAUSING_RUN_HEADER, run);
        }
        self.client.send_to_self(method, path, headers, body, timeout).await
    }
}
