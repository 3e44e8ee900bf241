//! The private network of [`Network::Private`] steps: one network namespace
//! per kiln process, made by the zygote and joined by each such step with
//! one `setns`, connected to the outside by pasta (Debian's `passt`).
//!
//! Sharing the host's namespace would hand every RUN the host's
//! 127.0.0.1 services and its abstract unix sockets, whose peer
//! credentials are the user's own. In the private namespace the step has
//! its own loopback and abstract sockets; pasta proxies its TCP/UDP to
//! the outside through ordinary host sockets. pasta is told NOT to map the
//! gateway to the host's loopback (`--no-map-gw`) and not to forward any
//! port in either direction (`-t/-u/-T/-U none`: `-T auto`, its default,
//! would forward the host's bound loopback ports into the namespace).
//! The namespace gets its own address ([`ADDRESS`]) so that the host's own
//! address stays reachable, as from any other machine.
//!
//! Lifetime: pasta runs in the foreground as the zygote's child with a
//! parent-death signal, and the zygote kills it when kiln goes away.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self as rfs, Mode, OFlags};

use crate::error::{Error, Result};
#[cfg(doc)]
use crate::spec::Network;
use crate::{syscall, zygote};

/// The namespace's IPv4 address, prefix and gateway (slirp's conventional
/// ones). The gateway leads nowhere: with `--no-map-gw` pasta does not turn
/// it into the host's loopback.
const ADDRESS: &str = "10.0.2.100";
const PREFIX: &str = "24";
const GATEWAY: &str = "10.0.2.2";
/// pasta answers DNS sent here with the host's first resolver; the steps'
/// /etc/resolv.conf names it (see [`private_resolv`]).
const DNS_FORWARDER: &str = "10.0.2.3";
/// How long pasta may take to configure the namespace.
const START_TIMEOUT: rustix::fs::Timespec = rustix::fs::Timespec {
    tv_sec: 10,
    tv_nsec: 0,
};

/// Start the private network used by [`Network::Private`] steps, once per
/// process; later calls return the first call's result.
///
/// Fails (and the caller may fall back to the host's network) when pasta
/// is not in `PATH`, or cannot work here, e.g. `/dev/net/tun` unusable.
pub fn private_network() -> Result<()> {
    static STARTED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            start().map_err(|e| match e {
                Error::Network(m) => m,
                other => other.to_string(),
            })
        })
        .clone()
        .map_err(Error::Network)
}

fn start() -> Result<()> {
    let pasta = find_in_path(OsStr::new("pasta"), std::env::var_os("PATH").as_deref())
        .ok_or_else(|| Error::Network("pasta (Debian package passt) is not in PATH".into()))?;
    let (mine, theirs) = zygote::seqpacket_pair()?;
    let mut msg = vec![zygote::REQ_NET];
    msg.extend_from_slice(pasta.as_os_str().as_bytes());
    zygote::request(&msg, &[theirs.as_raw_fd()])?;
    drop(theirs);
    let mut buf = [0u8; 4096];
    match zygote::recv_with_fds(mine.as_raw_fd(), &mut buf)? {
        Some((n, _)) if buf[..n] == *b"O" => Ok(()),
        Some((n, _)) => Err(Error::Network(
            String::from_utf8_lossy(&buf[1..n]).into_owned(),
        )),
        None => Err(Error::Network("the sandbox zygote did not answer".into())),
    }
}

/// The first executable `name` in a `PATH`-style list.
fn find_in_path(name: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok() && p.is_file())
}

/// `/etc/resolv.conf` for a private-network step: the host's, with its
/// IPv4 and loopback resolvers replaced by pasta's forwarder, which asks
/// the host's first resolver. A loopback resolver (127.0.0.53) is not
/// reachable from the namespace, and on the project machine plain UDP to
/// the host's non-loopback resolver gets no answer through pasta while the
/// forwarder does.
pub(crate) fn private_resolv(host: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(host.len());
    let mut forwarder_added = false;
    for line in host.split_inclusive(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_whitespace();
        let replaced = words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_some_and(|a| a.is_ipv4() || a.is_loopback());
        if !replaced {
            out.extend_from_slice(line);
        } else if !forwarder_added {
            out.extend_from_slice(format!("nameserver {DNS_FORWARDER}\n").as_bytes());
            forwarder_added = true;
        }
    }
    out
}

/// The zygote's side: the namespace and the pasta serving it.
pub(crate) struct PrivateNet {
    ns: OwnedFd,
    pasta: OwnedFd,
}

impl PrivateNet {
    /// Make the namespace and start pasta on it; returns once pasta has
    /// configured it. Runs in the (single-threaded) zygote.
    pub(crate) fn start(pasta: &Path) -> std::result::Result<PrivateNet, String> {
        let ns = new_netns()?;
        let pasta = spawn_pasta(pasta, ns.as_raw_fd())?;
        Ok(PrivateNet { ns, pasta })
    }

    /// Move the calling process (a step's freshly cloned init) into it.
    pub(crate) fn join(&self) -> std::io::Result<()> {
        // SAFETY: setns on an fd we own.
        if unsafe { libc::setns(self.ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stop pasta (kiln is gone).
    pub(crate) fn stop(self) {
        let _ = rustix::process::pidfd_send_signal(&self.pasta, rustix::process::Signal::KILL);
    }
}

/// A new network namespace with `lo` up. The zygote must stay in the
/// host's namespace and could not come back once it left (the host's
/// belongs to the initial user namespace), so a short-lived child makes
/// it and the zygote keeps it open through /proc.
fn new_netns() -> std::result::Result<OwnedFd, String> {
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    let mut pidfd: RawFd = -1;
    let flags = syscall::CLONE_CLEAR_SIGHAND | (libc::CLONE_NEWNET | libc::CLONE_PIDFD) as u64;
    // SAFETY: the zygote is single-threaded; the child never returns.
    let pid = unsafe { syscall::clone3(flags, &mut pidfd) }
        .map_err(|e| format!("create a network namespace: {e}"))?;
    if pid == 0 {
        // SAFETY: the child only writes one byte and waits to be killed.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let ok: &[u8] = if crate::init::loopback_up().is_ok() {
                b"1"
            } else {
                b"0"
            };
            syscall::write_raw(ready_w.as_raw_fd(), ok);
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: CLONE_PIDFD filled in a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(ready_w);
    let mut byte = [0u8; 1];
    let ready = rustix::io::read(&ready_r, &mut byte);
    let ns = rfs::open(
        format!("/proc/{pid}/ns/net"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    match ready {
        Ok(1) if byte[0] == b'1' => {}
        _ => return Err("bring up lo in the new network namespace".into()),
    }
    ns.map_err(|e| format!("open the new network namespace: {e}"))
}

/// Start pasta in the foreground on namespace `ns`; wait until it wrote
/// its PID (it does that once the namespace is configured).
fn spawn_pasta(pasta: &Path, ns: RawFd) -> std::result::Result<OwnedFd, String> {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| "NUL byte in pasta's path".to_string());
    let exe = cstr(pasta.as_os_str().as_bytes())?;
    let args: Vec<CString> = [
        "pasta",
        "--config-net",
        "--foreground",
        "--quiet",
        // As real root pasta would switch to nobody, which may not enter
        // the namespace (and a credential change clears the parent-death
        // signal); in kiln's user namespace we are id 0 already.
        "--runas",
        "0:0",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--no-map-gw",
        "-a",
        ADDRESS,
        "-n",
        PREFIX,
        "-g",
        GATEWAY,
        "--dns-forward",
        DNS_FORWARDER,
        // Its own fds: pasta drops the capabilities that opening another
        // process's /proc/PID/ns/net or fd needs.
        "--netns",
        "/proc/self/fd/3",
        "--pid",
        "/proc/self/fd/4",
    ]
    .iter()
    .map(|a| cstr(a.as_bytes()))
    .collect::<std::result::Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp = [std::ptr::null::<libc::c_char>()];

    let err = |what: &str, e: rustix::io::Errno| format!("{what}: {e}");
    let log = rfs::memfd_create("kiln-pasta-log", rfs::MemfdFlags::CLOEXEC)
        .map_err(|e| err("memfd_create", e))?;
    let null = rfs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| err("open /dev/null", e))?;
    let (ready_r, ready_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| err("pipe", e))?;
    // SAFETY: getpid has no preconditions.
    let zygote_pid = unsafe { libc::getpid() };
    let sources = [
        null.as_raw_fd(),
        null.as_raw_fd(),
        log.as_raw_fd(),
        ns,
        ready_w.as_raw_fd(),
    ];
    let mut pidfd: RawFd = -1;
    // SAFETY: the child makes raw syscalls only, then execs or _exits.
    let pid = unsafe {
        syscall::clone3(
            syscall::CLONE_CLEAR_SIGHAND | libc::CLONE_PIDFD as u64,
            &mut pidfd,
        )
    }
    .map_err(|e| format!("start pasta: {e}"))?;
    if pid == 0 {
        // SAFETY: async-signal-safe calls only.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != zygote_pid {
                libc::_exit(126);
            }
            syscall::unblock_all_signals();
            // Ignored signals survive exec: kiln (Rust) ignores SIGPIPE, the
            // zygote SIGCHLD, and pasta refuses to start unless SIGPIPE was
            // at its default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            let mut high = [-1; 5];
            for (h, src) in high.iter_mut().zip(sources) {
                *h = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 10);
            }
            for (dst, src) in high.iter().enumerate() {
                if *src < 0 || libc::dup2(*src, dst as RawFd) < 0 {
                    libc::_exit(126);
                }
            }
            let _ = syscall::close_range(5, u32::MAX);
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: CLONE_PIDFD filled in a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(ready_w);
    let mut fds = [PollFd::new(&ready_r, PollFlags::IN)];
    let ready = loop {
        match poll(&mut fds, Some(&START_TIMEOUT)) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(0) => break Err("pasta did not configure the namespace in time".to_string()),
            Ok(_) => {
                let mut buf = [0u8; 32];
                break match rustix::io::read(&ready_r, &mut buf) {
                    Ok(n) if n > 0 => Ok(()),
                    _ => Err("pasta exited".to_string()),
                };
            }
            Err(e) => break Err(err("poll", e)),
        }
    };
    if let Err(why) = ready {
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        return Err(format!("{why}: {}", read_log(log.as_fd())));
    }
    Ok(pidfd)
}

/// What pasta wrote to its stderr, on one line.
fn read_log(log: std::os::fd::BorrowedFd<'_>) -> String {
    let mut buf = vec![0u8; 4096];
    let n = rustix::io::pread(log, &mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        "no message".into()
    } else {
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_become_the_forwarder() {
        let host = b"# systemd\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            String::from_utf8(private_resolv(host)).unwrap(),
            "# systemd\nnameserver 10.0.2.3\noptions edns0\n"
        );
    }

    #[test]
    fn ipv4_resolvers_become_the_forwarder_and_ipv6_ones_stay() {
        let host = b"nameserver 10.255.255.53\nsearch example.org\nnameserver 10.0.0.1\nnameserver fd00::1";
        assert_eq!(
            String::from_utf8(private_resolv(host)).unwrap(),
            "nameserver 10.0.2.3\nsearch example.org\nnameserver fd00::1"
        );
    }

    #[test]
    fn pasta_is_found_only_in_path() {
        let dir = std::env::temp_dir().join(format!("kiln-net-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("pasta");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.as_path()]).unwrap();
        assert_eq!(find_in_path(OsStr::new("pasta"), Some(&path)), Some(exe));
        assert_eq!(
            find_in_path(OsStr::new("pasta"), Some(OsStr::new("/nonexistent"))),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
