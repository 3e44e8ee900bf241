//! docker- and oci-archives written in one pass, each layer blob as it is
//! compressed. A member's name is its blob's digest and a tar header
//! states its size, both known only once the blob is made; the manifest
//! and index.json that name the blobs go last (neither format cares about
//! member order). A blob the store already has is copied from it; a
//! missing one is compressed into the store (kept for later exports and
//! pushes) when the image is kept and the store's disk has room for it,
//! else into an unlinked temporary file beside the output, appended, and
//! gone with its descriptor: the store never holds it.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_layer::{Compression, Digest};
use oci_spec::image::{Descriptor, MediaType};

use super::write;
use crate::error::{Error, Result};
use crate::images::{oci_digest, our_digest};
use crate::{Image, Store};

/// The archive format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `docker save`'s (an OCI layout plus `manifest.json`).
    Docker,
    /// An OCI layout, tarred.
    Oci,
}

/// Where the layer blobs an export makes go.
#[derive(Clone, Debug)]
pub struct Streaming {
    pub compression: Compression,
    /// Whether a tag keeps the image: its blobs are then worth keeping in
    /// the store (when its disk has room), for the next export or push.
    pub keep: bool,
    /// Where a blob made for this export only is written before it goes
    /// into the archive: the output's directory (stdout: a temporary
    /// dir). The file is unlinked as soon as it is created.
    pub spill_dir: PathBuf,
}

impl Streaming {
    /// Every missing blob compressed in gzip and kept in the store (that
    /// has room), as `kiln save` does.
    pub fn staged(store: &Store) -> Streaming {
        Streaming {
            compression: Compression::Gzip,
            keep: true,
            spill_dir: store.tmp(),
        }
    }
}

/// A layer blob for the archive.
enum Blob {
    Stored(Digest),
    /// Made for this export: the unlinked file and the blob's digest.
    Spilled(File, Digest),
}

/// Writes `image`, named `names`, as a `kind` archive to `out`; layer
/// blobs the store lacks are made as `how` says.
pub fn export_streamed(
    store: &Store,
    image: &Image,
    names: &[String],
    out: &mut dyn Write,
    kind: Kind,
    how: &Streaming,
) -> Result<()> {
    let names = write::normalized(names)?;
    let mut b = tar::Builder::new(out);
    write::bytes(&mut b, "oci-layout", write::OCI_LAYOUT)?;
    write::dir(&mut b, "blobs/")?;
    write::dir(&mut b, "blobs/sha256/")?;
    write::blob(&mut b, store, &image.config_digest)?;
    let mut layers = Vec::new();
    let mut digests = Vec::new();
    let mut written = HashSet::new();
    // The next layer's blob is made while this one is copied into the
    // archive (and its store copy synced): on 2 cores the copy of a
    // 256 MiB incompressible blob took 0.3 s with one core idle.
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for l in image.manifest.layers() {
                let made = layer(store, l, how);
                let failed = made.is_err();
                if tx.send(made).is_err() || failed {
                    break;
                }
            }
        });
        for made in rx {
            let (desc, blob) = made?;
            let d = our_digest(desc.digest())?;
            if written.insert(d.clone()) {
                match blob {
                    Blob::Stored(d) => write::blob(&mut b, store, &d)?,
                    Blob::Spilled(mut f, d) => write::file_blob(&mut b, &d, desc.size(), &mut f)?,
                }
            }
            digests.push(d);
            layers.push(desc);
        }
        Ok(())
    })?;
    let manifest = if &layers == image.manifest.layers() {
        store.read_blob(&image.manifest_digest)?
    } else {
        let mut m = image.manifest.clone();
        m.set_layers(layers);
        serde_json::to_vec(&m).map_err(|e| Error::json("manifest", e))?
    };
    let manifest_digest = Digest::of(&manifest);
    let member = format!("blobs/sha256/{}", manifest_digest.hex());
    write::bytes(&mut b, &member, &manifest)?;
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        manifest.len() as u64,
        oci_digest(&manifest_digest)?,
    );
    write::bytes(&mut b, "index.json", &write::index_for(&desc, &names)?)?;
    if kind == Kind::Docker {
        let (manifest_json, repositories) =
            super::docker::docker_files(&image.config_digest, &digests, &names)?;
        write::bytes(&mut b, "manifest.json", &manifest_json)?;
        if let Some(r) = repositories {
            write::bytes(&mut b, "repositories", &r)?;
        }
    }
    b.into_inner()
        .map_err(|e| Error::Archive(format!("writing the archive: {e}")))?;
    Ok(())
}

/// The descriptor and blob of manifest layer `l` in the archive.
fn layer(store: &Store, l: &Descriptor, how: &Streaming) -> Result<(Descriptor, Blob)> {
    let d = our_digest(l.digest())?;
    // A plain-tar descriptor whose tar is no blob (see
    // `Store::put_built_image`) is compressed now; anything else is a
    // blob of the store as it stands.
    if l.media_type() != &MediaType::from(kiln_layer::MEDIA_TYPE_TAR) || store.has_blob(&d) {
        return Ok((l.clone(), Blob::Stored(d)));
    }
    if let Some(known) = store.known_layer_blob(&d, how.compression) {
        let blob = Digest::parse(&known.digest)?;
        return Ok((known.descriptor()?, Blob::Stored(blob)));
    }
    if how.keep && has_room(store.oci().as_path(), store.layer_size(&d)) {
        let desc = store.layer_blob(&d, how.compression)?;
        let blob = our_digest(desc.digest())?;
        return Ok((desc, Blob::Stored(blob)));
    }
    let (file, path) = spill_file(&how.spill_dir)?;
    let (blob, file) = store.compress_layer_into(&d, how.compression, file, &path)?;
    let digest = Digest::parse(&blob.digest)?;
    Ok((blob.descriptor()?, Blob::Spilled(file, digest)))
}

/// Whether the filesystem of `dir` has more than `size` bytes free (yes
/// when that cannot be told).
fn has_room(dir: &Path, size: u64) -> bool {
    rustix::fs::statvfs(dir).map_or(true, |s| {
        s.f_bavail.saturating_mul(s.f_frsize) > size.saturating_add(64 << 20)
    })
}

/// A new file in `dir`, open for reading and writing and already
/// unlinked: whatever happens, nothing is left behind.
fn spill_file(dir: &Path) -> Result<(File, PathBuf)> {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".kiln-export-{}-{n}.tmp", std::process::id()));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob larger than the disk's free space goes to the spill dir,
    /// even for a kept image; a small one fits.
    #[test]
    fn room_is_the_free_space_of_the_store_disk() {
        let dir = std::env::temp_dir();
        let st = rustix::fs::statvfs(&dir).unwrap();
        let free = st.f_bavail * st.f_frsize;
        assert!(has_room(&dir, 1 << 20) || free < (65 << 20));
        assert!(!has_room(&dir, free));
        assert!(!has_room(&dir, u64::MAX));
    }

    /// The spilled file is gone from its dir as soon as it exists.
    #[test]
    fn spill_files_leave_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("kiln-spill-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut f, path) = spill_file(&dir).unwrap();
        f.write_all(b"blob").unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }
}
