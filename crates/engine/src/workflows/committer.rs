//! Group commit of workflow steps: a run's start (`POST /v1/workflows/{id}/runs`), a node
//! run's end with its run's next step (the stepper's, a node report's), and an UPSERT_ENTITY
//! node's entity write with its end. Each caller hands its step to a committer and waits; the
//! committer writes every step waiting in one transaction, so one commit (one sync of the
//! disk) carries many runs' steps, and each caller is answered only after the commit that
//! holds its step. The next node runs are handed to this node's stepper after the commit.
//!
//! A batch the database refuses is written again one step per transaction, so one bad step
//! fails alone. Steps of one batch lock their runs in the order of the run ids, so two
//! committers (PostgreSQL) cannot deadlock on the same runs.
//!
//! The committers run in the node's recording stage: the steps the stepper finishes while the
//! node stops (its sends stage) are written, not left to be claimed again.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wharf_core::change::Trigger;
use wharf_core::workflow::Workflow;
use wharf_core::workflow::WorkflowDef;
use wharf_core::workflow_run::{Outcome, WorkflowRun};
use wharf_store::{Store, Tx};

use super::{Ending, Firing, Handover, Moved, Workflows, end_in, start_in};
use crate::node::{Submissions, submit};
use crate::{Error, Result};

/// Steps one commit takes at most.
const MAX_BATCH: usize = 256;

/// One step to write.
#[derive(Clone)]
// Built once per step and moved into the queue: the size of the larger variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    /// A run of `stored` from its trigger node `trigger`, with the trigger's output.
    Start { org: String, stored: Arc<Workflow>, trigger: String, output: Value, by_user: Value, by: String },
    /// Node run `id` ends as `ending` says (variables applied).
    End { org: String, def: Arc<WorkflowDef>, id: String, ending: Ending },
    /// An UPSERT_ENTITY node run: the entity written through the catalog (merge), then the
    /// node run ended `ending` (its output) or, when the catalog refuses the entity, `FAILED`.
    Upsert { org: String, def: Arc<WorkflowDef>, id: String, blueprint: String, entity: Value, trigger: Trigger, ending: Ending },
}

impl Step {
    /// The run the step moves (its order in a batch), when it names one.
    fn run_key(&self) -> &str {
        match self {
            Self::Start { .. } => "",
            Self::End { ending, .. } | Self::Upsert { ending, .. } => ending.run_id.as_str(),
        }
    }
}

/// What a step came to.
#[derive(Debug)]
pub(crate) enum Stepped {
    Started(Box<WorkflowRun>),
    /// Whether the end was written (`false`: the node run had ended, or the stepper's claim no
    /// longer held it).
    Ended(bool),
}

struct Submission {
    step: Step,
    reply: oneshot::Sender<std::result::Result<Stepped, String>>,
}

/// Hands steps to the committers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct StepSubmitter {
    submit: mpsc::Sender<Submission>,
}

/// The committer worker (one, or a few taking turns at the queue). Cheap to clone.
#[derive(Clone)]
pub struct StepCommitter {
    store: Store,
    submissions: Submissions<Submission>,
    /// Whose steps these are (hand-overs go to its stepper).
    workflows: Workflows,
}

/// The queue of steps: its sending side, and its receiving side for [`StepCommitter::new`].
pub(crate) fn channel() -> (StepSubmitter, StepQueue) {
    let (submit, submissions) = Submissions::channel(MAX_BATCH * 4);
    (StepSubmitter { submit }, StepQueue(submissions))
}

/// The receiving side of the queue of steps.
pub(crate) struct StepQueue(Submissions<Submission>);

impl StepSubmitter {
    /// Writes `step` durably (in a batch); what it came to.
    pub(crate) async fn commit(&self, step: Step) -> Result<Stepped> {
        submit(&self.submit, "workflow step committer", |reply| Submission { step, reply }).await?.map_err(Error::Unavailable)
    }
}

impl StepCommitter {
    /// The committer of `workflows`' steps, from their queue.
    pub(crate) fn new(store: Store, queue: StepQueue, workflows: Workflows) -> Self {
        Self { store, submissions: queue.0, workflows }
    }

    /// Commits the steps waiting, a batch per transaction, until `stop` fires and those
    /// submitted by then are committed.
    pub async fn run(self, stop: CancellationToken) {
        self.submissions.commit_batches(MAX_BATCH, &stop, |batch| self.commit(batch)).await;
    }

    async fn commit(&self, mut batch: Vec<Submission>) {
        batch.sort_by(|a, b| a.step.run_key().cmp(b.step.run_key()));
        let handovers: Vec<Option<Handover>> = batch.iter().map(|_| self.workflows.handover()).collect();
        match self.write(&batch, &handovers).await {
            Ok(done) => {
                for ((submission, handover), (stepped, moved)) in batch.into_iter().zip(handovers).zip(done) {
                    self.workflows.moved(handover, moved);
                    let _ = submission.reply.send(Ok(stepped));
                }
            }
            Err(err) if batch.len() > 1 => {
                tracing::warn!(error = %err, steps = batch.len(), "a batch of workflow steps failed; writing them one by one");
                drop(handovers);
                for submission in batch {
                    let handover = vec![self.workflows.handover()];
                    let written = self.write(std::slice::from_ref(&submission), &handover).await;
                    let handover = handover.into_iter().next().flatten();
                    match written {
                        Ok(mut done) => {
                            let (stepped, moved) = done.remove(0);
                            self.workflows.moved(handover, moved);
                            let _ = submission.reply.send(Ok(stepped));
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "cannot write a workflow step");
                            let _ = submission.reply.send(Err(format!("the workflow step could not be written: {err}")));
                        }
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot write a workflow step");
                for submission in batch {
                    let _ = submission.reply.send(Err(format!("the workflow step could not be written: {err}")));
                }
            }
        }
    }

    /// Writes `batch` in one transaction; what each step came to.
    async fn write(&self, batch: &[Submission], handovers: &[Option<Handover>]) -> Result<Vec<(Stepped, Moved)>> {
        let now = crate::now();
        let mut tx = self.store.begin().await?;
        let mut done = Vec::with_capacity(batch.len());
        for (submission, handover) in batch.iter().zip(handovers) {
            done.push(apply(&mut tx, &submission.step, handover.as_ref(), now).await?);
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// Writes one step in `tx`.
async fn apply(
    tx: &mut Tx,
    step: &Step,
    handover: Option<&Handover>,
    now: wharf_core::time::Timestamp,
) -> Result<(Stepped, Moved)> {
    match step {
        Step::Start { org, stored, trigger, output, by_user, by } => {
            let Some(node) = stored.def.node(trigger) else {
                return Err(Error::Unavailable(format!("workflow `{}` has no trigger `{trigger}`", stored.def.identifier)));
            };
            let firing = Firing { stored, trigger: node, output: output.clone(), by_user: by_user.clone(), by: by.clone() };
            let (run, moved) = start_in(tx, org, &firing, handover, now).await?;
            Ok((Stepped::Started(Box::new(run)), moved))
        }
        Step::End { org, def, id, ending } => match end_in(tx, org, def, id, ending, handover, now).await? {
            Some(moved) => Ok((Stepped::Ended(true), moved)),
            None => Ok((Stepped::Ended(false), Moved::default())),
        },
        Step::Upsert { org, def, id, blueprint, entity, trigger, ending } => {
            // The claim first: a lost claim writes nothing.
            let Some((_, slot)) = tx.node_run_for_update(org, id).await? else {
                return Ok((Stepped::Ended(false), Moved::default()));
            };
            if ending.lease.as_deref().is_some_and(|lease| !slot.claimed_by(lease)) {
                return Ok((Stepped::Ended(false), Moved::default()));
            }
            let ending = match crate::runs::upsert(tx, trigger, blueprint, entity).await? {
                Ok(_) => ending.clone(),
                Err(why) => Ending {
                    outcome: Outcome::Failed,
                    raw: wharf_core::workflow::failure_output(&format!("the entity cannot be written: {why}")),
                    ..ending.clone()
                },
            };
            match end_in(tx, org, def, id, &ending, handover, now).await? {
                Some(moved) => Ok((Stepped::Ended(true), moved)),
                None => Ok((Stepped::Ended(false), Moved::default())),
            }
        }
    }
}
