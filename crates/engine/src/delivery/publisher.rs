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
use wharf_core::delivery::{AttemptBatch, ClaimedDelivery};
use wharf_store::{ActiveSubscription, Publication, PublishBatch, PublishedBatch, Routing, Store};

use super::Handoff;
use super::dispatcher::{Finished, RECORD_BATCH, attempt_batch, record_with_retries};
use super::routing::{Published, Routed, route};
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

impl Publisher {
    /// Starts `committers` committer tasks; deliveries go to `handoff`, or, when it has no
    /// room, `wake` is notified after the commit.
    pub fn start(store: Store, committers: usize, wake: Arc<Notify>, handoff: Arc<Handoff>) -> Self {
        let (submit, receiver) = mpsc::channel::<Submission>(MAX_BATCH * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let committers = committers.max(1);
        for _ in 0..committers {
            let records = if committers == 1 { handoff.take_records() } else { None };
            tokio::spawn(commit_loop(store.clone(), receiver.clone(), wake.clone(), handoff.clone(), records));
        }
        Self { submit }
    }

    /// Stores one event and its deliveries durably.
    pub async fn publish(&self, publication: Publication) -> Result<Published> {
        let (reply, committed) = oneshot::channel();
        let unavailable = || Error::Unavailable("the event publisher has stopped".into());
        self.submit.send(Submission { publication, reply }).await.map_err(|_| unavailable())?;
        committed.await.map_err(|_| unavailable())?.map_err(Error::Unavailable)
    }
}

async fn commit_loop(
    store: Store,
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    wake: Arc<Notify>,
    handoff: Arc<Handoff>,
    mut records: Option<mpsc::Receiver<Finished>>,
) {
    let mut publishing = true;
    loop {
        let mut batch = Vec::new();
        let mut finished = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            match records.as_mut() {
                None if !publishing => return,
                None => {
                    if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                        return; // every sender is gone: the server stopped
                    }
                }
                Some(attempts) => {
                    tokio::select! {
                        n = receiver.recv_many(&mut batch, MAX_BATCH), if publishing => publishing = n > 0,
                        n = attempts.recv_many(&mut finished, RECORD_BATCH) => if n == 0 { records = None },
                    }
                    // Take whatever else is waiting, of either kind, into the same commit.
                    while batch.len() < MAX_BATCH
                        && let Ok(submission) = receiver.try_recv()
                    {
                        batch.push(submission);
                    }
                    if let Some(attempts) = records.as_mut() {
                        while finished.len() < RECORD_BATCH
                            && let Ok(attempt) = attempts.try_recv()
                        {
                            finished.push(attempt);
                        }
                    }
                }
            }
        }
        commit(&store, &wake, &handoff, batch, attempt_batch(finished)).await;
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
        Ok(outcomes) => {
            handoff.recorded(finished.len());
            (outcomes.into_iter().map(Ok).collect(), None)
        }
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
        record_with_retries(store, handoff, unrecorded).await;
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
