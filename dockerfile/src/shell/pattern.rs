//! Shell patterns for `${V#p}`, `${V%p}` and `${V/p/r}`: `*`, `?` and `\`
//! escapes (no brackets), matched the way BuildKit's generated regular
//! expressions match them.

use super::ShellError;

pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let glob = Glob::compile(pattern, greedy)?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match glob.search(&chars).match_at(0) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// The shortest (or longest) rightmost match is found as a leftmost match
/// of the reversed pattern in the reversed value.
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern but keeps each `\x` escape pair in order.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<&[char]> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        units.push(&chars[i..i + len]);
        i += len;
    }
    units.iter().rev().flat_map(|u| u.iter()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyString,
}

/// A shell pattern (`*`, `?`, `\` escapes; no brackets) matched like the
/// regular expression BuildKit builds from it: leftmost, with `*` taking
/// the longest (greedy) or shortest span first, and `*`/`?` never matching
/// a newline (Go's `.`).
pub(super) struct Glob {
    tokens: Vec<Token>,
    greedy: bool,
}

impl Glob {
    pub(super) fn compile(pattern: &str, greedy: bool) -> Result<Glob, ShellError> {
        let invalid = |reason: String| ShellError::InvalidPattern {
            pattern: pattern.to_string(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::AnyString,
                '?' => Token::AnyChar,
                '\\' => match chars.peek() {
                    // `\}` and `\/` escape the `${}` syntax, not the pattern.
                    Some('}' | '/') => continue,
                    Some(&e @ ('*' | '?' | '\\')) => {
                        chars.next();
                        Token::Literal(e)
                    }
                    Some(&e) => return Err(invalid(format!("invalid escape '\\{e}'"))),
                    None => return Err(invalid("trailing backslash".into())),
                },
                c => Token::Literal(c),
            });
        }
        Ok(Glob { tokens, greedy })
    }

    pub(super) fn search<'v>(&'v self, value: &'v [char]) -> Search<'v> {
        Search {
            glob: self,
            value,
            failed: vec![false; (self.tokens.len() + 1) * (value.len() + 1)],
        }
    }
}

/// Matching of one glob against one value. Whether the pattern from token
/// `t` matches at position `at` depends on nothing else, so failures are
/// remembered across starts: hostile patterns like `*a*a*a*b` stay
/// polynomial.
pub(super) struct Search<'v> {
    glob: &'v Glob,
    value: &'v [char],
    failed: Vec<bool>,
}

impl Search<'_> {
    /// The end of the preferred match starting at `start`, if any.
    pub(super) fn match_at(&mut self, start: usize) -> Option<usize> {
        self.step(0, start)
    }

    fn step(&mut self, t: usize, at: usize) -> Option<usize> {
        let Some(&token) = self.glob.tokens.get(t) else {
            return Some(at);
        };
        let slot = t * (self.value.len() + 1) + at;
        if self.failed[slot] {
            return None;
        }
        let found = match token {
            Token::Literal(c) => match self.value.get(at) {
                Some(&v) if v == c => self.step(t + 1, at + 1),
                _ => None,
            },
            Token::AnyChar => match self.value.get(at) {
                Some(&v) if v != '\n' => self.step(t + 1, at + 1),
                _ => None,
            },
            Token::AnyString => {
                let span = self.value[at..].iter().take_while(|&&v| v != '\n').count();
                if self.glob.greedy {
                    (0..=span).rev().find_map(|n| self.step(t + 1, at + n))
                } else {
                    (0..=span).find_map(|n| self.step(t + 1, at + n))
                }
            }
        };
        if found.is_none() {
            self.failed[slot] = true;
        }
        found
    }
}
