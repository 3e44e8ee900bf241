//! The cache config: the document a cache manifest's config blob holds.

use std::collections::BTreeMap;

use kiln_registry::BlobRef;
use serde::{Deserialize, Serialize};

use crate::canon::SCHEME;

/// The config blob's media type: kiln's own, so no other tool (nor kiln)
/// takes a BuildKit cache or an image for one.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";

const VERSION: u32 = 1;

/// Every map is sorted, so the same entries give the same bytes (and an
/// export that changes nothing writes nothing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub version: u32,
    /// The step key scheme: entries of another are never looked up.
    pub scheme: String,
    /// Step key → the cache entry (as the local store keeps it).
    pub entries: BTreeMap<String, serde_json::Value>,
    /// diffID → the blob holding that layer.
    pub layers: BTreeMap<String, BlobRef>,
    /// COPY/ADD sources digest → the files read and their digests, so
    /// `--explain-cache` can name the file that changed.
    #[serde(default)]
    pub files: BTreeMap<String, Vec<(String, String)>>,
    /// What `COPY --from` read of a stage (record key → content digest):
    /// with it, a hit on that COPY needs none of the stage's layers.
    #[serde(default)]
    pub contents: BTreeMap<String, String>,
    /// Bumped by every write that changes the cache (see `ageout`).
    #[serde(default)]
    pub generation: u64,
    /// Entry key → the generation it was last written or used in.
    #[serde(default)]
    pub stamps: BTreeMap<String, u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            version: VERSION,
            scheme: SCHEME.to_string(),
            entries: BTreeMap::new(),
            layers: BTreeMap::new(),
            files: BTreeMap::new(),
            contents: BTreeMap::new(),
            generation: 0,
            stamps: BTreeMap::new(),
        }
    }
}

impl CacheConfig {
    /// Reads a config blob; one of another version or key scheme is an
    /// error (the caller warns and goes on without it).
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, String> {
        let c: CacheConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if c.version != VERSION || c.scheme != SCHEME {
            return Err(format!(
                "written with cache format {} and keys {}, this kiln uses {VERSION} and {SCHEME}",
                c.version, c.scheme
            ));
        }
        Ok(c)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `other`'s entries over these (the newer write wins a key), keeping
    /// only layers some entry names.
    pub fn merge(&mut self, other: CacheConfig) {
        self.entries.extend(other.entries);
        self.layers.extend(other.layers);
        self.files.extend(other.files);
        self.contents.extend(other.contents);
        self.prune();
    }

    /// The layer blobs, each once, in diffID order.
    pub fn blobs(&self) -> Vec<BlobRef> {
        let mut seen = std::collections::HashSet::new();
        self.layers
            .values()
            .filter(|b| seen.insert(b.digest.clone()))
            .cloned()
            .collect()
    }
}

/// The diffIDs of the layers an entry adds.
pub fn entry_layers(entry: &serde_json::Value) -> Vec<String> {
    let bytes = serde_json::to_vec(entry).unwrap_or_default();
    crate::cache::cache_layers(&bytes)
        .layers
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// The sources digest among an entry's key parts.
pub fn sources_part(entry: &serde_json::Value) -> Option<String> {
    entry["parts"]
        .as_array()?
        .iter()
        .find(|p| p[0] == "sources")
        .and_then(|p| p[1].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> BlobRef {
        BlobRef {
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size: 1,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    fn entry(layer: &str) -> serde_json::Value {
        serde_json::json!({"format": 3, "parent": "p", "below": "", "parts": [],
            "ops": [{"Layer": layer}]})
    }

    #[test]
    fn a_merge_keeps_both_sides_and_only_named_layers_and_is_stable() {
        let (l1, l2) = (blob(1).digest, blob(2).digest);
        let mut old = CacheConfig::default();
        old.entries.insert("k1".into(), entry(&l1));
        old.layers.insert(l1.clone(), blob(1));
        old.layers.insert(l2.clone(), blob(2));
        let mut ours = CacheConfig::default();
        ours.entries.insert("k2".into(), entry(&l2));
        ours.layers.insert(l2.clone(), blob(2));
        let mut merged = old.clone();
        merged.merge(ours.clone());
        assert_eq!(merged.entries.len(), 2);
        assert_eq!(merged.blobs(), [blob(1), blob(2)]);
        // The same merge again gives the same bytes: nothing to write.
        let mut again = CacheConfig::parse(&merged.to_bytes()).unwrap();
        again.merge(ours);
        assert_eq!(again.to_bytes(), merged.to_bytes());
        // A layer no entry names is dropped.
        old.merge(CacheConfig::default());
        assert_eq!(old.blobs(), [blob(1)]);
        let other = br#"{"version":1,"scheme":"kiln-cache-v0","entries":{},"layers":{}}"#;
        assert!(CacheConfig::parse(other).is_err());
    }
}
