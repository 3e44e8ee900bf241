//! Streams an archive member by member: the layout's metadata files into
//! memory, everything else into the store as blobs (a member under
//! `blobs/sha256/` must hash to its name). No member is written by path.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use kiln_layer::Digest;

use super::Contents;
use crate::error::{Error, Result};
use crate::Store;

const METADATA: [&str; 4] = ["manifest.json", "index.json", "oci-layout", "repositories"];
/// More than any real index or manifest list; bounds memory on hostile input.
const METADATA_MAX: u64 = 16 << 20;

pub(crate) fn scan(store: &Store, path: &Path) -> Result<Contents> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let bad = |e: std::io::Error| {
        Error::Archive(format!("{}: not a valid tar archive: {e}", path.display()))
    };
    let mut contents = Contents {
        files: BTreeMap::new(),
        blobs: BTreeMap::new(),
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./")
            .to_string();
        if METADATA.contains(&name.as_str()) {
            if entry.size() > METADATA_MAX {
                return Err(Error::Archive(format!(
                    "{name} in the archive is too large"
                )));
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(bad)?;
            contents.files.insert(name, buf);
            continue;
        }
        let expected = match name.strip_prefix("blobs/sha256/") {
            Some(hex) => Some(Digest::parse(&format!("sha256:{hex}")).map_err(|_| {
                Error::Archive(format!(
                    "{name}: a blob name must be 64 lowercase hex digits"
                ))
            })?),
            None => None,
        };
        let (digest, _) = store.put_blob_stream(&mut entry, expected.as_ref())?;
        contents.blobs.insert(name, digest);
    }
    Ok(contents)
}
