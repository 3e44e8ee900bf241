//! Capture and unpack details: tar header contents (mtime clamping, ids,
//! modes, link targets), the external gzip tool, archive mode (no
//! whiteouts), forced owners, special files, replaced entries, and
//! mutated streams that must fail without panicking.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_layer::{capture, unpack, CaptureOptions, Compression, Digest, UnpackOptions};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-layer-edge-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Whether this process may give files other owners (real root, or a
/// user namespace with a full id range): probed, not guessed from the uid.
fn can_chown(dir: &Path) -> bool {
    let probe = dir.join(".chown-probe");
    fs::write(&probe, "").unwrap();
    let ok = std::os::unix::fs::lchown(&probe, Some(1234), Some(5678)).is_ok();
    fs::remove_file(probe).unwrap();
    ok
}

fn set_mtime(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let t = [libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }; 2];
    assert_eq!(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                t.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        0
    );
}

fn tar_of(dir: &Path, opts: &CaptureOptions) -> Vec<u8> {
    let mut tar = Vec::new();
    capture(dir, &mut tar, None, opts).unwrap();
    tar
}

/// (path, header) of every entry.
fn headers(tar: &[u8]) -> Vec<(String, tar::Header)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().clone(),
            )
        })
        .collect()
}

fn header<'a>(hs: &'a [(String, tar::Header)], name: &str) -> &'a tar::Header {
    &hs.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .1
}

#[test]
fn headers_carry_clamped_mtimes_modes_ids_and_link_targets() {
    let d = tmp("headers");
    let up = d.join("up");
    fs::create_dir_all(up.join("dir/sub")).unwrap();
    fs::write(up.join("dir/new"), "n").unwrap();
    fs::write(up.join("old"), "o").unwrap();
    fs::write(up.join("suid"), "s").unwrap();
    fs::set_permissions(up.join("suid"), fs::Permissions::from_mode(0o6755)).unwrap();
    fs::set_permissions(up.join("dir/sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("/abs/target", up.join("abs")).unwrap();
    symlink("../../escape", up.join("dir/rel")).unwrap();
    set_mtime(&up.join("dir/new"), 2_000_000_000);
    set_mtime(&up.join("old"), 1_000);
    let chown = can_chown(&d);
    if chown {
        std::os::unix::fs::lchown(up.join("old"), Some(1234), Some(5678)).unwrap();
    }
    let _ = std::os::unix::net::UnixListener::bind(up.join("sock"));
    let tar = tar_of(
        &up,
        &CaptureOptions {
            clamp_mtime: Some(1_500_000_000),
            ..Default::default()
        },
    );
    let hs = headers(&tar);
    let names: Vec<&str> = hs.iter().map(|(n, _)| n.as_str()).collect();
    // Byte-sorted paths, directories with '/', no root entry, no socket.
    assert_eq!(
        names,
        ["abs", "dir/", "dir/new", "dir/rel", "dir/sub/", "old", "suid"]
    );
    assert_eq!(header(&hs, "dir/new").mtime().unwrap(), 1_500_000_000);
    assert_eq!(header(&hs, "old").mtime().unwrap(), 1_000);
    assert_eq!(header(&hs, "suid").mode().unwrap(), 0o6755);
    assert_eq!(header(&hs, "dir/sub/").mode().unwrap(), 0o1777);
    assert_eq!(
        header(&hs, "abs").link_name_bytes().unwrap().as_ref(),
        b"/abs/target"
    );
    assert_eq!(
        header(&hs, "dir/rel").link_name_bytes().unwrap().as_ref(),
        b"../../escape"
    );
    for (_, h) in &hs {
        assert_eq!(h.username_bytes(), Some(&b""[..]), "no uname");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "no gname");
    }
    if chown {
        let h = header(&hs, "old");
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1234, 5678));
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn gzip_tool_decodes_the_blob_to_the_diff_id_tar() {
    let d = tmp("gzip-tool");
    let up = d.join("up");
    fs::create_dir_all(&up).unwrap();
    // More than one pargz chunk, partly compressible.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 & 0x3f)
        .collect();
    fs::write(up.join("big"), &data).unwrap();
    let mut blob = Vec::new();
    let c = capture(
        &up,
        &mut blob,
        Some(Compression::Gzip),
        &CaptureOptions::default(),
    )
    .unwrap();
    assert_eq!(c.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    let Ok(mut child) = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("no gzip binary; skipped");
        return;
    };
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&blob).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert_eq!(Digest::of(&out.stdout), c.diff_id);
    assert_eq!(out.stdout, tar_of(&up, &CaptureOptions::default()));
    fs::remove_dir_all(&d).unwrap();
}

/// A hand-made archive entry (the tar crate's builder checks paths).
fn entry(t: &mut Vec<u8>, name: &str, kind: tar::EntryType, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    let data = if kind == tar::EntryType::Symlink {
        h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
        &[][..]
    } else {
        data
    };
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(u64::from(unsafe { libc::geteuid() }));
    h.set_gid(u64::from(unsafe { libc::getegid() }));
    h.set_mtime(12345);
    h.set_cksum();
    t.extend_from_slice(h.as_bytes());
    t.extend_from_slice(data);
    t.resize(t.len().div_ceil(512) * 512, 0);
}

#[test]
fn archives_keep_wh_names_and_take_forced_owners() {
    use tar::EntryType::{Directory, Regular};
    let d = tmp("archive");
    let root = d.join("root");
    fs::create_dir(&root).unwrap();
    let mut t = Vec::new();
    entry(&mut t, "ro/", Directory, 0o555, b"");
    entry(&mut t, "ro/.wh.file", Regular, 0o640, b"data");
    entry(&mut t, "ro/.wh..wh..opq", Regular, 0o644, b"");
    t.extend_from_slice(&[0u8; 1024]);
    let owner = if can_chown(&d) {
        (4321, 8765)
    } else {
        unsafe { (libc::geteuid(), libc::getegid()) }
    };
    let opts = UnpackOptions {
        owner: Some(owner),
        ..Default::default()
    };
    let u = unpack(&mut &t[..], &root, &opts).unwrap();
    assert_eq!(u.diff_id, Digest::of(&t));
    assert_eq!(u.blob, u.diff_id);
    let f = fs::metadata(root.join("ro/.wh.file")).unwrap();
    assert!(f.is_file());
    assert_eq!(
        (f.uid(), f.gid(), f.mode() & 0o7777, f.mtime()),
        (owner.0, owner.1, 0o640, 12345)
    );
    assert!(fs::metadata(root.join("ro/.wh..wh..opq"))
        .unwrap()
        .is_file());
    // A read-only directory is filled first, its mode set at the end.
    let ro = fs::metadata(root.join("ro")).unwrap();
    assert_eq!((ro.mode() & 0o7777, ro.mtime()), (0o555, 12345));
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn later_entries_replace_earlier_ones_and_dirs_stay() {
    use tar::EntryType::{Directory, Fifo, Regular, Symlink};
    let d = tmp("replace");
    let root = d.join("root");
    fs::create_dir_all(root.join("keep")).unwrap();
    fs::write(root.join("keep/old"), "old").unwrap();
    fs::create_dir_all(root.join("gone-dir/x")).unwrap();
    let mut t = Vec::new();
    entry(&mut t, "keep/", Directory, 0o700, b"");
    entry(&mut t, "gone-dir", Regular, 0o644, b"now a file");
    entry(&mut t, "s", Symlink, 0o777, b"/etc/passwd");
    entry(&mut t, "s", Regular, 0o644, b"file over symlink");
    entry(&mut t, "fifo", Fifo, 0o600, b"");
    t.extend_from_slice(&[0u8; 1024]);
    unpack(
        &mut &t[..],
        &root,
        &UnpackOptions {
            whiteouts: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs::read_to_string(root.join("keep/old")).unwrap(), "old");
    assert_eq!(
        fs::metadata(root.join("keep")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::read_to_string(root.join("gone-dir")).unwrap(),
        "now a file"
    );
    assert_eq!(
        fs::read_to_string(root.join("s")).unwrap(),
        "file over symlink"
    );
    assert!(fs::symlink_metadata(root.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn devices_are_created_as_root_or_skipped_with_one_warning() {
    let d = tmp("devices");
    let root = d.join("root");
    fs::create_dir(&root).unwrap();
    let mut t = Vec::new();
    for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5)] {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        h.set_cksum();
        t.extend_from_slice(h.as_bytes());
    }
    t.extend_from_slice(&[0u8; 1024]);
    let u = unpack(&mut &t[..], &root, &UnpackOptions::default()).unwrap();
    match fs::symlink_metadata(root.join("null")) {
        Ok(m) => {
            assert!(m.file_type().is_char_device());
            assert_eq!(m.rdev(), libc::makedev(1, 3));
            assert!(u.warnings.is_empty(), "{:?}", u.warnings);
        }
        Err(_) => {
            assert_eq!(u.warnings.len(), 1, "{:?}", u.warnings);
            assert!(u.warnings[0].starts_with("2 device"), "{:?}", u.warnings);
        }
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn trailing_bytes_count_for_the_digests() {
    let d = tmp("trailing");
    let root = d.join("root");
    fs::create_dir(&root).unwrap();
    let mut t = Vec::new();
    entry(&mut t, "f", tar::EntryType::Regular, 0o644, b"x");
    t.extend_from_slice(&[0u8; 1024]);
    t.extend_from_slice(&[0u8; 8192]); // record padding, as GNU tar writes it
    let u = unpack(&mut &t[..], &root, &UnpackOptions::default()).unwrap();
    assert_eq!(u.diff_id, Digest::of(&t));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mutated_streams_never_panic() {
    let d = tmp("mutate");
    let up = d.join("up");
    fs::create_dir_all(up.join("a/b")).unwrap();
    fs::write(up.join("a/b/f"), vec![b'z'; 3000]).unwrap();
    symlink("b/f", up.join("a/l")).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for compression in [None, Some(Compression::Gzip), Some(Compression::Zstd)] {
        let mut blob = Vec::new();
        capture(&up, &mut blob, compression, &CaptureOptions::default()).unwrap();
        for round in 0..60 {
            let mut m = blob.clone();
            match round % 3 {
                0 => m.truncate(next() as usize % m.len()),
                1 => {
                    for _ in 0..4 {
                        let i = next() as usize % m.len();
                        m[i] ^= 1 << (next() % 8);
                    }
                }
                _ => m
                    .splice(0..0, (0..next() % 600).map(|_| next() as u8))
                    .for_each(drop),
            }
            let root = d.join("root");
            let _ = fs::remove_dir_all(&root);
            fs::create_dir(&root).unwrap();
            // Err or Ok are both fine; a panic fails the test.
            let _ = unpack(
                &mut &m[..],
                &root,
                &UnpackOptions {
                    whiteouts: true,
                    ..Default::default()
                },
            );
        }
    }
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn unmapped_owner_is_a_clear_error() {
    let d = tmp("unmapped");
    let root = d.join("root");
    fs::create_dir(&root).unwrap();
    if can_chown(&d) {
        eprintln!("this process may chown to any id; nothing to test");
        fs::remove_dir_all(&d).unwrap();
        return;
    }
    let mut t = Vec::new();
    entry(&mut t, "etc/shadow", tar::EntryType::Regular, 0o600, b"x");
    t.extend_from_slice(&[0u8; 1024]);
    let opts = UnpackOptions {
        owner: Some((1234, 5678)),
        ..Default::default()
    };
    let err = unpack(&mut &t[..], &root, &opts).unwrap_err().to_string();
    assert!(
        err.contains("etc/shadow") && err.contains("1234:5678") && err.contains("mapped"),
        "{err}"
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn incoming_overlay_and_trusted_xattrs_are_dropped() {
    let d = tmp("xattrs-in");
    let root = d.join("root");
    fs::create_dir(&root).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.overlay.opaque", &b"y"[..]),
        ("SCHILY.xattr.user.overlay.redirect", &b"/etc"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
        ("SCHILY.xattr.user.keep", &b"kept"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(u64::from(unsafe { libc::geteuid() }));
    h.set_gid(u64::from(unsafe { libc::getegid() }));
    h.set_size(0);
    b.append_data(&mut h, "dir/", &[][..]).unwrap();
    let t = b.into_inner().unwrap();
    unpack(
        &mut &t[..],
        &root,
        &UnpackOptions {
            whiteouts: true,
            ..Default::default()
        },
    )
    .unwrap();
    let names = xattr_names(&root.join("dir"));
    assert!(names.contains(&"user.keep".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("overlay") || n.starts_with("trusted.")),
        "{names:?}"
    );
    fs::remove_dir_all(&d).unwrap();
}

fn xattr_names(path: &Path) -> Vec<String> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0);
    buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn every_supported_compression_is_detected() {
    let d = tmp("formats");
    let up = d.join("up");
    fs::create_dir_all(up.join("sub")).unwrap();
    fs::write(up.join("sub/f"), "hello").unwrap();
    let tar = tar_of(&up, &CaptureOptions::default());
    let mut streams: Vec<(&str, Vec<u8>)> = vec![("tar", tar.clone())];
    for (name, c) in [("gzip", Compression::Gzip), ("zstd", Compression::Zstd)] {
        let mut blob = Vec::new();
        capture(&up, &mut blob, Some(c), &CaptureOptions::default()).unwrap();
        streams.push((name, blob));
    }
    #[cfg(feature = "bzip2")]
    {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&tar).unwrap();
        streams.push(("bzip2", e.finish().unwrap()));
    }
    #[cfg(feature = "xz")]
    {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&tar).unwrap();
        streams.push(("xz", e.finish().unwrap()));
    }
    for (name, blob) in streams {
        let root = d.join(format!("root-{name}"));
        fs::create_dir(&root).unwrap();
        let opts = UnpackOptions {
            expected_blob: Some(Digest::of(&blob)),
            expected_diff_id: Some(Digest::of(&tar)),
            ..Default::default()
        };
        unpack(&mut &blob[..], &root, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            fs::read_to_string(root.join("sub/f")).unwrap(),
            "hello",
            "{name}"
        );
    }
    fs::remove_dir_all(&d).unwrap();
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

#[test]
fn xattr_whiteouts_and_trusted_opaque_dirs_are_captured_as_oci_whiteouts() {
    let d = tmp("xwhiteout");
    let up = d.join("up");
    fs::create_dir_all(up.join("x")).unwrap();
    fs::create_dir_all(up.join("t")).unwrap();
    fs::write(up.join("x/gone"), "").unwrap();
    assert!(set_xattr(&up.join("x/gone"), "user.overlay.whiteout", b""));
    // "x" flags a dir holding xwhiteouts; it is not opaque.
    assert!(set_xattr(&up.join("x"), "user.overlay.opaque", b"x"));
    // trusted.* needs CAP_SYS_ADMIN; only checked where it can be set.
    let trusted = set_xattr(&up.join("t"), "trusted.overlay.opaque", b"y");
    let tar = tar_of(&up, &CaptureOptions::default());
    let names: Vec<String> = headers(&tar).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"x/.wh.gone".to_string()), "{names:?}");
    assert!(!names.contains(&"x/gone".to_string()), "{names:?}");
    assert!(!names.contains(&"x/.wh..wh..opq".to_string()), "{names:?}");
    assert_eq!(
        names.contains(&"t/.wh..wh..opq".to_string()),
        trusted,
        "{names:?}"
    );
    fs::remove_dir_all(&d).unwrap();
}
