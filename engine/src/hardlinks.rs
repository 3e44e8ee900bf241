//! Hard links within one COPY (and the local export): a source file with
//! more than one link is copied once, and each further name of it that the
//! same walk meets becomes a hard link to that copy, as BuildKit does — so
//! the image holds one inode, not several copies. Over layers, names are
//! links only within one layer: layers can share an inode (see share.rs)
//! without their files being links of each other.

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
use super::share::Layers;

/// The copies made so far of source files with several links.
#[derive(Default)]
pub struct Links<'a> {
    /// The layers under the source, when it is an overlay of them.
    layers: Option<&'a Layers>,
    /// (source dev, source inode, its layer) → (the copy's path as the kernel names
    /// it — no symlink in it, and only this walk writes there — and how
    /// many more names of the source may still come; the entry goes when
    /// none can). Paths, not fds: a tree of many linked files must not
    /// run out of fds.
    copies: RefCell<HashMap<Key, (PathBuf, u64)>>,
}

/// A source file's (dev, inode, layer).
type Key = (u64, u64, Option<usize>);

impl<'a> Links<'a> {
    /// For a source that is an overlay of `layers`.
    pub fn over(layers: Option<&'a Layers>) -> Self {
        Links {
            layers,
            copies: RefCell::default(),
        }
    }

    fn key(&self, from: BorrowedFd<'_>, meta: &Meta) -> Result<Key> {
        let layer = match self.layers {
            Some(layers) => layers.topmost(from)?.map(|(i, _, _)| i),
            None => None,
        };
        Ok((meta.dev, meta.ino, layer))
    }

    /// Links `dir/name` to the copy already made of the source `from`
    /// (`meta` describes it); false when there is none (or the kernel
    /// refuses: the caller copies instead).
    pub fn link(
        &self,
        from: BorrowedFd<'_>,
        meta: &Meta,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<bool> {
        if meta.nlink < 2 {
            return Ok(false);
        }
        let key = self.key(from, meta)?;
        let mut copies = self.copies.borrow_mut();
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

    /// `dir/name` is the copy of the source `from` (`meta` describes it).
    pub fn copied(
        &self,
        from: BorrowedFd<'_>,
        meta: &Meta,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<()> {
        if meta.nlink < 2 {
            return Ok(());
        }
        let key = self.key(from, meta)?;
        let dir_path = rfs::readlink(fsops::proc_path(dir), Vec::new())?;
        let path = PathBuf::from(OsString::from_vec(dir_path.into_bytes())).join(name);
        self.copies.borrow_mut().insert(key, (path, meta.nlink - 1));
        Ok(())
    }
}
