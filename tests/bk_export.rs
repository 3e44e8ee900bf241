//! BuildKit's cache and export tests, ported (moby/buildkit
//! `frontend/dockerfile/dockerfile_{cache,export}_test.go`): each test is
//! named after the BuildKit one and asserts what it asserts, on the
//! busybox base, rootless. tests/BUILDKIT.md lists what was not ported
//! and why. Run by scripts/test-build.sh.

mod support;

use std::fs;
use std::path::PathBuf;

use support::{fails, read, tool, Case};

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn no_cache() {
    // BuildKit's last part (`no-cache=s1`, one stage only) is
    // --no-cache-filter, which kiln does not have (issue #21).
    let case = Case::new("bk-nocache");
    case.dockerfile(
        "FROM BASE AS s0\nRUN cat /dev/urandom | head -c 100 | sha256sum | tee unique\n\
         FROM BASE AS s1\nRUN cat /dev/urandom | head -c 100 | sha256sum | tee unique2\n\
         FROM scratch\nCOPY --from=s0 unique /\nCOPY --from=s1 unique2 /\n",
    );
    let one = case.build_into("one", &[]);
    let two = case.build_into("two", &["--no-cache"]);
    assert_ne!(read(&one, "unique"), read(&two, "unique"));
    assert_ne!(read(&one, "unique2"), read(&two, "unique2"));
    let three = case.build_into("three", &[]);
    assert_eq!(read(&two, "unique"), read(&three, "unique"));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn cache_mount_mode_no_cache() {
    // moby/buildkit#5305: --no-cache gives the cache mount afresh, with
    // its mode; the next cached build sees what that one left.
    let case = Case::new("bk-cachemode-nocache");
    case.dockerfile(
        "FROM BASE AS base\nARG FOO=abc\n\
         RUN --mount=type=cache,target=/cache,mode=0773 touch /cache/$FOO && \
         ls -l /cache | wc -l > /out\n\
         FROM scratch\nCOPY --from=base /out /\n",
    );
    let out = case.build_into("o1", &[]);
    assert_eq!(read(&out, "out"), "2\n");
    let out = case.build_into("o2", &["--no-cache", "--build-arg", "FOO=def"]);
    assert_eq!(read(&out, "out"), "2\n");
    let out = case.build_into("o3", &["--build-arg", "FOO=ghi"]);
    assert_eq!(read(&out, "out"), "3\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn wildcard_rename_cache() {
    // moby/buildkit#2008: a renamed file changes what a wildcard matches.
    let case = Case::new("bk-wildcard-rename");
    case.dockerfile("FROM BASE\nCOPY file* /files/\nRUN ls /files/file1\n");
    case.file("file1", "foo");
    case.build(&[]);
    fs::rename(case.ctx().join("file1"), case.ctx().join("file2")).unwrap();
    let ctx = case.ctx();
    let said = fails(&case.kiln(&["build", ctx.to_str().unwrap()]));
    assert!(said.contains("Dockerfile:3"), "{said}");
}

/// `-o type=tar,dest=out.tar` of the case; the archive.
fn build_tar(case: &Case, extra: &[&str]) -> PathBuf {
    let tar = case.path("out.tar");
    let dest = format!("type=tar,dest={}", tar.display());
    let mut args = vec!["-o", dest.as_str()];
    args.extend_from_slice(extra);
    case.build(&args);
    tar
}

/// A file of a tar archive.
fn tar_file(tar: &std::path::Path, name: &str) -> String {
    tool("tar", &["-xOf", tar.to_str().unwrap(), name])
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn tar_exporter_basic() {
    let case = Case::new("bk-tar-basic");
    case.dockerfile("FROM scratch\nCOPY foo foo\n");
    case.file("foo", "data");
    let tar = build_tar(&case, &[]);
    assert_eq!(tar_file(&tar, "foo"), "data");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn tar_exporter_multi() {
    // BuildKit's second part (platform=linux/amd64,darwin/amd64, one
    // directory per platform) needs multi-platform builds (issue #22).
    let case = Case::new("bk-tar-multi");
    case.dockerfile(
        "FROM scratch AS stage-linux\nCOPY foo forlinux\n\
         FROM scratch AS stage-darwin\nCOPY bar fordarwin\n\
         FROM stage-$TARGETOS\n",
    );
    case.file("foo", "data");
    case.file("bar", "data2");
    let tar = build_tar(&case, &[]);
    assert_eq!(tar_file(&tar, "forlinux"), "data");
    let names = tool("tar", &["-tf", tar.to_str().unwrap()]);
    assert!(!names.contains("fordarwin"), "{names}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_a_stage_rebuilt_to_the_same_files_stays_cached() {
    // BuildKit keys a copy by the content it copies (its FileOp's content
    // checksums), as it does a mount (testMountRWCache): a stage rebuilt
    // to the same files leaves COPY --from, and what follows, cached.
    let case = Case::new("copyfrom-content");
    case.dockerfile(
        "FROM BASE AS build\nARG V=foo\nCOPY cachebust /\nRUN mkdir /out && echo $V > /out/foo\n\
         FROM BASE\nCOPY --from=build /out /out\n\
         RUN cat /dev/urandom | head -c 100 | sha256sum > /unique\n",
    );
    case.file("cachebust", "0");
    let one = case.build_into("one", &[]);
    case.file("cachebust", "1");
    let two = case.build_into("two", &[]);
    assert_eq!(read(&one, "unique"), read(&two, "unique"));
    // Other content is another key.
    let three = case.build_into("three", &["--build-arg", "V=bar"]);
    assert_eq!(read(&three, "out/foo"), "bar\n");
    assert_ne!(read(&two, "unique"), read(&three, "unique"));
}
