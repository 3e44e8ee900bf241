//! Base and `--from` images for a platform. Local transports pick the
//! platform's image from their index; the registry client is asked for
//! it (one client per platform: the platform is its option). The store
//! keeps one image per name: a stored image of another platform is not
//! used, but pulled again for this one (which then holds the name), as
//! a registry tag serves every platform it lists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use kiln_dockerfile::resolve::Platform;
use kiln_store::Image;

use super::image_config::ImageConfig;
use super::{base, lock, Builder, NamedContext, PullPolicy};

/// The registry clients of a build, by the platform they pull.
pub(crate) type Registries = Mutex<HashMap<Platform, Arc<kiln_registry::Registry>>>;

impl Builder<'_> {
    /// An image by reference for `platform`, a `--build-context` name
    /// mapping first. Each reference is looked up (or imported: an
    /// oci-archive is read whole) once per build and platform, however
    /// many stages and steps name it.
    pub(crate) fn image_for(&self, reference: &str, platform: &Platform) -> Result<Image> {
        let reference = match self.req.contexts.get(reference) {
            Some(NamedContext::Image(r)) => r.as_str(),
            _ => reference,
        };
        let key = key(reference, platform);
        if let Some(image) = lock(&self.images).get(&key) {
            return Ok(image.clone());
        }
        let pull = self.req.pull;
        let image = match base::local(self.store, reference, platform)? {
            base::Found::Transport(image) => image,
            base::Found::Stored(image) if pull == PullPolicy::Never => image,
            base::Found::Stored(image)
                if pull == PullPolicy::Missing && self.is_for(&image, platform)? =>
            {
                image
            }
            base::Found::Missing if pull == PullPolicy::Never => {
                anyhow::bail!(
                    "image {reference:?} is not in kiln's store, and --pull=never forbids pulling it"
                )
            }
            _ => self.pull_for(reference, platform)?,
        };
        lock(&self.images).insert(key, image.clone());
        Ok(image)
    }

    /// Whether a stored image's config states `platform`.
    fn is_for(&self, image: &Image, platform: &Platform) -> Result<bool> {
        Ok(matches(&base::config_of(self.store, image)?, platform))
    }

    /// Pulls an image from its registry for `platform`, shown as a step.
    fn pull_for(&self, reference: &str, platform: &Platform) -> Result<Image> {
        let label = if *platform == Platform::host() {
            format!("[internal] pull {reference}")
        } else {
            format!("[internal] pull {reference} ({platform})")
        };
        let vertex = self.progress.start(&label);
        match self
            .registry_for(platform)?
            .pull(self.store, reference, &vertex)
        {
            Ok(pulled) => {
                vertex.done();
                Ok(pulled.image)
            }
            Err(e) => {
                vertex.error(&e.to_string());
                Err(anyhow!(e).context(format!("pulling {reference}")))
            }
        }
    }

    /// The registry client choosing `platform` from indexes, made on
    /// first use.
    fn registry_for(&self, platform: &Platform) -> Result<Arc<kiln_registry::Registry>> {
        let mut clients = lock(&self.registries);
        if let Some(r) = clients.get(platform) {
            return Ok(r.clone());
        }
        let mut opts = self.req.registry.clone();
        opts.platform = Some(kiln_registry::Platform {
            os: platform.os.clone(),
            architecture: platform.arch.clone(),
            variant: platform.variant.clone(),
        });
        let r = Arc::new(kiln_registry::Registry::new(opts)?);
        clients.insert(platform.clone(), r.clone());
        Ok(r)
    }

    /// BuildKit's InvalidBaseImagePlatform: the base stage `index` starts
    /// from is not of the stage's platform (a single-platform image; an
    /// index without the platform is an error). Built anyway, as BuildKit.
    pub(crate) fn check_base_platform(
        &self,
        index: usize,
        reference: &str,
        config: &ImageConfig,
        platform: &Platform,
    ) {
        if matches(config, platform) {
            return;
        }
        let span = self.req.graph.file.stages[index].from.span;
        self.progress.note(&format!(
            "WARN: InvalidBaseImagePlatform - Base image {reference} was pulled with platform \"{}\", expected \"{platform}\" for current build ({}:{span})",
            super::platform::of_config(config),
            self.req.file,
        ));
    }
}

/// What the build's image maps are keyed by.
pub(crate) fn key(reference: &str, platform: &Platform) -> String {
    format!("{reference} {platform}")
}

/// Whether an image config states `platform`: an unnamed variant matches
/// any, and arm64's unnamed one is v8.
pub(crate) fn matches(config: &ImageConfig, platform: &Platform) -> bool {
    let norm = |arch: &str, v: Option<&str>| match (arch, v) {
        ("arm64", Some("v8")) => None,
        (_, v) => v.map(str::to_string),
    };
    let have = norm(&config.architecture, config.variant.as_deref());
    let want = norm(&platform.arch, platform.variant.as_deref());
    config.os == platform.os
        && config.architecture == platform.arch
        && (have.is_none() || want.is_none() || have == want)
}
