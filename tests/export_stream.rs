//! Archive exports of an image no tag keeps compress its layers straight
//! into the archive: the store is left without the compressed blobs (it
//! would keep them until a prune, for nothing), and the archive still
//! loads in podman and unpacks in umoci. With a tag the blobs stay in the
//! store for the next export or push. Run by scripts/test-build.sh as an
//! unprivileged user.

mod support;

use std::fs;
use std::path::Path;

use support::{text, tool, Case};

const DATA: usize = 2 << 20;

/// The store's blobs of at least `DATA` bytes: only a layer blob is.
fn big_blobs(store: &Path) -> Vec<String> {
    fs::read_dir(store.join("oci/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.metadata().unwrap().len() >= DATA as u64)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The layer digests (hex) an archive's manifest lists.
fn layer_digests(archive: &Path) -> Vec<String> {
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap()["sha256:".len()..].to_string())
        .collect()
}

/// `podman load` of an untagged archive, then the size of /data/rand.bin
/// in the loaded image (by its ID).
fn loaded_data_size(archive: &Path) -> String {
    let loaded = tool("podman", &["load", "-q", "-i", archive.to_str().unwrap()]);
    let id = loaded.split_whitespace().last().unwrap().to_string();
    let size = tool(
        "podman",
        &["run", "--rm", &id, "sh", "-c", "wc -c < /data/rand.bin"],
    );
    let _ = std::process::Command::new("podman")
        .args(["rmi", "-f", &id])
        .output();
    size.trim().to_string()
}

fn case_with_data(name: &str) -> Case {
    let case = Case::new(name);
    fs::write(case.ctx().join("rand.bin"), support::random_bytes(DATA)).unwrap();
    case.dockerfile("FROM BASE\nCOPY rand.bin /data/\n");
    case
}

/// `-o type=docker,dest=F` without `-t`: the gzip layer is in the archive
/// (podman loads and runs it) and not in the store; with `-t` it is kept.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn untagged_docker_export_leaves_no_blob_in_the_store() {
    let case = case_with_data("stream-docker");
    let archive = case.path("image.tar");
    let dest = format!("type=docker,dest={}", archive.display());
    case.build(&["-o", &dest]);
    let top = layer_digests(&archive).pop().unwrap();
    assert!(
        !case.store().join("oci/blobs/sha256").join(&top).exists(),
        "the layer blob {top} was staged in the store"
    );
    assert_eq!(big_blobs(&case.store()), Vec::<String>::new());
    // Nothing spilled is left beside the archive.
    let left: Vec<_> = fs::read_dir(case.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kiln-export"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    assert_eq!(loaded_data_size(&archive), DATA.to_string());

    // A tagged image keeps its blob for the next export or push.
    case.build(&["-t", "kept", "-o", &dest]);
    let top = layer_digests(&archive).pop().unwrap();
    assert_eq!(big_blobs(&case.store()), vec![top]);
}

/// `-o type=oci,dest=-` in zstd without `-t`: the archive on stdout
/// loads in podman (which checks every digest) with the data intact, and
/// the store holds no layer blob.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn untagged_oci_export_to_stdout_leaves_no_blob_in_the_store() {
    let case = case_with_data("stream-oci");
    let ctx = case.ctx();
    let out = case.kiln(&[
        "build",
        "-q",
        "--compression",
        "zstd",
        "-o",
        "type=oci,dest=-",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let archive = case.path("image.oci.tar");
    fs::write(&archive, &out.stdout).unwrap();
    assert_eq!(big_blobs(&case.store()), Vec::<String>::new());

    assert_eq!(loaded_data_size(&archive), DATA.to_string());
}
