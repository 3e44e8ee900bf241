//! Helpers over the new mount API (fsopen/fsconfig/fsmount, open_tree,
//! move_mount, mount_setattr) and symlink-safe resolution of paths inside
//! the untrusted rootfs.
//!
//! Every mount target is opened with `openat2(RESOLVE_IN_ROOT)` relative to
//! the rootfs and attached through its fd, so a symlink planted in a layer
//! (`/proc -> /`, `/etc -> /home/user`) cannot redirect a mount to the host.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::mount::{
    self as rm, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use crate::error::{Context, Error, Result};
use crate::syscall;

/// Kind of mount point to create when it is missing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// Read the messages the kernel queued on an fs context (`e overlay: …`);
/// they say much more than the errno.
fn fs_messages(fs: BorrowedFd<'_>) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(String::from_utf8_lossy(&buf[..n]).trim_end());
    }
    out
}

/// A filesystem context being configured (`fsopen`).
pub(crate) struct FsContext {
    fd: OwnedFd,
    fstype: &'static str,
}

impl FsContext {
    pub(crate) fn open(fstype: &'static str) -> Result<FsContext> {
        let fd =
            rm::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).ctx(|| format!("fsopen({fstype})"))?;
        Ok(FsContext { fd, fstype })
    }

    fn fail(&self, what: String, e: rustix::io::Errno) -> Error {
        let msgs = fs_messages(self.fd.as_fd());
        Error::Setup(format!(
            "{} {what}: {}{}",
            self.fstype,
            io::Error::from_raw_os_error(e.raw_os_error()),
            if msgs.is_empty() {
                String::new()
            } else {
                format!(" ({msgs})")
            }
        ))
    }

    pub(crate) fn set(&self, key: &str, value: impl AsRef<Path>) -> Result<()> {
        let value = value.as_ref();
        rm::fsconfig_set_string(&self.fd, key, value)
            .map_err(|e| self.fail(format!("option {key}={}", value.display()), e))
    }

    pub(crate) fn flag(&self, key: &str) -> Result<()> {
        rm::fsconfig_set_flag(&self.fd, key).map_err(|e| self.fail(format!("option {key}"), e))
    }

    /// Create the superblock and return a detached mount of it.
    pub(crate) fn mount(self, attrs: MountAttrFlags) -> Result<OwnedFd> {
        rm::fsconfig_create(&self.fd).map_err(|e| self.fail("create".into(), e))?;
        rm::fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|e| self.fail("fsmount".into(), e))
    }

    /// Like [`FsContext::mount`], but `None` when the kernel refuses the
    /// new superblock with EPERM (a fresh procfs or sysfs is "too
    /// revealing" where the container masks paths of its own).
    pub(crate) fn mount_unless_refused(self, attrs: MountAttrFlags) -> Result<Option<OwnedFd>> {
        match rm::fsconfig_create(&self.fd) {
            Err(e) if crate::degrade::is_eperm(e) => return Ok(None),
            r => r.map_err(|e| self.fail("create".into(), e))?,
        }
        match rm::fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs) {
            Err(e) if crate::degrade::is_eperm(e) => Ok(None),
            r => r.map(Some).map_err(|e| self.fail("fsmount".into(), e)),
        }
    }
}

/// Flags for pseudo filesystems that never need setuid, devices or exec.
pub(crate) fn safe_attrs() -> MountAttrFlags {
    MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC
}

/// A detached copy of the mount tree at `dir/path` (a bind mount not yet
/// attached anywhere).
pub(crate) fn clone_tree(dir: BorrowedFd<'_>, path: &Path, recursive: bool) -> Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if path.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    rm::open_tree(dir, path, flags).ctx(|| format!("bind source {}", path.display()))
}

/// Set mount flags (e.g. read-only) on a mount (tree) fd.
pub(crate) fn set_attrs(mnt: BorrowedFd<'_>, set: u64, recursive: bool) -> Result<()> {
    syscall::mount_setattr(mnt, set, recursive).ctx(|| "mount_setattr")
}

/// Attach a detached mount onto the mount point `target` (an `O_PATH` fd).
pub(crate) fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &Path) -> Result<()> {
    rm::move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .ctx(|| format!("mount on {}", what.display()))
}

/// Attach a detached mount at a host path (used for the overlay root only).
pub(crate) fn attach_at(mnt: BorrowedFd<'_>, target: &Path) -> Result<()> {
    rm::move_mount(
        mnt,
        "",
        rfs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .ctx(|| format!("mount on {}", target.display()))
}

/// `path` inside the rootfs without its leading `/`; `..` is kept (openat2
/// clamps it at the root) but an empty result means the root itself.
pub(crate) fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

/// Open `path` inside `root` as `O_PATH`, resolving symlinks and `..` as if
/// `root` were `/`.
pub(crate) fn resolve(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    let r = rel(path);
    let r = if r.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &r
    };
    rfs::openat2(
        root,
        r,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

/// Resolve `path` inside `root`, creating it (and missing parents) when
/// absent. Created paths are appended to `created` so the caller can remove
/// them after the step: mount points the sandbox invents must not end up in
/// the layer.
pub(crate) fn ensure(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: Kind,
    created: &mut Vec<PathBuf>,
) -> Result<OwnedFd> {
    match resolve(root, path) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("mount point {} in the rootfs", path.display())),
    }
    let r = rel(path);
    let (parent, name) = match (r.parent(), r.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
        _ => {
            return Err(Error::Setup(format!(
                "cannot create mount point {}",
                path.display()
            )))
        }
    };
    let parent_fd = ensure(root, &parent, Kind::Dir, created)?;
    // O_PATH fds cannot be used as a dirfd for mkdirat; reopen as directory.
    let dir = rfs::openat(
        &parent_fd,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", parent.display()))?;
    let made = match kind {
        Kind::Dir => rfs::mkdirat(&dir, &name, Mode::from_raw_mode(0o755)),
        Kind::File => rfs::openat(
            &dir,
            &name,
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
    };
    match made {
        Ok(()) => created.push(PathBuf::from("/").join(&r)),
        // Either a step running beside this one made it in a shared dir (a
        // cache mount) since we looked, or a symlink points nowhere.
        Err(rustix::io::Errno::EXIST) => {
            return resolve(root, path).map_err(|_| {
                Error::Setup(format!(
                    "mount point {} is a dangling symlink in the rootfs",
                    path.display()
                ))
            })
        }
        Err(e) => return Err(e).ctx(|| format!("create mount point {}", path.display())),
    }
    resolve(root, path).ctx(|| format!("mount point {}", path.display()))
}
