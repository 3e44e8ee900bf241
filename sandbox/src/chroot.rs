//! The executor for `--isolation chroot`: a command run in a plain rootfs
//! directory with chroot(2) and nothing else, for containers where no
//! namespace and no mount can be made (Docker's or Kubernetes' default
//! seccomp profile, no CAP_SYS_ADMIN). It needs only CAP_SYS_CHROOT, which
//! Docker's default capability set holds.
//!
//! It isolates nothing: the command runs as the caller's own root (or the
//! USER's ids) with the caller's capabilities, network, pid, ipc and uts
//! namespaces, and a root it can leave (a root process holding
//! CAP_SYS_CHROOT escapes any chroot). It sees no /proc, /dev or /sys
//! unless the rootfs holds them: mounting them is what this mode cannot do.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::spawn::ExitStatus;
use crate::spec::{Io, Stdio};
use crate::user;

/// One command to run chrooted into `root`.
#[derive(Debug, Default)]
pub struct ChrootStep {
    /// The stage's rootfs: a plain directory.
    pub root: PathBuf,
    /// The command; `argv[0]` is looked up in the env's PATH inside `root`.
    pub argv: Vec<OsString>,
    /// `KEY=VALUE` entries; PATH and HOME are added when missing.
    pub env: Vec<OsString>,
    /// Working dir inside `root`, created (root-owned) when missing.
    pub cwd: PathBuf,
    /// The Dockerfile USER (`name`, `uid`, `name:group`, ...; empty = root),
    /// resolved with the rootfs's /etc/passwd and /etc/group.
    pub user: String,
    /// The command's stdin, stdout, stderr.
    pub stdio: Stdio,
    /// Set no_new_privs before exec.
    pub no_new_privileges: bool,
}

/// Whether this process can chroot: CAP_SYS_CHROOT in its effective set.
pub fn can_chroot() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_CHROOT,
    )
    .unwrap_or(false)
}

/// Fails, saying what to do, unless this process can chroot.
pub fn check_chroot() -> Result<()> {
    if can_chroot() {
        return Ok(());
    }
    Err(Error::Setup(
        "--isolation chroot needs CAP_SYS_CHROOT: run kiln as root in the container \
         (Docker's and Kubernetes' default capabilities include it); without it, no \
         kernel mechanism is left to run RUN steps in a locked-down container"
            .into(),
    ))
}

/// Runs `step` to completion and returns its exit status (128 + the signal
/// for a command killed by one).
pub fn run_chrooted(step: ChrootStep) -> Result<ExitStatus> {
    check_chroot()?;
    let argv0 = step
        .argv
        .first()
        .ok_or_else(|| Error::InvalidSpec("empty argv".into()))?
        .clone();
    let root_fd = rfs::open(
        &step.root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Setup(format!("open the rootfs {}: {e}", step.root.display())))?;
    let passwd = read_in_root(&root_fd, "etc/passwd")?;
    let group = read_in_root(&root_fd, "etc/group")?;
    let who = user::resolve(&step.user, &passwd, &group)?;
    make_cwd(&root_fd, &step.cwd)?;

    let mut env = step.env;
    crate::exec::default_env(&mut env, &who.home);
    let mut cmd = std::process::Command::new(&argv0);
    cmd.args(&step.argv[1..]).env_clear();
    for e in &env {
        let b = e.as_bytes();
        let i = b.iter().position(|&c| c == b'=').unwrap_or(b.len());
        cmd.env(
            OsStr::from_bytes(&b[..i]),
            OsStr::from_bytes(&b[(i + 1).min(b.len())..]),
        );
    }
    cmd.stdin(stdio(step.stdio.stdin))
        .stdout(stdio(step.stdio.stdout))
        .stderr(stdio(step.stdio.stderr));
    let root = cstring(step.root.as_os_str())?;
    let cwd = cstring(step.cwd.as_os_str())?;
    let (uid, gid, groups) = (who.uid, who.gid, who.groups.clone());
    let nnp = step.no_new_privileges;
    // A user namespace whose maps were written without newgidmap denies
    // setgroups(2) for good (buildah's single mapping, `unshare -r`): the
    // groups are then the ones the process has.
    let groups_fixed =
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe system calls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            enter(
                &root,
                &cwd,
                uid,
                gid,
                (!groups_fixed).then_some(&groups),
                nnp,
            )
        });
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Exec {
                argv0: argv0.to_string_lossy().into_owned(),
                message: "executable file not found in $PATH".into(),
            })
        }
        Err(e) => {
            return Err(Error::Exec {
                argv0: argv0.to_string_lossy().into_owned(),
                message: e.to_string(),
            })
        }
    };
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255);
    Ok(ExitStatus(code))
}

/// In the child: chroot, drop to the step's ids, chdir, mark every
/// inherited fd close-on-exec (an fd of a dir outside the root is a way
/// out of it).
fn enter(
    root: &CString,
    cwd: &CString,
    uid: u32,
    gid: u32,
    groups: Option<&Vec<u32>>,
    nnp: bool,
) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls on valid, NUL-terminated buffers.
    unsafe {
        check(libc::chroot(root.as_ptr()))?;
        check(libc::chdir(c"/".as_ptr()))?;
        if let Some(groups) = groups {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        }
        check(libc::setresgid(gid, gid, gid))?;
        check(libc::setresuid(uid, uid, uid))?;
        check(libc::chdir(cwd.as_ptr()))?;
        if nnp {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        }
        let rc = libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        check(rc as libc::c_int)?;
    }
    Ok(())
}

/// Reads an id file of the (untrusted) rootfs, resolved inside it: a
/// symlinked /etc never reaches the host's files. Missing reads as empty.
fn read_in_root(root: &OwnedFd, rel: &str) -> Result<String> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rfs::openat2(root, rel, flags, Mode::empty(), how) {
        Ok(fd) => user::read_id_file(File::from(fd), &format!("/{rel}"))
            .map_err(|e| Error::Setup(e.to_string())),
        Err(Errno::NOENT) => Ok(String::new()),
        Err(e) => Err(Error::Setup(format!("open /{rel} in the rootfs: {e}"))),
    }
}

/// Creates the working dir inside the root like runc does (root-owned,
/// 0755), each component resolved inside the root.
fn make_cwd(root: &OwnedFd, cwd: &Path) -> Result<()> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rfs::openat(root, ".", flags, Mode::empty())
        .map_err(|e| Error::Setup(format!("open the rootfs: {e}")))?;
    let err = |e: Errno| Error::Setup(format!("working dir {}: {e}", cwd.display()));
    let mut sofar = PathBuf::from("/");
    for c in cwd.components() {
        let Component::Normal(name) = c else { continue };
        sofar.push(name);
        match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(err(e)),
        }
        let rel = sofar.strip_prefix("/").unwrap_or(&sofar);
        dir = rfs::openat2(root.as_fd(), rel, flags, Mode::empty(), how).map_err(err)?;
    }
    Ok(())
}

fn stdio(io: Io) -> std::process::Stdio {
    match io {
        Io::Inherit => std::process::Stdio::inherit(),
        Io::Null => std::process::Stdio::null(),
        Io::Fd(fd) => std::process::Stdio::from(fd),
    }
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::InvalidSpec(format!("{s:?} contains a NUL byte")))
}
