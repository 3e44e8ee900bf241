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

/// Runs `kiln prune` over and over until `stop`; the number of runs.
fn prune_loop(case: &Case, stop: &std::sync::atomic::AtomicBool) -> usize {
    let mut runs = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let out = kiln_bounded(case, &["prune"], LIMIT, |c| {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        });
        assert!(out.status.success(), "prune: {}", text(&out));
        runs += 1;
    }
    runs
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn pull_load_save_push_survive_a_prune_loop() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let case = Case::new("prune-race");
    let reg = support::registry::TestRegistry::start(&case.path("reg"), &[]);
    let remote = format!("{}/kiln/race:1", reg.host());
    // A few layers of a few MB: pulling, unpacking and compressing them
    // takes long enough for prunes to land between a blob's write and the
    // index entry that keeps it.
    case.dockerfile(
        "FROM BASE\nRUN head -c 2000000 /dev/urandom > /a\nRUN head -c 2000000 /dev/urandom > /b\n\
         RUN head -c 2000000 /dev/urandom > /c\n",
    );
    let ctx = case.ctx();
    ok(&case.kiln(&["build", "-t", "race:1", ctx.to_str().unwrap()]));
    ok(&case.kiln(&["push", "race:1", &remote]));
    let archive = case.path("race.tar");
    ok(&case.kiln(&["save", "-o", archive.to_str().unwrap(), "race:1"]));
    // Only the archive and the registry hold the image now: every pull
    // and load below writes its blobs anew, with prune running meanwhile.
    ok(&case.kiln(&["rmi", "race:1"]));
    ok(&case.kiln(&["prune"]));

    let stop = AtomicBool::new(false);
    let mut failures = Vec::new();
    let prunes = std::thread::scope(|s| {
        let pruner = s.spawn(|| prune_loop(&case, &stop));
        for i in 0..4 {
            let copy = format!("{}/kiln/race-copy:{i}", reg.host());
            let saved = case.path(&format!("saved-{i}.tar"));
            let steps: [Vec<&str>; 5] = [
                vec!["pull", "-q", &remote],
                vec!["load", "-i", archive.to_str().unwrap()],
                vec!["save", "-o", saved.to_str().unwrap(), &remote],
                vec!["push", "-q", &remote, &copy],
                vec!["rmi", &remote, "localhost/race:1"],
            ];
            for args in steps {
                let out = kiln_bounded(&case, &args, LIMIT, |c| {
                    c.stdout(Stdio::piped()).stderr(Stdio::piped());
                });
                if !out.status.success() {
                    failures.push(format!("{args:?}: {}", text(&out)));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        pruner.join().unwrap()
    });
    assert!(failures.is_empty(), "with {prunes} prunes: {failures:#?}");
    assert!(prunes > 2, "the prune loop hardly ran ({prunes})");
}

/// `sh` lines that make `depth` nested dirs named `name` under the
/// current dir and write a file at the bottom (one fd, relative `cd`s:
/// the full path may be far longer than PATH_MAX).
fn nest(depth: usize, name: &str) -> String {
    format!(
        "i=0; while [ $i -lt {depth} ]; do mkdir {name}; cd {name}; i=$((i+1)); done; echo x > f"
    )
}

/// The dirs in the store's `tmp/` once no kiln runs: none.
fn leftovers(case: &Case) -> Vec<String> {
    std::fs::read_dir(case.store().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_run_nesting_2000_dirs_fails_clearly_and_the_store_keeps_working() {
    let case = Case::new("deep-run");
    case.dockerfile(&format!("FROM BASE\nRUN {}\n", nest(2000, "d")));
    let ctx = case.ctx();
    let out = kiln_bounded(&case, &["build", ctx.to_str().unwrap()], LIMIT, |c| {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
    });
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nested deeper than 1024 levels"), "{err}");
    assert!(!err.contains("Too many open files"), "{err}");
    assert!(leftovers(&case).is_empty(), "{:?}", leftovers(&case));
    case.dockerfile("FROM BASE\nRUN echo fine > /fine\n");
    ok(&case.kiln(&["build", "-t", "fine:1", ctx.to_str().unwrap()]));
    assert!(ok(&case.kiln(&["images"])).contains("localhost/fine:1"));
    ok(&case.kiln(&["prune", "--all"]));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_layer_deeper_than_path_max_is_stored_then_removed_by_prune() {
    let case = Case::new("deep-layer");
    // 900 levels of 100-byte names: a 90 KB path, 900 dirs deep.
    let name = "n".repeat(100);
    case.dockerfile(&format!("FROM BASE\nRUN {}\n", nest(900, &name)));
    let ctx = case.ctx();
    ok(&case.kiln(&["build", "-t", "deep:1", ctx.to_str().unwrap()]));
    ok(&case.kiln(&["rmi", "deep:1"]));
    let pruned = ok(&case.kiln(&["prune", "--all"]));
    assert!(pruned.contains(" 2 layer(s)"), "{pruned}");
    let layers = std::fs::read_dir(case.store().join("layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 0, "prune left layers behind");
    case.dockerfile("FROM BASE\nRUN echo fine > /fine\n");
    ok(&case.kiln(&["build", ctx.to_str().unwrap()]));
    ok(&case.kiln(&["prune", "--all"]));
    assert!(leftovers(&case).is_empty(), "{:?}", leftovers(&case));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_dead_builds_deep_scratch_dir_does_not_stop_the_next_open() {
    let case = Case::new("stale-deep");
    ok(&case.kiln(&["images"]));
    // What a kiln SIGKILLed in the middle of a deep RUN's capture leaves:
    // a scratch dir whose `lock` nobody holds, 1500 levels deep.
    let dead = case.store().join("tmp/999999-0-dead");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("lock"), b"").unwrap();
    let script = format!("cd '{}' && {}", dead.display(), nest(1500, &"n".repeat(50)));
    let made = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let started = Instant::now();
    let out = kiln_bounded(&case, &["images"], LIMIT, |c| {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
    });
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dead.exists(), "the dead dir is still there");
    eprintln!("open with a 1500-deep stale dir: {:?}", started.elapsed());
    case.dockerfile("FROM BASE\nRUN echo fine > /fine\n");
    ok(&case.kiln(&["build", case.ctx().to_str().unwrap()]));
    ok(&case.kiln(&["prune"]));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_4000_deep_context_is_a_clear_error() {
    let case = Case::new("deep-ctx");
    case.dockerfile("FROM BASE\nCOPY . /ctx/\n");
    let script = format!("cd '{}' && {}", case.ctx().display(), nest(4000, "d"));
    let made = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let ctx = case.ctx();
    let out = kiln_bounded(&case, &["build", ctx.to_str().unwrap()], LIMIT, |c| {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
    });
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("nested deeper than"), "{err}");
    assert!(err.contains("ctx/d/d/d"), "names the path: {err}");
    assert!(!err.contains("Too many open files"), "{err}");
    assert!(leftovers(&case).is_empty(), "{:?}", leftovers(&case));
    ok(&case.kiln(&["images"]));
}
