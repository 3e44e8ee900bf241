//! The step's command: everything decided before fork (user lookup, PATH
//! lookup, environment, working dir) and the short, allocation-free path
//! from fork to exec (capabilities, ids, fds, chdir, execve).

use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::caps;
use crate::error::{Error, Result};
use crate::spec::{Spec, User};
use crate::syscall;
use crate::user;

/// Docker's default PATH, used when the spec's env has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command ready to exec: every string already a `CString`.
pub(crate) struct Command {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    seccomp: Option<std::sync::Arc<crate::seccomp::Filter>>,
    no_new_privileges: bool,
    rlimits: Vec<crate::spec::Rlimit>,
}

/// Read an id file of the (untrusted) rootfs: regular files only, bounded,
/// never blocking on a FIFO; a missing file reads as empty.
fn read_id_file(path: &str) -> Result<String> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => user::read_id_file(f, path).map_err(|e| Error::Setup(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::Setup(format!("open {path} in the rootfs: {e}"))),
    }
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::InvalidSpec(format!("{s:?} contains a NUL byte")))
}

/// Find `argv0` like execvp would, in the step's PATH, as seen from inside
/// the rootfs (we are past pivot_root).
fn lookup(argv0: &OsStr, path_var: &OsStr) -> Result<PathBuf> {
    if argv0.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(argv0));
    }
    for dir in path_var.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let cand = Path::new(OsStr::from_bytes(dir)).join(argv0);
        if let Ok(m) = fs::metadata(&cand) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(Error::Exec {
        argv0: argv0.to_string_lossy().into_owned(),
        message: "executable file not found in $PATH".into(),
    })
}

/// Resolve everything the command needs. Runs in the init after
/// pivot_root, so /etc/passwd and PATH are the image's.
pub(crate) fn prepare(spec: &Spec) -> Result<Command> {
    let (uid, gid, groups, home) = match &spec.user {
        User::Named(u) => {
            let r = user::resolve(
                u,
                &read_id_file("/etc/passwd")?,
                &read_id_file("/etc/group")?,
            )?;
            (r.uid, r.gid, r.groups, r.home)
        }
        User::Ids { uid, gid, groups } => (*uid, *gid, groups.clone(), "/".to_string()),
    };
    let mut env: Vec<OsString> = spec.env.clone();
    default_env(&mut env, &home);
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH=").map(OsStr::from_bytes))
        .unwrap_or(OsStr::new(DEFAULT_PATH));
    let path = lookup(&spec.argv[0], path_var)?;

    // Like runc: a missing working dir is created (owned by root).
    if fs::metadata(&spec.cwd).is_err() {
        fs::create_dir_all(&spec.cwd).map_err(|e| Error::Exec {
            argv0: spec.argv[0].to_string_lossy().into_owned(),
            message: format!("working dir {}: {e}", spec.cwd.display()),
        })?;
    }
    Ok(Command {
        path: cstring(path.as_os_str())?,
        argv: spec
            .argv
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_>>()?,
        envp: env.iter().map(|e| cstring(e)).collect::<Result<_>>()?,
        cwd: cstring(spec.cwd.as_os_str())?,
        uid,
        gid,
        groups,
        seccomp: spec.seccomp.filter()?,
        no_new_privileges: spec.no_new_privileges,
        rlimits: spec.rlimits.clone(),
    })
}

/// Hint appended to id errors when no subordinate range is mapped.
pub(crate) fn no_range_hint() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "$USER".into());
    format!(
        "this build has no subordinate id range, so only id 0 exists in the sandbox; \
         add one with `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` \
         (or a line `{user}:100000:65536` in /etc/subuid and /etc/subgid)"
    )
}

impl Command {
    /// Become the command: reduce privileges, close fds, chdir, exec. Runs in
    /// the init's forked child; on failure writes the reason to `report`
    /// (close-on-exec, so success closes it) and exits 127.
    pub(crate) fn exec(&self, report: RawFd) -> ! {
        let Err(msg) = self.try_exec(report);
        syscall::write_raw(report, msg.as_bytes());
        // SAFETY: _exit skips atexit handlers that belong to the init.
        unsafe { libc::_exit(127) }
    }

    fn try_exec(&self, report: RawFd) -> std::result::Result<Infallible, String> {
        let errno = || std::io::Error::last_os_error();
        crate::init::reset_signals();
        for r in &self.rlimits {
            let limit = libc::rlimit {
                rlim_cur: r.soft as libc::rlim_t,
                rlim_max: r.hard as libc::rlim_t,
            };
            // SAFETY: a plain syscall on a valid pointer.
            if unsafe { libc::setrlimit(r.resource as _, &limit) } != 0 {
                return Err(format!(
                    "ulimit {} (soft {}, hard {}): {}",
                    r.resource,
                    r.soft,
                    r.hard,
                    errno()
                ));
            }
        }
        caps::limit_bounding().map_err(|e| e.to_string())?;
        crate::seccomp::apply(self.no_new_privileges, self.seccomp.as_deref())?;
        // SAFETY (all blocks below): plain syscalls on valid pointers.
        unsafe {
            if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0 {
                let e = errno();
                // With no subordinate range, /proc/self/setgroups is "deny":
                // the inherited groups stay, which is all we can do.
                if !(e.raw_os_error() == Some(libc::EPERM) && crate::init::no_range()) {
                    return Err(format!("setgroups {:?}: {e}", self.groups));
                }
            }
            if libc::setresgid(self.gid, self.gid, self.gid) != 0 {
                let e = errno();
                let hint = if crate::init::no_range() {
                    format!("; {}", no_range_hint())
                } else {
                    String::new()
                };
                return Err(format!("set gid {}: {e}{hint}", self.gid));
            }
            if libc::setresuid(self.uid, self.uid, self.uid) != 0 {
                let e = errno();
                let hint = if crate::init::no_range() {
                    format!("; {}", no_range_hint())
                } else {
                    String::new()
                };
                return Err(format!("set uid {}: {e}{hint}", self.uid));
            }
        }
        if self.uid == 0 {
            caps::set_root_caps().map_err(|e| e.to_string())?;
        }
        // Every fd but 0-2 (and the close-on-exec report pipe) goes BEFORE
        // chdir: a leaked fd would make `cwd = /proc/self/fd/N` a way out
        // (runc CVE-2024-21626).
        let r = report as u32;
        syscall::close_range(3, r.saturating_sub(1)).map_err(|e| format!("close fds: {e}"))?;
        syscall::close_range(r + 1, u32::MAX).map_err(|e| format!("close fds: {e}"))?;
        unsafe {
            if libc::chdir(self.cwd.as_ptr()) != 0 {
                return Err(format!("working dir {:?}: {}", self.cwd, errno()));
            }
        }
        let argv: Vec<*const libc::c_char> = self
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        unsafe {
            libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        Err(format!("exec {:?}: {}", self.path, errno()))
    }
}

/// PATH and HOME for a command whose environment does not set them, as
/// runc's and Docker's defaults.
pub(crate) fn default_env(env: &mut Vec<OsString>, home: &str) {
    let has = |env: &[OsString], k: &[u8]| {
        env.iter()
            .any(|e| e.as_bytes().starts_with(k) && e.as_bytes().get(k.len()) == Some(&b'='))
    };
    if !has(env, b"PATH") {
        env.push(format!("PATH={DEFAULT_PATH}").into());
    }
    if !has(env, b"HOME") {
        env.push(format!("HOME={home}").into());
    }
}
