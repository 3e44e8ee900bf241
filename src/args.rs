//! The command line as docker and podman users type it, before clap sees
//! it: `--pull` without a value, and unknown flags named as such.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};

use crate::cli::Cli;

/// What `--pull` may be given as its value after a space.
const PULL_POLICIES: [&str; 5] = ["always", "missing", "never", "true", "false"];

/// Parses the process's arguments; exits with clap's usage code (2) on a
/// mistake.
pub fn parse() -> Cli {
    let argv = join_platforms(normalize(std::env::args_os().collect()));
    match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::UnknownArgument => {
            say!("{}", unknown_flag(&e, &argv));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    }
}

/// docker's `--pull` is a boolean: `kiln build --pull .` must not take
/// `.` for its value. `--pull always` (podman's spelling) keeps its value.
fn normalize(argv: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut rest = argv.into_iter().peekable();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(rest);
            break;
        }
        if arg != "--pull" {
            out.push(arg);
            continue;
        }
        let policy = rest
            .next_if(|v| PULL_POLICIES.iter().any(|p| v == p))
            .map_or_else(
                || "always".to_string(),
                |v| v.to_string_lossy().into_owned(),
            );
        out.push(format!("--pull={policy}").into());
    }
    out
}

/// `--platform` given more than once (buildx's way to list several) is
/// one comma-separated `--platform` list.
fn join_platforms(argv: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut platforms: Vec<String> = Vec::new();
    let mut at = None;
    let mut rest = argv.into_iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(rest);
            break;
        }
        let value = match arg.to_str() {
            Some("--platform") => rest.next().map(|v| v.to_string_lossy().into_owned()),
            Some(a) => a.strip_prefix("--platform=").map(str::to_string),
            None => None,
        };
        match value {
            Some(v) => {
                at.get_or_insert(out.len());
                platforms.push(v);
            }
            None => out.push(arg),
        }
    }
    if let Some(i) = at {
        out.insert(i, format!("--platform={}", platforms.join(",")).into());
    }
    out
}

/// "kiln does not support the flag --X", with the nearest flag the
/// subcommand has, instead of clap's tip to pass it after `--`.
fn unknown_flag(err: &clap::Error, argv: &[OsString]) -> String {
    let flag = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return err.render().to_string(),
    };
    let flag = flag.split('=').next().unwrap_or(&flag).to_string();
    let root = Cli::command();
    let sub = argv
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find_map(|a| root.find_subcommand(a));
    let cmd = sub.unwrap_or(&root);
    let known = cmd
        .get_arguments()
        .chain(root.get_arguments())
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"));
    let closest = known.min_by_key(|k| distance(k, &flag));
    let name = match sub {
        Some(s) => format!("kiln {}", s.get_name()),
        None => "kiln".to_string(),
    };
    let mut msg = format!("error: kiln does not support the flag {flag}");
    // A one-letter flag has no spelling to be close to.
    if let Some(c) = closest.filter(|_| flag.starts_with("--")) {
        msg.push_str(&format!("\n  the closest flag of {name}: {c}"));
    }
    msg.push_str(&format!("\n  see: {name} --help"));
    msg
}

/// Levenshtein distance, on chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn pull_alone_means_always() {
        assert_eq!(
            normalize(args("kiln build -t app --pull .")),
            args("kiln build -t app --pull=always .")
        );
        assert_eq!(
            normalize(args("kiln build --pull never .")),
            args("kiln build --pull=never .")
        );
        assert_eq!(
            normalize(args("kiln build --pull=missing .")),
            args("kiln build --pull=missing .")
        );
        assert_eq!(
            normalize(args("kiln build . -- --pull")),
            args("kiln build . -- --pull")
        );
    }

    #[test]
    fn repeated_platforms_are_one_list() {
        assert_eq!(
            join_platforms(args(
                "kiln build --platform linux/amd64 -t a --platform=linux/arm64 ."
            )),
            args("kiln build --platform=linux/amd64,linux/arm64 -t a .")
        );
        assert_eq!(
            join_platforms(args("kiln build . -- --platform x")),
            args("kiln build . -- --platform x")
        );
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("--lable", "--label"), 2);
        assert_eq!(distance("--load", "--load"), 0);
        assert_eq!(distance("", "abc"), 3);
    }
}
