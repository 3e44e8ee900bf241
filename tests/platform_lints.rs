//! Lint warnings of a platform list: `--check` checks every platform (a
//! stage only one of them builds has its own warnings), and each warning
//! is printed once, however many platforms show it.

mod support;

use support::{text, Case};

/// A stage per architecture, picked by `$TARGETARCH`: only arm64's has an
/// undefined variable; the final stage's is every platform's.
fn per_arch_case(name: &str) -> Case {
    let case = Case::new(name);
    case.dockerfile(
        "FROM scratch AS base-amd64\n\
         FROM scratch AS base-arm64\n\
         ENV A=$ONLY_ARM\n\
         FROM base-${TARGETARCH}\n\
         ENV B=$EVERY\n",
    );
    case
}

const PLATFORMS: &str = "linux/amd64,linux/arm64";

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn check_of_a_platform_list_checks_each_platform_once() {
    let case = per_arch_case("checklist");
    let ctx = case.ctx();
    let out = case.kiln(&[
        "build",
        "--check",
        "--platform",
        PLATFORMS,
        ctx.to_str().unwrap(),
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("'$ONLY_ARM'").count(), 1, "{log}");
    assert_eq!(log.matches("'$EVERY'").count(), 1, "{log}");
    assert!(log.contains("2 warnings have been found"), "{log}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_multi_platform_build_prints_each_warning_once() {
    let case = per_arch_case("buildlist");
    let log = case.build(&["--platform", PLATFORMS]);
    assert_eq!(log.matches("'$EVERY'").count(), 1, "{log}");
    assert_eq!(log.matches("'$ONLY_ARM'").count(), 1, "{log}");
}
