//! Word expansion and splitting with the rules of BuildKit's shell lexer
//! (`frontend/dockerfile/shell/lex.go`): quotes, the escape character,
//! `$V`, `${V}` and the `${V<op>word}` forms. It is deliberately not a
//! shell: no command substitution, no globbing, no arithmetic.

mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pattern::{trim_prefix, trim_suffix, Glob};

/// Where variable values come from.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// A failed expansion; the text matches BuildKit's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(String),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    #[error("{name}: {message}")]
    Unset { name: String, message: String },
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
}

impl ShellError {
    /// True for the `${V?}` / `${V:?}` failures: the word demanded a
    /// variable that is unset (or empty).
    pub fn is_unset_variable(&self) -> bool {
        matches!(self, ShellError::Unset { .. })
    }
}

/// The result of expanding one word, with the variables it looked up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    pub value: String,
    pub matched: BTreeSet<String>,
    pub unmatched: BTreeSet<String>,
}

/// Lexer settings. `raw_quotes`/`raw_escapes` keep quote and escape
/// characters in the output (used to find heredoc markers),
/// `skip_unset_env` leaves references to unset variables as written and
/// `skip_process_quotes` treats quotes as ordinary characters.
#[derive(Clone, Debug)]
pub struct Lexer {
    pub escape: char,
    pub raw_quotes: bool,
    pub raw_escapes: bool,
    pub skip_unset_env: bool,
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expands `word` without splitting it.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        Ok(self.process_word_with_matches(word, env)?.value)
    }

    /// Expands `word` and reports which variables were found and which not.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<Expansion, ShellError> {
        let mut w = Word::new(self, word, env);
        let (value, _) = w.process_stop_on(None, self.raw_escapes)?;
        Ok(Expansion {
            value,
            matched: w.matched,
            unmatched: w.unmatched,
        })
    }

    /// Expands `word` and splits it into words at unquoted whitespace.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        Ok(self.process_words_with_matches(word, env)?.0)
    }

    /// [`Lexer::process_words`], also reporting which variables were found
    /// and which not.
    pub fn process_words_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<(Vec<String>, Expansion), ShellError> {
        let mut w = Word::new(self, word, env);
        let (value, words) = w.process_stop_on(None, self.raw_escapes)?;
        Ok((
            words,
            Expansion {
                value,
                matched: w.matched,
                unmatched: w.unmatched,
            },
        ))
    }
}

/// Collects the split words while the expanded text is built.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct Word<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Word<'a> {
    fn new(lexer: &'a Lexer, word: &str, env: &'a dyn Env) -> Word<'a> {
        Word {
            lexer,
            env,
            chars: word.chars().collect(),
            pos: 0,
            raw_escapes: lexer.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let value = self.env.get(name);
        let set = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !set.contains(name) {
            set.insert(name.to_string());
        }
        value
    }

    /// Processes up to `stop` (consumed) or the end of the word.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.stop_on(stop);
        self.raw_escapes = saved;
        result
    }

    fn stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                '<' => {
                    let s = self.possible_heredoc();
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '\'' if quotes => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' if quotes => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                _ => {
                    self.pos += 1;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // The escape character at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            Some(s) => Err(ShellError::Unterminated(s.to_string())),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellError::Unterminated("single-quote".into())),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellError::Unterminated("double-quote".into())),
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(c) => {
                    self.pos += 1;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // An escape at the end of the word is ignored.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lexer.escape => {
                                self.pos += 1;
                                out.push(n);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut out = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    /// Reads a variable name: letters, digits and `_`; a run of digits or
    /// one special parameter character when it starts with those.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !c.is_alphabetic() && !c.is_numeric() && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ShellError> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            _ => {}
        }
        let name = self.name();
        match self.next() {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let op = self.next();
                let mut spelled = String::from(":");
                spelled.extend(op);
                match op {
                    Some(op @ ('+' | '-' | '?')) => self.modifier(&name, op, true, spelled),
                    _ => Err(ShellError::UnsupportedModifier(spelled)),
                }
            }
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => {
                self.modifier(&name, op, false, op.to_string())
            }
            Some('/') => self.substitute(&name),
            Some(other) => Err(ShellError::UnsupportedModifier(other.to_string())),
            None => Err(ShellError::MissingBrace),
        }
    }

    fn operand(
        &mut self,
        stop: char,
        raw: bool,
        missing: ShellError,
    ) -> Result<String, ShellError> {
        match self.process_stop_on(Some(stop), raw) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(missing),
            Err(e) => Err(e),
        }
    }

    /// `${V-w}` `${V+w}` `${V?w}` `${V#p}` `${V%p}` and the `:` forms.
    fn modifier(
        &mut self,
        name: &str,
        op: char,
        null_is_unset: bool,
        spelled: String,
    ) -> Result<String, ShellError> {
        let pattern_op = op == '#' || op == '%';
        let word = self.operand('}', pattern_op, ShellError::MissingBrace)?;
        let value = self.get_env(name);
        if self.lexer.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        let empty = value
            .as_deref()
            .is_none_or(|v| null_is_unset && v.is_empty());
        match op {
            '-' => Ok(if empty {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' => {
                let default = match value {
                    None => "is not allowed to be unset",
                    Some(_) if empty => "is not allowed to be empty",
                    Some(v) => return Ok(v),
                };
                let message = if word.is_empty() {
                    default.to_string()
                } else {
                    word
                };
                Err(ShellError::Unset {
                    name: name.to_string(),
                    message,
                })
            }
            _ => {
                let value = value.unwrap_or_default();
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                if op == '%' {
                    trim_suffix(&pattern, &value, greedy)
                } else {
                    trim_prefix(&pattern, &value, greedy)
                }
            }
        }
    }

    /// `${V/pattern/replacement}` and `${V//pattern/replacement}`.
    fn substitute(&mut self, name: &str) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = self.operand('/', true, ShellError::MissingSlash)?;
        let replacement = self.operand('}', true, ShellError::MissingBrace)?;
        let value = self.get_env(name);
        if self.lexer.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value: Vec<char> = value.unwrap_or_default().chars().collect();
        let glob = Glob::compile(&pattern, true)?;
        let mut search = glob.search(&value);
        let mut out = String::new();
        let mut at = 0;
        let mut last_end = None;
        while at <= value.len() {
            let found = (at..=value.len()).find_map(|s| search.match_at(s).map(|e| (s, e)));
            let Some((start, end)) = found else { break };
            // Like Go's ReplaceAll: an empty match right after a match is
            // not a match, and an empty match moves on by one character.
            if start == end && last_end == Some(start) {
                out.extend(value.get(start));
                at = start + 1;
                continue;
            }
            out.extend(&value[at..start]);
            out.push_str(&replacement);
            last_end = Some(end);
            at = end;
            if !all {
                break;
            }
            if start == end {
                out.extend(value.get(start));
                at = start + 1;
            }
        }
        if at < value.len() {
            out.extend(&value[at..]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
