//! BuildKit's COPY tests (frontend/dockerfile/dockerfile_copy_test.go; --parents and
//! .dockerignore are in bk_parents.rs), ported to
//! rootless kiln builds on the busybox base. Each test is named after the
//! BuildKit one and asserts what it asserts; a RUN that tests a condition
//! fails the build when it does not hold. Run by scripts/test-build.sh.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use support::{read, Case};

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_copy_from_args() {
    let case = Case::new("copy-from-args");
    case.dockerfile("FROM scratch\nCOPY --from=$FOO . .\n");
    let said = case.build_fails(&[]);
    assert!(
        said.contains("variable expansion is not supported for --from"),
        "{said}"
    );
    assert!(said.contains("Dockerfile:2"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn empty_dest_dir() {
    let case = Case::new("empty-dest");
    case.dockerfile(
        "FROM BASE\nENV empty=\"\"\nCOPY testfile $empty\nRUN [ \"$(cat testfile)\" == \"contents0\" ]\n",
    );
    case.file("testfile", "contents0");
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn preserve_dest_dir_slash() {
    let case = Case::new("dest-slash");
    case.dockerfile(
        "FROM BASE\nCOPY testfile /sample/\nRUN [ \"$(cat /sample/testfile)\" == \"contents0\" ]\n",
    );
    case.file("testfile", "contents0");
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_link_dot_dest_dir() {
    let case = Case::new("link-dot");
    case.dockerfile(
        "FROM BASE\nWORKDIR /var/www\nCOPY --link testfile .\nRUN [ \"$(cat testfile)\" == \"contents0\" ]\n",
    );
    case.file("testfile", "contents0");
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_link_empty_dest_dir() {
    let case = Case::new("link-empty");
    case.dockerfile(
        "FROM BASE\nWORKDIR /var/www\nENV empty=\"\"\nCOPY --link testfile $empty\nRUN [ \"$(cat testfile)\" == \"contents0\" ]\n",
    );
    case.file("testfile", "contents0");
    case.build(&[]);
}

/// `RUN` lines that fail unless each path has the owner given.
fn owners(checks: &[(&str, &str)]) -> String {
    let tests: Vec<String> = checks
        .iter()
        .map(|(want, p)| {
            format!("[ \"$(stat -c %u:%g {p})\" = \"{want}\" ] || {{ echo {p}; exit 1; }}")
        })
        .collect();
    format!("RUN {}\n", tests.join(" && "))
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_chown_existing_dir() {
    let case = Case::new("chown-existing");
    let existing = [
        ("500:600", "/existingdir"),
        ("501:601", "/existingdir/existingsubdir"),
        ("501:601", "/existingdir/existingfile"),
    ];
    let mut plain = vec![
        ("100:200", "/file"),
        ("0:0", "/dir"),
        ("101:201", "/dir/subdir"),
        ("102:202", "/dir/subdir/nestedfile"),
        ("101:201", "/existingdir/subdir"),
        ("102:202", "/existingdir/subdir/nestedfile"),
    ];
    plain.extend(existing);
    let mut chowned: Vec<(&str, &str)> = plain
        .iter()
        .filter(|(_, p)| !p.starts_with("/existingdir/existing") && *p != "/existingdir")
        .map(|(_, p)| ("300:400", *p))
        .collect();
    chowned.extend(existing);
    let text = format!(
        "FROM BASE AS source\n\
         RUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile \
         && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile\n\
         FROM BASE AS test_base\n\
         RUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile \
         && chown 500:600 /existingdir && chown 501:601 /existingdir/existingsubdir \
         && chown 501:601 /existingdir/existingfile\n\
         FROM test_base AS copy_from\n\
         COPY --from=source /file .\nCOPY --from=source /dir /dir\nCOPY --from=source /dir/. /existingdir\n{}\
         FROM test_base AS copy_from_chowned\n\
         COPY --from=source --chown=300:400 /file .\nCOPY --from=source --chown=300:400 /dir /dir\n\
         COPY --from=source --chown=300:400 /dir/. /existingdir\n{}",
        owners(&plain),
        owners(&chowned)
    );
    // BuildKit's Dockerfile is a symlink to Dockerfile.web.
    fs::write(
        case.ctx().join("Dockerfile.web"),
        text.replace("BASE", &support::base()),
    )
    .unwrap();
    symlink("Dockerfile.web", case.ctx().join("Dockerfile")).unwrap();
    case.build(&[]);
    case.build(&["--target", "copy_from"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_wildcard_cache() {
    let case = Case::new("wildcard-cache");
    case.dockerfile(
        "FROM BASE AS base\nCOPY foo* files/\nRUN head -c 100 /dev/urandom | sha256sum > unique\n\
         COPY bar files/\nFROM scratch\nCOPY --from=base unique /\n",
    );
    case.file("foo1", "foo1-data");
    case.file("foo2", "foo2-data");
    case.file("bar", "bar-data");
    let first = read(&case.build_local(&[]), "unique");
    // A file after the RUN changed: the RUN stays cached.
    case.file("bar", "bar-data-mod");
    assert_eq!(read(&case.build_local(&[]), "unique"), first);
    // A file the wildcard matched changed: the RUN runs again.
    case.file("foo2", "foo2-data-mod");
    assert_ne!(read(&case.build_local(&[]), "unique"), first);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_chown_create_dest() {
    let case = Case::new("chown-create");
    case.dockerfile(
        // The test image's busybox has no adduser: the lines `adduser -D`
        // writes (a user and its own group) instead.
        "FROM BASE\nARG group\nENV owner user01\n\
         RUN echo user:x:1001:1001::/home/user:/bin/sh >> /etc/passwd && echo user:x:1001: >> /etc/group\n\
         RUN echo user01:x:1002:1002::/home/user01:/bin/sh >> /etc/passwd && echo user01:x:1002: >> /etc/group\n\
         COPY --chown=user:user . /dest\nCOPY --chown=${owner}:${group} . /dest01\n\
         RUN [ \"$(stat -c \"%U %G\" /dest)\" == \"user user\" ]\n\
         RUN [ \"$(stat -c \"%U %G\" /dest01)\" == \"user01 user\" ]\n",
    );
    case.build(&["--build-arg", "group=user"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_through_symlink_context() {
    let case = Case::new("symlink-context");
    case.dockerfile("FROM scratch\nCOPY link/foo .\n");
    case.file("sub/foo", "contents");
    symlink("sub", case.ctx().join("link")).unwrap();
    assert_eq!(read(&case.build_local(&[]), "foo"), "contents");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_through_symlink_multi_stage() {
    let case = Case::new("symlink-stage");
    case.dockerfile(
        "FROM BASE AS build\n\
         RUN mkdir -p /out/sub && ln -s /out/sub /sub && ln -s out/sub /sub2 && echo -n \"data\" > /sub/foo\n\
         FROM scratch\nCOPY --from=build /sub/foo .\nCOPY --from=build /sub2/foo bar\n",
    );
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "foo"), "data");
    assert_eq!(read(&out, "bar"), "data");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_follow_all_symlinks() {
    // moby/buildkit#1197: a COPY of a dir, then of a symlink in it.
    let case = Case::new("follow-symlinks");
    case.dockerfile("FROM scratch\nCOPY foo /\nCOPY foo/sub bar\n");
    case.file("bar", "bar-contents");
    fs::create_dir(case.ctx().join("foo")).unwrap();
    symlink("../bar", case.ctx().join("foo/sub")).unwrap();
    assert_eq!(read(&case.build_local(&[]), "bar"), "bar-contents");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_symlinks() {
    let case = Case::new("symlinks");
    case.dockerfile("FROM scratch\nCOPY foo /\nCOPY sub/l* alllinks/\n");
    case.file("bar", "bar-contents");
    symlink("bar", case.ctx().join("foo")).unwrap();
    case.file("sub/lfile", "lfile-contents");
    symlink("subfile", case.ctx().join("sub/l0")).unwrap();
    case.file("sub/subfile", "subfile-contents");
    symlink("second", case.ctx().join("sub/l1")).unwrap();
    symlink("baz", case.ctx().join("sub/second")).unwrap();
    case.file("sub/baz", "baz-contents");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "foo"), "bar-contents");
    assert_eq!(read(&out, "alllinks/l0"), "subfile-contents");
    assert_eq!(read(&out, "alllinks/lfile"), "lfile-contents");
    assert_eq!(read(&out, "alllinks/l1"), "baz-contents");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_chown() {
    let case = Case::new("chown");
    // Docker Hub's busybox has a daemon user (1:1) and names gid 65534
    // nobody; the test image has no daemon and calls 65534 nogroup.
    case.dockerfile(
        "FROM BASE AS base\nENV owner 1000\nRUN mkdir -m 0777 /out\n\
         RUN echo daemon:x:1:1:daemon:/usr/sbin:/bin/false >> /etc/passwd && echo daemon:x:1: >> /etc/group \
         && sed -i s/^nogroup:/nobody:/ /etc/group\n\
         COPY --chown=daemon foo /\nCOPY --chown=1000:nobody bar /baz\nARG group\n\
         COPY --chown=${owner}:${group} foo /foobis\n\
         RUN stat -c \"%U %G\" /foo  > /out/fooowner\n\
         RUN stat -c \"%u %G\" /baz/sub  > /out/subowner\n\
         RUN stat -c \"%u %G\" /foobis  > /out/foobisowner\n\
         FROM scratch\nCOPY --from=base /out /\n",
    );
    case.file("foo", "foo-contents");
    case.file("bar/sub", "");
    let out = case.build_local(&["--build-arg", "group=nobody"]);
    assert_eq!(read(&out, "fooowner"), "daemon daemon\n");
    assert_eq!(read(&out, "subowner"), "1000 nobody\n");
    assert_eq!(read(&out, "foobisowner"), "1000 nobody\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_chmod() {
    let case = Case::new("chmod");
    case.dockerfile(
        "FROM BASE AS base\nRUN mkdir -m 0777 /out\n\
         COPY --chmod=0644 foo /\nCOPY --chmod=777 bar /baz\nCOPY --chmod=0 foo /foobis\n\
         COPY --chmod=777 foo /parent/foo\nCOPY --chmod=770 foo /parent/sub/foo\n\
         ARG mode\nCOPY --chmod=${mode} foo /footer\n\
         RUN stat -c \"%04a\" /foo  > /out/fooperm\nRUN stat -c \"%04a\" /baz  > /out/barperm\n\
         RUN stat -c \"%04a\" /foobis  > /out/foobisperm\nRUN stat -c \"%04a\" /parent  > /out/parentperm\n\
         RUN stat -c \"%04a\" /parent/sub  > /out/subparentperm\n\
         RUN stat -c \"%04a\" /footer  > /out/footerperm\n\
         FROM scratch\nCOPY --from=base /out /\n",
    );
    case.file("foo", "foo-contents");
    case.file("bar", "bar-contents");
    chmod(&case.ctx().join("foo"), 0o600);
    chmod(&case.ctx().join("bar"), 0o700);
    let out = case.build_local(&["--build-arg", "mode=755"]);
    for (file, want) in [
        ("fooperm", "0644\n"),
        ("barperm", "0777\n"),
        ("foobisperm", "0000\n"),
        ("parentperm", "0777\n"),
        ("subparentperm", "0770\n"),
        ("footerperm", "0755\n"),
    ] {
        assert_eq!(read(&out, file), want, "{file}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_invalid_chmod() {
    let case = Case::new("chmod-invalid");
    case.file("foo", "foo-contents");
    for mode in ["64a", "10000"] {
        case.dockerfile(&format!("FROM scratch\nCOPY --chmod={mode} foo /\n"));
        let said = case.build_fails(&[]);
        // kiln's wording (it also takes symbolic modes): "invalid --chmod
        // value \"64a\": use an octal mode like 0755 (at most 07777) or …";
        // BuildKit's: "invalid chmod parameter: '64a'. it should be octal
        // string and between 0 and 07777".
        assert!(
            said.contains(&format!("invalid --chmod value \"{mode}\"")),
            "{said}"
        );
        assert!(
            said.contains("07777") && said.contains("Dockerfile:2"),
            "{said}"
        );
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_override_files() {
    let case = Case::new("override");
    case.dockerfile(
        "FROM scratch AS base\nCOPY sub sub\nCOPY sub sub\nCOPY files/foo.go dest/foo.go\n\
         COPY files/foo.go dest/foo.go\nCOPY files dest\n",
    );
    case.file("sub/dir1/dir2/foo", "foo-contents");
    case.file("files/foo.go", "foo.go-contents");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "sub/dir1/dir2/foo"), "foo-contents");
    assert_eq!(read(&out, "dest/foo.go"), "foo.go-contents");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_var_substitution() {
    let case = Case::new("var-subst");
    case.dockerfile("FROM scratch AS base\nENV FOO bar\nCOPY $FOO baz\n");
    case.file("bar", "bar-contents");
    assert_eq!(read(&case.build_local(&[]), "baz"), "bar-contents");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_wildcards() {
    let case = Case::new("wildcards");
    case.dockerfile(
        "FROM scratch AS base\nCOPY *.go /gofiles/\nCOPY f*.go foo2.go\nCOPY sub/* /subdest/\n\
         COPY sub/*/dir2/foo /subdest2/\nCOPY sub/*/dir2/foo /subdest3/bar\nCOPY . all/\n\
         COPY sub/dir1/ subdest4\nCOPY sub/dir1/. subdest5\nCOPY sub/dir1 subdest6\n",
    );
    case.file("foo.go", "foo-contents");
    case.file("bar.go", "bar-contents");
    case.file("sub/dir1/dir2/foo", "foo-contents");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "gofiles/bar.go"), "bar-contents");
    for rel in [
        "gofiles/foo.go",
        "foo2.go",
        "subdest/dir2/foo",
        "subdest2/foo",
        "subdest3/bar",
        "all/foo.go",
        "subdest4/dir2/foo",
        "subdest5/dir2/foo",
        "subdest6/dir2/foo",
    ] {
        assert_eq!(read(&out, rel), "foo-contents", "{rel}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_relative() {
    let case = Case::new("relative");
    case.dockerfile(
        "FROM BASE\nWORKDIR /test1\nWORKDIR test2\nRUN sh -c \"[ \"$PWD\" = '/test1/test2' ]\"\n\
         COPY foo ./\nRUN sh -c \"[ $(cat /test1/test2/foo) = 'hello' ]\"\n\
         ADD foo ./bar/baz\nRUN sh -c \"[ $(cat /test1/test2/bar/baz) = 'hello' ]\"\n\
         COPY foo ./bar/baz2\nRUN sh -c \"[ $(cat /test1/test2/bar/baz2) = 'hello' ]\"\n\
         WORKDIR ..\nCOPY foo ./\nRUN sh -c \"[ $(cat /test1/foo) = 'hello' ]\"\n\
         COPY foo /test3/\nRUN sh -c \"[ $(cat /test3/foo) = 'hello' ]\"\n\
         WORKDIR /test4\nCOPY . .\nRUN sh -c \"[ $(cat /test4/foo) = 'hello' ]\"\n\
         WORKDIR /test5/test6\nCOPY foo ../\nRUN sh -c \"[ $(cat /test5/foo) = 'hello' ]\"\n",
    );
    case.file("foo", "hello");
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_unicode_path() {
    let case = Case::new("unicode");
    case.dockerfile(
        "FROM BASE\nCOPY test-äöü.txt /\nCOPY test-%C3%A4%C3%B6%C3%BC.txt /\nCOPY test+aou.txt /\n",
    );
    case.file("test-äöü.txt", "foo");
    case.file("test-%C3%A4%C3%B6%C3%BC.txt", "bar");
    case.file("test+aou.txt", "baz");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "test-äöü.txt"), "foo");
    assert_eq!(read(&out, "test-%C3%A4%C3%B6%C3%BC.txt"), "bar");
    assert_eq!(read(&out, "test+aou.txt"), "baz");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn chmod_non_octal() {
    // Each symbolic --chmod gives what `chmod MODE` gives the same entry.
    let case = Case::new("chmod-symbolic");
    let cases = [
        ("file", "f1", "go-w", false),
        ("file", "f2", "u=rw,g=r,o=r", false),
        ("file", "f3", "a+X", false),
        ("dir", "d1", "go-w", true),
        ("dir", "d2", "u+rw,g+r,o-x,o+w", true),
        ("dir", "d3", "a+X", true),
    ];
    let (mut expected, mut copies, mut verify) = (String::new(), String::new(), String::new());
    for (src, dst, mode, is_dir) in cases {
        if is_dir {
            // COPY copies a dir's content: nest it once.
            expected.push_str(&format!(
                "RUN mkdir -p /input/dirs/{dst} && cp -a /input/{src} /input/dirs/{dst}/{dst}\n\
                 RUN cp -a /input/dirs/{dst}/. /expected/ && chmod {mode} /expected/{dst}\n"
            ));
            copies.push_str(&format!(
                "COPY --from=base --chmod={mode} /input/dirs/{dst} /\n"
            ));
        } else {
            expected.push_str(&format!(
                "RUN cp -a /input/{src} /expected/{dst} && chmod {mode} /expected/{dst}\n"
            ));
            copies.push_str(&format!(
                "COPY --from=base --chmod={mode} /input/{src} /{dst}\n"
            ));
        }
        verify.push_str(&format!(
            "RUN [ \"$(stat -c %A /actual/{dst})\" = \"$(stat -c %A /expected/{dst})\" ]\n"
        ));
    }
    case.dockerfile(&format!(
        "FROM BASE AS base\nRUN <<eot\n\tset -ex\n\tmkdir /input\n\ttouch /input/file\n\
         \tchmod 666 /input/file\n\tmkdir /input/dir\n\tchmod 124 /input/dir\n\tmkdir /expected\neot\n\
         {expected}FROM scratch AS result\n{copies}FROM base\nCOPY --from=result / /actual/\n{verify}"
    ));
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_keeps_files_of_different_layers_apart() {
    // Not a BuildKit test. kiln links a file COPY --from takes unchanged
    // to its layer's file; two layers then share an inode, which must not
    // make their files hard links of each other (in BuildKit they are
    // separate files) — neither in a later COPY nor in the local export.
    // Hard links within one layer stay links.
    use std::os::unix::fs::MetadataExt;
    let case = Case::new("layers-apart");
    case.dockerfile(
        "FROM BASE AS st\nRUN mkdir /s && echo x > /s/a && ln /s/a /s/b\n\
         FROM st AS two\nCOPY --from=st /s /copy/\n\
         FROM scratch\nCOPY --from=two --parents /s /copy /all/\n",
    );
    let out = case.build_local(&["--target", "two"]);
    let ino = |dir: &Path, p: &str| fs::symlink_metadata(dir.join(p)).unwrap().ino();
    assert_eq!(ino(&out, "s/a"), ino(&out, "s/b"), "a link in one layer");
    assert_eq!(ino(&out, "copy/a"), ino(&out, "copy/b"), "copied links");
    assert_ne!(ino(&out, "s/a"), ino(&out, "copy/a"), "two layers' files");
    let out = case.build_local(&[]);
    assert_eq!(ino(&out, "all/s/a"), ino(&out, "all/s/b"));
    assert_eq!(ino(&out, "all/copy/a"), ino(&out, "all/copy/b"));
    assert_ne!(
        ino(&out, "all/s/a"),
        ino(&out, "all/copy/a"),
        "one COPY of two layers' files"
    );
    let exported = case.path("two.tar");
    let dest = format!("type=tar,dest={}", exported.display());
    case.build(&["--target", "two", "-o", &dest]);
    let listing = support::tool("tar", &["-tvf", exported.to_str().unwrap()]);
    let links: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(" link to "))
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(
        links
            .iter()
            .all(|l| l.ends_with("s/b link to s/a") || l.ends_with("copy/b link to copy/a")),
        "{links:?}"
    );
}
