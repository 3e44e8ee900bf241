//! Raw system calls that neither rustix nor nix wrap (clone3 with namespace
//! flags, mount_setattr, close_range), plus the few async-signal-safe
//! helpers used between clone and exec.
//!
//! Everything here is a thin `unsafe` shim; callers own the safety argument.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// `struct clone_args` from linux/sched.h (version 2, 88 bytes). Defined here
/// rather than taken from libc so the layout is visibly the kernel ABI.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Fork-like `clone3`: the child runs on a copy of the caller's stack.
/// Returns 0 in the child and the child's pid in the parent; with
/// `CLONE_PIDFD` in `flags`, `pidfd` receives the child's pidfd.
///
/// # Safety
/// In a multi-threaded caller the child may only use async-signal-safe raw
/// system calls until it execs or exits (no allocation, no locks).
pub(crate) unsafe fn clone3(flags: u64, pidfd: &mut RawFd) -> io::Result<libc::pid_t> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if flags & libc::CLONE_PIDFD as u64 != 0 {
        args.pidfd = pidfd as *mut RawFd as u64;
    }
    let ret = libc::syscall(
        libc::SYS_clone3,
        &mut args as *mut CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as libc::pid_t)
    }
}

/// `CLONE_CLEAR_SIGHAND` (clone3 only): reset every handler to default in
/// the child. libc's constant is an overflowing `c_int`.
pub(crate) const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `struct mount_attr` from linux/mount.h.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`: change
/// flags of the mount (tree) that `fd` refers to. Unlike a legacy
/// MS_REMOUNT it does not need the locked flags repeated.
pub(crate) fn mount_setattr(fd: BorrowedFd<'_>, set: u64, recursive: bool) -> io::Result<()> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: all pointers are valid for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Close every fd in `first..=last`. Raw syscall only: safe between fork and
/// exec.
pub(crate) fn close_range(first: u32, last: u32) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: closing fds we are about to lose on exec anyway; no Rust
    // object owns them in the callers (fresh child processes).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Unblock every signal of the calling thread with a raw syscall (the
/// child of a clone inherits the mask of the thread that cloned it).
pub(crate) fn unblock_all_signals() {
    // SAFETY: a zeroed sigset_t is the empty set; the kernel only reads it.
    unsafe {
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const libc::sigset_t,
            std::ptr::null_mut::<libc::sigset_t>(),
            8usize,
        );
    }
}

/// Write all of `buf` to `fd` with raw `write(2)`; errors are ignored (used
/// only to report a failure right before `_exit`).
pub(crate) fn write_raw(fd: RawFd, buf: &[u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the pointer/length pair comes from a live slice.
        let n = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}
