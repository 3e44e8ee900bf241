//! Image names, normalised as podman does for local images: `app` →
//! `localhost/app:latest`, a name with a registry host kept as written (with
//! `:latest` added), Docker Hub's `library/` filled in.

use crate::error::{Error, Result};

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: name.to_string(),
        reason,
    }
}

pub fn normalize_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(invalid(name, "it is empty"));
    }
    let (path, digest) = match name.split_once('@') {
        Some((p, d)) => {
            kiln_layer::Digest::parse(d)
                .map_err(|_| invalid(name, "the digest is not sha256:<64 hex>"))?;
            (p, Some(d))
        }
        None => (name, None),
    };
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match path[last_slash..].rfind(':') {
        Some(i) => (&path[..last_slash + i], Some(&path[last_slash + i + 1..])),
        None => (path, None),
    };
    let mut parts: Vec<&str> = repo.split('/').collect();
    let has_host = parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
    let host = if has_host {
        parts.remove(0).to_string()
    } else {
        "localhost".to_string()
    };
    if host
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
    {
        return Err(invalid(name, "the registry host has invalid characters"));
    }
    for p in &parts {
        if p.is_empty() {
            return Err(invalid(name, "a path component is empty"));
        }
        if p.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(name, "repository names must be lowercase"));
        }
        let ok = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(invalid(
                name,
                "use lowercase letters, digits and . _ - between them",
            ));
        }
    }
    if host == "docker.io" && parts.len() == 1 {
        parts.insert(0, "library");
    }
    let mut out = format!("{host}/{}", parts.join("/"));
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(invalid(
                name,
                "the tag may hold letters, digits, . _ - (at most 128)",
            ));
        }
        out.push(':');
        out.push_str(t);
    } else if digest.is_none() {
        out.push_str(":latest");
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalize_name as n;

    #[test]
    fn podman_style_names() {
        assert_eq!(n("app").unwrap(), "localhost/app:latest");
        assert_eq!(n("app:1.0").unwrap(), "localhost/app:1.0");
        assert_eq!(n("team/app").unwrap(), "localhost/team/app:latest");
        assert_eq!(n("localhost/app").unwrap(), "localhost/app:latest");
        assert_eq!(n("quay.io/x/y:2").unwrap(), "quay.io/x/y:2");
        assert_eq!(n("127.0.0.1:5000/y").unwrap(), "127.0.0.1:5000/y:latest");
        assert_eq!(
            n("docker.io/alpine").unwrap(),
            "docker.io/library/alpine:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            n(&format!("quay.io/x@{d}")).unwrap(),
            format!("quay.io/x@{d}")
        );
        for bad in [
            "",
            "App",
            "a//b",
            "a:",
            "a:b/c:",
            "-a",
            "a@sha256:../../x",
            "a:bad tag",
        ] {
            assert!(n(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
