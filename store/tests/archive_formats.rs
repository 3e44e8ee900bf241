//! Inputs kiln does not write itself: manifest lists (the host platform is
//! picked) and the legacy docker-archive layout (`<id>/layer.tar`,
//! uncompressed, config as `<hex>.json`).

mod common;

use std::fs;
use std::path::Path;

use common::{config, layer, TempDir};
use kiln_store::archive;
use kiln_store::{CaptureOptions, Compression, Digest, Store};

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn a_manifest_list_yields_the_host_platforms_image() {
    let (sd, dd) = (TempDir::new("list-src"), TempDir::new("list-dst"));
    let src = Store::open(sd.path()).unwrap();
    let l = layer(&src, &[("f", "multi")]);
    let image = src
        .put_image(&config(&[l]), Compression::Gzip, &[])
        .unwrap();
    let layout = sd.join("layout");
    archive::export_oci_dir(&src, &image, &[], &layout).unwrap();
    let size = src.read_blob(&image.manifest_digest).unwrap().len();
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
        {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":1,"platform":{{"architecture":"{other}","os":"linux"}}}},
        {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{size},"platform":{{"architecture":"{}","os":"linux"}}}}]}}"#,
        "0".repeat(64),
        image.manifest_digest,
        host_arch()
    );
    let list_digest = Digest::of(list.as_bytes());
    fs::write(layout.join("blobs/sha256").join(list_digest.hex()), &list).unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{list_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"localhost/multi:latest"}}}}]}}"#,
        list.len()
    );
    fs::write(layout.join("index.json"), index).unwrap();
    let dst = Store::open(dd.path()).unwrap();
    let got = archive::import_oci_dir(&dst, &layout, Some("multi")).unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
    assert!(dst.has_layer(&image.diff_ids[0]));
}

#[test]
fn a_legacy_docker_archive_with_plain_layer_tars_loads() {
    let (sd, dd) = (TempDir::new("legacy-src"), TempDir::new("legacy-dst"));
    let src = Store::open(sd.path()).unwrap();
    let a = layer(&src, &[("etc/", ""), ("etc/a", "a")]);
    let b = layer(&src, &[("b", "b")]);
    let image = src
        .put_image(&config(&[a.clone(), b.clone()]), Compression::Gzip, &[])
        .unwrap();
    let cfg = src.read_blob(&image.config_digest).unwrap();
    let cfg_name = format!("{}.json", image.config_digest.hex());
    let mut members: Vec<(String, Vec<u8>)> = vec![(cfg_name.clone(), cfg)];
    let mut layer_names = Vec::new();
    for d in [&a, &b] {
        let mut tar = Vec::new();
        let got = kiln_layer::capture(
            &src.layer_dir(d),
            &mut tar,
            None,
            &CaptureOptions::default(),
        )
        .unwrap();
        assert_eq!(&got.diff_id, d);
        let name = format!("{}/layer.tar", d.hex());
        members.push((format!("{}/VERSION", d.hex()), b"1.0".to_vec()));
        members.push((name.clone(), tar));
        layer_names.push(name);
    }
    // A second image sharing layer a through a symlinked layer.tar, as old
    // docker save writes shared layers.
    let linked = format!("{}/layer.tar", "c".repeat(64));
    let one = serde_json::json!([
        { "Config": cfg_name, "RepoTags": ["old:1"], "Layers": layer_names },
    ]);
    let two = serde_json::json!([
        { "Config": cfg_name, "RepoTags": ["old:1"], "Layers": layer_names },
        { "Config": cfg_name, "RepoTags": ["old:2"], "Layers": [linked, layer_names[1]] },
    ]);
    let mut linked_members = members.clone();
    linked_members.push(("manifest.json".into(), two.to_string().into_bytes()));
    members.push(("manifest.json".into(), one.to_string().into_bytes()));
    let file = sd.join("legacy.tar");
    write_tar(&file, &members);
    let with_link = sd.join("legacy-link.tar");
    write_tar_with_link(
        &with_link,
        &linked_members,
        (&linked, &format!("../{}/layer.tar", a.hex())),
    );
    let dl = TempDir::new("legacy-link");
    let dst_link = Store::open(dl.path()).unwrap();
    let loaded = archive::import_archive(&dst_link, &with_link).unwrap();
    assert_eq!(loaded.len(), 2, "both images, one via the symlinked layer");
    assert_eq!(loaded[1].names, ["localhost/old:2"]);
    assert_eq!(loaded[1].config_digest, image.config_digest);

    let dst = Store::open(dd.path()).unwrap();
    let loaded = archive::import_archive(&dst, &file).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, ["localhost/old:1"]);
    assert_eq!(loaded[0].config_digest, image.config_digest);
    assert_eq!(loaded[0].diff_ids, [a.clone(), b]);
    assert_eq!(
        fs::read_to_string(dst.layer_dir(&a).join("etc/a")).unwrap(),
        "a"
    );
    // Layers whose bytes disagree with the config's diffIDs are refused.
    let dd2 = TempDir::new("legacy-dst2");
    let dst2 = Store::open(dd2.path()).unwrap();
    let swapped: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| {
            if n.ends_with("layer.tar") && n.starts_with(a.hex()) {
                (n.clone(), members[4].1.clone()) // b's tar under a's name
            } else {
                (n.clone(), d.clone())
            }
        })
        .collect();
    write_tar(&file, &swapped);
    let err = archive::import_archive(&dst2, &file).unwrap_err();
    assert!(err.to_string().contains("diff"), "{err}");
    assert!(dst2.images().unwrap().is_empty(), "no partial image");
}

/// Like `write_tar`, plus one symlink member (name, target).
fn write_tar_with_link(path: &Path, members: &[(String, Vec<u8>)], link: (&str, &str)) {
    let mut b = tar_of(path, members);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, link.0, link.1).unwrap();
    b.finish().unwrap();
}

fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    tar_of(path, members).finish().unwrap();
}

/// A tar builder at `path` with the regular-file `members` appended.
fn tar_of(path: &Path, members: &[(String, Vec<u8>)]) -> tar::Builder<fs::File> {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b
}

/// An archive that pairs its own blob with a layer the store already has
/// must not get that blob recorded as the layer's compressed form.
#[test]
fn a_blob_claiming_an_existing_layer_is_checked() {
    let dd = TempDir::new("claim");
    let store = Store::open(dd.path()).unwrap();
    let trusted = layer(&store, &[("trusted", "yes")]);
    let evil_src = TempDir::new("claim-src");
    let src = Store::open(evil_src.path()).unwrap();
    let evil = layer(&src, &[("evil", "yes")]);
    let evil_blob = src.layer_blob(&evil, Compression::Gzip).unwrap();
    let blob = Digest::parse(evil_blob.digest().as_ref()).unwrap();
    let bytes = src.read_blob(&blob).unwrap();
    store.put_blob(&bytes).unwrap();
    let err = store
        .import_layer(
            &mut &bytes[..],
            &blob,
            Compression::Gzip.media_type(),
            Some(&trusted),
        )
        .unwrap_err();
    assert!(err.to_string().contains("diff"), "{err}");
    let desc = store.layer_blob(&trusted, Compression::Gzip).unwrap();
    assert_ne!(desc.digest().as_ref(), blob.as_str());
}
