//! One evaluation of a typical Port mapping (`bench/mapping.jq`) on one GitHub event, compile
//! excluded, and the `{{ }}` rendering of an action body. `cargo bench -p wharf-jq`.

use divan::{Bencher, black_box};
use serde_json::json;
use wharf_jq::template::Renderer;
use wharf_jq::{Program, ProgramCache};

fn main() {
    divan::main();
}

const MAPPING: &str = include_str!("../../../bench/mapping.jq");

fn pull_request_event() -> serde_json::Value {
    json!({
        "body": {
            "action": "opened", "number": 42,
            "pull_request": {
                "id": 900000042, "html_url": "https://github.com/acme/wharf/pull/42", "state": "open",
                "title": "retry cache flaky", "user": {"login": "octocat", "id": 1},
                "labels": [{"name": "bug"}, {"name": "queue"}], "created_at": "2024-05-12T05:15:00Z",
                "head": {"ref": "feature-42", "sha": "abc"}, "base": {"ref": "main"}
            },
            "repository": {"full_name": "acme/wharf", "name": "wharf"},
            "sender": {"login": "octocat"}
        },
        "headers": {"x-github-event": "pull_request", "x-github-delivery": "d-42"},
        "queryParams": {}
    })
}

#[divan::bench]
fn mapping_one_event(bencher: Bencher) {
    let program = Program::compile(MAPPING).expect("the mapping compiles");
    let event = pull_request_event();
    bencher.bench(|| program.first(black_box(&event)));
}

#[divan::bench]
fn compile_mapping(bencher: Bencher) {
    bencher.bench(|| Program::compile(black_box(MAPPING)));
}

#[divan::bench]
fn render_action_body(bencher: Bencher) {
    let programs = ProgramCache::default();
    let context = json!({"inputs": {"service": "api", "replicas": 3}, "run": {"id": "r_1"}, "trigger": {"by": {"userId": "u"}}});
    let template = json!({
        "{{ spreadValue() }}": "{{ .inputs }}",
        "port_context": {"runId": "{{ .run.id }}"},
        "url": "https://deploy.example/{{ .inputs.service }}?by={{ .trigger.by.userId }}"
    });
    bencher.bench(|| Renderer::new(&programs, &context).render(black_box(&template)));
}
