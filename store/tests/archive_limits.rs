//! Hostile layouts and archives: a manifest, index, config or
//! manifest.json over 4 MiB is refused with an error naming it (each is
//! read whole into memory), and a digest that is not `sha256:<64 hex>`
//! never becomes a path; a PAX header or GNU long name over 1 MiB is
//! refused before the tar reader holds it in memory.

mod common;

use std::fs;
use std::path::Path;

use common::{config, layer, TempDir};
use kiln_store::archive;
use kiln_store::{Compression, Digest, Image, Store};

/// Just over the 4 MiB limit: valid JSON, padded with whitespace.
fn padded(json: &[u8]) -> Vec<u8> {
    let mut v = json.to_vec();
    v.resize((4 << 20) + 1, b' ');
    v
}

/// An OCI layout of a one-layer image, and the image.
fn layout(name: &str) -> (TempDir, Image, std::path::PathBuf) {
    let dir = TempDir::new(name);
    let src = Store::open(&dir.join("store")).unwrap();
    let l = layer(&src, &[("f", "x")]);
    let image = src
        .put_image(&config(&[l]), Compression::Gzip, &[])
        .unwrap();
    let out = dir.join("layout");
    archive::export_oci_dir(&src, &image, &["localhost/big:latest".into()], &out).unwrap();
    (dir, image, out)
}

/// Writes `bytes` as a blob of the layout; its digest.
fn put(layout: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d
}

/// Points the layout's only index entry at `digest`.
fn repoint(layout: &Path, from: &Digest, to: &str, size: usize) {
    let index = fs::read_to_string(layout.join("index.json")).unwrap();
    let old_size = format!("\"size\":{}", {
        let v: serde_json::Value = serde_json::from_str(&index).unwrap();
        v["manifests"][0]["size"].as_u64().unwrap()
    });
    let index = index
        .replace(from.as_str(), to)
        .replace(&old_size, &format!("\"size\":{size}"));
    fs::write(layout.join("index.json"), index).unwrap();
}

fn import_err(layout: &Path) -> String {
    let dd = TempDir::new("dst");
    let dst = Store::open(dd.path()).unwrap();
    let err = archive::import_oci_dir(&dst, layout, None)
        .expect_err("the import should be refused")
        .to_string();
    assert!(dst.images().unwrap().is_empty(), "no image recorded");
    err
}

#[test]
fn a_huge_index_json_is_refused() {
    let (_d, _, out) = layout("big-index");
    let index = fs::read(out.join("index.json")).unwrap();
    fs::write(out.join("index.json"), padded(&index)).unwrap();
    let err = import_err(&out);
    assert!(err.contains("index.json") && err.contains("4 MiB"), "{err}");
}

#[test]
fn a_huge_manifest_is_refused() {
    let (_d, image, out) = layout("big-manifest");
    let src = Store::open(&_d.join("store")).unwrap();
    let big = padded(&src.read_blob(&image.manifest_digest).unwrap());
    let d = put(&out, &big);
    repoint(&out, &image.manifest_digest, d.as_str(), big.len());
    let err = import_err(&out);
    assert!(
        err.contains(&format!("manifest {d}")) && err.contains("4 MiB"),
        "{err}"
    );
}

#[test]
fn a_huge_config_is_refused() {
    let (_d, image, out) = layout("big-config");
    let src = Store::open(&_d.join("store")).unwrap();
    let big = padded(&src.read_blob(&image.config_digest).unwrap());
    let c = put(&out, &big);
    let manifest = String::from_utf8(src.read_blob(&image.manifest_digest).unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let old_size = v["config"]["size"].as_u64().unwrap();
    let manifest = manifest
        .replace(image.config_digest.as_str(), c.as_str())
        .replace(
            &format!("\"size\":{old_size}"),
            &format!("\"size\":{}", big.len()),
        );
    let m = put(&out, manifest.as_bytes());
    repoint(&out, &image.manifest_digest, m.as_str(), manifest.len());
    let err = import_err(&out);
    assert!(
        err.contains(&format!("image config {c}")) && err.contains("4 MiB"),
        "{err}"
    );
}

#[test]
fn a_huge_manifest_json_in_a_docker_archive_is_refused() {
    let (d, image, _) = layout("big-docker");
    let src = Store::open(&d.join("store")).unwrap();
    let tar = d.join("image.tar");
    let mut f = fs::File::create(&tar).unwrap();
    archive::export_docker_archive(&src, &image, &["localhost/big:latest".into()], &mut f).unwrap();
    drop(f);
    // The same archive with its manifest.json padded past the limit.
    let mut out = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(fs::File::open(&tar).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if name == "manifest.json" {
            data = padded(&data);
        }
        let mut h = entry.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append_data(&mut h, &name, &data[..]).unwrap();
    }
    fs::write(&tar, out.into_inner().unwrap()).unwrap();
    let dd = TempDir::new("big-docker-dst");
    let dst = Store::open(dd.path()).unwrap();
    let err = archive::import_archive(&dst, &tar).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("4 MiB"),
        "{err}"
    );
    assert!(dst.images().unwrap().is_empty());
}

#[test]
fn an_index_entry_digest_that_is_a_path_is_refused() {
    let (_d, image, out) = layout("path-digest");
    // A file the bad digest would reach if it were used as a path.
    fs::write(out.join("CANARY"), b"{}").unwrap();
    repoint(&out, &image.manifest_digest, "sha256:../../CANARY", 2);
    let err = import_err(&out);
    assert!(err.contains("../../CANARY"), "{err}");
}

#[test]
fn exporting_into_a_layout_with_a_huge_index_json_is_refused() {
    let (d, image, out) = layout("export-big-index");
    let src = Store::open(&d.join("store")).unwrap();
    let index = fs::read(out.join("index.json")).unwrap();
    fs::write(out.join("index.json"), padded(&index)).unwrap();
    let err = archive::export_oci_dir(&src, &image, &["localhost/again:1".into()], &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("index.json") && err.contains("4 MiB"), "{err}");
}

/// A tar whose first member carries a PAX extended header of `size` bytes
/// (one record, `comment=aaa…`), then a small `oci-layout` file.
fn archive_with_pax_header(path: &Path, size: usize) {
    let block = |name: &str, kind: u8, len: usize| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(len as u64);
        h.set_mode(0o644);
        h.set_cksum();
        h.as_bytes().to_vec()
    };
    let pad = |v: &mut Vec<u8>| v.resize(v.len().div_ceil(512) * 512, 0);
    // "LEN comment=VALUE\n", where LEN counts the whole record.
    let value_len = size - format!("{size} comment=\n").len();
    let record = format!("{size} comment={}\n", "a".repeat(value_len));
    assert_eq!(record.len(), size);
    let mut t = block("./PaxHeaders/oci-layout", b'x', size);
    t.extend_from_slice(record.as_bytes());
    pad(&mut t);
    let body = br#"{"imageLayoutVersion":"1.0.0"}"#;
    t.extend(block("oci-layout", b'0', body.len()));
    t.extend_from_slice(body);
    pad(&mut t);
    t.resize(t.len() + 1024, 0);
    fs::write(path, t).unwrap();
}

#[test]
fn an_archive_with_a_huge_pax_header_is_refused_before_it_is_read() {
    let dir = TempDir::new("pax");
    let store = Store::open(&dir.join("store")).unwrap();
    let path = dir.join("big-pax.tar");
    archive_with_pax_header(&path, 8 << 20);
    let err = archive::import_oci_archive(&store, &path, None)
        .expect_err("an 8 MiB PAX header should be refused")
        .to_string();
    assert!(err.contains("over the limit"), "{err}");
}
