//! SOURCE_DATE_EPOCH, applied when the image is made rather than in the
//! step cache keys: steps keep their raw layers (mtimes as made) and the
//! times they were made in their cache entries, keyed without the epoch,
//! and the image gets, for each layer its stages added, a copy with every
//! later mtime clamped, and the epoch as its steps' times. A new epoch
//! (each commit's time in CI) then re-stamps the image and re-runs no
//! step. RUN steps see lower layers as made, as in BuildKit, where the
//! epoch is applied by the exporter too.
//!
//! A clamped copy is made once per (raw layer, epoch) and recorded under a
//! key of both (a `LinkEntry`: a layer under a key, which prune already
//! reads), so a rebuild with the same epoch writes nothing new.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use kiln_layer::{CaptureOptions, Digest, UnpackOptions};

use super::add::LinkEntry;
use super::{cache, created, Builder, StageState};
use crate::image_config::ImageConfig;

impl Builder<'_> {
    /// The image config of a finished stage, with the build's epoch (if
    /// any) applied to what the stage's own steps made: its history
    /// entries and its layers above the base image's.
    pub(super) fn stamped(&self, state: &StageState) -> Result<ImageConfig> {
        let mut config = state.config.clone();
        let Some(epoch) = self.req.epoch else {
            return Ok(config);
        };
        let time = created::rfc3339(epoch.max(0) as u64);
        for h in config.history.iter_mut().skip(state.base.history) {
            h.created = Some(time.clone());
        }
        let new_layers = state.base.layers.min(config.rootfs.diff_ids.len());
        self.clamp_layers(&mut config.rootfs.diff_ids[new_layers..], epoch, &time)?;
        Ok(config)
    }

    /// Replaces each of `layers` by its copy clamped to `epoch`.
    fn clamp_layers(&self, layers: &mut [String], epoch: i64, time: &str) -> Result<()> {
        // A copy of a big layer takes a while: shown as BuildKit's exporter
        // shows its rewrite, when there is one to make.
        let mut vertex = None;
        for d in layers {
            let raw = Digest::parse(d).map_err(|e| anyhow!("bad diff_id {d:?}: {e}"))?;
            let key = cache::key(
                "epoch-layer",
                &[raw.as_str().as_bytes(), &epoch.to_le_bytes()],
            );
            if let Some(layer) = self.linked(&key)? {
                *d = layer.to_string();
                continue;
            }
            // A layer with nothing newer than the epoch is its own copy:
            // nothing to write (and hash, only for the store to drop it).
            let src = self.store.layer_dir(&raw);
            let layer = if newer_than(&src, epoch.max(0) as u64)
                .with_context(|| format!("reading the mtimes of layer {raw}"))?
            {
                vertex.get_or_insert_with(|| {
                    self.progress.start(&format!(
                        "rewriting layers with source-date-epoch {epoch} ({time})"
                    ))
                });
                match self.clamped(&raw, epoch) {
                    Ok(layer) => layer,
                    Err(e) => {
                        if let Some(v) = vertex.take() {
                            v.error(&format!("{e:#}"));
                        }
                        return Err(e);
                    }
                }
            } else {
                raw.clone()
            };
            // The raw layer is named for prune: while an image holds the
            // copy, the steps that made the raw one stay cached.
            let entry = LinkEntry {
                layer: layer.to_string(),
                from: Some(raw.to_string()),
            };
            self.store.cache_put(&key, &serde_json::to_vec(&entry)?)?;
            *d = layer.to_string();
        }
        if let Some(v) = vertex {
            v.done();
        }
        Ok(())
    }

    /// Makes and stores the layer `raw` with mtimes later than `epoch`
    /// set to it.
    fn clamped(&self, raw: &Digest, epoch: i64) -> Result<Digest> {
        let dir = self.scratch.path().join(format!("epoch-{}", raw.hex()));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        clamped_copy(&self.store.layer_dir(raw), &dir, epoch.max(0) as u64)
            .with_context(|| format!("applying SOURCE_DATE_EPOCH to layer {raw}"))?;
        self.store
            .commit_layer(&dir, &CaptureOptions::default())
            .context("storing the clamped layer")
    }
}

/// Whether anything under the layer dir `root` (itself excluded: a layer's
/// root is no entry of its tar) has an mtime later than `epoch`, in the
/// whole seconds the tar headers keep. Walks with its own stack.
fn newer_than(root: &Path, epoch: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.mtime() > 0 && meta.mtime() as u64 > epoch {
                return Ok(true);
            }
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok(false)
}

/// Writes into the empty dir `dest` the layer dir `src` with mtimes later
/// than `epoch` clamped: the layer's own capture, clamped, streamed into
/// an unpack (whiteouts, owners, xattrs and links as a pulled layer's).
fn clamped_copy(src: &Path, dest: &Path, epoch: u64) -> Result<()> {
    let (mut reader, mut writer) = std::io::pipe()?;
    let opts = CaptureOptions {
        clamp_mtime: Some(epoch),
        ..CaptureOptions::default()
    };
    std::thread::scope(|s| {
        let capture = s.spawn(move || {
            let captured = kiln_layer::capture(src, &mut writer, None, &opts);
            drop(writer); // the unpack's end of file
            captured
        });
        let unpack = UnpackOptions {
            whiteouts: true,
            ..UnpackOptions::default()
        };
        let unpacked = kiln_layer::unpack(&mut reader, dest, &unpack);
        // A failed unpack stops reading: the capture then fails on a
        // closed pipe instead of waiting for room in it.
        drop(reader);
        let captured = capture
            .join()
            .map_err(|_| anyhow!("the layer capture panicked"))?;
        captured?;
        unpacked?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn set_mtime(path: &Path, secs: u64) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn the_copy_clamps_later_mtimes_only_and_keeps_the_content() {
        let dir = std::env::temp_dir().join(format!("kiln-stamp-test-{}", std::process::id()));
        let (src, dest) = (dir.join("src"), dir.join("dest"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(src.join("sub/new"), "new\n").unwrap();
        std::fs::write(src.join("old"), "old\n").unwrap();
        set_mtime(&src.join("old"), 500);
        clamped_copy(&src, &dest, 1000).unwrap();
        let mtime = |p: &str| std::fs::metadata(dest.join(p)).unwrap().mtime();
        assert_eq!(mtime("sub/new"), 1000);
        assert_eq!(mtime("sub"), 1000);
        assert_eq!(mtime("old"), 500, "older than the epoch: kept");
        let content = std::fs::read_to_string(dest.join("sub/new")).unwrap();
        assert_eq!(content, "new\n");
        let src_mtime = std::fs::metadata(src.join("sub/new")).unwrap().mtime();
        assert!(src_mtime > 1000, "the source layer is left as it was");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_an_mtime_later_than_the_epoch_needs_a_copy() {
        let dir = std::env::temp_dir().join(format!("kiln-stamp-newer-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), "f\n").unwrap();
        set_mtime(&dir.join("sub/f"), 500);
        let sub = std::fs::File::open(dir.join("sub")).unwrap();
        sub.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(400))
            .unwrap();
        assert!(
            !newer_than(&dir, 1000).unwrap(),
            "the root's own mtime is no entry's"
        );
        set_mtime(&dir.join("sub/f"), 2000);
        assert!(newer_than(&dir, 1000).unwrap(), "a nested file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
