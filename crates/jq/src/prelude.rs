//! jq 1.7 builtins that jaq lacks or defines differently, written in jq, and the `$__loc__`
//! and `builtins` values; prepended to every program (user definitions still shadow them).

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// jq 1.7.1's definitions (from its `builtin.jq`), where jaq differs or has none.
const DEFINITIONS: &str = r#"
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);
def INDEX(stream; idx_expr): reduce stream as $row ({}; .[$row | idx_expr | tostring] |= $row);
def INDEX(idx_expr): INDEX(.[]; idx_expr);
def JOIN($idx; idx_expr): [.[] | [., $idx[idx_expr]]];
def JOIN($idx; stream; idx_expr): stream | [., $idx[idx_expr]];
def JOIN($idx; stream; idx_expr; join_expr): stream | [., $idx[idx_expr]] | join_expr;
def join($x): reduce .[] as $i (null;
    (if . == null then "" else . + $x end)
    + ($i | if . == null then "" elif type == "boolean" or type == "number" then tojson else . end)
  ) // "";
def from_entries: reduce .[] as $x ({}; . + {
    ($x | if .key == null then .k // .name // .Name // .K // .Key else .key end
        | if type == "string" then . else tojson end):
    ($x | if has("value") then .value elif has("v") then .v else .Value end)
  });
def toarray: if type == "array" then . else [.] end;
"#;

/// The prelude: the definitions above and `builtins` (every `name/arity` a program can call,
/// as jq lists them).
pub(crate) fn prelude() -> &'static str {
    static PRELUDE: OnceLock<String> = OnceLock::new();
    PRELUDE.get_or_init(|| {
        let mut names: BTreeSet<String> = BTreeSet::new();
        names.extend(crate::natives().map(|(name, args, _)| format!("{name}/{}", args.len())));
        names.extend(crate::definitions().map(|def| format!("{}/{}", def.name, def.args.len())));
        for line in DEFINITIONS.lines().filter_map(|l| l.strip_prefix("def ")) {
            let head = line.split(':').next().unwrap_or_default();
            let (name, arity) = match head.split_once('(') {
                Some((name, args)) => (name, args.split(';').count()),
                None => (head, 0),
            };
            names.insert(format!("{name}/{arity}"));
        }
        names.retain(|n| !n.starts_with('_') && !n.starts_with("env/") && !n.starts_with("halt"));
        names.insert("builtins/0".to_owned());
        let list = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned());
        format!("{DEFINITIONS}def builtins: {list};\n")
    })
}

/// The `$__loc__` binding for a program that uses it: jq's `{file, line}` of its first use.
pub(crate) fn location_binding(line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{{\"file\": \"<top-level>\", \"line\": {line}}} as $__loc__ | "),
        None => String::new(),
    }
}
