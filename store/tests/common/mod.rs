//! Helpers shared by the store's integration tests: temp dirs that clean
//! up, layers made of plain files, image configs naming them.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::path::{Path, PathBuf};

use kiln_store::{CaptureOptions, Digest, Store};
use oci_spec::image::{Arch, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "kiln-store-it-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("create a temp dir");
        TempDir(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Commits a layer holding `files` (path → content; a path ending in `/`
/// is a dir, content starting with `->` a symlink target).
pub fn layer(store: &Store, files: &[(&str, &str)]) -> Digest {
    let scratch = store.scratch().expect("scratch");
    let upper = scratch.path().join("upper");
    fs::create_dir(&upper).expect("mkdir upper");
    for (path, content) in files {
        let p = upper.join(path);
        if path.ends_with('/') {
            fs::create_dir_all(&p).expect("mkdir");
            continue;
        }
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        match content.strip_prefix("->") {
            Some(target) => std::os::unix::fs::symlink(target, &p).expect("symlink"),
            None => fs::write(&p, content).expect("write"),
        }
    }
    let diff_id = store
        .commit_layer(&upper, &CaptureOptions::default())
        .expect("commit_layer");
    store.publish_layers().expect("publish_layers");
    diff_id
}

/// A linux/amd64 config with these layers.
pub fn config(diff_ids: &[Digest]) -> ImageConfiguration {
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>())
        .build()
        .expect("rootfs");
    ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .created("2024-01-01T00:00:00Z")
        .rootfs(rootfs)
        .build()
        .expect("config")
}

/// The names in `oci/index.json`, sorted.
pub fn index_names(root: &Path) -> Vec<String> {
    let bytes = fs::read(root.join("oci/index.json")).expect("index.json");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json parses");
    let mut names: Vec<String> = v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// True if `tool` is on PATH; prints a note when it is not.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: {tool} is not installed; skipping the part that needs it");
    }
    found
}

/// Writes a tar with raw member names (the tar crate's own checks would
/// refuse `..` and absolute names, which the tests need).
pub fn write_raw_tar(path: &Path, members: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.finish().unwrap();
}
