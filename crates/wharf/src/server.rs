//! Assembling and running Wharf: open the store, migrate, bootstrap, serve HTTP, shut down
//! gracefully. Tests start the same [`Server`] in-process on port 0.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;

use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use wharf_api::AppState;
use wharf_api::state::Services;
use wharf_core::crypto::MasterKey;
use wharf_engine::delivery::client::OwnAddresses;
use wharf_engine::delivery::{Dispatcher, Handoff, HttpClient, Publisher, router};
use wharf_engine::tenancy::{Credentials, Tenancy};
use wharf_engine::webhooks::{AcceptLoad, Arrivals, Ingestor, Mapper, Webhooks};
use wharf_engine::{Catalog, Projects};
use wharf_store::{Store, StoreOptions};

use crate::config::Settings;

/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the store the settings name (creating the data directory for SQLite).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let options = StoreOptions::default();
    match &settings.database_url {
        Some(url) => Store::open(url, &options).await.context("cannot connect to the database"),
        None => {
            create_private_dir(&settings.data_dir)?;
            let path = settings.data_dir.join("wharf.db");
            private_database_files(&path)?;
            Store::open_sqlite(&path, &options)
                .await
                .with_context(|| format!("cannot open the SQLite database {}", path.display()))
        }
    }
}

/// The master key: from the settings, else the data directory's key file (created on first
/// use, mode 0600).
pub fn master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    if let Some(hex) = &settings.master_key {
        return MasterKey::from_hex(hex).context("WHARF_MASTER_KEY is invalid");
    }
    if settings.database_url.is_some() {
        tracing::warn!(
            "WHARF_MASTER_KEY is not set: this node keeps its own key file, so nodes sharing this PostgreSQL \
             cannot read each other's tokens and secrets; set the same WHARF_MASTER_KEY on every node"
        );
    }
    let path = settings.data_dir.join("master.key");
    if path.exists() {
        // A key file of an earlier version may be readable by others.
        make_private(&path)?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return MasterKey::from_hex(&text).with_context(|| format!("{} is not a master key", path.display()));
    }
    create_private_dir(&settings.data_dir)?;
    let key = MasterKey::generate();
    write_private(&path, &key.to_hex())?;
    Ok(key)
}

/// Creates the data directory (and its missing parents) with mode 0700. A directory that
/// already exists keeps its mode: it may be one the operator chose and shares (`.`), so a
/// loose one is only warned about.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Ok(meta) = std::fs::metadata(dir) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "the data directory can be read by other users; Wharf creates its files 0600, but `chmod 700` it"
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Makes the SQLite database only its owner's: the file is created 0600 before SQLite opens
/// it (SQLite gives its `-wal` and `-shm` files the database file's mode), and files of an
/// older start that are readable by others are narrowed to 0600.
fn private_database_files(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the SQLite database {}", path.display()))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            make_private(&file)?;
        }
    }
    Ok(())
}

/// Sets a file's mode to 0600 unless it is already.
fn make_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o777 != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (0600)", path.display()))?;
    }
    Ok(())
}

/// Writes a file only its owner can read (secrets: the master key, first-start credentials);
/// a file that existed keeps no looser mode.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    make_private(path)?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// A running Wharf.
pub struct Server {
    addr: SocketAddr,
    store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Credentials created by this start (first start on an empty store), if any.
    pub bootstrap: Option<Credentials>,
    /// Tells the background workers (mapper, upkeep) to stop.
    stop_workers: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens and migrates the store, bootstraps an empty one, binds and starts serving.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        // First: the engine registers its metric handles as it starts, and a handle taken
        // before the recorder is installed records nothing.
        let metrics = wharf_api::metrics_handle();
        let store = open_store(settings).await?;
        store.migrate().await.context("cannot migrate the database")?;
        let master = master_key(settings)?;
        let tenancy = Tenancy::new(store.clone(), master.clone());
        let bootstrap =
            tenancy.bootstrap(settings.bootstrap_client.clone()).await.context("cannot create the first organization")?;
        if let Some(credentials) = &bootstrap {
            let doc = serde_json::json!({
                "organizationId": credentials.organization_id,
                "clientId": credentials.client_id,
                "clientSecret": credentials.client_secret,
                "url": settings.public_url(),
            });
            write_private(&settings.data_dir.join("credentials.json"), &format!("{doc:#}\n"))?;
        }
        // Bound before the delivery client is built: it refuses to deliver to this address.
        let listener =
            TcpListener::bind(settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let catalog = Catalog::new(store.clone());
        let ingest = settings.ingest.clone();
        let webhooks = Webhooks::load(store.clone(), catalog.clone(), master.clone(), &settings.public_url(), ingest.clone())
            .await
            .context("cannot load the webhooks")?;
        let (stop_workers, workers_stop) = watch::channel(false);
        let arrivals = Arrivals::default();
        // SQLite has one writer, so one committer makes the biggest batches; PostgreSQL
        // commits in parallel.
        let committers = store.committers();
        let load = AcceptLoad::default();
        let ingestor =
            Ingestor::start(store.clone(), webhooks.index().clone(), ingest.clone(), committers, arrivals.clone(), load.clone());
        let mut workers = Mapper::new(store.clone(), catalog.clone(), webhooks.index().clone(), arrivals, load)
            .start(ingest.mapper_workers, workers_stop.clone());
        workers.push(tokio::spawn(webhooks.clone().run_upkeep(workers_stop.clone())));
        tenancy.refresh_revocations().await.context("cannot read the API clients")?;
        workers.push(tokio::spawn(tenancy.clone().run_revocation_refresh(workers_stop.clone())));
        let delivery = settings.delivery.clone();
        let wake = Arc::new(Notify::new());
        let handoff = Handoff::new(&delivery);
        let publisher = Publisher::start(store.clone(), committers, wake.clone(), handoff.clone());
        let projects = Projects::new(store.clone(), master.clone(), publisher, wake.clone())
            .with_subscriptions_per_org(delivery.subscriptions_per_org);
        let sealed = projects.seal_stored_headers().await.context("cannot seal the webhooks' stored headers")?;
        if sealed > 0 {
            tracing::info!(webhooks = sealed, "sealed webhook header values stored in clear by an earlier version");
        }
        let own = OwnAddresses {
            public_url: Some(settings.public_url()),
            listen: Some(addr),
            allow_self_delivery: settings.edge.allow_self_delivery,
        };
        let client = HttpClient::new(delivery.network.clone(), own).context("cannot build the outbound HTTP client")?;
        workers.push(tokio::spawn(router::run(store.clone(), wake.clone(), delivery.poll_interval, workers_stop.clone())));
        workers.extend(Dispatcher::new(store.clone(), client, delivery, master.clone(), wake, handoff).start(workers_stop));
        let state = AppState::new(Services { catalog, tenancy, webhooks, ingestor, projects, metrics });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = wharf_api::app(state);
        let limits = settings.edge.connections;
        let task = tokio::spawn(crate::connections::serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        Ok(Self { addr, store, shutdown: Some(shutdown), task, bootstrap, stop_workers, workers })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (bounded), and closes the store.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(result) => result.context("the server task failed")?.context("the server failed")?,
            Err(_) => {
                tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
                self.task.abort();
            }
        }
        // Workers finish the batch in hand (its transaction commits or rolls back whole).
        let _ = self.stop_workers.send(true);
        for worker in self.workers.drain(..) {
            if tokio::time::timeout(SHUTDOWN_GRACE, worker).await.is_err() {
                tracing::warn!("a mapping worker did not stop in {SHUTDOWN_GRACE:?}");
            }
        }
        self.store.close().await;
        Ok(())
    }
}
