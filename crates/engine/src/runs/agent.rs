//! Runs for execution agents (reference §5.2, SPEC §8): claims, acknowledgements, what a
//! claimed run shows its agent, and Port's encryption of secret inputs for agents.
//!
//! An `agent: true` run's request is written `agent` instead of `pending`, so the invoker never
//! sends it; [`Runs::claim_for_agent`] hands it to an agent instead ([`wharf_store::AgentRun`]
//! says how claims exclude each other). The agent reports back through the runs API as any
//! backend does; the run's end settles its request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use wharf_core::Error as DomainError;
use wharf_core::agent::{Claim, ClaimState, FIELD_IV_BYTES, encrypt_field};
use wharf_core::run::{Run, sent_payload};
use wharf_store::{AgentQueue, AgentRun};

use super::render::SealedRequest;
use super::{Caller, Runs};
use crate::Result;

/// How often a waiting claim looks again without a local wake: runs written by another node,
/// and claims that lapsed, are seen this late at most.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

/// The claims of execution agents waiting for work (action runs and workflow node runs alike):
/// woken when work for agents commits on this node, and ended at once when the node stops
/// serving, so a long poll never holds the server's shutdown.
#[derive(Debug, Default)]
pub struct AgentWaiters {
    /// `notify_waiters`: every waiting claim looks.
    wake: tokio::sync::Notify,
    closing: tokio_util::sync::CancellationToken,
}

impl AgentWaiters {
    /// Wakes every waiting claim.
    pub(crate) fn notify(&self) {
        self.wake.notify_waiters();
    }

    /// Ends the waiting claims, and makes every later one answer at once.
    pub(crate) fn close(&self) {
        self.closing.cancel();
    }

    /// A long poll: `look` claims; what it found is answered when `found` says it found
    /// something, when `wait_ms` has passed, or when the node stops serving; until then it
    /// looks again on a local wake or every [`LOOK_AGAIN`].
    pub(crate) async fn long_poll<O, F, Fut>(&self, wait_ms: u64, mut look: F, found: impl Fn(&O) -> bool) -> Result<O>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<O>>,
    {
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        loop {
            // Registered before the claim looks, so work written meanwhile wakes it.
            let written = self.wake.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let claimed = look().await?;
            if found(&claimed) || Instant::now() >= deadline || self.closing.is_cancelled() {
                return Ok(claimed);
            }
            tokio::select! {
                _ = tokio::time::timeout(LOOK_AGAIN.min(deadline - Instant::now()), written) => {}
                () = self.closing.cancelled() => {}
            }
        }
    }
}

impl Runs {
    /// `POST /v1/actions/runs/claim-pending`: claims up to the claim's limit of the
    /// organization's runs waiting for an agent, oldest first; with `waitMs`, waits that long
    /// for one when none is claimable (a long poll). Each run as the agent sees it: its
    /// request rendered in clear as `payload`, and `agentClaim`.
    pub async fn claim_for_agent(&self, org: &str, claim: &Claim) -> Result<Vec<Value>> {
        let look = || async {
            let now = crate::now();
            let visible_again_at = claim.visible_again_at(now);
            let claimed = self.store.claim_agent_runs(org, &claim.installation_id, now, visible_again_at, claim.limit).await?;
            Ok((now, visible_again_at, claimed))
        };
        let (now, visible_again_at, claimed) =
            self.agent_waiters.long_poll(claim.wait_ms, look, |(_, _, claimed)| !claimed.is_empty()).await?;
        metrics::counter!("wharf_agent_runs_claimed_total").increment(claimed.len() as u64);
        let state =
            ClaimState { installation_id: claim.installation_id.clone(), claimed_at: now, visible_again_at, acked_at: None };
        let mut shown = Vec::with_capacity(claimed.len());
        for agent_run in &claimed {
            match self.shown_to_agent(agent_run, &state) {
                Ok(run) => shown.push(run),
                Err(why) => self.end_unreadable(org, &agent_run.run.id, why).await,
            }
        }
        Ok(shown)
    }

    /// Wakes the claims waiting for runs when `runs`, just committed, has one for an agent.
    pub(crate) fn written(&self, runs: &[Run]) {
        if runs.iter().any(Run::for_agent) {
            self.agent_waiters.notify();
        }
    }

    /// Ends the claims waiting for runs (the node stops serving): each answers what it has,
    /// so a long poll never holds the server's shutdown.
    pub fn end_waiting_claims(&self) {
        self.agent_waiters.close();
    }

    /// The waiting claims of agents, which the workflows' node run claims share.
    pub fn agent_waiters(&self) -> Arc<AgentWaiters> {
        self.agent_waiters.clone()
    }

    /// `PATCH /v1/actions/runs/ack`: takes the claimed runs among `run_ids` for good; those
    /// taken now (another agent may have taken the others).
    pub async fn ack_for_agent(&self, org: &str, run_ids: &[String]) -> Result<Vec<String>> {
        let acked = self.store.ack_agent_runs(org, run_ids, crate::now()).await?;
        metrics::counter!("wharf_agent_runs_acked_total").increment(acked.len() as u64);
        Ok(acked)
    }

    /// Where an agent's claim of a run stands (`agentClaim` of `GET /v1/actions/runs/{id}`).
    pub(crate) async fn agent_claim(&self, org: &str, run: &Run) -> Result<Option<ClaimState>> {
        if !run.for_agent() {
            return Ok(None);
        }
        Ok(self.store.agent_claim(org, &run.id).await?)
    }

    /// Sets the agent gauges: runs waiting, claimed and acknowledged (read at each scrape).
    pub async fn observe_agent_queue(&self) -> Result<AgentQueue> {
        let queue = self.store.agent_queue(crate::now()).await?;
        metrics::gauge!("wharf_agent_runs", "state" => "waiting").set(queue.waiting as f64);
        metrics::gauge!("wharf_agent_runs", "state" => "claimed").set(queue.claimed as f64);
        metrics::gauge!("wharf_agent_runs", "state" => "acked").set(queue.acked as f64);
        Ok(queue)
    }

    /// A claimed run as its agent sees it: `payload` is the request as it is to be sent, with
    /// the secrets it holds (the agent holds the organization's credentials, which open
    /// everything secret of it anyway); the run's own `payload` keeps them masked.
    fn shown_to_agent(&self, agent_run: &AgentRun, state: &ClaimState) -> std::result::Result<Value, String> {
        let sealed = SealedRequest::open(&self.master, &agent_run.request_sealed)?;
        let mut shown = agent_run.run.to_json();
        shown["payload"] = sent_payload(&sealed.request);
        shown["agentClaim"] = state.to_json();
        Ok(shown)
    }

    /// Ends a claimed run whose sealed request cannot be read (the master key changed): no
    /// agent could send it.
    async fn end_unreadable(&self, org: &str, run_id: &str, why: String) {
        tracing::error!(run = %run_id, error = %why, "a run claimed by an agent cannot be opened; it ends FAILURE");
        let caller = Caller { org_id: org.to_owned(), client_id: "wharf".to_owned(), run_as: None, cause: None };
        let summary = format!("the run's request cannot be opened: {why}");
        let end = |run: &mut Run, now| {
            if !run.status.has_ended() {
                run.fail(summary, now);
            }
            Ok(())
        };
        if let Err(err) = self.update(&caller, run_id, end).await {
            tracing::error!(run = %run_id, error = %err, "cannot end the run");
        }
    }

    /// Encrypts the inputs the action encrypts for its agent (Port's secret inputs) with the
    /// organization's client secret; a 422 when the organization has no API client.
    pub(crate) async fn encrypt_inputs(
        &self,
        org: &str,
        names: &[String],
        runs_inputs: &mut [&mut serde_json::Map<String, Value>],
    ) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let Some(sealed) = self.store.signing_secret(org).await? else {
            return Err(DomainError::invalid(
                "invalid_inputs",
                "inputs: this action encrypts inputs with the organization's client secret, and the organization has no API client",
            )
            .into());
        };
        let secret = self
            .master
            .open(&sealed)
            .map_err(|err| crate::Error::Unavailable(format!("the client secret cannot be opened: {err}")))?;
        for inputs in runs_inputs.iter_mut() {
            wharf_core::run_inputs::encrypt_inputs(inputs, names, |text| {
                encrypt_field(&secret, wharf_ids::random_bytes::<FIELD_IV_BYTES>(), text.as_bytes())
            })
            .map_err(|err| DomainError::invalid("invalid_inputs", format!("inputs: cannot be encrypted for the agent: {err}")))?;
        }
        Ok(())
    }
}
