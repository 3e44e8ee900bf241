//! The platform of what a stage reads besides its base: `--from` images
//! are read for the stage's platform, and a base image's ONBUILD RUN
//! triggers are foreign RUN steps like the stage's own.

mod support;

use std::path::Path;

use support::{multi_base, text, Case};

/// A platform of the two-platform busybox this host cannot run natively,
/// and qemu's name of its architecture.
fn foreign() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("linux/amd64", "x86_64"),
        _ => ("linux/arm64", "aarch64"),
    }
}

/// The ELF e_machine of the host's programs.
fn host_machine() -> u16 {
    match std::env::consts::ARCH {
        "aarch64" => 183,
        _ => 62,
    }
}

/// The e_machine an ELF file states.
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{}", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_platform_stage_reads_from_images_for_its_own_platform() {
    let case = Case::new("fromplat");
    let multi = multi_base();
    // The cross-compile pattern: the tool stage runs natively and takes
    // its binaries from a multi-platform image, for the build platform.
    case.dockerfile(
        &"FROM --platform=$BUILDPLATFORM MULTI AS tool\n\
          COPY --from=MULTI /bin/busybox /copied\n\
          RUN --mount=from=MULTI,target=/m cp /m/bin/busybox /mounted\n\
          FROM scratch\n\
          COPY --from=tool /copied /mounted /\n"
            .replace("MULTI", &multi),
    );
    let out = case.path("out");
    let (target, _) = foreign();
    let dest = format!("type=local,dest={}", out.display());
    let log = case.build(&["--platform", target, "-o", &dest]);
    for name in ["copied", "mounted"] {
        assert_eq!(
            elf_machine(&out.join(name)),
            host_machine(),
            "{name}\n{log}"
        );
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_foreign_base_images_onbuild_run_is_checked_before_the_stage_runs() {
    let case = Case::new("onbuildrun");
    let (target, qemu) = foreign();
    // A base image of the foreign platform whose trigger is a RUN (its own
    // stage runs none, so building it needs no handler).
    case.dockerfile(
        &"FROM MULTI\nONBUILD RUN echo triggered > /t\n".replace("MULTI", &multi_base()),
    );
    case.build(&["--platform", target, "-t", "onbuild-base"]);
    case.dockerfile("FROM onbuild-base\nCOPY a /a\n");
    case.file("a", "a\n");
    // A machine whose binfmt_misc is not mounted: an empty dir.
    let empty = case.path("binfmt-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let ctx = case.ctx();
    let args = ["build", "--platform", target, ctx.to_str().unwrap()];
    let out = case.kiln_env(&args, &[("KILN_BINFMT_MISC", empty.to_str().unwrap())]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("binfmt_misc is not mounted"), "{log}");
    assert!(
        log.contains("apt-get install qemu-user-static binfmt-support"),
        "{log}"
    );
    assert!(
        log.contains(&format!("update-binfmts --enable qemu-{qemu}")),
        "{log}"
    );
    // Stopped before the stage's first step: neither the trigger nor the
    // COPY started.
    assert!(!log.contains("ONBUILD RUN"), "{log}");
    assert!(!log.contains("COPY a"), "{log}");
}
