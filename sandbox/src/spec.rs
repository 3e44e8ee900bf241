//! What one step runs: the [`Spec`] given to [`crate::run`], and its
//! validation. The spec crosses from kiln to the sandbox init as bytes (see
//! `codec.rs`); stdio crosses as file descriptors.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::seccomp::Seccomp;

/// Overlayfs refuses more than 500 lower layers.
pub const MAX_LOWERS: usize = 500;

/// `fsconfig(FSCONFIG_SET_STRING)` copies at most 256 bytes of a value, so a
/// lower dir path must be shorter than that.
pub const MAX_LOWER_PATH: usize = 255;

/// One step to run.
#[derive(Debug, Default)]
pub struct Spec {
    /// Lower dirs of the overlay, TOP FIRST (the last one is the base image).
    /// Empty means an empty rootfs (`FROM scratch`). At most [`MAX_LOWERS`].
    pub lowers: Vec<PathBuf>,
    /// Overlay upper dir: receives the step's changes (overlay-native
    /// whiteouts, `user.overlay.*` xattrs).
    pub upper: PathBuf,
    /// An empty scratch dir on the same filesystem as `upper`. The sandbox
    /// uses `work/ovl` as overlay's workdir, `work/root` as mount point and
    /// writes the step's `hosts` / `resolv.conf` there. The caller deletes
    /// it after the step (inside the user namespace).
    pub work: PathBuf,
    /// Extra mounts, applied in order after the standard ones.
    pub mounts: Vec<Mount>,
    /// Environment, `KEY=VALUE`. `PATH` defaults to the usual Linux path
    /// and `HOME` to the user's home from /etc/passwd when absent.
    pub env: Vec<OsString>,
    /// Working directory inside the rootfs (created if missing, as runc does).
    pub cwd: PathBuf,
    /// Who runs the command.
    pub user: User,
    /// The command; `argv[0]` without a `/` is looked up in the step's PATH.
    pub argv: Vec<OsString>,
    /// Network: the host's, a new namespace with only loopback, or the
    /// process-wide private namespace (see [`crate::private_network`]).
    pub network: Network,
    /// Hostname inside the step (own UTS namespace); empty means "kiln".
    pub hostname: String,
    /// Extra `/etc/hosts` lines ("IP NAME…"), after the localhost entries.
    pub extra_hosts: Vec<String>,
    /// Size of /dev/shm in bytes (None: 64 MiB, Docker's default).
    pub shm_size: Option<u64>,
    /// Resource limits set on the command (`--ulimit`).
    pub rlimits: Vec<Rlimit>,
    /// Standard input/output/error of the command.
    pub stdio: Stdio,
    /// The command's seccomp filter: Docker's default unless told otherwise.
    pub seccomp: Seccomp,
    /// Set no_new_privs for the command (`--security-opt
    /// no-new-privileges`). Off by default, as in BuildKit: setuid binaries
    /// (su, sudo, ping) keep working in RUN.
    pub no_new_privileges: bool,
}

/// One resource limit of the command, as setrlimit(2) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// `libc::RLIMIT_*`.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// A mount added to the step's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Bind `source` (host path: dir or file, e.g. a stage rootfs, a cache
    /// dir, a secret file) at `target`; `readonly` makes the whole bound
    /// tree read-only.
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    /// A fresh tmpfs at `target`; `size` in bytes (None: kernel default).
    Tmpfs {
        target: PathBuf,
        size: Option<u64>,
        mode: u32,
    },
}

/// Who runs the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Dockerfile `USER` syntax: `name`, `uid`, `name:group`, `uid:gid`;
    /// resolved by parsing the image's /etc/passwd and /etc/group in-process.
    /// An empty string means root.
    Named(String),
    /// Explicit ids, no lookup (HOME defaults to `/`).
    Ids {
        uid: u32,
        gid: u32,
        groups: Vec<u32>,
    },
}

impl Default for User {
    fn default() -> Self {
        User::Named(String::new())
    }
}

/// The step's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Share the host's network namespace (Docker's `--network=host`).
    #[default]
    Host,
    /// A new network namespace with only `lo`, up.
    None,
    /// The private network namespace shared by every such step of this
    /// process: its own loopback and abstract unix sockets, and the outside
    /// reached through pasta's user-mode networking, never the host's
    /// loopback. [`crate::private_network`] must have succeeded first.
    Private,
}

/// Where one standard stream of the command goes.
#[derive(Debug, Default)]
pub enum Io {
    /// The same fd kiln has.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// This fd (a pipe, a file, …).
    Fd(OwnedFd),
}

/// The command's stdin, stdout and stderr.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Io,
    pub stdout: Io,
    pub stderr: Io,
}

impl Spec {
    /// A spec running `argv` over `lowers` with the given upper and work
    /// dirs, as root, in `/`, on the host network.
    pub fn new(
        lowers: Vec<PathBuf>,
        upper: impl Into<PathBuf>,
        work: impl Into<PathBuf>,
        argv: Vec<OsString>,
    ) -> Spec {
        Spec {
            lowers,
            upper: upper.into(),
            work: work.into(),
            argv,
            cwd: PathBuf::from("/"),
            ..Default::default()
        }
    }

    /// Check everything that can be checked before spawning, so bad input
    /// yields a typed error here instead of a failure inside the step.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidSpec(m));
        if self.lowers.len() > MAX_LOWERS {
            return bad(format!(
                "{} lower dirs; overlayfs takes at most {MAX_LOWERS}",
                self.lowers.len()
            ));
        }
        for l in &self.lowers {
            if !l.is_absolute() {
                return bad(format!("lower dir {l:?} is not an absolute path"));
            }
            if l.as_os_str().len() > MAX_LOWER_PATH {
                return bad(format!(
                    "lower dir {l:?} is longer than {MAX_LOWER_PATH} bytes"
                ));
            }
        }
        for (what, p) in [("upper", &self.upper), ("work", &self.work)] {
            if !p.is_absolute() {
                return bad(format!("{what} dir {p:?} is not an absolute path"));
            }
        }
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return bad("empty command".into());
        }
        if !self.cwd.is_absolute() {
            return bad(format!("working dir {:?} is not absolute", self.cwd));
        }
        for e in &self.env {
            if !e.as_bytes().contains(&b'=') || e.as_bytes().starts_with(b"=") {
                return bad(format!("environment entry {e:?} is not KEY=VALUE"));
            }
        }
        for m in &self.mounts {
            let t = match m {
                Mount::Bind { source, target, .. } => {
                    if !source.is_absolute() {
                        return bad(format!("bind source {source:?} is not absolute"));
                    }
                    target
                }
                Mount::Tmpfs { target, .. } => target,
            };
            if !t.is_absolute() || t.as_os_str().as_bytes() == b"/" {
                return bad(format!(
                    "mount target {t:?} must be an absolute path below /"
                ));
            }
        }
        if self.hostname.len() > 64 || self.hostname.bytes().any(|b| b == 0 || b == b'\n') {
            return bad(format!("bad hostname {:?}", self.hostname));
        }
        if self.rlimits.iter().any(|r| r.soft > r.hard) {
            return bad("a soft resource limit is above its hard limit".into());
        }
        for h in &self.extra_hosts {
            if h.contains('\n') {
                return bad(format!("extra hosts line {h:?} contains a newline"));
            }
        }
        let all_strings = self
            .lowers
            .iter()
            .map(|p| p.as_os_str())
            .chain([
                self.upper.as_os_str(),
                self.work.as_os_str(),
                self.cwd.as_os_str(),
            ])
            .chain(self.env.iter().map(|s| s.as_os_str()))
            .chain(self.argv.iter().map(|s| s.as_os_str()));
        for s in all_strings {
            if s.as_bytes().contains(&0) {
                return bad(format!("{s:?} contains a NUL byte"));
            }
        }
        Ok(())
    }
}
