//! The step cache. A step's key chains its parent's key with everything
//! the step's result depends on: the instruction after expansion, for RUN
//! the environment, user, dir and network it runs with, for COPY/ADD a
//! digest of the selected source files (path, mode, owner, size, content,
//! symlink targets), for `--from` the source stage's key. The entry keeps
//! the parent key and the config changes the step made (see `state`): a
//! hit replays them on the stage's config, which is the parent key's
//! config (keys chain), so an entry's size is that of its own step and a
//! hit costs O(its changes), with no walk up the chain. Layers are named
//! by diffID in `Op::Layer`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::Result;
use kiln_layer::Digest;
use rustix::fs::{FileType, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use kiln_store::{EntryRefs, Store};

use super::copy::From;
use super::dockerignore::Ignore;
use super::fsops::{self, Meta, Root};
use super::state::Op;
use crate::image_config::ImageConfig;

/// The entry format written now. Entries of older kilns (`{"config": …}`,
/// the whole config) fail to parse as an [`Entry`] and read as a miss
/// (their keys, of no [`super::canon::SCHEME`], are never asked anyway).
const FORMAT: u32 = 3;

/// A stored cache entry: the changes one step made to its parent's config.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    format: u32,
    /// The key of the state the ops apply to (a check: keys chain).
    parent: String,
    /// The ChainID of that state's rootfs: the entry's layer was diffed
    /// against it.
    below: String,
    ops: Vec<Op>,
    /// The key's parts (names and digests), for `--explain-cache`.
    #[serde(default)]
    pub parts: Vec<(String, String)>,
}

impl Entry {
    /// The entry of a step made on `parent` (its key and rootfs ChainID).
    pub fn new(parent: (&str, &str), ops: Vec<Op>, parts: Vec<(String, String)>) -> Entry {
        Entry {
            format: FORMAT,
            parent: parent.0.to_string(),
            below: parent.1.to_string(),
            ops,
            parts,
        }
    }

    /// The key parts of an entry of this format.
    pub fn parts_of(bytes: &[u8]) -> Option<Vec<(String, String)>> {
        let entry = serde_json::from_slice::<Entry>(bytes).ok()?;
        (entry.format == FORMAT).then_some(entry.parts)
    }

    /// The ops to replay on the state `parent` (key, rootfs ChainID), if
    /// `bytes` is an entry of this format made on that state; anything
    /// else (an older format, a partial write, the same key over other
    /// layers) is a miss.
    pub fn decode(bytes: &[u8], parent: (&str, &str)) -> Option<Vec<Op>> {
        let entry = serde_json::from_slice::<Entry>(bytes).ok()?;
        let same = entry.parent == parent.0 && entry.below == parent.1;
        (entry.format == FORMAT && same).then_some(entry.ops)
    }

    /// The layers the entry's step added.
    fn layers(&self) -> impl Iterator<Item = Digest> + '_ {
        self.ops.iter().filter_map(|op| match op {
            Op::Layer(d) => Digest::parse(d).ok(),
            _ => None,
        })
    }
}

/// An entry as older kilns wrote it: kept for prune only, so a store
/// shared with an older kiln keeps the layers its entries name.
#[derive(Deserialize)]
struct OldEntry {
    config: ImageConfig,
}

/// Chains `parent` with `parts` into a new key (hex).
pub fn key(parent: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for p in parts {
        // Length-prefixed, so no two different part lists hash alike.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The layers a cache entry (a step's, a `--link` layer's or a
/// SOURCE_DATE_EPOCH copy's) needs kept (for `kiln prune`).
pub fn cache_layers(entry: &[u8]) -> EntryRefs {
    if let Ok(link) = serde_json::from_slice::<super::add::LinkEntry>(entry) {
        return EntryRefs {
            layers: Digest::parse(&link.layer).into_iter().collect(),
            source: link.from.and_then(|d| Digest::parse(&d).ok()),
        };
    }
    // A step entry names only the layer its own step added: the layers
    // below it are named by the entries of the steps below (or by the
    // base image, which the index keeps).
    let layers = if let Ok(e) = serde_json::from_slice::<Entry>(entry) {
        e.layers().collect()
    } else {
        serde_json::from_slice::<OldEntry>(entry)
            .map(|e| {
                e.config
                    .rootfs
                    .diff_ids
                    .iter()
                    .filter_map(|d| Digest::parse(d).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    EntryRefs {
        layers,
        source: None,
    }
}

/// Content digests of context files, remembered by (path, size, mtime,
/// inode) across builds, so an unchanged context is not read again. Kept
/// as one cache entry per context directory.
#[derive(Default)]
pub struct FileMemo {
    key: String,
    known: Mutex<HashMap<String, Stamp>>,
    changed: AtomicBool,
}

/// (size, mtime s, mtime ns, inode, sha256 hex).
type Stamp = (u64, i64, i64, u64, String);

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FileMemo {
    pub fn load(store: &Store, context: &Path) -> FileMemo {
        let dir = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
        let key = key("", &[b"context-memo", dir.as_os_str().as_encoded_bytes()]);
        let known = store
            .cache_get(&key)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileMemo {
            key,
            known: Mutex::new(known),
            changed: AtomicBool::new(false),
        }
    }

    pub fn save(&self, store: &Store) -> Result<()> {
        if self.changed.load(Ordering::Relaxed) {
            let bytes = serde_json::to_vec(&*guard(&self.known))?;
            store.cache_put(&self.key, &bytes)?;
        }
        Ok(())
    }

    /// The sha256 of the file at `rel`, from memory when its identity did
    /// not change.
    fn digest(
        &self,
        rel: &Path,
        m: &Meta,
        open: impl FnOnce() -> std::io::Result<OwnedFd>,
    ) -> Result<String> {
        let id = rel.to_string_lossy().into_owned();
        let stamp = (m.size, m.mtime.tv_sec, m.mtime.tv_nsec, m.ino);
        if let Some((s, t, n, i, d)) = guard(&self.known).get(&id) {
            if (*s, *t, *n, *i) == stamp {
                return Ok(d.clone());
            }
        }
        let file = open()?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::from(file), &mut hasher)?;
        let d = hex(&hasher.finalize());
        guard(&self.known).insert(id, (stamp.0, stamp.1, stamp.2, stamp.3, d.clone()));
        self.changed.store(true, Ordering::Relaxed);
        Ok(d)
    }
}

/// Whether the source files' owners can reach the step's result.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// COPY keeps them (a `--from` stage, image or named context).
    Kept,
    /// COPY writes 0:0 (or `--chown`, which the instruction holds): the
    /// context's owners are whoever checked it out, hashed as 0:0 so the
    /// same checkout under another uid (another CI runner) hits.
    Reset,
}

/// A digest over what COPY would read for `sources` from `from`, with the
/// same `--exclude` and `--parents` rules (and the same `.dockerignore`:
/// a context root is its filtered view).
pub fn sources_digest(
    from: &From<'_>,
    sources: &[String],
    memo: &FileMemo,
    owners: Owners,
) -> Result<String> {
    sources_files(from, sources, memo, owners, None)
}

/// [`sources_digest`], listing in `files` each path read and a digest of
/// what was hashed of it (for `--explain-cache`).
pub fn sources_files(
    from: &From<'_>,
    sources: &[String],
    memo: &FileMemo,
    owners: Owners,
    files: Option<&Mutex<Vec<(String, String)>>>,
) -> Result<String> {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.as_bytes());
        h.update([0]);
        for sel in super::copy::select(from, std::slice::from_ref(s))? {
            let walk = Hashing {
                root: from.root,
                exclude: from.exclude,
                base: &sel.rel,
                memo,
                owners,
                files,
            };
            // COPY follows a symlink named as a source, not those inside.
            walk.tree(&sel.rel, true, &mut h)?;
        }
    }
    Ok(hex(&h.finalize()))
}

/// A digest of the tree at `rel` under `root` (one path, no wildcards;
/// a symlink there is followed): what a `RUN --mount=type=bind` of the
/// context (its filtered view) shows the step.
pub fn tree_digest(root: &Root, rel: &Path, memo: &FileMemo) -> Result<String> {
    let mut h = Sha256::new();
    Hashing {
        root,
        exclude: None,
        base: rel,
        memo,
        owners: Owners::Kept,
        files: None,
    }
    .tree(rel, true, &mut h)?;
    Ok(hex(&h.finalize()))
}

struct Hashing<'a> {
    root: &'a Root,
    exclude: Option<&'a Ignore>,
    base: &'a Path,
    memo: &'a FileMemo,
    owners: Owners,
    files: Option<&'a Mutex<Vec<(String, String)>>>,
}

/// Where an entry of a hashed tree is opened from.
enum At<'a> {
    /// A source path, resolved inside the root (a symlink at the end
    /// followed when `follow`).
    Root { follow: bool },
    /// A name in an open directory of the tree: opened with O_NOFOLLOW,
    /// never through a symlink, so never out of the root.
    Dir(BorrowedFd<'a>, &'a OsStr),
}

impl Hashing<'_> {
    fn skipped(&self, dir: BorrowedFd<'_>, name: &OsStr, child: &Path) -> bool {
        if self.exclude.is_none() {
            return false;
        }
        let is_dir = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        super::copy::dropped(self.exclude, self.base, child, is_dir)
    }

    fn open(&self, at: &At<'_>, rel: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
        match at {
            At::Root { follow } => self.root.resolve(rel, flags, *follow),
            At::Dir(dir, name) => rustix::fs::openat(
                dir,
                *name,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(std::io::Error::from),
        }
    }

    fn tree(&self, rel: &Path, follow: bool, h: &mut Sha256) -> Result<()> {
        let fd = if follow {
            super::copy::open_source(self.root, rel, OFlags::PATH)?
        } else {
            self.root.resolve(rel, OFlags::PATH, false)?
        };
        self.entry(fd, &At::Root { follow }, rel, h)
    }

    /// Hashes the entry `fd` (an O_PATH fd) at `rel`; a directory's
    /// entries are opened relative to it, each by one openat, not by two
    /// walks from the root per file.
    fn entry(&self, fd: OwnedFd, at: &At<'_>, rel: &Path, h: &mut Sha256) -> Result<()> {
        fsops::check_depth(&self.root.name, rel)?;
        let m = fsops::meta(fd.as_fd())?;
        h.update(rel.as_os_str().as_encoded_bytes());
        let (uid, gid) = match self.owners {
            Owners::Kept => (m.uid, m.gid),
            Owners::Reset => (0, 0),
        };
        let line = format!("\0{:o}\0{uid}\0{gid}\0{}\0", m.mode, m.size);
        let content = match m.kind {
            FileType::RegularFile => self
                .memo
                .digest(rel, &m, || self.open(at, rel, OFlags::RDONLY))?
                .into_bytes(),
            FileType::Symlink => rustix::fs::readlinkat(&fd, "", Vec::new())?.into_bytes(),
            _ => Vec::new(),
        };
        h.update(line.as_bytes());
        h.update(&content);
        if let Some(files) = self.files {
            let mut one = Sha256::new();
            one.update(line.as_bytes());
            one.update(&content);
            let name = rel.to_string_lossy().into_owned();
            guard(files).push((name, hex(&one.finalize())));
        }
        if m.kind == FileType::Directory {
            drop(fd);
            // One fd per level stays open down the recursion (at most
            // MAX_WALK_DEPTH).
            let dir = self.open(at, rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
            for name in fsops::list(dir.as_fd())? {
                let name = fsops::os(&name);
                let child = rel.join(name);
                if self.skipped(dir.as_fd(), name, &child) {
                    continue;
                }
                let at = At::Dir(dir.as_fd(), name);
                let fd = self.open(&at, &child, OFlags::PATH)?;
                self.entry(fd, &at, &child, h)?;
            }
        }
        h.update([0xff]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_only_on_its_parent_and_an_old_entry_is_a_miss() {
        let ops = vec![
            Op::Env("A".into(), "1".into()),
            Op::Layer(format!("sha256:{}", "ab".repeat(32))),
        ];
        let bytes = serde_json::to_vec(&Entry::new(("p", "c"), ops.clone(), Vec::new())).unwrap();
        assert_eq!(Entry::decode(&bytes, ("p", "c")), Some(ops));
        assert_eq!(Entry::decode(&bytes, ("q", "c")), None, "another state");
        assert_eq!(Entry::decode(&bytes, ("p", "d")), None, "other layers");
        assert_eq!(Entry::decode(&bytes[..bytes.len() / 2], ("p", "c")), None);
        let old = br#"{"config":{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:abab"]}}}"#;
        assert_eq!(Entry::decode(old, ("p", "")), None, "an older kiln's entry");
        let layer = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(cache_layers(&bytes).layers, vec![layer]);
    }

    #[test]
    fn an_epoch_copy_entry_names_its_source_for_prune() {
        let (raw, copy) = (
            format!("sha256:{}", "ab".repeat(32)),
            format!("sha256:{}", "cd".repeat(32)),
        );
        let entry = super::super::add::LinkEntry {
            layer: copy.clone(),
            from: Some(raw.clone()),
        };
        let refs = cache_layers(&serde_json::to_vec(&entry).unwrap());
        assert_eq!(refs.layers, vec![Digest::parse(&copy).unwrap()]);
        assert_eq!(refs.source, Some(Digest::parse(&raw).unwrap()));
        let link = br#"{"layer":"sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"}"#;
        assert_eq!(cache_layers(link).source, None, "a --link layer's entry");
    }
}
