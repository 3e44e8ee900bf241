//! Where a stage starts: `scratch`, an image in the store, or one of
//! buildah's local transports (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//! `docker-archive:FILE[:REF]`), imported into the store on first use.
//! Anything else is pulled from its registry (by the engine, per `--pull`).

use std::path::Path;

use anyhow::{Context, Result};
use kiln_dockerfile::resolve::Platform;
use kiln_store::{archive, Image, Store};

use crate::image_config::ImageConfig;

/// `FROM scratch`: as BuildKit's empty image, WorkingDir `/` and the
/// default PATH, so an image built on it has the config theirs has.
/// Its platform is the stage's.
pub fn scratch(platform: &Platform) -> ImageConfig {
    let mut config = ImageConfig {
        architecture: platform.arch.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        ..ImageConfig::default()
    };
    config.config.working_dir = Some("/".into());
    config.config.env = Some(vec![format!("PATH={}", kiln_sandbox::DEFAULT_PATH)]);
    config
}

/// Splits `PATH[:REFERENCE]` at the first `:`, as containers/image does
/// for its `oci:`, `oci-archive:` and `docker-archive:` transports (so the
/// reference may itself hold `:`; the path may not).
fn path_and_tag(s: &str) -> (&str, Option<&str>) {
    match s.split_once(':') {
        Some((path, reference)) if !reference.is_empty() => (path, Some(reference)),
        Some((path, _)) => (path, None),
        None => (s, None),
    }
}

/// Where a FROM or `--from` image was found without a registry.
pub enum Found {
    /// A local transport (`oci:`, `oci-archive:`, `docker-archive:`),
    /// imported: never pulled, whatever `--pull` says.
    Transport(Image),
    /// Already in the store under that name.
    Stored(Image),
    Missing,
}

/// Finds (importing if needed) the image a FROM or `--from` names,
/// without the network; a layout's index gives `platform`'s image.
pub fn local(store: &Store, reference: &str, platform: &Platform) -> Result<Found> {
    let triple = platform.triple();
    if let Some(rest) = reference.strip_prefix("oci:") {
        let (dir, tag) = path_and_tag(rest);
        return archive::import_oci_dir_for(store, Path::new(dir), tag, &triple)
            .map(Found::Transport)
            .with_context(|| format!("importing {reference}"));
    }
    if let Some(rest) = reference.strip_prefix("oci-archive:") {
        let (file, tag) = path_and_tag(rest);
        return archive::import_oci_archive_for(store, Path::new(file), tag, &triple)
            .map(Found::Transport)
            .with_context(|| format!("importing {reference}"));
    }
    if let Some(rest) = reference.strip_prefix("docker-archive:") {
        let (file, tag) = path_and_tag(rest);
        return archive::import_docker_archive(store, Path::new(file), tag)
            .map(Found::Transport)
            .with_context(|| format!("importing {reference}"));
    }
    for candidate in candidates(reference) {
        // A multi-platform image kiln built stands for its entry of this platform.
        if let Ok(image) = store.image_for(&candidate, &triple) {
            return Ok(Found::Stored(image));
        }
    }
    Ok(Found::Missing)
}

/// The names a short reference may be stored under: as podman normalises
/// it (`localhost/…`) and as Docker does (`docker.io/library/…`).
fn candidates(reference: &str) -> Vec<String> {
    let mut out = vec![reference.to_string()];
    if let Ok(n) = kiln_store::normalize_name(reference) {
        out.push(n);
    }
    let first = reference.split('/').next().unwrap_or("");
    let has_host = reference.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_host {
        let path = if reference.contains('/') {
            reference.to_string()
        } else {
            format!("library/{reference}")
        };
        let tagged = if path
            .rsplit('/')
            .next()
            .is_some_and(|l| l.contains(':') || l.contains('@'))
        {
            path
        } else {
            format!("{path}:latest")
        };
        out.push(format!("docker.io/{tagged}"));
    }
    out
}

/// The config of a stored image, read as kiln's own config type.
pub fn config_of(store: &Store, image: &Image) -> Result<ImageConfig> {
    let bytes = store
        .read_blob(&image.config_digest)
        .with_context(|| format!("reading the config of {}", image.config_digest))?;
    ImageConfig::from_json(&bytes)
        .with_context(|| format!("parsing the config {}", image.config_digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_paths_and_tags() {
        assert_eq!(path_and_tag("/a/b:latest"), ("/a/b", Some("latest")));
        assert_eq!(
            path_and_tag("/a.tar:localhost/x:v2"),
            ("/a.tar", Some("localhost/x:v2"))
        );
        assert_eq!(path_and_tag("rel/dir"), ("rel/dir", None));
    }

    #[test]
    fn short_names_are_looked_up_docker_style_too() {
        let c = candidates("busybox");
        assert!(c.contains(&"docker.io/library/busybox:latest".to_string()));
        let c = candidates("quay.io/x/y:1");
        assert!(!c.iter().any(|n| n.starts_with("docker.io")));
    }
}
