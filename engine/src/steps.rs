//! The layer-producing instructions: RUN (in the sandbox) and WORKDIR
//! (through an overlay in kiln's namespace), what COPY/ADD share with them
//! (a step's scratch dirs, the stage mounted read-write, `--from` roots,
//! `--chown` names), and the commit that turns an upper dir into a layer.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use kiln_dockerfile::instructions::{Command, CommandLine, Run};
use kiln_dockerfile::resolve::{Platform, Source};
use kiln_layer::{CaptureOptions, Digest};
use kiln_sandbox::{mount_overlay, Io, Mounted, Network, Spec, Stdio, Upper, User};

use super::fsops::Root;
use super::progress::Vertex;
use super::schedule::StageView;
use super::state::Op;
use super::{base, config_ops, mounts, Builder, StageState};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The network of a RUN without `--network=host|none`: the build's, where
/// the private one (started at the first such step, once per process)
/// falls back to the host's with one warning when pasta cannot run here.
fn default_network(build: Network) -> Network {
    static CHOSEN: OnceLock<Network> = OnceLock::new();
    if build != Network::Private {
        return build;
    }
    *CHOSEN.get_or_init(|| match kiln_sandbox::private_network() {
        Ok(()) => Network::Private,
        Err(e) => {
            say!(
                "kiln: warning: {e}; RUN steps share the host's network, so they reach its \
                 127.0.0.1 services and abstract unix sockets. Install passt (pasta) with a \
                 usable /dev/net/tun, or choose this with --network host"
            );
            Network::Host
        }
    })
}

/// A step's scratch space: upper and work dirs, mount points.
pub(super) struct StepDirs {
    pub dir: PathBuf,
}

impl StepDirs {
    pub fn new(b: &Builder<'_>) -> Result<StepDirs> {
        let dir = b.scratch.path().join(format!("step-{}", unique()));
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(StepDirs { dir })
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn mount_point(&self, name: &str) -> Result<PathBuf> {
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

pub(super) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Builder<'_> {
    pub(super) fn run(&self, state: &mut StageState, run: &Run, vertex: &Vertex<'_>) -> Result<()> {
        let mut argv = run_argv(state, run);
        if self.chroot() {
            let env = run_env(state, &self.req.graph.inputs);
            return self.run_chroot(state, run, argv, env, vertex);
        }
        let dirs = StepDirs::new(self)?;
        let mut mounts = self.step_mounts(state, run, &dirs.dir)?;
        if let Some((path, mount)) = shebang_script(run, &dirs.dir)? {
            argv = vec![path];
            mounts.mounts.push(mount);
        }
        let mut spec = Spec::new(
            self.lowers(state)?,
            dirs.upper(),
            dirs.work(),
            argv.iter().map(OsString::from).collect(),
        );
        spec.env = run_env(state, &self.req.graph.inputs);
        spec.hostname = self.req.graph.inputs.sandbox_hostname().to_string();
        mounts.set_env(&mut spec.env);
        spec.mounts = mounts.mounts.clone();
        spec.cwd = PathBuf::from(state.workdir());
        spec.user = User::Named(state.config.config.user.clone().unwrap_or_default());
        spec.network = match run.network {
            Some(kiln_dockerfile::instructions::Network::None) => kiln_sandbox::Network::None,
            Some(kiln_dockerfile::instructions::Network::Host) => kiln_sandbox::Network::Host,
            _ => default_network(self.req.network),
        };
        spec.seccomp = self.req.security.seccomp.clone();
        spec.no_new_privileges = self.req.security.no_new_privileges;
        self.req.flags.apply(&mut spec);
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
            return Err(step_failed(&argv, status.code(), &tail));
        }
        let layer = self.commit(state, &dirs)?;
        self.record_history(state, run_history(state, &argv), layer);
        Ok(())
    }

    pub(super) fn workdir(&self, state: &mut StageState, dir: &str, cmd: &Command) -> Result<()> {
        let workdir = normalize_workdir(&state.workdir(), dir);
        let path = mounts::clean_abs(&workdir);
        state.apply(Op::Workdir(workdir));
        let dirs = StepDirs::new(self)?;
        let merged = self.open_rw(state, &dirs)?;
        let dst = Root::open(merged.path())?;
        let owner = match &state.config.config.user {
            Some(u) if !u.is_empty() => resolve_owner(&dst, u).unwrap_or((0, 0)),
            _ => (0, 0),
        };
        dst.mkdir_all(&path, 0o755, owner)?;
        drop(dst);
        merged.finish(&dirs.upper())?;
        let layer = self.commit(state, &dirs)?;
        self.history(state, cmd, layer);
        self.rootfs_done(state);
        Ok(())
    }

    pub(super) fn mount_rw(&self, state: &StageState, dirs: &StepDirs) -> Result<Mounted> {
        let target = dirs.mount_point("merged")?;
        let upper = dirs.upper();
        let work = dirs.work();
        mount_overlay(
            &self.lowers(state)?,
            Some(Upper {
                upper: &upper,
                work: &work,
            }),
            &target,
        )
        .context("mounting the stage's rootfs")
    }

    /// The root a `--from` of a step of `state`'s stage reads: a stage's
    /// layers or an image's, mounted read-only.
    pub(super) fn source_root(
        &self,
        from: &str,
        cmd: &Command,
        state: &StageState,
        dirs: &StepDirs,
    ) -> Result<FromRoot> {
        let target = dirs.mount_point("source")?;
        let source = self.source_of_from(from, cmd);
        self.root_of_from(from, source, &state.platform, &target)
    }

    /// The dir a `--from` (or a mount's `from=`) names: a named context
    /// dir, or a stage's or an image's layers mounted read-only at the
    /// existing empty dir `target`. An image is read for `platform`, the
    /// platform of the stage reading it (as BuildKit does: a
    /// `FROM --platform=$BUILDPLATFORM` stage copies its tools' build
    /// platform binaries).
    pub(super) fn root_of_from(
        &self,
        from: &str,
        source: Option<Source>,
        platform: &Platform,
        target: &Path,
    ) -> Result<FromRoot> {
        let lowers = match source {
            Some(Source::Stage(i)) => self.view(i)?.lowers,
            _ if self.named_dir(from).is_some() => {
                return Ok(FromRoot {
                    dir: self.named_context_dir(&self.named_dir(from).unwrap_or_default())?,
                    layers: Vec::new(),
                    mount: None,
                });
            }
            _ => {
                let image = self.image_for(from, platform)?;
                let config = base::config_of(self.store, &image)?;
                StageState::from_config(config, String::new()).lowers(self.store)?
            }
        };
        let mount = if lowers.is_empty() {
            // A stage with no layer: its rootfs is an empty dir.
            None
        } else {
            Some(
                self.read_view(&lowers, target)
                    .context("mounting the --from rootfs")?,
            )
        };
        // A copy holds no layer file to link to (see `share`).
        let layers = if self.chroot() { Vec::new() } else { lowers };
        Ok(FromRoot {
            dir: target.to_path_buf(),
            layers,
            mount,
        })
    }

    /// What the `--from` of `cmd` names, as the resolver worked it out;
    /// for a base image's ONBUILD trigger (the default span), by name:
    /// BuildKit reads it as a stage of the child's Dockerfile.
    pub(super) fn source_of_from(&self, from: &str, cmd: &Command) -> Option<Source> {
        if cmd.span == kiln_dockerfile::Span::default() {
            return Some(self.source_named(from));
        }
        self.req
            .graph
            .stages
            .iter()
            .flat_map(|s| &s.edges)
            .find(|e| e.span == cmd.span)
            .map(|e| e.source.clone())
    }

    /// The cache identity of what a `--from` resolved to (an image: for
    /// `platform`, see `root_of_from`).
    pub(super) fn key_of_source(
        &self,
        from: &str,
        source: Option<Source>,
        platform: &Platform,
    ) -> Result<String> {
        match source {
            Some(Source::Stage(i)) => self.view_key(i),
            _ => match self.named_dir(from) {
                Some(dir) => super::cache::sources_digest(
                    &super::copy::From::plain(&Root::open(&self.named_context_dir(&dir)?)?),
                    &[".".into()],
                    &self.memo,
                    // COPY --from a named context keeps its owners.
                    super::cache::Owners::Kept,
                ),
                None => Ok(self.image_for(from, platform)?.manifest_digest.to_string()),
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
    /// nothing. On a stage's last step, the stage's early view goes out
    /// before the layer is hashed.
    pub(super) fn commit(&self, state: &StageState, dirs: &StepDirs) -> Result<Option<Digest>> {
        let upper = dirs.upper();
        let empty = std::fs::read_dir(&upper)
            .with_context(|| format!("read {}", upper.display()))?
            .next()
            .is_none();
        if empty {
            return Ok(None);
        }
        let mut staged = self
            .store
            .stage_layer(&upper)
            .context("committing the layer")?;
        if let Some((index, key)) = &state.early {
            let mut lowers = vec![staged.share()];
            lowers.extend(state.lowers(self.store)?);
            let view = StageView {
                key: key.clone(),
                lowers,
            };
            self.announce(*index, view);
        }
        let digest = self
            .store
            .register_layer(staged, &CaptureOptions::default())
            .context("committing the layer")?;
        Ok(Some(digest))
    }
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

/// A RUN's `created_by` as BuildKit writes it: the argv it ran, after
/// `|N NAME=value…` for the N build args in scope (they are in the step's
/// environment, not in the image's, so the history keeps them).
pub(super) fn run_history(state: &StageState, argv: &[String]) -> String {
    let args = state.scope.args_for_history();
    let mut words = Vec::with_capacity(args.len() + argv.len() + 1);
    if !args.is_empty() {
        words.push(format!("|{}", args.len()));
    }
    words.extend(args);
    words.extend(argv.iter().cloned());
    format!("RUN {} # buildkit", words.join(" "))
}

/// `RUN <<EOF` alone whose body starts with `#!`: as BuildKit, the body is
/// a file (mode 0755) mounted read-only at `/dev/pipes/<name>`, run as the
/// command itself, so that the kernel starts its interpreter.
fn shebang_script(run: &Run, dir: &Path) -> Result<Option<(String, kiln_sandbox::Mount)>> {
    let doc = match (&run.command, run.heredocs.as_slice()) {
        (CommandLine::Shell(line), [doc]) if is_only_marker(line) => doc,
        _ => return Ok(None),
    };
    let body = doc.body();
    if !body.starts_with("#!") {
        return Ok(None);
    }
    // The delimiter names the file; one that is not a plain file name
    // (`..`, a slash) gets a fixed one.
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    let name = match doc.name.as_str() {
        n if !n.is_empty() && n.chars().all(plain) && n != "." && n != ".." => n,
        _ => "heredoc",
    };
    let source = dir.join("shebang-script");
    std::fs::write(&source, body).context("writing the heredoc script")?;
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755))
        .context("writing the heredoc script")?;
    let path = format!("/dev/pipes/{name}");
    let mount = kiln_sandbox::Mount::Bind {
        source,
        target: PathBuf::from(&path),
        readonly: true,
    };
    Ok(Some((path, mount)))
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

/// What a `--from` names, ready to read.
pub(super) struct FromRoot {
    pub dir: PathBuf,
    /// The store layer dirs mounted at `dir`, top first; empty for a
    /// named context dir.
    pub layers: Vec<PathBuf>,
    /// Unmounted when dropped.
    pub mount: Option<super::isolation::ReadView>,
}

/// `--chown` / WORKDIR owner: ids, or names from the rootfs's passwd/group.
pub(super) fn resolve_owner(root: &Root, spec: &str) -> Result<(u32, u32)> {
    let passwd = || read_id_file(root, "/etc/passwd").with_context(|| format!("--chown={spec}"));
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            kiln_sandbox::resolve_user(user, &passwd()?, "")
                .with_context(|| format!("--chown={spec}"))?
                .uid
        }
    };
    let gid = match group {
        // Docker's `--chown=user` without a group uses the same number as
        // the uid for a numeric user, and the user's primary group for a name.
        None if user.parse::<u32>().is_ok() => uid,
        None => kiln_sandbox::resolve_user(user, &passwd()?, "").map_or(uid, |r| r.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read_id_file(root, "/etc/group")
                .with_context(|| format!("--chown={spec}"))?
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

/// The image's passwd or group file as text; missing reads as empty. Opened
/// non-blocking (a FIFO there must not hang the build) and read only if it
/// is a regular file of at most 4 MiB.
fn read_id_file(root: &Root, path: &str) -> Result<String> {
    use rustix::fs::OFlags;
    match root.resolve(Path::new(path), OFlags::RDONLY | OFlags::NONBLOCK, true) {
        Ok(fd) => Ok(kiln_sandbox::read_id_file(fd.into(), path)?),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            Ok(String::new())
        }
        Err(e) => Err(e).with_context(|| format!("open the image's {path}")),
    }
}

/// The WorkingDir a `WORKDIR dir` sets, as BuildKit's `NormalizeWorkdir`
/// makes it: an absolute path as written (a trailing slash stays, so
/// images match theirs byte for byte), a relative one joined to the
/// current workdir and cleaned.
fn normalize_workdir(current: &str, dir: &str) -> String {
    if dir.starts_with('/') {
        return dir.to_string();
    }
    if dir.is_empty() {
        return current.to_string();
    }
    mounts::clean_abs(&format!("{current}/{dir}"))
        .to_string_lossy()
        .into_owned()
}

/// A RUN that exited non-zero, in BuildKit's words, with the last lines
/// it printed.
pub(crate) fn step_failed(argv: &[String], code: i32, tail: &[String]) -> anyhow::Error {
    let mut msg = format!(
        "process {:?} did not complete successfully: exit code: {code}",
        argv.join(" "),
    );
    if !tail.is_empty() {
        msg.push_str("\n  last output:\n    ");
        msg.push_str(&tail.join("\n    "));
    }
    anyhow::anyhow!(msg)
}

#[cfg(test)]
mod tests {
    use super::normalize_workdir;

    #[test]
    fn workdir_keeps_an_absolute_path_as_written_and_cleans_a_relative_one() {
        // BuildKit: TestNormalizeWorkdir (util/system).
        assert_eq!(normalize_workdir("/", "/go/src/app/"), "/go/src/app/");
        assert_eq!(normalize_workdir("/a", "/x/../y"), "/x/../y");
        assert_eq!(normalize_workdir("/a/", "b/"), "/a/b");
        assert_eq!(normalize_workdir("/a", "../b/./c"), "/b/c");
        assert_eq!(normalize_workdir("/a", ""), "/a");
    }
}
