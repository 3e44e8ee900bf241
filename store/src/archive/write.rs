//! Writing archive members deterministically (mode 0644, owner 0:0, mtime
//! 0), and the parts of an OCI layout for one image.

use std::io::Write;

use kiln_layer::Digest;
use oci_spec::image::{Descriptor, MediaType};

use crate::error::{Error, Result};
use crate::images::oci_digest;
use crate::{Image, Store};

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h
}

pub(crate) fn dir<W: Write>(b: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(0, true);
    b.append_data(&mut h, name, std::io::empty())
        .map_err(out_err)
}

pub(crate) fn bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = header(data.len() as u64, false);
    b.append_data(&mut h, name, data).map_err(out_err)
}

pub(crate) fn blob<W: Write>(b: &mut tar::Builder<W>, store: &Store, d: &Digest) -> Result<()> {
    let f = store.open_blob(d)?;
    let size = f
        .metadata()
        .map_err(|e| Error::io("stat", store.blob_path(d), e))?
        .len();
    let mut h = header(size, false);
    b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), f)
        .map_err(out_err)
}

/// `file` (read from its start, `size` bytes) as the member of blob `d`.
pub(crate) fn file_blob<W: Write>(
    b: &mut tar::Builder<W>,
    d: &Digest,
    size: u64,
    file: &mut std::fs::File,
) -> Result<()> {
    use std::io::{Read, Seek};
    file.rewind().map_err(out_err)?;
    let mut h = header(size, false);
    b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), file.take(size))
        .map_err(out_err)
}

/// The names as the archive carries them: normalised (`app` →
/// `localhost/app:latest`), which is what podman names a loaded image.
pub(crate) fn normalized(names: &[String]) -> Result<Vec<String>> {
    names.iter().map(|n| crate::normalize_name(n)).collect()
}

fn out_err(e: std::io::Error) -> Error {
    Error::Archive(format!("writing the archive: {e}"))
}

/// Every blob an image needs, manifest first.
pub(crate) fn image_blobs(image: &Image) -> Result<Vec<Digest>> {
    let mut out = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    for l in image.manifest.layers() {
        out.push(crate::images::our_digest(l.digest())?);
    }
    Ok(out)
}

/// The manifest's descriptor, named `name` (None: no annotation).
pub(crate) fn manifest_descriptor(
    store: &Store,
    image: &Image,
    name: Option<&str>,
) -> Result<Descriptor> {
    let size = store.read_blob(&image.manifest_digest)?.len() as u64;
    let mut d = Descriptor::new(
        MediaType::ImageManifest,
        size,
        oci_digest(&image.manifest_digest)?,
    );
    if let Some(n) = name {
        d.set_annotations(Some(crate::images::name_annotations(n)));
    }
    Ok(d)
}

/// index.json for the manifest `desc` under `names` (one entry per name).
pub(crate) fn index_for(desc: &Descriptor, names: &[String]) -> Result<Vec<u8>> {
    let mut manifests = Vec::new();
    if names.is_empty() {
        manifests.push(desc.clone());
    }
    for n in names {
        let mut d = desc.clone();
        d.set_annotations(Some(crate::images::name_annotations(n)));
        manifests.push(d);
    }
    let mut index = crate::images::empty_index()?;
    index.set_manifests(manifests);
    serde_json::to_vec(&index).map_err(|e| Error::json("index", e))
}

pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
