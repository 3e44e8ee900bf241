//! Docker's image reference grammar (distribution's `reference` package):
//! `[domain[:port]/]path[:tag][@digest]`. The frontend checks `FROM`
//! names with it (InvalidDefaultArgInFrom) and the registry client parses
//! references by it, so both read a name the same way.

/// A reference split into its parts, each checked against the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The registry host (and port): a first component with a `.` or `:`,
    /// or `localhost`, followed by more path.
    pub domain: Option<&'a str>,
    /// The repository path, lowercase components separated by `/`.
    pub path: &'a str,
    pub tag: Option<&'a str>,
    /// `algorithm:hex`, the hex at least 32 digits (its length per
    /// algorithm is the caller's to check).
    pub digest: Option<&'a str>,
}

/// The parts of `s`, or None when it is no reference.
pub fn split(s: &str) -> Option<Parts<'_>> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    let slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(i) if slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let (domain, path) = match name.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" => (Some(d), p),
        _ => (None, name),
    };
    let ok = domain.is_none_or(is_domain)
        && path.split('/').all(is_path_component)
        && tag.is_none_or(is_tag)
        && digest.is_none_or(is_digest);
    ok.then_some(Parts {
        domain,
        path,
        tag,
        digest,
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

/// A word character, then up to 127 word characters, `.` or `-` (ASCII,
/// as Go's `\w`).
fn is_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`.
fn is_digest(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let with_digest = format!("127.0.0.1:5000/team/app:v1@{d}");
        let p = split(&with_digest).unwrap();
        assert_eq!(p.domain, Some("127.0.0.1:5000"));
        assert_eq!(
            (p.path, p.tag, p.digest),
            ("team/app", Some("v1"), Some(&d[..]))
        );
        let p = split("localhost:5000").unwrap();
        assert_eq!((p.domain, p.path, p.tag), (None, "localhost", Some("5000")));
        let p = split("a/b__c/d---e/f.g_h:_x").unwrap();
        assert_eq!((p.domain, p.path), (None, "a/b__c/d---e/f.g_h"));
        for bad in [
            "",
            ":tag",
            "Upper",
            "Upper/lower",
            "a//b",
            "a/b/",
            "a/-b",
            "a/b___c",
            "a/b._c",
            "-a.com/b",
            "a.com:/b",
            "a.com:80x/b",
            "a:.tag",
            "a@sha256",
            "a@sha256:12",
            "a@2sha:0123456789abcdef0123456789abcdef",
            "a b",
        ] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }
}
