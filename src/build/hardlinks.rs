//! Hard links within one COPY (and the local export): a source file with
//! more than one link is copied once, and each further name of it that the
//! same walk meets becomes a hard link to that copy, as BuildKit does — so
//! the image holds one inode, not several copies.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use anyhow::Result;
use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;

use super::fsops::{self, Meta};

/// The copies made so far of source files with several links.
#[derive(Default)]
pub struct Links {
    /// (source dev, source inode) → (the copy's path as the kernel names
    /// it — no symlink in it, and only this walk writes there — and how
    /// many more names of the source may still come; the entry goes when
    /// none can). Paths, not fds: a tree of many linked files must not
    /// run out of fds.
    copies: RefCell<HashMap<(u64, u64), (PathBuf, u64)>>,
}

impl Links {
    /// Links `dir/name` to the copy already made of the source `meta`
    /// describes; false when there is none (or the kernel refuses: the
    /// caller copies instead).
    pub fn link(&self, meta: &Meta, dir: BorrowedFd<'_>, name: &OsStr) -> Result<bool> {
        if meta.nlink < 2 {
            return Ok(false);
        }
        let mut copies = self.copies.borrow_mut();
        let key = (meta.dev, meta.ino);
        let Some((copy, left)) = copies.get_mut(&key) else {
            return Ok(false);
        };
        match rfs::linkat(rfs::CWD, copy.as_path(), dir, name, AtFlags::empty()) {
            Ok(()) => {}
            // The copy was replaced since, or has too many links: a new
            // copy it is.
            Err(Errno::NOENT | Errno::MLINK | Errno::XDEV | Errno::PERM) => {
                copies.remove(&key);
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        *left -= 1;
        if *left == 0 {
            copies.remove(&key);
        }
        Ok(true)
    }

    /// `dir/name` is the copy of the source `meta` describes.
    pub fn copied(&self, meta: &Meta, dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
        if meta.nlink < 2 {
            return Ok(());
        }
        let dir_path = rfs::readlink(fsops::proc_path(dir), Vec::new())?;
        let path = PathBuf::from(OsString::from_vec(dir_path.into_bytes())).join(name);
        self.copies
            .borrow_mut()
            .insert((meta.dev, meta.ino), (path, meta.nlink - 1));
        Ok(())
    }
}
