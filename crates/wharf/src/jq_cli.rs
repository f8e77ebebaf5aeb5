//! `wharf jq` and `wharf render`: try expressions and templates locally exactly as Wharf runs
//! them (Port's single quotes, Wharf's builtins), with jq's command-line conventions.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use serde_json::Value;
use wharf_jq::template::Renderer;
use wharf_jq::{Engine, JqError, Limits, Program};

/// jq's exit statuses.
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_COMPILE: i32 = 3;
pub const EXIT_RUNTIME: i32 = 5;

/// Local runs are the user's own: no step or time limit, and most of the main thread's stack.
const CLI_LIMITS: Limits = Limits { steps: u64::MAX, time: Duration::from_secs(24 * 3600), stack: 6 << 20 };

#[derive(Debug, Args)]
pub struct JqArgs {
    /// One output per line, without indentation
    #[arg(short = 'c', long = "compact-output")]
    compact: bool,
    /// Print strings without quotes
    #[arg(short = 'r', long = "raw-output")]
    raw: bool,
    /// Run the filter once, with `null` as input, without reading any
    #[arg(short = 'n', long = "null-input")]
    null_input: bool,
    /// Read the filter from FILE (every positional argument is then an input file)
    #[arg(short = 'f', long = "from-file", value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Bind `$NAME` to the string VALUE
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "VALUE"], action = ArgAction::Append)]
    arg: Vec<String>,
    /// Bind `$NAME` to the JSON value TEXT
    #[arg(long = "argjson", num_args = 2, value_names = ["NAME", "TEXT"], action = ArgAction::Append)]
    argjson: Vec<String>,
    /// FILTER, then input FILEs (standard input when none): each holds one JSON value or a stream
    #[arg(value_name = "FILTER | FILE")]
    positional: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// JSON file with the template context (`.inputs`, `.entity`, `.secrets`, … or a webhook's
    /// `{body, headers, queryParams}`)
    #[arg(long, value_name = "FILE")]
    context: PathBuf,
    /// One line of output, without indentation
    #[arg(short = 'c', long = "compact-output")]
    compact: bool,
    /// JSON file with `{{ … }}` templates in strings and keys
    #[arg(value_name = "TEMPLATE")]
    template: PathBuf,
}

fn read(path: &PathBuf) -> Result<String, i32> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("wharf: cannot read {}: {e}", path.display());
        EXIT_USAGE
    })
}

fn print(out: &mut impl Write, value: &Value, compact: bool, raw: bool) -> std::io::Result<()> {
    match value {
        Value::String(s) if raw => writeln!(out, "{s}"),
        _ if compact => writeln!(out, "{value}"),
        // A JSON value always serializes.
        _ => writeln!(out, "{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

/// Runs `wharf jq`; returns the exit status.
pub fn jq(args: JqArgs) -> i32 {
    match run_jq(args) {
        Ok(status) => status,
        Err(status) => status,
    }
}

fn run_jq(args: JqArgs) -> Result<i32, i32> {
    let mut positional = args.positional.into_iter();
    let filter = match &args.from_file {
        Some(path) => read(path)?,
        None => positional.next().ok_or_else(|| {
            eprintln!("wharf jq: give a FILTER (or -f FILE); see `wharf jq --help`");
            EXIT_USAGE
        })?,
    };
    let files: Vec<PathBuf> = positional.map(PathBuf::from).collect();
    let (names, values) = variables(&args.arg, &args.argjson)?;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let program = match Program::compile_with_vars(&filter, &name_refs) {
        Ok(program) => program.with_limits(CLI_LIMITS),
        Err(err) => {
            eprintln!("{err}");
            return Err(EXIT_COMPILE);
        }
    };
    let inputs = if args.null_input { vec![Value::Null] } else { inputs(&files)? };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut status = 0;
    let mut closed = false;
    for input in &inputs {
        let result = program.for_each_output(input, &values, usize::MAX, |value| {
            closed |= !closed && print(&mut out, &value, args.compact, args.raw).is_err();
        });
        if closed {
            return Err(EXIT_USAGE); // standard output was closed
        }
        if let Err(err) = result {
            let _ = out.flush();
            eprintln!("{err}");
            status = EXIT_RUNTIME;
        }
    }
    let _ = out.flush();
    Ok(status)
}

fn variables(args: &[String], argjson: &[String]) -> Result<(Vec<String>, Vec<Value>), i32> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for pair in args.chunks(2) {
        names.push(pair[0].clone());
        values.push(Value::String(pair.get(1).cloned().unwrap_or_default()));
    }
    for pair in argjson.chunks(2) {
        let text = pair.get(1).map(String::as_str).unwrap_or_default();
        let value = serde_json::from_str(text).map_err(|e| {
            eprintln!("wharf jq: --argjson {}: invalid JSON: {e}", pair[0]);
            EXIT_USAGE
        })?;
        names.push(pair[0].clone());
        values.push(value);
    }
    Ok((names, values))
}

/// Every JSON value of the files (or standard input), in order.
fn inputs(files: &[PathBuf]) -> Result<Vec<Value>, i32> {
    let mut texts = Vec::new();
    if files.is_empty() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            eprintln!("wharf jq: cannot read standard input: {e}");
            EXIT_USAGE
        })?;
        texts.push(("<stdin>".to_owned(), text));
    }
    for file in files {
        texts.push((file.display().to_string(), read(file)?));
    }
    let mut values = Vec::new();
    for (name, text) in texts {
        for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            values.push(value.map_err(|e| {
                eprintln!("wharf jq: {name}: invalid JSON: {e}");
                EXIT_USAGE
            })?);
        }
    }
    Ok(values)
}

/// Runs `wharf render`; returns the exit status. jq errors render as `null` and are reported
/// on standard error, as in Wharf; template errors stop it.
pub fn render(args: RenderArgs) -> i32 {
    let parse = |path: &PathBuf| -> Result<Value, i32> {
        serde_json::from_str(&read(path)?).map_err(|e| {
            eprintln!("wharf render: {}: invalid JSON: {e}", path.display());
            EXIT_USAGE
        })
    };
    let (context, template) = match (parse(&args.context), parse(&args.template)) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(status), _) | (_, Err(status)) => return status,
    };
    let engine = Engine::default();
    match Renderer::new(&engine, &context).render(&template) {
        Ok(rendered) => {
            for failure in &rendered.errors {
                eprintln!("wharf render: `{}` rendered as null: {}", failure.expression.trim(), one_line(&failure.error));
            }
            if let Some(value) = rendered.value {
                let _ = print(&mut std::io::stdout().lock(), &value, args.compact, false);
            }
            0
        }
        Err(err) => {
            eprintln!("wharf render: {err}");
            EXIT_RUNTIME
        }
    }
}

fn one_line(error: &JqError) -> String {
    error.to_string().lines().next().unwrap_or_default().to_owned()
}
