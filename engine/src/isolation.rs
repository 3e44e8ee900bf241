//! `--isolation chroot`: builds where no namespace and no mount can be made
//! (Docker's or Kubernetes' default seccomp profile, no CAP_SYS_ADMIN), as
//! kaniko did. Each stage gets a plain rootfs dir (its layers applied, see
//! `kiln_layer::apply_layer_dir`); a step that writes (RUN, COPY, ADD,
//! WORKDIR) changes that dir in place between a `kiln_layer::Snapshot`
//! and its diff, which is the step's upper dir in overlay's form, so the
//! commit and the layer are the namespace mode's. Read-only views (a
//! `--from` stage or image, an export) are copies of the layers, and a
//! context with a `.dockerignore` a filtered copy.
//!
//! The stage's dir follows the stage: it is valid for one ChainID and is
//! rebuilt from the layers whenever the stage's rootfs is another one (a
//! cache hit added a layer, a step failed half-way, a `FROM stage` whose
//! parent is still read by another).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use kiln_layer::Snapshot;
use kiln_sandbox::Mounted;

use super::steps::{unique, StepDirs};
use super::{Builder, StageState};

/// How RUN steps are isolated (`--isolation`, `KILN_ISOLATION`,
/// `BUILDAH_ISOLATION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// A user, mount, pid, ipc, uts (and network) namespace per step over
    /// an overlay of the stage's layers.
    #[default]
    Oci,
    /// chroot(2) into the stage's rootfs dir, in kiln's own namespaces.
    Chroot,
}

impl Isolation {
    /// buildah's spellings: `oci` and `rootless` are the namespace mode.
    pub fn parse(value: &str) -> Result<Isolation> {
        match value {
            "oci" | "rootless" | "default" => Ok(Isolation::Oci),
            "chroot" => Ok(Isolation::Chroot),
            other => bail!("unknown isolation {other:?}: use oci (the default) or chroot"),
        }
    }
}

/// What `--isolation chroot` gives up, said once per build.
pub const CHROOT_WARNING: &str = "\
kiln: WARNING: --isolation chroot: RUN steps run as this process's own user (root in the \
container), with all of its capabilities, its network, processes and filesystem; chroot(2) \
only changes their root, and a root process can leave it. A RUN step can therefore read and \
change kiln itself, its store, the registry credentials ($REGISTRY_AUTH_FILE, \
containers/auth.json, ~/.docker/config.json), the build context and the outputs, and can see and signal every \
process of the container. No seccomp profile, no /proc, /sys or fresh /dev is given to the \
step; --network none and RUN --mount are refused. Use this mode only in a single-use \
container (a CI job's) running Dockerfiles you trust as much as the job's own script; \
never on a developer machine or a long-lived runner. Without these limits, run kiln in its \
default mode (see `kiln info`).";

/// A stage's rootfs dir, valid for one ChainID (None while a step
/// changes it, or after one failed).
pub(crate) struct RootfsDir {
    dir: PathBuf,
    chain: Mutex<Option<String>>,
}

impl RootfsDir {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn valid_for(&self, chain: &str) -> bool {
        crate::lock(&self.chain).as_deref() == Some(chain)
    }

    fn set(&self, chain: Option<String>) {
        *crate::lock(&self.chain) = chain;
    }
}

impl Drop for RootfsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The stage's rootfs opened for writing: an overlay with an upper dir,
/// or the stage's dir with a snapshot to diff.
pub(crate) enum RwView {
    Mounted(Mounted),
    Dir {
        rootfs: Arc<RootfsDir>,
        snapshot: Snapshot,
    },
}

impl RwView {
    pub fn path(&self) -> &Path {
        match self {
            RwView::Mounted(m) => m.path(),
            RwView::Dir { rootfs, .. } => rootfs.path(),
        }
    }

    /// Ends the writes: unmounts, or writes what changed into `upper`.
    /// The stage's dir stays invalid until [`Builder::rootfs_done`].
    pub fn finish(self, upper: &Path) -> Result<()> {
        match self {
            RwView::Mounted(m) => drop(m),
            RwView::Dir { rootfs, snapshot } => {
                snapshot
                    .diff(rootfs.path(), upper)
                    .context("diffing the stage's rootfs")?;
            }
        }
        Ok(())
    }
}

/// A read-only view of layers: mounted, or copied into a dir that goes
/// with the step's scratch dir.
pub(crate) enum ReadView {
    Mounted(#[allow(dead_code)] Mounted),
    Copied,
}

impl Builder<'_> {
    pub(crate) fn chroot(&self) -> bool {
        self.req.isolation == Isolation::Chroot
    }

    /// `lowers` (top first) at the existing empty dir `target`, read-only.
    pub(crate) fn read_view(&self, lowers: &[PathBuf], target: &Path) -> Result<ReadView> {
        if !self.chroot() {
            let m = kiln_sandbox::mount_overlay(lowers, None, target)?;
            return Ok(ReadView::Mounted(m));
        }
        materialize(lowers, target)?;
        Ok(ReadView::Copied)
    }

    /// The stage's rootfs opened for a step's writes.
    pub(crate) fn open_rw(&self, state: &mut StageState, dirs: &StepDirs) -> Result<RwView> {
        if !self.chroot() {
            return self.mount_rw(state, dirs).map(RwView::Mounted);
        }
        let rootfs = self.stage_rootfs(state)?;
        let snapshot = Snapshot::take(rootfs.path()).context("snapshotting the stage's rootfs")?;
        rootfs.set(None);
        Ok(RwView::Dir { rootfs, snapshot })
    }

    /// The stage's dir, made from its layers unless it already shows them.
    pub(crate) fn stage_rootfs(&self, state: &mut StageState) -> Result<Arc<RootfsDir>> {
        if let Some(r) = &state.rootfs {
            if r.valid_for(state.chain()) {
                return Ok(r.clone());
            }
        }
        state.rootfs = None;
        let dir = self.scratch.path().join(format!("rootfs-{}", unique()));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let rootfs = Arc::new(RootfsDir {
            dir,
            chain: Mutex::new(None),
        });
        materialize(&state.lowers(self.store)?, rootfs.path())?;
        rootfs.set(Some(state.chain().to_string()));
        state.rootfs = Some(rootfs.clone());
        Ok(rootfs)
    }

    /// After a step's layer is recorded: the stage's dir shows the stage.
    pub(crate) fn rootfs_done(&self, state: &StageState) {
        if let Some(r) = &state.rootfs {
            r.set(Some(state.chain().to_string()));
        }
    }
}

/// Applies `lowers` (top first, as overlay takes them) bottom first onto
/// the dir `target`.
fn materialize(lowers: &[PathBuf], target: &Path) -> Result<()> {
    for layer in lowers.iter().rev() {
        kiln_layer::apply_layer_dir(layer, target)
            .with_context(|| format!("copying the layer {} into a rootfs", layer.display()))?;
    }
    Ok(())
}
