//! `RUN --mount`, after BuildKit: each expanded `--mount` value becomes a
//! sandbox mount, prepared in kiln's own mount namespace before the step
//! (the step's namespace is a copy of it) and released after it.
//!
//! - `bind`: a dir or file of the context (its view without what
//!   `.dockerignore` excludes, `context.rs`), of a named context, or of a
//!   stage's or image's rootfs (its layers mounted read-only). The source
//!   is resolved inside its root (`openat2(RESOLVE_IN_ROOT)`) and bound by
//!   fd. Read-only unless `rw`; then an overlay with a throwaway upper (a
//!   copy, for a file) takes the writes.
//! - `cache`: `<store>/cachemounts/<sha256 of the id>/data`, kept across
//!   builds; the id is hashed, so it can never name another path.
//!   `sharing=locked` holds an exclusive flock for the step, `private`
//!   takes the first instance (`data`, `data-1`, …) no one holds, `shared`
//!   locks nothing.
//! - `tmpfs`: a fresh tmpfs.
//! - `secret`: a `kiln build --secret` value, written to a tmpfs of kiln's
//!   and bound read-only, and/or set as an environment variable.
//! - `ssh`: a socket of kiln's relaying to a `kiln build --ssh` agent
//!   (`mounts/ssh.rs`).
//!
//! Nothing mounted reaches the layer: the sandbox removes the mount points
//! it had to create and the parent copy-ups that creating them caused. A
//! step's cache key covers the mount specs (they are in the instruction)
//! and [`Builder::mounts_key`]: what a bind reads, never a secret's value.
//! Secrets have their own module (`mounts/secrets.rs`).

mod secrets;
mod ssh;

pub use secrets::Secrets;
pub use ssh::SshAgents;

use std::ffi::OsString;
use std::fs::{self, File, TryLockError};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::instructions::{Mount, MountType, Run, Sharing};
use kiln_dockerfile::resolve::{Platform, Source};
use kiln_sandbox::{bind_fd, mount_overlay, Mounted, Upper};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use super::copy::{self, Attrs};
use super::fsops::{self, Root};
use super::{cache, Builder, StageState};

/// Where cache mounts live, under the store root.
const CACHE_MOUNTS: &str = "cachemounts";

/// A RUN step's mounts while it runs: the sandbox's mounts, the secrets'
/// environment variables, and what kiln holds for them (mounts in its own
/// namespace, cache locks). Dropping it, after the step, unmounts and
/// unlocks.
pub(super) struct StepMounts {
    pub mounts: Vec<kiln_sandbox::Mount>,
    /// The step's scratch dir: each mount's own scratch paths are in it.
    dir: PathBuf,
    env: Vec<(String, Vec<u8>)>,
    held: Vec<Mounted>,
    locks: Vec<File>,
    /// Cache ids this step already took, with their dirs.
    caches: Vec<(String, PathBuf)>,
    secrets: Option<PathBuf>,
    /// Agent sockets being relayed.
    proxies: Vec<ssh::Proxy>,
    /// The stage's platform: a `from=` image is read for it.
    platform: Platform,
}

impl StepMounts {
    /// Sets the secrets' variables in `env` (`KEY=VALUE` entries),
    /// replacing entries of the same name.
    pub fn set_env(&self, env: &mut Vec<OsString>) {
        for (var, value) in &self.env {
            let mut entry = format!("{var}=").into_bytes();
            env.retain(|e| !e.as_bytes().starts_with(&entry));
            entry.extend_from_slice(value);
            env.push(OsString::from_vec(entry));
        }
    }

    fn scratch(&self, index: usize, what: &str) -> PathBuf {
        self.dir.join(format!("mount-{index}.{what}"))
    }
}

impl Builder<'_> {
    /// Prepares `run`'s mounts, with scratch paths in the step's dir.
    pub(super) fn step_mounts(
        &self,
        state: &StageState,
        run: &Run,
        dir: &Path,
    ) -> Result<StepMounts> {
        let mut out = StepMounts {
            mounts: Vec::new(),
            dir: dir.to_path_buf(),
            env: Vec::new(),
            held: Vec::new(),
            locks: Vec::new(),
            caches: Vec::new(),
            secrets: None,
            proxies: Vec::new(),
            platform: state.platform.clone(),
        };
        for (i, m) in run.mounts.iter().enumerate() {
            let spec = run.mount_specs.get(i).map_or("", String::as_str);
            self.add_mount(state, m, i, &mut out)
                .with_context(|| format!("--mount={spec}"))?;
        }
        // Parents before children, as runc orders them.
        out.mounts
            .sort_by_key(|m| target_of(m).components().count());
        Ok(out)
    }

    fn add_mount(
        &self,
        state: &StageState,
        m: &Mount,
        i: usize,
        out: &mut StepMounts,
    ) -> Result<()> {
        let workdir = state.workdir();
        let mount = match m.kind {
            MountType::Bind => kiln_sandbox::Mount::Bind {
                target: target_path(m.target.as_deref(), &workdir)?,
                source: self.bind_source(m, i, out)?,
                readonly: m.read_only,
            },
            MountType::Cache => {
                let target = target_path(m.target.as_deref(), &workdir)?;
                kiln_sandbox::Mount::Bind {
                    source: self.cache_dir(m, &target, i, out)?,
                    target,
                    readonly: m.read_only,
                }
            }
            MountType::Tmpfs => kiln_sandbox::Mount::Tmpfs {
                target: target_path(m.target.as_deref(), &workdir)?,
                size: m.size,
                mode: 0o1777,
            },
            MountType::Secret => match self.secret(m, &workdir, i, out)? {
                Some(mount) => mount,
                None => return Ok(()),
            },
            MountType::Ssh => match self.ssh_mount(m, &workdir, i, out)? {
                Some(mount) => mount,
                None => return Ok(()),
            },
        };
        out.mounts.push(mount);
        Ok(())
    }

    /// What a `from=` names: a stage by name or index, else an image or a
    /// named context (the resolver checked the name).
    pub(super) fn source_named(&self, from: &str) -> Source {
        let graph = &self.req.graph;
        // A `--build-context` of a stage's name replaces that stage.
        if self
            .req
            .contexts
            .keys()
            .any(|k| k.eq_ignore_ascii_case(from))
        {
            return Source::Image(from.to_string());
        }
        let named = graph.stages.iter().position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(from))
        });
        match named.or_else(|| from.parse().ok().filter(|&i| i < graph.stages.len())) {
            Some(i) => Source::Stage(i),
            None => Source::Image(from.to_string()),
        }
    }

    /// The root dir of a mount's `from=`, mounted for the step if needed.
    fn mount_root(&self, from: &str, i: usize, out: &mut StepMounts) -> Result<PathBuf> {
        let target = out.scratch(i, "root");
        fs::create_dir_all(&target).with_context(|| format!("create {}", target.display()))?;
        let source = Some(self.source_named(from));
        let root = self.root_of_from(from, source, &out.platform, &target)?;
        if let Some(super::isolation::ReadView::Mounted(m)) = root.mount {
            out.held.push(m);
        }
        Ok(root.dir)
    }

    /// The host path bound for a bind mount: the source resolved inside
    /// its root (the context's filtered view), bound (read-only) or
    /// overlaid (writable).
    fn bind_source(&self, m: &Mount, i: usize, out: &mut StepMounts) -> Result<PathBuf> {
        let rel = clean_rel(m.source.as_deref().unwrap_or("."));
        let (root, what) = match &m.from {
            None => (self.context_root()?, "the build context".to_string()),
            Some(from) => (
                Root::open(&self.mount_root(from, i, out)?)?,
                format!("{from:?}"),
            ),
        };
        let src = copy::open_source(&root, &rel, OFlags::PATH)
            .with_context(|| format!("source /{}: not found in {what}", rel.display()))?;
        let is_dir = fsops::meta(src.as_fd())?.kind == FileType::Directory;
        let at = out.scratch(i, "src");
        if m.read_only {
            mount_point(&at, is_dir)?;
            out.held.push(bind_fd(src.as_fd(), &at, true)?);
        } else if !is_dir {
            // A writable file: the step writes a copy.
            copy_out(&root, &rel, &at)?;
        } else {
            let (lowers, _keep) = match &m.from {
                None => self.context_view()?.layers_of(src.as_fd())?,
                Some(_) => (vec![fsops::proc_path(src.as_fd())], None),
            };
            fs::create_dir_all(&at).with_context(|| format!("create {}", at.display()))?;
            let (upper, work) = (out.scratch(i, "upper"), out.scratch(i, "work"));
            make_upper(&upper, &work, src.as_fd())?;
            let upper = Upper {
                upper: &upper,
                work: &work,
            };
            let mount =
                mount_overlay(&lowers, Some(upper), &at).context("mounting the bind source")?;
            out.held.push(mount);
        }
        Ok(at)
    }

    /// A cache mount's dir, made on first use and held as `sharing` says
    /// until the step ends.
    fn cache_dir(
        &self,
        m: &Mount,
        target: &Path,
        i: usize,
        out: &mut StepMounts,
    ) -> Result<PathBuf> {
        let id =
            m.id.clone()
                .unwrap_or_else(|| target.to_string_lossy().into_owned());
        if let Some((_, dir)) = out.caches.iter().find(|(taken, _)| *taken == id) {
            // The same cache twice in one step: one holder, no self-deadlock.
            return Ok(dir.clone());
        }
        let base = self
            .store
            .root()
            .join(CACHE_MOUNTS)
            .join(cache::key("", &[b"cache-mount", id.as_bytes()]));
        fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
        let (dir, lock) = take_instance(&base, m.sharing.unwrap_or(Sharing::Shared))?;
        out.locks.extend(lock);
        if self.req.no_cache && super::lock(&self.fresh_caches).insert(dir.clone()) {
            // As BuildKit's --no-cache: the build starts the cache anew
            // (its later steps share the new one, later builds keep it).
            // The old one goes to the step's scratch dir, removed with it.
            let stale = out.scratch(i, "stale-cache");
            match fs::rename(&dir, &stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("setting aside {}", dir.display()))
                }
                _ => {}
            }
        }
        if fs::symlink_metadata(&dir).is_err() {
            self.create_cache(m, &dir, i, out)
                .with_context(|| format!("creating the cache {id:?}"))?;
        }
        out.caches.push((id, dir.clone()));
        Ok(dir)
    }

    /// Makes a cache dir: seeded from `from`/`source` if given, with the
    /// mount's mode and owner, renamed into place (a concurrent creator's
    /// dir wins).
    fn create_cache(&self, m: &Mount, dir: &Path, i: usize, out: &mut StepMounts) -> Result<()> {
        let tmp = out.scratch(i, "cache");
        fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        if let Some(from) = &m.from {
            let root = Root::open(&self.mount_root(from, i, out)?)?;
            let rel = clean_rel(m.source.as_deref().unwrap_or("."));
            let src = root
                .resolve(&rel, OFlags::RDONLY | OFlags::DIRECTORY, true)
                .with_context(|| {
                    format!("source /{}: no such directory in {from:?}", rel.display())
                })?;
            let none = Attrs {
                owner: None,
                mode: None,
            };
            copy::copy_rootfs(&fsops::proc_path(src.as_fd()), &[], &tmp, none)?;
        }
        let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
        set_owner_mode(&tmp, owner, m.mode.unwrap_or(0o755))?;
        match rfs::renameat_with(rfs::CWD, &tmp, rfs::CWD, dir, rfs::RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => {
                fs::remove_dir_all(&tmp).with_context(|| format!("remove {}", tmp.display()))
            }
            Err(e) => Err(e).with_context(|| format!("rename into {}", dir.display())),
        }
    }

    /// What a RUN's mounts add to its cache key (the specs themselves are
    /// in the instruction): for a bind of the context or a stage a digest
    /// of the files it shows, for another `from=` the source's key, for a
    /// secret whether it was given — never its value.
    pub(super) fn mounts_key(&self, run: &Run, platform: &Platform) -> Result<String> {
        let mut key = String::new();
        for m in &run.mounts {
            let part = match (m.kind, &m.from) {
                (MountType::Bind, Some(from)) => match self.source_named(from) {
                    Source::Stage(i) => self.stage_mount_digest(from, i, m)?,
                    source => self.key_of_source(from, Some(source), platform)?,
                },
                (MountType::Cache, Some(from)) => {
                    self.key_of_source(from, Some(self.source_named(from)), platform)?
                }
                (MountType::Bind, None) => self.context_digest(m)?,
                (MountType::Secret, _) => self.secret_key(m),
                _ => String::new(),
            };
            key.push_str(&part);
            key.push('\n');
        }
        Ok(key)
    }

    /// The digest of what a bind of a stage shows (`content_key.rs`).
    fn stage_mount_digest(&self, from: &str, stage: usize, m: &Mount) -> Result<String> {
        let rel = clean_rel(m.source.as_deref().unwrap_or("."));
        let what = [b"mount".as_slice(), rel.as_os_str().as_bytes()];
        self.stage_content_digest(from, stage, &what, |root, memo| {
            cache::tree_digest(root, &rel, memo)
                .with_context(|| format!("--mount from={from} source /{}", rel.display()))
        })
    }

    /// The digest of the context files a bind mount shows.
    fn context_digest(&self, m: &Mount) -> Result<String> {
        let rel = clean_rel(m.source.as_deref().unwrap_or("."));
        let root = self.context_root()?;
        cache::tree_digest(&root, &rel, &self.memo).map_err(|e| {
            let source = format!("--mount source /{}", rel.display());
            // The path as written says why, when it names an ignored entry.
            if !rel.as_os_str().is_empty() && self.ignore.excluded(&rel) {
                anyhow::anyhow!("{source}: excluded by .dockerignore")
            } else {
                e.context(format!("{source}: not found in the build context"))
            }
        })
    }
}

/// The cache instance to use and the lock that holds it.
fn take_instance(base: &Path, sharing: Sharing) -> Result<(PathBuf, Option<File>)> {
    let data = |n: usize| match n {
        0 => base.join("data"),
        n => base.join(format!("data-{n}")),
    };
    let open_lock = |n: usize| {
        let path = match n {
            0 => base.join("lock"),
            n => base.join(format!("lock-{n}")),
        };
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))
    };
    match sharing {
        Sharing::Shared => Ok((data(0), None)),
        Sharing::Locked => {
            let lock = open_lock(0)?;
            lock.lock().context("locking the cache")?;
            Ok((data(0), Some(lock)))
        }
        Sharing::Private => {
            let mut n = 0;
            loop {
                let lock = open_lock(n)?;
                match lock.try_lock() {
                    Ok(()) => return Ok((data(n), Some(lock))),
                    Err(TryLockError::WouldBlock) => n += 1,
                    Err(TryLockError::Error(e)) => return Err(e).context("locking the cache"),
                }
            }
        }
    }
}

fn target_of(m: &kiln_sandbox::Mount) -> &Path {
    match m {
        kiln_sandbox::Mount::Bind { target, .. } | kiln_sandbox::Mount::Tmpfs { target, .. } => {
            target
        }
    }
}

/// A mount target made absolute (relative ones are in the working dir)
/// and clean; the root itself is refused.
fn target_path(target: Option<&str>, workdir: &str) -> Result<PathBuf> {
    let t = target.unwrap_or("");
    let path = if t.starts_with('/') {
        clean_abs(t)
    } else {
        clean_abs(&format!("{workdir}/{t}"))
    };
    if path == Path::new("/") {
        bail!("the mount target {t:?} is the root: mount below /");
    }
    Ok(path)
}

/// Go's `path.Clean` of an absolute path: no `.`, `..` (stopping at /)
/// or empty components.
pub(super) fn clean_abs(p: &str) -> PathBuf {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    PathBuf::from(format!("/{}", parts.join("/")))
}

/// A source path relative to its root, clean ("" is the root itself).
fn clean_rel(p: &str) -> PathBuf {
    fsops::relative(&clean_abs(&format!("/{p}")))
}

/// An empty dir or file to mount on.
fn mount_point(at: &Path, dir: bool) -> Result<()> {
    let made = if dir {
        fs::create_dir_all(at)
    } else {
        File::create(at).map(drop)
    };
    made.with_context(|| format!("create {}", at.display()))
}

/// An overlay upper and work dir; the upper (the merged root) gets the
/// source dir's mode and owner.
fn make_upper(upper: &Path, work: &Path, like: BorrowedFd<'_>) -> Result<()> {
    for d in [upper, work] {
        fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let meta = fsops::meta(like)?;
    set_owner_mode(upper, (meta.uid, meta.gid), meta.mode)
}

/// Copies the file `rel` of `root` to `at`, with its mode and owner.
fn copy_out(root: &Root, rel: &Path, at: &Path) -> Result<()> {
    let src = root.resolve(rel, OFlags::RDONLY, true)?;
    let meta = fsops::meta(src.as_fd())?;
    let (dir, name) = parent_and_name(at)?;
    fsops::copy_file(src.as_fd(), dir.as_fd(), name, meta.mode)
        .with_context(|| format!("copy /{} for the step", rel.display()))?;
    fsops::set_owner_mode(
        dir.as_fd(),
        name,
        (meta.uid, meta.gid),
        Some(meta.mode),
        false,
    )
}

/// chown (clear error for an unmapped id), then chmod.
fn set_owner_mode(path: &Path, owner: (u32, u32), mode: u32) -> Result<()> {
    let (dir, name) = parent_and_name(path)?;
    fsops::set_owner_mode(dir.as_fd(), name, owner, Some(mode), false)
}

fn parent_and_name(path: &Path) -> Result<(OwnedFd, &std::ffi::OsStr)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} names no file", path.display());
    };
    let dir = rfs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", parent.display()))?;
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_absolute_and_clean() {
        assert_eq!(
            target_path(Some("cache"), "/app").unwrap(),
            Path::new("/app/cache")
        );
        assert_eq!(
            target_path(Some("/a/../b/./c/"), "/").unwrap(),
            Path::new("/b/c")
        );
        assert!(target_path(Some("../../.."), "/app").is_err());
        assert!(target_path(Some("/.."), "/").is_err());
        assert_eq!(clean_rel("../../etc/x"), Path::new("etc/x"));
        assert_eq!(clean_rel("."), Path::new(""));
    }
}
