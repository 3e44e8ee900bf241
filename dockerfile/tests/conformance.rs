//! Issue #17: frontend behaviour that must match BuildKit's, checked in
//! BuildKit's own source (frontend/dockerfile/{parser,instructions,
//! dockerfile2llb}).

use std::collections::BTreeMap;

use kiln_dockerfile::instructions::{expand, CommandLine, Healthcheck, Instruction};
use kiln_dockerfile::resolve::{Platform, Source};
use kiln_dockerfile::shell::Lexer;
use kiln_dockerfile::{parse_dockerfile, resolve, Error, Graph, Options};

fn first(body: &str) -> Instruction {
    let f = parse_dockerfile(&format!("FROM scratch\n{body}\n"))
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    f.stages[0].commands[0].instruction.clone()
}

fn graph(text: &str) -> Result<Graph, Error> {
    let opts = Options {
        build_args: BTreeMap::new(),
        target: None,
        platform: Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        },
        replaced: Default::default(),
    };
    resolve(parse_dockerfile(text)?, &opts)
}

fn graph_err(text: &str) -> Error {
    match graph(text) {
        Ok(_) => panic!("{text:?} was accepted"),
        Err(e) => e,
    }
}

#[test]
fn json_followed_by_a_comment_is_shell_form() {
    // Go's json.Unmarshal refuses trailing text, so BuildKit's parseJSON
    // fails and parseMaybeJSON keeps the whole rest as a shell command:
    // `# why` is not a comment there, /bin/sh sees it.
    assert_eq!(
        first(r#"ENTRYPOINT ["x"] # why"#),
        Instruction::Entrypoint(CommandLine::Shell(r#"["x"] # why"#.into()))
    );
    assert_eq!(
        first(r#"CMD ["x", "y"]   "#),
        Instruction::Cmd(CommandLine::Exec(vec!["x".into(), "y".into()]))
    );
}

#[test]
fn escaped_escape_at_line_end_does_not_continue() {
    // BuildKit's lineContinuationRegex needs a non-escape character before
    // the final escape token (or the token alone on its line).
    let f = parse_dockerfile("FROM scratch\nENV C trailing\\\\\nLABEL next=line\n").unwrap();
    let cmds = &f.stages[0].commands;
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[1].instruction.keyword(), "LABEL");
    assert_eq!(cmds[1].span.start, 3);
    // Same with the backtick escape.
    let f =
        parse_dockerfile("# escape=`\nFROM scratch\nENV C trailing``\nLABEL next=line\n").unwrap();
    assert_eq!(f.stages[0].commands.len(), 2);
    // A single escape still continues, also alone on its line.
    let f = parse_dockerfile("FROM scratch\nENV C a\\\n\\\n  b\n").unwrap();
    let Instruction::Env(kv) = &f.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(kv[0].value, "a  b");
}

#[test]
fn healthcheck_zero_durations_mean_default() {
    // BuildKit's parseOptInterval: 0 is "not set" (the image config then
    // omits the field); anything else under 1ms is an error.
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) = first(
        "HEALTHCHECK --interval=0s --timeout=0 --start-period=0ms --start-interval=0h CMD true",
    ) else {
        panic!()
    };
    assert_eq!(
        (h.interval, h.timeout, h.start_period, h.start_interval),
        (None, None, None, None)
    );
    for bad in ["--interval=1us", "--timeout=-1s"] {
        let e = parse_dockerfile(&format!("FROM scratch\nHEALTHCHECK {bad} CMD true\n"))
            .expect_err(bad);
        assert!(e.message.contains("less than 1ms"), "{bad}: {}", e.message);
        assert_eq!(e.span.start, 2);
    }
}

fn expanded(line: &str, vars: &[(&str, &str)]) -> Result<Instruction, String> {
    let f = parse_dockerfile(&format!("FROM scratch\n{line}\n")).map_err(|e| e.message)?;
    let env: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    expand(
        &f.stages[0].commands[0].instruction,
        &Lexer::new('\\'),
        &env,
    )
    .map(|e| e.instruction)
    .map_err(|e| e.message)
}

#[test]
fn expose_variable_holding_several_ports_exposes_each() {
    // BuildKit's dispatchExpose splits each expanded word (ProcessWords).
    let ports = [("PORTS", "3000 4000/udp")];
    assert_eq!(
        expanded("EXPOSE $PORTS 5000", &ports),
        Ok(Instruction::Expose(vec![
            "3000".into(),
            "4000/udp".into(),
            "5000".into()
        ]))
    );
    assert_eq!(
        expanded("EXPOSE \"$PORTS\"", &ports),
        Ok(Instruction::Expose(vec!["3000 4000/udp".into()]))
    );
    graph("FROM scratch\nENV PORTS=\"3000 4000/udp\"\nEXPOSE $PORTS\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = graph_err("FROM scratch\nENV PORTS=\"3000 x/udp\"\nEXPOSE $PORTS\n");
    assert!(e.message.contains("x/udp"), "{}", e.message);
    assert_eq!(e.span.start, 3);
}

fn parse_err(body: &str) -> Error {
    parse_dockerfile(&format!("FROM scratch\n{body}\n")).expect_err(body)
}

#[test]
fn run_mount_values_are_expanded_but_not_from() {
    // BuildKit expands every --mount value when the step runs
    // (setMountState with an expander); at parse time it only refuses a
    // `$` in from=. BuildKit: testMountFromError.
    let vars = [("T", "cache"), ("ID", "gocache"), ("DIR", "/root/.cache")];
    let Ok(Instruction::Run(run)) =
        expanded("RUN --mount=type=$T,id=$ID,target=${DIR}/go true", &vars)
    else {
        panic!()
    };
    let m = &run.mounts[0];
    assert_eq!(m.kind, kiln_dockerfile::instructions::MountType::Cache);
    assert_eq!(m.id.as_deref(), Some("gocache"));
    assert_eq!(m.target.as_deref(), Some("/root/.cache/go"));
    let e = parse_err("RUN --mount=from=$ttt,type=cache,target=/tmp true");
    assert!(
        e.message
            .contains("'from' doesn't support variable expansion, define alias stage instead"),
        "{}",
        e.message
    );
    assert_eq!(e.span.start, 2);
    // A literal mistake is still reported at parse time.
    let e = parse_err("RUN --mount=type=nope,target=/x true");
    assert!(e.message.contains("nope"), "{}", e.message);
}
#[test]
fn copy_from_refuses_variables() {
    // BuildKit: testDockerfileCopyFromArgs.
    for body in [
        "COPY --from=$FOO . .",
        "COPY --from=${A:-b} . .",
        "COPY --from=b$X . .",
    ] {
        let e = parse_err(body);
        assert!(
            e.message
                .contains("variable expansion is not supported for --from"),
            "{body}: {}",
            e.message
        );
        assert_eq!(e.span.start, 2);
    }
}

#[test]
fn copy_from_a_later_stage_is_an_error() {
    // BuildKit's dispatch: "cannot copy from stage %q, it needs to be
    // defined before current stage %q". BuildKit: testOutOfOrderStage.
    let text = "FROM scratch AS target\nCOPY --from=build /x /out\n\
                FROM scratch AS build\nCOPY x /x\nFROM target\n";
    let e = graph_err(text);
    assert!(
        e.message
            .contains("needs to be defined before current stage"),
        "{}",
        e.message
    );
    assert_eq!(e.span.start, 2);
    let e = graph_err(
        "FROM scratch AS target\nRUN --mount=from=build,target=/b true\nFROM scratch AS build\nFROM target\n",
    );
    assert!(e.message.contains("defined before"), "{}", e.message);
    // An earlier stage is fine.
    let g = graph("FROM scratch AS build\nFROM scratch\nCOPY --from=build /x /x\n").unwrap();
    assert_eq!(g.stages[1].edges[0].source, Source::Stage(0));
}
