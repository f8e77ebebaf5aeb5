//! The two kinds of write transaction behind [`WriteTx`]: one scenario of catalog writes runs
//! in sqlx's `Tx` (on each store) and as a write job ([`Store::write`], on SQLite's writer
//! thread), and every read along the way, the catalog left behind and the changes recorded
//! are the same. So are runs' writes ([`wharf_store::RunTx`]: new runs, their requests and
//! changes, attempts under a lease and stale ones). A write job keeps its writes only when it
//! ends with `End::Commit`.

mod common;

use common::TestStore;
use serde_json::{Map, Value, json};
use wharf_core::action::ActionDef;
use wharf_core::blueprint::{Audited, Blueprint, BlueprintDef};
use wharf_core::change::{Change, ResourceType, Trigger};
use wharf_core::entity::Entity;
use wharf_core::run::{NewRun, Run, RunAttempt, RunSource, RunStatus};
use wharf_core::time::Timestamp;
use wharf_ids::NewChange;
use wharf_store::{
    AuditFilter, Edge, End, EntityPut, NewRunRequest, Reads, RequestState, RunAttemptRecord, Store, WriteJob, WriteTx,
};

const ORG: &str = "org";

fn at() -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000)
}

fn blueprint(doc: Value) -> Blueprint {
    let def: BlueprintDef = serde_json::from_value(doc).unwrap();
    Blueprint { def, audited: Audited::new("test", at()) }
}

fn entity(blueprint: &str, identifier: &str, relations: Value) -> Entity {
    let Value::Object(relations) = relations else { panic!("relations are an object") };
    Entity {
        identifier: identifier.into(),
        title: Some(format!("{identifier} title")),
        icon: None,
        blueprint: blueprint.into(),
        team: vec!["platform".into()],
        properties: Map::from_iter([("tier".to_owned(), json!(1))]),
        relations,
        audited: Audited::new("test", at()),
    }
}

fn change(entity: &Entity, before: Option<&Entity>) -> Change {
    let trigger = Trigger::api(ORG, "test", at());
    Change::new(
        ResourceType::Entity,
        &entity.blueprint,
        Some(&entity.identifier),
        &trigger,
        before.map(Entity::to_json),
        Some(entity.to_json()),
    )
}

/// An organization and the blueprints the scenario writes entities of (through sqlx: blueprint writes are not
/// part of [`WriteTx`]).
async fn blueprints(store: &Store) -> (Blueprint, Blueprint) {
    let team = blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {}}}));
    let service = blueprint(json!({"identifier": "service", "title": "Service", "schema": {"properties": {}},
        "relations": {"owner": {"target": "team", "required": false}}}));
    common::organization(store, ORG, at()).await;
    let mut tx = store.begin().await.unwrap();
    tx.put_blueprint(ORG, &team).await.unwrap();
    tx.put_blueprint(ORG, &service).await.unwrap();
    tx.commit().await.unwrap();
    (team, service)
}

/// Writes and reads through `tx`; returns what each read saw.
async fn scenario(tx: &mut impl WriteTx, team: &Blueprint, service: &Blueprint) -> Vec<String> {
    let mut seen = Vec::new();
    let mut seqs = Vec::new();
    tx.lock(ORG, "entity/service/s1").await.unwrap();
    let t1 = entity("team", "t1", json!({}));
    let mut created = change(&t1, None);
    tx.put_entity_recorded(ORG, team, &t1, None, &mut created).await.unwrap();
    seqs.push(created.seq);
    let s1 = entity("service", "s1", json!({"owner": "t1"}));
    let mut created = change(&s1, None);
    tx.put_entity_recorded(ORG, service, &s1, None, &mut created).await.unwrap();
    seqs.push(created.seq);

    let mut existing: Vec<_> =
        tx.existing_pairs(ORG, &[("team", "t1"), ("team", "t2"), ("service", "s1")]).await.unwrap().into_iter().collect();
    existing.sort();
    seen.push(format!("existing {existing:?}"));
    seen.push(format!("referrers of t1 {:?}", tx.referrers(ORG, "team", "t1").await.unwrap()));

    // Moving the relation rewrites the edges; writing the same relations again keeps them.
    let mut moved = s1.clone();
    moved.relations.insert("owner".into(), json!("t2"));
    tx.put_entity(ORG, service, &moved, Some(&s1)).await.unwrap();
    seen.push(format!("referrers of t1 after the move {:?}", tx.referrers(ORG, "team", "t1").await.unwrap()));
    seen.push(format!("referrers of t2 after the move {:?}", tx.referrers(ORG, "team", "t2").await.unwrap()));
    let mut retitled = moved.clone();
    retitled.title = Some("renamed".into());
    tx.put_entity(ORG, service, &retitled, Some(&moved)).await.unwrap();
    seen.push(format!("referrers of t2 after a retitle {:?}", tx.referrers(ORG, "team", "t2").await.unwrap()));
    seen.push(format!("s1 {:?}", tx.entity(ORG, "service", "s1").await.unwrap()));

    // Several entities in one call, one of them twice: its second write replaces the first's
    // edge, and the changes are recorded in the order given.
    let s2 = entity("service", "s2", json!({"owner": "t2"}));
    let s3 = entity("service", "s3", json!({}));
    let mut s2_moved = s2.clone();
    s2_moved.relations.insert("owner".into(), json!("t3"));
    let puts = [
        EntityPut::new(service, s2.clone(), None, change(&s2, None)),
        EntityPut::new(service, s3.clone(), None, change(&s3, None)),
        EntityPut::new(service, s2_moved.clone(), Some(&s2), change(&s2_moved, Some(&s2))),
    ];
    tx.put_entities_recorded(ORG, &puts).await.unwrap();
    let sources = |edges: Vec<Edge>| edges.into_iter().map(|e| e.identifier).collect::<Vec<_>>();
    let into_t2 = sources(tx.referrers(ORG, "team", "t2").await.unwrap());
    let into_t3 = sources(tx.referrers(ORG, "team", "t3").await.unwrap());
    assert_eq!((&into_t2[..], &into_t3[..]), (&["s1".to_owned()][..], &["s2".to_owned()][..]), "s2's edge moved to t3");
    seen.push(format!("after a batch: into t2 {into_t2:?}, into t3 {into_t3:?}"));
    seen.push(format!("s2 {:?}", tx.entity(ORG, "service", "s2").await.unwrap()));
    seen.push(format!("s3 {:?}", tx.entity(ORG, "service", "s3").await.unwrap()));

    tx.delete_entity(ORG, "team", "t1").await.unwrap();
    let mut deleted =
        Change::new(ResourceType::Entity, "team", Some("t1"), &Trigger::api(ORG, "test", at()), Some(t1.to_json()), None);
    seqs.push(tx.record_change(&mut deleted).await.unwrap());
    seen.push(format!("t1 after its delete {:?}", tx.entity(ORG, "team", "t1").await.unwrap()));
    seen.push(format!("blueprint {:?}", tx.blueprint(ORG, "service").await.unwrap()));
    seen.push(format!("no blueprint {:?}", tx.blueprint(ORG, "nothing").await.unwrap()));
    let names: Vec<String> = tx.blueprints(ORG).await.unwrap().iter().map(|b| b.identifier().to_owned()).collect();
    seen.push(format!("blueprints {names:?}"));
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "each change gets a larger seq: {seqs:?}");
    seen
}

fn every_change() -> AuditFilter {
    AuditFilter { limit: 100, ..AuditFilter::default() }
}

/// The catalog and the changes a store holds after the scenario (change ids and seqs aside).
async fn outcome(store: &Store) -> Vec<String> {
    let mut state = Vec::new();
    for (bp, id) in [("team", "t1"), ("team", "t2"), ("service", "s1")] {
        state.push(format!("{bp}/{id}: {:?}", store.entity(ORG, bp, id).await.unwrap()));
    }
    let nodes = [("team".to_owned(), "t2".to_owned())];
    state.push(format!("edges into t2: {:?}", store.edges(ORG, &nodes, false).await.unwrap()));
    for c in store.audit(ORG, &every_change()).await.unwrap() {
        state.push(format!("{:?} {} {:?} {:?} {:?}", c.action, c.blueprint, c.entity, c.before, c.after));
    }
    state
}

/// Runs the scenario in a sqlx `Tx`; returns what it saw and what it left.
async fn through_sqlx(store: &Store) -> (Vec<String>, Vec<String>) {
    let (team, service) = blueprints(store).await;
    let mut tx = store.begin().await.unwrap();
    let seen = scenario(&mut tx, &team, &service).await;
    tx.commit().await.unwrap();
    (seen, outcome(store).await)
}

/// The scenario as a write job.
struct Scenario {
    team: Blueprint,
    service: Blueprint,
}

impl WriteJob for Scenario {
    type Output = Vec<String>;
    type Error = wharf_store::Error;

    async fn run(self, tx: &mut impl WriteTx) -> wharf_store::Result<End<Vec<String>>> {
        Ok(End::Commit(scenario(tx, &self.team, &self.service).await))
    }
}

/// On SQLite a write job that reads only through its transaction runs on the writer thread.
async fn through_writer_thread(store: &Store) -> (Vec<String>, Vec<String>) {
    let (team, service) = blueprints(store).await;
    let seen = store.write(Scenario { team, service }).await.unwrap();
    (seen, outcome(store).await)
}

/// Writes one team, then ends as `end` says (or fails, with `end` `None`).
struct PutTeam {
    team: Blueprint,
    identifier: &'static str,
    end: Option<fn(()) -> End<()>>,
}

impl WriteJob for PutTeam {
    type Output = ();
    type Error = wharf_store::Error;

    async fn run(self, tx: &mut impl WriteTx) -> wharf_store::Result<End<()>> {
        let t = entity("team", self.identifier, json!({}));
        tx.put_entity_recorded(ORG, &self.team, &t, None, &mut change(&t, None)).await?;
        match self.end {
            Some(end) => Ok(end(())),
            None => Err(wharf_store::Error::Writer("the work failed".into())),
        }
    }
}

#[tokio::test]
async fn the_writer_thread_writes_what_sqlx_writes() {
    let sqlx_store = TestStore::sqlite().await;
    let expected = through_sqlx(&sqlx_store.store).await;
    sqlx_store.drop_database().await;
    let wrote = |what: &str| expected.1.iter().any(|line| line.contains(what));
    assert!(wrote("renamed") && wrote("Delete team"), "the scenario wrote: {:#?}", expected.1);
    // The batch's changes are in the audit log in the order given, as t1's and s1's are.
    let at = |what: &str| expected.1.iter().position(|line| line.contains(what)).unwrap_or_else(|| panic!("{what}"));
    let order = |positions: &[usize]| positions.windows(2).map(|w| w[0] < w[1]).collect::<Vec<_>>();
    let written = order(&[at(r#"Create team Some("t1")"#), at(r#"Create service Some("s1")"#)]);
    let batch =
        order(&[at(r#"Create service Some("s2")"#), at(r#"Create service Some("s3")"#), at(r#"Update service Some("s2")"#)]);
    assert_eq!(batch, vec![written[0]; 2], "{:#?}", expected.1);

    let thread_store = TestStore::sqlite().await;
    assert_eq!(through_writer_thread(&thread_store.store).await, expected);
    thread_store.drop_database().await;

    if let Some(postgres) = TestStore::postgres().await {
        assert_eq!(through_sqlx(&postgres.store).await, expected, "PostgreSQL");
        postgres.drop_database().await;
    } else {
        eprintln!("PostgreSQL suite off");
    }
}

async fn keeps_its_writes_only_on_commit(test: TestStore) {
    let store = &test.store;
    let (team, _) = blueprints(store).await;
    let write = |identifier: &'static str, end| store.write(PutTeam { team: team.clone(), identifier, end });
    write("kept", Some(End::Commit)).await.unwrap();
    write("undone", Some(End::Rollback)).await.unwrap();
    assert!(write("failed", None).await.is_err());
    assert!(store.entity(ORG, "team", "kept").await.unwrap().is_some());
    assert!(store.entity(ORG, "team", "undone").await.unwrap().is_none(), "End::Rollback undoes the job");
    assert!(store.entity(ORG, "team", "failed").await.unwrap().is_none(), "an error undoes the job");
    let changes = store.audit(ORG, &every_change()).await.unwrap();
    assert_eq!(changes.iter().map(|c| c.entity.clone().unwrap()).collect::<Vec<_>>(), ["kept"]);
    test.drop_database().await;
}

#[tokio::test]
async fn a_writer_thread_job_keeps_its_writes_only_on_commit() {
    keeps_its_writes_only_on_commit(TestStore::sqlite().await).await;
}

#[tokio::test]
async fn a_unit_of_work_on_postgres_keeps_its_writes_only_on_commit() {
    let Some(test) = TestStore::postgres().await else { return eprintln!("PostgreSQL suite off") };
    keeps_its_writes_only_on_commit(test).await;
}

/// Reads a blueprint through the store's pool (outside its transaction), then writes a team.
struct ReadThenWrite {
    store: Store,
}

impl WriteJob for ReadThenWrite {
    type Output = ();
    type Error = wharf_store::Error;

    fn reads(&self) -> Reads {
        Reads::AlsoOutside
    }

    async fn run(self, tx: &mut impl WriteTx) -> wharf_store::Result<End<()>> {
        let team = self.store.blueprint(ORG, "team").await?.expect("the team blueprint");
        let t = entity("team", "read-first", json!({}));
        tx.put_entity(ORG, &team, &t, None).await?;
        Ok(End::Commit(()))
    }
}

#[tokio::test]
async fn a_job_that_reads_outside_its_transaction_runs_where_it_may_wait() {
    let test = TestStore::sqlite().await;
    let store = &test.store;
    blueprints(store).await;
    store.write(ReadThenWrite { store: store.clone() }).await.unwrap();
    assert!(store.entity(ORG, "team", "read-first").await.unwrap().is_some());
    test.drop_database().await;
}

/// A run of action `deploy` by `by`, as the run committer writes it.
fn new_run(id: &str, by: &str) -> Run {
    let def = ActionDef::parse(
        json!({"identifier": "deploy", "title": "Deploy",
               "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service"},
               "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/deploy"}}),
        None,
    )
    .unwrap();
    Run::new(NewRun {
        id: id.into(),
        action: &def,
        blueprint: Some(json!({"identifier": "service"})),
        entity: Some(json!({"identifier": "api"})),
        properties: Map::new(),
        raw_properties: Map::new(),
        source: RunSource::Api,
        by: by.into(),
        impersonated_by: None,
        chain_depth: 1,
        at: at(),
    })
}

fn run_change(run: &Run, before: Option<&Run>) -> Change {
    let trigger = Trigger { run_id: Some(run.id.clone()), ..Trigger::api(ORG, "test", at()) };
    Change::new(ResourceType::Run, "service", Some("api"), &trigger, before.map(Run::to_json), Some(run.to_json()))
}

fn run_attempt(id: &str, run: &str) -> RunAttempt {
    RunAttempt {
        id: id.into(),
        run_id: run.into(),
        attempted_at: at().plus_millis(2),
        duration_ms: 3,
        outcome: "success".into(),
        status_code: Some(200),
        response_body: Some(format!("answer to {id}")),
        error: None,
    }
}

/// New runs as the run committer writes them: r1 and r2 queue their requests, r3's is held,
/// r4's waits for an agent; r2 is then reported on. Returns what its reads saw.
async fn new_runs(tx: &mut impl WriteTx) -> Vec<String> {
    let (r1, r2, r3, r4) = (new_run("r1", "c1"), new_run("r2", "c2"), new_run("r3", "c3"), new_run("r4", "c4"));
    tx.insert_runs(&[(ORG, &r1), (ORG, &r2), (ORG, &r3), (ORG, &r4)]).await.unwrap();
    let changes = [run_change(&r1, None), run_change(&r2, None), run_change(&r3, None), run_change(&r4, None)];
    tx.record_changes(&changes).await.unwrap();
    let request = |run: &'static str, synchronized, held, agent| NewRunRequest {
        run_id: run,
        org_id: ORG,
        sealed: run,
        synchronized,
        held,
        agent,
    };
    let requests = [
        request("r1", true, false, false),
        request("r2", false, false, false),
        request("r3", false, true, false),
        request("r4", false, false, true),
    ];
    tx.insert_run_requests(&requests, at()).await.unwrap();
    let mut seen = vec![format!("r1 {:?}", tx.run_for_update(ORG, "r1").await.unwrap())];
    seen.push(format!("r1 of another organization {:?}", tx.run_for_update("other", "r1").await.unwrap()));
    seen.push(format!("no run {:?}", tx.run_for_update(ORG, "r9").await.unwrap()));
    let mut reported = tx.run_for_update(ORG, "r2").await.unwrap().expect("r2 was inserted");
    reported.status = RunStatus::Success;
    reported.external_run_id = Some("ext-2".into());
    reported.updated_at = at().plus_millis(1);
    tx.update_run(ORG, &reported).await.unwrap();
    tx.record_change(&mut run_change(&reported, Some(&r2))).await.unwrap();
    seen.push(format!("r2 reported {:?}", tx.run_for_update(ORG, "r2").await.unwrap()));
    seen
}

/// Attempts of the requests claimed under `token` (r1's and r2's, by their `seq`): each moves
/// its request only under the claim's token, and only once.
async fn attempts(tx: &mut impl WriteTx, r1: i64, r2: i64, token: &str) -> Vec<String> {
    let now = at().plus_millis(3);
    let mut seen = Vec::new();
    for (attempt, lease) in [("a1", "stale"), ("a2", token), ("a3", token)] {
        let moved =
            tx.record_run_attempt(r1, lease, &run_attempt(attempt, "r1"), RequestState::Succeeded, now, now).await.unwrap();
        seen.push(format!("{attempt} under {lease} moved r1's request: {moved}"));
    }
    let (stale, fresh) = (run_attempt("a4", "r2"), run_attempt("a5", "r2"));
    let stale =
        RunAttemptRecord { seq: r2, lease_token: "stale", attempt: &stale, status: RequestState::Failed, next_attempt_at: now };
    let due = at().plus_millis(50);
    let fresh =
        RunAttemptRecord { seq: r2, lease_token: token, attempt: &fresh, status: RequestState::Pending, next_attempt_at: due };
    tx.record_run_attempts(&[stale, fresh], now).await.unwrap();
    tx.record_run_attempts(&[], now).await.unwrap();
    seen
}

/// The runs' scenario as two write jobs with a claim between them.
enum RunsJob {
    NewRuns,
    Attempts { r1: i64, r2: i64, token: String },
}

impl WriteJob for RunsJob {
    type Output = Vec<String>;
    type Error = wharf_store::Error;

    async fn run(self, tx: &mut impl WriteTx) -> wharf_store::Result<End<Vec<String>>> {
        Ok(End::Commit(match self {
            Self::NewRuns => new_runs(tx).await,
            Self::Attempts { r1, r2, token } => attempts(tx, r1, r2, &token).await,
        }))
    }
}

/// Runs the runs' scenario (as write jobs, or in sqlx `Tx`s); returns what it saw and the
/// runs, attempts, requests and changes it left.
async fn runs_scenario(store: &Store, as_jobs: bool) -> (Vec<String>, Vec<String>) {
    common::organization(store, ORG, at()).await;
    let commits = store.outbox_commits();
    let mut seen = if as_jobs {
        store.write(RunsJob::NewRuns).await.unwrap()
    } else {
        let mut tx = store.begin().await.unwrap();
        let seen = new_runs(&mut tx).await;
        tx.commit().await.unwrap();
        seen
    };
    assert!(commits.has_changed().unwrap(), "a write of run changes tells the outbox's readers");
    let claim_at = at().plus_millis(1);
    let claimed = store.claim_run_requests("lease-1", claim_at, claim_at.plus_millis(1_000), 10).await.unwrap();
    let seq = |run: &str| claimed.iter().find(|c| c.run_id == run).map(|c| c.seq).expect("claimed");
    seen.push(format!("claimed {:?}", claimed.iter().map(|c| (&c.run_id, c.synchronized, c.attempts)).collect::<Vec<_>>()));
    let (r1, r2) = (seq("r1"), seq("r2"));
    seen.extend(if as_jobs {
        store.write(RunsJob::Attempts { r1, r2, token: "lease-1".into() }).await.unwrap()
    } else {
        let mut tx = store.begin().await.unwrap();
        let seen = attempts(&mut tx, r1, r2, "lease-1").await;
        tx.commit().await.unwrap();
        seen
    });

    let mut state = Vec::new();
    for id in ["r1", "r2", "r3"] {
        state.push(format!("{id}: {:?}", store.run(ORG, id).await.unwrap()));
        let attempts: Vec<String> = store.run_attempts(ORG, id).await.unwrap().iter().map(|a| format!("{a:?}")).collect();
        state.push(format!("{id}'s attempts: {attempts:?}"));
    }
    state.push(format!("pending requests: {}", store.run_queue_depth().await.unwrap()));
    let later = at().plus_millis(10_000);
    let due: Vec<_> = store.claim_run_requests("lease-2", later, later.plus_millis(1_000), 10).await.unwrap();
    state.push(format!("due later {:?}", due.iter().map(|c| (&c.run_id, &c.request_sealed, c.attempts)).collect::<Vec<_>>()));
    let for_agents = store.claim_agent_runs(ORG, "agent-1", later, later.plus_millis(1_000), 10).await.unwrap();
    state.push(format!("agents claimed {:?}", for_agents.iter().map(|c| (&c.run.id, &c.request_sealed)).collect::<Vec<_>>()));
    for c in store.audit(ORG, &every_change()).await.unwrap() {
        state.push(format!("{:?} {:?} {} {:?} {:?}", c.resource_type, c.action, c.blueprint, c.before, c.after));
    }
    (seen, state)
}

#[tokio::test]
async fn the_writer_thread_writes_runs_as_sqlx_does() {
    let sqlx_store = TestStore::sqlite().await;
    let expected = runs_scenario(&sqlx_store.store, false).await;
    sqlx_store.drop_database().await;
    let (seen, state) = &expected;
    // What the scenario must show, whichever way it runs.
    let saw = |what: &str| seen.iter().any(|line| line.contains(what));
    assert!(saw("r1 Some(Run") && saw("r1 of another organization None") && saw("no run None"), "{seen:#?}");
    assert!(saw("ext-2"), "a run's update reads back in its transaction: {seen:#?}");
    assert!(
        saw(r#"claimed [("r1", true, 0), ("r2", false, 0)]"#),
        "the held and the agent's requests are not claimed: {seen:#?}"
    );
    assert!(saw("a1 under stale moved r1's request: false"), "{seen:#?}");
    assert!(saw("a2 under lease-1 moved r1's request: true"), "{seen:#?}");
    assert!(saw("a3 under lease-1 moved r1's request: false"), "a lease moves its request once: {seen:#?}");
    let left = |what: &str| state.iter().any(|line| line.contains(what));
    assert!(left("pending requests: 1"), "{state:#?}");
    assert!(left(r#"agents claimed [("r4", "r4")]"#), "r4's request waits for an agent: {state:#?}");
    assert!(left(r#"due later [("r2", "r2", 1)]"#), "r2's request moved on under its lease only: {state:#?}");
    assert!(left("a1") && left("a4") && left("a5"), "attempts are recorded whatever their lease: {state:#?}");
    assert_eq!(state.iter().filter(|line| line.starts_with("Run ")).count(), 5, "every run change is recorded: {state:#?}");

    let thread_store = TestStore::sqlite().await;
    assert_eq!(runs_scenario(&thread_store.store, true).await, expected, "SQLite's writer thread");
    thread_store.drop_database().await;

    if let Some(postgres) = TestStore::postgres().await {
        assert_eq!(runs_scenario(&postgres.store, true).await, expected, "PostgreSQL");
        postgres.drop_database().await;
    } else {
        eprintln!("PostgreSQL suite off");
    }
}
