//! [`WriterTx`]: a transaction on SQLite's writer thread, and the writer thread's statements
//! for the write traits (the catalog's, the event log's, the queue's and runs'). Each method runs its statements where it is called and returns, so
//! a job built on it alone completes on its first poll. Statements are prepared once per
//! connection (`prepare_cached`) and run one row each: on this thread a statement costs no
//! round trip. They avoid `RETURNING` (on SQLite it makes every insert keep a statement
//! journal): `seq` is the rowid, which the connection reports. The SQL text shared with the
//! sqlx path lives in the module of its table (turned from `$N` into `?N` by
//! [`super::numbered`]).

use std::collections::HashSet;
use std::sync::LazyLock;

use rusqlite::params;
use wharf_core::blueprint::Blueprint;
use wharf_core::change::Change;
use wharf_core::entity::Entity;
use wharf_core::mapping::WebhookEventStatus;
use wharf_core::run::{Run, RunAttempt, RunLog};
use wharf_core::time::Timestamp;

use super::numbered;
use crate::agent_claims::SETTLE_ENDED_REQUEST;
use crate::catalog::{EDGE_COLUMNS, EDGE_INSERT, ENTITY_CONFLICT, ENTITY_UPSERT, edge, edge_rewrite, edges_of};
use crate::changes::{CHANGE_INSERT_COLUMNS, CHANGE_VALUES};
use crate::deliveries::{INSERT_DELIVERY, TARGET_UPDATES, attempt_insert, attempt_update};
use crate::rows::{self, BLUEPRINT_COLUMNS, Columns, ENTITY_COLUMNS, placeholders, to_text};
use crate::runs::{RUN_BY_ID, UPDATE_RUN, request_insert, request_update, run, run_attempt_insert, run_insert, run_log_insert};
use crate::webhooks::{CLAIM_REQUEST_ID_COUNTED, FIRST_WITH_REQUEST_ID, INSERT_EVENTS, processed_at};
use crate::write_tx::{CatalogTx, EntityPut, EventLogTx, QueueTx, RunTx};
use crate::{
    ActiveSubscription, CompressedJson, Edge, FinishedWebhookEvent, Lease, NewRunRequest, NewWebhookEvent, Publication,
    RequestState, Result, RunAttemptRecord, Stored,
};
use wharf_core::delivery::{AttemptRecord, TargetUpdate};

/// The active subscriptions of one project or organization: the sqlx path asks for a list
/// at once (`IN`), this thread one id at a time.
const ACTIVE_SUBSCRIPTIONS_OF_PROJECT: &str = "SELECT id, org_id, project_id, events, url, headers, keys_sealed, \
     failing_since FROM subscriptions WHERE active = 1 AND project_id = ?1 ORDER BY created_at, id";
const ACTIVE_SUBSCRIPTIONS_OF_ORG: &str = "SELECT id, org_id, project_id, events, url, headers, keys_sealed, \
     failing_since FROM subscriptions WHERE active = 1 AND org_id = ?1 ORDER BY created_at, id";

/// A transaction on SQLite's writer thread (what [`crate::Store::write`] hands a job there).
pub(crate) struct WriterTx<'c> {
    pub(crate) tx: &'c rusqlite::Transaction<'c>,
    /// Set when the job records a change (the store tells the outbox's readers after it).
    pub(crate) recorded: &'c std::sync::atomic::AtomicBool,
}

impl WriterTx<'_> {
    /// Appends a change to the outbox (its `seq` is the last rowid) and notes that the job
    /// recorded one.
    fn insert_change(&self, change: &Change) -> Result<()> {
        self.recorded.store(true, std::sync::atomic::Ordering::Relaxed);
        let sql = format!("INSERT INTO changes ({CHANGE_INSERT_COLUMNS}) VALUES ({})", placeholders(1, CHANGE_VALUES));
        let t = &change.trigger;
        self.tx.prepare_cached(&sql)?.execute(params![
            change.id,
            t.org_id,
            change.resource_type.as_str(),
            change.action.as_str(),
            change.blueprint,
            change.entity,
            t.origin.as_str(),
            t.by,
            t.webhook_id,
            t.webhook_event_id,
            t.run_id,
            change.before.as_ref().map(to_text),
            change.after.as_ref().map(to_text),
            t.at.millis(),
        ])?;
        Ok(())
    }

    /// Inserts the attempts and moves their requests on (each while its lease is the
    /// attempt's), one row per statement; how many requests moved.
    fn record_run_attempts_moved(&self, attempts: &[RunAttemptRecord<'_>], now: Timestamp) -> Result<u64> {
        static SQL: LazyLock<[String; 2]> = LazyLock::new(|| [numbered(&run_attempt_insert(1)), numbered(&request_update(1))]);
        let [insert, update] = &*SQL;
        let mut insert = self.tx.prepare_cached(insert)?;
        let mut update = self.tx.prepare_cached(update)?;
        let mut moved = 0;
        for record in attempts {
            let a = record.attempt;
            insert.execute(params![
                a.id,
                a.run_id,
                a.attempted_at.millis(),
                a.duration_ms,
                a.outcome,
                a.status_code,
                a.response_body,
                a.error,
            ])?;
            moved += update.execute(params![
                now.millis(),
                record.seq,
                record.lease_token,
                record.status.as_str(),
                record.next_attempt_at.millis(),
            ])? as u64;
        }
        Ok(moved)
    }

    /// Inserts or replaces an entity's row (not its edges).
    fn upsert_entity_row(&self, org: &str, entity: &Entity) -> Result<()> {
        let sql = format!("{ENTITY_UPSERT} ({}){ENTITY_CONFLICT}", placeholders(1, 12));
        let a = &entity.audited;
        self.tx.prepare_cached(&sql)?.execute(params![
            org,
            entity.blueprint,
            entity.identifier,
            entity.title,
            entity.icon,
            to_text(&entity.team),
            to_text(&entity.properties),
            to_text(&entity.relations),
            a.created_at.millis(),
            a.created_by,
            a.updated_at.millis(),
            a.updated_by,
        ])?;
        Ok(())
    }

    /// Inserts `(relation, target blueprint, target)` edges of `entity`.
    fn insert_edges<'e>(
        &self,
        org: &str,
        entity: &Entity,
        edges: impl IntoIterator<Item = (&'e str, &'e str, &'e str)>,
    ) -> Result<()> {
        let sql = format!("{EDGE_INSERT} ({}) ON CONFLICT DO NOTHING", placeholders(1, 6));
        let mut insert = self.tx.prepare_cached(&sql)?;
        for (name, target_blueprint, target) in edges {
            insert.execute(params![org, entity.blueprint, entity.identifier, name, target_blueprint, target])?;
        }
        Ok(())
    }

    fn delete_edges(&self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM entity_relations WHERE org_id = ?1 AND blueprint = ?2 AND identifier = ?3")?
            .execute(params![org, blueprint, identifier])?;
        Ok(())
    }
}

impl CatalogTx for WriterTx<'_> {
    async fn lock(&mut self, _org: &str, _key: &str) -> Result<()> {
        Ok(()) // one writer: nothing else can write meanwhile
    }

    async fn lock_many(&mut self, _org: &str, _keys: &[String]) -> Result<()> {
        Ok(())
    }

    async fn blueprint(&mut self, org: &str, identifier: &str) -> Result<Option<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = ?1 AND identifier = ?2");
        let mut select = self.tx.prepare_cached(&sql)?;
        let mut found = select.query(params![org, identifier])?;
        found.next()?.map(rows::blueprint).transpose()
    }

    async fn blueprints(&mut self, org: &str) -> Result<Vec<Blueprint>> {
        let sql = format!("SELECT {BLUEPRINT_COLUMNS} FROM blueprints WHERE org_id = ?1 ORDER BY identifier");
        let mut select = self.tx.prepare_cached(&sql)?;
        let mut found = select.query(params![org])?;
        let mut blueprints = Vec::new();
        while let Some(row) = found.next()? {
            blueprints.push(rows::blueprint(row)?);
        }
        Ok(blueprints)
    }

    async fn entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Option<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = ?1 AND blueprint = ?2 AND identifier = ?3");
        let mut select = self.tx.prepare_cached(&sql)?;
        let mut found = select.query(params![org, blueprint, identifier])?;
        found.next()?.map(rows::entity).transpose()
    }

    /// One indexed lookup per pair.
    async fn entities_named(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<Vec<Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE org_id = ?1 AND blueprint = ?2 AND identifier = ?3");
        let mut select = self.tx.prepare_cached(&sql)?;
        let mut found = Vec::with_capacity(pairs.len());
        for (blueprint, identifier) in pairs {
            let mut rows = select.query(params![org, blueprint, identifier])?;
            if let Some(row) = rows.next()? {
                found.push(rows::entity(row)?);
            }
        }
        Ok(found)
    }

    /// One indexed lookup per pair.
    async fn existing_pairs(&mut self, org: &str, pairs: &[(&str, &str)]) -> Result<HashSet<(String, String)>> {
        let mut select =
            self.tx.prepare_cached("SELECT 1 FROM entities WHERE org_id = ?1 AND blueprint = ?2 AND identifier = ?3")?;
        let mut found = HashSet::new();
        for (blueprint, identifier) in pairs {
            if select.exists(params![org, blueprint, identifier])? {
                found.insert(((*blueprint).to_owned(), (*identifier).to_owned()));
            }
        }
        Ok(found)
    }

    async fn put_entity(&mut self, org: &str, blueprint: &Blueprint, entity: &Entity, previous: Option<&Entity>) -> Result<()> {
        self.upsert_entity_row(org, entity)?;
        match edge_rewrite(entity, previous) {
            None => return Ok(()),
            Some(true) => self.delete_edges(org, &entity.blueprint, &entity.identifier)?,
            Some(false) => {}
        }
        self.insert_edges(org, entity, edges_of(blueprint, entity))
    }

    /// One after the other: no round trips to save here.
    async fn put_entity_recorded(
        &mut self,
        org: &str,
        blueprint: &Blueprint,
        entity: &Entity,
        previous: Option<&Entity>,
        change: &mut Change,
    ) -> Result<()> {
        self.put_entity(org, blueprint, entity, previous).await?;
        self.record_change(change).await?;
        Ok(())
    }

    /// One after the other, as [`CatalogTx::put_entity_recorded`] writes each.
    async fn put_entities_recorded(&mut self, org: &str, puts: &[EntityPut]) -> Result<()> {
        for put in puts {
            let entity = &put.entity;
            self.upsert_entity_row(org, entity)?;
            if put.replaces_edges {
                self.delete_edges(org, &entity.blueprint, &entity.identifier)?;
            }
            self.insert_edges(
                org,
                entity,
                put.edges.iter().map(|(name, bp, target)| (name.as_str(), bp.as_str(), target.as_str())),
            )?;
            self.insert_change(&put.change)?;
        }
        Ok(())
    }

    async fn delete_entity(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<()> {
        self.delete_edges(org, blueprint, identifier)?;
        self.tx
            .prepare_cached("DELETE FROM entities WHERE org_id = ?1 AND blueprint = ?2 AND identifier = ?3")?
            .execute(params![org, blueprint, identifier])?;
        Ok(())
    }

    async fn referrers(&mut self, org: &str, blueprint: &str, identifier: &str) -> Result<Vec<Edge>> {
        let sql = format!(
            "SELECT {EDGE_COLUMNS} FROM entity_relations WHERE org_id = ?1 AND target_blueprint = ?2 AND target = ?3 \
             ORDER BY blueprint, identifier, relation"
        );
        let mut select = self.tx.prepare_cached(&sql)?;
        let mut found = select.query(params![org, blueprint, identifier])?;
        let mut edges = Vec::new();
        while let Some(row) = found.next()? {
            edges.push(edge(row)?);
        }
        Ok(edges)
    }

    async fn record_change(&mut self, change: &mut Change) -> Result<i64> {
        self.insert_change(change)?;
        change.seq = self.tx.last_insert_rowid();
        Ok(change.seq)
    }

    /// One prepared statement per change.
    async fn record_changes(&mut self, changes: &[Change]) -> Result<()> {
        for change in changes {
            self.insert_change(change)?;
        }
        Ok(())
    }
}

impl EventLogTx for WriterTx<'_> {
    /// One prepared statement per kind of row.
    async fn store_webhook_events(&mut self, events: &[NewWebhookEvent], now: Timestamp) -> Result<Vec<Stored>> {
        static SQL: LazyLock<[String; 3]> = LazyLock::new(|| {
            [
                numbered(CLAIM_REQUEST_ID_COUNTED),
                numbered(FIRST_WITH_REQUEST_ID),
                numbered(&format!("{INSERT_EVENTS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")),
            ]
        });
        let [claim, first, insert] = &*SQL;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            if let Some(request_id) = event.request_id.as_deref().filter(|_| event.status == WebhookEventStatus::Pending) {
                let claimed = self.tx.prepare_cached(claim)?.execute(params![
                    event.webhook_id,
                    request_id,
                    event.id,
                    event.dedupe_until.millis(),
                    now.millis()
                ])?;
                if claimed == 0 {
                    let id: String =
                        self.tx.prepare_cached(first)?.query_row(params![event.webhook_id, request_id], |row| row.get(0))?;
                    outcomes.push(Stored::Duplicate(id));
                    continue;
                }
            }
            self.tx.prepare_cached(insert)?.execute(params![
                event.id,
                event.org_id,
                event.webhook_id,
                event.status.as_str(),
                event.request_id,
                event.request.as_ref().map(CompressedJson::as_bytes),
                event.result,
                event.received_at.millis(),
                processed_at(event),
            ])?;
            outcomes.push(Stored::Stored);
        }
        Ok(outcomes)
    }

    /// One prepared statement per event.
    async fn finish_webhook_events(&mut self, events: &[FinishedWebhookEvent], at: Timestamp) -> Result<u64> {
        let mut update = self.tx.prepare_cached(
            "UPDATE webhook_events SET status = ?2, result = ?3, processed_at = ?4 WHERE id = ?1 AND status = 'PENDING'",
        )?;
        let mut done = 0;
        for event in events {
            done += update.execute(params![event.id, event.status.as_str(), event.result, at.millis()])? as u64;
        }
        Ok(done)
    }
}

impl QueueTx for WriterTx<'_> {
    async fn active_subscriptions(&mut self, ids: &[String], by_org: bool) -> Result<Vec<ActiveSubscription>> {
        let sql = if by_org { ACTIVE_SUBSCRIPTIONS_OF_ORG } else { ACTIVE_SUBSCRIPTIONS_OF_PROJECT };
        let mut select = self.tx.prepare_cached(sql)?;
        let mut found = Vec::new();
        for id in ids {
            let mut rows = select.query(params![id])?;
            while let Some(row) = rows.next()? {
                found.push(ActiveSubscription::from_columns(row)?);
            }
        }
        Ok(found)
    }

    async fn insert_published_events(&mut self, publications: &[Publication]) -> Result<Vec<Option<i64>>> {
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO project_events (id, project_id, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (project_id, id) DO NOTHING",
        )?;
        let mut seqs = Vec::with_capacity(publications.len());
        for p in publications {
            let event = &p.event;
            // No row inserted: the project already has this id (an earlier event of this batch too).
            let inserted =
                insert.execute(params![event.id, p.project_id, event.event_type, event.payload, event.timestamp.millis()])? == 1;
            seqs.push(inserted.then(|| self.tx.last_insert_rowid()));
        }
        Ok(seqs)
    }

    async fn insert_deliveries(
        &mut self,
        pairs: &[(String, i64)],
        retries: bool,
        now: Timestamp,
        lease: Option<Lease<'_>>,
    ) -> Result<Vec<(String, i64)>> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| numbered(&format!("{INSERT_DELIVERY} ($5, $6, $7, 'pending', $2, 0, $3, $4, $1, $1)")));
        let mut insert = self.tx.prepare_cached(&SQL)?;
        let due = lease.map_or(now, |l| l.until);
        let mut inserted = Vec::with_capacity(pairs.len());
        for (subscription, event_seq) in pairs {
            let id = wharf_ids::new_delivery_id();
            let token = lease.map(|l| l.token);
            insert.execute(params![now.millis(), i64::from(retries), due.millis(), token, id, subscription, event_seq])?;
            inserted.push((id, self.tx.last_insert_rowid()));
        }
        Ok(inserted)
    }

    /// The sqlx path's statements with one row each.
    async fn record_attempts(&mut self, records: &[AttemptRecord], targets: &[TargetUpdate], now: Timestamp) -> Result<()> {
        if records.is_empty() && targets.is_empty() {
            return Ok(());
        }
        static SQL: LazyLock<[String; 5]> = LazyLock::new(|| {
            let [succeeded, failed, disable] = TARGET_UPDATES.map(numbered);
            [numbered(&attempt_insert(1)), numbered(&attempt_update(1)), succeeded, failed, disable]
        });
        let [insert, update, succeeded, failed, disable] = &*SQL;
        let mut insert = self.tx.prepare_cached(insert)?;
        let mut update = self.tx.prepare_cached(update)?;
        for r in records {
            insert.execute(params![
                r.id,
                r.delivery_seq,
                r.attempted_at.millis(),
                r.duration_ms,
                r.url,
                r.outcome,
                r.status_code,
                r.response_headers,
                r.response_body,
                r.error,
            ])?;
            update.execute(params![
                now.millis(),
                r.delivery_seq,
                r.lease_token,
                r.status.as_str(),
                r.attempts,
                r.next_attempt_at.millis(),
                r.status_code,
                r.last_error(),
            ])?;
        }
        for target in targets {
            match target {
                TargetUpdate::Succeeded(id) => self.tx.prepare_cached(succeeded)?.execute(params![id])?,
                TargetUpdate::Failed(id, at) => self.tx.prepare_cached(failed)?.execute(params![at.millis(), id])?,
                TargetUpdate::Disable(id, reason) => {
                    self.tx.prepare_cached(disable)?.execute(params![reason, now.millis(), id])?
                }
            };
        }
        Ok(())
    }
}

impl RunTx for WriterTx<'_> {
    /// One prepared statement per run.
    async fn insert_runs(&mut self, runs: &[(&str, &Run)]) -> Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| numbered(&run_insert(1)));
        let mut insert = self.tx.prepare_cached(&SQL)?;
        for (org, run) in runs {
            insert.execute(params![
                run.id,
                org,
                run.action.identifier,
                run.blueprint_identifier(),
                run.entity_identifier(),
                run.status.as_str(),
                run.source.as_str(),
                run.created_by,
                run.impersonated_by,
                run.external_run_id,
                i64::from(run.chain_depth),
                to_text(run),
                run.created_at.millis(),
                run.updated_at.millis(),
            ])?;
        }
        Ok(())
    }

    /// One prepared statement per request.
    async fn insert_run_requests(&mut self, requests: &[NewRunRequest<'_>], now: Timestamp) -> Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| numbered(&request_insert(1)));
        let mut insert = self.tx.prepare_cached(&SQL)?;
        for request in requests {
            insert.execute(params![
                now.millis(),
                request.run_id,
                request.org_id,
                request.sealed,
                i64::from(request.synchronized),
                request.state().as_str(),
            ])?;
        }
        Ok(())
    }

    /// The sqlx path's statements with one row each.
    async fn record_run_attempts(&mut self, attempts: &[RunAttemptRecord<'_>], now: Timestamp) -> Result<()> {
        self.record_run_attempts_moved(attempts, now)?;
        Ok(())
    }

    /// No lock to take: one writer.
    async fn run_for_update(&mut self, org: &str, id: &str) -> Result<Option<Run>> {
        static SQL: LazyLock<String> = LazyLock::new(|| numbered(RUN_BY_ID));
        let mut select = self.tx.prepare_cached(&SQL)?;
        let mut found = select.query(params![org, id])?;
        found.next()?.map(run).transpose()
    }

    async fn update_run(&mut self, org: &str, run: &Run) -> Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| numbered(UPDATE_RUN));
        self.tx.prepare_cached(&SQL)?.execute(params![
            run.status.as_str(),
            run.external_run_id,
            to_text(run),
            run.updated_at.millis(),
            org,
            run.id,
        ])?;
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
        Ok(self.record_run_attempts_moved(&[record], now)? > 0)
    }

    /// One prepared statement per line.
    async fn insert_run_logs(&mut self, logs: &[RunLog]) -> Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| numbered(&run_log_insert(1)));
        let mut insert = self.tx.prepare_cached(&SQL)?;
        for log in logs {
            insert.execute(params![log.id, log.run_id, log.message, log.created_by, log.created_at.millis()])?;
        }
        Ok(())
    }

    async fn settle_ended_run_request(&mut self, run_id: &str, now: Timestamp) -> Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| numbered(SETTLE_ENDED_REQUEST));
        self.tx.prepare_cached(&SQL)?.execute(params![now.millis(), run_id])?;
        Ok(())
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> Result<String> {
        Ok(self.get(name)?)
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name)?)
    }

    fn int(&self, name: &str) -> Result<i64> {
        Ok(self.get(name)?)
    }

    fn optional_int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name)?)
    }
}
