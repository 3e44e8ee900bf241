//! ARG scoping, the stage graph, --target, and the seed Dockerfiles.

use std::collections::BTreeMap;

use kiln_dockerfile::resolve::{Base, Platform, Source};
use kiln_dockerfile::{parse_dockerfile, resolve, Error, Graph, Options};

fn opts(args: &[(&str, &str)], target: Option<&str>) -> Options {
    Options {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        target: target.map(str::to_string),
        platform: Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        },
        replaced: Default::default(),
    }
}

fn graph(text: &str, o: &Options) -> Result<Graph, Error> {
    resolve(parse_dockerfile(text)?, o)
}

fn ok(text: &str) -> Graph {
    graph(text, &opts(&[], None)).unwrap_or_else(|e| panic!("{e}"))
}

fn rules(g: &Graph) -> Vec<&str> {
    g.warnings.iter().map(|w| w.rule).collect()
}

#[test]
fn global_args_in_from_and_build_arg_override() {
    let text = "ARG REG=docker.io\nARG TAG=1.${MINOR:-21}\nFROM ${REG}/golang:${TAG} AS b\nFROM alpine:$TAG\n";
    let g = graph(text, &opts(&[], None)).unwrap();
    assert_eq!(
        g.stages[0].base,
        Base::Image("docker.io/golang:1.21".into())
    );
    let g = graph(text, &opts(&[("TAG", "2.0")], None)).unwrap();
    assert_eq!(g.stages[1].base, Base::Image("alpine:2.0".into()));
    let g = ok("FROM --platform=$TARGETPLATFORM busybox:$TARGETARCH\n");
    assert_eq!(g.stages[0].base, Base::Image("busybox:amd64".into()));
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/amd64"));
}

#[test]
fn undefined_arg_in_from_warns_and_blank_base_errors() {
    let g = ok("FROM alpine:${NOPE:-3}\nFROM busybox$UNSET\n");
    assert!(rules(&g).contains(&"UndefinedArgInFrom"));
    let e = graph("ARG EMPTY\nFROM $EMPTY\n", &opts(&[], None)).unwrap_err();
    assert!(e.message.contains("should not be blank"), "{}", e.message);
}

#[test]
fn stage_args_need_redeclaring_and_env_wins() {
    // The global V is invisible in the stage until ARG V re-declares it.
    let text = "ARG V=global\nFROM scratch\nWORKDIR /$V\nARG V\nWORKDIR /$V\nENV V=env\nARG V=arg\nUSER $V\n";
    let g = ok(text);
    let undefined: Vec<_> = g
        .warnings
        .iter()
        .filter(|w| w.rule == "UndefinedVar")
        .collect();
    assert_eq!(undefined.len(), 1, "{:?}", g.warnings);
    assert_eq!(undefined[0].span.start, 3);
}

#[test]
fn expansion_errors_are_reported_with_the_line() {
    let e = graph("FROM scratch\nWORKDIR ${DIR:?set DIR}\n", &opts(&[], None)).unwrap_err();
    assert_eq!(e.span.start, 2);
    assert!(e.message.contains("set DIR"), "{}", e.message);
    // From an image, the variable may come from the image's ENV.
    ok("FROM alpine\nWORKDIR ${GOPATH:?}\n");
    let e = graph("FROM scratch\nEXPOSE 80/icmp\n", &opts(&[], None)).unwrap_err();
    assert!(e.message.contains("invalid port"));
    let e = graph("FROM scratch\nARG P=99999\nEXPOSE $P\n", &opts(&[], None)).unwrap_err();
    assert_eq!(e.span.start, 3);
    let e = graph("FROM scratch\nSTOPSIGNAL SIGNOPE\n", &opts(&[], None)).unwrap_err();
    assert!(e.message.contains("invalid signal"));
    let e = graph(
        "FROM scratch\nRUN --security=insecure true\n",
        &opts(&[], None),
    )
    .unwrap_err();
    assert!(e.message.contains("insecure"));
    let e = graph("FROM scratch\nCOPY ${X a b\n", &opts(&[], None)).unwrap_err();
    assert_eq!(e.span.start, 2);
}

#[test]
fn words_on_one_line_see_values_from_before_it() {
    // B=${A:?} on the line that sets A sees A as it was before: unset.
    for text in [
        "FROM scratch\nENV A=1 B=${A:?}\n",
        "FROM scratch\nARG A=1 B=${A:?}\n",
        "FROM scratch\nLABEL A=1 B=${A:?}\n",
    ] {
        let e = graph(text, &opts(&[], None)).unwrap_err();
        assert_eq!(e.span.start, 2, "{text}");
    }
    for text in [
        "FROM scratch\nENV A=1\nENV B=${A:?}\n",
        "FROM scratch\nARG A=1\nARG B=${A:?}\n",
    ] {
        let g = ok(text);
        assert!(rules(&g).is_empty(), "{text}: {:?}", g.warnings);
    }
}

#[test]
fn build_args_override_stage_defaults_and_unused_ones_warn() {
    let g = graph(
        "FROM scratch\nARG USED=1\n",
        &opts(
            &[
                ("USED", "2"),
                ("UNUSED", "x"),
                ("HTTP_PROXY", "p"),
                ("SOURCE_DATE_EPOCH", "1"),
            ],
            None,
        ),
    )
    .unwrap();
    let w: Vec<_> = g
        .warnings
        .iter()
        .filter(|w| w.rule == "UnusedBuildArg")
        .collect();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message.contains("UNUSED")
            && !w[0].message.contains("USED,")
            && !w[0].message.contains("HTTP_PROXY")
            && !w[0].message.contains("SOURCE_DATE_EPOCH"),
        "{}",
        w[0].message
    );
}

#[test]
fn args_and_env_carry_into_child_stages() {
    let g = ok("FROM scratch AS base\nARG A=1\nENV E=2\nFROM base\nWORKDIR /$A/$E\n");
    assert!(rules(&g).is_empty(), "{:?}", g.warnings);
}

#[test]
fn stage_graph_by_name_index_and_image() {
    let text = "FROM golang AS Build\nRUN make\nFROM alpine AS tools\nFROM build AS test\nFROM scratch\nCOPY --from=BUILD /a /a\nCOPY --from=1 /b /b\nCOPY --from=nginx:latest /c /c\nRUN --mount=from=test,target=/t true\n";
    let g = ok(text);
    assert_eq!(g.stages[2].base, Base::Stage(0));
    let final_edges: Vec<_> = g.stages[3].edges.iter().map(|e| e.source.clone()).collect();
    assert_eq!(
        final_edges,
        [
            Source::Stage(0),
            Source::Stage(1),
            Source::Image("nginx:latest".into()),
            Source::Stage(2)
        ]
    );
    assert_eq!(g.target, 3);
    assert_eq!(g.order, [0, 1, 2, 3]);
}

#[test]
fn target_prunes_unneeded_stages() {
    let text = "FROM a AS one\nFROM b AS two\nRUN exit 1\nFROM one AS three\nFROM c\nCOPY --from=three / /\n";
    let g = graph(text, &opts(&[], Some("one"))).unwrap();
    assert_eq!(g.order, [0]);
    let g = graph(text, &opts(&[], None)).unwrap();
    assert_eq!(
        g.order,
        [0, 2, 3],
        "stage two is not needed by the last stage"
    );
    let e = graph(text, &opts(&[], Some("tree"))).unwrap_err();
    assert!(
        e.message.contains("could not be found") && e.message.contains("three"),
        "{}",
        e.message
    );
    // Errors in stages that are not built are not reported, as BuildKit.
    let g = graph(
        "FROM scratch AS bad\nWORKDIR ${X:?}\nFROM scratch\n",
        &opts(&[], None),
    )
    .unwrap();
    assert_eq!(g.order, [1]);
}

#[test]
fn stage_reference_errors() {
    let e = graph("FROM a AS x\nFROM b AS X\n", &opts(&[], None)).unwrap_err();
    assert_eq!(e.span.start, 2);
    assert!(e.message.contains("duplicate stage name") && e.message.contains("line 1"));
    let e = graph("FROM a AS x\nCOPY --from=x / /\n", &opts(&[], None)).unwrap_err();
    assert!(e.message.contains("refers to the stage it is in"));
    let e = graph("FROM a\nCOPY --from=1 / /\nFROM b\n", &opts(&[], Some("0"))).unwrap_err();
    assert!(e.message.contains("could not be found"));
    let e = graph(
        "FROM a AS x\nCOPY --from=1 / /\nFROM b\n",
        &opts(&[], Some("x")),
    )
    .unwrap_err();
    assert!(e.message.contains("not an earlier stage"), "{}", e.message);
    // A forward --from is refused, as BuildKit (testOutOfOrderStage).
    let e = graph(
        "FROM a AS x\nCOPY --from=y / /\nFROM b AS y\n",
        &opts(&[], Some("x")),
    )
    .unwrap_err();
    assert!(e.message.contains("defined before"), "{}", e.message);
    // ...but only in a stage the target needs.
    let g = ok("FROM a AS x\nCOPY --from=y / /\nFROM b AS y\n");
    assert_eq!(g.order, [1]);
}

#[test]
fn copy_from_with_args_is_refused() {
    let e = graph(
        "FROM a AS src\nFROM scratch\nARG FROM=src\nCOPY --from=$FROM / /\n",
        &opts(&[], None),
    )
    .unwrap_err();
    assert!(
        e.message.contains("not supported for --from"),
        "{}",
        e.message
    );
}

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/seeds/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn seed_atsea_java_node() {
    let g = ok(&seed("atsea.Dockerfile"));
    assert_eq!(g.stages.len(), 3);
    assert_eq!(g.order, [0, 1, 2]);
    let edges: Vec<_> = g.stages[2].edges.iter().map(|e| e.source.clone()).collect();
    assert_eq!(edges, [Source::Stage(0), Source::Stage(1)]);
    assert_eq!(g.stages[2].base, Base::Image("java:8-jdk-alpine".into()));
}

#[test]
fn seed_nginx_cert_by_index() {
    let g = ok(&seed("nginx-cert.Dockerfile"));
    assert_eq!(g.stages[1].edges[0].source, Source::Stage(0));
    assert_eq!(
        g.file.stages[0].commands.len(),
        3,
        "the continued RUN is one instruction"
    );
}

#[test]
fn seed_href_counter() {
    for name in ["href-counter.Dockerfile", "href-counter-index.Dockerfile"] {
        let g = ok(&seed(name));
        assert_eq!(g.order, [0, 1]);
        assert_eq!(g.stages[1].edges[0].source, Source::Stage(0));
    }
    let g = ok(&seed("href-counter.Dockerfile"));
    assert!(rules(&g).is_empty());
    let g = graph(
        &seed("href-counter.Dockerfile"),
        &opts(&[], Some("builder")),
    )
    .unwrap();
    assert_eq!(g.order, [0]);
}

#[test]
fn seed_node_base_release() {
    let g = ok(&seed("node-release.Dockerfile"));
    assert_eq!(g.stages[1].base, Base::Stage(0));
    assert_eq!(g.order, [0, 1]);
}

#[test]
fn seed_angular_has_a_real_mistake() {
    // The article forgot the backslash: "&& npm run build" is its own line.
    let e = parse_dockerfile(&seed("angular-nginx.Dockerfile")).unwrap_err();
    assert_eq!(e.span.start, 9);
    assert!(e.message.contains("unknown instruction: &&"));
    let fixed = seed("angular-nginx.Dockerfile").replace("npm install \n", "npm install \\\n");
    let g = ok(&fixed);
    assert_eq!(g.stages[1].edges[0].source, Source::Stage(0));
}

#[test]
fn an_arg_declared_without_a_value_is_not_undefined() {
    // BuildKit: testUndefinedArgInFrom / testUndefinedVariable — `ARG X`
    // declares X (empty), so using it is not a lint warning.
    let g = ok("ARG TAG\nFROM busybox${TAG}\nARG DIR\nENV HOME=/root\nFROM scratch\nARG DIR\nWORKDIR /x$DIR\n");
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    let g = ok("ARG TAG=1\nFROM busybox:$TAGG\nFROM scratch\nENV HOME=/root\nWORKDIR /$HOM\n");
    let messages: Vec<&str> = g.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "FROM argument 'TAGG' is not declared (did you mean TAG?)",
            "Usage of undefined variable '$HOM' (did you mean $HOME?)",
            // `busybox:` names no image either (BuildKit warns the same).
            "Default value for ARG busybox:$TAGG results in empty or invalid base image name",
        ]
    );
}

/// What the stage scope makes of a word: each text ends in an
/// `EXPOSE "v:…_"`, an invalid port the resolver refuses quoting the word
/// as it expanded it (`COPY --from` no longer expands variables).
fn exposed(text: &str, o: &Options) -> String {
    let e = graph(text, o).expect_err("the EXPOSE is refused");
    let at = e
        .message
        .find("\"v:")
        .unwrap_or_else(|| panic!("{}", e.message));
    let rest = &e.message[at + 3..];
    rest[..rest.find("_\"").unwrap()].to_string()
}

#[test]
fn a_child_stage_arg_default_sees_the_parent_stage_value() {
    let text = "FROM scratch AS base\nARG NAME=kiln\nFROM base\nARG NAME=\"$NAME-dev\"\nEXPOSE \"v:${NAME}_\"\n";
    assert_eq!(exposed(text, &opts(&[], None)), "kiln-dev");
    assert_eq!(exposed(text, &opts(&[("NAME", "given")], None)), "given");
    // A bare `ARG NAME` keeps the value it inherited.
    let text = "FROM scratch AS base\nARG NAME=kiln\nFROM base\nARG NAME\nEXPOSE \"v:${NAME}_\"\n";
    assert_eq!(exposed(text, &opts(&[], None)), "kiln");
}

// BuildKit: testArgDefaultExpansion
#[test]
fn a_build_arg_means_the_arg_default_is_never_evaluated() {
    let text = "FROM scratch\nARG FOO\nARG BAR=${FOO:?foo_missing}\nEXPOSE \"v:${BAR}_\"\n";
    let e = graph(text, &opts(&[], None)).unwrap_err();
    assert!(e.message.contains("foo_missing"), "{}", e.message);
    assert_eq!(e.span.start, 3);
    assert_eq!(exposed(text, &opts(&[("FOO", "123")], None)), "123");
    assert_eq!(exposed(text, &opts(&[("BAR", "x")], None)), "x");
    // The same for a global ARG.
    let text = "ARG BAR=${FOO:?foo_missing}\nFROM busybox:$BAR\n";
    let g = graph(text, &opts(&[("BAR", "x")], None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.stages[0].base, Base::Image("busybox:x".into()));
}

// BuildKit: testTargetStageNameArg
#[test]
fn targetstage_is_the_target_name_once_declared() {
    let stages = "FROM base AS foo\nFROM scratch\n";
    let before = format!("FROM scratch AS base\nEXPOSE \"v:a${{TARGETSTAGE}}_\"\n{stages}");
    assert_eq!(
        exposed(&before, &opts(&[], Some("foo"))),
        "a",
        "not visible before ARG"
    );
    // The target reads `base`, so its errors count.
    let declared = "FROM scratch AS base\nARG TARGETSTAGE\nEXPOSE \"v:${TARGETSTAGE}_\"\n\
                    FROM base AS foo\nFROM base\n";
    assert_eq!(exposed(declared, &opts(&[], Some("foo"))), "foo");
    // An unnamed target stage is "default"; FROM sees it like TARGETARCH.
    assert_eq!(exposed(declared, &opts(&[], None)), "default");
    let g = ok("FROM busybox:$TARGETSTAGE AS last\n");
    assert_eq!(g.stages[0].base, Base::Image("busybox:last".into()));
}

#[test]
fn a_source_date_epoch_default_is_honoured_and_checked() {
    let g = ok("ARG SOURCE_DATE_EPOCH=1700000000\nFROM scratch\n");
    assert_eq!(g.inputs.source_date_epoch(), Some("1700000000"));
    let g = graph(
        "ARG SOURCE_DATE_EPOCH=1700000000\nFROM scratch\n",
        &opts(&[("SOURCE_DATE_EPOCH", "5")], None),
    )
    .unwrap();
    assert_eq!(g.inputs.source_date_epoch(), Some("5"), "--build-arg wins");
    let e = graph(
        "FROM scratch AS x\nARG SOURCE_DATE_EPOCH=yesterday\n",
        &opts(&[], None),
    );
    assert!(e.is_ok(), "only the global ARG is the build's epoch");
    let e = graph(
        "# syntax\nARG SOURCE_DATE_EPOCH=yesterday\nFROM scratch\n",
        &opts(&[], None),
    )
    .unwrap_err();
    assert_eq!(e.span.start, 2);
    assert!(
        e.message.contains("SOURCE_DATE_EPOCH=yesterday") && e.message.contains("seconds"),
        "{}",
        e.message
    );
}

// BuildKit: testOnBuildNewDeps
#[test]
fn a_parents_onbuild_from_is_read_by_its_child() {
    let g = ok(
        "FROM scratch AS src\nFROM scratch AS parent\nONBUILD COPY --from=src /a /a\nFROM parent\n",
    );
    assert_eq!(g.order, vec![1, 0, 2], "src is built, before the child");
    assert!(g.stages[2].stage_deps().any(|d| d == 0));
    let err = graph(
        "FROM scratch AS parent\nONBUILD COPY --from=child /a /a\nFROM parent AS child\n",
        &Options::default(),
    )
    .unwrap_err();
    assert!(
        err.message.contains("refers to the stage it is in"),
        "{}",
        err.message
    );
}

#[test]
fn a_replaced_stage_name_names_the_context() {
    let text = "FROM scratch AS deps\nFROM deps AS a\nCOPY --from=deps /x /x\n";
    let o = Options {
        replaced: ["deps".to_string()].into(),
        ..opts(&[], None)
    };
    let g = graph(text, &o).unwrap();
    assert_eq!(g.stages[1].base, Base::Image("deps".into()));
    assert_eq!(g.stages[1].edges[0].source, Source::Image("deps".into()));
    assert_eq!(g.order, vec![1], "the replaced stage is not built");
}

#[test]
fn a_mistyped_target_suggests_the_stage_as_buildkit_words_it() {
    // BuildKit: testTargetMistype.
    let file = parse_dockerfile("FROM scratch AS build\nFROM scratch\n").unwrap();
    let opts = Options {
        target: Some("bulid".into()),
        ..Options::default()
    };
    let e = resolve(file, &opts).unwrap_err();
    assert_eq!(
        e.message,
        "target stage \"bulid\" could not be found (did you mean build?)"
    );
}

#[test]
fn a_from_platform_that_expands_to_nothing_is_an_error() {
    // BuildKit: testUndeclaredArg (a misspelt $BUILDPLATFORM, `linux/${MYARCH}`).
    let err = |text: &str| {
        resolve(parse_dockerfile(text).unwrap(), &Options::default())
            .unwrap_err()
            .message
    };
    assert_eq!(
        err("FROM --platform=$BULIDPLATFORM scratch\n"),
        "empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)"
    );
    assert_eq!(
        err("ARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} scratch\n"),
        "failed to parse platform linux/${MYARCH}: \"\" is an invalid component of \"linux/\": \
platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument (did you mean MY_ARCH?)"
    );
    let fine =
        "ARG P=linux/amd64\nFROM --platform=$P scratch\nFROM --platform=$BUILDPLATFORM scratch\n";
    assert!(resolve(parse_dockerfile(fine).unwrap(), &Options::default()).is_ok());
}
