//! Atomic file writes and recursive removal, the two primitives every
//! store commit is made of.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `tmp`, syncs it, and renames it to `dest`: readers see
/// the old file or the new one, never a part.
pub fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(tmp).map_err(|e| Error::io("create", tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
    fs::rename(tmp, dest).map_err(|e| Error::io("rename", dest, e))?;
    sync_parent(dest)
}

/// Writes `bytes` to `tmp` and renames it to `dest`, syncing nothing:
/// readers see the old file or the new one, but after a crash `dest` may
/// be old, empty or missing. Only for files whose loss costs work, never
/// correctness (layer sidecars, cache entries).
pub fn write_replace(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(tmp, bytes).map_err(|e| Error::io("write", tmp, e))?;
    fs::rename(tmp, dest).map_err(|e| Error::io("rename", dest, e))
}

/// Makes a rename durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Makes the renames into `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

/// `rm -rf` of a tree of any depth with a bounded number of fds (see
/// [`crate::remove`]); whatever vanishes meanwhile counts as removed.
pub fn remove_all(path: &Path) -> Result<()> {
    crate::remove::remove_tree(path).map(drop)
}

/// [`remove_all`], returning the bytes of the files it removed.
pub fn remove_all_sized(path: &Path) -> Result<u64> {
    crate::remove::remove_tree(path)
}

/// Durably flushes everything on the filesystem holding `path` (a layer
/// written through a `volatile` overlay).
pub fn syncfs(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    // SAFETY: a plain syscall on an fd we own.
    let r = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
    if r != 0 {
        return Err(Error::io("syncfs", path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The system's dirty page cache in bytes (`Dirty:` in /proc/meminfo).
pub fn dirty_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find_map(|l| l.strip_prefix("Dirty:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}
