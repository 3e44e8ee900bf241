//! Applying tar entries to a directory, for UNTRUSTED input. Every parent is
//! resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from the
//! root's fd, so `..`, absolute symlinks and symlinked parents all stay
//! inside the root; names with `..` are refused outright; the final
//! component is only ever touched with `*at` calls that do not follow a
//! symlink, and is created exclusively (anything already there is removed
//! first, except a directory that stays a directory).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;
use tar::EntryType;

use crate::error::{Error, Result};
use crate::sparse::HoleWriter;
use crate::unpack::UnpackOptions;
use crate::xattrs::{self, Target};

const WH_PREFIX: &[u8] = b".wh.";
/// aufs metadata names (`.wh..wh.plnk`, ...); only the opaque marker means
/// anything to an overlay.
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"user.overlay.opaque";

/// What an entry's header asks for besides its type and content.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The final component of an entry: its resolved parent and its name.
struct Node<'a> {
    parent: BorrowedFd<'a>,
    name: &'a OsStr,
    /// Host path, for error messages only: never used to reach the file.
    host: PathBuf,
}

/// A directory whose mode and mtime are applied after everything inside it:
/// creating entries changes its mtime, and a read-only mode would stop an
/// unprivileged extractor from filling it.
struct PendingDir {
    parts: Vec<Vec<u8>>,
    mode: u32,
    mtime: Timespec,
}

/// Extraction state for one archive.
pub(crate) struct Extractor<'a> {
    root: OwnedFd,
    host: PathBuf,
    opts: &'a UnpackOptions,
    dirs: Vec<PendingDir>,
    skipped_devices: usize,
    skipped_xattrs: usize,
}

impl<'a> Extractor<'a> {
    /// Opens `root`, which must be an existing directory.
    pub(crate) fn new(root: &Path, opts: &'a UnpackOptions) -> Result<Self> {
        let fd = rfs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", root, e))?;
        Ok(Extractor {
            root: fd,
            host: root.to_path_buf(),
            opts,
            dirs: Vec::new(),
            skipped_devices: 0,
            skipped_xattrs: 0,
        })
    }

    /// One warning per kind of thing that was skipped.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.skipped_devices > 0 {
            w.push(format!(
                "{} device node(s) skipped: creating devices needs real root",
                self.skipped_devices
            ));
        }
        if self.skipped_xattrs > 0 {
            w.push(format!(
                "{} extended attribute(s) could not be set (not permitted or not supported)",
                self.skipped_xattrs
            ));
        }
        w
    }

    fn host_path(&self, parts: &[Vec<u8>]) -> PathBuf {
        self.host.join(join(parts))
    }

    /// Opens the directory `parts` inside the root (`O_PATH`), creating
    /// missing components when `create` is set. `None` if it is missing
    /// and `create` is not set.
    fn resolve_dir(&self, parts: &[Vec<u8>], create: bool) -> Result<Option<OwnedFd>> {
        let mut fd =
            in_root(&self.root, Path::new(".")).map_err(|e| Error::io("open", &self.host, e))?;
        for i in 0..parts.len() {
            let prefix = join(&parts[..=i]);
            let here = || self.host_path(&parts[..=i]);
            fd = match in_root(&self.root, &prefix) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    // Created in the parent resolved a moment ago, then
                    // resolved again from the root like every other path.
                    match rfs::mkdirat(
                        &fd,
                        OsStr::from_bytes(&parts[i]),
                        Mode::from_raw_mode(0o755),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Error::io("mkdir", here(), e)),
                    }
                    in_root(&self.root, &prefix).map_err(|e| Error::io("open", here(), e))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(Error::io("open", here(), e)),
            };
        }
        Ok(Some(fd))
    }

    /// Applies one archive entry.
    pub(crate) fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(()); // metadata the tar crate already folded into the next entry
        }
        let raw = entry.path_bytes().into_owned();
        // Pre-POSIX archives mark directories only by the trailing slash.
        let kind = if kind == EntryType::Regular && raw.ends_with(b"/") {
            EntryType::Directory
        } else {
            kind
        };
        let mut parts = components(&raw)?;
        let Some(name) = parts.pop() else {
            return Ok(()); // the root itself: its metadata belongs to the caller
        };
        let parent = self
            .resolve_dir(&parts, true)?
            .ok_or_else(|| Error::io("open", self.host_path(&parts), Errno::NOENT))?;
        if self.opts.whiteouts && name.starts_with(WH_PREFIX) {
            let mtime = header_mtime(entry.header());
            return self.whiteout(parent.as_fd(), &parts, &name, &raw, mtime);
        }
        let meta = self.meta(entry)?;
        let mut full = parts.clone();
        full.push(name.clone());
        let node = Node {
            parent: parent.as_fd(),
            name: OsStr::from_bytes(&name),
            host: self.host_path(&full),
        };
        let created = match kind {
            EntryType::Directory => {
                make_dir(&node)?;
                self.dirs.push(PendingDir {
                    parts: full,
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
                true
            }
            // The tar crate expands GNU sparse files while reading them.
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                make_file(&node, entry)?
            }
            EntryType::Symlink => make_symlink(&node, &link_name(entry)?)?,
            EntryType::Link => return self.hardlink(&node, &raw, &link_name(entry)?),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.make_special(&node, entry.header())?
            }
            other => {
                return Err(Error::UnsupportedEntry {
                    path: lossy(&raw),
                    kind: other.as_byte() as char,
                })
            }
        };
        if created {
            self.apply_meta(&node, kind, &meta)?;
        }
        Ok(())
    }

    /// Reads mode, owner, mtime and the xattrs worth keeping.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let mut kept = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(archive_err)? {
            for ext in exts {
                let ext = ext.map_err(archive_err)?;
                if let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    // Overlay's own xattrs could hide or redirect files in
                    // the merged view; trusted.* is the privileged space.
                    if !xattrs::is_overlay(key) && !key.starts_with(b"trusted.") {
                        kept.push((key.to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let h = entry.header();
        let (uid, gid) = match self.opts.owner {
            Some(ids) => ids,
            None => (id(h.uid()), id(h.gid())),
        };
        Ok(Meta {
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid,
            gid,
            mtime: header_mtime(h),
            xattrs: kept,
        })
    }

    /// Owner, then mode (chown clears setuid bits), xattrs, mtime.
    /// Directories get mode and mtime at the end.
    fn apply_meta(&mut self, node: &Node<'_>, kind: EntryType, meta: &Meta) -> Result<()> {
        rfs::chownat(
            node.parent,
            node.name,
            Some(rfs::Uid::from_raw(meta.uid)),
            Some(rfs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::Chown {
            path: node.host.clone(),
            uid: meta.uid,
            gid: meta.gid,
            source: e.into(),
        })?;
        // fchmodat cannot refuse to follow a symlink; symlinks have no mode
        // anyway, and everything else here was just created by us.
        if !matches!(kind, EntryType::Symlink | EntryType::Directory) {
            rfs::chmodat(
                node.parent,
                node.name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| Error::io("chmod", &node.host, e))?;
        }
        let name = node.name.as_bytes();
        for (k, v) in &meta.xattrs {
            if xattrs::set(Target::At(node.parent, name), k, v).is_err() {
                self.skipped_xattrs += 1;
            }
        }
        if kind != EntryType::Directory {
            set_mtime(node.parent, node.name, meta.mtime)
                .map_err(|e| Error::io("utimensat", &node.host, e))?;
        }
        Ok(())
    }

    /// `.wh..wh..opq` marks the parent opaque; `.wh.NAME` replaces NAME
    /// with overlay's whiteout, a char device 0:0, with the entry's mtime
    /// (capture writes it back: without it a recapture differed).
    fn whiteout(
        &mut self,
        parent: BorrowedFd<'_>,
        parts: &[Vec<u8>],
        name: &[u8],
        raw: &[u8],
        mtime: Timespec,
    ) -> Result<()> {
        if name == WH_OPAQUE {
            let dir = rfs::openat(
                parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open", self.host_path(parts), e))?;
            return xattrs::set(Target::Fd(dir.as_fd()), OPAQUE_XATTR, b"y")
                .map_err(|e| Error::io("set opaque xattr", self.host_path(parts), e));
        }
        if name.starts_with(WH_META_PREFIX) {
            return Ok(());
        }
        let target = &name[WH_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err(Error::UnsafePath {
                path: lossy(raw),
                reason: "a whiteout must name one entry of its directory",
            });
        }
        let os = OsStr::from_bytes(target);
        let mut full = parts.to_vec();
        full.push(target.to_vec());
        let host = self.host_path(&full);
        clear(parent, os).map_err(|e| Error::io("remove", &host, e))?;
        match rfs::mknodat(
            parent,
            os,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            0,
        ) {
            Ok(()) => {}
            // overlayfs refuses to make its own whiteout form: a store on
            // a container's root fs (usable only by `--isolation chroot`,
            // which mounts nothing) gets overlay's xwhiteout, an empty file
            // flagged by xattr, which capture and `apply_layer_dir` read.
            Err(Errno::PERM) if on_overlayfs(parent) => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
                let fd = rfs::openat(parent, os, flags, Mode::from_raw_mode(0o600))
                    .map_err(|e| Error::io("create whiteout", &host, e))?;
                xattrs::set(Target::Fd(fd.as_fd()), b"user.overlay.whiteout", b"y")
                    .map_err(|e| Error::io("whiteout xattr", &host, e))?;
            }
            Err(Errno::PERM) => return Err(Error::WhiteoutNotPermitted { path: host }),
            Err(e) => return Err(Error::io("mknod", host, e)),
        }
        set_mtime(parent, os, mtime).map_err(|e| Error::io("utimensat", host, e))
    }

    /// A hardlink to an entry already extracted, found inside the root.
    /// A target that is a symlink is linked as the symlink itself (never
    /// followed); a directory is refused.
    fn hardlink(&mut self, node: &Node<'_>, raw: &[u8], target: &[u8]) -> Result<()> {
        let bad = |reason: String| Error::BadHardlink {
            path: lossy(raw),
            target: lossy(target),
            reason,
        };
        let parts = components(target).map_err(|_| bad("the target contains `..`".into()))?;
        if parts.is_empty() {
            return Err(bad("the target is the root".into()));
        }
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat2(&self.root, join(&parts), flags, Mode::empty(), how)
            .map_err(|e| bad(format!("the target is not extracted: {e}")))?;
        let st = rfs::fstat(&fd).map_err(|e| Error::io("stat", &node.host, e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(bad("the target is a directory".into()));
        }
        clear(node.parent, node.name).map_err(|e| Error::io("remove", &node.host, e))?;
        // Through /proc, which links the very inode the fd holds:
        // linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH.
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        rfs::linkat(
            rfs::CWD,
            proc.as_str(),
            node.parent,
            node.name,
            AtFlags::SYMLINK_FOLLOW,
        )
        .map_err(|e| Error::io("link", &node.host, e))
    }

    /// Devices and fifos. Devices that may not be created (EPERM without
    /// real root) are counted and skipped; returns whether it was created.
    fn make_special(&mut self, node: &Node<'_>, h: &tar::Header) -> Result<bool> {
        let (ft, dev) = match h.entry_type() {
            EntryType::Char => (FileType::CharacterDevice, device(h)),
            EntryType::Block => (FileType::BlockDevice, device(h)),
            _ => (FileType::Fifo, 0),
        };
        clear(node.parent, node.name).map_err(|e| Error::io("remove", &node.host, e))?;
        match rfs::mknodat(node.parent, node.name, ft, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => Ok(true),
            Err(Errno::PERM) if ft != FileType::Fifo => {
                self.skipped_devices += 1;
                Ok(false)
            }
            Err(e) => Err(Error::io("mknod", &node.host, e)),
        }
    }

    /// Directory modes and mtimes, deepest first, after everything inside
    /// them. Each is resolved from the root again and must still be a
    /// directory (a later entry may have replaced it).
    pub(crate) fn finish(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.parts.len()));
        for d in dirs {
            let Some((name, parts)) = d.parts.split_last() else {
                continue;
            };
            let Some(parent) = self.resolve_dir(parts, false)? else {
                continue;
            };
            let name = OsStr::from_bytes(name);
            match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            let host = self.host_path(&d.parts);
            rfs::chmodat(&parent, name, Mode::from_raw_mode(d.mode), AtFlags::empty())
                .map_err(|e| Error::io("chmod", &host, e))?;
            set_mtime(parent.as_fd(), name, d.mtime)
                .map_err(|e| Error::io("utimensat", &host, e))?;
        }
        Ok(())
    }
}

/// An existing directory stays (its metadata is updated); anything else
/// there is replaced.
fn make_dir(node: &Node<'_>) -> Result<()> {
    if let Ok(st) = rfs::statat(node.parent, node.name, AtFlags::SYMLINK_NOFOLLOW) {
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Ok(());
        }
        clear(node.parent, node.name).map_err(|e| Error::io("remove", &node.host, e))?;
    }
    rfs::mkdirat(node.parent, node.name, Mode::from_raw_mode(0o755))
        .map_err(|e| Error::io("mkdir", &node.host, e))
}

fn make_file<R: Read>(node: &Node<'_>, entry: &mut tar::Entry<'_, R>) -> Result<bool> {
    clear(node.parent, node.name).map_err(|e| Error::io("remove", &node.host, e))?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(node.parent, node.name, flags, Mode::from_raw_mode(0o600))
        .map_err(|e| Error::io("create", &node.host, e))?;
    let file = File::from(fd);
    // Zero blocks become holes: a sparse file stays sparse, and a layer's
    // long zero runs cost no disk. Read and write errors are told apart:
    // one is a bad archive, the other a full disk.
    let mut out = HoleWriter::new(&file);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(archive_err(e)),
        };
        out.write(&buf[..n])
            .map_err(|e| Error::io("write", &node.host, e))?;
    }
    out.finish()
        .map_err(|e| Error::io("truncate", &node.host, e))?;
    Ok(true)
}

fn make_symlink(node: &Node<'_>, target: &[u8]) -> Result<bool> {
    clear(node.parent, node.name).map_err(|e| Error::io("remove", &node.host, e))?;
    // The target is stored as is: it is only ever resolved inside the root
    // (by us with RESOLVE_IN_ROOT, by the container in its own root).
    rfs::symlinkat(OsStr::from_bytes(target), node.parent, node.name)
        .map_err(|e| Error::io("symlink", &node.host, e))?;
    Ok(true)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Vec<u8>> {
    match entry.link_name_bytes() {
        Some(l) if !l.is_empty() => Ok(l.into_owned()),
        _ => Err(Error::UnsafePath {
            path: lossy(&entry.path_bytes()),
            reason: "a link entry without a target",
        }),
    }
}

/// An entry's path as components: leading `/` and `.` dropped (an absolute
/// path means "in the root"), `..` refused (it can only mean to leave it).
pub(crate) fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::UnsafePath {
                    path: lossy(raw),
                    reason: "it contains `..`",
                })
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn in_root(root: &OwnedFd, path: &Path) -> rustix::io::Result<OwnedFd> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    rfs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    )
}

fn join(parts: &[Vec<u8>]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&parts.join(&b'/')))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn archive_err(source: io::Error) -> Error {
    Error::Archive {
        entry: None,
        source,
    }
}

/// A tar id; values that do not fit 32 bits (only crafted archives have
/// them) become the overflow id 65534 rather than wrapping to root.
fn id(v: io::Result<u64>) -> u32 {
    v.ok().and_then(|v| u32::try_from(v).ok()).unwrap_or(65534)
}

fn header_mtime(h: &tar::Header) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0),
        tv_nsec: 0,
    }
}

fn device(h: &tar::Header) -> u64 {
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    rfs::makedev(major, minor)
}

fn set_mtime(parent: BorrowedFd<'_>, name: &OsStr, mtime: Timespec) -> rustix::io::Result<()> {
    let t = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    rfs::utimensat(parent, name, &t, AtFlags::SYMLINK_NOFOLLOW)
}

/// Removes whatever is at `parent/name`, recursively for a directory,
/// never following a symlink.
pub(crate) fn clear(parent: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    clear_at_depth(parent, name, 0)
}

/// Deeper trees than this are refused (ELOOP) rather than risking the
/// stack: symlinked parents let an archive build trees deeper than
/// PATH_MAX allows to name.
const MAX_CLEAR_DEPTH: usize = 1024;

fn clear_at_depth(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> rustix::io::Result<()> {
    match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            if depth >= MAX_CLEAR_DEPTH {
                return Err(Errno::LOOP);
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let dir = rfs::openat(parent, name, flags, Mode::empty())?;
            let names = crate::capture::names(dir.as_fd())
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            for n in names {
                clear_at_depth(dir.as_fd(), OsStr::from_bytes(&n), depth + 1)?;
            }
            rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)
        }
        Ok(_) => rfs::unlinkat(parent, name, AtFlags::empty()),
    }
}

/// Whether `dir` is on overlayfs (statfs magic; f_type's width differs
/// between architectures).
#[allow(clippy::unnecessary_cast)]
fn on_overlayfs(dir: BorrowedFd<'_>) -> bool {
    const OVERLAYFS_MAGIC: i64 = 0x794c_7630;
    rfs::fstatfs(dir).is_ok_and(|st| st.f_type as i64 == OVERLAYFS_MAGIC)
}
