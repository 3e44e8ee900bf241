//! `RUN --mount` and `RUN --network` end to end, rootless: bind (context,
//! stage, read-only, rw), cache, tmpfs and secret mounts, proven with
//! `podman run` of the result and by reading the exported layers. Run by
//! scripts/test-build.sh.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{run_sh, text, tool, Case};

/// The layer count of a stored image.
fn layers(case: &Case, name: &str) -> usize {
    let json: serde_json::Value =
        serde_json::from_slice(&case.kiln(&["inspect", name]).stdout).unwrap();
    json["RootFS"]["diff_ids"].as_array().unwrap().len()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn bind_mounts_are_read_only_rw_writes_vanish_and_stages_mount_too() {
    let case = Case::new("bind");
    case.file("data.txt", "ctx v1\n");
    case.file("other.txt", "not in sub\n");
    case.file("sub/file", "in sub\n");
    case.file("hidden.txt", "ignored\n");
    case.file(".dockerignore", "hidden.txt\n");
    case.dockerfile(
        "FROM BASE AS src\nRUN mkdir /out && echo from-stage > /out/made\n\
         FROM BASE\n\
         RUN --mount=type=bind,from=src,source=/out,target=/tmp/in cat /tmp/in/made > /stage && \
         (touch /tmp/in/x 2>/dev/null && echo WROTE || echo read-only) >> /stage\n\
         RUN --mount=type=bind,source=sub,target=/w,rw echo changed > /w/file && touch /w/extra && \
         cat /w/file > /rw\n\
         RUN --mount=source=sub,target=/w2 cat /w2/file > /after-rw; ls /w2 >> /after-rw\n\
         RUN --mount=source=data.txt,target=/d/data.txt cat /d/data.txt > /data-seen\n\
         RUN --mount=target=/ctx cat /ctx/data.txt > /seen && \
         (touch /ctx/new 2>/dev/null && echo WROTE || echo read-only) >> /seen && \
         (test -e /ctx/hidden.txt && echo VISIBLE || echo hidden) >> /seen\n\
         RUN --mount=source=data.txt,target=/one.txt,rw echo x >> /one.txt\n",
    );
    let (archive, _) = case.build_image("bind", &[]);
    let said = run_sh(
        &archive,
        "bind",
        "cat /stage /rw /after-rw /data-seen /seen; \
         ls -d /ctx /tmp/in /w /w2 /d /one.txt 2>&1 | wc -l; ls -A /tmp",
    );
    assert_eq!(
        said,
        "from-stage\nread-only\nchanged\nin sub\nfile\nctx v1\nctx v1\nread-only\nhidden\n6\n",
        "no mount point is left in the image, /tmp stays empty"
    );
    assert_eq!(
        fs::read_to_string(case.ctx().join("sub/file")).unwrap(),
        "in sub\n"
    );
    assert!(!case.ctx().join("sub/extra").exists() && !case.ctx().join("new").exists());
    assert_eq!(
        fs::read_to_string(case.ctx().join("data.txt")).unwrap(),
        "ctx v1\n"
    );
    // base + five RUNs; the last writes only into its rw mount: no layer.
    assert_eq!(layers(&case, "bind"), 6);

    // What a step mounts is in its key, and only that: an ignored file
    // changes nothing, a file outside sub/ reruns only the whole-context
    // mount (and what follows), data.txt also the step mounting it.
    let rebuild = |name: &str, content: &str| {
        case.file(name, content);
        case.build(&["-t", "bind"]).matches("CACHED").count()
    };
    assert_eq!(rebuild("hidden.txt", "still ignored\n"), 7);
    assert_eq!(rebuild("other.txt", "changed\n"), 5);
    assert_eq!(rebuild("data.txt", "ctx v2\n"), 4);
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_to_string(out.join("data-seen")).unwrap(),
        "ctx v2\n"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn cache_mounts_persist_across_builds_and_stay_out_of_the_image() {
    let case = Case::new("cache");
    case.dockerfile(
        "FROM BASE AS seed\nRUN mkdir /out && echo seed > /out/s\n\
         FROM BASE\n\
         RUN --mount=type=cache,target=/root/.cache echo run >> /root/.cache/log && \
         cat /root/.cache/log > /seen\n\
         RUN --mount=type=cache,target=/var/c,uid=1000,gid=1000,mode=0700,sharing=locked \
         stat -c '%u:%g %a' /var/c > /owner\n\
         RUN --mount=type=cache,id=../../x,target=/c,sharing=private echo escaped > /c/marker\n\
         RUN --mount=type=cache,id=seeded,target=/s,from=seed,source=/out,ro cat /s/s > /seeded && \
         (touch /s/x 2>/dev/null && echo WROTE || echo read-only) >> /seeded\n",
    );
    let (archive, _) = case.build_image("cache", &[]);
    assert_eq!(
        run_sh(&archive, "cache", "cat /seen /owner /seeded"),
        "run\n1000:1000 700\nseed\nread-only\n",
        "a cache with from= starts as a copy of that dir"
    );
    let (archive, _) = case.build_image("cache", &["--no-cache"]);
    assert_eq!(
        run_sh(
            &archive,
            "cache",
            "cat /seen; find /root /var -mindepth 1; test -e /c || echo no-c"
        ),
        "run\nno-c\n",
        "--no-cache starts the cache anew, as BuildKit's; no cache dir in the image"
    );
    // base + /seen + /owner + /seeded; the marker step made no layer.
    assert_eq!(layers(&case, "cache"), 4);
    // id=../../x is hashed: the marker is inside the store's cache root.
    let root = case.store().join("cachemounts");
    let found: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("data/marker"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(fs::read_to_string(&found[0]).unwrap(), "escaped\n");
    assert!(!case.dir.join("x").exists() && !case.store().join("x").exists());
    // `prune --all` empties the cache mounts as well.
    let pruned = text(&case.kiln(&["prune", "--all"]));
    assert!(pruned.contains(" 4 cache mount(s)"), "{pruned}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn locked_cache_mounts_take_turns_across_parallel_stages() {
    let case = Case::new("locked");
    let step = |name: &str| {
        format!(
            "FROM BASE AS {name}\n\
             RUN --mount=type=cache,id=l,target=/c,sharing=locked \
             (test -e /c/busy && echo OVERLAP || true) > /r; touch /c/busy; sleep 1; \
             rm /c/busy; echo {name} >> /c/order\n"
        )
    };
    case.dockerfile(&format!(
        "{}{}FROM BASE\nCOPY --from=a /r /ra\nCOPY --from=b /r /rb\n\
         RUN --mount=type=cache,id=l,target=/c sort /c/order > /order\n",
        step("a"),
        step("b")
    ));
    let (archive, _) = case.build_image("locked", &["--jobs", "2"]);
    assert_eq!(
        run_sh(&archive, "locked", "cat /ra /rb /order"),
        "a\nb\n",
        "neither step saw the other one's busy marker"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn tmpfs_mounts_leave_nothing() {
    let case = Case::new("tmpfs");
    case.dockerfile(
        "FROM BASE\n\
         RUN --mount=type=tmpfs,target=/scratch/t,size=1m echo x > /scratch/t/f && \
         grep -c ' /scratch/t tmpfs ' /proc/mounts > /tmp/seen-in-step || true\n\
         RUN --mount=type=tmpfs,target=/tmp/t echo y > /tmp/t/f\n",
    );
    let (archive, _) = case.build_image("tmpfs", &[]);
    assert_eq!(
        run_sh(
            &archive,
            "tmpfs",
            "cat /tmp/seen-in-step; test -e /scratch || echo no-scratch; ls -A /tmp"
        ),
        "1\nno-scratch\nseen-in-step\n"
    );
    assert_eq!(layers(&case, "tmpfs"), 2, "the second RUN made no layer");
}

/// Whether any file of the image archive (layers decompressed) holds
/// `needle`.
fn archive_contains(case: &Case, archive: &Path, needle: &str) -> bool {
    let dir = case.path("unpacked");
    fs::create_dir_all(&dir).unwrap();
    tool(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
        ],
    );
    let mut files = vec![dir.clone()];
    let mut hit = false;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = fs::read(&p).unwrap();
        let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
            Command::new("gzip")
                .args(["-dc", p.to_str().unwrap()])
                .stderr(Stdio::null())
                .output()
                .unwrap()
                .stdout
        } else {
            bytes
        };
        hit |= plain.windows(needle.len()).any(|w| w == needle.as_bytes());
    }
    hit
}

/// Every entry of every layer of a docker archive, without a leading `./`.
fn layer_entries(case: &Case, archive: &Path) -> Vec<String> {
    let dir = case.path("layers");
    fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    tool("tar", &["-xf", archive.to_str().unwrap(), "-C", d]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut entries = Vec::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let path = dir.join(layer.as_str().unwrap());
        let listing = tool("tar", &["-tf", path.to_str().unwrap()]);
        entries.extend(
            listing
                .lines()
                .map(|l| l.trim_start_matches("./").to_string()),
        );
    }
    entries
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn secrets_are_readable_in_the_step_and_in_no_layer() {
    let case = Case::new("secret");
    let secret = case.path("token");
    fs::write(&secret, "TOPSECRET-4711").unwrap();
    case.dockerfile(
        "FROM BASE\n\
         RUN --mount=type=secret,id=tok cat /run/secrets/tok > /tmp/copy && \
         wc -c < /run/secrets/tok > /len && stat -c '%a %u' /run/secrets/tok >> /len && \
         (echo x > /run/secrets/tok 2>/dev/null && echo WROTE || echo read-only) >> /len && rm /tmp/copy\n\
         RUN --mount=type=secret,id=tok,env=TOKEN case $TOKEN in TOP*4711) echo env-ok > /env;; esac && \
         (test -e /run/secrets/tok && echo FILE || echo env-only) >> /env\n\
         RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0444,uid=1000 stat -c '%a %u' /etc/tok > /perm\n\
         RUN --mount=type=secret,id=fromenv cat /run/secrets/fromenv > /dev/null && echo env-secret > /fromenv\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /skipped\n",
    );
    let archive = case.path("secret.tar");
    let out = Command::new(support::kiln_bin())
        .arg("--root")
        .arg(case.store())
        .args([
            "build",
            "-t",
            "secret",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "--secret",
            "id=fromenv,env=KILN_TEST_SECRET",
            "-o",
            &format!("type=docker,dest={}", archive.display()),
        ])
        .arg(case.ctx())
        .env("KILN_TEST_SECRET", "ENVSECRET-0815")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("TOPSECRET") && !log.contains("ENVSECRET"),
        "{log}"
    );
    let said = run_sh(
        &archive,
        "secret",
        "cat /len /env /perm /fromenv /skipped; test -e /etc/tok || echo no-tok",
    );
    assert_eq!(
        said,
        "14\n400 0\nread-only\nenv-ok\nenv-only\n444 1000\nenv-secret\nskipped\nno-tok\n"
    );
    // podman makes /run in every container: the layers must not have it.
    let entries = layer_entries(&case, &archive);
    assert!(
        !entries
            .iter()
            .any(|e| e.starts_with("run") || e.starts_with("etc/tok") || e.starts_with("tmp/copy")),
        "{entries:?}"
    );
    assert!(!archive_contains(&case, &archive, "TOPSECRET"));
    assert!(!archive_contains(&case, &archive, "ENVSECRET"));
    assert!(!text(&case.kiln(&["inspect", "secret"])).contains("SECRET-"));

    // required=true without the secret fails, naming it.
    case.dockerfile(
        "FROM BASE\nRUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok\n",
    );
    let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("secret tok: not found"), "{log}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn network_none_has_only_loopback() {
    let case = Case::new("network");
    case.dockerfile(
        "FROM BASE\n\
         RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /none\n\
         RUN --network=default cat /proc/net/dev | wc -l > /default\n\
         RUN --security=sandbox true\n",
    );
    let (archive, _) = case.build_image("network", &[]);
    let said = run_sh(&archive, "network", "cat /none; cat /default");
    let mut lines = said.lines();
    assert_eq!(lines.next(), Some("lo"), "{said}");
    let default: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(default >= 3, "the host's network has lo at least: {said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_mistakes_are_clear_errors() {
    let case = Case::new("mistakes");
    case.file("present", "x\n");
    case.file(".dockerignore", "ignored\n");
    case.file("ignored", "x\n");
    for (dockerfile, want) in [
        (
            "RUN --mount=type=ssh,required=true true",
            "pass --ssh default",
        ),
        (
            "RUN --mount=source=missing,target=/m true",
            "/missing: not found in the build context",
        ),
        (
            "RUN --mount=source=ignored,target=/m true",
            "excluded by .dockerignore",
        ),
        (
            "RUN --mount=type=bind,target=/ true",
            "invalid mount target",
        ),
        (
            "RUN --mount=type=cache,target=/c,sharing=sometimes true",
            "sharing",
        ),
        (
            "RUN --mount=type=bind,from=oci:/nonexistent/dir,target=/m true",
            "/nonexistent/dir",
        ),
        (
            "RUN --mount=type=tmpfs,target=/t,size=lots true",
            "invalid size",
        ),
        ("RUN --security=insecure true", "not supported"),
        ("RUN --network=bridge true", "unsupported network mode"),
    ] {
        case.dockerfile(&format!("FROM BASE\n{dockerfile}\n"));
        let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
        let log = text(&out);
        assert!(!out.status.success(), "{dockerfile}: {log}");
        assert!(log.contains(want), "{dockerfile}: want {want:?} in\n{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
}
