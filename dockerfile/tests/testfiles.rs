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

/// The keywords of BuildKit's `result` dump: one `(keyword …)` per line.
fn result_keywords(dump: &str) -> Vec<String> {
    dump.lines()
        .filter_map(|l| l.strip_prefix('('))
        .map(|l| {
            l.split(|c: char| c.is_whitespace() || c == ')')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn buildkit_positive_testfiles_split_into_the_same_instructions() {
    // BuildKit's parser test (TestParseCases) only runs the line layer:
    // several fixtures (HEALTHCHECK with no CMD, COPY --user, CMD before
    // FROM) are refused later by BuildKit's instruction layer too.
    let files = cases("positive");
    assert!(files.len() >= 30, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let got: Vec<String> = parsed
            .nodes
            .iter()
            .map(|n| n.keyword.to_ascii_lowercase())
            .collect();
        let dump = std::fs::read_to_string(f.with_file_name("result")).unwrap();
        assert_eq!(got, result_keywords(&dump), "{}", f.display());
    }
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
