//! `RUN --mount=type=secret`: the `kiln build --secret` values, and the
//! step's secret files (in a tmpfs of kiln's, bound read-only) or
//! environment variables. A value is never printed, hashed or written to
//! a disk.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::instructions::Mount;
use kiln_sandbox::mount_tmpfs;

use super::{set_owner_mode, target_path, StepMounts};
use crate::Builder;

/// `kiln build --secret` values by id. Debug shows the ids only.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Where a secret's value comes from.
enum SecretSource<'a> {
    File(&'a str),
    Env(&'a str),
}

impl Secrets {
    /// `--secret` values in buildx's and podman's syntax:
    /// `id=NAME[,type=file|env][,src=FILE|env=VAR]`. With neither `src`
    /// nor `env` the id names an environment variable when one is set,
    /// else a file. Files are read now (a missing one is an error); an
    /// unset variable is a secret not given.
    pub fn parse(flags: &[String]) -> Result<Secrets> {
        let mut map = BTreeMap::new();
        for flag in flags {
            let (id, value) = parse_secret(flag).with_context(|| format!("--secret {flag}"))?;
            if let Some(value) = value {
                map.insert(id, value);
            }
        }
        Ok(Secrets(map))
    }

    fn get(&self, id: &str) -> Option<&[u8]> {
        self.0.get(id).map(Vec::as_slice)
    }
}

fn parse_secret(flag: &str) -> Result<(String, Option<Vec<u8>>)> {
    let (mut id, mut kind, mut src, mut env) = (None, None, None, None);
    for field in flag.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("invalid field {field:?}: must be a key=value pair"))?;
        match key.to_ascii_lowercase().as_str() {
            "id" => id = Some(value),
            "type" if matches!(value, "file" | "env") => kind = Some(value),
            "type" => bail!("unsupported secret type {value:?}: use file or env"),
            "src" | "source" => src = Some(value),
            "env" => env = Some(value),
            other => bail!("unexpected key {other:?} in {field:?}: use id, type, src or env"),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .context("the secret's id is missing (id=NAME)")?;
    let source = match (kind, src, env) {
        (_, Some(_), Some(_)) => bail!("src and env cannot both be set"),
        (Some("env"), s, e) => SecretSource::Env(e.or(s).unwrap_or(id)),
        (Some(_), _, Some(_)) => bail!("type=file takes src=FILE, not env="),
        (_, Some(s), None) => SecretSource::File(s),
        (None, None, Some(e)) => SecretSource::Env(e),
        (Some(_), None, None) => SecretSource::File(id),
        (None, None, None) if std::env::var_os(id).is_some() => SecretSource::Env(id),
        (None, None, None) => SecretSource::File(id),
    };
    let value = match source {
        SecretSource::Env(var) => std::env::var_os(var).map(OsString::into_vec),
        SecretSource::File(path) => {
            Some(fs::read(path).with_context(|| format!("reading the secret file {path}"))?)
        }
    };
    Ok((id.to_string(), value))
}

impl Builder<'_> {
    /// A secret mount: None when the secret was not given (and is not
    /// required) or goes only into the environment.
    pub(super) fn secret(
        &self,
        m: &Mount,
        workdir: &str,
        i: usize,
        out: &mut StepMounts,
    ) -> Result<Option<kiln_sandbox::Mount>> {
        let id = secret_id(m).context("a secret mount needs id= (or target=)")?;
        let Some(value) = self.req.secrets.get(&id) else {
            if m.required {
                // BuildKit's words first: users search CI logs for them.
                bail!("secret {id}: not found (required=true): pass --secret id={id},src=FILE (or env=VAR)");
            }
            return Ok(None);
        };
        if let Some(var) = &m.env {
            if var.is_empty() || var.contains(['=', '\0']) {
                bail!("env={var:?} is not a valid environment variable name");
            }
            if value.contains(&0) {
                bail!("secret {id:?} holds a NUL byte: it cannot be an environment variable");
            }
            out.env.push((var.clone(), value.to_vec()));
        }
        let target = match (&m.target, &m.env) {
            (Some(t), _) => t.clone(),
            (None, Some(_)) => return Ok(None),
            (None, None) => match Path::new(&id).file_name() {
                Some(name) => format!("/run/secrets/{}", name.to_string_lossy()),
                None => bail!("secret id {id:?} names no file: give target="),
            },
        };
        let target = target_path(Some(&target), workdir)?;
        let file = self.secrets_dir(out)?.join(i.to_string());
        fs::write(&file, value).with_context(|| format!("write {}", file.display()))?;
        let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
        set_owner_mode(&file, owner, m.mode.unwrap_or(0o400))?;
        Ok(Some(kiln_sandbox::Mount::Bind {
            source: file,
            target,
            readonly: true,
        }))
    }

    /// A secret mount's part of the step's cache key: whether the secret
    /// was given, never its value.
    pub(super) fn secret_key(&self, m: &Mount) -> String {
        let given = secret_id(m).is_some_and(|id| self.req.secrets.get(&id).is_some());
        format!("secret given: {given}")
    }

    /// The step's secrets dir: a tmpfs, so no secret is ever on a disk.
    fn secrets_dir(&self, out: &mut StepMounts) -> Result<PathBuf> {
        if let Some(dir) = &out.secrets {
            return Ok(dir.clone());
        }
        let dir = out.dir.join("secrets");
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        out.held
            .push(mount_tmpfs(&dir, 0o700).context("mounting the secrets tmpfs")?);
        out.secrets = Some(dir.clone());
        Ok(dir)
    }
}

/// A secret mount's id: `id=`, else `source=`, else the target's name.
fn secret_id(m: &Mount) -> Option<String> {
    m.id.clone().or_else(|| m.source.clone()).or_else(|| {
        let target = m.target.as_deref()?;
        Some(
            Path::new(target)
                .file_name()?
                .to_string_lossy()
                .into_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags() {
        let dir = std::env::temp_dir().join(format!("kiln-secret-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tok");
        fs::write(&file, "s3cret").unwrap();
        let f = file.display();
        for flag in [
            format!("id=tok,src={f}"),
            format!("id=tok,type=file,source={f}"),
        ] {
            let (id, value) = parse_secret(&flag).unwrap();
            assert_eq!(
                (id.as_str(), value.as_deref()),
                ("tok", Some(&b"s3cret"[..]))
            );
        }
        let (_, value) = parse_secret("id=x,env=KILN_TEST_SURELY_UNSET_VAR").unwrap();
        assert_eq!(value, None, "an unset variable is a secret not given");
        let (_, value) = parse_secret("id=x,type=env,env=PATH").unwrap();
        assert!(value.is_some());
        for bad in [
            "src=/x",
            "id=a,src=/x,env=Y",
            "id=a,type=ssh",
            "id=a,foo=b",
            "id=a,novalue",
            "id=a,type=file,env=X",
        ] {
            assert!(parse_secret(bad).is_err(), "{bad}");
        }
        assert!(parse_secret(&format!("id=a,src={}", dir.join("missing").display())).is_err());
        let secrets = Secrets::parse(&[format!("id=tok,src={f}")]).unwrap();
        assert_eq!(
            format!("{secrets:?}"),
            "[\"tok\"]",
            "Debug never shows a value"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
