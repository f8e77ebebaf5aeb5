//! The layer rules of ARCHITECTURE.md, checked: jq → core → ids → store → engine → api → wharf,
//! and jq → core → agent → wharf.
//!
//! - Each crate's manifest names only Wharf crates of the layers before it (any dependency
//!   table), the api does not name the store at all (it reaches data through the engine), and
//!   the agent names jq and core alone (it talks to Wharf over HTTP).
//! - Each crate inherits the workspace's lints; wharf-jq, the one crate with unsafe code (its
//!   counting allocator), repeats them with `unsafe_code = "deny"` instead of `"forbid"`.
//! - Each crate's sources avoid what its layer must not use ([`FORBIDDEN`]: clocks, randomness,
//!   async, files and sockets in core; axum in the engine; the store in the api; printing in the
//!   libraries). The lists are meant to grow: a rule is a line.
//!
//! The checks are functions of the manifests' and sources' text, so the `*_are_found` tests
//! below feed them a breaking manifest and breaking sources and see each rule fail. (Also tried
//! by hand on the real tree: adding `wharf-store` to the api's dependencies, `use
//! std::time::SystemTime;` to core's ids.rs and `println!` to the engine's lib.rs each made
//! `layers_hold` fail with the file and line.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Wharf's crates in layer order: a crate may depend only on those before it.
const LAYERS: &[(&str, &str)] = &[
    ("wharf-jq", "jq"),
    ("wharf-core", "core"),
    ("wharf-ids", "ids"),
    ("wharf-store", "store"),
    ("wharf-engine", "engine"),
    ("wharf-console", "console"),
    ("wharf-api", "api"),
    ("wharf-agent", "agent"),
    ("wharf", "wharf"),
];

/// Dependencies the layer order alone would allow but the architecture does not.
const NOT_DEPENDED_ON: &[(&str, &str)] = &[
    ("wharf-api", "wharf-store"),
    // The agent is a client of Wharf's HTTP API, run apart from any server: jq and core only.
    ("wharf-agent", "wharf-ids"),
    ("wharf-agent", "wharf-store"),
    ("wharf-agent", "wharf-engine"),
    ("wharf-agent", "wharf-api"),
    // The console is a client of the public API, served as files: it holds no rule or state.
    ("wharf-console", "wharf-jq"),
    ("wharf-console", "wharf-core"),
    ("wharf-console", "wharf-ids"),
    ("wharf-console", "wharf-store"),
    ("wharf-console", "wharf-engine"),
];

/// What the libraries never do: print (they log through `tracing`; the CLI prints).
const PRINTING: &[&str] = &["println!", "eprintln!", "print!", "eprint!", "dbg!"];

/// Names a crate's `src/` must not use, by crate (matched at a word start, outside comments).
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("jq", &["tokio", "std::fs", "TcpStream", "TcpListener", "UdpSocket", "wharf_core", "wharf_store"]),
    (
        "core",
        &[
            // No clock: time comes in as a `Timestamp`.
            "SystemTime",
            "Instant::now",
            "now_utc",
            "now_local",
            // No randomness: ids and secrets come from wharf-ids.
            "getrandom",
            "rand::",
            "thread_rng",
            // No I/O, not async.
            "tokio",
            "async ",
            ".await",
            "std::fs",
            "File::",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "to_socket_addrs",
            "std::env::var",
            "std::process",
            "wharf_store",
            "wharf_ids",
            "sqlx",
            "rusqlite",
        ],
    ),
    ("ids", &["wharf_store", "tokio", "std::fs"]),
    ("store", &["wharf_engine", "axum", "hyper", "reqwest"]),
    // The engine states what a write needs (`Store::write`, `Reads`); how it runs on each
    // database is the store's alone (ARCHITECTURE.md "Where the dialects differ").
    ("engine", &["axum", "rusqlite", "wharf_api", "Backend", "WriterTx", "wharf_store::ready", "on_writer_thread", "Sqlite"]),
    ("console", &["wharf_core", "wharf_engine", "wharf_store", "sqlx", "rusqlite", "tokio", "std::fs"]),
    ("api", &["wharf_store", "sqlx", "rusqlite", "wharf::"]),
    ("agent", &["wharf_ids", "wharf_store", "wharf_engine", "wharf_api", "sqlx", "rusqlite", "axum", "wharf::"]),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest(dir: &str) -> toml::Table {
    let path = root().join("crates").join(dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    text.parse().unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The Wharf crates a manifest names in any of its dependency tables (targets included).
fn wharf_dependencies(manifest: &toml::Table) -> Vec<String> {
    let itself = manifest.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
    let mut tables: Vec<(&str, &toml::Table)> = Vec::new();
    for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
        tables.extend(manifest.get(key).and_then(|t| t.as_table()).map(|t| (key, t)));
    }
    for target in manifest.get("target").and_then(|t| t.as_table()).into_iter().flat_map(|t| t.values()) {
        for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
            tables.extend(target.get(key).and_then(|t| t.as_table()).map(|t| (key, t)));
        }
    }
    let mut names = Vec::new();
    for (kind, table) in tables {
        for (name, spec) in table {
            // `alias = { package = "wharf-x", … }` names wharf-x.
            let package = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
            // A crate's tests may turn on its own test-only features (`wharf-store`'s `testing`).
            let own_test_features = kind == "dev-dependencies" && Some(package) == itself;
            if package.starts_with("wharf") && !own_test_features {
                names.push(package.to_owned());
            }
        }
    }
    names
}

/// Breaches of the dependency rules by `krate`, whose manifest names `depends_on`.
fn dependency_breaches(krate: &str, depends_on: &[String]) -> Vec<String> {
    let Some(layer) = LAYERS.iter().position(|(name, _)| *name == krate) else {
        return vec![format!("{krate} is not in LAYERS: give it a place in the layer order")];
    };
    let mut breaches = Vec::new();
    for dependency in depends_on {
        match LAYERS.iter().position(|(name, _)| name == dependency) {
            Some(at) if at < layer => {}
            Some(_) => breaches.push(format!("{krate} depends on {dependency}, a layer at or after its own")),
            None => breaches.push(format!("{krate} depends on {dependency}, which is not in LAYERS")),
        }
        if NOT_DEPENDED_ON.contains(&(krate, dependency.as_str())) {
            breaches.push(format!("{krate} must not depend on {dependency}"));
        }
    }
    breaches
}

/// Breaches of the lint rules: every crate inherits the workspace's lints, except wharf-jq,
/// whose own table must be the workspace's with `unsafe_code = "deny"`.
fn lint_breaches(krate: &str, manifest: &toml::Table, workspace_lints: &toml::Table) -> Vec<String> {
    let lints = manifest.get("lints").and_then(|l| l.as_table());
    if krate != "wharf-jq" {
        let inherits = lints.and_then(|l| l.get("workspace")).and_then(|w| w.as_bool()) == Some(true);
        return if inherits { vec![] } else { vec![format!("{krate}'s Cargo.toml lacks `[lints] workspace = true`")] };
    }
    let mut expected = workspace_lints.clone();
    if let Some(rust) = expected.get_mut("rust").and_then(|r| r.as_table_mut()) {
        rust.insert("unsafe_code".into(), toml::Value::String("deny".into()));
    }
    if lints == Some(&expected) {
        vec![]
    } else {
        vec![format!("{krate}'s [lints] must be the workspace's with unsafe_code = \"deny\"; got {lints:?}")]
    }
}

/// Whether `line` names `pattern` where a name starts (not inside another identifier).
fn names(line: &str, pattern: &str) -> bool {
    line.match_indices(pattern).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_') || !pattern.starts_with(|c: char| c.is_alphanumeric())
    })
}

/// `file:line: pattern` for each line of `source` (outside `//` comments) naming a pattern.
fn source_breaches(file: &str, source: &str, patterns: &[&str]) -> Vec<String> {
    let mut breaches = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for pattern in patterns {
            if names(code, pattern) {
                breaches.push(format!("{file}:{}: names `{pattern}`", number + 1));
            }
        }
    }
    breaches
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                files.insert(path, text);
            }
        }
    }
    files
}

fn source_breaches_of(dir: &str, patterns: &[&str]) -> Vec<String> {
    let src = root().join("crates").join(dir).join("src");
    sources(&src)
        .iter()
        .flat_map(|(path, text)| {
            let file = path.strip_prefix(root()).unwrap_or(path).display().to_string();
            source_breaches(&file, text, patterns)
        })
        .collect()
}

#[test]
fn layers_hold() {
    let workspace: toml::Table =
        std::fs::read_to_string(root().join("Cargo.toml")).expect("root Cargo.toml").parse().expect("TOML");
    let workspace_lints = workspace["workspace"]["lints"].as_table().expect("[workspace.lints]").clone();
    let members: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|dir| root().join("crates").join(dir).join("Cargo.toml").exists())
        .collect();
    let mut breaches = Vec::new();
    for dir in &members {
        let manifest = manifest(dir);
        let krate = manifest["package"]["name"].as_str().expect("package.name").to_owned();
        if !LAYERS.contains(&(krate.as_str(), dir.as_str())) {
            breaches.push(format!("crates/{dir} ({krate}) is not in LAYERS"));
        }
        breaches.extend(dependency_breaches(&krate, &wharf_dependencies(&manifest)));
        breaches.extend(lint_breaches(&krate, &manifest, &workspace_lints));
    }
    for (dir, patterns) in FORBIDDEN {
        breaches.extend(source_breaches_of(dir, patterns));
    }
    for (_, dir) in LAYERS.iter().filter(|(name, _)| *name != "wharf") {
        breaches.extend(source_breaches_of(dir, PRINTING));
    }
    assert!(breaches.is_empty(), "layer rules broken:\n{}", breaches.join("\n"));
}

#[test]
fn dependency_breaches_are_found() {
    let manifest: toml::Table = r#"
        [package]
        name = "wharf-api"
        [dependencies]
        wharf-engine = { path = "../engine" }
        store = { package = "wharf-store", path = "../store" }
        [dev-dependencies]
        wharf = { path = "../wharf" }
        wharf-api = { path = ".", features = ["testing"] }
    "#
    .parse()
    .expect("TOML");
    let depends_on = wharf_dependencies(&manifest);
    let breaches = dependency_breaches("wharf-api", &depends_on);
    assert_eq!(breaches, ["wharf-api must not depend on wharf-store", "wharf-api depends on wharf, a layer at or after its own"]);
    assert_eq!(dependency_breaches("wharf-core", &["wharf-core".into()]).len(), 1, "a crate is not before itself");
    assert!(dependency_breaches("wharf-engine", &["wharf-store".into(), "wharf-jq".into()]).is_empty());
    assert_eq!(dependency_breaches("wharf-new", &[]).len(), 1, "a new crate needs a place in LAYERS");
}

#[test]
fn lint_breaches_are_found() {
    let workspace: toml::Table = "[rust]\nunsafe_code = \"forbid\"\n[clippy]\ntodo = \"deny\"\n".parse().expect("TOML");
    let inherits: toml::Table = "[lints]\nworkspace = true\n".parse().expect("TOML");
    let missing: toml::Table = "[package]\nname = \"x\"\n".parse().expect("TOML");
    assert!(lint_breaches("wharf-core", &inherits, &workspace).is_empty());
    assert_eq!(lint_breaches("wharf-core", &missing, &workspace).len(), 1);
    let jq: toml::Table = "[lints.rust]\nunsafe_code = \"deny\"\n[lints.clippy]\ntodo = \"deny\"\n".parse().expect("TOML");
    assert!(lint_breaches("wharf-jq", &jq, &workspace).is_empty());
    let drifted: toml::Table = "[lints.rust]\nunsafe_code = \"deny\"\n[lints.clippy]\n".parse().expect("TOML");
    assert_eq!(lint_breaches("wharf-jq", &drifted, &workspace).len(), 1, "a lint missing from wharf-jq's table");
}

#[test]
fn source_breaches_are_found() {
    let core = FORBIDDEN.iter().find(|(dir, _)| *dir == "core").expect("core's rules").1;
    let source = "use std::time::SystemTime;\n// SystemTime in a comment is fine\nlet operand::x = 1; let y = rand::random();\nlet t = Instant::now(); // now\n";
    assert_eq!(
        source_breaches("core.rs", source, core),
        ["core.rs:1: names `SystemTime`", "core.rs:3: names `rand::`", "core.rs:4: names `Instant::now`"]
    );
    assert_eq!(source_breaches("lib.rs", "    println!(\"{x}\");\n    eprint!(\"\");\n", PRINTING).len(), 2);
    assert!(source_breaches("lib.rs", "tracing::info!(\"x\");\nlet sprintln = 1;\n", PRINTING).is_empty());
}
