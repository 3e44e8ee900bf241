//! Snapshot diff: the layer of a step that changed a plain directory tree
//! in place (no overlay mount possible, e.g. a locked-down CI container).
//!
//! [`Snapshot::take`] records every entry's identity (inode, birth time,
//! type) and metadata (mode, owner, size, mtime, ctime, rdev) before the
//! step; [`Snapshot::diff`] walks the tree after it and writes what
//! changed into an empty dir *in overlay's upper-dir form*, so that
//! [`crate::capture`] turns it into the same layer an overlay step would
//! have given:
//! * a new or changed entry is copied whole (content, owner, mode,
//!   xattrs, mtime), a directory holding one is copied with its own
//!   metadata (overlay copies parents up);
//! * a deleted entry becomes a whiteout (char 0:0, or overlay's
//!   xwhiteout where mknod is refused);
//! * a directory that replaced another entry (other inode or birth time)
//!   is opaque and copied whole, as overlay marks a dir made over a
//!   whiteout;
//! * entries sharing an inode in the tree are hard links in the output.
//!
//! Content is never hashed: any write, chmod, chown, xattr or link change
//! moves ctime, which no process can set. So that a change in the same
//! clock tick as the snapshot still moves it, `take` returns only once
//! the kernel's coarse clock has passed every ctime it recorded.
//! Mount points (another st_dev than the root) are neither entered nor
//! captured.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::capture::names;
use crate::error::{Error, Result};
use crate::treecopy::{open_dir_at, open_dir_path, statx, Copier, Meta};
use crate::xattrs::{self, Target};

/// Deepest directory nesting walked (one open fd per level).
const MAX_DEPTH: usize = 512;
/// Longest wait for the clock to pass the tree's ctimes (a clock stepped
/// back, or files stamped in the future, must not hang the build).
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// One recorded entry; `children` is Some for a directory that was walked.
#[derive(Debug)]
struct Node {
    meta: Meta,
    children: Option<BTreeMap<Vec<u8>, Node>>,
}

/// The state of a directory tree at one moment. Memory grows with the
/// number of entries (/usr of a Debian host, 134k entries: 59 MB peak).
#[derive(Debug)]
pub struct Snapshot {
    root: Node,
}

impl Snapshot {
    /// Records the tree at `root` (never following a symlink, not entering
    /// mount points), then waits until a change made from now on is sure
    /// to move the ctime of what it changes.
    pub fn take(root: &Path) -> Result<Snapshot> {
        let fd = open_dir_path(root)?;
        let st = statx(fd.as_fd(), OsStr::new(""), root, true)?;
        let meta = Meta::of(&st);
        let mut latest = meta.ctime;
        let children = record(fd.as_fd(), meta.dev, root, 0, &mut latest)?;
        settle(latest);
        Ok(Snapshot {
            root: Node {
                meta,
                children: Some(children),
            },
        })
    }

    /// Writes what changed in `root` since the snapshot into `upper` (an
    /// existing empty dir), in overlay's upper-dir form. Returns whether
    /// anything changed (else `upper` is left empty). The walk only reads;
    /// the upper dir gets just the changes and the dirs holding them.
    pub fn diff(&self, root: &Path, upper: &Path) -> Result<bool> {
        let src = open_dir_path(root)?;
        let mut d = Differ {
            dev: self.root.meta.dev,
            changes: Vec::new(),
        };
        let empty = BTreeMap::new();
        let before = self.root.children.as_ref().unwrap_or(&empty);
        d.dir(src.as_fd(), Some(before), root, &mut Vec::new(), 0)?;
        write_changes(&d.changes, &src, root, upper)?;
        Ok(!d.changes.is_empty())
    }
}

/// Records the entries of `dir`, recursing into directories of the same
/// filesystem; `latest` collects the newest ctime seen.
fn record(
    dir: BorrowedFd<'_>,
    dev: (u32, u32),
    path: &Path,
    depth: usize,
    latest: &mut (i64, u32),
) -> Result<BTreeMap<Vec<u8>, Node>> {
    if depth > MAX_DEPTH {
        return Err(Error::io("walk", path, Errno::LOOP));
    }
    let mut out = BTreeMap::new();
    for name in names(dir).map_err(|e| Error::io("list", path, e))? {
        let os = OsStr::from_bytes(&name);
        let child = path.join(os);
        let meta = Meta::of(&statx(dir, os, &child, false)?);
        *latest = (*latest).max(meta.ctime);
        let children = if meta.file_type() == FileType::Directory && meta.dev == dev {
            let fd = open_dir_at(dir, os, &child)?;
            Some(record(fd.as_fd(), dev, &child, depth + 1, latest)?)
        } else {
            None
        };
        out.insert(name, Node { meta, children });
    }
    Ok(out)
}

/// Sleeps until CLOCK_REALTIME_COARSE (what file times are taken from)
/// is past `latest`, at most [`MAX_SETTLE`].
fn settle(latest: (i64, u32)) {
    let start = std::time::Instant::now();
    loop {
        let now = coarse_now();
        if now > latest || start.elapsed() > MAX_SETTLE {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn coarse_now() -> (i64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// What the walk found, in post-order (a dir after its contents).
enum Change {
    /// Deleted: a whiteout.
    Gone,
    /// New or changed (a dir: holding changes, or its own metadata
    /// changed); `opaque` for a dir made where something else was.
    Entry { meta: Meta, opaque: bool },
}

/// The walk after the step.
struct Differ {
    dev: (u32, u32),
    changes: Vec<(Vec<u8>, Change)>,
}

impl Differ {
    /// Compares directory `src` (at `rel` in the tree) with `before`
    /// (None for a directory that is new as a whole). Returns whether
    /// anything in it changed.
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        before: Option<&BTreeMap<Vec<u8>, Node>>,
        path: &Path,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(Error::io("walk", path, Errno::LOOP));
        }
        let after = names(src).map_err(|e| Error::io("list", path, e))?;
        let mut changed = false;
        for name in &after {
            let os = OsStr::from_bytes(name);
            let child = path.join(os);
            let meta = Meta::of(&statx(src, os, &child, false)?);
            let old = before.and_then(|b| b.get(name));
            let len = push(rel, name);
            changed |= self.entry(src, os, meta, old, &child, rel, depth)?;
            rel.truncate(len);
        }
        for name in before.into_iter().flat_map(|b| b.keys()) {
            if after.binary_search(name).is_err() {
                let len = push(rel, name);
                self.changes.push((rel.clone(), Change::Gone));
                rel.truncate(len);
                changed = true;
            }
        }
        Ok(changed)
    }

    /// One entry of the tree after the step; returns whether it changed.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        name: &OsStr,
        meta: Meta,
        old: Option<&Node>,
        path: &Path,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<bool> {
        if meta.dev != self.dev {
            // A mount point: not part of the tree.
            return Ok(false);
        }
        if meta.file_type() != FileType::Directory {
            let changed = old.map_or(true, |o| !o.meta.same_entry(&meta) || o.meta.changed(&meta));
            if changed {
                let opaque = false;
                self.changes
                    .push((rel.clone(), Change::Entry { meta, opaque }));
            }
            return Ok(changed);
        }
        let kept = old.filter(|o| o.meta.same_entry(&meta) && o.children.is_some());
        let sub = open_dir_at(src, name, path)?;
        let children = kept.and_then(|o| o.children.as_ref());
        let inner = self.dir(sub.as_fd(), children, path, rel, depth + 1)?;
        if !inner && kept.is_some_and(|o| !o.meta.changed(&meta)) {
            return Ok(false);
        }
        // Made where something else was: overlay marks it opaque.
        let opaque = old.is_some() && kept.is_none();
        self.changes
            .push((rel.clone(), Change::Entry { meta, opaque }));
        Ok(true)
    }
}

/// Appends `/name` (or `name` at the top) to `rel`; returns the old length.
fn push(rel: &mut Vec<u8>, name: &[u8]) -> usize {
    let len = rel.len();
    if !rel.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name);
    len
}

/// Makes `changes` (post-order) real under `upper`: parents made as
/// needed, each entry copied from `root`, a dir's own metadata set after
/// its contents.
fn write_changes(
    changes: &[(Vec<u8>, Change)],
    src_root: &OwnedFd,
    root: &Path,
    upper: &Path,
) -> Result<()> {
    let mut out = Copier::new(upper)?;
    let dst_root = open_dir_path(upper)?;
    let mut made: HashSet<Vec<u8>> = HashSet::new();
    for (rel, change) in changes {
        let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&rel[..0], &rel[..]),
        };
        let name = OsStr::from_bytes(name);
        let dst = make_parents(&dst_root, parent, &mut made, upper)?;
        let src = open_beneath(src_root, parent, root)?;
        let path = root.join(OsStr::from_bytes(rel));
        match change {
            Change::Gone => whiteout(dst.as_fd(), name, &path)?,
            Change::Entry { meta, opaque } if meta.file_type() == FileType::Directory => {
                if made.insert(rel.clone()) {
                    rfs::mkdirat(&dst, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| Error::io("mkdir", out.dst_path(rel), e))?;
                }
                let sub_src = open_dir_at(src.as_fd(), name, &path)?;
                if *opaque {
                    let sub_dst = open_dir_at(dst.as_fd(), name, &out.dst_path(rel))?;
                    set_opaque(sub_dst.as_fd())
                        .map_err(|e| Error::io("opaque", out.dst_path(rel), e))?;
                }
                out.finish(
                    src.as_fd(),
                    dst.as_fd(),
                    name,
                    meta,
                    Some(sub_src.as_fd()),
                    rel,
                )?;
            }
            Change::Entry { meta, .. } => {
                out.copy(src.as_fd(), dst.as_fd(), name, meta, &path, rel)?
            }
        }
    }
    Ok(())
}

/// Opens `rel` under `upper`, making each missing dir (0700 until its own
/// entry sets its metadata).
fn make_parents(
    upper_fd: &OwnedFd,
    rel: &[u8],
    made: &mut HashSet<Vec<u8>>,
    upper: &Path,
) -> Result<OwnedFd> {
    let mut at = 0;
    while at < rel.len() {
        let end = rel[at..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(rel.len(), |i| at + i);
        if made.insert(rel[..end].to_vec()) {
            let parent = open_beneath(upper_fd, &rel[..at.saturating_sub(1)], upper)?;
            let name = OsStr::from_bytes(&rel[at..end]);
            rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                .map_err(|e| Error::io("mkdir", upper.join(OsStr::from_bytes(&rel[..end])), e))?;
        }
        at = end + 1;
    }
    open_beneath(upper_fd, rel, upper)
}

/// Opens the dir `rel` below `root`, following no symlink.
fn open_beneath(root: &OwnedFd, rel: &[u8], path: &Path) -> Result<OwnedFd> {
    let rel = if rel.is_empty() { b".".as_slice() } else { rel };
    let how = rfs::ResolveFlags::BENEATH | rfs::ResolveFlags::NO_SYMLINKS;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rfs::openat2(root, OsStr::from_bytes(rel), flags, Mode::empty(), how)
        .map_err(|e| Error::io("open", path.join(OsStr::from_bytes(rel)), e))
}

/// Overlay's whiteout for a deleted `name`: a char device 0:0, or where
/// mknod is refused an xwhiteout (an empty file flagged by xattr).
fn whiteout(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
    match rfs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0) {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
            let fd = rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| Error::io("create whiteout", path, e))?;
            xattrs::set(Target::Fd(fd.as_fd()), b"user.overlay.whiteout", b"y")
                .map_err(|e| Error::io("whiteout xattr", path, e))
        }
        Err(e) => Err(Error::io("mknod whiteout", path, e)),
    }
}

/// Marks an upper dir opaque, as overlay does (user xattr first: it needs
/// no CAP_SYS_ADMIN; trusted where user xattrs are not supported).
fn set_opaque(dir: BorrowedFd<'_>) -> std::io::Result<()> {
    xattrs::set(Target::Fd(dir), b"user.overlay.opaque", b"y")
        .or_else(|_| xattrs::set(Target::Fd(dir), b"trusted.overlay.opaque", b"y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_once_the_clock_is_past_every_recorded_ctime() {
        let dir = std::env::temp_dir().join(format!("kiln-settle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        for round in 0..20 {
            let file = dir.join(round.to_string());
            std::fs::write(&file, "x").unwrap();
            let snap = Snapshot::take(&dir).unwrap();
            let now = coarse_now();
            let children = snap.root.children.as_ref().unwrap();
            let ctime = children[round.to_string().as_bytes()].meta.ctime;
            // A change made now gets a ctime of at least `now`: it differs.
            assert!(now > ctime, "round {round}: {now:?} <= {ctime:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
