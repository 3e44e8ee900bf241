//! Trees of many small files (node_modules, site-packages): what a layer
//! capture pays per file is paid tens of thousands of times, so it is
//! counted here with strace. Run by scripts/test-build.sh as an
//! unprivileged user.

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::{kiln_bin, text, Case};

const FILES: usize = 300;

/// Calls per syscall of `kiln build` (and its children), from `strace -c`.
fn syscalls(case: &Case, args: &[&str]) -> HashMap<String, u64> {
    let counts = case.path("strace.txt");
    let out = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&counts)
        .arg(kiln_bin())
        .arg("--root")
        .arg(case.store())
        .args(args)
        .output()
        .expect("strace runs");
    assert!(out.status.success(), "kiln under strace:\n{}", text(&out));
    let table = std::fs::read_to_string(&counts).unwrap();
    // `% time  seconds  usecs/call  calls  [errors]  syscall`
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let calls = f.get(3)?.parse().ok()?;
            Some((f.last()?.to_string(), calls))
        })
        .collect()
}

/// Capturing a layer of small files reads each one's xattrs through its
/// open fd, with one call, and reads a file that has no hole without
/// looking for holes: before, each file cost two `llistxattr` through
/// /proc/self/fd/N/NAME (a path walk each) and two `lseek` more.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn capture_costs_no_path_walk_or_seek_per_small_file() {
    let case = Case::new("many-small");
    for i in 0..FILES {
        case.file(
            &format!("tree/d{}/f{i}.js", i % 10),
            &"x".repeat(100 + i * 7),
        );
    }
    case.dockerfile("FROM scratch\nCOPY tree/ /tree/\n");
    let ctx = case.ctx();
    let calls = syscalls(&case, &["build", "-q", ctx.to_str().unwrap()]);
    let n = |name: &str| calls.get(name).copied().unwrap_or(0);
    assert!(
        n("llistxattr") < FILES as u64 && n("lseek") < FILES as u64,
        "per file: {} llistxattr, {} lseek for {FILES} files",
        n("llistxattr"),
        n("lseek")
    );
    // The layer is still the files.
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let back = std::fs::read_to_string(out.join("tree/d3/f13.js")).unwrap();
    assert_eq!(back, "x".repeat(100 + 13 * 7));
}

/// `COPY --from` a stage of many small files works out the paths the
/// linker needs once per directory, not by a readlink of /proc/self/fd
/// per file (twice, before), and hashes what it reads of the stage by
/// opening each file once relative to its directory, not by two openat2
/// walks from the root.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_costs_no_readlink_per_small_file() {
    let case = Case::new("many-from");
    for i in 0..FILES {
        case.file(&format!("tree/d{}/f{i}.js", i % 10), &"y".repeat(100 + i));
    }
    case.dockerfile(
        "FROM scratch AS builder\nCOPY tree/ /app/\n\
         FROM scratch\nCOPY --from=builder /app /app\n",
    );
    let ctx = case.ctx();
    // The builder is cached: what is counted is the COPY --from.
    case.build(&["--target", "builder"]);
    let calls = syscalls(&case, &["build", "-q", ctx.to_str().unwrap()]);
    let n = |name: &str| calls.get(name).copied().unwrap_or(0);
    let (readlinks, opens) = (n("readlink") + n("readlinkat"), n("openat2"));
    eprintln!(
        "{FILES} files: {readlinks} readlinks, {opens} openat2, {} openat, {} newfstatat",
        n("openat"),
        n("newfstatat")
    );
    assert!(
        readlinks < FILES as u64 / 2 && opens < 3 * FILES as u64,
        "for {FILES} files: {readlinks} readlinks, {opens} openat2"
    );
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let back = std::fs::read_to_string(out.join("app/d3/f13.js")).unwrap();
    assert_eq!(back, "y".repeat(113));
}
