//! The step cache. A step's key chains its parent's key with everything
//! the step's result depends on: the instruction after expansion, for RUN
//! the environment, user, dir and network it runs with, for COPY/ADD a
//! digest of the selected source files (path, mode, owner, size, content,
//! symlink targets), for `--from` the source stage's key. The entry keeps
//! the image config after the step, so a hit restores the stage exactly
//! (layers are named by diffID in that config's rootfs).

use std::os::fd::AsFd;
use std::path::Path;

use anyhow::Result;
use kiln_layer::Digest;
use rustix::fs::{FileType, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::dockerignore::Ignore;
use super::fsops::{self, Root};
use crate::image_config::ImageConfig;

/// A stored cache entry.
#[derive(Serialize, Deserialize)]
pub struct Entry {
    pub config: ImageConfig,
}

/// Chains `parent` with `parts` into a new key (hex).
pub fn key(parent: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for p in parts {
        // Length-prefixed, so no two different part lists hash alike.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The layers a cache entry needs kept (for `kiln prune`).
pub fn cache_layers(entry: &[u8]) -> Vec<Digest> {
    serde_json::from_slice::<Entry>(entry)
        .map(|e| {
            e.config
                .rootfs
                .diff_ids
                .iter()
                .filter_map(|d| Digest::parse(d).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A digest over what COPY would read for `sources` under `root`, with
/// the same `.dockerignore` rules.
pub fn sources_digest(root: &Root, sources: &[String], ignore: Option<&Ignore>) -> Result<String> {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.as_bytes());
        h.update([0]);
        for rel in super::copy::select(root, std::slice::from_ref(s), ignore)? {
            // COPY follows a symlink named as a source, not those inside.
            hash_tree(root, &rel, true, ignore, &mut h)?;
        }
    }
    Ok(hex(&h.finalize()))
}

fn hash_tree(
    root: &Root,
    rel: &Path,
    follow: bool,
    ignore: Option<&Ignore>,
    h: &mut Sha256,
) -> Result<()> {
    let fd = root.resolve(rel, OFlags::PATH, follow)?;
    let m = fsops::meta(fd.as_fd())?;
    h.update(rel.as_os_str().as_encoded_bytes());
    h.update(format!("\0{:o}\0{}\0{}\0{}\0", m.mode, m.uid, m.gid, m.size).as_bytes());
    match m.kind {
        FileType::RegularFile => {
            let file = root.resolve(rel, OFlags::RDONLY, follow)?;
            let mut file = std::fs::File::from(file);
            std::io::copy(&mut file, h)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
            h.update(target.as_bytes());
        }
        FileType::Directory => {
            let dir = root.resolve(rel, OFlags::PATH | OFlags::DIRECTORY, true)?;
            for name in fsops::list(dir.as_fd())? {
                let child = rel.join(fsops::os(&name));
                if let Some(i) = ignore {
                    let is_dir = root
                        .stat(&child, false)
                        .is_ok_and(|m| m.kind == FileType::Directory);
                    if i.excluded(&child) && !(is_dir && i.may_reinclude_below(&child)) {
                        continue;
                    }
                }
                hash_tree(root, &child, false, ignore, h)?;
            }
        }
        _ => {}
    }
    h.update([0xff]);
    Ok(())
}
