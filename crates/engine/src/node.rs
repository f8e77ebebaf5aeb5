//! A node: the engine's services and every worker that runs beside them, built, started and
//! stopped in one place. The binary reads its configuration, opens the store, binds, builds a
//! [`Node`], serves HTTP with its services, and calls [`Node::shutdown`].
//!
//! Every worker has one shape: an `async fn` that takes the [`CancellationToken`] of its
//! [`Stage`] and returns when it fires (at once, or between two units of work it never leaves
//! half done), spawned with [`Stage::spawn`], which tracks it. A worker that consumes a queue
//! closes it when stopped and finishes what was already in it (`next_batch`). So adding a
//! worker is one `stage.spawn(|stop| worker.run(stop))` line in [`Node::start`], in the stage
//! whose place in the shutdown order it needs.
//!
//! Architecture Invariant: a node stops in this order, each stage's tasks all ended (or its
//! grace spent, with a warning) before the next stage is told to stop, and the store closes
//! last:
//! 1. the binary stops accepting HTTP and lets requests in flight finish (its own grace);
//! 2. [`Node::shutdown`] stops the intake: the ingest committers commit what was queued, the
//!    mappers finish the batch in hand (its transaction commits or rolls back whole), the
//!    router its batch, the automation worker its batch, the publisher commits what was
//!    queued, the dispatcher and the invoker stop claiming;
//!    webhook upkeep, revocation refresh and the queue gauges stop;
//! 3. the dispatcher sends what the publisher handed over before it stopped;
//! 4. the sends in flight finish, each bounded by the delivery timeout;
//! 5. their attempts are written: the attempt writers (deliveries', run requests') close their queues
//!    and write what is in them;
//! 6. the store closes.
//!
//! Nothing depends on the order in which things start: every queue's receiving end is given,
//! when the node is built, to the one worker that runs it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};
use wharf_core::crypto::MasterKey;
use wharf_store::Store;

use crate::Actions;
use crate::automations::Automations;
use crate::delivery::client::OwnAddresses;
use crate::delivery::{DeliverySettings, Dispatcher, Handoff, HttpClient, Publisher, router};
use crate::org_cache::OrgCache;
use crate::runs::{Invoker, Runs, SelfCalls};
use crate::secrets::Secrets;
use crate::tenancy::{Credentials, Tenancy};
use crate::webhooks::{AcceptLoad, Arrivals, IngestSettings, Ingestor, Mapper, Webhooks};
use crate::workflows::Workflows;
use crate::workflows::schedules::Schedules;
use crate::workflows::stepper::Stepper;
use crate::{Catalog, Projects};
use wharf_core::action::Action;

/// How long the intake workers have to finish the batch in hand.
const INTAKE_GRACE: Duration = Duration::from_secs(10);
/// How long the dispatcher has to start sending what was handed to it.
const HANDING_GRACE: Duration = Duration::from_secs(1);
/// How often the schedule worker looks for due ticks (cron's unit is the minute).
const SCHEDULE_POLL: Duration = Duration::from_secs(1);
/// How long the attempt writer has to write the attempts of the sends that finished.
const RECORDING_GRACE: Duration = Duration::from_secs(5);

/// What a node needs besides its store.
#[derive(Clone)]
pub struct NodeConfig {
    pub ingest: IngestSettings,
    pub delivery: DeliverySettings,
    /// The base of every ingest URL handed out (and an address deliveries refuse).
    pub public_url: String,
    /// The address the server listens on, after binding (deliveries refuse it).
    pub listen: SocketAddr,
    /// `--allow-self-delivery`: deliver to Wharf's own addresses like any other.
    pub allow_self_delivery: bool,
    /// `--port-api-alias`: a run's request to Port's API hosts is served by Wharf itself, as
    /// one to `public_url` always is.
    pub port_api_alias: bool,
    pub master: MasterKey,
    /// On an empty store, the first organization's admin client id and secret (random when
    /// `None`).
    pub bootstrap: Option<(String, String)>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the outbound HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot load the webhooks")]
    Webhooks(#[source] crate::Error),
    #[error("cannot read the API clients")]
    Clients(#[source] crate::Error),
    #[error("cannot seal the webhooks' stored headers")]
    SealHeaders(#[source] crate::Error),
    #[error("cannot create the first organization")]
    Bootstrap(#[source] crate::Error),
}

/// A running node: its services, and the workers it stops on [`Node::shutdown`].
pub struct Node {
    store: Store,
    catalog: Catalog,
    tenancy: Tenancy,
    webhooks: Webhooks,
    ingestor: Ingestor,
    projects: Projects,
    secrets: Secrets,
    runs: Runs,
    workflows: Workflows,
    /// Each organization's actions, kept for a moment; shared by `Actions` (which forgets on
    /// save) and the runs.
    actions: OrgCache<Vec<Action>>,
    bootstrap: Option<Credentials>,
    stages: Stages,
    /// How long the sends in flight are waited for: the delivery timeout and a second.
    send_grace: Duration,
}

impl Node {
    /// Builds the services over a migrated store and starts every worker. Every step that can
    /// fail runs before the bootstrap, so the credentials a start creates are returned
    /// ([`Node::bootstrap`]) and not lost to a later failure.
    pub async fn start(store: Store, config: NodeConfig) -> Result<Self, StartError> {
        let NodeConfig { ingest, delivery, public_url, listen, allow_self_delivery, port_api_alias, master, bootstrap } = config;
        let own = OwnAddresses { public_url: Some(public_url.clone()), listen: Some(listen), allow_self_delivery };
        let client = HttpClient::new(delivery.network.clone(), own).map_err(StartError::Client)?;
        let (catalog, entity_committer) = Catalog::new(store.clone());
        let webhooks = Webhooks::load(store.clone(), catalog.clone(), master.clone(), &public_url, ingest.clone())
            .await
            .map_err(StartError::Webhooks)?;
        let tenancy = Tenancy::new(store.clone(), master.clone());
        tenancy.refresh_revocations().await.map_err(StartError::Clients)?;
        let send_grace = delivery.timeout + Duration::from_secs(1);
        let stages = Stages::default();
        let Stages { intake, handing, sends, recording } = &stages;
        let committers = store.committers();
        let wake = Arc::new(Notify::new());
        let (handoff, handed, attempts) = Handoff::new(&delivery);
        let (publisher, publish_committer) = Publisher::new(store.clone(), wake.clone(), handoff.clone());
        let projects = Projects::new(store.clone(), master.clone(), publisher, wake.clone())
            .with_subscriptions_per_org(delivery.subscriptions_per_org);
        let sealed = projects.seal_stored_headers().await.map_err(StartError::SealHeaders)?;
        if sealed > 0 {
            tracing::info!(webhooks = sealed, "sealed webhook header values stored in clear by an earlier version");
        }
        let secrets = Secrets::new(store.clone(), master.clone());
        let bootstrap = tenancy.bootstrap(bootstrap).await.map_err(StartError::Bootstrap)?;

        // Intake: everything that takes new work.
        let (arrivals, load) = (Arrivals::default(), AcceptLoad::default());
        let (ingestor, ingest_committer) = Ingestor::new(
            store.clone(),
            webhooks.index().clone(),
            master.clone(),
            ingest.clone(),
            arrivals.clone(),
            load.clone(),
        );
        for _ in 0..committers {
            intake.spawn(|stop| ingest_committer.clone().run(stop));
            intake.spawn(|stop| entity_committer.clone().run(stop));
        }
        Mapper::new(store.clone(), catalog.clone(), webhooks.index().clone(), arrivals, load)
            .start(ingest.mapper_workers, intake);
        intake.spawn(|stop| webhooks.clone().run_upkeep(stop));
        intake.spawn(|stop| tenancy.clone().run_revocation_refresh(stop));
        intake.spawn(|stop| router::run(store.clone(), wake.clone(), delivery.poll_interval, stop));
        // Runs: the run committers write new runs and the log committers log lines; the
        // automation worker reads the outbox and starts runs; the invoker sends their requests
        // (on `sends`) and its recorder writes their attempts (on `recording`).
        let runs_wake = Arc::new(Notify::new());
        let actions = OrgCache::default();
        let (runs, run_committer, log_committer) =
            Runs::new(store.clone(), secrets.clone(), actions.clone(), master.clone(), runs_wake.clone());
        for _ in 0..committers {
            intake.spawn(|stop| run_committer.clone().run(stop));
            intake.spawn(|stop| log_committer.clone().run(stop));
        }
        // Workflows: the automation worker also starts event-triggered runs, the schedule
        // worker the scheduled ones; the stepper runs their nodes (on `sends`).
        let (workflows, handed_node_runs, step_committer) =
            Workflows::new(store.clone(), secrets.clone(), master.clone(), delivery.lease(), runs.agent_waiters());
        let automations =
            Automations::new(store.clone(), runs.clone(), workflows.clone(), runs_wake.clone(), delivery.poll_interval);
        intake.spawn(|stop| automations.run(stop));
        let self_calls = SelfCalls::new(tenancy.clone(), client.clone(), public_url.clone(), port_api_alias);
        let stepper =
            Stepper::new(store.clone(), workflows.clone(), client.clone(), self_calls.clone(), &delivery, sends.clone());
        intake.spawn(|stop| stepper.run(handed_node_runs, stop));
        // The steps' committers write what the stepper's sends end with: they stop after them.
        for _ in 0..committers {
            recording.spawn(|stop| step_committer.clone().run(stop));
        }
        let schedules = Schedules::new(store.clone(), workflows.clone(), SCHEDULE_POLL);
        intake.spawn(|stop| schedules.run(stop));
        let (invoker, run_attempts) =
            Invoker::new(store.clone(), client.clone(), delivery.clone(), master.clone(), runs_wake, sends.clone(), self_calls);
        intake.spawn(|stop| invoker.claim(stop));
        recording.spawn(|stop| run_attempts.run(stop));
        let dispatcher = Dispatcher::new(store.clone(), client, delivery, master, wake, handoff, sends.clone());
        intake.spawn(|stop| dispatcher.clone().claim(stop));
        intake.spawn(|stop| dispatcher.clone().gauge(stop));
        // Then: what the publisher handed over; the sends (tracked by the dispatcher on
        // `sends`); and the attempts, written by exactly one task, chosen here.
        handing.spawn(|stop| dispatcher.send_handed(handed, stop));
        if committers == 1 {
            // One committer (SQLite's single writer): it writes the finished attempts in the
            // transactions of new events (one commit carries both), so it publishes during the
            // intake and writes attempts until the recording stops.
            let publishing = intake.part();
            recording.spawn(|stop| publish_committer.run_with_attempts(publishing, attempts, stop));
        } else {
            for _ in 0..committers {
                intake.spawn(|stop| publish_committer.clone().run(stop));
            }
            recording.spawn(|stop| attempts.write(store.clone(), stop));
        }
        Ok(Self {
            store,
            catalog,
            tenancy,
            webhooks,
            ingestor,
            projects,
            secrets,
            runs,
            workflows,
            actions,
            bootstrap,
            stages,
            send_grace,
        })
    }

    /// The credentials this start created (first start on an empty store), if any.
    pub fn bootstrap(&self) -> Option<&Credentials> {
        self.bootstrap.as_ref()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    pub fn projects(&self) -> &Projects {
        &self.projects
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    pub fn runs(&self) -> &Runs {
        &self.runs
    }

    pub fn workflows(&self) -> &Workflows {
        &self.workflows
    }

    /// The schedule worker's work, for a caller with its own clock (tests: ticks fired at a
    /// chosen time, not after sleeps).
    pub fn schedules(&self) -> Schedules {
        Schedules::new(self.store.clone(), self.workflows.clone(), SCHEDULE_POLL)
    }

    /// The actions service (stateless over the store: built on demand).
    pub fn actions(&self) -> Actions {
        Actions::new(self.store.clone(), self.actions.clone())
    }

    /// Stops every worker in the order of the module's invariant, then closes the store. Call
    /// it once HTTP has stopped. Sends in flight are given the delivery timeout and a second.
    pub async fn shutdown(self) -> Stopped {
        let unfinished = self.stages.stop(self.send_grace).await;
        self.store.close().await;
        Stopped { unfinished }
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Stopped {
    /// Tasks still running when their stage's grace ran out (each was warned about); 0 after
    /// a clean stop.
    pub unfinished: usize,
}

/// One step of the shutdown order: a stop token its workers share, and the tracker that
/// knows when they have all ended. Cheap to clone.
#[derive(Clone, Default)]
pub struct Stage {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Stage {
    /// Runs a worker in this stage: it gets the stage's stop token, and the stage ends when it
    /// has returned.
    pub fn spawn<F>(&self, worker: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(worker(self.stop.clone()));
    }

    /// Runs a task that this stage waits for but does not stop (a send: its timeout bounds it).
    pub fn track<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// A part in this stage for a worker that runs in a later one: the holder stops that part
    /// when [`Part::stop`] fires and then drops it, and this stage ends only after that.
    pub fn part(&self) -> Part {
        Part { stop: self.stop.clone(), _held: self.tasks.token() }
    }

    /// Tells the stage's workers to stop and waits (at most `grace`) until they have; how many
    /// were still running then.
    async fn stop(&self, name: &str, grace: Duration) -> usize {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            let running = self.tasks.len();
            tracing::warn!(stage = name, tasks = running, "tasks still running after {grace:?}; stopping anyway");
            return running;
        }
        0
    }
}

/// A worker's part in an earlier stage than its own (see [`Stage::part`]).
pub struct Part {
    stop: CancellationToken,
    _held: TaskTrackerToken,
}

impl Part {
    /// Fires when the stage of this part stops.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }
}

/// The stages of a node, in their shutdown order.
#[derive(Default)]
struct Stages {
    /// Ingest and publish committers, mappers, router, claiming, upkeep, refresh, gauges.
    intake: Stage,
    /// The dispatcher's sends of what the publisher handed over.
    handing: Stage,
    /// Every send in flight; never stopped, only waited for.
    sends: Stage,
    /// The attempt writer.
    recording: Stage,
}

impl Stages {
    /// Stops the stages in order; how many tasks were still running when a grace ran out.
    async fn stop(&self, send_grace: Duration) -> usize {
        self.intake.stop("intake", INTAKE_GRACE).await
            + self.handing.stop("handing", HANDING_GRACE).await
            + self.sends.stop("sends", send_grace).await
            + self.recording.stop("recording", RECORDING_GRACE).await
    }
}

/// The next batch of up to `limit` items of a worker's queue. Once `stop` fires, the queue is
/// closed (senders are refused from then on) and what was in it is still returned; 0 means
/// the queue is closed and empty, and the worker should return. Cancel safe.
pub(crate) async fn next_batch<T>(
    queue: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    limit: usize,
    stop: &CancellationToken,
) -> usize {
    tokio::select! {
        biased;
        () = stop.cancelled() => {
            queue.close();
            queue.recv_many(batch, limit).await
        }
        n = queue.recv_many(batch, limit) => n,
    }
}

/// The queue of a group committer: what requests submit, taken in batches by one worker or a
/// few taking turns. Cheap to clone.
pub(crate) struct Submissions<S>(Arc<tokio::sync::Mutex<mpsc::Receiver<S>>>);

impl<S> Clone for Submissions<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> Submissions<S> {
    /// A queue holding up to `capacity` submissions, and its sending side.
    pub(crate) fn channel(capacity: usize) -> (mpsc::Sender<S>, Self) {
        let (submit, submissions) = mpsc::channel(capacity);
        (submit, Self(Arc::new(tokio::sync::Mutex::new(submissions))))
    }

    /// Hands `commit` each batch of up to `limit` submissions, one at a time, until `stop`
    /// fires and those submitted by then are committed.
    pub(crate) async fn commit_batches<F: Future<Output = ()>>(
        &self,
        limit: usize,
        stop: &CancellationToken,
        mut commit: impl FnMut(Vec<S>) -> F,
    ) {
        let mut batch = Vec::with_capacity(limit);
        loop {
            let taken = next_batch(&mut *self.0.lock().await, &mut batch, limit, stop).await;
            if taken == 0 {
                return;
            }
            commit(std::mem::take(&mut batch)).await;
        }
    }
}

/// Submits to a group committer and waits for its answer: `Unavailable` naming `committer`
/// when it has stopped.
pub(crate) async fn submit<S, T>(
    queue: &mpsc::Sender<S>,
    committer: &str,
    submission: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> S,
) -> crate::Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let unavailable = || crate::Error::Unavailable(format!("the {committer} has stopped"));
    queue.send(submission(reply)).await.map_err(|_| unavailable())?;
    answer.await.map_err(|_| unavailable())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The order of the invariant: a send still in flight when the intake stops finishes, and
    /// its result, queued for the writer, is written before `stop` returns; every task ended.
    #[tokio::test]
    async fn stages_stop_in_order_and_every_task_ends() {
        let stages = Stages::default();
        let log = Arc::new(Mutex::new(Vec::<&str>::new()));
        let (results, mut queue) = mpsc::channel::<&'static str>(8);
        // An intake worker that finishes its batch after the stop.
        let intake_log = log.clone();
        stages.intake.spawn(|stop| async move {
            stop.cancelled().await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            intake_log.lock().unwrap().push("intake ended");
        });
        // A send in flight, queueing its result when it ends.
        let send_log = log.clone();
        stages.sends.track(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            send_log.lock().unwrap().push("sent");
            results.send("attempt").await.unwrap();
        });
        // The writer, which drains its queue once stopped.
        let writer_log = log.clone();
        stages.recording.spawn(|stop| async move {
            let mut batch = Vec::new();
            while next_batch(&mut queue, &mut batch, 16, &stop).await > 0 {
                writer_log.lock().unwrap().extend(batch.drain(..));
            }
            writer_log.lock().unwrap().push("writer ended");
        });
        assert_eq!(stages.stop(Duration::from_secs(5)).await, 0);
        assert_eq!(*log.lock().unwrap(), ["intake ended", "sent", "attempt", "writer ended"]);
        for stage in [&stages.intake, &stages.handing, &stages.sends, &stages.recording] {
            assert!(stage.tasks.is_empty());
        }
    }

    /// A part in an earlier stage holds that stage open until it is dropped.
    #[tokio::test]
    async fn a_part_holds_its_stage_until_dropped() {
        let stages = Stages::default();
        let part = stages.intake.part();
        let (dropped, mut seen) = mpsc::channel::<()>(1);
        stages.recording.spawn(|stop| async move {
            part.stop().cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            dropped.send(()).await.unwrap();
            drop(part);
            stop.cancelled().await;
        });
        assert_eq!(stages.intake.stop("intake", Duration::from_secs(5)).await, 0);
        assert!(seen.try_recv().is_ok(), "the intake ended before the part was dropped");
        assert_eq!(stages.recording.stop("recording", Duration::from_secs(5)).await, 0);
    }

    /// A stopped queue refuses new items but gives what it held.
    #[tokio::test]
    async fn a_stopped_queue_is_drained_then_closed() {
        let (sender, mut queue) = mpsc::channel(8);
        sender.send(1).await.unwrap();
        sender.send(2).await.unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let mut batch = Vec::new();
        assert_eq!(next_batch(&mut queue, &mut batch, 8, &stop).await, 2);
        assert!(sender.send(3).await.is_err(), "closed once stopped");
        assert_eq!(next_batch(&mut queue, &mut batch, 8, &stop).await, 0);
        assert_eq!(batch, [1, 2]);
    }
}
