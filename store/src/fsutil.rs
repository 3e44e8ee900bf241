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

/// `rm -rf`, making directories writable first (overlay's work dir has a
/// mode-000 `work` inside; layers may hold read-only dirs). Whatever
/// vanishes meanwhile (another process cleaning the same stale dir) counts
/// as removed.
pub fn remove_all(path: &Path) -> Result<()> {
    match remove_tree(path) {
        Err(Error::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(|e| Error::io("remove", path, e));
    }
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o700 != 0o700 {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    }
    for entry in fs::read_dir(path).map_err(|e| Error::io("read dir", path, e))? {
        let entry = entry.map_err(|e| Error::io("read dir", path, e))?;
        remove_all(&entry.path())?;
    }
    fs::remove_dir(path).map_err(|e| Error::io("remove", path, e))
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
