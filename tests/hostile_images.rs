//! Hostile images, end to end and rootless: id files that are a FIFO or
//! huge, layers whose whiteouts overlay lists but cannot look up. Run by
//! scripts/test-build.sh.

mod support;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_layer::{capture, CaptureOptions, Compression};
use support::{tool, Case};

/// `kiln build` of the case, killed if it runs past `limit`: (succeeded,
/// stderr, max RSS in KiB of kiln and the processes it waited for).
// Reaped by wait4 below, which Child cannot see.
#[allow(clippy::zombie_processes)]
fn build_within(case: &Case, limit: Duration) -> (bool, String, u64) {
    let child = Command::new(support::kiln_bin())
        .arg("--root")
        .arg(case.store())
        .arg("build")
        .arg(case.ctx())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(case.path("err")).unwrap())
        // Its own process group: a hung build is killed with its helpers.
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    // wait4, not Child::wait: its rusage carries the peak RSS.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break;
        }
        if start.elapsed() > limit {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("kiln build still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let err = fs::read_to_string(case.path("err")).unwrap();
    (ok, err, usage.ru_maxrss as u64)
}

/// The image's /etc/passwd is untrusted: as a FIFO it must not hang the
/// build (opening it waited for a writer forever), as a 2 GiB sparse file
/// it must not be read into memory (2.1 GB). Both `--chown` (read by kiln)
/// and `USER` (read by the sandbox) fail naming the file.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_fifo_or_huge_passwd_fails_the_build_quickly_and_clearly() {
    for (name, make, says) in [
        ("fifo", "rm /etc/passwd && mkfifo /etc/passwd", "is a FIFO"),
        ("huge", "truncate -s 2G /etc/passwd", "over the 4 MiB"),
    ] {
        for (step, context) in [
            ("COPY --chown=builder one.txt /owned", "--chown=builder"),
            ("USER builder\nRUN true", "sandbox"),
        ] {
            let case = Case::new(&format!("passwd-{name}"));
            case.file("one.txt", "1");
            case.dockerfile(&format!("FROM BASE\nRUN {make}\n{step}\n"));
            let (ok, err, kib) = build_within(&case, Duration::from_secs(60));
            assert!(!ok, "{name}/{step}: the build succeeded:\n{err}");
            assert!(
                err.contains("/etc/passwd") && err.contains(says) && err.contains(context),
                "{name}/{step}:\n{err}"
            );
            assert!(kib < 200 * 1024, "{name}/{step}: max RSS {kib} KiB");
        }
    }
}

/// Writes `layers` (dirs, bottom first) as the OCI image layout `dir`,
/// tagged `latest`, each layer a gzip blob captured by kiln-layer.
fn oci_layout(dir: &Path, layers: &[&Path]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| {
        let d = kiln_layer::Digest::of(bytes);
        fs::write(blobs.join(d.hex()), bytes).unwrap();
        serde_json::json!({"digest": d.as_str(), "size": bytes.len()})
    };
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for l in layers {
        let mut gz = Vec::new();
        let c = capture(
            l,
            &mut gz,
            Some(Compression::Gzip),
            &CaptureOptions::default(),
        )
        .unwrap();
        diff_ids.push(c.diff_id.to_string());
        let mut d = blob(&gz);
        d["mediaType"] = c.media_type.into();
        descs.push(d);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let mut config = blob(config.to_string().as_bytes());
    config["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": descs,
    });
    let mut m = blob(manifest.to_string().as_bytes());
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [m]});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Layer 1: `a` a symlink to the dir `b` (with x, y). Layer 2: `a/` a
/// directory holding the whiteout `a/.wh.x`. Overlay does not merge a dir
/// over a symlink, lists the whiteout in it, and answers ENOENT when it is
/// looked up: exporting the rootfs failed with a bare "No such file or
/// directory (os error 2)". The whiteout hides nothing: /a is an empty dir.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_whiteout_in_a_dir_over_a_lower_symlink_exports() {
    let case = Case::new("wh-over-symlink");
    let (l1, l2) = (case.path("l1"), case.path("l2"));
    fs::create_dir_all(l1.join("b")).unwrap();
    fs::write(l1.join("b/x"), "x").unwrap();
    fs::write(l1.join("b/y"), "y").unwrap();
    std::os::unix::fs::symlink("b", l1.join("a")).unwrap();
    fs::create_dir_all(l2.join("a")).unwrap();
    // An xwhiteout (what an unprivileged user can make) captures as the
    // OCI whiteout `a/.wh.x`.
    let wh = l2.join("a/x");
    fs::write(&wh, "").unwrap();
    let path = std::ffi::CString::new(wh.as_os_str().as_bytes()).unwrap();
    let key = c"user.overlay.whiteout";
    assert_eq!(
        unsafe { libc::setxattr(path.as_ptr(), key.as_ptr(), std::ptr::null(), 0, 0) },
        0
    );
    let img = case.path("img");
    oci_layout(&img, &[&l1, &l2]);
    case.dockerfile(&format!("FROM oci:{}:latest\n", img.display()));

    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_dir(out.join("a")).unwrap().count(),
        0,
        "/a is empty"
    );
    assert!(out.join("a").symlink_metadata().unwrap().is_dir());
    assert_eq!(fs::read_to_string(out.join("b/x")).unwrap(), "x");

    let tar = case.path("rootfs.tar");
    case.build(&["-o", &format!("type=tar,dest={}", tar.display())]);
    let names = tool("tar", &["tf", tar.to_str().unwrap()]);
    assert_eq!(names, "a/\nb/\nb/x\nb/y\n");
}
