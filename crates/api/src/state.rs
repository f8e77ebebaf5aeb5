//! What every handler can reach.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use wharf_engine::Actions;
use wharf_engine::Runs;
use wharf_engine::Secrets;
use wharf_engine::Workflows;
use wharf_engine::tenancy::Tenancy;
use wharf_engine::webhooks::{Ingestor, Webhooks};
use wharf_engine::{Catalog, Projects};

/// The services and the metrics handle.
pub struct Services {
    pub catalog: Catalog,
    pub tenancy: Tenancy,
    pub webhooks: Webhooks,
    pub ingestor: Ingestor,
    pub projects: Projects,
    pub secrets: Secrets,
    pub actions: Actions,
    pub runs: Runs,
    pub workflows: Workflows,
    pub metrics: PrometheusHandle,
}

/// Shared application state. Extractors clone it for every request, so it is one `Arc`
/// rather than a dozen (each clone of the services would touch every shared counter).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}
