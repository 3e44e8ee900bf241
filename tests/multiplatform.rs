//! `kiln build --platform linux/amd64,linux/arm64`: one OCI image index
//! over one image per platform — in the store (`kiln images`, `kiln
//! inspect`), in OCI layouts, per platform in `-o type=local`, pushed to a
//! registry (checked with skopeo). The Dockerfiles run no foreign binary
//! (arm64 is built with COPY only), so no emulator is needed.

mod support;

use std::path::Path;

use serde_json::Value;
use support::registry::TestRegistry;
use support::{host_arch, read, text, tool, Case};

const PLATFORMS: &str = "linux/amd64,linux/arm64";

/// A builder stage on the build platform (its RUN is native, and its key
/// the same for every target) and a final stage of COPYs only.
fn two_platform_case(name: &str) -> Case {
    let case = Case::new(name);
    case.dockerfile(
        "FROM --platform=$BUILDPLATFORM BASE AS tool\n\
         RUN echo ran-$((20+22)) && echo made-on-$(uname -m) > /tool.txt\n\
         FROM scratch\n\
         ARG TARGETARCH\n\
         COPY --from=tool /tool.txt /\n\
         COPY hello.txt /\n",
    );
    case.file("hello.txt", "hello\n");
    case
}

fn json_file(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// A blob of an OCI layout dir, as JSON.
fn blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    json_file(&layout.join("blobs/sha256").join(hex))
}

/// The architecture each manifest of an index states, and the one its
/// config says, in index order.
fn index_arches(layout: &Path, index: &Value) -> Vec<(String, String)> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let manifest = blob(layout, m["digest"].as_str().unwrap());
            let config = blob(layout, manifest["config"]["digest"].as_str().unwrap());
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                config["architecture"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn two_platforms_make_one_index() {
    let case = two_platform_case("index");
    let layout = case.path("layout");
    let local = case.path("local");
    let out = case.build(&[
        "--platform",
        PLATFORMS,
        "-t",
        "mp:1",
        "--annotation",
        "index:org.example.kind=multi",
        "--annotation",
        "manifest[linux/arm64]:org.example.only=arm",
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        "-o",
        &format!("type=local,dest={}", local.display()),
        "--progress=plain",
    ]);
    // The build-platform stage ran once; the second platform hit its cache.
    assert_eq!(out.matches("ran-42").count(), 1, "{out}");

    // The layout names the index, which lists both images with their
    // platforms; each config states its own.
    let top = json_file(&layout.join("index.json"));
    let entries = top["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{top}");
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "localhost/mp:1"
    );
    let index = blob(&layout, entries[0]["digest"].as_str().unwrap());
    assert_eq!(index["annotations"]["org.example.kind"], "multi", "{index}");
    assert_eq!(
        index_arches(&layout, &index),
        [
            ("amd64".into(), "amd64".into()),
            ("arm64".into(), "arm64".into())
        ]
    );
    let arm = blob(&layout, index["manifests"][1]["digest"].as_str().unwrap());
    assert_eq!(arm["annotations"]["org.example.only"], "arm", "{arm}");
    let amd = blob(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    assert!(amd["annotations"]["org.example.only"].is_null(), "{amd}");
    // skopeo reads the layout's index by its name.
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:localhost/mp:1", layout.display()),
        ],
    );
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json"),
        "{raw}"
    );

    // -o type=local: one dir per platform, as BuildKit.
    for p in ["linux_amd64", "linux_arm64"] {
        assert_eq!(read(&local.join(p), "hello.txt"), "hello\n");
        let tool_file = read(&local.join(p), "tool.txt");
        assert!(tool_file.starts_with("made-on-"), "{tool_file}");
    }

    // The store: one entry with its platforms; inspect shows the index,
    // or one platform's image.
    let images = text(&case.kiln(&["images"]));
    let rows: Vec<&str> = images
        .lines()
        .filter(|l| l.contains("localhost/mp:1"))
        .collect();
    assert_eq!(rows.len(), 1, "{images}");
    assert!(rows[0].ends_with("linux/amd64,linux/arm64"), "{images}");
    // The platforms' images are the index's, not unnamed images of their
    // own (the one `<none>` is the imported base).
    assert_eq!(images.matches("<none>").count(), 1, "{images}");
    let shown = case.inspect("mp:1");
    assert_eq!(
        shown["MediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(shown["Manifests"].as_array().unwrap().len(), 2, "{shown}");
    let arm = case.kiln(&["inspect", "--platform", "linux/arm64", "mp:1"]);
    let arm: Value = serde_json::from_slice(&arm.stdout).unwrap();
    assert_eq!(arm["Architecture"], "arm64", "{arm}");

    // Removing the name leaves a store prune can clean, and that still
    // builds from its cache.
    assert!(case.kiln(&["rmi", "mp:1"]).status.success());
    assert!(!text(&case.kiln(&["images"])).contains("mp:1"));
    assert!(case.kiln(&["prune"]).status.success());
    case.build(&["--platform", PLATFORMS, "-t", "mp:2"]);
    let shown = case.inspect("mp:2");
    assert_eq!(shown["Manifests"][0]["Architecture"], host_arch());

    // A build FROM it for one platform starts from that platform's entry
    // (not the host's, which would send kiln to a registry for arm64).
    std::fs::write(
        case.ctx().join("Dockerfile"),
        "FROM localhost/mp:2\nCOPY hello.txt /again.txt\n",
    )
    .unwrap();
    case.build(&["--platform", "linux/arm64", "-t", "child"]);
    assert_eq!(case.inspect("child")["Architecture"], "arm64");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn docker_archive_of_two_platforms_offers_the_choices() {
    let case = two_platform_case("docker");
    let dest = case.path("out.tar");
    let err = case.build_fails(&[
        "--platform",
        PLATFORMS,
        "-o",
        &format!("type=docker,dest={}", dest.display()),
    ]);
    assert!(err.contains("--platform linux/amd64"), "{err}");
    assert!(err.contains("-o type=oci"), "{err}");
    assert!(!dest.exists(), "nothing written");
    // Nothing was built (the check comes first).
    assert!(!err.contains("ran-42"), "{err}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn pushed_index_has_both_platforms() {
    let case = two_platform_case("push");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let name = format!("{}/kiln/mp:1", reg.host());
    case.build(&["--platform", PLATFORMS, "-t", &name, "--push"]);
    let raw: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    ))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let arches: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "{raw}");
    // skopeo picks the arm64 image out of it.
    let out = case.path("arm");
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
            &format!("docker://{name}"),
            &format!("oci:{}:x", out.display()),
        ],
    );
    let index = json_file(&out.join("index.json"));
    let manifest = blob(&out, index["manifests"][0]["digest"].as_str().unwrap());
    let config = blob(&out, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["architecture"], "arm64");
    // `kiln push` of the stored index sends the same index.
    let again = format!("{}/kiln/mp:2", reg.host());
    let pushed = case.kiln(&["push", &name, &again]);
    assert!(pushed.status.success(), "{}", text(&pushed));
    let raw2 = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{again}"),
        ],
    );
    assert_eq!(serde_json::from_str::<Value>(&raw2).unwrap(), raw);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn load_keeps_the_host_platform() {
    let case = two_platform_case("load");
    let name = format!("localhost/kiln-mp-load-{}:1", std::process::id());
    let out = case.build(&[
        "--platform",
        PLATFORMS,
        "-t",
        &name,
        "--load",
        "--progress=plain",
    ]);
    assert!(
        out.contains("podman keeps the image of this host's platform"),
        "{out}"
    );
    let arch = tool(
        "podman",
        &["image", "inspect", "--format", "{{.Architecture}}", &name],
    );
    let _ = std::process::Command::new("podman")
        .args(["rmi", "-f", &name])
        .output();
    assert_eq!(arch.trim(), host_arch());
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_steps_run_on_each_platform() {
    // The base is an index (amd64 + arm64); arm64's RUN goes through qemu.
    let case = Case::new("run");
    std::fs::write(
        case.ctx().join("Dockerfile"),
        format!("FROM {}\nRUN uname -m > /arch\n", support::multi_base()),
    )
    .unwrap();
    let local = case.build_local(&["--platform", PLATFORMS, "-t", "run:1"]);
    assert_eq!(read(&local.join("linux_amd64"), "arch"), "x86_64\n");
    assert_eq!(read(&local.join("linux_arm64"), "arch"), "aarch64\n");
    let arm = case.kiln(&["inspect", "--platform", "linux/arm64", "run:1"]);
    let arm: Value = serde_json::from_slice(&arm.stdout).unwrap();
    assert_eq!(arm["Architecture"], "arm64", "{arm}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn check_takes_a_platform_list() {
    let case = two_platform_case("check");
    let ctx = case.ctx();
    for platforms in [
        vec!["--platform", PLATFORMS],
        vec!["--platform", "linux/amd64", "--platform", "linux/arm64"],
    ] {
        let mut args = vec!["build", "--check"];
        args.extend(platforms);
        args.push(ctx.to_str().unwrap());
        let out = case.kiln(&args);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("no warnings found"), "{}", text(&out));
    }
}

/// A builder stage on the build platform, then a final stage per platform
/// whose RUN (arm64's through qemu) waits up to 20 s for the other
/// platform's marker in a shared cache mount: it only finishes if the two
/// platforms' RUNs run at the same time.
const MEET: &str = r#"FROM --platform=$BUILDPLATFORM MULTI AS tool
RUN echo ran-$((20+22)) && sleep 1 && echo made > /tool.txt
FROM MULTI
ARG TARGETARCH
RUN --mount=type=cache,id=meet,target=/meet touch /meet/$TARGETARCH && \
    other=amd64; [ $TARGETARCH = amd64 ] && other=arm64; i=0; \
    while [ ! -e /meet/$other ]; do i=$((i+1)); \
      [ $i -lt 200 ] || { echo "$TARGETARCH never ran beside $other"; exit 9; }; sleep 0.1; done && \
    echo met-$TARGETARCH | tee /met
COPY --from=tool /tool.txt /
"#;

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn platforms_build_at_once_sharing_the_build_platform_stage() {
    let case = Case::new("parallel");
    std::fs::write(
        case.ctx().join("Dockerfile"),
        MEET.replace("MULTI", &support::multi_base()),
    )
    .unwrap();
    let local = case.path("local");
    let args = [
        "--platform",
        PLATFORMS,
        "--jobs",
        "2",
        "-t",
        "par:1",
        "-o",
        &format!("type=local,dest={}", local.display()),
        "--progress=plain",
    ];
    let out = case.build(&args);
    // The build-platform stage ran once, though both platforms need it.
    assert_eq!(out.matches("ran-42").count(), 1, "{out}");
    assert!(
        out.contains("met-amd64") && out.contains("met-arm64"),
        "{out}"
    );
    for (p, arch) in [("linux_amd64", "amd64"), ("linux_arm64", "arm64")] {
        assert_eq!(read(&local.join(p), "met"), format!("met-{arch}\n"));
        assert_eq!(read(&local.join(p), "tool.txt"), "made\n");
    }
    // The store is whole: the index is listed, and the same build again
    // runs no step.
    let images = text(&case.kiln(&["images"]));
    assert!(
        images.lines().any(|l| l.contains("localhost/par:1")),
        "{images}"
    );
    let again = case.build(&args);
    assert!(
        !again.contains("ran-42") && !again.contains("met-a"),
        "{again}"
    );
    assert_eq!(
        case.inspect("par:1")["Manifests"].as_array().unwrap().len(),
        2
    );
}

/// arm64's RUN fails at once; amd64's first RUN waits (up to 20 s) for
/// arm64's marker in a shared cache mount, then 3 s more, so its second
/// RUN would start well after arm64's build failed.
const ONE_FAILS: &str = r#"FROM MULTI
ARG TARGETARCH
RUN --mount=type=cache,id=fails,target=/meet \
    if [ $TARGETARCH = arm64 ]; then touch /meet/arm64; echo arm64-fails; exit 7; fi; \
    i=0; while [ ! -e /meet/arm64 ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.1; done; \
    sleep 3; echo amd64-first-done
RUN echo amd64-second-ran
"#;

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_failed_platform_stops_the_others() {
    let case = Case::new("onefails");
    std::fs::write(
        case.ctx().join("Dockerfile"),
        ONE_FAILS.replace("MULTI", &support::multi_base()),
    )
    .unwrap();
    let out = case.build_fails(&["--platform", PLATFORMS, "--jobs", "2", "--progress=plain"]);
    assert!(
        out.contains("arm64-fails") && out.contains("amd64-first-done"),
        "{out}"
    );
    // amd64 stopped before its next step, saying why.
    assert!(!out.contains("amd64-second-ran"), "{out}");
    assert!(
        out.contains("stopped: the build for linux/arm64 failed"),
        "{out}"
    );
}
