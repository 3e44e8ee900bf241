//! Unpacked layers: `layers/<diffID hex>/`, used directly as overlay lower
//! dirs. A step's upper dir becomes a layer by a rename (no copy); a
//! layer's compressed blob is made only when something exports it, and
//! remembered in `layers/<hex>.json` (with the size of its plain tar).
//!
//! Layers a build commits stay in this handle's tmp dir ("pending") until
//! [`Store::publish_layers`]: one `syncfs` then makes all of them durable
//! before any is renamed into `layers/`, instead of one `syncfs` per step.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use kiln_layer::{CaptureOptions, Compression, Digest, UnpackOptions, MEDIA_TYPE_TAR};
use oci_spec::image::{Descriptor, MediaType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::images::oci_digest;
use crate::Store;

/// Layers committed through one store handle but not yet in `layers/`.
#[derive(Debug, Default)]
pub(crate) struct PendingLayers {
    layers: Mutex<HashMap<Digest, Pending>>,
    /// The background writeback started after a big step, if any.
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Shared staged dirs that turned out to duplicate a layer: removed
    /// at the publish, when nothing has them mounted.
    doomed: Mutex<Vec<PathBuf>>,
}

/// A layer dir moved into the store's tmp dir, its diffID not yet known
/// (see [`Store::stage_layer`]).
#[derive(Debug)]
pub struct StagedLayer {
    dir: PathBuf,
    shared: bool,
}

impl StagedLayer {
    /// The dir, for use as a lower dir until the publish; marks it as
    /// possibly mounted, so a duplicate is not removed before then.
    pub fn share(&mut self) -> PathBuf {
        self.shared = true;
        self.dir.clone()
    }
}

/// Dirty page cache beyond which staging a layer starts a writeback in the
/// background (see [`Store::stage_layer`]).
const EARLY_FLUSH: u64 = 64 << 20;

#[derive(Debug)]
struct Pending {
    /// Where the layer is until it is published (in the handle's tmp dir).
    dir: PathBuf,
    /// Size of its plain tar, recorded in the sidecar on publishing.
    tar_size: u64,
}

impl PendingLayers {
    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, Pending>> {
        // A panic elsewhere leaves the map whole: entries are inserted and
        // removed in one step.
        self.layers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn doomed_lock(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.doomed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A layer's compressed form in `oci/blobs`, as the sidecar records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

impl LayerBlob {
    /// The manifest descriptor for this blob.
    pub fn descriptor(&self) -> Result<Descriptor> {
        let d = Digest::parse(&self.digest)?;
        Ok(Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.size,
            oci_digest(&d)?,
        ))
    }
}

/// The compression a layer media type says, None for a plain tar (which
/// the store never keeps: it is recaptured from the layer dir on demand).
fn compression_of(media_type: &str) -> Option<Compression> {
    if media_type.ends_with("gzip") {
        Some(Compression::Gzip)
    } else if media_type.ends_with("zstd") {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// `layers/<hex>.json`.
#[derive(Default, Serialize, Deserialize)]
struct Sidecar {
    diff_id: String,
    blobs: BTreeMap<String, LayerBlob>,
    /// Size of the layer's plain tar (what a manifest that lists the
    /// layer uncompressed states), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tar_size: Option<u64>,
}

fn compression_key(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

impl Store {
    /// The layer's dir: in `layers/`, or in this handle's tmp dir while
    /// it is pending (see [`Store::publish_layers`]).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        match self.pending.lock().get(diff_id) {
            Some(p) => p.dir.clone(),
            None => self.stored_layer_dir(diff_id),
        }
    }

    /// Overlay lower dirs for a rootfs of `diff_ids` (bottom first): top
    /// layer first, and a layer that occurs twice (two steps with
    /// identical diffs) kept only at its top position. Overlay refuses a
    /// repeated lower dir (ELOOP), and everything the lower copy holds is
    /// shadowed by the upper one.
    pub fn overlay_lowers<'a>(
        &self,
        diff_ids: impl DoubleEndedIterator<Item = &'a Digest>,
    ) -> Vec<PathBuf> {
        let mut seen = std::collections::HashSet::new();
        diff_ids
            .rev()
            .filter(|d| seen.insert(*d))
            .map(|d| self.layer_dir(d))
            .collect()
    }

    fn stored_layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    fn sidecar_path(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.json", diff_id.hex()))
    }

    /// Whether the layer exists (in `layers/` or pending in this handle).
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.pending.lock().contains_key(diff_id) || self.stored_layer_dir(diff_id).is_dir()
    }

    /// Makes `upper` (a dir in a scratch dir, no longer mounted) a layer:
    /// [`Store::stage_layer`] then [`Store::register_layer`].
    pub fn commit_layer(&self, upper: &Path, opts: &CaptureOptions) -> Result<Digest> {
        let staged = self.stage_layer(upper)?;
        self.register_layer(staged, opts)
    }

    /// Moves `upper` into this handle's tmp dir, where it stays until the
    /// publish: a path that can serve as a lower dir before the layer's
    /// diffID is known (the build engine lets a stage's dependents read
    /// its last layer while it is hashed).
    pub fn stage_layer(&self, upper: &Path) -> Result<StagedLayer> {
        let dir = self.tmp_file("layer");
        std::fs::rename(upper, &dir).map_err(|e| Error::io("rename", &dir, e))?;
        self.flush_early();
        Ok(StagedLayer { dir, shared: false })
    }

    /// Computes a staged layer's diffID and makes it a pending layer,
    /// usable as a lower dir at once ([`Store::layer_dir`]) and renamed
    /// into `layers/` by [`Store::publish_layers`]. If that layer exists
    /// already, the staged dir is removed (at the publish if it was
    /// shared: it may be mounted). Nothing is synced here: the step's
    /// overlay was `volatile`, and its data is made durable by the one
    /// `syncfs` of the publish, before any name points at it.
    pub fn register_layer(&self, staged: StagedLayer, opts: &CaptureOptions) -> Result<Digest> {
        let captured = kiln_layer::capture(&staged.dir, &mut std::io::sink(), None, opts)?;
        let diff_id = captured.diff_id;
        let mut pending = self.pending.lock();
        if pending.contains_key(&diff_id) || self.stored_layer_dir(&diff_id).is_dir() {
            drop(pending);
            if staged.shared {
                self.pending.doomed_lock().push(staged.dir);
            } else {
                fsutil::remove_all(&staged.dir)?;
            }
            return Ok(diff_id);
        }
        pending.insert(
            diff_id.clone(),
            Pending {
                dir: staged.dir,
                tar_size: captured.blob_size,
            },
        );
        drop(pending);
        Ok(diff_id)
    }

    /// When much data waits for writeback (a step wrote a lot), starts
    /// writing it back on a thread, so the disk works while the layer is
    /// hashed and the build goes on, and the publish's `syncfs` finds
    /// little left (and later writes are not throttled by a page cache
    /// full of dirty data). Only a head start: durability still comes
    /// from the publish. The kernel's own count of dirty pages decides,
    /// because the layer's size is not known before it is hashed.
    fn flush_early(&self) {
        if fsutil::dirty_bytes().is_none_or(|d| d < EARLY_FLUSH) {
            return;
        }
        let mut flusher = self
            .pending
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if flusher.as_ref().is_some_and(|f| !f.is_finished()) {
            return; // one at a time; the running one writes this data too
        }
        let layers = self.root.join("layers");
        *flusher = Some(std::thread::spawn(move || {
            let _ = fsutil::syncfs(&layers);
        }));
    }

    /// Moves every pending layer into `layers/`: one `syncfs` first (the
    /// data of every step's `volatile` upper), then the renames, then one
    /// sync of `layers/`. Builds call it when they end, failed or not,
    /// before anything names the layers (the image's index entry); a
    /// crash before it leaves the layers in `tmp/` (removed by the next
    /// open) and the cache entries naming them count as misses.
    /// While a [`Store::hold_layers`] is alive it does nothing: other
    /// builds through this handle may have these dirs mounted.
    pub fn publish_layers(&self) -> Result<()> {
        if self.builds.held() {
            return Ok(());
        }
        for dir in std::mem::take(&mut *self.pending.doomed_lock()) {
            fsutil::remove_all(&dir)?;
        }
        let mut pending = self.pending.lock();
        if pending.is_empty() {
            return Ok(());
        }
        let early = self
            .pending
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(f) = early {
            let _ = f.join();
        }
        let layers = self.root.join("layers");
        fsutil::syncfs(&layers)?;
        let mut first_error = None;
        for (diff_id, p) in pending.drain() {
            let result = self
                .adopt_dir_unsynced(&p.dir, &diff_id)
                .and_then(|()| self.record_tar_size(&diff_id, p.tar_size));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        drop(pending);
        fsutil::sync_dir(&layers)?;
        first_error.map_or(Ok(()), Err)
    }

    /// Renames `dir` to the layer's place, and syncs that rename.
    fn adopt_dir(&self, dir: &Path, diff_id: &Digest) -> Result<()> {
        self.adopt_dir_unsynced(dir, diff_id)?;
        fsutil::sync_dir(&self.root.join("layers"))
    }

    /// Renames `dir` to the layer's place (its data already synced), or
    /// removes it if that layer exists.
    fn adopt_dir_unsynced(&self, dir: &Path, diff_id: &Digest) -> Result<()> {
        let dest = self.stored_layer_dir(diff_id);
        if dest.exists() {
            return fsutil::remove_all(dir);
        }
        match std::fs::rename(dir, &dest) {
            Ok(()) => Ok(()),
            // Another build committed the same layer meanwhile.
            Err(_) if dest.exists() => fsutil::remove_all(dir),
            Err(e) => Err(Error::io("rename", dest, e)),
        }
    }

    /// The layer's sidecar; empty when missing, unreadable, or about
    /// another layer (sidecars are not fsynced: after a crash one could
    /// hold stale bytes, and a claim about another layer's blobs must not
    /// be believed).
    fn read_sidecar(&self, diff_id: &Digest) -> Sidecar {
        std::fs::read(self.sidecar_path(diff_id))
            .ok()
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
            .filter(|s| s.diff_id == diff_id.as_str())
            .unwrap_or_default()
    }

    fn record_blob(&self, diff_id: &Digest, c: Compression, blob: &LayerBlob) -> Result<()> {
        self.update_sidecar(diff_id, |s| {
            s.blobs.insert(compression_key(c).into(), blob.clone());
        })
    }

    /// Read-modify-write of the sidecar under `layers.lock`. Written by
    /// rename without fsync: a sidecar lost or torn in a crash reads as
    /// empty, which only means a blob is made again or a tar measured
    /// again (a blob it names is synced before it is recorded).
    fn update_sidecar(&self, diff_id: &Digest, change: impl FnOnce(&mut Sidecar)) -> Result<()> {
        let _lock = crate::locks::exclusive(&self.root.join("layers.lock"))?;
        let mut sidecar = self.read_sidecar(diff_id);
        sidecar.diff_id = diff_id.to_string();
        change(&mut sidecar);
        let bytes = serde_json::to_vec(&sidecar).map_err(|e| Error::json("layer sidecar", e))?;
        fsutil::write_replace(
            &self.tmp_file("sidecar"),
            &self.sidecar_path(diff_id),
            &bytes,
        )
    }

    /// A layer's size (its plain tar's, as recorded when it was made or
    /// first exported); 0 when not known.
    pub fn layer_size(&self, diff_id: &Digest) -> u64 {
        self.read_sidecar(diff_id).tar_size.unwrap_or(0)
    }

    /// Whether the layer is known to capture to its diffID: kiln captured
    /// it (or captured it again to measure it), so its sidecar has the
    /// tar's size.
    pub(crate) fn known_capturable(&self, diff_id: &Digest) -> bool {
        self.read_sidecar(diff_id).tar_size.is_some()
    }

    fn record_tar_size(&self, diff_id: &Digest, size: u64) -> Result<()> {
        self.update_sidecar(diff_id, |s| s.tar_size = Some(size))
    }

    /// The layer as a manifest lists it when nothing has compressed it:
    /// its plain tar (digest = diffID). That blob is never kept in
    /// `oci/blobs`: [`Store::exportable`] makes the compressed one when an
    /// export or push needs it. The size comes from the sidecar, or from
    /// one capture of the layer dir (then recorded).
    pub fn plain_layer_descriptor(&self, diff_id: &Digest) -> Result<Descriptor> {
        let size = match self.read_sidecar(diff_id).tar_size {
            Some(size) => size,
            None => {
                let dir = self.layer_dir(diff_id);
                if !dir.is_dir() {
                    return Err(Error::MissingLayer(diff_id.to_string()));
                }
                let captured = kiln_layer::capture(
                    &dir,
                    &mut std::io::sink(),
                    None,
                    &CaptureOptions::default(),
                )?;
                if &captured.diff_id != diff_id {
                    return Err(Error::Archive(format!(
                        "layer {diff_id} changed on disk: it now captures as {}",
                        captured.diff_id
                    )));
                }
                self.record_tar_size(diff_id, captured.blob_size)?;
                captured.blob_size
            }
        };
        Ok(Descriptor::new(
            MediaType::from(MEDIA_TYPE_TAR),
            size,
            oci_digest(diff_id)?,
        ))
    }

    /// The layer's compressed blob as a manifest descriptor, made now if
    /// it was never needed before (or pruned since).
    pub fn layer_blob(&self, diff_id: &Digest, c: Compression) -> Result<Descriptor> {
        self.layer_blob_record(diff_id, c)?.descriptor()
    }

    /// What the sidecar knows about the layer's blob in compression `c`,
    /// if that blob is still in the store.
    pub fn known_layer_blob(&self, diff_id: &Digest, c: Compression) -> Option<LayerBlob> {
        let b = self
            .read_sidecar(diff_id)
            .blobs
            .remove(compression_key(c))?;
        let d = Digest::parse(&b.digest).ok()?;
        self.has_blob(&d).then_some(b)
    }

    fn layer_blob_record(&self, diff_id: &Digest, c: Compression) -> Result<LayerBlob> {
        if let Some(b) = self.known_layer_blob(diff_id, c) {
            return Ok(b);
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
        let blob = self.compress_into(dir, file, tmp, diff_id, c)?;
        let file = blob.1;
        file.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
        let dest = self.blob_path(&Digest::parse(&blob.0.digest)?);
        std::fs::rename(tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
        fsutil::sync_parent(&dest)?;
        Ok(blob.0)
    }

    /// Compresses the layer `diff_id` (its dir `dir`) in `c` into `file`
    /// (named `path`, for messages), checking that it still captures as
    /// `diff_id`. Returns the blob and the file, written but not synced.
    fn compress_into(
        &self,
        dir: &Path,
        file: std::fs::File,
        path: &Path,
        diff_id: &Digest,
        c: Compression,
    ) -> Result<(LayerBlob, std::fs::File)> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let captured = kiln_layer::capture(dir, &mut out, Some(c), &CaptureOptions::default())?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", path, e.into_error()))?;
        if &captured.diff_id != diff_id {
            return Err(Error::Archive(format!(
                "layer {diff_id} changed on disk: it now captures as {}",
                captured.diff_id
            )));
        }
        let blob = LayerBlob {
            digest: captured.blob.to_string(),
            size: captured.blob_size,
            media_type: captured.media_type.to_string(),
        };
        Ok((blob, file))
    }

    /// The layer `diff_id` compressed in `c` into `file` (named `path`),
    /// for one export only: nothing is recorded in the store.
    pub(crate) fn compress_layer_into(
        &self,
        diff_id: &Digest,
        c: Compression,
        file: std::fs::File,
        path: &Path,
    ) -> Result<(LayerBlob, std::fs::File)> {
        let dir = self.layer_dir(diff_id);
        if !dir.is_dir() {
            return Err(Error::MissingLayer(diff_id.to_string()));
        }
        self.compress_into(&dir, file, path, diff_id, c)
    }

    /// Unpacks a layer blob (untrusted) into the store, verifying the blob
    /// digest and, if known, the diffID. Returns the diffID. If the blob
    /// itself is in `oci/blobs` and compressed, the sidecar records it so
    /// exports reuse those bytes instead of recompressing.
    pub fn import_layer(
        &self,
        input: &mut dyn Read,
        blob: &Digest,
        media_type: &str,
        diff_id: Option<&Digest>,
    ) -> Result<Digest> {
        let diff_id = match diff_id {
            Some(d) if self.has_layer(d) => {
                // The layer is here, but nothing yet says this blob holds
                // it: a lying archive could pair its own bytes with a
                // trusted layer and have them exported as that layer. So
                // the blob is unpacked (and thrown away) to check.
                if blob != d && !self.blob_known_for(d, blob) {
                    self.unpack_to_scratch(input, blob, Some(d))?;
                }
                d.clone()
            }
            _ => {
                let (_scratch, dir, d) = self.unpack_to_scratch(input, blob, diff_id)?;
                fsutil::syncfs(&dir)?;
                self.adopt_dir(&dir, &d)?;
                d
            }
        };
        self.note_layer_blob(&diff_id, blob, media_type)?;
        Ok(diff_id)
    }

    /// Unpacks a blob into a new scratch dir, verifying its digests;
    /// returns the scratch (which removes the dir when dropped), the dir
    /// and the diffID.
    fn unpack_to_scratch(
        &self,
        input: &mut dyn Read,
        blob: &Digest,
        diff_id: Option<&Digest>,
    ) -> Result<(crate::Scratch, PathBuf, Digest)> {
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
            // Never a panic on a closed stderr (this runs on pull workers).
            let _ = writeln!(
                std::io::stderr(),
                "kiln: warning: layer {}: {w}",
                unpacked.diff_id
            );
        }
        Ok((scratch, dir, unpacked.diff_id))
    }

    /// Whether layer `diff_id` is stored and known to be what `blob`
    /// unpacks to (so a pull can skip downloading `blob`).
    pub fn layer_has_blob(&self, diff_id: &Digest, blob: &Digest) -> bool {
        self.has_layer(diff_id) && (blob == diff_id || self.blob_known_for(diff_id, blob))
    }

    /// Whether the sidecar already pairs `blob` with layer `diff_id`.
    fn blob_known_for(&self, diff_id: &Digest, blob: &Digest) -> bool {
        self.read_sidecar(diff_id)
            .blobs
            .values()
            .any(|b| b.digest == blob.as_str())
    }

    /// Records that `blob`, if it is in `oci/blobs` and compressed, is a
    /// compressed form of layer `diff_id`, so exports reuse it.
    fn note_layer_blob(&self, diff_id: &Digest, blob: &Digest, media_type: &str) -> Result<()> {
        let Some(c) = compression_of(media_type) else {
            return Ok(());
        };
        if self.known_layer_blob(diff_id, c).is_some() {
            return Ok(());
        }
        let path = self.blob_path(blob);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("stat", path, e)),
        };
        let record = LayerBlob {
            digest: blob.to_string(),
            size,
            media_type: c.media_type().to_string(),
        };
        self.record_blob(diff_id, c, &record)
    }
}
