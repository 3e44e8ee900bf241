//! COPY (and ADD of local files): from the context or a stage's read-only
//! rootfs into a stage's rootfs mounted over a fresh upper dir (or, for
//! `--link`, into an empty dir). Paths are resolved inside their roots;
//! sources are expanded with glob patterns; trailing-slash and
//! multiple-source rules are Docker's; `--exclude` drops what it names
//! (the context's `.dockerignore` is applied before: the root is the
//! filtered view of `context.rs`); `--parents` keeps the source's path
//! (below a `/./` pivot) under the destination.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::chmod::Chmod;
use rustix::fs::{FileType, Mode, OFlags};

use super::dockerignore::Ignore;
use super::fsops::{self, Meta, Root};
use super::glob;
use super::hardlinks::Links;
use super::share::{Layers, Linker, Slot};

/// How copied entries are owned and moded.
#[derive(Clone, Copy, Debug)]
pub struct Attrs<'a> {
    /// `--chown`, or 0:0 for the context; None keeps the source owner.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<&'a Chmod>,
}

impl Attrs<'_> {
    /// The mode a copied entry whose own mode is `mode` gets.
    pub fn mode_of(&self, mode: u32, is_dir: bool) -> u32 {
        self.mode.map_or(mode, |c| c.apply(mode, is_dir))
    }

    /// The mode of the directories COPY creates on the way to its
    /// destination (BuildKit: an octal `--chmod`'s, else 0755).
    fn new_dir_mode(&self) -> u32 {
        self.mode.map_or(0o755, Chmod::parent_dir_mode)
    }
}

/// What a COPY reads from: a root and the filters and layout rules that
/// apply to its sources.
#[derive(Clone, Copy)]
pub struct From<'a> {
    pub root: &'a Root,
    /// `--exclude` patterns: matched against paths below each source (and
    /// a wildcard's matches, against their path below the wildcard's
    /// fixed prefix).
    pub exclude: Option<&'a Ignore>,
    /// `--parents`: a source keeps its path below the root, or below the
    /// `/./` pivot it contains.
    pub parents: bool,
    /// When the root is a stage's or an image's layers: links files that
    /// stay as they are instead of copying them.
    pub linker: Option<&'a Linker>,
}

impl<'a> From<'a> {
    /// Plain sources under `root`: no filter, no `--parents`.
    pub fn plain(root: &'a Root) -> From<'a> {
        From {
            root,
            exclude: None,
            parents: false,
            linker: None,
        }
    }
}

/// One entry a source pattern selected.
pub struct Selected {
    /// Its path below the root.
    pub rel: PathBuf,
    /// With `--parents`: the path it keeps under the destination.
    pub kept: Option<PathBuf>,
}

/// The entries `sources` name under `from.root`, minus the files
/// `--exclude` drops (a directory a wildcard matches is copied, its
/// entries filtered, as BuildKit copies each match: `ADD --exclude=* dir* /6`
/// makes an empty /6). A source without wildcards that names nothing is an
/// error; a wildcard that matches nothing is not, even when every source
/// is one (BuildKit copies with AllowEmptyWildcard: `COPY package.json yarn.lock* ./`).
pub fn select(from: &From<'_>, sources: &[String]) -> Result<Vec<Selected>> {
    let mut matched = Vec::new();
    for s in sources {
        let fixed = fixed_prefix(&s.replacen("/./", "/", 1));
        let wild = fixed != fsops::relative(Path::new(&s.replacen("/./", "/", 1)));
        let found: Vec<Selected> = expand_source(from, s)?
            .into_iter()
            .filter(|sel| {
                let p = &sel.rel;
                !wild
                    || from
                        .exclude
                        .is_none_or(|x| !x.excluded(p.strip_prefix(&fixed).unwrap_or(p)))
                    || from
                        .root
                        .stat(p, true)
                        .is_ok_and(|m| m.kind == FileType::Directory)
            })
            .collect();
        if found.is_empty() && !glob::has_wildcard(s) {
            return Err(not_found(from.root, s));
        }
        matched.extend(found);
    }
    Ok(matched)
}

/// What one source names. With `--parents`, as BuildKit does: the part
/// before a `/./` pivot is a plain wildcard pattern; each of its matches
/// keeps the path of what the rest (where `**` spans directories)
/// matches below it.
fn expand_source(from: &From<'_>, source: &str) -> Result<Vec<Selected>> {
    if !from.parents {
        let found = glob::expand(from.root, source)?;
        return Ok(found
            .into_iter()
            .map(|rel| Selected { rel, kept: None })
            .collect());
    }
    let (pivots, rest) = pivots(from.root, source)?;
    let mut found = Vec::new();
    for pivot in pivots {
        for rel in glob::expand_below(from.root, &pivot, rest, true)? {
            let kept = rel.strip_prefix(&pivot).unwrap_or(&rel).to_path_buf();
            found.push(Selected {
                rel,
                kept: Some(kept),
            });
        }
    }
    Ok(found)
}

/// A `--parents` source's pivots (the matches of its part before `/./`,
/// or the root when it has none) and the pattern below them. A pivot
/// without wildcards must exist, as in BuildKit, where it is the path
/// copied from.
fn pivots<'s>(root: &Root, source: &'s str) -> Result<(Vec<PathBuf>, &'s str)> {
    let Some((pivot, rest)) = source.split_once("/./") else {
        return Ok((vec![PathBuf::new()], source));
    };
    let found = glob::expand(root, pivot)?;
    if found.is_empty() && !glob::has_wildcard(pivot) {
        return Err(not_found(root, pivot));
    }
    Ok((found, rest))
}

/// The components of a source pattern before its first wildcard.
fn fixed_prefix(pattern: &str) -> PathBuf {
    fsops::relative(Path::new(pattern))
        .components()
        .take_while(|c| !glob::has_meta(&c.as_os_str().to_string_lossy()))
        .collect()
}

/// Whether the `--exclude` patterns (relative to `base`, the source being
/// copied) drop `child`, a path below the root; an excluded directory is
/// still entered when an exception may re-include something below it.
pub fn dropped(exclude: Option<&Ignore>, base: &Path, child: &Path, is_dir: bool) -> bool {
    exclude.is_some_and(|x| {
        let p = child.strip_prefix(base).unwrap_or(child);
        x.excluded(p) && !(is_dir && x.may_reinclude_below(p))
    })
}

/// Opens the source `rel`, a symlink there followed inside the root; the
/// error names the path, and the link's target when that is what is
/// missing (a link out of the context leads nowhere inside it).
pub fn open_source(root: &Root, rel: &Path, flags: OFlags) -> Result<OwnedFd> {
    root.resolve(rel, flags, true).map_err(|e| {
        let link = root
            .resolve(rel, OFlags::PATH, false)
            .ok()
            .and_then(|fd| rustix::fs::readlinkat(&fd, "", Vec::new()).ok());
        match link {
            Some(target) if e.raw_os_error() == Some(libc::ENOENT) => anyhow::anyhow!(
                "{}: a symlink to {}: no such file or directory in {} (a link is followed inside it)",
                rel.display(),
                target.to_string_lossy(),
                root.name.display()
            ),
            _ => anyhow::Error::from(e).context(format!("{}: cannot open", rel.display())),
        }
    })
}

/// The error for a source that names nothing: a dangling symlink says
/// where it points.
fn not_found(root: &Root, source: &str) -> anyhow::Error {
    let rel = fsops::relative(Path::new(source));
    if !glob::has_meta(source) && root.stat(&rel, false).is_ok() {
        if let Err(e) = open_source(root, &rel, OFlags::PATH) {
            return e;
        }
    }
    anyhow::anyhow!(
        "{source}: no such file or directory in {}",
        root.name.display()
    )
}

/// One COPY: `sources` (relative to `from.root`, may hold wildcards) to
/// `dest` (absolute inside `dst`). Returns the number of entries written.
pub fn copy(
    from: &From<'_>,
    sources: &[String],
    dst: &Root,
    dest: &str,
    attrs: Attrs<'_>,
) -> Result<u64> {
    let matched = select(from, sources)?;
    let dest_is_dir = from.parents
        || dest.ends_with('/')
        || matched.len() > 1
        || dst
            .stat(Path::new(dest), true)
            .is_ok_and(|m| m.kind == FileType::Directory);
    let dest = fsops::relative(Path::new(dest));
    let new_dir_owner = attrs.owner.unwrap_or((0, 0));
    let links = Links::over(from.linker.map(Linker::layers));
    let new_dir_mode = attrs.new_dir_mode();
    // With --parents BuildKit copies from each pivot with include
    // patterns: the destination is made even when they match nothing.
    if from.parents && matched.is_empty() {
        let mut any = false;
        for s in sources {
            any |= !pivots(from.root, s)?.0.is_empty();
        }
        if any {
            dst.mkdir_all(&dest, new_dir_mode, new_dir_owner)?;
        }
    }
    let mut count = 0;
    for Selected { rel, kept } in matched {
        let walk = Walk {
            exclude: from.exclude,
            base: &rel,
            attrs,
            linker: from.linker,
            links: &links,
            root: &from.root.name,
        };
        let fd = open_source(from.root, &rel, OFlags::PATH)?;
        let meta = fsops::meta(fd.as_fd())?;
        if meta.kind == FileType::Directory {
            // A directory's contents are copied, not the directory itself
            // (with --parents, into the path it keeps).
            let target = kept.map_or(dest.clone(), |k| dest.join(k));
            let dir = dst.mkdir_all(&target, new_dir_mode, new_dir_owner)?;
            let src = open_source(from.root, &rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let here = walk.dest(Some(src.as_fd()), dir.as_fd(), false)?;
            count += walk.tree(src.as_fd(), &here, &rel)?;
            continue;
        }
        let target = match kept {
            Some(k) => dest.join(k),
            None if dest_is_dir => dest.join(rel.file_name().context("a source names no file")?),
            None => dest.clone(),
        };
        let parent = target.parent().unwrap_or(Path::new(""));
        let name = target
            .file_name()
            .context("the destination names no file")?;
        let dir = dst.mkdir_all(parent, new_dir_mode, new_dir_owner)?;
        // Only a regular file is opened for reading: opening a fifo would
        // wait for a writer, a socket cannot be opened.
        let src = match meta.kind {
            FileType::RegularFile => open_source(from.root, &rel, OFlags::RDONLY)?,
            _ => fd,
        };
        let here = walk.dest(None, dir.as_fd(), false)?;
        let source = match from.linker {
            Some(linker) => linker.layers().path_of(src.as_fd())?,
            None => None,
        };
        walk.entry(src.as_fd(), meta, &here, name, &rel, source.as_deref())
            .with_context(|| format!("copy {} to /{}", rel.display(), target.display()))?;
        count += 1;
    }
    Ok(count)
}

/// Copies a whole rootfs (a mounted image: the overlay of `layers`, top
/// first, or a plain dir when there are none) into the directory `dest`.
pub fn copy_rootfs(root: &Path, layers: &[PathBuf], dest: &Path, attrs: Attrs<'_>) -> Result<()> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let from = open(root).with_context(|| format!("open {}", root.display()))?;
    let to = open(dest).with_context(|| format!("open {}", dest.display()))?;
    let layers = match layers {
        [] => None,
        _ => Some(Layers::open(layers, from.as_fd())?),
    };
    let walk = Walk {
        exclude: None,
        base: Path::new(""),
        attrs,
        linker: None,
        links: &Links::over(layers.as_ref()),
        root,
    };
    let here = walk.dest(Some(from.as_fd()), to.as_fd(), false)?;
    walk.tree(from.as_fd(), &here, Path::new(""))?;
    Ok(())
}

struct Walk<'a> {
    exclude: Option<&'a Ignore>,
    /// The source path `--exclude` patterns are relative to.
    base: &'a Path,
    attrs: Attrs<'a>,
    linker: Option<&'a Linker>,
    links: &'a Links<'a>,
    /// The source tree, for messages.
    root: &'a Path,
}

/// A destination directory as the walk knows it: what its entries need
/// is worked out once for all of them.
struct Dest<'a> {
    fd: BorrowedFd<'a>,
    /// With a linker: the source dir's path in the source overlay (None
    /// when not in it) and this dir's path below the destination root.
    paths: Option<(Option<PathBuf>, PathBuf)>,
    /// The COPY made it: its slots are empty, nothing to clear or cancel.
    fresh: bool,
}

fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Walk<'_> {
    /// The destination dir `to`, filled from the source dir `from` (None:
    /// a single file is copied into it).
    fn dest<'d>(
        &self,
        from: Option<BorrowedFd<'_>>,
        to: BorrowedFd<'d>,
        fresh: bool,
    ) -> Result<Dest<'d>> {
        let paths = match self.linker {
            Some(linker) => {
                let source = match from {
                    Some(from) => linker.layers().path_of(from)?,
                    None => None,
                };
                Some((source, linker.dest_rel(to)?))
            }
            None => None,
        };
        Ok(Dest {
            fd: to,
            paths,
            fresh,
        })
    }

    /// Copies the contents of directory `from` (at `rel` in its root) into
    /// directory `to`.
    fn tree(&self, from: BorrowedFd<'_>, to: &Dest<'_>, rel: &Path) -> Result<u64> {
        fsops::check_depth(self.root, rel)?;
        let mut count = 0;
        for name in fsops::list(from)? {
            let name = fsops::os(&name);
            let child = rel.join(name);
            let meta = fsops::meta(open_at(from, name, OFlags::PATH)?.as_fd())?;
            let is_dir = meta.kind == FileType::Directory;
            if dropped(self.exclude, self.base, &child, is_dir) {
                continue;
            }
            let fd = match meta.kind {
                FileType::RegularFile | FileType::Directory => open_at(from, name, OFlags::RDONLY)?,
                _ => open_at(from, name, OFlags::PATH)?,
            };
            count += if is_dir {
                let made = to.fresh || {
                    self.cancel_link(to, name);
                    fsops::clear_slot(to.fd, name)?.is_none()
                };
                if made {
                    rustix::fs::mkdirat(to.fd, name, Mode::from_raw_mode(0o700))?;
                }
                let sub = open_at(to.fd, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let here = self.dest(Some(fd.as_fd()), sub.as_fd(), made)?;
                let n = self.tree(fd.as_fd(), &here, &child)?;
                self.finish(to.fd, name, meta, false)?;
                if let (Some(linker), Some((_, dir_rel))) = (self.linker, &to.paths) {
                    let slot = Slot {
                        dir: to.fd,
                        dir_rel,
                        name,
                    };
                    linker.stamp(slot, meta.mtime);
                }
                n + 1
            } else {
                let source = match (&to.paths, meta.kind) {
                    (Some((Some(dir), _)), FileType::RegularFile) => Some(dir.join(name)),
                    _ => None,
                };
                self.entry(fd.as_fd(), meta, to, name, &child, source.as_deref())?;
                1
            };
        }
        Ok(count)
    }

    /// Copies one entry (whose fd is `from`; the source overlay shows it at
    /// `source`, for the linker) to `to/name`.
    fn entry(
        &self,
        from: BorrowedFd<'_>,
        meta: Meta,
        to: &Dest<'_>,
        name: &OsStr,
        rel: &Path,
        source: Option<&Path>,
    ) -> Result<()> {
        let dir = to.fd;
        if !to.fresh && fsops::clear_slot(dir, name)?.is_some() {
            bail!(
                "{}: cannot overwrite a directory with a file",
                name.to_string_lossy()
            );
        }
        if let (FileType::RegularFile, Some(linker), Some((_, dir_rel))) =
            (meta.kind, self.linker, &to.paths)
        {
            let slot = Slot { dir, dir_rel, name };
            if linker.defer(source, &meta, self.attrs, slot)? {
                return Ok(());
            }
        }
        self.cancel_link(to, name);
        match meta.kind {
            FileType::RegularFile => {
                if self.links.link(from, &meta, dir, name)? {
                    return Ok(());
                }
                fsops::copy_file(from, dir, name, meta.mode)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(from, "", Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dir, name)?;
            }
            FileType::Directory => {
                rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
                let sub = open_at(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let here = self.dest(Some(from), sub.as_fd(), true)?;
                self.tree(from, &here, rel)?;
            }
            FileType::Fifo => {
                rustix::fs::mknodat(dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)?;
            }
            // BuildKit's context transfer and copy make a socket an empty
            // regular file with the socket's mode.
            FileType::Socket => {
                fsops::create_empty(dir, name)?;
            }
            // A rootless build cannot make devices.
            _ => return Ok(()),
        }
        self.finish(dir, name, meta, meta.kind == FileType::Symlink)?;
        if meta.kind == FileType::RegularFile {
            self.links.copied(from, &meta, dir, name)?;
        }
        Ok(())
    }

    /// Something other than a link is written to `to/name`.
    fn cancel_link(&self, to: &Dest<'_>, name: &OsStr) {
        if let (Some(linker), Some((_, dir_rel)), false) = (self.linker, &to.paths, to.fresh) {
            linker.cancel(Slot {
                dir: to.fd,
                dir_rel,
                name,
            });
        }
    }

    fn finish(&self, dir: BorrowedFd<'_>, name: &OsStr, meta: Meta, symlink: bool) -> Result<()> {
        let owner = self.attrs.owner.unwrap_or((meta.uid, meta.gid));
        let mode = self
            .attrs
            .mode_of(meta.mode, meta.kind == FileType::Directory);
        fsops::set_owner_mode(dir, name, owner, Some(mode), symlink)?;
        fsops::set_mtime(dir, name, meta.mtime)
    }
}

/// Where a relative destination lands: under WORKDIR.
pub fn absolute_dest(dest: &str, workdir: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let mut p = PathBuf::from(if workdir.is_empty() { "/" } else { workdir });
    p.push(dest);
    let mut s = p.to_string_lossy().into_owned();
    if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && !s.ends_with('/') {
        s.push('/');
    }
    s
}
