//! COPY/ADD sources end to end, rootless: `--parents` (with the `/./`
//! pivot), `--exclude`, `--link` (the layer reused over a changed stage),
//! ADD of URLs served on 127.0.0.1 (`--checksum`, Last-Modified, remote
//! tars kept whole unless `--unpack=true`) and of git repositories over
//! git's dumb HTTP (`#ref:subdir`, `--keep-git-dir`, no way out of the
//! checkout). Proven with `podman run` of the result. Run by
//! scripts/test-build.sh.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use support::http::{FileServer, LAST_MODIFIED_UNIX};
use support::{cached, git, run_sh, text, tool, Case};

/// A failing build's output.
fn build_fails(case: &Case, extra: &[&str]) -> String {
    let ctx = case.ctx();
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let out = case.kiln(&args);
    assert!(
        !out.status.success(),
        "the build should fail:\n{}",
        text(&out)
    );
    text(&out)
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn parents_keep_source_paths_and_exclude_filters() {
    let case = Case::new("parents");
    for (f, c) in [
        ("x/a.txt", "xa\n"),
        ("x/b.md", "xb\n"),
        ("y/a.txt", "ya\n"),
        ("y/sub/c.txt", "yc\n"),
        ("y/sub/d.log", "yd\n"),
        ("app/src/main.c", "main\n"),
        ("app/src/skip.tmp", "tmp\n"),
        ("app/README", "readme\n"),
    ] {
        case.file(f, c);
    }
    case.dockerfile(
        "FROM BASE\n\
         COPY --parents x/a.txt y/*.txt /p/\n\
         COPY --parents ./app/./src/*.c /pivot/\n\
         COPY --parents y/sub /dirp/\n\
         COPY --exclude=*.md --exclude=sub/*.log x y /ex/\n\
         COPY --exclude=*.md x/* /wild/\n\
         ADD --exclude=**/*.tmp app /add/\n",
    );
    let (archive, _) = case.build_image("parents", &[]);
    assert_eq!(
        run_sh(
            &archive,
            "parents",
            "find /p /pivot /dirp /ex /wild /add -type f | sort; cat /ex/a.txt"
        ),
        "/add/README\n/add/src/main.c\n\
         /dirp/y/sub/c.txt\n/dirp/y/sub/d.log\n\
         /ex/a.txt\n/ex/sub/c.txt\n\
         /p/x/a.txt\n/p/y/a.txt\n\
         /pivot/src/main.c\n\
         /wild/a.txt\n\
         ya\n"
    );
    // An excluded file is not part of the step's cache key.
    case.file("x/b.md", "changed\n");
    let out = case.build(&["-t", "parents"]);
    assert!(cached(&out, "COPY --exclude=*.md --exclude"), "{out}");
    case.file("y/sub/c.txt", "changed\n");
    let out = case.build(&["-t", "parents"]);
    assert!(!cached(&out, "COPY --exclude=*.md --exclude"), "{out}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn link_layers_are_reused_over_a_changed_stage() {
    let case = Case::new("link");
    case.file("app/one", "one\n");
    case.file("app/two", "two\n");
    case.dockerfile(
        "FROM BASE\nARG V=1\nRUN echo $V > /v\n\
         COPY --link app/ /app/\n\
         COPY --link --chown=1000:1000 app/one /owned\n",
    );
    let (_, first) = case.build_image("link", &[]);
    assert!(!cached(&first, "COPY --link app/"), "{first}");
    let (archive, second) = case.build_image("link", &["--build-arg", "V=2"]);
    assert!(!cached(&second, "RUN echo"), "{second}");
    assert!(cached(&second, "COPY --link app/"), "{second}");
    assert!(cached(&second, "COPY --link --chown"), "{second}");
    assert_eq!(
        run_sh(
            &archive,
            "link",
            "cat /v /app/one /app/two; stat -c %u:%g /owned"
        ),
        "2\none\ntwo\n1000:1000\n"
    );
    // Changed content is copied again.
    case.file("app/two", "TWO\n");
    let (archive, third) = case.build_image("link", &["--build-arg", "V=2"]);
    assert!(!cached(&third, "COPY --link app/"), "{third}");
    assert_eq!(run_sh(&archive, "link", "cat /app/two"), "TWO\n");
}

fn sha256(path: &Path) -> String {
    let out = tool("sha256sum", &[path.to_str().unwrap()]);
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_urls_check_checksums_keep_mtimes_and_tars() {
    let case = Case::new("url");
    let web = case.path("web");
    fs::create_dir_all(web.join("payload/dir")).unwrap();
    fs::write(web.join("hello.txt"), "hello from http\n").unwrap();
    fs::write(web.join("payload/dir/inner"), "inner\n").unwrap();
    fs::create_dir_all(web.join("dl")).unwrap();
    fs::write(web.join("dl/get"), "named\n").unwrap();
    tool(
        "tar",
        &[
            "-czf",
            web.join("files.tar.gz").to_str().unwrap(),
            "-C",
            web.join("payload").to_str().unwrap(),
            "dir",
        ],
    );
    fs::copy(web.join("files.tar.gz"), case.ctx().join("files.tar.gz")).unwrap();
    let names = HashMap::from([("/dl/get".to_string(), "named.bin".to_string())]);
    let server = FileServer::start(&web, names);
    let sum = sha256(&web.join("hello.txt"));
    case.dockerfile(&format!(
        "FROM BASE\n\
         ADD --checksum=sha256:{sum} {hello} /web/\n\
         ADD {tar} /web/tar/\n\
         ADD --unpack=true {tar} /web/unpacked/\n\
         ADD --chmod=644 {get} /web/named/\n\
         ADD files.tar.gz /local/\n",
        hello = server.url("hello.txt"),
        tar = server.url("files.tar.gz"),
        get = server.url("dl/get"),
    ));
    let (archive, _) = case.build_image("url", &[]);
    assert_eq!(
        run_sh(
            &archive,
            "url",
            "cat /web/hello.txt; stat -c '%a %Y' /web/hello.txt; ls /web/tar; \
             cat /web/unpacked/dir/inner; ls /web/named; stat -c %a /web/named/named.bin; \
             cat /local/dir/inner"
        ),
        format!(
            "hello from http\n600 {LAST_MODIFIED_UNIX}\nfiles.tar.gz\ninner\nnamed.bin\n644\ninner\n"
        )
    );
    assert_eq!(server.count("hello.txt"), 1);
    // Pinned by --checksum and cached: not even downloaded again. The
    // others are fetched to learn whether they changed, and are cached.
    let again = case.build(&["-t", "url"]);
    assert_eq!(server.count("hello.txt"), 1, "{again}");
    assert_eq!(server.count("files.tar.gz"), 2, "one download per build");
    assert!(cached(&again, "ADD --unpack=true"), "{again}");

    case.dockerfile(&format!(
        "FROM BASE\nADD --checksum=sha256:{} {} /web/\n",
        "0".repeat(64),
        server.url("hello.txt")
    ));
    let out = build_fails(&case, &[]);
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(out.contains(&format!("sha256:{sum}")), "{out}");
    assert!(out.contains("Dockerfile:2"), "{out}");

    case.dockerfile(&format!("FROM BASE\nADD {} /x\n", server.url("missing")));
    let out = build_fails(&case, &[]);
    assert!(out.contains("404"), "{out}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_git_checks_out_refs_and_subdirs_and_stays_inside() {
    let case = Case::new("git");
    let work = case.path("work");
    fs::create_dir_all(work.join("docs")).unwrap();
    fs::create_dir_all(work.join("src")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fs::write(work.join("docs/guide.txt"), "v1\n").unwrap();
    fs::write(work.join("src/main.c"), "int main;\n").unwrap();
    std::os::unix::fs::symlink("/etc", work.join("etc-link")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    fs::write(work.join("docs/guide.txt"), "v2\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    tool(
        "git",
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            web.join("repo.git").to_str().unwrap(),
        ],
    );
    git(&web.join("repo.git"), &["update-server-info"]);
    let server = FileServer::start(&web, HashMap::new());
    let repo = server.url("repo.git");
    case.dockerfile(&format!(
        "FROM BASE\n\
         ADD {repo}#v1:docs /v1docs/\n\
         ADD {repo} /head/\n\
         ADD --keep-git-dir=true {repo}#main /withgit/\n"
    ));
    let (archive, _) = case.build_image("git", &[]);
    assert_eq!(
        run_sh(
            &archive,
            "git",
            "cat /v1docs/guide.txt /head/docs/guide.txt /head/src/main.c; \
             test -e /head/.git || echo no-git; test -d /withgit/.git && echo has-git; \
             readlink /head/etc-link"
        ),
        "v1\nv2\nint main;\nno-git\nhas-git\n/etc\n"
    );
    // A new commit on main changes the checkout; v1 stays cached.
    fs::write(work.join("docs/guide.txt"), "v3\n").unwrap();
    git(&work, &["commit", "-q", "-am", "three"]);
    git(
        &work,
        &["push", "-q", web.join("repo.git").to_str().unwrap(), "main"],
    );
    git(&web.join("repo.git"), &["update-server-info"]);
    let (archive, out) = case.build_image("git", &[]);
    assert!(cached(&out, "#v1:docs"), "{out}");
    assert!(!cached(&out, &format!("ADD {repo} /head/")), "{out}");
    assert_eq!(run_sh(&archive, "git", "cat /head/docs/guide.txt"), "v3\n");

    // Neither `..` nor a symlink leads out of the checkout.
    case.dockerfile(&format!("FROM BASE\nADD {repo}#v1:../.. /esc/\n"));
    let out = build_fails(&case, &[]);
    assert!(out.contains("leads out of the repository"), "{out}");
    case.dockerfile(&format!("FROM BASE\nADD {repo}#v1:etc-link /esc/\n"));
    let out = build_fails(&case, &[]);
    assert!(out.contains("no such file or directory"), "{out}");
    case.dockerfile(&format!("FROM BASE\nADD {repo}#nope /x/\n"));
    let out = build_fails(&case, &[]);
    assert!(out.contains("no branch or tag \"nope\""), "{out}");
}
