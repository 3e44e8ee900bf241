//! The warnings of the lines before a Dockerfile error: BuildKit prints
//! them before it fails, so a typo further down does not hide them.

use std::collections::BTreeMap;

use super::{lint, CheckConfig};
use crate::error::Error;
use crate::instructions::parse_dockerfile;
use crate::parser::Warning;

/// The file checks of the instructions above `err`'s line, as the check
/// configuration keeps them; none when that part is not a Dockerfile
/// by itself (no FROM yet, an unfinished instruction…).
pub fn warnings_before(
    text: &str,
    err: &Error,
    build_args: &BTreeMap<String, String>,
) -> Vec<Warning> {
    if err.span.start <= 1 {
        return Vec::new();
    }
    let prefix: String = text
        .split_inclusive('\n')
        .take(err.span.start - 1)
        .collect();
    let Ok(file) = parse_dockerfile(&prefix) else {
        return Vec::new();
    };
    let Ok(config) = CheckConfig::for_build(&file, build_args) else {
        return Vec::new();
    };
    let mut found: Vec<Warning> = file.warnings.iter().cloned().chain(lint(&file)).collect();
    found.retain(|w| config.keeps(w));
    found.sort_by_key(|w| w.span.start);
    found
}
