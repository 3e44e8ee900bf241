//! `--isolation chroot`'s executor: a command chrooted into a plain rootfs
//! (no namespace, no mount) with the USER's ids, and — with the layer
//! crate's snapshot diff — the same layer as the namespace sandbox running
//! the same command over an overlay. Needs CAP_SYS_CHROOT (root: `cargo
//! test` in CI); without it, the clear refusal is what is checked.

mod support;

use std::ffi::OsString;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_layer::{apply_layer_dir, diff_id, CaptureOptions, Snapshot};
use kiln_sandbox::{can_chroot, run_chrooted, ChrootStep, Io, Stdio};
use support::{base, test_root, Case};

/// A fresh rootfs: the busybox base, copied.
fn rootfs(name: &str) -> PathBuf {
    let r = test_root().join(format!("chroot-{name}"));
    let _ = fs::remove_dir_all(&r);
    fs::create_dir_all(&r).unwrap();
    apply_layer_dir(base(), &r).unwrap();
    r
}

/// Runs `script` with /bin/sh in `root`; returns (exit code, stdout+stderr).
fn sh(root: &Path, user: &str, cwd: &str, script: &str) -> (i32, String) {
    let out = root.with_extension("out");
    let f = fs::File::create(&out).unwrap();
    let fd: OwnedFd = f.into();
    let step = ChrootStep {
        root: root.to_path_buf(),
        argv: ["/bin/sh", "-c", script].map(OsString::from).to_vec(),
        env: vec!["GREETING=hi there".into()],
        cwd: cwd.into(),
        user: user.into(),
        stdio: Stdio {
            stdin: Io::Null,
            stdout: Io::Fd(fd.try_clone().unwrap()),
            stderr: Io::Fd(fd),
        },
        no_new_privileges: false,
    };
    let status = run_chrooted(step).unwrap();
    (status.code(), fs::read_to_string(&out).unwrap())
}

#[test]
fn runs_inside_the_rootfs_as_the_user_in_the_working_dir() {
    if !can_chroot() {
        return refused_without_cap_sys_chroot();
    }
    let root = rootfs("user");
    let (code, out) = sh(
        &root,
        "app",
        "/work/dir",
        "id -u; id -g; id -G; pwd; echo $HOME; echo $GREETING; \
         test -e /proc/self && echo proc; cat /etc/passwd | head -1; exit 3",
    );
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        out,
        "1000\n1000\n1000 2000\n/work/dir\n/home/app\nhi there\nroot:x:0:0:root:/root:/bin/sh\n",
        "no /proc in a bare rootfs; the rootfs's passwd, not the host's"
    );
    // The missing working dir was made, root-owned, like runc does.
    let m = fs::metadata(root.join("work/dir")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o755));
    let (code, out) = sh(&root, "", "/", "id -u");
    assert_eq!((code, out.as_str()), (0, "0\n"));
}

#[test]
fn a_missing_command_and_an_unknown_user_are_clear_errors() {
    if !can_chroot() {
        return refused_without_cap_sys_chroot();
    }
    let root = rootfs("errors");
    let step = |user: &str, argv0: &str| ChrootStep {
        root: root.clone(),
        argv: vec![argv0.into()],
        cwd: "/".into(),
        user: user.into(),
        ..ChrootStep::default()
    };
    let e = run_chrooted(step("", "no-such-tool"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("executable file not found"), "{e}");
    let e = run_chrooted(step("ghost", "true")).unwrap_err().to_string();
    assert!(e.contains("ghost"), "{e}");
}

/// What a RUN does to the filesystem: new, changed, deleted, replaced.
const STEP: &str = "set -e; mkdir -p /opt/app; echo hello > /opt/app/f; \
    chown 1000:2000 /opt/app/f; chmod 640 /opt/app/f; ln -s f /opt/app/l; \
    ln /opt/app/f /opt/app/hard; rm /etc/group; echo changed >> /etc/passwd; \
    rm -rf /home/app; mkdir /home/app; touch /home/app/.profile; rm -rf /sbin";

/// Runs STEP chrooted in a fresh rootfs; returns the snapshot diff's
/// upper dir.
fn chroot_layer(name: &str) -> PathBuf {
    let root = rootfs(name);
    let upper = test_root().join(format!("chroot-{name}-upper"));
    let _ = fs::remove_dir_all(&upper);
    fs::create_dir(&upper).unwrap();
    let snap = Snapshot::take(&root).unwrap();
    let (code, out) = sh(&root, "", "/", STEP);
    assert_eq!(code, 0, "{out}");
    assert!(snap.diff(&root, &upper).unwrap());
    upper
}

/// A whiteout in either of overlay's forms: char 0:0, or (where the upper
/// dir is itself on overlayfs, as in a container) an xwhiteout file.
fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let m = fs::symlink_metadata(p).unwrap();
    let mut buf = [0u8; 8];
    (m.file_type().is_char_device() && m.rdev() == 0)
        || (m.is_file()
            && m.len() == 0
            && rustix::fs::lgetxattr(p, "user.overlay.whiteout", &mut buf).is_ok())
}

#[test]
fn the_layer_holds_the_steps_changes() {
    if !can_chroot() {
        return refused_without_cap_sys_chroot();
    }
    let upper = chroot_layer("content");
    let m = fs::symlink_metadata(upper.join("opt/app/f")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.nlink()),
        (1000, 2000, 0o640, 2)
    );
    assert_eq!(fs::read(upper.join("opt/app/hard")).unwrap(), b"hello\n");
    assert_eq!(
        fs::read_link(upper.join("opt/app/l")).unwrap(),
        Path::new("f")
    );
    assert!(
        is_whiteout(&upper.join("etc/group")),
        "a deleted file: a whiteout"
    );
    assert!(
        is_whiteout(&upper.join("sbin")),
        "a deleted dir: a whiteout"
    );
    assert!(fs::read_to_string(upper.join("etc/passwd"))
        .unwrap()
        .ends_with("changed\n"));
    let opaque =
        rustix::fs::lgetxattr(upper.join("home/app"), "user.overlay.opaque", &mut [0u8; 4]);
    assert!(opaque.is_ok(), "a replaced dir is opaque");
    assert!(upper.join("home/app/.profile").exists());
    // Nothing else: unchanged files stay out of the layer.
    assert!(!upper.join("bin").exists() && !upper.join("etc/hosts").exists());
}

#[test]
fn same_layer_as_the_namespace_sandbox() {
    if !can_chroot() {
        return refused_without_cap_sys_chroot();
    }
    let case = Case::new("chroot-vs-ns");
    let out = case.step().opt("--network", "none").sh(STEP);
    assert_eq!(
        out.code, 0,
        "namespace sandbox: {}{}",
        out.stdout, out.stderr
    );
    let upper = chroot_layer("layer");
    let clamp = CaptureOptions {
        clamp_mtime: Some(1_000_000_000),
        ..CaptureOptions::default()
    };
    assert_eq!(
        diff_id(&upper, &clamp).unwrap(),
        diff_id(&case.upper, &clamp).unwrap(),
        "chroot and namespace layers differ"
    );
}

fn refused_without_cap_sys_chroot() {
    let step = ChrootStep {
        root: "/".into(),
        argv: vec!["true".into()],
        ..ChrootStep::default()
    };
    let e = run_chrooted(step).unwrap_err().to_string();
    assert!(e.contains("CAP_SYS_CHROOT"), "{e}");
}
