//! Publishing events to projects with group commit: each `POST …/events` hands its event to a
//! committer task and waits; the committer stores every event waiting (with their
//! deliveries) in one transaction. A publish is answered only after the commit that holds it.
//!
//! When the dispatcher has free slots, the deliveries are inserted already claimed by this
//! node and handed to it after the commit ([`Handoff`]); otherwise they are inserted due and
//! the dispatcher is woken to claim them.
//!
//! With a single committer (SQLite, whose one writer serializes commits anyway), the
//! committer also writes the dispatcher's finished attempts in the same transaction: one
//! commit carries new events and the results of earlier ones.

use std::sync::Arc;

use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wharf_core::delivery::{AttemptBatch, ClaimedDelivery};
use wharf_store::{ActiveSubscription, Publication, PublishBatch, PublishedBatch, Routing, Store};

use super::handoff::{FinishedAttempts, Handoff, attempt_batch, record_with_retries};
use super::routing::{Published, Routed, route};
use crate::node::{Part, next_batch};
use crate::{Error, Result};

/// Events one commit takes at most.
const MAX_BATCH: usize = 512;

struct Submission {
    publication: Publication,
    reply: oneshot::Sender<std::result::Result<Published, String>>,
}

/// Hands events to the committers. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    submit: mpsc::Sender<Submission>,
}

/// The committer worker: run one or a few ([`Committer::run`]), or, alone, with the finished
/// attempts to write ([`Committer::run_with_attempts`]). Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    store: Store,
    submissions: Arc<Mutex<mpsc::Receiver<Submission>>>,
    wake: Arc<Notify>,
    handoff: Arc<Handoff>,
}

impl Publisher {
    /// The publisher and its committer, whose deliveries go to `handoff`, or, when it has no
    /// room, who notifies `wake` after the commit.
    pub fn new(store: Store, wake: Arc<Notify>, handoff: Arc<Handoff>) -> (Self, Committer) {
        let (submit, submissions) = mpsc::channel::<Submission>(MAX_BATCH * 4);
        let submissions = Arc::new(Mutex::new(submissions));
        (Self { submit }, Committer { store, submissions, wake, handoff })
    }

    /// Stores one event and its deliveries durably.
    pub async fn publish(&self, publication: Publication) -> Result<Published> {
        let (reply, committed) = oneshot::channel();
        let unavailable = || Error::Unavailable("the event publisher has stopped".into());
        self.submit.send(Submission { publication, reply }).await.map_err(|_| unavailable())?;
        committed.await.map_err(|_| unavailable())?.map_err(Error::Unavailable)
    }
}

impl Committer {
    /// Commits the events waiting, a batch per transaction, until `stop` fires and those
    /// submitted by then are committed. Several may run: they take turns at the queue.
    pub async fn run(self, stop: CancellationToken) {
        self.commit_loop(&stop, None).await;
    }

    /// As [`Committer::run`] until `publishing` stops, and all along writes the finished
    /// attempts in the same transactions, until `stop` fires and those queued by then are
    /// written. The only committer then: it owns the attempts.
    pub async fn run_with_attempts(self, publishing: Part, attempts: FinishedAttempts, stop: CancellationToken) {
        let stop_publishing = publishing.stop().clone();
        self.commit_loop(&stop_publishing, Some((attempts, publishing, stop))).await;
    }

    async fn commit_loop(
        &self,
        stop_publishing: &CancellationToken,
        recording: Option<(FinishedAttempts, Part, CancellationToken)>,
    ) {
        let (mut attempts, mut publishing_part, stop_recording) = match recording {
            Some((attempts, part, stop)) => (Some(attempts), Some(part), stop),
            None => (None, None, CancellationToken::new()),
        };
        let mut publishing = true;
        loop {
            let mut batch = Vec::new();
            let mut finished = Vec::new();
            {
                let mut submissions = self.submissions.lock().await;
                match attempts.as_mut() {
                    None if !publishing => return,
                    None => {
                        if next_batch(&mut submissions, &mut batch, MAX_BATCH, stop_publishing).await == 0 {
                            return; // stopped, and every event submitted is committed
                        }
                    }
                    Some(queue) => {
                        tokio::select! {
                            n = next_batch(&mut submissions, &mut batch, MAX_BATCH, stop_publishing), if publishing => publishing = n > 0,
                            n = queue.next_batch(&mut finished, &stop_recording) => if n == 0 { attempts = None },
                        }
                        // Take whatever else is waiting, of either kind, into the same commit.
                        while batch.len() < MAX_BATCH
                            && let Ok(submission) = submissions.try_recv()
                        {
                            batch.push(submission);
                        }
                        if let Some(queue) = attempts.as_mut() {
                            queue.take_waiting(&mut finished);
                        }
                    }
                }
            }
            if !publishing {
                // The intake may end: every event submitted is committed.
                drop(publishing_part.take());
            }
            commit(&self.store, &self.wake, &self.handoff, batch, attempt_batch(finished)).await;
        }
    }
}

/// Writes one batch of publications (and finished attempts) and answers the publishers.
async fn commit(store: &Store, wake: &Notify, handoff: &Arc<Handoff>, batch: Vec<Submission>, finished: Arc<AttemptBatch>) {
    let (publications, replies): (Vec<Publication>, Vec<_>) = batch.into_iter().map(|s| (s.publication, s.reply)).unzip();
    let publications = Arc::new(publications);
    if !publications.is_empty() {
        metrics::histogram!("wharf_publish_commit_batch_size").record(publications.len() as f64);
    }
    let (outcomes, unrecorded) = match store_batch(store, handoff, wake, publications.clone(), finished.clone()).await {
        Ok(outcomes) => (outcomes.into_iter().map(Ok).collect(), None),
        // One bad event (its project deleted meanwhile) must not fail the others: they are
        // stored one by one, and the attempts on their own.
        Err(err) if publications.len() > 1 || !finished.is_empty() => {
            tracing::warn!(error = %err, events = publications.len(), "a batch of events failed; storing them one by one");
            let mut outcomes = Vec::with_capacity(publications.len());
            for publication in publications.iter() {
                let one = store_batch(store, handoff, wake, Arc::new(vec![publication.clone()]), Arc::default()).await;
                // `store_batch` answers one outcome per publication given: here, exactly one.
                outcomes.push(one.map(|mut o| o.remove(0)));
            }
            (outcomes, Some(finished))
        }
        Err(err) => (vec![Err(err)], None),
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome.map_err(|err| {
            tracing::error!(error = %err, "cannot store a published event");
            format!("the event could not be stored: {err}")
        }));
    }
    if let Some(unrecorded) = unrecorded.filter(|a| !a.is_empty()) {
        record_with_retries(store, unrecorded).await;
    }
}

/// Stores events and their deliveries (and finished attempts) in one transaction, then
/// hands the deliveries to the dispatcher (or wakes it).
async fn store_batch(
    store: &Store,
    handoff: &Arc<Handoff>,
    wake: &Notify,
    publications: Arc<Vec<Publication>>,
    finished: Arc<AttemptBatch>,
) -> wharf_store::Result<Vec<Published>> {
    let now = crate::now();
    let batch = PublishBatch { publications: publications.clone(), attempts: finished };
    let route = {
        let (publications, handoff) = (publications.clone(), handoff.clone());
        // Runs inside the transaction, once the events are stored: the deliveries are
        // inserted already leased to this node when the dispatcher has room for them now.
        move |subscriptions: &[ActiveSubscription], seqs: &[Option<i64>]| {
            let Routed { outcomes, targets, .. } = route(&publications, seqs, subscriptions);
            let slots = handoff.reserve(targets.len());
            let lease = slots.as_ref().map(|_| (wharf_ids::id_base62(16), handoff.lease_until(now)));
            Routing { targets, lease, extra: (outcomes, slots) }
        }
    };
    let committed = store.publish(batch, now, route).await?;
    let PublishedBatch { subscriptions, targets, lease, inserted, extra: (outcomes, slots), .. } = committed;
    for ((delivery, _), (s, p)) in inserted.iter().zip(&targets) {
        let (subscription, event) = (&subscriptions[*s].id, &publications[*p].event.id);
        tracing::debug!(%delivery, %event, %subscription, leased = lease.is_some(), "delivery created");
    }
    match (slots, lease) {
        (Some(slots), Some((token, _))) => {
            let claimed = inserted
                .into_iter()
                .zip(targets)
                .map(|((id, seq), (s, p))| {
                    let (subscription, event) = (&subscriptions[s], &publications[p].event);
                    ClaimedDelivery {
                        seq,
                        id,
                        lease_token: token.clone(),
                        subscription_id: subscription.id.clone(),
                        event_id: event.id.clone(),
                        event_type: event.event_type.clone(),
                        payload: event.payload.clone(),
                        attempts: 0,
                        retries: true,
                        published_at: event.timestamp,
                        url: subscription.url.clone(),
                        headers: subscription.headers.clone(),
                        active: true,
                        keys_sealed: subscription.keys_sealed.clone(),
                        failing_since: subscription.failing_since,
                    }
                })
                .collect();
            handoff.hand(claimed, slots);
        }
        _ if !inserted.is_empty() => wake.notify_one(),
        _ => {}
    }
    Ok(outcomes)
}
