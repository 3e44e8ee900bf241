//! BuildKit conformance, rootless and end to end: behaviour BuildKit's own
//! integration tests check (each test names the BuildKit test it follows),
//! proven on the built image. Run by scripts/test-build.sh as an
//! unprivileged user.

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use support::{text, Case};

/// Builds the case to a local dir; the text of each named file there.
fn local_files(case: &Case, extra: &[&str], files: &[&str]) -> Vec<String> {
    let out = case.path("out");
    let _ = fs::remove_dir_all(&out);
    let dest = format!("type=local,dest={}", out.display());
    let mut args = vec!["-o", dest.as_str()];
    args.extend_from_slice(extra);
    case.build(&args);
    files
        .iter()
        .map(|f| fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect()
}

// BuildKit: testUserAdditionalGids (CVE-2023-25173)
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_groups_start_with_the_primary_group() {
    let case = Case::new("groups");
    case.dockerfile(
        "FROM BASE\nRUN echo wheel:x:10:root >> /etc/group\nRUN id > /tmp/root\nUSER 1234\nRUN id > /tmp/1234\nUSER 1234:1234\nRUN id > /tmp/own\nUSER builder\nRUN id > /tmp/builder\n",
    );
    let got = local_files(
        &case,
        &[],
        &["tmp/root", "tmp/1234", "tmp/own", "tmp/builder"],
    );
    assert_eq!(
        got,
        [
            "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n",
            "uid=1234 gid=0(root) groups=0(root)\n",
            "uid=1234 gid=1234 groups=1234\n",
            "uid=1000(builder) gid=1000(builder) groups=1000(builder)\n",
        ]
    );
}

// Docker docs, "variable scoping": a FROM <stage> child sees its parent's ARGs.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_child_stage_sees_the_arg_values_of_its_parent_stage() {
    let case = Case::new("arg-inherit");
    case.dockerfile(
        "FROM BASE AS base\nARG NAME=kiln\nARG PLAIN=plain\nFROM base\nARG NAME=\"$NAME-dev\"\nRUN echo \"$NAME $PLAIN\" > /out\n",
    );
    assert_eq!(local_files(&case, &[], &["out"]), ["kiln-dev plain\n"]);
}

/// A build that must fail; its output.
fn build_fails(case: &Case, extra: &[&str]) -> String {
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    let ctx = case.ctx();
    args.push(ctx.to_str().unwrap());
    let out = case.kiln(&args);
    assert!(!out.status.success(), "the build should fail");
    text(&out)
}

// BuildKit: testArgDefaultExpansion
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_arg_skips_the_arg_default_it_replaces() {
    let case = Case::new("arg-default");
    case.dockerfile("FROM BASE\nARG FOO\nARG BAR=${FOO:?foo_missing}\nRUN echo \"$BAR\" > /bar\n");
    let log = build_fails(&case, &[]);
    assert!(
        log.contains("foo_missing") && log.contains("Dockerfile:3"),
        "{log}"
    );
    let got = local_files(&case, &["--build-arg", "BAR=given"], &["bar"]);
    assert_eq!(got, ["given\n"]);
}

// BuildKit: testTargetStageNameArg
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn targetstage_names_the_target_stage_once_declared() {
    let case = Case::new("targetstage");
    case.dockerfile(
        "FROM BASE AS base\nRUN echo \"value:$TARGETSTAGE\" > /first\nARG TARGETSTAGE\nRUN echo \"value:$TARGETSTAGE\" > /second\nFROM base AS foo\nFROM base\n",
    );
    let got = local_files(&case, &["--target", "foo"], &["first", "second"]);
    assert_eq!(got, ["value:\n", "value:foo\n"]);
    let got = local_files(&case, &[], &["second"]);
    assert_eq!(got, ["value:default\n"], "an unnamed target");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_source_date_epoch_arg_default_sets_created_and_is_checked() {
    let case = Case::new("epoch-arg");
    case.dockerfile("ARG SOURCE_DATE_EPOCH=1700000000\nFROM BASE\nRUN touch /x\n");
    case.build(&["-t", "dated"]);
    let json = case.inspect("dated");
    assert_eq!(json["Created"], "2023-11-14T22:13:20Z", "{json}");
    case.dockerfile("# epoch\nARG SOURCE_DATE_EPOCH=soon\nFROM BASE\n");
    let log = build_fails(&case, &[]);
    assert!(
        log.contains("Dockerfile:2") && log.contains("SOURCE_DATE_EPOCH=soon"),
        "{log}"
    );
}

// BuildKit: testDockerfileCheckHostname
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn buildkit_sandbox_hostname_names_the_run_host() {
    let case = Case::new("hostname");
    case.dockerfile("FROM BASE\nRUN hostname > /name && grep -c foo /etc/hosts > /hosts\n");
    let out = case.path("out");
    let dest = format!("type=local,dest={}", out.display());
    let log = case.build(&["-o", &dest, "--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=foo"]);
    assert!(!log.contains("UnusedBuildArg"), "{log}");
    assert_eq!(fs::read_to_string(out.join("name")).unwrap(), "foo\n");
    assert_eq!(fs::read_to_string(out.join("hosts")).unwrap(), "1\n");
}

// Docker docs, "predefined ARGs": proxies reach RUN without an ARG line,
// stay out of the image, and a new proxy does not invalidate the cache.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn proxy_build_args_reach_run_but_not_the_image_or_the_cache_key() {
    let case = Case::new("proxy");
    case.dockerfile("FROM BASE\nRUN env | grep -i _proxy | sort > /proxies\n");
    let args = |p: &'static str| ["--build-arg", p, "--build-arg", "no_proxy=.local"];
    let got = local_files(&case, &args("HTTP_PROXY=http://p1:3128"), &["proxies"]);
    assert_eq!(got, ["HTTP_PROXY=http://p1:3128\nno_proxy=.local\n"]);
    let mut tagged = args("HTTP_PROXY=http://p2:3128").to_vec();
    tagged.extend(["-t", "proxied"]);
    let log = case.build(&tagged);
    assert_eq!(log.matches("CACHED").count(), 1, "{log}");
    let json = case.inspect("proxied");
    let config = json.to_string();
    assert!(
        !config.contains("p1:3128") && !config.contains("p2:3128"),
        "{config}"
    );
    assert!(!config.contains(".local"), "{config}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_mount_values_take_args_and_env() {
    // BuildKit: testMountArg, testMountEnvVar. The first step's cache
    // (type and target from variables) must be the one the second reads.
    let case = Case::new("mountvars");
    case.dockerfile(
        "FROM BASE\nARG MNT_TYPE=cache\nENV CDIR=/c\n\
         RUN --mount=type=$MNT_TYPE,id=${MNT_TYPE}-v,target=$CDIR echo kept > /c/foo\n\
         RUN --mount=type=cache,id=cache-v,target=/d cp /d/foo /seen\n",
    );
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_to_string(out.join("seen")).unwrap(), "kept\n");
    assert!(
        !out.join("c/foo").exists(),
        "the cache stays out of the image"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn check_error_true_stops_the_build_and_the_build_arg_overrides_it() {
    // BuildKit: testRuleCheckOption (error=true fails the build with the
    // rules named; BUILDKIT_DOCKERFILE_CHECK replaces the directive).
    let case = Case::new("check-error");
    case.dockerfile("# check=error=true\nFROM scratch\nCOPY a /a\nCMD run me\nMAINTAINER me\n");
    case.file("a", "a\n");
    let ctx = case.ctx();
    let out = case.kiln(&["build", ctx.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("WARN: JSONArgsRecommended")
            && said.contains("WARN: MaintainerDeprecated")
            && said.contains(
                "lint violation found for rules: JSONArgsRecommended, MaintainerDeprecated"
            ),
        "{said}"
    );
    assert!(!said.contains("COPY a /a"), "nothing ran: {said}");
    let said = case.build(&[
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=skip=JSONArgsRecommended,MaintainerDeprecated",
    ]);
    assert!(!said.contains("WARN:"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn local_export_of_an_image_with_the_same_layer_twice() {
    let case = Case::new("twice");
    // Both COPY steps make the same diff: one layer dir, twice in the image.
    case.dockerfile("FROM BASE\nCOPY f /f\nCOPY f /f\n");
    case.file("f", "same");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_to_string(out.join("f")).unwrap(), "same");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_keeps_fifos_and_turns_sockets_into_empty_files() {
    let case = Case::new("special");
    case.dockerfile(
        "FROM BASE AS b\nRUN mkfifo /p && mkdir /d && mkfifo -m 600 /d/q\n\
         FROM BASE\nCOPY --from=b /p /p\nCOPY --from=b /d /d\nCOPY sock /s\n\
         RUN ls -l /p /d/q /s | cut -c1-10 > /kinds && stat -c %s /s >> /kinds\n",
    );
    // BuildKit's context transfer (fsutil) sends a socket as a regular file
    // without content. BuildKit: testCopySocket
    let sock = case.ctx().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o640)).unwrap();
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_to_string(out.join("kinds")).unwrap(),
        "prw-------\nprw-r--r--\n-rw-r-----\n0\n"
    );
    assert!(fs::symlink_metadata(out.join("p"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_the_context_keeps_hard_links_as_one_inode() {
    let case = Case::new("hardlinks");
    case.dockerfile(
        "FROM BASE\nCOPY hl /h/\nCOPY --chown=1:1 --chmod=750 hl /o/\n\
         RUN stat -c %i /h/a /h/sub/b /o/a /o/sub/b > /inodes\n",
    );
    case.file("hl/a", "shared");
    case.file("hl/sub/c", "alone");
    fs::hard_link(case.ctx().join("hl/a"), case.ctx().join("hl/sub/b")).unwrap();
    let (archive, _) = case.build_image("hardlinks", &[]);
    let said = support::run_sh(&archive, "hardlinks", "cat /inodes; stat -c %h /o/sub/c");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 5, "{said}");
    assert_eq!(lines[0], lines[1], "COPY keeps a hard link: {said}");
    assert_eq!(lines[2], lines[3], "--chown/--chmod too: {said}");
    assert_ne!(lines[0], lines[2], "two COPYs are two files: {said}");
    assert_eq!(lines[4], "1", "{said}");
    // The local export keeps them linked too.
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let ino = |p: &str| fs::symlink_metadata(out.join(p)).unwrap().ino();
    assert_eq!(ino("h/a"), ino("h/sub/b"));
    assert_eq!(ino("o/a"), ino("o/sub/b"));
    assert_ne!(ino("h/a"), ino("o/a"));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_and_workdir_through_a_dangling_symlink_create_its_target() {
    let case = Case::new("danglingdest");
    // A link's target is resolved inside the rootfs: `..` stops at its /.
    // BuildKit: testSymlinkDestination, testWorkdirCreatesDir
    case.dockerfile(
        "FROM BASE\nRUN ln -s /not-yet-there /link && ln -s ../tmp/target /rel \\\n\
         && ln -s ../../../../escape /up && ln -s /chain /hop && ln -s deep/er /chain\n\
         COPY f /link/\nCOPY f /up/\nCOPY f /hop/\nWORKDIR /rel\nRUN pwd -P > /tmp/target/wd\n",
    );
    case.file("f", "x");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    for p in ["not-yet-there/f", "escape/f", "deep/er/f"] {
        assert_eq!(fs::read_to_string(out.join(p)).unwrap(), "x", "{p}");
    }
    assert_eq!(
        fs::read_to_string(out.join("tmp/target/wd")).unwrap(),
        "/tmp/target\n"
    );
    assert!(fs::symlink_metadata(out.join("link")).unwrap().is_symlink());
}
