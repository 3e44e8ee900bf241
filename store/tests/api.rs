//! The store's API beyond the basics in store.rs: typed configs, tags and
//! removal, names, concurrent writers, scratch and locks, import_layer,
//! cache keys, prune keeping unnamed images.

mod common;

use std::fs;
use std::sync::Arc;

use common::{config, index_names, layer, TempDir};
use kiln_store::{normalize_name, Compression, Digest, EntryRefs, PruneOptions, Store};

#[test]
fn put_image_takes_a_typed_config_and_records_it() {
    let dir = TempDir::new("typed");
    let store = Store::open(dir.path()).unwrap();
    let a = layer(
        &store,
        &[("etc/", ""), ("etc/hi", "hi\n"), ("link", "->etc/hi")],
    );
    let b = layer(&store, &[("b", "b")]);
    let image = store
        .put_image(
            &config(&[a.clone(), b.clone()]),
            Compression::Zstd,
            &["typed".into()],
        )
        .unwrap();
    assert_eq!(image.diff_ids, [a, b]);
    assert_eq!(image.config.rootfs().diff_ids().len(), 2);
    assert_eq!(image.created.as_deref(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(image.id(), image.config_digest.hex());
    for l in image.manifest.layers() {
        assert_eq!(l.media_type().to_string(), Compression::Zstd.media_type());
        let d = Digest::parse(l.digest().as_ref()).unwrap();
        assert!(store.has_blob(&d));
        assert_eq!(store.read_blob(&d).unwrap().len() as u64, l.size());
    }
    // The config blob is what the ID hashes.
    let bytes = store.read_blob(&image.config_digest).unwrap();
    assert_eq!(Digest::of(&bytes), image.config_digest);
}

#[test]
fn an_unnamed_image_is_listed_and_survives_prune() {
    let dir = TempDir::new("unnamed");
    let store = Store::open(dir.path()).unwrap();
    let l = layer(&store, &[("f", "unnamed")]);
    let image = store
        .put_image(&config(std::slice::from_ref(&l)), Compression::Gzip, &[])
        .unwrap();
    let listed = store.images().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].names.is_empty());
    store
        .prune(&PruneOptions::default(), &|_| EntryRefs::default())
        .unwrap();
    assert!(
        store.has_layer(&l),
        "an unnamed image's layer is referenced"
    );
    assert!(store.image(image.id()).is_ok());
    let report = store
        .prune(
            &PruneOptions {
                all: true,
                ..Default::default()
            },
            &|_| EntryRefs::default(),
        )
        .unwrap();
    assert_eq!(report.images, 1, "--all drops unnamed images: {report}");
    assert!(!store.has_layer(&l));
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn tag_lookup_and_removal_by_name_and_by_id() {
    let dir = TempDir::new("tags");
    let store = Store::open(dir.path()).unwrap();
    let l = layer(&store, &[("f", "tags")]);
    let image = store
        .put_image(&config(&[l]), Compression::Gzip, &["one".into()])
        .unwrap();
    store.tag(&image, "two:2").unwrap();
    store.tag(&image, "quay.io/x/three").unwrap();
    store.tag(&image, "two:2").unwrap();
    let got = store.image("localhost/two:2").unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
    assert_eq!(
        got.names,
        [
            "localhost/one:latest",
            "localhost/two:2",
            "quay.io/x/three:latest"
        ]
    );
    assert_eq!(store.images().unwrap().len(), 1, "one image, three names");
    // By manifest digest prefix, and by full ID with and without sha256:.
    let m = image.manifest_digest.hex();
    assert_eq!(
        store.image(&m[..6]).unwrap().config_digest,
        image.config_digest
    );
    assert!(store.image(image.config_digest.as_ref()).is_ok());
    assert!(store.image(&image.id()[..3]).is_err(), "too short a prefix");
    assert_eq!(store.remove_image("two:2").unwrap(), ["localhost/two:2"]);
    assert!(store.image("two:2").is_err());
    let mut removed = store.remove_image(&image.id()[..12]).unwrap();
    removed.sort();
    assert_eq!(removed, ["localhost/one:latest", "quay.io/x/three:latest"]);
    assert!(store.images().unwrap().is_empty());
    let err = store.remove_image("one").unwrap_err().to_string();
    assert!(err.contains("image not known: one"), "{err}");
    // A tag moves: naming a second image "one" takes it from the first.
    let l2 = layer(&store, &[("g", "second")]);
    let first = store
        .put_image(&config(&[]), Compression::Gzip, &["one".into()])
        .unwrap();
    let second = store
        .put_image(&config(&[l2]), Compression::Gzip, &["one".into()])
        .unwrap();
    assert_eq!(
        store.image("one").unwrap().manifest_digest,
        second.manifest_digest
    );
    assert!(
        store.image(first.id()).is_err(),
        "the untagged first image has no entry left"
    );
}

#[test]
fn names_normalise_like_podman() {
    let cases = [
        ("foo", "localhost/foo:latest"),
        ("foo:1", "localhost/foo:1"),
        ("localhost/foo", "localhost/foo:latest"),
        ("localhost:5000/foo", "localhost:5000/foo:latest"),
        ("registry.example.com/a/b:c", "registry.example.com/a/b:c"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/library/alpine:3", "docker.io/library/alpine:3"),
        ("a.b/c_d-e.f", "a.b/c_d-e.f:latest"),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_name(input).unwrap(), want, "{input}");
        assert_eq!(normalize_name(want).unwrap(), want, "idempotent: {want}");
    }
    let d = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        normalize_name(&format!("foo@{d}")).unwrap(),
        format!("localhost/foo@{d}")
    );
    for bad in [
        "Foo",
        "foo bar",
        "foo:",
        ":x",
        "foo/",
        "/foo",
        "foo@sha256:1234",
        "a/../b",
    ] {
        let err = normalize_name(bad).unwrap_err().to_string();
        assert!(err.contains("invalid image name"), "{bad}: {err}");
    }
}

#[test]
fn two_writers_at_once_both_keep_their_names() {
    let dir = TempDir::new("concurrent");
    let setup = Store::open(dir.path()).unwrap();
    let l = layer(&setup, &[("f", "shared")]);
    let root = Arc::new(dir.path().to_path_buf());
    // Separate handles, as two processes have: the flock on index.lock is
    // per open file, so these contend exactly like processes do.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let root = Arc::clone(&root);
            let l = l.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                let _build = store.build_lock().unwrap();
                for i in 0..15 {
                    store
                        .put_image(
                            &config(std::slice::from_ref(&l)),
                            Compression::Gzip,
                            &[format!("t{t}-{i}")],
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let names = index_names(dir.path());
    assert_eq!(names.len(), 30, "{names:?}");
    assert_eq!(setup.images().unwrap()[0].names.len(), 30);
}

#[test]
fn a_scratch_dir_goes_on_drop_and_open_spares_live_ones() {
    let dir = TempDir::new("scratch");
    let store = Store::open(dir.path()).unwrap();
    let s = store.scratch().unwrap();
    let p = s.path().to_path_buf();
    fs::create_dir_all(p.join("a/b")).unwrap();
    fs::write(p.join("a/b/c"), "x").unwrap();
    // Another process opening the store meanwhile leaves it alone.
    let other = Store::open(dir.path()).unwrap();
    assert!(p.join("a/b/c").exists());
    drop(s);
    assert!(!p.exists(), "removed on drop");
    // Open also removes a dead process's stray files with no lock, once old
    // enough not to be a live process's dir between mkdir and lock.
    drop(other);
    drop(store);
    let left: Vec<_> = fs::read_dir(dir.join("tmp")).unwrap().collect();
    assert!(
        left.is_empty(),
        "every handle cleaned its own tmp dir: {left:?}"
    );
}

#[test]
fn build_lock_is_shared_and_prune_waits_for_it() {
    let dir = TempDir::new("gclock");
    let store = Store::open(dir.path()).unwrap();
    let a = store.build_lock().unwrap();
    let b = store.build_lock().unwrap(); // shared: two builds at once
    let root = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let pruner = std::thread::spawn(move || {
        let s = Store::open(&root).unwrap();
        s.prune(&PruneOptions::default(), &|_| EntryRefs::default())
            .unwrap();
        tx.send(()).unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(rx.try_recv().is_err(), "prune must wait for running builds");
    drop((a, b));
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    pruner.join().unwrap();
}

#[test]
fn import_layer_verifies_and_records_the_compressed_blob() {
    let src_dir = TempDir::new("import-src");
    let src = Store::open(src_dir.path()).unwrap();
    let l = layer(&src, &[("x/y", "imported")]);
    let desc = src.layer_blob(&l, Compression::Gzip).unwrap();
    let blob = Digest::parse(desc.digest().as_ref()).unwrap();
    let bytes = src.read_blob(&blob).unwrap();

    let dst_dir = TempDir::new("import-dst");
    let dst = Store::open(dst_dir.path()).unwrap();
    // A wrong diffID is refused and leaves no layer.
    let wrong = Digest::of(b"not this");
    let err = dst
        .import_layer(
            &mut &bytes[..],
            &blob,
            Compression::Gzip.media_type(),
            Some(&wrong),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains(wrong.hex()) || err.to_string().contains("diff"),
        "{err}"
    );
    assert!(!dst.has_layer(&wrong) && !dst.has_layer(&l));
    // Kept blob + right digests: the layer lands and the sidecar is used.
    dst.put_blob(&bytes).unwrap();
    let got = dst
        .import_layer(&mut &bytes[..], &blob, Compression::Gzip.media_type(), None)
        .unwrap();
    assert_eq!(got, l);
    assert_eq!(
        fs::read_to_string(dst.layer_dir(&l).join("x/y")).unwrap(),
        "imported"
    );
    assert_eq!(dst.layer_blob(&l, Compression::Gzip).unwrap(), desc);
    assert!(dst_dir.join(&format!("layers/{}.json", l.hex())).is_file());
}

#[test]
fn cache_entries_round_trip_and_keys_are_checked() {
    let dir = TempDir::new("cache");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.cache_get("abc123").unwrap(), None);
    store.cache_put("abc123", b"entry").unwrap();
    assert_eq!(
        store.cache_get("abc123").unwrap().as_deref(),
        Some(&b"entry"[..])
    );
    for bad in ["", "../x", "abc/def", "zz"] {
        assert!(store.cache_put(bad, b"x").is_err(), "{bad:?}");
        assert!(store.cache_get(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn blobs_verify_on_the_way_in() {
    let dir = TempDir::new("blobs");
    let store = Store::open(dir.path()).unwrap();
    let d = store.put_blob(b"hello").unwrap();
    assert_eq!(store.read_blob(&d).unwrap(), b"hello");
    let (d2, n) = store.put_blob_stream(&mut &b"hello"[..], Some(&d)).unwrap();
    assert_eq!((d2, n), (d.clone(), 5));
    let liar = Digest::of(b"something else");
    assert!(store
        .put_blob_stream(&mut &b"hello!"[..], Some(&liar))
        .is_err());
    assert!(!store.has_blob(&liar) && !store.has_blob(&Digest::of(b"hello!")));
    let missing = store.read_blob(&liar).unwrap_err().to_string();
    assert!(missing.contains(liar.hex()), "{missing}");
    assert!(store.open_blob(&liar).is_err());
}

#[test]
fn docker_style_configs_with_nulls_load() {
    let dir = TempDir::new("docker-config");
    let store = Store::open(dir.path()).unwrap();
    let l = layer(&store, &[("f", "docker")]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
        "config":{{"Hostname":"","Env":["PATH=/bin"],"Cmd":["sh"],"Entrypoint":null,
        "Volumes":null,"OnBuild":null,"Labels":null,"WorkingDir":"","ArgsEscaped":true,
        "ExposedPorts":{{"80/tcp":{{}}}},"Healthcheck":{{"Test":["NONE"]}}}},
        "container_config":{{"Cmd":null}},"docker_version":"20.10",
        "history":[{{"created":"2024-01-01T00:00:00Z","created_by":"x","empty_layer":true}},
        {{"created_by":"y"}}],
        "rootfs":{{"type":"layers","diff_ids":["{l}"]}}}}"#
    );
    let image = store
        .put_image_config(config.as_bytes(), Compression::Gzip, &["d".into()])
        .unwrap();
    assert_eq!(
        store.read_blob(&image.config_digest).unwrap(),
        config.as_bytes()
    );
    assert_eq!(store.image("d").unwrap().diff_ids, [l]);
}

/// Run as a child by `two_processes_write_at_once` (a no-op otherwise):
/// puts ten images named `<prefix>-<i>` into the store at $KILN_STORE_CHILD.
#[test]
fn child_puts_images_from_env() {
    let (Ok(root), Ok(prefix)) = (
        std::env::var("KILN_STORE_CHILD"),
        std::env::var("KILN_STORE_PREFIX"),
    ) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    let _build = store.build_lock().unwrap();
    let l = layer(&store, &[("f", prefix.as_str())]);
    for i in 0..10 {
        store
            .put_image(
                &config(std::slice::from_ref(&l)),
                Compression::Gzip,
                &[format!("{prefix}-{i}")],
            )
            .unwrap();
    }
}

#[test]
fn two_processes_write_at_once() {
    let dir = TempDir::new("processes");
    Store::open(dir.path()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p", "q"]
        .iter()
        .map(|prefix| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_puts_images_from_env", "--test-threads=1"])
                .env("KILN_STORE_CHILD", dir.path())
                .env("KILN_STORE_PREFIX", prefix)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let names = index_names(dir.path());
    assert_eq!(names.len(), 20, "{names:?}");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.images().unwrap().len(), 2);
    let left: Vec<_> = fs::read_dir(dir.join("tmp")).unwrap().collect();
    assert_eq!(left.len(), 1, "only this handle's own tmp dir: {left:?}");
}

#[test]
fn opens_racing_to_clean_the_same_stale_dirs_all_succeed() {
    let dir = TempDir::new("racing-clean");
    drop(Store::open(dir.path()).unwrap());
    for i in 0..30 {
        let d = dir.join(&format!("tmp/999999-{i}-dead"));
        fs::create_dir_all(d.join("upper/a/b/c")).unwrap();
        for f in 0..20 {
            fs::write(d.join(format!("upper/a/b/c/{f}")), "x").unwrap();
        }
        fs::write(d.join("lock"), "").unwrap();
    }
    let root = Arc::new(dir.path().to_path_buf());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || Store::open(&root).map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let left: Vec<_> = fs::read_dir(dir.join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn prune_leaves_exactly_the_referenced_blobs_and_cleans_dead_tmp() {
    let dir = TempDir::new("prune-exact");
    let store = Store::open(dir.path()).unwrap();
    let kept = layer(&store, &[("kept", "k")]);
    let gone = layer(&store, &[("gone", "g")]);
    let image = store
        .put_image(
            &config(std::slice::from_ref(&kept)),
            Compression::Gzip,
            &["k".into()],
        )
        .unwrap();
    // A blob and sidecar for the unreferenced layer, a loose blob, a
    // second compression of the kept layer, a dead process's scratch.
    store.layer_blob(&gone, Compression::Gzip).unwrap();
    store.layer_blob(&kept, Compression::Zstd).unwrap();
    store.put_blob(b"loose").unwrap();
    let dead = dir.join("tmp/4242-dead");
    fs::create_dir_all(&dead).unwrap();
    fs::write(dead.join("lock"), "").unwrap();
    let report = store
        .prune(&PruneOptions::default(), &|_| EntryRefs::default())
        .unwrap();
    assert_eq!(report.layers, 1, "{report}");
    assert_eq!(
        report.blobs, 3,
        "gone's blob, kept's zstd blob, loose: {report}"
    );
    assert_eq!(report.tmp, 1);
    assert!(report.bytes > 0);
    let mut left: Vec<String> = fs::read_dir(dir.join("oci/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want = vec![
        image.manifest_digest.hex().to_string(),
        image.config_digest.hex().to_string(),
        image.manifest.layers()[0].digest().to_string()[7..].to_string(),
    ];
    want.sort();
    assert_eq!(left, want);
    assert!(!dir.join(&format!("layers/{}.json", gone.hex())).exists());
    assert!(dir.join(&format!("layers/{}.json", kept.hex())).exists());
    assert!(!dead.exists());
    // The pruned zstd form is simply made again when asked for.
    store.layer_blob(&kept, Compression::Zstd).unwrap();
    let second = store
        .prune(&PruneOptions::default(), &|_| EntryRefs::default())
        .unwrap();
    assert_eq!((second.layers, second.blobs), (0, 1), "{second}");
}
