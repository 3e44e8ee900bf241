//! `FROM oci:DIR:TAG --platform …`: a layout holding a tag once per
//! platform, or a tag naming an index, gives the image of the platform
//! asked for.

mod common;

use std::fs;

use common::{config, layer, TempDir};
use kiln_store::archive;
use kiln_store::{Compression, Digest, Image, Store};

/// A layout whose index.json holds `app` twice: amd64 and arm64 images
/// (different layers), each entry with its platform.
fn two_platform_layout(src: &Store, dir: &std::path::Path) -> (Image, Image) {
    let mut images = Vec::new();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let l = layer(src, &[("arch", arch)]);
        let image = src
            .put_image(&config(&[l]), Compression::Gzip, &[])
            .unwrap();
        archive::export_oci_dir(src, &image, &[], dir).unwrap();
        let size = src.read_blob(&image.manifest_digest).unwrap().len();
        entries.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"app"}}}}"#,
            image.manifest_digest
        ));
        images.push(image);
    }
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
        entries.join(",")
    );
    fs::write(dir.join("index.json"), index).unwrap();
    let arm = images.pop().unwrap();
    (images.pop().unwrap(), arm)
}

#[test]
fn a_tag_held_once_per_platform_gives_the_platform_asked_for() {
    let (sd, dd) = (TempDir::new("plat-src"), TempDir::new("plat-dst"));
    let src = Store::open(sd.path()).unwrap();
    let layout = sd.join("layout");
    let (amd, arm) = two_platform_layout(&src, &layout);
    let dst = Store::open(dd.path()).unwrap();
    let got = archive::import_oci_dir_for(&dst, &layout, Some("app"), "linux/arm64").unwrap();
    assert_eq!(got.manifest_digest, arm.manifest_digest);
    let got = archive::import_oci_dir_for(&dst, &layout, Some("app"), "linux/amd64").unwrap();
    assert_eq!(got.manifest_digest, amd.manifest_digest);
}

#[test]
fn an_index_gives_the_platform_asked_for_or_names_those_it_has() {
    let (sd, dd) = (TempDir::new("idx-src"), TempDir::new("idx-dst"));
    let src = Store::open(sd.path()).unwrap();
    let layout = sd.join("layout");
    let (_, arm) = two_platform_layout(&src, &layout);
    // The same two entries as a nested index under one tag (what
    // `skopeo copy --all` writes).
    let entries = fs::read_to_string(layout.join("index.json")).unwrap();
    let list = entries.replace(
        r#","annotations":{"org.opencontainers.image.ref.name":"app"}"#,
        "",
    );
    let list_digest = Digest::of(list.as_bytes());
    fs::write(layout.join("blobs/sha256").join(list_digest.hex()), &list).unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{list_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"multi"}}}}]}}"#,
        list.len()
    );
    fs::write(layout.join("index.json"), index).unwrap();
    let dst = Store::open(dd.path()).unwrap();
    let got = archive::import_oci_dir_for(&dst, &layout, Some("multi"), "linux/arm64/v8").unwrap();
    assert_eq!(got.manifest_digest, arm.manifest_digest);
    let err = archive::import_oci_dir_for(&dst, &layout, Some("multi"), "linux/s390x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no image for linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}
