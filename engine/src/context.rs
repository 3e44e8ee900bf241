//! The build context as BuildKit sends it: already filtered by its
//! `.dockerignore`. A filter applied to the paths an instruction spells
//! can be walked around (`COPY ../`, a symlink to an ignored file, a path
//! through a symlinked dir), so the ignored entries are removed from the
//! filesystem every reader sees instead: a read-only overlay of the
//! context under a lower dir of whiteouts, one per ignored entry, at its
//! real (canonical) path. A symlink to an ignored file then dangles, as in
//! BuildKit, and COPY, ADD, `RUN --mount=type=bind` and the cache digests
//! all read the same tree. A `--build-context NAME=DIR` is filtered the
//! same way by `DIR/.dockerignore` (BuildKit's named local contexts).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use kiln_sandbox::{mount_overlay, mount_tmpfs, Mounted};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::dockerignore::Ignore;
use super::fsops::{self, Root};
use super::Builder;

/// The filtered views of this build's context dirs, made on first use and
/// kept (mounted) until the build ends.
pub struct Views {
    /// Where the views' whiteout dirs and mount points go.
    scratch: PathBuf,
    /// By dir, and whether it is a named context.
    made: Mutex<HashMap<(PathBuf, bool), Arc<View>>>,
}

/// One context dir as the build sees it.
pub struct View {
    dir: PathBuf,
    /// The whiteouts dir and the context under the overlay, if mounted.
    layers: Option<(PathBuf, Root)>,
    /// The overlay, then the whiteouts' tmpfs: unmounted in that order.
    _mounts: Vec<Mounted>,
}

impl View {
    /// The dir to read the context from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The dirs that the view's dir `fd` is made of, top first, and the
    /// fd that keeps the context's one: a writable overlay of a context
    /// dir stacks on these, not on the view, as overlay nests only two
    /// deep and the context may already be on an overlay (a container).
    pub fn layers_of(&self, fd: BorrowedFd<'_>) -> Result<(Vec<PathBuf>, Option<OwnedFd>)> {
        let Some((hidden, real)) = &self.layers else {
            return Ok((vec![fsops::proc_path(fd)], None));
        };
        let at = fs::read_link(fsops::proc_path(fd)).context("locating a context dir")?;
        let rel = at
            .strip_prefix(&self.dir)
            .with_context(|| format!("{} is not in the context's view", at.display()))?;
        let dir = real
            .resolve(rel, OFlags::PATH | OFlags::DIRECTORY, false)
            .with_context(|| format!("open {}", rel.display()))?;
        let mut lowers = Vec::new();
        if hidden.join(rel).is_dir() {
            lowers.push(hidden.join(rel));
        }
        lowers.push(fsops::proc_path(dir.as_fd()));
        Ok((lowers, Some(dir)))
    }
}

impl Views {
    pub fn new(scratch: &Path) -> Views {
        Views {
            scratch: scratch.to_path_buf(),
            made: Mutex::new(HashMap::new()),
        }
    }

    /// The view of `dir` (the main context, or a named one), made by
    /// `make` under a fresh dir the first time.
    fn get(
        &self,
        dir: &Path,
        named: bool,
        make: impl FnOnce(&Path) -> Result<View>,
    ) -> Result<Arc<View>> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let key = (dir.to_path_buf(), named);
        if let Some(v) = made.get(&key) {
            return Ok(v.clone());
        }
        let at = self.scratch.join(format!("context-{}", made.len()));
        let view = Arc::new(
            make(&at)
                .with_context(|| format!("applying the .dockerignore of {}", dir.display()))?,
        );
        made.insert(key, view.clone());
        Ok(view)
    }
}

impl Builder<'_> {
    /// The build context as every instruction reads it; messages name the
    /// user's dir, not the view's.
    pub(super) fn context_root(&self) -> Result<Root> {
        let view = self.context_view()?;
        let mut root = Root::open(view.dir())?;
        root.name = self.req.context.clone();
        Ok(root)
    }

    /// The view of the build context.
    pub(super) fn context_view(&self) -> Result<Arc<View>> {
        let dir = &self.req.context;
        let chroot = self.chroot();
        self.contexts
            .get(dir, false, |at| filtered(dir, &self.ignore, at, chroot))
    }

    /// A `--build-context NAME=DIR`'s dir as the build reads it: filtered
    /// by `DIR/.dockerignore`, as BuildKit does for a named local context
    /// (the main context's `.dockerignore` does not apply to it).
    pub(super) fn named_context_dir(&self, dir: &Path) -> Result<PathBuf> {
        let chroot = self.chroot();
        let view = self.contexts.get(dir, true, |at| {
            filtered(dir, &Ignore::load(dir, None)?, at, chroot)
        })?;
        Ok(view.dir().to_path_buf())
    }
}

/// `dir` itself when `ignore` excludes nothing there, else the overlay
/// that hides what it excludes, mounted under `at` (`copy`: where nothing
/// can be mounted, a copy without it).
fn filtered(dir: &Path, ignore: &Ignore, at: &Path, copy: bool) -> Result<View> {
    let plain = || View {
        dir: dir.to_path_buf(),
        layers: None,
        _mounts: Vec::new(),
    };
    if ignore.is_empty() {
        return Ok(plain());
    }
    if copy {
        return filtered_copy(dir, ignore, at);
    }
    let root = Root::open(dir)?;
    let hidden = at.join("hidden");
    fs::create_dir_all(&hidden).with_context(|| format!("create {}", hidden.display()))?;
    // On a filesystem of their own: overlay refuses a layer inside
    // another, and the store (this scratch dir) may be in the context.
    let tmpfs = mount_tmpfs(&hidden, 0o755).context("mounting a tmpfs for the whiteouts")?;
    if hide(&root, ignore, Path::new(""), &hidden)? == 0 {
        return Ok(plain());
    }
    let view = at.join("view");
    fs::create_dir_all(&view).with_context(|| format!("create {}", view.display()))?;
    // Canonical, as /proc/self/fd/N names the dirs in it.
    let view = fs::canonicalize(&view).with_context(|| format!("open {}", view.display()))?;
    let lowers = [hidden.clone(), fsops::proc_path(root.fd())];
    let mount = mount_overlay(&lowers, None, &view)
        .context("mounting the context without its ignored files")?;
    Ok(View {
        dir: view,
        layers: Some((hidden, root)),
        _mounts: vec![mount, tmpfs],
    })
}

/// A copy of the context dir `dir` under `at` without what `ignore`
/// excludes (a dir it excludes is still entered when an exception may
/// take something below it back).
fn filtered_copy(dir: &Path, ignore: &Ignore, at: &Path) -> Result<View> {
    let view = at.join("copy");
    fs::create_dir_all(&view).with_context(|| format!("create {}", view.display()))?;
    let skip = |rel: &Path, is_dir: bool| {
        ignore.excluded(rel) && !(is_dir && ignore.may_reinclude_below(rel))
    };
    kiln_layer::copy_tree(dir, &view, &skip)
        .with_context(|| format!("copying the context {}", dir.display()))?;
    let view = fs::canonicalize(&view).with_context(|| format!("open {}", view.display()))?;
    Ok(View {
        dir: view,
        layers: None,
        _mounts: Vec::new(),
    })
}

/// Whiteouts under `hidden` for what `ignore` excludes below the context
/// dir `rel`, at the same paths; returns how many. The dirs made on the
/// way get the context dir's mode, owner and mtime: overlay shows a
/// merged dir with the attributes of its topmost layer.
fn hide(root: &Root, ignore: &Ignore, rel: &Path, hidden: &Path) -> Result<usize> {
    let dir = match root.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, false) {
        Ok(fd) => fd,
        // Unreadable for the build too: nothing in it can be read.
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("open {}", rel.display())),
    };
    let mut count = 0;
    for name in fsops::list(dir.as_fd())? {
        let name = fsops::os(&name);
        let child = rel.join(name);
        let is_dir = match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("stat {}", child.display())),
        };
        if ignore.excluded(&child) && !(is_dir && ignore.may_reinclude_below(&child)) {
            let parent = hidden.join(rel);
            fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
            whiteout(&parent, name)?;
            count += 1;
        } else if is_dir {
            count += hide(root, ignore, &child, hidden)?;
        }
    }
    if count > 0 {
        same_attrs(dir.as_fd(), &hidden.join(rel))?;
    }
    Ok(count)
}

fn whiteout(parent: &Path, name: &OsStr) -> Result<()> {
    let at = parent.join(name);
    rfs::mknodat(rfs::CWD, &at, FileType::CharacterDevice, Mode::empty(), 0)
        .with_context(|| format!("whiteout {}", at.display()))
}

/// Gives the dir `path` the mode, owner (when mapped) and mtime of `like`.
fn same_attrs(like: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let m = fsops::meta(like)?;
    // An owner outside kiln's id mapping cannot be set; the owner of a
    // context dir never reaches an image (COPY makes it 0:0 or --chown).
    let _ = rfs::chown(
        path,
        Some(rfs::Uid::from_raw(m.uid)),
        Some(rfs::Gid::from_raw(m.gid)),
    );
    rfs::chmod(path, Mode::from_raw_mode(m.mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    let times = rfs::Timestamps {
        last_access: m.mtime,
        last_modification: m.mtime,
    };
    rfs::utimensat(rfs::CWD, path, &times, AtFlags::empty())
        .with_context(|| format!("set the mtime of {}", path.display()))?;
    Ok(())
}
