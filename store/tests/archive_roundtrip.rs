//! Export → import round trips through every format, between two stores:
//! the same manifest and config digests, the same layer contents; and the
//! exports read by other tools (skopeo, umoci) when they are installed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{config, layer, write_raw_tar, TempDir};
use kiln_store::archive::{self};
use kiln_store::{CaptureOptions, Compression, Image, Store};

/// A source store with a two-layer image named `app` and `app:v2`.
fn source(dir: &TempDir) -> (Store, Image) {
    let store = Store::open(dir.path()).unwrap();
    let base = layer(
        &store,
        &[
            ("bin/", ""),
            ("bin/tool", "#!/bin/sh\necho tool\n"),
            ("etc/os", "test\n"),
        ],
    );
    let top = layer(&store, &[("app/data", "data"), ("app/link", "->data")]);
    let image = store
        .put_image(
            &config(&[base, top]),
            Compression::Gzip,
            &["app".into(), "app:v2".into()],
        )
        .unwrap();
    (store, image)
}

/// The imported image matches the exported one byte for byte.
fn assert_same(src: &Store, exported: &Image, dst: &Store, imported: &Image) {
    assert_eq!(imported.manifest_digest, exported.manifest_digest);
    assert_eq!(imported.config_digest, exported.config_digest);
    for d in &exported.diff_ids {
        assert!(dst.has_layer(d), "layer {d} unpacked");
        let again = kiln_layer::diff_id(&dst.layer_dir(d), &CaptureOptions::default()).unwrap();
        assert_eq!(&again, d, "the unpacked layer captures to its diffID");
        assert!(src.has_layer(d));
    }
}

#[test]
fn oci_archive_round_trip_keeps_digests_and_names() {
    let (sd, dd) = (TempDir::new("oci-src"), TempDir::new("oci-dst"));
    let (src, image) = source(&sd);
    let file = sd.join("app.oci.tar");
    let mut out = fs::File::create(&file).unwrap();
    archive::export_oci_archive(&src, &image, &image.names, &mut out).unwrap();
    drop(out);
    let dst = Store::open(dd.path()).unwrap();
    let loaded = archive::import_archive(&dst, &file).unwrap();
    assert_eq!(loaded.len(), 2, "one index entry per name");
    let got = dst.image("app:v2").unwrap();
    assert_same(&src, &image, &dst, &got);
    assert_eq!(got.names, ["localhost/app:latest", "localhost/app:v2"]);
    // A single image by reference, for FROM oci-archive:FILE:REF.
    let dd2 = TempDir::new("oci-dst2");
    let dst2 = Store::open(dd2.path()).unwrap();
    let one = archive::import_oci_archive(&dst2, &file, Some("app:v2")).unwrap();
    assert_same(&src, &image, &dst2, &one);
    assert!(one.names.is_empty(), "FROM does not tag");
    let err = archive::import_oci_archive(&dst2, &file, Some("nope")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn docker_archive_round_trip_keeps_digests_and_names() {
    let (sd, dd) = (TempDir::new("docker-src"), TempDir::new("docker-dst"));
    let (src, image) = source(&sd);
    let file = sd.join("app.docker.tar");
    let mut out = fs::File::create(&file).unwrap();
    archive::export_docker_archive(&src, &image, &["app".into()], &mut out).unwrap();
    drop(out);
    let manifest = read_member(&file, "manifest.json");
    let v: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(v[0]["RepoTags"][0], "localhost/app:latest");
    assert_eq!(v[0]["Layers"].as_array().unwrap().len(), 2);
    let dst = Store::open(dd.path()).unwrap();
    let loaded = archive::import_archive(&dst, &file).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_same(&src, &image, &dst, &loaded[0]);
    assert_eq!(loaded[0].names, ["localhost/app:latest"]);
    let dd2 = TempDir::new("docker-dst2");
    let dst2 = Store::open(dd2.path()).unwrap();
    let one = archive::import_docker_archive(&dst2, &file, Some("localhost/app")).unwrap();
    assert_same(&src, &image, &dst2, &one);
}

#[test]
fn oci_dir_round_trip_and_adding_to_a_layout() {
    let (sd, dd) = (TempDir::new("dir-src"), TempDir::new("dir-dst"));
    let (src, image) = source(&sd);
    let layout = sd.join("layout");
    archive::export_oci_dir(&src, &image, &["app".into()], &layout).unwrap();
    // A second image added to the same layout keeps the first.
    let other_layer = layer(&src, &[("other", "other")]);
    let other = src
        .put_image(
            &config(&[other_layer]),
            Compression::Gzip,
            &["other".into()],
        )
        .unwrap();
    archive::export_oci_dir(&src, &other, &["other:1".into()], &layout).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    let dst = Store::open(dd.path()).unwrap();
    let got = archive::import_oci_dir(&dst, &layout, Some("app")).unwrap();
    assert_same(&src, &image, &dst, &got);
    let got = archive::import_oci_dir(&dst, &layout, Some("localhost/other:1")).unwrap();
    assert_eq!(got.manifest_digest, other.manifest_digest);
    let err = archive::import_oci_dir(&dst, &layout, None).unwrap_err();
    assert!(err.to_string().contains("several images"), "{err}");
}

#[test]
fn a_layout_with_a_tampered_blob_or_path_digest_is_refused() {
    let (sd, dd) = (TempDir::new("bad-src"), TempDir::new("bad-dst"));
    let (src, image) = source(&sd);
    let layout = sd.join("layout");
    archive::export_oci_dir(&src, &image, &["app".into()], &layout).unwrap();
    let dst = Store::open(dd.path()).unwrap();
    // A layer blob whose bytes do not match its name.
    let l = image.manifest.layers()[1].digest().to_string();
    let blob_path = layout.join("blobs/sha256").join(&l["sha256:".len()..]);
    let good = fs::read(&blob_path).unwrap();
    fs::write(&blob_path, b"tampered").unwrap();
    let err = archive::import_oci_dir(&dst, &layout, Some("app")).unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
    assert!(dst.images().unwrap().is_empty(), "no partial image");
    assert!(!dst.has_layer(&image.diff_ids[1]));
    fs::write(&blob_path, good).unwrap();
    // An index entry whose digest would be a path outside the layout.
    let index = fs::read_to_string(layout.join("index.json")).unwrap();
    let m = image.manifest_digest.to_string();
    fs::write(
        layout.join("index.json"),
        index.replace(&m, "sha256:../../../etc/passwd"),
    )
    .unwrap();
    assert!(archive::import_oci_dir(&dst, &layout, Some("app")).is_err());
    assert!(dst.images().unwrap().is_empty(), "no partial image");
}

#[test]
fn archive_members_with_dotdot_or_bad_blob_names_are_refused() {
    let dd = TempDir::new("members");
    let dst = Store::open(dd.path()).unwrap();
    for (name, member) in [
        ("dotdot", "blobs/../../escape"),
        ("absolute", "/etc/escape"),
        ("short blob", "blobs/sha256/abcd"),
    ] {
        let file = dd.join(&format!("{}.tar", name.replace(' ', "-")));
        write_raw_tar(
            &file,
            &[
                (member, b"x"),
                ("index.json", br#"{"schemaVersion":2,"manifests":[]}"#),
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ],
        );
        let err = archive::import_archive(&dst, &file)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("archive member") || err.contains("blob name"),
            "{name}: {err}"
        );
        assert!(dst.images().unwrap().is_empty());
    }
}

/// `skopeo inspect` reads both archive kinds; `umoci unpack` reads the
/// layout dir (skipped with a note when the tools are missing).
#[test]
fn other_tools_read_the_exports() {
    let sd = TempDir::new("tools");
    let (src, image) = source(&sd);
    if common::have("skopeo") {
        for (kind, f) in [
            ("oci-archive", archive::export_oci_archive as ExportFn),
            ("docker-archive", archive::export_docker_archive as ExportFn),
        ] {
            let file = sd.join(&format!("{kind}.tar"));
            let mut out = fs::File::create(&file).unwrap();
            f(&src, &image, &["app".into()], &mut out).unwrap();
            drop(out);
            let o = Command::new("skopeo")
                .args(["inspect", "--raw"])
                .arg(format!("{kind}:{}", file.display()))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{kind}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let o = Command::new("skopeo")
                .arg("inspect")
                .arg(format!("{kind}:{}", file.display()))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{kind}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2), "{kind}: {v}");
        }
    }
    if common::have("umoci") {
        let layout = sd.join("layout");
        archive::export_oci_dir(&src, &image, &["app".into()], &layout).unwrap();
        let bundle = sd.join("bundle");
        let o = Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:localhost/app:latest", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "umoci: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let data = fs::read_to_string(bundle.join("rootfs/app/data")).unwrap();
        assert_eq!(data, "data");
        assert!(bundle.join("rootfs/bin/tool").is_file());
    }
}

type ExportFn = fn(&Store, &Image, &[String], &mut dyn std::io::Write) -> kiln_store::Result<()>;

/// One member of a tar file, read back for inspection.
fn read_member(file: &Path, name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut a = tar::Archive::new(fs::File::open(file).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).unwrap();
            return buf;
        }
    }
    panic!("{name} not in {}", file.display());
}
