//! `pull`: a reference to an image in the store. The manifest (through an
//! index if need be), then the config, then the layers, several at once,
//! each streamed into `oci/blobs` (verified) and unpacked by the store;
//! the image is named last, so a failure leaves no image behind (only
//! verified blobs and layers, which the next pull reuses).

use futures_util::StreamExt;
use kiln_layer::Digest;
use kiln_store::archive::{self, MANIFEST_MAX};
use kiln_store::{Image, Store};
use oci_client::{Reference, RegistryOperation};
use oci_spec::image::{Descriptor as OciDescriptor, ImageManifestBuilder, MediaType};

use crate::conf::Endpoint;
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, Fetched};
use crate::platform;
use crate::progress::{Events, Transfers};
use crate::reference::{self, normalize};
use crate::transport::{Failure, Session};
use crate::workers;
use crate::Registry;

/// A pulled (or already stored) image.
pub struct Pulled {
    pub image: Image,
    /// The manifest digest the registry gave (an index's, for an index).
    pub digest: String,
    /// The names it is stored under.
    pub names: Vec<String>,
    /// False when the store already held it and nothing was downloaded.
    pub fetched: bool,
}

/// An image manifest, as fetched.
struct Resolved {
    /// What the reference names: the image manifest's digest, or the
    /// index's.
    digest: String,
    /// The image manifest's own digest.
    image_digest: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl Registry {
    /// The image stored under `reference` (a tag or a digest), if any; no
    /// network.
    pub fn stored(&self, store: &Store, reference: &str) -> Result<Option<Image>> {
        let r = normalize(reference)?;
        Ok(store.image(&reference::lookup_name(&r)).ok())
    }

    /// Pulls `reference`: from each mirror `registries.conf` gives, then
    /// from its registry.
    pub fn pull(&self, store: &Store, reference: &str, events: &dyn Events) -> Result<Pulled> {
        let r = normalize(reference)?;
        let endpoints = self.conf.pull_endpoints(&r, &self.opts.insecure)?;
        let last = endpoints.len() - 1;
        for (i, ep) in endpoints.iter().enumerate() {
            match self.pull_from(store, &r, ep, events) {
                Ok(p) => return Ok(p),
                Err(e) if i < last => events.line(&format!(
                    "mirror {}: {e}; trying the next source",
                    ep.reference.registry()
                )),
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last endpoint returns")
    }

    fn pull_from(
        &self,
        store: &Store,
        original: &Reference,
        ep: &Endpoint,
        events: &dyn Events,
    ) -> Result<Pulled> {
        let rt = self.runtime()?;
        let session = Session::new(
            ep,
            &original.whole(),
            self.opts.auth_file.as_deref(),
            &self.limits,
            &self.clients,
        )?;
        let resolved = rt.block_on(self.resolve(&session))?;
        // `repo@<index digest>` means the host's image; another
        // platform's is found by its own manifest digest only.
        let mut names = reference::store_names(original, &resolved.image_digest);
        if resolved.digest != resolved.image_digest && self.opts.platform.is_none() {
            names.push(format!(
                "{}@{}",
                reference::repository_name(original),
                resolved.digest
            ));
        }
        events.line(&format!(
            "resolve {} {}",
            original.whole(),
            match ep.mirror {
                true => format!("{} (mirror {})", resolved.digest, ep.reference.registry()),
                false => resolved.digest.clone(),
            }
        ));
        let pinned = format!(
            "{}@{}",
            reference::repository_name(original),
            resolved.image_digest
        );
        if let Ok(image) = store.image(&pinned) {
            for n in &names {
                store.tag(&image, n)?;
            }
            let image = store.image(&pinned)?;
            return Ok(Pulled {
                image,
                digest: resolved.digest,
                names,
                fetched: false,
            });
        }
        let transfers = Transfers::new(events);
        let config = digest_of(&session, &resolved.config.digest)?;
        // The config is read whole into memory: bounded like a manifest.
        if resolved.config.size > MANIFEST_MAX {
            return Err(Error::Manifest {
                reference: session.original.clone(),
                message: archive::too_large(
                    &format!("the image config {config}"),
                    resolved.config.size,
                ),
            });
        }
        if !store.has_blob(&config) {
            rt.block_on(fetch_blob(
                &session,
                store,
                &resolved.config,
                &transfers,
                None,
                MANIFEST_MAX,
            ))?;
        }
        let diff_ids = diff_ids(&session, store, &config, resolved.layers.len())?;
        self.fetch_layers(rt, &session, store, &resolved.layers, &diff_ids, &transfers)?;
        let manifest = oci_manifest(&session, &resolved)?;
        let image = archive::adopt_manifest(store, &manifest, &names)?;
        Ok(Pulled {
            image,
            digest: resolved.digest,
            names,
            fetched: true,
        })
    }

    /// The image manifest `session.reference` names, through an index.
    async fn resolve(&self, s: &Session) -> Result<Resolved> {
        s.authenticate(RegistryOperation::Pull).await?;
        let (bytes, digest) = s.get_manifest(&s.reference).await?;
        match manifest::parse(&s.original, &bytes)? {
            Fetched::Image { config, layers } => Ok(Resolved {
                image_digest: digest.clone(),
                digest,
                config,
                layers,
            }),
            Fetched::Index(entries) => {
                let entry = platform::select(&s.original, &entries, &self.platform())?;
                let child = s.reference.clone_with_digest(entry.digest.clone());
                let (bytes, image_digest) = s.get_manifest(&child).await?;
                match manifest::parse(&s.original, &bytes)? {
                    Fetched::Image { config, layers } => Ok(Resolved {
                        digest,
                        image_digest,
                        config,
                        layers,
                    }),
                    Fetched::Index(_) => Err(Error::Manifest {
                        reference: s.original.clone(),
                        message: format!("index entry {} is itself an index", entry.digest),
                    }),
                }
            }
        }
    }

    /// Downloads and unpacks the layers the store lacks, `parallel()` at
    /// a time, each on its own thread (unpacking is CPU work).
    fn fetch_layers(
        &self,
        rt: &tokio::runtime::Runtime,
        s: &Session,
        store: &Store,
        layers: &[Descriptor],
        diff_ids: &[Digest],
        transfers: &Transfers<'_>,
    ) -> Result<()> {
        let pairs: Vec<(&Descriptor, &Digest)> = layers.iter().zip(diff_ids).collect();
        workers::for_each(self.parallel(), &pairs, |(desc, diff_id)| {
            fetch_layer(rt, s, store, desc, diff_id, transfers)
        })
    }
}

fn digest_of(s: &Session, d: &str) -> Result<Digest> {
    Digest::parse(d).map_err(|e| Error::Manifest {
        reference: s.original.clone(),
        message: format!("unsupported digest {d:?}: {e}"),
    })
}

/// The config's diffIDs, as many as the manifest has layers.
fn diff_ids(s: &Session, store: &Store, config: &Digest, layers: usize) -> Result<Vec<Digest>> {
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    let bad = |message: String| Error::Manifest {
        reference: s.original.clone(),
        message,
    };
    let c: Config = serde_json::from_slice(&store.read_blob(config)?)
        .map_err(|e| bad(format!("image config {config}: {e}")))?;
    if c.rootfs.diff_ids.len() != layers {
        return Err(bad(format!(
            "the config lists {} layers, the manifest {layers}",
            c.rootfs.diff_ids.len()
        )));
    }
    c.rootfs.diff_ids.iter().map(|d| digest_of(s, d)).collect()
}

/// One layer: downloaded unless its blob is stored, then unpacked unless
/// the store knows that blob gives that layer.
pub(crate) fn fetch_layer(
    rt: &tokio::runtime::Runtime,
    s: &Session,
    store: &Store,
    desc: &Descriptor,
    diff_id: &Digest,
    transfers: &Transfers<'_>,
) -> Result<()> {
    let blob = digest_of(s, &desc.digest)?;
    if store.has_blob(&blob) && store.layer_has_blob(diff_id, &blob) {
        transfers.line(&format!("{} already stored", short(&desc.digest)));
        return Ok(());
    }
    if !store.has_blob(&blob) {
        rt.block_on(fetch_blob(
            s,
            store,
            desc,
            transfers,
            Some("downloaded"),
            u64::MAX,
        ))?;
    }
    let mut f = store.open_blob(&blob)?;
    store
        .import_layer(&mut f, &blob, &desc.media_type, Some(diff_id))
        .map_err(|e| Error::Manifest {
            reference: s.original.clone(),
            message: format!("layer {}: {e}", desc.digest),
        })?;
    Ok(())
}

/// `sha256:` and 12 hex digits, as BuildKit shows blobs.
fn short(d: &str) -> &str {
    &d[..d.len().min(19)]
}

/// Streams one blob into `oci/blobs`: its digest checked, its size
/// bounded by the descriptor's (a registry cannot fill the disk), and by
/// `max` where the descriptor gives none.
pub(crate) async fn fetch_blob(
    s: &Session,
    store: &Store,
    desc: &Descriptor,
    transfers: &Transfers<'_>,
    verb: Option<&str>,
    max: u64,
) -> Result<()> {
    let expected = digest_of(s, &desc.digest)?;
    let bound = if desc.size > 0 { desc.size } else { max };
    let id = transfers.start(short(&desc.digest), desc.size);
    let result = s
        .retry(|| async {
            transfers.reset(id);
            let mut stream = s
                .client
                .pull_blob_stream(&s.reference, desc.digest.as_str())
                .await
                .map_err(|e| s.failure(e, "blob"))?;
            let mut w = store.blob_writer()?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| stream_failure(s, &desc.digest, e))?;
                if w.len() + chunk.len() as u64 > bound {
                    return Err(Failure::Fatal(mismatch(
                        s,
                        desc,
                        "more bytes than its size",
                    )));
                }
                w.write_all(&chunk)?;
                transfers.advance(id, chunk.len() as u64);
            }
            match w.commit(Some(&expected)) {
                Ok(_) => Ok(()),
                Err(kiln_store::Error::Layer(kiln_layer::Error::DigestMismatch {
                    actual, ..
                })) => Err(Failure::Fatal(mismatch(s, desc, actual.as_str()))),
                Err(e) => Err(e.into()),
            }
        })
        .await;
    match (&result, verb) {
        (Ok(()), Some(v)) => transfers.finish(id, v),
        _ => transfers.abandon(id),
    }
    result
}

fn mismatch(s: &Session, desc: &Descriptor, actual: &str) -> Error {
    Error::DigestMismatch {
        reference: s.original.clone(),
        what: "blob",
        expected: desc.digest.clone(),
        actual: actual.to_string(),
    }
}

/// A failure inside a blob's byte stream: oci-client's own digest check
/// failing is final; anything else (a dropped connection) is retried.
fn stream_failure(s: &Session, digest: &str, e: std::io::Error) -> Failure {
    if let Some(oci_client::errors::DigestError::VerificationError { actual, .. }) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<oci_client::errors::DigestError>())
    {
        return Failure::Fatal(Error::DigestMismatch {
            reference: s.original.clone(),
            what: "blob",
            expected: digest.to_string(),
            actual: actual.clone(),
        });
    }
    Failure::Transient(format!("reading blob {digest}: {}", s.describe(&e)))
}

/// The manifest as the store's OCI type (the store re-records it with
/// OCI media types).
fn oci_manifest(s: &Session, r: &Resolved) -> Result<oci_spec::image::ImageManifest> {
    let desc = |media: &str, d: &Descriptor| -> Result<OciDescriptor> {
        let digest = d
            .digest
            .parse::<oci_spec::image::Digest>()
            .map_err(|e| Error::Manifest {
                reference: s.original.clone(),
                message: format!("digest {}: {e}", d.digest),
            })?;
        Ok(OciDescriptor::new(MediaType::from(media), d.size, digest))
    };
    let layers = r
        .layers
        .iter()
        .map(|l| desc(&l.media_type, l))
        .collect::<Result<Vec<_>>>()?;
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(desc("application/vnd.oci.image.config.v1+json", &r.config)?)
        .layers(layers)
        .build()
        .map_err(|e| Error::Manifest {
            reference: s.original.clone(),
            message: e.to_string(),
        })
}
