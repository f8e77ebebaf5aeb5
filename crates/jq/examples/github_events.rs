//! Writes real-shaped GitHub `pull_request` and `push` webhook events as JSONL, in the shape
//! a mapping sees them (`{"body", "headers", "queryParams"}`), for the jq benchmarks.
//!
//! `cargo run --release -p wharf-jq --example github_events -- 10000 > events.jsonl`
//! The output is deterministic (a fixed-seed generator), so runs compare like with like.

use std::io::Write;

use serde_json::{Value, json};

/// xorshift64*: small, deterministic, good enough to vary the events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const USERS: &[&str] = &["octocat", "hubot", "mona", "jdoe", "asmith", "ci-bot", "rkumar", "lchen"];
const REPOS: &[&str] = &["wharf", "payments", "web", "infra", "docs", "mobile", "search", "billing"];
const WORDS: &[&str] = &["fix", "add", "remove", "refactor", "retry", "cache", "auth", "queue", "flaky", "test", "docs", "bump"];

fn user(login: &str, id: u64) -> Value {
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"), "gravatar_id": "",
        "url": format!("https://api.github.com/users/{login}"), "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("https://api.github.com/users/{login}/followers"),
        "repos_url": format!("https://api.github.com/users/{login}/repos"), "type": "User", "site_admin": false
    })
}

fn repository(name: &str, id: u64, owner: &Value) -> Value {
    let full = format!("acme/{name}");
    json!({
        "id": id, "node_id": format!("MDEwOlJlcG9zaXRvcnk{id}"), "name": name, "full_name": full, "private": true,
        "owner": owner, "html_url": format!("https://github.com/{full}"), "description": format!("The {name} service"),
        "fork": false, "url": format!("https://api.github.com/repos/{full}"),
        "pulls_url": format!("https://api.github.com/repos/{full}/pulls{{/number}}"),
        "created_at": "2021-03-04T10:00:00Z", "updated_at": "2024-05-06T11:00:00Z", "pushed_at": "2024-05-06T11:00:00Z",
        "git_url": format!("git://github.com/{full}.git"), "ssh_url": format!("git@github.com:{full}.git"),
        "clone_url": format!("https://github.com/{full}.git"), "homepage": null, "size": 10240 + id % 5000,
        "stargazers_count": id % 300, "watchers_count": id % 300, "language": "Rust", "has_issues": true,
        "forks_count": id % 20, "open_issues_count": id % 40, "topics": ["backend", "platform"],
        "visibility": "private", "default_branch": "main"
    })
}

fn pull_request(rng: &mut Rng, n: u64) -> Value {
    let login = rng.pick(USERS);
    let repo = rng.pick(REPOS);
    let sender = user(login, 1000 + rng.next() % 9000);
    let number = 1 + rng.next() % 5000;
    let title = format!("{} {} {}", rng.pick(WORDS), rng.pick(WORDS), rng.pick(WORDS));
    let state = if rng.next().is_multiple_of(4) { "closed" } else { "open" };
    let repo_value = repository(repo, 100_000 + rng.next() % 900, &user("acme", 42));
    let labels: Vec<Value> =
        (0..rng.next() % 4).map(|i| json!({"id": i, "name": rng.pick(WORDS), "color": "ededed", "default": false})).collect();
    let body = json!({
        "action": if state == "open" { "opened" } else { "closed" },
        "number": number,
        "pull_request": {
            "url": format!("https://api.github.com/repos/acme/{repo}/pulls/{number}"),
            "id": 900_000_000 + n, "node_id": format!("PR_kwDO{n}"),
            "html_url": format!("https://github.com/acme/{repo}/pull/{number}"),
            "diff_url": format!("https://github.com/acme/{repo}/pull/{number}.diff"),
            "number": number, "state": state, "locked": false, "title": title, "user": sender.clone(),
            "body": format!("This PR will {title}.\n\nFixes #{}", number / 2), "labels": labels,
            "created_at": format!("2024-0{}-1{}T0{}:1{}:00Z", 1 + n % 9, n % 10, n % 10, n % 10),
            "updated_at": "2024-06-01T12:00:00Z", "closed_at": null, "merged_at": null,
            "head": {"label": format!("{login}:feature-{n}"), "ref": format!("feature-{n}"), "sha": format!("{:040x}", rng.next())},
            "base": {"label": "acme:main", "ref": "main", "sha": format!("{:040x}", rng.next())},
            "draft": false, "merged": false, "comments": rng.next() % 10, "commits": 1 + rng.next() % 20,
            "additions": rng.next() % 500, "deletions": rng.next() % 300, "changed_files": 1 + rng.next() % 30
        },
        "repository": repo_value, "sender": sender
    });
    event("pull_request", n, body)
}

fn push(rng: &mut Rng, n: u64) -> Value {
    let login = rng.pick(USERS);
    let repo = rng.pick(REPOS);
    let sha = format!("{:040x}", rng.next());
    let message = format!("{} {}", rng.pick(WORDS), rng.pick(WORDS));
    let commit = json!({
        "id": sha, "tree_id": format!("{:040x}", rng.next()), "distinct": true, "message": message,
        "timestamp": format!("2024-06-0{}T1{}:00:00Z", 1 + n % 9, n % 10),
        "url": format!("https://github.com/acme/{repo}/commit/{sha}"),
        "author": {"name": login, "email": format!("{login}@acme.example"), "username": login},
        "added": [], "removed": [], "modified": ["src/lib.rs", "README.md"]
    });
    let body = json!({
        "ref": format!("refs/heads/feature-{n}"), "before": format!("{:040x}", rng.next()), "after": sha,
        "repository": repository(repo, 100_000 + rng.next() % 900, &user("acme", 42)),
        "pusher": {"name": login, "email": format!("{login}@acme.example")},
        "sender": user(login, 1000 + rng.next() % 9000), "created": false, "deleted": false, "forced": false,
        "compare": format!("https://github.com/acme/{repo}/compare/{sha}"), "commits": [commit.clone()], "head_commit": commit
    });
    event("push", n, body)
}

fn event(kind: &str, n: u64, body: Value) -> Value {
    json!({
        "body": body,
        "headers": {
            "content-type": "application/json", "user-agent": "GitHub-Hookshot/2f1c7a4",
            "x-github-event": kind, "x-github-delivery": format!("d3b07384-d9a0-4c9b-8c1e-{n:012}"),
            "x-hub-signature-256": format!("sha256={:064x}", n)
        },
        "queryParams": {}
    })
}

fn main() {
    let count: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for n in 0..count {
        let event = if n % 3 == 2 { push(&mut rng, n) } else { pull_request(&mut rng, n) };
        if writeln!(out, "{event}").is_err() {
            return;
        }
    }
}
