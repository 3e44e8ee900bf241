//! The store on its own: scratch cleanup after a crash, lazy layer blobs,
//! names, prune, and archives that lie.

mod common;

use std::fs;
use std::path::PathBuf;

use kiln_store::{archive, CaptureOptions, Compression, Digest, EntryRefs, PruneOptions, Store};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-store-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// A committed layer holding one file, and an image config naming it.
fn image_config(store: &Store, content: &str) -> (Digest, Vec<u8>) {
    let scratch = store.scratch().unwrap();
    let upper = scratch.path().join("upper");
    fs::create_dir(&upper).unwrap();
    fs::write(upper.join("file"), content).unwrap();
    let diff_id = store
        .commit_layer(&upper, &CaptureOptions::default())
        .unwrap();
    store.publish_layers().unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    (diff_id, config.into_bytes())
}

#[test]
fn a_dead_processs_scratch_is_removed_and_a_live_ones_kept() {
    let root = tmp("scratch");
    let store = Store::open(&root).unwrap();
    let live = store.scratch().unwrap();
    // A crashed process: its dir and an unlocked lock file.
    let dead = root.join("tmp/12345-0-dead");
    fs::create_dir_all(dead.join("upper/deep")).unwrap();
    fs::write(dead.join("lock"), "").unwrap();
    Store::open(&root).unwrap();
    assert!(!dead.exists(), "the dead scratch dir is gone");
    assert!(live.path().exists(), "a locked one stays");
    drop(live);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn layers_get_blobs_lazily_and_images_get_names() {
    let root = tmp("images");
    let store = Store::open(&root).unwrap();
    let (diff_id, config) = image_config(&store, "hello");
    assert!(store.has_layer(&diff_id));
    let blobs = || fs::read_dir(root.join("oci/blobs/sha256")).unwrap().count();
    assert_eq!(blobs(), 0, "committing a layer makes no blob");
    let image = store
        .put_image_config(&config, Compression::Gzip, &["app".into(), "app:v1".into()])
        .unwrap();
    assert_eq!(image.names, ["localhost/app:latest", "localhost/app:v1"]);
    assert_eq!(blobs(), 3, "layer, config, manifest");
    let again = store.layer_blob(&diff_id, Compression::Gzip).unwrap();
    assert_eq!(blobs(), 3, "the sidecar remembers the blob: {again:?}");
    assert_eq!(
        store.image("app:v1").unwrap().manifest_digest,
        image.manifest_digest
    );
    assert_eq!(
        store.image(&image.id()[..8]).unwrap().manifest_digest,
        image.manifest_digest
    );
    assert!(store
        .image("nope")
        .unwrap_err()
        .to_string()
        .contains("image not known: nope"));
    assert_eq!(store.remove_image("app").unwrap(), ["localhost/app:latest"]);
    assert_eq!(store.images().unwrap()[0].names, ["localhost/app:v1"]);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn prune_removes_exactly_what_nothing_references() {
    let root = tmp("prune");
    let store = Store::open(&root).unwrap();
    let (kept_layer, config) = image_config(&store, "kept");
    store
        .put_image_config(&config, Compression::Gzip, &["kept".into()])
        .unwrap();
    let (cached_layer, _) = image_config(&store, "only in the cache");
    let (stray_layer, _) = image_config(&store, "stray");
    store
        .cache_put("abcd", cached_layer.to_string().as_bytes())
        .unwrap();
    let keep = |entry: &[u8]| EntryRefs {
        layers: Digest::parse(std::str::from_utf8(entry).unwrap())
            .into_iter()
            .collect(),
        source: None,
    };
    // The entry was used just now: `until` spares it and its layer.
    let recent = PruneOptions {
        until: Some(std::time::Duration::from_secs(3600)),
        ..Default::default()
    };
    let report = store.prune(&recent, &keep).unwrap();
    assert!(store.has_layer(&kept_layer) && store.has_layer(&cached_layer));
    assert!(!store.has_layer(&stray_layer));
    assert_eq!(report.layers, 1, "{report}");
    // A plain prune drops the entries no image uses, with their layers.
    let report = store.prune(&PruneOptions::default(), &keep).unwrap();
    assert!(!store.has_layer(&cached_layer), "{report}");
    assert!(store.has_layer(&kept_layer));
    assert_eq!((report.layers, report.cache_entries), (1, 1), "{report}");
    store
        .cache_put("abcd", kept_layer.to_string().as_bytes())
        .unwrap();
    let all = store
        .prune(
            &PruneOptions {
                all: true,
                ..Default::default()
            },
            &keep,
        )
        .unwrap();
    assert_eq!(all.cache_entries, 1, "--all empties the cache, used or not");
    assert!(store.image("kept").is_ok());
    fs::remove_dir_all(&root).unwrap();
}

/// An archive member: its name and bytes.
type Member<'a> = (&'a str, Vec<u8>);

#[test]
fn lying_archives_are_refused_and_store_nothing() {
    let root = tmp("lies");
    let store = Store::open(&root).unwrap();
    let dir = tmp("lies-files");
    let bad_digest =
        br#"[{"Config":"blobs/sha256/../../x","RepoTags":["evil"],"Layers":[]}]"#.to_vec();
    let fake = format!("blobs/sha256/{}", "0".repeat(64));
    let cases: Vec<(&str, Vec<Member>)> = vec![
        ("digest path", vec![("manifest.json", bad_digest)]),
        (
            "blob mismatch",
            vec![
                (fake.as_str(), b"not what the name says".to_vec()),
                ("index.json", b"{}".to_vec()),
            ],
        ),
        (
            "dotdot member",
            vec![("../escape", b"x".to_vec()), ("index.json", b"{}".to_vec())],
        ),
        ("neither format", vec![("README", b"hi".to_vec())]),
    ];
    for (name, members) in cases {
        let file = dir.join(format!("{}.tar", name.replace(' ', "-")));
        let members: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (*n, &d[..])).collect();
        common::write_raw_tar(&file, &members);
        let err = archive::import_archive(&store, &file);
        assert!(err.is_err(), "{name}: must be refused");
        assert!(
            store.images().unwrap().is_empty(),
            "{name}: no image was stored"
        );
        assert!(!dir.parent().unwrap().join("escape").exists());
    }
    fs::remove_dir_all(&root).unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_committed_layer_is_pending_until_published() {
    let root = tmp("pending");
    let store = Store::open(&root).unwrap();
    let scratch = store.scratch().unwrap();
    let upper = scratch.path().join("upper");
    fs::create_dir(&upper).unwrap();
    fs::write(upper.join("file"), "pending").unwrap();
    let diff_id = store
        .commit_layer(&upper, &CaptureOptions::default())
        .unwrap();
    // Usable at once through this handle (a lower dir for the next step)...
    assert!(store.has_layer(&diff_id));
    let pending_dir = store.layer_dir(&diff_id);
    assert_eq!(fs::read(pending_dir.join("file")).unwrap(), b"pending");
    assert!(!upper.exists());
    // ...but not in layers/ for anyone else until published.
    let layers = root.join("layers").join(diff_id.hex());
    assert!(!layers.exists());
    assert!(!Store::open(&root).unwrap().has_layer(&diff_id));
    // Committing the same content again keeps the one pending copy.
    fs::create_dir(&upper).unwrap();
    fs::write(upper.join("file"), "pending").unwrap();
    assert_eq!(
        store
            .commit_layer(&upper, &CaptureOptions::default())
            .unwrap(),
        diff_id
    );
    assert!(!upper.exists());
    store.publish_layers().unwrap();
    assert_eq!(store.layer_dir(&diff_id), layers);
    assert!(!pending_dir.exists());
    assert_eq!(fs::read(layers.join("file")).unwrap(), b"pending");
    assert!(Store::open(&root).unwrap().has_layer(&diff_id));
    drop(scratch);
    drop(store);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_shared_staged_layer_that_duplicates_one_stays_until_published() {
    let root = tmp("staged");
    let store = Store::open(&root).unwrap();
    let scratch = store.scratch().unwrap();
    let upper = scratch.path().join("upper");
    let write_upper = || {
        fs::create_dir(&upper).unwrap();
        fs::write(upper.join("file"), "same").unwrap();
    };
    write_upper();
    let opts = CaptureOptions::default();
    let diff_id = store.commit_layer(&upper, &opts).unwrap();
    // The same content, staged and handed out as a lower dir before its
    // diffID is known (a later stage reads it while it is hashed).
    write_upper();
    let mut staged = store.stage_layer(&upper).unwrap();
    let lower = staged.share();
    assert!(!upper.exists());
    assert_eq!(fs::read(lower.join("file")).unwrap(), b"same");
    assert_eq!(store.register_layer(staged, &opts).unwrap(), diff_id);
    // A duplicate, but it may still be mounted: it stays until the publish.
    assert_ne!(store.layer_dir(&diff_id), lower);
    assert_eq!(fs::read(lower.join("file")).unwrap(), b"same");
    // Not shared: a duplicate goes at once.
    write_upper();
    let staged = store.stage_layer(&upper).unwrap();
    assert_eq!(store.register_layer(staged, &opts).unwrap(), diff_id);
    assert_eq!(
        fs::read_dir(lower.parent().unwrap()).unwrap().count(),
        3,
        "the handle's tmp dir holds its lock, the pending layer and the shared duplicate"
    );
    store.publish_layers().unwrap();
    assert!(!lower.exists());
    assert_eq!(
        fs::read(store.layer_dir(&diff_id).join("file")).unwrap(),
        b"same"
    );
    drop(scratch);
    drop(store);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_built_image_is_stored_uncompressed_and_compressed_for_export() {
    let root = tmp("built");
    let store = Store::open(&root).unwrap();
    let (diff_id, config) = image_config(&store, "built");
    let image = store
        .put_built_image(&config, Compression::Gzip, &["built".into()])
        .unwrap();
    let layer = &image.manifest.layers()[0];
    assert_eq!(layer.media_type().to_string(), kiln_layer::MEDIA_TYPE_TAR);
    assert_eq!(layer.digest().to_string(), diff_id.to_string());
    let blobs = || fs::read_dir(root.join("oci/blobs/sha256")).unwrap().count();
    assert_eq!(blobs(), 2, "config and manifest only: nothing compressed");
    // The plain tar's size, as a capture measures it.
    let mut tar = Vec::new();
    kiln_layer::capture(
        &store.layer_dir(&diff_id),
        &mut tar,
        None,
        &CaptureOptions::default(),
    )
    .unwrap();
    assert_eq!(layer.size(), tar.len() as u64);

    let exported = store.exportable(&image, Compression::Zstd).unwrap();
    assert_ne!(exported.manifest_digest, image.manifest_digest);
    assert_eq!(exported.config_digest, image.config_digest);
    assert_eq!(exported.names, image.names);
    let l = &exported.manifest.layers()[0];
    assert_eq!(l.media_type().to_string(), Compression::Zstd.media_type());
    let blob = Digest::parse(l.digest().as_ref()).unwrap();
    assert_eq!(store.read_blob(&blob).unwrap().len() as u64, l.size());
    // The stored image keeps its identity; exporting again reuses the blob.
    assert_eq!(
        store.image("built").unwrap().manifest_digest,
        image.manifest_digest
    );
    let again = store.exportable(&image, Compression::Zstd).unwrap();
    assert_eq!(again.manifest_digest, exported.manifest_digest);
    assert_eq!(
        store
            .exportable(&exported, Compression::Gzip)
            .unwrap()
            .manifest_digest,
        exported.manifest_digest
    );
    // A later build reuses the known blob instead of listing the tar.
    let rebuilt = store
        .put_built_image(&config, Compression::Zstd, &["built".into()])
        .unwrap();
    assert_eq!(rebuilt.manifest_digest, exported.manifest_digest);
    drop(store);
    fs::remove_dir_all(&root).unwrap();
}
