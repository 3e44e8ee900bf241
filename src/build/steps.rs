//! The layer-producing instructions: RUN (in the sandbox), COPY/ADD and
//! WORKDIR (through an overlay in kiln's namespace), and the commit that
//! turns an upper dir into a layer.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::instructions::{Command, CommandLine, FileOp, Run};
use kiln_dockerfile::resolve::Source;
use kiln_layer::{CaptureOptions, Digest};
use kiln_sandbox::{mount_overlay, Io, Mounted, Spec, Stdio, Upper, User};

use super::copy::{self, Attrs};
use super::fsops::Root;
use super::progress::Vertex;
use super::{base, config_ops, Builder, StageState};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A step's scratch space: upper and work dirs, mount points.
struct StepDirs {
    dir: PathBuf,
}

impl StepDirs {
    fn new(b: &Builder<'_>) -> Result<StepDirs> {
        let dir = b.scratch.path().join(format!("step-{}", unique()));
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(StepDirs { dir })
    }

    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn mount_point(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(p)
    }
}

impl Drop for StepDirs {
    fn drop(&mut self) {
        // The upper dir is gone when it became a layer; the rest is scratch.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Builder<'_> {
    pub(super) fn run(
        &self,
        state: &mut StageState,
        run: &Run,
        cmd: &Command,
        vertex: &Vertex<'_>,
    ) -> Result<()> {
        let argv = run_argv(state, run);
        let dirs = StepDirs::new(self)?;
        let mounts = self.step_mounts(state, run, &dirs.dir)?;
        let mut spec = Spec::new(
            state.lowers(self.store)?,
            dirs.upper(),
            dirs.work(),
            argv.iter().map(OsString::from).collect(),
        );
        spec.env = run_env(state, &self.req.graph.inputs);
        mounts.set_env(&mut spec.env);
        spec.mounts = mounts.mounts.clone();
        spec.cwd = PathBuf::from(state.workdir());
        spec.user = User::Named(state.config.config.user.clone().unwrap_or_default());
        spec.network = match run.network {
            Some(kiln_dockerfile::instructions::Network::None) => kiln_sandbox::Network::None,
            Some(kiln_dockerfile::instructions::Network::Host) => kiln_sandbox::Network::Host,
            _ => self.req.network,
        };
        let (out, reader) = vertex.output()?;
        let err = out.try_clone()?;
        spec.stdio = Stdio {
            stdin: Io::Null,
            stdout: Io::Fd(out),
            stderr: Io::Fd(err),
        };
        let status = kiln_sandbox::run(&spec);
        drop(spec);
        // Unmounted and unlocked: the step is over.
        drop(mounts);
        let tail = reader.join().unwrap_or_default();
        let status = status.context("running the step")?;
        if !status.success() {
            let mut msg = format!(
                "process {:?} did not complete successfully: exit code: {}",
                argv.join(" "),
                status.code()
            );
            if !tail.is_empty() {
                msg.push_str("\n  last output:\n    ");
                msg.push_str(&tail.join("\n    "));
            }
            bail!(msg);
        }
        let layer = self.commit(&dirs)?;
        self.history(state, cmd, layer);
        Ok(())
    }

    pub(super) fn copy(
        &self,
        state: &mut StageState,
        op: &FileOp,
        cmd: &Command,
        add: bool,
    ) -> Result<()> {
        if op.parents || op.link || !op.exclude.is_empty() || op.checksum.is_some() {
            bail!("COPY/ADD --parents, --link, --exclude and --checksum are not supported yet");
        }
        if add
            && op
                .sources
                .iter()
                .any(|s| s.contains("://") || s.starts_with("git@"))
        {
            bail!("ADD from a URL or git repository is not supported yet");
        }
        let dirs = StepDirs::new(self)?;
        let merged = self.mount_rw(state, &dirs)?;
        let dst = Root::open(merged.path())?;
        let owner = match &op.chown {
            Some(spec) => Some(resolve_owner(&dst, spec)?),
            None => None,
        };
        let mode = match &op.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .map_err(|_| anyhow::anyhow!("--chmod={m}: not an octal mode"))?,
            ),
            None => None,
        };
        let dest = copy::absolute_dest(&op.dest, &state.workdir());
        // Keep the source mount alive until the copy is done.
        let mut _src_mount = None;
        let src = match &op.from {
            Some(from) => {
                let (root, mount) = self.source_root(from, cmd, &dirs)?;
                _src_mount = mount;
                root
            }
            None => Root::open(&self.req.context)?,
        };
        // Files from the context belong to root unless --chown says otherwise.
        let owner = owner.or(if op.from.is_none() {
            Some((0, 0))
        } else {
            None
        });
        let attrs = Attrs { owner, mode };
        if !op.inline.is_empty() {
            let inline = dirs.mount_point("inline")?;
            for doc in &op.inline {
                std::fs::write(inline.join(&doc.name), &doc.content)?;
            }
            let names: Vec<String> = op.inline.iter().map(|d| d.name.clone()).collect();
            copy::copy(&Root::open(&inline)?, &names, None, &dst, &dest, attrs)?;
        }
        let mut sources = op.sources.clone();
        if add && op.from.is_none() && op.unpack != Some(false) {
            // ADD unpacks local archives into the destination directory.
            let (archives, rest) = split_archives(&src, &sources, &self.ignore)?;
            // Entries keep the archive's owners unless --chown says otherwise.
            let chown = op
                .chown
                .as_deref()
                .map(|c| resolve_owner(&dst, c))
                .transpose()?;
            for rel in archives {
                unpack_into(&src, &rel, &dst, &dest, chown)
                    .with_context(|| format!("ADD {}: unpacking", rel.display()))?;
            }
            sources = rest;
        }
        if !sources.is_empty() {
            let ignore = op.from.is_none().then_some(&self.ignore);
            copy::copy(&src, &sources, ignore, &dst, &dest, attrs)?;
        }
        drop(_src_mount);
        drop(dst);
        drop(merged);
        let layer = self.commit(&dirs)?;
        self.history(state, cmd, layer);
        Ok(())
    }

    pub(super) fn workdir(&self, state: &mut StageState, dir: &str, cmd: &Command) -> Result<()> {
        let path = copy::absolute_dest(dir, &state.workdir());
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        state.config.config.working_dir = Some(path.to_string());
        let dirs = StepDirs::new(self)?;
        let merged = self.mount_rw(state, &dirs)?;
        let dst = Root::open(merged.path())?;
        let owner = match &state.config.config.user {
            Some(u) if !u.is_empty() => resolve_owner(&dst, u).unwrap_or((0, 0)),
            _ => (0, 0),
        };
        dst.mkdir_all(Path::new(path), 0o755, owner)?;
        drop(dst);
        drop(merged);
        let layer = self.commit(&dirs)?;
        self.history(state, cmd, layer);
        Ok(())
    }

    fn mount_rw(&self, state: &StageState, dirs: &StepDirs) -> Result<Mounted> {
        let target = dirs.mount_point("merged")?;
        let upper = dirs.upper();
        let work = dirs.work();
        mount_overlay(
            &state.lowers(self.store)?,
            Some(Upper {
                upper: &upper,
                work: &work,
            }),
            &target,
        )
        .context("mounting the stage's rootfs")
    }

    /// The root a `--from` reads: a stage's layers or an image's, mounted
    /// read-only.
    fn source_root(
        &self,
        from: &str,
        cmd: &Command,
        dirs: &StepDirs,
    ) -> Result<(Root, Option<Mounted>)> {
        let target = dirs.mount_point("source")?;
        let (dir, mount) = self.root_of_from(from, self.source_of_from(cmd), &target)?;
        Ok((Root::open(&dir)?, mount))
    }

    /// The dir a `--from` (or a mount's `from=`) names: a named context
    /// dir, or a stage's or an image's layers mounted read-only at the
    /// existing empty dir `target`.
    pub(super) fn root_of_from(
        &self,
        from: &str,
        source: Option<Source>,
        target: &Path,
    ) -> Result<(PathBuf, Option<Mounted>)> {
        let lowers = match source {
            Some(Source::Stage(i)) => self.built(i)?.lowers(self.store)?,
            _ if self.named_dir(from).is_some() => {
                return Ok((self.named_dir(from).unwrap_or_default(), None));
            }
            _ => {
                let image = self.image(from)?;
                let config = base::config_of(self.store, &image)?;
                StageState::from_config(config, String::new()).lowers(self.store)?
            }
        };
        if lowers.is_empty() {
            // A stage with no layer: its rootfs is an empty dir.
            return Ok((target.to_path_buf(), None));
        }
        let mount = mount_overlay(&lowers, None, target).context("mounting the --from rootfs")?;
        Ok((target.to_path_buf(), Some(mount)))
    }

    /// What the `--from` of `cmd` names, as the resolver worked it out.
    fn source_of_from(&self, cmd: &Command) -> Option<Source> {
        self.req
            .graph
            .stages
            .iter()
            .flat_map(|s| &s.edges)
            .find(|e| e.span == cmd.span)
            .map(|e| e.source.clone())
    }

    /// The cache identity of a `--from` source: the stage's key or the
    /// image's manifest digest.
    pub(super) fn key_of_from(&self, from: &str, cmd: &Command) -> Result<String> {
        self.key_of_source(from, self.source_of_from(cmd))
    }

    /// The cache identity of what a `--from` resolved to.
    pub(super) fn key_of_source(&self, from: &str, source: Option<Source>) -> Result<String> {
        match source {
            Some(Source::Stage(i)) => Ok(self.built(i)?.key),
            _ => match self.named_dir(from) {
                Some(dir) => super::cache::sources_digest(
                    &Root::open(&dir)?,
                    &[".".into()],
                    None,
                    &self.memo,
                ),
                None => Ok(self.image(from)?.manifest_digest.to_string()),
            },
        }
    }

    /// A `--build-context NAME=DIR`.
    fn named_dir(&self, name: &str) -> Option<PathBuf> {
        match self.req.contexts.get(name) {
            Some(super::NamedContext::Dir(d)) => Some(d.clone()),
            _ => None,
        }
    }

    /// Turns a step's upper dir into a layer; None when the step changed
    /// nothing.
    fn commit(&self, dirs: &StepDirs) -> Result<Option<Digest>> {
        let upper = dirs.upper();
        let empty = std::fs::read_dir(&upper)
            .with_context(|| format!("read {}", upper.display()))?
            .next()
            .is_none();
        if empty {
            return Ok(None);
        }
        if let Some(epoch) = self.req.epoch {
            // On disk, not only in the tar: the layer dir is captured again
            // when it is exported, and must give the same diffID.
            let root = Root::open(&upper)?;
            let dir = root.resolve(
                Path::new(""),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                true,
            )?;
            super::fsops::clamp_mtimes(std::os::fd::AsFd::as_fd(&dir), epoch)?;
        }
        let opts = CaptureOptions::default();
        let digest = self
            .store
            .commit_layer(&upper, &opts)
            .context("committing the layer")?;
        Ok(Some(digest))
    }
}

/// Splits ADD sources into local archives (by content: a tar, compressed
/// or not) and the rest, which are copied as files.
fn split_archives(
    src: &Root,
    sources: &[String],
    ignore: &super::dockerignore::Ignore,
) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut archives = Vec::new();
    let mut rest = Vec::new();
    for s in sources {
        let mut all_archives = true;
        let matched = copy::select(src, std::slice::from_ref(s), Some(ignore))?;
        for rel in &matched {
            if !is_archive(src, rel) {
                all_archives = false;
            }
        }
        if all_archives {
            archives.extend(matched);
        } else {
            rest.push(s.clone());
        }
    }
    Ok((archives, rest))
}

fn is_archive(src: &Root, rel: &Path) -> bool {
    let Ok(fd) = src.resolve(rel, rustix::fs::OFlags::RDONLY, true) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut f = std::fs::File::from(fd);
    let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
    let head = &head[..n];
    match kiln_layer::Format::detect(head) {
        kiln_layer::Format::Tar => n >= 262 && &head[257..262] == b"ustar",
        _ => true,
    }
}

/// Unpacks the archive `rel` of `src` into the directory `dest` of `dst`.
fn unpack_into(
    src: &Root,
    rel: &Path,
    dst: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let dir = dst.mkdir_all(
        &super::fsops::relative(Path::new(dest)),
        0o755,
        owner.unwrap_or((0, 0)),
    )?;
    // The directory by fd: a path through the rootfs could follow a
    // symlink out of it, /proc/self/fd/N cannot.
    let root = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ));
    let file = src.resolve(rel, rustix::fs::OFlags::RDONLY, true)?;
    let mut input = std::io::BufReader::new(std::fs::File::from(file));
    let opts = kiln_layer::UnpackOptions {
        owner,
        ..Default::default()
    };
    let unpacked = kiln_layer::unpack(&mut input, &root, &opts)?;
    for w in unpacked.warnings {
        eprintln!("kiln: warning: ADD {}: {w}", rel.display());
    }
    Ok(())
}

fn run_argv(state: &StageState, run: &Run) -> Vec<String> {
    match (&run.command, run.heredocs.as_slice()) {
        // `RUN <<EOF` alone: the heredoc is the script.
        (CommandLine::Shell(line), [doc]) if is_only_marker(line) => {
            let mut v = config_ops::shell(state);
            v.push(doc.body());
            v
        }
        // Otherwise the shell sees the heredocs as it would in a script.
        (CommandLine::Shell(line), docs) if !docs.is_empty() => {
            let mut script = line.clone();
            for doc in docs {
                script.push('\n');
                script.push_str(&doc.content);
                script.push_str(&doc.name);
            }
            let mut v = config_ops::shell(state);
            v.push(script);
            v
        }
        (line, _) => config_ops::argv(state, line),
    }
}

fn is_only_marker(line: &str) -> bool {
    let w = line.trim();
    w.starts_with("<<") && !w.contains(char::is_whitespace)
}

fn run_env(state: &StageState, inputs: &kiln_dockerfile::resolve::Inputs) -> Vec<OsString> {
    let mut env = state.scope.run_env(inputs);
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env.into_iter()
        .map(|(k, v)| OsString::from(format!("{k}={v}")))
        .collect()
}

/// `--chown` / WORKDIR owner: ids, or names from the rootfs's passwd/group.
fn resolve_owner(root: &Root, spec: &str) -> Result<(u32, u32)> {
    let read = |p: &str| -> String {
        root.resolve(Path::new(p), rustix::fs::OFlags::RDONLY, true)
            .ok()
            .and_then(|fd| std::io::read_to_string(std::fs::File::from(fd)).ok())
            .unwrap_or_default()
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            kiln_sandbox::resolve_user(user, &read("/etc/passwd"), "")
                .with_context(|| format!("--chown={spec}"))?
                .uid
        }
    };
    let gid = match group {
        None => uid_default_gid(user, uid, &read("/etc/passwd")),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read("/etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .with_context(|| {
                    format!("--chown={spec}: no group {g:?} in the image's /etc/group")
                })?,
        },
    };
    Ok((uid, gid))
}

/// Docker's `--chown=user` without a group uses the same number as the
/// uid for a numeric user, and the user's primary group for a name.
fn uid_default_gid(user: &str, uid: u32, passwd: &str) -> u32 {
    if user.parse::<u32>().is_ok() {
        return uid;
    }
    kiln_sandbox::resolve_user(user, passwd, "").map_or(uid, |r| r.gid)
}
