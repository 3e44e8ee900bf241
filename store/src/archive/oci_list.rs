//! A multi-platform image as an OCI layout (BuildKit's form): index.json
//! names the image index blob, whose entries are the per-platform
//! manifests with their platforms.

use std::io::Write;
use std::path::Path;

use kiln_layer::Digest;
use oci_spec::image::{Descriptor, MediaType};

use super::write;
use crate::error::{Error, Result};
use crate::images::{oci_digest, set_names};
use crate::{ImageList, Store};

/// Every blob the list needs: the index, then each entry's.
fn list_blobs(list: &ImageList) -> Result<Vec<Digest>> {
    let mut out = vec![list.digest.clone()];
    for (_, image) in &list.entries {
        for d in write::image_blobs(image)? {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// The index's descriptor (`set_names` names it).
fn list_descriptor(store: &Store, list: &ImageList) -> Result<Descriptor> {
    let size = store.read_blob(&list.digest)?.len() as u64;
    Ok(Descriptor::new(
        MediaType::ImageIndex,
        size,
        oci_digest(&list.digest)?,
    ))
}

/// The oci-archive of `list` under `names` (each layer a blob: see
/// [`Store::exportable_list`]).
pub fn export_oci_list_archive(
    store: &Store,
    list: &ImageList,
    names: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let list = &store.exportable_list(list, kiln_layer::Compression::Gzip)?;
    let names = write::normalized(names)?;
    let mut manifests = Vec::new();
    set_names(&mut manifests, &list_descriptor(store, list)?, &names);
    let mut index = crate::images::empty_index()?;
    index.set_manifests(manifests);
    let index = serde_json::to_vec(&index).map_err(|e| Error::json("index", e))?;
    let mut b = tar::Builder::new(out);
    write::bytes(&mut b, "oci-layout", write::OCI_LAYOUT)?;
    write::bytes(&mut b, "index.json", &index)?;
    write::dir(&mut b, "blobs/")?;
    write::dir(&mut b, "blobs/sha256/")?;
    for d in list_blobs(list)? {
        write::blob(&mut b, store, &d)?;
    }
    b.into_inner()
        .map_err(|e| Error::Archive(format!("writing the archive: {e}")))?;
    Ok(())
}

/// Writes (or adds to) an OCI layout directory, as `export_oci_dir` does
/// for one image.
pub fn export_oci_list_dir(
    store: &Store,
    list: &ImageList,
    names: &[String],
    dir: &Path,
) -> Result<()> {
    let list = &store.exportable_list(list, kiln_layer::Compression::Gzip)?;
    let names = write::normalized(names)?;
    let desc = list_descriptor(store, list)?;
    super::oci::write_layout(store, dir, list_blobs(list)?, &desc, &names)
}
