//! `kiln system df`: what the store holds and what each prune would free,
//! judged by the same rules as [`Store::prune`] (see `gc_cache`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use kiln_layer::Digest;

use crate::error::{Error, Result};
use crate::gc_cache::{self, EntryRefs, PruneOptions};
use crate::images::our_digest;
use crate::Store;

/// One image: its layers' total size, and the part no other image or
/// cache entry shares.
#[derive(Debug)]
pub struct ImageUsage {
    pub id: String,
    pub names: Vec<String>,
    pub size: u64,
    pub unique: u64,
}

/// One step-cache entry.
#[derive(Debug)]
pub struct CacheUsage {
    pub key: String,
    pub last_used: SystemTime,
    /// Its layers' size.
    pub size: u64,
    /// Whether images use all its layers (plain prune keeps it).
    pub shared: bool,
}

#[derive(Debug, Default)]
pub struct Usage {
    pub images: Vec<ImageUsage>,
    /// Distinct layers of all images.
    pub image_bytes: u64,
    /// What `prune --all` frees of the images (layers only unnamed ones use).
    pub unnamed_bytes: u64,
    pub cache: Vec<CacheUsage>,
    /// Distinct layers only cache entries hold.
    pub cache_bytes: u64,
    /// What a plain `prune` frees of the cache.
    pub cache_reclaimable: u64,
    /// `RUN --mount=type=cache` dirs: (id, bytes).
    pub cache_mounts: Vec<(String, u64)>,
    /// Layers and blobs nothing references (any prune frees them).
    pub unreferenced_bytes: u64,
}

impl Store {
    pub fn usage(&self, cache_layers: &dyn Fn(&[u8]) -> EntryRefs) -> Result<Usage> {
        let mut usage = Usage::default();
        let (images, lists) = self.all_images()?;
        let size_of =
            |hex: &str| Digest::parse(&format!("sha256:{hex}")).map_or(0, |d| self.layer_size(&d));
        let entries = self.cache_entries(cache_layers)?;
        // How many images and entries use each layer.
        let mut users: HashMap<String, (usize, usize)> = HashMap::new();
        let mut named_layers = HashSet::new();
        let mut blobs: HashSet<String> = lists.iter().map(|d| d.hex().to_string()).collect();
        for i in &images {
            blobs.insert(i.manifest_digest.hex().to_string());
            blobs.insert(i.config_digest.hex().to_string());
            for l in i.manifest.layers() {
                blobs.insert(our_digest(l.digest())?.hex().to_string());
            }
            for d in unique(i.diff_ids.iter().map(|d| d.hex().to_string())) {
                if !i.names.is_empty() {
                    named_layers.insert(d.clone());
                }
                users.entry(d).or_default().0 += 1;
            }
        }
        for e in &entries {
            for l in unique(e.layers.iter().cloned()) {
                users.entry(l).or_default().1 += 1;
            }
        }
        for i in &images {
            let layers = unique(i.diff_ids.iter().map(|d| d.hex().to_string()));
            usage.images.push(ImageUsage {
                id: i.id().to_string(),
                names: i.names.clone(),
                size: layers.iter().map(|l| size_of(l)).sum(),
                unique: layers
                    .iter()
                    .filter(|l| users.get(*l) == Some(&(1, 0)))
                    .map(|l| size_of(l))
                    .sum(),
            });
        }
        let image_layers: HashSet<String> = users
            .iter()
            .filter(|(_, u)| u.0 > 0)
            .map(|(l, _)| l.clone())
            .collect();
        // The raw layers behind the images' SOURCE_DATE_EPOCH copies are
        // still build cache (no image has them), but plain prune keeps
        // them and their steps' entries.
        let image_layers = gc_cache::held_by_images(&entries, &image_layers);
        for (l, u) in &users {
            let size = size_of(l);
            if u.0 > 0 {
                usage.image_bytes += size;
                if !named_layers.contains(l) && u.1 == 0 {
                    usage.unnamed_bytes += size;
                }
            } else {
                usage.cache_bytes += size;
            }
        }
        for e in &entries {
            usage.cache.push(CacheUsage {
                key: e
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                last_used: e.used,
                size: e.layers.iter().map(|l| size_of(l)).sum(),
                shared: e.layers.iter().all(|l| image_layers.contains(l)),
            });
        }
        let (kept, dropped) =
            gc_cache::select(entries, &image_layers, &PruneOptions::default(), &size_of);
        let still: HashSet<&String> = kept.iter().flat_map(|e| &e.layers).collect();
        usage.cache_reclaimable = unique(dropped.iter().flat_map(|e| e.layers.iter().cloned()))
            .iter()
            .filter(|l| !still.contains(l) && !image_layers.contains(*l))
            .map(|l| size_of(l))
            .sum();
        let mounts = self.root.join("cachemounts");
        for entry in std::fs::read_dir(&mounts).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            usage.cache_mounts.push((id, tree_size(&entry.path())));
        }
        usage.cache_mounts.sort();
        usage.unreferenced_bytes = self.unreferenced_bytes(&users, &blobs)?;
        Ok(usage)
    }

    /// Layer dirs and blobs that neither an image nor a cache entry names.
    fn unreferenced_bytes(
        &self,
        layers: &HashMap<String, (usize, usize)>,
        blobs: &HashSet<String>,
    ) -> Result<u64> {
        let mut bytes = 0;
        let dir = self.root.join("layers");
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read dir", &dir, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") && !layers.contains_key(&name) {
                bytes += tree_size(&entry.path());
            }
        }
        let dir = self.oci().join("blobs/sha256");
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read dir", &dir, e))?
            .flatten()
        {
            if !blobs.contains(&*entry.file_name().to_string_lossy()) {
                bytes += entry.metadata().map_or(0, |m| m.len());
            }
        }
        Ok(bytes)
    }
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

/// The bytes of the files under `path` (best effort: what cannot be read
/// counts as nothing; the walk keeps its own stack, never recursing).
fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        } else {
            total += meta.len();
        }
    }
    total
}
