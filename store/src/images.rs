//! Images: a manifest and a config in `oci/blobs`, named by entries of
//! `oci/index.json` (annotation `org.opencontainers.image.ref.name` = the
//! normalised name; an unnamed build result has an entry without one).

use std::collections::HashMap;
use std::str::FromStr;

use kiln_layer::{Compression, Digest};
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType,
};

use crate::error::{Error, Result};
use crate::names::normalize_name;
use crate::{fsutil, locks, Store};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and BuildKit's) name of an index entry, always in full.
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// An image in the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// Normalised names, e.g. `localhost/app:latest`.
    pub names: Vec<String>,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    /// The config's rootfs, bottom layer first (parsed and validated).
    pub diff_ids: Vec<Digest>,
    /// The config's `created`.
    pub created: Option<String>,
}

impl Image {
    /// The image ID as podman and docker show it: the config digest's hex.
    pub fn id(&self) -> &str {
        self.config_digest.hex()
    }
}

/// Parses an image config, validating its diffIDs (they become paths).
pub(crate) fn parse_config(
    bytes: &[u8],
    digest: &Digest,
) -> Result<(ImageConfiguration, Vec<Digest>)> {
    let config: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| Error::json(format!("image config {digest}"), e))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((config, diff_ids))
}

pub(crate) fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest> {
    oci_spec::image::Digest::from_str(d.as_str()).map_err(|e| Error::json("digest", e))
}

pub(crate) fn our_digest(d: &oci_spec::image::Digest) -> Result<Digest> {
    Ok(Digest::parse(d.as_ref())?)
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.oci().join("index.json")
    }

    pub(crate) fn read_index(&self) -> Result<ImageIndex> {
        match std::fs::read(self.index_path()) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::json("oci/index.json", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty_index(),
            Err(e) => Err(Error::io("read", self.index_path(), e)),
        }
    }

    /// Read-modify-write of index.json under the index lock.
    pub(crate) fn update_index(
        &self,
        change: impl FnOnce(&mut Vec<Descriptor>) -> Result<()>,
    ) -> Result<()> {
        let _lock = locks::exclusive(&self.root.join("index.lock"))?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        change(&mut manifests)?;
        index.set_manifests(manifests);
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::json("oci/index.json", e))?;
        fsutil::write_atomic(&self.tmp_file("index"), &self.index_path(), &bytes)
    }

    /// Stores an image from its config: see [`Store::put_image_config`].
    pub fn put_image(
        &self,
        config: &ImageConfiguration,
        compression: Compression,
        names: &[String],
    ) -> Result<Image> {
        let bytes = serde_json::to_vec(config).map_err(|e| Error::json("image config", e))?;
        self.put_image_config(&bytes, compression, names)
    }

    /// Stores an image from its config bytes (kept exactly: they are what
    /// the image ID hashes): every layer gets its blob (made now if
    /// needed), then the config, the manifest, and the names. With no
    /// names the image still gets an index entry, so prune keeps it.
    pub fn put_image_config(
        &self,
        config: &[u8],
        compression: Compression,
        names: &[String],
    ) -> Result<Image> {
        self.put_config_with(config, names, |d| self.layer_blob(d, compression))
    }

    /// Stores a build result from its config bytes without compressing
    /// anything: each layer is listed by the blob already known for it in
    /// `compression`, else as its plain tar (digest = diffID, a blob made
    /// only on demand: see [`Store::exportable`]). Storing and naming an
    /// image is what every build does; compressing is what exports and
    /// pushes need, and only they pay for it.
    pub fn put_built_image(
        &self,
        config: &[u8],
        compression: Compression,
        names: &[String],
    ) -> Result<Image> {
        self.put_config_with(config, names, |d| {
            if let Some(b) = self.known_layer_blob(d, compression) {
                return b.descriptor();
            }
            // A layer kiln did not capture (pulled, loaded, a base layout)
            // need not capture back to its diffID, so it cannot be
            // recompressed: it keeps the blob it came with, in whatever
            // compression (an image may mix them, as BuildKit's do).
            if !self.known_capturable(d) {
                let other = [Compression::Gzip, Compression::Zstd]
                    .into_iter()
                    .find_map(|c| self.known_layer_blob(d, c));
                if let Some(b) = other {
                    return b.descriptor();
                }
            }
            self.plain_layer_descriptor(d)
        })
    }

    /// Stores config bytes as an image whose layers `layer` describes.
    fn put_config_with(
        &self,
        config: &[u8],
        names: &[String],
        layer: impl Fn(&Digest) -> Result<Descriptor>,
    ) -> Result<Image> {
        let (_, diff_ids) = parse_config(config, &Digest::of(config))?;
        let layers = diff_ids.iter().map(layer).collect::<Result<Vec<_>>>()?;
        let config_digest = self.put_blob(config)?;
        self.record_image(&config_digest, config.len() as u64, layers, names)
    }

    /// `image` as exports and pushes need it: every layer a blob in
    /// `oci/blobs`. A layer listed as a plain tar that `oci/blobs` lacks
    /// (see [`Store::put_built_image`]) gets its blob in `compression` now
    /// (or the one made by an earlier export), under a new manifest. That
    /// manifest is not named in index.json: the stored image keeps its
    /// identity, and `prune` may drop the compressed forms (they are made
    /// again when needed). Returns `image` itself when nothing is missing.
    pub fn exportable(&self, image: &Image, compression: Compression) -> Result<Image> {
        let plain = MediaType::from(kiln_layer::MEDIA_TYPE_TAR);
        let missing = |l: &Descriptor| -> Result<bool> {
            Ok(l.media_type() == &plain && !self.has_blob(&our_digest(l.digest())?))
        };
        let mut changed = false;
        let mut layers = Vec::new();
        for l in image.manifest.layers() {
            if missing(l)? {
                layers.push(self.layer_blob(&our_digest(l.digest())?, compression)?);
                changed = true;
            } else {
                layers.push(l.clone());
            }
        }
        if !changed {
            return Ok(image.clone());
        }
        let mut manifest = image.manifest.clone();
        manifest.set_layers(layers);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::json("manifest", e))?;
        let digest = self.put_blob(&bytes)?;
        self.load_image(&digest, image.names.clone())
    }

    /// Writes the OCI manifest of a config and layer blobs already in
    /// `oci/blobs`, and points `names` at it.
    pub(crate) fn record_image(
        &self,
        config_digest: &Digest,
        config_size: u64,
        layers: Vec<Descriptor>,
        names: &[String],
    ) -> Result<Image> {
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_size,
                oci_digest(config_digest)?,
            ))
            .layers(layers)
            .build()
            .map_err(|e| Error::json("manifest", e))?;
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::json("manifest", e))?;
        let manifest_digest = self.put_blob(&manifest_bytes)?;
        let names = names
            .iter()
            .map(|n| normalize_name(n))
            .collect::<Result<Vec<_>>>()?;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            manifest_bytes.len() as u64,
            oci_digest(&manifest_digest)?,
        );
        self.update_index(|entries| {
            set_names(entries, &desc, &names);
            Ok(())
        })?;
        self.load_image(&manifest_digest, names)
    }

    pub(crate) fn load_image(&self, manifest_digest: &Digest, names: Vec<String>) -> Result<Image> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::json(format!("manifest {manifest_digest}"), e))?;
        let config_digest = our_digest(manifest.config().digest())?;
        let (config, diff_ids) = parse_config(&self.read_blob(&config_digest)?, &config_digest)?;
        Ok(Image {
            names,
            manifest_digest: manifest_digest.clone(),
            manifest,
            config_digest,
            created: config.created().clone(),
            config,
            diff_ids,
        })
    }

    /// Every image, once, with all its names.
    pub fn images(&self) -> Result<Vec<Image>> {
        let index = self.read_index()?;
        let mut order = Vec::new();
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        // Multi-platform lists are `Store::lists`'s.
        for e in index
            .manifests()
            .iter()
            .filter(|e| !crate::lists::is_index(e))
        {
            let d = e.digest().to_string();
            if !names.contains_key(&d) {
                order.push(d.clone());
            }
            let list = names.entry(d).or_default();
            if let Some(n) = ref_name(e) {
                list.push(n);
            }
        }
        order
            .into_iter()
            .map(|d| {
                let n = names.remove(&d).unwrap_or_default();
                self.load_image(&Digest::parse(&d)?, n)
            })
            .collect()
    }

    /// By name (as given or normalised), or by ID / manifest digest prefix
    /// (at least 4 hex digits).
    pub fn image(&self, name_or_id: &str) -> Result<Image> {
        let images = self.images()?;
        let wanted = normalize_name(name_or_id).ok();
        if let Some(i) = images.iter().find(|i| {
            i.names
                .iter()
                .any(|n| n == name_or_id || Some(n) == wanted.as_ref())
        }) {
            return Ok(i.clone());
        }
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let found: Vec<&Image> = images
                .iter()
                .filter(|i| {
                    i.config_digest.hex().starts_with(hex)
                        || i.manifest_digest.hex().starts_with(hex)
                })
                .collect();
            match found.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {}
                _ => return Err(Error::Ambiguous(name_or_id.to_string())),
            }
        }
        // A multi-platform image stands for its entry for this host.
        if let Some(list) = self.find_list(name_or_id)? {
            let host = format!("linux/{}", crate::archive::oci_host_arch());
            if let Some(i) = list.entry(&host) {
                return Ok(i.clone());
            }
        }
        Err(Error::ImageNotKnown(name_or_id.to_string()))
    }

    pub fn tag(&self, image: &Image, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        let size = self.read_blob(&image.manifest_digest)?.len() as u64;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            size,
            oci_digest(&image.manifest_digest)?,
        );
        self.add_name(&desc, name)
    }

    /// Adds `name` (normalized) to the names index.json gives `desc` (an
    /// image's manifest or a list's index), taking it from any other.
    pub(crate) fn add_name(&self, desc: &Descriptor, name: String) -> Result<()> {
        self.update_index(|entries| {
            let mut names: Vec<String> = entries
                .iter()
                .filter(|e| e.digest() == desc.digest())
                .filter_map(ref_name)
                .collect();
            if !names.contains(&name) {
                names.push(name);
            }
            set_names(entries, desc, &names);
            Ok(())
        })
    }

    /// `rmi`: a name removes that name; an ID removes the image with all
    /// its names. Returns what was removed.
    pub fn remove_image(&self, name_or_id: &str) -> Result<Vec<String>> {
        let (names, digest, id) = match self.lookup(name_or_id)? {
            crate::Stored::Image(i) => (
                i.names.clone(),
                i.manifest_digest.clone(),
                i.config_digest.clone(),
            ),
            crate::Stored::List(l) => (l.names, l.digest.clone(), l.digest),
        };
        let by_name = normalize_name(name_or_id)
            .ok()
            .filter(|n| names.contains(n))
            .or_else(|| names.iter().find(|n| n.as_str() == name_or_id).cloned());
        let digest = digest.to_string();
        let mut removed = Vec::new();
        self.update_index(|entries| {
            entries.retain(|e| {
                let same = e.digest().to_string() == digest;
                let drop = same
                    && by_name
                        .as_ref()
                        .is_none_or(|n| ref_name(e).as_ref() == Some(n));
                if drop {
                    removed.push(ref_name(e).unwrap_or_else(|| format!("sha256:{}", id.hex())));
                }
                !drop
            });
            Ok(())
        })?;
        Ok(removed)
    }
}

pub(crate) fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .cloned()
}

/// The annotations naming an index entry `name` (a full name): the OCI
/// one, and containerd's, which BuildKit's exports carry too. The OCI one
/// stays the full name, not only the tag as BuildKit writes it: podman
/// names a loaded image after it, and skopeo finds it by it.
pub(crate) fn name_annotations(name: &str) -> HashMap<String, String> {
    HashMap::from([
        (REF_NAME.to_string(), name.to_string()),
        (IMAGE_NAME.to_string(), name.to_string()),
    ])
}

pub(crate) fn empty_index() -> Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .map_err(|e| Error::json("index", e))
}

/// Points each of `names` at `desc` (moving it from any other image), and
/// keeps one unnamed entry for `desc` when it has no name at all.
pub(crate) fn set_names(entries: &mut Vec<Descriptor>, desc: &Descriptor, names: &[String]) {
    entries.retain(|e| match ref_name(e) {
        Some(n) => !names.contains(&n),
        None => e.digest() != desc.digest(),
    });
    for n in names {
        let mut d = desc.clone();
        d.set_annotations(Some(name_annotations(n)));
        entries.push(d);
    }
    if names.is_empty() && !entries.iter().any(|e| e.digest() == desc.digest()) {
        entries.push(desc.clone());
    }
}

impl Store {
    /// `image` with `annotations` added to its manifest's (`kiln build
    /// --annotation`): a new manifest, which the image's names (or, for
    /// an unnamed image, its index entry) move to.
    pub fn annotate(
        &self,
        image: &Image,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Image> {
        if annotations.is_empty() {
            return Ok(image.clone());
        }
        let mut manifest = image.manifest.clone();
        let mut all = manifest.annotations().clone().unwrap_or_default();
        all.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        manifest.set_annotations(Some(all));
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::json("manifest", e))?;
        let digest = self.put_blob(&bytes)?;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            bytes.len() as u64,
            oci_digest(&digest)?,
        );
        let old = oci_digest(&image.manifest_digest)?;
        self.update_index(|entries| {
            entries.retain(|e| ref_name(e).is_some() || e.digest() != &old);
            set_names(entries, &desc, &image.names);
            Ok(())
        })?;
        self.load_image(&digest, image.names.clone())
    }
}
