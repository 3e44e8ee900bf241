//! Per-process scratch dirs under `tmp/`. Each holds a `lock` file locked
//! while its process lives; a dir whose lock is free belongs to a process
//! that died (even by SIGKILL) and is removed by the next `Store::open`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::fsutil::remove_all;
use crate::locks::{self, Lock};

#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    _lock: Option<Lock>,
}

impl Scratch {
    pub(crate) fn create(tmp: &Path) -> Result<Scratch> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = tmp.join(name);
        std::fs::create_dir(&path).map_err(|e| Error::io("create", &path, e))?;
        // Locked before it is named `lock`: between creating and locking
        // it, another process's open would find the file free and take
        // this live dir for a dead one (seen as a failing concurrent-writers
        // test under load). A young dir without `lock` is left alone.
        let locking = path.join("lock.new");
        let lock = locks::exclusive(&locking)?;
        let named = path.join("lock");
        std::fs::rename(&locking, &named).map_err(|e| Error::io("rename", &named, e))?;
        Ok(Scratch {
            path,
            _lock: Some(lock),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = remove_all(&self.path);
    }
}

/// Removes the scratch dirs of dead processes (the ones that cannot be
/// removed are warned about and left); only an unreadable `tmp/` fails.
pub(crate) fn clean_stale(tmp: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(tmp) {
        Ok(e) => e,
        Err(e) => return Err(Error::io("read dir", tmp, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let lock_path = path.join("lock");
        let stale = if lock_path.exists() {
            // Held while removing, so another process's open sees it busy
            // rather than removing it at the same time.
            match locks::try_exclusive_existing(&lock_path) {
                Ok(Some(lock)) => {
                    removed += usize::from(remove_stale(&path));
                    drop(lock);
                    continue;
                }
                Ok(None) => false,
                Err(e) => {
                    warn(&e);
                    false
                }
            }
        } else {
            // Created but not yet locked (a process between mkdir and lock)
            // looks the same as a crash at that instant: only old ones go.
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60)
        };
        if stale {
            removed += usize::from(remove_stale(&path));
        }
    }
    Ok(removed)
}

/// Removes a dead process's dir; a failure is a warning, never an error:
/// whatever a dead build left in `tmp/` must not stop every later command
/// from opening the store (the next open tries again).
fn remove_stale(path: &Path) -> bool {
    match remove_all(path) {
        Ok(()) => true,
        Err(e) => {
            warn(&e);
            false
        }
    }
}

fn warn(e: &Error) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "kiln: warning: could not remove a dead build's scratch dir: {e}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_dir_that_cannot_be_cleaned_is_skipped_not_fatal() {
        let tmp = std::env::temp_dir().join(format!("kiln-scratch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        // A dead process's dir whose `lock` cannot be opened for locking
        // (a directory), next to an ordinary dead one.
        std::fs::create_dir_all(tmp.join("1-0-odd/lock")).unwrap();
        std::fs::create_dir_all(tmp.join("2-0-dead/sub")).unwrap();
        std::fs::write(tmp.join("2-0-dead/lock"), b"").unwrap();
        assert_eq!(clean_stale(&tmp).unwrap(), 1);
        assert!(tmp.join("1-0-odd").exists());
        assert!(!tmp.join("2-0-dead").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
