//! Wharf's jq, on jaq: compile once, evaluate many times, from many threads.
//!
//! User jq is untrusted: `env`/`$ENV` are an empty object, as in Port (the process
//! environment holds database URLs and keys), `halt`/`halt_error` fail instead of ending the
//! process, and every evaluation caps its number of outputs. Values cross the boundary as
//! `serde_json::Value` with key order kept; integral results are integers (`4/2` is `2`), and
//! non-finite numbers become `null`.
//!
//! Port's dialect: single-quoted string literals are accepted ([`rewrite`]), and `{{ … }}`
//! templates inside JSON render with Port's semantics ([`template`]).

mod alloc;
mod errors;
mod prelude;
pub mod rewrite;
pub mod template;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use alloc::CountingAlloc;
use jaq_core::budget::with_limits;
pub use jaq_core::budget::{Exceeded, Limits, Logs, allocated, charge_steps, poll};
pub use jaq_core::demand::Demand;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde::Deserialize;
use serde::de::DeserializeSeed;
use serde_json::Value;

pub(crate) type D = data::JustLut<Val>;
type Filter = jaq_core::Filter<D>;

/// The most outputs one evaluation may produce before it is stopped.
pub const MAX_OUTPUTS: usize = 10_000;

/// The largest single output (about its size as JSON text) one evaluation may produce.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// The budget of one evaluation unless the caller sets another: a million steps (a typical
/// Port mapping takes a few hundred), one second, 1 MiB of stack, which fits inside the 2 MiB
/// stacks of Rust's spawned threads and tokio's workers, and 64 MiB allocated (counted only
/// where the process's allocator is a [`CountingAlloc`]).
pub const DEFAULT_LIMITS: Limits =
    Limits { steps: 1_000_000, time: std::time::Duration::from_secs(1), stack: 1 << 20, memory: 64 << 20 };

/// Programs up to this long compile on the calling thread (see [`Program::compile_with_vars`]):
/// at most 128 levels of nesting, about 1 MiB of stack in a debug build, which even a 2 MiB
/// async worker has (templates compile where they render).
const INLINE_COMPILE_BYTES: usize = 256;

/// Stack reserved per byte of a longer program's source for its compilation: more than the
/// deepest nesting one byte can open takes in a debug build (20,000 nested `(`, 40 KB, took
/// more than 176 MiB; 32 KiB a byte compiles every construct of `tests/hostile.rs`). Only
/// address space: a 64 KiB expression (SPEC §12) reserves 2 GiB and touches what it uses.
const COMPILE_STACK_PER_BYTE: usize = 32 << 10;

/// How deeply JSON may nest: a document or value whose arrays and objects nest `MAX_DEPTH`
/// levels deep is refused (at most `MAX_DEPTH - 1` levels, SPEC §12), by every parser of jq
/// inputs and `fromjson`, and an evaluation output that deep is an error
/// ([`JqError::TooDeep`]). The count is `serde_json`'s: whatever Wharf accepts, `serde_json`
/// reads back, and no `serde_json::Value` deeper than this leaves this crate.
pub const MAX_DEPTH: usize = jaq_json::read::MAX_DEPTH;

/// The most text the `stderr` and `debug` messages of one unit of work keep ([`with_budget`]).
pub const MAX_LOG_BYTES: usize = 64 << 10;

/// Why a program does not compile or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqError {
    /// The program does not compile: jq's message (`jq: compile error: … at <top-level>,
    /// line N:`) followed by the program, as jq prints them.
    #[error("{message}\n{program}")]
    Compile { program: String, message: String },
    #[error("jq: error: {0}")]
    Runtime(String),
    #[error("jq program produced more than {MAX_OUTPUTS} outputs")]
    TooManyOutputs,
    /// An output larger than the program's output budget.
    #[error("jq output is larger than {0} bytes")]
    OutputTooLarge(usize),
    /// The evaluation crossed a limit of its budget (steps, time, stack depth or memory).
    #[error("jq {}", .0.message())]
    Budget(Exceeded),
    /// An output nested [`MAX_DEPTH`] levels deep.
    #[error("jq output is nested too deeply (arrays and objects {MAX_DEPTH} levels deep)")]
    TooDeep,
}

/// What a unit of work run under [`with_budget`] gives back.
#[derive(Debug)]
pub struct Budgeted<T> {
    /// What the work returned.
    pub value: T,
    /// The limit of the unit's budget that the work crossed, if any.
    pub exceeded: Option<Exceeded>,
    /// What its `stderr` and `debug` logged (JSON text, one message a line, at most
    /// [`MAX_LOG_BYTES`]).
    pub logs: Logs,
}

/// Runs one unit of work (one event's mapping, one template render) under one budget: every
/// evaluation inside it runs under the smaller of its own limits and what the unit has left,
/// and spends the unit's budget; the messages of `stderr` and `debug` are captured for the
/// caller instead of written anywhere. Budgets nest.
pub fn with_budget<T>(limits: Limits, work: impl FnOnce() -> T) -> Budgeted<T> {
    let ((value, exceeded), logs) = jaq_core::budget::capture_logs(MAX_LOG_BYTES, || with_limits(limits, work));
    Budgeted { value, exceeded, logs }
}

/// The budget of a quick unit of work ([`quick`]): what a run's inputs, a template render or
/// a condition take many times over (a few hundred steps), and small enough to spend on an
/// async worker: 20,000 steps, 5 ms, 256 KiB of stack, 8 MiB allocated.
pub const QUICK_LIMITS: Limits =
    Limits { steps: 20_000, time: std::time::Duration::from_millis(5), stack: 256 << 10, memory: 8 << 20 };

std::thread_local! {
    /// Whether a [`quick`] unit runs on this thread: no program compiles inside one.
    static QUICK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` as a quick unit on the calling thread: under [`QUICK_LIMITS`] (every budget
/// opened inside it is bounded by what it has left), and without compiling, since a compile
/// is not budgeted: a program not compiled yet crosses the budget instead
/// ([`ProgramCache::program`], [`Program::compile`]). `None` when the work crossed the budget;
/// its result is then dropped, and the caller runs the work again where it may take its whole
/// budget (a jq thread). So `work` must be pure: what it returns is only what it computes.
///
/// This is how an async worker evaluates what is nearly always small (a run's inputs and
/// templates, an automation's condition) without a hand-off to another thread, and still
/// never spends more than a few milliseconds on an evaluation that is not.
pub fn quick<T>(work: impl FnOnce() -> T) -> Option<T> {
    let was = QUICK.with(|q| q.replace(true));
    let run = with_budget(QUICK_LIMITS, work);
    QUICK.with(|q| q.set(was));
    run.exceeded.is_none().then_some(run.value)
}

/// Inside a [`quick`] unit, a compile crosses the unit's budget: the error to return instead
/// of compiling. `None` outside one.
fn refused_in_quick_unit() -> Option<JqError> {
    if !QUICK.with(std::cell::Cell::get) {
        return None;
    }
    // Spends every step the unit has left, which marks its budget crossed (a budget the
    // unit opened inside is bounded by it, so the crossing reaches the unit).
    let _ = charge_steps(u64::MAX);
    Some(JqError::Budget(Exceeded::Steps))
}

/// The limit that the budget of the unit of work running on this thread has crossed (`None`
/// when none has, or outside [`with_budget`]).
pub fn budget_exceeded() -> Option<Exceeded> {
    jaq_core::budget::exceeded()
}

/// Where `stderr` and `debug` messages go outside [`with_budget`]: the process's standard
/// error (`true`, for the command line) or nowhere (`false`, the default: a server's log is
/// no place for a user's text).
pub fn uncaptured_logs_to_stderr(on: bool) {
    jaq_core::budget::uncaptured_logs_to_stderr(on)
}

/// A compiled jq program. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Program {
    filter: Arc<Filter>,
    source: Arc<str>,
    limits: Limits,
    /// The largest output allowed, about its size as JSON text.
    max_output_bytes: usize,
    /// How many global variables the program was compiled with.
    vars: usize,
    /// What the program can observe of its input: inputs are built with only that part.
    demand: Arc<Demand>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Program").field(&self.source).finish()
    }
}

/// jq's library in jq syntax, as Wharf compiles it: jaq's definitions, less `nan` and
/// `infinite`, which jaq defines as divisions by zero, an error in jq as in Wharf
/// ([`natives`] provides them).
pub(crate) fn definitions() -> impl Iterator<Item = jaq_core::load::parse::Def> {
    let std = jaq_std::defs().filter(|def| !matches!(def.name, "nan" | "infinite"));
    jaq_core::defs().chain(std).chain(jaq_json::defs())
}

/// jq's library in Rust: jaq's natives, with `env` and `halt` disabled, plus `nan` and
/// `infinite`.
pub(crate) fn natives() -> impl Iterator<Item = jaq_core::native::Fun<D>> {
    let jaq = jaq_core::funs::<D>().chain(jaq_std::funs::<D>()).chain(jaq_json::funs::<D>()).map(|(name, arity, native)| {
        if matches!(name, "env" | "halt" | "halt_error") {
            jaq_core::native::run::<D>((name, arity, disabled))
        } else {
            (name, arity, native)
        }
    });
    let constants: [jaq_core::native::Fun<D>; 2] = [
        jaq_core::native::run::<D>(("infinite", Box::new([]), |_| {
            Box::new(std::iter::once(Ok(Val::Num(jaq_json::Num::Float(f64::INFINITY)))))
        })),
        jaq_core::native::run::<D>(("nan", Box::new([]), |_| {
            Box::new(std::iter::once(Ok(Val::Num(jaq_json::Num::Float(f64::NAN)))))
        })),
    ];
    jaq.chain(constants)
}

/// Replaces a builtin that must not run on untrusted input.
fn disabled<'a>(_: jaq_core::Cv<'a, D>) -> jaq_core::ValXs<'a, Val> {
    Box::new(std::iter::once(Err(jaq_core::Exn::from(jaq_core::Error::str("this builtin is disabled in Wharf")))))
}

impl Program {
    /// Compiles `code` (jq syntax, plus Port's single-quoted literals) with jq's standard library.
    pub fn compile(code: &str) -> Result<Self, JqError> {
        Self::compile_with_vars(code, &[])
    }

    /// Compiles `code` with named global variables (`$secrets`, `$x` of `--arg x`): their
    /// values are given at each run, in the same order ([`Program::run_with_vars`]).
    pub fn compile_with_vars(code: &str, vars: &[&str]) -> Result<Self, JqError> {
        if let Some(refused) = refused_in_quick_unit() {
            return Err(refused);
        }
        // jaq's parser, compiler and analyses recurse once per level of nesting, and any
        // construct nests (`((…`, `1|1|…`, `- - …`, `if … then if …`): ten thousand levels,
        // 20 KB of source, overflowed a 32 MiB stack and aborted the process. A program
        // longer than `INLINE_COMPILE_BYTES` (128 levels at most, which any thread's stack
        // holds) compiles on a thread whose stack grows with the source:
        // reserved address space, of which only what the recursion touches is ever used.
        if code.len() <= INLINE_COMPILE_BYTES {
            return Self::compile_here(code, vars);
        }
        let stack = COMPILE_STACK_PER_BYTE.saturating_mul(code.len()).saturating_add(16 << 20);
        std::thread::scope(|scope| {
            let compiling = std::thread::Builder::new()
                .name("wharf-jq-compile".into())
                .stack_size(stack)
                .spawn_scoped(scope, || Self::compile_here(code, vars));
            match compiling {
                Ok(thread) => thread.join().unwrap_or_else(|_| {
                    Err(JqError::Compile { program: code.to_owned(), message: "jq: compile error: the compiler failed".into() })
                }),
                Err(err) => Err(JqError::Compile {
                    program: code.to_owned(),
                    message: format!("jq: compile error: cannot start a thread to compile this program: {err}"),
                }),
            }
        })
    }

    fn compile_here(code: &str, vars: &[&str]) -> Result<Self, JqError> {
        let error = |message: String| JqError::Compile { program: code.to_owned(), message };
        // As Port does: `env` and `$ENV` are an empty object, never the process environment
        // (the natives behind them are disabled below as well).
        let lexed = rewrite::lex(code);
        let location = prelude::location_binding(lexed.location_line);
        let head = format!("{}def env: {{}}; {{}} as $ENV | {location}(", prelude::prelude());
        let wrapped = format!("{head}{})", lexed.code);
        let source = errors::Source { wrapped: &wrapped, offset: head.len(), len: lexed.code.len() };
        let (defs, funs) = (definitions(), natives());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code: wrapped.as_str(), path: () })
            .map_err(|e| error(errors::load_errors(&source, e)))?;
        let globals: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(globals.iter().map(String::as_str))
            .compile(modules)
            .map_err(|e| error(errors::compile_errors(&source, e)))?;
        Ok(Self {
            demand: Arc::new(filter.input_demand()),
            filter: Arc::new(filter),
            source: Arc::from(code),
            limits: DEFAULT_LIMITS,
            max_output_bytes: MAX_OUTPUT_BYTES,
            vars: vars.len(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the program can observe of its input.
    pub fn input_demand(&self) -> &Demand {
        &self.demand
    }

    /// The same program evaluated under other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same program with another cap on the size of each output.
    pub fn with_max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// Every output for `input` (at most [`MAX_OUTPUTS`]).
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, JqError> {
        self.run_with_vars(input, &[])
    }

    /// Every output for `input`, with the values of the program's global variables.
    pub fn run_with_vars(&self, input: &Value, vars: &[Value]) -> Result<Vec<Value>, JqError> {
        let mut out = Vec::new();
        self.for_each_output(input, vars, MAX_OUTPUTS + 1, |value| out.push(value))?;
        if out.len() > MAX_OUTPUTS { Err(JqError::TooManyOutputs) } else { Ok(out) }
    }

    /// The first output, as Port uses it (`None` when the program yields nothing).
    pub fn first(&self, input: &Value) -> Result<Option<Value>, JqError> {
        let input = Input::project(&self.demand, input).map_err(|e| JqError::Runtime(format!("input: {e}")))?;
        self.first_of(&input)
    }

    /// The first output for an input projected for this program, or for a demand that covers
    /// its own ([`Input::project`]).
    pub fn first_of(&self, input: &Input) -> Result<Option<Value>, JqError> {
        let mut first = None;
        self.for_each_output_of(input.clone(), &[], 1, |value| first = Some(value))?;
        Ok(first)
    }

    /// Hands each output to `emit` as it is produced (at most `limit`), so that a caller can
    /// show the outputs before an error, as jq does.
    pub fn for_each_output(&self, input: &Value, vars: &[Value], limit: usize, emit: impl FnMut(Value)) -> Result<(), JqError> {
        let input = self.projected(input).map_err(|e| JqError::Runtime(format!("input: {e}")))?;
        self.for_each_output_of(Input(input), vars, limit, emit)
    }

    /// `input` as jaq's value, with only the part the program can observe (the
    /// keys of objects that no path of the program names are left out).
    fn projected<'de, D: serde::Deserializer<'de>>(&self, input: D) -> Result<Val, D::Error> {
        jaq_json::Projected(&self.demand).deserialize(input)
    }

    /// One JSON document (surrounding whitespace allowed) parsed straight into jaq's
    /// values, with no intermediate `serde_json::Value`, and keeping only what the program
    /// can observe: the fast path for streams of documents. Malformed JSON is an error
    /// wherever it is, in the parts left out too.
    pub fn parse_input(&self, document: &str) -> Result<Input, String> {
        Input::parse(&self.demand, document)
    }

    /// As [`Program::for_each_output`], for an input parsed by [`Program::parse_input`].
    pub fn for_each_output_of(&self, input: Input, vars: &[Value], limit: usize, emit: impl FnMut(Value)) -> Result<(), JqError> {
        if vars.len() != self.vars {
            return Err(JqError::Runtime(format!("the program takes {} variables, {} were given", self.vars, vars.len())));
        }
        let input = input.0;
        let to_val = |v: &Value| Val::deserialize(v).map_err(|e| JqError::Runtime(format!("input: {e}")));
        let vars = vars.iter().map(to_val).collect::<Result<Vec<_>, _>>()?;
        let (result, exceeded) = with_limits(self.limits, || self.evaluate(input, vars, limit, emit));
        match exceeded {
            Some(limit) => Err(JqError::Budget(limit)),
            None => result,
        }
    }

    fn evaluate(&self, input: Val, vars: Vec<Val>, limit: usize, mut emit: impl FnMut(Value)) -> Result<(), JqError> {
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new(vars));
        for result in self.filter.id.run((ctx, input)).take(limit) {
            match result {
                Ok(value) => {
                    // Invariant: `to_json` recurses only into values this has measured, which
                    // nest less than `MAX_DEPTH` levels.
                    if json_size(&value, self.max_output_bytes, 0)? > self.max_output_bytes {
                        return Err(JqError::OutputTooLarge(self.max_output_bytes));
                    }
                    emit(to_json(&value))
                }
                // Never `jaq_core::unwrap_valr`: it exits the process on `halt`.
                Err(exn) => {
                    let message = match exn.get_err() {
                        Ok(err) => err.to_string(),
                        Err(_) => "halt is disabled in Wharf".to_owned(),
                    };
                    return Err(JqError::Runtime(message));
                }
            }
        }
        Ok(())
    }
}

/// A JSON document in jaq's representation, with only the part some programs can
/// observe. Cheap to clone (jaq's values are shared), so that the many programs of one
/// mapping read one projection instead of each projecting the document again.
#[derive(Clone)]
pub struct Input(Val);

impl Input {
    /// `value` with only what `demand` observes; every program whose own demand `demand`
    /// covers (see [`Demand::union`]) evaluates on it as on `value` itself.
    pub fn project(demand: &Demand, value: &Value) -> Result<Self, String> {
        jaq_json::Projected(demand).deserialize(value).map(Input).map_err(|e| e.to_string())
    }

    /// One JSON document (surrounding whitespace allowed) parsed straight into jaq's
    /// values with only what `demand` observes, as [`Input::project`] would make of its
    /// `serde_json::Value` but without building that value first. Malformed JSON is an error
    /// wherever it is, in the parts left out too.
    pub fn parse(demand: &Demand, document: &str) -> Result<Self, String> {
        let mut parser = serde_json::Deserializer::from_str(document);
        let value = jaq_json::Projected(demand).deserialize(&mut parser).and_then(|value| parser.end().map(|()| value));
        value.map(Input).map_err(|e| too_deep_in_words(e.to_string()))
    }

    /// This object with `name` set to `value` (whole, not projected); anything but an object
    /// is returned as it is. The rest is shared, not copied: one input per `itemsToParse`
    /// item costs the item, not the event.
    pub fn with_field(&self, name: &str, value: &Value) -> Result<Self, String> {
        let Val::Obj(fields) = &self.0 else {
            return Ok(self.clone());
        };
        let value = Val::deserialize(value).map_err(|e| e.to_string())?;
        let mut fields = fields.clone();
        jaq_json::Rc::make_mut(&mut fields).insert(Val::from(name.to_owned()), value);
        Ok(Input(Val::Obj(fields)))
    }

    /// Whether this is an object whose keys are among `keys` and in their order, and whose
    /// values under `objects` (where present) are objects.
    pub fn is_object_of(&self, keys: &[&str], objects: &[&str]) -> bool {
        let Val::Obj(fields) = &self.0 else {
            return false;
        };
        let mut next = 0;
        fields.iter().all(|(key, value)| {
            let Val::TStr(key) = key else {
                return false;
            };
            let Some(at) = keys.iter().skip(next).position(|name| name.as_bytes() == &***key) else {
                return false;
            };
            next += at + 1;
            !objects.iter().any(|name| name.as_bytes() == &***key) || matches!(value, Val::Obj(_))
        })
    }
}

/// Compiled programs by source, so that each expression is compiled once however often it
/// runs. Bounded: past [`ProgramCache::CAPACITY`] programs the cache starts over.
#[derive(Default)]
pub struct ProgramCache {
    cache: Mutex<HashMap<String, Result<Program, JqError>>>,
}

impl ProgramCache {
    pub const CAPACITY: usize = 4096;

    /// The compiled program for `code` (compile errors are cached too).
    pub fn program(&self, code: &str) -> Result<Program, JqError> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(code) {
            return found.clone();
        }
        // Never cached: outside a quick unit the same program compiles.
        if let Some(refused) = refused_in_quick_unit() {
            return Err(refused);
        }
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        let compiled = Program::compile(code);
        cache.insert(code.to_owned(), compiled.clone());
        compiled
    }

    /// The first output of `code` on `input`, as Port evaluates expressions.
    pub fn first(&self, code: &str, input: &Value) -> Result<Option<Value>, JqError> {
        self.program(code)?.first(input)
    }
}

/// `serde_json`'s refusal of a document nested too deeply, in the words of jaq-json's own.
fn too_deep_in_words(message: String) -> String {
    match message.strip_prefix("recursion limit exceeded") {
        Some(at) => format!("JSON nested too deeply (arrays and objects {MAX_DEPTH} levels deep){at}"),
        None => message,
    }
}

/// About how many bytes a value `depth` levels deep in an output takes as JSON text, counting
/// no further than `limit`; an error if it nests [`MAX_DEPTH`] levels deep (so this recurses
/// at most that often).
fn json_size(value: &Val, limit: usize, depth: usize) -> Result<usize, JqError> {
    if matches!(value, Val::Arr(_) | Val::Obj(_)) && depth + 1 >= MAX_DEPTH {
        return Err(JqError::TooDeep);
    }
    Ok(match value {
        Val::TStr(bytes) | Val::BStr(bytes) => bytes.len() + 2,
        Val::Arr(items) => {
            let mut size = 2;
            for item in items.iter() {
                size += json_size(item, limit, depth + 1)? + 1;
                if size > limit {
                    break;
                }
            }
            size
        }
        Val::Obj(map) => {
            let mut size = 2;
            for (key, item) in map.iter() {
                size += json_size(key, limit, depth + 1)? + json_size(item, limit, depth + 1)? + 2;
                if size > limit {
                    break;
                }
            }
            size
        }
        _ => 8,
    })
}

/// A jaq value as JSON: integral floats become integers, non-finite numbers `null`, and
/// non-string object keys their JSON text.
fn to_json(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(num) => number(num),
        Val::TStr(bytes) | Val::BStr(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(bytes) | Val::BStr(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

fn number(num: &jaq_json::Num) -> Value {
    use jaq_json::Num;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: integers up to here are exact in f64
    match num {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(f) if !f.is_finite() => Value::Null,
        Num::Float(f) if f.fract() == 0.0 && f.abs() < EXACT => Value::from(*f as i64),
        Num::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        other => serde_json::from_str(&other.to_string()).unwrap_or(Value::Null),
    }
}

/// The unit tests count allocations as the server does, so memory limits hold in them.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_quick_unit_gives_what_fits_its_budget_and_nothing_of_what_does_not() {
        let programs = ProgramCache::default();
        let small = ".inputs.n + 1";
        let large = "[range(100000)] | length";
        // Not compiled yet: a quick unit does not compile, and the refusal is not cached.
        assert!(quick(|| programs.first(small, &json!({"inputs": {"n": 1}}))).is_none());
        assert!(quick(|| Program::compile("1")).is_none());
        assert_eq!(programs.first(small, &json!({"inputs": {"n": 1}})), Ok(Some(json!(2))));
        assert_eq!(quick(|| programs.first(small, &json!({"inputs": {"n": 41}}))), Some(Ok(Some(json!(42)))));
        // Past the quick budget the unit gives nothing; with a budget of its own it finishes.
        programs.program(large).unwrap();
        assert!(quick(|| programs.first(large, &json!(null))).is_none());
        assert_eq!(programs.first(large, &json!(null)), Ok(Some(json!(100000))));
        // An evaluation's own error is the unit's result, as it would be anywhere.
        programs.program("error(\"no\")").unwrap();
        assert!(matches!(quick(|| programs.first("error(\"no\")", &json!(null))), Some(Err(JqError::Runtime(_)))));
        // A unit of work inside the quick one that crosses the quick budget crosses it too.
        let inner = quick(|| with_budget(DEFAULT_LIMITS, || programs.first(large, &json!(null))).exceeded);
        assert!(inner.is_none());
        // And nothing of the quick unit stays on the thread.
        assert!(budget_exceeded().is_none());
        assert_eq!(Program::compile("2").unwrap().first(&json!(null)), Ok(Some(json!(2))));
    }

    #[test]
    fn compiles_once_and_runs_many_times() {
        let program = Program::compile(".body.items[] | {id, name: (.name | ascii_downcase)}").unwrap();
        let input = json!({"body": {"items": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]}});
        assert_eq!(program.run(&input).unwrap(), [json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})]);
        assert_eq!(program.first(&input).unwrap(), Some(json!({"id": 1, "name": "a"})));
        assert_eq!(Program::compile("empty").unwrap().first(&input).unwrap(), None);
    }

    #[test]
    fn global_variables_take_values_per_run() {
        let program =
            Program::compile_with_vars("\"Bearer \\($secrets[\"api-token\"])\" + $suffix", &["secrets", "suffix"]).unwrap();
        let out = program.run_with_vars(&json!(null), &[json!({"api-token": "s3cr3t"}), json!("!")]).unwrap();
        assert_eq!(out, [json!("Bearer s3cr3t!")]);
        let out = program.run_with_vars(&json!(null), &[json!({"api-token": "other"}), json!("?")]).unwrap();
        assert_eq!(out, [json!("Bearer other?")]);
        assert!(matches!(program.run(&json!(null)), Err(JqError::Runtime(_))), "missing values are an error, not a panic");
    }

    #[test]
    fn numbers_round_trip_as_jq_prints_them() {
        let program = Program::compile("[4/2, 3.5, 1e400, (1/3 | floor), 12345678901]").unwrap();
        assert_eq!(program.first(&json!(null)).unwrap(), Some(json!([2, 3.5, null, 0, 12345678901_i64])));
    }

    /// `Input::parse` gives what `Input::project` gives for the parsed value, and rejects
    /// malformed JSON in the parts it leaves out too.
    #[test]
    fn inputs_parse_straight_from_text() {
        let program = Program::compile("[.a.b, .c]").unwrap();
        let text = r#" {"a": {"b": 1.5, "x": [1, 2]}, "c": "s", "d": {"big": true}} "#;
        let parsed = Input::parse(program.input_demand(), text).unwrap();
        let projected = Input::project(program.input_demand(), &serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(program.first_of(&parsed).unwrap(), program.first_of(&projected).unwrap());
        assert_eq!(program.first_of(&parsed).unwrap(), Some(json!([1.5, "s"])));
        assert!(Input::parse(program.input_demand(), r#"{"a": {"b": 1}, "d": [1,}"#).is_err());
        assert!(Input::parse(program.input_demand(), r#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn a_field_is_added_without_touching_the_rest() {
        let program = Program::compile("[.item.n, .body.k, (. | keys)]").unwrap();
        let input = Input::parse(program.input_demand(), r#"{"body": {"k": 1}}"#).unwrap();
        let with_item = input.with_field("item", &json!({"n": 2})).unwrap();
        assert_eq!(program.first_of(&with_item).unwrap(), Some(json!([2, 1, ["body", "item"]])));
        assert_eq!(program.first_of(&input).unwrap(), Some(json!([null, 1, ["body"]])), "the original is unchanged");
        let scalar = Input::parse(program.input_demand(), "3").unwrap();
        let unchanged = scalar.with_field("item", &json!(1)).unwrap();
        assert_eq!(Program::compile(".").unwrap().first_of(&unchanged).unwrap(), Some(json!(3)), "not an object: as it was");
    }

    #[test]
    fn an_input_tells_its_shape() {
        let everything = Program::compile(".").unwrap();
        let shape = |text: &str| {
            Input::parse(everything.input_demand(), text)
                .unwrap()
                .is_object_of(&["body", "headers", "query"], &["headers", "query"])
        };
        assert!(shape(r#"{"body": 1, "headers": {}, "query": {}}"#));
        assert!(shape(r#"{"body": 1, "query": {}}"#), "keys may be missing");
        assert!(!shape(r#"{"headers": {}, "body": 1}"#), "out of order");
        assert!(!shape(r#"{"body": 1, "other": 2}"#), "another key");
        assert!(!shape(r#"{"body": 1, "headers": "x"}"#), "not an object where one must be");
        assert!(!shape("[1]"));
    }

    #[test]
    fn keeps_key_order() {
        let out = Program::compile("{z: 1, a: 2} + .").unwrap().first(&json!({"m": 3})).unwrap().unwrap();
        assert_eq!(out.as_object().unwrap().keys().collect::<Vec<_>>(), ["z", "a", "m"]);
    }

    #[test]
    fn environment_and_halt_are_disabled() {
        assert_eq!(Program::compile("env").unwrap().first(&json!(null)).unwrap(), Some(json!({})));
        assert_eq!(Program::compile("env.HOME").unwrap().first(&json!(null)).unwrap(), Some(json!(null)));
        assert_eq!(Program::compile("$ENV").unwrap().first(&json!(null)).unwrap(), Some(json!({})));
        assert_eq!(Program::compile("$ENV.PATH").unwrap().first(&json!(null)).unwrap(), Some(json!(null)));
        assert!(matches!(Program::compile("halt").unwrap().first(&json!(null)), Err(JqError::Runtime(_))));
        assert!(matches!(Program::compile("\"x\" | halt_error").unwrap().first(&json!(null)), Err(JqError::Runtime(_))));
    }

    fn budget_error(code: &str) -> Option<Exceeded> {
        match Program::compile(code).unwrap().first(&json!(null)) {
            Err(JqError::Budget(exceeded)) => Some(exceeded),
            other => panic!("`{code}` should exceed its budget, got {other:?}"),
        }
    }

    #[test]
    fn budgets_stop_runaway_filters() {
        assert_eq!(budget_error("[range(infinite)]"), Some(Exceeded::Steps));
        assert_eq!(budget_error("last(range(1e12))"), Some(Exceeded::Steps));
        assert_eq!(budget_error("def f: 1 + f; f"), Some(Exceeded::Stack));
        assert_eq!(budget_error("def f: [f]; f"), Some(Exceeded::Stack));
        assert_eq!(budget_error("try [range(infinite)] catch 0"), Some(Exceeded::Steps), "try cannot outlive the budget");
        assert_eq!(budget_error("[limit(100000000; repeat(1))] | length"), Some(Exceeded::Steps));
        let slow = Program::compile("[range(200000)] | map(tostring) | sort | length").unwrap().with_limits(Limits {
            steps: u64::MAX,
            time: std::time::Duration::from_millis(1),
            stack: 1 << 20,
            memory: usize::MAX,
        });
        assert_eq!(slow.first(&json!(null)), Err(JqError::Budget(Exceeded::Time)));
        let message = JqError::Budget(Exceeded::Time).to_string();
        assert!(message.contains("timeout"), "{message}");
        // An evaluation within its budget is untouched by one that crossed it before.
        assert_eq!(Program::compile("[range(5)] | add").unwrap().first(&json!(null)).unwrap(), Some(json!(10)));
    }

    #[test]
    fn runtime_errors_are_worded_as_jq_and_division_by_zero_is_one() {
        let caught =
            |code: &str| Program::compile(&format!("try ({code}) catch .")).unwrap().first(&json!({"foo": "bar"})).unwrap();
        assert_eq!(caught("1 / 0"), Some(json!("number (1) and number (0) cannot be divided because the divisor is zero")));
        assert_eq!(
            caught("5 % 0"),
            Some(json!("number (5) and number (0) cannot be divided (remainder) because the divisor is zero"))
        );
        assert_eq!(caught(".foo + 1"), Some(json!("string (\"bar\") and number (1) cannot be added")));
        assert_eq!(caught("null | .[]"), Some(json!("Cannot iterate over null (null)")));
        assert_eq!(caught("1 | .a"), Some(json!("Cannot index number with string \"a\"")));
        assert_eq!(
            caught("{\"a\":{\"b\":{\"c\":33}}} - 1"),
            Some(json!("object ({\"a\":{\"b\":{...) and number (1) cannot be subtracted"))
        );
        let values = Program::compile("[infinite > 1e308, (nan | isnan), (infinite | isinfinite), 1 / 4]")
            .unwrap()
            .first(&json!(null))
            .unwrap();
        assert_eq!(values, Some(json!([true, true, true, 0.25])));
    }

    #[test]
    fn updates_build_from_null_and_pad_arrays_as_jq() {
        let run = |code: &str| Program::compile(code).unwrap().first(&json!(null)).unwrap();
        assert_eq!(run(".a.b = 1"), Some(json!({"a": {"b": 1}})));
        assert_eq!(run(".counts.x += 1"), Some(json!({"counts": {"x": 1}})));
        assert_eq!(run("[1] | .[3] = 5"), Some(json!([1, null, null, 5])));
        assert_eq!(run("[1, 2] | del(.[5])"), Some(json!([1, 2])));
        assert!(Program::compile(".[100000000] = 1").unwrap().first(&json!(null)).is_err(), "no gigabyte of nulls");
    }

    #[test]
    fn port_users_builtins_behave_as_in_jq() {
        let run = |code: &str| Program::compile(code).unwrap().first(&json!(null)).unwrap();
        assert_eq!(run("1700000000.5 | todate"), Some(json!("2023-11-14T22:13:20Z")), "no fractional seconds");
        assert_eq!(run("\"YWI\" | @base64d"), Some(json!("ab")), "unpadded input decodes");
        assert_eq!(run("[1, \"a\\\"b\", null, true] | @csv"), Some(json!("1,\"a\"\"b\",,true")));
        assert_eq!(run("[\"a\\tb\", 2] | @tsv"), Some(json!("a\\tb\t2")));
        assert_eq!(run("[null, \"a\", null] | join(\"-\")"), Some(json!("-a-")));
        assert_eq!(
            run("[$__loc__.line, (\"a-b\" | ltrimstr(\"a\")), ([limit(2; range(9))] | length)]"),
            Some(json!([1, "-b", 2]))
        );
    }

    #[test]
    fn outputs_and_string_repetition_are_bounded() {
        let big = Program::compile("[\"0123456789\" * 200000]").unwrap().with_max_output_bytes(1 << 20);
        assert_eq!(big.first(&json!(null)), Err(JqError::OutputTooLarge(1 << 20)));
        let repeat = Program::compile("\"x\" * 1000000000").unwrap().first(&json!(null));
        assert!(matches!(repeat, Err(JqError::Runtime(ref m)) if m.contains("string repetition too large")), "{repeat:?}");
        assert_eq!(Program::compile("\"ab\" * 3").unwrap().first(&json!(null)).unwrap(), Some(json!("ababab")));
    }

    #[test]
    fn caps_outputs_and_reports_errors() {
        assert_eq!(Program::compile("range(100000)").unwrap().run(&json!(null)), Err(JqError::TooManyOutputs));
        assert!(matches!(Program::compile(".a.b").unwrap().first(&json!({"a": 5})), Err(JqError::Runtime(_))));
        let err = Program::compile(".a | ").unwrap_err().to_string();
        assert!(err.starts_with("jq: compile error: syntax error, unexpected end of file"), "{err}");
        assert!(err.ends_with("\n.a | "), "the program follows the message: {err}");
        let err = Program::compile(".a\n| foo(1)").unwrap_err().to_string();
        assert!(err.starts_with("jq: compile error: foo/1 is not defined at <top-level>, line 2:"), "{err}");
        let err = Program::compile("if . then 1 else 0").unwrap_err().to_string();
        assert!(err.starts_with("jq: compile error: Possibly unterminated 'if' statement"), "{err}");
    }
}
