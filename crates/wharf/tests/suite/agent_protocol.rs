//! Port's polling protocol for execution agents (issue 25, points 1, 2 and 4; reference §5.2)
//! through the HTTP API of a real server, on both stores, played by the test as an agent
//! would: `agent: true` runs are not sent but wait to be claimed; a claim hands each run out
//! once and hides it for its visibility timeout; an acknowledged run is never handed out
//! again; a run claimed and not acknowledged in time is claimed again (its agent died); one
//! acknowledged and not reported stays `IN_PROGRESS`, showing who took it; competing agents
//! each get distinct runs; a long poll answers when a run arrives; secret inputs are
//! encrypted for the agent as Port does; the organization takes Port's agent's settings.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::Receiver;
use common::{CLIENT_SECRET, TestServer, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_stores!(
    claims_hand_each_run_out_once,
    an_unacknowledged_claim_lapses,
    competing_agents_get_distinct_runs,
    a_long_poll_answers_when_a_run_arrives,
    runs_that_end_or_wait_for_approval_are_not_handed_out,
    secret_inputs_are_encrypted_for_the_agent,
    port_agents_settings_and_bad_claims,
);

const CLAIM: &str = "/v1/actions/runs/claim-pending";
const ACK: &str = "/v1/actions/runs/ack";

fn agent_action(identifier: &str, url: &str, synchronized: bool) -> Value {
    json!({
        "identifier": identifier, "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "CREATE", "userInputs": {
            "properties": {"version": {"type": "string"}}
        }},
        "invocationMethod": {
            "type": "WEBHOOK", "url": url, "agent": true, "synchronized": synchronized,
            "headers": {"X-Team": "platform"},
            "body": {"version": "{{ .inputs.version }}", "runId": "{{ .run.id }}"}
        }
    })
}

async fn start(server: &TestServer, action: &str, version: &str) -> String {
    server.start_run(action, json!({"properties": {"version": version}})).await["id"].as_str().unwrap().to_owned()
}

async fn claim(server: &TestServer, installation: &str, limit: u32, visibility_ms: i64) -> Vec<Value> {
    let body = json!({"installationId": installation, "limit": limit, "invocationMethod": "WEBHOOK", "visibilityTimeoutMs": visibility_ms});
    let (status, answer) = server.post(CLAIM, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["runs"].as_array().unwrap().clone()
}

fn ids(runs: &[Value]) -> Vec<String> {
    runs.iter().map(|run| run["id"].as_str().unwrap().to_owned()).collect()
}

async fn ack(server: &TestServer, run_ids: &[String]) -> Vec<String> {
    let (status, answer) = server.patch(ACK, json!({"runIds": run_ids})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let acked: Vec<String> = serde_json::from_value(answer["acked"].clone()).unwrap();
    assert_eq!(answer["ackedCount"], acked.len(), "{answer}");
    acked
}

async fn claims_hand_each_run_out_once(server: TestServer) {
    let receiver = Receiver::start().await;
    server.create_action(agent_action("deploy", &receiver.url("/ok/agent"), false)).await;
    let started = [start(&server, "deploy", "1").await, start(&server, "deploy", "2").await, start(&server, "deploy", "3").await];

    let first = claim(&server, "agent-a", 2, 60_000).await;
    assert_eq!(ids(&first), started[..2], "oldest first, at most `limit`");
    let shown = &first[0];
    assert_eq!(shown["status"], "IN_PROGRESS");
    assert_eq!(
        shown["payload"],
        json!({
            "type": "WEBHOOK", "url": receiver.url("/ok/agent"), "agent": true, "synchronized": false, "method": "POST",
            "headers": {"X-Team": "platform", "Content-Type": "application/json"},
            "body": {"version": "1", "runId": started[0]}
        }),
        "the request as it is to be sent, its body as JSON"
    );
    assert_eq!(shown["agentClaim"]["installationId"], "agent-a");
    assert!(shown["agentClaim"]["visibleAgainAt"].is_string(), "{shown}");
    let second = claim(&server, "agent-b", 10, 60_000).await;
    assert_eq!(ids(&second), started[2..], "a claimed run is hidden from other claims");
    assert!(claim(&server, "agent-a", 10, 60_000).await.is_empty());

    // Acknowledged once: a second acknowledgement (or one naming an unknown or unclaimed
    // run) takes nothing.
    assert_eq!(ack(&server, &ids(&first)).await, ids(&first));
    assert_eq!(ack(&server, &[started[0].clone(), "r_unknown".into()]).await, Vec::<String>::new());
    assert_eq!(ack(&server, &ids(&second)).await, ids(&second));

    // Wharf sends none of them: they are the agent's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.calls("/ok/agent").is_empty(), "an agent run is never sent by Wharf");
    // The agent took it and has not reported: the run stays IN_PROGRESS, showing who took it.
    let taken = server.run(&started[0]).await;
    assert_eq!(taken["status"], "IN_PROGRESS");
    assert_eq!(taken["agentClaim"]["installationId"], "agent-a");
    assert!(taken["agentClaim"]["ackedAt"].is_string(), "{taken}");
    assert!(taken["agentClaim"].get("visibleAgainAt").is_none(), "{taken}");
    assert_eq!(taken["payload"]["body"]["version"], "1");

    // The agent reports as any backend does.
    let path = format!("/v1/actions/runs/{}", started[0]);
    let (status, _) = server.post(&format!("{path}/logs"), json!({"message": "Sending the request"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, done) = server.patch(&path, json!({"status": "SUCCESS", "summary": "deployed"})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["run"]["status"], "SUCCESS");

    // Acknowledged runs are never handed out again, even past their visibility timeout.
    let waiting = start(&server, "deploy", "4").await;
    let short = claim(&server, "agent-a", 10, 1_000).await;
    assert_eq!(ids(&short), [waiting.as_str()]);
    assert_eq!(ack(&server, &ids(&short)).await, [waiting]);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(claim(&server, "agent-a", 10, 60_000).await.is_empty());

    // The gauges: nothing waiting, nothing claimed, the acknowledged runs not ended.
    scrape_until(
        &server,
        &[
            "wharf_agent_runs{state=\"waiting\"} 0",
            "wharf_agent_runs{state=\"claimed\"} 0",
            "wharf_agent_runs{state=\"acked\"} 3",
        ],
    )
    .await;
}

/// Scrapes `/metrics` until it shows every line. The recorder is this process's, shared by
/// the tests running beside this one, whose scrapes set the gauges from their own databases
/// for a moment; each scrape sets them from this server's.
async fn scrape_until(server: &TestServer, lines: &[&str]) {
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = common::http().get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
        if lines.iter().all(|line| metrics.lines().any(|l| l == *line)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not all of {lines:?} in\n{metrics}");
}

async fn an_unacknowledged_claim_lapses(server: TestServer) {
    server.create_action(agent_action("deploy", "https://backend.internal/deploy", true)).await;
    let id = start(&server, "deploy", "1").await;
    // Claimed by an agent that dies before acknowledging it.
    assert_eq!(ids(&claim(&server, "agent-a", 10, 1_000).await), [id.as_str()]);
    assert!(claim(&server, "agent-b", 10, 1_000).await.is_empty(), "hidden while the claim holds");
    scrape_until(&server, &["wharf_agent_runs{state=\"claimed\"} 1", "wharf_agent_runs{state=\"waiting\"} 0"]).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Claimed again, by whoever asks.
    let again = claim(&server, "agent-b", 10, 60_000).await;
    assert_eq!(ids(&again), [id.as_str()]);
    assert_eq!(again[0]["agentClaim"]["installationId"], "agent-b");
    assert_eq!(server.run(&id).await["agentClaim"]["installationId"], "agent-b");
    // The first to acknowledge takes it; the other then takes nothing (and must not send it).
    assert_eq!(ack(&server, std::slice::from_ref(&id)).await, [id.as_str()]);
    assert!(ack(&server, std::slice::from_ref(&id)).await.is_empty());
}

async fn competing_agents_get_distinct_runs(server: TestServer) {
    server.create_action(agent_action("deploy", "https://backend.internal/deploy", false)).await;
    let mut started = HashSet::new();
    for n in 0..40 {
        started.insert(start(&server, "deploy", &n.to_string()).await);
    }
    let server = std::sync::Arc::new(server);
    let agent = |name: &'static str| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut executed = Vec::new();
            loop {
                let claimed = claim(&server, name, 3, 60_000).await;
                if claimed.is_empty() {
                    return executed;
                }
                executed.extend(ack(&server, &ids(&claimed)).await);
            }
        })
    };
    let (a, b, c) = (agent("agent-a"), agent("agent-b"), agent("agent-c"));
    let executed: Vec<String> = [a.await.unwrap(), b.await.unwrap(), c.await.unwrap()].concat();
    let distinct: HashSet<String> = executed.iter().cloned().collect();
    assert_eq!(distinct.len(), executed.len(), "a run was executed twice: {executed:?}");
    assert_eq!(distinct, started, "every run was executed");
}

async fn a_long_poll_answers_when_a_run_arrives(server: TestServer) {
    server.create_action(agent_action("deploy", "https://backend.internal/deploy", false)).await;
    let server = std::sync::Arc::new(server);
    let waiting = {
        let server = server.clone();
        tokio::spawn(async move {
            let (status, answer) = server.post(CLAIM, json!({"installationId": "agent-a", "waitMs": 20_000})).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["runs"].as_array().unwrap().clone()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the claim waits while no run is claimable");
    let id = start(&server, "deploy", "1").await;
    let claimed = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the claim answered").unwrap();
    assert_eq!(ids(&claimed), [id]);
    // With nothing to claim, it answers empty once `waitMs` has passed.
    let (status, answer) = server.post(CLAIM, json!({"installationId": "agent-a", "waitMs": 200})).await;
    assert_eq!((status, answer["runs"].clone()), (StatusCode::OK, json!([])));

    // A server that stops answers its waiting claims (empty) rather than holding them: the
    // stop is not delayed by a long poll, and the agent's request is answered, not cut.
    let waiting = common::http()
        .post(format!("{}{CLAIM}", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"installationId": "agent-a", "waitMs": 30_000}))
        .send();
    let waiting = tokio::spawn(async move {
        let answer = waiting.await.expect("the claim is answered, not cut");
        (answer.status(), answer.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = std::sync::Arc::into_inner(server).expect("the only handle left");
    server.restart().await;
    let (status, answer) = waiting.await.unwrap();
    assert_eq!((status, answer["runs"].clone()), (StatusCode::OK, json!([])));
}

async fn runs_that_end_or_wait_for_approval_are_not_handed_out(server: TestServer) {
    let mut action = agent_action("drop-db", "https://backend.internal/drop", false);
    action["requiredApproval"] = json!(true);
    server.create_action(action).await;
    let approved = start(&server, "drop-db", "1").await;
    let declined = start(&server, "drop-db", "2").await;
    assert!(claim(&server, "agent-a", 10, 60_000).await.is_empty(), "nothing before approval");
    let (status, _) = server.patch(&format!("/v1/actions/runs/{approved}/approval"), json!({"status": "APPROVE"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server.patch(&format!("/v1/actions/runs/{declined}/approval"), json!({"status": "DECLINE"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(ids(&claim(&server, "agent-a", 10, 60_000).await), [approved]);

    // A run ended before any agent claimed it (its backend reported, or a person ended it).
    server.create_action(agent_action("deploy", "https://backend.internal/deploy", false)).await;
    let ended = start(&server, "deploy", "1").await;
    let (status, _) = server.patch(&format!("/v1/actions/runs/{ended}"), json!({"status": "FAILURE", "summary": "no"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(claim(&server, "agent-a", 10, 60_000).await.is_empty());

    // Another organization's agent sees none of this one's runs, nor acknowledges them.
    let waiting = start(&server, "deploy", "2").await;
    let (_, other) = server.other_organization("Other").await;
    let (status, answer) =
        server.call_as(Some(&other), reqwest::Method::POST, CLAIM, Some(json!({"installationId": "agent-x"}))).await;
    assert_eq!((status, answer["runs"].clone()), (StatusCode::OK, json!([])));
    assert_eq!(ids(&claim(&server, "agent-a", 10, 60_000).await), [waiting.as_str()]);
    let (status, answer) = server.call_as(Some(&other), reqwest::Method::PATCH, ACK, Some(json!({"runIds": [waiting]}))).await;
    assert_eq!((status, answer["ackedCount"].clone()), (StatusCode::OK, json!(0)));
}

async fn secret_inputs_are_encrypted_for_the_agent(server: TestServer) {
    let mut action = agent_action("rotate", "https://backend.internal/rotate", false);
    action["trigger"]["userInputs"]["properties"]["token"] = json!({"type": "string", "encryption": "aes256-gcm"});
    action["invocationMethod"]["body"]["token"] = json!("{{ .inputs.token }}");
    server.create_action(action).await;
    let secret = format!("hunter2-{}", wharf_ids::random_base62(12));
    let (status, started) =
        server.post("/v1/actions/rotate/runs", json!({"properties": {"version": "1", "token": secret}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let stored = started["run"]["properties"]["token"].as_str().unwrap().to_owned();
    assert_ne!(stored, secret);
    // Port's format: base64(IV16 | ciphertext | tag16) under the first 32 bytes of the
    // organization's client secret; what the agent decrypts with `fieldsToDecryptPaths`.
    assert_eq!(wharf_core::agent::decrypt_field(CLIENT_SECRET, &stored).unwrap(), secret);
    let claimed = claim(&server, "agent-a", 10, 60_000).await;
    let sent = claimed[0]["payload"]["body"]["token"].as_str().unwrap();
    assert_eq!(wharf_core::agent::decrypt_field(CLIENT_SECRET, sent).unwrap(), secret);
    // Never in clear in what Wharf answers.
    let id = started["run"]["id"].as_str().unwrap();
    for answer in
        [json!(claimed), server.run(id).await, server.get("/v1/actions/runs").await.1, server.get("/v1/audit-log").await.1]
    {
        assert!(!answer.to_string().contains(&secret), "{answer}");
    }
    // An encryption Wharf does not make is refused when the action is saved.
    let mut bad = agent_action("bad", "https://backend.internal/bad", false);
    bad["trigger"]["userInputs"]["properties"]["token"] = json!({"type": "string", "encryption": "rsa"});
    assert_error(&server.post("/v1/actions", bad).await, StatusCode::UNPROCESSABLE_ENTITY, "encryption");
}

async fn port_agents_settings_and_bad_claims(server: TestServer) {
    // Port's agent sets its streamer at startup.
    let (status, org) = server.patch("/v1/organization", json!({"settings": {"portAgentStreamerName": "POLLING"}})).await;
    assert_eq!(status, StatusCode::OK, "{org}");
    assert_eq!(org["organization"]["settings"]["portAgentStreamerName"], "POLLING");
    let (_, shown) = server.get("/v1/organization").await;
    assert_eq!(shown["organization"]["settings"]["portAgentStreamerName"], "POLLING");
    assert_error(
        &server.patch("/v1/organization", json!({"settings": {"portAgentStreamerName": "KAFKA"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "STREAMER_NAME=POLLING",
    );
    assert_error(
        &server.patch("/v1/organization", json!({"settings": {"colour": 1}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "colour",
    );

    // It polls the workflow node runs beside the action runs.
    let (status, answer) =
        server.post("/v1/workflows/runs/claim-pending", json!({"installationId": "_PORT_EXEC_AGENT", "limit": 100})).await;
    assert_eq!((status, answer["nodeRuns"].clone()), (StatusCode::OK, json!([])));
    assert_error(
        &server.patch("/v1/workflows/runs/ack", json!({"nodeRunIdentifier": "wfnr_1"})).await,
        StatusCode::NOT_FOUND,
        "wfnr_1",
    );

    // Bad claims and acknowledgements, each named.
    assert_error(&server.post(CLAIM, json!({"limit": 10})).await, StatusCode::UNPROCESSABLE_ENTITY, "installationId");
    assert_error(
        &server.post(CLAIM, json!({"installationId": "a", "limit": 0})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit",
    );
    assert_error(
        &server.post(CLAIM, json!({"installationId": "a", "invocationMethod": "GITLAB"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "WEBHOOK",
    );
    assert_error(
        &server.post(CLAIM, json!({"installationId": "a", "visibilityTimeoutMs": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "visibilityTimeoutMs",
    );
    assert_error(&server.patch(ACK, json!({"runIds": "r_1"})).await, StatusCode::UNPROCESSABLE_ENTITY, "runIds");
    let (status, _) = server.call_as(None, reqwest::Method::POST, CLAIM, Some(json!({"installationId": "a"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
