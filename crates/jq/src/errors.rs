//! jq-style messages for programs that do not compile: what is wrong, and the line, in jq's
//! words where jq's are known (`foo/0 is not defined at <top-level>, line 1:`).

use jaq_core::compile::Undefined;
use jaq_core::load::{self, lex, parse};

/// Where the user's program starts inside the text given to jaq (after the prelude), so
/// that positions are reported in the user's lines.
pub(crate) struct Source<'a> {
    pub wrapped: &'a str,
    pub offset: usize,
    pub len: usize,
}

impl Source<'_> {
    /// The 1-based line in the user's program of a slice of `wrapped`.
    fn line_of(&self, slice: &str) -> usize {
        let at = (slice.as_ptr() as usize).saturating_sub(self.wrapped.as_ptr() as usize);
        let at = at.saturating_sub(self.offset).min(self.len);
        self.wrapped[self.offset..self.offset + at].matches('\n').count() + 1
    }

    /// Whether a slice starts at or after the end of the user's program (the text after it is
    /// the wrapper's closing parenthesis).
    fn at_end(&self, slice: &str) -> bool {
        let at = (slice.as_ptr() as usize).saturating_sub(self.wrapped.as_ptr() as usize);
        at >= self.offset + self.len
    }

    fn located(&self, what: String, slice: &str) -> String {
        format!("jq: compile error: {what} at <top-level>, line {}:", self.line_of(slice))
    }
}

fn lex_expect(expect: &lex::Expect<&str>) -> &'static str {
    match expect {
        lex::Expect::Delim("(") => "closing parenthesis",
        lex::Expect::Delim("[") => "closing bracket",
        lex::Expect::Delim("{") => "closing brace",
        lex::Expect::Delim(_) => "closing quote",
        other => other.as_str(),
    }
}

/// The first token of what the parser found instead.
fn token(found: &str) -> String {
    let token: String = found.trim_start().chars().take_while(|c| !c.is_whitespace()).take(20).collect();
    if token.is_empty() { "end of file".to_owned() } else { format!("`{token}`") }
}

pub(crate) fn load_errors(source: &Source<'_>, errors: load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, error) in errors {
        match error {
            load::Error::Io(errs) => {
                messages.extend(errs.into_iter().map(|(path, e)| format!("jq: error: cannot load {path}: {e}")))
            }
            load::Error::Lex(errs) => {
                for (expect, found) in errs {
                    let what = if source.at_end(found) {
                        "syntax error, unexpected end of file (Unix shell quoting issues?)".to_owned()
                    } else {
                        format!("syntax error, expected {} before {}", lex_expect(&expect), token(found))
                    };
                    messages.push(source.located(what, found));
                }
            }
            load::Error::Parse(errs) => {
                for (expect, found) in errs {
                    let unterminated_if = matches!(expect, parse::Expect::ElseOrEnd | parse::Expect::Just("end"));
                    let what = if let parse::Expect::ObjKey(number) = expect {
                        format!("Cannot use number ({number}) as object key")
                    } else if unterminated_if && source.at_end(found) {
                        "Possibly unterminated 'if' statement".to_owned()
                    } else if source.at_end(found) {
                        format!("syntax error, unexpected end of file, expecting {}", expect.as_str())
                    } else {
                        format!("syntax error, unexpected {}, expecting {}", token(found), expect.as_str())
                    };
                    messages.push(source.located(what, found));
                }
            }
        }
    }
    messages.join("\n")
}

pub(crate) fn compile_errors(source: &Source<'_>, errors: jaq_core::compile::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, errs) in errors {
        for (name, undefined) in errs {
            let what = match undefined {
                Undefined::Filter(arity) => format!("{name}/{arity} is not defined"),
                Undefined::Var => format!("{name} is not defined"),
                Undefined::Label => format!("label {name} is not defined"),
                Undefined::Mod => format!("module {name} is not defined"),
                _ => format!("{name} is not defined"),
            };
            messages.push(source.located(what, name));
        }
    }
    messages.join("\n")
}
