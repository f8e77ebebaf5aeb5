//! jq 1.7 builtins that jaq lacks or defines differently, written in jq, and the `$__loc__`
//! and `builtins` values; prepended to every program (user definitions still shadow them).

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// jq 1.7.1's definitions (from its `builtin.jq`), where jaq differs or has none. `del` and
/// `delpaths` delete the last paths first, as jq does, so that `del(.[1, 2])` removes both.
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
def _wharf_todate: todate;
def todate: if type == "number" then floor | _wharf_todate else _wharf_todate end;
def todateiso8601: todate;
def date: todate;
def dateadd(u; n): . + n;
def datesub(u; n): . - n;
def _wharf_base64d: @base64d;
def @base64d: if length % 4 == 0 then _wharf_base64d else . + ("=" * (4 - length % 4)) | _wharf_base64d end;
def @csv:
  if type != "array" then error("\(type) (\(tojson)) cannot be csv-formatted, only an array can be")
  else map(
    if type == "number" or type == "boolean" then tostring
    elif type == "string" then "\"" + gsub("\""; "\"\"") + "\""
    elif . == null then ""
    else error("\(type) (\(tojson)) is not valid in a csv row") end
  ) | join(",") end;
def @tsv:
  if type != "array" then error("\(type) (\(tojson)) cannot be tsv-formatted, only an array can be")
  else map(
    if type == "number" or type == "boolean" then tostring
    elif type == "string" then gsub("\\\\"; "\\\\") | gsub("\t"; "\\t") | gsub("\n"; "\\n") | gsub("\r"; "\\r")
    elif . == null then ""
    else error("\(type) (\(tojson)) is not valid in a tsv row") end
  ) | join("\t") end;
def _wharf_delpaths($ps): delpaths($ps);
def delpaths($ps):
  if ($ps | type) != "array" then error("Paths must be specified as an array")
  else reduce ($ps | unique | reverse[]) as $p (.; _wharf_delpaths([$p])) end;
def _wharf_flatten($d): flatten($d);
def flatten($d): if $d < 0 then error("flatten depth must not be negative") else _wharf_flatten($d) end;
def del(f): delpaths([path(f)]);
def pick(pathexps): . as $top | reduce path(pathexps) as $p (null; setpath($p; $top | getpath($p)));
def tostream: path(def r: (.[]? | r), .; r) as $p | getpath($p) | reduce path(.[]?) as $q ([$p, .]; [$p + $q]);
def fromstream(f): {x: null, e: false} as $init
  | foreach f as $i ($init;
      if .e then $init else . end
      | if $i | length == 2
        then setpath(["e"]; $i[0] | length == 0) | setpath(["x"] + $i[0]; $i[1])
        else setpath(["e"]; $i[0] | length == 1) end;
      if .e then .x else empty end);
def truncate_stream(stream): . as $n | null | stream | . as $input
  | if (.[0] | length) > $n then setpath([0]; .[0][$n:]) else empty end;
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
