//! `kiln prune`: removes what nothing references. Referenced: every image
//! in index.json (named or not; `--all` drops the unnamed first) with its
//! manifest, config and layer blobs and the layers of its config, and the
//! layers the cache entries it keeps need (the caller decodes its own
//! entries; which entries go: `gc_cache`). Also removes the scratch dirs
//! of dead processes; `--all` without a filter also empties the
//! `RUN --mount=type=cache` dirs (`cachemounts/`).
//! Runs with gc.lock held exclusive, so no build is in flight.

use std::collections::HashSet;
use std::fmt;

use kiln_layer::Digest;

use crate::error::{Error, Result};
use crate::fsutil::remove_all_sized;
use crate::gc_cache::{self, EntryRefs, PruneOptions};
use crate::images::{our_digest, ref_name};
use crate::{locks, Store};

#[derive(Debug, Default)]
pub struct PruneReport {
    pub images: usize,
    pub blobs: usize,
    pub layers: usize,
    pub cache_entries: usize,
    /// `RUN --mount=type=cache` dirs (by id).
    pub cache_mounts: usize,
    /// Scratch dirs of dead processes.
    pub tmp: usize,
    pub bytes: u64,
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {} unnamed image(s), {} blob(s), {} layer(s), {} cache entr{}, {} cache mount(s), {} dead scratch dir(s); {:.1} MB freed",
            self.images,
            self.blobs,
            self.layers,
            self.cache_entries,
            if self.cache_entries == 1 { "y" } else { "ies" },
            self.cache_mounts,
            self.tmp,
            self.bytes as f64 / 1e6
        )?;
        write!(f, "\nTotal reclaimed space: {}", human_size(self.bytes))
    }
}

/// Bytes as docker prints them (decimal units): `0B`, `512B`, `12.3MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

impl Store {
    pub fn prune(
        &self,
        opts: &PruneOptions,
        cache_layers: &dyn Fn(&[u8]) -> EntryRefs,
    ) -> Result<PruneReport> {
        // This handle's own pending layers are judged like every other.
        self.publish_layers()?;
        let _gc = locks::exclusive(&self.root.join("gc.lock"))?;
        let mut report = PruneReport::default();
        // Every index entry is kept, named or not (an unnamed build result
        // is still an image `kiln images` lists); --all also drops the
        // unnamed ones, as `podman image prune -a` drops unused images.
        if opts.all {
            self.update_index(|entries| {
                let before = entries.len();
                entries.retain(|e| ref_name(e).is_some());
                report.images = before - entries.len();
                Ok(())
            })?;
        }
        report.tmp = crate::scratch::clean_stale(&self.tmp())?;
        let mut keep_layers: HashSet<String> = HashSet::new();
        let mut keep_blobs: HashSet<String> = HashSet::new();
        let (images, lists) = self.all_images()?;
        keep_blobs.extend(lists.iter().map(|d| d.hex().to_string()));
        for image in images {
            keep_blobs.insert(image.manifest_digest.hex().to_string());
            keep_blobs.insert(image.config_digest.hex().to_string());
            for l in image.manifest.layers() {
                keep_blobs.insert(our_digest(l.digest())?.hex().to_string());
            }
            keep_layers.extend(image.diff_ids.iter().map(|d| d.hex().to_string()));
        }
        let size_of =
            |hex: &str| Digest::parse(&format!("sha256:{hex}")).map_or(0, |d| self.layer_size(&d));
        let entries = self.cache_entries(cache_layers)?;
        keep_layers = gc_cache::held_by_images(&entries, &keep_layers);
        let (kept, dropped) = gc_cache::select(entries, &keep_layers, opts, &size_of);
        for entry in dropped {
            report.bytes += remove_all_sized(&entry.path)?;
            report.cache_entries += 1;
        }
        keep_layers.extend(kept.into_iter().flat_map(|e| e.layers));
        let mounts = self.root.join("cachemounts");
        if opts.all && opts.unfiltered() {
            for entry in std::fs::read_dir(&mounts).into_iter().flatten().flatten() {
                report.bytes += remove_all_sized(&entry.path())?;
                report.cache_mounts += 1;
            }
        }
        let layers = self.root.join("layers");
        for entry in std::fs::read_dir(&layers)
            .map_err(|e| Error::io("read dir", &layers, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".json").unwrap_or(&name);
            if !keep_layers.contains(hex) {
                report.bytes += remove_all_sized(&entry.path())?;
                if !name.ends_with(".json") {
                    report.layers += 1;
                }
            }
        }
        let blobs = self.oci().join("blobs/sha256");
        for entry in std::fs::read_dir(&blobs)
            .map_err(|e| Error::io("read dir", &blobs, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep_blobs.contains(&name) {
                report.bytes += remove_all_sized(&entry.path())?;
                report.blobs += 1;
            }
        }
        Ok(report)
    }
}
