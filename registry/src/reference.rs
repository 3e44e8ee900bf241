//! Image references as Docker reads them: `alpine` is
//! `docker.io/library/alpine:latest`, a first component with a `.` or `:`
//! (or `localhost`) is a registry host, `@sha256:…` pins a digest.

use oci_client::Reference;

use crate::error::{Error, Result};

/// Parses a reference (an optional `docker://` prefix is dropped), with
/// Docker's normalisation.
pub fn normalize(reference: &str) -> Result<Reference> {
    let s = reference.strip_prefix("docker://").unwrap_or(reference);
    parse(s).map_err(|reason| Error::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    })
}

/// A reference by distribution's grammar (`kiln_dockerfile::reference`),
/// with Docker's defaults (docker.io, `library/`, tag `latest`). Not
/// oci-spec's parser: it compiles a Unicode regex on first use, ~50 ms of
/// every kiln command that spoke to a registry. Tags are ASCII, as in
/// Docker (the regex's `\w` took any Unicode letter), and a first
/// component that names no registry must be lowercase, as in Docker's
/// ParseNormalizedNamed (oci-spec took `Upper/x` as docker.io's).
fn parse(s: &str) -> std::result::Result<Reference, &'static str> {
    if s.is_empty() {
        return Err("repository name must have at least one component");
    }
    let Some(parts) = kiln_dockerfile::reference::split(s) else {
        // Docker's wording for the common mistake.
        let lower = s.to_ascii_lowercase();
        return Err(match kiln_dockerfile::reference::split(&lower) {
            Some(_) => "invalid reference format: repository name must be lowercase",
            None => "invalid reference format",
        });
    };
    if let Some(d) = parts.digest {
        check_digest(d)?;
    }
    let mut domain = parts.domain.unwrap_or("docker.io").to_string();
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    let mut repository = parts.path.to_string();
    if domain == "docker.io" && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    if repository.len() > 255 {
        return Err("repository name must not be more than 255 characters");
    }
    let tag = parts.tag.map(str::to_string);
    let digest = parts.digest.map(str::to_string);
    Ok(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(domain, repository, t, d),
        (None, Some(d)) => Reference::with_digest(domain, repository, d),
        (t, None) => Reference::with_tag(domain, repository, t.unwrap_or_else(|| "latest".into())),
    })
}

/// The digest's hex is as long as its algorithm's output.
fn check_digest(d: &str) -> std::result::Result<(), &'static str> {
    let (algo, hex) = d.split_once(':').unwrap_or((d, ""));
    let want = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != want {
        return Err("invalid checksum digest length");
    }
    Ok(())
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
        let e = normalize("Team/App:v1").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
        assert!(normalize("a@sha256:12").is_err());
        assert!(normalize("").is_err());
    }

    /// The hand-written grammar accepts and splits what oci-spec's regex
    /// does (ASCII inputs).
    #[test]
    fn parse_agrees_with_oci_spec() {
        let h64 = "f".repeat(64);
        let h128 = "f".repeat(128);
        let corpus = [
            "busybox".to_string(),
            "test.com:tag".into(),
            "test.com:5000".into(),
            "test.com/repo:tag".into(),
            "test:5000/repo".into(),
            format!("test:5000/repo@sha256:{h64}"),
            format!("test:5000/repo:tag@sha256:{h64}"),
            "lowercase:Uppercase".into(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            format!("xn--7o8h.com/myimage:xn--7o8h.com@sha512:{h128}"),
            "foo_bar.com:8080".into(),
            "foo/foo_bar.com:8080".into(),
            "index.docker.io/alpine".into(),
            "localhost/app".into(),
            "localhost:5000".into(),
            "127.0.0.1:5000/team/app:v1".into(),
            "a/b__c/d---e/f.g_h:_x".into(),
            ":justtag".into(),
            format!("@sha256:{h64}"),
            "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
            format!("validname@invaliddigest:{h64}"),
            "Uppercase:tag".into(),
            "test:5000/Uppercase/lowercase:tag".into(),
            "a".repeat(256),
            "aa/asdf$$^/aa".into(),
            "a/b___c".into(),
            "a/b._c".into(),
            "a/-b".into(),
            "a/b-".into(),
            "a//b".into(),
            "a/b/".into(),
            "-a.com/b".into(),
            "a.com:/b".into(),
            "a.com:80x/b".into(),
            "a:b:c".into(),
            "a:.tag".into(),
            format!("a:{}", "t".repeat(128)),
            format!("a:{}", "t".repeat(129)),
            format!("a@sha256:{}", "F".repeat(64)),
            format!("a@sha2-56:{h64}"),
            format!("a@2sha:{h64}"),
            "a@sha256".into(),
            "a:tag@".into(),
            "a b".into(),
        ];
        for input in &corpus {
            let ours = parse(input);
            let theirs = input.parse::<Reference>();
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(
                    (a.registry(), a.repository(), a.tag(), a.digest()),
                    (b.registry(), b.repository(), b.tag(), b.digest()),
                    "{input}"
                ),
                (Err(_), Err(_)) => {}
                _ => panic!("{input}: ours {ours:?}, oci-spec {theirs:?}"),
            }
        }
        // Docker refuses an uppercase first component that names no
        // registry; oci-spec took it as a docker.io repository.
        assert!("Uppercase/lowercase:tag".parse::<Reference>().is_ok());
        assert!(parse("Uppercase/lowercase:tag").is_err());
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
