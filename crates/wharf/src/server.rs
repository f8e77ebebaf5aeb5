//! Assembling and running Wharf: bind, open the store, migrate, start the engine's node (which
//! bootstraps an empty store and runs every worker), serve HTTP, shut down gracefully. Tests
//! start the same [`Server`] in-process on port 0.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wharf_api::AppState;
use wharf_api::state::Services;
use wharf_core::crypto::MasterKey;
use wharf_engine::node::Stopped;
use wharf_engine::tenancy::Credentials;
use wharf_engine::{Node, NodeConfig};
use wharf_ids::Fresh;
use wharf_store::{ServingLock, Store, StoreOptions};

use crate::config::Settings;

/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the store the settings name (creating the data directory for SQLite).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let options = StoreOptions { max_connections: settings.database_pool_size, ..StoreOptions::default() };
    match &settings.database_url {
        // The store's error names the host, the port and the cause (`Error::Connect`): a
        // context of our own would only say it again.
        Some(url) => Ok(Store::open(url, &options).await?),
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

/// What a start does between opening the store and starting the node: on SQLite, becomes the
/// database's one server (before migrating: a second server must not migrate the database
/// under the first), migrates, takes back at once the work a stopped server left leased (after
/// a crash, mapping, deliveries and runs go on without waiting for the leases to end), and
/// reads the master key.
async fn prepare(store: &Store, settings: &Settings) -> anyhow::Result<(Option<ServingLock>, MasterKey)> {
    let serving = store.serve_alone()?;
    store.migrate().await.context("cannot migrate the database")?;
    if let Some(alone) = &serving {
        let taken =
            store.take_back_leases(alone, wharf_engine::now()).await.context("cannot release the stopped server's leases")?;
        if !taken.is_empty() {
            tracing::warn!(
                webhooks = taken.webhooks,
                deliveries = taken.deliveries,
                run_requests = taken.run_requests,
                node_runs = taken.node_runs,
                "the last server of this database stopped with work in hand: it is due again now (a send that was in flight may arrive twice)"
            );
        }
    }
    Ok((serving, master_key(settings)?))
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
        .with_context(|| format!("cannot open the SQLite database {} for writing", path.display()))?;
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
    node: Node,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Credentials created by this start (first start on an empty store), if any.
    pub bootstrap: Option<Credentials>,
    /// SQLite: this process is the database's one server until the node has stopped.
    serving: Option<ServingLock>,
}

impl Server {
    /// Binds, opens and migrates the store, starts the node (which bootstraps an empty store)
    /// and starts serving.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        // First: the engine registers its metric handles as it starts, and a handle taken
        // before the recorder is installed records nothing.
        let metrics = wharf_api::metrics_handle();
        // Bound first: a port taken stops the start before anything is created (the store, the
        // master key, the first organization and the credentials printed once), and the node's
        // delivery client refuses to deliver to this address.
        let listener =
            TcpListener::bind(settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let store = open_store(settings).await?;
        let (serving, master) = match prepare(&store, settings).await {
            Ok(prepared) => prepared,
            Err(err) => {
                store.close().await;
                return Err(err);
            }
        };
        let config = NodeConfig {
            ingest: settings.ingest.clone(),
            delivery: settings.delivery.clone(),
            public_url: settings.public_url_at(addr),
            listen: addr,
            allow_self_delivery: settings.edge.allow_self_delivery,
            port_api_alias: settings.edge.port_api_alias,
            master,
            bootstrap: settings.bootstrap_client.clone(),
        };
        let node = match Node::start(store.clone(), config).await {
            Ok(node) => node,
            Err(err) => {
                store.close().await;
                return Err(err.into());
            }
        };
        let bootstrap = node.bootstrap().cloned();
        if let Some(credentials) = &bootstrap {
            let doc = serde_json::json!({
                "organizationId": credentials.organization_id,
                "clientId": credentials.client_id,
                "clientSecret": credentials.client_secret,
                "url": settings.public_url_at(addr),
            });
            if let Err(err) = write_private(&settings.data_dir.join("credentials.json"), &format!("{doc:#}\n")) {
                let _ = node.shutdown().await;
                return Err(err);
            }
        }
        let state = AppState::new(Services {
            catalog: node.catalog().clone(),
            tenancy: node.tenancy().clone(),
            webhooks: node.webhooks().clone(),
            ingestor: node.ingestor().clone(),
            projects: node.projects().clone(),
            secrets: node.secrets().clone(),
            actions: node.actions(),
            runs: node.runs().clone(),
            workflows: node.workflows().clone(),
            metrics,
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = wharf_api::app(state);
        let limits = settings.edge.connections;
        let task = tokio::spawn(crate::connections::serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        Ok(Self { addr, node, shutdown: Some(shutdown), task, bootstrap, serving })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's services and workers (tests reach what a clock drives through it).
    pub fn node(&self) -> &wharf_engine::Node {
        &self.node
    }

    /// Stops accepting, lets requests in flight finish (bounded), stops the node's workers in
    /// their order (`wharf_engine::node`) and closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown().await.map(drop)
    }

    /// [`Server::stop`], telling how the node's shutdown went.
    pub async fn shutdown(mut self) -> anyhow::Result<Stopped> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Agents' long polls answer now rather than hold the requests in flight.
        self.node.runs().end_waiting_claims();
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(result) => result.context("the server task failed").and_then(|r| r.context("the server failed")),
            Err(_) => {
                tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
                self.task.abort();
                Ok(())
            }
        };
        // The workers stop even when serving failed, so the store closes after them.
        let stopped = self.node.shutdown().await;
        // Another server may start once nothing of this one writes.
        drop(self.serving.take());
        served.map(|()| stopped)
    }
}
