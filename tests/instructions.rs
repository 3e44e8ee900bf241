//! Instruction semantics end to end, rootless: heredocs, SHELL and the
//! config instructions, ADD's archive unpacking, .dockerignore and COPY's
//! path rules, named build contexts. Run by scripts/test-build.sh.

mod support;

use std::fs;

use support::{podman_run, text, tool, Case};

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerignore_hides_files_and_copy_follows_docker_rules() {
    let case = Case::new("ignore");
    case.dockerfile(
        "FROM BASE\nWORKDIR /app\nCOPY . .\nCOPY *.txt /txt/\nCOPY sub /flat\nCOPY --chown=builder:builder --chmod=0640 one.txt /owned\n",
    );
    case.file(
        ".dockerignore",
        "*.log\nsecret/\n!secret/public\n**/*.tmp\n",
    );
    case.file("one.txt", "1");
    case.file("two.txt", "2");
    case.file("debug.log", "no");
    case.file("secret/key", "no");
    case.file("secret/public", "yes");
    case.file("sub/deep/x.tmp", "no");
    case.file("sub/deep/y", "y");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let app = out.join("app");
    assert!(app.join("one.txt").is_file() && app.join("Dockerfile").is_file());
    assert!(!app.join("debug.log").exists(), ".log is ignored");
    assert!(!app.join("secret/key").exists());
    assert_eq!(
        fs::read_to_string(app.join("secret/public")).unwrap(),
        "yes",
        "! re-includes"
    );
    assert!(!app.join("sub/deep/x.tmp").exists() && app.join("sub/deep/y").is_file());
    assert!(out.join("txt/one.txt").is_file() && out.join("txt/two.txt").is_file());
    assert!(
        out.join("flat/deep/y").is_file(),
        "a directory source copies its contents"
    );
    // --chown by name from the image's passwd/group, --chmod; checked in
    // the image (the local export hands files to the calling user).
    case.dockerfile("FROM BASE\nCOPY --chown=builder:builder --chmod=0640 one.txt /owned\n");
    let archive = case.path("owned.tar");
    case.build(&[
        "-t",
        "owned",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let said = podman_run(
        &archive,
        "localhost/owned:latest",
        &["stat", "-c", "%u:%g %a", "/owned"],
    );
    assert_eq!(said, "1000:1000 640\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_unpacks_local_archives_and_copy_does_not() {
    let case = Case::new("add");
    let payload = case.path("payload");
    fs::create_dir_all(payload.join("pkg/bin")).unwrap();
    fs::write(payload.join("pkg/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    for (name, flag) in [("pkg.tar", ""), ("pkg.tar.gz", "z"), ("pkg.tar.xz", "J")] {
        tool(
            "tar",
            &[
                &format!("-c{flag}f"),
                case.ctx().join(name).to_str().unwrap(),
                "-C",
                payload.to_str().unwrap(),
                "pkg",
            ],
        );
    }
    case.file("plain.txt", "not an archive\n");
    case.dockerfile(
        "FROM BASE\nADD pkg.tar /t1/\nADD pkg.tar.gz /t2\nADD pkg.tar.xz /t3/\nADD plain.txt /t4/\nCOPY pkg.tar.gz /t5/\nADD --unpack=false pkg.tar /t6/\n",
    );
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    for t in ["t1", "t2", "t3"] {
        assert_eq!(
            fs::read_to_string(out.join(t).join("pkg/bin/tool")).unwrap(),
            "#!/bin/sh\necho tool\n",
            "{t}"
        );
    }
    assert!(out.join("t4/plain.txt").is_file());
    assert!(out.join("t5/pkg.tar.gz").is_file(), "COPY never unpacks");
    assert!(out.join("t6/pkg.tar").is_file(), "--unpack=false");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn named_build_contexts_feed_from_and_copy_from() {
    let case = Case::new("contexts");
    let extra = case.path("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(extra.join("data.txt"), "from a named dir\n").unwrap();
    let layout = std::env::var("KILN_TEST_BASE").unwrap();
    case.dockerfile("FROM base\nCOPY --from=files data.txt /data.txt\nRUN cat /data.txt > /seen\n");
    let out = case.path("out");
    case.build(&[
        "--build-context",
        &format!("base=oci-layout://{layout}:latest"),
        "--build-context",
        &format!("files={}", extra.display()),
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "from a named dir\n"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn heredocs_shell_and_the_config_instructions() {
    let case = Case::new("config");
    fs::write(
        case.ctx().join("custom.Dockerfile"),
        format!(
            "FROM {}\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN <<EOF\necho from a heredoc > /heredoc\nEOF\n\
             COPY <<EOF /etc/motd\nhello $WHO\nEOF\n\
             ENV WHO=world\nWORKDIR /srv\nEXPOSE 8080 53/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\n\
             HEALTHCHECK --interval=30s --retries=2 CMD true\nUSER 65534:65534\nLABEL a=b \"c d\"=e\n\
             ENTRYPOINT [\"sh\", \"-c\"]\nCMD [\"cat /heredoc; id -u; pwd\"]\n",
            support::base()
        ),
    )
    .unwrap();
    // `<Dockerfile>.dockerignore` beside a custom Dockerfile wins.
    fs::write(case.ctx().join("custom.Dockerfile.dockerignore"), "*\n").unwrap();
    let archive = case.path("cfg.tar");
    let df = case.ctx().join("custom.Dockerfile");
    case.build(&[
        "-f",
        df.to_str().unwrap(),
        "-t",
        "cfg",
        "--label",
        "from=cli",
        "-o",
        &format!("type=docker,dest={}", archive.display()),
    ]);
    let json: serde_json::Value =
        serde_json::from_slice(&case.kiln(&["inspect", "cfg"]).stdout).unwrap();
    let c = &json["Config"];
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "65534:65534");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert!(
        c["ExposedPorts"]["8080/tcp"].is_object() && c["ExposedPorts"]["53/udp"].is_object(),
        "{c}"
    );
    assert!(c["Volumes"]["/data"].is_object(), "{c}");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(c["Labels"]["c d"], "e");
    assert_eq!(c["Labels"]["from"], "cli");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert!(c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "WHO=world"));
    let history = json["History"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["created_by"].as_str().unwrap_or("").starts_with("EXPOSE")),
        "{history:?}"
    );
    let said = podman_run(&archive, "localhost/cfg:latest", &[]);
    assert_eq!(said, "from a heredoc\n65534\n/srv\n");
    // COPY heredocs expand with the ENV in effect at that line: none yet.
    let motd = podman_run(&archive, "localhost/cfg:latest", &["cat /etc/motd"]);
    assert_eq!(motd, "hello \n");
    let out = case.kiln(&[
        "build",
        "--pull=sometimes",
        "-f",
        df.to_str().unwrap(),
        case.ctx().to_str().unwrap(),
    ]);
    assert!(!out.status.success() && text(&out).contains("use always, missing or never"));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_a_stage_links_unchanged_files_and_keeps_them_apart() {
    let case = Case::new("share");
    case.dockerfile(
        r#"FROM BASE AS builder
RUN mkdir -p /data/sub && echo one > /data/f && ln /data/f /data/f-link \
 && echo two > /data/sub/g && chown 1000:1000 /data/sub/g && chmod 4750 /data/sub/g \
 && touch -d '2001-02-03 04:05:06' /data/sub
FROM BASE
RUN echo base > /etc/replaced
COPY --from=builder /data /copy
COPY --from=builder /data/f /etc/replaced
COPY --from=builder --chmod=600 /data/f /chmodded
RUN stat -c %h /copy/sub/g > /links && echo changed >> /copy/f
COPY --from=builder /data/f /builder-f
"#,
    );
    let (archive, _) = case.build_image("share", &[]);
    let said = support::run_sh(
        &archive,
        "share",
        "cat /copy/f /copy/f-link /copy/sub/g /etc/replaced /chmodded /builder-f /links; \
         stat -c '%n %u:%g %a' /copy/sub/g /chmodded /etc/replaced; stat -c '%n %Y' /copy/sub",
    );
    assert_eq!(
        said,
        "one\nchanged\none\ntwo\none\none\none\n\
         2\n\
         /copy/sub/g 1000:1000 4750\n/chmodded 0:0 600\n/etc/replaced 0:0 644\n\
         /copy/sub 981173106\n",
        "contents, owners, modes and the directory's mtime as copied; a later \
         write to a copy leaves the builder's file alone; the copy shares the \
         builder's inode while kiln builds (2 links)"
    );

    // SOURCE_DATE_EPOCH clamps mtimes in the new layer on disk: a file
    // newer than the epoch is copied, so the image it came from keeps its
    // mtime.
    case.dockerfile("FROM BASE\nCOPY --from=localhost/share /copy/sub/g /g\n");
    case.build(&["--build-arg", "SOURCE_DATE_EPOCH=1000000000"]);
    case.dockerfile("FROM localhost/share\nRUN stat -c %Y /copy/sub/g > /m\n");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let mtime = fs::read_to_string(out.join("m")).unwrap();
    assert_ne!(mtime.trim(), "1000000000", "the image's file was clamped");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_from_reads_a_stage_while_its_last_layer_is_hashed_and_from_waits() {
    let case = Case::new("early");
    // `one` and `two` differ in their keys, not in their layers: the second
    // one hashed is a duplicate that the final stage may have mounted.
    case.dockerfile(
        r#"FROM BASE AS big
RUN mkdir /big && head -c 268435456 /dev/zero > /big/zero && echo big > /big/id
FROM BASE AS one
RUN mkdir /d && echo same > /d/f && touch -d @1000000000 /d/f /d
FROM BASE AS two
RUN mkdir /d; echo same > /d/f; touch -d @1000000000 /d/f /d
FROM big AS child
COPY --from=big /big/id /child-id
FROM BASE
COPY --from=big /big/id /big-id
COPY --from=one /d /one
COPY --from=two /d /two
RUN cat /big-id /one/f /two/f > /said
"#,
    );
    let (archive, out) = case.build_image("early", &["--jobs", "2"]);
    let line_of = |needle: &str| {
        out.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{out}"))
    };
    let run = &out.lines().nth(line_of("[big 2/2] RUN")).unwrap();
    let id = run.split_whitespace().next().unwrap();
    assert!(
        line_of("[stage-4 2/5] COPY --from=big") < line_of(&format!("{id} DONE")),
        "the final stage starts while big's 256 MiB layer is hashed:\n{out}"
    );
    let said = support::run_sh(&archive, "early", "cat /said");
    assert_eq!(said, "big\nsame\nsame\n");

    // A stage built FROM another waits for it to be done, early view or
    // not (its image config lists that stage's layers).
    let (archive, _) =
        case.build_image("child", &["--jobs", "2", "--target", "child", "--no-cache"]);
    let said = support::run_sh(&archive, "child", "cat /child-id; stat -c %s /big/zero");
    assert_eq!(said, "big\n268435456\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_steps_get_dockers_seccomp_profile_unless_told_otherwise() {
    let case = Case::new("seccomp");
    let ctx = case.ctx();
    let ctx = ctx.to_str().unwrap();
    // Ordinary work passes the default filter; a nested user namespace
    // does not.
    case.dockerfile(
        "FROM BASE\nRUN touch /f && chown 1000:1000 /f && chmod 4755 /f && stat -c %u:%g:%a /f\n\
         RUN unshare -U true && unshare -r true\n",
    );
    let fails = |extra: &[&str]| {
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        args.push(ctx);
        let out = case.kiln(&args);
        let log = text(&out);
        assert!(!out.status.success(), "{log}");
        log
    };
    let log = fails(&[]);
    assert!(log.contains("Dockerfile:3"), "{log}");
    assert!(log.contains("Operation not permitted"), "{log}");
    assert!(
        log.contains("1000:1000:4755"),
        "chown to a subordinate id works: {log}"
    );

    case.build(&["--security-opt", "seccomp=unconfined"]);
    // The unconfined result is not a cache hit for a confined build.
    let log = fails(&[]);
    assert!(log.contains("Operation not permitted"), "{log}");

    // A profile in Docker's JSON format, and no_new_privs on request.
    let profile = case.path("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    case.dockerfile("FROM BASE\nRUN unshare -U true\nRUN grep 'NoNewPrivs:.1' /proc/self/status\n");
    let sec = ["--security-opt", opt.as_str()];
    let nnp = ["--security-opt", "no-new-privileges"];
    let log = fails(&sec);
    assert!(
        log.contains("Dockerfile:3"),
        "nested userns allowed, NNP off: {log}"
    );
    case.build(&[sec[0], sec[1], nnp[0], nnp[1]]);
    case.dockerfile("FROM BASE\nRUN mkdir /d\n");
    let log = fails(&sec);
    assert!(
        log.contains("Permission denied"),
        "errnoRet 13 (EACCES): {log}"
    );

    for bad in [
        "apparmor=unconfined",
        "seccomp=/nonexistent.json",
        "nonsense",
    ] {
        let log = fails(&["--security-opt", bad]);
        assert!(log.contains(&format!("--security-opt {bad}")), "{log}");
    }
}

// BuildKit: testOnBuildInheritedStageRun, testOnBuildNewDeps, testOnBuildHeredoc
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn onbuild_of_a_stage_fires_in_the_stages_built_from_it() {
    let case = Case::new("onbuild-stage");
    case.dockerfile(concat!(
        "FROM BASE AS src\nRUN echo data > /data\n",
        "FROM BASE AS parent\nONBUILD COPY --from=src /data /copied\n",
        "ONBUILD RUN <<EOF\necho heredoc > /hd\nEOF\n",
        "FROM parent\nRUN cat /copied /hd > /seen\n",
    ));
    let out = case.path("out");
    case.build(&[
        "-t",
        "child",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "data\nheredoc\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_slice(&case.kiln(&["inspect", "child"]).stdout).unwrap();
    assert!(
        inspect["Config"]["OnBuild"].is_null(),
        "the triggers ran and are not inherited: {inspect}"
    );
}

// BuildKit: testOnBuildNamedContext (a base image's trigger reads a stage
// of the child's Dockerfile)
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn onbuild_copy_from_in_a_base_image_reads_the_childs_stage() {
    let case = Case::new("onbuild-image");
    case.dockerfile("FROM BASE\nONBUILD COPY --from=assets /a /a\n");
    case.build(&["-t", "parent"]);
    // `assets` is also read by `user`, whose end would release it if the
    // trigger's read were not counted.
    case.dockerfile(concat!(
        "FROM BASE AS assets\nRUN echo asset > /a\n",
        "FROM assets AS user\nRUN cp /a /u\n",
        "FROM parent\nCOPY --from=user /u /u\nRUN cat /a /u > /seen\n",
    ));
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "asset\nasset\n"
    );
}

// BuildKit: --no-cache also ignores cache mounts (moby/buildkit#4250,
// #5306): the build starts them empty; its later steps share the new one.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn no_cache_starts_cache_mounts_empty() {
    let case = Case::new("no-cache-mounts");
    case.dockerfile(concat!(
        "FROM BASE\n",
        "RUN --mount=type=cache,target=/c ls /c > /first && touch /c/made\n",
        "RUN --mount=type=cache,target=/c ls /c > /second\n",
    ));
    case.build(&[]);
    let out = case.path("out");
    case.build(&[
        "--no-cache",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(fs::read_to_string(out.join("first")).unwrap(), "", "fresh");
    assert_eq!(fs::read_to_string(out.join("second")).unwrap(), "made\n");
    // A later build (a new step, so it runs) finds what that one made.
    case.dockerfile("FROM BASE\nRUN --mount=type=cache,target=/c ls /c > /third\n");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_to_string(out.join("third")).unwrap(), "made\n");
}

// BuildKit: testNamedContextOverride-like (a named context replaces the
// stage of that name, for FROM and COPY --from).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_build_context_replaces_the_stage_of_its_name() {
    let case = Case::new("context-replaces");
    let dir = case.path("deps");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("dep"), "from the context\n").unwrap();
    let layout = std::env::var("KILN_TEST_BASE").unwrap();
    case.dockerfile(concat!(
        "FROM scratch AS base\n",
        "FROM BASE AS deps\nRUN echo built > /dep\n",
        "FROM base\nCOPY --from=deps /dep /dep\nRUN cat /dep > /seen\n",
    ));
    let out = case.path("out");
    case.build(&[
        "--build-context",
        &format!("deps={}", dir.display()),
        "--build-context",
        &format!("base=oci-layout://{layout}:latest"),
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "from the context\n",
        "the stage deps is not built, nor base's scratch (RUN needs a shell)"
    );
}
