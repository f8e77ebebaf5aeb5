//! What every handler can reach.

use metrics_exporter_prometheus::PrometheusHandle;
use wharf_engine::tenancy::Tenancy;
use wharf_engine::webhooks::{Ingestor, Webhooks};
use wharf_engine::{Catalog, Projects};
use wharf_store::Store;

/// Shared application state: the services, the store (for readiness) and the metrics handle.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub tenancy: Tenancy,
    pub webhooks: Webhooks,
    pub ingestor: Ingestor,
    pub projects: Projects,
    pub store: Store,
    pub metrics: PrometheusHandle,
}
