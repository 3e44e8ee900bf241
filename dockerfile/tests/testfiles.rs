//! BuildKit's parser fixtures (frontend/dockerfile/parser/testfiles and
//! testfiles-negative, Apache-2.0, see tests/testfiles/README.md) through
//! kiln's frontend: every positive file parses, every negative one fails.

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

/// One line of BuildKit's `result` dump: `(keyword ["--flag" …] args…)`.
/// Returns the keyword and the flags.
fn dump_line(line: &str) -> Option<(String, Vec<String>)> {
    let body = line.strip_prefix('(')?;
    let end = body
        .find(|c: char| c.is_whitespace() || c == ')')
        .unwrap_or(body.len());
    let (keyword, rest) = body.split_at(end);
    let flags = match rest.trim_start().strip_prefix('[') {
        Some(list) => go_quoted_strings(list),
        None => Vec::new(),
    };
    Some((keyword.to_string(), flags))
}

/// Reads Go `%q` strings up to the closing `]`.
fn go_quoted_strings(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ']' => break,
            '"' => {
                let mut word = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(c),
                    }
                }
                out.push(word);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn buildkit_positive_testfiles_give_the_same_instructions_and_flags() {
    // BuildKit's parser test (TestParseCases) only runs the line layer:
    // several fixtures (HEALTHCHECK with no CMD, COPY --user, CMD before
    // FROM) are refused later by BuildKit's instruction layer too.
    let files = cases("positive");
    assert!(files.len() >= 30, "{files:?}");
    let mut flags_seen = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let got: Vec<(String, Vec<String>)> = parsed
            .nodes
            .iter()
            .map(|n| (n.keyword.to_ascii_lowercase(), n.flags.clone()))
            .collect();
        let dump = std::fs::read_to_string(f.with_file_name("result")).unwrap();
        let want: Vec<_> = dump.lines().filter_map(dump_line).collect();
        assert_eq!(got, want, "{}", f.display());
        flags_seen += want.iter().map(|(_, flags)| flags.len()).sum::<usize>();
    }
    // The dump reader must have found the fixtures' flags (flags, health).
    assert!(flags_seen >= 10, "{flags_seen}");
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
