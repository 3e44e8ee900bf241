//! The line layer: parser directives, comments, line continuations and
//! heredoc bodies. Turns Dockerfile text into [`Node`]s — one per
//! instruction, with its keyword, leading `--flags`, the rest of the line
//! and its line span — the way BuildKit's `parser.Parse` does. What each
//! keyword's arguments mean is [`crate::instructions`]'s business.

use std::collections::BTreeMap;

use crate::error::{Error, Result, Span};
use crate::shell::{Env, Lexer};

/// The parser directives found at the top of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    /// The escape token: `\` (default) or a backtick.
    pub escape: char,
    pub syntax: Option<Directive>,
    pub check: Option<Directive>,
    pub escape_directive: Option<Directive>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub value: String,
    pub line: usize,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
            escape_directive: None,
        }
    }
}

/// One heredoc attached to a RUN, COPY or ADD line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed.
    pub name: String,
    /// The body, every line with its newline, as written (tabs not yet
    /// stripped for `<<-`).
    pub content: String,
    /// False when any part of the delimiter was quoted: the body is then
    /// taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the delimiter.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 if none.
    pub fd: u32,
}

impl Heredoc {
    /// The body as the instruction uses it: with `<<-`, leading tabs go.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// One instruction as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword exactly as written (`from`, `FROM`, …).
    pub keyword: String,
    /// Leading `--name[=value]` words, quotes and escapes processed.
    pub flags: Vec<String>,
    /// Everything after the keyword and its flags, trimmed.
    pub rest: String,
    /// The whole logical line after continuations were joined.
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    pub span: Span,
}

/// A problem that does not stop the build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static str,
    pub message: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    pub warnings: Vec<Warning>,
    /// The comment line right above an instruction (by its first line),
    /// BuildKit's description of a stage or ARG.
    pub comments: BTreeMap<usize, String>,
    /// The value of a `# check=` comment among those right above an
    /// instruction (by its first line): BuildKit applies it to that
    /// instruction's checks only.
    pub checks: BTreeMap<usize, String>,
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Parsed> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Lines::new(text);
    let mut out = Parsed::default();
    let mut directive_phase = true;
    // As BuildKit: the last comment since the previous instruction; a bare
    // `#` clears it, a blank line does not.
    let mut comment: Option<String> = None;
    let mut check: Option<String> = None;

    while let Some(raw) = lines.next_line() {
        let start = lines.number;
        let stripped = trim_newline(raw).trim_start();
        let mut directive = false;
        if directive_phase {
            directive = read_directive(stripped, start, &mut out.directives)?;
            directive_phase = directive;
        }
        if is_comment(raw) {
            if !directive {
                let text = stripped[1..].trim();
                comment = (!text.is_empty()).then(|| text.to_string());
                if text.is_empty() {
                    check = None;
                } else if check.is_none() {
                    check = instruction_check(stripped);
                }
            }
            continue;
        }
        let escape = out.directives.escape;
        let (first, mut ended) = trim_continuation(stripped, escape);
        if ended && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !ended {
            let Some(next) = lines.next_line() else { break };
            if is_comment(next) {
                continue;
            }
            let next = trim_newline(next);
            if next.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, end) = trim_continuation(next, escape);
            line.push_str(part);
            ended = end;
        }
        if line.trim().is_empty() {
            continue;
        }
        if empty_continuation {
            out.warnings.push(Warning {
                rule: "NoEmptyContinuation",
                message: "Empty continuation line".into(),
                span: Span::new(start, lines.number),
            });
        }
        let mut node = node_from_line(&line, Span::new(start, lines.number))?;
        if can_contain_heredoc(&node) && line.contains("<<") {
            for mut doc in heredocs_in_line(&line).map_err(|m| Error::new(node.span, m))? {
                read_heredoc_body(&mut lines, &mut doc)
                    .map_err(|m| Error::new(Span::new(start, lines.number), m))?;
                node.heredocs.push(doc);
            }
            node.span.end = lines.number;
        }
        if let Some(c) = comment.take() {
            out.comments.insert(start, c);
        }
        if let Some(c) = check.take() {
            out.checks.insert(start, c);
        }
        out.nodes.push(node);
    }
    if out.nodes.is_empty() {
        return Err(Error::new(
            Span::line(lines.number.max(1)),
            "the Dockerfile is empty: file with no instructions",
        ));
    }
    Ok(out)
}

/// Iterates lines (newline kept) and counts them.
struct Lines<'a> {
    iter: std::str::SplitInclusive<'a, char>,
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            iter: text.split_inclusive('\n'),
            number: 0,
        }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        let l = self.iter.next()?;
        self.number += 1;
        Some(l)
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(raw: &str) -> bool {
    trim_newline(raw).trim_start().starts_with('#')
}

/// Handles one line while directives may still appear. Returns whether the
/// directive phase goes on: BuildKit ends it at the first line that is not
/// a known directive (an empty line or an ordinary comment included).
fn read_directive(line: &str, number: usize, d: &mut Directives) -> Result<bool> {
    let Some((name, value)) = split_directive(line) else {
        return Ok(false);
    };
    let slot = match name.as_str() {
        "syntax" => &mut d.syntax,
        "escape" => &mut d.escape_directive,
        "check" => &mut d.check,
        _ => return Ok(false),
    };
    if slot.is_some() {
        return Err(Error::new(
            Span::line(number),
            format!("only one {name} parser directive can be used"),
        ));
    }
    *slot = Some(Directive {
        value: value.to_string(),
        line: number,
    });
    if name == "escape" {
        d.escape = match value {
            "\\" => '\\',
            "`" => '`',
            _ => {
                return Err(Error::new(
                    Span::line(number),
                    format!("invalid escape token '{value}' does not match ` or \\"),
                ))
            }
        };
    }
    Ok(true)
}

/// Matches `#\s*NAME\s*=\s*VALUE\s*` with NAME = `[a-zA-Z][a-zA-Z0-9]*`.
/// `# check=skip=A // why` above an instruction: `skip=A` (BuildKit
/// reads the value up to its first blank).
fn instruction_check(line: &str) -> Option<String> {
    let (name, value) = split_directive(line)?;
    let value = value.split([' ', '\t']).next().unwrap_or_default();
    (name == "check").then(|| value.to_string())
}

fn split_directive(line: &str) -> Option<(String, &str)> {
    let body = line.strip_prefix('#')?.trim_start();
    let name_len = body
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(body.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = body.split_at(name_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value))
}

/// Strips a trailing escape token (plus blanks after it). Returns the line
/// and whether the logical line ends here. As in BuildKit, an escape token
/// right after another one (`trailing\\`) is an escaped character, not a
/// continuation; a token alone on its line still continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    match body.strip_suffix(escape) {
        Some(cut) if !cut.ends_with(escape) => (cut, false),
        _ => (line, true),
    }
}

/// RUN, COPY and ADD, also as an ONBUILD trigger (BuildKit's compound
/// directive): `ONBUILD RUN <<EOF` takes its body from the next lines.
fn can_contain_heredoc(node: &Node) -> bool {
    let keyword = if node.keyword.eq_ignore_ascii_case("onbuild") {
        node.rest.split_whitespace().next().unwrap_or("")
    } else {
        node.keyword.as_str()
    };
    ["run", "copy", "add"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
}

/// Splits `KEYWORD [--flags] rest` (BuildKit's `splitCommand`).
pub fn node_from_line(line: &str, span: Span) -> Result<Node> {
    let trimmed = line.trim();
    let (keyword, args) = match trimmed.find(|c: char| c.is_whitespace()) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim_start()),
        None => (trimmed, ""),
    };
    let (rest, flags) = extract_flags(args);
    Ok(Node {
        keyword: keyword.to_string(),
        flags,
        rest: rest.trim().to_string(),
        original: line.to_string(),
        heredocs: Vec::new(),
        span,
    })
}

/// Takes the leading `--flag` words off an argument string. Quotes group
/// and backslashes escape inside flag words; a bare `--` ends the flags.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            return (rest, flags);
        }
        let (word, after, quoted) = read_flag_word(rest);
        if word == "--" {
            return (after, flags);
        }
        if quoted || !word.is_empty() {
            flags.push(word);
        }
        rest = after;
    }
}

/// Reads one whitespace-delimited word with quote and backslash handling;
/// returns the word, what follows it, and whether it held a quote.
fn read_flag_word(s: &str) -> (String, &str, bool) {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut quoted = false;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            None if c.is_whitespace() => return (word, &s[i..], quoted),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                quoted = true;
            }
            Some(q) if c == q => quote = None,
            _ if c == '\\' => {
                if let Some((_, next)) = chars.next() {
                    word.push(next);
                }
            }
            _ => word.push(c),
        }
    }
    (word, "", quoted)
}

struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

/// Finds the heredoc markers (`<<EOF`, `<<-"EOF"`, `3<<EOF`) among the
/// words of a line, as BuildKit does: lexing with quotes and escapes kept.
fn heredocs_in_line(line: &str) -> std::result::Result<Vec<Heredoc>, String> {
    let mut lexer = Lexer::new('\\');
    lexer.raw_quotes = true;
    lexer.raw_escapes = true;
    let words = lexer.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc_marker(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Recognises `^(\d*)<<(-?)([^<]*)$` and works out the delimiter.
pub fn parse_heredoc_marker(word: &str) -> std::result::Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, delim) = match after.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, after),
    };
    if delim.is_empty() || delim.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let mut lexer = Lexer::new('\\');
    lexer.skip_unset_env = true;
    let plain = lexer
        .process_words(delim, &NoEnv)
        .map_err(|e| e.to_string())?;
    lexer.raw_quotes = true;
    let raw = lexer
        .process_words(delim, &NoEnv)
        .map_err(|e| e.to_string())?;
    match (plain.as_slice(), raw.as_slice()) {
        ([name], [raw_name]) => Ok(Some(Heredoc {
            name: name.clone(),
            content: String::new(),
            expand: name == raw_name,
            chomp,
            fd,
        })),
        _ => Err(format!(
            "internal lexing of heredoc produced inconsistent results: {delim}"
        )),
    }
}

fn read_heredoc_body(lines: &mut Lines<'_>, doc: &mut Heredoc) -> std::result::Result<(), String> {
    while let Some(raw) = lines.next_line() {
        let mut candidate = trim_newline(raw);
        if doc.chomp {
            candidate = candidate.trim_start_matches('\t');
        }
        if candidate == doc.name {
            return Ok(());
        }
        doc.content.push_str(raw);
    }
    Err(format!(
        "unterminated heredoc: no line '{}' ends it",
        doc.name
    ))
}
