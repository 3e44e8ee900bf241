//! COPY (and ADD of local files): from the context or a stage's read-only
//! rootfs into a stage's rootfs mounted over a fresh upper dir. Paths are
//! resolved inside their roots; sources are expanded with glob patterns;
//! trailing-slash and multiple-source rules are Docker's; the context's
//! `.dockerignore` hides what it excludes.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags};

use super::dockerignore::Ignore;
use super::fsops::{self, Meta, Root};
use super::glob;

/// How copied entries are owned and moded.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    /// `--chown`, or 0:0 for the context; None keeps the source owner.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
}

/// The source paths `sources` name under `src`, minus what `ignore`
/// excludes; a source that matches nothing is an error.
pub fn select(src: &Root, sources: &[String], ignore: Option<&Ignore>) -> Result<Vec<PathBuf>> {
    let mut matched = Vec::new();
    for s in sources {
        let found: Vec<PathBuf> = glob::expand(src, s)?
            .into_iter()
            .filter(|p| ignore.is_none_or(|i| p.as_os_str().is_empty() || !i.excluded(p)))
            .collect();
        if found.is_empty() {
            bail!("{s}: no such file or directory in {}", src.name.display());
        }
        matched.extend(found);
    }
    Ok(matched)
}

/// One COPY: `sources` (relative to `src`, may hold wildcards) to `dest`
/// (absolute inside `dst`). Returns the number of entries written.
pub fn copy(
    src: &Root,
    sources: &[String],
    ignore: Option<&Ignore>,
    dst: &Root,
    dest: &str,
    attrs: Attrs,
) -> Result<u64> {
    let matched = select(src, sources, ignore)?;
    let dest_is_dir = dest.ends_with('/')
        || matched.len() > 1
        || dst
            .stat(Path::new(dest), true)
            .is_ok_and(|m| m.kind == FileType::Directory);
    let dest = fsops::relative(Path::new(dest));
    let new_dir_owner = attrs.owner.unwrap_or((0, 0));
    let walk = Walk { ignore, attrs };
    let mut count = 0;
    for rel in matched {
        let fd = src
            .resolve(&rel, OFlags::PATH, true)
            .with_context(|| format!("{}: cannot open", rel.display()))?;
        let meta = fsops::meta(fd.as_fd())?;
        if meta.kind == FileType::Directory {
            // A directory's contents are copied, not the directory itself.
            let dir = dst.mkdir_all(&dest, 0o755, new_dir_owner)?;
            let from = src.resolve(&rel, OFlags::RDONLY | OFlags::DIRECTORY, true)?;
            count += walk.tree(from.as_fd(), dir.as_fd(), &rel)?;
            continue;
        }
        let target = if dest_is_dir {
            dest.join(rel.file_name().context("a source names no file")?)
        } else {
            dest.clone()
        };
        let parent = target.parent().unwrap_or(Path::new(""));
        let name = target
            .file_name()
            .context("the destination names no file")?;
        let dir = dst.mkdir_all(parent, 0o755, new_dir_owner)?;
        let from = src.resolve(&rel, OFlags::RDONLY, true)?;
        walk.entry(from.as_fd(), meta, dir.as_fd(), name, &rel)
            .with_context(|| format!("copy {} to /{}", rel.display(), target.display()))?;
        count += 1;
    }
    Ok(count)
}

/// Copies a whole rootfs (a mounted image) into the directory `dest`.
pub fn copy_rootfs(root: &Path, dest: &Path, attrs: Attrs) -> Result<()> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let from = open(root).with_context(|| format!("open {}", root.display()))?;
    let to = open(dest).with_context(|| format!("open {}", dest.display()))?;
    Walk {
        ignore: None,
        attrs,
    }
    .tree(from.as_fd(), to.as_fd(), Path::new(""))?;
    Ok(())
}

struct Walk<'a> {
    ignore: Option<&'a Ignore>,
    attrs: Attrs,
}

fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Walk<'_> {
    /// Copies the contents of directory `from` (at `rel` in its root) into
    /// directory `to`.
    fn tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>, rel: &Path) -> Result<u64> {
        let mut count = 0;
        for name in fsops::list(from)? {
            let name = fsops::os(&name);
            let child = rel.join(name);
            let meta = fsops::meta(open_at(from, name, OFlags::PATH)?.as_fd())?;
            let is_dir = meta.kind == FileType::Directory;
            if let Some(i) = self.ignore {
                if i.excluded(&child) && !(is_dir && i.may_reinclude_below(&child)) {
                    continue;
                }
            }
            let fd = match meta.kind {
                FileType::RegularFile | FileType::Directory => open_at(from, name, OFlags::RDONLY)?,
                _ => open_at(from, name, OFlags::PATH)?,
            };
            count += if is_dir {
                if fsops::clear_slot(to, name)?.is_none() {
                    rustix::fs::mkdirat(to, name, Mode::from_raw_mode(0o700))?;
                }
                let sub = open_at(to, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let n = self.tree(fd.as_fd(), sub.as_fd(), &child)?;
                self.finish(to, name, meta, false)?;
                n + 1
            } else {
                self.entry(fd.as_fd(), meta, to, name, &child)?;
                1
            };
        }
        Ok(count)
    }

    /// Copies one entry (whose fd is `from`) to `dir/name`.
    fn entry(
        &self,
        from: BorrowedFd<'_>,
        meta: Meta,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> Result<()> {
        if fsops::clear_slot(dir, name)?.is_some() {
            bail!(
                "{}: cannot overwrite a directory with a file",
                name.to_string_lossy()
            );
        }
        match meta.kind {
            FileType::RegularFile => fsops::copy_file(from, dir, name, meta.mode)?,
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(from, "", Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dir, name)?;
            }
            FileType::Directory => {
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
                let sub = open_at(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                self.tree(from, sub.as_fd(), rel)?;
            }
            // Sockets, fifos and devices are not file content: BuildKit skips
            // sockets, and a rootless build cannot make devices.
            _ => return Ok(()),
        }
        self.finish(dir, name, meta, meta.kind == FileType::Symlink)
    }

    fn finish(&self, dir: BorrowedFd<'_>, name: &OsStr, meta: Meta, symlink: bool) -> Result<()> {
        let owner = self.attrs.owner.unwrap_or((meta.uid, meta.gid));
        let mode = self.attrs.mode.unwrap_or(meta.mode);
        fsops::set_owner_mode(dir, name, owner, Some(mode), symlink)?;
        fsops::set_mtime(dir, name, meta.mtime)
    }
}

/// Where a relative destination lands: under WORKDIR.
pub fn absolute_dest(dest: &str, workdir: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let mut p = PathBuf::from(if workdir.is_empty() { "/" } else { workdir });
    p.push(dest);
    let mut s = p.to_string_lossy().into_owned();
    if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && !s.ends_with('/') {
        s.push('/');
    }
    s
}
