//! The step's seccomp filter. By default RUN steps get Docker's default
//! profile, evaluated for Docker's default capabilities (the step's set,
//! see `caps.rs`), as BuildKit does: an allowlist, EPERM for the rest,
//! ENOSYS for `clone3` (so glibc falls back to `clone`, whose namespace
//! flags the profile can check) and for syscalls newer than the profile.
//!
//! The filter is compiled once per process ([`docker_default`]) or once per
//! build (a custom [`Profile`]), travels with the spec as BPF, and is
//! installed in the command's process right before `execve` by a raw
//! syscall (`exec.rs`), so kiln's own init (mounts, pivot_root) is never
//! filtered and the workload, and all it spawns, always is.

mod bpf;
mod docker_default;
mod json;
mod nr_aarch64;
mod nr_i386;
mod nr_x86_64;
mod profile;

use std::sync::{Arc, OnceLock};

pub use profile::{Action, Arg, Cond, Context, Op, Profile, Rule};

use crate::error::{Error, Result};
use bpf::{ArchRules, Insn};

/// A compiled filter, ready to install.
#[derive(Clone, PartialEq, Eq)]
pub struct Filter {
    prog: Vec<Insn>,
}

// A spec's Debug output shows the filter's size, not 500 instructions.
impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Filter({} instructions)", self.prog.len())
    }
}

/// Which filter the step's command runs under.
#[derive(Debug, Clone, Default)]
pub enum Seccomp {
    /// Docker's default profile (compiled once per process).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A compiled custom profile.
    Filter(Arc<Filter>),
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Go's name of the host architecture (the names Docker profiles use).
pub fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    }
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let rel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

impl Context {
    /// A RUN step on this host: Docker's default capabilities.
    pub fn host() -> Context {
        Context {
            caps: crate::caps::DOCKER_DEFAULT
                .iter()
                .map(|c| c.to_string())
                .collect(),
            arch: host_arch(),
            kernel: kernel_version(),
        }
    }
}

impl Filter {
    /// Compile `profile` for the host's architecture: x86_64 (with its i386
    /// compat ABI; x32 calls get ENOSYS) or aarch64. qemu-user runs foreign
    /// binaries through host system calls, so the host's filter covers them.
    pub fn compile(profile: &Profile, ctx: &Context) -> Result<Filter> {
        let err = |m: String| Error::InvalidSpec(format!("seccomp profile: {m}"));
        let prog = if cfg!(target_arch = "x86_64") {
            let native = profile.resolve(ctx, nr_x86_64::TABLE);
            let compat = profile.resolve(ctx, nr_i386::TABLE);
            bpf::compile(
                &[
                    ArchRules {
                        audit_arch: AUDIT_ARCH_X86_64,
                        foreign_from: X32_SYSCALL_BIT,
                        rules: &native,
                    },
                    ArchRules {
                        audit_arch: AUDIT_ARCH_I386,
                        foreign_from: u32::MAX,
                        rules: &compat,
                    },
                ],
                profile.default_action,
            )
        } else if cfg!(target_arch = "aarch64") {
            let native = profile.resolve(ctx, nr_aarch64::TABLE);
            bpf::compile(
                &[ArchRules {
                    audit_arch: AUDIT_ARCH_AARCH64,
                    foreign_from: u32::MAX,
                    rules: &native,
                }],
                profile.default_action,
            )
        } else {
            return Err(err(format!(
                "no system call table for {}; use --security-opt seccomp=unconfined",
                std::env::consts::ARCH
            )));
        };
        Ok(Filter {
            prog: prog.map_err(err)?,
        })
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Never true for a compiled filter (it has at least a return).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }

    /// The program as bytes (`struct sock_filter` array, native endian).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prog.len() * 8);
        for i in &self.prog {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// The inverse of [`Filter::to_bytes`]; the kernel checks the rest.
    pub(crate) fn from_bytes(b: &[u8]) -> Result<Filter> {
        if b.is_empty() || !b.len().is_multiple_of(8) || b.len() / 8 > bpf::MAX_INSNS {
            return Err(Error::Codec(format!(
                "bad seccomp program of {} bytes",
                b.len()
            )));
        }
        let prog = b
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Filter { prog })
    }

    /// Install on the calling thread (and what it execs). Raw syscall, no
    /// allocation: safe between fork and exec. Without no_new_privs the
    /// caller needs CAP_SYS_ADMIN in its user namespace.
    pub(crate) fn install(&self) -> std::io::Result<()> {
        let fprog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `Insn` has the layout of `struct sock_filter`; the program
        // outlives the call, which copies it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// Set no_new_privs if asked, then install `filter`, in the command's
/// process before it execs. The filter goes on while the process is still
/// root with every capability of its user namespace, because installing one
/// without no_new_privs needs CAP_SYS_ADMIN there (runc orders it the same
/// way); what the process does after (setgroups, setresuid, capset,
/// close_range, chdir, execve) is allowed by Docker's profile.
pub(crate) fn apply(
    no_new_privs: bool,
    filter: Option<&Filter>,
) -> std::result::Result<(), String> {
    if no_new_privs {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
        }
    }
    if let Some(f) = filter {
        f.install()
            .map_err(|e| format!("install the seccomp filter: {e}"))?;
    }
    Ok(())
}

/// Docker's default profile for a RUN step on this host, compiled on first
/// use and shared by every step of the process.
pub fn docker_default() -> Result<Arc<Filter>> {
    static CACHE: OnceLock<std::result::Result<Arc<Filter>, String>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            Filter::compile(&Profile::docker_default(), &Context::host())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::InvalidSpec)
}

impl Seccomp {
    /// The filter to install, if any.
    pub(crate) fn filter(&self) -> Result<Option<Arc<Filter>>> {
        match self {
            Seccomp::Default => docker_default().map(Some),
            Seccomp::Unconfined => Ok(None),
            Seccomp::Filter(f) => Ok(Some(f.clone())),
        }
    }
}

#[cfg(test)]
mod tests;
