//! `push` of a multi-platform image: each entry's blobs and manifest (by
//! digest), then the index under the tag, so the tag never names an
//! index whose entries the registry lacks.

use kiln_store::{ImageList, Store};
use oci_client::Reference;

use crate::error::Result;
use crate::progress::{Events, Transfers};
use crate::push::put_manifest;
use crate::Registry;

impl Registry {
    /// Pushes `list` as `dest`; returns the index digest.
    pub fn push_list(
        &self,
        store: &Store,
        list: &ImageList,
        dest: &str,
        events: &dyn Events,
    ) -> Result<String> {
        let (r, session, rt) = self.push_session(dest)?;
        // The index must name the manifests as pushed (layers compressed).
        let list = store.exportable_list(list, kiln_layer::Compression::Gzip)?;
        let transfers = Transfers::new(events);
        let tagged = &session.reference;
        for (platform, image) in &list.entries {
            let by_digest = Reference::with_digest(
                tagged.registry().to_string(),
                tagged.repository().to_string(),
                image.manifest_digest.to_string(),
            );
            self.send_image(rt, &session, store, image, &by_digest, &transfers)?;
            events.line(&format!("pushed {platform} {}", image.manifest_digest));
        }
        let bytes = store.read_blob(&list.digest)?;
        put_manifest(
            rt,
            &session,
            tagged,
            bytes,
            "application/vnd.oci.image.index.v1+json",
        )?;
        let digest = list.digest.to_string();
        events.line(&format!("pushed {} {digest}", r.whole()));
        Ok(digest)
    }
}
