//! Hostile programs and inputs (issue 22): deep values, memory, regexes, logs. Each case is a
//! reproduction that aborted the process or exhausted it before; now it is an error within
//! the budget, on a thread with Rust's default 2 MiB stack, and the next evaluation goes on.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_jq::{CountingAlloc, DEFAULT_LIMITS, Demand, Exceeded, Input, JqError, Limits, MAX_DEPTH, Program, with_budget};

/// Memory limits are enforced only where allocations are counted: as in the server.
#[global_allocator]
static ALLOCATOR: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

/// An event's mapping budget (SPEC §12): what a deep value can be built within; with a
/// minute rather than 2 s, so that a loaded machine running a debug build crosses the limit
/// a case is about, not the clock.
const EVENT: Limits = Limits { steps: 10_000_000, time: Duration::from_secs(60), stack: 1 << 20, memory: 256 << 20 };

/// Runs `work` on a thread with the default 2 MiB stack, as tokio's workers have.
fn on_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(2 << 20).spawn(work).unwrap().join().expect("no panic, no overflow")
}

fn run(code: &str, input: Value, limits: Limits) -> Result<Option<Value>, JqError> {
    Program::compile(code).unwrap().with_limits(limits).first(&input)
}

/// Nested arrays `depth` levels deep as JSON text.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deep_values_are_built_dropped_compared_and_printed_without_overflow() {
    on_small_stack(|| {
        let deep = "reduce range(200000) as $i (0; [.])";
        assert_eq!(run(deep, json!(null), EVENT), Err(JqError::TooDeep), "an output too deep is an error");
        // Printed as jq prints it: nothing deeper than 256 levels.
        let text = run(&format!("{deep} | tostring"), json!(null), EVENT).unwrap().unwrap();
        let text = text.as_str().unwrap();
        assert!(text.starts_with(&"[".repeat(257)) && text.contains("<skipped: too deep>"), "{}", &text[..300]);
        assert_eq!(run(&format!("{deep} | tojson | length"), json!(null), EVENT).unwrap(), Some(json!(257 * 2 + 19)));
        // Compared, hashed, sorted, searched, merged: each recursing as deep as the value.
        let deep = "reduce range(100000) as $i (0; [.])";
        let twin = "reduce range(100000) as $i (0; [.])";
        let checks = format!(
            "({deep}) as $a | ({twin}) as $b | [$a == $b, ([$a, $b] | unique | length), ($a | contains($b)), ({{}} * {{a: $a}} * {{a: $b}} | length), ($a < [$b])]"
        );
        assert_eq!(run(&checks, json!(null), EVENT).unwrap(), Some(json!([true, 1, true, 1, true])));
        // Deep objects too.
        let objects = "reduce range(100000) as $i (0; {a: .}) | [(. == .), (tojson | length > 0)]";
        assert_eq!(run(objects, json!(null), EVENT).unwrap(), Some(json!([true, true])));
    });
}

#[test]
fn deep_json_is_refused_by_every_parser() {
    on_small_stack(|| {
        // `fromjson` of a sender's string: 100,000 `[`, not even valid JSON.
        let s = "[".repeat(100_000);
        let out = run(".body.s | fromjson | length | tostring", json!({"body": {"s": s}}), EVENT);
        assert!(matches!(&out, Err(JqError::Runtime(m)) if m.contains("Exceeds depth limit for parsing")), "{out:?}");
        // The limit is serde_json's: what is accepted can be read back.
        let at_most = nested(MAX_DEPTH - 1);
        assert_eq!(run("fromjson | length", json!(at_most), EVENT).unwrap(), Some(json!(1)));
        assert!(serde_json::from_str::<Value>(&at_most).is_ok());
        assert!(run("fromjson", json!(nested(MAX_DEPTH)), EVENT).is_err());
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_err());
        // Inputs parsed from text and projected from values.
        let program = Program::compile(".").unwrap();
        assert!(Input::parse(program.input_demand(), &nested(MAX_DEPTH - 1)).is_ok());
        let refused = Input::parse(program.input_demand(), &nested(100_000)).err().unwrap();
        assert!(refused.starts_with("JSON nested too deeply") && refused.contains("line 1 column"), "{refused}");
        let mut value = json!(1);
        for _ in 0..MAX_DEPTH {
            value = json!([value]);
        }
        let refused = Input::project(&Demand::All, &value).err().unwrap();
        assert!(refused.starts_with("JSON nested too deeply"), "{refused}");
        // The next evaluation goes on.
        assert_eq!(run(".a", json!({"a": 1}), DEFAULT_LIMITS).unwrap(), Some(json!(1)));
    });
}

#[test]
fn memory_is_part_of_the_budget() {
    on_small_stack(|| {
        // Sixty 16 MiB strings concatenated: each below the repetition cap, together ~1 GB.
        let sixty = run("reduce range(60) as $i (\"\"; . + (\"x\" * 16000000)) | length", json!(null), EVENT);
        assert_eq!(sixty, Err(JqError::Budget(Exceeded::Memory)));
        // `gsub` doubling a 16 MB string, match by match.
        let gsub = run("(\"x\" * 16000000) | gsub(\"x\"; \"yy\") | length", json!(null), EVENT);
        assert!(matches!(gsub, Err(JqError::Budget(_))), "{gsub:?}");
        // Arrays, `tojson`, `join`, `@base64`, `implode`, `splits`: all counted.
        for code in [
            "[range(10000000)] | length",
            "[range(300)] | map(\"x\" * 1000000) | join(\",\") | length",
            "[range(100)] | map(\"x\" * 4000000 | @base64) | length",
            "[range(2000000)] | map(65) | implode | length",
            "[range(30)] | map(\"x\" * 10000000 | tojson) | length",
        ] {
            let out = run(code, json!(null), EVENT);
            assert!(matches!(out, Err(JqError::Budget(_))), "{code}: {out:?}");
        }
        assert_eq!(run("\"x\" * 1000 | length", json!(null), EVENT).unwrap(), Some(json!(1000)));
    });
}

#[test]
fn regexes_cannot_escape_the_budget() {
    on_small_stack(|| {
        // A pattern whose search costs its size times 1.6 MB: stopped at the time budget.
        let slow = run("(\"ab\" * 800000) | test(\"(?i)(?:a|b|\\\\w){200}c\")", json!(null), DEFAULT_LIMITS);
        assert!(matches!(slow, Err(JqError::Budget(Exceeded::Time | Exceeded::Steps))), "{slow:?}");
        // A pattern whose compiled program is too large is an invalid regex.
        let huge = run("\"a\" | test(\"a{1000}{1000}\")", json!(null), DEFAULT_LIMITS);
        assert!(matches!(&huge, Err(JqError::Runtime(m)) if m.contains("invalid regex")), "{huge:?}");
        // Many matches: each a step.
        let many = run("(\"a\" * 2000000) | [match(\"a\"; \"g\")] | length", json!(null), DEFAULT_LIMITS);
        assert!(matches!(many, Err(JqError::Budget(_))), "{many:?}");
        // Ordinary regexes are unchanged.
        assert_eq!(run("\"a-b-c\" | gsub(\"-\"; \"+\")", json!(null), DEFAULT_LIMITS).unwrap(), Some(json!("a+b+c")));
        assert_eq!(run("\"foo bar\" | test(\"BAR\"; \"i\")", json!(null), DEFAULT_LIMITS).unwrap(), Some(json!(true)));
    });
}

#[test]
fn budgets_nest_and_spend_the_outer_one() {
    // Each run takes a good part of the unit's million steps, and fits in its own million.
    let program = Program::compile("[range(200000)] | length").unwrap();
    let unit = Limits { steps: 1_000_000, ..DEFAULT_LIMITS };
    let run = with_budget(unit, || (0..10).map(|_| program.first(&json!(null))).collect::<Vec<_>>());
    assert_eq!(run.value[0], Ok(Some(json!(200000))), "the first fits in the unit's budget");
    let crossed = run.value.iter().position(Result::is_err).expect("the unit's budget is spent by all of them");
    assert!(crossed > 0 && crossed < 10);
    assert!(
        run.value[crossed..].iter().all(|r| *r == Err(JqError::Budget(Exceeded::Steps))),
        "each later one is bounded by what the unit has left: {:?}",
        run.value
    );
    assert_eq!(run.exceeded, Some(Exceeded::Steps), "and crossing it crosses the unit's budget");
    // A crossing of an evaluation's own, smaller limit is that evaluation's only.
    let small = Program::compile("[range(600000)] | length").unwrap().with_limits(Limits { steps: 1000, ..DEFAULT_LIMITS });
    let run = with_budget(unit, || small.first(&json!(null)));
    assert_eq!(run.value, Err(JqError::Budget(Exceeded::Steps)));
    assert_eq!(run.exceeded, None);
    // Time: the unit's deadline bounds every evaluation inside it.
    let spin = Program::compile("last(range(infinite))").unwrap();
    let run =
        with_budget(Limits { time: Duration::from_millis(200), steps: u64::MAX, ..DEFAULT_LIMITS }, || spin.first(&json!(null)));
    assert!(matches!(run.value, Err(JqError::Budget(Exceeded::Time | Exceeded::Steps))), "{:?}", run.value);
}

#[test]
fn stderr_and_debug_are_captured_escaped_and_capped() {
    let program = Program::compile("\"a\\nforged line\" | stderr | debug | debug(\"msg\") | length").unwrap();
    let run = with_budget(DEFAULT_LIMITS, || program.first(&json!(null)));
    assert_eq!(run.value, Ok(Some(json!(13))));
    assert_eq!(run.logs.text, "\"a\\nforged line\"\n[\"DEBUG:\",\"a\\nforged line\"]\n[\"DEBUG:\",\"msg\"]\n");
    assert!(!run.logs.cut);
    let loud = Program::compile("[range(1000) | (\"x\" * 1000) | stderr] | length").unwrap();
    let run = with_budget(DEFAULT_LIMITS, || loud.first(&json!(null)));
    assert_eq!(run.value, Ok(Some(json!(1000))));
    assert!(run.logs.cut && run.logs.text.len() <= wharf_jq::MAX_LOG_BYTES, "{}", run.logs.text.len());
    // Outside a unit of work, messages go nowhere (never to the process's stderr).
    assert_eq!(program.first(&json!(null)), Ok(Some(json!(13))));
}

#[test]
fn builtins_fail_as_in_jq() {
    let err = |code: &str| run(code, json!(null), DEFAULT_LIMITS);
    assert!(matches!(err("[-1] | implode"), Err(JqError::Runtime(_))));
    assert!(matches!(err("nan | todate"), Err(JqError::Runtime(m)) if m.contains("seconds since epoch")));
    assert!(matches!(err("infinite | todate"), Err(JqError::Runtime(_))));
    assert_eq!(err("[65, 233] | implode").unwrap(), Some(json!("Aé")));
    assert_eq!(err("0 | todate").unwrap(), Some(json!("1970-01-01T00:00:00Z")));
}

#[test]
fn quadratic_builtins_are_charged_to_the_budget() {
    on_small_stack(|| {
        for code in [
            "[range(200000)] | indices([range(100000)])",
            "(\"a\" * 400000) | indices(\"a\" * 200000)",
            "[range(200000)] | .[[range(100000)]]",
            "[range(100000)] | contains([range(100000)] | reverse)",
        ] {
            let out = run(code, json!(null), DEFAULT_LIMITS);
            assert!(matches!(out, Err(JqError::Budget(_))), "{code}: {out:?}");
        }
        assert_eq!(run("[1, 2, 1, 2] | indices([1, 2])", json!(null), DEFAULT_LIMITS).unwrap(), Some(json!([0, 2])));
        assert_eq!(run("\"abab\" | indices(\"ab\")", json!(null), DEFAULT_LIMITS).unwrap(), Some(json!([0, 2])));
        assert_eq!(run("[[1, 2], 3] | contains([[1]])", json!(null), DEFAULT_LIMITS).unwrap(), Some(json!(true)));
    });
}

/// Deeply nested programs: every construct nests, and ten thousand levels overflowed a
/// 32 MiB stack while compiling. Now they compile (or fail to) on a stack sized for them.
#[test]
fn deeply_nested_programs_compile_without_overflow() {
    on_small_stack(|| {
        let constructs =
            [("(", ")"), ("[", "]"), ("1|", ""), ("-", ""), ("if . then ", " else . end"), ("1 as $x|", ""), ("{a:", "}")];
        // 127 levels of `(` fit in 256 bytes and compile on this 2 MiB thread; 20,000 do not.
        for n in [127, 20_000] {
            for (open, close) in constructs {
                let source = format!("{}1{}", open.repeat(n), close.repeat(n));
                match Program::compile(&source) {
                    Ok(program) => {
                        // Evaluating it is bounded by the budget's stack limit.
                        let out = program.first(&json!(null));
                        let bounded = out.is_ok() || matches!(out, Err(JqError::Budget(_)) | Err(JqError::TooDeep));
                        assert!(bounded, "{n} {open}: {out:?}");
                    }
                    Err(JqError::Compile { .. }) => {}
                    Err(other) => panic!("{n} {open}: {other:?}"),
                }
            }
        }
    });
}
