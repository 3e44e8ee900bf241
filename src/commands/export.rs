//! `-o/--output` of `kiln build`, in buildx's syntax: the image as a
//! docker-archive, an oci-archive or an OCI layout dir, or the final
//! rootfs as a directory or a tar.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_layer::Compression;
use kiln_sandbox::mount_overlay;
use kiln_store::archive::{self, Kind};
use kiln_store::{Image, Store};

use super::stdio::create;
use crate::build::{copy_rootfs, Attrs};

/// One `-o` destination.
#[derive(Debug, PartialEq)]
pub enum Output {
    DockerArchive(PathBuf),
    OciArchive(PathBuf),
    OciDir(PathBuf),
    /// `type=local`: the rootfs as files, owned by the user running kiln.
    Local(PathBuf),
    /// `type=tar`: the rootfs as one tar.
    Tar(PathBuf),
    /// `type=registry` / `type=image,push=true`: pushed as each `-t` name,
    /// or as the `name=` given here.
    Push(Option<String>),
    /// `type=image` without push: stored under the `-t` names (what every
    /// build does anyway).
    Store,
    /// `--load`: a docker-archive streamed into `podman load`.
    Load,
}

impl Output {
    /// Whether this output needs the image's layer blobs (compressed) in
    /// the store before it runs; archives make theirs as they write (see
    /// `archive::export_streamed`).
    pub fn needs_blobs(&self) -> bool {
        matches!(self, Output::OciDir(_) | Output::Push(_))
    }

    /// Whether this output is written to standard output (`dest=-`).
    fn to_stdout(&self) -> bool {
        match self {
            Output::DockerArchive(p) | Output::OciArchive(p) | Output::Tar(p) => {
                super::stdio::is_stdout(p)
            }
            _ => false,
        }
    }
}

/// Before anything runs: at most one archive on stdout, and never on a
/// terminal. True when one goes there (then `-q` does not print the image
/// ID after it).
pub fn check_stdout(outputs: &[Output]) -> Result<bool> {
    match outputs.iter().filter(|o| o.to_stdout()).count() {
        0 => Ok(false),
        1 => super::stdio::refuse_terminal("-o").map(|()| true),
        _ => bail!("-o: only one output can be written to stdout (dest=-)"),
    }
}

/// `type=docker,dest=FILE`, `type=oci,dest=FILE[,tar=false]`,
/// `type=local,dest=DIR`, `type=tar,dest=FILE`, or a bare `DIR` (local).
/// As buildx: `-` alone is the rootfs as a tar on stdout, and a tar
/// without `dest` (or with `dest=-`) goes to stdout.
pub fn parse_output(spec: &str) -> Result<Output> {
    if spec == "-" {
        return Ok(Output::Tar(PathBuf::from("-")));
    }
    if !spec.contains('=') {
        return Ok(Output::Local(PathBuf::from(spec)));
    }
    let mut kind = None;
    let mut dest = None;
    let mut tar = true;
    let mut push = false;
    let mut name = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("tar", v)) => tar = v != "false",
            Some(("push", v)) => push = v == "true",
            Some(("name", v)) => name = Some(v.to_string()),
            Some((k, _)) => bail!("-o {spec}: unknown field {k:?}"),
            None => bail!("-o {spec}: expected KEY=VALUE fields"),
        }
    }
    match kind.as_deref() {
        Some("registry") => return Ok(Output::Push(name)),
        Some("image") if push => return Ok(Output::Push(name)),
        Some("image") => return Ok(Output::Store),
        _ => {}
    }
    let archive = matches!(kind.as_deref(), Some("docker" | "tar"))
        || (kind.as_deref() == Some("oci") && tar);
    let dest = match dest {
        Some(d) => d,
        None if archive => PathBuf::from("-"),
        None => bail!("-o {spec}: dest= is required"),
    };
    let stdout = super::stdio::is_stdout(&dest);
    match (kind.as_deref(), tar) {
        (Some("docker"), _) => Ok(Output::DockerArchive(dest)),
        (Some("oci"), true) => Ok(Output::OciArchive(dest)),
        (Some("oci"), false) if stdout => {
            bail!("-o {spec}: an OCI layout directory cannot go to stdout (drop tar=false)")
        }
        (Some("oci"), false) => Ok(Output::OciDir(dest)),
        // buildx: a local export to stdout is the same files as a tar.
        (Some("local"), _) if stdout => Ok(Output::Tar(dest)),
        (Some("local"), _) => Ok(Output::Local(dest)),
        (Some("tar"), _) => Ok(Output::Tar(dest)),
        (other, _) => bail!("-o {spec}: unknown type {other:?} (docker, oci, local, tar)"),
    }
}

/// Writes one file output; pushes are the build command's (they need the
/// registry client and progress).
pub fn export(
    store: &Store,
    image: &Image,
    names: &[String],
    output: &Output,
    compression: Compression,
) -> Result<()> {
    let how = |dest: Option<&Path>| super::export_stream::streaming(names, compression, dest);
    match output {
        Output::Push(_) | Output::Store => {}
        Output::Load => {
            let mut f = super::load::sink()?;
            archive::export_streamed(store, image, names, &mut f, Kind::Docker, &how(None))?;
            f.flush().context("streaming the image to podman load")?;
        }
        Output::DockerArchive(p) => {
            let mut f = create(p)?;
            archive::export_streamed(store, image, names, &mut f, Kind::Docker, &how(Some(p)))?;
            f.flush()?;
        }
        Output::OciArchive(p) => {
            let mut f = create(p)?;
            archive::export_streamed(store, image, names, &mut f, Kind::Oci, &how(Some(p)))?;
            f.flush()?;
        }
        Output::OciDir(p) => archive::export_oci_dir(store, image, names, p)?,
        Output::Local(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            with_rootfs(store, image, |root, lowers| {
                // Owned by container root = the user who runs kiln.
                let attrs = Attrs {
                    owner: Some((0, 0)),
                    mode: None,
                };
                copy_rootfs(root, lowers, dir, attrs)
            })?;
        }
        Output::Tar(p) => {
            let mut f = create(p)?;
            with_rootfs(store, image, |root, lowers| {
                let opts = kiln_layer::CaptureOptions {
                    layers: lowers.to_vec(),
                    ..Default::default()
                };
                kiln_layer::capture(root, &mut f, None, &opts)?;
                Ok(())
            })?;
            f.flush()?;
        }
    }
    Ok(())
}

/// Runs `f` on the image's rootfs, mounted read-only.
fn with_rootfs(
    store: &Store,
    image: &Image,
    f: impl FnOnce(&Path, &[PathBuf]) -> Result<()>,
) -> Result<()> {
    let scratch = store.scratch()?;
    let target = scratch.path().join("rootfs");
    std::fs::create_dir(&target)?;
    // The same COPY twice makes two identical layers: each dir goes once.
    let lowers = store.overlay_lowers(image.diff_ids.iter());
    let mount = match mount_overlay(&lowers, None, &target) {
        Ok(m) => m,
        // Nothing can be mounted (`--isolation chroot` in a locked-down
        // container): a copy of the layers, which links to none of them.
        Err(kiln_sandbox::Error::Sys { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            for layer in lowers.iter().rev() {
                kiln_layer::apply_layer_dir(layer, &target)
                    .context("copying the image's rootfs (no overlay can be mounted here)")?;
            }
            return f(&target, &[]);
        }
        Err(e) => return Err(e).context("mounting the image's rootfs"),
    };
    let result = f(mount.path(), &lowers);
    drop(mount);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_output_syntax() {
        assert_eq!(
            parse_output("type=docker,dest=a.tar").unwrap(),
            Output::DockerArchive("a.tar".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false").unwrap(),
            Output::OciDir("d".into())
        );
        assert_eq!(
            parse_output("type=local,dest=out").unwrap(),
            Output::Local("out".into())
        );
        assert_eq!(parse_output("out").unwrap(), Output::Local("out".into()));
        assert_eq!(
            parse_output("type=tar,dest=r.tar").unwrap(),
            Output::Tar("r.tar".into())
        );
        assert_eq!(parse_output("type=registry").unwrap(), Output::Push(None));
        assert_eq!(
            parse_output("type=image,name=h:5000/a:1,push=true").unwrap(),
            Output::Push(Some("h:5000/a:1".into()))
        );
        assert_eq!(parse_output("type=image").unwrap(), Output::Store);
        assert!(parse_output("type=local").is_err());
        assert!(parse_output("type=oci,tar=false,dest=-").is_err());
        assert!(parse_output("type=bogus,dest=x").is_err());
        // buildx: without dest (or with dest=-), archives go to stdout.
        let stdout = || PathBuf::from("-");
        assert_eq!(parse_output("-").unwrap(), Output::Tar(stdout()));
        assert_eq!(
            parse_output("type=docker").unwrap(),
            Output::DockerArchive(stdout())
        );
        assert_eq!(
            parse_output("type=oci").unwrap(),
            Output::OciArchive(stdout())
        );
        assert_eq!(
            parse_output("type=local,dest=-").unwrap(),
            Output::Tar(stdout())
        );
    }
}
