//! Reduce capabilities to Docker's default set, as runc does for Docker:
//! bounding = permitted = effective = the default set for root, inheritable
//! and ambient empty; a non-root user keeps only the bounding set (the
//! kernel clears permitted/effective when it leaves uid 0).

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, Result};

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The default set as the bit mask /proc/PID/status shows (`a80425fb`).
pub fn docker_default_mask() -> u64 {
    DOCKER_DEFAULT.iter().fold(0, |m, c| m | c.bitmask())
}

fn err(what: &str, e: caps::errors::CapsError) -> Error {
    Error::Setup(format!("capabilities: {what}: {e}"))
}

/// Drop every capability outside the default set from the bounding set and
/// clear the ambient and inheritable sets. Run while still uid 0 with full
/// capabilities (dropping from the bounding set needs CAP_SETPCAP, so only
/// what is still there is dropped: a container that already lacks them
/// needs no CAP_SETPCAP).
pub(crate) fn limit_bounding() -> Result<()> {
    let bounding = caps::read(None, CapSet::Bounding).map_err(|e| err("read bounding set", e))?;
    for c in bounding {
        if !step_caps().contains(&c) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| err("drop from bounding set", e))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| err("clear ambient", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| err("clear inheritable", e))?;
    Ok(())
}

/// Docker's default set, without CAP_SYS_CHROOT when the step's root was
/// entered with chroot (a second chroot would climb out of it).
fn step_caps() -> CapsHashSet {
    DOCKER_DEFAULT
        .iter()
        .copied()
        .filter(|c| !(crate::degrade::chrooted() && *c == Capability::CAP_SYS_CHROOT))
        .collect()
}

/// For a command running as uid 0: permitted and effective become the
/// default set, clipped to what this process holds (a container may grant
/// less, e.g. `--cap-drop NET_RAW`; capset cannot add any).
pub(crate) fn set_root_caps() -> Result<()> {
    let held = caps::read(None, CapSet::Permitted).map_err(|e| err("read permitted", e))?;
    let set: CapsHashSet = step_caps().intersection(&held).copied().collect();
    // Effective must shrink before permitted (it must stay a subset).
    caps::set(None, CapSet::Effective, &set).map_err(|e| err("set effective", e))?;
    caps::set(None, CapSet::Permitted, &set).map_err(|e| err("set permitted", e))?;
    Ok(())
}

/// The default capabilities this process lacks (a container that dropped
/// some): RUN steps run without them.
pub fn missing_default_caps() -> Vec<Capability> {
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let bounding = caps::read(None, CapSet::Bounding).unwrap_or_default();
    let mut missing: Vec<Capability> = DOCKER_DEFAULT
        .iter()
        .copied()
        .filter(|c| !held.contains(c) || !bounding.contains(c))
        .collect();
    missing.sort_by_key(|c| c.index());
    missing
}

/// Say once per kiln run which default capabilities RUN steps go without.
pub(crate) fn warn_missing_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let missing = missing_default_caps();
        if missing.is_empty() {
            return;
        }
        let names: Vec<String> = missing.iter().map(|c| c.to_string()).collect();
        let flags: Vec<String> = missing
            .iter()
            .map(|c| format!("--cap-add {}", c.to_string().trim_start_matches("CAP_")))
            .collect();
        crate::degrade::warn_once(&format!(
            "this process lacks {} of Docker's default capabilities: RUN steps run without \
             them (give them to the container with {})",
            names.join(", "),
            flags.join(" ")
        ));
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_set_is_the_mask_docker_shows() {
        assert_eq!(super::docker_default_mask(), 0xa80425fb);
    }
}
