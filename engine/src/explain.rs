//! `--explain-cache`: on a miss, which part of the step's key differs from
//! the nearest entry made on the same parent. Each entry keeps its key's
//! parts (names and digests: no values); the store keeps, per parent key,
//! the keys of the entries made on it, and per COPY sources digest the
//! files read with their digests, so a miss can name the file.

use std::collections::BTreeMap;

use anyhow::Result;

use super::canon::Parts;
use super::progress::Vertex;
use super::{cache, Builder};

/// How many entries per parent are remembered for explanations.
const CHILDREN: usize = 16;

type Named = Vec<(String, String)>;

impl Builder<'_> {
    /// Records the entry `key` made on `parent`, and the files its sources
    /// part stands for.
    pub(super) fn remember(
        &self,
        parent: &str,
        key: &str,
        parts: &Named,
        files: Named,
    ) -> Result<()> {
        let index = cache::key("children", &[parent.as_bytes()]);
        let mut children: Vec<String> = self
            .store
            .cache_get(&index)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if !children.iter().any(|c| c == key) {
            children.push(key.to_string());
            let extra = children.len().saturating_sub(CHILDREN);
            children.drain(..extra);
            self.store
                .cache_put(&index, &serde_json::to_vec(&children)?)?;
        }
        if let Some(record) = files_record(parts).filter(|_| !files.is_empty()) {
            if self.store.cache_get(&record)?.is_none() {
                self.store
                    .cache_put(&record, &serde_json::to_vec(&files)?)?;
            }
        }
        Ok(())
    }

    /// Says on `vertex` why the step with these parts missed on `parent`.
    pub(super) fn explain(&self, parent: &str, parts: &Parts, files: &Named, vertex: &Vertex<'_>) {
        let index = cache::key("children", &[parent.as_bytes()]);
        let children: Vec<String> = self
            .store
            .cache_get(&index)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let nearest = children
            .iter()
            .filter_map(|k| {
                self.store
                    .cache_get(k)
                    .ok()
                    .flatten()
                    .or(self.remote_entry(k))
            })
            .filter_map(|b| cache::Entry::parts_of(&b))
            .map(|old| differing(&old, &parts.0))
            .min_by_key(Vec::len);
        let reasons = match nearest {
            None => vec![
                "no entry on the same parent: an earlier step changed, or this step never ran here"
                    .to_string(),
            ],
            // Same parts, yet a miss: the entry's layers are gone.
            Some(d) if d.is_empty() => {
                vec!["the cached layers are no longer in the store".to_string()]
            }
            Some(d) => d
                .iter()
                // A build arg is in the environment too: named once.
                .filter(|(name, _)| {
                    let arg = name.strip_prefix("env:").map(|v| format!("arg:{v}"));
                    arg.is_none_or(|arg| !d.iter().any(|(n, _)| *n == arg))
                })
                .map(|(name, old)| self.describe(name, old.as_deref(), parts, files))
                .collect(),
        };
        for reason in reasons {
            vertex.log(&format!("cache miss: {reason}"));
        }
    }

    fn describe(&self, name: &str, old: Option<&str>, parts: &Parts, files: &Named) -> String {
        let now = parts.0.iter().find(|(n, _)| n == name).map(|(_, d)| d);
        let change = match (old, now) {
            (None, _) => "is new",
            (_, None) => "is gone",
            _ => "changed",
        };
        if let Some(var) = name.strip_prefix("env:") {
            return format!("env {var} {change}");
        }
        if let Some(var) = name.strip_prefix("label:") {
            return format!("label {var} {change}");
        }
        if let Some(var) = name.strip_prefix("arg:") {
            return format!("build arg {var} {change}");
        }
        if name == "sources" {
            let old_files = old
                .and_then(|d| self.store.cache_get(&files_key(d)).ok().flatten())
                .and_then(|b| serde_json::from_slice::<Named>(&b).ok());
            if let Some(old_files) = old_files.filter(|_| !files.is_empty()) {
                let changed = differing(&old_files, files);
                let names: Vec<String> = changed
                    .iter()
                    .take(5)
                    .map(|(f, o)| match (o, files.iter().any(|(n, _)| n == f)) {
                        (None, _) => format!("{f} (new)"),
                        (_, false) => format!("{f} (gone)"),
                        _ => f.clone(),
                    })
                    .collect();
                let more = changed.len().saturating_sub(names.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                return format!("source file {}{more} changed", names.join(", "));
            }
            return "the sources changed".into();
        }
        match name {
            "instruction" => "the instruction changed".into(),
            other => format!("{other} {change}"),
        }
    }
}

/// The names whose digests differ between `old` and `now`, each with its
/// old digest (None: not in `old`).
fn differing(old: &Named, now: &Named) -> Vec<(String, Option<String>)> {
    let old_map: BTreeMap<&str, &str> = old.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    let now_map: BTreeMap<&str, &str> = now.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    let mut out: Vec<(String, Option<String>)> = now_map
        .iter()
        .filter(|(n, d)| old_map.get(*n) != Some(*d))
        .map(|(n, _)| (n.to_string(), old_map.get(n).map(|d| d.to_string())))
        .collect();
    out.extend(
        old_map
            .iter()
            .filter(|(n, _)| !now_map.contains_key(*n))
            .map(|(n, d)| (n.to_string(), Some(d.to_string()))),
    );
    out
}

fn files_record(parts: &Named) -> Option<String> {
    parts
        .iter()
        .find(|(n, _)| n == "sources")
        .map(|(_, d)| files_key(d))
}

pub(crate) fn files_key(sources_digest: &str) -> String {
    cache::key("source-files", &[sources_digest.as_bytes()])
}
