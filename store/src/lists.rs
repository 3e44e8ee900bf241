//! Multi-platform images: an OCI image index blob whose entries are the
//! per-platform images (each a manifest in `oci/blobs`, with the platform
//! its config states). index.json names the index blob (an entry of media
//! type image index); the entries themselves are not named there, so
//! `kiln images` lists the index once, with its platforms.

use std::collections::{BTreeMap, HashMap};

use kiln_layer::{Compression, Digest};
use oci_spec::image::{Descriptor, ImageIndex, MediaType, Platform};

use crate::error::{Error, Result};
use crate::images::{oci_digest, our_digest, ref_name, set_names};
use crate::names::normalize_name;
use crate::{Image, Store};

/// A stored multi-platform image.
#[derive(Clone, Debug)]
pub struct ImageList {
    /// Normalised names, e.g. `localhost/app:latest`.
    pub names: Vec<String>,
    /// The index blob's digest: the list's ID.
    pub digest: Digest,
    pub index: ImageIndex,
    /// Each entry's platform (`linux/arm64`, `linux/arm/v7`) and image
    /// (unnamed), in index order.
    pub entries: Vec<(String, Image)>,
}

/// A stored name or ID: one image, or a multi-platform list.
#[derive(Clone, Debug)]
pub enum Stored {
    Image(Box<Image>),
    List(Box<ImageList>),
}

impl ImageList {
    pub fn id(&self) -> &str {
        self.digest.hex()
    }

    pub fn platforms(&self) -> Vec<String> {
        self.entries.iter().map(|(p, _)| p.clone()).collect()
    }

    /// The entry for `platform` (`os/arch[/variant]`; a missing variant
    /// matches any, `arm64/v8` matches `arm64`).
    pub fn entry(&self, platform: &str) -> Option<&Image> {
        let want = platform.trim_end_matches("/v8");
        self.entries
            .iter()
            .find(|(p, _)| p == platform || p.trim_end_matches("/v8") == want)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(p, _)| p.split('/').take(2).eq(want.split('/').take(2)))
            })
            .map(|(_, i)| i)
    }
}

/// Whether an index entry (or a pulled manifest's descriptor) is an index:
/// OCI's, or Docker's manifest list.
pub fn is_index(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageIndex)
        || d.media_type().to_string().contains("manifest.list")
}

/// `os/arch[/variant]` as an index descriptor's platform says it.
pub fn platform_string(p: &Platform) -> String {
    match p.variant() {
        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
        None => format!("{}/{}", p.os(), p.architecture()),
    }
}

/// The platform an image's config states, for its index entry.
fn config_platform(image: &Image) -> Result<Platform> {
    let arch = image.config.architecture().to_string();
    let os = image.config.os().to_string();
    let mut p = serde_json::json!({ "architecture": arch, "os": os });
    if let Some(v) = image.config.variant() {
        p["variant"] = v.clone().into();
    }
    serde_json::from_value(p).map_err(|e| Error::json("platform", e))
}

impl Store {
    /// Stores an index over `images` (already stored, one per platform)
    /// and points `names` at it (moving them from any other image).
    /// `annotations` go on the index, `entry_annotations[i]` on the
    /// manifest descriptor of `images[i]`.
    pub fn put_list(
        &self,
        images: &[Image],
        annotations: &BTreeMap<String, String>,
        entry_annotations: &[BTreeMap<String, String>],
        names: &[String],
    ) -> Result<ImageList> {
        let (digest, size) = self.write_index_blob(images, annotations, entry_annotations)?;
        let names = names
            .iter()
            .map(|n| normalize_name(n))
            .collect::<Result<Vec<_>>>()?;
        let desc = Descriptor::new(MediaType::ImageIndex, size, oci_digest(&digest)?);
        let members = images
            .iter()
            .map(|i| oci_digest(&i.manifest_digest))
            .collect::<Result<Vec<_>>>()?;
        self.update_index(|entries| {
            // The entries were stored unnamed (each build result is kept):
            // now the index keeps them, and they are not images of their own.
            entries.retain(|e| ref_name(e).is_some() || !members.contains(e.digest()));
            set_names(entries, &desc, &names);
            Ok(())
        })?;
        self.load_list(&digest, names)
    }

    /// The index blob (not named in index.json).
    fn write_index_blob(
        &self,
        images: &[Image],
        annotations: &BTreeMap<String, String>,
        entry_annotations: &[BTreeMap<String, String>],
    ) -> Result<(Digest, u64)> {
        let mut manifests = Vec::new();
        for (i, image) in images.iter().enumerate() {
            let size = self.read_blob(&image.manifest_digest)?.len() as u64;
            let mut d = Descriptor::new(
                MediaType::ImageManifest,
                size,
                oci_digest(&image.manifest_digest)?,
            );
            d.set_platform(Some(config_platform(image)?));
            if let Some(a) = entry_annotations.get(i).filter(|a| !a.is_empty()) {
                d.set_annotations(Some(a.clone().into_iter().collect()));
            }
            manifests.push(d);
        }
        let mut index = crate::images::empty_index()?;
        index.set_manifests(manifests);
        if !annotations.is_empty() {
            index.set_annotations(Some(annotations.clone().into_iter().collect()));
        }
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::json("index", e))?;
        Ok((self.put_blob(&bytes)?, bytes.len() as u64))
    }

    pub(crate) fn load_list(&self, digest: &Digest, names: Vec<String>) -> Result<ImageList> {
        let bytes = crate::archive::read_small_blob(self, digest, "index")?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| Error::json(format!("index {digest}"), e))?;
        let mut entries = Vec::new();
        for m in index.manifests() {
            let platform = m
                .platform()
                .as_ref()
                .map(platform_string)
                .unwrap_or_default();
            entries.push((
                platform,
                self.load_image(&our_digest(m.digest())?, Vec::new())?,
            ));
        }
        Ok(ImageList {
            names,
            digest: digest.clone(),
            index,
            entries,
        })
    }

    /// Every multi-platform image, once, with all its names.
    pub fn lists(&self) -> Result<Vec<ImageList>> {
        let mut order = Vec::new();
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        for e in self
            .read_index()?
            .manifests()
            .iter()
            .filter(|e| is_index(e))
        {
            let d = e.digest().to_string();
            if !names.contains_key(&d) {
                order.push(d.clone());
            }
            names.entry(d.clone()).or_default().extend(ref_name(e));
        }
        order
            .into_iter()
            .map(|d| {
                let n = names.remove(&d).unwrap_or_default();
                self.load_list(&Digest::parse(&d)?, n)
            })
            .collect()
    }

    /// Every image the store keeps: the named ones and each list's
    /// entries (carrying the list's names), for prune and `system df`.
    pub(crate) fn all_images(&self) -> Result<(Vec<Image>, Vec<Digest>)> {
        let mut images = self.images()?;
        let mut lists = Vec::new();
        for l in self.lists()? {
            for (_, mut i) in l.entries {
                i.names = l.names.clone();
                images.push(i);
            }
            lists.push(l.digest);
        }
        Ok((images, lists))
    }

    /// A name or ID (as [`Store::image`] takes it), as an image or a list.
    pub fn lookup(&self, name_or_id: &str) -> Result<Stored> {
        if let Some(l) = self.find_list(name_or_id)? {
            return Ok(Stored::List(Box::new(l)));
        }
        self.image(name_or_id).map(|i| Stored::Image(Box::new(i)))
    }

    /// The list `name_or_id` names (a name, or a digest prefix of 4 hex
    /// digits or more), if it is one.
    pub fn find_list(&self, name_or_id: &str) -> Result<Option<ImageList>> {
        let wanted = normalize_name(name_or_id).ok();
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        let by_id = hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        Ok(self.lists()?.into_iter().find(|l| {
            l.names
                .iter()
                .any(|n| n == name_or_id || Some(n) == wanted.as_ref())
                || (by_id && l.digest.hex().starts_with(hex))
        }))
    }

    /// The image `name_or_id` names, or its entry for `platform` when it
    /// is a list (an error listing the platforms it has if none matches).
    pub fn image_for(&self, name_or_id: &str, platform: &str) -> Result<Image> {
        match self.lookup(name_or_id)? {
            Stored::Image(i) => Ok(*i),
            Stored::List(l) => l.entry(platform).cloned().ok_or_else(|| {
                Error::Archive(format!(
                    "{name_or_id} has no image for {platform} (it has {})",
                    l.platforms().join(", ")
                ))
            }),
        }
    }

    /// `list` as exports and pushes need it (see [`Store::exportable`]):
    /// each entry with every layer a blob, under a new index blob that
    /// index.json does not name. Annotations are kept.
    pub fn exportable_list(&self, list: &ImageList, compression: Compression) -> Result<ImageList> {
        let mut images = Vec::new();
        let mut entry_annotations = Vec::new();
        for ((_, image), desc) in list.entries.iter().zip(list.index.manifests()) {
            images.push(self.exportable(image, compression)?);
            entry_annotations.push(
                desc.annotations()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            );
        }
        if images
            .iter()
            .zip(&list.entries)
            .all(|(a, (_, b))| a.manifest_digest == b.manifest_digest)
        {
            return Ok(list.clone());
        }
        let annotations = list
            .index
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (digest, _) = self.write_index_blob(&images, &annotations, &entry_annotations)?;
        self.load_list(&digest, list.names.clone())
    }

    /// Names `list` `name` too (`kiln tag`).
    pub fn tag_list(&self, list: &ImageList, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        let size = self.read_blob(&list.digest)?.len() as u64;
        let desc = Descriptor::new(MediaType::ImageIndex, size, oci_digest(&list.digest)?);
        self.add_name(&desc, name)
    }
}
