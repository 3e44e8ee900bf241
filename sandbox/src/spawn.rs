//! kiln's side of a step: hand the spec to the zygote (see `zygote.rs`),
//! which forks the sandbox init into fresh namespaces, then wait for the
//! init's report and its exit.
//!
//! Each step has its own `SOCK_SEQPACKET` socket. On it the zygote sends
//! `P` with the init's pidfd, and the init sends one record: `C<code>`
//! (the command's exit status), or a failure (`S` setup, `X` exec, `U` user),
//! after any number of `W<note>` records (a fallback it took, printed once
//! per kiln run: see `degrade.rs`).
//! End of stream means the init has exited; its pidfd becomes readable
//! once its namespaces (and so all the step's mounts) are gone.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::process::Signal;

use crate::codec;
use crate::error::{Context, Error, Result};
use crate::spec::{Io, Network, Spec};
use crate::zygote;

/// Exit status of a step: the command's exit code, or 128 + signal number
/// when it was killed (as a shell reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(pub(crate) i32);

impl ExitStatus {
    /// 0..=255.
    pub fn code(self) -> i32 {
        self.0
    }
    /// Exit code 0.
    pub fn success(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

/// A running step. Dropping it without [`Step::wait`] kills the step.
#[derive(Debug)]
pub struct Step {
    sock: OwnedFd,
    pidfd: Option<OwnedFd>,
    /// Records that arrived before the pidfd.
    early: Vec<Vec<u8>>,
    waited: bool,
    /// The step's upper dir and lowers, tidied after it ends, and the
    /// dirs its mount points may have copied up.
    upper: std::path::PathBuf,
    lowers: Vec<std::path::PathBuf>,
    copy_ups: Vec<std::path::PathBuf>,
}

/// Run one step to completion.
pub fn run(spec: &Spec) -> Result<ExitStatus> {
    spawn(spec)?.wait()
}

/// Start a step. Returns once its init exists; setup errors are reported
/// by [`Step::wait`].
pub fn spawn(spec: &Spec) -> Result<Step> {
    spec.validate()?;
    crate::caps::warn_missing_once();
    let mut memfd = File::from(
        rfs::memfd_create("kiln-spec", rfs::MemfdFlags::CLOEXEC).ctx(|| "memfd_create")?,
    );
    memfd
        .write_all(&codec::encode(spec)?)
        .ctx(|| "write spec")?;
    rfs::seek(&memfd, rfs::SeekFrom::Start(0)).ctx(|| "seek spec")?;
    let (mine, theirs) = zygote::seqpacket_pair()?;

    let mut opened: Vec<OwnedFd> = Vec::new();
    let mut stdio: [RawFd; 3] = [0, 1, 2];
    for (i, io) in [&spec.stdio.stdin, &spec.stdio.stdout, &spec.stdio.stderr]
        .into_iter()
        .enumerate()
    {
        match io {
            Io::Inherit => {}
            Io::Null => {
                let null = rfs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                    .ctx(|| "open /dev/null")?;
                stdio[i] = null.as_raw_fd();
                opened.push(null);
            }
            Io::Fd(fd) => stdio[i] = fd.as_raw_fd(),
        }
    }
    let mut flags = match spec.network {
        Network::Host => 0,
        Network::None => zygote::FLAG_NEWNET,
        Network::Private => zygote::FLAG_PRIVNET,
    };
    if crate::degrade::own_userns() {
        flags |= zygote::FLAG_OWN_USERNS;
    }
    zygote::request(
        &[flags],
        &[
            memfd.as_raw_fd(),
            stdio[0],
            stdio[1],
            stdio[2],
            theirs.as_raw_fd(),
        ],
    )?;
    drop(theirs);
    drop(opened);

    let mut step = Step {
        sock: mine,
        pidfd: None,
        early: Vec::new(),
        waited: false,
        upper: spec.upper.clone(),
        lowers: spec.lowers.clone(),
        copy_ups: crate::rootfs::copy_up_candidates(spec),
    };
    // The zygote's `P` comes right after the clone; an early failure of the
    // init may arrive before it.
    while step.pidfd.is_none() {
        match step.recv()? {
            None => break,
            Some((rec, mut fds)) if rec.first() == Some(&b'P') => step.pidfd = fds.pop(),
            Some((rec, _)) => step.early.push(rec),
        }
    }
    Ok(step)
}

fn decode_failure(buf: &[u8]) -> Error {
    let text = String::from_utf8_lossy(buf.get(1..).unwrap_or_default()).into_owned();
    let split = |t: &str| -> (String, String) {
        match t.split_once('\0') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (String::new(), t.to_string()),
        }
    };
    match buf.first() {
        Some(b'X') => {
            let (argv0, message) = split(&text);
            Error::Exec { argv0, message }
        }
        Some(b'U') => {
            let (user, message) = split(&text);
            Error::User { user, message }
        }
        _ => Error::Setup(text),
    }
}

impl Step {
    fn recv(&self) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        Ok(
            zygote::recv_with_fds(self.sock.as_raw_fd(), &mut buf)?.map(|(n, fds)| {
                buf.truncate(n);
                (buf, fds)
            }),
        )
    }

    /// Send `sig` to the step: the init forwards it to the command (SIGKILL
    /// ends the whole step at once).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        match &self.pidfd {
            Some(p) => match rustix::process::pidfd_send_signal(p, sig) {
                Err(rustix::io::Errno::SRCH) => Ok(()), // already gone
                r => r.ctx(|| "signal the step"),
            },
            None => Ok(()),
        }
    }

    /// Wait for the step to end: every process gone, every mount gone. A
    /// setup or exec failure inside the sandbox comes back as an error;
    /// otherwise the command's exit status.
    pub fn wait(mut self) -> Result<ExitStatus> {
        let mut records = std::mem::take(&mut self.early);
        while let Some((rec, _)) = self.recv()? {
            records.push(rec);
        }
        if let Some(p) = &self.pidfd {
            let mut fds = [PollFd::new(p, PollFlags::IN)];
            while let Err(rustix::io::Errno::INTR) = poll(&mut fds, None) {}
        }
        self.waited = true;
        for r in records.iter().filter_map(|r| r.strip_prefix(b"W")) {
            crate::degrade::warn_once(&String::from_utf8_lossy(r));
        }
        if let Some(f) = records
            .iter()
            .find(|r| matches!(r.first(), Some(b'S' | b'X' | b'U')))
        {
            return Err(decode_failure(f));
        }
        let code = records
            .iter()
            .find_map(|r| r.strip_prefix(b"C"))
            .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok());
        crate::rootfs::drop_copy_ups(&self.upper, &self.lowers, &self.copy_ups)?;
        match (code, &self.pidfd) {
            (Some(c), _) => Ok(ExitStatus(c)),
            // Killed before it could report (SIGKILL through `signal`).
            (None, Some(_)) => Ok(ExitStatus(128 + libc::SIGKILL)),
            (None, None) => Err(Error::Setup("the sandbox init did not start".into())),
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.waited {
            if let Some(p) = &self.pidfd {
                let _ = rustix::process::pidfd_send_signal(p, Signal::KILL);
                let mut fds = [PollFd::new(p, PollFlags::IN)];
                let _ = poll(&mut fds, None);
            }
        }
    }
}
