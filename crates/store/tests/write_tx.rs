//! The two kinds of write transaction behind [`WriteTx`]: one scenario of catalog writes runs
//! in sqlx's `Tx` (on each store) and as a write job ([`Store::write`], on SQLite's writer
//! thread), and every read along the way, the catalog left behind and the changes recorded
//! are the same. A write job keeps its writes only when it ends with `End::Commit`.

mod common;

use common::TestStore;
use serde_json::{Map, Value, json};
use wharf_core::blueprint::{Audited, Blueprint, BlueprintDef};
use wharf_core::change::{Change, ResourceType, Trigger};
use wharf_core::entity::Entity;
use wharf_core::time::Timestamp;
use wharf_ids::NewChange;
use wharf_store::{AuditFilter, End, Reads, Store, WriteJob, WriteTx};

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
