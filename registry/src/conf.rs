//! `registries.conf` (containers-registries.conf(5), version 2): which
//! registries are insecure or blocked, where a prefix really lives
//! (`location`), and the mirrors to try first.
//!
//! Read from `$CONTAINERS_REGISTRIES_CONF` if set, else
//! `~/.config/containers/registries.conf` if it exists, else
//! `/etc/containers/registries.conf` (the user file replaces the system
//! one, as in containers/image). Drop-in directories are not read.

use std::path::{Path, PathBuf};

use oci_client::Reference;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::is_loopback;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Mirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Entry {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<Mirror>,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    registry: Vec<Entry>,
}

/// The parsed configuration (empty when no file exists).
#[derive(Debug, Default)]
pub struct RegistriesConf {
    path: Option<PathBuf>,
    entries: Vec<Entry>,
}

/// One place to fetch an image from: a mirror or the primary location,
/// with the reference rewritten for it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub reference: Reference,
    pub insecure: bool,
    pub mirror: bool,
}

impl RegistriesConf {
    pub fn load() -> Result<RegistriesConf> {
        if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
            return Self::load_file(Path::new(&p));
        }
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("containers/registries.conf"));
        match user {
            Some(p) if p.exists() => Self::load_file(&p),
            _ => {
                let system = Path::new("/etc/containers/registries.conf");
                if system.exists() {
                    Self::load_file(system)
                } else {
                    Ok(RegistriesConf::default())
                }
            }
        }
    }

    pub fn load_file(path: &Path) -> Result<RegistriesConf> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let file: File = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for e in &file.registry {
            if e.prefix.as_deref().unwrap_or("").is_empty()
                && e.location.as_deref().unwrap_or("").is_empty()
            {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: "a [[registry]] needs a prefix or a location".into(),
                });
            }
        }
        Ok(RegistriesConf {
            path: Some(path.to_path_buf()),
            entries: file.registry,
        })
    }

    /// The entry whose prefix matches `name` (`host/repo`) the longest.
    fn entry_for(&self, name: &str) -> Option<(&Entry, &str)> {
        self.entries
            .iter()
            .filter_map(|e| {
                let prefix = e
                    .prefix
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .or(e.location.as_deref())?;
                prefix_matches(prefix, name).then_some((e, prefix))
            })
            .max_by_key(|(_, p)| p.len())
    }

    /// Whether `host` is marked insecure (as a registry or a mirror).
    pub fn is_insecure(&self, host: &str) -> bool {
        self.entries.iter().any(|e| {
            let own = [e.location.as_deref(), e.prefix.as_deref()];
            (e.insecure && own.iter().flatten().any(|l| host_of(l) == host))
                || e.mirror
                    .iter()
                    .any(|m| m.insecure && host_of(&m.location) == host)
        })
    }

    /// Where to pull `r` from, in order: mirrors, then the primary
    /// location. `insecure` lists hosts given on the command line.
    pub fn pull_endpoints(&self, r: &Reference, insecure: &[String]) -> Result<Vec<Endpoint>> {
        self.endpoints(r, insecure, true)
    }

    /// Where to push `r`: the primary location only.
    pub fn push_endpoint(&self, r: &Reference, insecure: &[String]) -> Result<Endpoint> {
        let mut e = self.endpoints(r, insecure, false)?;
        Ok(e.remove(e.len() - 1))
    }

    fn endpoints(
        &self,
        r: &Reference,
        insecure: &[String],
        mirrors: bool,
    ) -> Result<Vec<Endpoint>> {
        let name = format!("{}/{}", r.registry(), r.repository());
        let insecure_for = |host: &str, flagged: bool| {
            flagged || is_loopback(host) || insecure.iter().any(|h| h == host)
        };
        let Some((entry, prefix)) = self.entry_for(&name) else {
            let host = r.registry().to_string();
            return Ok(vec![Endpoint {
                insecure: insecure_for(&host, self.is_insecure(&host)),
                reference: r.clone(),
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(Error::Blocked {
                reference: r.whole(),
                registry: prefix.to_string(),
                conf: self.display_path(),
            });
        }
        let mut out = Vec::new();
        if mirrors {
            for m in &entry.mirror {
                let by_digest = r.digest().is_some();
                let allowed = match m.pull_from_mirror.as_deref() {
                    Some("digest-only") => by_digest,
                    Some("tag-only") => !by_digest,
                    _ => !entry.mirror_by_digest_only || by_digest,
                };
                if allowed {
                    let reference = rewrite(r, prefix, &m.location)?;
                    out.push(Endpoint {
                        insecure: insecure_for(reference.registry(), m.insecure),
                        reference,
                        mirror: true,
                    });
                }
            }
        }
        let location = entry
            .location
            .as_deref()
            .filter(|l| !l.is_empty())
            .unwrap_or(prefix);
        let reference = rewrite(r, prefix, location)?;
        out.push(Endpoint {
            insecure: insecure_for(reference.registry(), entry.insecure),
            reference,
            mirror: false,
        });
        Ok(out)
    }

    fn display_path(&self) -> String {
        self.path
            .as_ref()
            .map_or("registries.conf".into(), |p| p.display().to_string())
    }
}

/// containers/image's prefix match: at a path boundary, or a `*.domain`
/// wildcard on the host.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = host_of(name);
        return host.ends_with(&format!(".{domain}"));
    }
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
}

/// `r` with `prefix` replaced by `location` (`host[/path]`).
fn rewrite(r: &Reference, prefix: &str, location: &str) -> Result<Reference> {
    let name = format!("{}/{}", r.registry(), r.repository());
    let rest = if prefix.starts_with("*.") {
        // A wildcard keeps the repository; only the host changes.
        format!("/{}", r.repository())
    } else {
        name[prefix.len()..].to_string()
    };
    let full = format!("{location}{rest}");
    let (host, repo) = full
        .split_once('/')
        .ok_or_else(|| Error::InvalidReference {
            reference: full.clone(),
            reason: "a mirror location needs a repository".into(),
        })?;
    Ok(match (r.tag(), r.digest()) {
        (Some(t), Some(d)) => {
            Reference::with_tag_and_digest(host.into(), repo.into(), t.into(), d.into())
        }
        (_, Some(d)) => Reference::with_digest(host.into(), repo.into(), d.into()),
        (t, None) => {
            Reference::with_tag(host.into(), repo.into(), t.unwrap_or("latest").to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::normalize;

    /// Parses `text` from a file of its own (tests run in parallel),
    /// removed once read.
    fn conf(text: &str) -> RegistriesConf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("kiln-regconf-{}-{n}.conf", std::process::id()));
        std::fs::write(&p, text).unwrap();
        let parsed = RegistriesConf::load_file(&p);
        std::fs::remove_file(&p).unwrap();
        parsed.unwrap()
    }

    #[test]
    fn mirrors_then_location() {
        let c = conf(
            r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"
[[registry.mirror]]
location = "10.1.1.1:5000/hub"
insecure = true
[[registry.mirror]]
location = "127.0.0.1:5001"
"#,
        );
        let r = normalize("alpine:3.20").unwrap();
        let e = c.pull_endpoints(&r, &[]).unwrap();
        let names: Vec<String> = e.iter().map(|e| e.reference.whole()).collect();
        assert_eq!(
            names,
            vec![
                "10.1.1.1:5000/hub/library/alpine:3.20",
                "127.0.0.1:5001/library/alpine:3.20",
                "registry-1.docker.io/library/alpine:3.20"
            ]
        );
        assert_eq!(
            e.iter().map(|e| (e.insecure, e.mirror)).collect::<Vec<_>>(),
            vec![(true, true), (true, true), (false, false)]
        );
        let push = c.push_endpoint(&r, &[]).unwrap();
        assert_eq!(push.reference.registry(), "registry-1.docker.io");
        // No entry: as written, https unless loopback or flagged.
        let q = normalize("quay.io/a/b").unwrap();
        assert!(!c.pull_endpoints(&q, &[]).unwrap()[0].insecure);
        assert!(c.pull_endpoints(&q, &["quay.io".into()]).unwrap()[0].insecure);
    }

    #[test]
    fn prefixes_blocking_and_digest_only() {
        let c = conf(
            r#"
[[registry]]
prefix = "example.com/team"
location = "mirror.local/team-copy"
mirror-by-digest-only = true
[[registry.mirror]]
location = "cache.local"
[[registry]]
location = "bad.example"
blocked = true
"#,
        );
        let r = normalize("example.com/team/app:1").unwrap();
        let e = c.pull_endpoints(&r, &[]).unwrap();
        assert_eq!(e.len(), 1, "tags skip a digest-only mirror");
        assert_eq!(e[0].reference.whole(), "mirror.local/team-copy/app:1");
        let other = normalize("example.com/teammate/app").unwrap();
        assert_eq!(
            c.pull_endpoints(&other, &[]).unwrap()[0]
                .reference
                .registry(),
            "example.com"
        );
        let blocked = normalize("bad.example/x").unwrap();
        assert!(c
            .pull_endpoints(&blocked, &[])
            .unwrap_err()
            .to_string()
            .contains("blocked"));
    }
}
