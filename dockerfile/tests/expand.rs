//! Which words get expanded, and against which values.

use std::collections::BTreeMap;

use kiln_dockerfile::instructions::{expand, CommandLine, Instruction};
use kiln_dockerfile::parse_dockerfile;
use kiln_dockerfile::shell::Lexer;

fn env() -> BTreeMap<String, String> {
    [
        ("A", "one"),
        ("DIR", "/srv"),
        ("ID", "cache-1"),
        ("SIG", "TERM"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn expanded(line: &str) -> Instruction {
    let f = parse_dockerfile(&format!("FROM scratch\n{line}\n")).unwrap();
    expand(
        &f.stages[0].commands[0].instruction,
        &Lexer::new('\\'),
        &env(),
    )
    .unwrap_or_else(|e| panic!("{line}: {}", e.message))
    .instruction
}

#[test]
fn run_cmd_entrypoint_text_is_left_to_the_shell() {
    let Instruction::Run(run) = expanded("RUN echo $A ${DIR}") else {
        panic!()
    };
    assert_eq!(run.command, CommandLine::Shell("echo $A ${DIR}".into()));
    assert_eq!(
        expanded("CMD [\"echo\", \"$A\"]"),
        Instruction::Cmd(CommandLine::Exec(vec!["echo".into(), "$A".into()]))
    );
    assert_eq!(
        expanded("ENTRYPOINT echo $A"),
        Instruction::Entrypoint(CommandLine::Shell("echo $A".into()))
    );
}

#[test]
fn instructions_buildkit_expands() {
    assert_eq!(
        expanded("WORKDIR $DIR/app"),
        Instruction::Workdir("/srv/app".into())
    );
    assert_eq!(
        expanded("USER ${A}:${A}"),
        Instruction::User("one:one".into())
    );
    assert_eq!(
        expanded("STOPSIGNAL SIG$SIG"),
        Instruction::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        expanded("EXPOSE ${PORT:-8080}/tcp"),
        Instruction::Expose(vec!["8080/tcp".into()])
    );
    assert_eq!(
        expanded("VOLUME [\"$DIR/data\"]"),
        Instruction::Volume(vec!["/srv/data".into()])
    );
    let Instruction::Env(kv) = expanded(r#"ENV B="$A two" C='$A'"#) else {
        panic!()
    };
    assert_eq!(
        (kv[0].value.as_str(), kv[1].value.as_str()),
        ("one two", "$A")
    );
    let Instruction::Label(kv) = expanded(r#"LABEL "x.$A"=${DIR#/}"#) else {
        panic!()
    };
    assert_eq!((kv[0].key.as_str(), kv[0].value.as_str()), ("x.one", "srv"));
    let Instruction::Arg(a) = expanded("ARG X=${A}-x Y") else {
        panic!()
    };
    assert_eq!(a[0].default.as_deref(), Some("one-x"));
    assert_eq!(a[1].default, None);
}

#[test]
fn copy_flags_sources_and_heredoc_bodies() {
    let Instruction::Copy(op) =
        expanded("COPY --from=b --chown=$A --chmod=0$A --exclude=$A.md $DIR/* $DIR/out/")
    else {
        panic!()
    };
    assert_eq!(op.from.as_deref(), Some("b"));
    assert_eq!(op.chown.as_deref(), Some("one"));
    assert_eq!(op.exclude, ["one.md"]);
    assert_eq!(op.sources, ["/srv/*"]);
    assert_eq!(op.dest, "/srv/out/");

    let f = parse_dockerfile(
        "FROM scratch\nCOPY <<EOF <<'RAW' /x/\nsay \"$A\" 'q'\nEOF\nsay $A\nRAW\n",
    )
    .unwrap();
    let e = expand(
        &f.stages[0].commands[0].instruction,
        &Lexer::new('\\'),
        &env(),
    )
    .unwrap();
    let Instruction::Copy(op) = e.instruction else {
        panic!()
    };
    assert_eq!(
        op.inline[0].content, "say \"one\" 'q'\n",
        "quotes stay in file content"
    );
    assert_eq!(
        op.inline[1].content, "say $A\n",
        "a quoted delimiter keeps the body literal"
    );
}

#[test]
fn mount_values_are_expanded() {
    let Instruction::Run(run) = expanded("RUN --mount=type=cache,id=$ID,target=$DIR/.cache make")
    else {
        panic!()
    };
    assert_eq!(run.mounts[0].id.as_deref(), Some("cache-1"));
    assert_eq!(run.mounts[0].target.as_deref(), Some("/srv/.cache"));
}

#[test]
fn unset_required_variables_are_flagged() {
    let f = parse_dockerfile("FROM scratch\nWORKDIR ${NOPE:?must be set}\n").unwrap();
    let err = expand(
        &f.stages[0].commands[0].instruction,
        &Lexer::new('\\'),
        &env(),
    )
    .unwrap_err();
    assert!(err.unset_variable);
    assert!(err.message.contains("must be set"), "{}", err.message);
    let f = parse_dockerfile("FROM scratch\nWORKDIR ${A\n").unwrap();
    let err = expand(
        &f.stages[0].commands[0].instruction,
        &Lexer::new('\\'),
        &env(),
    )
    .unwrap_err();
    assert!(!err.unset_variable);
}

#[test]
fn undefined_variables_are_reported() {
    let f = parse_dockerfile("FROM scratch\nWORKDIR /$A/$MISSING/${ALSO_MISSING:-x}\n").unwrap();
    let e = expand(
        &f.stages[0].commands[0].instruction,
        &Lexer::new('\\'),
        &env(),
    )
    .unwrap();
    assert_eq!(
        e.unmatched.into_iter().collect::<Vec<_>>(),
        ["ALSO_MISSING", "MISSING"]
    );
}
