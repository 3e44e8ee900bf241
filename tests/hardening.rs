//! What must never hang, brick the store or lose a blob: closed or full
//! output streams, very deep directory trees, prune racing the commands
//! that move blobs. Rootless, run by scripts/test-build.sh; every kiln
//! run here is bounded by a timeout so a regression fails, not hangs.

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{kiln_bin, text, Case};

/// `kiln --root STORE args…` with stdio set by `setup`; waits at most
/// `limit`, then kills it and fails the test.
fn kiln_bounded(
    case: &Case,
    args: &[&str],
    limit: Duration,
    setup: impl FnOnce(&mut Command),
) -> Output {
    let mut cmd = Command::new(kiln_bin());
    cmd.arg("--root").arg(case.store()).args(args);
    cmd.stdin(Stdio::null());
    setup(&mut cmd);
    let child = cmd.spawn().expect("kiln runs");
    wait_bounded(child, limit, args)
}

fn wait_bounded(mut child: Child, limit: Duration, what: &[&str]) -> Output {
    // Pipes the test keeps are read by the end; close ones it dropped.
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "kiln {what:?} still running after {limit:?} (hung):\n{}",
                text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ok(out: &Output) -> String {
    let t = text(out);
    assert!(out.status.success(), "kiln failed:\n{t}");
    t
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_with_stderr_on_a_full_device_finishes() {
    let case = Case::new("devfull");
    case.dockerfile("FROM BASE\nRUN echo some output; echo more output\n");
    let ctx = case.ctx();
    let out = kiln_bounded(
        &case,
        &[
            "build",
            "--progress=plain",
            "-t",
            "full:1",
            ctx.to_str().unwrap(),
        ],
        LIMIT,
        |c| {
            let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
            c.stderr(full.expect("/dev/full")).stdout(Stdio::piped());
        },
    );
    assert!(out.status.success(), "the build fails or panics: {out:?}");
    let images = ok(&case.kiln(&["images"]));
    assert!(images.contains("localhost/full:1"), "{images}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_with_stderr_on_a_closed_pipe_finishes() {
    let case = Case::new("epipe");
    case.dockerfile("FROM BASE\nRUN echo a; echo b; echo c\n");
    let ctx = case.ctx();
    for progress in ["--progress=plain", "--progress=tty"] {
        let mut cmd = Command::new(kiln_bin());
        cmd.arg("--root")
            .arg(case.store())
            .args(["build", "--no-cache", progress, "-t", "epipe:1"])
            .arg(&ctx)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kiln runs");
        // `2>&1 | head -0`: the reader is gone before kiln writes.
        drop(child.stderr.take());
        let out = wait_bounded(child, LIMIT, &["build", progress]);
        assert!(out.status.success(), "{progress}: {out:?}");
        let id = String::from_utf8_lossy(&out.stdout);
        assert!(id.trim().is_empty(), "{id}");
    }
    let images = ok(&case.kiln(&["images"]));
    assert!(images.contains("localhost/epipe:1"), "{images}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_closed_stdout_is_a_clean_error_not_a_panic() {
    let case = Case::new("stdout");
    case.dockerfile("FROM BASE\nRUN echo x\n");
    let ctx = case.ctx();
    ok(&case.kiln(&["build", "-t", "out:1", ctx.to_str().unwrap()]));
    for args in [
        vec!["images"],
        vec!["build", "-q", ctx.to_str().unwrap()],
        vec!["inspect", "out:1"],
    ] {
        let mut cmd = Command::new(kiln_bin());
        cmd.arg("--root")
            .arg(case.store())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kiln runs");
        drop(child.stdout.take());
        let out = wait_bounded(child, LIMIT, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("writing to stdout"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
