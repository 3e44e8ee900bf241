//! Unpacked layers: `layers/<diffID hex>/`, used directly as overlay lower
//! dirs. A step's upper dir becomes a layer by a rename (no copy); a
//! layer's compressed blob is made only when something exports it, and
//! remembered in `layers/<hex>.json`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use kiln_layer::{CaptureOptions, Compression, Digest, UnpackOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::Store;

/// A layer's compressed form in `oci/blobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// `layers/<hex>.json`.
#[derive(Default, Serialize, Deserialize)]
struct Sidecar {
    diff_id: String,
    blobs: BTreeMap<String, LayerBlob>,
}

fn compression_key(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

impl Store {
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    fn sidecar_path(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.json", diff_id.hex()))
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// Makes `upper` (a dir in a scratch dir, no longer mounted) a layer:
    /// its diffID is computed, its data synced, and it is renamed into
    /// `layers/`. If that layer exists already, `upper` is removed.
    pub fn commit_layer(&self, upper: &Path, opts: &CaptureOptions) -> Result<Digest> {
        // The step's overlay was `volatile`: make the data durable before
        // the rename makes it part of the store.
        fsutil::syncfs(upper)?;
        let diff_id = kiln_layer::diff_id(upper, opts)?;
        self.adopt_dir(upper, &diff_id)?;
        Ok(diff_id)
    }

    fn adopt_dir(&self, dir: &Path, diff_id: &Digest) -> Result<()> {
        let dest = self.layer_dir(diff_id);
        if dest.exists() {
            return fsutil::remove_all(dir);
        }
        match std::fs::rename(dir, &dest) {
            Ok(()) => fsutil::sync_parent(&dest),
            // Another build committed the same layer meanwhile.
            Err(_) if dest.exists() => fsutil::remove_all(dir),
            Err(e) => Err(Error::io("rename", dest, e)),
        }
    }

    fn read_sidecar(&self, diff_id: &Digest) -> Sidecar {
        std::fs::read(self.sidecar_path(diff_id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn record_blob(&self, diff_id: &Digest, c: Compression, blob: &LayerBlob) -> Result<()> {
        let _lock = crate::locks::exclusive(&self.root.join("layers.lock"))?;
        let mut sidecar = self.read_sidecar(diff_id);
        sidecar.diff_id = diff_id.to_string();
        sidecar
            .blobs
            .insert(compression_key(c).into(), blob.clone());
        let bytes = serde_json::to_vec(&sidecar).map_err(|e| Error::json("layer sidecar", e))?;
        fsutil::write_atomic(
            &self.tmp_file("sidecar"),
            &self.sidecar_path(diff_id),
            &bytes,
        )
    }

    /// The layer's compressed blob, made now if it was never needed before.
    pub fn layer_blob(&self, diff_id: &Digest, c: Compression) -> Result<LayerBlob> {
        if let Some(b) = self.read_sidecar(diff_id).blobs.get(compression_key(c)) {
            if let Ok(d) = Digest::parse(&b.digest) {
                if self.has_blob(&d) {
                    return Ok(b.clone());
                }
            }
        }
        let dir = self.layer_dir(diff_id);
        if !dir.is_dir() {
            return Err(Error::MissingLayer(diff_id.to_string()));
        }
        let tmp = self.tmp_file("layer-blob");
        let result = self.compress_to(&dir, &tmp, diff_id, c);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        let blob = result?;
        self.record_blob(diff_id, c, &blob)?;
        Ok(blob)
    }

    fn compress_to(
        &self,
        dir: &Path,
        tmp: &Path,
        diff_id: &Digest,
        c: Compression,
    ) -> Result<LayerBlob> {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io("create", tmp, e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let captured = kiln_layer::capture(dir, &mut out, Some(c), &CaptureOptions::default())?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", tmp, e.into_error()))?;
        if &captured.diff_id != diff_id {
            return Err(Error::Archive(format!(
                "layer {diff_id} changed on disk: it now captures as {}",
                captured.diff_id
            )));
        }
        file.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
        let dest = self.blob_path(&captured.blob);
        std::fs::rename(tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
        Ok(LayerBlob {
            digest: captured.blob.to_string(),
            size: captured.blob_size,
            media_type: captured.media_type.to_string(),
        })
    }

    /// Unpacks a layer blob (untrusted) into the store, verifying the blob
    /// digest and, if known, the diffID. Returns the diffID.
    pub fn import_layer(
        &self,
        input: &mut dyn Read,
        blob: &Digest,
        diff_id: Option<&Digest>,
    ) -> Result<Digest> {
        if let Some(d) = diff_id {
            if self.has_layer(d) {
                return Ok(d.clone());
            }
        }
        let scratch = self.scratch()?;
        let dir = scratch.path().join("layer");
        std::fs::create_dir(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let opts = UnpackOptions {
            expected_blob: Some(blob.clone()),
            expected_diff_id: diff_id.cloned(),
            whiteouts: true,
            owner: None,
        };
        let unpacked = kiln_layer::unpack(input, &dir, &opts)?;
        for w in &unpacked.warnings {
            eprintln!("kiln: warning: layer {}: {w}", unpacked.diff_id);
        }
        fsutil::syncfs(&dir)?;
        self.adopt_dir(&dir, &unpacked.diff_id)?;
        Ok(unpacked.diff_id)
    }

    /// Records that `blob` (already in `oci/blobs`) is the compressed form
    /// of layer `diff_id`, so exports reuse it.
    pub fn note_layer_blob(&self, diff_id: &Digest, blob: &LayerBlob) -> Result<()> {
        let c = match blob.media_type.as_str() {
            m if m.ends_with("gzip") => Compression::Gzip,
            m if m.ends_with("zstd") => Compression::Zstd,
            _ => return Ok(()),
        };
        self.record_blob(diff_id, c, blob)
    }
}
