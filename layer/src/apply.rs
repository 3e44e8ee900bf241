//! Applying layer dirs onto a plain directory: what an overlay mount of
//! the layers would show, made real, for a mode where nothing can be
//! mounted. Whiteouts remove, opaque dirs are emptied first, everything
//! else is copied (never linked: a step changing the rootfs in place must
//! not reach the store's layer files). fd-relative, never following a
//! symlink in the rootfs: a symlink where the layer has a dir is replaced,
//! not written through.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode};
use rustix::io::Errno;

use crate::capture::names;
use crate::error::{Error, Result};
use crate::extract::clear;
use crate::treecopy::{open_dir_at, open_dir_path, statx, Copier, Meta};
use crate::xattrs::{self, Target};

/// Deepest directory nesting applied (one open fd per level on each side).
const MAX_DEPTH: usize = 512;

const OPAQUE: [&[u8]; 2] = [b"user.overlay.opaque", b"trusted.overlay.opaque"];
const XWHITEOUT: [&[u8]; 2] = [b"user.overlay.whiteout", b"trusted.overlay.whiteout"];

/// Applies the layer dir `layer` (overlay form: whiteouts as char 0:0 or
/// xwhiteouts, opaque dirs by xattr) onto the tree at `root`. Applying a
/// stage's layers bottom first gives the tree their overlay shows.
pub fn apply_layer_dir(layer: &Path, root: &Path) -> Result<()> {
    copy_tree(layer, root, &|_, _| false)
}

/// [`apply_layer_dir`] leaving out every entry (and what is below it) for
/// which `skip(path below src, is_dir)` holds: a filtered copy of a plain
/// tree (a build context without its `.dockerignore`d entries) where no
/// overlay can hide them.
pub fn copy_tree(src: &Path, dst: &Path, skip: &dyn Fn(&Path, bool) -> bool) -> Result<()> {
    let from = open_dir_path(src)?;
    let to = open_dir_path(dst)?;
    let mut out = Copier::new(dst)?;
    let mut walk = Walk {
        out: &mut out,
        skip,
    };
    walk.dir(from.as_fd(), to.as_fd(), src, &mut Vec::new(), 0)
}

/// One apply or copy: where entries go and which are left out.
struct Walk<'a> {
    out: &'a mut Copier,
    skip: &'a dyn Fn(&Path, bool) -> bool,
}

impl Walk<'_> {
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        path: &Path,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::io("walk", path, Errno::LOOP));
        }
        for name in names(src).map_err(|e| Error::io("list", path, e))? {
            let os = OsStr::from_bytes(&name);
            let child = path.join(os);
            let meta = Meta::of(&statx(src, os, &child, false)?);
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            let is_dir = meta.file_type() == FileType::Directory;
            let done = if (self.skip)(Path::new(OsStr::from_bytes(rel)), is_dir) {
                Ok(())
            } else {
                self.entry(src, dst, os, &meta, &child, rel, depth)
            };
            rel.truncate(len);
            done?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        path: &Path,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        let out = &mut *self.out;
        let host = out.dst_path(rel);
        if is_whiteout(src, name, meta) {
            return clear(dst, name).map_err(|e| Error::io("remove", host, e));
        }
        let existing = match statx(dst, name, &host, false) {
            Ok(st) => Some(Meta::of(&st).file_type()),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if meta.file_type() != FileType::Directory {
            if existing.is_some() {
                clear(dst, name).map_err(|e| Error::io("remove", &host, e))?;
            }
            return out.copy(src, dst, name, meta, path, rel);
        }
        let sub_src = open_dir_at(src, name, path)?;
        match existing {
            Some(FileType::Directory) => {
                if has_xattr(Target::Fd(sub_src.as_fd()), &OPAQUE, Some(b"y")) {
                    let d = open_dir_at(dst, name, &host)?;
                    for n in names(d.as_fd()).map_err(|e| Error::io("list", &host, e))? {
                        clear(d.as_fd(), OsStr::from_bytes(&n)).map_err(|e| {
                            Error::io("remove", host.join(OsStr::from_bytes(&n)), e)
                        })?;
                    }
                }
            }
            other => {
                if other.is_some() {
                    clear(dst, name).map_err(|e| Error::io("remove", &host, e))?;
                }
                rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| Error::io("mkdir", &host, e))?;
            }
        }
        let sub_dst = open_dir_at(dst, name, &host)?;
        if existing == Some(FileType::Directory) {
            drop_xattrs(sub_src.as_fd(), sub_dst.as_fd())
                .map_err(|e| Error::io("xattrs", &host, e))?;
        }
        self.dir(sub_src.as_fd(), sub_dst.as_fd(), path, rel, depth + 1)?;
        self.out
            .finish(src, dst, name, meta, Some(sub_src.as_fd()), rel)
    }
}

/// Removes the xattrs of the rootfs dir `dst` that the layer's `src`
/// lacks: overlay shows the upper dir's xattrs alone.
fn drop_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> std::io::Result<()> {
    let keep = match xattrs::list(Target::Fd(src)) {
        Ok(k) => k,
        Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => Vec::new(),
        Err(e) => return Err(e),
    };
    let have = match xattrs::list(Target::Fd(dst)) {
        Ok(h) => h,
        Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => return Ok(()),
        Err(e) => return Err(e),
    };
    for k in have.iter().filter(|k| !keep.contains(k)) {
        xattrs::remove(dst, k)?;
    }
    Ok(())
}

fn is_whiteout(dir: BorrowedFd<'_>, name: &OsStr, meta: &Meta) -> bool {
    match meta.file_type() {
        FileType::CharacterDevice => meta.rdev == (0, 0),
        FileType::RegularFile if meta.size == 0 => {
            has_xattr(Target::At(dir, name.as_bytes()), &XWHITEOUT, None)
        }
        _ => false,
    }
}

/// Whether `t` has one of `keys` (with `value`, if given).
fn has_xattr(t: Target<'_>, keys: &[&[u8]], value: Option<&[u8]>) -> bool {
    keys.iter()
        .any(|k| matches!(xattrs::get(t, k), Ok(v) if value.map_or(true, |want| v == want)))
}
