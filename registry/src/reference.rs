//! Image references as Docker reads them: `alpine` is
//! `docker.io/library/alpine:latest`, a first component with a `.` or `:`
//! (or `localhost`) is a registry host, `@sha256:…` pins a digest.

use oci_client::Reference;

use crate::error::{Error, Result};

/// Parses a reference (an optional `docker://` prefix is dropped), with
/// Docker's normalisation.
pub fn normalize(reference: &str) -> Result<Reference> {
    let s = reference.strip_prefix("docker://").unwrap_or(reference);
    s.parse::<Reference>()
        .map_err(|e| Error::InvalidReference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
        .and_then(|r| {
            if r.repository().chars().any(|c| c.is_ascii_uppercase()) {
                return Err(Error::InvalidReference {
                    reference: reference.to_string(),
                    reason: "repository names must be lowercase".into(),
                });
            }
            Ok(r)
        })
}

/// `registry/repository`, without tag or digest.
pub fn repository_name(r: &Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

/// The names a pulled image is stored under: the reference's tag (if it
/// has one) and `repo@digest`, which is how a later `FROM repo@digest` or
/// an unchanged `--pull=always` finds it without downloading anything.
pub fn store_names(r: &Reference, manifest_digest: &str) -> Vec<String> {
    let repo = repository_name(r);
    let mut names = Vec::new();
    if let Some(tag) = r.tag() {
        names.push(format!("{repo}:{tag}"));
    }
    names.push(format!("{repo}@{manifest_digest}"));
    names
}

/// The store name a reference is looked up by before any network: its tag,
/// or its digest.
pub fn lookup_name(r: &Reference) -> String {
    let repo = repository_name(r);
    match (r.digest(), r.tag()) {
        (Some(d), _) => format!("{repo}@{d}"),
        (None, Some(t)) => format!("{repo}:{t}"),
        (None, None) => format!("{repo}:latest"),
    }
}

/// Whether `host[:port]` is a loopback address, which Docker (and kiln)
/// speak to over plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        // `[::1]:5000`, or `host:port`; a bare IPv6 address has more colons.
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name == "localhost" {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation() {
        let r = normalize("alpine").unwrap();
        assert_eq!(r.whole(), "docker.io/library/alpine:latest");
        let r = normalize("docker://golang:1.23").unwrap();
        assert_eq!(lookup_name(&r), "docker.io/library/golang:1.23");
        let r = normalize("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = normalize(&format!("quay.io/x/y@{d}")).unwrap();
        assert_eq!(lookup_name(&r), format!("quay.io/x/y@{d}"));
        assert_eq!(store_names(&r, &d), vec![format!("quay.io/x/y@{d}")]);
        assert!(normalize("Alpine").is_err());
        assert!(normalize("a@sha256:12").is_err());
        assert!(normalize("").is_err());
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "127.9.9.9",
            "localhost:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "quay.io",
            "localhost.example.com",
            "docker.io",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
