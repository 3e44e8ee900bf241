//! BuildKit's ADD tests (frontend/dockerfile/dockerfile_add_test.go,
//! dockerfile_addgit_test.go), ported to rootless kiln builds on the
//! busybox base: archives, URLs served on 127.0.0.1 (tests/support/http.rs)
//! and git repositories over git's dumb HTTP. Named after the BuildKit
//! tests. Run by scripts/test-build.sh.

mod support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use support::http::{FileServer, LAST_MODIFIED_UNIX};
use support::{git, read, tool, Case};

/// `tar -cf ARCHIVE -C DIR members…` (`-z` when the name ends in .gz).
fn tar(archive: &Path, dir: &Path, members: &[&str]) {
    let flags = if archive.to_string_lossy().ends_with(".gz") {
        "-czf"
    } else {
        "-cf"
    };
    let mut args = vec![
        flags,
        archive.to_str().unwrap(),
        "-C",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(members);
    tool("tar", &args);
}

/// A dir holding `foo` (mode 0644) with `content`.
fn foo_dir(case: &Case, name: &str, content: &str) -> std::path::PathBuf {
    let dir = case.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("foo"), content).unwrap();
    dir
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_from_url() {
    let case = Case::new("add-url");
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    fs::write(web.join("foo"), "content1").unwrap();
    fs::write(web.join("index.html"), "content2").unwrap();
    let server = FileServer::start(&web, HashMap::new());
    case.dockerfile(&format!("FROM scratch\nADD {} /dest/\n", server.url("foo")));
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "dest/foo"), "content1");
    // Built again, the URL is asked again (BuildKit asks with HEAD; kiln
    // downloads: either way a change would be seen).
    case.build(&[]);
    assert_eq!(server.count("foo"), 2);
    // A URL without a file name: `__unnamed__`, with the Last-Modified time.
    case.dockerfile(&format!("FROM scratch\nADD {} /dest/\n", server.url("")));
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "dest/__unnamed__"), "content2");
    let meta = fs::metadata(out.join("dest/__unnamed__")).unwrap();
    assert_eq!(meta.mtime(), LAST_MODIFIED_UNIX);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_archive() {
    let case = Case::new("add-archive");
    let src = foo_dir(&case, "src", "content0");
    tar(&case.ctx().join("t.tar"), &src, &["foo"]);
    case.dockerfile("FROM BASE\nADD t.tar /\n");
    assert_eq!(read(&case.build_local(&[]), "foo"), "content0");
    fs::remove_file(case.ctx().join("t.tar")).unwrap();

    let gz = case.ctx().join("t.tar.gz");
    tar(&gz, &src, &["foo"]);
    let gz_bytes = fs::read(&gz).unwrap();
    case.dockerfile("FROM BASE\nADD t.tar.gz /\n");
    assert_eq!(read(&case.build_local(&[]), "foo"), "content0");

    case.dockerfile("FROM BASE\nADD --unpack=false t.tar.gz /\n");
    let out = case.build_local(&[]);
    assert!(!out.join("foo").exists(), "--unpack=false unpacks");
    assert_eq!(fs::read(out.join("t.tar.gz")).unwrap(), gz_bytes);

    case.dockerfile("FROM BASE\nCOPY t.tar.gz /\n");
    let out = case.build_local(&[]);
    assert!(!out.join("foo").exists(), "COPY unpacks");
    assert_eq!(fs::read(out.join("t.tar.gz")).unwrap(), gz_bytes);

    // From a URL: kept whole unless --unpack=true.
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    fs::write(web.join("t.tar.gz"), &gz_bytes).unwrap();
    let server = FileServer::start(&web, HashMap::new());
    let url = server.url("t.tar.gz");
    case.dockerfile(&format!("FROM BASE\nADD {url} /\n"));
    let out = case.build_local(&[]);
    assert_eq!(fs::read(out.join("t.tar.gz")).unwrap(), gz_bytes);
    assert!(!out.join("foo").exists());

    case.dockerfile(&format!("FROM BASE\nADD --unpack=true {url} /dest/\n"));
    assert_eq!(read(&case.build_local(&[]), "dest/foo"), "content0");

    // moby/buildkit#386: a URL's file under a new name.
    case.dockerfile(&format!("FROM BASE\nADD {url} /newname.tar.gz\n"));
    let out = case.build_local(&[]);
    assert_eq!(fs::read(out.join("newname.tar.gz")).unwrap(), gz_bytes);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_archive_with_implied_parent_dir() {
    // moby/moby#53257: the archive has etc/dnf/ but no etc/.
    let case = Case::new("add-implied-parent");
    let src = case.path("src");
    fs::create_dir_all(src.join("etc/dnf")).unwrap();
    fs::write(src.join("etc/dnf/dnf.conf"), "content0").unwrap();
    tar(&case.ctx().join("t.tar.gz"), &src, &["etc/dnf"]);
    case.dockerfile("FROM BASE\nADD t.tar.gz /\n");
    assert_eq!(read(&case.build_local(&[]), "etc/dnf/dnf.conf"), "content0");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_archive_through_absolute_symlink() {
    // moby/moby#53258: the image's /var/run -> /run; a later archive's
    // var/run/… lands in /run, its hard link too.
    let case = Case::new("add-abs-symlink");
    let root = case.path("rootfs");
    fs::create_dir_all(root.join("run")).unwrap();
    fs::create_dir_all(root.join("var")).unwrap();
    std::os::unix::fs::symlink("/run", root.join("var/run")).unwrap();
    tar(&case.ctx().join("rootfs.tar"), &root, &["run", "var"]);
    let payload = case.path("payload");
    let git = payload.join("var/run/act/actions/broad/.git");
    fs::create_dir_all(&git).unwrap();
    fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::hard_link(git.join("HEAD"), git.join("HEAD.link")).unwrap();
    tar(&case.ctx().join("payload.tar"), &payload, &["var/run/act"]);
    case.dockerfile("FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n");
    let out = case.build_local(&[]);
    let head = "run/act/actions/broad/.git/HEAD";
    assert_eq!(read(&out, head), "ref: refs/heads/main\n");
    assert_eq!(
        read(&out, &format!("{head}.link")),
        "ref: refs/heads/main\n"
    );
    let ino = |p: &str| fs::metadata(out.join(p)).unwrap().ino();
    assert_eq!(ino(head), ino(&format!("{head}.link")), "one inode");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_chown_archive() {
    let case = Case::new("add-chown-archive");
    let src = foo_dir(&case, "src", "content0");
    tar(&case.ctx().join("t.tar"), &src, &["foo"]);
    case.dockerfile("FROM scratch\nADD --chown=100:200 t.tar /out/\n");
    let exported = case.path("out.tar");
    case.build(&["-o", &format!("type=tar,dest={}", exported.display())]);
    let listing = tool(
        "tar",
        &["--numeric-owner", "-tvf", exported.to_str().unwrap()],
    );
    let owner = |name: &str| {
        listing
            .lines()
            .find(|l| l.trim_end().trim_end_matches('/').ends_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no {name} in:\n{listing}"))
            .to_string()
    };
    assert_eq!(owner(" out/foo"), "100/200", "{listing}");
    assert_eq!(owner(" out"), "100/200", "{listing}");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "out/foo"), "content0");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_archive_wildcard() {
    let case = Case::new("add-archive-wildcard");
    let t = foo_dir(&case, "t", "content0");
    tar(&case.ctx().join("t.tar"), &t, &["foo"]);
    let b = case.path("b");
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("bar"), "content1").unwrap();
    tar(&case.ctx().join("b.tar"), &b, &["bar"]);
    case.dockerfile("FROM scratch\nADD *.tar /dest\n");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "dest/foo"), "content0");
    assert_eq!(read(&out, "dest/bar"), "content1");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_add_chown_expand() {
    let case = Case::new("add-chown-expand");
    case.dockerfile(
        // Docker Hub's busybox names gid 65534 nobody, the test image nogroup.
        "FROM BASE\nRUN sed -i s/^nogroup:/nobody:/ /etc/group\n\
         ARG group\nENV owner 1000\nADD --chown=${owner}:${group} foo /\n\
         RUN [ \"$(stat -c \"%u %G\" /foo)\" == \"1000 nobody\" ]\n",
    );
    case.file("foo", "foo-contents");
    case.build(&["--build-arg", "group=nobody"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_url_chmod() {
    let case = Case::new("add-url-chmod");
    let web = foo_dir(&case, "web", "content1");
    let server = FileServer::start(&web, HashMap::new());
    let url = server.url("foo");
    case.dockerfile(&format!(
        "FROM BASE AS build\nADD --chmod=644 {url} /tmp/foo1\nADD --chmod=755 {url} /tmp/foo2\n\
         ADD --chmod=0413 {url} /tmp/foo3\nARG mode\nADD --chmod=${{mode}} {url} /tmp/foo4\n\
         RUN stat -c \"%04a\" /tmp/foo1 >> /dest && stat -c \"%04a\" /tmp/foo2 >> /dest && \
         stat -c \"%04a\" /tmp/foo3 >> /dest && stat -c \"%04a\" /tmp/foo4 >> /dest\n\
         FROM scratch\nCOPY --from=build /dest /dest\n"
    ));
    let out = case.build_local(&["--build-arg", "mode=400"]);
    assert_eq!(read(&out, "dest"), "0644\n0755\n0413\n0400\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_invalid_chmod() {
    let case = Case::new("add-chmod-invalid");
    case.file("foo", "foo-contents");
    for mode in ["64a", "10000"] {
        case.dockerfile(&format!("FROM scratch\nADD --chmod={mode} foo /\n"));
        let said = case.build_fails(&[]);
        // kiln's wording; BuildKit's is "invalid chmod parameter: '64a'.
        // it should be octal string and between 0 and 07777".
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
fn add_checksum() {
    let case = Case::new("add-checksum");
    let web = foo_dir(&case, "web", "content1");
    let server = FileServer::start(&web, HashMap::new());
    let url = server.url("foo");
    let sum = tool("sha256sum", &[web.join("foo").to_str().unwrap()]);
    let hex = sum.split_whitespace().next().unwrap();
    // Valid, and from ENV.
    case.dockerfile(&format!(
        "FROM BASE\nADD --checksum=sha256:{hex} {url} /tmp/foo\n"
    ));
    case.build(&[]);
    case.dockerfile(&format!(
        "FROM BASE\nENV DIGEST=sha256:{hex}\nENV LINK={url}\nADD --checksum=${{DIGEST}} ${{LINK}} /tmp/foo\n"
    ));
    case.build(&[]);
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    case.file("foo", "local file");
    for checksum in [
        format!("sha256:{empty} {url}"),
        format!("md5:7e55db001d319a94b0b713529a756623 {url}"),
        format!("unknown:{hex} {url}"),
        format!("{hex} {url}"),
        format!("sha256:{hex} foo"),
    ] {
        case.dockerfile(&format!("FROM BASE\nADD --checksum={checksum} /tmp/foo\n"));
        let said = case.build_fails(&[]);
        assert!(said.contains("Dockerfile:2"), "{checksum}: {said}");
    }
}

/// A repo in `dir` (object format `format`) with one commit per tag, each
/// writing `foo of TAG` to foo, ready for git's dumb HTTP.
fn tagged_repo(dir: &Path, format: &str, tags: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", &format!("--object-format={format}")]);
    for tag in tags {
        fs::write(dir.join("foo"), format!("foo of {tag}\n")).unwrap();
        git(dir, &["add", "foo"]);
        git(dir, &["commit", "-q", "-m", tag]);
        git(dir, &["tag", tag]);
    }
    git(dir, &["update-server-info"]);
}

fn add_git(format: &str) {
    let case = Case::new(&format!("add-git-{format}"));
    let repo = case.path("repo");
    tagged_repo(&repo, format, &["v0.0.1", "v0.0.2", "v0.0.3"]);
    let rev = |tag: &str| git(&repo, &["rev-parse", tag]).trim().to_string();
    let (v2, v3) = (rev("v0.0.2"), rev("v0.0.3"));
    let server = FileServer::start(&repo, HashMap::new());
    let url = server.url(".git");
    // BuildKit also runs `git status -s` in the image (apk add git): here
    // git on the host checks the exported checkout.
    case.dockerfile(&format!(
        "FROM BASE\nADD {url}#v0.0.1 /x\nRUN cd /x && [ \"$(cat foo)\" = \"foo of v0.0.1\" ]\n\
         ARG REPO=\"{url}\"\nARG TAG=\"v0.0.2\"\n\
         ADD --keep-git-dir=true --chown=4242:8484 --checksum={v2} ${{REPO}}#${{TAG}} /buildkit-chowned\n\
         USER 4242\nRUN cd /buildkit-chowned && [ \"$(cat foo)\" = \"foo of v0.0.2\" ] && \
         [ \"$(stat -c %u foo)\" = \"4242\" ] && [ \"$(stat -c %g foo)\" = \"8484\" ]\n"
    ));
    let out = case.build_local(&[]);
    let checkout = out.join("buildkit-chowned");
    let safe = format!("safe.directory={}", checkout.display());
    let status = tool(
        "git",
        &[
            "-c",
            &safe,
            "-C",
            checkout.to_str().unwrap(),
            "status",
            "-s",
        ],
    );
    assert_eq!(status, "", "a clean checkout");

    let pinned = |commit: &str, tag: &str, keep: &str| {
        format!("FROM BASE\nARG REPO=\"{url}\"\nADD {keep}--checksum={commit} ${{REPO}}#{tag} /d\n")
    };
    case.dockerfile(&format!(
        "{}RUN [ \"$(cat /d/foo)\" = \"foo of v0.0.3\" ] && [ ! -d /d/.git ]\n",
        pinned(&v3, "v0.0.3", "")
    ));
    case.build(&[]);
    case.dockerfile(&format!(
        "{}RUN [ \"$(cat /d/foo)\" = \"foo of v0.0.2\" ] && [ -d /d/.git ]\n",
        pinned(&v2, "v0.0.2", "--keep-git-dir ")
    ));
    case.build(&[]);
    case.dockerfile(&format!(
        "{}RUN [ \"$(cat /d/foo)\" = \"foo of v0.0.3\" ] && [ -d /d/.git ]\n",
        pinned(&v3, &v3, "--keep-git-dir=true ")
    ));
    case.build(&[]);
    case.dockerfile(&pinned(&v2, "v0.0.3", ""));
    let said = case.build_fails(&[]);
    assert!(said.contains("expected checksum to match"), "{said}");
    case.dockerfile(&pinned("foobar", "v0.0.3", ""));
    let said = case.build_fails(&[]);
    assert!(said.contains("invalid checksum"), "{said}");
    assert!(said.contains("expected hex commit hash"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_git_sha1() {
    add_git("sha1");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_git_sha256() {
    add_git("sha256");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_git_checksum_cache() {
    // --checksum pins what the tag names: the step stays cached.
    let case = Case::new("add-git-cache");
    let repo = case.path("repo");
    tagged_repo(&repo, "sha1", &["v0.0.1", "v0.0.2"]);
    let commit = git(&repo, &["rev-parse", "v0.0.2"]).trim().to_string();
    let server = FileServer::start(&repo, HashMap::new());
    let url = server.url(".git");
    let text = |pin: &str| {
        format!(
            "FROM BASE AS src\nADD --keep-git-dir {pin}{url}#v0.0.2 /repo\n\
             RUN head -c 16 /dev/urandom | base64 > /repo/unique.txt\n\
             FROM scratch\nCOPY --from=src /repo/unique.txt /\n"
        )
    };
    case.dockerfile(&text(""));
    let first = read(&case.build_local(&[]), "unique.txt");
    case.dockerfile(&text(&format!("--checksum={commit} ")));
    assert_eq!(read(&case.build_local(&[]), "unique.txt"), first);
}
