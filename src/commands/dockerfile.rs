//! Locating and reading the Dockerfile and the build options, shared by
//! every command that takes one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::BuildArgs;

pub struct Source {
    /// The name shown in messages: the path as the user gave it.
    pub name: String,
    pub text: String,
    /// Where it was read from (None for stdin): `<it>.dockerignore`
    /// beside it is the context's ignore file when present.
    pub path: Option<PathBuf>,
}

/// `-f`, else `CONTEXT/Dockerfile`, else (as BuildKit) a lowercase
/// `CONTEXT/dockerfile`, else (as podman) `CONTEXT/Containerfile`.
fn path_of(args: &BuildArgs) -> PathBuf {
    if let Some(f) = &args.file {
        return f.clone();
    }
    default_in(&args.context)
}

/// The Dockerfile a context directory holds when `-f` names none.
pub fn default_in(context: &std::path::Path) -> PathBuf {
    let default = context.join("Dockerfile");
    ["Dockerfile", "dockerfile", "Containerfile"]
        .iter()
        .map(|name| context.join(name))
        .find(|p| p.symlink_metadata().is_ok())
        .unwrap_or(default)
}

pub fn read(args: &BuildArgs) -> Result<Source> {
    if let Some(text) = super::context::stdin_dockerfile().filter(|_| args.file.is_none()) {
        return Ok(Source {
            name: "Dockerfile".into(),
            text,
            path: None,
        });
    }
    let path = path_of(args);
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the Dockerfile from standard input")?;
        return Ok(Source {
            name: "Dockerfile".into(),
            text,
            path: None,
        });
    }
    if args.file.is_none() && path.symlink_metadata().is_err() {
        bail!(
            "{} has no Dockerfile (nor Containerfile): name one with -f",
            args.context.display()
        );
    }
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read the Dockerfile {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: the Dockerfile is not valid UTF-8 (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let name = args.file.as_ref().map_or_else(
        || {
            let file = path.file_name().unwrap_or_default();
            file.to_string_lossy().into_owned()
        },
        |p| p.to_string_lossy().into_owned(),
    );
    Ok(Source {
        name,
        text,
        path: Some(path),
    })
}

/// `--build-arg K=V`, or `--build-arg K` taking K from the environment
/// (and dropped when unset), as Docker does.
pub fn build_args(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for arg in raw {
        match arg.split_once('=') {
            Some(("", _)) => bail!("--build-arg {arg:?}: the name is empty"),
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    out.insert(arg.clone(), v);
                }
            }
        }
    }
    Ok(out)
}
