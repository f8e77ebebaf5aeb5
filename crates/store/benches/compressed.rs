//! Compressing a webhook request for storage, on the accept path of every event (before its
//! commit, on the request's own task), and reading it back for mapping.
//! `cargo bench -p wharf-store --bench compressed`.

use divan::{Bencher, black_box};
use wharf_store::CompressedJson;

fn main() {
    divan::main();
}

/// The stored request of `bench/ingest.sh`: its ~2 KiB signed `pull_request` body, with the
/// headers and query the endpoint stores beside it.
fn request() -> String {
    let text = "Deliveries that get a 429 now wait for the Retry-After the receiver asked for, with jitter. ".repeat(13);
    let body = serde_json::json!({
      "action": "opened", "number": 1,
      "pull_request": {"id": 1, "number": 1, "state": "open", "title": "Retry deliveries on 429 with Retry-After",
        "user": {"login": "octocat", "id": 583231, "type": "User", "site_admin": false, "html_url": "https://github.com/octocat"},
        "body": text, "html_url": "https://github.com/acme/wharf/pull/1", "created_at": "2026-11-20T10:15:00Z",
        "head": {"ref": "feature/retry", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
        "base": {"ref": "main", "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b"},
        "labels": [{"name": "delivery"}, {"name": "enhancement"}], "additions": 120, "deletions": 14},
      "repository": {"id": 1296269, "name": "wharf", "full_name": "acme/wharf", "html_url": "https://github.com/acme/wharf"},
      "sender": {"login": "octocat", "id": 583231, "type": "User"}});
    let headers = serde_json::json!({"host": "127.0.0.1:18181", "content-length": "2043", "content-type": "application/json",
        "x-github-event": "pull_request", "x-request-id": "4f1Qx8Zk2LmN00000001"});
    serde_json::json!({"body": body, "headers": headers, "queryParams": {}}).to_string()
}

#[divan::bench]
fn compress(bencher: Bencher) {
    let text = request();
    bencher.bench(|| CompressedJson::new(black_box(&text)));
}

/// The baseline: what `CompressedJson::new` did before (a size-prepended block in a new
/// buffer, with a new hash table, then copied behind the codec byte).
#[divan::bench]
fn compress_baseline(bencher: Bencher) {
    let text = request();
    bencher.bench(|| {
        let block = lz4_flex::compress_prepend_size(black_box(&text).as_bytes());
        let mut bytes = Vec::with_capacity(block.len() + 1);
        bytes.push(1u8);
        bytes.extend_from_slice(&block);
        bytes
    });
}

#[divan::bench]
fn decompress(bencher: Bencher) {
    let stored = CompressedJson::new(&request());
    bencher.bench(|| CompressedJson::decompress(black_box(stored.as_bytes())));
}
