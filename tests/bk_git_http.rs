//! BuildKit's frontend/dockerfile/dockerfile_git_http_test.go, ported: a
//! build whose context is a git repository or a URL (served on 127.0.0.1
//! by `support::http::FileServer`; git through its dumb HTTP transport).

mod support;

use std::collections::HashMap;
use std::fs;

use support::http::FileServer;
use support::{base, git, text, tool, Case};

/// `kiln build -o type=local,dest=OUT extra… CONTEXT`; panics with the
/// output on failure.
fn build_local(case: &Case, out: &str, extra: &[&str], context: &str) {
    let dest = format!("type=local,dest={}", case.path(out).display());
    let mut args = vec!["build", "-o", &dest];
    args.extend_from_slice(extra);
    args.push(context);
    let result = case.kiln(&args);
    assert!(
        result.status.success(),
        "kiln build failed:\n{}",
        text(&result)
    );
}

/// BuildKit: testDockerfileFromGit — the context is `URL/.git#first`: the
/// build uses the Dockerfile of branch `first`, not the later commit.
fn dockerfile_from_git(format: &str) {
    let case = Case::new(&format!("from-git-{format}"));
    let repo = case.path("repo");
    fs::create_dir_all(&repo).unwrap();
    let first =
        "FROM BASE AS build\nRUN echo -n fromgit > foo\nFROM scratch\nCOPY --from=build foo bar\n"
            .replace("BASE", &base());
    fs::write(repo.join("Dockerfile"), &first).unwrap();
    git(&repo, &["init", "-q", &format!("--object-format={format}")]);
    git(&repo, &["add", "Dockerfile"]);
    git(&repo, &["commit", "-q", "-m", "initial"]);
    git(&repo, &["branch", "first"]);
    let second = format!("{first}COPY --from=build foo bar2\n");
    fs::write(repo.join("Dockerfile"), second).unwrap();
    git(&repo, &["add", "Dockerfile"]);
    git(&repo, &["commit", "-q", "-m", "second"]);
    git(&repo, &["update-server-info"]);
    let server = FileServer::start(&repo, HashMap::new());

    build_local(&case, "out", &[], &format!("{}#first", server.url(".git")));
    let out = case.path("out");
    assert_eq!(fs::read_to_string(out.join("bar")).unwrap(), "fromgit");
    assert!(
        !out.join("bar2").exists(),
        "bar2 is only in the later commit"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_from_git_sha1() {
    dockerfile_from_git("sha1");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_from_git_sha256() {
    dockerfile_from_git("sha256");
}

/// BuildKit: testDockerfileFromHTTP — the context is a tar at a URL with
/// no extension; `-f` names a Dockerfile inside it.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerfile_from_http() {
    let case = Case::new("from-http");
    let src = case.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("mydockerfile"), "FROM scratch\nCOPY foo bar\n").unwrap();
    fs::write(src.join("foo"), "foo-contents").unwrap();
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    let tar = web.join("myurl");
    let (src_s, tar_s) = (src.to_str().unwrap(), tar.to_str().unwrap());
    tool("tar", &["-C", src_s, "-cf", tar_s, "mydockerfile", "foo"]);
    let server = FileServer::start(&web, HashMap::new());

    build_local(&case, "out", &["-f", "mydockerfile"], &server.url("myurl"));
    let bar = fs::read_to_string(case.path("out/bar")).unwrap();
    assert_eq!(bar, "foo-contents");
}

/// BuildKit: testHTTPDockerfile — the context URL serves a Dockerfile
/// itself; the build runs it (with an empty context).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn http_dockerfile() {
    let case = Case::new("http-dockerfile");
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    let text =
        "FROM BASE\nRUN echo -n \"foo-contents\" > /foo\nFROM scratch\nCOPY --from=0 /foo /foo\n"
            .replace("BASE", &base());
    fs::write(web.join("df"), text).unwrap();
    let server = FileServer::start(&web, HashMap::new());

    build_local(&case, "out", &[], &server.url("df"));
    let foo = fs::read_to_string(case.path("out/foo")).unwrap();
    assert_eq!(foo, "foo-contents");
}
