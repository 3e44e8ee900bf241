//! Image references as Docker reads them: `alpine` is
//! `docker.io/library/alpine:latest`, a first component with a `.` or `:`
//! (or `localhost`) is a registry host, `@sha256:…` pins a digest.

use oci_client::Reference;

use crate::error::{Error, Result};

/// Parses a reference (an optional `docker://` prefix is dropped), with
/// Docker's normalisation.
pub fn normalize(reference: &str) -> Result<Reference> {
    let s = reference.strip_prefix("docker://").unwrap_or(reference);
    parse(s)
        .map_err(|reason| Error::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
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

/// A reference by distribution's grammar (`[domain/]path[:tag][@digest]`),
/// with Docker's defaults (docker.io, `library/`, tag `latest`). Checked
/// by hand rather than by oci-spec's parser, which compiles a Unicode
/// regex on first use: ~50 ms of every kiln command that spoke to a
/// registry. A tag is ASCII, as in Docker (the regex's `\w` took any
/// Unicode letter).
fn parse(s: &str) -> std::result::Result<Reference, &'static str> {
    const INVALID: &str = "invalid reference format";
    if s.is_empty() {
        return Err("repository name must have at least one component");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    let slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(i) if slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    let has_domain = name.contains('/');
    let first_ok = is_path_component(first) || (has_domain && is_domain(first));
    if !first_ok || !parts.all(is_path_component) {
        return Err(INVALID);
    }
    if tag.is_some_and(|t| !is_tag(t)) {
        return Err(INVALID);
    }
    if let Some(d) = digest {
        check_digest(d)?;
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > 255 {
        return Err("repository name must not be more than 255 characters");
    }
    let tag = tag.map(str::to_string);
    let digest = digest.map(str::to_string);
    Ok(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(registry, repository, t, d),
        (None, Some(d)) => Reference::with_digest(registry, repository, d),
        (t, None) => {
            Reference::with_tag(registry, repository, t.unwrap_or_else(|| "latest".into()))
        }
    })
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !matches!(sep, "." | "_" | "__") && !sep.bytes().all(|x| x == b'-') {
            return false;
        }
    }
    true
}

/// `label(.label)*(:port)?`, a label being alphanumerics with inner `-`.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit()))
}

/// A word character, then up to 127 word characters, `.` or `-`.
fn is_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

/// `algorithm:hex`, of a length the algorithm gives.
fn check_digest(d: &str) -> std::result::Result<(), &'static str> {
    let Some((algo, hex)) = d.split_once(':') else {
        return Err("invalid reference format");
    };
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    if !algo_ok || hex.len() < 32 || !hex.bytes().all(|x| x.is_ascii_hexdigit()) {
        return Err("invalid reference format");
    }
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

/// Docker's split of a name into registry and repository: the first
/// component is a registry when it has a `.` or `:` or is `localhost`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((d, r)) if d.contains(['.', ':']) || d == "localhost" => {
            (d.to_string(), r.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    (domain, rest)
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
            "Uppercase/lowercase:tag".into(),
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
