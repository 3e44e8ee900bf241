//! Pull and push against real registries (Debian's docker-registry on
//! 127.0.0.1, started per test), run as an unprivileged user by
//! scripts/test-build.sh. Results are checked with skopeo and podman.

mod support;

use std::process::Command;

use sha2::{Digest as _, Sha256};
use support::registry::{base64, front, mirror_conf, Front, TestRegistry};
use support::{fails, host_arch, text, tool, Case};

fn ok(out: &std::process::Output) -> String {
    let t = text(out);
    assert!(out.status.success(), "kiln failed:\n{t}");
    t
}

/// The image ID `kiln build -q` or `kiln pull` printed on stdout.
fn id(out: &std::process::Output) -> String {
    assert!(out.status.success(), "kiln failed:\n{}", text(out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn push_then_pull_by_tag_and_digest() {
    let case = Case::new("push");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let name = format!("{}/kiln/app:1", reg.host());
    case.dockerfile("FROM BASE\nRUN echo pushed > /msg\nCMD [\"cat\", \"/msg\"]\n");
    let out = case.build(&["-t", &name, "-o", "type=registry", "--progress=plain"]);
    assert!(out.contains("pushing"), "{out}");

    let inspect: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{name}")],
    ))
    .unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    let digest = inspect["Digest"].as_str().unwrap().to_string();
    tool("podman", &["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(tool("podman", &["run", "--rm", &name]), "pushed\n");
    let _ = Command::new("podman").args(["rmi", "-f", &name]).output();

    // Another store pulls it: by tag in FROM, then by digest.
    let other = Case::new("pull");
    other.dockerfile(&format!("FROM {name}\nRUN test \"$(cat /msg)\" = pushed\n"));
    let out = other.build(&["--progress=plain"]);
    assert!(out.contains("downloaded"), "{out}");
    other.dockerfile(&format!(
        "FROM {}/kiln/app@{digest}\nRUN cat /msg\n",
        reg.host()
    ));
    let out = other.build(&["--progress=plain"]);
    assert!(
        !out.contains("downloaded"),
        "a stored image is not fetched again:\n{out}"
    );
    let again = ok(&other.kiln(&["pull", &name]));
    assert!(!again.contains("downloaded"), "{again}");

    // A named context may be a registry image: FROM, COPY --from and
    // RUN --mount from= all read it.
    let named = Case::new("named-image");
    named.dockerfile(
        "FROM app\nCOPY --from=app /msg /copied\n\
         RUN --mount=from=app,target=/m cat /m/msg > /mounted && \
         test \"$(cat /copied /mounted)\" = \"$(printf 'pushed\\npushed')\"\n",
    );
    named.build(&["--build-context", &format!("app=docker-image://{name}")]);

    // Pushing to a second repository mounts the blobs across.
    let copy = format!("{}/kiln/copy:2", reg.host());
    let out = ok(&other.kiln(&["push", &name, &copy]));
    assert!(out.contains("mounted from kiln/app"), "{out}");
    tool(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{copy}")],
    );

    let err = fails(&other.kiln(&["pull", &format!("{}/kiln/app:nope", reg.host())]));
    assert!(err.contains("manifest not found"), "{err}");
    let err = fails(&other.kiln(&["pull", &format!("{}/kiln/none:1", reg.host())]));
    assert!(err.contains("not found"), "{err}");
}

/// Writes an OCI index of the two named images (as amd64 and arm64) into
/// `dir`, named `multi`.
fn write_index(dir: &std::path::Path, amd64: &str, arm64: &str) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let find = |n: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == n)
            .unwrap_or_else(|| panic!("{n} not in {index}"))
            .clone()
    };
    let entry = |m: serde_json::Value, arch: &str| {
        serde_json::json!({
            "mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
            "platform": {"os": "linux", "architecture": arch}
        })
    };
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(find(arm64), "arm64"), entry(find(amd64), "amd64")]
    });
    let bytes = serde_json::to_vec(&list).unwrap();
    let hex = format!("{:x}", Sha256::digest(&bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"), "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_index_resolves_to_the_host_platform() {
    let case = Case::new("index");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let layout = case.path("layout");
    let layout_out = format!("type=oci,dest={},tar=false", layout.display());
    let mut ids = Vec::new();
    for arch in ["amd64", "arm64"] {
        case.dockerfile(&format!("FROM BASE\nRUN echo {arch} > /arch\n"));
        let ctx = case.ctx();
        let out = case.kiln(&[
            "build",
            "-q",
            "-t",
            arch,
            "-o",
            &layout_out,
            ctx.to_str().unwrap(),
        ]);
        ids.push(id(&out));
    }
    write_index(&layout, "localhost/amd64:latest", "localhost/arm64:latest");
    let multi = format!("{}/multi:1", reg.host());
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi", layout.display()),
            &format!("docker://{multi}"),
        ],
    );
    let puller = Case::new("index-pull");
    puller.dockerfile(&format!(
        "FROM {multi}\nRUN test \"$(cat /arch)\" = {}\n",
        host_arch()
    ));
    puller.build(&[]);
    let host = id(&puller.kiln(&["pull", "-q", &multi]));
    assert_eq!(host, ids[if host_arch() == "amd64" { 0 } else { 1 }]);
    let arm = id(&puller.kiln(&["pull", "-q", "--platform", "linux/arm64", &multi]));
    assert_eq!(arm, ids[1], "--platform linux/arm64 picks the arm64 image");
    let err = fails(&puller.kiln(&["pull", "--platform", "linux/s390x", &multi]));
    assert!(
        err.contains("no image for linux/s390x") && err.contains("linux/arm64, linux/amd64"),
        "{err}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn basic_auth_login_logout_and_docker_config() {
    let case = Case::new("basic");
    let reg = TestRegistry::start(&case.path("reg"), &[("alice", "s3cret")]);
    let auth = case.path("auth.json");
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().unwrap())];
    let name = format!("{}/private/app:1", reg.host());
    case.dockerfile("FROM BASE\nRUN echo private > /msg\n");
    case.build(&["-t", &name]);

    let err = fails(&case.kiln_env(&["push", &name], &env));
    assert!(
        err.contains("no credentials") && err.contains("kiln login"),
        "{err}"
    );
    let err = fails(&case.kiln_env(&["login", "-u", "alice", "-p", "wrong", &reg.host()], &env));
    assert!(err.contains("refused"), "{err}");
    assert!(!auth.exists(), "a refused login saves nothing");
    let out = ok(&case.kiln_env(&["login", "-u", "alice", "-p", "s3cret", &reg.host()], &env));
    assert!(out.contains("Login Succeeded"), "{out}");
    ok(&case.kiln_env(&["push", &name], &env));

    let puller = Case::new("basic-pull");
    let out = ok(&puller.kiln_env(&["pull", &name], &env));
    assert!(out.contains("downloaded"), "{out}");
    ok(&puller.kiln_env(&["logout", &reg.host()], &env));
    let err = fails(&puller.kiln_env(&["pull", "--quiet", &name], &env));
    assert!(
        err.contains("denied") && err.contains("kiln login"),
        "{err}"
    );

    // Docker's config file, as `docker login` leaves it.
    let home = case.path("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            base64(b"alice:s3cret")
        ),
    )
    .unwrap();
    let home_env = [
        ("HOME", home.to_str().unwrap()),
        ("REGISTRY_AUTH_FILE", ""),
        ("XDG_RUNTIME_DIR", ""),
    ];
    ok(&puller.kiln_env(&["pull", &name], &home_env));
    std::fs::write(
        home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            base64(b"alice:nope")
        ),
    )
    .unwrap();
    let err = fails(&puller.kiln_env(&["pull", &name], &home_env));
    assert!(
        err.contains("alice") && err.contains(".docker/config.json"),
        "{err}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn bearer_token_challenge() {
    let case = Case::new("bearer");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let fe = front(
        reg.port,
        Front::Bearer {
            user: "bob".into(),
            password: "hunter2".into(),
            token: "tok-1234".into(),
        },
    );
    case.dockerfile("FROM BASE\nRUN echo token > /msg\n");
    case.build(&[
        "-t",
        &format!("{}/t/app:1", reg.host()),
        "-o",
        "type=registry",
    ]);
    let via_front = format!("{}/t/app:1", fe.host());
    let auth = case.path("auth.json");
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().unwrap())];

    let puller = Case::new("bearer-pull");
    let err = fails(&puller.kiln_env(&["pull", &via_front], &env));
    assert!(
        err.contains("denied") && err.contains("no credentials"),
        "{err}"
    );
    let key = fe.host();
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#,
            base64(b"bob:wrong")
        ),
    )
    .unwrap();
    let err = fails(&puller.kiln_env(&["pull", &via_front], &env));
    assert!(
        err.contains("token server refused") && err.contains("bob"),
        "{err}"
    );
    let err = fails(&puller.kiln_env(&["login", "-u", "bob", "-p", "wrong", &key], &env));
    assert!(err.contains("refused"), "{err}");
    ok(&puller.kiln_env(&["login", "-u", "bob", "-p", "hunter2", &key], &env));
    puller.dockerfile(&format!(
        "FROM {via_front}\nRUN test \"$(cat /msg)\" = token\n"
    ));
    let out = puller.kiln_env(
        &["build", "--progress=plain", puller.ctx().to_str().unwrap()],
        &env,
    );
    ok(&out);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_mirror_serves_docker_hub_names() {
    let case = Case::new("mirror");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    case.dockerfile("FROM BASE\nRUN echo mirrored > /msg\n");
    case.build(&[
        "-t",
        &format!("{}/library/busybox:mirrored", reg.host()),
        "-o",
        "type=registry",
    ]);
    // The primary location does not resolve: only the mirror can answer.
    let conf = mirror_conf(&case.dir, "docker.io", "registry.invalid", &reg.host());
    let env = [("CONTAINERS_REGISTRIES_CONF", conf.to_str().unwrap())];
    let puller = Case::new("mirror-pull");
    puller.dockerfile("FROM busybox:mirrored\nRUN test \"$(cat /msg)\" = mirrored\n");
    let out = ok(&puller.kiln_env(
        &["build", "--progress=plain", puller.ctx().to_str().unwrap()],
        &env,
    ));
    assert!(out.contains(&format!("mirror {}", reg.host())), "{out}");
    let images = ok(&puller.kiln(&["images"]));
    assert!(
        images.contains("docker.io/library/busybox:mirrored"),
        "{images}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_corrupted_blob_stores_nothing() {
    let case = Case::new("corrupt");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let fe = front(reg.port, Front::CorruptBlobs);
    case.dockerfile("FROM BASE\nRUN echo data > /msg\n");
    case.build(&[
        "-t",
        &format!("{}/c/app:1", reg.host()),
        "-o",
        "type=registry",
    ]);
    let puller = Case::new("corrupt-pull");
    let err = fails(&puller.kiln(&["pull", &format!("{}/c/app:1", fe.host())]));
    assert!(
        err.contains("arrived with digest") && err.contains("nothing was stored"),
        "{err}"
    );
    let images = ok(&puller.kiln(&["images"]));
    assert_eq!(
        images.lines().count(),
        1,
        "no image after a failed pull:\n{images}"
    );
    // The same store pulls the intact image afterwards.
    ok(&puller.kiln(&["pull", &format!("{}/c/app:1", reg.host())]));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_registry_that_is_down_is_reported() {
    let case = Case::new("down");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fails(&case.kiln(&["pull", &format!("127.0.0.1:{port}/x:1")]));
    assert!(
        err.contains("unreachable (4 attempts)") && err.contains("refused"),
        "{err}"
    );
    case.dockerfile(&format!("FROM 127.0.0.1:{port}/x:1\n"));
    let err = fails(&case.kiln(&["build", "--pull=never", case.ctx().to_str().unwrap()]));
    assert!(err.contains("--pull=never"), "{err}");
}
