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
/// capabilities (dropping from the bounding set needs CAP_SETPCAP).
pub(crate) fn limit_bounding() -> Result<()> {
    let supported = caps::runtime::thread_all_supported();
    for c in supported {
        if !DOCKER_DEFAULT.contains(&c) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| err("drop from bounding set", e))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| err("clear ambient", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| err("clear inheritable", e))?;
    Ok(())
}

/// For a command running as uid 0: permitted and effective become exactly
/// the default set.
pub(crate) fn set_root_caps() -> Result<()> {
    let set: CapsHashSet = DOCKER_DEFAULT.iter().copied().collect();
    // Effective must shrink before permitted (it must stay a subset).
    caps::set(None, CapSet::Effective, &set).map_err(|e| err("set effective", e))?;
    caps::set(None, CapSet::Permitted, &set).map_err(|e| err("set permitted", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_set_is_the_mask_docker_shows() {
        assert_eq!(super::docker_default_mask(), 0xa80425fb);
    }
}
