//! `RUN --mount=type=ssh`: the `kiln build --ssh` agents, forwarded into
//! the step through a socket of kiln's own (with the mount's owner and
//! mode, as BuildKit's), each connection to it relayed to a new
//! connection to the user's agent and closed with it. No key or agent
//! message is read, stored or hashed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use kiln_dockerfile::instructions::Mount;
use rustix::fs::{Mode, OFlags};

use super::{set_owner_mode, target_path, StepMounts};
use crate::Builder;

/// `--ssh` agents by id: the socket each one listens on.
#[derive(Clone, Debug, Default)]
pub struct SshAgents(BTreeMap<String, PathBuf>);

impl SshAgents {
    /// buildx's syntax: `default`, `ID` (both `$SSH_AUTH_SOCK`) or
    /// `ID=SOCKET`. Key files are refused with the way to load them.
    pub fn parse(flags: &[String]) -> Result<SshAgents> {
        let mut map = BTreeMap::new();
        for flag in flags {
            let (id, path) = match flag.split_once('=') {
                Some((id, paths)) => (id, PathBuf::from(paths)),
                None => {
                    let sock = std::env::var_os("SSH_AUTH_SOCK")
                        .filter(|s| !s.is_empty())
                        .with_context(|| {
                            format!(
                                "--ssh {flag}: SSH_AUTH_SOCK is not set: start an agent \
                                 (eval $(ssh-agent); ssh-add) or give --ssh {flag}=SOCKET"
                            )
                        })?;
                    (flag.as_str(), PathBuf::from(sock))
                }
            };
            if id.is_empty() {
                bail!("--ssh {flag}: the id is empty");
            }
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("--ssh {flag}: {}", path.display()))?;
            if !meta.file_type().is_socket() {
                bail!(
                    "--ssh {flag}: {} is not an agent socket (kiln forwards agents only: \
                     load a key with `ssh-add FILE` and pass --ssh {id}=$SSH_AUTH_SOCK)",
                    path.display()
                );
            }
            map.insert(id.to_string(), path);
        }
        Ok(SshAgents(map))
    }
}

/// A step's agent socket: the listener and its relay thread, stopped when
/// dropped (the step is over).
pub(super) struct Proxy {
    dir: OwnedFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The socket's name in its scratch dir.
const SOCKET: &str = "agent.sock";

/// A path to `name` in `dir` short enough for a socket address (108
/// bytes), however deep the store is.
fn short_path(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

impl Proxy {
    fn start(agent: PathBuf, dir: &Path, owner: (u32, u32), mode: u32) -> Result<Proxy> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let dir_fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", dir.display()))?;
        let listener = UnixListener::bind(short_path(&dir_fd, SOCKET))
            .context("creating the step's agent socket")?;
        set_owner_mode(&dir.join(SOCKET), owner, mode)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    relay(conn, &agent);
                }
            }
        });
        Ok(Proxy {
            dir: dir_fd,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees `stop`.
        let _ = UnixStream::connect(short_path(&self.dir, SOCKET));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Relays one step connection to a new agent connection, both ways; each
/// side's end of stream is passed on, so both close together.
fn relay(step: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        // The step sees its connection closed: the agent is gone.
        return;
    };
    let (Ok(step2), Ok(upstream2)) = (step.try_clone(), upstream.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pump(step, upstream));
    std::thread::spawn(move || pump(upstream2, step2));
}

fn pump(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Builder<'_> {
    /// The step's mount of an agent socket, with `SSH_AUTH_SOCK` set to
    /// the first one; None when an optional agent was not given.
    pub(super) fn ssh_mount(
        &self,
        m: &Mount,
        workdir: &str,
        i: usize,
        out: &mut StepMounts,
    ) -> Result<Option<kiln_sandbox::Mount>> {
        let id = m.id.as_deref().unwrap_or("default");
        let Some(agent) = self.req.flags.ssh.0.get(id) else {
            if m.required {
                bail!("no SSH agent {id:?} was given: pass --ssh {id}[=SOCKET] to kiln build");
            }
            return Ok(None);
        };
        let default = format!("/run/buildkit/ssh_agent.{}", out.proxies.len());
        let target = target_path(Some(m.target.as_deref().unwrap_or(&default)), workdir)?;
        let dir = out.scratch(i, "ssh");
        let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
        let proxy = Proxy::start(agent.clone(), &dir, owner, m.mode.unwrap_or(0o600))?;
        out.proxies.push(proxy);
        if !out.env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
            let sock = target.to_string_lossy().into_owned().into_bytes();
            out.env.push(("SSH_AUTH_SOCK".into(), sock));
        }
        Ok(Some(kiln_sandbox::Mount::Bind {
            source: dir.join(SOCKET),
            target,
            readonly: false,
        }))
    }
}
