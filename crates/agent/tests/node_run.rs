//! A claimed workflow node run rebuilt into Port's agent's message
//! (`PollingToWebhookProcessor.process_wf_node_run`), the request it defaults to, and its
//! completion (`WebhookInvoker._invoke_wf_node_run`).

use serde_json::{Value, json};
use wharf_agent::node_run::{self, NodeRunError, NodeRunMessage, RebuiltNodeRun};
use wharf_agent::payload::PayloadConfig;
use wharf_agent::report::Answer;

fn claimed() -> Value {
    json!({
        "identifier": "wfnr_1",
        "config": {
            "type": "WEBHOOK", "url": "http://10.0.0.7/deploy", "method": "PUT",
            "headers": {"X-Host": "db-1"}, "body": {"host": "db-1"},
            "synchronized": true, "agent": true
        },
        "agentClaim": {"installationId": "office"}
    })
}

fn rebuilt(doc: &Value) -> NodeRunMessage {
    match node_run::rebuild(node_run::node_run_id(doc).expect("an identifier"), doc).expect("a node run") {
        RebuiltNodeRun::NodeRun(message) => message,
        RebuiltNodeRun::NotForAgent => panic!("a node run for the agent"),
    }
}

#[test]
fn the_message_is_ports_with_the_invocation_method_and_the_node_config() {
    let doc = claimed();
    let message = rebuilt(&doc);
    let invocation = json!({"type": "WEBHOOK", "url": "http://10.0.0.7/deploy", "synchronized": true, "method": "PUT", "headers": {"X-Host": "db-1"}});
    assert_eq!(message.node_run_id, "wfnr_1");
    assert_eq!(message.invocation, invocation);
    assert_eq!(
        message.message,
        json!({
            "headers": {"X-Host": "db-1"},
            "payload": {"action": {"invocationMethod": invocation}},
            "context": {"runId": "wfnr_1", "nodeConfig": doc["config"]}
        })
    );
    assert!(message.synchronized());
}

#[test]
fn missing_fields_take_ports_defaults_and_a_node_not_for_an_agent_is_skipped() {
    let doc = json!({"identifier": "wfnr_2", "config": {"url": "http://x/", "agent": true}});
    let message = rebuilt(&doc);
    assert_eq!(
        message.invocation,
        json!({"type": null, "url": "http://x/", "synchronized": false, "method": "POST", "headers": {}})
    );
    assert!(!message.synchronized());
    assert_eq!(message.defaults().body, Some(Value::Null), "no body: none is sent");

    let not_for_agent = json!({"identifier": "wfnr_3", "config": {"url": "http://x/", "agent": false}});
    assert_eq!(node_run::rebuild("wfnr_3", &not_for_agent), Ok(RebuiltNodeRun::NotForAgent));
    assert_eq!(node_run::rebuild("wfnr_4", &json!({"identifier": "wfnr_4"})), Ok(RebuiltNodeRun::NotForAgent));
    assert_eq!(node_run::rebuild("wfnr_5", &json!({"config": [1]})), Err(NodeRunError::ConfigNotObject("an array")),);
    assert_eq!(node_run::node_run_id(&json!({"identifier": ""})), None);
    assert_eq!(node_run::node_run_id(&json!({"id": "wfnr_6"})), None, "a node run's id is its `identifier`");
}

#[test]
fn ports_default_mapping_sends_the_nodes_own_request() {
    let message = rebuilt(&claimed());
    let defaults = message.defaults();
    let prepared = PayloadConfig::default().prepare_with(message.message, defaults, "").expect("Port's mapping is enabled");
    assert_eq!(prepared.request.method, "PUT");
    assert_eq!(prepared.request.url, "http://10.0.0.7/deploy");
    assert_eq!(prepared.request.body, json!({"host": "db-1"}));
    assert_eq!(prepared.request.headers, json!({"X-Host": "db-1"}));
    assert_eq!(prepared.request.query, json!({}));
}

#[test]
fn a_mapping_gives_what_it_names_and_the_node_the_rest() {
    let config = PayloadConfig::parse(
        &json!([{"enabled": true, "url": ".payload.action.invocationMethod.url", "headers": {"X-Run": ".context.runId"}}])
            .to_string(),
    )
    .unwrap();
    let message = rebuilt(&claimed());
    let defaults = message.defaults();
    let prepared = config.prepare_with(message.message, defaults, "").unwrap();
    assert_eq!(prepared.request.headers, json!({"X-Run": "wfnr_1"}), "the mapping's headers replace the node's");
    assert_eq!(prepared.request.body, json!({"host": "db-1"}), "no `body` in the mapping: the node's");
    let whole = PayloadConfig::parse(&json!([{"enabled": true, "body": "."}]).to_string()).unwrap();
    let message = rebuilt(&claimed());
    let defaults = message.defaults();
    let everything = message.message.clone();
    assert_eq!(whole.prepare_with(message.message, defaults, "").unwrap().request.body, everything, "Port's agent's body");
}

#[test]
fn a_synchronized_node_run_is_completed_with_the_response() {
    let answer = |status: u16, text: &str| Answer { status, headers: Vec::new(), text: text.to_owned() };
    assert_eq!(
        node_run::success_patch(&answer(200, r#"{"ok": 1}"#)),
        json!({"status": "COMPLETED", "result": "SUCCESS", "output": {"response": {"status": 200, "data": {"ok": 1}}}})
    );
    assert_eq!(node_run::success_patch(&answer(201, "created"))["output"]["response"]["data"], "created");
    for empty in ["", "null", "[]", "0", "false", "\"\""] {
        assert_eq!(node_run::success_patch(&answer(204, empty))["output"]["response"]["data"], json!({}), "`{empty}` is {{}}");
    }
    assert_eq!(node_run::failed_patch(), json!({"status": "COMPLETED", "result": "FAILED"}));
}
