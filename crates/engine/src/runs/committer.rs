//! Group commit of new runs: each `POST …/runs` renders its run, hands it to a committer task
//! and waits; the committer writes every run waiting (with its run change and its request or
//! its entity write) in one transaction. A run is answered only after the commit that holds
//! it, so a 202 means the run is on disk, as every write reply does; one commit (one sync of
//! the disk) carries many runs.
//!
//! A batch is one write job ([`Store::write`]; on SQLite the writer thread runs it, with no
//! thread hand-off per statement). It fails whole only when the database fails: a run's own
//! failures (a template that did not render, an entity the catalog refuses) end that run
//! `FAILURE` inside the transaction.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wharf_core::change::Trigger;
use wharf_core::run::Run;
use wharf_core::time::Timestamp;
use wharf_store::{End, Store, WriteJob, WriteTx};

use super::{Prepared, write_new_runs};
use crate::node::{Submissions, submit};
use crate::{Error, Result};

/// Runs one commit takes at most.
const MAX_BATCH: usize = 256;

struct Submission {
    trigger: Trigger,
    prepared: Prepared,
    reply: oneshot::Sender<std::result::Result<Run, String>>,
}

/// Hands new runs to the committers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RunSubmitter {
    submit: mpsc::Sender<Submission>,
}

/// The committer worker (one, or a few taking turns at the queue). Cheap to clone.
#[derive(Clone)]
pub struct RunCommitter {
    store: Store,
    submissions: Submissions<Submission>,
    /// The invoker's: notified after a commit that queued requests.
    wake: Arc<Notify>,
}

pub(crate) fn channel(store: Store, wake: Arc<Notify>) -> (RunSubmitter, RunCommitter) {
    let (submit, submissions) = Submissions::channel(MAX_BATCH * 4);
    (RunSubmitter { submit }, RunCommitter { store, submissions, wake })
}

/// A batch of new runs as one write job. Everything it reads (an UPSERT_ENTITY run's
/// blueprint and entity) it reads through its transaction, so on SQLite it runs on the
/// writer thread.
struct WriteRuns {
    jobs: Vec<(Trigger, Prepared)>,
    now: Timestamp,
}

impl WriteJob for WriteRuns {
    type Output = Vec<Run>;
    type Error = Error;

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<Vec<Run>>> {
        Ok(End::Commit(write_new_runs(tx, self.jobs, self.now).await?))
    }
}

impl RunSubmitter {
    /// Writes one new run durably; the run as written.
    pub(crate) async fn commit(&self, trigger: Trigger, prepared: Prepared) -> Result<Run> {
        submit(&self.submit, "run committer", |reply| Submission { trigger, prepared, reply }).await?.map_err(Error::Unavailable)
    }
}

impl RunCommitter {
    /// Commits the runs waiting, a batch per transaction, until `stop` fires and those
    /// submitted by then are committed.
    pub async fn run(self, stop: CancellationToken) {
        self.submissions.commit_batches(MAX_BATCH, &stop, |batch| self.commit(batch)).await;
    }

    async fn commit(&self, batch: Vec<Submission>) {
        let now = crate::now();
        let (jobs, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|s| ((s.trigger, s.prepared), s.reply)).unzip();
        let written = self.store.write(WriteRuns { jobs, now }).await;
        match written {
            Ok(runs) => {
                self.wake.notify_one();
                for (reply, run) in replies.into_iter().zip(runs) {
                    let _ = reply.send(Ok(run));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot write new runs");
                let message = format!("the runs could not be written: {err}");
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
