//! `--platform`: the platform a build is for.

use anyhow::{anyhow, bail, Result};
use kiln_dockerfile::resolve::Platform;

/// The target platform `--platform` names (the host's without it).
pub fn target(flag: Option<&str>) -> Result<Platform> {
    let Some(value) = flag else {
        return Ok(Platform::host());
    };
    if value.contains(',') {
        bail!("--platform={value}: one platform per build (e.g. linux/arm64)");
    }
    Platform::parse(value).map_err(|e| anyhow!("--platform: {e}"))
}
