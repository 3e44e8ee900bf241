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

/// A member's name, refused if it could mean a place outside the archive
/// (nothing is written by name, but a name that tries is a hostile or
/// broken archive, and saying so beats a confusing error later).
fn member_name(raw: &[u8]) -> Result<String> {
    let name = std::str::from_utf8(raw)
        .map_err(|_| Error::Archive(format!("archive member name {raw:?} is not UTF-8")))?;
    let name = name.trim_start_matches("./");
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(Error::Archive(format!(
            "archive member {name:?} points outside the archive"
        )));
    }
    Ok(name.to_string())
}

pub(crate) fn scan(store: &Store, path: &Path) -> Result<Contents> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    // An archive is untrusted: the tar reader holds a whole PAX header or
    // GNU long name in memory, so those are bounded before it sees them.
    let mut archive =
        tar::Archive::new(kiln_layer::HeaderLimit::new(std::io::BufReader::new(file)));
    let bad = |e: std::io::Error| {
        Error::Archive(format!("{}: not a valid tar archive: {e}", path.display()))
    };
    let mut contents = Contents {
        files: BTreeMap::new(),
        blobs: BTreeMap::new(),
    };
    let mut links = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let name = member_name(&entry.path_bytes())?;
            let target = entry.link_name_bytes().unwrap_or_default();
            if let Some(t) = resolve_link(&name, &target, kind.is_symlink()) {
                links.push((name, t));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let name = member_name(&entry.path_bytes())?;
        if METADATA.contains(&name.as_str()) {
            // Read whole into memory: bounded like a manifest.
            if entry.size() > super::MANIFEST_MAX {
                return Err(Error::Archive(super::too_large(
                    &format!("{name} in the archive"),
                    entry.size(),
                )));
            }
            let mut buf = Vec::new();
            (&mut entry)
                .take(super::MANIFEST_MAX)
                .read_to_end(&mut buf)
                .map_err(bad)?;
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
    alias_links(&mut contents, &links);
    Ok(contents)
}

/// Where a link member points, as a member name: a symlink's target is
/// relative to its own dir, a hardlink's to the archive root. None if it
/// leaves the archive or is absolute.
fn resolve_link(name: &str, target: &[u8], symlink: bool) -> Option<String> {
    let target = std::str::from_utf8(target).ok()?;
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = match (symlink, name.rsplit_once('/')) {
        (true, Some((dir, _))) => dir.split('/').collect(),
        _ => Vec::new(),
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Old `docker save` writes a layer shared by two images once and links
/// the other `<id>/layer.tar` to it: the link name gets the same blob.
fn alias_links(contents: &mut Contents, links: &[(String, String)]) {
    // A few rounds resolve links to links; a cycle just stays unresolved.
    for _ in 0..8 {
        let mut changed = false;
        for (name, target) in links {
            if contents.blobs.contains_key(name) {
                continue;
            }
            if let Some(d) = contents.blobs.get(target).cloned() {
                contents.blobs.insert(name.clone(), d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}
