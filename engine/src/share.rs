//! `COPY --from` without copying bytes: a regular file that a COPY takes
//! unchanged (same owner, mode and mtime) from a stage's or an image's
//! layers becomes a hard link to the layer's file in the step's upper dir.
//!
//! Why it is safe: layer dirs are immutable, and overlayfs copies a lower
//! file up before anything writes to it, so no later step writes through
//! the link; a layer's tar is the same either way (the other name is in
//! another layer). Files from the context or a named context dir are
//! never linked: the user may change them.
//!
//! link(2) does not cross from a layer dir into the step's overlay, so the
//! copy walk records each link ([`Linker::defer`]), forcing the copy-up of
//! its directory so that the directory exists in the upper dir as the
//! kernel makes it; [`Linker::apply`] makes the links in the upper dir
//! once the overlay is unmounted. A later write to the same name in the
//! same COPY cancels the link ([`Linker::cancel`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec};
use rustix::io::Errno;

use super::copy::Attrs;
use super::fsops::{self, Meta, Root};

/// The layer dirs under a read-only overlay, to tell which layer a file
/// the overlay shows comes from.
pub struct Layers {
    /// Top first.
    fds: Vec<OwnedFd>,
    /// Where they are mounted (as the kernel names it).
    source: PathBuf,
}

impl Layers {
    /// `layers` (top first), mounted as the overlay `source` is open at.
    pub fn open(layers: &[PathBuf], source: BorrowedFd<'_>) -> Result<Self> {
        let fds = layers
            .iter()
            .map(|l| {
                rfs::open(
                    l,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("open {}", l.display()))
            })
            .collect::<Result<_>>()?;
        Ok(Layers {
            fds,
            source: kernel_path(source)?,
        })
    }

    /// The topmost layer holding the path the overlay shows as `from`: its
    /// index, the path in it, and the entry there.
    pub fn topmost(&self, from: BorrowedFd<'_>) -> Result<Option<(usize, PathBuf, OwnedFd)>> {
        Ok(match self.path_of(from)? {
            Some(rel) => self.topmost_at(&rel),
            None => None,
        })
    }

    /// The path the overlay shows `from` at (None when it is not in it).
    pub fn path_of(&self, from: BorrowedFd<'_>) -> Result<Option<PathBuf>> {
        Ok(kernel_path(from)?
            .strip_prefix(&self.source)
            .map(Path::to_path_buf)
            .ok())
    }

    /// The topmost layer holding `rel` (a path the overlay shows, from
    /// [`Layers::path_of`]): its index, the path, and the entry there.
    pub fn topmost_at(&self, rel: &Path) -> Option<(usize, PathBuf, OwnedFd)> {
        for (i, layer) in self.fds.iter().enumerate() {
            match beneath(layer.as_fd(), rel, OFlags::PATH) {
                Ok(fd) => return Some((i, rel.to_path_buf(), fd)),
                Err(Errno::NOENT) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

/// Records and makes the links of one COPY from layers.
pub struct Linker {
    layers: Layers,
    /// The destination root's path (the step's overlay, or its upper dir).
    dest: PathBuf,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// (directory below the destination root, name) → (index of the layer,
    /// path of the file in it).
    pending: BTreeMap<(PathBuf, OsString), (usize, PathBuf)>,
    /// Directories whose mtime the copy set: linking into them must not
    /// change it.
    stamped: HashMap<PathBuf, Timespec>,
    /// Directories already copied up.
    up: HashSet<PathBuf>,
    /// (dev, inode) of a linked file with several names → its layer: one
    /// inode can be in several layers (a file linked by an earlier COPY),
    /// whose files are not links of each other.
    layer_of: HashMap<(u64, u64), usize>,
}

impl Linker {
    /// For a COPY reading `source` (the read-only overlay of `layers`,
    /// top first) and writing into `dest`.
    pub fn new(layers: &[PathBuf], source: &Root, dest: &Root) -> Result<Self> {
        Ok(Linker {
            layers: Layers::open(layers, source.fd())?,
            dest: kernel_path(dest.fd())?,
            state: RefCell::default(),
        })
    }

    /// Records that the regular file with `meta`, which the source overlay
    /// shows at `source` (None: not in it), goes to `slot` (empty) as a
    /// link; false when it must be copied: its owner or mode changes, or
    /// its layer file is not found. The caller works the paths out once
    /// per directory: a readlink of /proc/self/fd per file was a third of
    /// the cost of a COPY of many small files.
    pub fn defer(
        &self,
        source: Option<&Path>,
        meta: &Meta,
        attrs: Attrs<'_>,
        slot: Slot<'_>,
    ) -> Result<bool> {
        let unchanged = attrs.owner.is_none_or(|o| o == (meta.uid, meta.gid))
            && attrs.mode_of(meta.mode, false) == meta.mode;
        if !unchanged {
            return Ok(false);
        }
        let Some(found) = source.and_then(|s| self.layer_file(s, meta).transpose()) else {
            return Ok(false);
        };
        let found = found?;
        let (dir, dir_rel, name) = (slot.dir, slot.dir_rel.to_path_buf(), slot.name);
        let mut state = self.state.borrow_mut();
        if meta.nlink > 1 {
            let layer = *state
                .layer_of
                .entry((meta.dev, meta.ino))
                .or_insert(found.0);
            if layer != found.0 {
                return Ok(false);
            }
        }
        if state.up.insert(dir_rel.clone()) {
            copy_up(dir)?;
        }
        state.pending.insert((dir_rel, name.to_owned()), found);
        Ok(true)
    }

    /// Something else is written to `dir/name`: no link goes there.
    pub fn cancel(&self, slot: Slot<'_>) {
        let mut state = self.state.borrow_mut();
        if !state.pending.is_empty() {
            let key = (slot.dir_rel.to_path_buf(), slot.name.to_owned());
            state.pending.remove(&key);
        }
    }

    /// The copy set the mtime of the directory `slot`.
    pub fn stamp(&self, slot: Slot<'_>, mtime: Timespec) {
        let path = slot.dir_rel.join(slot.name);
        self.state.borrow_mut().stamped.insert(path, mtime);
    }

    /// Makes the recorded links in `upper` (the overlay is unmounted); a
    /// file the kernel will not link (another filesystem, too many links)
    /// is copied. Returns the number of links made.
    pub fn apply(&self, upper: &Path) -> Result<u64> {
        let state = self.state.borrow();
        let upper = Root::open(upper)?;
        let entries: Vec<_> = state.pending.iter().collect();
        let mut links = 0;
        // Entries are sorted by directory: each is opened once.
        for group in entries.chunk_by(|a, b| a.0 .0 == b.0 .0) {
            let dir_rel = &group[0].0 .0;
            let dir = beneath(upper.fd(), dir_rel, OFlags::RDONLY | OFlags::DIRECTORY)
                .with_context(|| format!("open /{} in the upper dir", dir_rel.display()))?;
            for ((_, name), (layer, file)) in group {
                let src = beneath(self.layers.fds[*layer].as_fd(), file, OFlags::PATH)
                    .with_context(|| format!("open {} in its layer", file.display()))?;
                clear_whiteout(dir.as_fd(), name)?;
                if link(src.as_fd(), dir.as_fd(), name)? {
                    links += 1;
                } else {
                    copy_instead(src.as_fd(), dir.as_fd(), name)
                        .with_context(|| format!("copy /{}", dir_rel.join(name).display()))?;
                }
            }
            restore_mtime(&state, dir_rel, dir.as_fd())?;
        }
        Ok(links)
    }

    /// The layer and path of the file the overlay shows as `from`: the
    /// topmost layer holding the path, if it holds that very inode.
    fn layer_file(&self, source: &Path, meta: &Meta) -> Result<Option<(usize, PathBuf)>> {
        let Some((i, rel, fd)) = self.layers.topmost_at(source) else {
            return Ok(None);
        };
        let here = fsops::meta(fd.as_fd())?;
        // Overlayfs over one filesystem shows a lower file's own inode
        // number; the rest guards against anything else.
        let same = here.kind == FileType::RegularFile
            && here.ino == meta.ino
            && here.size == meta.size
            && (here.uid, here.gid, here.mode) == (meta.uid, meta.gid, meta.mode)
            && (here.mtime.tv_sec, here.mtime.tv_nsec) == (meta.mtime.tv_sec, meta.mtime.tv_nsec);
        Ok(same.then_some((i, rel)))
    }

    /// The source's layers.
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// `dir`'s path below the destination root.
    pub fn dest_rel(&self, dir: BorrowedFd<'_>) -> Result<PathBuf> {
        let path = kernel_path(dir)?;
        match path.strip_prefix(&self.dest) {
            Ok(rel) => Ok(rel.to_path_buf()),
            Err(_) => bail!("{} is outside the destination", path.display()),
        }
    }
}

/// A name in a destination directory, with the directory's path below
/// the destination root ([`Linker::dest_rel`]).
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    pub dir: BorrowedFd<'a>,
    pub dir_rel: &'a Path,
    pub name: &'a OsStr,
}

/// The path the kernel has for an open file.
fn kernel_path(fd: BorrowedFd<'_>) -> Result<PathBuf> {
    let link = fsops::proc_path(fd);
    let path =
        rfs::readlink(&link, Vec::new()).with_context(|| format!("readlink {}", link.display()))?;
    Ok(PathBuf::from(OsString::from_vec(path.into_bytes())))
}

/// Opens `rel` below `dir` through real directories only: no symlink, no
/// `..` out, no mount crossed.
fn beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let how = ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV;
    let path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rfs::openat2(
        dir,
        path,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    )
}

/// Makes overlayfs copy the directory `dir` up (a chmod to its own mode
/// changes nothing else), so it is in the upper dir for the links.
fn copy_up(dir: BorrowedFd<'_>) -> Result<()> {
    let mode = fsops::meta(dir)?.mode;
    rfs::chmod(fsops::proc_path(dir), Mode::from_raw_mode(mode))
        .context("copy-up of the destination dir")?;
    Ok(())
}

/// Removes the whiteout a replaced lower file left at `dir/name`.
fn clear_whiteout(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                && st.st_rdev == 0 =>
        {
            rfs::unlinkat(dir, name, AtFlags::empty())?;
            Ok(())
        }
        Ok(_) => bail!("{}: already in the upper dir", Path::new(name).display()),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Links the file `src` as `dir/name`; false when the kernel refuses for a
/// reason a copy does not have.
fn link(src: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &OsStr) -> Result<bool> {
    match rfs::linkat(
        rfs::CWD,
        fsops::proc_path(src),
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => Ok(true),
        Err(Errno::XDEV | Errno::MLINK | Errno::PERM) => Ok(false),
        Err(e) => {
            Err(anyhow::Error::from(e).context(format!("link {}", Path::new(name).display())))
        }
    }
}

/// The file `src` copied to `dir/name` with its owner, mode and mtime.
fn copy_instead(src: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    let file = rfs::open(
        fsops::proc_path(src),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let meta = fsops::meta(file.as_fd())?;
    fsops::copy_file(file.as_fd(), dir, name, meta.mode)?;
    fsops::set_owner_mode(dir, name, (meta.uid, meta.gid), Some(meta.mode), false)?;
    fsops::set_mtime(dir, name, meta.mtime)
}

/// Puts back the mtime the copy gave `dir` before the links touched it.
fn restore_mtime(state: &State, rel: &Path, dir: BorrowedFd<'_>) -> Result<()> {
    if let Some(mtime) = state.stamped.get(rel) {
        let times = rfs::Timestamps {
            last_access: *mtime,
            last_modification: *mtime,
        };
        rfs::futimens(dir, &times)?;
    }
    Ok(())
}
