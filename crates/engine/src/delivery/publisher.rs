//! Publishing events to projects with group commit: each `POST …/events` hands its event to a
//! committer task and waits; the committer stores every event waiting (with their
//! deliveries) in one transaction and wakes the dispatcher. A publish is answered only after
//! the commit that holds it.

use std::sync::Arc;

use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use wharf_store::{Publication, Published, Store};

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
    /// Starts `committers` committer tasks; `wake` is notified after each commit.
    pub fn start(store: Store, committers: usize, wake: Arc<Notify>) -> Self {
        let (submit, receiver) = mpsc::channel::<Submission>(MAX_BATCH * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..committers.max(1) {
            tokio::spawn(commit_loop(store.clone(), receiver.clone(), wake.clone()));
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

async fn commit_loop(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Submission>>>, wake: Arc<Notify>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return; // every sender is gone: the server stopped
            }
        }
        let (publications, replies): (Vec<Publication>, Vec<_>) = batch.into_iter().map(|s| (s.publication, s.reply)).unzip();
        metrics::histogram!("wharf_publish_commit_batch_size").record(publications.len() as f64);
        let outcomes = match store.publish(&publications, crate::now()).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // One bad event (its project deleted meanwhile) must not fail the others.
            Err(err) if publications.len() > 1 => {
                tracing::warn!(error = %err, events = publications.len(), "a batch of events failed; storing them one by one");
                let mut outcomes = Vec::with_capacity(publications.len());
                for publication in &publications {
                    let one = store.publish(std::slice::from_ref(publication), crate::now()).await;
                    // `publish` answers one outcome per publication given: here, exactly one.
                    outcomes.push(one.map(|mut o| o.remove(0)));
                }
                outcomes
            }
            Err(err) => vec![Err(err)],
        };
        if outcomes.iter().any(|o| matches!(o, Ok(Published::Stored { deliveries }) if *deliveries > 0)) {
            wake.notify_one();
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome.map_err(|err| {
                tracing::error!(error = %err, "cannot store a published event");
                format!("the event could not be stored: {err}")
            }));
        }
    }
}
