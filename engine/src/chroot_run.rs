//! RUN under `--isolation chroot`: the command chrooted into the stage's
//! rootfs dir (`kiln_sandbox::run_chrooted`), its layer the snapshot diff
//! of that dir. What the namespace mode mounts for a step (/dev's nodes,
//! /etc/hosts, /etc/resolv.conf) is made in the dir before the snapshot
//! when the image lacks it and removed after the diff, and what is below
//! /dev, /proc and /sys is left out of the layer, as the namespace mode's
//! mounts there keep it out.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::instructions::{CommandLine, Network, Run};
use kiln_sandbox::{ChrootStep, Io, Stdio};

use super::progress::Vertex;
use super::steps::StepDirs;
use super::{Builder, StageState};

/// Device nodes a step finds in /dev (Docker's), made where the rootfs
/// lacks them: (name, major, minor).
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Files the namespace mode binds from the host for the step's network.
const NET_FILES: [&str; 2] = ["etc/hosts", "etc/resolv.conf"];

/// Trees the namespace mode mounts over: nothing below them is a layer's.
const MOUNTED: [&str; 3] = ["dev", "proc", "sys"];

impl Builder<'_> {
    pub(super) fn run_chroot(
        &self,
        state: &mut StageState,
        run: &Run,
        argv: Vec<String>,
        env: Vec<OsString>,
        vertex: &Vertex<'_>,
    ) -> Result<()> {
        refuse_unsupported(run)?;
        let dirs = StepDirs::new(self)?;
        let rootfs = self.stage_rootfs(state)?;
        let root = rootfs.path().to_path_buf();
        let made = Prepared::make(&root)?;
        let view = self.open_rw(state, &dirs)?;
        let (out, reader) = vertex.output()?;
        let err = out.try_clone()?;
        let step = ChrootStep {
            root: root.clone(),
            argv: argv.iter().map(OsString::from).collect(),
            env,
            cwd: PathBuf::from(state.workdir()),
            user: state.config.config.user.clone().unwrap_or_default(),
            stdio: Stdio {
                stdin: Io::Null,
                stdout: Io::Fd(out),
                stderr: Io::Fd(err),
            },
            no_new_privileges: self.req.security.no_new_privileges,
        };
        let status = kiln_sandbox::run_chrooted(step);
        let tail = reader.join().unwrap_or_default();
        let status = status.context("running the step")?;
        if !status.success() {
            made.undo();
            return Err(super::steps::step_failed(&argv, status.code(), &tail));
        }
        let upper = dirs.upper();
        view.finish(&upper)?;
        made.undo();
        for dir in MOUNTED.iter().chain(&NET_FILES) {
            let p = upper.join(dir);
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            }
            .or_else(ignore_missing)
            .with_context(|| format!("dropping {} from the layer", p.display()))?;
        }
        let layer = self.commit(state, &dirs)?;
        let history = super::steps::run_history(state, &argv);
        self.record_history(state, history, layer);
        self.rootfs_done(state);
        Ok(())
    }
}

/// What needs a mount, which this mode cannot make: refused, naming it.
fn refuse_unsupported(run: &Run) -> Result<()> {
    if let Some(spec) = run.mount_specs.first() {
        bail!(
            "RUN --mount={spec}: --isolation chroot cannot mount anything (no mount syscall is \
             allowed where it is meant to run), so RUN --mount is not supported in this mode; \
             build without --isolation chroot, or write the step without --mount"
        );
    }
    if run.network == Some(Network::None) {
        bail!(
            "RUN --network=none: --isolation chroot cannot make a network namespace; RUN steps \
             share the container's network in this mode"
        );
    }
    if let (CommandLine::Shell(line), [doc]) = (&run.command, run.heredocs.as_slice()) {
        let only = line.trim().starts_with("<<") && !line.trim().contains(char::is_whitespace);
        if only && doc.body().starts_with("#!") {
            bail!(
                "RUN <<{}: a heredoc with a #! line is run as a file mounted at /dev/pipes, \
                 which --isolation chroot cannot mount; start it with a shell command instead \
                 (RUN sh <<EOF)",
                doc.name
            );
        }
    }
    Ok(())
}

/// The entries made in the rootfs for a step, with the mtimes of the
/// dirs they were made in (restored after: the rootfs must keep showing
/// the layers).
struct Prepared {
    made: Vec<PathBuf>,
    parents: Vec<(PathBuf, std::fs::Metadata)>,
}

impl Prepared {
    fn make(root: &Path) -> Result<Prepared> {
        let mut p = Prepared {
            made: Vec::new(),
            parents: Vec::new(),
        };
        let dev = root.join("dev");
        if dev.symlink_metadata().is_err() {
            p.remember(root)?;
            std::fs::create_dir(&dev).with_context(|| format!("create {}", dev.display()))?;
            p.made.push(dev.clone());
        }
        if dev.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            for (name, major, minor) in DEVICES {
                let node = dev.join(name);
                if node.symlink_metadata().is_ok() {
                    continue;
                }
                p.remember(&dev)?;
                // CAP_MKNOD (Docker's default set); without it the step
                // has no such node, as in an image without /dev.
                let made = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &node,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::from_raw_mode(0o666),
                    rustix::fs::makedev(major, minor),
                );
                if made.is_ok() {
                    let _ = rustix::fs::chmod(&node, rustix::fs::Mode::from_raw_mode(0o666));
                    p.made.push(node);
                }
            }
        }
        let etc = root.join("etc");
        if etc.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            for file in NET_FILES {
                let at = root.join(file);
                let host = Path::new("/").join(file);
                if at.symlink_metadata().is_ok() {
                    continue;
                }
                if let Ok(text) = std::fs::read(&host) {
                    p.remember(&etc)?;
                    std::fs::write(&at, text).with_context(|| format!("write {}", at.display()))?;
                    p.made.push(at);
                }
            }
        }
        Ok(p)
    }

    fn remember(&mut self, dir: &Path) -> Result<()> {
        if !self.parents.iter().any(|(d, _)| d == dir) {
            let m = dir
                .symlink_metadata()
                .with_context(|| format!("stat {}", dir.display()))?;
            self.parents.push((dir.to_path_buf(), m));
        }
        Ok(())
    }

    /// Removes what `make` made, children first, and gives the dirs their
    /// mtimes back.
    fn undo(self) {
        for p in self.made.iter().rev() {
            let _ = if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
        for (dir, m) in self.parents.iter().rev() {
            let t = rustix::fs::Timespec {
                tv_sec: m.mtime(),
                tv_nsec: m.mtime_nsec(),
            };
            let times = rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            };
            let _ = rustix::fs::utimensat(
                rustix::fs::CWD,
                dir,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
        }
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
