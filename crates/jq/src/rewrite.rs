//! Port's single-quote rewrite, done with a lexer.
//!
//! Port lets users write jq string literals in single quotes (`'gold'`, `.headers['x-id']`),
//! which jq itself does not accept; its library rewrites them with a regular expression that
//! only catches quotes at word boundaries. Wharf converts every single-quoted literal that
//! stands in code — outside double-quoted strings and comments, and inside string
//! interpolations `\( … )`, which are code again — so everything Port's regex converts is
//! converted too, and `.headers['x-request-id']` (in Port's own docs) works.

/// Where the lexer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// jq code; the number is the parenthesis depth inside the current interpolation.
    Code(usize),
    /// Inside a double-quoted string.
    Str,
}

/// Rewrites single-quoted string literals as double-quoted ones. A `"` inside becomes `\"`,
/// `\'` becomes `'`, other escapes are kept. An unterminated `'` is left as it is, for jq to
/// report.
pub fn rewrite_single_quotes(code: &str) -> String {
    lex(code).code
}

/// What the lexer learned about a program.
pub struct Lexed {
    /// The program with single-quoted literals rewritten.
    pub code: String,
    /// The line (1-based) of the first `$__loc__` in code, if any.
    pub location_line: Option<usize>,
}

/// Rewrites single-quoted literals and finds the first `$__loc__` outside strings/comments.
pub fn lex(code: &str) -> Lexed {
    if !code.contains('\'') && !code.contains("$__loc__") {
        return Lexed { code: code.to_owned(), location_line: None };
    }
    let mut location_line = None;
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len() + 8);
    // One entry per open double-quoted string or interpolation, innermost last.
    let mut stack = vec![Mode::Code(0)];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mode = *stack.last().unwrap_or(&Mode::Code(0));
        match mode {
            Mode::Str => {
                out.push(c);
                if c == '\\' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    if chars[i + 1] == '(' {
                        stack.push(Mode::Code(0));
                    }
                    i += 2;
                    continue;
                }
                if c == '"' {
                    stack.pop();
                }
            }
            Mode::Code(depth) => match c {
                '"' => {
                    out.push(c);
                    stack.push(Mode::Str);
                }
                '#' => {
                    // A comment runs to the end of the line: copy it untouched.
                    while i < chars.len() && chars[i] != '\n' {
                        out.push(chars[i]);
                        i += 1;
                    }
                    continue;
                }
                '(' => {
                    out.push(c);
                    set_depth(&mut stack, depth + 1);
                }
                ')' if depth == 0 && stack.len() > 1 => {
                    // Closes an interpolation: back into the enclosing string.
                    out.push(c);
                    stack.pop();
                }
                ')' => {
                    out.push(c);
                    set_depth(&mut stack, depth.saturating_sub(1));
                }
                '$' if location_line.is_none() && chars[i..].starts_with(&['$', '_', '_', 'l', 'o', 'c', '_', '_']) => {
                    location_line = Some(chars[..i].iter().filter(|&&c| c == '\n').count() + 1);
                    out.push(c);
                }
                '\'' => match single_quoted(&chars, i) {
                    Some((literal, end)) => {
                        out.push_str(&literal);
                        i = end;
                        continue;
                    }
                    None => out.push(c),
                },
                _ => out.push(c),
            },
        }
        i += 1;
    }
    Lexed { code: out, location_line }
}

fn set_depth(stack: &mut [Mode], depth: usize) {
    if let Some(top) = stack.last_mut() {
        *top = Mode::Code(depth);
    }
}

/// The double-quoted form of the single-quoted literal starting at `start`, and the index just
/// past its closing quote; `None` when it is not closed.
fn single_quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mut literal = String::from('"');
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\'' => {
                literal.push('"');
                return Some((literal, i + 1));
            }
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] == '\'' {
                    literal.push('\'');
                } else {
                    literal.push('\\');
                    literal.push(chars[i + 1]);
                }
                i += 2;
                continue;
            }
            '"' => literal.push_str("\\\""),
            c => literal.push(c),
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::rewrite_single_quotes as rw;

    #[test]
    fn converts_literals_wherever_they_stand() {
        assert_eq!(rw("'https://url.' + .foo"), "\"https://url.\" + .foo");
        assert_eq!(rw(".headers['x-request-id']"), ".headers[\"x-request-id\"]");
        assert_eq!(rw(".body.kind != '__runtime__'"), ".body.kind != \"__runtime__\"");
        assert_eq!(rw("{\"a\": 'b'}"), "{\"a\": \"b\"}");
        assert_eq!(rw("'a'+'b'"), "\"a\"+\"b\"");
    }

    #[test]
    fn leaves_double_quoted_strings_and_comments_alone() {
        assert_eq!(rw("\"https://'url.\" + 'test.' + .foo"), "\"https://'url.\" + \"test.\" + .foo");
        assert_eq!(rw("\"it's\""), "\"it's\"");
        assert_eq!(rw("\"esc \\\" 'x'\""), "\"esc \\\" 'x'\"");
        assert_eq!(rw(".a # don't\n| 'b'"), ".a # don't\n| \"b\"");
    }

    #[test]
    fn interpolations_are_code_again() {
        assert_eq!(rw("\"a \\('x' + (.y | tostring)) 'b'\""), "\"a \\(\"x\" + (.y | tostring)) 'b'\"");
        assert_eq!(rw("\"\\(\"\\('n')\")\""), "\"\\(\"\\(\"n\")\")\"");
    }

    #[test]
    fn finds_the_first_location_use() {
        assert_eq!(super::lex(".a |\n $__loc__ | $__loc__").location_line, Some(2));
        assert_eq!(super::lex("\"$__loc__\" # $__loc__").location_line, None);
        assert_eq!(super::lex("\"\\($__loc__)\"").location_line, Some(1));
    }

    #[test]
    fn escapes_inside_single_quotes() {
        assert_eq!(rw("'say \"hi\"'"), "\"say \\\"hi\\\"\"");
        assert_eq!(rw("'it\\'s'"), "\"it's\"");
        assert_eq!(rw("'a\\nb'"), "\"a\\nb\"");
        assert_eq!(rw("'unterminated"), "'unterminated");
        assert_eq!(rw(".a"), ".a");
    }
}
