//! File operations inside a root directory (a mounted stage rootfs or the
//! build context), done fd-relative so that no path — however its symlinks
//! point — resolves outside the root: every lookup is
//! `openat2(RESOLVE_IN_ROOT)` from the root's fd, every create is
//! `*at(parent_fd, name)` with no symlink followed at the last component.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;

/// An open root directory.
pub struct Root {
    fd: OwnedFd,
    /// For messages only.
    pub name: PathBuf,
}

/// Metadata of an entry, as copied.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub kind: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub size: u64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
}

/// Deepest directory nesting the context and COPY walks go into. The copy
/// walk holds two fds per level and the usual fd limit is 1024: deeper
/// trees get this clear error rather than "Too many open files" (BuildKit
/// fails on them too, with "file name too long" once past PATH_MAX).
pub const MAX_WALK_DEPTH: usize = 400;

/// Fails clearly when `rel` (in the tree at `root`) lies deeper than
/// [`MAX_WALK_DEPTH`]; the message shows the path's first levels.
pub fn check_depth(root: &Path, rel: &Path) -> Result<()> {
    if relative(rel).components().count() > MAX_WALK_DEPTH {
        let at: PathBuf = relative(rel).components().take(8).collect();
        bail!(
            "{}/…: directories nested deeper than {MAX_WALK_DEPTH} levels",
            root.join(at).display()
        );
    }
    Ok(())
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", path.display()))?;
        Ok(Root {
            fd,
            name: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` (relative to the root; `..` and absolute symlinks stay
    /// inside it). `follow` decides whether a symlink at the end is followed.
    pub fn resolve(&self, rel: &Path, flags: OFlags, follow: bool) -> io::Result<OwnedFd> {
        let rel = relative(rel);
        let mut flags = flags | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let path: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &rel
        };
        // With `..` in the walk, the kernel answers EAGAIN when any rename
        // or mount happened meanwhile, anywhere (seen under parallel
        // builds); openat2(2) says to retry.
        let mut tries = 0;
        loop {
            match rfs::openat2(&self.fd, path, flags, Mode::empty(), how) {
                Err(rustix::io::Errno::AGAIN) if tries < 64 => tries += 1,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// Metadata of `rel`, symlinks at the end followed or not.
    pub fn stat(&self, rel: &Path, follow: bool) -> io::Result<Meta> {
        let fd = self.resolve(rel, OFlags::PATH, follow)?;
        meta(fd.as_fd())
    }

    /// `mkdir -p rel` inside the root; new directories get `mode` and
    /// `owner`, existing ones are left as they are. Symlinked components
    /// are followed inside the root, as a shell in a chroot would; a
    /// dangling one has its target made (as BuildKit does for COPY and
    /// WORKDIR), that target too resolved inside the root.
    pub fn mkdir_all(&self, rel: &Path, mode: u32, owner: (u32, u32)) -> Result<OwnedFd> {
        self.mkdir_hops(rel, mode, owner, 0)
    }

    fn mkdir_hops(&self, rel: &Path, mode: u32, owner: (u32, u32), hops: u32) -> Result<OwnedFd> {
        let rel = relative(rel);
        let mut done = PathBuf::new();
        let mut dir = self.resolve(Path::new(""), OFlags::PATH | OFlags::DIRECTORY, true)?;
        for comp in rel.components() {
            let name = comp.as_os_str();
            done.push(name);
            match self.resolve(&done, OFlags::PATH | OFlags::DIRECTORY, true) {
                Ok(fd) => dir = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if let Some(target) = self.dangling_target(&done)? {
                        if hops >= MAX_LINK_HOPS {
                            bail!("/{}: too many levels of symbolic links", rel.display());
                        }
                        let rest = rel.strip_prefix(&done).unwrap_or(Path::new(""));
                        return self.mkdir_hops(&target.join(rest), mode, owner, hops + 1);
                    }
                    let parent = self.resolve(parent_of(&done), OFlags::DIRECTORY, true)?;
                    make_dir(parent.as_fd(), name, mode, owner)
                        .with_context(|| format!("mkdir /{}", done.display()))?;
                    dir = self.resolve(&done, OFlags::PATH | OFlags::DIRECTORY, true)?;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    bail!("/{} exists and is not a directory", done.display())
                }
                Err(e) => return Err(e).with_context(|| format!("open /{}", done.display())),
            }
        }
        Ok(dir)
    }
}

/// How many dangling symlinks [`Root::mkdir_all`] follows in a row (the
/// kernel's own limit for a path lookup).
const MAX_LINK_HOPS: u32 = 40;

impl Root {
    /// When `rel` is a symlink (its parent exists): where it points, as a
    /// path below the root — `..` stops at the root, a relative target is
    /// taken from the link's real directory.
    fn dangling_target(&self, rel: &Path) -> Result<Option<PathBuf>> {
        let Ok(link) = self.resolve(rel, OFlags::PATH, false) else {
            return Ok(None);
        };
        if meta(link.as_fd())?.kind != FileType::Symlink {
            return Ok(None);
        }
        let target = rfs::readlinkat(&link, "", Vec::new())?;
        let target = Path::new(OsStr::from_bytes(target.as_bytes()));
        let base = if target.is_absolute() {
            PathBuf::new()
        } else {
            let parent = self.resolve(parent_of(rel), OFlags::PATH | OFlags::DIRECTORY, true)?;
            let real = kernel_path(parent.as_fd())?;
            let root = kernel_path(self.fd())?;
            match real.strip_prefix(&root) {
                Ok(p) => p.to_path_buf(),
                Err(_) => bail!("/{}: its directory is outside the root", rel.display()),
            }
        };
        Ok(Some(lexical(&base.join(target))))
    }
}

/// The path the kernel has for an open file.
fn kernel_path(fd: BorrowedFd<'_>) -> Result<PathBuf> {
    let path = rfs::readlink(proc_path(fd), Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(path.as_bytes())))
}

/// `path` (below a root) with `.` and `..` worked out; `..` at the top
/// stays there, as in the root's own `/`.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `path` without its root and `.` components: relative to a root.
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| {
            !matches!(
                c,
                Component::RootDir | Component::CurDir | Component::Prefix(_)
            )
        })
        .collect()
}

fn parent_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

pub fn meta(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    let st = rfs::fstat(fd)?;
    Ok(Meta {
        kind: FileType::from_raw_mode(st.st_mode),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
        size: st.st_size as u64,
        ino: st.st_ino,
        dev: st.st_dev,
        nlink: st.st_nlink as u64,
    })
}

fn make_dir(parent: BorrowedFd<'_>, name: &OsStr, mode: u32, owner: (u32, u32)) -> Result<()> {
    match rfs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    set_owner_mode(parent, name, owner, Some(mode), false)
}

/// chown (never following a symlink), then chmod: chown clears setuid bits.
pub fn set_owner_mode(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    owner: (u32, u32),
    mode: Option<u32>,
    symlink: bool,
) -> Result<()> {
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(owner.0)),
        Some(rfs::Gid::from_raw(owner.1)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| chown_error(e, owner))?;
    if let (Some(mode), false) = (mode, symlink) {
        rfs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
    }
    Ok(())
}

fn chown_error(e: Errno, owner: (u32, u32)) -> anyhow::Error {
    if e == Errno::INVAL {
        anyhow::anyhow!(
            "cannot chown to {}:{}: that id is not mapped in kiln's user namespace \
             (add a subordinate id range: sudo usermod --add-subuids 100000-165535 \
             --add-subgids 100000-165535 $USER)",
            owner.0,
            owner.1
        )
    } else {
        anyhow::Error::from(e).context(format!("chown {}:{}", owner.0, owner.1))
    }
}

pub fn set_mtime(dir: BorrowedFd<'_>, name: &OsStr, mtime: Timespec) -> Result<()> {
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Removes whatever non-directory is at `dir/name`, so a create does not
/// write through an old symlink.
pub fn clear_slot(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<FileType>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind != FileType::Directory {
                rfs::unlinkat(dir, name, AtFlags::empty())?;
                return Ok(None);
            }
            Ok(Some(kind))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Copies a regular file's bytes (copy_file_range underneath).
pub fn copy_file(src: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<()> {
    let mut from = File::from(src.try_clone_to_owned()?);
    let to = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
    )?;
    let mut to = File::from(to);
    io::copy(&mut from, &mut to)?;
    Ok(())
}

/// Creates the empty regular file `dir/name` (mode 0600 until set).
pub fn create_empty(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(())
}

/// `/proc/self/fd/N`: a path to what an fd of kiln's refers to (an
/// O_PATH fd too), which no symlink can redirect.
pub fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
}

/// Names in a directory, sorted, without `.` and `..`.
pub fn list(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>> {
    Ok(kiln_layer::dir_names(dir)?)
}

pub fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}
