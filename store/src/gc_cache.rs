//! Which step-cache entries a prune drops. As BuildKit's prune: without
//! `--all` only the entries whose layers no image uses (an image's layers
//! stay on disk anyway, so keeping their entries costs nothing, and
//! dropping the others is what frees a removed image's layers); with
//! `--all` every entry. `until` spares the entries used more recently than
//! that; `keep_storage` drops the least recently used first and stops once
//! the layers only the cache holds fit in that many bytes. An entry's
//! mtime is its last use: [`Store::cache_get`] touches it on every read.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use kiln_layer::Digest;

use crate::error::{Error, Result};
use crate::Store;

/// What `kiln prune` removes beyond what nothing references.
#[derive(Debug, Default, Clone)]
pub struct PruneOptions {
    /// Also unnamed images, cache entries whose layers images use, and
    /// (without a filter) the cache mounts.
    pub all: bool,
    /// Keep the most recently used cache up to this many bytes.
    pub keep_storage: Option<u64>,
    /// Only cache entries last used longer ago than this.
    pub until: Option<Duration>,
}

impl PruneOptions {
    /// Whether the prune drops everything of its kind (no filter).
    pub fn unfiltered(&self) -> bool {
        self.keep_storage.is_none() && self.until.is_none()
    }
}

/// One cache entry on disk.
pub(crate) struct CacheEntry {
    pub path: PathBuf,
    pub used: SystemTime,
    /// The layers' hex diffIDs.
    pub layers: Vec<String>,
}

impl Store {
    /// Every cache entry, with the layers `cache_layers` finds in it.
    pub(crate) fn cache_entries(
        &self,
        cache_layers: &dyn Fn(&[u8]) -> Vec<Digest>,
    ) -> Result<Vec<CacheEntry>> {
        let dir = self.root.join("cache");
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read dir", &dir, e))?
            .flatten()
        {
            let path = entry.path();
            let used = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            // An unreadable entry is a miss for builds: it names nothing.
            let layers = std::fs::read(&path)
                .map(|b| {
                    cache_layers(&b)
                        .iter()
                        .map(|d| d.hex().to_string())
                        .collect()
                })
                .unwrap_or_default();
            entries.push(CacheEntry { path, used, layers });
        }
        Ok(entries)
    }
}

/// Splits `entries` into (kept, dropped) by `opts`; `image_layers` are the
/// hex diffIDs the images use.
pub(crate) fn select(
    mut entries: Vec<CacheEntry>,
    image_layers: &HashSet<String>,
    opts: &PruneOptions,
    size_of: &dyn Fn(&str) -> u64,
) -> (Vec<CacheEntry>, Vec<CacheEntry>) {
    let cutoff = opts
        .until
        .and_then(|d| SystemTime::now().checked_sub(d))
        .unwrap_or_else(SystemTime::now);
    let droppable = |e: &CacheEntry| {
        let shared = e.layers.iter().all(|l| image_layers.contains(l));
        (opts.all || !shared) && (opts.until.is_none() || e.used < cutoff)
    };
    // Oldest first: keep-storage drops the least recently used.
    entries.sort_by_key(|e| e.used);
    let Some(budget) = opts.keep_storage else {
        return entries.into_iter().partition(|e| !droppable(e));
    };
    // The bytes of the layers that only the cache holds, each counted once.
    let mut refs: HashMap<&str, usize> = HashMap::new();
    for l in entries.iter().flat_map(|e| &e.layers) {
        if !image_layers.contains(l) {
            *refs.entry(l).or_default() += 1;
        }
    }
    let mut total: u64 = refs.keys().map(|l| size_of(l)).sum();
    let mut drop = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if total <= budget {
            break;
        }
        if !droppable(e) {
            continue;
        }
        drop[i] = true;
        for l in &e.layers {
            if let Some(n) = refs.get_mut(l.as_str()) {
                *n -= 1;
                if *n == 0 {
                    total = total.saturating_sub(size_of(l));
                }
            }
        }
    }
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (e, d) in entries.into_iter().zip(drop) {
        if d {
            dropped.push(e)
        } else {
            kept.push(e)
        }
    }
    (kept, dropped)
}
