//! `kiln build` end to end, rootless: each test builds as the unprivileged
//! user scripts/test-build.sh runs it as, then proves the image the way a
//! user would — `podman load` + `podman run`, `skopeo inspect`, `umoci
//! unpack`. Ignored under a plain `cargo test` (they need that user, a
//! subuid range, podman, and the busybox base image).

mod support;

use std::fs;
use std::process::Command;

use support::{podman_run, text, tool, Case};

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn the_multistage_example_runs_under_podman() {
    let case = Case::new("example");
    let example = support::examples().join("multistage");
    let archive = case.path("example.tar");
    let base = format!("BASE={}", support::base());
    let out = case.kiln(&[
        "build",
        "--build-arg",
        &base,
        "-t",
        "kiln-example",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
        example.to_str().unwrap(),
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("[builder 5/5] RUN"),
        "BuildKit-style step lines:\n{log}"
    );
    assert!(log.contains("DONE"), "{log}");
    let inspect = tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    );
    assert!(inspect.contains("\"Layers\""), "{inspect}");
    let said = podman_run(&archive, "localhost/kiln-example:latest", &[]);
    assert_eq!(said.trim(), "hello from a kiln-built image (built by kiln)");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn oci_archive_and_layout_outputs_are_readable_by_the_oci_tools() {
    let case = Case::new("oci");
    case.dockerfile(
        "FROM BASE\nCOPY greeting /etc/greeting\nENV WHO=oci\nCMD [\"sh\", \"-c\", \"cat /etc/greeting; echo $WHO\"]\n",
    );
    case.file("greeting", "hi from an oci image\n");
    let archive = case.path("image.oci.tar");
    let layout = case.path("layout");
    case.build(&[
        "-t",
        "oci-out:v1",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
    ]);
    let inspect = tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", archive.display())],
    );
    assert!(inspect.contains("WHO=oci"), "{inspect}");
    let bundle = case.path("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:localhost/oci-out:v1", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let greeting = fs::read_to_string(bundle.join("rootfs/etc/greeting")).unwrap();
    assert_eq!(greeting, "hi from an oci image\n");
    let said = podman_run(&archive, "localhost/oci-out:v1", &[]);
    assert_eq!(said, "hi from an oci image\noci\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn filesystem_changes_survive_capture_export_and_podman() {
    let case = Case::new("fs");
    case.dockerfile(
        r#"FROM BASE
RUN mkdir -p /t/opq /t/f2d && echo old > /t/opq/old && echo gone > /t/gone \
 && echo file > /t/d2f && echo x > /t/f2d/x \
 && echo keep > /t/keep && ln -s /t/keep /t/abs && ln -s keep /t/rel && ln -s /nowhere /t/dangling \
 && echo h > /t/h1 && ln /t/h1 /t/h2 \
 && echo s > /t/suid && chmod 4755 /t/suid \
 && echo o > /t/owned && chown 1000:1000 /t/owned && chown 65534:65534 /t/opq
RUN rm /t/gone && rm -rf /t/opq && mkdir /t/opq && echo new > /t/opq/new \
 && rm -rf /t/f2d && echo now-a-file > /t/f2d && rm /t/d2f && mkdir /t/d2f
"#,
    );
    let archive = case.path("fs.tar");
    case.build(&[
        "-t",
        "fs-test",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let script = "ls /t/gone 2>/dev/null || echo gone-is-gone; ls /t/opq; cat /t/f2d; \
                  test -d /t/d2f && echo d2f-is-dir; readlink /t/abs; readlink /t/rel; readlink /t/dangling; cat /t/abs /t/rel; \
                  stat -c '%n %u:%g %a %h' /t/owned /t/suid /t/h1 /t/opq; \
                  test /t/h1 -ef /t/h2 && echo hardlinked";
    let said = podman_run(&archive, "localhost/fs-test:latest", &["sh", "-c", script]);
    assert_eq!(
        said,
        "gone-is-gone\nnew\nnow-a-file\nd2f-is-dir\n/t/keep\nkeep\n/nowhere\nkeep\nkeep\n\
         /t/owned 1000:1000 644 1\n/t/suid 0:0 4755 1\n/t/h1 0:0 644 2\n/t/opq 0:0 755 2\nhardlinked\n"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn store_commands_list_inspect_save_remove_and_load() {
    let case = Case::new("store");
    case.dockerfile(
        "FROM BASE\nLABEL purpose=store-test\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n",
    );
    case.build(&["-t", "store-test:1"]);
    let images = text(&case.kiln(&["images"]));
    assert!(images.contains("localhost/store-test:1"), "{images}");
    let inspect = case.kiln(&["inspect", "store-test:1"]);
    let json: serde_json::Value =
        serde_json::from_slice(&inspect.stdout).expect("inspect prints JSON");
    assert_eq!(json["Config"]["Labels"]["purpose"], "store-test");
    assert_eq!(json["Config"]["Cmd"][1], "/built");
    assert_eq!(json["RootFS"]["diff_ids"].as_array().unwrap().len(), 2);

    let saved = case.path("saved.tar");
    let out = case.kiln(&["save", "-o", saved.to_str().unwrap(), "store-test:1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = case.kiln(&["rmi", "store-test:1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&case.kiln(&["images"])).contains("store-test"));
    let out = case.kiln(&["prune"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = case.kiln(&["load", "-i", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("localhost/store-test:1"));
    // The reloaded image is complete: it builds on and runs.
    case.dockerfile("FROM store-test:1\nRUN cat /built > /again\n");
    let again = case.path("again.tar");
    case.build(&[
        "-t",
        "again",
        "-o",
        &format!("type=docker,dest={}", again.display()),
    ]);
    assert_eq!(podman_run(&saved, "localhost/store-test:1", &[]), "built\n");
    assert_eq!(
        podman_run(&again, "localhost/again:latest", &["cat", "/again"]),
        "built\n"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_unchanged_rebuild_is_cached_and_a_changed_file_reruns_from_its_copy() {
    let case = Case::new("cache");
    case.dockerfile(
        "FROM BASE\nRUN echo one > /one\nCOPY a /a\nRUN cat /a > /copy-of-a\nCOPY b /b\n",
    );
    case.file("a", "a1\n");
    case.file("b", "b1\n");
    let first = case.build(&["-t", "cached"]);
    assert!(!first.contains("CACHED"), "{first}");
    let second = case.build(&["-t", "cached"]);
    assert_eq!(second.matches("CACHED").count(), 4, "{second}");
    case.file("a", "a2\n");
    let third = case.build(&[
        "-t",
        "cached",
        "-o",
        &format!("type=docker,dest={}", case.path("c.tar").display()),
    ]);
    assert_eq!(
        third.matches("CACHED").count(),
        1,
        "only RUN echo one is cached:\n{third}"
    );
    assert_eq!(
        podman_run(
            &case.path("c.tar"),
            "localhost/cached:latest",
            &["cat", "/copy-of-a"]
        ),
        "a2\n"
    );
    let fourth = case.build(&["-t", "cached", "--no-cache"]);
    assert!(!fourth.contains("CACHED"), "{fourth}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn two_builds_at_once_on_one_store_both_succeed() {
    let case = Case::new("parallel");
    case.dockerfile("FROM BASE\nARG N\nRUN sleep 1 && echo $N > /n\n");
    let spawn = |n: &str| {
        Command::new(support::kiln_bin())
            .arg("--root")
            .arg(case.store())
            .args([
                "build",
                "--build-arg",
                &format!("N={n}"),
                "-t",
                &format!("par-{n}"),
            ])
            .arg(case.ctx())
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("1"));
        let b = s.spawn(|| spawn("2"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    let images = text(&case.kiln(&["images"]));
    assert!(
        images.contains("localhost/par-1:latest") && images.contains("localhost/par-2:latest"),
        "{images}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_failing_step_names_the_dockerfile_line_and_the_exit_code() {
    let case = Case::new("fail");
    case.dockerfile("FROM BASE\nRUN true\nRUN echo about to fail && exit 3\n");
    let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success());
    assert!(log.contains("Dockerfile:3"), "{log}");
    assert!(log.contains("exit code: 3"), "{log}");
    assert!(
        log.contains("about to fail"),
        "the step's output is shown:\n{log}"
    );

    case.dockerfile("FROM BASE\nCOPY missing.txt /\n");
    let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("Dockerfile:2") && log.contains("missing.txt"),
        "{log}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_killed_build_leaves_a_usable_store() {
    let case = Case::new("crash");
    case.dockerfile("FROM BASE\nRUN echo partial > /p && sleep 30\n");
    let mut child = Command::new(support::kiln_bin())
        .arg("--root")
        .arg(case.store())
        .args(["build", "-t", "crashed"])
        .arg(case.ctx())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SIGKILL: no cleanup of any kind runs.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    std::thread::sleep(std::time::Duration::from_millis(500));
    case.dockerfile("FROM BASE\nRUN echo fine > /f\n");
    case.build(&["-t", "after-crash"]);
    let images = text(&case.kiln(&["images"]));
    assert!(
        images.contains("after-crash") && !images.contains("crashed"),
        "{images}"
    );
    let tmp: Vec<_> = fs::read_dir(case.store().join("tmp")).unwrap().collect();
    assert!(
        tmp.is_empty(),
        "the dead build's scratch dir was removed: {tmp:?}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn source_date_epoch_makes_two_clean_builds_identical() {
    let build = |name: &str| {
        let case = Case::new(name);
        case.dockerfile("FROM BASE\nCOPY a /a\nRUN mkdir -p /d && echo hi > /d/f && touch /d/g\nCMD [\"cat\", \"/d/f\"]\n");
        case.file("a", "same\n");
        let iid = case.path("iid");
        let archive = case.path("img.oci.tar");
        case.build(&[
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "repro",
            "-o",
            &format!("type=oci,dest={}", archive.display()),
        ]);
        let inspect = tool(
            "skopeo",
            &["inspect", &format!("oci-archive:{}", archive.display())],
        );
        let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        (
            fs::read_to_string(iid).unwrap(),
            json["Digest"].to_string(),
            json["Created"].to_string(),
        )
    };
    let (iid1, digest1, created) = build("repro-a");
    // A second later, in another store: nothing may depend on the clock.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (iid2, digest2, _) = build("repro-b");
    assert_eq!(iid1, iid2);
    assert_eq!(digest1, digest2);
    assert_eq!(created, "\"2023-11-14T22:13:20Z\"");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn onbuild_scratch_rootfs_outputs_and_zstd() {
    let case = Case::new("misc");
    case.dockerfile("FROM BASE\nONBUILD RUN echo triggered > /onbuild\n");
    case.build(&["-t", "parent"]);
    case.dockerfile("FROM parent\nRUN cat /onbuild > /seen\n");
    let out = case.path("rootfs");
    case.build(&[
        "-t",
        "child",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(fs::read_to_string(out.join("seen")).unwrap(), "triggered\n");
    assert!(out.join("bin/busybox").is_file());
    let inspect: serde_json::Value =
        serde_json::from_slice(&case.kiln(&["inspect", "child"]).stdout).unwrap();
    assert!(
        inspect["Config"]["OnBuild"].is_null(),
        "triggers are not inherited: {inspect}"
    );

    case.dockerfile("FROM scratch\nCOPY --from=parent /bin/busybox /busybox\nCMD [\"/busybox\", \"echo\", \"from scratch\"]\n");
    let tar = case.path("rootfs.tar");
    let zst = case.path("zstd.oci.tar");
    case.build(&[
        "-t",
        "tiny",
        "--compression",
        "zstd",
        "-o",
        &format!("type=tar,dest={}", tar.display()),
        "-o",
        &format!("type=oci,dest={}", zst.display()),
    ]);
    let listing = tool("tar", &["-tf", tar.to_str().unwrap()]);
    assert_eq!(listing.trim(), "busybox");
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", zst.display()),
        ],
    );
    assert!(raw.contains("tar+zstd"), "{raw}");
    assert_eq!(
        podman_run(&zst, "localhost/tiny:latest", &[]),
        "from scratch\n"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn archives_and_layouts_serve_as_bases() {
    let case = Case::new("bases");
    case.dockerfile("FROM BASE\nRUN echo marker > /marker\n");
    let docker = case.path("base.docker.tar");
    let oci = case.path("base.oci.tar");
    case.build(&[
        "-t",
        "base-img:v2",
        "-o",
        &format!("type=docker,dest={}", docker.display()),
        "-o",
        &format!("type=oci,dest={}", oci.display()),
    ]);
    // A fresh store: everything comes from the files.
    let other = Case::new("bases-other");
    for from in [
        format!("docker-archive:{}", docker.display()),
        format!("oci-archive:{}:localhost/base-img:v2", oci.display()),
    ] {
        fs::write(
            other.ctx().join("Dockerfile"),
            format!("FROM {from}\nRUN cat /marker > /copied\n"),
        )
        .unwrap();
        let rootfs = other.path("out");
        let _ = fs::remove_dir_all(&rootfs);
        other.build(&["-o", &format!("type=local,dest={}", rootfs.display())]);
        assert_eq!(
            fs::read_to_string(rootfs.join("copied")).unwrap(),
            "marker\n",
            "{from}"
        );
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_terminal_gets_the_live_view_and_quiet_only_the_id() {
    let case = Case::new("tty");
    case.dockerfile("FROM BASE\nRUN echo working && sleep 0.5\n");
    // `script` gives kiln a pseudo-terminal, as a user's shell would.
    let cmd = format!(
        "{} --root {} build --no-cache {}",
        support::kiln_bin().display(),
        case.store().display(),
        case.ctx().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let screen = text(&out);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("[+] Building") && screen.contains("\x1b["),
        "{screen}"
    );
    assert!(
        screen.contains("=> [stage-0 2/2] RUN echo working"),
        "{screen}"
    );
    let out = case.kiln(&["build", "-q", case.ctx().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim().starts_with("sha256:") && stdout.trim().len() == 71,
        "{stdout}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn ctrl_c_stops_the_build_and_leaves_the_store_clean() {
    let case = Case::new("sigint");
    case.dockerfile("FROM BASE\nRUN echo started && sleep 60\n");
    let mut cmd = Command::new(support::kiln_bin());
    cmd.arg("--root")
        .arg(case.store())
        .args(["build", "--progress=plain"])
        .arg(case.ctx())
        .stderr(std::process::Stdio::piped());
    // A terminal's Ctrl-C reaches a foreground kiln with SIGINT at its
    // default action; a test run from a background job inherits it
    // ignored, so restore it for the child.
    // SAFETY: signal() is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Wait until the step runs.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0
        && !line.contains("started")
    {}
    let sent = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    // No step process survives (its `sleep 60` would still be there).
    let ps = tool("ps", &["-eo", "args"]);
    assert!(!ps.lines().any(|l| l.trim() == "sleep 60"), "{ps}");
    case.dockerfile("FROM BASE\nRUN echo next > /next\n");
    case.build(&[]);
    let tmp: Vec<_> = fs::read_dir(case.store().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_noop_run_makes_no_layer_and_identical_layers_stack() {
    let case = Case::new("noop");
    // With the epoch, the two echo steps make byte-identical layers.
    case.dockerfile(
        "FROM BASE\nRUN true\nRUN echo same > /same\nRUN echo same > /same\nRUN cat /same\n",
    );
    let archive = case.path("noop.tar");
    case.build(&[
        "--build-arg",
        "SOURCE_DATE_EPOCH=0",
        "-t",
        "noop",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let json: serde_json::Value =
        serde_json::from_slice(&case.kiln(&["inspect", "noop"]).stdout).unwrap();
    let ids = json["RootFS"]["diff_ids"].as_array().unwrap();
    assert_eq!(
        ids.len(),
        3,
        "base + two echo layers, nothing for RUN true: {ids:?}"
    );
    assert_eq!(ids[1], ids[2]);
    let history = json["History"].as_array().unwrap();
    let run_true = history
        .iter()
        .find(|h| {
            h["created_by"]
                .as_str()
                .unwrap_or("")
                .starts_with("RUN /bin/sh -c true")
        })
        .unwrap();
    assert_eq!(run_true["empty_layer"], true);
    assert_eq!(
        podman_run(&archive, "localhost/noop:latest", &["cat", "/same"]),
        "same\n"
    );
}
