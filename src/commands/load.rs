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

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use rustix::io::{fcntl_setfd, FdFlags};

/// The inherited write end's fd number, for the re-executed kiln.
const FD_VAR: &str = "_KILN_LOAD_FD";

struct Loader {
    podman: Child,
    /// This process's copy of the pipe's write end.
    write: OwnedFd,
}

static LOADER: Mutex<Option<Loader>> = Mutex::new(None);
/// In the re-executed kiln: the write end the original one handed down.
static INHERITED: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Starts `podman load` reading from a pipe (in the re-executed kiln:
/// takes the pipe's end over). Call before entering the user namespace,
/// while the process has one thread.
pub fn start(quiet: bool) -> Result<()> {
    if let Some(raw) = std::env::var(FD_VAR).ok().and_then(|v| v.parse().ok()) {
        // SAFETY: the original kiln left this fd open for us alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // RUN steps and helpers must not inherit it: podman sees the end
        // of the archive only when every copy is closed.
        fcntl_setfd(&fd, FdFlags::CLOEXEC).context("--load: the pipe to podman load")?;
        // SAFETY (edition 2021 API): single-threaded, at startup.
        std::env::remove_var(FD_VAR);
        *lock(&INHERITED) = Some(fd);
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
    // -q: only the "Loaded image" line, not the copy's progress, which
    // would land after kiln's own.
    let podman = Command::new("podman")
        .args(["load", "-q"])
        .stdin(Stdio::from(read))
        .stdout(out)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("--load runs `podman load`, and podman is not installed (or not in PATH); use -o type=docker,dest=FILE instead")
            }
            _ => anyhow!("--load: running podman load: {e}"),
        })?;
    // As root kiln stays in this process (no namespace to enter): the fd
    // is only handed down to a re-executed kiln.
    if !rustix::process::geteuid().is_root() {
        fcntl_setfd(&write, FdFlags::empty()).context("--load: sharing the pipe")?;
        // SAFETY (edition 2021 API): single-threaded, before the namespace.
        std::env::set_var(FD_VAR, write.as_raw_fd().to_string());
    }
    *lock(&LOADER) = Some(Loader { podman, write });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the build writes the archive: the pipe into `podman load`.
pub fn sink() -> Result<std::io::BufWriter<std::fs::File>> {
    let fd = match lock(&INHERITED).take() {
        Some(fd) => fd,
        None => lock(&LOADER)
            .as_ref()
            .context("--load: podman load was not started")?
            .write
            .try_clone()
            .context("--load: the pipe to podman load")?,
    };
    Ok(std::io::BufWriter::with_capacity(
        1 << 16,
        std::fs::File::from(fd),
    ))
}

/// Once kiln's work is done (`code` its exit code): ends podman's input
/// and waits for it. A failed build kills podman before it sees the end,
/// so that no half image is loaded; a failed load fails kiln.
pub fn finish(code: i32) -> i32 {
    let Some(mut loader) = lock(&LOADER).take() else {
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
