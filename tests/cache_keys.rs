//! Cache keys that hold across machines: the same checkout under another
//! owner (another CI runner's uid) hits the cache.

mod support;

use std::process::Command;

use support::{cached, text, Case};

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn the_same_context_owned_by_another_uid_is_all_cached() {
    let case = Case::new("owners");
    case.dockerfile("FROM BASE\nCOPY . /app\nCOPY a.txt /a\nRUN ls -n /app > /list\n");
    case.file("a.txt", "a\n");
    case.file("sub/b.txt", "b\n");
    case.build(&[]);
    // The same checkout on a runner with another uid: a subordinate id of
    // the test user (chown inside its user namespace).
    let other = case.path("other");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(case.ctx())
        .arg(&other)
        .status()
        .unwrap();
    assert!(cp.success());
    let chown = Command::new("podman")
        .args(["unshare", "chown", "-R", "1234:1234"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(chown.status.success(), "{}", text(&chown));
    let out = case.kiln(&["build", other.to_str().unwrap()]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for step in ["COPY . /app", "COPY a.txt", "RUN ls"] {
        assert!(cached(&log, step), "{step} re-ran:\n{log}");
    }
}

/// A fixed Dockerfile and context give fixed keys: the store's entries
/// carry them as names, so another kiln (another version, another runner)
/// finds them. A failure means the key encoding changed: if on purpose,
/// the scheme id (`kiln-cache-v2`) must change with it.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_fixed_dockerfile_and_context_give_golden_keys() {
    if support::host_arch() != "amd64" {
        return; // The platform is in every key; the hex below is amd64's.
    }
    let case = Case::new("golden");
    case.dockerfile("FROM scratch\nCOPY a.txt /a\nENV X=1\n");
    case.file("a.txt", "golden\n");
    let perm = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(case.ctx().join("a.txt"), perm).unwrap();
    case.build(&[]);
    // The step entries (the store's other records are named by keys too).
    let mut steps: Vec<String> = std::fs::read_dir(case.store().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap_or_default();
            v.get("ops").is_some()
        })
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            "0f35b56432b06a977dce96a44262889ceb29659032219d0a5bd11a500d75b1c5",
            "92938ce7f16a34e00d9ae85d0d3a19ca3f53afaa6942e34f18362f0d976f32f0",
        ],
        "the keys of COPY a.txt /a and ENV X=1"
    );
}

/// The `cache miss: …` lines of a build with --explain-cache.
fn misses(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.split_once("cache miss: ").map(|(_, why)| why))
        .collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn explain_cache_names_the_arg_the_file_and_the_env_var_that_changed() {
    let case = Case::new("explain");
    case.dockerfile(
        "FROM BASE\nARG V=1\nENV A=1 B=2\nRUN echo $V $A $B > /x\nCOPY a.txt b.txt /app/\n",
    );
    case.file("a.txt", "a\n");
    case.file("b.txt", "b\n");
    case.build(&["--explain-cache"]);
    let log = case.build(&["--explain-cache", "--build-arg", "V=2"]);
    assert_eq!(
        misses(&log),
        [
            "build arg V changed",
            "no entry on the same parent: an earlier step changed, or this step never ran here"
        ],
        "{log}"
    );
    case.file("b.txt", "changed\n");
    let log = case.build(&["--explain-cache"]);
    assert_eq!(misses(&log), ["source file b.txt changed"], "{log}");
    case.dockerfile(
        "FROM BASE\nARG V=1\nENV A=1 B=3\nRUN echo $V $A $B > /x\nCOPY a.txt b.txt /app/\n",
    );
    let log = case.build(&["--explain-cache"]);
    assert_eq!(misses(&log)[0], "env B changed", "{log}");
    assert!(!log.contains("env A"), "{log}");
}
