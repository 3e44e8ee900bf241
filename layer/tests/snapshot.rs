//! Snapshot diff: a tree changed in place gives the upper dir an overlay
//! would have given — changed files only, whiteouts for deletions, opaque
//! replaced dirs, owners/modes/xattrs/mtimes kept, hard links — and, as
//! root, the very same diffID as an overlay mount doing the same changes.

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_layer::{apply_layer_dir, diff_id, CaptureOptions, Snapshot};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-snapshot-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_mtime(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let t = [libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }; 2];
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

/// The tree every test starts from.
fn base(root: &Path) {
    for d in ["etc", "usr/bin", "var/cache/apt", "old", "keep/deep"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/same-size"), "aaaa").unwrap();
    fs::write(root.join("etc/untouched"), "x").unwrap();
    fs::write(root.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    fs::write(root.join("var/cache/apt/pkg"), "cache").unwrap();
    fs::write(root.join("old/a"), "a").unwrap();
    fs::write(root.join("keep/deep/f"), "f").unwrap();
    fs::write(root.join("gone"), "g").unwrap();
    fs::write(root.join("etc/hl1"), "h").unwrap();
    fs::hard_link(root.join("etc/hl1"), root.join("etc/hl2")).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    set_mtime(&root.join("etc/same-size"), 1_000_000);
    let note = rustix::fs::XattrFlags::empty();
    rustix::fs::setxattr(root.join("keep"), "user.note", b"v", note).unwrap();
    for p in [
        "",
        "etc",
        "usr",
        "usr/bin",
        "var",
        "var/cache",
        "old",
        "keep",
        "keep/deep",
    ] {
        set_mtime(&root.join(p), 1_000_000);
    }
}

/// What a RUN step might do, applied to `root` (a plain dir or an
/// overlay's merged dir).
fn step(root: &Path, chown: bool) {
    // Content changed, same size, mtime put back: only ctime tells.
    fs::write(root.join("etc/same-size"), "bbbb").unwrap();
    set_mtime(&root.join("etc/same-size"), 1_000_000);
    fs::set_permissions(
        root.join("usr/bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    if chown {
        std::os::unix::fs::lchown(root.join("usr/bin/tool"), Some(0), Some(50)).unwrap();
        fs::set_permissions(
            root.join("usr/bin/tool"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
    }
    fs::remove_file(root.join("gone")).unwrap();
    fs::remove_dir_all(root.join("var/cache/apt")).unwrap();
    // Replaced: overlay makes the new dir opaque.
    fs::remove_dir_all(root.join("old")).unwrap();
    fs::create_dir(root.join("old")).unwrap();
    fs::write(root.join("old/b"), "b").unwrap();
    fs::create_dir_all(root.join("new/sub")).unwrap();
    fs::write(root.join("new/sub/file"), "new").unwrap();
    fs::set_permissions(root.join("new/sub/file"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(root.join("new/sub/file"), root.join("new/link")).unwrap();
    symlink("/etc/passwd", root.join("new/pw")).unwrap();
    // An xattr removed from a dir: the layer's dir must not keep it.
    rustix::fs::removexattr(root.join("keep"), "user.note").unwrap();
    // One name of a linked file removed: the other stays out of the layer
    // (only its link count changed); a new link takes its file along.
    fs::remove_file(root.join("etc/hl2")).unwrap();
    fs::hard_link(root.join("etc/untouched"), root.join("etc/linked")).unwrap();
    // A temporary file that is gone again: its dir changed all the same.
    fs::write(root.join("keep/deep/tmp"), "t").unwrap();
    fs::remove_file(root.join("keep/deep/tmp")).unwrap();
    for p in [
        "",
        "etc",
        "usr",
        "usr/bin",
        "var",
        "var/cache",
        "old",
        "new",
        "new/sub",
        "keep",
    ] {
        set_mtime(&root.join(p), 2_000_000);
    }
    set_mtime(&root.join("keep/deep"), 3_000_000);
}

/// Every path under `dir`, sorted, with a short description.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let kind = if m.is_dir() {
                "dir"
            } else if m.file_type().is_char_device() {
                "whiteout"
            } else if m.file_type().is_symlink() {
                "link"
            } else {
                "file"
            };
            out.push(format!("{rel} {kind}"));
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_upper_dir_holds_exactly_what_the_step_changed() {
    let t = tmp("content");
    let (root, upper) = (t.join("root"), t.join("upper"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&root).unwrap();
    base(&root);
    let snap = Snapshot::take(&root).unwrap();
    step(&root, is_root());
    assert!(snap.diff(&root, &upper).unwrap());

    let want = vec![
        "etc dir",
        "etc/hl2 whiteout",
        "etc/linked file",
        "etc/same-size file",
        "etc/untouched file",
        "gone whiteout",
        "keep dir",
        "keep/deep dir",
        "new dir",
        "new/link file",
        "new/pw link",
        "new/sub dir",
        "new/sub/file file",
        "old dir",
        "old/b file",
        "usr dir",
        "usr/bin dir",
        "usr/bin/tool file",
        "var dir",
        "var/cache dir",
        "var/cache/apt whiteout",
    ];
    assert_eq!(listing(&upper), want);

    let meta = |p: &str| fs::symlink_metadata(upper.join(p)).unwrap();
    assert_eq!(fs::read(upper.join("etc/same-size")).unwrap(), b"bbbb");
    assert_eq!(meta("etc/same-size").mtime(), 1_000_000);
    assert_eq!(meta("usr/bin/tool").mode() & 0o7777, 0o4755);
    if is_root() {
        assert_eq!(
            (meta("usr/bin/tool").uid(), meta("usr/bin/tool").gid()),
            (0, 50)
        );
    }
    // Linux ≥ 5.8 lets anyone make a 0:0 whiteout device.
    assert_eq!(meta("gone").rdev(), 0);
    assert_eq!(meta("new/sub/file").mode() & 0o7777, 0o600);
    assert_eq!(meta("new/sub/file").ino(), meta("new/link").ino());
    assert_eq!(
        fs::read_link(upper.join("new/pw")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(meta("keep/deep").mtime(), 3_000_000);
    assert_eq!(meta("usr").mtime(), 2_000_000);
    let opaque = |p: &str| {
        let v = xattr(&upper.join(p), "user.overlay.opaque")
            .or_else(|| xattr(&upper.join(p), "trusted.overlay.opaque"));
        v.as_deref() == Some(b"y".as_slice())
    };
    assert!(opaque("old"), "a replaced dir is opaque");
    assert!(!opaque("new"), "a dir where nothing was is not");
    assert!(!opaque("etc"));
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn a_step_that_changes_nothing_leaves_the_upper_dir_empty() {
    let t = tmp("nothing");
    let (root, upper) = (t.join("root"), t.join("upper"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&root).unwrap();
    base(&root);
    let snap = Snapshot::take(&root).unwrap();
    // Read, stat, list: none of that is a change.
    let _ = fs::read(root.join("etc/passwd")).unwrap();
    let _ = fs::read_dir(root.join("usr/bin")).unwrap().count();
    assert!(!snap.diff(&root, &upper).unwrap());
    assert_eq!(listing(&upper), Vec::<String>::new());
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn a_write_right_after_the_snapshot_is_seen() {
    // Same size, mtime restored, in the clock tick of the snapshot: only a
    // ctime that moved tells, which `take` makes sure of.
    let t = tmp("tick");
    let (root, upper) = (t.join("root"), t.join("upper"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&root).unwrap();
    for i in 0..20 {
        let (r, u) = (root.join(i.to_string()), upper.join(i.to_string()));
        fs::create_dir(&r).unwrap();
        fs::create_dir(&u).unwrap();
        fs::write(r.join("f"), "aaaa").unwrap();
        set_mtime(&r.join("f"), 1_000_000);
        set_mtime(&r, 1_000_000);
        let snap = Snapshot::take(&r).unwrap();
        fs::write(r.join("f"), "bbbb").unwrap();
        set_mtime(&r.join("f"), 1_000_000);
        assert!(
            snap.diff(&r, &u).unwrap(),
            "round {i}: the write was missed"
        );
        assert_eq!(fs::read(u.join("f")).unwrap(), b"bbbb");
    }
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn same_diff_id_as_an_overlay_doing_the_same_step() {
    if !is_root() {
        eprintln!("skipped: mounting an overlay needs root");
        return;
    }
    let t = tmp("overlay");
    let (lower, upper, work, merged) = (
        t.join("lower"),
        t.join("upper"),
        t.join("work"),
        t.join("merged"),
    );
    let (root, snap_upper) = (t.join("root"), t.join("snap-upper"));
    for d in [&lower, &upper, &work, &merged, &root, &snap_upper] {
        fs::create_dir(d).unwrap();
    }
    base(&lower);
    base(&root);
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mounted = Mounted::overlay(&opts, &merged);
    step(&merged, true);
    drop(mounted);

    let snap = Snapshot::take(&root).unwrap();
    step(&root, true);
    assert!(snap.diff(&root, &snap_upper).unwrap());

    assert_eq!(listing(&snap_upper), listing(&upper));
    let clamp = CaptureOptions {
        clamp_mtime: Some(5_000_000),
        ..CaptureOptions::default()
    };
    let (a, b) = (
        diff_id(&upper, &clamp).unwrap(),
        diff_id(&snap_upper, &clamp).unwrap(),
    );
    assert_eq!(a, b, "overlay and snapshot layers differ");
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn applying_the_base_and_the_diff_rebuilds_the_changed_tree() {
    let t = tmp("apply");
    let (layer1, root, upper, rebuilt) = (
        t.join("layer1"),
        t.join("root"),
        t.join("upper"),
        t.join("rebuilt"),
    );
    for d in [&layer1, &root, &upper, &rebuilt] {
        fs::create_dir(d).unwrap();
    }
    base(&layer1);
    apply_layer_dir(&layer1, &root).unwrap();
    let whole = CaptureOptions::default();
    assert_eq!(
        diff_id(&root, &whole).unwrap(),
        diff_id(&layer1, &whole).unwrap()
    );
    let snap = Snapshot::take(&root).unwrap();
    step(&root, is_root());
    assert!(snap.diff(&root, &upper).unwrap());
    // A stage's rootfs is its layers applied bottom first.
    apply_layer_dir(&layer1, &rebuilt).unwrap();
    apply_layer_dir(&upper, &rebuilt).unwrap();
    assert_eq!(listing(&rebuilt), listing(&root));
    assert_eq!(
        diff_id(&rebuilt, &whole).unwrap(),
        diff_id(&root, &whole).unwrap()
    );
    // Copies, never links into the layer: the store stays untouched when a
    // step writes in place.
    let (a, b) = (upper.join("old/b"), rebuilt.join("old/b"));
    assert_ne!(
        fs::metadata(a).unwrap().ino(),
        fs::metadata(b).unwrap().ino()
    );
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn a_symlink_in_the_rootfs_is_replaced_not_followed() {
    let t = tmp("symlink");
    let (layer, root, outside) = (t.join("layer"), t.join("root"), t.join("outside"));
    for d in [&layer, &root, &outside] {
        fs::create_dir(d).unwrap();
    }
    symlink(&outside, root.join("etc")).unwrap();
    fs::create_dir(layer.join("etc")).unwrap();
    fs::write(layer.join("etc/conf"), "c").unwrap();
    apply_layer_dir(&layer, &root).unwrap();
    assert!(fs::symlink_metadata(root.join("etc")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("etc/conf")).unwrap(), b"c");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through the symlink"
    );
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn applied_layers_match_their_overlay_mount() {
    if !is_root() {
        eprintln!("skipped: mounting an overlay needs root");
        return;
    }
    let t = tmp("apply-overlay");
    let (layer1, root, upper, rebuilt, merged) = (
        t.join("layer1"),
        t.join("root"),
        t.join("upper"),
        t.join("rebuilt"),
        t.join("merged"),
    );
    for d in [&layer1, &root, &upper, &rebuilt, &merged] {
        fs::create_dir(d).unwrap();
    }
    base(&layer1);
    apply_layer_dir(&layer1, &root).unwrap();
    let snap = Snapshot::take(&root).unwrap();
    step(&root, true);
    snap.diff(&root, &upper).unwrap();
    apply_layer_dir(&layer1, &rebuilt).unwrap();
    apply_layer_dir(&upper, &rebuilt).unwrap();
    let opts = format!(
        "userxattr,lowerdir={}:{}",
        upper.display(),
        layer1.display()
    );
    let mounted = Mounted::overlay(&opts, &merged);
    let seen = CaptureOptions {
        layers: vec![upper.clone(), layer1.clone()],
        ..CaptureOptions::default()
    };
    let (a, b) = (diff_id(&merged, &seen), listing(&merged));
    drop(mounted);
    assert_eq!(b, listing(&rebuilt));
    assert_eq!(
        a.unwrap(),
        diff_id(&rebuilt, &CaptureOptions::default()).unwrap()
    );
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn whiteouts_survive_an_upper_dir_on_overlayfs() {
    // Inside a container, kiln's files sit on the container's overlayfs,
    // which hides a 0:0 device made through it: the deletion was lost.
    if !is_root() {
        eprintln!("skipped: mounting an overlay needs root");
        return;
    }
    let t = tmp("on-overlay");
    let (lower, up, work, merged) = (t.join("l"), t.join("u"), t.join("w"), t.join("m"));
    for d in [&lower, &up, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        up.display(),
        work.display()
    );
    let mounted = Mounted::overlay(&opts, &merged);
    let (root, upper) = (merged.join("root"), merged.join("upper"));
    fs::create_dir(&root).unwrap();
    fs::create_dir(&upper).unwrap();
    base(&root);
    let snap = Snapshot::take(&root).unwrap();
    fs::remove_file(root.join("gone")).unwrap();
    let diffed = snap.diff(&root, &upper);
    let seen = listing(&upper);
    let id = diff_id(&upper, &clamped());
    let (rebuilt, applied) = (merged.join("rebuilt"), merged.join("applied"));
    fs::create_dir(&rebuilt).unwrap();
    fs::create_dir(&applied).unwrap();
    base(&rebuilt);
    let apply = apply_layer_dir(&upper, &rebuilt);
    let gone = rebuilt.join("gone").symlink_metadata().is_ok();
    drop(mounted);
    assert!(diffed.unwrap());
    assert_eq!(
        seen,
        vec!["gone file"],
        "the whiteout, as an xwhiteout file"
    );
    let want = {
        let (plain_root, plain_upper) = (t.join("plain-root"), t.join("plain-upper"));
        fs::create_dir(&plain_root).unwrap();
        fs::create_dir(&plain_upper).unwrap();
        base(&plain_root);
        let snap = Snapshot::take(&plain_root).unwrap();
        fs::remove_file(plain_root.join("gone")).unwrap();
        snap.diff(&plain_root, &plain_upper).unwrap();
        diff_id(&plain_upper, &clamped()).unwrap()
    };
    assert_eq!(id.unwrap(), want, "the same layer as off overlayfs");
    apply.unwrap();
    assert!(!gone, "applying the layer deletes");
    fs::remove_dir_all(&t).unwrap();
}

/// An overlay mounted for a test, unmounted when dropped (also when an
/// assertion fails while it is mounted).
struct Mounted(PathBuf);

impl Mounted {
    fn overlay(opts: &str, at: &Path) -> Mounted {
        let status = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", opts])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount overlay");
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Whiteouts are stamped when they are made: layers made at different
/// moments compare with mtimes clamped (as a build with SOURCE_DATE_EPOCH).
fn clamped() -> CaptureOptions {
    CaptureOptions {
        clamp_mtime: Some(5_000_000),
        ..CaptureOptions::default()
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}
