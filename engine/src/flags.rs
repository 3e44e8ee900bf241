//! `kiln build` flags that shape every RUN step and the cache beyond what
//! the Dockerfile says, with docker/podman's syntax: `--add-host`,
//! `--shm-size`, `--ulimit`, `--no-cache-filter`, `--ssh`.

use anyhow::{bail, Context, Result};
use kiln_sandbox::Rlimit;

use super::mounts::SshAgents;

/// The parsed flags, carried by the build request.
#[derive(Clone, Debug, Default)]
pub struct RunFlags {
    /// `/etc/hosts` lines, "IP\tHOST".
    pub extra_hosts: Vec<String>,
    /// /dev/shm's size in bytes.
    pub shm_size: Option<u64>,
    pub rlimits: Vec<Rlimit>,
    /// Stages whose steps never come from the cache (lowercase names).
    pub no_cache_stages: Vec<String>,
    /// `--ssh`: the agents `RUN --mount=type=ssh` forwards.
    pub ssh: SshAgents,
}

/// What the user typed for each flag.
pub struct RunFlagArgs<'a> {
    pub add_hosts: &'a [String],
    pub shm_size: Option<&'a str>,
    pub ulimits: &'a [String],
    pub no_cache_filter: &'a [String],
    pub ssh: &'a [String],
}

impl RunFlags {
    pub fn parse(args: &RunFlagArgs<'_>) -> Result<RunFlags> {
        Ok(RunFlags {
            extra_hosts: args
                .add_hosts
                .iter()
                .map(|h| add_host(h).with_context(|| format!("--add-host {h}")))
                .collect::<Result<_>>()?,
            shm_size: args
                .shm_size
                .map(|s| size(s).with_context(|| format!("--shm-size {s}")))
                .transpose()?,
            rlimits: args
                .ulimits
                .iter()
                .map(|u| ulimit(u).with_context(|| format!("--ulimit {u}")))
                .collect::<Result<_>>()?,
            no_cache_stages: args
                .no_cache_filter
                .iter()
                .flat_map(|f| f.split(','))
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
            ssh: SshAgents::parse(args.ssh)?,
        })
    }

    /// Whether `--no-cache-filter` names this stage (by name or index).
    pub fn no_cache(&self, name: Option<&str>, index: usize) -> bool {
        self.no_cache_stages
            .iter()
            .any(|s| name.is_some_and(|n| n.eq_ignore_ascii_case(s)) || *s == index.to_string())
    }

    /// Sets the RUN step's limits, hosts and shm size.
    pub fn apply(&self, spec: &mut kiln_sandbox::Spec) {
        spec.extra_hosts.extend(self.extra_hosts.iter().cloned());
        spec.shm_size = self.shm_size;
        spec.rlimits.extend(self.rlimits.iter().copied());
    }
}

/// The key a step's result goes on with: its cache key, or for a step
/// of a `--no-cache-filter` stage (run again, maybe with new content) the
/// key with the layers' ChainID in it, so the steps and stages that build
/// on it are cached only if the content came out the same (BuildKit's
/// content-based keys do that).
pub(super) fn rerun_key(key: String, state: &super::StageState) -> String {
    if !state.no_cache {
        return key;
    }
    super::cache::key(&key, &[b"rerun", state.chain().as_bytes()])
}

/// `HOST:IP` (docker) or `HOST=IP` (buildx); IPv6 addresses keep their
/// colons (the host name ends at the first separator).
fn add_host(value: &str) -> Result<String> {
    let (host, ip) = value.split_once(['=', ':']).context("expected HOST:IP")?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        bail!("{host:?} is not a host name");
    }
    if ip == "host-gateway" {
        bail!("host-gateway is not supported: give the address");
    }
    ip.parse::<std::net::IpAddr>()
        .map_err(|_| anyhow::anyhow!("{ip:?} is not an IP address"))?;
    Ok(format!("{ip}\t{host}"))
}

/// docker's memory sizes: a number with an optional b/k/m/g suffix
/// (binary units, `b` optional after the letter).
fn size(value: &str) -> Result<u64> {
    let v = value.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').filter(|r| !r.is_empty()).unwrap_or(&v);
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => bail!("not a size: use e.g. 128m or 1g"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("not a size: use e.g. 128m or 1g"))?;
    if n == 0 {
        bail!("the size must be above 0");
    }
    n.checked_mul(1 << shift).context("too large")
}

/// The resources `--ulimit` names, as docker's go-units knows them.
const RESOURCES: [(&str, libc::__rlimit_resource_t); 15] = [
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
];

/// `TYPE=SOFT[:HARD]` (-1: unlimited). A rootless build cannot raise a
/// hard limit above kiln's own: that is refused here, not mid-build.
fn ulimit(value: &str) -> Result<Rlimit> {
    let (name, limits) = value.split_once('=').context("expected TYPE=SOFT[:HARD]")?;
    let names = || RESOURCES.iter().map(|r| r.0).collect::<Vec<_>>().join(", ");
    let &(_, resource) = RESOURCES
        .iter()
        .find(|r| r.0 == name)
        .with_context(|| format!("unknown type {name:?}: use one of {}", names()))?;
    let number = |s: &str| -> Result<u64> {
        match s.trim() {
            "-1" | "unlimited" => Ok(u64::MAX),
            n => n
                .parse()
                .map_err(|_| anyhow::anyhow!("{n:?} is not a number (or -1)")),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(limits)?, number(limits)?),
    };
    if soft > hard {
        bail!("the soft limit is above the hard limit");
    }
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall on a valid pointer.
    if unsafe { libc::getrlimit(resource, &mut own) } == 0 && hard > own.rlim_max {
        let own = match own.rlim_max {
            u64::MAX => "unlimited".to_string(),
            n => n.to_string(),
        };
        bail!("the hard limit is above kiln's own ({own}), which a rootless build cannot raise");
    }
    Ok(Rlimit {
        resource,
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_hosts() {
        assert_eq!(size("128m").unwrap(), 128 << 20);
        assert_eq!(size("1GB").unwrap(), 1 << 30);
        assert_eq!(size("4096").unwrap(), 4096);
        assert!(size("12x").is_err() && size("m").is_err() && size("0").is_err());
        assert_eq!(add_host("db:10.0.0.5").unwrap(), "10.0.0.5\tdb");
        assert_eq!(add_host("v6=::1").unwrap(), "::1\tv6");
        assert!(add_host("db:notanip").is_err());
    }

    #[test]
    fn ulimits() {
        let r = ulimit("nofile=512:1024").unwrap();
        assert_eq!((r.soft, r.hard), (512, 1024));
        assert!(ulimit("nofile=1024:512").is_err());
        let e = ulimit("files=1").unwrap_err().to_string();
        assert!(e.contains("nofile"), "{e}");
    }
}
