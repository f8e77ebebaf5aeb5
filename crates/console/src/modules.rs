//! The console's module graph, read from the `import … from '…'` statements of its own files.
//!
//! An area's screens are ES modules that import others, and a browser finds each level of
//! imports only when it has parsed the level above: four round trips before the catalog's first
//! screen could run. The page carries this graph (`index.html`, see [`crate::page`]), so `app.js`
//! preloads every module of an area at once, in one round trip, when the area is first shown.

use std::collections::BTreeMap;

/// Each JavaScript module's static imports, both as paths under `assets/` (`screens/catalog.js`).
/// Only relative specifiers that name a file that exists are kept, so a `from '…'` in a comment or
/// a string adds nothing wrong; the graph serves preloading, never correctness.
pub(crate) fn graph(files: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, Vec<String>> {
    let files: BTreeMap<String, String> = files.into_iter().filter(|(path, _)| is_module(path)).collect();
    files
        .iter()
        .map(|(path, source)| {
            let mut imports: Vec<String> = specifiers(source)
                .filter_map(|specifier| resolve(path, specifier))
                .filter(|target| files.contains_key(target) && target != path)
                .collect();
            imports.sort();
            imports.dedup();
            (path.clone(), imports)
        })
        .collect()
}

fn is_module(path: &str) -> bool {
    path.ends_with(".js") || path.ends_with(".mjs")
}

/// The specifiers of `from '…'` and `from "…"` in `source`.
fn specifiers(source: &str) -> impl Iterator<Item = &str> {
    source.match_indices("from ").filter_map(move |(at, keyword)| {
        let rest = &source[at + keyword.len()..];
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let rest = &rest[1..];
        rest.find(quote).map(|end| &rest[..end])
    })
}

/// `specifier` as imported by the module at `from`, as a path under `assets/`; `None` for a bare
/// or absolute specifier, or one that climbs out of `assets/`.
fn resolve(from: &str, specifier: &str) -> Option<String> {
    if !specifier.starts_with("./") && !specifier.starts_with("../") {
        return None;
    }
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in specifier.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, source: &str) -> (String, String) {
        (path.to_owned(), source.to_owned())
    }

    #[test]
    fn imports_are_resolved_from_the_importing_module() {
        let graph = graph([
            file("app.js", "import { a } from './ui.js';\nconst AREAS = { catalog: 'screens/catalog.js' };"),
            file("ui.js", "import { h } from \"./vendor/v.mjs\";"),
            file("vendor/v.mjs", "export const h = 1;"),
            file(
                "screens/catalog.js",
                "import {\n  html,\n} from '../ui.js';\nimport { x } from './catalog-x.js';\n// copied from 'nowhere'\nimport y from './missing.js';",
            ),
            file("screens/catalog-x.js", "import { api } from 'https://elsewhere.example/api.js';"),
            file("app.css", "body { }"),
        ]);
        assert_eq!(graph["app.js"], ["ui.js"]);
        assert_eq!(graph["ui.js"], ["vendor/v.mjs"]);
        assert_eq!(graph["screens/catalog.js"], ["screens/catalog-x.js", "ui.js"]);
        assert!(graph["screens/catalog-x.js"].is_empty(), "a bare or absolute specifier is not ours");
        assert!(!graph.contains_key("app.css"));
    }

    #[test]
    fn a_specifier_cannot_climb_out_of_the_assets() {
        assert_eq!(resolve("screens/a.js", "../../etc/passwd"), None);
        assert_eq!(resolve("screens/a.js", "./b.js").as_deref(), Some("screens/b.js"));
        assert_eq!(resolve("a.js", "./vendor/../b.js").as_deref(), Some("b.js"));
    }
}
