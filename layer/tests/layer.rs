//! Capture and unpack as the store uses them: overlay-form trees ⇄ tars,
//! digests, determinism, and hostile archives that must not escape.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_layer::{capture, diff_id, unpack, CaptureOptions, Compression, Digest, UnpackOptions};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-layer-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// mknod c 0 0 needs root or a user namespace; skip what needs it otherwise.
fn whiteout(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) == 0 }
}

fn set_xattr(path: &Path, key: &str, value: &[u8]) -> bool {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let k = std::ffi::CString::new(key).unwrap();
    unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn get_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let k = std::ffi::CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn tar_entries(tar: &[u8]) -> Vec<(String, tar::EntryType)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}

/// An upper dir as overlay leaves it.
fn sample_upper(root: &Path) -> bool {
    fs::create_dir_all(root.join("etc/opq")).unwrap();
    fs::write(root.join("etc/opq/new"), "new\n").unwrap();
    fs::write(root.join("etc/file"), "content\n").unwrap();
    fs::hard_link(root.join("etc/file"), root.join("etc/link")).unwrap();
    symlink("/nowhere", root.join("dangling")).unwrap();
    symlink("etc/file", root.join("rel")).unwrap();
    fs::write(root.join("suid"), "s").unwrap();
    fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    assert!(set_xattr(
        &root.join("etc/file"),
        "user.overlay.origin",
        b"x"
    ));
    assert!(set_xattr(&root.join("etc/file"), "user.keep", b"kept"));
    assert!(set_xattr(
        &root.join("etc/opq"),
        "user.overlay.opaque",
        b"y"
    ));
    whiteout(&root.join("etc/gone"))
}

#[test]
fn capture_maps_overlay_form_to_oci_form() {
    let d = tmp("capture");
    let upper = d.join("upper");
    let has_whiteout = sample_upper(&upper);
    let mut tar = Vec::new();
    let c = capture(&upper, &mut tar, None, &CaptureOptions::default()).unwrap();
    assert_eq!(c.diff_id, Digest::of(&tar));
    assert_eq!(c.blob, c.diff_id);
    let entries = tar_entries(&tar);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"etc/opq/.wh..wh..opq"), "{names:?}");
    if has_whiteout {
        assert!(names.contains(&"etc/.wh.gone"), "{names:?}");
        assert!(!names.contains(&"etc/gone"));
    }
    let link = entries.iter().find(|(n, _)| n == "etc/link").unwrap();
    assert_eq!(link.1, tar::EntryType::Link);
    let mut a = tar::Archive::new(&tar[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == b"etc/file" {
            let keys: Vec<String> = e
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|x| x.unwrap().key().unwrap().to_string())
                .collect();
            assert!(
                keys.contains(&"SCHILY.xattr.user.keep".to_string()),
                "{keys:?}"
            );
            assert!(!keys.iter().any(|k| k.contains("overlay")), "{keys:?}");
        }
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn capture_is_deterministic_and_compressed_blobs_decode_to_the_same_tar() {
    let d = tmp("determinism");
    let upper = d.join("upper");
    sample_upper(&upper);
    let opts = CaptureOptions {
        clamp_mtime: Some(0),
        ..Default::default()
    };
    let mut a = Vec::new();
    let mut b = Vec::new();
    let ca = capture(&upper, &mut a, None, &opts).unwrap();
    capture(&upper, &mut b, None, &opts).unwrap();
    assert_eq!(a, b);
    assert_eq!(diff_id(&upper, &opts).unwrap(), ca.diff_id);
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut blob = Vec::new();
        let cz = capture(&upper, &mut blob, Some(c), &opts).unwrap();
        assert_eq!(cz.diff_id, ca.diff_id);
        assert_eq!(cz.blob, Digest::of(&blob));
        assert_eq!(cz.blob_size, blob.len() as u64);
        let mut plain = Vec::new();
        match c {
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(&blob[..])
                    .read_to_end(&mut plain)
                    .unwrap();
            }
            Compression::Zstd => {
                plain = zstd::decode_all(&blob[..]).unwrap();
            }
        }
        assert_eq!(plain, a);
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn round_trip_keeps_whiteouts_opaque_dirs_links_and_modes() {
    let d = tmp("roundtrip");
    let upper = d.join("upper");
    let has_whiteout = sample_upper(&upper);
    if has_whiteout {
        // A whiteout's mtime is part of the layer: unpack must restore it,
        // or a recapture differs whenever a second ticks in between.
        let gone =
            std::ffi::CString::new(upper.join("etc/gone").into_os_string().into_vec()).unwrap();
        let t = [libc::timespec {
            tv_sec: 12345,
            tv_nsec: 0,
        }; 2];
        let r = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                gone.as_ptr(),
                t.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(r, 0);
    }
    let mut blob = Vec::new();
    let c = capture(
        &upper,
        &mut blob,
        Some(Compression::Gzip),
        &CaptureOptions::default(),
    )
    .unwrap();
    let out = d.join("out");
    fs::create_dir(&out).unwrap();
    let opts = UnpackOptions {
        expected_blob: Some(c.blob.clone()),
        expected_diff_id: Some(c.diff_id.clone()),
        whiteouts: true,
        owner: None,
    };
    let u = unpack(&mut &blob[..], &out, &opts).unwrap();
    assert_eq!(u.diff_id, c.diff_id);
    assert_eq!(
        fs::read_to_string(out.join("etc/file")).unwrap(),
        "content\n"
    );
    assert_eq!(
        fs::metadata(out.join("etc/file")).unwrap().ino(),
        fs::metadata(out.join("etc/link")).unwrap().ino()
    );
    assert_eq!(
        fs::read_link(out.join("dangling")).unwrap(),
        Path::new("/nowhere")
    );
    assert_eq!(
        fs::metadata(out.join("suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        get_xattr(&out.join("etc/opq"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        get_xattr(&out.join("etc/file"), "user.keep").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        get_xattr(&out.join("etc/file"), "user.overlay.origin"),
        None
    );
    if has_whiteout {
        let m = fs::symlink_metadata(out.join("etc/gone")).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0);
        assert_eq!(m.mtime(), 12345, "the whiteout's mtime");
    }
    // Capturing the unpacked tree gives the same layer back.
    assert_eq!(
        diff_id(&out, &CaptureOptions::default()).unwrap(),
        c.diff_id
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn digest_mismatches_are_errors() {
    let d = tmp("mismatch");
    let upper = d.join("upper");
    fs::create_dir_all(&upper).unwrap();
    fs::write(upper.join("f"), "x").unwrap();
    let mut tar = Vec::new();
    capture(&upper, &mut tar, None, &CaptureOptions::default()).unwrap();
    let wrong = Digest::of(b"something else");
    for opts in [
        UnpackOptions {
            expected_blob: Some(wrong.clone()),
            ..Default::default()
        },
        UnpackOptions {
            expected_diff_id: Some(wrong.clone()),
            ..Default::default()
        },
    ] {
        let out = d.join("out");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir(&out).unwrap();
        let err = unpack(&mut &tar[..], &out, &opts).unwrap_err();
        assert!(err.to_string().contains("mismatch"), "{err}");
    }
    assert!(Digest::parse("sha256:../../x").is_err());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn garbage_and_truncated_streams_are_errors_not_panics() {
    let d = tmp("garbage");
    let upper = d.join("upper");
    fs::create_dir_all(&upper).unwrap();
    fs::write(upper.join("f"), vec![7u8; 5000]).unwrap();
    let mut blob = Vec::new();
    capture(
        &upper,
        &mut blob,
        Some(Compression::Gzip),
        &CaptureOptions::default(),
    )
    .unwrap();
    for input in [
        &blob[..blob.len() / 2],
        b"\x1f\x8bnot gzip at all",
        &[0xffu8; 1024][..],
    ] {
        let out = d.join("out");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir(&out).unwrap();
        assert!(unpack(&mut &input[..], &out, &UnpackOptions::default()).is_err());
    }
    fs::remove_dir_all(&d).unwrap();
}

/// A tar entry with a raw name, bypassing the tar crate's own path checks.
fn raw_entry(t: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    // The caller's own ids, so that an unprivileged run gets past chown
    // and exercises every later entry too.
    h.set_uid(u64::from(unsafe { libc::geteuid() }));
    h.set_gid(u64::from(unsafe { libc::getegid() }));
    h.set_cksum();
    t.write_all(h.as_bytes()).unwrap();
    t.write_all(data).unwrap();
    t.write_all(&vec![0u8; (512 - data.len() % 512) % 512])
        .unwrap();
}

fn listing(dir: &Path) -> BTreeSet<(PathBuf, u64, u32)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            out.insert((e.path(), m.len(), m.mode()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// name, type, link target.
type RawEntry = (&'static [u8], tar::EntryType, &'static [u8]);

#[test]
fn hostile_archives_never_touch_anything_outside_the_root() {
    use tar::EntryType::{Link, Regular, Symlink};
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        ("dotdot", vec![(b"../evil", Regular, b"")]),
        ("deep-dotdot", vec![(b"a/../../evil", Regular, b"")]),
        ("absolute", vec![(b"/outside/evil", Regular, b"")]),
        (
            "symlink-parent-abs",
            vec![(b"a", Symlink, b"/outside"), (b"a/evil", Regular, b"")],
        ),
        (
            "symlink-parent-up",
            vec![(b"a", Symlink, b".."), (b"a/evil", Regular, b"")],
        ),
        (
            "symlink-chain",
            vec![
                (b"a", Symlink, b"../../outside"),
                (b"a/sentinel", Regular, b""),
            ],
        ),
        ("hardlink-out", vec![(b"h", Link, b"../outside/sentinel")]),
        ("hardlink-abs", vec![(b"h", Link, b"/etc/passwd")]),
        ("hardlink-missing", vec![(b"h", Link, b"not-yet")]),
        (
            "hardlink-via-symlink",
            vec![(b"s", Symlink, b"/outside/sentinel"), (b"h", Link, b"s")],
        ),
        ("whiteout-dotdot", vec![(b"x/.wh...", Regular, b"")]),
        (
            "whiteout-parent",
            vec![(b"../outside/.wh.sentinel", Regular, b"")],
        ),
        (
            "symlink-then-whiteout",
            vec![
                (b"a", Symlink, b"/outside"),
                (b"a/.wh.sentinel", Regular, b""),
            ],
        ),
    ];
    for (name, entries) in cases {
        let d = tmp(&format!("hostile-{name}"));
        let outside = d.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), "keep me").unwrap();
        let root = d.join("root");
        fs::create_dir(&root).unwrap();
        let before = listing(&outside);
        let mut t = Vec::new();
        for (n, k, l) in &entries {
            raw_entry(&mut t, n, *k, l, if *k == Regular { b"evil" } else { b"" });
        }
        t.extend_from_slice(&[0u8; 1024]);
        let opts = UnpackOptions {
            whiteouts: true,
            ..Default::default()
        };
        let _ = unpack(&mut &t[..], &root, &opts);
        assert_eq!(listing(&outside), before, "{name}: the outside changed");
        assert_eq!(
            fs::read_to_string(outside.join("sentinel")).unwrap(),
            "keep me",
            "{name}"
        );
        assert!(!d.join("evil").exists(), "{name}");
        let sibling: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(sibling.len(), 2, "{name}: {sibling:?}");
        fs::remove_dir_all(&d).unwrap();
    }
}

/// Everything a write, chmod, chown, utimes or replace outside would change.
fn full_listing(dir: &Path) -> BTreeSet<(PathBuf, u64, u32, i64, u32, u64)> {
    listing(dir)
        .into_iter()
        .map(|(p, _, _)| {
            let m = fs::symlink_metadata(&p).unwrap();
            (p, m.len(), m.mode(), m.mtime(), m.uid(), m.ino())
        })
        .collect()
}

#[test]
fn hostile_archives_aiming_at_real_host_paths_stay_inside() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let base = tmp("hostile-abs");
    let outside = base.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("sentinel"), "keep me").unwrap();
    fs::set_permissions(outside.join("sentinel"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = outside.as_os_str().as_encoded_bytes().to_vec();
    let sentinel = [out.as_slice(), b"/sentinel"].concat();
    type Case = (&'static str, Vec<(Vec<u8>, tar::EntryType, Vec<u8>)>);
    let cases: Vec<Case> = vec![
        (
            "abs-parent",
            vec![
                (b"a".to_vec(), Symlink, out.clone()),
                (b"a/evil".to_vec(), Regular, vec![]),
            ],
        ),
        ("abs-file", vec![(sentinel.clone(), Regular, vec![])]),
        // The symlink must be replaced, not written through.
        (
            "write-through",
            vec![
                (b"s".to_vec(), Symlink, sentinel.clone()),
                (b"s".to_vec(), Regular, vec![]),
            ],
        ),
        // A dir entry over a symlink to a dir: no chmod through it.
        (
            "chmod-through",
            vec![
                (b"d".to_vec(), Symlink, out.clone()),
                (b"d/".to_vec(), Directory, vec![]),
            ],
        ),
        ("link-abs", vec![(b"h".to_vec(), Link, sentinel.clone())]),
        (
            "link-via-dir",
            vec![
                (b"a".to_vec(), Symlink, out.clone()),
                (b"h".to_vec(), Link, b"a/sentinel".to_vec()),
            ],
        ),
        (
            "whiteout-via-dir",
            vec![
                (b"a".to_vec(), Symlink, out.clone()),
                (b"a/.wh.sentinel".to_vec(), Regular, vec![]),
            ],
        ),
        (
            "opaque-via-dir",
            vec![
                (b"a".to_vec(), Symlink, out.clone()),
                (b"a/.wh..wh..opq".to_vec(), Regular, vec![]),
            ],
        ),
    ];
    for (name, entries) in cases {
        let root = base.join(format!("root-{name}"));
        fs::create_dir(&root).unwrap();
        let before = full_listing(&base.join("outside"));
        let mut t = Vec::new();
        for (n, k, l) in &entries {
            let data: &[u8] = if *k == Regular { b"evil" } else { b"" };
            raw_entry(&mut t, n, *k, l, data);
        }
        t.extend_from_slice(&[0u8; 1024]);
        for whiteouts in [true, false] {
            let opts = UnpackOptions {
                whiteouts,
                ..Default::default()
            };
            let _ = unpack(&mut &t[..], &root, &opts);
            assert_eq!(
                full_listing(&outside),
                before,
                "{name}: the outside changed"
            );
            assert_eq!(get_xattr(&outside, "user.overlay.opaque"), None, "{name}");
        }
        fs::remove_dir_all(&root).unwrap();
    }
    let left: Vec<_> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["outside"]);
    fs::remove_dir_all(&base).unwrap();
}

/// A real tree (KILN_LAYER_ROUNDTRIP_DIR, default /etc) captured,
/// unpacked and captured again must give the same diffID. Ignored by
/// default: it depends on the host. `cargo test -- --ignored` runs it.
#[test]
#[ignore]
fn host_tree_round_trips_to_the_same_diff_id() {
    let src = PathBuf::from(std::env::var("KILN_LAYER_ROUNDTRIP_DIR").unwrap_or("/etc".into()));
    let d = tmp("host-roundtrip");
    let mut blob = Vec::new();
    let c = capture(
        &src,
        &mut blob,
        Some(Compression::Zstd),
        &CaptureOptions::default(),
    )
    .unwrap();
    let out = d.join("out");
    fs::create_dir(&out).unwrap();
    let opts = UnpackOptions {
        expected_blob: Some(c.blob.clone()),
        expected_diff_id: Some(c.diff_id.clone()),
        whiteouts: true,
        owner: None,
    };
    unpack(&mut &blob[..], &out, &opts).unwrap();
    assert_eq!(
        diff_id(&out, &CaptureOptions::default()).unwrap(),
        c.diff_id
    );
    fs::remove_dir_all(&d).unwrap();
}
