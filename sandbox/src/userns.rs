//! Entering the build's user namespace, once per kiln run.
//!
//! A rootless kiln re-executes itself in a new user namespace where
//! container id 0 is the caller and 1..=65536 are the caller's subordinate
//! ids from /etc/subuid and /etc/subgid (written by the setuid helpers
//! newuidmap/newgidmap). The original process stays behind as a thin
//! parent: it forwards signals and exits with the child's status. All of
//! kiln — store work included — then runs inside the namespace, where files
//! owned by subordinate ids can be read and deleted.
//!
//! Without a subordinate range, or where newuidmap is refused (inside a
//! container), only id 0 is mapped (a warning says so once). Root creates
//! no user namespace, only a mount namespace; where it cannot (root without
//! CAP_SYS_ADMIN, in a container) it creates a user namespace mapping the
//! ids it has (see `idmap.rs`).

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::process::{waitid, WaitId, WaitIdOptions};

use crate::error::{Error, Result};
use crate::idmap::{beyond_root, Plan, Refused};
use crate::syscall;

/// Environment variable that marks the re-executed child (its value says
/// who started kiln: `root` or `user`).
const MARK: &str = "_KILN_SANDBOX_USERNS";

/// Set in the namespace child when root started kiln.
static CALLER_ROOT: AtomicBool = AtomicBool::new(false);

/// How many subordinate ids a build maps (container ids 1..=65536).
pub const WANTED_IDS: u32 = 65536;

/// A range of subordinate ids (host side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First host id, mapped to container id 1.
    pub start: u32,
    /// Number of ids mapped (container ids 1..=count).
    pub count: u32,
}

/// Where kiln runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNamespace {
    /// Real root, or already root inside some other user namespace: steps
    /// need no new user namespace.
    Host,
    /// Inside the namespace kiln created; the ranges are None when the user
    /// has no subordinate range (only id 0 exists).
    Entered {
        uids: Option<IdRange>,
        gids: Option<IdRange>,
    },
}

impl UserNamespace {
    /// Make sure this process runs where steps can be spawned.
    ///
    /// Call early in `main` (after [`crate::dispatch_init`]), before any
    /// thread exists and before reading stdin: for a rootless user this does
    /// not return in the original process. It re-executes the binary with
    /// the same argv in a new user namespace, waits for it, forwards
    /// SIGINT/SIGTERM/SIGHUP/SIGQUIT, and exits with its status; `enter`
    /// returns `Entered` in the re-executed process.
    pub fn enter() -> Result<UserNamespace> {
        UserNamespace::enter_then(|code| code)
    }

    /// [`UserNamespace::enter`], where the original process, once the
    /// re-executed one has exited with `code`, runs `after(code)` and
    /// exits with what it returns (after a signal, `code` is 128 + the
    /// signal and the process dies of that signal whatever `after` says).
    /// It is how work that must run as the caller, outside the namespace,
    /// ends after kiln's (`kiln build --load` waits for `podman load`).
    /// Not called when `enter` returns in this process.
    pub fn enter_then(after: fn(i32) -> i32) -> Result<UserNamespace> {
        if let Some(v) = std::env::var_os(MARK) {
            // SAFETY (edition 2021 API): called at startup, single-threaded.
            std::env::remove_var(MARK);
            if !crate::rootfs::in_user_namespace() {
                return Err(Error::UserNs(format!(
                    "{MARK} is set but this is not a user namespace"
                )));
            }
            private_mounts()?;
            CALLER_ROOT.store(v == "root", Ordering::Relaxed);
            crate::degrade::set_own_userns(true);
            return Ok(UserNamespace::Entered {
                uids: beyond_root("/proc/self/uid_map"),
                gids: beyond_root("/proc/self/gid_map"),
            });
        }
        if rustix::process::geteuid().is_root() {
            // SAFETY: called at startup, before any thread exists, and a
            // new mount namespace does not touch memory.
            match unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) } {
                Ok(()) => {
                    private_mounts()?;
                    return Ok(UserNamespace::Host);
                }
                // Root without CAP_SYS_ADMIN in its user namespace (rootless
                // podman, a container with the default capabilities): a user
                // namespace of its own, mapping the ids it has, gives it one.
                Err(e) if e == rustix::io::Errno::PERM => {
                    return reexec(Caller::Root, after).map_err(|e| {
                        Error::UserNs(format!(
                            "cannot create a mount namespace (root without CAP_SYS_ADMIN), \
                             nor a user namespace to get one: {}",
                            strip(e)
                        ))
                    })
                }
                Err(e) => {
                    return Err(Error::UserNs(format!(
                        "cannot create a mount namespace: {}{}",
                        std::io::Error::from(e),
                        crate::diagnose::namespace_advice()
                    )))
                }
            }
        }
        reexec(Caller::User, after)
    }

    /// True in the process [`UserNamespace::enter`] re-executed (before
    /// `enter` is called there): what it sees is the namespace's, not the
    /// environment kiln was started in.
    pub fn is_reexecuted() -> bool {
        std::env::var_os(MARK).is_some()
    }

    /// True when kiln was started as root (real root, or root that created
    /// this namespace because it lacked CAP_SYS_ADMIN): its store is root's.
    pub fn caller_was_root(&self) -> bool {
        match self {
            UserNamespace::Host => true,
            UserNamespace::Entered { .. } => CALLER_ROOT.load(Ordering::Relaxed),
        }
    }

    /// True when container ids beyond 0 exist (a subordinate range is mapped).
    pub fn has_range(&self) -> bool {
        match self {
            UserNamespace::Host => true,
            UserNamespace::Entered { uids, gids } => uids.is_some() && gids.is_some(),
        }
    }
}

/// Nothing kiln mounts in its namespace may propagate back to the host's.
fn private_mounts() -> Result<()> {
    use rustix::mount::{mount_change, MountPropagationFlags};
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| Error::UserNs(format!("cannot make the mount namespace private: {e}")))
}

/// The message of a user namespace error, without its prefix.
fn strip(e: Error) -> String {
    match e {
        Error::UserNs(m) => m,
        other => other.to_string(),
    }
}

/// Find the first range for `name` or `id` in a subuid/subgid file's text.
pub fn find_range(text: &str, name: &str, id: u32) -> Option<IdRange> {
    let id = id.to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() != 3 || (f[0] != name && f[0] != id) {
                return None;
            }
            let r = IdRange {
                start: f[1].parse().ok()?,
                count: f[2].parse::<u32>().ok()?.min(WANTED_IDS),
            };
            (r.count > 0).then_some(r)
        })
        .next()
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

fn cstrings(items: impl Iterator<Item = OsString>) -> Result<Vec<CString>> {
    items
        .map(|s| {
            CString::new(s.into_vec()).map_err(|_| Error::UserNs("argument contains NUL".into()))
        })
        .collect()
}

/// Who started kiln: decides the id plan (and where the store is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    User,
    Root,
}

/// A user's plan: its subordinate ranges, else only id 0 (said once).
fn user_plan() -> Plan {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = user_name(uid);
    let read = |f: &str| find_range(&std::fs::read_to_string(f).unwrap_or_default(), &name, uid);
    match (read("/etc/subuid"), read("/etc/subgid")) {
        (Some(subuid), Some(subgid)) => Plan::Sub {
            uid,
            gid,
            subuid,
            subgid,
        },
        _ => {
            // A closed or full stderr must not panic (the build goes on).
            let _ = writeln!(
                std::io::stderr(),
                "kiln: warning: user {name} has no subordinate id range in /etc/subuid and \
                 /etc/subgid; only root (id 0) exists in builds and a chown to any other id \
                 will fail. Add one with: sudo usermod --add-subuids 100000-165535 \
                 --add-subgids 100000-165535 {name}"
            );
            Plan::Single { uid, gid }
        }
    }
}

/// Re-execute in a new user namespace; never returns on success.
fn reexec(caller: Caller, after: fn(i32) -> i32) -> Result<UserNamespace> {
    let plan = match caller {
        Caller::Root => Plan::own(),
        Caller::User => user_plan(),
    };
    let argv = cstrings(std::env::args_os())?;
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != MARK)
        .map(|(k, v)| {
            let mut s = k;
            s.push("=");
            s.push(v);
            s
        })
        .collect();
    let who = if caller == Caller::Root {
        "root"
    } else {
        "user"
    };
    env.push(format!("{MARK}={who}").into());
    let envs = cstrings(env.into_iter())?;
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env_p: Vec<*const libc::c_char> = envs
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();

    // Queue these signals from now on so none is lost before forwarding.
    let mut fwd = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        fwd.add(s);
    }
    fwd.thread_block()
        .map_err(|e| Error::UserNs(format!("block signals: {e}")))?;

    let pidfd = match clone_mapped(&argv_p, &env_p, &plan)? {
        Ok(p) => p,
        Err(Refused(e)) => {
            let Plan::Sub { uid, gid, .. } = plan else {
                return Err(e);
            };
            // newuidmap is setuid root, but inside a container it is capped
            // by the container's bounding set: without CAP_SYS_ADMIN the
            // kernel refuses its write (a known shadow limitation).
            let _ = writeln!(
                std::io::stderr(),
                "kiln: warning: the subordinate id range cannot be mapped ({}); falling back \
                 to a single-id mapping: only root (id 0) exists in builds and a chown to any \
                 other id will fail. Inside a container, newuidmap needs CAP_SYS_ADMIN \
                 (docker/podman run --cap-add SYS_ADMIN) and a range the container maps",
                strip(e)
            );
            clone_mapped(&argv_p, &env_p, &Plan::Single { uid, gid })?.map_err(|r| r.0)?
        }
    };
    forward_and_exit(pidfd, fwd, after)
}

/// Clone the namespace child, write its maps with `plan`, then let it
/// exec. A refused map write kills the child and comes back as `Refused`
/// (the caller may try a plan with fewer ids).
fn clone_mapped(
    argv_p: &[*const libc::c_char],
    env_p: &[*const libc::c_char],
    plan: &Plan,
) -> Result<std::result::Result<OwnedFd, Refused>> {
    let exe = c"/proc/self/exe";
    let (sync_rd, sync_wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::UserNs(format!("pipe: {e}")))?;
    let (rd, wr) = (sync_rd.as_raw_fd(), sync_wr.as_raw_fd());
    let mut pidfd: RawFd = -1;
    // A mount namespace of its own too, so kiln's overlay mounts (COPY,
    // COPY --from) are invisible to the host and die with the process.
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_PIDFD) as u64;
    // SAFETY: the child only makes raw syscalls until execve.
    let pid = unsafe { syscall::clone3(flags, &mut pidfd) }
        .map_err(|e| Error::UserNs(crate::diagnose::clone_refused(&e)))?;
    if pid == 0 {
        // SAFETY: async-signal-safe syscalls on memory prepared above.
        unsafe {
            syscall::unblock_all_signals();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::close(wr);
            let mut b = 0u8;
            // Wait until the parent has written our id maps.
            if libc::read(rd, (&mut b as *mut u8).cast(), 1) != 1 {
                libc::_exit(125);
            }
            libc::execve(exe.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
            libc::_exit(125);
        }
    }
    // SAFETY: CLONE_PIDFD gave us this fd.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(sync_rd);
    if let Err(e) = plan.write(pid) {
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        let _ = waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED);
        return Ok(Err(e));
    }
    rustix::io::write(&sync_wr, b"1").map_err(|e| Error::UserNs(format!("release child: {e}")))?;
    Ok(Ok(pidfd))
}

/// Wait for the namespace child, forwarding signals sent to us by other
/// processes (a terminal's Ctrl-C already reaches the child itself), and
/// leave with its status (as `after` makes it).
fn forward_and_exit(pidfd: OwnedFd, fwd: SigSet, after: fn(i32) -> i32) -> ! {
    let sfd = SignalFd::with_flags(&fwd, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();
    loop {
        let mut fds = vec![rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        if let Some(s) = &sfd {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
        }
        let _ = rustix::event::poll(&mut fds, None);
        if let Some(s) = &sfd {
            while let Ok(Some(info)) = s.read_signal() {
                if info.ssi_code != libc::SI_KERNEL {
                    if let Some(sig) =
                        rustix::process::Signal::from_named_raw(info.ssi_signo as i32)
                    {
                        let _ = rustix::process::pidfd_send_signal(&pidfd, sig);
                    }
                }
            }
        }
        match waitid(
            WaitId::PidFd(pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(st)) => {
                if let Some(sig) = st.terminating_signal() {
                    after(128 + sig);
                    // Die the same way, so our parent sees what happened.
                    // SAFETY: restoring the default action and re-raising.
                    unsafe {
                        libc::signal(sig, libc::SIG_DFL);
                        syscall::unblock_all_signals();
                        libc::kill(libc::getpid(), sig);
                    }
                    std::process::exit(128 + sig);
                }
                std::process::exit(after(st.exit_status().unwrap_or(125)));
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => std::process::exit(125),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_range_by_name_or_uid_and_caps_it() {
        let text = "# comment\nother:100000:65536\nkilntest:200000:65536\n1234:300000:100000\n";
        assert_eq!(
            find_range(text, "kilntest", 1001),
            Some(IdRange {
                start: 200000,
                count: 65536
            })
        );
        assert_eq!(
            find_range(text, "nobody", 1234),
            Some(IdRange {
                start: 300000,
                count: 65536
            })
        );
        assert_eq!(find_range(text, "nobody", 42), None);
        assert_eq!(
            find_range("kilntest:200000:0\nkilntest:x:1\n", "kilntest", 1),
            None
        );
    }
}
