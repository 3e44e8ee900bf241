//! Copying entries between trees with everything a layer records (owner,
//! mode, xattrs but overlay's own, mtime, hard links), fd-relative and
//! never following a symlink: shared by the snapshot diff (tree → upper
//! dir) and by applying layer dirs onto a plain rootfs.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, StatxFlags, Timespec};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::xattrs::{self, Target};

/// An entry's identity and the metadata whose change makes it part of the
/// layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) kind: u16,
    pub(crate) ino: u64,
    pub(crate) dev: (u32, u32),
    /// Birth time where the filesystem reports it: tells a recreated
    /// entry that got the same inode number back.
    pub(crate) btime: Option<(i64, u32)>,
    pub(crate) mode: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) mtime: (i64, u32),
    pub(crate) ctime: (i64, u32),
    pub(crate) rdev: (u32, u32),
    pub(crate) nlink: u32,
}

impl Meta {
    pub(crate) fn of(st: &rfs::Statx) -> Meta {
        let has_btime = st.stx_mask & StatxFlags::BTIME.bits() != 0;
        Meta {
            kind: st.stx_mode & libc::S_IFMT as u16,
            ino: st.stx_ino,
            dev: (st.stx_dev_major, st.stx_dev_minor),
            btime: has_btime.then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec)),
            mode: st.stx_mode & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
            rdev: (st.stx_rdev_major, st.stx_rdev_minor),
            nlink: st.stx_nlink,
        }
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(u32::from(self.kind))
    }

    /// The same file (not a new one at the same path).
    pub(crate) fn same_entry(&self, other: &Meta) -> bool {
        self.kind == other.kind
            && self.ino == other.ino
            && self.dev == other.dev
            && self.btime == other.btime
    }

    /// Anything a layer records differs (ctime covers content, xattrs and
    /// links; the rest guards filesystems with coarse ctimes). `self` is
    /// the entry before the step. A file that only lost links (another
    /// name removed) is unchanged, as overlay leaves it in the lower; one
    /// that gained a link is changed, as overlay copies it up to link it.
    pub(crate) fn changed(&self, after: &Meta) -> bool {
        let fixed = |m: &Meta| (m.mode, m.uid, m.gid, m.size, m.mtime, m.rdev);
        if fixed(self) != fixed(after) {
            return true;
        }
        self.ctime != after.ctime && !(after.nlink < self.nlink && self.kind != DIR)
    }
}

const DIR: u16 = libc::S_IFDIR as u16;

/// Copies entries into the tree at `dst`.
pub(crate) struct Copier {
    /// (dev, inode) of a multiply linked file already copied → its path
    /// under `dst`.
    links: HashMap<((u32, u32), u64), Vec<u8>>,
    dst_root: OwnedFd,
    dst: PathBuf,
}

impl Copier {
    pub(crate) fn new(dst: &Path) -> Result<Copier> {
        Ok(Copier {
            links: HashMap::new(),
            dst_root: open_dir_path(dst)?,
            dst: dst.to_path_buf(),
        })
    }

    /// Copies a non-directory entry (a hard link to its first copy when
    /// the tree shares its inode).
    pub(crate) fn copy(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        path: &Path,
        rel: &[u8],
    ) -> Result<()> {
        let host = self.dst_path(rel);
        if meta.nlink > 1 {
            if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                let first = OsStr::from_bytes(first);
                return rfs::linkat(&self.dst_root, first, dst, name, AtFlags::empty())
                    .map_err(|e| Error::io("link", host, e));
            }
            self.links.insert((meta.dev, meta.ino), rel.to_vec());
        }
        match meta.file_type() {
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let from = rfs::openat(src, name, flags, Mode::empty())
                    .map_err(|e| Error::io("open", path, e))?;
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
                let to = rfs::openat(dst, name, flags, Mode::from_raw_mode(0o600))
                    .map_err(|e| Error::io("create", &host, e))?;
                let (mut from, mut to) = (File::from(from), File::from(to));
                // copy_file_range underneath: a reflink where the fs can.
                std::io::copy(&mut from, &mut to).map_err(|e| Error::io("copy", &host, e))?;
                self.finish(src, dst, name, meta, Some(from.as_fd()), rel)
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(src, name, Vec::new())
                    .map_err(|e| Error::io("readlink", path, e))?;
                rfs::symlinkat(target.as_c_str(), dst, name)
                    .map_err(|e| Error::io("symlink", &host, e))?;
                self.finish(src, dst, name, meta, None, rel)
            }
            FileType::Socket => Ok(()),
            kind => {
                let dev = rfs::makedev(meta.rdev.0, meta.rdev.1);
                rfs::mknodat(dst, name, kind, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| Error::io("mknod", &host, e))?;
                self.finish(src, dst, name, meta, None, rel)
            }
        }
    }

    /// Gives the copy the original's owner, mode, xattrs (overlay's own
    /// left out) and mtime, in the order that keeps each: chown clears
    /// set-id bits and file capabilities, and anything written after the
    /// mtime would move it.
    pub(crate) fn finish(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        open: Option<BorrowedFd<'_>>,
        rel: &[u8],
    ) -> Result<()> {
        let host = self.dst_path(rel);
        let (uid, gid) = (rfs::Uid::from_raw(meta.uid), rfs::Gid::from_raw(meta.gid));
        rfs::chownat(dst, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("chown", &host, e))?;
        if meta.file_type() != FileType::Symlink {
            rfs::chmodat(
                dst,
                name,
                Mode::from_raw_mode(meta.mode.into()),
                AtFlags::empty(),
            )
            .map_err(|e| Error::io("chmod", &host, e))?;
        }
        let bytes = name.as_bytes();
        let from = open.map_or(Target::At(src, bytes), Target::Fd);
        let attrs = match xattrs::read_all(from) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => Vec::new(),
            Err(e) => return Err(Error::io("read xattrs", &host, e)),
        };
        for (key, value) in attrs.iter().filter(|(k, _)| !xattrs::is_overlay(k)) {
            xattrs::set(Target::At(dst, bytes), key, value)
                .map_err(|e| Error::io("set xattr", &host, e))?;
        }
        let mtime = Timespec {
            tv_sec: meta.mtime.0,
            tv_nsec: meta.mtime.1.into(),
        };
        let t = rfs::Timestamps {
            last_access: mtime,
            last_modification: mtime,
        };
        rfs::utimensat(dst, name, &t, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("utimensat", host, e))
    }

    pub(crate) fn dst_path(&self, rel: &[u8]) -> PathBuf {
        self.dst.join(OsStr::from_bytes(rel))
    }
}

pub(crate) fn statx(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    empty: bool,
) -> Result<rfs::Statx> {
    let mut flags = AtFlags::SYMLINK_NOFOLLOW;
    if empty {
        flags |= AtFlags::EMPTY_PATH;
    }
    let mask = StatxFlags::BASIC_STATS | StatxFlags::BTIME;
    rfs::statx(dir, name, flags, mask).map_err(|e| Error::io("stat", path, e))
}

pub(crate) fn open_dir_path(dir: &Path) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rfs::open(dir, flags, Mode::empty()).map_err(|e| Error::io("open", dir, e))
}

pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(dir, name, flags, Mode::empty()).map_err(|e| Error::io("open", path, e))
}
