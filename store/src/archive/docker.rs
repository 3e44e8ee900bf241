//! docker-archive, the `docker save` format: `manifest.json` lists each
//! image's config, layer files and RepoTags. kiln writes the current
//! layout (an OCI layout plus manifest.json, as docker 25+ does), and reads
//! both that and the older `<id>/layer.tar` form.

use std::io::{Read, Write};
use std::path::Path;

use kiln_layer::{Digest, Format};
use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use super::{adopt, read, Contents, Kind, Streaming};
use crate::error::{Error, Result};
use crate::images::oci_digest;
use crate::{Image, Store};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Writes `image` as a docker-archive to `out`, its layer blobs staged
/// in the store in gzip (see [`super::export_streamed`] for the choice).
pub fn export_docker_archive(
    store: &Store,
    image: &Image,
    names: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let how = Streaming::staged(store);
    super::export_streamed(store, image, names, out, Kind::Docker, &how)
}

/// `manifest.json` (and the legacy `repositories`) for an image whose
/// config and layer blobs are `config` and `layers`, named `names`
/// (normalised).
pub(crate) fn docker_files(
    config: &Digest,
    layers: &[Digest],
    names: &[String],
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let entry = Entry {
        config: format!("blobs/sha256/{}", config.hex()),
        repo_tags: Some(names.to_vec()),
        layers: layers
            .iter()
            .map(|d| format!("blobs/sha256/{}", d.hex()))
            .collect(),
    };
    let repositories = repositories(names, entry.layers.last());
    let manifest_json =
        serde_json::to_vec(&[entry]).map_err(|e| Error::json("manifest.json", e))?;
    Ok((manifest_json, repositories))
}

/// The legacy `repositories` file (repo → tag → top layer), which docker
/// writes beside manifest.json; None for an image with no layer or name.
fn repositories(names: &[String], top_layer: Option<&String>) -> Option<Vec<u8>> {
    let top = top_layer?.strip_prefix("blobs/sha256/")?;
    let mut repos: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, &str>> =
        Default::default();
    for n in names {
        // A digest reference has no tag to list.
        if let Some((repo, tag)) = n.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            if !n.contains('@') {
                repos.entry(repo).or_default().insert(tag, top);
            }
        }
    }
    if repos.is_empty() {
        return None;
    }
    serde_json::to_vec(&repos).ok()
}

fn entries(contents: &Contents) -> Result<Vec<Entry>> {
    serde_json::from_slice(contents.file("manifest.json")?)
        .map_err(|e| Error::json("manifest.json", e))
}

/// An OCI manifest for one manifest.json entry (its blobs are in the store).
fn adopt_entry(
    store: &Store,
    contents: &Contents,
    entry: &Entry,
    names: &[String],
) -> Result<Image> {
    let config = contents.blob(&entry.config)?;
    let mut layers = Vec::new();
    for path in &entry.layers {
        let d = contents.blob(path)?;
        layers.push(Descriptor::new(
            layer_media(store, d)?,
            blob_size(store, d)?,
            oci_digest(d)?,
        ));
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            blob_size(store, config)?,
            oci_digest(config)?,
        ))
        .layers(layers)
        .build()
        .map_err(|e| Error::json("manifest", e))?;
    adopt(store, &manifest, names)
}

fn blob_size(store: &Store, d: &Digest) -> Result<u64> {
    let p = store.blob_path(d);
    Ok(std::fs::metadata(&p)
        .map_err(|e| Error::io("stat", &p, e))?
        .len())
}

/// A layer file's media type, from its first bytes.
fn layer_media(store: &Store, d: &Digest) -> Result<MediaType> {
    let mut head = [0u8; Format::MAGIC_LEN];
    let mut f = store.open_blob(d)?;
    let n = f
        .read(&mut head)
        .map_err(|e| Error::io("read", store.blob_path(d), e))?;
    Ok(match Format::detect(&head[..n]) {
        Format::Gzip => MediaType::ImageLayerGzip,
        Format::Zstd => MediaType::ImageLayerZstd,
        _ => MediaType::ImageLayer,
    })
}

/// `kiln load` of a docker-archive: every image with its RepoTags.
pub(crate) fn import_all(store: &Store, contents: &Contents) -> Result<Vec<Image>> {
    entries(contents)?
        .iter()
        .map(|e| {
            adopt_entry(
                store,
                contents,
                e,
                e.repo_tags.as_deref().unwrap_or_default(),
            )
        })
        .collect()
}

/// `FROM docker-archive:FILE[:REF]`: the image tagged REF, or the only one.
pub fn import_docker_archive(store: &Store, file: &Path, reference: Option<&str>) -> Result<Image> {
    let contents = read::scan(store, file)?;
    let all = entries(&contents)?;
    let entry = match reference {
        Some(r) => {
            let full = crate::normalize_name(r).ok();
            all.iter()
                .find(|e| {
                    e.repo_tags
                        .iter()
                        .flatten()
                        .any(|t| t == r || crate::normalize_name(t).ok() == full)
                })
                .ok_or_else(|| Error::ImageNotKnown(r.to_string()))?
        }
        None => match all.as_slice() {
            [one] => one,
            _ => {
                return Err(Error::Archive(
                    "the archive holds several images: name one as FILE:REF".into(),
                ))
            }
        },
    };
    adopt_entry(store, &contents, entry, &[])
}
