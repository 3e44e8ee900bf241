//! Multi-platform images in the store: an index blob named in index.json
//! whose entries are per-platform images. The store still lists its
//! images, prune keeps what the index needs until its name goes, and an
//! OCI layout export names the index.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{config, layer, TempDir};
use kiln_store::{archive, Compression, EntryRefs, Image, PruneOptions, Store, Stored};
use oci_spec::image::Arch;

fn image(store: &Store, arch: Arch, content: &str) -> Image {
    let l = layer(store, &[("file", content)]);
    let mut c = config(&[l]);
    c.set_architecture(arch);
    let bytes = serde_json::to_vec(&c).unwrap();
    store
        .put_built_image(&bytes, Compression::Gzip, &[])
        .unwrap()
}

#[test]
fn an_index_is_stored_listed_exported_and_pruned() {
    let dir = TempDir::new("lists");
    let store = Store::open(dir.path()).unwrap();
    let amd = image(&store, Arch::Amd64, "amd");
    let arm = image(&store, Arch::ARM64, "arm");
    let single = image(&store, Arch::Amd64, "single");
    store.tag(&single, "single").unwrap();
    let ann = BTreeMap::from([("org.example.k".to_string(), "v".to_string())]);
    let list = store
        .put_list(
            &[amd.clone(), arm.clone()],
            &ann,
            &[BTreeMap::new(), ann.clone()],
            &["app:multi".to_string()],
        )
        .unwrap();
    assert_eq!(list.platforms(), ["linux/amd64", "linux/arm64"]);

    // The images of the store are still listed (an index is not one), and
    // the index once, under its name.
    let names: Vec<Vec<String>> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|i| i.names)
        .collect();
    assert_eq!(names.len(), 1, "the entries are the index's: {names:?}");
    assert!(
        names.contains(&vec!["localhost/single:latest".to_string()]),
        "{names:?}"
    );
    assert!(
        !names.iter().flatten().any(|n| n.contains("multi")),
        "{names:?}"
    );
    let lists = store.lists().unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].names, ["localhost/app:multi"]);
    assert!(matches!(
        store.lookup("app:multi").unwrap(),
        Stored::List(_)
    ));
    assert_eq!(
        store
            .image_for("app:multi", "linux/arm64")
            .unwrap()
            .manifest_digest,
        arm.manifest_digest
    );

    // Prune keeps every entry's layers and blobs while the index is named.
    store
        .prune(&PruneOptions::default(), &|_| EntryRefs::default())
        .unwrap();
    assert!(store.has_layer(&arm.diff_ids[0]));
    let kept = store.find_list("app:multi").unwrap().unwrap();
    assert_eq!(kept.entries.len(), 2);

    // An OCI layout names the index; the index lists both with platforms.
    let out = dir.join("layout");
    archive::export_oci_list_dir(&store, &kept, &["app:multi".into()], &out).unwrap();
    let top: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(top["manifests"].as_array().unwrap().len(), 1);
    let digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("blobs/sha256").join(&digest[7..])).unwrap())
            .unwrap();
    assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
    assert_eq!(index["manifests"][1]["annotations"]["org.example.k"], "v");
    assert_eq!(index["annotations"]["org.example.k"], "v");

    // Once its name is removed, prune takes what only it used.
    assert_eq!(
        store.remove_image("app:multi").unwrap(),
        ["localhost/app:multi"]
    );
    assert!(store.lists().unwrap().is_empty());
    store
        .prune(&PruneOptions::default(), &|_| EntryRefs::default())
        .unwrap();
    assert!(!store.has_layer(&arm.diff_ids[0]));
    assert!(store.has_layer(&single.diff_ids[0]));
}
