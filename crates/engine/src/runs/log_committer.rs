//! Group commit of run logs: each `POST …/runs/{id}/logs` hands its line to a committer task
//! and waits; the committer writes every line waiting in one transaction (one write job,
//! [`Store::write`]: on SQLite the writer thread runs it). A line is answered only after the
//! commit that holds it, so a 201 means it is on disk; one commit (one sync of the disk)
//! carries the lines of many runs, which is what an execution agent reporting runs sends most.
//!
//! Lines apply in the order they were submitted: a second line of one run sees what the first
//! did to it. Core decides each line before anything of it is written; a line core refuses (a
//! run not found in the caller's organization, a run that has ended) is answered to its caller
//! alone and the batch goes on. The batch fails whole only when the database fails.

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wharf_core::change::Origin;
use wharf_core::run::{Run, RunLog, RunLogInput};
use wharf_core::time::Timestamp;
use wharf_store::{CatalogTx, End, RunTx, Store, WriteJob, WriteTx};

use super::{change_trigger, drop_request_if_ended, run_not_found, save_run};
use crate::node::{Submissions, submit};
use crate::{Error, Result};

/// Lines one commit takes at most.
const MAX_BATCH: usize = 256;

/// A line to append to a run's log, with who sends it.
pub(crate) struct Line {
    pub org: String,
    pub by: String,
    pub run_id: String,
    pub input: RunLogInput,
}

struct Submission {
    line: Line,
    reply: oneshot::Sender<Result<RunLog>>,
}

/// Hands log lines to the committers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LogSubmitter {
    submit: mpsc::Sender<Submission>,
}

/// The log committer worker (one, or a few taking turns at the queue). Cheap to clone.
#[derive(Clone)]
pub struct LogCommitter {
    store: Store,
    submissions: Submissions<Submission>,
}

pub(crate) fn channel(store: Store) -> (LogSubmitter, LogCommitter) {
    let (submit, submissions) = Submissions::channel(MAX_BATCH * 4);
    (LogSubmitter { submit }, LogCommitter { store, submissions })
}

/// A batch of lines as one write job; it reads only the runs it writes, through its
/// transaction, so on SQLite it runs on the writer thread.
struct WriteLogs {
    lines: Vec<Line>,
    now: Timestamp,
}

impl WriteJob for WriteLogs {
    /// Each line's answer, in order: the line as written, or why core refused it.
    type Output = Vec<Result<RunLog>>;
    type Error = Error;

    async fn run(self, tx: &mut impl WriteTx) -> Result<End<Self::Output>> {
        Ok(End::Commit(write_logs(tx, self.lines, self.now).await?))
    }
}

/// Appends each line to its run's log in `tx`, in order, and writes what it makes of its run
/// (with its run change; an ended run's request settled). Each run is read for update once,
/// the runs in sorted order (two batches on PostgreSQL that share runs cannot deadlock on
/// them); later lines of a run see what earlier ones did.
async fn write_logs(tx: &mut (impl CatalogTx + RunTx), lines: Vec<Line>, now: Timestamp) -> Result<Vec<Result<RunLog>>> {
    let mut keys: Vec<(&str, &str)> = lines.iter().map(|l| (l.org.as_str(), l.run_id.as_str())).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut runs: Vec<Option<Run>> = Vec::with_capacity(keys.len());
    for (org, id) in &keys {
        runs.push(tx.run_for_update(org, id).await?);
    }
    let slots: Vec<usize> =
        lines.iter().map(|l| keys.binary_search(&(l.org.as_str(), l.run_id.as_str())).unwrap_or_default()).collect();
    drop(keys);
    let mut answers = Vec::with_capacity(lines.len());
    let mut logs = Vec::with_capacity(lines.len());
    for (line, slot) in lines.into_iter().zip(slots) {
        let Some(run) = runs[slot].as_mut() else {
            answers.push(Err(run_not_found(&line.run_id)));
            continue;
        };
        let before = run.to_json();
        let changed = match run.log(&line.input, &line.by, now) {
            Ok(changed) => changed,
            Err(refused) => {
                answers.push(Err(refused.into()));
                continue;
            }
        };
        if changed {
            let trigger = change_trigger(&line.org, &line.by, Origin::Api, &run.id, now);
            save_run(tx, &trigger, run, Some(before)).await?;
            drop_request_if_ended(tx, run, now).await?;
        }
        let log = RunLog {
            id: wharf_ids::new_run_log_id(),
            run_id: line.run_id,
            message: line.input.message,
            created_by: line.by,
            created_at: now,
        };
        logs.push(log.clone());
        answers.push(Ok(log));
    }
    tx.insert_run_logs(&logs).await?;
    Ok(answers)
}

impl LogSubmitter {
    /// Appends a line to its run's log durably; the line as written.
    pub(crate) async fn commit(&self, line: Line) -> Result<RunLog> {
        submit(&self.submit, "log committer", |reply| Submission { line, reply }).await?
    }
}

impl LogCommitter {
    /// Commits the lines waiting, a batch per transaction, until `stop` fires and those
    /// submitted by then are committed.
    pub async fn run(self, stop: CancellationToken) {
        self.submissions.commit_batches(MAX_BATCH, &stop, |batch| self.commit(batch)).await;
    }

    async fn commit(&self, batch: Vec<Submission>) {
        let now = crate::now();
        let (lines, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|s| (s.line, s.reply)).unzip();
        match self.store.write(WriteLogs { lines, now }).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot write run logs");
                let message = format!("the run logs could not be written: {err}");
                for reply in replies {
                    let _ = reply.send(Err(Error::Unavailable(message.clone())));
                }
            }
        }
    }
}
