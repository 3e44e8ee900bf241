//! The podman/Docker user's everyday workflow, typed as they type it
//! (through `sh -c`, with `kiln` on PATH and the case's store as
//! KILN_ROOT): `--load` into podman, archives on stdout into pipes,
//! podman's file names, contexts from stdin and URLs, and docker's flag
//! habits. Run by scripts/test-build.sh.

mod support;

use std::collections::HashMap;
use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::http::FileServer;
use support::{base, fails, git, text, tool, Case};

/// `sh -c SCRIPT` in the case's dir, with `kiln` on PATH using the case's
/// store.
fn sh(case: &Case, script: &str) -> Output {
    let bin = case.path("bin");
    if !bin.exists() {
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(support::kiln_bin(), bin.join("kiln")).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .args(["-c", script])
        .current_dir(&case.dir)
        .env("PATH", path)
        .env("KILN_ROOT", case.store())
        .stdin(Stdio::null())
        .output()
        .expect("sh runs")
}

/// The output of a script that must succeed.
fn sh_ok(case: &Case, script: &str) -> String {
    let out = sh(case, script);
    let t = text(&out);
    assert!(out.status.success(), "`{script}` failed:\n{t}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A podman image name no other test (or concurrent run) uses.
fn podman_name(what: &str) -> String {
    format!("localhost/kiln-wf-{what}-{}", std::process::id())
}

/// Removes a podman image when the test ends, passed or not.
struct PodmanImage(String);

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

fn podman_has(name: &str) -> bool {
    Command::new("podman")
        .args(["image", "exists", name])
        .status()
        .unwrap()
        .success()
}

/// No stray file named `-` where the scripts ran.
fn no_dash_file(case: &Case) {
    assert!(
        !case.path("-").exists() && !case.ctx().join("-").exists(),
        "a file named '-' was written instead of stdout"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn load_goes_straight_into_podman() {
    let case = Case::new("load");
    // The step leaves a process behind: nothing it holds may keep
    // podman's input open.
    case.dockerfile(
        "FROM BASE\nARG FAIL\nRUN test \"$FAIL\" != 1 && echo loaded > /hello && (sleep 60 &)\n",
    );
    let name = podman_name("load");
    let _cleanup = PodmanImage(name.clone());
    // A failed build loads nothing, not even half an image.
    let out = sh(
        &case,
        &format!("kiln build --load --build-arg FAIL=1 -t {name} ctx"),
    );
    fails(&out);
    assert!(!podman_has(&name), "a failed build was loaded");
    let started = Instant::now();
    let out = sh_ok(
        &case,
        &format!("kiln build --load -t {name} ctx && podman run --rm {name} cat /hello"),
    );
    assert_eq!(out.trim(), "loaded");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(40),
        "the load waited for the step's leftover process: {took:?}"
    );
    // podman's "Loaded image" line is not on kiln's stdout.
    let out = sh_ok(&case, &format!("kiln build -q --load -t {name} ctx"));
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn docker_archive_on_stdout_pipes_into_podman_load() {
    let case = Case::new("stdout-docker");
    case.dockerfile("FROM BASE\nRUN echo piped > /hello\n");
    let name = podman_name("piped");
    let _cleanup = PodmanImage(name.clone());
    sh_ok(
        &case,
        &format!("kiln build -o type=docker -t {name} --iidfile iid ctx | podman load"),
    );
    let id = tool(
        "podman",
        &["image", "inspect", "--format", "{{.Id}}", &name],
    );
    let iid = fs::read_to_string(case.path("iid")).unwrap();
    assert_eq!(format!("sha256:{}", id.trim()), iid);
    no_dash_file(&case);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dest_dash_and_save_write_to_stdout() {
    let case = Case::new("stdout-dest");
    case.dockerfile("FROM BASE\nRUN echo x > /hello\n");
    let listing = sh_ok(
        &case,
        "kiln build -t app -o type=oci,dest=- ctx | tar -t | grep -c -e '^index.json$' -e '^oci-layout$'",
    );
    assert_eq!(listing.trim(), "2", "{listing}");
    for save in ["kiln save app", "kiln save -o - app"] {
        let listing = sh_ok(&case, &format!("{save} | tar -t"));
        assert!(
            listing.lines().any(|l| l == "manifest.json"),
            "{save}: {listing}"
        );
    }
    no_dash_file(&case);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dash_output_is_the_rootfs_as_a_tar_on_stdout() {
    let case = Case::new("stdout-rootfs");
    case.dockerfile("FROM BASE\nRUN echo rootfs > /hello\n");
    fs::create_dir(case.path("out")).unwrap();
    sh_ok(&case, "kiln build -o - ctx | tar -x -C out hello");
    assert_eq!(
        fs::read_to_string(case.path("out/hello")).unwrap(),
        "rootfs\n"
    );
    no_dash_file(&case);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn tar_is_never_written_to_a_terminal() {
    let case = Case::new("tty");
    case.dockerfile("FROM BASE\nRUN echo x > /hello\n");
    sh_ok(&case, "kiln build -q -t app ctx");
    // script(1) gives the command a terminal as its stdout.
    for cmd in ["kiln build -o - ctx", "kiln save app"] {
        let out = sh(&case, &format!("script -qec '{cmd}' /dev/null"));
        let t = fails(&out);
        assert!(
            t.contains("refusing to write a tar archive to a terminal"),
            "{cmd}: {t}"
        );
    }
    no_dash_file(&case);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn containerfile_and_containerignore_as_podman() {
    let case = Case::new("containerfile");
    let text = "FROM BASE\nCOPY . /c/\n".replace("BASE", &base());
    fs::write(case.ctx().join("Containerfile"), text).unwrap();
    case.file("a.txt", "a");
    case.file("b.txt", "b");
    case.file(".dockerignore", "a.txt\n");
    case.file(".containerignore", "b.txt\n");
    sh_ok(&case, "cd ctx && kiln build -o type=local,dest=../out .");
    // .containerignore wins over .dockerignore.
    assert!(case.path("out/c/a.txt").exists());
    assert!(!case.path("out/c/b.txt").exists());
    // -f may name a Containerfile too, as a path from the current dir.
    sh_ok(
        &case,
        "kiln build -f ctx/Containerfile -o type=local,dest=out2 ctx",
    );
    assert!(case.path("out2/c/a.txt").exists());
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn context_on_stdin_dockerfile_alone_or_tar() {
    let case = Case::new("stdin");
    let text = "FROM BASE\nRUN echo from-stdin > /hello\n".replace("BASE", &base());
    fs::write(case.path("Dockerfile.alone"), text).unwrap();
    sh_ok(
        &case,
        "kiln build -o type=local,dest=out1 - < Dockerfile.alone",
    );
    assert_eq!(
        fs::read_to_string(case.path("out1/hello")).unwrap(),
        "from-stdin\n"
    );
    case.dockerfile("FROM BASE\nCOPY f /f\n");
    case.file("f", "in the tar");
    sh_ok(
        &case,
        "tar -C ctx -cz . | kiln build -o type=local,dest=out2 -",
    );
    assert_eq!(
        fs::read_to_string(case.path("out2/f")).unwrap(),
        "in the tar"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn context_from_a_git_url() {
    let case = Case::new("git-context");
    let work = case.path("work");
    fs::create_dir_all(work.join("app")).unwrap();
    let text = "FROM BASE\nCOPY f /f\n".replace("BASE", &base());
    fs::write(work.join("app/Dockerfile"), text).unwrap();
    fs::write(work.join("app/f"), "from git").unwrap();
    std::os::unix::fs::symlink("/etc", work.join("etc-link")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    let bare = web.join("repo.git");
    let (work_s, bare_s) = (work.to_str().unwrap(), bare.to_str().unwrap());
    tool("git", &["clone", "-q", "--bare", work_s, bare_s]);
    git(&bare, &["update-server-info"]);
    let server = FileServer::start(&web, HashMap::new());
    let repo = server.url("repo.git");
    sh_ok(
        &case,
        &format!("kiln build -o type=local,dest=out {repo}#main:app"),
    );
    assert_eq!(fs::read_to_string(case.path("out/f")).unwrap(), "from git");
    // A subdir that is a symlink out of the repository is refused.
    let out = sh(
        &case,
        &format!("kiln build -o type=local,dest=out2 {repo}#main:etc-link"),
    );
    let t = fails(&out);
    assert!(t.contains("leads out of the context"), "{t}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn context_from_a_tarball_url() {
    let case = Case::new("url-context");
    case.dockerfile("FROM BASE\nCOPY f /f\n");
    case.file("f", "from the web");
    let web = case.path("web");
    fs::create_dir_all(&web).unwrap();
    let tarball = web.join("ctx.tar.gz");
    tool(
        "tar",
        &[
            "-C",
            case.ctx().to_str().unwrap(),
            "-czf",
            tarball.to_str().unwrap(),
            ".",
        ],
    );
    let server = FileServer::start(&web, HashMap::new());
    let url = server.url("ctx.tar.gz");
    sh_ok(&case, &format!("kiln build -o type=local,dest=out {url}"));
    assert_eq!(
        fs::read_to_string(case.path("out/f")).unwrap(),
        "from the web"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn pull_flag_alone_and_unknown_flags() {
    let case = Case::new("flags");
    case.dockerfile("FROM BASE\nRUN echo x > /hello\n");
    // docker's boolean --pull: `.` stays the context.
    sh_ok(&case, "cd ctx && kiln build -t app --pull .");
    sh_ok(&case, "cd ctx && kiln build -t app --pull=never .");
    sh_ok(&case, "cd ctx && kiln build -t app --pull missing .");
    let out = sh(&case, "cd ctx && kiln build --squash -t app .");
    let t = fails(&out);
    assert!(t.contains("kiln does not support the flag --squash"), "{t}");
    assert!(!t.contains("-- --squash"), "clap's tip is misleading: {t}");
    let t = fails(&sh(&case, "cd ctx && kiln build --lable a=b ."));
    assert!(t.contains("the closest flag of kiln build: --label"), "{t}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn piped_into_head_returns_when_the_build_ends() {
    let case = Case::new("head");
    // Thousands of lines of RUN output, then a process left running.
    case.dockerfile("FROM BASE\nRUN seq 1 20000; (sleep 60 &)\n");
    let started = Instant::now();
    let out = sh_ok(&case, "kiln build --progress=plain ctx 2>&1 | head -1");
    assert_eq!(out.lines().count(), 1, "{out}");
    let first = started.elapsed();
    let started = Instant::now();
    let out = sh_ok(&case, "kiln build -q --no-cache ctx | head -1");
    assert!(out.starts_with("sha256:"), "{out}");
    let second = started.elapsed();
    for took in [first, second] {
        assert!(took < Duration::from_secs(30), "took {took:?}");
    }
}
