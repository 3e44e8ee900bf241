//! BuildKit's InvalidDefaultArgInFrom: a FROM that uses global ARGs must
//! name a valid image with their defaults alone, so that the Dockerfile
//! builds without `--build-arg` (`ARG VERSION` + `FROM busybox:$VERSION`
//! gives `busybox:`, which only a build arg saves).

use std::collections::BTreeMap;

use crate::instructions::Dockerfile;
use crate::parser::Warning;
use crate::shell::Lexer;

/// Warns for each FROM with variables whose image, with the global ARGs'
/// defaults and the automatic args only, is not a valid reference. Gives
/// up silently (as BuildKit) when a default does not expand.
pub fn invalid_default_arg_in_from(
    file: &Dockerfile,
    lexer: &Lexer,
    automatic: &BTreeMap<String, String>,
    out: &mut Vec<Warning>,
) {
    let mut defaults = automatic.clone();
    for (decl, _) in &file.meta_args {
        // A declaration without a value leaves an automatic arg as it is.
        if let Some(d) = &decl.default {
            let Ok(value) = lexer.process_word(d, &defaults) else {
                return;
            };
            defaults.insert(decl.name.clone(), value);
        }
    }
    for stage in &file.stages {
        let from = &stage.from;
        if !from.image.contains('$') {
            continue;
        }
        let Ok(image) = lexer.process_word(&from.image, &defaults) else {
            return;
        };
        if !is_reference(&image) {
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
}

/// Whether `image` parses as a FROM reference: kiln's local transports
/// with a path, or the distribution grammar (`[host[:port]/]path[:tag]
/// [@algo:hex]`, the path lowercase).
fn is_reference(image: &str) -> bool {
    for transport in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = image.strip_prefix(transport) {
            return !rest.is_empty() && !rest.starts_with(':');
        }
    }
    let (named, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && hex.len() >= 32
                && hex
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        });
        if !ok {
            return false;
        }
    }
    // A tag follows the last ':' after the last '/' (before it: a port).
    let slash = named.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match named[slash..].rfind(':') {
        Some(i) => (&named[..slash + i], Some(&named[slash + i + 1..])),
        None => (named, None),
    };
    if let Some(tag) = tag {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let ok = tag.len() <= 128
            && tag.starts_with(word)
            && tag.chars().all(|c| word(c) || c == '.' || c == '-');
        if !ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    let is_host = parts.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    if is_host {
        let host_ok = !first.is_empty()
            && first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !host_ok {
            return false;
        }
        parts.remove(0);
    }
    parts.iter().all(|p| is_path_component(p))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or `-`s.
fn is_path_component(part: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !part.starts_with(alnum) || !part.ends_with(alnum) {
        return false;
    }
    let mut sep = String::new();
    for c in part.chars() {
        if alnum(c) {
            let ok = matches!(sep.as_str(), "" | "." | "_" | "__") || sep.chars().all(|s| s == '-');
            if !ok {
                return false;
            }
            sep.clear();
        } else if ".-_".contains(c) {
            sep.push(c);
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_the_distribution_grammar_reads_them() {
        for ok in [
            "busybox",
            "busybox:latest",
            "busybox:stable-musl",
            "localhost:5000/a/b:1",
            "registry.example.com/x_y/z__w.v-1:tag",
            "oci:/tmp/image:latest",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "busybox:",
            ":latest",
            "Busybox",
            "a//b",
            "a b",
            "oci:",
            "x@sha256:",
            "-a",
        ] {
            assert!(!is_reference(bad), "{bad}");
        }
    }
}
