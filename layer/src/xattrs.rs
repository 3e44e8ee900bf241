//! Extended attributes, read and written without following symlinks and
//! without host paths: through an open fd for files and directories, and
//! for symlinks, devices and fifos (which must not be opened: a fifo open
//! blocks, a 0:0 device fails) through `/proc/self/fd/<dirfd>/<name>` with
//! the `l*xattr` calls, which resolves the parent by fd and does not follow
//! the final component.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::io::Errno;

/// Where an xattr operation applies.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// An open (not `O_PATH`) file or directory.
    Fd(BorrowedFd<'a>),
    /// `name` inside the directory `dir`, not followed if it is a symlink.
    At(BorrowedFd<'a>, &'a [u8]),
}

/// Prefixes of the overlayfs private xattrs: never captured into a layer,
/// always stripped from incoming ones.
const OVERLAY_PREFIXES: [&[u8]; 2] = [b"user.overlay.", b"trusted.overlay."];

pub(crate) fn is_overlay(name: &[u8]) -> bool {
    OVERLAY_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(OsStr::from_bytes(&p))
}

/// Calls `fill` with a buffer sized by `query`, retrying if the value grew
/// in between (ERANGE). A small buffer is tried first: most files have no
/// xattr or short ones, and one call instead of two per entry counts in a
/// tree of many small files.
fn sized(
    mut query: impl FnMut() -> rustix::io::Result<usize>,
    mut fill: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match fill(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            return Ok(buf);
        }
        Err(Errno::RANGE) => {}
        Err(e) => return Err(e.into()),
    }
    for _ in 0..8 {
        let mut buf = vec![0u8; query()?];
        match fill(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::RANGE.into())
}

/// All xattr names of `t`, sorted bytewise. A filesystem without xattr
/// support has none.
pub(crate) fn list(t: Target<'_>) -> io::Result<Vec<Vec<u8>>> {
    let raw = match t {
        Target::Fd(fd) => sized(
            || rustix::fs::flistxattr_query(fd),
            |b| rustix::fs::flistxattr(fd, b),
        ),
        Target::At(dir, name) => {
            let p = proc_path(dir, name);
            sized(
                || rustix::fs::llistxattr_query(&p),
                |b| rustix::fs::llistxattr(&p, b),
            )
        }
    };
    let raw = match raw {
        Err(e) if e.raw_os_error() == Some(Errno::NOTSUP.raw_os_error()) => return Ok(Vec::new()),
        other => other?,
    };
    let mut names: Vec<Vec<u8>> = raw
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    Ok(names)
}

/// The value of xattr `key` of `t`.
pub(crate) fn get(t: Target<'_>, key: &[u8]) -> io::Result<Vec<u8>> {
    let key = OsStr::from_bytes(key);
    match t {
        Target::Fd(fd) => sized(
            || rustix::fs::fgetxattr_query(fd, key),
            |b| rustix::fs::fgetxattr(fd, key, b),
        ),
        Target::At(dir, name) => {
            let p = proc_path(dir, name);
            sized(
                || rustix::fs::lgetxattr_query(&p, key),
                |b| rustix::fs::lgetxattr(&p, key, b),
            )
        }
    }
}

/// Sets xattr `key` of `t` to `value`.
pub(crate) fn set(t: Target<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let key = OsStr::from_bytes(key);
    let flags = rustix::fs::XattrFlags::empty();
    match t {
        Target::Fd(fd) => rustix::fs::fsetxattr(fd, key, value, flags)?,
        Target::At(dir, name) => rustix::fs::lsetxattr(proc_path(dir, name), key, value, flags)?,
    }
    Ok(())
}

/// Reads every xattr of `t` (names sorted).
pub(crate) fn read_all(t: Target<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in list(t)? {
        match get(t, &name) {
            Ok(value) => out.push((name, value)),
            // Removed between list and get: it is simply not there.
            Err(e) if e.raw_os_error() == Some(Errno::NODATA.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Removes xattr `key` of the open file or directory `fd`.
pub(crate) fn remove(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    rustix::fs::fremovexattr(fd, OsStr::from_bytes(key))?;
    Ok(())
}
