//! Execution agents' claims of runs (migration 0010): the requests of `agent: true` runs wait
//! in `run_requests` with `status = 'agent'`, claimable from their `next_attempt_at`.
//!
//! A claim stamps who claimed (`installation_id`, `claimed_at`) and moves `next_attempt_at`
//! to the end of the claim's visibility timeout, in one statement that skips rows another
//! claim holds (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer), so two agents never
//! get the same run from claims that overlap. An acknowledgement moves a claimed request to
//! `acked` only while it is still `agent`: of two agents that claimed one run (the first
//! claim lapsed), the first to acknowledge takes it and the other's acknowledgement counts
//! nothing. Architecture Invariant: an `acked` request is never claimed again.

use sqlx::{AssertSqlSafe, Row};
use wharf_core::agent::ClaimState;
use wharf_core::run::Run;
use wharf_core::time::Timestamp;

use crate::rows::{json, placeholders, rows_per_statement};
use crate::{Error, Result, Store};

/// A run an agent claimed, with its request as Wharf rendered it (sealed).
#[derive(Debug, Clone)]
pub struct AgentRun {
    pub run: Run,
    pub request_sealed: String,
}

/// Runs waiting for agents, across organizations (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentQueue {
    /// Claimable now: never claimed, or claimed and not acknowledged in time.
    pub waiting: i64,
    /// Claimed, not yet acknowledged, still hidden.
    pub claimed: i64,
    /// Acknowledged, their runs not ended yet.
    pub acked: i64,
}

impl Store {
    /// Claims up to `limit` of the organization's runs waiting for an agent, oldest first, for
    /// `installation` until `visible_again_at`.
    pub async fn claim_agent_runs(
        &self,
        org: &str,
        installation: &str,
        now: Timestamp,
        visible_again_at: Timestamp,
        limit: u32,
    ) -> Result<Vec<AgentRun>> {
        let sql = format!(
            "UPDATE run_requests SET next_attempt_at = $1, installation_id = $2, claimed_at = $3, updated_at = $3 \
             WHERE seq IN (SELECT seq FROM run_requests WHERE org_id = $4 AND status = 'agent' AND next_attempt_at <= $3 \
             ORDER BY next_attempt_at, seq LIMIT $5{}) RETURNING seq",
            self.dialect().claim_lock
        );
        let mut tx = self.begin().await?;
        let seqs: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(visible_again_at.millis())
            .bind(installation)
            .bind(now.millis())
            .bind(org)
            .bind(i64::from(limit))
            .fetch_all(tx.conn())
            .await?;
        let mut claimed = Vec::with_capacity(seqs.len());
        let select =
            "SELECT q.seq, q.request_sealed, r.document FROM run_requests q JOIN runs r ON r.id = q.run_id WHERE q.seq IN";
        for row in tx.rows_with_seqs(select, &seqs).await? {
            let seq: i64 = row.try_get("seq")?;
            let doc = json(&row.try_get::<String, _>("document")?, "run")?;
            let run = Run::from_json(doc).map_err(|err| Error::Corrupt { what: "run", detail: err.to_string() })?;
            claimed.push((seq, AgentRun { run, request_sealed: row.try_get("request_sealed")? }));
        }
        tx.commit().await?;
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, run)| run).collect())
    }

    /// Acknowledges the organization's claimed runs among `run_ids`; those taken now, in the
    /// order given (a run not claimed, already acknowledged or of another organization is
    /// left out).
    pub async fn ack_agent_runs(&self, org: &str, run_ids: &[String], now: Timestamp) -> Result<Vec<String>> {
        let mut acked = Vec::with_capacity(run_ids.len());
        let mut tx = self.begin().await?;
        for chunk in run_ids.chunks(rows_per_statement(1).saturating_sub(2).max(1)) {
            let sql = format!(
                "UPDATE run_requests SET status = 'acked', acked_at = $1, updated_at = $1 \
                 WHERE org_id = $2 AND status = 'agent' AND claimed_at IS NOT NULL AND run_id IN ({}) RETURNING run_id",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(now.millis()).bind(org);
            for id in chunk {
                query = query.bind(id);
            }
            acked.extend(query.fetch_all(tx.conn()).await?);
        }
        tx.commit().await?;
        acked.sort_by_key(|id| run_ids.iter().position(|given| given == id));
        Ok(acked)
    }

    /// Where an agent's claim of the organization's run stands, if an agent claimed it.
    pub async fn agent_claim(&self, org: &str, run_id: &str) -> Result<Option<ClaimState>> {
        let row = sqlx::query(
            "SELECT installation_id, claimed_at, next_attempt_at, acked_at FROM run_requests \
             WHERE run_id = $1 AND org_id = $2 AND claimed_at IS NOT NULL",
        )
        .bind(run_id)
        .bind(org)
        .fetch_optional(self.reader())
        .await?;
        row.map(|row| {
            Ok(ClaimState {
                installation_id: row.try_get("installation_id")?,
                claimed_at: Timestamp::from_millis(row.try_get("claimed_at")?),
                visible_again_at: Timestamp::from_millis(row.try_get("next_attempt_at")?),
                acked_at: row.try_get::<Option<i64>, _>("acked_at")?.map(Timestamp::from_millis),
            })
        })
        .transpose()
    }

    /// The sealed secret of the organization's first API client: the key of Port's
    /// `X-Port-Signature` and of fields encrypted for agents.
    pub async fn signing_secret(&self, org: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT secret_sealed FROM api_clients WHERE org_id = $1 ORDER BY created_at, id LIMIT 1")
            .bind(org)
            .fetch_optional(self.reader())
            .await?)
    }

    /// How many runs wait for agents, are claimed, and are acknowledged and not ended.
    pub async fn agent_queue(&self, now: Timestamp) -> Result<AgentQueue> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN next_attempt_at <= $1 THEN 1 ELSE 0 END), 0) AS waiting, \
             COALESCE(SUM(CASE WHEN next_attempt_at > $1 THEN 1 ELSE 0 END), 0) AS claimed \
             FROM run_requests WHERE status = 'agent'",
        )
        .bind(now.millis())
        .fetch_one(self.reader())
        .await?;
        let acked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM run_requests WHERE status = 'acked'").fetch_one(self.reader()).await?;
        Ok(AgentQueue { waiting: row.try_get("waiting")?, claimed: row.try_get("claimed")?, acked })
    }
}

/// Settles the request of run `$2` that ended, at `$1`: one still held or waiting for an agent
/// is dropped (never sent), one an agent acknowledged is done ([`crate::RunTx::settle_ended_run_request`],
/// on either transaction).
pub(crate) const SETTLE_ENDED_REQUEST: &str = "UPDATE run_requests SET status = CASE WHEN status = 'acked' THEN 'succeeded' ELSE 'dropped' END, \
     updated_at = $1 WHERE run_id = $2 AND status IN ('held', 'agent', 'acked')";
