//! Workflows (migration 0012): their versions, runs, node runs with the stepper's queue, node
//! logs and schedules. Every read a client can reach takes the organization.
//!
//! The node run queue works as the run request queue does: a claim moves a `ready` node
//! run's `next_at` to the end of its lease and stamps a fresh `lease_token`, committed before
//! the node runs; ending the node run is written only while the token is still the claim's
//! ([`Tx::node_run_for_update`] gives it back), so a node that died mid-send delays the node
//! run by one lease, and one that outlived its lease cannot overwrite a newer claim's result.
//! `claims` counts the claims (a hand-over is one), so a node run claimed again after its node
//! stopped mid-step — a WEBHOOK node's request perhaps sent — is known for what it is.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use wharf_core::blueprint::Audited;
use wharf_core::time::Timestamp;
use wharf_core::workflow::{Workflow, WorkflowDef};
use wharf_core::workflow_run::{NodeLog, NodeRun, WorkflowRun};

use crate::rows::{json, placeholders, rows_per_statement, to_text};
use crate::{Error, Result, Store, Tx};

/// Where a node run stands in the stepper's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeQueue {
    /// The stepper runs it (claimable once `next_at` passed).
    Ready,
    /// An asynchronous webhook was sent; its PATCH completes it.
    Waiting,
    /// Waits for an execution agent's claim (claimable from `next_at`).
    Agent,
    /// Taken by an agent, which completes it.
    Acked,
}

impl NodeQueue {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Waiting => "waiting",
            Self::Agent => "agent",
            Self::Acked => "acked",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        [Self::Ready, Self::Waiting, Self::Agent, Self::Acked].into_iter().find(|q| q.as_str() == text)
    }
}

/// A node run's place in the queue: `queue` `None` once it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSlot {
    pub queue: Option<NodeQueue>,
    pub next_at: Timestamp,
    pub lease_token: Option<String>,
    /// The stepper's claims of it so far (a hand-over counts as one).
    pub claims: i64,
    /// An agent node's request, sealed.
    pub request_sealed: Option<String>,
}

impl QueueSlot {
    pub fn ended(now: Timestamp) -> Self {
        Self { queue: None, next_at: now, lease_token: None, claims: 0, request_sealed: None }
    }
    /// Ready for any stepper to claim.
    pub fn ready(now: Timestamp) -> Self {
        Self { queue: Some(NodeQueue::Ready), next_at: now, lease_token: None, claims: 0, request_sealed: None }
    }

    /// Ready and claimed already, by the stepper of the node that made it (a hand-over): its
    /// claim `lease_token` holds it until `lease_until`.
    pub fn handed(lease_token: &str, lease_until: Timestamp) -> Self {
        Self {
            queue: Some(NodeQueue::Ready),
            next_at: lease_until,
            lease_token: Some(lease_token.to_owned()),
            claims: 1,
            request_sealed: None,
        }
    }

    /// Whether the stepper's claim `lease_token` still holds the node run: it is ready and
    /// the token is the claim's (a newer claim stamped another).
    pub fn claimed_by(&self, lease_token: &str) -> bool {
        self.queue == Some(NodeQueue::Ready) && self.lease_token.as_deref() == Some(lease_token)
    }
}

/// A node run claimed by the stepper.
#[derive(Debug, Clone)]
pub struct ClaimedNodeRun {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub run_id: String,
    pub lease_token: String,
    /// Claims before this one: more than none, and a node stopped while it held the node run.
    pub claims_before: i64,
}

/// A node run an agent claimed: its id, its rendered config sealed.
#[derive(Debug, Clone)]
pub struct AgentNodeRun {
    pub id: String,
    pub request_sealed: Option<String>,
}

/// A schedule whose tick is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSchedule {
    pub org_id: String,
    pub workflow: String,
    pub node: String,
    pub next_at: Timestamp,
}

/// Which runs `GET /v1/workflows/runs` shows.
#[derive(Debug, Clone, Default)]
pub struct WorkflowRunFilter {
    pub workflow: Option<String>,
    pub active: Option<bool>,
    pub limit: u32,
    pub offset: u32,
}

const WORKFLOW_COLUMNS: &str = "w.identifier, w.version_id, v.definition, w.created_at, w.created_by, w.updated_at, w.updated_by";
const WORKFLOW_FROM: &str = "FROM workflows w JOIN workflow_versions v ON v.id = w.version_id";

fn workflow(row: &AnyRow) -> Result<Workflow> {
    let document: serde_json::Value = json(&row.try_get::<String, _>("definition")?, "workflow definition")?;
    let def =
        WorkflowDef::from_stored(document).map_err(|err| Error::Corrupt { what: "workflow definition", detail: err.message })?;
    Ok(Workflow {
        def,
        version_id: row.try_get("version_id")?,
        audited: Audited {
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            created_by: row.try_get("created_by")?,
            updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            updated_by: row.try_get("updated_by")?,
        },
    })
}

fn workflow_run(row: &AnyRow) -> Result<WorkflowRun> {
    let doc = json(&row.try_get::<String, _>("document")?, "workflow run")?;
    WorkflowRun::from_json(doc).map_err(|err| Error::Corrupt { what: "workflow run", detail: err.to_string() })
}

fn node_run(row: &AnyRow) -> Result<NodeRun> {
    let doc = json(&row.try_get::<String, _>("document")?, "node run")?;
    NodeRun::from_json(doc).map_err(|err| Error::Corrupt { what: "node run", detail: err.to_string() })
}

fn slot(row: &AnyRow) -> Result<QueueSlot> {
    let queue: Option<String> = row.try_get("queue")?;
    Ok(QueueSlot {
        queue: queue.as_deref().and_then(NodeQueue::parse),
        next_at: Timestamp::from_millis(row.try_get("next_at")?),
        lease_token: row.try_get("lease_token")?,
        claims: row.try_get("claims")?,
        request_sealed: row.try_get("request_sealed")?,
    })
}

impl Store {
    /// The organization's workflows, by identifier.
    pub async fn workflows(&self, org: &str) -> Result<Vec<Workflow>> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} {WORKFLOW_FROM} WHERE w.org_id = $1 ORDER BY w.identifier");
        let found = sqlx::query(AssertSqlSafe(sql)).bind(org).fetch_all(self.reader()).await?;
        found.iter().map(workflow).collect()
    }

    pub async fn workflow(&self, org: &str, identifier: &str) -> Result<Option<Workflow>> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} {WORKFLOW_FROM} WHERE w.org_id = $1 AND w.identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.reader()).await?;
        row.as_ref().map(workflow).transpose()
    }

    /// One saved version's definition (versions never change).
    pub async fn workflow_version(&self, org: &str, version_id: &str) -> Result<Option<WorkflowDef>> {
        let row = sqlx::query("SELECT definition FROM workflow_versions WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(version_id)
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| {
            let document = json(&row.try_get::<String, _>("definition")?, "workflow definition")?;
            WorkflowDef::from_stored(document).map_err(|err| Error::Corrupt { what: "workflow definition", detail: err.message })
        })
        .transpose()
    }

    pub async fn workflow_run(&self, org: &str, id: &str) -> Result<Option<WorkflowRun>> {
        let row = sqlx::query("SELECT document FROM workflow_runs WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(workflow_run).transpose()
    }

    /// Runs, newest first.
    pub async fn workflow_runs(&self, org: &str, filter: &WorkflowRunFilter) -> Result<Vec<WorkflowRun>> {
        let mut sql = "SELECT document FROM workflow_runs WHERE org_id = $1".to_owned();
        let mut n = 1;
        if filter.workflow.is_some() {
            n += 1;
            sql.push_str(&format!(" AND workflow = ${n}"));
        }
        if let Some(active) = filter.active {
            sql.push_str(if active { " AND status = 'IN_PROGRESS'" } else { " AND status = 'COMPLETED'" });
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${} OFFSET ${}", n + 1, n + 2));
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org);
        if let Some(workflow) = &filter.workflow {
            query = query.bind(workflow);
        }
        let rows = query.bind(i64::from(filter.limit)).bind(i64::from(filter.offset)).fetch_all(self.reader()).await?;
        rows.iter().map(workflow_run).collect()
    }

    /// A run's node runs in the order they started.
    pub async fn node_runs(&self, org: &str, run_id: &str) -> Result<Vec<NodeRun>> {
        let rows = sqlx::query("SELECT document FROM workflow_node_runs WHERE org_id = $1 AND run_id = $2 ORDER BY seq")
            .bind(org)
            .bind(run_id)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(node_run).collect()
    }

    pub async fn node_run(&self, org: &str, id: &str) -> Result<Option<NodeRun>> {
        let row = sqlx::query("SELECT document FROM workflow_node_runs WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(node_run).transpose()
    }

    /// The logs of these node runs (of one organization's run), each with its node run's id,
    /// in the order written.
    pub async fn node_logs(&self, ids: &[String]) -> Result<Vec<(String, NodeLog)>> {
        let mut logs = Vec::new();
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT node_run_id, level, message, tags, created_at FROM workflow_node_run_logs \
                 WHERE node_run_id IN ({}) ORDER BY seq",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(self.reader()).await? {
                let tags: Option<String> = row.try_get("tags")?;
                logs.push((
                    row.try_get("node_run_id")?,
                    NodeLog {
                        level: row.try_get("level")?,
                        message: row.try_get("message")?,
                        tags: tags.map(|t| json(&t, "node log tags")).transpose()?,
                        created_at: Timestamp::from_millis(row.try_get("created_at")?),
                    },
                ));
            }
        }
        Ok(logs)
    }

    /// Gives back node runs handed over to a stepper that stops before running them: claimable
    /// at `now`, the hand-over not counted as a claim (only while it still holds them).
    pub async fn release_node_runs(&self, handed: &[ClaimedNodeRun], now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        for node_run in handed {
            sqlx::query(
                "UPDATE workflow_node_runs SET next_at = $1, lease_token = NULL, claims = claims - 1 \
                 WHERE org_id = $2 AND id = $3 AND lease_token = $4 AND queue = 'ready'",
            )
            .bind(now.millis())
            .bind(&node_run.org_id)
            .bind(&node_run.id)
            .bind(&node_run.lease_token)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }

    /// Whether a ready node run is claimable at `now` (a read: the stepper looks before it
    /// claims, so an idle node takes no write turn).
    pub async fn node_run_due(&self, now: Timestamp) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM workflow_node_runs WHERE queue = 'ready' AND next_at <= $1 LIMIT 1")
                .bind(now.millis())
                .fetch_optional(self.reader())
                .await?;
        Ok(found.is_some())
    }

    /// Claims up to `limit` ready node runs until `lease_until`, oldest due first.
    pub async fn claim_node_runs(
        &self,
        token: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedNodeRun>> {
        let lock = self.dialect().claim_lock;
        let sql = format!(
            "UPDATE workflow_node_runs SET next_at = $1, lease_token = $2, claims = claims + 1 WHERE seq IN \
             (SELECT seq FROM workflow_node_runs WHERE queue = 'ready' AND next_at <= $3 ORDER BY next_at LIMIT $4{lock}) \
             RETURNING seq, id, org_id, run_id, claims"
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(lease_until.millis())
            .bind(token)
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(ClaimedNodeRun {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    run_id: row.try_get("run_id")?,
                    lease_token: token.to_owned(),
                    claims_before: row.try_get::<i64, _>("claims")? - 1,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    /// The schedules due at `now`.
    pub async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<DueSchedule>> {
        let rows = sqlx::query(
            "SELECT org_id, workflow, node, next_at FROM workflow_schedules WHERE next_at <= $1 ORDER BY next_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueSchedule {
                    org_id: row.try_get("org_id")?,
                    workflow: row.try_get("workflow")?,
                    node: row.try_get("node")?,
                    next_at: Timestamp::from_millis(row.try_get("next_at")?),
                })
            })
            .collect()
    }

    /// The schedules of one workflow (node, next tick).
    pub async fn workflow_schedules(&self, org: &str, workflow: &str) -> Result<Vec<(String, Timestamp)>> {
        let rows = sqlx::query("SELECT node, next_at FROM workflow_schedules WHERE org_id = $1 AND workflow = $2 ORDER BY node")
            .bind(org)
            .bind(workflow)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|row| Ok((row.try_get("node")?, Timestamp::from_millis(row.try_get("next_at")?)))).collect()
    }

    /// Claims up to `limit` node runs waiting for agents of `org`, hidden from other claims
    /// until `visible_at`.
    pub async fn claim_agent_node_runs(
        &self,
        org: &str,
        installation: &str,
        now: Timestamp,
        visible_at: Timestamp,
        limit: u32,
    ) -> Result<Vec<AgentNodeRun>> {
        let lock = self.dialect().claim_lock;
        let sql = format!(
            "UPDATE workflow_node_runs SET next_at = $1, installation_id = $2, claimed_at = $3 WHERE seq IN \
             (SELECT seq FROM workflow_node_runs WHERE org_id = $4 AND queue = 'agent' AND next_at <= $3 \
             ORDER BY next_at, seq LIMIT $5{lock}) RETURNING seq, id, request_sealed"
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(visible_at.millis())
            .bind(installation)
            .bind(now.millis())
            .bind(org)
            .bind(i64::from(limit))
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        let mut found = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("seq")?,
                    AgentNodeRun { id: row.try_get("id")?, request_sealed: row.try_get("request_sealed")? },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found.into_iter().map(|(_, run)| run).collect())
    }

    /// Acknowledges a node run an agent claimed: whether this call took it (it was waiting for
    /// agents, not acknowledged yet).
    pub async fn ack_agent_node_run(&self, org: &str, id: &str, now: Timestamp) -> Result<AckOutcome> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE workflow_node_runs SET queue = 'acked', acked_at = $1 WHERE org_id = $2 AND id = $3 AND queue = 'agent'",
        )
        .bind(now.millis())
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?;
        let outcome = if done.rows_affected() > 0 {
            AckOutcome::Acked
        } else {
            let found: Option<Option<String>> =
                sqlx::query_scalar("SELECT queue FROM workflow_node_runs WHERE org_id = $1 AND id = $2")
                    .bind(org)
                    .bind(id)
                    .fetch_optional(tx.conn())
                    .await?;
            match found {
                None => AckOutcome::NotFound,
                Some(_) => AckOutcome::Taken,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Node runs waiting for agents (claimable now) and claimed, across organizations.
    pub async fn agent_node_queue(&self, now: Timestamp) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN next_at <= $1 THEN 1 ELSE 0 END), 0) AS waiting, \
             COALESCE(SUM(CASE WHEN next_at > $1 THEN 1 ELSE 0 END), 0) AS claimed \
             FROM workflow_node_runs WHERE queue = 'agent'",
        )
        .bind(now.millis())
        .fetch_one(self.reader())
        .await?;
        Ok((row.try_get("waiting")?, row.try_get("claimed")?))
    }
}

/// What an agent's acknowledgement of a node run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    Acked,
    /// Acknowledged already, ended, or not for agents.
    Taken,
    NotFound,
}

impl Tx {
    /// How many workflows `org` has (its limit is checked on create).
    pub async fn count_workflows(&mut self, org: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM workflows WHERE org_id = $1").bind(org).fetch_one(self.conn()).await?;
        Ok(row.try_get("n")?)
    }

    pub async fn workflow(&mut self, org: &str, identifier: &str) -> Result<Option<Workflow>> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} {WORKFLOW_FROM} WHERE w.org_id = $1 AND w.identifier = $2");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(identifier).fetch_optional(self.conn()).await?;
        row.as_ref().map(workflow).transpose()
    }

    /// Saves a new version of a workflow and makes it current (keeping when and by whom the
    /// workflow was created).
    pub async fn put_workflow(&mut self, org: &str, stored: &Workflow) -> Result<()> {
        sqlx::query("INSERT INTO workflow_versions (id, org_id, workflow, definition, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&stored.version_id)
            .bind(org)
            .bind(&stored.def.identifier)
            .bind(to_text(stored.def.document()))
            .bind(stored.audited.updated_at.millis())
            .execute(self.conn())
            .await?;
        sqlx::query(
            "INSERT INTO workflows (org_id, identifier, version_id, created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, identifier) DO UPDATE SET version_id = excluded.version_id, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(org)
        .bind(&stored.def.identifier)
        .bind(&stored.version_id)
        .bind(stored.audited.created_at.millis())
        .bind(&stored.audited.created_by)
        .bind(stored.audited.updated_at.millis())
        .bind(&stored.audited.updated_by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Deletes a workflow and its schedules (its versions stay for the runs that use them);
    /// whether there was one.
    pub async fn delete_workflow(&mut self, org: &str, identifier: &str) -> Result<bool> {
        self.set_schedules(org, identifier, &[]).await?;
        let done = sqlx::query("DELETE FROM workflows WHERE org_id = $1 AND identifier = $2")
            .bind(org)
            .bind(identifier)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces a workflow's schedules with `ticks` (node, next tick).
    pub async fn set_schedules(&mut self, org: &str, workflow: &str, ticks: &[(String, Timestamp)]) -> Result<()> {
        sqlx::query("DELETE FROM workflow_schedules WHERE org_id = $1 AND workflow = $2")
            .bind(org)
            .bind(workflow)
            .execute(self.conn())
            .await?;
        for (node, next_at) in ticks {
            sqlx::query("INSERT INTO workflow_schedules (org_id, workflow, node, next_at) VALUES ($1, $2, $3, $4)")
                .bind(org)
                .bind(workflow)
                .bind(node)
                .bind(next_at.millis())
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    /// Moves a schedule from the tick `due` to `next`: whether this call did (another node, or
    /// a save, may have moved it first).
    pub async fn advance_schedule(&mut self, due: &DueSchedule, next: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workflow_schedules SET next_at = $1 WHERE org_id = $2 AND workflow = $3 AND node = $4 AND next_at = $5",
        )
        .bind(next.millis())
        .bind(&due.org_id)
        .bind(&due.workflow)
        .bind(&due.node)
        .bind(due.next_at.millis())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn insert_workflow_run(&mut self, org: &str, run: &WorkflowRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO workflow_runs (id, org_id, workflow, version_id, status, document, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.identifier)
        .bind(org)
        .bind(&run.workflow_identifier)
        .bind(&run.workflow_version_identifier)
        .bind(run.status.as_str())
        .bind(to_text(&run.to_stored()))
        .bind(run.created_at.millis())
        .bind(run.updated_at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A run, locked until the transaction ends.
    pub async fn workflow_run_for_update(&mut self, org: &str, id: &str) -> Result<Option<WorkflowRun>> {
        let sql = format!("SELECT document FROM workflow_runs WHERE org_id = $1 AND id = $2{}", self.dialect.row_lock);
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(id).fetch_optional(self.conn()).await?;
        row.as_ref().map(workflow_run).transpose()
    }

    pub async fn update_workflow_run(&mut self, org: &str, run: &WorkflowRun) -> Result<()> {
        sqlx::query("UPDATE workflow_runs SET status = $1, document = $2, updated_at = $3 WHERE org_id = $4 AND id = $5")
            .bind(run.status.as_str())
            .bind(to_text(&run.to_stored()))
            .bind(run.updated_at.millis())
            .bind(org)
            .bind(&run.identifier)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_node_run(&mut self, org: &str, node_run: &NodeRun, slot: &QueueSlot) -> Result<()> {
        sqlx::query(
            "INSERT INTO workflow_node_runs (id, org_id, run_id, document, queue, next_at, lease_token, claims, request_sealed, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&node_run.identifier)
        .bind(org)
        .bind(&node_run.workflow_run_identifier)
        .bind(to_text(&node_run.to_stored()))
        .bind(slot.queue.map(NodeQueue::as_str))
        .bind(slot.next_at.millis())
        .bind(&slot.lease_token)
        .bind(slot.claims)
        .bind(&slot.request_sealed)
        .bind(node_run.created_at.millis())
        .bind(node_run.updated_at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A node run and its place in the queue, locked until the transaction ends.
    pub async fn node_run_for_update(&mut self, org: &str, id: &str) -> Result<Option<(NodeRun, QueueSlot)>> {
        let sql = format!(
            "SELECT document, queue, next_at, lease_token, claims, request_sealed FROM workflow_node_runs \
             WHERE org_id = $1 AND id = $2{}",
            self.dialect.row_lock
        );
        let row = sqlx::query(AssertSqlSafe(sql)).bind(org).bind(id).fetch_optional(self.conn()).await?;
        row.map(|row| Ok((node_run(&row)?, slot(&row)?))).transpose()
    }

    pub async fn update_node_run(&mut self, org: &str, node_run: &NodeRun, slot: &QueueSlot) -> Result<()> {
        sqlx::query(
            "UPDATE workflow_node_runs SET document = $1, queue = $2, next_at = $3, lease_token = $4, claims = $5, \
             request_sealed = $6, updated_at = $7 WHERE org_id = $8 AND id = $9",
        )
        .bind(to_text(&node_run.to_stored()))
        .bind(slot.queue.map(NodeQueue::as_str))
        .bind(slot.next_at.millis())
        .bind(&slot.lease_token)
        .bind(slot.claims)
        .bind(&slot.request_sealed)
        .bind(node_run.updated_at.millis())
        .bind(org)
        .bind(&node_run.identifier)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn insert_node_logs(&mut self, node_run_id: &str, logs: &[NodeLog]) -> Result<()> {
        for log in logs {
            sqlx::query(
                "INSERT INTO workflow_node_run_logs (node_run_id, level, message, tags, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(node_run_id)
            .bind(&log.level)
            .bind(&log.message)
            .bind(log.tags.as_ref().map(to_text))
            .bind(log.created_at.millis())
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

impl Store {
    /// The organization's signing client: its first API client's id and sealed secret (whose
    /// secret signs what its runs send, and as which its runs call Wharf's own API).
    pub async fn signing_client(&self, org: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT id, secret_sealed FROM api_clients WHERE org_id = $1 ORDER BY created_at, id LIMIT 1")
            .bind(org)
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| Ok((row.try_get("id")?, row.try_get("secret_sealed")?))).transpose()
    }
}
