//! Mounts for kiln's own file work: overlays (COPY into a step's upper
//! dir, reading a stage's rootfs for `COPY --from`), and the binds and
//! tmpfs a `RUN --mount` prepares before its step. They are mounted in
//! kiln's private mount namespace — made by [`crate::UserNamespace::enter`]
//! — so nothing leaks to the host, and unmounted when the guard drops. A
//! step started afterwards sees them (its mount namespace is a copy).

use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{self as rm, MountAttrFlags, UnmountFlags};

use crate::syscall::{MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY};

use crate::error::{Context, Result};
use crate::mounts::{self, FsContext};

/// A mount in kiln's namespace (overlay, bind or tmpfs); dropping it
/// unmounts it (lazily, so an fd still open somewhere cannot make the drop
/// fail).
#[derive(Debug)]
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rm::unmount(&self.target, UnmountFlags::DETACH);
    }
}

/// The writable part of an overlay: the upper dir that collects the
/// changes and overlay's work dir (same filesystem, both empty at first).
#[derive(Clone, Copy, Debug)]
pub struct Upper<'a> {
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// Mounts `lowers` (top first) at the existing empty dir `target`, writable
/// through `upper` or read-only without one. `userxattr` as in every step,
/// so whiteouts and opaque dirs have the store's one format.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<Mounted> {
    let fs = FsContext::open("overlay")?;
    for l in lowers {
        fs.set("lowerdir+", l)?;
    }
    // Overlay wants one lower with an upper and two without: empty dirs
    // fill in (FROM scratch, or a read-only view of a one-layer stage).
    // Distinct ones: the same dir twice is refused with ELOOP (a
    // read-only view of an image without layers).
    let needed = if upper.is_some() { 1 } else { 2 };
    for i in lowers.len()..needed {
        let empty = target.with_extension(format!("empty{i}"));
        fs::create_dir_all(&empty).ctx(|| format!("create {}", empty.display()))?;
        fs.set("lowerdir+", &empty)?;
    }
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NODEV;
    match upper {
        Some(u) => {
            fs.set("upperdir", u.upper)?;
            fs.set("workdir", u.work)?;
        }
        None => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
    }
    fs.flag("userxattr")?;
    if upper.is_some() {
        // kiln syncs a layer when it commits it, not at every unmount.
        fs.flag("volatile")?;
    }
    let mnt = fs.mount(attrs)?;
    mounts::attach_at(mnt.as_fd(), target)?;
    Ok(Mounted {
        target: target.to_path_buf(),
    })
}

/// Binds what `source` (an fd of a dir or file, `O_PATH` is enough)
/// refers to at `target` (an existing dir or file of the same kind),
/// nodev; `readonly` makes the whole bound tree read-only. Binding an fd,
/// not a path, keeps a source resolved safely inside some root exactly
/// that.
pub fn bind_fd(source: BorrowedFd<'_>, target: &Path, readonly: bool) -> Result<Mounted> {
    let tree = mounts::clone_tree(source, Path::new(""), true)?;
    let mut attrs = MOUNT_ATTR_NODEV;
    if readonly {
        attrs |= MOUNT_ATTR_RDONLY;
    }
    mounts::set_attrs(tree.as_fd(), attrs, true)?;
    mounts::attach_at(tree.as_fd(), target)?;
    Ok(Mounted {
        target: target.to_path_buf(),
    })
}

/// Mounts a fresh tmpfs (nosuid, nodev; root dir `mode`) at the existing
/// dir `target`: for files that must never reach a disk (secrets).
pub fn mount_tmpfs(target: &Path, mode: u32) -> Result<Mounted> {
    let fs = FsContext::open("tmpfs")?;
    fs.set("mode", format!("{:o}", mode & 0o7777))?;
    let mnt = fs.mount(MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV)?;
    mounts::attach_at(mnt.as_fd(), target)?;
    Ok(Mounted {
        target: target.to_path_buf(),
    })
}
