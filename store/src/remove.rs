//! `rm -rf` for trees of any depth: the store removes dirs a RUN step
//! filled (thousands of levels, paths far past PATH_MAX), so the walk is
//! iterative (no recursion, no stack to overflow), works on names relative
//! to directory fds (never full paths), and holds at most two directory
//! fds however deep it goes: it climbs back up through `..`, checking that
//! it lands on the directory it came from.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};

/// One directory on the way down: its name in its parent (None for the
/// top), its identity (to check the climb back), the subdirectories left.
struct Level {
    name: Option<OsString>,
    id: (u64, u64),
    subdirs: Vec<OsString>,
}

/// Removes `path` and everything under it; returns the bytes of the
/// files removed. Directories are made writable first (overlay's work dir
/// has a mode-000 `work` inside; layers may hold read-only dirs).
/// Whatever vanishes meanwhile (another process cleaning the same stale
/// dir) counts as removed.
pub fn remove_tree(path: &Path) -> Result<u64> {
    let st = match rfs::lstat(path) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(0),
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match rfs::unlink(path) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(st.st_size as u64),
            Err(e) => Err(Error::io("remove", path, e)),
        };
    }
    let fail = |op: &'static str, depth: usize, e: rustix::io::Errno| {
        let at = format!("{} (at depth {depth})", path.display());
        Error::io(op, at, e)
    };
    let mut cur = match open_writable(rfs::CWD, path.as_os_str()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(0),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut bytes = 0;
    let (subdirs, freed) = empty_but_dirs(cur.as_fd()).map_err(|e| fail("empty", 0, e))?;
    bytes += freed;
    let mut levels = vec![Level {
        name: None,
        id: id_of(cur.as_fd()).map_err(|e| fail("stat", 0, e))?,
        subdirs,
    }];
    loop {
        let depth = levels.len() - 1;
        let top = levels
            .last_mut()
            .expect("the top level is never popped here");
        if let Some(name) = top.subdirs.pop() {
            let child = match open_writable(cur.as_fd(), &name) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(fail("open", depth + 1, e)),
            };
            let (subdirs, freed) =
                empty_but_dirs(child.as_fd()).map_err(|e| fail("empty", depth + 1, e))?;
            bytes += freed;
            levels.push(Level {
                name: Some(name),
                id: id_of(child.as_fd()).map_err(|e| fail("stat", depth + 1, e))?,
                subdirs,
            });
            cur = child;
            continue;
        }
        let done = levels.pop().expect("checked above");
        let Some(name) = done.name else { break };
        let parent = rfs::openat(&cur, "..", dir_flags(), Mode::empty())
            .map_err(|e| fail("open ..", depth, e))?;
        let expected = levels.last().expect("a named level has a parent").id;
        if id_of(parent.as_fd()).map_err(|e| fail("stat", depth, e))? != expected {
            // Moved while being removed: stop rather than remove elsewhere.
            return Err(fail("climb back", depth, rustix::io::Errno::STALE));
        }
        match rfs::unlinkat(&parent, &name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(fail("remove", depth, e)),
        }
        cur = parent;
    }
    drop(cur);
    match rfs::rmdir(path) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(bytes),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens directory `name` in `dir`, first giving its owner rwx on it if
/// it lacks them (unlinking in it needs w and x, listing it r).
fn open_writable(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> rustix::io::Result<OwnedFd> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(rustix::io::Errno::NOTDIR);
    }
    if st.st_mode & 0o700 != 0o700 {
        let mode = Mode::from_raw_mode((st.st_mode & 0o7777) | 0o700);
        rfs::chmodat(dir, name, mode, AtFlags::empty())?;
    }
    rfs::openat(dir, name, dir_flags(), Mode::empty())
}

fn id_of(dir: BorrowedFd<'_>) -> rustix::io::Result<(u64, u64)> {
    let st = rfs::fstat(dir)?;
    Ok((st.st_dev, st.st_ino))
}

/// Unlinks everything in `dir` but its subdirectories, which it returns;
/// with the bytes of the files unlinked. The listing is read whole first:
/// unlinking while reading may make a directory stream skip entries.
fn empty_but_dirs(dir: BorrowedFd<'_>) -> rustix::io::Result<(Vec<OsString>, u64)> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from(std::ffi::OsStr::from_bytes(name)));
        }
    }
    let (mut subdirs, mut bytes) = (Vec::new(), 0);
    for name in names {
        let st = match rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            subdirs.push(name);
            continue;
        }
        match rfs::unlinkat(dir, &name, AtFlags::empty()) {
            Ok(()) => bytes += st.st_size as u64,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((subdirs, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` nested dirs with long names (the path is far past
    /// PATH_MAX), a file at every 100th level, read-only dirs on the way.
    fn deep_tree(top: &Path, depth: usize) -> u64 {
        std::fs::create_dir(top).unwrap();
        let name = "n".repeat(200);
        let mut cur = rfs::open(top, dir_flags(), Mode::empty()).unwrap();
        let mut bytes = 0;
        for level in 0..depth {
            rfs::mkdirat(&cur, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            if level % 100 == 0 {
                let f =
                    rfs::openat(&cur, "f", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
                rustix::io::write(&f, b"12345").unwrap();
                bytes += 5;
            }
            let next = rfs::openat(&cur, name.as_str(), dir_flags(), Mode::empty()).unwrap();
            if level % 500 == 0 {
                rfs::chmodat(
                    &cur,
                    name.as_str(),
                    Mode::from_raw_mode(0o500),
                    AtFlags::empty(),
                )
                .unwrap();
            }
            cur = next;
        }
        bytes
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    #[test]
    fn removes_a_tree_deeper_than_the_fd_limit_and_path_max() {
        let base = std::env::temp_dir().join(format!("kiln-remove-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let top = base.join("deep");
        // Deeper than the usual 1024-fd limit, paths 300 KB long.
        let written = deep_tree(&top, 1500);
        let before = open_fds();
        let freed = remove_tree(&top).unwrap();
        assert!(!top.exists());
        assert_eq!(freed, written);
        // Tests run in parallel threads: other tests' fds come and go, so
        // only a leak per level (thousands) would show here.
        assert!(
            open_fds() <= before + 8,
            "fds leaked: {before} → {}",
            open_fds()
        );
        assert_eq!(remove_tree(&top).unwrap(), 0, "a missing tree is removed");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn removes_a_single_file_and_a_mode_000_dir() {
        let base = std::env::temp_dir().join(format!("kiln-remove1-{}", std::process::id()));
        std::fs::create_dir_all(base.join("work/work")).unwrap();
        std::fs::write(base.join("work/work/x"), b"abc").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let zero = std::fs::Permissions::from_mode(0o000);
        std::fs::set_permissions(base.join("work/work"), zero).unwrap();
        std::fs::write(base.join("file"), b"ab").unwrap();
        assert_eq!(remove_tree(&base.join("file")).unwrap(), 2);
        assert_eq!(remove_tree(&base).unwrap(), 3);
        assert!(!base.exists());
    }
}
