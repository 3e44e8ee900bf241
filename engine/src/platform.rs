//! The platform each stage is built for: its `FROM --platform` (expanded
//! by the resolver, e.g. `$BUILDPLATFORM`), else its parent stage's, else
//! the build's target. Root cache keys and `FROM scratch` configs hold it,
//! and base images are chosen from indexes by it.

use anyhow::{anyhow, Result};
use kiln_dockerfile::resolve::{Base, Platform};

use super::image_config::ImageConfig;
use super::Builder;

impl Builder<'_> {
    /// The platform stage `index` is built for.
    pub(crate) fn stage_platform(&self, index: usize) -> Result<Platform> {
        let node = &self.req.graph.stages[index];
        if let Some(p) = &node.platform {
            return Platform::parse(p).map_err(|e| anyhow!("FROM --platform={p}: {e}"));
        }
        match node.base {
            Base::Stage(parent) if parent < index => self.stage_platform(parent),
            _ => Ok(self.req.platform.clone()),
        }
    }
}

/// The platform an image config states, as root keys spell platforms.
pub(crate) fn of_config(config: &ImageConfig) -> String {
    match &config.variant {
        Some(v) => format!("{}/{}/{v}", config.os, config.architecture),
        None => format!("{}/{}", config.os, config.architecture),
    }
}
