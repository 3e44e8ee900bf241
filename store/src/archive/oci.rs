//! OCI image layouts: as a directory (`oci:DIR`, umoci, skopeo) and tarred
//! (oci-archive, `podman load`). Names go in the
//! `org.opencontainers.image.ref.name` annotation, in full
//! (`localhost/app:latest`), which is what podman names a loaded image.

use std::io::Write;
use std::path::Path;

use kiln_layer::Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::{adopt, read, write, Contents};
use crate::error::{Error, Result};
use crate::images::{our_digest, ref_name};
use crate::{fsutil, Image, ImageList, Store, Stored};

/// Writes `image` as an oci-archive to `out`, its layer blobs staged in
/// the store in gzip (see [`super::export_streamed`] for the choice).
pub fn export_oci_archive(
    store: &Store,
    image: &Image,
    names: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let how = super::Streaming::staged(store);
    super::export_streamed(store, image, names, out, super::Kind::Oci, &how)
}

/// Writes (or adds to) an OCI layout directory.
pub fn export_oci_dir(store: &Store, image: &Image, names: &[String], dir: &Path) -> Result<()> {
    // A built image may list layers it has no blob for yet (see
    // `Store::exportable`); a caller that wants zstd converts it first.
    let image = &store.exportable(image, kiln_layer::Compression::Gzip)?;
    let names = write::normalized(names)?;
    let desc = write::manifest_descriptor(store, image, None)?;
    write_layout(store, dir, write::image_blobs(image)?, &desc, &names)
}

/// Copies `blobs` into the layout `dir` (those it lacks), then names
/// `desc` in its index.json by `names`: an existing layout keeps its other
/// images (and its index's own fields); names this export uses move to
/// `desc`.
pub(super) fn write_layout(
    store: &Store,
    dir: &Path,
    blobs: Vec<Digest>,
    desc: &Descriptor,
    names: &[String],
) -> Result<()> {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).map_err(|e| Error::io("create", &blob_dir, e))?;
    for d in blobs {
        let dest = blob_dir.join(d.hex());
        if dest.exists() {
            continue;
        }
        let tmp = blob_dir.join(format!(".{}.tmp", d.hex()));
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        store.copy_blob(&d, &mut f)?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
    }
    let index_path = dir.join("index.json");
    let mut index: ImageIndex = if index_path.exists() {
        let b = super::read_small_file(&index_path)?;
        serde_json::from_slice(&b).map_err(|e| Error::json(index_path.display().to_string(), e))?
    } else {
        crate::images::empty_index()?
    };
    let mut manifests: Vec<Descriptor> = index.manifests().clone();
    crate::images::set_names(&mut manifests, desc, names);
    index.set_manifests(manifests);
    let bytes = serde_json::to_vec(&index).map_err(|e| Error::json("index", e))?;
    fsutil::write_atomic(&dir.join(".index.json.tmp"), &index_path, &bytes)?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        fsutil::write_atomic(&dir.join(".oci-layout.tmp"), &layout, write::OCI_LAYOUT)?;
    }
    Ok(())
}

/// Where a layout's blobs come from: a directory, or an archive already
/// scanned into the store.
enum Source<'a> {
    Dir(&'a Path),
    Archive(&'a Contents),
}

impl Source<'_> {
    fn index(&self) -> Result<ImageIndex> {
        let (what, bytes) = match self {
            Source::Dir(d) => {
                let p = d.join("index.json");
                let bytes = super::read_small_file(&p)?;
                (p.display().to_string(), bytes)
            }
            Source::Archive(c) => (
                "index.json in the archive".into(),
                c.file("index.json")?.to_vec(),
            ),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::json(what, e))
    }

    /// Brings the blob into the store (verified).
    fn fetch(&self, store: &Store, d: &Digest) -> Result<()> {
        match self {
            Source::Dir(dir) => {
                if store.has_blob(d) {
                    return Ok(());
                }
                let p = dir.join("blobs/sha256").join(d.hex());
                let mut f = std::fs::File::open(&p).map_err(|e| Error::io("open", &p, e))?;
                store.put_blob_stream(&mut f, Some(d))?;
                Ok(())
            }
            Source::Archive(_) => {
                if store.has_blob(d) {
                    Ok(())
                } else {
                    Err(Error::MissingBlob(d.to_string()))
                }
            }
        }
    }

    /// A manifest or index blob (`what`), fetched and parsed.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        store: &Store,
        d: &Digest,
        what: &str,
    ) -> Result<T> {
        self.fetch(store, d)?;
        let bytes = super::read_small_blob(store, d, what)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::json(d.to_string(), e))
    }
}

/// The platform an import picks from an index: `os/arch[/variant]`.
struct Want<'a> {
    os: &'a str,
    arch: &'a str,
    variant: Option<&'a str>,
}

impl<'a> Want<'a> {
    fn parse(platform: &'a str) -> Want<'a> {
        let mut parts = platform.splitn(3, '/');
        Want {
            os: parts.next().unwrap_or("linux"),
            arch: parts.next().unwrap_or(""),
            variant: parts.next(),
        }
    }

    /// An entry without a variant runs on any variant of its arch, and
    /// arm64's is v8 when unnamed.
    fn matches(&self, desc: &Descriptor) -> bool {
        let Some(p) = desc.platform().as_ref() else {
            return false;
        };
        let arch = p.architecture().to_string();
        if p.os().to_string() != self.os || arch != self.arch {
            return false;
        }
        let have = p
            .variant()
            .as_deref()
            .filter(|v| !(arch == "arm64" && *v == "v8"));
        let want = self.variant.filter(|v| !(arch == "arm64" && *v == "v8"));
        want.is_none() || have.is_none() || want == have
    }
}

/// Follows an index entry to an image manifest, choosing `want`'s
/// platform in a manifest list.
fn manifest_of(
    store: &Store,
    src: &Source<'_>,
    desc: &Descriptor,
    depth: usize,
    want: &Want<'_>,
) -> Result<ImageManifest> {
    let d = our_digest(desc.digest())?;
    let media = desc.media_type().to_string();
    let is_index =
        matches!(desc.media_type(), MediaType::ImageIndex) || media.contains("manifest.list");
    if !is_index {
        return src.json(store, &d, "manifest");
    }
    if depth > 4 {
        return Err(Error::Archive("indexes nested too deep".into()));
    }
    let index: ImageIndex = src.json(store, &d, "index")?;
    match index.manifests().iter().find(|m| want.matches(m)) {
        Some(m) => manifest_of(store, src, m, depth + 1, want),
        None => {
            let available: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|m| {
                    m.platform()
                        .as_ref()
                        .map(|p| format!("{}/{}", p.os(), p.architecture()))
                })
                .collect();
            let variant = want.variant.map(|v| format!("/{v}")).unwrap_or_default();
            Err(Error::Archive(format!(
                "no image for {}/{}{variant} in the index (available: {})",
                want.os,
                want.arch,
                available.join(", ")
            )))
        }
    }
}

pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The index entry `reference` names: its full name, its tag, or (with no
/// reference) the only entry. A layout may hold one name once per
/// platform (entries with a `platform`): `want`'s is chosen then.
fn select<'i>(
    index: &'i ImageIndex,
    reference: Option<&str>,
    want: &Want<'_>,
) -> Result<&'i Descriptor> {
    let entries = index.manifests();
    match reference {
        Some(r) => {
            let full = crate::normalize_name(r).ok();
            let named: Vec<&Descriptor> = entries
                .iter()
                .filter(|e| {
                    e.digest().to_string() == r
                        || ref_name(e).is_some_and(|n| n == r || Some(&n) == full.as_ref())
                })
                .collect();
            named
                .iter()
                .find(|e| named.len() > 1 && want.matches(e))
                .or(named.first())
                .copied()
                .ok_or_else(|| Error::ImageNotKnown(r.to_string()))
        }
        None => match entries.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Archive("the layout holds no image".into())),
            _ => Err(Error::Archive(
                "the layout holds several images: name one as PATH:TAG".into(),
            )),
        },
    }
}

fn import_one(
    store: &Store,
    src: &Source<'_>,
    reference: Option<&str>,
    platform: &str,
) -> Result<Image> {
    let want = Want::parse(platform);
    let index = src.index()?;
    let desc = select(&index, reference, &want)?;
    let manifest = manifest_of(store, src, desc, 0, &want)?;
    src.fetch(store, &our_digest(manifest.config().digest())?)?;
    for l in manifest.layers() {
        src.fetch(store, &our_digest(l.digest())?)?;
    }
    adopt(store, &manifest, &[])
}

fn host_platform() -> String {
    format!("linux/{}", host_arch())
}

/// `FROM oci:DIR[:TAG]`.
pub fn import_oci_dir(store: &Store, dir: &Path, reference: Option<&str>) -> Result<Image> {
    import_one(store, &Source::Dir(dir), reference, &host_platform())
}

/// `FROM oci:DIR[:TAG]` for a platform (`os/arch[/variant]`), chosen when
/// the tag names an index or is in the layout once per platform.
pub fn import_oci_dir_for(
    store: &Store,
    dir: &Path,
    reference: Option<&str>,
    platform: &str,
) -> Result<Image> {
    import_one(store, &Source::Dir(dir), reference, platform)
}

/// `FROM oci-archive:FILE[:TAG]`.
pub fn import_oci_archive(store: &Store, file: &Path, reference: Option<&str>) -> Result<Image> {
    import_oci_archive_for(store, file, reference, &host_platform())
}

/// `FROM oci-archive:FILE[:TAG]` for a platform, as [`import_oci_dir_for`].
pub fn import_oci_archive_for(
    store: &Store,
    file: &Path,
    reference: Option<&str>,
    platform: &str,
) -> Result<Image> {
    let contents = read::scan(store, file)?;
    import_one(store, &Source::Archive(&contents), reference, platform)
}

/// `kiln load` of an oci-archive: every image, under the names it carries.
/// An entry that is an index of several platforms is loaded whole, as a
/// multi-platform image; any other as one image (the host's of an index).
pub(crate) fn import_all(store: &Store, contents: &Contents) -> Result<Vec<Stored>> {
    let src = Source::Archive(contents);
    let index = src.index()?;
    let host = host_platform();
    let mut out = Vec::new();
    for desc in index.manifests() {
        let names: Vec<String> = ref_name(desc).into_iter().collect();
        if let Some(list) = import_list(store, &src, desc, &names)? {
            out.push(Stored::List(Box::new(list)));
            continue;
        }
        let manifest = manifest_of(store, &src, desc, 0, &Want::parse(&host))?;
        out.push(Stored::Image(Box::new(adopt(store, &manifest, &names)?)));
    }
    Ok(out)
}

/// `desc` stored as a multi-platform image named `names`, when it is an
/// index of the images of several platforms (entries of no platform, or
/// BuildKit's attestations of platform unknown/unknown, are left out);
/// None otherwise.
fn import_list(
    store: &Store,
    src: &Source<'_>,
    desc: &Descriptor,
    names: &[String],
) -> Result<Option<ImageList>> {
    if !crate::is_index(desc) {
        return Ok(None);
    }
    let index: ImageIndex = src.json(store, &our_digest(desc.digest())?, "index")?;
    let entries: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|m| {
            !crate::is_index(m)
                && m.platform()
                    .as_ref()
                    .is_some_and(|p| p.os().to_string() != "unknown")
        })
        .collect();
    if entries.len() < 2 {
        return Ok(None);
    }
    let mut images = Vec::new();
    let mut entry_annotations = Vec::new();
    for m in entries {
        let manifest: ImageManifest = src.json(store, &our_digest(m.digest())?, "manifest")?;
        images.push(adopt(store, &manifest, &[])?);
        let a = m.annotations().clone().unwrap_or_default();
        entry_annotations.push(a.into_iter().collect());
    }
    let annotations = index.annotations().clone().unwrap_or_default();
    let annotations = annotations.into_iter().collect();
    store
        .put_list(&images, &annotations, &entry_annotations, names)
        .map(Some)
}
