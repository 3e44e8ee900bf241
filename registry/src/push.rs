//! `push`: a stored image to a registry. Blobs the repository has are
//! skipped (HEAD), blobs another repository of that registry has (one a
//! stored image was pulled from) are mounted across, the rest are
//! streamed up; the manifest goes last, so the tag never names an
//! incomplete image.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;

use kiln_layer::Digest;
use kiln_store::{Image, Store};
use oci_client::{Reference, RegistryOperation};

use crate::error::{Error, Result};
use crate::progress::{Events, Transfers};
use crate::reference::normalize;
use crate::transport::{Failure, Session};
use crate::workers;
use crate::Registry;

/// One blob to send.
pub(crate) struct Blob {
    pub digest: String,
    pub size: u64,
}

impl Registry {
    /// Pushes `image` as `dest`; returns the manifest digest.
    pub fn push(
        &self,
        store: &Store,
        image: &Image,
        dest: &str,
        events: &dyn Events,
    ) -> Result<String> {
        let (r, session, rt) = self.push_session(dest)?;
        let transfers = Transfers::new(events);
        let target = session.reference.clone();
        let image = self.send_image(rt, &session, store, image, &target, &transfers)?;
        let digest = image.manifest_digest.to_string();
        events.line(&format!("pushed {} {digest}", r.whole()));
        Ok(digest)
    }

    /// A session authenticated to push to `dest` (its reference
    /// normalized), and the runtime it runs on.
    pub(crate) fn push_session(
        &self,
        dest: &str,
    ) -> Result<(Reference, Session, &tokio::runtime::Runtime)> {
        let r = normalize(dest)?;
        let ep = self.conf.push_endpoint(&r, &self.opts.insecure)?;
        let session = Session::new(
            &ep,
            &r.whole(),
            self.opts.auth_file.as_deref(),
            &self.limits,
            &self.clients,
        )?;
        let rt = self.runtime()?;
        rt.block_on(session.authenticate(RegistryOperation::Push))?;
        Ok((r, session, rt))
    }

    /// Sends `image`'s blobs (each layer a blob first: a built image may
    /// list plain tars it has no blob for yet; a caller that wants zstd
    /// converts it first), then its manifest as `target` (the session's
    /// tag, or a digest reference for a list's entry). Returns the image
    /// as pushed.
    pub(crate) fn send_image(
        &self,
        rt: &tokio::runtime::Runtime,
        session: &Session,
        store: &Store,
        image: &Image,
        target: &Reference,
        transfers: &Transfers<'_>,
    ) -> Result<Image> {
        let r = &session.reference;
        let image = store.exportable(image, kiln_layer::Compression::Gzip)?;
        let manifest = &image.manifest;
        let mut blobs = vec![Blob {
            digest: manifest.config().digest().to_string(),
            size: manifest.config().size(),
        }];
        blobs.extend(manifest.layers().iter().map(|l| Blob {
            digest: l.digest().to_string(),
            size: l.size(),
        }));
        // Each goes into a URL (with the user's credentials).
        if let Some(b) = blobs.iter().find(|b| !crate::valid_digest(&b.digest)) {
            return Err(Error::Manifest {
                reference: r.whole(),
                message: format!("the stored image lists {:?}, not a digest", b.digest),
            });
        }
        let sources = mount_sources(store, r, &image)?;
        self.push_blobs(rt, session, store, &blobs, &sources, transfers)?;
        let bytes = store.read_blob(&image.manifest_digest)?;
        let content_type = manifest.media_type().as_ref().map_or(
            "application/vnd.oci.image.manifest.v1+json".to_string(),
            |m| m.to_string(),
        );
        put_manifest(rt, session, target, bytes, &content_type)?;
        Ok(image)
    }

    pub(crate) fn push_blobs(
        &self,
        rt: &tokio::runtime::Runtime,
        s: &Session,
        store: &Store,
        blobs: &[Blob],
        sources: &[(Reference, Vec<String>)],
        transfers: &Transfers<'_>,
    ) -> Result<()> {
        workers::for_each(self.parallel(), blobs, |b| {
            rt.block_on(push_blob(s, store, b, sources, transfers))
        })
    }
}

/// Other repositories on the same registry that stored images came from,
/// with the blobs each is known to hold.
fn mount_sources(
    store: &Store,
    dest: &Reference,
    image: &Image,
) -> Result<Vec<(Reference, Vec<String>)>> {
    let wanted: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let mut out: Vec<(Reference, Vec<String>)> = Vec::new();
    for other in store.images()? {
        let shared: Vec<String> = other
            .manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string())
            .filter(|d| wanted.contains(d))
            .collect();
        if shared.is_empty() {
            continue;
        }
        for name in &other.names {
            let Ok(r) = normalize(name) else { continue };
            if r.registry() == dest.registry()
                && r.repository() != dest.repository()
                && !out.iter().any(|(o, _)| o.repository() == r.repository())
            {
                out.push((r, shared.clone()));
            }
        }
    }
    // Layers that came from a cache ref (`--cache-from`) are held there.
    for blob in &wanted {
        for origin in crate::artifact::origins(store, blob) {
            let Ok(r) = normalize(&origin) else { continue };
            if r.registry() != dest.registry() || r.repository() == dest.repository() {
                continue;
            }
            match out
                .iter_mut()
                .find(|(o, _)| o.repository() == r.repository())
            {
                Some((_, blobs)) => blobs.push(blob.clone()),
                None => out.push((r, vec![blob.clone()])),
            }
        }
    }
    Ok(out)
}

pub(crate) async fn push_blob(
    s: &Session,
    store: &Store,
    b: &Blob,
    sources: &[(Reference, Vec<String>)],
    transfers: &Transfers<'_>,
) -> Result<()> {
    let short = &b.digest[..b.digest.len().min(19)];
    let exists = s
        .retry(|| async {
            s.client
                .blob_exists(&s.reference, &b.digest)
                .await
                .map_err(|e| s.failure(e, "blob"))
        })
        .await?;
    if exists {
        transfers.line(&format!("{short} exists"));
        return Ok(());
    }
    for (source, digests) in sources {
        if digests.contains(&b.digest)
            && s.client
                .mount_blob(&s.reference, source, &b.digest)
                .await
                .is_ok()
        {
            transfers.line(&format!("{short} mounted from {}", source.repository()));
            return Ok(());
        }
    }
    let digest = Digest::parse(&b.digest).map_err(kiln_store::Error::from)?;
    let path = store.blob_path(&digest);
    let id = transfers.start(short, b.size);
    let result = s
        .retry(|| async {
            transfers.reset(id);
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| Failure::Fatal(Error::io(format!("open {}", path.display()), e)))?;
            let stream = pieces(file);
            // The upload stream must be 'static: it counts into an atomic
            // that a ticker beside it reports.
            let sent = Arc::new(AtomicU64::new(0));
            let counter = sent.clone();
            let counted = futures_util::StreamExt::map(stream, move |chunk| {
                if let Ok(c) = &chunk {
                    counter.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
                chunk.map_err(oci_client::errors::OciDistributionError::IoError)
            });
            let upload = s
                .client
                .push_blob_stream(&s.reference, counted, &b.digest, Some(b.size));
            let ticker = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    transfers.advance(id, sent.swap(0, Ordering::Relaxed));
                }
            };
            futures_util::pin_mut!(upload, ticker);
            let outcome = match futures_util::future::select(upload, ticker).await {
                Either::Left((outcome, _)) => outcome,
                Either::Right(((), _)) => unreachable!("the ticker never ends"),
            };
            transfers.advance(id, sent.swap(0, Ordering::Relaxed));
            outcome.map(|_| ()).map_err(|e| s.failure(e, "repository"))
        })
        .await;
    match &result {
        Ok(()) => transfers.finish(id, "pushed"),
        Err(_) => transfers.abandon(id),
    }
    result
}

/// Upload pieces: oci-client sends each stream item (up to its own 4 MiB
/// cap) as a PATCH of its own, which the registry answers after storing
/// it (docker-registry also saves its hash state): 256 KiB items held
/// uploads to ~30 MB/s on localhost. Not one PUT of the whole blob:
/// reqwest's idle timeout runs from a request's start to its response,
/// so each request must stay short on a slow link. A piece grows while
/// its PATCH takes under half a second and shrinks past four seconds.
const FIRST_PIECE: usize = 1 << 20;
const MIN_PIECE: usize = 256 << 10;
const MAX_PIECE: usize = 4 << 20;

/// `file` as a stream of pieces sized to the link (see [`FIRST_PIECE`]).
fn pieces(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    let start = (file, FIRST_PIECE, None::<std::time::Instant>);
    futures_util::stream::try_unfold(start, |(mut file, mut size, handed)| async move {
        use tokio::io::AsyncReadExt;
        // The next piece is asked for once the last one's PATCH is answered.
        if let Some(t) = handed {
            size = next_piece(size, t.elapsed());
        }
        let mut buf = bytes::BytesMut::with_capacity(size);
        while buf.len() < size {
            if file.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        let next = (file, size, Some(std::time::Instant::now()));
        Ok((!buf.is_empty()).then(|| (buf.freeze(), next)))
    })
}

/// The piece after one of `size` bytes whose PATCH took `took`.
fn next_piece(size: usize, took: Duration) -> usize {
    if took < Duration::from_millis(500) {
        (size * 2).min(MAX_PIECE)
    } else if took > Duration::from_secs(4) {
        (size / 2).max(MIN_PIECE)
    } else {
        size
    }
}

/// PUTs manifest (or index) bytes as `target`.
pub(crate) fn put_manifest(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    target: &Reference,
    bytes: Vec<u8>,
    content_type: &str,
) -> Result<()> {
    rt.block_on(session.retry(|| async {
        let header = content_type.parse().map_err(|_| {
            Failure::Fatal(Error::Protocol {
                registry: session.registry().to_string(),
                message: format!("bad media type {content_type:?}"),
            })
        })?;
        session
            .client
            .push_manifest_raw(target, bytes.clone(), header)
            .await
            .map_err(|e| session.failure(e, "repository"))
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fast PATCHes grow the pieces to oci-client's cap; slow ones shrink
    /// them to 256 KiB, which a 30 s idle timeout allows down to ~9 KB/s.
    #[test]
    fn pieces_follow_the_link() {
        let fast = Duration::from_millis(50);
        let slow = Duration::from_secs(10);
        let mut size = FIRST_PIECE;
        for _ in 0..10 {
            size = next_piece(size, fast);
        }
        assert_eq!(size, MAX_PIECE);
        assert_eq!(next_piece(size, Duration::from_secs(2)), MAX_PIECE);
        for _ in 0..10 {
            size = next_piece(size, slow);
        }
        assert_eq!(size, MIN_PIECE);
    }
}
