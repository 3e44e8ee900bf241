//! Cache keys that hold across machines: the same checkout under another
//! owner (another CI runner's uid) hits the cache.

mod support;

use std::process::Command;

use support::{text, Case};

/// Whether the step whose line contains `needle` is marked CACHED in a
/// plain progress log (`#N [..] needle` … `#N CACHED`).
fn cached(log: &str, needle: &str) -> bool {
    let id = log
        .lines()
        .find(|l| l.contains(needle) && l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no step {needle:?} in:\n{log}"));
    log.lines().any(|l| l == format!("{id} CACHED"))
}

#[test]
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
