//! Overlay-native directory → layer tar. The walk is fd-relative (no
//! symlink is ever followed), entries come depth first with names
//! byte-sorted within each directory (Go's `filepath.Walk` order) and
//! carry only what a layer means (mode, ids, mtime, kept xattrs), so the
//! same tree always gives the same bytes and the same diffID.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};

use crate::compress::{Compression, CompressionOptions, Encoder, MEDIA_TYPE_TAR};
use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::sparse;
use crate::tarwrite::{self, Entry, Kind};
use crate::xattrs::{self, Target};

/// Capture settings.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// SOURCE_DATE_EPOCH: mtimes later than this are set to it.
    pub clamp_mtime: Option<u64>,
    /// The layer dirs (top first) when the captured dir is their overlay:
    /// two names of one inode are a hard link only when the same layer
    /// holds both (layers may share inodes without their files being
    /// links of each other).
    pub layers: Vec<PathBuf>,
}

/// What a capture produced.
#[derive(Clone, Debug)]
pub struct Captured {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the bytes written (the diffID when uncompressed).
    pub blob: Digest,
    /// Number of bytes written to the output.
    pub blob_size: u64,
    /// The OCI layer media type matching the compression.
    pub media_type: &'static str,
}

/// One extended attribute: name, value.
type Xattr = (Vec<u8>, Vec<u8>);
/// Extended attributes, sorted by name.
type Xattrs = Vec<Xattr>;

const OPAQUE: [&[u8]; 2] = [b"user.overlay.opaque", b"trusted.overlay.opaque"];
/// Overlay's other whiteout form (Linux 6.7+ "xwhiteouts", used where a
/// 0:0 device cannot be made): an empty regular file carrying this xattr.
const XWHITEOUT: [&[u8]; 2] = [b"user.overlay.whiteout", b"trusted.overlay.whiteout"];

/// Deepest directory nesting captured (the walk recurses once per level).
const MAX_DEPTH: usize = 1024;

/// Directory fds kept open on the way down. Below this depth a parent's
/// fd is closed while its subdirectory is walked and reopened through
/// `..` after, so a deep tree never runs the process out of fds (the
/// usual limit, 1024, is below `MAX_DEPTH`).
const HELD_FDS: usize = 64;

/// A subdirectory to walk next: its fd and its path in the tar.
type Descend = (OwnedFd, Vec<u8>);

/// What an entry's xattrs say.
struct LayerXattrs {
    /// The ones that go into the layer.
    kept: Xattrs,
    /// A directory overlay marked opaque (`=y`; `=x` only flags xwhiteouts).
    opaque: bool,
    /// A regular file that is an xwhiteout.
    whiteout: bool,
}

/// Writes the deterministic layer tar of `dir` (an overlay upper dir or a
/// committed layer dir) to `out`, compressed if `compression` is Some, with
/// the default level and all cores. One streaming pass computes the diffID
/// (sha256 of the tar) and the blob digest (sha256 of the bytes written).
pub fn capture(
    dir: &Path,
    out: &mut dyn Write,
    compression: Option<Compression>,
    opts: &CaptureOptions,
) -> Result<Captured> {
    capture_with(dir, out, compression.map(CompressionOptions::from), opts)
}

/// [`capture`] with explicit compression level and thread count. The
/// thread count never changes the output bytes; the level does.
pub fn capture_with(
    dir: &Path,
    out: &mut dyn Write,
    compression: Option<CompressionOptions>,
    opts: &CaptureOptions,
) -> Result<Captured> {
    // Headers are 512-byte writes: batch them before they reach a file.
    let buffered = BufWriter::with_capacity(256 * 1024, out);
    let Some(c) = compression else {
        // Uncompressed, the blob is the tar: one hash serves as both
        // digests (hashing twice made a 1 GiB capture take 1.4 s, not 0.7).
        let mut tar = DigestWriter::new(buffered);
        walk_root(dir, &mut tar, opts)?;
        let (mut buffered, diff_id, size) = tar.finish();
        buffered.flush().map_err(Error::Output)?;
        return Ok(Captured {
            blob: diff_id.clone(),
            diff_id,
            blob_size: size,
            media_type: MEDIA_TYPE_TAR,
        });
    };
    let enc = Encoder::new(DigestWriter::new(buffered), &c).map_err(Error::Output)?;
    let mut tar = DigestWriter::new(enc);
    walk_root(dir, &mut tar, opts)?;
    let (enc, diff_id, _) = tar.finish();
    let blob = enc.finish().map_err(Error::Output)?;
    let media_type = c.compression.media_type();
    let (mut buffered, blob, blob_size) = blob.finish();
    buffered.flush().map_err(Error::Output)?;
    Ok(Captured {
        diff_id,
        blob,
        blob_size,
        media_type,
    })
}

/// The diffID of `dir`'s layer, without writing the tar anywhere.
pub fn diff_id(dir: &Path, opts: &CaptureOptions) -> Result<Digest> {
    Ok(capture(dir, &mut io::sink(), None, opts)?.diff_id)
}

struct Walker<'a> {
    out: &'a mut dyn Write,
    opts: &'a CaptureOptions,
    root: PathBuf,
    /// `opts.layers`, open.
    layers: Vec<OwnedFd>,
    /// (dev, ino, layer) of files with several links → the first path
    /// written.
    links: HashMap<(u64, u64, Option<usize>), Vec<u8>>,
    /// File contents pass through here: `io::copy`'s 8 KiB made a read
    /// call per 8 KiB of every layer.
    buf: Vec<u8>,
}

/// Size of the buffer file contents are read in.
const READ_BUF: usize = 1 << 20;

fn walk_root(dir: &Path, out: &mut dyn Write, opts: &CaptureOptions) -> Result<()> {
    let fd = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", dir, e))?;
    let layers = opts
        .layers
        .iter()
        .map(|l| {
            rfs::open(
                l,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open", l, e))
        })
        .collect::<Result<_>>()?;
    let mut w = Walker {
        out,
        opts,
        root: dir.to_path_buf(),
        layers,
        links: HashMap::new(),
        buf: Vec::new(),
    };
    w.dir(fd, b"")?;
    tarwrite::write_end(w.out).map_err(Error::Output)
}

impl Walker<'_> {
    fn host(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    /// Walks directory `dir` (at `prefix` in the tar); gives its fd back,
    /// reopened if it had to be closed meanwhile. The only recursive
    /// function of the walk: everything with big locals is in callees that
    /// are never inlined, so a level costs little stack.
    fn dir(&mut self, mut dir: OwnedFd, prefix: &[u8]) -> Result<OwnedFd> {
        let depth = prefix.iter().filter(|&&b| b == b'/').count();
        // A RUN step can nest directories deeper than PATH_MAX; refuse
        // rather than overflow the stack.
        if depth >= MAX_DEPTH {
            return Err(self.too_deep(prefix));
        }
        let names = self.names(dir.as_fd(), prefix)?;
        for name in names {
            let Some((sub, sub_prefix)) = self.visit(dir.as_fd(), prefix, &name)? else {
                continue;
            };
            if depth < HELD_FDS {
                self.dir(sub, &sub_prefix)?;
                continue;
            }
            let id = self.id_of(dir.as_fd(), prefix)?;
            drop(dir);
            let sub = self.dir(sub, &sub_prefix)?;
            dir = self.reopen_parent(sub, prefix, id)?;
        }
        Ok(dir)
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self, prefix: &[u8]) -> Error {
        // The first levels name the tree; all 1024 would fill a screen.
        let head: Vec<&[u8]> = prefix.split(|&b| b == b'/').take(8).collect();
        let at = [self.host(&head.join(&b'/')).as_os_str().as_bytes(), b"/..."].concat();
        Error::io(
            "walk",
            PathBuf::from(OsStr::from_bytes(&at)),
            io::Error::other(format!("directories nested deeper than {MAX_DEPTH} levels")),
        )
    }

    #[inline(never)]
    fn names(&self, dir: BorrowedFd<'_>, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        names(dir).map_err(|e| Error::io("read dir", self.host(prefix), e))
    }

    #[inline(never)]
    fn id_of(&self, dir: BorrowedFd<'_>, prefix: &[u8]) -> Result<(u64, u64)> {
        let st = rfs::fstat(dir).map_err(|e| Error::io("stat", self.host(prefix), e))?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Writes entry `name` of `dir`; a directory comes back to be walked.
    #[inline(never)]
    fn visit(
        &mut self,
        dir: BorrowedFd<'_>,
        prefix: &[u8],
        name: &[u8],
    ) -> Result<Option<Descend>> {
        let mut path = prefix.to_vec();
        path.extend_from_slice(name);
        let st = rfs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("stat", self.host(&path), e))?;
        self.entry(dir, name, &path, &st)
    }

    /// The directory holding `sub`, through `..`; it must be the one the
    /// walk came from (`id`): a tree that moved under the walk fails.
    #[inline(never)]
    fn reopen_parent(&self, sub: OwnedFd, prefix: &[u8], id: (u64, u64)) -> Result<OwnedFd> {
        let fail = |e: io::Error| Error::io("reopen", self.host(prefix), e);
        let parent = open_dir(sub.as_fd(), OsStr::new("..")).map_err(|e| fail(e.into()))?;
        let st = rfs::fstat(&parent).map_err(|e| fail(e.into()))?;
        if (st.st_dev, st.st_ino) != id {
            return Err(fail(io::Error::other(
                "the directory moved during the capture",
            )));
        }
        Ok(parent)
    }

    /// Writes one entry; a directory's contents are left to the caller.
    /// Never inlined: its locals (headers, xattrs) must not make every
    /// level of [`Walker::dir`]'s recursion bigger.
    #[inline(never)]
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        st: &Stat,
    ) -> Result<Option<Descend>> {
        let kind = FileType::from_raw_mode(st.st_mode);
        match kind {
            // A socket is a live endpoint, meaningless in an image.
            FileType::Socket => return Ok(None),
            FileType::CharacterDevice if st.st_rdev == 0 => {
                return self.whiteout(path, st).map(|()| None)
            }
            _ => {}
        }
        // A regular file is opened once, for its xattrs and its data: by
        // fd, its xattrs cost no walk through /proc.
        let file = match kind {
            FileType::RegularFile => Some(self.open_file(dir, name, path)?),
            _ => None,
        };
        let target = match &file {
            Some(f) => Target::Fd(f.as_fd()),
            None => Target::At(dir, name),
        };
        let LayerXattrs {
            kept,
            opaque,
            whiteout,
        } = self.layer_xattrs(target, path)?;
        let dev = || (rfs::major(st.st_rdev), rfs::minor(st.st_rdev));
        let written = match (kind, file) {
            (FileType::RegularFile, _) if whiteout => {
                return self.whiteout(path, st).map(|()| None)
            }
            (FileType::Directory, _) => return self.directory(dir, name, path, st, &kept, opaque),
            (FileType::RegularFile, Some(file)) => self.file(&file, path, st, &kept),
            (FileType::Symlink, _) => {
                let target = rfs::readlinkat(dir, OsStr::from_bytes(name), Vec::new())
                    .map_err(|e| Error::io("readlink", self.host(path), e))?;
                self.write(path, Kind::Symlink(target.as_bytes()), st, &kept)
            }
            (FileType::CharacterDevice, _) => {
                self.write(path, Kind::Char(dev().0, dev().1), st, &kept)
            }
            (FileType::BlockDevice, _) => {
                self.write(path, Kind::Block(dev().0, dev().1), st, &kept)
            }
            (FileType::Fifo, _) => self.write(path, Kind::Fifo, st, &kept),
            _ => Ok(()),
        };
        written.map(|()| None)
    }

    /// The xattrs that go into the layer (overlay's own dropped), and
    /// whether overlay marked the entry opaque. Overlay features whose
    /// meaning lives in xattrs (metacopy: data in a lower; redirect: a
    /// renamed dir) cannot be captured faithfully and are refused.
    fn layer_xattrs(&self, target: Target<'_>, path: &[u8]) -> Result<LayerXattrs> {
        let all =
            xattrs::read_all(target).map_err(|e| Error::io("read xattrs", self.host(path), e))?;
        let (mut opaque, mut whiteout) = (false, false);
        for (k, v) in &all {
            if k.starts_with(b"user.overlay.metacopy") || k.starts_with(b"user.overlay.redirect") {
                return Err(Error::UnsupportedOverlay {
                    path: self.host(path),
                    xattr: String::from_utf8_lossy(k).into_owned(),
                });
            }
            opaque |= OPAQUE.contains(&k.as_slice()) && v == b"y";
            whiteout |= XWHITEOUT.contains(&k.as_slice());
        }
        let kept = all
            .into_iter()
            .filter(|(k, _)| !xattrs::is_overlay(k))
            .collect();
        Ok(LayerXattrs {
            kept,
            opaque,
            whiteout,
        })
    }

    /// Writes a header-only entry.
    fn write(&mut self, path: &[u8], kind: Kind<'_>, st: &Stat, xattrs: &[Xattr]) -> Result<()> {
        let e = self.header(path, kind, st, xattrs);
        tarwrite::write_header(self.out, &e).map_err(Error::Output)
    }

    /// `path/`, then `path/.wh..wh..opq` if opaque; the contents are the
    /// caller's to walk.
    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        st: &Stat,
        xattrs: &[Xattr],
        opaque: bool,
    ) -> Result<Option<Descend>> {
        let entry_name = [path, b"/"].concat();
        self.write(&entry_name, Kind::Dir, st, xattrs)?;
        if opaque {
            let wh = [entry_name.as_slice(), b".wh..wh..opq"].concat();
            let e = Entry {
                mode: 0o644,
                ..self.header(&wh, Kind::File { size: 0 }, st, &[])
            };
            tarwrite::write_header(self.out, &e).map_err(Error::Output)?;
        }
        let sub = open_dir(dir, OsStr::from_bytes(name))
            .map_err(|e| Error::io("open", self.host(path), e))?;
        Ok(Some((sub, entry_name)))
    }

    /// A regular file, or a tar hardlink to the first path (in walk order)
    /// of an inode already written.
    fn file(&mut self, file: &File, path: &[u8], st: &Stat, xattrs: &[Xattr]) -> Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino, self.layer_of(path));
            if let Some(first) = self.links.get(&key).cloned() {
                return self.write(path, Kind::Hardlink(&first), st, xattrs);
            }
            self.links.insert(key, path.to_vec());
        }
        let size = st.st_size as u64;
        self.write(path, Kind::File { size }, st, xattrs)?;
        let dense = (st.st_blocks as u64).saturating_mul(512) >= size;
        self.file_data(file, path, size, dense)
    }

    /// The topmost of `opts.layers` holding `path`: where the overlay
    /// shows it from. Resolved beneath each layer, never through a link.
    fn layer_of(&self, path: &[u8]) -> Option<usize> {
        let how = rfs::ResolveFlags::BENEATH
            | rfs::ResolveFlags::NO_SYMLINKS
            | rfs::ResolveFlags::NO_MAGICLINKS
            | rfs::ResolveFlags::NO_XDEV;
        let rel = OsStr::from_bytes(path);
        self.layers.iter().position(|layer| {
            let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rfs::openat2(layer, rel, flags, Mode::empty(), how).is_ok()
        })
    }

    /// A deleted path: an empty `.wh.NAME` file in its parent.
    fn whiteout(&mut self, path: &[u8], st: &Stat) -> Result<()> {
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let mut wh = parent.to_vec();
        wh.extend_from_slice(b".wh.");
        wh.extend_from_slice(name);
        let e = self.header(&wh, Kind::File { size: 0 }, st, &[]);
        let e = Entry {
            mode: 0o644,
            uid: 0,
            gid: 0,
            ..e
        };
        tarwrite::write_header(self.out, &e).map_err(Error::Output)
    }

    fn header<'e>(
        &self,
        name: &'e [u8],
        kind: Kind<'e>,
        st: &Stat,
        xattrs: &'e [(Vec<u8>, Vec<u8>)],
    ) -> Entry<'e> {
        let mtime = st.st_mtime.max(0) as u64;
        Entry {
            name,
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: self.opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)),
            xattrs,
        }
    }

    /// Opens the regular file `dir/name` (at `path`) for reading, never
    /// through a symlink.
    fn open_file(&self, dir: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rfs::openat(dir, OsStr::from_bytes(name), flags, Mode::empty())
            .map(File::from)
            .map_err(|e| Error::io("open", self.host(path), e))
    }

    /// Streams exactly `size` bytes (the header promised them), holes
    /// without reading them: a file that shrank meanwhile is an error, not
    /// a corrupt tar.
    fn file_data(&mut self, file: &File, path: &[u8], size: u64, dense: bool) -> Result<()> {
        let host = self.host(path);
        if self.buf.is_empty() && size > 0 {
            self.buf = vec![0; READ_BUF];
        }
        sparse::copy_out(file, size, dense, &mut self.buf, self.out, &host)?;
        tarwrite::write_padding(self.out, size).map_err(Error::Output)
    }
}

fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory, byte-sorted, without `.` and `..`, and
/// without names that are listed but not there. Overlay lists a whiteout
/// in a directory it does not merge (a layer's dir over a lower symlink or
/// file, with a `.wh.` entry inside) yet looks it up as missing: every
/// reader of a merged rootfs (capture, COPY, export) then failed with a
/// bare ENOENT. Such a whiteout hides nothing, so it is left out; only
/// character devices (what a whiteout is) are checked.
pub fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for entry in rfs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let maybe_whiteout = matches!(
            entry.file_type(),
            FileType::CharacterDevice | FileType::Unknown
        );
        if maybe_whiteout
            && rfs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW).err()
                == Some(rustix::io::Errno::NOENT)
        {
            continue;
        }
        out.push(name.to_vec());
    }
    out.sort();
    Ok(out)
}
