//! `--platform`: builds for another platform than the host's, foreign RUN
//! steps through binfmt_misc (qemu-user-static, set up by scripts/deps.sh),
//! the cross-compile pattern, and the error when no handler can run them.

mod support;

use std::process::Command;

use support::{cached, multi_base, read, text, tool, Case};

/// The host's `uname -m`.
fn host_machine() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    }
}

impl Case {
    /// Writes the Dockerfile with `MULTI` the two-platform busybox.
    fn multi_dockerfile(&self, text: &str) {
        self.dockerfile(&text.replace("MULTI", &multi_base()));
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_arm64_build_runs_its_run_steps_through_qemu() {
    let case = Case::new("arm64");
    case.multi_dockerfile("FROM MULTI\nRUN uname -m > /arch\n");
    // The host build first: the arm64 one must not reuse its RUN.
    let host = case.build_local(&[]);
    assert_eq!(read(&host, "arch").trim(), host_machine());
    let archive = case.path("arm.tar");
    let dest = format!("type=docker,dest={}", archive.display());
    let log = case.build(&["--platform", "linux/arm64", "-t", "plat-arm", "-o", &dest]);
    assert!(
        !cached(&log, "RUN uname"),
        "the host's RUN was reused:\n{log}"
    );
    let config = case.inspect("plat-arm");
    assert_eq!(config["Architecture"], "arm64", "{config}");
    // Run as users run it: podman, the arm64 image, through qemu.
    tool("podman", &["load", "-q", "-i", archive.to_str().unwrap()]);
    let image = "localhost/plat-arm:latest";
    let ran = Command::new("podman")
        .args(["run", "--rm", "--platform", "linux/arm64", image])
        .args(["sh", "-c", "cat /arch; uname -m"])
        .output()
        .unwrap();
    let _ = Command::new("podman").args(["rmi", "-f", image]).output();
    assert!(ran.status.success(), "{}", text(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "aarch64\naarch64\n");
    // Built again for arm64: its own cache entry holds.
    let again = case.build(&["--platform", "linux/arm64"]);
    assert!(cached(&again, "RUN uname"), "{again}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn the_build_platform_stage_runs_natively_and_is_shared_between_targets() {
    let case = Case::new("cross");
    case.multi_dockerfile(
        "FROM --platform=$BUILDPLATFORM MULTI AS build\n\
         RUN uname -m > /native\n\
         ARG TARGETARCH\n\
         RUN echo \"$TARGETARCH\" > /target\n\
         FROM MULTI\n\
         COPY --from=build /native /target /\n\
         RUN uname -m > /final\n",
    );
    let arm = case.build_local(&["--platform", "linux/arm64"]);
    assert_eq!(read(&arm, "native").trim(), host_machine());
    assert_eq!(read(&arm, "target").trim(), "arm64");
    assert_eq!(read(&arm, "final").trim(), "aarch64");
    // Another target: the build stage's steps that do not read TARGETARCH
    // are the same step, cached.
    let out = case.path("amd");
    let dest = format!("type=local,dest={}", out.display());
    let log = case.build(&["--platform", "linux/amd64", "-o", &dest]);
    assert!(cached(&log, "RUN uname -m > /native"), "{log}");
    assert!(!cached(&log, "RUN echo"), "{log}");
    assert_eq!(read(&out, "target").trim(), "amd64");
    assert_eq!(read(&out, "final").trim(), "x86_64");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_foreign_run_without_a_handler_fails_before_building_with_the_fix() {
    let case = Case::new("nohandler");
    case.multi_dockerfile("FROM MULTI\nRUN uname -m > /arch\n");
    // A machine whose binfmt_misc is not mounted: an empty dir.
    let empty = case.path("binfmt-empty");
    std::fs::create_dir_all(&empty).unwrap();
    // One whose aarch64 handler lacks the F flag (it cannot start in a
    // user namespace).
    let no_f = case.path("binfmt-nof");
    std::fs::create_dir_all(&no_f).unwrap();
    std::fs::write(no_f.join("status"), "enabled\n").unwrap();
    let entry = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .expect("scripts/deps.sh registers qemu-aarch64");
    std::fs::write(
        no_f.join("qemu-aarch64"),
        entry.replace("flags: PF", "flags: P"),
    )
    .unwrap();
    let ctx = case.ctx();
    for (dir, why) in [
        (&empty, "binfmt_misc is not mounted"),
        (&no_f, "lacks the F flag"),
    ] {
        let args = ["build", "--platform", "linux/arm64", ctx.to_str().unwrap()];
        let out = case.kiln_env(&args, &[("KILN_BINFMT_MISC", dir.to_str().unwrap())]);
        let log = text(&out);
        assert!(!out.status.success(), "{log}");
        assert!(log.contains(why), "{log}");
        assert!(
            log.contains("apt-get install qemu-user-static binfmt-support"),
            "{log}"
        );
        assert!(
            log.contains("update-binfmts --enable qemu-aarch64"),
            "{log}"
        );
        // Stopped before anything ran: no step started.
        assert!(!log.contains("RUN uname"), "{log}");
    }
    // No qemu runs another OS's programs.
    let log = case.build_fails(&["--platform", "windows/amd64"]);
    assert!(
        log.contains("kiln runs RUN steps of linux platforms only"),
        "{log}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_foreign_stage_without_run_needs_no_handler() {
    let case = Case::new("norun");
    // The single-platform (host) base for arm64: BuildKit's warning, and
    // the image still built; scratch is the target's.
    case.dockerfile("FROM BASE AS b\nCOPY a /a\nFROM scratch\nCOPY --from=b /a /a\n");
    case.file("a", "a\n");
    let empty = case.path("binfmt-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let ctx = case.ctx();
    let args = [
        "build",
        "--platform",
        "linux/arm64",
        "-t",
        "norun",
        ctx.to_str().unwrap(),
    ];
    let out = case.kiln_env(&args, &[("KILN_BINFMT_MISC", empty.to_str().unwrap())]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("WARN: InvalidBaseImagePlatform - Base image")
            && log.contains("expected \"linux/arm64\" for current build (Dockerfile:1)"),
        "{log}"
    );
    assert_eq!(case.inspect("norun")["Architecture"], "arm64");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_stored_base_of_another_platform_is_pulled_for_this_one() {
    let case = Case::new("stored");
    let reg = support::registry::TestRegistry::start(&case.path("reg"), &[]);
    let multi = format!("{}/multi:1", reg.host());
    let src = multi_base();
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{multi}"),
        ],
    );
    case.dockerfile(&format!("FROM {multi}\nCOPY a /a\n"));
    case.file("a", "a\n");
    // The store holds one image per name: each build pulls (and names) the
    // platform it needs when the stored one is another.
    for platform in ["linux/amd64", "linux/arm64", "linux/amd64"] {
        let log = case.build(&["--platform", platform, "-t", "stored"]);
        assert!(!log.contains("InvalidBaseImagePlatform"), "{log}");
        let arch = platform.trim_start_matches("linux/");
        assert_eq!(case.inspect("stored")["Architecture"], arch, "{log}");
    }
}
