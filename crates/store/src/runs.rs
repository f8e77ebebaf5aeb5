//! Runs (`runs`, `run_logs`, migration 0009), the queue of the requests WEBHOOK runs send
//! (`run_requests`, `run_attempts`), and automation timers (`automation_timers`).
//!
//! The run list and a run's reads take the organization. The request queue works as the
//! delivery queue does: a claim moves a request's `next_attempt_at` to the end of its lease
//! and stamps a fresh `lease_token`, committed before the send; recording an attempt moves
//! the request on only while the token is still its own, so a node that died mid-send
//! delays the request by one lease, and one that outlived its lease cannot overwrite a
//! newer claim's result.
//!
//! The writes the run committer, the log committer and the invoker's recorder make are
//! [`RunTx`]'s (their sqlx implementation is here; the writer thread's, `sqlite/write_tx.rs`,
//! runs the same statements one row each); the others (releasing a held request, chain depths,
//! timers) are `Tx` methods.

use sqlx::{AssertSqlSafe, Row};
use wharf_core::run::{Run, RunAttempt, RunFilter, RunLog, RunStatus};
use wharf_core::time::Timestamp;

use crate::agent_claims::SETTLE_ENDED_REQUEST;
use crate::deliveries::claim_statement;
use crate::rows::{Columns, json, placeholders, rows_per_statement, to_text};
use crate::write_tx::RunTx;
use crate::{Error, Result, Store, Tx};

/// A run from its row's `document` (either driver).
pub(crate) fn run(row: &impl Columns) -> Result<Run> {
    let doc = json(&row.text("document")?, "run")?;
    Run::from_json(doc).map_err(|err| Error::Corrupt { what: "run", detail: err.to_string() })
}

/// Where a run's request stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Its run waits for approval.
    Held,
    /// Due at its `next_attempt_at`.
    Pending,
    /// Waits for an execution agent to claim it (claimable from its `next_attempt_at`).
    Agent,
    /// Taken for good by an agent, which sends it and reports on its run.
    Acked,
    Succeeded,
    Failed,
    /// Its run ended before it was sent (declined, or ended by the backend meanwhile).
    Dropped,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Pending => "pending",
            Self::Agent => "agent",
            Self::Acked => "acked",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// A run's request claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedRequest {
    pub seq: i64,
    pub run_id: String,
    pub org_id: String,
    pub lease_token: String,
    pub request_sealed: String,
    pub synchronized: bool,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When the request was queued (latency is measured from it).
    pub created_at: Timestamp,
    /// The organization's signing key (its first API client's secret), sealed.
    pub signing_secret_sealed: Option<String>,
    /// That client's id (a call of Wharf's own API is made as it).
    pub signing_client_id: Option<String>,
}

impl Store {
    pub async fn run(&self, org: &str, id: &str) -> Result<Option<Run>> {
        let row = sqlx::query(RUN_BY_ID).bind(org).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(run).transpose()
    }

    /// The organization's runs, newest first.
    pub async fn runs(&self, org: &str, filter: &RunFilter) -> Result<Vec<Run>> {
        let mut conditions = vec!["org_id = $1".to_owned()];
        let mut values: Vec<String> = vec![org.to_owned()];
        let mut equal = |column: &str, value: &Option<String>| {
            if let Some(value) = value {
                values.push(value.clone());
                conditions.push(format!("{column} = ${}", values.len()));
            }
        };
        equal("entity", &filter.entity);
        equal("blueprint", &filter.blueprint);
        equal("action", &filter.action);
        equal("external_run_id", &filter.external_run_id);
        if let Some(user) = &filter.user {
            values.push(user.clone());
            let n = values.len();
            conditions.push(format!("(created_by = ${n} OR impersonated_by = ${n})"));
        }
        if let Some(active) = filter.active {
            let first = values.len() + 1;
            values.extend(RunStatus::when_active(active).map(|status| status.as_str().to_owned()));
            conditions.push(format!("status IN ({})", placeholders(first, values.len() + 1 - first)));
        }
        if !filter.sources.is_empty() {
            let first = values.len() + 1;
            values.extend(filter.sources.iter().map(|s| s.as_str().to_owned()));
            conditions.push(format!("source IN ({})", placeholders(first, filter.sources.len())));
        }
        let sql = format!(
            "SELECT document FROM runs WHERE {} ORDER BY seq DESC LIMIT ${} OFFSET ${}",
            conditions.join(" AND "),
            values.len() + 1,
            values.len() + 2
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in &values {
            query = query.bind(value);
        }
        let found = query.bind(i64::from(filter.limit)).bind(i64::from(filter.offset)).fetch_all(self.reader()).await?;
        found.iter().map(run).collect()
    }

    /// A run's log, oldest first.
    pub async fn run_logs(&self, org: &str, run_id: &str, limit: u32, offset: u32) -> Result<Vec<RunLog>> {
        let found = sqlx::query(
            "SELECT l.id, l.run_id, l.message, l.created_by, l.created_at FROM run_logs l \
             WHERE l.run_id = (SELECT r.id FROM runs r WHERE r.id = $1 AND r.org_id = $2) ORDER BY l.seq LIMIT $3 OFFSET $4",
        )
        .bind(run_id)
        .bind(org)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(self.reader())
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(RunLog {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    message: row.try_get("message")?,
                    created_by: row.try_get("created_by")?,
                    created_at: Timestamp::from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    /// A run's request attempts, oldest first.
    pub async fn run_attempts(&self, org: &str, run_id: &str) -> Result<Vec<RunAttempt>> {
        let found = sqlx::query(
            "SELECT a.id, a.run_id, a.attempted_at, a.duration_ms, a.outcome, a.status_code, a.response_body, a.error \
             FROM run_attempts a WHERE a.run_id = (SELECT r.id FROM runs r WHERE r.id = $1 AND r.org_id = $2) ORDER BY a.seq",
        )
        .bind(run_id)
        .bind(org)
        .fetch_all(self.reader())
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(RunAttempt {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    attempted_at: Timestamp::from_millis(row.try_get("attempted_at")?),
                    duration_ms: row.try_get("duration_ms")?,
                    outcome: row.try_get("outcome")?,
                    status_code: row.try_get("status_code")?,
                    response_body: row.try_get("response_body")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }

    /// Claims up to `limit` due run requests until `lease_until`, oldest due first.
    pub async fn claim_run_requests(
        &self,
        token: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedRequest>> {
        let sql = claim_statement("run_requests", self.dialect().claim_lock);
        let mut tx = self.begin().await?;
        let seqs: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .persistent(!self.dialect().plan_each_time)
            .bind(lease_until.millis())
            .bind(token)
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(tx.conn())
            .await?;
        let mut claimed = Vec::with_capacity(seqs.len());
        let select = "SELECT q.seq, q.run_id, q.org_id, q.request_sealed, q.synchronized, q.attempts, q.created_at, \
             (SELECT c.secret_sealed FROM api_clients c WHERE c.org_id = q.org_id ORDER BY c.created_at, c.id LIMIT 1) AS signing, \
             (SELECT c.id FROM api_clients c WHERE c.org_id = q.org_id ORDER BY c.created_at, c.id LIMIT 1) AS signing_client \
             FROM run_requests q WHERE q.seq IN";
        for row in tx.rows_with_seqs(select, &seqs).await? {
            claimed.push(ClaimedRequest {
                seq: row.try_get("seq")?,
                run_id: row.try_get("run_id")?,
                org_id: row.try_get("org_id")?,
                lease_token: token.to_owned(),
                request_sealed: row.try_get("request_sealed")?,
                synchronized: row.try_get::<i64, _>("synchronized")? != 0,
                attempts: row.try_get("attempts")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                signing_secret_sealed: row.try_get("signing")?,
                signing_client_id: row.try_get("signing_client")?,
            });
        }
        tx.commit().await?;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    /// Run requests not finished (for metrics): how many, and the oldest due time passed.
    pub async fn run_queue_depth(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM run_requests WHERE status = 'pending'").fetch_one(self.reader()).await?)
    }

    /// The earliest time an automation timer fires, if any is set.
    pub async fn next_timer(&self) -> Result<Option<Timestamp>> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT MIN(fires_at) FROM automation_timers").fetch_one(self.reader()).await?;
        Ok(next.map(Timestamp::from_millis))
    }
}

/// A run's request to queue.
#[derive(Debug, Clone, Copy)]
pub struct NewRunRequest<'a> {
    pub run_id: &'a str,
    pub org_id: &'a str,
    pub sealed: &'a str,
    pub synchronized: bool,
    /// Held until its run is approved.
    pub held: bool,
    /// Sent by an execution agent, which claims it, rather than by Wharf.
    pub agent: bool,
}

impl NewRunRequest<'_> {
    /// Where the request starts: held for approval, waiting for an agent, or due now.
    pub fn state(&self) -> RequestState {
        match (self.held, self.agent) {
            (true, _) => RequestState::Held,
            (false, true) => RequestState::Agent,
            (false, false) => RequestState::Pending,
        }
    }
}

/// An attempt of a claimed request and where it leaves the request.
#[derive(Debug, Clone, Copy)]
pub struct RunAttemptRecord<'a> {
    pub seq: i64,
    pub lease_token: &'a str,
    pub attempt: &'a RunAttempt,
    pub status: RequestState,
    pub next_attempt_at: Timestamp,
}

/// An automation timer that has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub org_id: String,
    pub blueprint: String,
    pub entity: String,
    pub property: String,
    pub fires_at: Timestamp,
}

/// The columns of a new run, fourteen values each: those the run list filters on, and the
/// run as `document`.
pub(crate) const RUN_VALUES: usize = 14;

/// Inserts `rows` runs ([`RUN_VALUES`] values each, from `$1`).
pub(crate) fn run_insert(rows: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|i| format!("({})", placeholders(1 + i * RUN_VALUES, RUN_VALUES))).collect();
    format!(
        "INSERT INTO runs (id, org_id, action, blueprint, entity, status, source, created_by, impersonated_by, \
         external_run_id, chain_depth, document, created_at, updated_at) VALUES {}",
        rows.join(", ")
    )
}

/// Queues `rows` requests (`$1`: now, their due time; then five values each, from `$2`:
/// run, organization, sealed request, synchronized, state).
pub(crate) fn request_insert(rows: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|i| format!("({}, 0, $1, $1, $1)", placeholders(2 + i * 5, 5))).collect();
    format!(
        "INSERT INTO run_requests (run_id, org_id, request_sealed, synchronized, status, attempts, next_attempt_at, \
         created_at, updated_at) VALUES {}",
        rows.join(", ")
    )
}

/// Inserts `rows` attempts of run requests (eight values each, from `$1`).
pub(crate) fn run_attempt_insert(rows: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|i| format!("({})", placeholders(1 + i * 8, 8))).collect();
    format!(
        "INSERT INTO run_attempts (id, run_id, attempted_at, duration_ms, outcome, status_code, response_body, error) \
         VALUES {}",
        rows.join(", ")
    )
}

/// Moves `rows` requests on after their attempts (`$1`: now; then four values each, from
/// `$2`: the request's `seq`, the attempt's lease token, the request's state, when it is due
/// again), each only while its lease is still the attempt's. One row is a plain `UPDATE`.
pub(crate) fn request_update(rows: usize) -> String {
    if rows == 1 {
        return "UPDATE run_requests SET status = $4, attempts = attempts + 1, next_attempt_at = $5, lease_token = NULL, \
                updated_at = $1 WHERE seq = $2 AND lease_token = $3"
            .to_owned();
    }
    let rows: Vec<String> = (0..rows).map(|i| format!("({})", placeholders(2 + i * 4, 4))).collect();
    // `column1…` are the names both databases give the columns of a VALUES list.
    format!(
        "UPDATE run_requests SET status = v.column3, attempts = attempts + 1, next_attempt_at = v.column4, \
         lease_token = NULL, updated_at = $1 FROM (VALUES {}) AS v \
         WHERE run_requests.seq = v.column1 AND run_requests.lease_token = v.column2",
        rows.join(", ")
    )
}

/// The columns of a log line, five values each.
pub(crate) const RUN_LOG_VALUES: usize = 5;

/// Inserts `rows` log lines ([`RUN_LOG_VALUES`] values each, from `$1`).
pub(crate) fn run_log_insert(rows: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|i| format!("({})", placeholders(1 + i * RUN_LOG_VALUES, RUN_LOG_VALUES))).collect();
    format!("INSERT INTO run_logs (id, run_id, message, created_by, created_at) VALUES {}", rows.join(", "))
}

/// A run of organization `$1` by id `$2`.
pub(crate) const RUN_BY_ID: &str = "SELECT document FROM runs WHERE org_id = $1 AND id = $2";

/// Writes a run's new state (`$1`…`$4`) over run `$6` of organization `$5`.
pub(crate) const UPDATE_RUN: &str =
    "UPDATE runs SET status = $1, external_run_id = $2, document = $3, updated_at = $4 WHERE org_id = $5 AND id = $6";

impl RunTx for Tx {
    /// Multi-row statements.
    async fn insert_runs(&mut self, runs: &[(&str, &Run)]) -> Result<()> {
        for chunk in runs.chunks(rows_per_statement(RUN_VALUES)) {
            let mut query = sqlx::query(AssertSqlSafe(run_insert(chunk.len())));
            for (org, run) in chunk {
                query = query
                    .bind(&run.id)
                    .bind(*org)
                    .bind(&run.action.identifier)
                    .bind(run.blueprint_identifier())
                    .bind(run.entity_identifier())
                    .bind(run.status.as_str())
                    .bind(run.source.as_str())
                    .bind(&run.created_by)
                    .bind(run.impersonated_by.as_deref())
                    .bind(run.external_run_id.as_deref())
                    .bind(i64::from(run.chain_depth))
                    .bind(to_text(run))
                    .bind(run.created_at.millis())
                    .bind(run.updated_at.millis());
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Multi-row statements.
    async fn insert_run_requests(&mut self, requests: &[NewRunRequest<'_>], now: Timestamp) -> Result<()> {
        for chunk in requests.chunks(rows_per_statement(5)) {
            let mut query = sqlx::query(AssertSqlSafe(request_insert(chunk.len()))).bind(now.millis());
            for request in chunk {
                query = query
                    .bind(request.run_id)
                    .bind(request.org_id)
                    .bind(request.sealed)
                    .bind(i64::from(request.synchronized))
                    .bind(request.state().as_str());
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Multi-row statements.
    async fn record_run_attempts(&mut self, attempts: &[RunAttemptRecord<'_>], now: Timestamp) -> Result<()> {
        record_run_attempts(self, attempts, now).await?;
        Ok(())
    }

    async fn run_for_update(&mut self, org: &str, id: &str) -> Result<Option<Run>> {
        let sql = format!("{RUN_BY_ID}{}", self.dialect.row_lock);
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(id).fetch_optional(self.conn()).await?;
        row.as_ref().map(run).transpose()
    }

    async fn update_run(&mut self, org: &str, run: &Run) -> Result<()> {
        sqlx::query(UPDATE_RUN)
            .bind(run.status.as_str())
            .bind(run.external_run_id.as_deref())
            .bind(to_text(run))
            .bind(run.updated_at.millis())
            .bind(org)
            .bind(&run.id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn record_run_attempt(
        &mut self,
        seq: i64,
        token: &str,
        attempt: &RunAttempt,
        status: RequestState,
        next_attempt_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let record = RunAttemptRecord { seq, lease_token: token, attempt, status, next_attempt_at };
        Ok(record_run_attempts(self, &[record], now).await? > 0)
    }

    /// Multi-row statements.
    async fn insert_run_logs(&mut self, logs: &[RunLog]) -> Result<()> {
        for chunk in logs.chunks(rows_per_statement(RUN_LOG_VALUES)) {
            let mut query = sqlx::query(AssertSqlSafe(run_log_insert(chunk.len())));
            for log in chunk {
                query =
                    query.bind(&log.id).bind(&log.run_id).bind(&log.message).bind(&log.created_by).bind(log.created_at.millis());
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    async fn settle_ended_run_request(&mut self, run_id: &str, now: Timestamp) -> Result<()> {
        sqlx::query(SETTLE_ENDED_REQUEST).bind(now.millis()).bind(run_id).execute(self.conn()).await?;
        Ok(())
    }
}

/// Inserts the attempts and moves their requests on (each while its lease is the attempt's);
/// how many requests moved.
async fn record_run_attempts(tx: &mut Tx, attempts: &[RunAttemptRecord<'_>], now: Timestamp) -> Result<u64> {
    for chunk in attempts.chunks(rows_per_statement(8)) {
        let mut query = sqlx::query(AssertSqlSafe(run_attempt_insert(chunk.len())));
        for record in chunk {
            let a = record.attempt;
            query = query
                .bind(&a.id)
                .bind(&a.run_id)
                .bind(a.attempted_at.millis())
                .bind(a.duration_ms)
                .bind(&a.outcome)
                .bind(a.status_code)
                .bind(a.response_body.as_deref())
                .bind(a.error.as_deref());
        }
        query.execute(tx.conn()).await?;
    }
    let mut moved = 0;
    for chunk in attempts.chunks(rows_per_statement(4)) {
        let mut query =
            sqlx::query(AssertSqlSafe(request_update(chunk.len()))).persistent(!tx.dialect.plan_each_time).bind(now.millis());
        for record in chunk {
            query = query
                .bind(record.seq)
                .bind(record.lease_token)
                .bind(record.status.as_str())
                .bind(record.next_attempt_at.millis());
        }
        moved += query.execute(tx.conn()).await?.rows_affected();
    }
    Ok(moved)
}

impl Tx {
    /// The chain depth of each of these runs of `org` that exists.
    pub async fn run_depths(&mut self, org: &str, ids: &[&str]) -> Result<Vec<(String, u32)>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!("SELECT id, chain_depth FROM runs WHERE org_id = $1 AND id IN ({})", placeholders(2, chunk.len()));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.conn()).await? {
                let depth: i64 = row.try_get("chain_depth")?;
                found.push((row.try_get("id")?, u32::try_from(depth).unwrap_or(u32::MAX)));
            }
        }
        Ok(found)
    }

    /// Moves a held request on: due now (`Pending`) or `Dropped`.
    pub async fn release_run_request(&mut self, run_id: &str, to: RequestState, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE run_requests SET status = $1, next_attempt_at = $2, updated_at = $2 WHERE run_id = $3 AND status = 'held'",
        )
        .bind(to.as_str())
        .bind(now.millis())
        .bind(run_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sets (or, with `None`, clears) when an entity's timer property fires.
    pub async fn set_timer(
        &mut self,
        org: &str,
        blueprint: &str,
        entity: &str,
        property: &str,
        fires_at: Option<Timestamp>,
    ) -> Result<()> {
        match fires_at {
            Some(at) => sqlx::query(
                "INSERT INTO automation_timers (org_id, blueprint, entity, property, fires_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (org_id, blueprint, entity, property) DO UPDATE SET fires_at = excluded.fires_at",
            )
            .bind(org)
            .bind(blueprint)
            .bind(entity)
            .bind(property)
            .bind(at.millis()),
            None => sqlx::query(
                "DELETE FROM automation_timers WHERE org_id = $1 AND blueprint = $2 AND entity = $3 AND property = $4",
            )
            .bind(org)
            .bind(blueprint)
            .bind(entity)
            .bind(property),
        }
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Up to `limit` timers that have passed by `now`, held for the transaction (another
    /// node's firing skips them); the caller fires and deletes them in it.
    pub async fn due_timers(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DueTimer>> {
        let sql = format!(
            "SELECT org_id, blueprint, entity, property, fires_at FROM automation_timers WHERE fires_at <= $1 \
             ORDER BY fires_at LIMIT $2{}",
            self.dialect.claim_lock
        );
        let found = sqlx::query(AssertSqlSafe(sql)).bind(now.millis()).bind(i64::from(limit)).fetch_all(self.conn()).await?;
        found
            .iter()
            .map(|row| {
                Ok(DueTimer {
                    org_id: row.try_get("org_id")?,
                    blueprint: row.try_get("blueprint")?,
                    entity: row.try_get("entity")?,
                    property: row.try_get("property")?,
                    fires_at: Timestamp::from_millis(row.try_get("fires_at")?),
                })
            })
            .collect()
    }

    /// Deletes a timer that fired, if it still fires at the time it was read (a change that
    /// moved it meanwhile keeps the new time).
    pub async fn delete_timer(&mut self, timer: &DueTimer) -> Result<()> {
        sqlx::query(
            "DELETE FROM automation_timers WHERE org_id = $1 AND blueprint = $2 AND entity = $3 AND property = $4 AND fires_at = $5",
        )
        .bind(&timer.org_id)
        .bind(&timer.blueprint)
        .bind(&timer.entity)
        .bind(&timer.property)
        .bind(timer.fires_at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
