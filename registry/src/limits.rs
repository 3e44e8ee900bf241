//! What a remote party may make kiln wait for or hold: connect and
//! idle-read timeouts, the size of a manifest or config, the size of an
//! `ADD <url>` download, and the one form a digest from the network may
//! have before it goes anywhere near a URL.

use std::time::Duration;

use crate::error::{Error, Result};

/// Overrides both timeouts, in seconds (fractions allowed): slow links
/// want more, tests less.
pub const TIMEOUT_VAR: &str = "KILN_HTTP_TIMEOUT";
/// Overrides the most an `ADD <url>` download may write, in bytes (or
/// with a K, M, G suffix, powers of 1024).
pub const URL_MAX_VAR: &str = "KILN_ADD_URL_MAX_SIZE";

const CONNECT: Duration = Duration::from_secs(10);
/// How long a connection may go without a byte (headers or body) before
/// the request fails; each retry gets the same again.
const IDLE: Duration = Duration::from_secs(30);
/// A download with no end (or a huge one) stops here rather than filling
/// the disk.
const URL_MAX: u64 = 16 << 30;

/// The bounds one [`crate::Registry`] applies.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub connect: Duration,
    pub idle: Duration,
    pub url_max: u64,
}

impl Limits {
    /// The defaults, with the environment's overrides.
    pub fn from_env() -> Result<Limits> {
        let var = |name: &str| std::env::var(name).ok();
        Limits::parse(var(TIMEOUT_VAR).as_deref(), var(URL_MAX_VAR).as_deref())
    }

    fn parse(timeout: Option<&str>, url_max: Option<&str>) -> Result<Limits> {
        let mut limits = Limits {
            connect: CONNECT,
            idle: IDLE,
            url_max: URL_MAX,
        };
        if let Some(t) = timeout {
            let secs = t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .ok_or_else(|| invalid(TIMEOUT_VAR, t, "a number of seconds above 0"))?;
            limits.connect = Duration::from_secs_f64(secs);
            limits.idle = limits.connect;
        }
        if let Some(m) = url_max {
            limits.url_max = parse_size(m)
                .ok_or_else(|| invalid(URL_MAX_VAR, m, "a size in bytes (K, M, G allowed)"))?;
        }
        Ok(limits)
    }

    /// For an error that is a timeout, which limits it hit and how to
    /// change them; else nothing.
    pub fn timeout_hint(&self, e: &(dyn std::error::Error + 'static)) -> String {
        if !is_timeout(e) {
            return String::new();
        }
        format!(
            " (kiln waits {}s to connect and {}s for each answer or piece of data; set {TIMEOUT_VAR} to change both)",
            self.connect.as_secs_f64(),
            self.idle.as_secs_f64()
        )
    }
}

fn invalid(var: &str, value: &str, wanted: &str) -> Error {
    Error::Config {
        path: format!("${var}").into(),
        message: format!("{value:?} is not {wanted}"),
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 10),
        (i, 'm' | 'M') => (&s[..i], 20),
        (i, 'g' | 'G') => (&s[..i], 30),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Whether `d` is a digest kiln will put in a request or a path:
/// `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase. Anything else (a
/// hostile index's `sha256:../../x`) would change the URL it is put in.
pub fn valid_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// kiln's own HTTP client (manifests, `ADD <url>`) with these timeouts.
pub(crate) fn http_client(l: &Limits) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(l.connect)
        .read_timeout(l.idle)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .tls_certs_only(crate::roots::for_reqwest())
        .build()
}

/// Whether an error from reqwest (or one wrapping it) is a timeout.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_have_their_algorithms_form() {
        assert!(valid_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(valid_digest(&format!("sha512:{}", "0".repeat(128))));
        for bad in [
            "sha256:../../CANARY".to_string(),
            format!("sha256:{}/../x", "a".repeat(59)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:{}%2f", "a".repeat(62)),
            "a".repeat(64),
            String::new(),
        ] {
            assert!(!valid_digest(&bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn timeouts_and_the_url_cap_come_from_the_environment() {
        let d = Limits::parse(None, None).unwrap();
        assert_eq!((d.connect, d.idle, d.url_max), (CONNECT, IDLE, URL_MAX));
        let l = Limits::parse(Some("0.5"), Some("2M")).unwrap();
        assert_eq!(l.idle, Duration::from_millis(500));
        assert_eq!(l.connect, Duration::from_millis(500));
        assert_eq!(l.url_max, 2 << 20);
        assert_eq!(Limits::parse(None, Some("1234")).unwrap().url_max, 1234);
        for bad in ["0", "-1", "x", "inf", ""] {
            let e = Limits::parse(Some(bad), None).unwrap_err().to_string();
            assert!(e.contains(TIMEOUT_VAR), "{e}");
        }
        assert!(Limits::parse(None, Some("12T")).is_err());
        assert!(Limits::parse(None, Some("99999999999G")).is_err());
    }
}
