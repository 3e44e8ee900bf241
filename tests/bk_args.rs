//! BuildKit's `dockerfile_args_test.go`, `dockerfile_heredoc_test.go` and
//! `dockerfile_onbuild_test.go`, ported to rootless kiln builds on the
//! busybox base (each test is named after the BuildKit one; images BuildKit
//! pushes to a registry are kept in kiln's store instead). Run by
//! scripts/test-build.sh as an unprivileged user.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use support::{base, read, Case};

/// The base image reference cut before its `busybox:latest`, so that a
/// Dockerfile can spell it `busy$a2` as BuildKit's tests spell `busybox`
/// (scripts/test-build.sh writes the image to a dir named busybox).
fn busy_prefix() -> String {
    base()
        .strip_suffix("busybox:latest")
        .expect("the base image's dir is named busybox")
        .to_string()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn global_arg() {
    let case = Case::new("global-arg");
    let image = base();
    let dir = image.strip_suffix(":latest").unwrap();
    case.dockerfile(&format!("ARG tag=nosuchtag\nFROM {dir}:${{tag}}\n"));
    case.build(&["--build-arg", "tag=latest"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn global_arg_errors() {
    let case = Case::new("global-arg-errors");
    case.dockerfile("ARG FOO=${FOO:?\"custom error\"}\nFROM BASE\n");
    let log = case.build_fails(&[]);
    assert!(log.contains("FOO: custom error"), "{log}");
    case.build(&["--build-arg", "FOO=bar"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn multi_args() {
    let case = Case::new("multi-args");
    case.dockerfile(&format!(
        concat!(
            "ARG a1=\"foo bar\" a2=box\nARG a3=\"$a2-foo\"\n",
            "FROM {}busy$a2:latest AS build\nARG a3 a4=\"123 456\" a1\n",
            "RUN echo -n \"$a1:$a3:$a4\" > /out\n",
            "FROM scratch\nCOPY --from=build /out .\n",
        ),
        busy_prefix()
    ));
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "out"), "foo bar:box-foo:123 456");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn quoted_meta_args() {
    let case = Case::new("quoted-meta-args");
    case.dockerfile(&format!(
        concat!(
            "ARG a1=\"box\"\nARG a2=\"$a1-foo\"\n",
            "FROM {}busy$a1:latest AS build\nARG a2\nARG a3=\"bar-$a2\"\n",
            "RUN echo -n $a3 > /out\n",
            "FROM scratch\nCOPY --from=build /out .\n",
        ),
        busy_prefix()
    ));
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "out"), "bar-box-foo");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn builtin_args() {
    let case = Case::new("builtin-args");
    case.dockerfile(concat!(
        "FROM BASE AS build\nARG FOO\nARG BAR\nARG BAZ=bazcontent\n",
        "RUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out\n",
        "FROM scratch\nCOPY --from=build /out /\n",
    ));
    let first = [
        "--build-arg",
        "FOO=foocontents",
        "--build-arg",
        "http_proxy=hpvalue",
        "--build-arg",
        "NO_PROXY=npvalue",
    ];
    let out = case.build_into("out1", &first);
    assert_eq!(
        read(&out, "out"),
        "hpvalue::npvalue::foocontents::::bazcontent"
    );
    // The proxy args are not part of the step's cache key: a new proxy
    // value reuses the step made with the old one.
    let proxy = [
        "--build-arg",
        "FOO=foocontents",
        "--build-arg",
        "http_proxy=hpvalue2",
    ];
    let out = case.build_into("out2", &proxy);
    assert_eq!(
        read(&out, "out"),
        "hpvalue::npvalue::foocontents::::bazcontent"
    );
    // A declared arg's value is.
    let changed = [
        "--build-arg",
        "FOO=foocontents2",
        "--build-arg",
        "http_proxy=hpvalue2",
    ];
    let out = case.build_into("out3", &changed);
    assert_eq!(read(&out, "out"), "hpvalue2::::foocontents2::::bazcontent");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn default_env_with_args() {
    let case = Case::new("default-env-args");
    case.dockerfile(&format!(
        concat!(
            "ARG image=idlebox\nFROM {}busy${{image#idle}}:latest AS build\nARG my_arg\n",
            "ENV my_arg \"my_arg=${{my_arg:-def_val}}\"\n",
            "ENV my_trimmed_arg \"${{my_arg%%e*}}\"\n",
            "COPY myscript.sh myscript.sh\nRUN ./myscript.sh $my_arg $my_trimmed_arg\n",
            "FROM scratch\nCOPY --from=build /out /out\n",
        ),
        busy_prefix()
    ));
    case.file(
        "myscript.sh",
        "#!/usr/bin/env sh\necho -n $my_arg $* > /out\n",
    );
    let script = case.ctx().join("myscript.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
    for (name, extra, want) in [
        ("nil", &[][..], "my_arg=def_val my_arg=def_val my_arg=d"),
        (
            "empty",
            &["--build-arg", "my_arg="][..],
            "my_arg=def_val my_arg=def_val my_arg=d",
        ),
        (
            "override",
            &["--build-arg", "my_arg=override"][..],
            "my_arg=override my_arg=override my_arg=ov",
        ),
    ] {
        let out = case.build_into(name, extra);
        assert_eq!(read(&out, "out"), want, "{name}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn empty_string_arg_in_env() {
    let case = Case::new("empty-arg-env");
    case.dockerfile(concat!(
        "FROM BASE AS build\nARG FOO\nARG BAR=\nRUN env > env.txt\n",
        "FROM scratch\nCOPY --from=build env.txt .\n",
    ));
    let out = case.build_into("out", &[]);
    let env = read(&out, "env.txt");
    assert!(env.lines().any(|l| l == "BAR="), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("FOO=")), "{env}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn env_empty_formatting() {
    let case = Case::new("env-formatting");
    case.dockerfile("FROM BASE AS build\nENV myenv foo%sbar\nRUN [ \"$myenv\" = 'foo%sbar' ]\n");
    case.build(&[]);
}

// ---- dockerfile_heredoc_test.go ----

// The busybox base has no adduser: the user is added by hand.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_heredoc() {
    let case = Case::new("copy-heredoc");
    case.dockerfile(concat!(
        "FROM BASE AS build\n",
        "RUN echo user:x:1001:1001::/home/user:/bin/sh >> /etc/passwd && echo user:x:1001: >> /etc/group\n",
        "WORKDIR /dest\n",
        "COPY <<EOF single\nsingle file\nEOF\n",
        "COPY <<EOF <<EOF2 double/\nfirst file\nEOF\nsecond file\nEOF2\n",
        "RUN mkdir -p /permfiles\n",
        "COPY --chmod=777 <<EOF /permfiles/all\ndummy content\nEOF\n",
        "COPY --chmod=0644 <<EOF /permfiles/rw\ndummy content\nEOF\n",
        "COPY --chown=user:user <<EOF /permfiles/owned\ndummy content\nEOF\n",
        "RUN stat -c \"%04a\" /permfiles/all >> perms && \\\n",
        "\tstat -c \"%04a\" /permfiles/rw >> perms && \\\n",
        "\tstat -c \"%U:%G\" /permfiles/owned >> perms\n",
        "FROM scratch\nCOPY --from=build /dest /\n",
    ));
    let out = case.build_into("out", &[]);
    for (file, want) in [
        ("single", "single file\n"),
        ("double/EOF", "first file\n"),
        ("double/EOF2", "second file\n"),
        ("perms", "0777\n0644\nuser:user\n"),
    ] {
        assert_eq!(read(&out, file), want, "{file}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_heredoc_special_symbols() {
    let case = Case::new("heredoc-symbols");
    case.dockerfile(concat!(
        "FROM scratch\n",
        "COPY <<EOF quotefile\n\"quotes in file\"\nEOF\n",
        "COPY <<EOF slashfile1\n\\\nEOF\n",
        "COPY <<EOF slashfile2\n\\\\\nEOF\n",
        "COPY <<EOF slashfile3\n\\$\nEOF\n",
        "COPY <<\"EOF\" rawslashfile1\n\\\nEOF\n",
        "COPY <<\"EOF\" rawslashfile2\n\\\\\nEOF\n",
        "COPY <<\"EOF\" rawslashfile3\n\\$\nEOF\n",
    ));
    let out = case.build_into("out", &[]);
    for (file, want) in [
        ("quotefile", "\"quotes in file\"\n"),
        ("slashfile1", "\n"),
        ("slashfile2", "\\\n"),
        ("slashfile3", "$\n"),
        ("rawslashfile1", "\\\n"),
        ("rawslashfile2", "\\\\\n"),
        ("rawslashfile3", "\\$\n"),
    ] {
        assert_eq!(read(&out, file), want, "{file}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_basic_heredoc() {
    let case = Case::new("run-heredoc");
    case.dockerfile(concat!(
        "FROM BASE AS build\nRUN <<EOF\necho \"i am\" >> /dest\nwhoami >> /dest\nEOF\n",
        "FROM scratch\nCOPY --from=build /dest /dest\n",
    ));
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "dest"), "i am\nroot\n");
}

// busybox's awk is /usr/bin/awk in the base image (BuildKit's: /bin/awk).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_fake_heredoc() {
    let case = Case::new("fake-heredoc");
    case.dockerfile(concat!(
        "FROM BASE AS build\nSHELL [\"/usr/bin/awk\"]\n",
        "RUN <<EOF\nBEGIN {\n\tprint \"foo\" > \"/dest\"\n}\nEOF\n",
        "FROM scratch\nCOPY --from=build /dest /dest\n",
    ));
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "dest"), "foo\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_shebang_heredoc() {
    let case = Case::new("shebang-heredoc");
    case.dockerfile(concat!(
        "FROM BASE AS build\nWORKDIR /dest\n",
        "RUN <<EOF\n#!/usr/bin/awk -f\nBEGIN {\n\tprint \"hello\" >> \"./out1\"\n",
        "\tprint \"world\" >> \"./out1\"\n}\nEOF\n",
        "RUN <<-EOF\n\t#!/usr/bin/awk -f\n\tBEGIN {\n\t\tprint \"hello\" >> \"./out2\"\n",
        "\t\tprint \"world\" >> \"./out2\"\n\t}\nEOF\n",
        "FROM scratch\nCOPY --from=build /dest /\n",
    ));
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "out1"), "hello\nworld\n");
    assert_eq!(read(&out, "out2"), "hello\nworld\n");
    // The script's mount point is in the step's /dev, not in its layer.
    let stage = case.build_into("stage", &["--target", "build"]);
    assert!(stage.join("dest/out1").is_file());
    assert!(!stage.join("dev/pipes").exists());
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_complex_heredoc() {
    let case = Case::new("complex-heredoc");
    case.dockerfile(concat!(
        "FROM BASE AS build\nWORKDIR /dest\n",
        "RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \\\n",
        "\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2\n",
        "hello WORLD\nEOF1\nHELLO world\nEOF2\n",
        "RUN <<EOF 3<<IN1 4<<IN2 awk -f -\nBEGIN {\n",
        "\twhile ((getline line < \"/proc/self/fd/3\") > 0)\n",
        "\t\tprint tolower(line) > \"./fd3\"\n",
        "\twhile ((getline line < \"/proc/self/fd/4\") > 0)\n",
        "\t\tprint toupper(line) > \"./fd4\"\n}\nEOF\n",
        "hello WORLD\nIN1\nHELLO world\nIN2\n",
        "FROM scratch\nCOPY --from=build /dest /\n",
    ));
    let out = case.build_into("out", &[]);
    for (file, want) in [
        ("out1", "hello world\n"),
        ("out2", "HELLO WORLD\n"),
        ("fd3", "hello world\n"),
        ("fd4", "HELLO WORLD\n"),
    ] {
        assert_eq!(read(&out, file), want, "{file}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn heredoc_indent() {
    let case = Case::new("heredoc-indent");
    case.dockerfile(concat!(
        "FROM BASE AS build\n",
        "COPY <<EOF /dest/foo-copy\n\tfoo\nEOF\n",
        "COPY <<-EOF /dest/bar-copy\n\tbar\nEOF\n",
        "RUN <<EOF\necho \"\n\tfoo\" > /dest/foo-run\nEOF\n",
        "RUN <<-EOF\necho \"\n\tbar\" > /dest/bar-run\nEOF\n",
        "RUN <<EOF\n#!/bin/sh\necho \"\n\tfoo\" > /dest/foo2-run\nEOF\n",
        "RUN <<-EOF\n#!/bin/sh\necho \"\n\tbar\" > /dest/bar2-run\nEOF\n",
        "RUN <<EOF sh > /dest/foo3-run\necho \"\n\tfoo\"\nEOF\n",
        "RUN <<-EOF sh > /dest/bar3-run\necho \"\n\tbar\"\nEOF\n",
        "FROM scratch\nCOPY --from=build /dest /\n",
    ));
    let out = case.build_into("out", &[]);
    for (file, want) in [
        ("foo-copy", "\tfoo\n"),
        ("foo-run", "\n\tfoo\n"),
        ("foo2-run", "\n\tfoo\n"),
        ("foo3-run", "\n\tfoo\n"),
        ("bar-copy", "bar\n"),
        ("bar-run", "\nbar\n"),
        ("bar2-run", "\nbar\n"),
        ("bar3-run", "\nbar\n"),
    ] {
        assert_eq!(read(&out, file), want, "{file}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn heredoc_var_substitution() {
    let case = Case::new("heredoc-vars");
    case.dockerfile(concat!(
        "FROM BASE as build\nARG name=world\n",
        "COPY <<EOF /dest/c1\nHello ${name}!\nEOF\n",
        "COPY <<'EOF' /dest/c2\nHello ${name}!\nEOF\n",
        "COPY <<\"EOF\" /dest/c3\nHello ${name}!\nEOF\n",
        "COPY <<EOF /dest/q1\nHello '${name}'!\nEOF\n",
        "COPY <<EOF /dest/q2\nHello \"${name}\"!\nEOF\n",
        "COPY <<'EOF' /dest/qsingle1\nHello '${name}'!\nEOF\n",
        "COPY <<'EOF' /dest/qsingle2\nHello \"${name}\"!\nEOF\n",
        "COPY <<\"EOF\" /dest/qdouble1\nHello '${name}'!\nEOF\n",
        "COPY <<\"EOF\" /dest/qdouble2\nHello \"${name}\"!\nEOF\n",
        "RUN <<EOF\ngreeting=\"Hello\"\necho \"${greeting} ${name}!\" > /dest/r1\nEOF\n",
        "RUN <<EOF\nname=\"new world\"\necho \"Hello ${name}!\" > /dest/r2\nEOF\n",
        "FROM scratch\nCOPY --from=build /dest /\n",
    ));
    let out = case.build_into("out", &[]);
    for (file, want) in [
        ("c1", "Hello world!\n"),
        ("c2", "Hello ${name}!\n"),
        ("c3", "Hello ${name}!\n"),
        ("q1", "Hello 'world'!\n"),
        ("q2", "Hello \"world\"!\n"),
        ("qsingle1", "Hello '${name}'!\n"),
        ("qsingle2", "Hello \"${name}\"!\n"),
        ("qdouble1", "Hello '${name}'!\n"),
        ("qdouble2", "Hello \"${name}\"!\n"),
        ("r1", "Hello world!\n"),
        ("r2", "Hello new world!\n"),
    ] {
        assert_eq!(read(&out, file), want, "{file}");
    }
}

// The trigger is read back from the base image's config (BuildKit pushes
// the base to a registry; kiln's store holds it).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn on_build_heredoc() {
    let case = Case::new("onbuild-heredoc");
    case.dockerfile("FROM BASE\nONBUILD RUN <<EOF\necho \"hello world\" >> /dest\nEOF\n");
    case.build(&["-t", "onbuild-heredoc-base"]);
    case.dockerfile(
        "FROM onbuild-heredoc-base AS base\nFROM scratch\nCOPY --from=base /dest /dest\n",
    );
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "dest"), "hello world\n");
}

// ---- dockerfile_onbuild_test.go ----

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn on_build_cleared() {
    let case = Case::new("onbuild-cleared");
    case.dockerfile("FROM BASE\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n");
    case.build(&["-t", "ob-base"]);
    case.dockerfile("FROM ob-base\n");
    case.build(&["-t", "ob-child"]);
    // The child ran the trigger once and does not pass it on.
    case.dockerfile("FROM ob-child\nRUN cp /out/foo /seen\n");
    let out = case.build_into("grandchild", &[]);
    assert_eq!(read(&out, "seen"), "11");
    case.dockerfile("FROM ob-base AS base\nFROM ob-child\nCOPY --from=base /out /\n");
    let out = case.build_into("out", &[]);
    assert_eq!(read(&out, "foo"), "11");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn on_build_with_child_stage() {
    let case = Case::new("onbuild-child-stage");
    case.dockerfile("FROM BASE\nONBUILD RUN mkdir -p /out && touch /out/didrun\n");
    case.build(&["-t", "ob-stage-base"]);
    case.dockerfile(concat!(
        "FROM ob-stage-base AS base\nRUN [ -f /out/didrun ] && touch /step1\n",
        "RUN rm /out/didrun\nRUN [ ! -f /out/didrun ] && touch /step2\n",
        "FROM base AS child\nRUN [ ! -f /out/didrun ] && touch /step3\n",
        "FROM scratch\nCOPY --from=child /step* /\n",
    ));
    let out = case.build_into("out", &[]);
    for step in ["step1", "step2", "step3"] {
        assert!(out.join(step).is_file(), "{step}");
    }
}

// BuildKit loads the base through `context:base=oci-layout:…`: kiln's
// `--build-context base=oci-layout://DIR`.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn on_build_named_context() {
    let case = Case::new("onbuild-named-context");
    case.dockerfile("FROM BASE\nONBUILD COPY --from=otherstage /testfile /out/foo\n");
    let layout = case.path("layout");
    case.build(&[
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
    ]);
    case.dockerfile(concat!(
        "FROM BASE AS otherstage\nRUN echo -n \"hello\" > /testfile\n",
        "FROM base AS inputstage\n",
        "FROM scratch\nCOPY --from=inputstage /out/foo /bar\n",
    ));
    let context = format!("base=oci-layout://{}", layout.display());
    let out = case.build_into("out", &["--build-context", &context]);
    assert_eq!(read(&out, "bar"), "hello");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn on_build_new_deps() {
    let case = Case::new("onbuild-new-deps");
    // A trigger that reads an image the child never names (BuildKit:
    // alpine's /etc/alpine-release; here the base's /etc/group).
    case.dockerfile(&format!(
        "FROM BASE\nONBUILD COPY --from={} /etc/group /out/alpine-release2\n",
        base()
    ));
    case.build(&["-t", "ob-deps-base"]);
    case.dockerfile(concat!(
        "FROM ob-deps-base AS base\nRUN cat /out/alpine-release2 > /out/alpine-release3\n",
        "FROM scratch\nCOPY --from=base /out /\n",
    ));
    let out = case.build_into("out1", &[]);
    assert!(read(&out, "alpine-release3").len() > 5);
    // A trigger that mounts a stage of the child's Dockerfile.
    case.dockerfile(concat!(
        "FROM BASE\nONBUILD RUN --mount=type=bind,target=/in,from=inputstage ",
        "mkdir /out && cat /in/foo > /out/bar && cat /in/out/alpine-release2 > /out/bar2\n",
    ));
    case.build(&["-t", "ob-deps-base2"]);
    case.dockerfile(concat!(
        "FROM ob-deps-base AS inputstage\nRUN cat /out/alpine-release2 > /out/alpine-release4\n",
        "RUN echo -n foo > /foo\n",
        "FROM ob-deps-base2 AS base\nRUN echo -n bar3 > /out/bar3\n",
        "FROM scratch\nCOPY --from=base /out /\n",
    ));
    let out = case.build_into("out2", &[]);
    assert_eq!(read(&out, "bar"), "foo");
    assert!(read(&out, "bar2").len() > 5);
    assert_eq!(read(&out, "bar3"), "bar3");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn on_build_with_cache_mount() {
    let case = Case::new("onbuild-cache-mount");
    case.dockerfile(concat!(
        "FROM BASE\nONBUILD RUN --mount=type=cache,target=/cache ",
        "echo -n 42 >> /cache/foo && echo -n 11 >> /bar\n",
    ));
    case.build(&["-t", "ob-cache-base"]);
    case.dockerfile(concat!(
        "FROM ob-cache-base\nRUN --mount=type=cache,target=/cache ",
        "[ \"$(cat /cache/foo)\" = \"42\" ] && [ \"$(cat /bar)\" = \"11\" ]\n",
    ));
    case.build(&[]);
}

// ---- kiln differences found while porting ----

/// The `WARN:` lines of `kiln build --check` of the case with `extra`.
fn check_warnings(case: &Case, extra: &[&str]) -> Vec<String> {
    let ctx = case.ctx();
    let mut args = vec!["build", "--check"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let out = case.kiln(&args);
    let log = support::text(&out);
    assert!(out.status.success(), "{log}");
    log.lines()
        .filter(|l| l.starts_with("WARN:"))
        .map(String::from)
        .collect()
}

// BuildKit: testInvalidDefaultArgInFrom (dockerfile_check_test.go): the
// build arg makes the image name valid, but the defaults alone do not.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn invalid_default_arg_in_from() {
    let case = Case::new("invalid-default-arg");
    let warning = |from: &str| {
        format!("WARN: InvalidDefaultArgInFrom - Default value for ARG {from} results in empty or invalid base image name (Dockerfile:3)")
    };
    for (text, arg, from) in [
        (
            "ARG VERSION\nFROM busybox:$VERSION\n",
            "VERSION=latest",
            Some("busybox:$VERSION"),
        ),
        (
            "ARG IMAGE\nFROM $IMAGE\n",
            "IMAGE=busybox:latest",
            Some("$IMAGE"),
        ),
        (
            "ARG SFX=\"box:\"\nFROM busy${SFX}\n",
            "SFX=box:latest",
            Some("busy${SFX}"),
        ),
        (
            "ARG VERSION=\"latest\"\nFROM busybox:${VERSION}\n",
            "VERSION=latest",
            None,
        ),
        (
            "ARG BUSYBOX_VARIANT=\"\"\nFROM busybox:stable${BUSYBOX_VARIANT}\n",
            "BUSYBOX_VARIANT=-musl",
            None,
        ),
    ] {
        case.dockerfile(&format!("\n{text}"));
        let got = check_warnings(&case, &["--build-arg", arg]);
        let want: Vec<String> = from.map(warning).into_iter().collect();
        assert_eq!(got, want, "{text}");
    }
}
