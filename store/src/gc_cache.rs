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

/// What a cache entry needs kept, as the build engine decodes it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntryRefs {
    /// The layers it names.
    pub layers: Vec<Digest>,
    /// For the entry of a layer made from another (SOURCE_DATE_EPOCH's
    /// clamped copy of a step's raw layer): that other layer. While an
    /// image holds the copy, the source counts as the image's for the
    /// cache: the steps that made it stay cached through a plain prune,
    /// as they did when images held the raw layers themselves.
    pub source: Option<Digest>,
}

/// One cache entry on disk.
pub(crate) struct CacheEntry {
    pub path: PathBuf,
    pub used: SystemTime,
    /// The layers' hex diffIDs.
    pub layers: Vec<String>,
    /// The hex diffID of the layer its layer was made from, if any.
    pub source: Option<String>,
}

impl Store {
    /// Every cache entry, with the layers `cache_layers` finds in it.
    pub(crate) fn cache_entries(
        &self,
        cache_layers: &dyn Fn(&[u8]) -> EntryRefs,
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
            let refs = std::fs::read(&path)
                .map(|b| cache_layers(&b))
                .unwrap_or_default();
            entries.push(CacheEntry {
                path,
                used,
                layers: refs.layers.iter().map(|d| d.hex().to_string()).collect(),
                source: refs.source.map(|d| d.hex().to_string()),
            });
        }
        Ok(entries)
    }
}

/// The layers the cache judges as the images': `image_layers` and the
/// sources of the layers among them that were made from another (the raw
/// layers behind SOURCE_DATE_EPOCH's clamped copies).
pub(crate) fn held_by_images(
    entries: &[CacheEntry],
    image_layers: &HashSet<String>,
) -> HashSet<String> {
    let mut held = image_layers.clone();
    for e in entries {
        if let Some(source) = &e.source {
            if e.layers.iter().any(|l| image_layers.contains(l)) {
                held.insert(source.clone());
            }
        }
    }
    held
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
        // An entry whose layers images hold frees nothing: keep it.
        let frees = e.layers.iter().any(|l| refs.contains_key(l.as_str()));
        if !droppable(e) || !frees {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry used `age` seconds ago naming `layers`.
    fn entry(name: &str, age: u64, layers: &[&str]) -> CacheEntry {
        CacheEntry {
            path: PathBuf::from(name),
            used: SystemTime::now() - Duration::from_secs(age),
            layers: layers.iter().map(|l| l.to_string()).collect(),
            source: None,
        }
    }

    fn names(entries: &[CacheEntry]) -> Vec<String> {
        let mut n: Vec<String> = entries
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        n.sort();
        n
    }

    fn run(opts: PruneOptions) -> Vec<String> {
        let entries = vec![
            entry("in-image", 500, &["img"]),
            entry("old", 400, &["a"]),
            entry("mid", 200, &["b"]),
            entry("new", 10, &["c"]),
            entry("config-only", 300, &[]),
        ];
        let images = HashSet::from(["img".to_string()]);
        let (_, dropped) = select(entries, &images, &opts, &|_| 100);
        names(&dropped)
    }

    #[test]
    fn plain_prune_drops_what_no_image_uses() {
        assert_eq!(run(PruneOptions::default()), ["mid", "new", "old"]);
        let all = run(PruneOptions {
            all: true,
            ..Default::default()
        });
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn a_layer_an_image_holds_a_copy_of_counts_as_held() {
        let mut copy = entry("epoch-copy", 100, &["clamped"]);
        copy.source = Some("raw".into());
        let mut orphan = entry("epoch-orphan", 100, &["gone"]);
        orphan.source = Some("raw2".into());
        let images = HashSet::from(["clamped".to_string()]);
        let held = held_by_images(&[copy, orphan], &images);
        let entries = vec![entry("step", 100, &["raw"]), entry("step2", 100, &["raw2"])];
        let (kept, dropped) = select(entries, &held, &PruneOptions::default(), &|_| 1);
        assert_eq!(names(&kept), ["step"]);
        assert_eq!(names(&dropped), ["step2"], "its copy is no image's");
    }

    #[test]
    fn until_spares_recent_entries() {
        let until = Some(Duration::from_secs(300));
        assert_eq!(
            run(PruneOptions {
                until,
                ..Default::default()
            }),
            ["old"]
        );
    }

    #[test]
    fn keep_storage_drops_the_least_recently_used_that_free_something() {
        // 300 bytes only the cache holds; 150 allowed: the two oldest go.
        let keep_storage = Some(150);
        let opts = PruneOptions {
            all: true,
            keep_storage,
            ..Default::default()
        };
        assert_eq!(run(opts), ["mid", "old"]);
        let keep_storage = Some(1000);
        assert!(run(PruneOptions {
            keep_storage,
            ..Default::default()
        })
        .is_empty());
    }
}
