//! Every instruction with every flag, and the errors for each mistake.

use kiln_dockerfile::instructions::{
    CommandLine, FileOp, Healthcheck, Instruction, MountType, Network, Security,
};
use kiln_dockerfile::{parse_dockerfile, Error};

fn first(body: &str) -> Instruction {
    let f = parse_dockerfile(&format!("FROM scratch\n{body}\n"))
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    f.stages[0].commands[0].instruction.clone()
}

fn error(body: &str) -> Error {
    parse_dockerfile(&format!("FROM scratch\n{body}\n")).expect_err(body)
}

fn file_op(body: &str) -> FileOp {
    match first(body) {
        Instruction::Copy(op) | Instruction::Add(op) => op,
        other => panic!("{other:?}"),
    }
}

#[test]
fn from_forms() {
    let f = parse_dockerfile(
        "ARG V=1\nfrom --platform=$BUILDPLATFORM golang:${V} As Builder\nFROM builder\n",
    )
    .unwrap();
    let from = &f.stages[0].from;
    assert_eq!(from.image, "golang:${V}");
    assert_eq!(from.name.as_deref(), Some("builder"));
    assert_eq!(from.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(f.meta_args[0].0.name, "V");
    for bad in [
        "FROM",
        "FROM a b",
        "FROM a AS",
        "FROM a AS b c",
        "FROM a FOR b",
    ] {
        let e = parse_dockerfile(bad).unwrap_err();
        assert_eq!(e.span.start, 1, "{bad}");
        assert!(e.message.contains("FROM requires"), "{bad}: {}", e.message);
    }
    let e = parse_dockerfile("FROM a AS 1st\n").unwrap_err();
    assert!(e.message.contains("invalid name for build stage"));
    let e = parse_dockerfile("FROM --plat=x a\n").unwrap_err();
    assert!(
        e.message.contains("unknown flag: --plat") && e.message.contains("--platform"),
        "{}",
        e.message
    );
}

#[test]
fn only_arg_before_from() {
    let e = parse_dockerfile("ARG A\nRUN x\nFROM a\n").unwrap_err();
    assert_eq!(e.span.start, 2);
    assert!(e.message.contains("before the first FROM"));
    let e = parse_dockerfile("ARG A\n").unwrap_err();
    assert!(e.message.contains("no FROM"));
}

#[test]
fn run_shell_exec_and_flags() {
    assert_eq!(first("RUN echo hi"), first("run echo hi"));
    let Instruction::Run(run) = first(r#"RUN ["/bin/sh", "-c", "echo hi"]"#) else {
        panic!()
    };
    assert_eq!(
        run.command,
        CommandLine::Exec(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
    );
    // Not valid JSON: falls back to the shell form, as BuildKit does.
    let Instruction::Run(run) = first("RUN [echo, hi]") else {
        panic!()
    };
    assert_eq!(run.command, CommandLine::Shell("[echo, hi]".into()));
    let Instruction::Run(run) = first(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=bind,from=b,target=/b --network=none --security=sandbox make",
    ) else {
        panic!()
    };
    assert_eq!(run.mounts.len(), 2);
    assert_eq!(run.mounts[0].kind, MountType::Cache);
    assert!(run.mounts[1].read_only);
    assert_eq!(run.network, Some(Network::None));
    assert_eq!(run.security, Some(Security::Sandbox));
    assert!(error("RUN --network=bridge x")
        .message
        .contains("unsupported network mode"));
    assert!(error("RUN --security=root x")
        .message
        .contains("unsupported security mode"));
    assert!(error("RUN --mount=type=bind x")
        .message
        .contains("invalid mount target"));
    assert!(error("RUN --mont=type=bind x")
        .message
        .contains("did you mean --mount"));
    assert!(error("RUN").message.contains("RUN requires"));
    assert!(error(r#"RUN ["a", 1]"#).message.contains("strings only"));
}

#[test]
fn run_heredoc_is_kept() {
    let f = parse_dockerfile("FROM a\nRUN <<EOF\nset -e\necho $HOME\nEOF\n").unwrap();
    let Instruction::Run(run) = &f.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(run.command, CommandLine::Shell("<<EOF".into()));
    assert_eq!(run.heredocs[0].content, "set -e\necho $HOME\n");
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        first(r#"CMD ["a", "b"]"#),
        Instruction::Cmd(CommandLine::Exec(vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        first("CMD a b"),
        Instruction::Cmd(CommandLine::Shell("a b".into()))
    );
    assert_eq!(
        first("ENTRYPOINT [\"x\"]"),
        Instruction::Entrypoint(CommandLine::Exec(vec!["x".into()]))
    );
    assert_eq!(
        first(r#"SHELL ["/bin/bash", "-c"]"#),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert!(error("SHELL /bin/bash -c").message.contains("JSON form"));
    assert!(error("CMD --foo x").message.contains("unknown flag"));
}

#[test]
fn label_env_arg() {
    let Instruction::Label(l) = first(r#"LABEL a=b "c d"="e f" g='h'"#) else {
        panic!()
    };
    assert_eq!(l.len(), 3);
    assert_eq!(
        (l[1].key.as_str(), l[1].value.as_str()),
        (r#""c d""#, r#""e f""#)
    );
    let Instruction::Env(e) = first("ENV PATH /usr/local/bin:$PATH") else {
        panic!()
    };
    assert_eq!(
        (e[0].key.as_str(), e[0].value.as_str()),
        ("PATH", "/usr/local/bin:$PATH")
    );
    let Instruction::Env(e) = first(
        r#"ENV A=1 B="x y" \
      C=3"#,
    ) else {
        panic!()
    };
    assert_eq!(e.len(), 3);
    assert!(error("ENV A").message.contains("two arguments"));
    assert!(error("ENV").message.contains("ENV requires"));
    let Instruction::Arg(a) = first("ARG A B=2 C=") else {
        panic!()
    };
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].default, None);
    assert_eq!(a[1].default.as_deref(), Some("2"));
    assert_eq!(a[2].default.as_deref(), Some(""));
    assert!(error("ARG").message.contains("ARG requires"));
}

#[test]
fn copy_and_add_flags() {
    let op = file_op("COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/");
    assert_eq!(op.sources, ["a", "b"]);
    assert_eq!(op.dest, "/dst/");
    assert_eq!(op.from.as_deref(), Some("build"));
    assert_eq!(op.chown.as_deref(), Some("app:app"));
    assert_eq!(op.chmod.as_deref(), Some("0755"));
    assert!(op.link && op.parents);
    assert_eq!(op.exclude, ["*.md", "tmp"]);
    let op = file_op(r#"COPY ["a b", "c"]"#);
    assert!(op.json);
    assert_eq!(op.sources, ["a b"]);
    let op = file_op("ADD --checksum=sha256:abc --keep-git-dir --unpack=false --chmod=u+x,go-w https://x/y.tar /z");
    assert_eq!(op.checksum.as_deref(), Some("sha256:abc"));
    assert!(op.keep_git_dir);
    assert_eq!(op.unpack, Some(false));
    assert!(error("COPY a").message.contains("at least two arguments"));
    assert!(error("COPY --chmod=999 a b").message.contains("--chmod"));
    assert!(error("COPY --checksum=sha256:0 a b")
        .message
        .contains("unknown flag"));
    assert!(error("ADD --from=x a b")
        .message
        .contains("unknown flag: --from"));
    assert!(error("COPY --link=perhaps a b").message.contains("boolean"));
}

#[test]
fn copy_heredoc_creates_files() {
    let f =
        parse_dockerfile("FROM a\nCOPY <<-EOF <<'RAW' /etc/\n\thello $USER\nEOF\n$literal\nRAW\n")
            .unwrap();
    let Instruction::Copy(op) = &f.stages[0].commands[0].instruction else {
        panic!()
    };
    assert!(op.sources.is_empty());
    assert_eq!(op.inline.len(), 2);
    assert_eq!(
        (
            op.inline[0].name.as_str(),
            op.inline[0].content.as_str(),
            op.inline[0].expand
        ),
        ("EOF", "hello $USER\n", true)
    );
    assert_eq!(
        (
            op.inline[1].name.as_str(),
            op.inline[1].content.as_str(),
            op.inline[1].expand
        ),
        ("RAW", "$literal\n", false)
    );
    let e = parse_dockerfile("FROM a\nCOPY x <<EOF\nEOF\n").unwrap_err();
    assert!(e.message.contains("destination"), "{}", e.message);
}

#[test]
fn simple_instructions() {
    assert_eq!(
        first("EXPOSE 80 443/tcp"),
        Instruction::Expose(vec!["80".into(), "443/tcp".into()])
    );
    assert_eq!(
        first(r#"VOLUME ["/a", "/b"]"#),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        first("VOLUME /a /b"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(first("USER app:app"), Instruction::User("app:app".into()));
    assert_eq!(
        first("WORKDIR /src dir"),
        Instruction::Workdir("/src dir".into())
    );
    assert_eq!(
        first("STOPSIGNAL SIGINT"),
        Instruction::StopSignal("SIGINT".into())
    );
    assert_eq!(
        first("MAINTAINER Jane <j@x>"),
        Instruction::Maintainer("Jane <j@x>".into())
    );
    for bad in [
        "EXPOSE",
        "VOLUME",
        "USER",
        "WORKDIR",
        "STOPSIGNAL",
        "MAINTAINER",
        "VOLUME []",
    ] {
        assert!(error(bad).message.contains("requires"), "{bad}");
    }
}

#[test]
fn onbuild() {
    let Instruction::Onbuild(o) = first("ONBUILD RUN make") else {
        panic!()
    };
    assert_eq!(o.expression, "RUN make");
    assert!(matches!(o.trigger.instruction, Instruction::Run(_)));
    assert!(error("ONBUILD ONBUILD RUN x")
        .message
        .contains("isn't allowed"));
    assert!(error("ONBUILD FROM x").message.contains("isn't allowed"));
    assert!(error("ONBUILD MAINTAINER x")
        .message
        .contains("isn't allowed"));
    assert!(error("ONBUILD COPY --bad=1 a b")
        .message
        .contains("unknown flag"));
    assert!(error("ONBUILD").message.contains("requires"));
}

// BuildKit: testOnBuildHeredoc
#[test]
fn onbuild_heredoc_keeps_its_body() {
    let file = parse_dockerfile("FROM scratch\nONBUILD RUN <<EOF\necho hi > /x\nEOF\nLABEL a=b\n")
        .unwrap();
    let cmds = &file.stages[0].commands;
    assert_eq!(cmds.len(), 2, "the body is not read as instructions");
    let Instruction::Onbuild(o) = &cmds[0].instruction else {
        panic!()
    };
    assert_eq!(o.expression, "RUN <<EOF\necho hi > /x\nEOF");
    let Instruction::Run(run) = &o.trigger.instruction else {
        panic!()
    };
    assert_eq!(run.heredocs[0].content, "echo hi > /x\n");
}

#[test]
fn healthcheck() {
    assert_eq!(
        first("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) = first(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/",
    ) else {
        panic!()
    };
    assert_eq!(h.interval, Some(30_000_000_000));
    assert_eq!(h.timeout, Some(90_000_000_000));
    assert_eq!(h.start_interval, Some(500_000_000));
    assert_eq!(h.retries, Some(3));
    assert_eq!(
        h.test,
        CommandLine::Shell("curl -f http://localhost/".into())
    );
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) = first(r#"healthcheck cmd ["true"]"#) else {
        panic!()
    };
    assert_eq!(h.test, CommandLine::Exec(vec!["true".into()]));
    assert!(error("HEALTHCHECK --interval=10 CMD x")
        .message
        .contains("missing unit"));
    assert!(error("HEALTHCHECK --interval=999us CMD x")
        .message
        .contains("less than 1ms"));
    assert!(error("HEALTHCHECK --timeout=5x CMD x")
        .message
        .contains("unknown unit"));
    assert!(error("HEALTHCHECK --retries=-1 CMD x")
        .message
        .contains("negative"));
    assert!(error("HEALTHCHECK NONE x").message.contains("no arguments"));
    assert!(error("HEALTHCHECK CMD").message.contains("Missing command"));
    assert!(error("HEALTHCHECK RUN x").message.contains("Unknown type"));
    assert!(error("HEALTHCHECK --intreval=1s CMD x")
        .message
        .contains("did you mean --interval"));
}

#[test]
fn unknown_instruction_suggests() {
    let e = error("RUNN make");
    assert_eq!(e.span.start, 2);
    assert!(
        e.message.contains("unknown instruction: RUNN") && e.message.contains("did you mean RUN"),
        "{}",
        e.message
    );
    let e = error("FORM x");
    assert!(e.message.contains("did you mean FROM"), "{}", e.message);
    let e = error("&& npm run build");
    assert!(e.message.contains("unknown instruction: &&"));
}
