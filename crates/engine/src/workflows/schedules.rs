//! SCHEDULE_TRIGGER: the worker that fires each workflow's cron ticks (five fields, UTC).
//!
//! Each schedule keeps its next tick (`workflow_schedules.next_at`, set when its workflow is
//! saved). Firing a due tick moves `next_at` to the first tick after the time it fires at, in
//! the transaction that starts the run, and only if `next_at` is still the tick it read
//! (`advance_schedule`). Architecture Invariant: each tick fires once across nodes (the second
//! firer's update finds another `next_at` and starts nothing), and the ticks missed while no
//! node ran fire once on return, not once each (the next tick is counted from now, not from
//! the missed one). [`Schedules::fire_due`] takes the time, so tests pass their own clock.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use wharf_core::time::Timestamp;
use wharf_core::workflow::NodeConfig;
use wharf_store::Store;

use super::{Firing, Workflows, start_in};
use crate::Result;

/// Ticks one pass fires at most.
const BATCH: u32 = 100;

/// The schedule worker. Cheap to clone.
#[derive(Clone)]
pub struct Schedules {
    store: Store,
    workflows: Workflows,
    poll: Duration,
}

impl Schedules {
    pub fn new(store: Store, workflows: Workflows, poll: Duration) -> Self {
        Self { store, workflows, poll }
    }

    /// Fires due ticks every `poll` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0;
        while !stop.is_cancelled() {
            match self.fire_due(crate::now()).await {
                Ok(fired) if fired >= BATCH as usize => continue,
                Ok(_) => failures = 0,
                Err(err) => {
                    failures += 1;
                    tracing::error!(error = %err, "cannot fire workflow schedules; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(crate::outbox::backoff(self.poll, failures)) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// Fires the ticks due at `now`: how many runs started.
    pub async fn fire_due(&self, now: Timestamp) -> Result<usize> {
        let due = self.store.due_schedules(now, BATCH).await?;
        let mut started = 0;
        for tick in due {
            let mut tx = self.store.begin().await?;
            let Some(stored) = tx.workflow(&tick.org_id, &tick.workflow).await? else {
                tx.set_schedules(&tick.org_id, &tick.workflow, &[]).await?;
                tx.commit().await?;
                continue;
            };
            let Some(node) = stored.def.node(&tick.node) else { continue };
            let NodeConfig::ScheduleTrigger { cron } = &node.config else { continue };
            // The first tick after now: ticks missed while no node ran fire once.
            let next = cron.next_after(now).unwrap_or(Timestamp::from_millis(i64::MAX));
            if !tx.advance_schedule(&tick, next).await? {
                continue;
            }
            let firing = Firing {
                stored: &stored,
                trigger: node,
                output: json!({"cron": cron.source(), "scheduledAt": tick.next_at.to_iso(), "firedAt": now.to_iso()}),
                by_user: json!({}),
                by: "wharf".to_owned(),
            };
            // `now` decides which ticks are due; what is written is stamped with the clock.
            let handover = self.workflows.handover();
            let (_, moved) = start_in(&mut tx, &tick.org_id, &firing, handover.as_ref(), crate::now()).await?;
            tx.commit().await?;
            self.workflows.moved(handover, moved);
            started += 1;
        }
        Ok(started)
    }
}
