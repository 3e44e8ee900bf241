//! The multi-stage patterns of real Dockerfiles (examples/, after the seed
//! Dockerfiles in dockerfile/tests/seeds/), built rootless on the busybox
//! base and proven with podman: only the artefacts reach the final image,
//! the final layer count is the base's plus the last stage's layer-making
//! steps, and stages the target does not need never run.

mod support;

use std::fs;
use std::path::Path;

use support::{podman_run, text, tool, Case};

/// Builds an example dir into an OCI layout and a docker-archive.
fn build_example(case: &Case, name: &str, extra: &[&str]) -> String {
    let example = support::examples().join(name);
    let base = format!("BASE={}", support::base());
    let layout = case.path("layout");
    let archive = case.path("image.tar");
    let mut args = vec![
        "build".to_string(),
        "--build-arg".into(),
        base,
        "-t".into(),
        name.into(),
        "-o".into(),
        format!("type=oci,dest={},tar=false", layout.display()),
        "-o".into(),
        format!("type=docker,dest={}", archive.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(example.to_str().unwrap().into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = case.kiln(&refs);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    log
}

/// The file names in each layer of the image in an OCI layout, bottom first.
fn layer_files(layout: &Path) -> Vec<Vec<String>> {
    let json =
        |p: &Path| -> serde_json::Value { serde_json::from_slice(&fs::read(p).unwrap()).unwrap() };
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&index["manifests"][0]["digest"]));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            tool("tar", &["-tzf", blob(&l["digest"]).to_str().unwrap()])
                .lines()
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn storefront_two_builders_one_runtime() {
    let case = Case::new("ex-storefront");
    build_example(&case, "storefront", &[]);
    let layers = layer_files(&case.path("layout"));
    // busybox + WORKDIR /static + COPY --from + WORKDIR /app + COPY --from.
    assert_eq!(layers.len(), 5, "{layers:?}");
    assert!(
        layers
            .iter()
            .flatten()
            .all(|f| !f.contains("usr/src/atsea")),
        "no builder file in the final image"
    );
    let said = podman_run(&case.path("image.tar"), "localhost/storefront:latest", &[]);
    assert_eq!(
        said,
        "AtSea server starting with --profile=postgres (static: BUILD_OK bundle.js )\n"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn index_reference_with_a_glob() {
    let case = Case::new("ex-index");
    build_example(&case, "index-glob", &[]);
    let layers = layer_files(&case.path("layout"));
    // busybox + COPY --from=0 (WORKDIR /root/ exists already: no layer).
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert!(
        layers[1].iter().any(|f| f.ends_with("root/app-debug")),
        "{:?}",
        layers[1]
    );
    assert!(layers.iter().flatten().all(|f| !f.contains("go/src")));
    let said = podman_run(&case.path("image.tar"), "localhost/index-glob:latest", &[]);
    assert_eq!(said, "href-counter 1.0\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn release_chain_skips_the_unneeded_test_stage() {
    let case = Case::new("ex-release");
    let log = build_example(&case, "release-chain", &[]);
    assert!(
        !log.contains("[test "),
        "the test stage is not needed by release:\n{log}"
    );
    let layers = layer_files(&case.path("layout"));
    // busybox + base (WORKDIR, COPY) + COPY --from + COPY.
    assert_eq!(layers.len(), 5, "{layers:?}");
    let said = podman_run(
        &case.path("image.tar"),
        "localhost/release-chain:latest",
        &[],
    );
    assert_eq!(said, "serving with prod: express 4; dev tools: none\n");

    // --target test builds it (and only what it needs).
    let target = Case::new("ex-release-target");
    let log = build_example(&target, "release-chain", &["--target", "test"]);
    assert!(
        log.contains("[test ") && !log.contains("[release "),
        "{log}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn target_stops_before_a_broken_later_stage() {
    let case = Case::new("target");
    case.dockerfile(
        "FROM BASE AS builder\nRUN echo built > /artifact\n\nFROM BASE AS broken\nRUN exit 1\n",
    );
    case.build(&["--target", "builder", "-t", "builder-only"]);
    let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "without --target the broken stage runs"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_an_image_reference_and_whiteouts_across_stages() {
    let case = Case::new("image-ref");
    case.dockerfile("FROM BASE\nRUN echo tool > /tool\n");
    case.build(&["-t", "tools:1"]);
    case.dockerfile(
        "FROM BASE AS a\nRUN rm /etc/group && mkdir /data && echo a > /data/a\n\
         FROM a AS b\nRUN rm -rf /data && mkdir /data && echo b > /data/b\n\
         FROM b\nCOPY --from=tools:1 /tool /tool\nCOPY --from=b /data /copied\n",
    );
    let archive = case.path("img.tar");
    case.build(&[
        "-t",
        "final",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let said = podman_run(
        &archive,
        "localhost/final:latest",
        &[
            "sh",
            "-c",
            "cat /tool; ls /data; ls /copied; test -e /etc/group || echo group-gone",
        ],
    );
    assert_eq!(said, "tool\nb\nb\ngroup-gone\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_context_symlink_to_etc_reads_nothing_outside_the_context() {
    let case = Case::new("symlink");
    std::os::unix::fs::symlink("/etc/passwd", case.ctx().join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("/etc", case.ctx().join("etc-link")).unwrap();
    for src in ["passwd-link", "etc-link/passwd", "etc-link/"] {
        case.dockerfile(&format!("FROM BASE\nCOPY {src} /stolen\n"));
        let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
        let log = text(&out);
        assert!(!out.status.success(), "{src}: must not build:\n{log}");
        assert!(log.contains("Dockerfile:2"), "{log}");
    }
    // Copied as a symlink inside a directory, it is just a link.
    case.dockerfile("FROM BASE\nCOPY . /ctx/\n");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_link(out.join("ctx/passwd-link")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn independent_stages_run_at_the_same_time() {
    // The listener only gets its message if the sender's stage runs while
    // it waits: proof of overlap without timing anything. (`-e`: the
    // socket goes to `cat`, so nc's own stdin, at EOF, cannot end it early.)
    // A port free right now (another run may be using any fixed one).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let case = Case::new("parallel-stages");
    case.dockerfile(&format!(
        "FROM BASE AS listener\nRUN timeout 60 nc -l -p {port} -e sh -c 'cat > /got' && test -s /got\n\
         FROM BASE AS sender\nRUN for i in $(seq 200); do echo hello | nc 127.0.0.1 {port} && break; sleep 0.1; done\n\
         FROM BASE\nCOPY --from=listener /got /got\nCOPY --from=sender /etc/passwd /sender-was-here\n"
    ));
    let out = case.path("out");
    case.build(&[
        "--jobs",
        "2",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(fs::read_to_string(out.join("got")).unwrap(), "hello\n");
}
