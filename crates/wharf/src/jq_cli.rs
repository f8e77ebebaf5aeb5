//! `wharf jq` and `wharf render`: try expressions and templates locally exactly as Wharf runs
//! them (Port's single quotes, Wharf's builtins), with jq's command-line conventions.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use serde_json::Value;
use wharf_jq::template::Renderer;
use wharf_jq::{Engine, JqError, Limits, Program, parse_inputs};

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
        Ok(program) => program.with_limits(CLI_LIMITS).with_max_output_bytes(usize::MAX),
        Err(err) => {
            eprintln!("{err}");
            return Err(EXIT_COMPILE);
        }
    };
    let options = Output { compact: args.compact, raw: args.raw };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut status = 0;
    let texts = if args.null_input { vec![("<null>".to_owned(), "null".to_owned())] } else { input_texts(&files)? };
    for (name, text) in &texts {
        let (documents, broken) = split_documents(text);
        for batch in documents.chunks(BATCH) {
            for done in run_batch(&program, &values, options, batch) {
                if out.write_all(&done.printed).is_err() {
                    return Err(EXIT_USAGE); // standard output was closed
                }
                if let Some(error) = done.error {
                    let _ = out.flush();
                    eprintln!("{error}");
                    status = EXIT_RUNTIME;
                }
            }
        }
        if let Some(error) = broken {
            let _ = out.flush();
            eprintln!("wharf jq: {name}: invalid JSON: {error}");
            return Err(EXIT_USAGE);
        }
    }
    let _ = out.flush();
    Ok(status)
}

/// How outputs are printed.
#[derive(Clone, Copy)]
struct Output {
    compact: bool,
    raw: bool,
}

/// Documents handed to the workers at a time: enough to keep every core busy, few enough
/// that memory stays flat on long streams.
const BATCH: usize = 4096;

/// What one input document produced: its printed outputs, and the error that ended it.
struct Done {
    printed: Vec<u8>,
    error: Option<String>,
}

/// The documents of a text (a single value or a stream), as slices, found by a scan that
/// builds nothing; and the parse error that ends the stream early, if any.
fn split_documents(text: &str) -> (Vec<&str>, Option<String>) {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    loop {
        match stream.next() {
            None => return (documents, None),
            Some(Ok(_)) => {
                let end = stream.byte_offset();
                documents.push(&text[start..end]);
                start = end;
            }
            Some(Err(error)) => return (documents, Some(error.to_string())),
        }
    }
}

/// Runs the program on each document, on every core for large batches, in input order.
fn run_batch(program: &Program, values: &[Value], options: Output, documents: &[&str]) -> Vec<Done> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(documents.len() / 64).max(1);
    if workers == 1 {
        return documents.iter().map(|d| run_document(program, values, options, d)).collect();
    }
    let per_worker = documents.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = documents
            .chunks(per_worker)
            .map(|chunk| {
                // Stacks large enough for the CLI's stack budget.
                std::thread::Builder::new().stack_size(16 << 20).spawn_scoped(scope, move || {
                    chunk.iter().map(|d| run_document(program, values, options, d)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut done = Vec::with_capacity(documents.len());
        for (handle, chunk) in handles.into_iter().zip(documents.chunks(per_worker)) {
            match handle.map(|h| h.join()) {
                Ok(Ok(results)) => done.extend(results),
                // No thread could be started, or a worker panicked: run that chunk here instead.
                _ => done.extend(chunk.iter().map(|d| run_document(program, values, options, d))),
            }
        }
        done
    })
}

fn run_document(program: &Program, values: &[Value], options: Output, document: &str) -> Done {
    let mut printed = Vec::new();
    let result = match parse_inputs(document).next() {
        Some(Ok(input)) => program.for_each_output_of(input, values, usize::MAX, |value| {
            // Writing into a Vec cannot fail.
            let _ = print(&mut printed, &value, options.compact, options.raw);
        }),
        Some(Err(error)) => Err(JqError::Runtime(format!("invalid JSON: {error}"))),
        None => Ok(()),
    };
    Done { printed, error: result.err().map(|e| e.to_string()) }
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

/// The text of each input file (or of standard input), with its name for messages.
fn input_texts(files: &[PathBuf]) -> Result<Vec<(String, String)>, i32> {
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
    Ok(texts)
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
