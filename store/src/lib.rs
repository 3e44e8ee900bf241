//! kiln-store: kiln's image store on disk.
//!
//! ```text
//! root/
//!   oci/               ONE OCI image layout: oci-layout, index.json (the tags: images, and
//!                      multi-platform image indexes whose entries it does not name), blobs/sha256/
//!   layers/<hex>/      unpacked overlay-native layers, named by diffID, immutable once renamed in
//!   layers/<hex>.json  the compressed blobs known for that layer (made lazily, on export), its tar size
//!   cache/<key>        step cache entries (opaque to the store)
//!   tmp/<name>/        per-process scratch, each with a `lock` held while its process lives
//!   index.lock gc.lock layers.lock
//! ```
//!
//! Images come in and go out as files through [`archive`]: OCI layouts (a
//! directory or an oci-archive tar) and docker-archives, both treated as
//! untrusted on the way in.
//!
//! Invariants:
//! * Every commit is a rename out of `tmp/` (same filesystem), after the
//!   data is synced: a crash at any instant leaves only garbage in `tmp/`,
//!   which the next [`Store::open`] removes. A build's layers are synced
//!   and renamed in together, when it ends ([`Store::publish_layers`]).
//! * Everything in `tmp/` lives in a dir holding a `lock` file that its
//!   process keeps locked (each open [`Store`] has one for its temporary
//!   files, each [`Scratch`] another): a dir whose lock is free belongs to
//!   a dead process and is removed; a live one's is never touched.
//! * A blob is only renamed in after its bytes hashed to its name; a layer
//!   dir only after its content captured to its diffID.
//! * index.json changes under an exclusive lock on `index.lock`; every
//!   command that reads or writes blobs (build, pull, push, load, save...)
//!   holds `gc.lock` shared ([`Store::gc_lock`]), prune holds it exclusive,
//!   so prune never deletes what a running command reads or is about to
//!   reference.
//! * A layer's compressed blob is recorded in its sidecar only when the
//!   store made it, or unpacking it gave that layer's diffID.
//! * Digests from outside are parsed by [`Digest::parse`] before they become
//!   paths. Layer files may be owned by subordinate ids: kiln calls the
//!   store from inside its user namespace.

pub mod archive;
mod blobs;
mod error;
mod fsutil;
mod gc;
mod gc_cache;
mod images;
mod layers;
mod lists;
mod locks;
mod names;
mod remove;
mod scratch;
mod shared;
mod usage;

use std::path::{Path, PathBuf};

pub use blobs::BlobWriter;
pub use error::{Error, Result};
pub use gc::{human_size, PruneReport};
pub use gc_cache::{EntryRefs, PruneOptions};
pub use images::Image;
pub use kiln_layer::{CaptureOptions, Compression, Digest};
pub use layers::{LayerBlob, StagedLayer};
pub use lists::{is_index, platform_string, ImageList, Stored};
pub use locks::Lock;
pub use shared::{LayerHold, StepClaim};

/// The shared `gc.lock` guard a build holds for its whole run.
pub type BuildLock = Lock;
/// The shared `gc.lock` guard every command but prune holds.
pub type GcLock = Lock;
pub use names::normalize_name;
pub use scratch::Scratch;
pub use usage::{CacheUsage, ImageUsage, Usage};

/// An open store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// This store handle's own dir in `tmp/` for temporary files, locked
    /// while the handle lives so no other process's `open` removes a file
    /// being written.
    own_tmp: Scratch,
    /// Layers committed through this handle, not yet in `layers/`.
    pending: layers::PendingLayers,
    /// Builds running through this handle at once.
    builds: shared::Builds,
}

impl Store {
    /// Opens (creating if needed) the store at `root` and removes the
    /// scratch dirs of dead processes.
    pub fn open(root: &Path) -> Result<Store> {
        for dir in [
            root.to_path_buf(),
            root.join("oci/blobs/sha256"),
            root.join("layers"),
            root.join("cache"),
            root.join("tmp"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        }
        // Clean first: our own tmp dir is locked, so it would survive, but
        // there is no point looking at it.
        scratch::clean_stale(&root.join("tmp"))?;
        let store = Store {
            root: root.to_path_buf(),
            own_tmp: Scratch::create(&root.join("tmp"))?,
            pending: Default::default(),
            builds: Default::default(),
        };
        let layout = store.oci().join("oci-layout");
        if !layout.exists() {
            let tmp = store.tmp_file("oci-layout");
            fsutil::write_atomic(&tmp, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(store)
    }

    /// `$XDG_DATA_HOME/kiln` (else `~/.local/share/kiln`); `/var/lib/kiln`
    /// for real root. (Root inside kiln's user namespace is not real root:
    /// the caller says which it is.)
    pub fn default_root(real_root: bool) -> PathBuf {
        if real_root {
            return PathBuf::from("/var/lib/kiln");
        }
        if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("kiln");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        home.join(".local/share/kiln")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn oci(&self) -> PathBuf {
        self.root.join("oci")
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A unique name for a temporary file in this handle's dir in `tmp/`
    /// (renamed away, or removed with the dir).
    pub(crate) fn tmp_file(&self, tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        self.own_tmp
            .path()
            .join(format!("{tag}.{}", N.fetch_add(1, Ordering::Relaxed)))
    }

    /// A fresh scratch dir, removed when dropped (or by the next open if
    /// this process dies).
    pub fn scratch(&self) -> Result<Scratch> {
        Scratch::create(&self.tmp())
    }

    /// Held by a build for its whole run: prune waits for it.
    pub fn build_lock(&self) -> Result<BuildLock> {
        self.gc_lock()
    }

    /// Held (shared) by every command that reads or writes blobs or
    /// layers — pull, load, save, push, build, rmi, inspect — for its
    /// whole run; prune takes it exclusive, so it never deletes a blob a
    /// running command wrote but has not named yet, or is reading.
    /// Taking it again from a process that holds it is fine (both
    /// shared); calling `prune` while holding it deadlocks.
    pub fn gc_lock(&self) -> Result<GcLock> {
        locks::shared(&self.root.join("gc.lock"))
    }

    fn cache_path(&self, key: &str) -> Result<PathBuf> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidCacheKey(key.to_string()));
        }
        Ok(self.root.join("cache").join(key))
    }

    pub fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.cache_path(key)?;
        match std::fs::read(&path) {
            Ok(b) => {
                // An entry's mtime is its last use, for `prune --keep-storage`
                // and `--filter until=` (best effort: a read-only store still builds).
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Ok(Some(b))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Stores a cache entry by rename, without fsync: after a crash an
    /// entry may be missing or empty, which its reader treats as a miss —
    /// cheaper than two fsyncs on every build step.
    pub fn cache_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let path = self.cache_path(key)?;
        let tmp = self.tmp_file("cache");
        std::fs::write(&tmp, value).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }
}
