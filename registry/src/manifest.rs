//! The registry documents kiln reads: image manifests and indexes, in
//! their OCI and Docker v2 schema 2 forms (the same JSON shape with
//! different media types). Only the fields kiln uses are typed; the bytes
//! themselves are what digests are checked against.

use serde::Deserialize;

use crate::error::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a manifest request accepts.
pub const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub urls: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EntryPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IndexEntry {
    pub digest: String,
    #[serde(default)]
    pub platform: Option<EntryPlatform>,
}

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

/// A fetched manifest, read.
#[derive(Debug)]
pub enum Fetched {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<IndexEntry>),
}

/// Reads manifest bytes; the media type in the document decides, and a
/// document without one is told by its fields.
pub fn parse(reference: &str, bytes: &[u8]) -> Result<Fetched> {
    let bad = |message: String| Error::Manifest {
        reference: reference.to_string(),
        message,
    };
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("unreadable manifest: {e}")))?;
    if doc.schema_version == 1 {
        return Err(bad(
            "Docker schema 1 manifests are not supported (the image is too old to pull)".into(),
        ));
    }
    let is_index = match doc.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => return Err(bad(format!("unsupported manifest media type {other:?}"))),
        None => doc.manifests.is_some(),
    };
    if is_index {
        let entries = doc.manifests.unwrap_or_default();
        for e in &entries {
            check_digest(reference, "index entry", &e.digest)?;
        }
        return Ok(Fetched::Index(entries));
    }
    let config = doc
        .config
        .ok_or_else(|| bad("the manifest has no config".into()))?;
    let layers = doc.layers.unwrap_or_default();
    check_digest(reference, "config", &config.digest)?;
    for l in &layers {
        check_digest(reference, "layer", &l.digest)?;
    }
    if let Some(l) = layers.iter().find(|l| !l.urls.is_empty()) {
        return Err(bad(format!(
            "layer {} is a foreign layer (fetched from {}); kiln pulls only from registries",
            l.digest,
            l.urls.join(", ")
        )));
    }
    Ok(Fetched::Image { config, layers })
}

/// A digest from the registry, refused before it is used anywhere (a
/// URL, a path, a message the user may paste) unless it has its
/// algorithm's form.
fn check_digest(reference: &str, what: &str, digest: &str) -> Result<()> {
    if crate::limits::valid_digest(digest) {
        return Ok(());
    }
    Err(Error::Manifest {
        reference: reference.to_string(),
        message: format!(
            "{what} digest {digest:?} is not a digest (sha256:<64 hex> or sha512:<128 hex>); refused"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn tells_manifests_from_indexes() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{{"mediaType":"x","digest":"{}","size":2}},
            "layers":[{{"mediaType":"y","digest":"{}","size":3}}]}}"#,
            d('a'),
            d('b')
        );
        assert!(
            matches!(parse("r", m.as_bytes()).unwrap(), Fetched::Image { layers, .. } if layers.len() == 1)
        );
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}","size":1,
            "platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('c')
        );
        assert!(matches!(parse("r", i.as_bytes()).unwrap(), Fetched::Index(e) if e.len() == 1));
        let v1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(parse("r", v1).unwrap_err().to_string().contains("schema 1"));
        let odd = br#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
        assert!(parse("r", odd).is_err());
        assert!(parse("r", b"not json").is_err());
    }

    #[test]
    fn digests_that_are_not_digests_are_refused() {
        let hostile = "sha256:../../../home/u/CANARY";
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{hostile}","size":1,
            "platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let config = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{hostile}","size":2}},"layers":[]}}"#
        );
        let layer = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":2}},
            "layers":[{{"digest":"{hostile}","size":3}}]}}"#,
            d('a')
        );
        for (what, doc) in [("index entry", index), ("config", config), ("layer", layer)] {
            let e = parse("r", doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(what) && e.contains(hostile), "{e}");
        }
    }
}
