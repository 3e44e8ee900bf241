//! BuildKit's build checks as `kiln build --check` reports them: rule
//! names, message texts and lines (dockerfile_check_test.go).

use kiln_dockerfile::resolve::Platform;
use kiln_dockerfile::{parse_dockerfile, resolve, Options};

/// `(rule, line, message)` of every warning of the resolved graph.
fn warnings(text: &str) -> Vec<(&'static str, usize, String)> {
    let opts = Options {
        platform: Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        },
        ..Options::default()
    };
    let graph = resolve(parse_dockerfile(text).unwrap(), &opts).unwrap_or_else(|e| panic!("{e}"));
    graph
        .warnings
        .iter()
        .map(|w| (w.rule, w.span.start, w.message.clone()))
        .collect()
}

fn rules(text: &str) -> Vec<&'static str> {
    warnings(text).into_iter().map(|(r, _, _)| r).collect()
}

#[test]
fn shell_form_cmd_is_fine_once_shell_is_set() {
    // BuildKit: testJSONArgsRecommended
    assert_eq!(
        warnings("FROM scratch\nENTRYPOINT mycommand\n"),
        [(
            "JSONArgsRecommended",
            2,
            "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals".into()
        )]
    );
    assert!(rules("FROM scratch\nSHELL [\"/bin/custom\"]\nCMD mycommand\n").is_empty());
    let inherited =
        "FROM scratch AS base\nSHELL [\"/bin/custom\"]\nFROM base\nENTRYPOINT mycommand\n";
    assert!(rules(inherited).is_empty(), "{:?}", rules(inherited));
    // SHELL after the CMD does not cover it.
    assert_eq!(
        rules("FROM scratch\nCMD mycommand\nSHELL [\"/bin/custom\"]\n"),
        ["JSONArgsRecommended"]
    );
}

#[test]
fn a_relative_first_workdir_warns() {
    // BuildKit: testWorkdirRelativePath
    assert_eq!(
        warnings("FROM scratch\nWORKDIR app/\n"),
        [(
            "WorkdirRelativePath",
            2,
            "Relative workdir \"app/\" can have unexpected results if the base image changes"
                .into()
        )]
    );
    assert!(rules("FROM scratch AS a\nWORKDIR /app\nFROM a AS b\nWORKDIR subdir/\n").is_empty());
    assert!(rules("FROM scratch\nARG D=/srv\nWORKDIR $D\nWORKDIR sub\n").is_empty());
}

#[test]
fn expose_with_capital_protocol_or_host_part_warns() {
    // BuildKit: testExposeProtoCasing, testExposeInvalidFormat
    let found = warnings("FROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n");
    let messages: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
            "Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase",
        ]
    );
    let found = warnings("FROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n");
    let messages: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        messages,
        [
            "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
            "EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'",
            "EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'",
        ]
    );
    assert!(found
        .iter()
        .all(|(r, l, _)| *r == "ExposeInvalidFormat" && *l == 2));
}

#[test]
fn secret_looking_arg_and_env_names_warn() {
    // BuildKit: testSecretsUsedInArgOrEnv
    let text = "FROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\nENV password=bar secret=baz\n\
ARG super_duper_secret_token=foo auth=bar\nENV apikey=bar sunflower=foo\nENV git_key=\nENV PUBLIC_KEY=\n\
ARG public_token\nARG SECRET_PASSPHRASE_FILE\nENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n";
    let found = warnings(text);
    assert!(found.iter().all(|(r, _, _)| *r == "SecretsUsedInArgOrEnv"));
    let messages: Vec<String> = found
        .into_iter()
        .map(|(_, l, m)| format!("{l}: {m}"))
        .collect();
    let expected: Vec<String> = [
        (2, "ARG \"SECRET_PASSPHRASE\""),
        (3, "ENV \"SUPER_Secret\""),
        (4, "ENV \"password\""),
        (4, "ENV \"secret\""),
        (5, "ARG \"super_duper_secret_token\""),
        (5, "ARG \"auth\""),
        (6, "ENV \"apikey\""),
        (7, "ENV \"git_key\""),
    ]
    .iter()
    .map(|(l, what)| format!("{l}: Do not use ARG or ENV instructions for sensitive data ({what})"))
    .collect();
    assert_eq!(messages, expected);
}

#[test]
fn from_platform_target_platform_is_redundant() {
    // BuildKit: testRedundantTargetPlatform
    for written in ["$TARGETPLATFORM", "${TARGETPLATFORM}"] {
        assert_eq!(
            warnings(&format!("FROM --platform={written} scratch\n")),
            [(
                "RedundantTargetPlatform",
                1,
                format!("Setting platform to predefined {written} in FROM is redundant as this is the default behavior")
            )]
        );
    }
    assert!(rules("FROM --platform=$BUILDPLATFORM scratch\n").is_empty());
}

#[test]
fn from_platform_constant_warns_unless_the_stage_name_says_it() {
    // BuildKit: testFromPlatformFlagConstDisallowed
    assert_eq!(
        warnings("FROM --platform=linux/amd64 scratch\n"),
        [(
            "FromPlatformFlagConstDisallowed",
            1,
            "FROM --platform flag should not use constant value \"linux/amd64\"".into()
        )]
    );
    assert!(rules("FROM --platform=linux/amd64 scratch AS my_amd64_stage\n").is_empty());
    assert!(rules("FROM --platform=linux/amd64 scratch AS linux\n").is_empty());
    assert_eq!(
        rules("FROM --platform=${NOPE:-linux/amd64} scratch\n"),
        ["UndefinedArgInFrom"],
        "an undeclared variable in --platform is reported as in the image name"
    );
}

/// What `kiln build --check` reports: the file lints and the graph's,
/// filtered by the check configuration.
fn checked(text: &str, build_args: &[(&str, &str)]) -> Result<Vec<String>, String> {
    use kiln_dockerfile::check::{lint, CheckConfig};
    let file = parse_dockerfile(text).map_err(|e| e.to_string())?;
    let args = build_args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = CheckConfig::for_build(&file, &args).map_err(|e| e.to_string())?;
    let mut all = lint(&file);
    all.extend(resolve(file, &Options::default()).unwrap().warnings);
    Ok(all
        .into_iter()
        .filter(|w| config.keeps(w))
        .map(|w| format!("{}:{} {}", w.span.start, w.rule, w.message))
        .collect())
}

#[test]
fn definition_descriptions_are_checked_only_when_experimental_is_on() {
    // BuildKit: testDefinitionDescription
    let body = "# bar this is the bar\nARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n\
# definitely a bad comment\nARG version=latest\n# definitely a bad comment\nARG foo=baz bar=qux baz=quux\n";
    assert_eq!(checked(body, &[]).unwrap(), Vec::<String>::new());
    let on = format!("# check=experimental=InvalidDefinitionDescription\n{body}");
    assert_eq!(
        checked(&on, &[]).unwrap(),
        [
            "3:InvalidDefinitionDescription Comment for ARG should follow the format: `# foo <description>`",
            "5:InvalidDefinitionDescription Comment for FROM should follow the format: `# base <description>`",
            "7:InvalidDefinitionDescription Comment for ARG should follow the format: `# version <description>`",
            "9:InvalidDefinitionDescription Comment for ARG should follow the format: `# <arg_key> <description>`",
        ]
    );
    // Good descriptions, a bare `#` between, and skip=all does not apply
    // to an experimental rule.
    let good = "# check=skip=all;experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\n\n\
# base this is the base image\nFROM scratch AS base\n# baz this is the baz\nARG foo=baz bar=qux baz=quux\n#\nARG bit=bat\n\
# comment for something other than ARG or FROM\nCOPY Dockerfile .\n";
    assert_eq!(checked(good, &[]).unwrap(), Vec::<String>::new());
}

#[test]
fn the_check_build_arg_replaces_the_directive() {
    // BuildKit: testRuleCheckOption
    let text = "# check=skip=all\nFROM scratch as base\ncopy Dockerfile .\n";
    assert_eq!(checked(text, &[]).unwrap(), Vec::<String>::new());
    let arg = [(
        "BUILDKIT_DOCKERFILE_CHECK",
        "skip=ConsistentInstructionCasing;error=true",
    )];
    assert_eq!(
        checked(text, &arg).unwrap(),
        ["2:FromAsCasing 'as' and 'FROM' keywords' casing do not match"]
    );
    let file = parse_dockerfile(text).unwrap();
    let args = arg
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = kiln_dockerfile::check::CheckConfig::for_build(&file, &args).unwrap();
    assert!(config.error);
    // The build-arg is the builder's, never an unused one.
    let graph = resolve(
        parse_dockerfile("FROM scratch\n").unwrap(),
        &Options {
            build_args: args,
            ..Options::default()
        },
    )
    .unwrap();
    assert!(graph.warnings.is_empty(), "{:?}", graph.warnings);
}

#[test]
fn a_bad_check_option_is_an_error() {
    let e = checked("# check=skip=all;oops\nFROM scratch\n", &[]).unwrap_err();
    assert_eq!(
        e,
        "line 1: failed to parse check options: invalid check option \"oops\""
    );
    let e = checked(
        "FROM scratch\n",
        &[("BUILDKIT_DOCKERFILE_CHECK", "error=maybe")],
    )
    .unwrap_err();
    assert!(
        e.contains("failed to parse BUILDKIT_DOCKERFILE_CHECK"),
        "{e}"
    );
}

#[test]
fn older_rules_use_buildkits_texts_and_lines() {
    // BuildKit: testMultipleInstructionsDisallowed — the earlier, ignored
    // instruction is the one reported.
    let text = "FROM scratch\nENTRYPOINT [\"/a\"]\nENTRYPOINT [\"/b\"]\nCMD [\"/a\"]\nCMD [\"/b\"]\nCMD [\"/c\"]\n";
    assert_eq!(
        checked(text, &[]).unwrap(),
        [
            "2:MultipleInstructionsDisallowed Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used",
            "4:MultipleInstructionsDisallowed Multiple CMD instructions should not be used in the same stage because only the last one will be used",
            "5:MultipleInstructionsDisallowed Multiple CMD instructions should not be used in the same stage because only the last one will be used",
        ]
    );
    // BuildKit: testMaintainerDeprecated, testReservedStageName,
    // testFromAsCasing (a lowercase `from` wants a lowercase `as`).
    let text = "FROM scratch AS scratch\nMAINTAINER me@example.org\nFROM scratch AS context\nfrom scratch As lower\n";
    let found = checked(text, &[]).unwrap();
    for expected in [
        "1:ReservedStageName Stage name should not use the same name as reserved stage \"scratch\"",
        "2:MaintainerDeprecated Maintainer instruction is deprecated in favor of using label",
        "3:ReservedStageName Stage name should not use the same name as reserved stage \"context\"",
        "4:FromAsCasing 'As' and 'from' keywords' casing do not match",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected}: {found:#?}"
        );
    }
    // BuildKit: testNoEmptyContinuation
    let found = checked("FROM scratch\nCOPY Dockerfile \\\n\n.\n", &[]).unwrap();
    assert_eq!(found, ["2:NoEmptyContinuation Empty continuation line"]);
}

#[test]
fn a_check_comment_above_an_instruction_skips_its_rules_there_only() {
    // BuildKit: testSecretsUsedInArgOrEnv, testMaintainerDeprecated (the
    // instruction's PrevComment merged into its linter).
    let text = "FROM scratch\n# check=skip=MaintainerDeprecated // kept on purpose\n\nMAINTAINER a\nMAINTAINER b\n\
# check=skip=all\n#\nMAINTAINER c\n# why\n# check=skip=all\nMAINTAINER d\n";
    assert_eq!(
        checked(text, &[]).unwrap(),
        [
            "5:MaintainerDeprecated Maintainer instruction is deprecated in favor of using label",
            "8:MaintainerDeprecated Maintainer instruction is deprecated in favor of using label",
        ]
    );
}

#[test]
fn scratch_has_the_default_path_for_the_variable_checks() {
    // BuildKit: testUnmatchedVars (`$PAHT` is a typo of the PATH every
    // image has; `$PATH` itself is defined).
    assert_eq!(
        warnings("FROM scratch\nENV PATH=$PAHT:/tmp/bin\n"),
        [(
            "UndefinedVar",
            2,
            "Usage of undefined variable '$PAHT' (did you mean $PATH?)".into()
        )]
    );
    assert!(rules("FROM scratch\nENV PATH=$PATH:/x\n").is_empty());
}

#[test]
fn a_from_that_only_builds_with_build_args_warns() {
    // BuildKit: testInvalidDefaultArgInFrom (the build-args make each build
    // work; the defaults alone name no image).
    let found = |text: &str, arg: (&str, &str)| -> Vec<(usize, String)> {
        let opts = Options {
            build_args: [(arg.0.to_string(), arg.1.to_string())].into(),
            ..Options::default()
        };
        resolve(parse_dockerfile(text).unwrap(), &opts)
            .unwrap()
            .warnings
            .into_iter()
            .filter(|w| w.rule == "InvalidDefaultArgInFrom")
            .map(|w| (w.span.start, w.message))
            .collect()
    };
    let msg = |name: &str| {
        format!("Default value for ARG {name} results in empty or invalid base image name")
    };
    assert_eq!(
        found(
            "ARG VERSION\nFROM busybox:$VERSION\n",
            ("VERSION", "latest")
        ),
        [(2, msg("busybox:$VERSION"))]
    );
    assert_eq!(
        found("ARG IMAGE\nFROM $IMAGE\n", ("IMAGE", "busybox:latest")),
        [(2, msg("$IMAGE"))]
    );
    assert_eq!(
        found("ARG SFX=\"box:\"\nFROM busy${SFX}\n", ("SFX", "box:latest")),
        [(2, msg("busy${SFX}"))]
    );
    for text in [
        "ARG VERSION=\"latest\"\nFROM busybox:${VERSION}\n",
        "ARG V=\"\"\nFROM busybox:stable${V}\n",
        "ARG V\nFROM busybox:stable${V}\n",
        "ARG R=registry.example:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nFROM $R\n",
        "ARG D=/srv/base\nFROM oci:$D:latest\n",
    ] {
        assert_eq!(found(text, ("V", "-musl")), [], "{text}");
    }
}

#[test]
fn the_lines_above_an_error_are_still_checked() {
    // BuildKit: testWarningsBeforeError.
    use kiln_dockerfile::check::warnings_before;
    let text = "FROM scratch AS BadStageName\n# check=skip=LegacyKeyValueFormat\nENV a b\nMAINTAINER me\nBADCMD\nMAINTAINER later\n";
    let err = parse_dockerfile(text).unwrap_err();
    let found: Vec<(usize, &str)> = warnings_before(text, &err, &Default::default())
        .iter()
        .map(|w| (w.span.start, w.rule))
        .collect();
    assert_eq!(found, [(1, "StageNameCasing"), (4, "MaintainerDeprecated")]);
    // Nothing to check before the first FROM.
    let err = parse_dockerfile("BADCMD\nFROM scratch\n").unwrap_err();
    assert!(warnings_before("BADCMD\nFROM scratch\n", &err, &Default::default()).is_empty());
}
