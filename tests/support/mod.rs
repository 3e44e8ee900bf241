//! Fixtures for the rootless end-to-end tests (run by scripts/test-build.sh
//! as an unprivileged user): the kiln binary, the busybox base image, a
//! per-test directory with its own store, and podman/skopeo/umoci runners.

#![allow(dead_code)]

pub mod hostile;
pub mod http;
pub mod outputs;
pub mod registry;

#[allow(unused_imports)]
pub use outputs::read;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn kiln_bin() -> PathBuf {
    std::env::var_os("KILN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

/// `FROM` for the busybox image scripts/busybox-image.sh wrote.
pub fn base() -> String {
    let dir =
        std::env::var("KILN_TEST_BASE").expect("KILN_TEST_BASE: run through scripts/test-build.sh");
    format!("oci:{dir}:latest")
}

/// `FROM` for the busybox image holding amd64 and arm64 under one tag (an
/// image index), as scripts/busybox-image.sh wrote it.
pub fn multi_base() -> String {
    let dir = std::env::var("KILN_TEST_MULTI_BASE")
        .expect("KILN_TEST_MULTI_BASE: run through scripts/test-build.sh");
    format!("oci:{dir}:latest")
}

/// A directory of the examples, readable by the test user.
pub fn examples() -> PathBuf {
    std::env::var_os("KILN_TEST_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples"))
}

/// One test's files: a context dir, a store, outputs.
pub struct Case {
    pub dir: PathBuf,
}

impl Case {
    pub fn new(name: &str) -> Case {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kiln-build-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(dir.join("ctx")).unwrap();
        Case { dir }
    }

    pub fn ctx(&self) -> PathBuf {
        self.dir.join("ctx")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes the Dockerfile (with `BASE` replaced by the busybox image).
    pub fn dockerfile(&self, text: &str) {
        fs::write(self.ctx().join("Dockerfile"), text.replace("BASE", &base())).unwrap();
    }

    pub fn file(&self, rel: &str, content: &str) {
        let p = self.ctx().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// `kiln --root STORE args…`.
    pub fn kiln(&self, args: &[&str]) -> Output {
        Command::new(kiln_bin())
            .arg("--root")
            .arg(self.store())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kiln runs")
    }

    /// `kiln --root STORE args…` with extra environment variables.
    pub fn kiln_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(kiln_bin())
            .arg("--root")
            .arg(self.store())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("kiln runs")
    }

    /// `kiln build` of the context; panics with the output on failure.
    pub fn build(&self, extra: &[&str]) -> String {
        let ctx = self.ctx();
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let out = self.kiln(&args);
        let text = text(&out);
        assert!(out.status.success(), "kiln build failed:\n{text}");
        text
    }
}

impl Case {
    /// The `kiln inspect` JSON of an image in the case's store.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.kiln(&["inspect", name]);
        assert!(out.status.success(), "kiln inspect {name}:\n{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("inspect prints JSON")
    }

    /// `kiln build -t NAME -o type=docker,dest=NAME.tar` of the case; the
    /// archive's path and the build's output.
    pub fn build_image(&self, name: &str, extra: &[&str]) -> (PathBuf, String) {
        let archive = self.path(&format!("{name}.tar"));
        let dest = format!("type=docker,dest={}", archive.display());
        let mut args = vec!["-t", name, "-o", &dest];
        args.extend_from_slice(extra);
        let out = self.build(&args);
        (archive, out)
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        // The store holds files of subordinate ids: delete them from a user
        // namespace with the same mapping as kiln's.
        let _ = Command::new("podman")
            .args(["unshare", "rm", "-rf"])
            .arg(&self.dir)
            .output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The output of a kiln run that must have failed; panics if it succeeded.
pub fn fails(out: &Output) -> String {
    let t = text(out);
    assert!(!out.status.success(), "kiln should have failed:\n{t}");
    t
}

/// The host's architecture as OCI platforms name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// Runs a tool; panics with its output when it fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let t = text(&out);
    assert!(out.status.success(), "{program} {args:?} failed:\n{t}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the step whose line contains `needle` is marked CACHED in a
/// plain progress log (`#N [..] needle` … `#N CACHED`).
pub fn cached(log: &str, needle: &str) -> bool {
    let id = log
        .lines()
        .find(|l| l.contains(needle) && l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no step {needle:?} in:\n{log}"));
    log.lines().any(|l| l == format!("{id} CACHED"))
}

/// `git -C dir args…` with an identity; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["-c", "user.name=kiln", "-c", "user.email=kiln@test", "-C"];
    all.push(dir.to_str().unwrap());
    all.extend_from_slice(args);
    tool("git", &all)
}

/// `podman load` of an archive, then `podman run --rm IMAGE argv…`.
pub fn podman_run(archive: &Path, image: &str, argv: &[&str]) -> String {
    tool("podman", &["load", "-q", "-i", archive.to_str().unwrap()]);
    let mut args = vec!["run", "--rm", image];
    args.extend_from_slice(argv);
    let out = tool("podman", &args);
    let _ = Command::new("podman").args(["rmi", "-f", image]).output();
    out
}

/// `sh -c SCRIPT` in the image `localhost/NAME` of a docker archive.
pub fn run_sh(archive: &Path, name: &str, script: &str) -> String {
    podman_run(
        archive,
        &format!("localhost/{name}:latest"),
        &["sh", "-c", script],
    )
}

/// xorshift bytes: incompressible (a layer's compressed blob is as large
/// as the data), the same on every run.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
