//! `kiln build --load`: the image streamed as a docker-archive into
//! `podman load`, with no file in between.
//!
//! podman must run as the user who ran kiln, outside kiln's user namespace
//! (inside it the user is root, and podman would reach for the system's
//! storage). So the original process starts `podman load` before entering
//! the namespace, hands the pipe's write end down to the re-executed kiln
//! (an inherited fd, its number in [`FD_VAR`]), and once that kiln exits
//! closes its own copy and waits for podman: `kiln build --load -t app .
//! && podman run app` finds the image.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use rustix::io::{fcntl_dupfd_cloexec, fcntl_setfd, FdFlags};

/// The inherited write end's fd number, for the re-executed kiln.
const FD_VAR: &str = "_KILN_LOAD_FD";

struct Loader {
    podman: Child,
    /// This process's copy of the pipe's write end.
    write: OwnedFd,
}

static LOADER: Mutex<Option<Loader>> = Mutex::new(None);
/// Whether the loader (and so the fd in [`FD_VAR`]) belongs to this
/// process, rather than being inherited from the original kiln.
static STARTED_HERE: AtomicBool = AtomicBool::new(false);

/// Starts `podman load` reading from a pipe. Call before entering the
/// user namespace, while the process has one thread.
pub fn start(quiet: bool) -> Result<()> {
    if std::env::var_os(FD_VAR).is_some() {
        // The re-executed kiln: the original one started podman.
        return Ok(());
    }
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context("--load: creating a pipe")?;
    // podman's "Loaded image: NAME" is not kiln's output (stdout may be
    // the image ID of -q): it goes to stderr, or nowhere when quiet.
    let out = if quiet {
        Stdio::null()
    } else {
        Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?)
    };
    let mut cmd = Command::new("podman");
    cmd.arg("load");
    if quiet {
        cmd.arg("-q");
    }
    let podman = cmd
        .stdin(Stdio::from(read))
        .stdout(out)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("--load runs `podman load`, and podman is not installed (or not in PATH); use -o type=docker,dest=FILE instead")
            }
            _ => anyhow!("--load: running podman load: {e}"),
        })?;
    // Inherited by the re-executed kiln (podman has its read end already).
    fcntl_setfd(&write, FdFlags::empty()).context("--load: sharing the pipe")?;
    // SAFETY (edition 2021 API): single-threaded, before the namespace.
    std::env::set_var(FD_VAR, write.as_raw_fd().to_string());
    STARTED_HERE.store(true, Ordering::SeqCst);
    *LOADER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Loader { podman, write });
    Ok(())
}

/// Where the build writes the archive: the pipe into `podman load`.
pub fn sink() -> Result<std::io::BufWriter<std::fs::File>> {
    let raw: RawFd = std::env::var(FD_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .context("--load: podman load was not started")?;
    // SAFETY: the fd was made for this by `start`, in this process or in
    // the original kiln that handed it down.
    let inherited = unsafe { rustix::fd::BorrowedFd::borrow_raw(raw) };
    let fd = fcntl_dupfd_cloexec(inherited, 3).context("--load: the pipe to podman load")?;
    if !STARTED_HERE.load(Ordering::SeqCst) {
        // Not left open for RUN steps or helpers to inherit: podman sees
        // the end of the archive only when every copy is closed.
        // SAFETY: inherited, owned by nothing else in this process.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    Ok(std::io::BufWriter::with_capacity(
        1 << 16,
        std::fs::File::from(fd),
    ))
}

/// Once kiln's work is done (`code` its exit code): ends podman's input
/// and waits for it. A failed build kills podman before it sees the end,
/// so that no half image is loaded; a failed load fails kiln.
pub fn finish(code: i32) -> i32 {
    let Some(mut loader) = LOADER.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return code;
    };
    if code != 0 {
        let _ = loader.podman.kill();
    }
    drop(loader.write);
    let status = loader.podman.wait();
    if code != 0 {
        return code;
    }
    match status {
        Ok(s) if s.success() => 0,
        Ok(s) => {
            say!("error: --load: podman load failed ({s})");
            s.code().unwrap_or(1)
        }
        Err(e) => {
            say!("error: --load: waiting for podman load: {e}");
            1
        }
    }
}
