//! What the publisher and the dispatcher of one node share: in-flight slots, the deliveries
//! the publisher hands over, and the finished attempts on their way to the store.
//!
//! [`Handoff::new`] makes both queues and returns their receiving ends, which the node gives
//! to the worker that runs each: [`HandedDeliveries`] to the dispatcher, [`FinishedAttempts`]
//! to the one task that writes attempts (the dispatcher's attempt writer, or, on SQLite, the
//! publisher's committer, which then writes attempts and new events in one transaction: one
//! commit, one fsync, on the single writer).
//!
//! Architecture Invariant: every queue has exactly one receiving end, owned from the start
//! by the worker that runs it; nothing is taken at run time, so no worker's part depends on
//! which task started first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use wharf_core::delivery::{AttemptBatch, ClaimedDelivery, Transition};
use wharf_core::time::Timestamp;
use wharf_store::Store;

use super::DeliverySettings;
use crate::node::next_batch;

/// Attempts one transaction writes at most.
const RECORD_BATCH: usize = 512;

/// One finished attempt on its way to the store: the core's transition of its delivery.
pub type Finished = Transition;

/// A delivery the publisher committed already claimed by this node, with its in-flight slot.
pub type Handed = (ClaimedDelivery, OwnedSemaphorePermit);

/// The short way for deliveries this node publishes: the publisher reserves in-flight slots,
/// inserts the deliveries already claimed by this node, and after the commit hands them to
/// the dispatcher with their slots, so they are sent without a claim round trip. If this node
/// dies first, their lease expires and any node sends them.
///
/// It also carries every finished attempt to the task that writes it.
pub struct Handoff {
    slots: Arc<Semaphore>,
    lease: Duration,
    handed: mpsc::UnboundedSender<Handed>,
    finished: mpsc::Sender<Finished>,
}

/// The dispatcher's end of the handoff: the deliveries to send.
pub struct HandedDeliveries(mpsc::UnboundedReceiver<Handed>);

/// The attempt writer's end of the handoff: finished attempts to write. There is one, and
/// whoever holds it writes every attempt.
pub struct FinishedAttempts(mpsc::Receiver<Finished>);

impl Handoff {
    /// The handoff, the dispatcher's end and the attempt writer's end.
    pub fn new(settings: &DeliverySettings) -> (Arc<Self>, HandedDeliveries, FinishedAttempts) {
        let (handed, handed_receiver) = mpsc::unbounded_channel();
        let (finished, finished_receiver) = mpsc::channel(RECORD_BATCH * 8);
        let handoff = Self { slots: Arc::new(Semaphore::new(settings.max_in_flight)), lease: settings.lease(), handed, finished };
        (Arc::new(handoff), HandedDeliveries(handed_receiver), FinishedAttempts(finished_receiver))
    }

    /// The in-flight slots (one per delivery being sent), which the dispatcher's claims take.
    pub fn slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    /// Slots for `n` deliveries, when that many are free now.
    pub fn reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        if n == 0 {
            return None;
        }
        self.slots.clone().try_acquire_many_owned(u32::try_from(n).ok()?).ok()
    }

    /// The end of a lease taken now.
    pub fn lease_until(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX))
    }

    /// Hands committed, claimed deliveries to the dispatcher with the slots reserved for them.
    pub fn hand(&self, deliveries: Vec<ClaimedDelivery>, mut slots: OwnedSemaphorePermit) {
        for delivery in deliveries {
            // `reserve` took one permit per delivery, so each split succeeds.
            let Some(slot) = slots.split(1) else { return };
            if self.handed.send((delivery, slot)).is_err() {
                return; // the dispatcher stopped: the leases expire and the deliveries are claimed again
            }
        }
    }

    /// Queues a finished attempt for writing; false when the writer has stopped (the lease
    /// then expires and the delivery is sent again).
    pub async fn finished(&self, attempt: Finished) -> bool {
        self.finished.send(attempt).await.is_ok()
    }
}

impl HandedDeliveries {
    /// The next delivery handed over. Once `stop` fires, no more are taken and those already
    /// handed are still returned; `None` then means there are none left.
    pub async fn next(&mut self, stop: &CancellationToken) -> Option<Handed> {
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                self.0.close();
                self.0.recv().await
            }
            handed = self.0.recv() => handed,
        }
    }
}

impl FinishedAttempts {
    /// The next attempts, up to `RECORD_BATCH` (see `node::next_batch`).
    pub async fn next_batch(&mut self, batch: &mut Vec<Finished>, stop: &CancellationToken) -> usize {
        next_batch(&mut self.0, batch, RECORD_BATCH, stop).await
    }

    /// Takes attempts already waiting, without waiting, until `batch` holds `RECORD_BATCH`.
    pub fn take_waiting(&mut self, batch: &mut Vec<Finished>) {
        while batch.len() < RECORD_BATCH
            && let Ok(attempt) = self.0.try_recv()
        {
            batch.push(attempt);
        }
    }

    /// The attempt writer: writes finished attempts, a batch per transaction, until `stop`
    /// fires and the attempts queued by then are written.
    pub async fn write(mut self, store: Store, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while self.next_batch(&mut batch, &stop).await > 0 {
            record_with_retries(&store, attempt_batch(std::mem::take(&mut batch))).await;
        }
    }
}

/// Finished attempts made ready for the store: their records, and one update per target
/// (core's [`AttemptBatch::of`]).
pub fn attempt_batch(finished: Vec<Finished>) -> Arc<AttemptBatch> {
    Arc::new(AttemptBatch::of(finished))
}

/// Writes attempts in their own transaction, retrying a few times.
pub async fn record_with_retries(store: &Store, attempts: Arc<AttemptBatch>) {
    for wait in [0u64, 100, 1000, 5000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match store.record_attempts(attempts.clone(), crate::now()).await {
            Ok(()) => return,
            // The attempts happened; if they cannot be written, the leases expire and the
            // deliveries are sent again (at least once, never lost).
            Err(err) => tracing::error!(error = %err, attempts = attempts.len(), "cannot record delivery attempts"),
        }
    }
}
