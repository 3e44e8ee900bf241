//! Reading and writing a cache at its [`Location`]: a registry (through
//! kiln-registry's artifact calls) or an OCI layout dir.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_layer::Digest;
use kiln_registry::{BlobRef, MountSources, Registry};
use kiln_store::Store;
use serde_json::{json, Value};

use super::format::{CacheConfig, CONFIG_MEDIA_TYPE};
use super::Location;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A cache as read.
pub struct Read {
    pub config: CacheConfig,
}

/// Reads the cache at `at`; None when there is none yet.
pub fn read(at: &Location, store: &Store, registry: &Registry) -> Result<Option<Read>> {
    let (media_type, raw) = match at {
        Location::Registry(r) => match registry.get_artifact(store, r)? {
            None => return Ok(None),
            Some(a) => (a.config_media_type, a.config),
        },
        Location::Local { dir, tag } => match read_local(dir, tag)? {
            None => return Ok(None),
            Some(found) => found,
        },
    };
    if media_type != CONFIG_MEDIA_TYPE {
        bail!("not a kiln cache (its config is {media_type:?})");
    }
    let config = CacheConfig::parse(&raw).map_err(anyhow::Error::msg)?;
    Ok(Some(Read { config }))
}

/// Brings one layer of the cache at `at` into the store (verified).
pub fn fetch_layer(
    at: &Location,
    store: &Store,
    registry: &Registry,
    blob: &BlobRef,
    diff_id: &Digest,
) -> Result<()> {
    match at {
        Location::Registry(r) => {
            Ok(registry.pull_artifact_layer(store, r, blob, diff_id, &kiln_registry::Silent)?)
        }
        Location::Local { dir, .. } => {
            let d = Digest::parse(&blob.digest)?;
            let path = blob_path(dir, &d);
            let mut f = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            store.put_blob_stream(&mut f, Some(&d))?;
            let mut f = store.open_blob(&d)?;
            store.import_layer(&mut f, &d, &blob.media_type, Some(diff_id))?;
            Ok(())
        }
    }
}

/// Whether the cache at `at` still holds `blob` (it may have lost it
/// since its config was read, or never had it).
pub fn has_blob(at: &Location, registry: &Registry, blob: &BlobRef) -> Result<bool> {
    match at {
        Location::Registry(r) => Ok(registry.artifact_has_blob(r, &blob.digest)?),
        Location::Local { dir, .. } => Ok(blob_path(dir, &Digest::parse(&blob.digest)?).is_file()),
    }
}

/// Writes `config` with its layer blobs at `at`; the manifest's digest.
pub fn write(
    at: &Location,
    store: &Store,
    registry: &Registry,
    config: &[u8],
    blobs: &[BlobRef],
    mounts: &MountSources,
) -> Result<String> {
    match at {
        Location::Registry(r) => Ok(registry.push_artifact(
            store,
            r,
            &kiln_registry::NewArtifact {
                config_media_type: CONFIG_MEDIA_TYPE,
                config,
                layers: blobs,
            },
            mounts,
            &kiln_registry::Silent,
        )?),
        Location::Local { dir, tag } => write_local(dir, tag, store, config, blobs),
    }
}

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    // A parsed digest is `sha256:<hex>`: no path separators.
    let (alg, hex) = d.as_str().split_once(':').unwrap_or(("sha256", d.as_str()));
    dir.join("blobs").join(alg).join(hex)
}

/// A blob of the layout, checked against its digest (the dir is as
/// untrusted as a registry).
fn read_blob(dir: &Path, digest: &str, max: u64) -> Result<Vec<u8>> {
    let d = Digest::parse(digest)?;
    let path = blob_path(dir, &d);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if Digest::of(&bytes) != d {
        bail!("{} does not match its digest", path.display());
    }
    Ok(bytes)
}

fn read_local(dir: &Path, tag: &str) -> Result<Option<(String, Vec<u8>)>> {
    let index = dir.join("index.json");
    let bytes = match std::fs::read(&index) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", index.display())),
    };
    let index: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", index.display()))?;
    let Some(entry) = manifests(&index)
        .into_iter()
        .find(|m| m["annotations"][REF_NAME] == tag)
    else {
        return Ok(None);
    };
    let digest = entry["digest"].as_str().unwrap_or_default();
    let manifest: Value = serde_json::from_slice(&read_blob(dir, digest, 4 << 20)?)?;
    let config = &manifest["config"];
    let media_type = config["mediaType"].as_str().unwrap_or_default().to_string();
    let digest = config["digest"].as_str().unwrap_or_default();
    let raw = read_blob(dir, digest, kiln_registry::ARTIFACT_CONFIG_MAX)?;
    Ok(Some((media_type, raw)))
}

fn manifests(index: &Value) -> Vec<Value> {
    index["manifests"].as_array().cloned().unwrap_or_default()
}

/// Writes a file whole through a temporary name, so a reader never sees
/// half of it.
fn put(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("kiln-tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn write_local(
    dir: &Path,
    tag: &str,
    store: &Store,
    config: &[u8],
    blobs: &[BlobRef],
) -> Result<String> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))
        .with_context(|| format!("creating {}", dir.display()))?;
    for b in blobs {
        let d = Digest::parse(&b.digest)?;
        let dest = blob_path(dir, &d);
        if !dest.exists() {
            let tmp = dest.with_extension("kiln-tmp");
            std::fs::copy(store.blob_path(&d), &tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &dest).with_context(|| format!("writing {}", dest.display()))?;
        }
    }
    let config_digest = Digest::of(config);
    put(&blob_path(dir, &config_digest), config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest.to_string(), "size": config.len() },
        "layers": blobs,
    });
    let manifest = serde_json::to_vec(&manifest)?;
    let digest = Digest::of(&manifest);
    put(&blob_path(dir, &digest), &manifest)?;
    let old: Value = std::fs::read(dir.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut list: Vec<Value> = manifests(&old)
        .into_iter()
        .filter(|m| m["annotations"][REF_NAME] != tag)
        .collect();
    list.push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest.to_string(),
        "size": manifest.len(),
        "annotations": { REF_NAME: tag },
    }));
    let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list });
    put(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    put(&dir.join("index.json"), &serde_json::to_vec(&index)?)?;
    Ok(digest.to_string())
}
