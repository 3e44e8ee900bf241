//! `--cache-to`: the build's entries merged into each cache and written.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use kiln_layer::Digest;
use kiln_registry::{BlobRef, MountSources};

use super::ageout::Limits;
use super::backend;
use super::format::{entry_layers, sources_part, CacheConfig};
use super::{CacheTo, Location};
use crate::{Builder, StageState};

impl Builder<'_> {
    /// Writes every `--cache-to` (the target's layers were downloaded
    /// before the image was stamped, in `build`). A failure to write is a
    /// warning unless `ignore-error=false`.
    pub(crate) fn export_remote_cache(&self, target: &StageState) -> Result<()> {
        let last = &target.key;
        let hits = self.rcache.hits.load(Ordering::Relaxed);
        if hits > 0 || !self.req.cache.from.is_empty() {
            let pulled = self.rcache.pulled.load(Ordering::Relaxed);
            self.progress.note(&format!(
                "cache: {hits} steps from --cache-from, {} layers pulled ({pulled} bytes)",
                self.rcache.layers.load(Ordering::Relaxed),
            ));
        }
        for to in &self.req.cache.to {
            let vertex = self
                .progress
                .start(&format!("exporting cache to {}", to.at));
            match self.export_one(to, last) {
                Ok(done) => {
                    vertex.log(&done);
                    vertex.done();
                }
                Err(e) if to.ignore_error => {
                    vertex.done();
                    self.progress
                        .note(&format!("WARN: cache {}: export failed: {e:#}", to.at));
                }
                Err(e) => {
                    vertex.error(&format!("{e:#}"));
                    return Err(e.context(format!("exporting the cache to {}", to.at)));
                }
            }
        }
        Ok(())
    }

    fn export_one(&self, to: &CacheTo, last: &str) -> Result<String> {
        // The platforms of a multi-platform build export at once to the
        // same refs: each read-merge-write must see the one before it, or
        // the last writer drops the other platforms' entries.
        static EXPORTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = crate::lock(&EXPORTING);
        let ours = self.cache_config(to, last)?;
        let registry = self.registry()?;
        let old = backend::read(&to.at, self.store, registry).unwrap_or(None);
        let mut merged = old.as_ref().map(|o| o.config.clone()).unwrap_or_default();
        let count = ours.entries.len();
        let used: Vec<String> = ours.entries.keys().cloned().collect();
        merged.merge(ours);
        merged.stamp(used);
        let dropped = merged.age_out(&Limits {
            keep: to.keep,
            max_size: to.max_size,
            config_max: kiln_registry::ARTIFACT_CONFIG_MAX,
        });
        if old.is_some_and(|o| o.config.same_content(&merged)) {
            return Ok(format!(
                "{count} entries, all there already: nothing written"
            ));
        }
        let bytes = merged.to_bytes();
        let digest = backend::write(
            &to.at,
            self.store,
            registry,
            &bytes,
            &merged.blobs(),
            &self.mount_sources(),
        )?;
        let aged = match dropped {
            0 => String::new(),
            n => format!(", {n} of the oldest aged out"),
        };
        Ok(format!(
            "{count} entries ({} in all{aged}), manifest {digest}",
            merged.entries.len()
        ))
    }

    /// This build's entries for `to`: every key used (`mode=max`), or the
    /// chain of entries the target's last step stands on (`mode=min`).
    fn cache_config(&self, to: &CacheTo, last: &str) -> Result<CacheConfig> {
        let used = crate::lock(&self.rcache.used).clone();
        let keys: Vec<String> = if to.max {
            used
        } else {
            let used: HashSet<String> = used.into_iter().collect();
            let mut chain = Vec::new();
            let mut key = last.to_string();
            while used.contains(&key) && !chain.contains(&key) {
                chain.push(key.clone());
                let entry = self.store.cache_get(&key)?.unwrap_or_default();
                let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap_or_default();
                match entry["parent"].as_str() {
                    Some(p) => key = p.to_string(),
                    None => break,
                }
            }
            chain
        };
        let mut config = CacheConfig {
            contents: crate::lock(&self.rcache.contents).clone(),
            ..CacheConfig::default()
        };
        for key in keys {
            let Some(bytes) = self.store.cache_get(&key)? else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            for d in entry_layers(&entry) {
                // A layer still in its cache is mounted or skipped there.
                if let Some(blob) = self.pending_blob(&d) {
                    config.layers.insert(d, blob);
                    continue;
                }
                let diff_id = Digest::parse(&d)?;
                let desc = self
                    .store
                    .layer_blob(&diff_id, to.compression)
                    .with_context(|| format!("compressing layer {d}"))?;
                config.layers.insert(
                    d,
                    BlobRef {
                        digest: desc.digest().to_string(),
                        size: desc.size(),
                        media_type: desc.media_type().to_string(),
                    },
                );
            }
            if let Some(sources) = sources_part(&entry) {
                let record = self.store.cache_get(&crate::explain::files_key(&sources))?;
                if let Some(files) = record.and_then(|b| serde_json::from_slice(&b).ok()) {
                    config.files.insert(sources, files);
                }
            }
            config.entries.insert(key, entry);
        }
        Ok(config)
    }

    /// The registry caches read for this build, with the layer blobs
    /// each holds: an export to another repository of that registry
    /// mounts them instead of uploading.
    fn mount_sources(&self) -> MountSources {
        self.rcache
            .sources
            .iter()
            .filter_map(|(at, config)| match at {
                Location::Registry(r) => {
                    let blobs = config.layers.values().map(|b| b.digest.clone()).collect();
                    Some((r.clone(), blobs))
                }
                Location::Local { .. } => None,
            })
            .collect()
    }
}
