//! bk_check's runner: BuildKit's `checkLinterWarnings` as kiln runs it.

use crate::support::{text, Case};

/// One `checkLinterWarnings` call of the BuildKit test.
#[derive(Default)]
pub struct Lint<'a> {
    pub dockerfile: &'a str,
    pub dockerignore: Option<&'a str>,
    pub build_args: &'a [&'a str],
    /// `(line, rule, detail)`, in any order.
    pub warnings: &'a [(usize, &'a str, &'a str)],
    /// The error both runs end with.
    pub error: Option<&'a str>,
    /// The error of the build only (`--check` runs nothing).
    pub build_error: Option<&'a str>,
    /// Skip the real build: its base image is Docker Hub's.
    pub check_only: bool,
}

type Warning = ((usize, usize), String, String);

/// `(line, rule, detail)` of every `WARN: Rule - detail (Dockerfile:N)`
/// line, sorted by line then detail as BuildKit's test sorts them.
fn warn_lines(output: &str) -> Vec<Warning> {
    let mut found: Vec<Warning> = output
        .lines()
        .filter_map(|l| l.strip_prefix("WARN: "))
        .map(|l| {
            let (rule, rest) = l.split_once(" - ").expect("WARN: RULE - text");
            let (detail, line) = rest.rsplit_once(" (Dockerfile:").expect("(Dockerfile:N)");
            // `N` or, for an instruction on several lines, `N-M`.
            let line = line.trim_end_matches(')');
            let (start, end) = line.split_once('-').unwrap_or((line, line));
            let span = (start.parse().expect("N"), end.parse().expect("M"));
            (span, rule.to_string(), detail.to_string())
        })
        .collect();
    found.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    found
}

/// The expected warnings in `found`'s form: BuildKit names one line of the
/// instruction (for NoEmptyContinuation its last), kiln its span.
fn expected(list: &[(usize, &str, &str)], found: &[Warning]) -> Vec<Warning> {
    let mut want: Vec<Warning> = list
        .iter()
        .map(|&(l, r, d)| {
            let span = found
                .iter()
                .map(|f| f.0)
                .find(|&(a, b)| a <= l && l <= b && a != b)
                .unwrap_or((l, l));
            (span, r.to_string(), d.to_string())
        })
        .collect();
    want.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    want
}

/// Runs `kiln build ARGS CTX`; its output, after checking the exit and the
/// error text.
pub fn run(case: &Case, extra: &[&str], error: Option<&str>) -> String {
    let ctx = case.ctx();
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let out = case.kiln(&args);
    let all = text(&out);
    match error {
        None => assert!(out.status.success(), "kiln {args:?} failed:\n{all}"),
        Some(e) => {
            assert!(!out.status.success(), "kiln {args:?} should fail:\n{all}");
            assert!(all.contains(e), "{e:?} not in:\n{all}");
        }
    }
    all
}

pub fn check(l: Lint) {
    let case = Case::new("lint");
    case.dockerfile(l.dockerfile);
    if let Some(ignore) = l.dockerignore {
        case.file(".dockerignore", ignore);
    }
    let mut args = vec![];
    for a in l.build_args {
        args.extend(["--build-arg", a]);
    }
    let with_check = [&["--check"][..], &args].concat();
    let out = run(&case, &with_check, l.error);
    let found = warn_lines(&out);
    let want = expected(l.warnings, &found);
    assert_eq!(found, want, "--check of:\n{}", l.dockerfile);
    if l.check_only {
        return;
    }
    let out = run(&case, &args, l.build_error.or(l.error));
    let found = warn_lines(&out);
    let want = expected(l.warnings, &found);
    assert_eq!(found, want, "build of:\n{}", l.dockerfile);
}

pub fn clean(dockerfile: &str) {
    check(Lint {
        dockerfile,
        ..Lint::default()
    });
}
