//! kiln-sandbox: the rootless executor that runs one RUN step in a fresh
//! user + mount + pid namespace over an overlayfs. It knows nothing about
//! Dockerfiles: it takes a [`Spec`] (lowers, upper, binds, env, user, cwd,
//! argv) and returns an [`ExitStatus`].
//!
//! # How a binary uses it
//!
//! ```no_run
//! fn main() {
//!     // 1. First line of main: if this process is the sandbox's helper
//!     //    (kiln re-executes itself once, on the first step), run it and
//!     //    exit. Nothing may come before this call.
//!     kiln_sandbox::dispatch_init();
//!     // 2. Once per process, before any thread: a rootless user is
//!     //    re-executed inside a new user namespace (this call does not
//!     //    return in the original process); real root stays as it is.
//!     let _ns = kiln_sandbox::UserNamespace::enter().expect("user namespace");
//!     // 3. Any number of steps, from any thread, concurrently if wanted.
//!     //    `upper` and `work` are empty dirs on one filesystem; delete
//!     //    `work` afterwards (inside the namespace, like all store work).
//!     let spec = kiln_sandbox::Spec::new(
//!         vec!["/store/layers/base".into()],
//!         "/store/tmp/upper",
//!         "/store/tmp/work",
//!         vec!["/bin/true".into()],
//!     );
//!     let status = kiln_sandbox::run(&spec).expect("step");
//!     assert!(status.success());
//! }
//! ```
//!
//! # Per step
//!
//! [`run`] hands the spec to the zygote (`zygote.rs`), a single-threaded
//! helper started once per kiln process by re-executing the binary. It
//! clones the step's init into new mount, pid, ipc and uts namespaces (and
//! a network namespace for [`Network::None`]; a [`Network::Private`] step
//! joins the process-wide private network that [`private_network`] started,
//! see `net.rs`) without an exec. The init
//! (`init.rs`) builds the rootfs: overlay via the new mount API
//! (`rootfs.rs`), /proc, /dev, /sys, /etc/hosts, /etc/resolv.conf,
//! pivot_root, then the command with Docker's default capabilities and the
//! image's user (`exec.rs`). The init reaps, forwards signals and returns
//! the command's status; when it exits, every process and mount of the step
//! is gone, and [`Step::wait`] returns only after that. When kiln dies the
//! zygote sees its socket close and exits, and every init dies with it
//! (parent-death signal).

// The crate example is about what `main` must do, so it shows a `main`.
#![allow(clippy::needless_doctest_main)]

mod caps;
mod chroot;
mod codec;
mod degrade;
pub mod diagnose;
mod error;
mod exec;
mod idmap;
mod init;
mod mounts;
mod net;
mod overlay;
mod rootfs;
pub mod seccomp;
mod spawn;
mod spec;
mod syscall;
mod user;
mod userns;
mod zygote;

pub use caps::{docker_default_mask, missing_default_caps, DOCKER_DEFAULT};
pub use chroot::{can_chroot, check_chroot, run_chrooted, ChrootStep};
pub use error::{Error, Result};
pub use exec::DEFAULT_PATH;
pub use net::private_network;
pub use overlay::{bind_fd, mount_overlay, mount_tmpfs, Mounted, Upper};
pub use seccomp::Seccomp;
pub use spawn::{run, spawn, ExitStatus, Step};
pub use spec::{Io, Mount, Network, Rlimit, Spec, Stdio, User, MAX_LOWERS, MAX_LOWER_PATH};
pub use user::{read_id_file, resolve as resolve_user, Resolved, MAX_ID_FILE};
pub use userns::{find_range, IdRange, UserNamespace, WANTED_IDS};

pub use zygote::ZYGOTE_ARGV0;

/// Run the sandbox's helper process if this process is one, else return at
/// once.
///
/// The binary that links this crate MUST call this first thing in `main`,
/// before parsing arguments or starting threads: on the first step, kiln
/// re-executes `/proc/self/exe` with `argv[0] == "kiln-sandbox-zygote"`
/// (and a socket on fd 3) as the long-lived helper that forks every step's
/// sandbox init; in that process this call never returns.
pub fn dispatch_init() {
    let argv0 = std::env::args_os().next();
    if argv0.as_deref() == Some(std::ffi::OsStr::new(zygote::ZYGOTE_ARGV0)) {
        std::process::exit(zygote::main());
    }
}
