//! The sandbox init: PID 1 of the step's pid namespace.
//!
//! The zygote (a single-threaded process, so allocation is safe here)
//! clones it into fresh mount/pid/ipc/uts(/net) namespaces. It reads the
//! spec from fd 3, builds the rootfs,
//! forks the command, reaps every zombie, forwards signals to the command,
//! and exits with the command's status (128+signal when killed). Before it
//! exits it SIGKILLs whatever the step left running, so no process and,
//! with the mount namespace gone, no mount outlives the step.
//!
//! It reports to kiln through fd 4 (the step's socket) with one record:
//! `C<code>`, or a failure: a tag byte (`S` setup, `X` exec, `U` user) and
//! a message.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::codec;
use crate::error::{Error, Result};
use crate::exec;
use crate::rootfs;
use crate::spec::{Network, Spec};
use crate::syscall;

/// fd on which the init finds the encoded spec.
pub(crate) const SPEC_FD: RawFd = 3;
/// fd on which the init reports a setup failure.
pub(crate) const STATUS_FD: RawFd = 4;

/// Signals passed on to the command. PID 1 of a pid namespace only receives
/// signals it has a handler for, so each gets a no-op handler and is then
/// read from a signalfd.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

static NO_RANGE: AtomicBool = AtomicBool::new(false);

/// True when the user namespace maps only id 0 (no subordinate range).
pub(crate) fn no_range() -> bool {
    NO_RANGE.load(Ordering::Relaxed)
}

extern "C" fn noop(_: libc::c_int) {}

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Restore default dispositions and an empty mask (in the command's child).
pub(crate) fn reset_signals() {
    for s in FORWARDED.iter().chain([&Signal::SIGCHLD, &Signal::SIGPIPE]) {
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { signal::signal(*s, SigHandler::SigDfl) };
    }
    syscall::unblock_all_signals();
}

fn report(status: &mut File, e: &Error) {
    let msg = match e {
        Error::Exec { argv0, message } => format!("X{argv0}\0{message}"),
        Error::User { user, message } => format!("U{user}\0{message}"),
        Error::Setup(m) => format!("S{m}"),
        other => format!("S{other}"),
    };
    syscall::write_raw(status.as_raw_fd(), msg.as_bytes());
}

/// Entry point of the init mode; returns the process exit code.
pub(crate) fn main() -> i32 {
    // SAFETY: the zygote put the step's socket on fd 4.
    let mut status = unsafe { File::from_raw_fd(STATUS_FD) };
    match run() {
        Ok(code) => {
            syscall::write_raw(STATUS_FD, format!("C{code}").as_bytes());
            code
        }
        Err(e) => {
            report(&mut status, &e);
            if matches!(e, Error::Exec { .. }) {
                127
            } else {
                125
            }
        }
    }
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an fd number; failure (EBADF) is harmless here.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

fn run() -> Result<i32> {
    set_cloexec(SPEC_FD);
    set_cloexec(STATUS_FD);
    syscall::close_range(STATUS_FD as u32 + 1, u32::MAX)
        .map_err(|e| Error::Setup(format!("close fds: {e}")))?;
    // No controlling terminal: a Ctrl-C goes to kiln, which decides.
    let _ = nix::unistd::setsid();
    // SAFETY: PR_SET_NAME with a NUL-terminated buffer.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"kiln-init".as_ptr()) };

    let mut buf = Vec::new();
    // SAFETY: fd 3 is the spec memfd handed over by spawn.
    let mut spec_file = unsafe { File::from_raw_fd(SPEC_FD) };
    spec_file
        .read_to_end(&mut buf)
        .map_err(|e| Error::Setup(format!("read spec: {e}")))?;
    drop(spec_file);
    let spec = codec::decode(&buf)?;

    // Queue the forwarded signals from now on; they reach the command once
    // it exists.
    let set = handled_set();
    let act = SigAction::new(
        SigHandler::Handler(noop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in set.iter() {
        // SAFETY: the handler is a no-op extern "C" fn.
        unsafe { signal::sigaction(s, &act) }
            .map_err(|e| Error::Setup(format!("sigaction: {e}")))?;
    }
    set.thread_block()
        .map_err(|e| Error::Setup(format!("block signals: {e}")))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::Setup(format!("signalfd: {e}")))?;

    NO_RANGE.store(maps_only_root(), Ordering::Relaxed);
    setup_namespaces(&spec)?;
    let rootfs = rootfs::prepare(&spec)?;
    let cmd = exec::prepare(&spec)?;
    for n in crate::degrade::take_notes() {
        syscall::write_raw(STATUS_FD, format!("W{n}").as_bytes());
    }

    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Setup(format!("pipe: {e}")))?;
    // SAFETY: the init is single-threaded (a fresh exec that started no
    // threads), so the child may allocate.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => cmd.exec(wr.as_raw_fd()),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(Error::Setup(format!("fork: {e}"))),
    };
    drop(wr);
    let mut failure = String::new();
    let _ = File::from(rd).read_to_string(&mut failure);
    if !failure.is_empty() {
        let _ = waitpid(child, None);
        return Err(Error::Exec {
            argv0: spec.argv[0].to_string_lossy().into_owned(),
            message: failure,
        });
    }
    drop(cmd);

    let code = supervise(child, &sfd);
    if code != 0 && no_range() {
        // Without a subordinate range any chown/setuid to an id but 0 fails
        // with a bare EINVAL; say why right under the command's own error.
        // A closed or full stderr must not panic (the build goes on).
        let _ = writeln!(
            std::io::stderr(),
            "kiln: note: the step failed in a build with no subordinate id range: ids other \
             than 0 do not exist, so chown/setuid to them fails with \"Invalid argument\"; {}",
            exec::no_range_hint()
        );
    }
    // The command is done: nothing else of the step may keep running.
    let _ = signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
    while waitpid(None, None).is_ok() {}
    rootfs.remove_created();
    Ok(code)
}

/// Reap until the command exits, forwarding signals meanwhile.
fn supervise(child: Pid, sfd: &SignalFd) -> i32 {
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        };
        if info.ssi_signo == libc::SIGCHLD as u32 {
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                        return 128 + sig as i32
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {} // an orphan reparented to us: reaped
                }
            }
        } else if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
            let _ = signal::kill(child, sig);
        }
    }
}

/// True when /proc/self/uid_map maps a single id (no subordinate range).
fn maps_only_root() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| {
            let lines: Vec<&str> = m.lines().collect();
            lines.len() == 1 && lines[0].split_whitespace().nth(2) == Some("1")
        })
        .unwrap_or(false)
}

/// Hostname (own UTS namespace) and loopback (own network namespace).
fn setup_namespaces(spec: &Spec) -> Result<()> {
    let host = if spec.hostname.is_empty() {
        "kiln"
    } else {
        &spec.hostname
    };
    match nix::unistd::sethostname(host) {
        // podman's seccomp profile gates sethostname on CAP_SYS_ADMIN even
        // in a UTS namespace of our own: the step keeps the namespace,
        // with the container's hostname in it.
        Err(nix::errno::Errno::EPERM) => crate::degrade::note(
            "sethostname is refused (a seccomp filter); RUN steps keep the container's \
             hostname (in a UTS namespace of their own)",
        ),
        r => r.map_err(|e| Error::Setup(format!("sethostname: {e}")))?,
    }
    if spec.network == Network::None {
        loopback_up().map_err(|e| Error::Setup(format!("bring up lo: {e}")))?;
    }
    Ok(())
}

pub(crate) fn loopback_up() -> std::io::Result<()> {
    // SAFETY: an ifreq is plain old data; the ioctls only read/write it.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
