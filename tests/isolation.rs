//! `--isolation chroot`: builds where no namespace and no mount can be
//! made. kiln runs here in a user namespace the test makes with
//! `unshare` (root = the test user, 1..N = its subordinate ids, as in a
//! container with its own id range) and no mount namespace of its own, so
//! every mount kiln tried would fail with EPERM, as under Docker's default
//! seccomp profile; chroot(2) works there, as CAP_SYS_CHROOT does in
//! Docker's default capabilities. scripts/test-containers.sh runs the same
//! mode in a real docker-defaults container.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{fails, kiln_bin, text, Case};

/// A two-stage build touching what a layer diff must get right: a
/// deletion (a whiteout), a chown to a subordinate id, a RUN as USER, a
/// `.dockerignore`d context, WORKDIR, `COPY --from` with `--chown`,
/// `COPY --link` (a layer made beside the stage's rootfs dir), a
/// symlink, a write to /dev (mounted over in the namespace mode: never in
/// a layer; where chroot mode cannot make device nodes it is a plain file
/// there, left out of the layer the same). SOURCE_DATE_EPOCH makes the two modes' mtimes comparable.
const DOCKERFILE: &str = "\
FROM BASE AS build
RUN mkdir -p /out /home/app && echo hello > /out/greeting && chown 1000:1000 /home/app && rm -r /var
COPY . /out/ctx/
WORKDIR /work
USER 1000
RUN echo built > /home/app/w && id -u > /home/app/uid
FROM BASE
COPY --from=build /out /data
COPY --from=build --chown=2:2 /home/app /app
COPY --link a.txt /l/
RUN cat /data/greeting /app/w /l/a.txt >/dev/null && rm /etc/group && ln -s /data/greeting /g
";

/// The test user's first subordinate id range in `file` (start, count).
fn sub_range(file: &str) -> (String, String) {
    let user = std::env::var("USER").expect("USER");
    let text = std::fs::read_to_string(file).expect(file);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in {file}"));
    let f: Vec<&str> = line.split(':').collect();
    (f[1].to_string(), f[2].to_string())
}

/// `kiln --root STORE args…` as root of a fresh user namespace with the
/// test user's id range and nothing else: the locked-down container.
fn kiln_contained(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let (uid, uids) = sub_range("/etc/subuid");
    let (gid, gids) = sub_range("/etc/subgid");
    Command::new("unshare")
        .arg("--user")
        .arg("--map-root-user")
        .arg(format!("--map-users={uid},1,{uids}"))
        .arg(format!("--map-groups={gid},1,{gids}"))
        .arg(kiln_bin())
        .arg("--root")
        .arg(store)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs")
}

/// The image's layer diffIDs and its ID (the config's digest).
fn layers_and_id(inspect: &[u8]) -> (Vec<String>, String) {
    let v: serde_json::Value = serde_json::from_slice(inspect).expect("inspect prints JSON");
    let layers = v["RootFS"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (layers, v["Id"].as_str().expect("Id").to_string())
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn chroot_mode_builds_the_namespace_modes_image_without_any_mount() {
    let case = Case::new("iso-same");
    case.dockerfile(DOCKERFILE);
    case.file("a.txt", "aa\n");
    case.file("skip.log", "ignored\n");
    case.file(".dockerignore", "*.log\n");
    let ctx = case.ctx();
    let ctx = ctx.to_str().unwrap();
    let epoch = "--build-arg=SOURCE_DATE_EPOCH=1700000000";

    case.build(&["-t", "ns", epoch]);
    let ns = layers_and_id(&case.kiln(&["inspect", "ns"]).stdout);

    let store = case.path("store-chroot");
    let local = case.path("rootfs");
    let dest = format!("type=local,dest={}", local.display());
    let args = [
        "build",
        "--isolation",
        "chroot",
        "-t",
        "c",
        epoch,
        "-o",
        &dest,
        ctx,
    ];
    let out = kiln_contained(&store, &args, &[]);
    let log = text(&out);
    assert!(out.status.success(), "chroot build failed:\n{log}");
    // Said once per build, naming what is given up.
    assert_eq!(
        log.matches("WARNING: --isolation chroot").count(),
        1,
        "{log}"
    );
    assert!(log.contains("registry credentials"), "{log}");
    let inspect = kiln_contained(&store, &["inspect", "c"], &[]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    // Byte for byte: the same layers, and the same config (its digest).
    assert_eq!(
        layers_and_id(&inspect.stdout),
        ns,
        "the modes' images differ"
    );

    // What the steps did, exported without mounting anything.
    let read = |p: &str| std::fs::read_to_string(local.join(p)).unwrap_or_default();
    assert_eq!(read("data/greeting"), "hello\n");
    assert_eq!(read("data/ctx/a.txt"), "aa\n");
    assert!(!local.join("data/ctx/skip.log").exists(), ".dockerignore");
    assert_eq!(read("app/uid"), "1000\n", "RUN as USER 1000");
    assert!(
        !local.join("etc/group").exists(),
        "a deletion is a whiteout"
    );
    assert!(local.join("etc/passwd").exists());
    assert_eq!(
        std::fs::read_link(local.join("g")).unwrap(),
        Path::new("/data/greeting")
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn chroot_mode_refuses_what_needs_a_mount_and_names_the_mode() {
    let case = Case::new("iso-refused");
    let ctx = case.ctx();
    let ctx = ctx.to_str().unwrap();
    let store = case.path("store-chroot");
    for (line, says) in [
        (
            "RUN --mount=type=cache,target=/c true",
            "RUN --mount=type=cache,target=/c: --isolation chroot cannot mount",
        ),
        (
            "RUN --network=none true",
            "RUN --network=none: --isolation chroot cannot make a network namespace",
        ),
    ] {
        case.dockerfile(&format!("FROM BASE\nRUN true\n{line}\n"));
        // The environment variable alone chooses the mode.
        let out = kiln_contained(&store, &["build", ctx], &[("KILN_ISOLATION", "chroot")]);
        let err = fails(&out);
        assert!(err.contains("Dockerfile:3"), "{err}");
        assert!(err.contains(says), "{err}");
    }
    // The store is still usable: the same build without the line works.
    case.dockerfile("FROM BASE\nRUN true\n");
    let out = kiln_contained(&store, &["build", ctx], &[("BUILDAH_ISOLATION", "chroot")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn the_flag_wins_over_the_environment_and_chroot_needs_cap_sys_chroot_as_info_says() {
    let case = Case::new("iso-flag");
    case.dockerfile("FROM BASE\nRUN echo ran > /ran\n");
    let ctx = case.ctx();
    let ctx = ctx.to_str().unwrap();
    // The namespace mode, though the environment asks for chroot.
    let env = [
        ("KILN_ISOLATION", "chroot"),
        ("BUILDAH_ISOLATION", "chroot"),
    ];
    let out = case.kiln_env(&["build", "--isolation", "oci", ctx], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("--isolation chroot"), "{}", text(&out));
    // The test user holds no capability: chroot mode says what it needs.
    let err = fails(&case.kiln_env(&["build", ctx], &env));
    assert!(err.contains("needs CAP_SYS_CHROOT"), "{err}");
    let err = fails(&case.kiln(&["build", "--isolation", "jail", ctx]));
    assert!(err.contains("unknown isolation \"jail\""), "{err}");
    // `kiln info` says whether the mode can run here.
    let info = text(&case.kiln(&["info"]));
    assert!(
        info.contains("chroot isolation: not usable (CAP_SYS_CHROOT not held"),
        "{info}"
    );
    let info = text(&kiln_contained(&case.store(), &["info"], &[]));
    assert!(info.contains("chroot isolation: usable"), "{info}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn chroot_mode_runs_steps_where_setgroups_is_denied() {
    // A user namespace whose maps were written without newgidmap (buildah's
    // single-id fallback, `unshare -r`) refuses setgroups(2) for good.
    let case = Case::new("iso-single");
    case.dockerfile("FROM BASE\nRUN echo ran > /ran\n");
    let ctx = case.ctx();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user"])
        .arg(kiln_bin())
        .arg("--root")
        .arg(case.path("store-single"))
        .args(["build", "--isolation", "chroot", ctx.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs");
    assert!(out.status.success(), "{}", text(&out));
}
