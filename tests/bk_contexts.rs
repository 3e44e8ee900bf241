//! BuildKit's `dockerfile_namedcontext_test.go`,
//! `dockerfile_source_date_epoch_test.go` and `dockerfile_platform_test.go`,
//! ported to rootless kiln builds on the busybox base (each test is named
//! after the BuildKit one; BuildKit's `context:NAME=…` frontend attributes
//! are kiln's `--build-context NAME=…`, images it pushes to a registry are
//! kept in kiln's store). Run by scripts/test-build.sh as an unprivileged
//! user.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use support::{read, Case};

/// `--build-context NAME=VALUE`.
fn context(name: &str, value: &str) -> [String; 2] {
    ["--build-context".to_string(), format!("{name}={value}")]
}

/// Writes the case's image as an OCI layout dir `name`; its path.
fn oci_layout(case: &Case, name: &str) -> PathBuf {
    let layout = case.path(name);
    case.build(&[
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
    ]);
    layout
}

/// An image in the case's store standing in for BuildKit's alpine: the
/// busybox base with /etc/alpine-release and alpine-like ENV changes.
fn alpine_like(case: &Case, name: &str) {
    case.dockerfile(concat!(
        "FROM BASE\nRUN echo 3.99.0 > /etc/alpine-release\n",
        "ENV PATH=/foobar:$PATH\nENV FOOBAR=foobar\n",
    ));
    case.build(&["-t", name]);
}

fn args(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_image_context() {
    let case = Case::new("named-image");
    alpine_like(&case, "alpine-like");
    // `busybox` names no image kiln has: only the context makes it one.
    case.dockerfile(concat!(
        "FROM busybox AS base\nRUN cat /etc/alpine-release > /out\n",
        "RUN env | grep PATH > /env_path\nRUN env | grep FOOBAR > /env_foobar\n",
        "FROM scratch\nCOPY --from=base /out /\nCOPY --from=base /env_path /\n",
        "COPY --from=base /env_foobar /\n",
    ));
    let c = context("busybox", "docker-image://alpine-like");
    let out = case.build_into("out1", &args(&c));
    assert!(!read(&out, "out").is_empty());
    assert_eq!(read(&out, "env_foobar").trim(), "FOOBAR=foobar");
    assert!(read(&out, "env_path").contains("/foobar:"));
    // A context replaces a stage that is itself based on another stage
    // (moby/buildkit#5578).
    case.dockerfile(concat!(
        "FROM BASE AS parent\nFROM parent AS base\nRUN echo base > /out\n",
        "FROM base\nRUN [ -f /etc/alpine-release ]\nRUN [ ! -f /out ]\n",
    ));
    let c = context("base", "docker-image://alpine-like");
    case.build(&args(&c));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_image_context_timestamps() {
    let case = Case::new("named-image-times");
    case.dockerfile("FROM BASE\nRUN echo foo >> /test\n");
    case.build(&["-t", "stamped"]);
    let created = case.inspect("stamped")["Created"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    case.dockerfile("FROM alpine\nRUN echo foo >> /test\n");
    let c = context("alpine", "docker-image://stamped");
    let mut a = args(&c);
    a.extend(["-t", "derived"]);
    case.build(&a);
    let derived = case.inspect("derived")["Created"]
        .as_str()
        .unwrap()
        .to_string();
    // RFC 3339 UTC times of the same format compare as strings.
    assert!(derived > created, "{derived} after {created}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_image_context_scratch() {
    let case = Case::new("named-image-scratch");
    case.dockerfile(concat!(
        "FROM busybox AS build\nCOPY <<EOF /out\nhello world!\nEOF\n",
        "FROM scratch\nCOPY --from=build / /\n",
    ));
    let c = context("busybox", "docker-image://scratch");
    let out = case.build_into("out", &args(&c));
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["out"], "only the heredoc, on an empty image");
    assert_eq!(read(&out, "out"), "hello world!\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_local_context() {
    let case = Case::new("named-local");
    case.dockerfile(concat!(
        "FROM BASE AS base\nRUN cat /etc/alpine-release > /out\n",
        "FROM scratch\nCOPY --from=base /o* /\n",
    ));
    let dir = case.path("basedir");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("out"), "dummy-result").unwrap();
    fs::write(dir.join("out2"), "dummy-result").unwrap();
    fs::write(dir.join(".dockerignore"), "out2\n").unwrap();
    let c = context("base", dir.to_str().unwrap());
    let out = case.build_into("out", &args(&c));
    assert_eq!(read(&out, "out"), "dummy-result");
    assert!(!out.join("out2").exists(), "the context's .dockerignore");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_oci_layout_context() {
    let case = Case::new("named-oci-layout");
    case.dockerfile(concat!(
        "FROM BASE\nWORKDIR /test\nRUN sh -c \"echo -n first > out\"\n",
        "RUN sh -c \"echo -n second > out2\"\nENV foo=bar\n",
    ));
    let layout = oci_layout(&case, "layout");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let digest = manifests[0]["digest"].as_str().unwrap();
    // BuildKit's base stage would read /etc/alpine-release: it is replaced
    // by the layout, so it never runs.
    case.dockerfile(concat!(
        "FROM BASE AS base\nRUN cat /etc/alpine-release > out\n",
        "FROM foo AS imported\nRUN echo -n $foo > outfoo\n",
        "FROM scratch\nCOPY --from=base /test/o* /\nCOPY --from=imported /test/outfoo /\n",
    ));
    let value = format!("oci-layout://{}@{digest}", layout.display());
    let (b, f) = (context("base", &value), context("foo", &value));
    let out = case.build_into("out", &[args(&b), args(&f)].concat());
    assert_eq!(read(&out, "out"), "first");
    assert_eq!(read(&out, "out2"), "second");
    assert_eq!(read(&out, "outfoo"), "bar");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_oci_layout_context_export() {
    let case = Case::new("named-oci-export");
    case.dockerfile("FROM scratch\nWORKDIR /test\nENV foo=bar\n");
    let layout = oci_layout(&case, "layout");
    case.dockerfile("FROM nonexistent AS base\n");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let c = context(
        "nonexistent",
        &format!("oci-layout://{}@{digest}", layout.display()),
    );
    let mut a = args(&c);
    a.extend(["-t", "exported"]);
    case.build(&a);
    let json = case.inspect("exported");
    assert_eq!(json["Config"]["WorkingDir"], "/test", "{json}");
    let env = json["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "foo=bar"), "{json}");
}

// BuildKit measures how much of the context is sent to the daemon; kiln
// reads the dir in place, so what is ported is that each way of using a
// dir context builds, and what it reads.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_filtered_context() {
    let case = Case::new("named-filtered");
    let foo = case.path("foo");
    fs::create_dir_all(&foo).unwrap();
    fs::write(foo.join("foo"), "foo").unwrap();
    fs::write(foo.join("bar"), vec![0u8; 4096]).unwrap();
    let body = concat!(
        "FROM scratch AS copy_from\nCOPY --from=foo /foo /\n",
        "FROM BASE AS run_mount\nRUN --mount=from=foo,src=/foo,target=/in/foo cp /in/foo /foo\n",
        "FROM foo AS image_source\nCOPY --from=BASE / /\nRUN cat /foo > /bar\n",
        "FROM scratch AS all\nCOPY --link --from=copy_from /foo /foo.b\n",
        "COPY --link --from=run_mount /foo /foo.c\nCOPY --link --from=image_source /bar /foo.d\n",
    );
    let c = context("foo", foo.to_str().unwrap());
    for (variant, text) in [
        ("new", body.to_string()),
        (
            "replace",
            format!("FROM scratch AS foo\nCOPY <<EOF /foo\ntest\nEOF\n{body}"),
        ),
    ] {
        case.dockerfile(&text);
        let mut a = args(&c);
        a.extend(["--target", "all"]);
        let out = case.build_into(&format!("out-{variant}"), &a);
        for f in ["foo.b", "foo.c", "foo.d"] {
            assert_eq!(read(&out, f), "foo", "{variant}: {f}");
        }
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn eager_named_context_lookup() {
    let case = Case::new("eager-context");
    case.dockerfile(concat!(
        "FROM broken AS notused\nFROM BASE AS base\nRUN echo \"base\" > /foo\n",
        "FROM busybox AS otherstage\nFROM scratch\nCOPY --from=base /foo /foo\n",
    ));
    let n = context("notused", "docker-image://nosuchimage.invalid/x:latest");
    let b = context("busybox", "docker-image://dontexist.invalid/x:latest");
    let out = case.build_into("out", &[args(&n), args(&b)].concat());
    assert_eq!(read(&out, "foo"), "base\n");
}

// ---- dockerfile_source_date_epoch_test.go ----

const EPOCH_1700000001: &str = "2023-11-14T22:13:21Z";

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn source_date_epoch_without_exporter() {
    let case = Case::new("epoch-no-exporter");
    case.dockerfile("FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n");
    case.build(&["--build-arg", "SOURCE_DATE_EPOCH=1700000001", "-t", "e"]);
    let json = case.inspect("e");
    assert_eq!(json["Created"], EPOCH_1700000001, "{json}");
    let history = json["History"].as_array().unwrap();
    assert!(!history.is_empty());
    for h in history {
        assert_eq!(h["created"], EPOCH_1700000001, "{json}");
    }
}

/// The mtime of the image's /Dockerfile (BuildKit checks the layer's
/// `buildkit/rewritten-timestamp`; kiln clamps the files of new layers).
fn dockerfile_mtime(case: &Case, name: &str, extra: &[&str]) -> i64 {
    let out = case.build_into(name, extra);
    fs::symlink_metadata(out.join("Dockerfile"))
        .unwrap()
        .mtime()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn source_date_epoch_dockerfile_default() {
    let case = Case::new("epoch-default");
    // 2015-10-21T07:28:00Z
    case.dockerfile("ARG SOURCE_DATE_EPOCH=1445412480\nFROM scratch\nCOPY Dockerfile .\n");
    assert_eq!(dockerfile_mtime(&case, "out", &[]), 1445412480);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn source_date_epoch_dockerfile_default_override() {
    let case = Case::new("epoch-override");
    case.dockerfile("ARG SOURCE_DATE_EPOCH=1700000001\nFROM scratch\nCOPY Dockerfile .\n");
    let extra = ["--build-arg", "SOURCE_DATE_EPOCH=1700000002"];
    assert_eq!(dockerfile_mtime(&case, "out", &extra), 1700000002);
}

// BuildKit's default is the name of a stage whose sources give the time,
// never evaluated when the build arg is given.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn source_date_epoch_stage_override() {
    let case = Case::new("epoch-stage-override");
    case.file("src/foo", "bar");
    case.dockerfile(concat!(
        "ARG SOURCE_DATE_EPOCH=mysource\nFROM scratch AS mysource\nADD src /\n",
        "FROM scratch\nCOPY Dockerfile .\n",
    ));
    let extra = ["--build-arg", "SOURCE_DATE_EPOCH=1700000502"];
    assert_eq!(dockerfile_mtime(&case, "out", &extra), 1700000502);
}

// ---- dockerfile_platform_test.go ----

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn platform_args_implicit() {
    let case = Case::new("platform-implicit");
    case.dockerfile(
        "FROM scratch AS build-linux\nCOPY foo bar\nFROM build-${TARGETOS}\nCOPY foo2 bar2\n",
    );
    case.file("foo", "d0");
    case.file("foo2", "d1");
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "bar"), "d0");
    assert_eq!(read(&out, "bar2"), "d1");
}

// As BuildKit: a darwin/ppc64le target, the build stage on the build
// platform (natively), and TARGETOS overridden.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn platform_args_explicit() {
    let case = Case::new("platform-explicit");
    case.dockerfile(concat!(
        "FROM --platform=$BUILDPLATFORM BASE AS build\nARG TARGETPLATFORM\nARG TARGETOS\n",
        "RUN mkdir /out && echo -n $TARGETPLATFORM > /out/platform && echo -n $TARGETOS > /out/os\n",
        "FROM scratch\nCOPY --from=build out .\n",
    ));
    let platform = "darwin/ppc64le";
    let extra = ["--platform", platform, "--build-arg", "TARGETOS=freebsd"];
    let out = case.build_into("out", &extra);
    assert_eq!(read(&out, "platform"), platform);
    assert_eq!(read(&out, "os"), "freebsd");
}

// ---- kiln differences found while porting ----

// `--check` resolves the stages as the build does: a stage a
// `--build-context` replaces is not built, so what it would read is not
// checked (here a `--from` of a later stage, an error when it is built).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn check_honours_build_context_replacements() {
    let case = Case::new("check-replaced");
    case.dockerfile(concat!(
        "FROM BASE AS deps\nCOPY --from=later /x /dep\nFROM scratch AS later\n",
        "FROM scratch\nCOPY --from=deps /dep /dep\n",
    ));
    let dir = case.path("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("dep"), "from the context\n").unwrap();
    let c = context("deps", dir.to_str().unwrap());
    let out = case.build_into("out", &args(&c));
    assert_eq!(read(&out, "dep"), "from the context\n", "the build");
    let ctx = case.ctx();
    let check = [
        &["build", "--check"],
        &args(&c)[..],
        &[ctx.to_str().unwrap()],
    ]
    .concat();
    let out = case.kiln(&check);
    let log = support::text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("target stage-2 builds 1 of them"), "{log}");
}
