//! The build cache shared through a registry (`--cache-to`,
//! `--cache-from`) and an OCI layout dir: two stores stand for two CI
//! runners, the second starting empty.

mod support;

use std::path::Path;
use std::process::Command;

use support::registry::TestRegistry;
use support::{cached, text, Case};

/// Three stages; each RUN prints a line its text does not hold (`ran-2`
/// from `ran-$((1+1))`), so the log shows whether it executed.
const DOCKERFILE: &str = "\
FROM BASE AS deps
COPY dep.txt /dep.txt
RUN echo ran-$((1+1)) && cat /dep.txt > /deps.out

FROM BASE AS build
COPY --from=deps /deps.out /in
COPY src.txt /src.txt
RUN echo ran-$((2+1)) && cat /in /src.txt > /app

FROM build
ENV MODE=prod
RUN echo ran-$((3+1)) && wc -c /app > /size
";

const STEPS: [&str; 7] = [
    "COPY dep.txt",
    "ran-$((1+1))",
    "COPY --from=deps",
    "COPY src.txt",
    "ran-$((2+1))",
    "ENV MODE",
    "ran-$((3+1))",
];

fn runner(name: &str) -> Case {
    let case = Case::new(name);
    case.dockerfile(DOCKERFILE);
    case.file("dep.txt", "dep\n");
    case.file("src.txt", "src\n");
    case
}

/// `kiln build` of `ctx` in `case`'s store; panics on failure.
fn build_in(case: &Case, ctx: &Path, args: &[&str]) -> String {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    let out = case.kiln(&all);
    let log = text(&out);
    assert!(out.status.success(), "kiln build failed:\n{log}");
    log
}

fn ids(case: &Case, name: &str) -> (serde_json::Value, serde_json::Value) {
    let json = case.inspect(name);
    (json["Id"].clone(), json["Digest"].clone())
}

fn assert_all_cached(log: &str) {
    for step in STEPS {
        assert!(cached(log, step), "{step} ran:\n{log}");
    }
    for ran in ["ran-2", "ran-3", "ran-4"] {
        assert!(!log.contains(ran), "a RUN executed ({ran}):\n{log}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_empty_store_takes_every_step_from_the_registry_cache() {
    let a = runner("cache-a");
    let registry = TestRegistry::start(&a.path("registry"), &[]);
    let cache = format!("{}/kiln/app:cache", registry.host());
    let to = format!("type=registry,ref={cache}");
    let log = build_in(&a, &a.ctx(), &["-t", "app", "--cache-to", &to]);
    assert!(log.contains("ran-2") && log.contains("ran-4"), "{log}");

    // Runner B: an empty store, the same checkout owned by another uid.
    let b = Case::new("cache-b");
    let checkout = b.path("checkout");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(a.ctx())
        .arg(&checkout)
        .status();
    assert!(cp.unwrap().success());
    let chown = Command::new("podman")
        .args(["unshare", "chown", "-R", "1234:1234"])
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(chown.status.success(), "{}", text(&chown));
    let from = format!("type=registry,ref={cache}");
    let log = build_in(&b, &checkout, &["-t", "app", "--cache-from", &from]);
    assert_all_cached(&log);
    assert!(log.contains(&format!("cache hit from {cache}")), "{log}");
    // Only the image's own layers came down: the builder stage's two
    // were never needed (the COPY --from reading them hit).
    assert!(
        log.contains("cache: 7 steps from --cache-from, 4 layers pulled"),
        "{log}"
    );
    assert_eq!(ids(&b, "app"), ids(&a, "app"), "B's image is A's");
    // B pushes the image to another repository: the layers it took from
    // the cache are mounted from the cache's repository, not uploaded.
    let image = format!("{}/kiln/image:v1", registry.host());
    let out = b.kiln(&["push", "app", &image]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("mounted from kiln/app").count(), 4, "{log}");

    // A again: every entry is in the ref already, nothing is written.
    let log = build_in(&a, &a.ctx(), &["--cache-to", &to]);
    assert!(log.contains("nothing written"), "{log}");

    // Runner C: one source file changed; a missing cache ref first.
    let c = runner("cache-c");
    c.file("src.txt", "changed\n");
    let missing = format!("{}/kiln/none:cache", registry.host());
    let args = [
        "--explain-cache",
        "--cache-from",
        &missing,
        "--cache-from",
        &cache,
    ];
    let log = build_in(&c, &c.ctx(), &args);
    assert!(
        log.contains(&format!("WARN: cache {missing}: not found")),
        "{log}"
    );
    for step in ["COPY dep.txt", "ran-$((1+1))", "COPY --from=deps"] {
        assert!(cached(&log, step), "{step} re-ran:\n{log}");
    }
    for step in ["COPY src.txt", "ran-$((2+1))", "ran-$((3+1))"] {
        assert!(!cached(&log, step), "{step} was cached:\n{log}");
    }
    assert!(!log.contains("ran-2") && log.contains("ran-3"), "{log}");
    assert!(
        log.contains("cache miss: source file src.txt changed"),
        "{log}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_local_cache_dir_round_trips_and_a_broken_one_is_a_warning() {
    let a = runner("local-a");
    let dir = a.path("cache");
    let to = format!("type=local,dest={},mode=min", dir.display());
    build_in(&a, &a.ctx(), &["-t", "app", "--cache-to", &to]);
    assert!(dir.join("index.json").is_file());

    let b = runner("local-b");
    let from = format!("type=local,src={}", dir.display());
    let log = build_in(&b, &b.ctx(), &["-t", "app", "--cache-from", &from]);
    // mode=min holds the final image's chain: the builder stage's own
    // steps are not in it, those of the image (and its base stage) are.
    for step in ["COPY src.txt", "ran-$((2+1))", "ENV MODE", "ran-$((3+1))"] {
        assert!(cached(&log, step), "{step} ran:\n{log}");
    }
    assert!(!cached(&log, "ran-$((1+1))"), "{log}");
    assert_eq!(ids(&b, "app"), ids(&a, "app"), "B's image is A's");

    // A cache dir whose blob was damaged: a warning, and the steps run.
    let c = runner("local-c");
    for blob in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        std::fs::write(blob.unwrap().path(), "garbage").unwrap();
    }
    let log = build_in(&c, &c.ctx(), &["--cache-from", &from]);
    assert!(log.contains("WARN: cache"), "{log}");
    assert!(log.contains("ran-4"), "{log}");
}

/// `keep=N`: a cache written by two Dockerfiles keeps the entries the
/// last build used and drops the oldest of the other's.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn keep_ages_out_the_least_recently_used_entries() {
    let a = runner("keep-a");
    let dir = a.path("cache");
    let to = format!("type=local,dest={},keep=7", dir.display());
    build_in(&a, &a.ctx(), &["--cache-to", &to]);
    // Another Dockerfile to the same cache: 2 new entries, 9 in all.
    let other = Case::new("keep-other");
    other.dockerfile("FROM BASE\nRUN echo other-$((5+5)) > /o\nENV X=1\n");
    let log = build_in(&other, &other.ctx(), &["--cache-to", &to]);
    assert!(
        log.contains("(7 in all, 2 of the oldest aged out)"),
        "{log}"
    );
    let log = build_in(&other, &other.ctx(), &["--cache-to", &to]);
    assert!(log.contains("nothing written"), "{log}");

    let from = format!("type=local,src={}", dir.display());
    let b = Case::new("keep-b");
    b.dockerfile("FROM BASE\nRUN echo other-$((5+5)) > /o\nENV X=1\n");
    let log = build_in(&b, &b.ctx(), &["--cache-from", &from]);
    assert!(
        cached(&log, "other-$((5+5))") && !log.contains("other-10"),
        "{log}"
    );
    let c = runner("keep-c");
    let log = build_in(&c, &c.ctx(), &["--cache-from", &from]);
    let hits = STEPS.iter().filter(|s| cached(&log, s)).count();
    assert!(
        hits < STEPS.len(),
        "the aged-out entries were still there:\n{log}"
    );
}

/// `--platform` builds each platform in turn, each exporting to the one
/// cache: the second's export must keep the first's entries.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn every_platform_of_a_list_is_exported_to_the_one_cache() {
    let dockerfile = "FROM --platform=$BUILDPLATFORM BASE AS tool\n\
         RUN echo ran-$((20+22)) > /tool.txt\n\
         FROM scratch\n\
         ARG TARGETARCH\n\
         COPY --from=tool /tool.txt /\n\
         COPY hello.txt /hello-$TARGETARCH.txt\n";
    let platforms = "linux/amd64,linux/arm64";
    let a = Case::new("plat-a");
    a.dockerfile(dockerfile);
    a.file("hello.txt", "hello\n");
    let dir = a.path("cache");
    let to = format!("type=local,dest={}", dir.display());
    build_in(&a, &a.ctx(), &["--platform", platforms, "--cache-to", &to]);

    let b = Case::new("plat-b");
    b.dockerfile(dockerfile);
    b.file("hello.txt", "hello\n");
    let from = format!("type=local,src={}", dir.display());
    let log = build_in(
        &b,
        &b.ctx(),
        &["--platform", platforms, "--cache-from", &from],
    );
    assert!(!log.contains("ran-42"), "the RUN executed:\n{log}");
    // The platforms build at once: their steps are told apart by the
    // platform in the label (`#N [linux/arm64 stage-1 2/3] COPY …`).
    for platform in platforms.split(',') {
        for step in ["COPY --from=tool", "COPY hello.txt"] {
            let id = log
                .lines()
                .find(|l| {
                    l.starts_with('#') && l.contains(&format!("[{platform} ")) && l.contains(step)
                })
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {platform} step {step:?} in:\n{log}"));
            let hit = log.lines().any(|l| l == format!("{id} CACHED"));
            assert!(hit, "{platform} {step} ran:\n{log}");
        }
    }
}

/// The registry lost a cache's layer blobs after the cache was written:
/// the entries naming them are misses (their steps run), not a build
/// that fails downloading them.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_cache_whose_layer_blobs_are_gone_runs_the_steps() {
    let a = runner("lost-a");
    let storage = a.path("registry");
    let registry = TestRegistry::start(&storage, &[]);
    let cache = format!("{}/kiln/app:cache", registry.host());
    build_in(&a, &a.ctx(), &["--cache-to", &cache]);
    let mut lost = 0;
    for blob in walk(&storage.join("data/docker/registry/v2/blobs")) {
        // Layers are gzip; the manifest and the config are JSON.
        let gzip = std::fs::read(&blob).unwrap().starts_with(&[0x1f, 0x8b]);
        if blob.ends_with("data") && gzip {
            std::fs::remove_file(&blob).unwrap();
            lost += 1;
        }
    }
    assert!(lost > 0, "no layer blob in {}", storage.display());

    let b = runner("lost-b");
    let log = build_in(&b, &b.ctx(), &["-t", "app", "--cache-from", &cache]);
    assert!(log.contains("lost the blob"), "{log}");
    assert!(log.contains("ran-4"), "{log}");
    let env = b.inspect("app")["Config"]["Env"].to_string();
    assert!(env.contains("MODE=prod"), "{env}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
