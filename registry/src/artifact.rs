//! Artifacts that are not images: one manifest whose config is kiln's own
//! document and whose layers are ordinary layer blobs (kiln's shared build
//! cache, `--cache-to`/`--cache-from`). Read whole, fetched blob by blob
//! (each verified and unpacked into the store as a pull does), and written
//! with the push path's HEAD-before-upload and cross-repository mounts.

use kiln_layer::Digest;
use kiln_store::Store;
use oci_client::{Reference, RegistryOperation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, Fetched};
use crate::progress::{Events, Transfers};
use crate::push::Blob;
use crate::reference::normalize;
use crate::transport::{Failure, Session};
use crate::Registry;

/// The largest artifact config read (BuildKit caps its cache config at
/// 1 MiB; a mode=max cache of a large build needs more).
pub const ARTIFACT_CONFIG_MAX: u64 = 16 << 20;

/// A blob as a manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// A fetched artifact: its manifest digest, config and layer blobs.
pub struct Artifact {
    pub digest: String,
    pub config_media_type: String,
    pub config: Vec<u8>,
    pub layers: Vec<BlobRef>,
}

/// An artifact to write: its config and the layer blobs it lists.
pub struct NewArtifact<'a> {
    pub config_media_type: &'a str,
    pub config: &'a [u8],
    pub layers: &'a [BlobRef],
}

/// Where blobs may be mounted from: repositories of the same registry,
/// each with the blobs it is known to hold.
pub type MountSources = Vec<(String, Vec<String>)>;

impl Registry {
    fn session(&self, reference: &str, op: RegistryOperation) -> Result<(Session, String)> {
        let r = normalize(reference)?;
        let ep = self.conf.push_endpoint(&r, &self.opts.insecure)?;
        let s = Session::new(
            &ep,
            &r.whole(),
            self.opts.auth_file.as_deref(),
            &self.limits,
            &self.clients,
        )?;
        self.runtime()?.block_on(s.authenticate(op))?;
        Ok((s, r.whole()))
    }

    /// The artifact `reference` names; None when the registry has no such
    /// manifest (a cache never written yet). Its config is verified into
    /// the store's blobs.
    pub fn get_artifact(&self, store: &Store, reference: &str) -> Result<Option<Artifact>> {
        let (s, whole) = self.session(reference, RegistryOperation::Pull)?;
        let rt = self.runtime()?;
        let (bytes, digest) = match rt.block_on(s.get_manifest(&s.reference)) {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (config, layers) = match manifest::parse(&whole, &bytes)? {
            Fetched::Image { config, layers } => (config, layers),
            Fetched::Index(_) => {
                return Err(Error::Manifest {
                    reference: whole,
                    message: "an index, not a kiln cache manifest".into(),
                })
            }
        };
        if config.size > ARTIFACT_CONFIG_MAX {
            return Err(Error::Manifest {
                reference: whole,
                message: kiln_store::archive::too_large("the config", config.size),
            });
        }
        let d = Digest::parse(&config.digest).map_err(kiln_store::Error::from)?;
        if !store.has_blob(&d) {
            let transfers = Transfers::new(&crate::Silent);
            rt.block_on(crate::pull::fetch_blob(
                &s,
                store,
                &config,
                &transfers,
                None,
                ARTIFACT_CONFIG_MAX,
            ))?;
        }
        let bytes = store.read_blob(&d)?;
        Ok(Some(Artifact {
            digest,
            config_media_type: config.media_type,
            config: bytes,
            layers: layers
                .into_iter()
                .map(|l| BlobRef {
                    digest: l.digest,
                    size: l.size,
                    media_type: l.media_type,
                })
                .collect(),
        }))
    }

    /// Downloads (unless stored) and unpacks one layer blob of the
    /// artifact at `reference`, checking it unpacks to `diff_id`.
    pub fn pull_artifact_layer(
        &self,
        store: &Store,
        reference: &str,
        blob: &BlobRef,
        diff_id: &Digest,
        events: &dyn Events,
    ) -> Result<()> {
        let (s, _) = self.session(reference, RegistryOperation::Pull)?;
        let desc = Descriptor {
            media_type: blob.media_type.clone(),
            digest: blob.digest.clone(),
            size: blob.size,
            urls: Vec::new(),
        };
        let transfers = Transfers::new(events);
        crate::pull::fetch_layer(self.runtime()?, &s, store, &desc, diff_id, &transfers)?;
        let repository = crate::reference::repository_name(&s.reference);
        note_origin(store, &blob.digest, &repository);
        Ok(())
    }

    /// Whether the repository of `reference` still has the blob `digest`
    /// (a HEAD): a cache entry whose layer is gone is a miss, not a
    /// download that fails later.
    pub fn artifact_has_blob(&self, reference: &str, digest: &str) -> Result<bool> {
        let (s, _) = self.session(reference, RegistryOperation::Pull)?;
        self.runtime()?.block_on(s.retry(|| async {
            s.client
                .blob_exists(&s.reference, digest)
                .await
                .map_err(|e| s.failure(e, "blob"))
        }))
    }

    /// Writes an artifact as `dest`: each layer blob the repository lacks
    /// is mounted from `mounts` or uploaded from the store, then the
    /// config, then the manifest (so the tag never names missing blobs).
    /// Returns the manifest digest.
    pub fn push_artifact(
        &self,
        store: &Store,
        dest: &str,
        artifact: &NewArtifact<'_>,
        mounts: &MountSources,
        events: &dyn Events,
    ) -> Result<String> {
        let (s, whole) = self.session(dest, RegistryOperation::Push)?;
        let NewArtifact {
            config_media_type,
            config,
            layers,
        } = *artifact;
        let rt = self.runtime()?;
        let config_digest = store.put_blob(config)?;
        let mut blobs = vec![Blob {
            digest: config_digest.to_string(),
            size: config.len() as u64,
        }];
        blobs.extend(layers.iter().map(|l| Blob {
            digest: l.digest.clone(),
            size: l.size,
        }));
        if let Some(b) = blobs.iter().find(|b| !crate::valid_digest(&b.digest)) {
            return Err(Error::Manifest {
                reference: whole,
                message: format!("{:?} is not a digest", b.digest),
            });
        }
        let sources: Vec<(Reference, Vec<String>)> = mounts
            .iter()
            .filter_map(|(repo, digests)| Some((normalize(repo).ok()?, digests.clone())))
            .filter(|(r, _)| {
                r.registry() == s.reference.registry() && r.repository() != s.reference.repository()
            })
            .collect();
        let transfers = Transfers::new(events);
        self.push_blobs(rt, &s, store, &blobs, &sources, &transfers)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": { "mediaType": config_media_type, "digest": config_digest.to_string(), "size": config.len() },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Manifest {
            reference: whole.clone(),
            message: e.to_string(),
        })?;
        let digest = Digest::of(&bytes).to_string();
        rt.block_on(s.retry(|| async {
            let header = manifest::OCI_MANIFEST.parse().map_err(|_| {
                Failure::Fatal(Error::Protocol {
                    registry: s.registry().to_string(),
                    message: "bad manifest media type".into(),
                })
            })?;
            s.client
                .push_manifest_raw(&s.reference, bytes.clone(), header)
                .await
                .map_err(|e| s.failure(e, "repository"))
        }))?;
        Ok(digest)
    }
}

/// The store record of the repositories a blob was fetched from as part
/// of an artifact (a cache layer), which hold it: a later push of an image
/// with that layer to the same registry mounts it from there.
fn origin_key(blob: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(format!("kiln-blob-origin\0{blob}")))
}

/// Repositories (`host/repo`) known to hold `blob`.
pub(crate) fn origins(store: &Store, blob: &str) -> Vec<String> {
    store
        .cache_get(&origin_key(blob))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Best effort: a lost record only costs an upload.
fn note_origin(store: &Store, blob: &str, repository: &str) {
    let mut known = origins(store, blob);
    if !known.iter().any(|r| r == repository) {
        known.push(repository.to_string());
        if let Ok(bytes) = serde_json::to_vec(&known) {
            let _ = store.cache_put(&origin_key(blob), &bytes);
        }
    }
}
