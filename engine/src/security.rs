//! `--security-opt` for RUN steps (podman/buildah's spelling): the seccomp
//! filter (Docker's default, `seccomp=unconfined`, or `seccomp=PROFILE.json`
//! in Docker's JSON format) and `no-new-privileges`.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kiln_sandbox::seccomp::{Context as SeccompContext, Filter, Profile};
use kiln_sandbox::Seccomp;

/// What RUN steps run under. A profile file is compiled once, here.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// For the step cache key; empty for the defaults, so the keys of
    /// builds without `--security-opt` stay as they were.
    key: String,
}

impl Security {
    pub fn parse(opts: &[String]) -> Result<Security> {
        let mut s = Security::default();
        let mut seccomp_key = String::new();
        for o in opts {
            let (k, v) = match o.split_once(['=', ':']) {
                Some((k, v)) => (k, Some(v)),
                None => (o.as_str(), None),
            };
            match (k, v) {
                ("seccomp", Some("unconfined")) => {
                    s.seccomp = Seccomp::Unconfined;
                    seccomp_key = "seccomp=unconfined".into();
                }
                ("seccomp", Some(path)) if !path.is_empty() => {
                    let text = std::fs::read(path)
                        .with_context(|| format!("--security-opt {o}: read {path}"))?;
                    let profile = std::str::from_utf8(&text)
                        .map_err(|e| e.to_string())
                        .and_then(Profile::from_docker_json)
                        .map_err(|e| anyhow::anyhow!("--security-opt {o}: {path}: {e}"))?;
                    let filter = Filter::compile(&profile, &SeccompContext::host())
                        .with_context(|| format!("--security-opt {o}"))?;
                    s.seccomp = Seccomp::Filter(Arc::new(filter));
                    seccomp_key = format!("seccomp={}", super::cache::key("", &[&text]));
                }
                ("no-new-privileges", None | Some("true")) => s.no_new_privileges = true,
                ("no-new-privileges", Some("false")) => s.no_new_privileges = false,
                _ => bail!(
                    "--security-opt {o}: use seccomp=unconfined, seccomp=PROFILE.json \
                     or no-new-privileges"
                ),
            }
        }
        s.key = seccomp_key;
        if s.no_new_privileges {
            s.key.push_str("|no-new-privileges");
        }
        Ok(s)
    }

    /// Empty unless the options change what a RUN step may do.
    pub fn cache_key(&self) -> &str {
        &self.key
    }
}
