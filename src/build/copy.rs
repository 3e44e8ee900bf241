//! COPY (and ADD of local files): from the context or a stage's read-only
//! rootfs into a stage's rootfs mounted over a fresh upper dir. Paths are
//! resolved inside their roots; sources are expanded with glob patterns;
//! trailing-slash and multiple-source rules are Docker's.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, OFlags};

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

/// One COPY: `sources` (relative to `src`, may hold wildcards) to `dest`
/// (absolute inside `dst`).
pub fn copy(src: &Root, sources: &[String], dst: &Root, dest: &str, attrs: Attrs) -> Result<u64> {
    let mut matched = Vec::new();
    for s in sources {
        let found = glob::expand(src, s)?;
        if found.is_empty() {
            bail!("{s}: no such file or directory in {}", describe(src));
        }
        matched.extend(found);
    }
    let dest_is_dir = dest.ends_with('/')
        || matched.len() > 1
        || dst
            .stat(Path::new(dest), true)
            .is_ok_and(|m| m.kind == FileType::Directory);
    let dest = fsops::relative(Path::new(dest));
    let new_dir_owner = attrs.owner.unwrap_or((0, 0));
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
            count += copy_tree(from.as_fd(), dir.as_fd(), attrs)?;
            continue;
        }
        let target = if dest_is_dir {
            let name = rel.file_name().context("a source names no file")?;
            dest.join(name)
        } else {
            dest.clone()
        };
        let parent = target.parent().unwrap_or(Path::new(""));
        let name = target
            .file_name()
            .context("the destination names no file")?;
        let dir = dst.mkdir_all(parent, 0o755, new_dir_owner)?;
        let from = src.resolve(&rel, OFlags::RDONLY, true)?;
        copy_entry(from.as_fd(), meta, dir.as_fd(), name, attrs)
            .with_context(|| format!("copy {} to /{}", rel.display(), target.display()))?;
        count += 1;
    }
    Ok(count)
}

fn describe(root: &Root) -> String {
    format!("{}", root.name.display())
}

/// Copies the contents of directory `from` into directory `to`.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>, attrs: Attrs) -> Result<u64> {
    let mut count = 0;
    for name in fsops::list(from)? {
        let name = fsops::os(&name);
        let fd = rustix::fs::openat(
            from,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let meta = fsops::meta(fd.as_fd())?;
        let fd = match meta.kind {
            FileType::RegularFile | FileType::Directory => rustix::fs::openat(
                from,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?,
            _ => fd,
        };
        count += match meta.kind {
            FileType::Directory => {
                let existing = fsops::clear_slot(to, name)?;
                if existing.is_none() {
                    rustix::fs::mkdirat(to, name, rustix::fs::Mode::from_raw_mode(0o700))?;
                }
                let sub = rustix::fs::openat(
                    to,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                let n = copy_tree(fd.as_fd(), sub.as_fd(), attrs)?;
                finish(to, name, meta, attrs, false)?;
                n + 1
            }
            _ => {
                copy_entry(fd.as_fd(), meta, to, name, attrs)?;
                1
            }
        };
    }
    Ok(count)
}

/// Copies one non-directory entry (whose fd is `from`) to `dir/name`.
fn copy_entry(
    from: BorrowedFd<'_>,
    meta: Meta,
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    attrs: Attrs,
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
            rustix::fs::mkdirat(dir, name, rustix::fs::Mode::from_raw_mode(0o700))?;
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                rustix::fs::Mode::empty(),
            )?;
            copy_tree(from, sub.as_fd(), attrs)?;
        }
        // Sockets, fifos and devices are not file content: BuildKit skips
        // sockets, and a rootless build cannot make devices.
        _ => return Ok(()),
    }
    finish(dir, name, meta, attrs, meta.kind == FileType::Symlink)
}

fn finish(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    meta: Meta,
    attrs: Attrs,
    symlink: bool,
) -> Result<()> {
    let owner = attrs.owner.unwrap_or((meta.uid, meta.gid));
    let mode = attrs.mode.unwrap_or(meta.mode);
    fsops::set_owner_mode(dir, name, owner, Some(mode), symlink)?;
    fsops::set_mtime(dir, name, meta.mtime)
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
