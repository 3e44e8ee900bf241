//! Advisory file locks (flock through std's `File::lock`): short exclusive
//! sections for index.json, a shared lock held by every build against an
//! exclusive one held by prune.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// A held lock; released on drop (closing the file).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

pub fn exclusive(path: &Path) -> Result<Lock> {
    let f = open(path)?;
    f.lock().map_err(|e| Error::io("lock", path, e))?;
    Ok(Lock { _file: f })
}

pub fn shared(path: &Path) -> Result<Lock> {
    let f = open(path)?;
    f.lock_shared().map_err(|e| Error::io("lock", path, e))?;
    Ok(Lock { _file: f })
}

/// Try to take an exclusive lock on an existing lock file without
/// waiting: None when someone holds it, or the file is gone (not created:
/// a stale dir being removed by another process must not gain a new one).
pub fn try_exclusive_existing(path: &Path) -> Result<Option<Lock>> {
    let f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    match f.try_lock() {
        Ok(()) => Ok(Some(Lock { _file: f })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
    }
}
