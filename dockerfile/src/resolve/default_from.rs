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

/// Whether `s` is an image reference by Docker's grammar.
pub fn is_reference(s: &str) -> bool {
    crate::reference::split(s).is_some()
}
