//! SOURCE_DATE_EPOCH is applied where the image is written, not in the
//! step cache keys: pinning it to each commit's time (the usual
//! reproducible-CI practice) re-stamps the image and re-runs nothing.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use support::{cached, text, Case};

const A: &str = "1600000000";
const B: &str = "1700000000";
const B_TIME: &str = "2023-11-14T22:13:20Z";

const STEPS: [&str; 3] = ["COPY a.txt /a", "RUN mkdir /d", "WORKDIR /w"];

/// `SOURCE_DATE_EPOCH=epoch kiln build -t e -o type=local,dest=OUT`, as CI
/// runs it; the log and the image ID.
fn build(case: &Case, epoch: &str, out: &Path) -> (String, String) {
    let iid = case.path("iid");
    let dest = format!("type=local,dest={}", out.display());
    let ctx = case.ctx();
    let args = [
        "build",
        "--iidfile",
        iid.to_str().unwrap(),
        "-t",
        "e",
        "-o",
        &dest,
        ctx.to_str().unwrap(),
    ];
    let run = case.kiln_env(&args, &[("SOURCE_DATE_EPOCH", epoch)]);
    let log = text(&run);
    assert!(run.status.success(), "{log}");
    (log, fs::read_to_string(iid).unwrap())
}

fn epoch_case(name: &str) -> Case {
    let case = Case::new(name);
    case.dockerfile("FROM BASE\nCOPY a.txt /a\nRUN mkdir /d && echo hi > /d/f\nWORKDIR /w\n");
    case.file("a.txt", "a\n");
    case
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_new_epoch_restamps_the_image_from_the_cache_as_a_cold_build_would() {
    let case = epoch_case("epoch-restamp");
    let (_, iid_a) = build(&case, A, &case.path("out-a"));
    let out = case.path("out-b");
    let (log, iid_b) = build(&case, B, &out);
    for step in STEPS {
        assert!(cached(&log, step), "{step} re-ran for a new epoch:\n{log}");
    }
    assert_ne!(iid_a, iid_b, "the new epoch is in the image");
    for path in ["a", "d", "d/f", "w"] {
        let mtime = fs::symlink_metadata(out.join(path)).unwrap().mtime();
        assert_eq!(mtime.to_string(), B, "/{path}'s mtime");
    }
    let image = case.inspect("e");
    assert_eq!(image["Created"], B_TIME, "{image}");
    let history = image["History"].as_array().unwrap();
    for h in &history[history.len() - STEPS.len()..] {
        assert_eq!(h["created"], B_TIME, "{h}");
    }
    // What a cold build with that epoch makes, in an empty store.
    let cold = epoch_case("epoch-cold");
    let (_, iid_cold) = build(&cold, B, &cold.path("out"));
    assert_eq!(iid_b, iid_cold, "the restamped image is the cold build's");
    // Back to the first epoch: the first image again, still all cached.
    let (log, iid) = build(&case, A, &case.path("out-a2"));
    for step in STEPS {
        assert!(cached(&log, step), "{step} re-ran:\n{log}");
    }
    assert_eq!(iid, iid_a);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_run_that_declares_the_epoch_arg_sees_it_and_misses_on_a_new_one() {
    let case = Case::new("epoch-arg-run");
    case.dockerfile(
        "FROM BASE\nCOPY a.txt /a\nARG SOURCE_DATE_EPOCH\nRUN echo $SOURCE_DATE_EPOCH > /e\n",
    );
    case.file("a.txt", "a\n");
    let out = case.path("out");
    let dest = format!("type=local,dest={}", out.display());
    let build = |epoch: &str| {
        let arg = format!("SOURCE_DATE_EPOCH={epoch}");
        case.build(&["--explain-cache", "--build-arg", &arg, "-o", &dest])
    };
    build(A);
    let log = build(B);
    assert!(cached(&log, "COPY a.txt"), "{log}");
    assert!(!cached(&log, "RUN echo"), "{log}");
    let misses: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("cache miss: ").map(|(_, why)| why))
        .collect();
    assert_eq!(misses, ["build arg SOURCE_DATE_EPOCH changed"], "{log}");
    assert_eq!(fs::read_to_string(out.join("e")).unwrap(), format!("{B}\n"));
    // The environment variable is the build arg when none is given
    // (buildx and buildctl pass it on): the RUN sees it.
    let ctx = case.ctx();
    let args = ["build", "-o", &dest, ctx.to_str().unwrap()];
    let run = case.kiln_env(&args, &[("SOURCE_DATE_EPOCH", "1650000000")]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(fs::read_to_string(out.join("e")).unwrap(), "1650000000\n");
}

/// `SOURCE_DATE_EPOCH=epoch kiln build -t e` (no export); the log.
fn build_tagged(case: &Case, epoch: &str) -> String {
    let ctx = case.ctx();
    let args = ["build", "-t", "e", ctx.to_str().unwrap()];
    let run = case.kiln_env(&args, &[("SOURCE_DATE_EPOCH", epoch)]);
    let log = text(&run);
    assert!(run.status.success(), "{log}");
    log
}

/// The RECLAIMABLE column of `kiln system df`'s "Build Cache" row.
fn cache_reclaimable(case: &Case) -> String {
    let df = case.kiln(&["system", "df"]);
    let out = text(&df);
    assert!(df.status.success(), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_else(|| panic!("no Build Cache row:\n{out}"));
    row.split_whitespace().nth(5).unwrap().to_string()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn plain_prune_keeps_the_steps_of_an_image_built_with_an_epoch() {
    // The image holds the epoch's copies of the layers; the steps' entries
    // name the raw ones. Without an epoch, a plain prune keeps the steps of
    // a named image (its layers are theirs): with one it must too.
    let case = epoch_case("epoch-prune");
    build_tagged(&case, A);
    assert_eq!(cache_reclaimable(&case), "0B", "system df's plain prune");
    let prune = case.kiln(&["prune"]);
    assert!(prune.status.success(), "{}", text(&prune));
    let log = build_tagged(&case, A);
    for step in STEPS {
        assert!(
            cached(&log, step),
            "{step} re-ran after a plain prune:\n{log}"
        );
    }
    // `--all` still empties the cache.
    let prune = case.kiln(&["prune", "--all"]);
    assert!(prune.status.success(), "{}", text(&prune));
    let log = build_tagged(&case, A);
    assert!(!cached(&log, "RUN mkdir"), "{log}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_arg_epoch_wins_over_the_environment() {
    // buildx and buildctl only fill the build arg in from the environment.
    let case = Case::new("epoch-precedence");
    case.dockerfile("FROM BASE\nENV X=1\n");
    let ctx = case.ctx();
    let arg = format!("SOURCE_DATE_EPOCH={B}");
    let args = [
        "build",
        "-t",
        "p",
        "--build-arg",
        &arg,
        ctx.to_str().unwrap(),
    ];
    let run = case.kiln_env(&args, &[("SOURCE_DATE_EPOCH", A)]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(case.inspect("p")["Created"], B_TIME);
}

/// The layer dirs in the case's store.
fn stored_layers(case: &Case) -> usize {
    fs::read_dir(case.store().join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_epoch_later_than_every_mtime_stores_no_copy_of_the_layers() {
    // Layers made before the epoch (an epoch set to the build's day, steps
    // cached from earlier) are their own clamped copies.
    let case = epoch_case("epoch-nocopy");
    case.file("big", &"x".repeat(1 << 20));
    case.dockerfile("FROM BASE\nCOPY a.txt big /\nRUN mkdir /d && echo hi > /d/f\nWORKDIR /w\n");
    let ctx = case.ctx();
    let plain = case.kiln(&["build", "-t", "plain", ctx.to_str().unwrap()]);
    assert!(plain.status.success(), "{}", text(&plain));
    let layers = stored_layers(&case);
    let log = build_tagged(&case, "4000000000");
    assert!(!log.contains("rewriting layers"), "{log}");
    assert_eq!(stored_layers(&case), layers, "no new layer stored:\n{log}");
    let diff_ids = |name: &str| case.inspect(name)["RootFS"]["diff_ids"].clone();
    assert_eq!(diff_ids("e"), diff_ids("plain"));
    assert_eq!(case.inspect("e")["Created"], "2096-10-02T07:06:40Z");
}
