//! The zygote: a small single-threaded helper that forks every step's
//! sandbox init, so that steps cost no exec of the (large, possibly
//! multi-threaded) kiln binary.
//!
//! kiln starts it once, lazily, by re-executing itself with
//! `argv[0] = "kiln-sandbox-zygote"` and one end of a `SOCK_SEQPACKET`
//! socket on fd 3. Each request is one message: a flags byte and five fds
//! (spec memfd, stdin, stdout, stderr, the step's own socket). The zygote
//! clones the init into fresh namespaces; since the zygote has one thread,
//! the init may allocate freely. It then sends the init's pidfd to kiln over
//! the step's socket. The other request, [`REQ_NET`], starts the private
//! network (`net.rs`) once; steps with [`FLAG_PRIVNET`] join it by `setns`.
//!
//! Lifetime: the zygote exits when kiln's end of the socket closes (kiln
//! died or exited), killing pasta first; every init and pasta have a
//! parent-death signal on the zygote, so they die with it.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::error::{Error, Result};
use crate::init::{SPEC_FD, STATUS_FD};
use crate::net::PrivateNet;
use crate::syscall;

/// `argv[0]` of the zygote process.
pub const ZYGOTE_ARGV0: &str = "kiln-sandbox-zygote";
const SOCK_FD: RawFd = 3;
/// Request flag: give the step its own network namespace.
pub(crate) const FLAG_NEWNET: u8 = 1;
/// Request flag: the step joins the private network (see `net.rs`).
pub(crate) const FLAG_PRIVNET: u8 = 2;
/// Request flag: kiln runs in a user namespace it created itself (see
/// [`crate::degrade::own_userns`]).
pub(crate) const FLAG_OWN_USERNS: u8 = 4;
/// Request: start the private network; payload pasta's path, one fd (the
/// reply socket: `O`, or `E` and why not).
pub(crate) const REQ_NET: u8 = 0x80;
const NFDS: usize = 5;

struct Client {
    sock: OwnedFd,
    pid: i32,
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);

/// A connected pair of message sockets (one message per request or
/// answer, fds passed alongside), close-on-exec.
pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::Setup(format!("socketpair: {e}")))
}

/// Start the zygote: clone + exec of /proc/self/exe, raw syscalls only in
/// the child (kiln may have threads).
fn start() -> Result<Client> {
    let (mine, theirs) = seqpacket_pair()?;
    let exe = c"/proc/self/exe";
    let argv0 = c"kiln-sandbox-zygote";
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let theirs_raw = theirs.as_raw_fd();
    let mut unused = -1;
    // SAFETY: the child only makes raw syscalls, then execs or _exits.
    let pid = unsafe { syscall::clone3(syscall::CLONE_CLEAR_SIGHAND, &mut unused) }
        .map_err(|e| Error::Setup(format!("start the sandbox zygote: {e}")))?;
    if pid == 0 {
        // SAFETY: async-signal-safe calls only.
        unsafe {
            syscall::unblock_all_signals();
            if libc::dup2(theirs_raw, SOCK_FD) < 0 {
                libc::_exit(126);
            }
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(126);
        }
    }
    drop(theirs);
    Ok(Client { sock: mine, pid })
}

/// Send the zygote one request: `msg` (a request byte, maybe a payload)
/// and its fds. A step is `[flags]` with the spec memfd, stdin, stdout,
/// stderr and the zygote's end of the step socket; [`REQ_NET`] carries
/// pasta's path and the reply socket.
pub(crate) fn request(msg: &[u8], fds: &[RawFd]) -> Result<()> {
    let mut guard = CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    for attempt in 0..2 {
        if guard.is_none() {
            *guard = Some(start()?);
        }
        let client = guard
            .as_ref()
            .ok_or_else(|| Error::Setup("no zygote".into()))?;
        let iov = [IoSlice::new(msg)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        match sendmsg::<()>(
            client.sock.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt == 0
                    && matches!(e, nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) =>
            {
                // The zygote died: reap it and start a new one.
                if let Some(old) = guard.take() {
                    // SAFETY: waitpid on our own child.
                    unsafe { libc::waitpid(old.pid, std::ptr::null_mut(), libc::WNOHANG) };
                }
            }
            Err(e) => return Err(Error::Setup(format!("talk to the sandbox zygote: {e}"))),
        }
    }
    Err(Error::Setup("the sandbox zygote keeps dying".into()))
}

/// Receive one message with up to `NFDS` fds; `Ok(None)` at end of stream.
pub(crate) fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut space = nix::cmsg_space!([RawFd; NFDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(|e| Error::Setup(format!("recvmsg: {e}")))?,
        }
    };
    let mut fds = Vec::new();
    for c in msg
        .cmsgs()
        .map_err(|e| Error::Setup(format!("cmsg: {e}")))?
    {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel just installed these fds for us.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((msg.bytes, fds)))
}

/// Send `data` (and optionally one fd) as one message; errors are ignored
/// (the receiver is gone).
pub(crate) fn send(sock: RawFd, data: &[u8], fd: Option<RawFd>) {
    let iov = [IoSlice::new(data)];
    let fds;
    let cmsg: &[ControlMessage] = match fd {
        Some(f) => {
            fds = [f];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    let _ = sendmsg::<()>(sock, &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None);
}

/// Main loop of the zygote process; returns its exit code.
pub(crate) fn main() -> i32 {
    // SAFETY: fd 3 is the socket kiln passed; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(SOCK_FD) };
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(SOCK_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    let _ = syscall::close_range(SOCK_FD as u32 + 1, u32::MAX);
    // SAFETY: PR_SET_NAME with a NUL-terminated string; SIG_IGN for SIGCHLD
    // makes the kernel reap finished inits (kiln learns their status from
    // the init itself and waits on their pidfds).
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"kiln-zygote".as_ptr());
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    let mut msg = [0u8; 4096];
    let mut net: Option<PrivateNet> = None;
    loop {
        let (n, fds) = match recv_with_fds(sock.as_raw_fd(), &mut msg) {
            Ok(Some(m)) => m,
            _ => break, // kiln is gone
        };
        match (msg.first(), n, fds.len()) {
            (Some(&REQ_NET), _, 1) => {
                let reply = start_net(&mut net, &msg[1..n]);
                send(fds[0].as_raw_fd(), &reply, None);
            }
            (Some(&flags), 1, NFDS) => spawn_init(flags, &fds, net.as_ref()),
            _ => {} // malformed request: ignore (its fds close here)
        }
    }
    if let Some(net) = net {
        net.stop();
    }
    0
}

/// Handle [`REQ_NET`]: start the private network unless it runs already.
fn start_net(net: &mut Option<PrivateNet>, pasta: &[u8]) -> Vec<u8> {
    if net.is_none() {
        match PrivateNet::start(std::path::Path::new(std::ffi::OsStr::from_bytes(pasta))) {
            Ok(n) => *net = Some(n),
            Err(e) => return format!("E{e}").into_bytes(),
        }
    }
    b"O".to_vec()
}

/// Clone one step's init and tell kiln its pidfd.
fn spawn_init(flags: u8, fds: &[OwnedFd], net: Option<&PrivateNet>) {
    let step_sock = fds[4].as_raw_fd();
    let mut ns = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_PIDFD;
    if flags & FLAG_NEWNET != 0 {
        ns |= libc::CLONE_NEWNET;
    }
    let mut pidfd: RawFd = -1;
    // SAFETY: the zygote is single-threaded: the child is a full copy that
    // may allocate; it never returns into the zygote's loop.
    match unsafe { syscall::clone3(ns as u64 | syscall::CLONE_CLEAR_SIGHAND, &mut pidfd) } {
        Err(e) => {
            let msg = format!("Screate the step's namespaces: {e}");
            send(step_sock, msg.as_bytes(), None);
        }
        Ok(0) => {
            // SAFETY: plain syscalls on fds we own.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            }
            if flags & FLAG_PRIVNET != 0 {
                let joined = match net {
                    Some(n) => n
                        .join()
                        .map_err(|e| format!("join the private network: {e}")),
                    None => Err("the private network is not started".into()),
                };
                if let Err(e) = joined {
                    send(step_sock, format!("S{e}").as_bytes(), None);
                    // SAFETY: leaving the forked child without unwinding.
                    unsafe { libc::_exit(125) };
                }
            }
            // SAFETY: plain syscalls on fds we own.
            unsafe {
                // Stdio first, then the two protocol fds, onto fixed numbers.
                let targets = [SPEC_FD, 0, 1, 2, STATUS_FD];
                let high: Vec<RawFd> = fds
                    .iter()
                    .map(|f| libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10))
                    .collect();
                for (src, dst) in high.iter().zip(targets) {
                    if *src < 0 || libc::dup2(*src, dst) < 0 {
                        libc::_exit(126);
                    }
                }
            }
            crate::degrade::set_own_userns(flags & FLAG_OWN_USERNS != 0);
            std::process::exit(crate::init::main());
        }
        Ok(_) => {
            // SAFETY: CLONE_PIDFD filled in a new fd that we own.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            send(step_sock, b"P", Some(pidfd.as_raw_fd()));
        }
    }
}
