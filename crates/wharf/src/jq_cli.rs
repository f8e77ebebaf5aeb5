//! `wharf jq` and `wharf render`: try expressions and templates locally exactly as Wharf runs
//! them (Port's single quotes, Wharf's builtins), with jq's command-line conventions; and
//! `wharf render --action`: the request a run of an action would send; `wharf render
//! --workflow --node`: what one node of a workflow would do in a run.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args};
use serde_json::{Value, json};
use wharf_core::action::{ActionDef, check_programs};
use wharf_core::json::type_name;
use wharf_core::run::Request;
use wharf_core::secret::{SecretValue, SecretValues, check_name};
use wharf_core::signing::port_signature;
use wharf_core::time::Timestamp;
use wharf_core::workflow::{WorkflowDef, check_programs as check_workflow_programs};
use wharf_engine::runs::{Preview, Previewed, preview, preview_context};
use wharf_engine::workflows::{NodePreview, preview_node};
use wharf_jq::template::Renderer;
use wharf_jq::{JqError, Limits, Program, ProgramCache};

/// jq's exit statuses.
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_COMPILE: i32 = 3;
pub const EXIT_RUNTIME: i32 = 5;

/// Local runs are the user's own: no step or time limit, and most of the main thread's stack.
const CLI_LIMITS: Limits = Limits { steps: u64::MAX, time: Duration::from_secs(24 * 3600), stack: 6 << 20, memory: usize::MAX };

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

/// `wharf render`: a template against a context, or (`--action`) the request a run of an action
/// would send.
#[derive(Debug, Args)]
#[command(after_long_help = RENDER_HELP)]
#[command(group(clap::ArgGroup::new("document").args(["action", "workflow"])))]
pub struct RenderArgs {
    /// JSON file with the template context. With a TEMPLATE: any object (`.inputs`, `.entity`,
    /// `.secrets`, … or a webhook's `{body, headers, queryParams}`). With --action: Port's
    /// context of actions (`.inputs`, `.trigger`, `.entity`, `.action`, `.run`, `.event`),
    /// all optional; what it lacks is filled in as a run would have it (see below)
    /// With --workflow: the node run's context (`.outputs`, `.workflow`, `.workflowRun`,
    /// `.workflowNodeRun`), all optional
    #[arg(long, value_name = "FILE", required_unless_present = "document")]
    context: Option<PathBuf>,
    /// One line of output, without indentation
    #[arg(short = 'c', long = "compact-output")]
    compact: bool,
    /// Port's action or automation document (the body of `POST /v1/actions`): print the
    /// request a run of it would send (method, URL, headers, body), secrets masked; for an
    /// UPSERT_ENTITY action, the entity it would write
    #[arg(long, value_name = "FILE", conflicts_with_all = ["template", "workflow"])]
    action: Option<PathBuf>,
    /// Port's workflow document (the body of `POST /v1/workflows`): print what the node
    /// `--node` would do in a run: a WEBHOOK's request, an UPSERT_ENTITY's entity, a
    /// CONDITION's outlet
    #[arg(long, value_name = "FILE", conflicts_with = "template", requires = "node")]
    workflow: Option<PathBuf>,
    /// With --workflow: the node's identifier
    #[arg(long, value_name = "ID", requires = "workflow")]
    node: Option<String>,
    /// With --action: JSON file `{"NAME": "value", …}` with the organization secrets the action
    /// reads as `{{ .secrets.NAME }}`; each value is shown as `****`
    #[arg(long, value_name = "FILE", requires = "document")]
    secrets: Option<PathBuf>,
    /// With --action: the secret of the organization's first API client, which signs what
    /// Wharf sends; given, X-Port-Timestamp and X-Port-Signature are shown as Wharf would send
    /// them (prefer the variable: a flag is visible to other users of the machine)
    #[arg(long, env = "WHARF_CLIENT_SECRET", value_name = "SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// With --action: the Unix time in seconds of the run, for X-Port-Timestamp and
    /// `.trigger.at` [default: now]
    #[arg(long, value_name = "SECONDS", requires = "document")]
    timestamp: Option<i64>,
    /// With --action: print one JSON object (`type`, `method`, `url`, `headers`, `body` as the
    /// exact text sent, …) instead of the request as text
    #[arg(long, requires = "document")]
    json: bool,
    /// JSON file with `{{ … }}` templates in strings and keys
    #[arg(value_name = "TEMPLATE", required_unless_present = "document")]
    template: Option<PathBuf>,
}

const RENDER_HELP: &str = "\
With --action, the action file is checked as `POST /v1/actions` checks it (every template and
condition compiled; the blueprints it names are not looked up), and its invocation is rendered
by Wharf's own rendering, with the same budget (1 M jq steps, 1 s, 64 MiB), default body and
headers as a run. The context's keys replace what a run would have, except that a self-service
action's `.inputs` are checked against its `userInputs` and completed with their defaults, as
`POST /v1/actions/{id}/runs` does (a bad input is an error naming it). What the context lacks:
  .run        {\"id\": \"r_preview\"}
  .action     {\"identifier\", \"blueprint\", \"encryptedProperties\": []} ({\"identifier\"} for automations)
  .trigger    {\"by\": {\"orgId\": \"org_preview\", \"userId\": \"preview\", …}, \"origin\": \"API\", \"at\", \"operation\"}
              (\"origin\": \"AUTOMATION\", no operation, for automations)
  .entity     {} (null for automations; give the entity of a DAY-2 or DELETE action)
  .inputs     {} with the inputs' defaults (null for automations)
  .event      null (give an automation's event: {\"action\", \"resourceType\", \"context\", \"diff\"})

The text output is the request as sent: a `#` line saying how it is sent, then the method and
URL, the headers, an empty line and the body's exact bytes (compact JSON). X-Port-Timestamp and
X-Port-Signature (`v1,` + base64 HMAC-SHA256 of `<timestamp>.<body>`, keyed with the client
secret) are shown when a client secret is given; the signature is of the body as sent, secrets
in clear. jq errors render as null, as in a run, and are listed on standard error.

With --workflow and --node, the workflow is checked as `POST /v1/workflows` checks it (graph
rules, every template and expression compiled) and the node is rendered as the stepper renders
it in a run, with the same budget. The context's keys stay; what it lacks is filled in:
  .outputs          {} (give each earlier node's output by its identifier; `.outputs.trigger`
                    aliases the first trigger's output given)
  .workflow         {\"identifier\", \"versionIdentifier\": \"wfv_preview\"}
  .workflowRun      {\"identifier\": \"wfr_preview\", \"createdAt\", \"trigger\": {\"identifier\", \"by\": {}}}
  .workflowNodeRun  {\"identifier\": \"wfnr_preview\", \"createdAt\"}
A WEBHOOK node prints its request as --action does (it also carries X-Wharf-Node-Run-Id when
sent); an UPSERT_ENTITY node its entity (an identifier generated from the node run's id when
the mapping has none); a CONDITION node the outlet that holds (`null`: the fallback).

Exit status: 0 rendered; 2 a file cannot be read, is not JSON, or the action, context or
secrets are refused (the message names the file and the path in it); 5 the invocation cannot
be rendered (a run of it would end FAILURE with that reason).

Examples:
  wharf render --context context.json body.json
  wharf render --action deploy.json --context context.json --secrets secrets.json
  WHARF_CLIENT_SECRET=… wharf render --action deploy.json --context context.json --json
  wharf render --workflow deploy.json --node trigger-github --context run.json --secrets secrets.json";

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
    // The user's own terminal: `stderr` and `debug` print there, as in jq.
    wharf_jq::uncaptured_logs_to_stderr(true);
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
    let texts = if args.null_input { vec![("<null>".to_owned(), b"null".to_vec())] } else { input_texts(&files)? };
    for (name, text) in &texts {
        let (documents, broken) = split_documents_in_parallel(text);
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
const BATCH: usize = 16_384;

/// What one input document produced: its printed outputs, and the error that ended it.
struct Done {
    printed: Vec<u8>,
    error: Option<String>,
}

/// Inputs smaller than this are scanned by one thread.
const PARALLEL_SCAN_BYTES: usize = 1 << 20;

/// [`split_documents`] of a text checked as UTF-8, with each core checking and scanning a
/// piece of the text that starts after a newline. A piece that scans without error ends with
/// complete documents (a newline cannot fall inside a number or a string), so when every
/// piece before it scanned cleanly, a piece starts on a document boundary and its documents
/// are the text's. On any error the whole text is checked and scanned again by one thread,
/// so that the error and its position are the ones a single scan reports.
fn split_documents_in_parallel(text: &[u8]) -> (Vec<&str>, Option<String>) {
    let whole = || match std::str::from_utf8(text) {
        Ok(text) => split_documents(text),
        Err(error) => (Vec::new(), Some(format!("the input is not UTF-8: {error}"))),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores == 1 || text.len() < PARALLEL_SCAN_BYTES {
        return whole();
    }
    let mut starts = vec![0];
    for i in 1..cores {
        let from = (text.len() / cores * i).max(*starts.last().unwrap_or(&0));
        if let Some(newline) = text[from..].iter().position(|&b| b == b'\n') {
            starts.push(from + newline + 1);
        }
    }
    starts.dedup();
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    let pieces: Vec<&[u8]> = starts.iter().zip(ends).map(|(&start, end)| &text[start..end]).collect();
    let scanned: Option<Vec<(Vec<&str>, _)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces.iter().map(|piece| scope.spawn(move || scan_piece(piece))).collect();
        // A worker cannot panic (the scan returns errors); if one did, its piece is rescanned.
        handles.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    match scanned {
        Some(pieces) => (pieces.into_iter().flat_map(|(documents, _)| documents).collect(), None),
        None => whole(),
    }
}

/// The documents of a piece of text, when it is UTF-8 and scans without error.
fn scan_piece(piece: &[u8]) -> Option<(Vec<&str>, Option<String>)> {
    std::str::from_utf8(piece).ok().map(split_documents).filter(|(_, error)| error.is_none())
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

/// Documents a worker takes at a time: small enough that a core slowed by something else
/// does not hold the others up at the end of a batch.
const CHUNK: usize = 32;

/// Runs the program on each document, on every core for large batches, in input order. The
/// workers (this thread among them) take chunks of documents as they become free.
fn run_batch(program: &Program, values: &[Value], options: Output, documents: &[&str]) -> Vec<Done> {
    let run_chunk = |start: usize| {
        let chunk = &documents[start..(start + CHUNK).min(documents.len())];
        (start, chunk.iter().map(|d| run_document(program, values, options, d)).collect::<Vec<_>>())
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(documents.len().div_ceil(CHUNK));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let start = next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
            if start >= documents.len() {
                return done;
            }
            done.push(run_chunk(start));
        }
    };
    let mut chunks: Vec<(usize, Vec<Done>)> = std::thread::scope(|scope| {
        // Stacks large enough for the CLI's stack budget. A thread that cannot be started
        // leaves its share to the others.
        let spawn = || std::thread::Builder::new().stack_size(16 << 20).spawn_scoped(scope, work).ok();
        let helpers: Vec<_> = (1..workers).filter_map(|_| spawn()).collect();
        let mut chunks = work();
        for helper in helpers {
            // A helper cannot panic (errors are results); if one did, its chunks are redone below.
            chunks.extend(helper.join().unwrap_or_default());
        }
        chunks
    });
    chunks.sort_unstable_by_key(|(start, _)| *start);
    let mut done = Vec::with_capacity(documents.len());
    for (start, results) in chunks {
        for missing in (done.len()..start).step_by(CHUNK) {
            done.extend(run_chunk(missing).1);
        }
        done.extend(results);
    }
    for missing in (done.len()..documents.len()).step_by(CHUNK) {
        done.extend(run_chunk(missing).1);
    }
    done
}

fn run_document(program: &Program, values: &[Value], options: Output, document: &str) -> Done {
    let mut printed = Vec::new();
    let result = match program.parse_input(document) {
        Ok(input) => program.for_each_output_of(input, values, usize::MAX, |value| {
            // Writing into a Vec cannot fail.
            let _ = print(&mut printed, &value, options.compact, options.raw);
        }),
        Err(error) => Err(JqError::Runtime(format!("invalid JSON: {error}"))),
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

/// The text of each input file (or of standard input), with its name for messages. It is
/// checked as UTF-8 by the threads that scan it ([`split_documents_in_parallel`]).
fn input_texts(files: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, i32> {
    let mut texts = Vec::new();
    if files.is_empty() {
        let mut text = Vec::new();
        std::io::stdin().read_to_end(&mut text).map_err(|e| {
            eprintln!("wharf jq: cannot read standard input: {e}");
            EXIT_USAGE
        })?;
        texts.push(("<stdin>".to_owned(), text));
    }
    for file in files {
        let text = read_file(file).map_err(|e| {
            eprintln!("wharf: cannot read {}: {e}", file.display());
            EXIT_USAGE
        })?;
        texts.push((file.display().to_string(), text));
    }
    Ok(texts)
}

/// The bytes of a file; a large one is read by every core at once (on Unix), each reading
/// its own part into its own part of the buffer, since copying the file in is a large share
/// of a run over a big input.
fn read_file(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let mut file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores > 1 && len >= PARALLEL_SCAN_BYTES && len < isize::MAX as usize {
            let mut text = vec![0u8; len];
            let part = len.div_ceil(cores);
            std::thread::scope(|scope| {
                let readers: Vec<_> = text
                    .chunks_mut(part)
                    .enumerate()
                    .map(|(i, chunk)| {
                        let file = &file;
                        scope.spawn(move || file.read_exact_at(chunk, (i * part) as u64))
                    })
                    .collect();
                readers.into_iter().try_for_each(|r| r.join().unwrap_or_else(|_| Err(std::io::Error::other("a reader failed"))))
            })?;
            // A file that grew meanwhile: the rest as well.
            file.seek(std::io::SeekFrom::Start(len as u64))?;
            file.read_to_end(&mut text)?;
            return Ok(text);
        }
    }
    std::fs::read(path)
}

/// Runs `wharf render`; returns the exit status. jq errors render as `null` and are reported
/// on standard error, as in Wharf; template errors stop it.
pub fn render(args: RenderArgs) -> i32 {
    if args.action.is_some() {
        return render_action(args).unwrap_or_else(|status| status);
    }
    if args.workflow.is_some() {
        return render_node(args).unwrap_or_else(|status| status);
    }
    let (Some(context_path), Some(template_path)) = (&args.context, &args.template) else {
        eprintln!("wharf render: give --context FILE and a TEMPLATE file, or --action FILE; see `wharf render --help`");
        return EXIT_USAGE;
    };
    let (context, template) = match (parse_json(context_path), parse_json(template_path)) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(status), _) | (_, Err(status)) => return status,
    };
    let programs = ProgramCache::default();
    match Renderer::new(&programs, &context).render(&template) {
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

fn parse_json(path: &PathBuf) -> Result<Value, i32> {
    serde_json::from_str(&read(path)?).map_err(|e| {
        eprintln!("wharf render: {}: invalid JSON: {e}", path.display());
        EXIT_USAGE
    })
}

/// A refusal of one of the given files: its name, then what is wrong and where in it.
fn refused(path: &Path, message: impl std::fmt::Display) -> i32 {
    eprintln!("wharf render: {}: {message}", path.display());
    EXIT_USAGE
}

/// The stack of the thread that checks and renders (jq's evaluation recurses).
const RENDER_STACK: usize = 16 << 20;

/// Runs `work` (checking compiles jq, rendering runs it) on a thread with [`RENDER_STACK`].
fn on_render_thread<T: Send + 'static>(work: impl FnOnce() -> Result<T, i32> + Send + 'static) -> Result<T, i32> {
    std::thread::Builder::new()
        .stack_size(RENDER_STACK)
        .spawn(work)
        .map_err(|e| {
            eprintln!("wharf render: cannot start the rendering thread: {e}");
            EXIT_USAGE
        })?
        .join()
        .unwrap_or(Err(EXIT_RUNTIME))
}

/// What `--action` and `--workflow` render with: the context (`{}` without `--context`), the
/// secrets, and the time (`--timestamp`, or now) in seconds and as a timestamp.
struct Inputs {
    context: Value,
    secrets: SecretValues,
    seconds: i64,
    at: Timestamp,
}

fn inputs(args: &RenderArgs) -> Result<Inputs, i32> {
    let context = match &args.context {
        Some(path) => parse_json(path)?,
        None => Value::Object(serde_json::Map::new()),
    };
    let secrets = match &args.secrets {
        Some(path) => secret_values(path, parse_json(path)?)?,
        None => SecretValues::default(),
    };
    let seconds = args.timestamp.unwrap_or_else(|| wharf_engine::now().millis() / 1000);
    Ok(Inputs { context, secrets, seconds, at: Timestamp::from_millis(seconds.saturating_mul(1000)) })
}

/// `wharf render --action`: checks the action as a save does, completes the context as a run
/// would have it, and renders through the engine's own rendering ([`wharf_engine::runs::preview`]).
fn render_action(args: RenderArgs) -> Result<i32, i32> {
    let action_path = args.action.clone().unwrap_or_default();
    let action_doc = parse_json(&action_path)?;
    let Inputs { context, secrets, seconds, at } = inputs(&args)?;
    let context_path = args.context.clone().unwrap_or_else(|| PathBuf::from("the context (no --context FILE)"));
    // Checking compiles jq and rendering runs it: both on a thread with a large stack.
    let work = move || -> Result<(ActionDef, Preview), i32> {
        let def = ActionDef::parse(action_doc, None).map_err(|err| refused(&action_path, err.message))?;
        check_programs(&def).map_err(|err| refused(&action_path, err.message))?;
        let context = preview_context(&def, &context, at).map_err(|why| refused(&context_path, why))?;
        let preview = preview(&def, &context, &secrets).map_err(|why| {
            eprintln!("wharf render: the invocation cannot be rendered: {why}");
            EXIT_RUNTIME
        })?;
        Ok((def, preview))
    };
    let (def, preview) = on_render_thread(work)?;
    for null in &preview.nulls {
        eprintln!("wharf render: {null}");
    }
    let signing = args.client_secret.as_deref().filter(|s| !s.is_empty()).map(|key| (key, seconds));
    let out = match &preview.previewed {
        Previewed::Webhook { sent, shown, held } => webhook_output(&What::action(&def), sent, shown, held, signing, &args),
        Previewed::Upsert { blueprint, entity } => upsert_output(&What::action(&def), blueprint, entity, &args),
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if lock.write_all(out.as_bytes()).and_then(|()| lock.flush()).is_err() {
        return Err(EXIT_USAGE);
    }
    Ok(0)
}

/// The secrets file: an object of string values, each named by its path when refused.
fn secret_values(path: &Path, doc: Value) -> Result<SecretValues, i32> {
    let Value::Object(map) = doc else {
        return Err(refused(path, format!("must be a JSON object {{\"NAME\": \"value\"}}, not {}", type_name(&doc))));
    };
    let mut values = Vec::with_capacity(map.len());
    for (name, value) in map {
        check_name(&name).map_err(|err| refused(path, format!("`{name}`: {}", err.message)))?;
        match value {
            Value::String(text) => values.push((name, SecretValue::new(text))),
            other => return Err(refused(path, format!("`{name}` must be a string, not {}", type_name(&other)))),
        }
    }
    Ok(values.into_iter().collect())
}

const X_PORT_TIMESTAMP: &str = "X-Port-Timestamp";
const X_PORT_SIGNATURE: &str = "X-Port-Signature";

/// The text or JSON output of a WEBHOOK preview.
fn webhook_output(
    what: &What,
    sent: &Request,
    shown: &Request,
    held: &[String],
    signing: Option<(&str, i64)>,
    args: &RenderArgs,
) -> String {
    // As the invoker sends it: the request's headers, then Port's two, which replace any
    // header of the same name.
    let mut headers: Vec<(String, String)> = shown
        .headers
        .iter()
        .filter(|(name, _)| {
            signing.is_none() || !(name.eq_ignore_ascii_case(X_PORT_TIMESTAMP) || name.eq_ignore_ascii_case(X_PORT_SIGNATURE))
        })
        .cloned()
        .collect();
    if let Some((key, seconds)) = signing {
        let body = sent.body.as_deref().unwrap_or_default();
        headers.push((X_PORT_TIMESTAMP.to_owned(), seconds.to_string()));
        headers.push((X_PORT_SIGNATURE.to_owned(), port_signature(key.as_bytes(), seconds, body.as_bytes())));
    }
    if args.json {
        let headers: serde_json::Map<String, Value> =
            headers.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
        let doc = json!({
            "type": "WEBHOOK",
            what.key: what.identifier,
            "method": shown.method,
            "url": shown.url,
            "headers": headers,
            "body": shown.body,
            "synchronized": shown.synchronized,
            "agent": shown.agent,
            "signed": signing.is_some(),
            "maskedSecrets": held,
        });
        return printed(&doc, args.compact);
    }
    let mut out = String::new();
    let mode = if shown.synchronized { what.synchronized } else { what.asynchronous };
    out.push_str(&format!("# WEBHOOK request of {}, {mode}", what.label));
    if shown.agent {
        out.push_str("; agent: true");
    }
    out.push('\n');
    if !held.is_empty() {
        let names: Vec<String> = held.iter().map(|name| format!("`{name}`")).collect();
        out.push_str(&format!("# secrets masked as ****: {}", names.join(", ")));
        if signing.is_some() && shown.body != sent.body {
            out.push_str(" (the signature is of the body as sent, secrets in clear)");
        }
        out.push('\n');
    }
    if signing.is_none() {
        out.push_str(&format!(
            "# {X_PORT_TIMESTAMP} and {X_PORT_SIGNATURE} are added when Wharf sends it, signed with the organization's \
             first API client's secret (give --client-secret or WHARF_CLIENT_SECRET to see them)\n"
        ));
    }
    out.push_str(&format!("{} {}\n", shown.method, shown.url));
    for (name, value) in &headers {
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.push('\n');
    if let Some(body) = &shown.body {
        out.push_str(body);
        out.push('\n');
    }
    out
}

/// The text or JSON output of an UPSERT_ENTITY preview.
fn upsert_output(what: &What, blueprint: &str, entity: &Value, args: &RenderArgs) -> String {
    if args.json {
        let doc = json!({"type": "UPSERT_ENTITY", what.key: what.identifier, "blueprintIdentifier": blueprint, "entity": entity});
        return printed(&doc, args.compact);
    }
    format!(
        "# UPSERT_ENTITY of {}: nothing is sent; the run writes this entity into blueprint `{blueprint}`, merged into it \
         when it exists, as this call would:\nPOST /v1/blueprints/{blueprint}/entities?upsert=true&merge=true\n\n{}",
        what.label,
        printed(entity, args.compact)
    )
}

/// What is rendered, in the output's words: an action, or a node of a workflow.
struct What {
    /// The JSON output's key (`action`, `node`) and its value.
    key: &'static str,
    identifier: String,
    /// The text output's name of it.
    label: String,
    synchronized: &'static str,
    asynchronous: &'static str,
}

impl What {
    fn action(def: &ActionDef) -> Self {
        Self {
            key: "action",
            identifier: def.identifier.clone(),
            label: format!("`{}`", def.identifier),
            synchronized: "synchronized (the answer's status ends the run: 2xx SUCCESS, else FAILURE)",
            asynchronous: "asynchronous (the backend reports the result: PATCH /v1/actions/runs/{run_id})",
        }
    }

    fn node(workflow: &str, node: &str) -> Self {
        Self {
            key: "node",
            identifier: node.to_owned(),
            label: format!("node `{node}` of workflow `{workflow}`"),
            synchronized: "synchronized (the answer is the node's output; 2xx SUCCESS, else FAILED)",
            asynchronous: "asynchronous (a 2xx leaves the node run waiting for PATCH /v1/workflows/nodes/runs/{node_run_id})",
        }
    }
}

/// `wharf render --workflow --node`: checks the workflow as a save does, completes the node
/// run's context, and renders the node through the stepper's own rendering
/// ([`wharf_engine::workflows::preview_node`]).
fn render_node(args: RenderArgs) -> Result<i32, i32> {
    let workflow_path = args.workflow.clone().unwrap_or_default();
    let node_id = args.node.clone().unwrap_or_default();
    let workflow_doc = parse_json(&workflow_path)?;
    let Inputs { context, secrets, seconds, at } = inputs(&args)?;
    let work = move || -> Result<(String, NodePreview), i32> {
        let def = WorkflowDef::parse(workflow_doc, None).map_err(|err| refused(&workflow_path, err.message))?;
        check_workflow_programs(&def).map_err(|err| refused(&workflow_path, err.message))?;
        let Some(node) = def.node(&node_id) else {
            let known: Vec<String> = def.nodes.iter().map(|n| format!("`{}`", n.identifier)).collect();
            return Err(refused(&workflow_path, format!("has no node `{node_id}`; its nodes are {}", known.join(", "))));
        };
        if node.is_trigger() {
            return Err(refused(&workflow_path, format!("node `{node_id}` is a trigger: it fires, it does not run")));
        }
        let context = wharf_engine::workflows::preview_context(&def, &context, at);
        let preview = preview_node(node, &context, &secrets).map_err(|why| {
            eprintln!("wharf render: the node cannot be rendered: {why}");
            EXIT_RUNTIME
        })?;
        Ok((def.identifier.clone(), preview))
    };
    let (workflow, preview) = on_render_thread(work)?;
    let what = What::node(&workflow, args.node.as_deref().unwrap_or_default());
    let signing = args.client_secret.as_deref().filter(|s| !s.is_empty()).map(|key| (key, seconds));
    let out = match &preview {
        NodePreview::Webhook { sent, shown, held } => webhook_output(&what, sent, shown, held, signing, &args),
        NodePreview::Upsert { blueprint, entity } => upsert_output(&what, blueprint, entity, &args),
        NodePreview::Branch { outlet } => {
            let doc = json!({"type": "CONDITION", "node": what.identifier, "outlet": outlet});
            if args.json {
                printed(&doc, args.compact)
            } else {
                let taken = outlet.as_ref().map_or("no outlet holds: the `fallback` connection is taken".to_owned(), |o| {
                    format!("outlet `{o}` holds: its connection is taken")
                });
                format!("# CONDITION {}: {taken}\n{}", what.label, printed(&doc, args.compact))
            }
        }
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if lock.write_all(out.as_bytes()).and_then(|()| lock.flush()).is_err() {
        return Err(EXIT_USAGE);
    }
    Ok(0)
}

fn printed(value: &Value, compact: bool) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and a JSON value always serializes.
    let _ = print(&mut out, value, compact, false);
    String::from_utf8(out).unwrap_or_default()
}

fn one_line(error: &JqError) -> String {
    error.to_string().lines().next().unwrap_or_default().to_owned()
}
