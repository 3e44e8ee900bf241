//! The build cache shared through registries and OCI layout dirs
//! (`--cache-from`, `--cache-to`, in BuildKit's spelling). A cache ref is
//! one OCI image manifest: its config (kiln's own media type) maps step
//! keys to the cache entries the local store keeps (the config changes a
//! step made, its key parts) and each layer's diffID to its blob; the
//! layers are ordinary blobs. Keys chain on keys, so an empty store finds
//! every hit by looking keys up, step by step, in the configs it read
//! once at the start; a hit downloads the layers it adds and becomes a
//! local entry. After the build the entries it used (all stages', or the
//! target's chain for `mode=min`) are merged into the ref's and written,
//! unless nothing changed. Any cache failure is a warning: the step runs.

mod ageout;
mod backend;
mod export;
mod format;
mod import;

use std::path::PathBuf;

use anyhow::{bail, Result};
use kiln_layer::Compression;

pub use import::Imported;

/// Where a cache lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    /// A registry reference (`type=registry,ref=R`).
    Registry(String),
    /// An OCI layout dir and the tag in its `index.json`.
    Local { dir: PathBuf, tag: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Registry(r) => write!(f, "{r}"),
            Location::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
        }
    }
}

/// One `--cache-to`.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheTo {
    pub at: Location,
    /// `mode=max` (default): every stage's steps; `min`: the target's chain.
    pub max: bool,
    pub compression: Compression,
    /// `ignore-error=false` makes a failed export fail the build.
    pub ignore_error: bool,
    /// `keep=N`: at most N entries, the least recently used dropped.
    pub keep: Option<usize>,
    /// `max-size=`: at most this many bytes of layers, likewise.
    pub max_size: Option<u64>,
}

/// `--cache-from` (tried in order) and `--cache-to`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheOptions {
    pub from: Vec<Location>,
    pub to: Vec<CacheTo>,
}

impl CacheOptions {
    /// Reads the flags; `compression` is `--compression`, the default of
    /// `--cache-to`'s own.
    pub fn parse(from: &[String], to: &[String], compression: Compression) -> Result<Self> {
        let from = from
            .iter()
            .map(|v| Ok(parse_one(v, "--cache-from", compression)?.at))
            .collect::<Result<_>>()?;
        let to = to
            .iter()
            .map(|v| parse_one(v, "--cache-to", compression))
            .collect::<Result<_>>()?;
        Ok(CacheOptions { from, to })
    }
}

/// One flag value: `type=…,key=value…`, or a bare reference (a registry
/// cache, as buildah takes it).
fn parse_one(value: &str, flag: &str, compression: Compression) -> Result<CacheTo> {
    let bare = !value.split(',').any(|p| p.starts_with("type="))
        && !value.contains("ref=")
        && !value.contains("src=")
        && !value.contains("dest=");
    if bare {
        if value.is_empty() {
            bail!("{flag}: empty value");
        }
        return Ok(CacheTo {
            at: Location::Registry(value.to_string()),
            max: true,
            compression,
            ignore_error: true,
            keep: None,
            max_size: None,
        });
    }
    let mut kind = "registry";
    let (mut reference, mut dir, mut tag) = (None, None, "latest".to_string());
    let mut to = CacheTo {
        at: Location::Registry(String::new()),
        max: true,
        compression,
        ignore_error: true,
        keep: None,
        max_size: None,
    };
    let dir_key = if flag == "--cache-to" { "dest" } else { "src" };
    for part in value.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            bail!("{flag} {value}: {part:?} is not KEY=VALUE");
        };
        match k {
            "type" => kind = v,
            "ref" => reference = Some(v.to_string()),
            k if k == dir_key => dir = Some(PathBuf::from(v)),
            "tag" => tag = v.to_string(),
            "mode" if flag == "--cache-to" => {
                to.max = match v {
                    "max" => true,
                    "min" => false,
                    _ => bail!("{flag} {value}: mode={v}: use max or min"),
                }
            }
            "compression" if flag == "--cache-to" => {
                to.compression = match v {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    _ => bail!("{flag} {value}: compression={v}: use gzip or zstd"),
                }
            }
            "ignore-error" if flag == "--cache-to" => {
                to.ignore_error = match v {
                    "true" => true,
                    "false" => false,
                    _ => bail!("{flag} {value}: ignore-error={v}: use true or false"),
                }
            }
            "keep" if flag == "--cache-to" => match v.parse() {
                Ok(n) if n > 0 => to.keep = Some(n),
                _ => bail!("{flag} {value}: keep={v}: a number of entries, at least 1"),
            },
            "max-size" if flag == "--cache-to" => match ageout::parse_size(v) {
                Some(n) => to.max_size = Some(n),
                None => bail!("{flag} {value}: max-size={v}: a size such as 500MB or 2GB"),
            },
            _ => bail!("{flag} {value}: unknown option {k:?}"),
        }
    }
    to.at = match (kind, reference, dir) {
        ("registry", Some(r), None) if !r.is_empty() => Location::Registry(r),
        ("registry", _, _) => bail!("{flag} {value}: type=registry needs ref=REFERENCE"),
        ("local", None, Some(dir)) => Location::Local { dir, tag },
        ("local", _, _) => bail!("{flag} {value}: type=local needs {dir_key}=DIR"),
        (other, _, _) => bail!("{flag} {value}: type={other}: kiln has registry and local"),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(from: &[&str], to: &[&str]) -> Result<CacheOptions> {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        CacheOptions::parse(&s(from), &s(to), Compression::Gzip)
    }

    #[test]
    fn flags_read_as_buildkit_and_buildah_write_them() {
        let o = parse(
            &[
                "type=registry,ref=r/app:cache",
                "r/app:main",
                "type=local,src=/c",
            ],
            &["type=registry,ref=r/app:cache,mode=min,compression=zstd,ignore-error=false"],
        )
        .unwrap();
        assert_eq!(
            o.from,
            [
                Location::Registry("r/app:cache".into()),
                Location::Registry("r/app:main".into()),
                Location::Local {
                    dir: "/c".into(),
                    tag: "latest".into()
                },
            ]
        );
        let t = &o.to[0];
        assert!(!t.max && !t.ignore_error && t.compression == Compression::Zstd);
        let t = &parse(&[], &["type=local,dest=/d,tag=x"]).unwrap().to[0];
        assert!(t.max && t.ignore_error);
        for bad in [
            "type=s3,ref=x",
            "type=registry",
            "type=local,dest=/d",
            "type=registry,ref=r,mode=all",
        ] {
            assert!(parse(&[bad], &[]).is_err(), "{bad}");
        }
        assert!(parse(&[], &["type=local,src=/d"]).is_err());
    }
}
