//! Errors of the frontend. Every error carries the 1-based line span of the
//! instruction it belongs to, so the CLI can print `Dockerfile:LINE` and the
//! offending source line.

use std::fmt;

/// A range of 1-based source lines, inclusive on both ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn line(line: usize) -> Self {
        Span::new(line, line)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One frontend error: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {span}: {message}")]
pub struct Error {
    pub span: Span,
    pub message: String,
}

impl Error {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Error {
            span,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats an error the way a user wants to read it: file, line, the source
/// line(s) and the message.
pub fn render(file: &str, source: &str, err: &Error) -> String {
    if err.span.start == 0 {
        return format!("{file}: {}\n", err.message);
    }
    let mut out = format!("{file}:{}: {}\n", err.span, err.message);
    let last = err.span.end.max(err.span.start);
    // Long spans (a big heredoc) are cut: the first lines locate the problem.
    let shown_end = last.min(err.span.start + 4);
    for (n, text) in source
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .skip(err.span.start - 1)
        .take(shown_end + 1 - err.span.start)
    {
        out.push_str(&format!(" {n:>4} | {text}\n"));
    }
    if shown_end < last {
        out.push_str("      | ...\n");
    }
    out
}
