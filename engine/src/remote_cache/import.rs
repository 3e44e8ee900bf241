//! `--cache-from`: the configs read once before the stages run, and the
//! lookups of the steps whose key the local store lacks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use std::collections::HashMap;

use anyhow::{Context, Result};
use kiln_layer::Digest;
use kiln_registry::BlobRef;

use super::backend;
use super::format::CacheConfig;
use super::Location;
use crate::progress::Vertex;
use crate::state::Op;
use crate::{cache, Builder, StageState};

/// The caches read for this build, and what the build took from them.
#[derive(Default)]
pub struct Imported {
    pub(super) sources: Vec<(Location, CacheConfig)>,
    /// Every step key the build used (hit or made), in order: what
    /// `--cache-to` exports.
    pub(super) used: Mutex<Vec<String>>,
    pub(super) hits: AtomicUsize,
    pub(super) pulled: AtomicU64,
    pub(super) layers: AtomicUsize,
    /// Layers of cache hits not downloaded yet: diffID → (the source,
    /// its blob there).
    pub(super) pending: Mutex<HashMap<String, (usize, BlobRef)>>,
    pub(super) fetching: Mutex<()>,
    /// The stage content records the build used (see `content_key`).
    pub(super) contents: Mutex<std::collections::BTreeMap<String, String>>,
}

impl Builder<'_> {
    /// Reads every `--cache-from` (a failure is a warning) and, for
    /// `--explain-cache`, records their entries as the local ones are,
    /// so a miss can be explained against them.
    pub(crate) fn load_remote_cache(&mut self) {
        let mut sources = Vec::new();
        for at in &self.req.cache.from {
            let vertex = self
                .progress
                .start(&format!("importing cache manifest from {at}"));
            let read = self
                .registry()
                .and_then(|r| backend::read(at, self.store, r));
            match read {
                Ok(Some(r)) => {
                    vertex.log(&format!("{} entries", r.config.entries.len()));
                    vertex.done();
                    sources.push((at.clone(), r.config));
                }
                Ok(None) => {
                    vertex.done();
                    self.progress.note(&format!(
                        "WARN: cache {at}: not found; the steps it would hold run"
                    ));
                }
                Err(e) => {
                    vertex.done();
                    self.progress.note(&format!(
                        "WARN: cache {at}: {e:#}; the steps it would hold run"
                    ));
                }
            }
        }
        if self.req.explain_cache {
            for (_, config) in &sources {
                self.remember_remote(config);
            }
        }
        self.rcache.sources = sources;
    }

    fn remember_remote(&self, config: &CacheConfig) {
        for (key, entry) in &config.entries {
            let Some(parent) = entry["parent"].as_str() else {
                continue;
            };
            let bytes = serde_json::to_vec(entry).unwrap_or_default();
            let Some(parts) = cache::Entry::parts_of(&bytes) else {
                continue;
            };
            let files = parts
                .iter()
                .find(|(n, _)| n == "sources")
                .and_then(|(_, d)| config.files.get(d).cloned())
                .unwrap_or_default();
            let _ = self.remember(parent, key, &parts, files);
        }
    }

    /// The stage content record `record` was used by this build.
    pub(crate) fn used_content(&self, record: &str, digest: &str) {
        crate::lock(&self.rcache.contents).insert(record.to_string(), digest.to_string());
    }

    /// What a `COPY --from` read of a stage, as a cache recorded it: with
    /// it, the stage's layers can stay in the cache (kept in memory, not
    /// in the store, so a build without that cache never relies on it).
    pub(crate) fn remote_content(&self, record: &str) -> Option<Vec<u8>> {
        let mut known = self
            .rcache
            .sources
            .iter()
            .map(|(_, c)| c.contents.get(record));
        known.find_map(|d| d).map(|d| d.clone().into_bytes())
    }

    /// The entry `key` of the first `--cache-from` holding one.
    pub(crate) fn remote_entry(&self, key: &str) -> Option<Vec<u8>> {
        let mut entries = self.rcache.sources.iter().map(|(_, c)| c.entries.get(key));
        serde_json::to_vec(entries.find_map(|e| e)?).ok()
    }

    /// The step key `key` was used by this build (hit or made).
    pub(crate) fn used_key(&self, key: &str) {
        crate::lock(&self.rcache.used).push(key.to_string());
    }

    /// The ops of the entry `key` on `parent` from the first
    /// `--cache-from` holding one, its layers brought into the store and
    /// the entry kept locally; None (a miss) when no cache has it or its
    /// layers cannot be had.
    pub(crate) fn remote_hit(
        &self,
        key: &str,
        parent: &StageState,
        vertex: &Vertex<'_>,
    ) -> Result<Option<Vec<Op>>> {
        for (i, (at, config)) in self.rcache.sources.iter().enumerate() {
            let Some(entry) = config.entries.get(key) else {
                continue;
            };
            let bytes = serde_json::to_vec(entry)?;
            let Some(ops) = cache::Entry::decode(&bytes, (&parent.key, parent.chain())) else {
                continue;
            };
            // The layers come when a step below needs them as lower dirs
            // or the image is stored (see `lowers`, `materialize`).
            if let Err(e) = self.defer_layers(i, config, &ops) {
                vertex.log(&format!("WARN: cache {at}: {e:#}; the step runs"));
                continue;
            }
            self.store.cache_put(key, &bytes)?;
            self.rcache.hits.fetch_add(1, Ordering::Relaxed);
            vertex.log(&format!("cache hit from {at}"));
            return Ok(Some(ops));
        }
        Ok(None)
    }

    /// Notes which cache holds each layer `ops` add that the store lacks,
    /// once the cache is seen to still have its blob: one it lost makes
    /// the step a miss now rather than a failed download later.
    fn defer_layers(&self, source: usize, config: &CacheConfig, ops: &[Op]) -> Result<()> {
        let at = &self.rcache.sources[source].0;
        let mut found = Vec::new();
        for op in ops {
            let Op::Layer(d) = op else { continue };
            if self.store.has_layer(&Digest::parse(d)?)
                || crate::lock(&self.rcache.pending).contains_key(d)
            {
                continue;
            }
            let blob = config
                .layers
                .get(d)
                .ok_or_else(|| anyhow::anyhow!("the cache lists no blob for layer {d}"))?;
            if !backend::has_blob(at, self.registry()?, blob)? {
                anyhow::bail!("the cache lost the blob {} of layer {d}", blob.digest);
            }
            found.push((d.clone(), blob.clone()));
        }
        let mut pending = crate::lock(&self.rcache.pending);
        for (d, blob) in found {
            pending.entry(d).or_insert((source, blob));
        }
        Ok(())
    }

    /// The stage's overlay lower dirs, its layers from a cache downloaded
    /// first.
    pub(crate) fn lowers(&self, state: &StageState) -> Result<Vec<std::path::PathBuf>> {
        self.materialize(&state.layers()?)?;
        state.lowers(self.store)
    }

    /// Downloads the layers among `layers` that cache hits left behind.
    pub(crate) fn materialize(&self, layers: &[Digest]) -> Result<()> {
        for diff_id in layers {
            // One download at a time: two stages on one layer wait for it.
            let _one = crate::lock(&self.rcache.fetching);
            let Some((source, blob)) = crate::lock(&self.rcache.pending).remove(diff_id.as_str())
            else {
                continue;
            };
            let at = &self.rcache.sources[source].0;
            backend::fetch_layer(at, self.store, self.registry()?, &blob, diff_id).with_context(
                || {
                    format!(
                        "layer {diff_id} from the cache {at} (it held the blob when the step \
                         was looked up; build again, or without --cache-from {at} if it \
                         keeps failing)"
                    )
                },
            )?;
            self.rcache.pulled.fetch_add(blob.size, Ordering::Relaxed);
            self.rcache.layers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The blob of a layer a cache hit left in its cache, if any.
    pub(crate) fn pending_blob(&self, diff_id: &str) -> Option<BlobRef> {
        crate::lock(&self.rcache.pending)
            .get(diff_id)
            .map(|(_, b)| b.clone())
    }
}
