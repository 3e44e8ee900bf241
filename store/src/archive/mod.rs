//! Images in and out of the store as files: OCI layouts (a directory, or
//! tarred as an oci-archive) and docker-archives (`docker save` format).
//!
//! Archives are untrusted. They are never extracted by path: the reader
//! streams each member, keeps the few small metadata files in memory and
//! puts every blob into the store by its verified digest; layers are then
//! unpacked from the store by `kiln_layer::unpack`.

mod docker;
mod oci;
mod oci_list;
mod read;
mod stream;
mod write;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_layer::Digest;
use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use crate::error::{Error, Result};
use crate::images::{oci_digest, our_digest};
use crate::{Image, Store, Stored};

pub use docker::{export_docker_archive, import_docker_archive};
pub(crate) use oci::host_arch as oci_host_arch;
pub use oci::{
    export_oci_archive, export_oci_dir, import_oci_archive, import_oci_archive_for, import_oci_dir,
    import_oci_dir_for,
};
pub use oci_list::{export_oci_list_archive, export_oci_list_dir};
pub use stream::{export_streamed, Kind, Streaming};

/// The most a manifest, an index or an image config may weigh, wherever
/// it comes from (containers/image's limit): these are read whole into
/// memory, so a hostile one must not be able to make that unbounded.
pub const MANIFEST_MAX: u64 = 4 << 20;

/// `what` (a manifest, an index, a config) is larger than [`MANIFEST_MAX`].
pub fn too_large(what: &str, size: u64) -> String {
    format!(
        "{what} is {size} bytes, more than the {} MiB kiln accepts",
        MANIFEST_MAX >> 20
    )
}

/// A stored blob that is a manifest, index or config, refused unread if it
/// is larger than [`MANIFEST_MAX`].
pub(crate) fn read_small_blob(store: &Store, d: &Digest, what: &str) -> Result<Vec<u8>> {
    let p = store.blob_path(d);
    let size = std::fs::metadata(&p)
        .map_err(|e| Error::io("stat", &p, e))?
        .len();
    if size > MANIFEST_MAX {
        return Err(Error::Archive(too_large(&format!("{what} {d}"), size)));
    }
    store.read_blob(d)
}

/// A small file (a layout's index.json), read no further than
/// [`MANIFEST_MAX`] whatever its size claims to be.
pub(crate) fn read_small_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut buf = Vec::new();
    f.take(MANIFEST_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path, e))?;
    if buf.len() as u64 > MANIFEST_MAX {
        let size = std::fs::metadata(path).map_or(buf.len() as u64, |m| m.len());
        return Err(Error::Archive(too_large(&path.display().to_string(), size)));
    }
    Ok(buf)
}

/// The images of an oci-archive or a docker-archive, told apart by
/// content (of a multi-platform image, its entries).
pub fn import_archive(store: &Store, input: &Path) -> Result<Vec<Image>> {
    let mut images = Vec::new();
    for stored in load_archive(store, input)? {
        match stored {
            Stored::Image(i) => images.push(*i),
            Stored::List(l) => images.extend(l.entries.into_iter().map(|(_, i)| i)),
        }
    }
    Ok(images)
}

/// `kiln load`: every image of an oci-archive or a docker-archive, but an oci-archive's index of several platforms is kept whole,
/// as a multi-platform image (see `lists`).
pub fn load_archive(store: &Store, input: &Path) -> Result<Vec<Stored>> {
    let contents = read::scan(store, input)?;
    if contents.files.contains_key("manifest.json") {
        let images = docker::import_all(store, &contents)?;
        Ok(images
            .into_iter()
            .map(|i| Stored::Image(Box::new(i)))
            .collect())
    } else if contents.files.contains_key("index.json") {
        oci::import_all(store, &contents)
    } else {
        Err(Error::Archive(format!(
            "{}: neither a docker-archive (manifest.json) nor an oci-archive (index.json)",
            input.display()
        )))
    }
}

/// Records a pulled image: `manifest` (OCI or Docker v2 schema 2) whose
/// config and layer blobs are in the store, or whose layers are (see
/// [`Store::layer_has_blob`]). Layers not yet unpacked are unpacked and
/// checked against the config's diffIDs; then `names` point at it.
pub fn adopt_manifest(store: &Store, manifest: &ImageManifest, names: &[String]) -> Result<Image> {
    adopt(store, manifest, names)
}

/// Makes sure the store has the image `manifest` describes (its blobs are
/// already in the store): unpacks its layers, checks them against the
/// config's diffIDs, and records the image under `names`.
pub(crate) fn adopt(store: &Store, manifest: &ImageManifest, names: &[String]) -> Result<Image> {
    let config_digest = our_digest(manifest.config().digest())?;
    let config = read_small_blob(store, &config_digest, "image config")?;
    let (_, diff_ids) = crate::images::parse_config(&config, &config_digest)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::Archive(format!(
            "the config lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers().len()
        )));
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers().iter().zip(&diff_ids) {
        let blob = our_digest(desc.digest())?;
        let media = normalize_layer_media(desc.media_type().as_ref(), &blob, diff_id);
        // Unpacked only if the layer is new; the diffID check is what ties
        // the layer to the config.
        let mut f = store.open_blob(&blob)?;
        store.import_layer(&mut f, &blob, &media, Some(diff_id))?;
        layers.push(Descriptor::new(
            MediaType::from(media.as_str()),
            desc.size(),
            oci_digest(&blob)?,
        ));
    }
    // Recorded with OCI media types, so the store holds one format.
    store.record_image(&config_digest, config.len() as u64, layers, names)
}

/// Docker's layer media types as their OCI equivalents; an uncompressed
/// layer (blob digest = diffID) is a plain tar.
fn normalize_layer_media(media: &str, blob: &Digest, diff_id: &Digest) -> String {
    if blob == diff_id {
        return kiln_layer::MEDIA_TYPE_TAR.to_string();
    }
    match media {
        m if m.ends_with("zstd") => kiln_layer::Compression::Zstd.media_type().to_string(),
        _ => kiln_layer::Compression::Gzip.media_type().to_string(),
    }
}

/// The metadata files and blobs an archive held.
pub(crate) struct Contents {
    /// Small files by their path in the archive.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Other regular files by path → their digest in the store.
    pub blobs: BTreeMap<String, Digest>,
}

impl Contents {
    pub fn file(&self, name: &str) -> Result<&[u8]> {
        self.files
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Archive(format!("the archive has no {name}")))
    }

    /// The blob stored for `path` in the archive.
    pub fn blob(&self, path: &str) -> Result<&Digest> {
        let clean = path.trim_start_matches("./");
        self.blobs
            .get(clean)
            .ok_or_else(|| Error::Archive(format!("the archive has no {clean}")))
    }
}
