//! Age-out of a cache's entries (`keep=`, `max-size=`, and the config's
//! own size cap). Age is a generation counter the config carries: it is
//! bumped only by a write, which stamps every entry the build used with
//! the new generation; the entries with the oldest stamps go first. A
//! build that changes nothing writes nothing, so it leaves no trace in
//! the ages either (an export never writes only to refresh stamps).

use std::collections::{HashMap, HashSet};

use super::format::{entry_layers, sources_part, CacheConfig};

/// What an export may keep.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// `keep=N`: at most N entries.
    pub keep: Option<usize>,
    /// `max-size=`: the layer blobs the entries name, in bytes.
    pub max_size: Option<u64>,
    /// The config blob's bytes: more, and no reader takes it.
    pub config_max: u64,
}

/// `12345`, `500k`, `200MB`, `1.5GiB`: binary units.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok().filter(|n: &f64| n.is_finite())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    Some((n * (1u64 << shift) as f64) as u64)
}

fn json_len<T: serde::Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

impl CacheConfig {
    /// A new generation: the entries `used` are stamped with it.
    pub fn stamp(&mut self, used: impl IntoIterator<Item = String>) {
        self.generation += 1;
        for key in used {
            if self.entries.contains_key(&key) {
                self.stamps.insert(key, self.generation);
            }
        }
    }

    /// Drops the oldest entries until `limits` hold; how many it dropped.
    pub fn age_out(&mut self, limits: &Limits) -> usize {
        let before = self.entries.len();
        let oldest = self.oldest_first();
        let mut next = oldest.iter();
        if let Some(keep) = limits.keep {
            while self.entries.len() > keep {
                let Some(key) = next.next() else { break };
                self.entries.remove(key);
            }
        }
        if let Some(max) = limits.max_size {
            let mut sizes = self.layer_sizes();
            let mut total: u64 = sizes.values().map(|(size, _)| size).sum();
            while total > max {
                let Some(key) = next.next() else { break };
                let Some(entry) = self.entries.remove(key) else {
                    continue;
                };
                let blobs: HashSet<String> = entry_layers(&entry)
                    .iter()
                    .filter_map(|d| self.layers.get(d))
                    .map(|b| b.digest.clone())
                    .collect();
                for blob in blobs {
                    if let Some((size, users)) = sizes.get_mut(&blob) {
                        *users -= 1;
                        if *users == 0 {
                            total -= *size;
                            *size = 0;
                        }
                    }
                }
            }
        }
        self.prune();
        // The config's bytes: drop about as many of the oldest entries as
        // the excess, then look again (each round drops at least one).
        loop {
            let len = self.to_bytes().len() as u64;
            if len <= limits.config_max || self.entries.is_empty() {
                break;
            }
            let mut excess = len - limits.config_max;
            for key in next.by_ref() {
                let Some(entry) = self.entries.remove(key) else {
                    continue;
                };
                excess = excess.saturating_sub(self.bytes_of(key, &entry));
                if excess == 0 {
                    break;
                }
            }
            self.prune();
        }
        before - self.entries.len()
    }

    /// About what an entry adds to the config's bytes, at most: its key
    /// (twice, with its stamp), itself, its layers and its file list.
    /// Shared layers and lists are counted, so a round may drop too few
    /// entries (and another round follows), never too many.
    fn bytes_of(&self, key: &str, entry: &serde_json::Value) -> u64 {
        let layers: usize = entry_layers(entry)
            .iter()
            .filter_map(|d| self.layers.get(d).map(|b| d.len() + json_len(b) + 8))
            .sum();
        let files = sources_part(entry)
            .and_then(|s| self.files.get(&s))
            .map_or(0, json_len);
        (2 * key.len() + 48 + json_len(entry) + layers + files) as u64
    }

    /// Entry keys, the least recently written or used first (ties in
    /// key order, so the same config ages out the same way).
    fn oldest_first(&self) -> Vec<String> {
        let mut keys: Vec<(u64, &String)> = self
            .entries
            .keys()
            .map(|k| (self.stamps.get(k).copied().unwrap_or(0), k))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k.clone()).collect()
    }

    /// Blob digest → (its size, how many entries name it).
    fn layer_sizes(&self) -> HashMap<String, (u64, usize)> {
        let mut sizes: HashMap<String, (u64, usize)> = HashMap::new();
        for entry in self.entries.values() {
            let blobs: HashSet<_> = entry_layers(entry)
                .iter()
                .filter_map(|d| self.layers.get(d))
                .map(|b| (b.digest.clone(), b.size))
                .collect();
            for (digest, size) in blobs {
                sizes.entry(digest).or_insert((size, 0)).1 += 1;
            }
        }
        sizes
    }

    /// Drops the layers, file lists and stamps no entry names any more.
    pub fn prune(&mut self) {
        let named: HashSet<String> = self.entries.values().flat_map(entry_layers).collect();
        self.layers.retain(|d, _| named.contains(d));
        let sources: HashSet<String> = self.entries.values().filter_map(sources_part).collect();
        self.files.retain(|s, _| sources.contains(s));
        let entries = &self.entries;
        self.stamps.retain(|k, _| entries.contains_key(k));
    }

    /// The same entries, layers and records (generation and stamps
    /// aside): an export that would write this writes nothing.
    pub fn same_content(&self, other: &CacheConfig) -> bool {
        self.entries == other.entries
            && self.layers == other.layers
            && self.files == other.files
            && self.contents == other.contents
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_registry::BlobRef;

    fn blob(n: u8, size: u64) -> BlobRef {
        BlobRef {
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    /// A build's export: entries k<n> for each n, layer n of `size` bytes.
    fn build(ns: &[u8], size: u64) -> CacheConfig {
        let mut c = CacheConfig::default();
        for &n in ns {
            let b = blob(n, size);
            let entry = serde_json::json!({"format": 3, "parent": "p", "below": "",
                "parts": [], "ops": [{"Layer": b.digest}]});
            c.entries.insert(format!("k{n}"), entry);
            c.layers.insert(b.digest.clone(), b);
        }
        c
    }

    /// `old` with a build's export written over it, as `export_one` does.
    fn export(old: &CacheConfig, ours: CacheConfig, limits: &Limits) -> (CacheConfig, bool) {
        let mut merged = old.clone();
        let used: Vec<String> = ours.entries.keys().cloned().collect();
        merged.merge(ours);
        merged.stamp(used);
        merged.age_out(limits);
        let written = !merged.same_content(old);
        (if written { merged } else { old.clone() }, written)
    }

    fn keys(c: &CacheConfig) -> Vec<&str> {
        c.entries.keys().map(String::as_str).collect()
    }

    const NO_CAP: Limits = Limits {
        keep: None,
        max_size: None,
        config_max: 16 << 20,
    };

    #[test]
    fn the_least_recently_written_entries_go_first() {
        let keep = Limits {
            keep: Some(3),
            ..NO_CAP
        };
        let (c, _) = export(&CacheConfig::default(), build(&[1, 2], 10), &keep);
        let (c, _) = export(&c, build(&[3], 10), &keep);
        // k1 is used again along with a new entry: k2 is now the oldest.
        let (c, written) = export(&c, build(&[1, 4], 10), &keep);
        assert!(written);
        assert_eq!(keys(&c), ["k1", "k3", "k4"]);
        assert_eq!(c.blobs().len(), 3, "the dropped entry's layer went too");
        // The same build again changes nothing: nothing is written, and
        // the generation stays.
        let (again, written) = export(&c, build(&[1, 4], 10), &keep);
        assert!(!written);
        assert_eq!(again.to_bytes(), c.to_bytes());
        // max-size counts each blob once, and drops the oldest entries.
        let small = Limits {
            max_size: Some(25),
            ..NO_CAP
        };
        let (c, _) = export(&c, build(&[5], 10), &small);
        assert_eq!(keys(&c), ["k4", "k5"]);
    }

    #[test]
    fn the_config_stays_under_its_cap() {
        let all: Vec<u8> = (0..200).collect();
        let (big, _) = export(&CacheConfig::default(), build(&all, 1), &NO_CAP);
        let full = big.to_bytes().len() as u64;
        let cap = Limits {
            config_max: full / 2,
            ..NO_CAP
        };
        let (c, written) = export(&big, build(&[250], 1), &cap);
        assert!(written);
        assert!(c.to_bytes().len() as u64 <= full / 2);
        // The newest entry stays; the oldest went, not more than needed.
        assert!(c.entries.contains_key("k250"), "{:?}", keys(&c));
        assert!(!c.entries.contains_key("k0"));
        assert!(c.entries.len() > 80, "{} entries left", c.entries.len());
    }

    #[test]
    fn sizes_read_as_buildkit_writes_them() {
        assert_eq!(parse_size("500"), Some(500));
        assert_eq!(parse_size("2k"), Some(2048));
        assert_eq!(parse_size("1.5GB"), Some(3 << 29));
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("1x"), None);
    }
}
