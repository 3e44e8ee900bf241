//! Build contexts that are not a local directory, as `docker build` takes
//! them: `-` (a Dockerfile alone, or a tar of the context, on stdin), a
//! git URL (`URL#REF:SUBDIR`) or an http(s) URL of a tarball (or of a
//! Dockerfile alone). Each becomes a directory in the build's scratch
//! dir, unpacked confined to it, and the build proceeds as for a local one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use kiln_store::{Scratch, Store};

use crate::build::{classify_remote, fetch_git, subdir_path, Remote};
use crate::cli::{BuildArgs, RegistryArgs};

/// A Dockerfile that came alone on stdin as the context (`docker build -
/// < Dockerfile`): read as if `-f -` had been given.
static STDIN_DOCKERFILE: OnceLock<String> = OnceLock::new();

/// The Dockerfile read from stdin when the context was `-`.
pub fn stdin_dockerfile() -> Option<String> {
    STDIN_DOCKERFILE.get().cloned()
}

/// A context made from stdin or a URL: the arguments with the context
/// (and `-f`) pointing into `_scratch`, which lives as long as this.
pub struct Fetched {
    pub args: BuildArgs,
    _scratch: Scratch,
}

/// None when the context is a local directory.
pub fn fetch(args: &BuildArgs, store: &Store) -> Result<Option<Fetched>> {
    let Some(spec) = args.context.to_str() else {
        return Ok(None);
    };
    let remote = classify_remote(spec);
    if spec != "-" && remote.is_none() {
        return Ok(None);
    }
    if spec == "-" && args.file.as_deref() == Some(Path::new("-")) {
        bail!("the context and -f cannot both be stdin (-)");
    }
    let scratch = store.scratch()?;
    let root = scratch.path().join("context");
    let dir = match remote {
        None => {
            let mut stdin = std::io::stdin().lock();
            from_stream(&mut stdin, &root, args.file.is_some()).context("the context on stdin")?
        }
        Some(Remote::Url(url)) => {
            let file = scratch.path().join("download");
            download(&args.registry, &url, &file)?;
            let mut input = std::fs::File::open(&file)?;
            from_stream(&mut input, &root, args.file.is_some())
                .with_context(|| format!("the context {url}"))?
        }
        Some(Remote::Git(src)) => {
            fetch_git(&src, &root).with_context(|| format!("the context {spec}"))?;
            let sub = subdir_path(src.subdir.as_deref())?;
            inside(&root, &root.join(sub)).with_context(|| format!("the context {spec}"))?
        }
    };
    let mut fetched = BuildArgs {
        context: dir.clone(),
        ..args.clone()
    };
    // As docker: -f names a file of the remote context.
    if let Some(f) = args.file.as_ref().filter(|f| f.as_os_str() != "-") {
        fetched.file = Some(inside(&dir, &dir.join(f))?);
    } else if args.file.is_none() && STDIN_DOCKERFILE.get().is_none() {
        let default = super::dockerfile::default_in(&dir);
        if default.exists() {
            inside(&dir, &default)?;
        }
    }
    for ignore in [".dockerignore", ".containerignore"] {
        if dir.join(ignore).exists() {
            inside(&dir, &dir.join(ignore))?;
        }
    }
    Ok(Some(Fetched {
        args: fetched,
        _scratch: scratch,
    }))
}

/// `path`, checked to resolve (symlinks followed) inside `root`: a
/// context from elsewhere never makes kiln read the host's files.
fn inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let real = std::fs::canonicalize(path)
        .with_context(|| format!("{} is not in the context", display(root, path)))?;
    if !real.starts_with(std::fs::canonicalize(root)?) {
        bail!("{} leads out of the context", display(root, path));
    }
    Ok(path.to_path_buf())
}

fn display(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A tar (plain or compressed) unpacked into `root`, or else a Dockerfile
/// alone with an empty context; the context directory.
fn from_stream(input: &mut dyn Read, root: &Path, file_given: bool) -> Result<PathBuf> {
    std::fs::create_dir(root).with_context(|| format!("create {}", root.display()))?;
    let mut head = Vec::with_capacity(512);
    input.take(512).read_to_end(&mut head)?;
    if !is_archive(&head) {
        if file_given {
            bail!("-f names a file of the context, but the context is a Dockerfile alone");
        }
        let mut text = head;
        input.read_to_end(&mut text)?;
        let text = String::from_utf8(text)
            .map_err(|_| anyhow::anyhow!("neither a tar archive nor a Dockerfile (not UTF-8)"))?;
        let _ = STDIN_DOCKERFILE.set(text);
        return Ok(root.to_path_buf());
    }
    let mut whole = std::io::Cursor::new(head).chain(input);
    // As the files a local context's COPY reads: the tar's owners may
    // not even exist in kiln's id range.
    let opts = kiln_layer::UnpackOptions {
        owner: Some((0, 0)),
        ..Default::default()
    };
    let unpacked = kiln_layer::unpack(&mut whole, root, &opts)?;
    for w in unpacked.warnings {
        say!("kiln: warning: the context archive: {w}");
    }
    Ok(root.to_path_buf())
}

/// A compressed stream, or a tar (`ustar` at its magic's offset).
fn is_archive(head: &[u8]) -> bool {
    match kiln_layer::Format::detect(head) {
        kiln_layer::Format::Tar => head.len() >= 262 && &head[257..262] == b"ustar",
        _ => true,
    }
}

fn download(registry: &RegistryArgs, url: &str, to: &Path) -> Result<()> {
    let client = kiln_registry::Registry::new(kiln_registry::Options {
        insecure: registry.insecure_registries.clone(),
        auth_file: registry.authfile.clone(),
        ..kiln_registry::Options::default()
    })?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(to).with_context(|| format!("create {}", to.display()))?,
    );
    client
        .download(url, &mut out)
        .with_context(|| format!("downloading the context {url}"))?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-ctx-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn symlinks_out_of_the_context_are_refused() {
        let dir = temp("inside");
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink("Dockerfile", dir.join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("out")).unwrap();
        assert!(inside(&dir, &dir.join("alias")).is_ok());
        let err = inside(&dir, &dir.join("out")).unwrap_err().to_string();
        assert!(err.contains("out leads out of the context"), "{err}");
        assert!(inside(&dir, &dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn archives_are_told_from_dockerfiles() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(is_archive(&tar));
        assert!(is_archive(&[0x1f, 0x8b, 8, 0]));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        assert!(!is_archive(b""));
    }
}
