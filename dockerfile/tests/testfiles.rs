//! BuildKit's parser fixtures (frontend/dockerfile/parser/testfiles and
//! testfiles-negative, Apache-2.0, see tests/testfiles/README.md) through
//! kiln's frontend: every positive file splits like BuildKit's `result` dump
//! (keywords, flags, and the arguments of commands and file lists), every
//! negative one fails.

use std::path::{Path, PathBuf};

use kiln_dockerfile::parse_dockerfile;
use kiln_dockerfile::parser::parse;

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testfiles")
        .join(kind);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path().join("Dockerfile"))
        .collect();
    out.sort();
    out
}

/// One line of BuildKit's `result` dump: `(keyword ["--flag" …] "arg" …)`.
struct DumpLine {
    keyword: String,
    flags: Vec<String>,
    args: Vec<String>,
}

fn dump_line(line: &str) -> Option<DumpLine> {
    let body = line.strip_prefix('(')?;
    let end = body
        .find(|c: char| c.is_whitespace() || c == ')')
        .unwrap_or(body.len());
    let (keyword, rest) = body.split_at(end);
    let rest = rest.trim_start();
    let (flags, rest) = match rest.strip_prefix('[') {
        Some(list) => go_quoted_strings(list, ']'),
        None => (Vec::new(), rest),
    };
    Some(DumpLine {
        keyword: keyword.to_string(),
        flags,
        args: go_quoted_strings(rest, ')').0,
    })
}

/// Reads Go `%q` strings up to `close` (outside quotes); returns them and
/// what follows `close`.
fn go_quoted_strings(s: &str, close: char) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == close {
            return (out, &s[i + 1..]);
        }
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '"' => break,
                '\\' => word.extend(go_escape(&mut chars)),
                _ => word.push(c),
            }
        }
        out.push(word);
    }
    (out, "")
}

/// The character a Go `%q` escape (after its backslash) stands for.
fn go_escape(chars: &mut std::str::CharIndices<'_>) -> Option<char> {
    fn hex(chars: &mut std::str::CharIndices<'_>, n: usize) -> Option<char> {
        let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
    }
    match chars.next()?.1 {
        'n' => Some('\n'),
        't' => Some('\t'),
        'r' => Some('\r'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'v' => Some('\u{b}'),
        'a' => Some('\u{7}'),
        'x' => hex(chars, 2),
        'u' => hex(chars, 4),
        'U' => hex(chars, 8),
        other => Some(other),
    }
}

/// The arguments as BuildKit's line parsers split them, for the keywords
/// whose split does not depend on further parsing: a JSON string array,
/// else the whole text (commands) or its whitespace-separated words.
fn expected_args(keyword: &str, rest: &str) -> Option<Vec<String>> {
    let json = rest
        .starts_with('[')
        .then(|| serde_json::from_str::<Vec<String>>(rest).ok())
        .flatten();
    match keyword {
        "run" | "cmd" | "entrypoint" => Some(json.unwrap_or_else(|| vec![rest.to_string()])),
        "copy" | "add" | "volume" => {
            Some(json.unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect()))
        }
        _ => None,
    }
}

#[test]
fn buildkit_positive_testfiles_give_the_same_instructions_flags_and_arguments() {
    // BuildKit's parser test (TestParseCases) only runs the line layer:
    // several fixtures (HEALTHCHECK with no CMD, COPY --user, CMD before
    // FROM) are refused later by BuildKit's instruction layer too.
    let files = cases("positive");
    assert!(files.len() >= 30, "{files:?}");
    let (mut flags_seen, mut args_seen) = (0, 0);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let dump = std::fs::read_to_string(f.with_file_name("result")).unwrap();
        let want: Vec<DumpLine> = dump.lines().filter_map(dump_line).collect();
        let keywords = |v: Vec<&str>| v.join(" ");
        assert_eq!(
            keywords(parsed.nodes.iter().map(|n| n.keyword.as_str()).collect()).to_lowercase(),
            keywords(want.iter().map(|w| w.keyword.as_str()).collect()),
            "{}",
            f.display()
        );
        for (node, want) in parsed.nodes.iter().zip(&want) {
            let line = format!("{}:{}", f.display(), node.span.start);
            assert_eq!(node.flags, want.flags, "{line}");
            flags_seen += want.flags.len();
            if let Some(args) = expected_args(&want.keyword, &node.rest) {
                assert_eq!(args, want.args, "{line}");
                args_seen += 1;
            }
        }
    }
    // The dump reader must have found the fixtures' flags (flags, health).
    assert!(flags_seen >= 10, "{flags_seen}");
    assert!(args_seen >= 100, "{args_seen}");
}

#[test]
fn buildkit_negative_testfiles_fail() {
    let files = cases("negative");
    assert_eq!(files.len(), 4, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            parse_dockerfile(&text).is_err(),
            "{} was accepted",
            f.display()
        );
    }
}
