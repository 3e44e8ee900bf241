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
    // Both spellings, as BuildKit's executor sets them.
    assert_eq!(
        got,
        ["HTTP_PROXY=http://p1:3128\nNO_PROXY=.local\nhttp_proxy=http://p1:3128\nno_proxy=.local\n"]
    );
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

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_skips_a_wildcard_that_matches_nothing_but_not_a_missing_file() {
    // BuildKit: testEmptyWildcard (sources copied with AllowEmptyWildcard,
    // so even a COPY whose only source matches nothing builds).
    let case = Case::new("nomatch");
    case.dockerfile(
        "FROM scratch\nCOPY package.json yarn.lock* /app/\nCOPY foo nomatch* /\nCOPY nomatch* /none/\nCOPY --parents sub/./nomatch* sub/./f* /p/\nADD foo nomatch* /add/\n",
    );
    case.file("package.json", "{}");
    case.file("foo", "contents0");
    case.file("sub/f1", "f1");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_to_string(out.join("foo")).unwrap(), "contents0");
    assert!(out.join("app/package.json").is_file());
    assert!(!out.join("app/yarn.lock").exists());
    assert!(!out.join("none").exists(), "nothing matched, nothing made");
    assert!(out.join("p/f1").is_file() && out.join("add/foo").is_file());
    // A source without wildcards must exist.
    case.dockerfile("FROM scratch\nCOPY foo yarn.lock /app/\n");
    let failed = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let said = text(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(
        said.contains("yarn.lock: no such file or directory"),
        "{said}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_chmod_takes_symbolic_modes_and_modes_the_parents_it_creates() {
    // BuildKit: testCopyChmod (octal modes, and the parents COPY creates
    // get them); symbolic modes apply to each entry's own mode and leave
    // created parents 0755, as BuildKit's copy does.
    use std::os::unix::fs::PermissionsExt;
    let case = Case::new("chmod");
    case.dockerfile(
        "FROM scratch\nCOPY --chmod=u+x,go-w script.sh /s/\nCOPY --chmod=a+X tree /tree/\nADD --chmod=u=rwx,go=rx one /sym/deep/one\nCOPY --chmod=770 one /oct/sub/one\nCOPY --chmod=g=u,o= one /copied\n",
    );
    for (rel, mode) in [
        ("script.sh", 0o666),
        ("tree/dir/plain", 0o640),
        ("tree/exe", 0o700),
        ("one", 0o600),
    ] {
        case.file(rel, "x");
        let path = case.ctx().join(rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(
        case.ctx().join("tree/dir"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let mode = |rel: &str| fs::metadata(out.join(rel)).unwrap().permissions().mode() & 0o7777;
    for (rel, want) in [
        ("s/script.sh", 0o744),
        ("tree/dir", 0o711),
        ("tree/dir/plain", 0o640),
        ("tree/exe", 0o711),
        ("sym", 0o755),
        ("sym/deep", 0o755),
        ("sym/deep/one", 0o755),
        ("oct", 0o770),
        ("oct/sub", 0o770),
        ("oct/sub/one", 0o770),
        ("copied", 0o660),
    ] {
        assert_eq!(mode(rel), want, "/{rel}: {:o}", mode(rel));
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_parents_finds_every_double_star_match_below_a_wildcard_pivot() {
    // BuildKit: testCopyRelativeParents ("doublewildcard", "doubleinputs").
    let case = Case::new("parents");
    case.dockerfile(
        "FROM scratch\nCOPY --parents a/b*/./c/**/e /out/\nCOPY --parents a/b/c*/./d/**/baz a/b*/./c/**/bar /dbl/\nCOPY --parents a/**/top /whole/\n",
    );
    for rel in [
        "a/b/c/d/foo",
        "a/b/c/d/e/bay",
        "a/b2/c/d/e/bar",
        "a/b2/c/e/top",
        "a/b/c2/d/e/baz",
        "a/b/c2/d/e2/baz",
    ] {
        case.file(rel, rel);
    }
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    for rel in [
        "out/c/d/e/bay",
        "out/c/d/e/bar",
        "out/c/e/top",
        "dbl/d/e/baz",
        "dbl/d/e2/baz",
        "dbl/c/d/e/bar",
        "whole/a/b2/c/e/top",
    ] {
        assert!(out.join(rel).is_file(), "/{rel} is missing");
    }
    for rel in ["out/c/d/foo", "out/a", "dbl/d/e/bay", "whole/a/b"] {
        assert!(!out.join(rel).exists(), "/{rel} is copied");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_parents_makes_its_destination_when_nothing_matches_but_needs_its_pivot() {
    // BuildKit: testCopyParentsMissingDirectory ("wildcard-nonexistent",
    // "wildcard-afterpivot"): --parents copies from the root or a pivot
    // with include patterns, which makes the destination; a wildcard pivot
    // that matches nothing makes nothing; a plain pivot must exist.
    let case = Case::new("parents-none");
    case.dockerfile(
        "FROM scratch\nCOPY --parents nomatch* /pdir/\nCOPY --parents sub/./c2* /pivot/\nCOPY --parents no*/./x* /pnone/\n",
    );
    case.file("sub/f1", "f1");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert!(out.join("pdir").is_dir() && out.join("pivot").is_dir());
    assert!(!out.join("pnone").exists() && !out.join("pivot/sub").exists());
    case.dockerfile("FROM scratch\nCOPY --parents gone/./f* /app/\n");
    let failed = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let said = text(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(said.contains("gone: no such file or directory"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_image_whose_copies_matched_nothing_exports_and_is_copied_from() {
    // A COPY of a wildcard that matches nothing adds no layer: FROM scratch
    // then leaves an image without any, whose rootfs is still readable.
    let case = Case::new("no-layers");
    case.dockerfile("FROM scratch\nCOPY nomatch* /x/\n");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "an empty rootfs");
    case.dockerfile(
        "FROM scratch AS none\nCOPY nomatch* /x/\nFROM scratch\nCOPY --from=none / /from-none/\nCOPY foo /\n",
    );
    case.file("foo", "f");
    let out = case.path("out2");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert!(out.join("from-none").is_dir() && out.join("foo").is_file());
}

// BuildKit: testOnBuildInheritedStageRun, testOnBuildNewDeps, testOnBuildHeredoc
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn onbuild_of_a_stage_fires_in_the_stages_built_from_it() {
    let case = Case::new("onbuild-stage");
    case.dockerfile(concat!(
        "FROM BASE AS src\nRUN echo data > /data\n",
        "FROM BASE AS parent\nONBUILD COPY --from=src /data /copied\n",
        "ONBUILD RUN <<EOF\necho heredoc > /hd\nEOF\n",
        "FROM parent\nRUN cat /copied /hd > /seen\n",
    ));
    let out = case.path("out");
    case.build(&[
        "-t",
        "child",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "data\nheredoc\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_slice(&case.kiln(&["inspect", "child"]).stdout).unwrap();
    assert!(
        inspect["Config"]["OnBuild"].is_null(),
        "the triggers ran and are not inherited: {inspect}"
    );
}

// BuildKit: testOnBuildNamedContext (a base image's trigger reads a stage
// of the child's Dockerfile)
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn onbuild_copy_from_in_a_base_image_reads_the_childs_stage() {
    let case = Case::new("onbuild-image");
    case.dockerfile("FROM BASE\nONBUILD COPY --from=assets /a /a\n");
    case.build(&["-t", "parent"]);
    // `assets` is also read by `user`, whose end would release it if the
    // trigger's read were not counted.
    case.dockerfile(concat!(
        "FROM BASE AS assets\nRUN echo asset > /a\n",
        "FROM assets AS user\nRUN cp /a /u\n",
        "FROM parent\nCOPY --from=user /u /u\nRUN cat /a /u > /seen\n",
    ));
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "asset\nasset\n"
    );
}

// BuildKit: --no-cache also ignores cache mounts (moby/buildkit#4250,
// #5306): the build starts them empty; its later steps share the new one.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn no_cache_starts_cache_mounts_empty() {
    let case = Case::new("no-cache-mounts");
    case.dockerfile(concat!(
        "FROM BASE\n",
        "RUN --mount=type=cache,target=/c ls /c > /first && touch /c/made\n",
        "RUN --mount=type=cache,target=/c ls /c > /second\n",
    ));
    case.build(&[]);
    let out = case.path("out");
    case.build(&[
        "--no-cache",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(fs::read_to_string(out.join("first")).unwrap(), "", "fresh");
    assert_eq!(fs::read_to_string(out.join("second")).unwrap(), "made\n");
    // A later build (a new step, so it runs) finds what that one made.
    case.dockerfile("FROM BASE\nRUN --mount=type=cache,target=/c ls /c > /third\n");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_to_string(out.join("third")).unwrap(), "made\n");
}

// BuildKit: testNamedContextOverride-like (a named context replaces the
// stage of that name, for FROM and COPY --from).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_context_replaces_the_stage_of_its_name() {
    let case = Case::new("context-replaces");
    let dir = case.path("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("dep"), "from the context\n").unwrap();
    let layout = std::env::var("KILN_TEST_BASE").unwrap();
    case.dockerfile(concat!(
        "FROM scratch AS base\n",
        "FROM BASE AS deps\nRUN echo built > /dep\n",
        "FROM base\nCOPY --from=deps /dep /dep\nRUN cat /dep > /seen\n",
    ));
    let out = case.path("out");
    case.build(&[
        "--build-context",
        &format!("deps={}", dir.display()),
        "--build-context",
        &format!("base=oci-layout://{layout}:latest"),
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "from the context\n",
        "the stage deps is not built, nor base's scratch (RUN needs a shell)"
    );
}
