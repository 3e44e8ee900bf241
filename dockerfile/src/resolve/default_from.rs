//! BuildKit's InvalidDefaultArgInFrom: a `FROM` whose variables, given only
//! the global ARG defaults (no `--build-arg`), name no valid image — the
//! Dockerfile then only builds with the right build-args.

use super::{global_inputs, GlobalEnv, Options};
use crate::instructions::Dockerfile;
use crate::parser::Warning;
use crate::shell::Lexer;

/// kiln's own base transports: paths, not registry references.
const TRANSPORTS: [&str; 3] = ["oci:", "oci-archive:", "docker-archive:"];

pub fn check(
    file: &Dockerfile,
    opts: &Options,
    lexer: &Lexer,
    target: usize,
    out: &mut Vec<Warning>,
) {
    let defaults_only = Options {
        build_args: Default::default(),
        ..opts.clone()
    };
    // As BuildKit: defaults that do not even expand abandon the check (the
    // build reports them).
    let Ok(inputs) = global_inputs(file, &defaults_only, lexer, target) else {
        return;
    };
    for stage in &file.stages {
        let from = &stage.from;
        // A constant name that is not an image fails the build anyway.
        if !from.image.contains('$') {
            continue;
        }
        let Ok(name) = lexer.process_word(&from.image, &GlobalEnv(&inputs)) else {
            return;
        };
        if TRANSPORTS.iter().any(|t| name.starts_with(t)) || is_reference(&name) {
            continue;
        }
        out.push(Warning {
            rule: "InvalidDefaultArgInFrom",
            message: format!(
                "Default value for ARG {} results in empty or invalid base image name",
                from.image
            ),
            span: from.span,
        });
    }
}

/// Docker's reference grammar: `[domain[:port]/]path[:tag][@digest]`, the
/// path lowercase.
pub fn is_reference(s: &str) -> bool {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        let algo_ok = !algo.is_empty()
            && algo
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !algo_ok
            || hex.len() < 32
            || !hex
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=_-".contains(c))
        {
            return false;
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let ok = t.len() <= 128
            && t.chars().next().is_some_and(word)
            && t.chars().all(|c| word(c) || c == '.' || c == '-');
        if !ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (domain, port) = host.split_once(':').unwrap_or((host, "0"));
        let domain_ok = !domain.is_empty()
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !domain_ok || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    parts.iter().all(|p| path_component(p))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component(p: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = p.chars().collect();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep: String = bytes[start..i].iter().collect();
        if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-')) {
            return false;
        }
    }
    true
}
