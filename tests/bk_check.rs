//! BuildKit's build checks (frontend/dockerfile/dockerfile_check_test.go),
//! ported. BuildKit looks at each Dockerfile twice: through the lint
//! subrequest (`docker build --check`: every stage) and in the progress
//! stream of a real build (the target's stages). kiln's equivalents are
//! `kiln build --check` and the `WARN:` lines of `kiln build`; both are
//! compared with BuildKit's expected rule, line and text. Run by
//! scripts/test-build.sh as an unprivileged user.

mod support;

#[path = "bk_check/lint.rs"]
mod lint;

use lint::{check, clean, run, Lint};
use support::Case;

/// BuildKit: `failed to calculate checksum of ref … "/Dockerfile": not found`.
const ROOT_NOT_FOUND: &str = ": Dockerfile: no such file or directory";

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn definition_description() {
    clean("# check=skip=all;experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\n\n# base this is the base image\nFROM scratch AS base\n\n# version this is the version number\nARG version=latest\n\n# baz this is the baz\nARG foo=baz bar=qux baz=quux\n#\nARG bit=bat\n\n# comment for something other than ARG or FROM\nCOPY Dockerfile .\n");
    const R: &str = "InvalidDefinitionDescription";
    check(Lint {
        dockerfile: "# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\nARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n# definitely a bad comment\nARG version=latest\n# definitely a bad comment\nARG foo=baz bar=qux baz=quux\n",
        warnings: &[
            (3, R, "Comment for ARG should follow the format: `# foo <description>`"),
            (5, R, "Comment for FROM should follow the format: `# base <description>`"),
            (7, R, "Comment for ARG should follow the format: `# version <description>`"),
            (9, R, "Comment for ARG should follow the format: `# <arg_key> <description>`"),
        ],
        ..Lint::default()
    });
}

const COPY_IGNORED: [(usize, &str, &str); 2] = [
    (
        3,
        "CopyIgnoredFile",
        "Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore",
    ),
    (
        4,
        "CopyIgnoredFile",
        "Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore",
    ),
];

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_ignored_files() {
    let ignore = Some("\nDockerfile\n");
    // The build then fails: the ignored Dockerfile is not in the context.
    check(Lint {
        dockerfile: "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
        dockerignore: ignore,
        warnings: &COPY_IGNORED,
        build_error: Some(ROOT_NOT_FOUND),
        ..Lint::default()
    });
    check(Lint {
        dockerfile: "# check=skip=CopyIgnoredFile\n\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
        dockerignore: ignore,
        build_error: Some(ROOT_NOT_FOUND),
        ..Lint::default()
    });
    check(Lint {
        dockerfile: "\nFROM scratch AS base\nCOPY Dockerfile /foobar\nADD Dockerfile /windy\n\nFROM base\nCOPY --from=base /foobar /Dockerfile\n",
        dockerignore: Some("\nfoobar\n"),
        ..Lint::default()
    });
    for dockerfile in [
        "\nFROM scratch\nCOPY ./Dockerfile .\n",
        "\nFROM scratch\nCOPY . .\n\t",
    ] {
        check(Lint {
            dockerfile,
            dockerignore: Some("\n**\n!Dockerfile\n"),
            ..Lint::default()
        });
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_ignored_file_context_root() {
    let dockerfile = "\nFROM scratch\nCOPY . .\n";
    check(Lint {
        dockerfile,
        dockerignore: Some("\n.*\n"),
        ..Lint::default()
    });
    check(Lint {
        dockerfile,
        dockerignore: Some("\n*\n"),
        warnings: &[(
            3,
            "CopyIgnoredFile",
            "Attempting to Copy file \".\" that is excluded by .dockerignore",
        )],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn secrets_used_in_arg_or_env() {
    const R: &str = "SecretsUsedInArgOrEnv";
    check(Lint {
        dockerfile: "# check=skip=InvalidDefinitionDescription\n\nFROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\nENV password=bar secret=baz\nARG super_duper_secret_token=foo auth=bar\nENV apikey=bar sunflower=foo\nENV git_key=\nENV PUBLIC_KEY=\nARG public_token\nARG SECRET_PASSPHRASE_FILE\nENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n# check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n# check=skip=SecretsUsedInArgOrEnv // allow secret in arg\nARG password\n# check=skip=all // is local to only this instruction\nENV alternate_password=bar\n# check=skip=all // is local to only this instruction\nARG alternate_password\n",
        warnings: &[
            (4, R, "Do not use ARG or ENV instructions for sensitive data (ARG \"SECRET_PASSPHRASE\")"),
            (5, R, "Do not use ARG or ENV instructions for sensitive data (ENV \"SUPER_Secret\")"),
            (6, R, "Do not use ARG or ENV instructions for sensitive data (ENV \"password\")"),
            (6, R, "Do not use ARG or ENV instructions for sensitive data (ENV \"secret\")"),
            (7, R, "Do not use ARG or ENV instructions for sensitive data (ARG \"auth\")"),
            (7, R, "Do not use ARG or ENV instructions for sensitive data (ARG \"super_duper_secret_token\")"),
            (8, R, "Do not use ARG or ENV instructions for sensitive data (ENV \"apikey\")"),
            (9, R, "Do not use ARG or ENV instructions for sensitive data (ENV \"git_key\")"),
        ],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn all_target_unmarshal() {
    // Deliberate difference (ARCHITECTURE.md): kiln's stage checks cover
    // the stages the target builds, with --check too; BuildKit's lint
    // subrequest also reports `$foo` of the unbuilt stage `first` (line 3).
    check(Lint {
        dockerfile: "\nFROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n",
        warnings: &[(6, "UndefinedVar", "Usage of undefined variable '$bar'")],
        ..Lint::default()
    });
}

const FROM_AS: (usize, &str, &str) = (
    2,
    "FromAsCasing",
    "'as' and 'FROM' keywords' casing do not match",
);

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn rule_check_option() {
    let body = "FROM scratch as base\ncopy Dockerfile .\n";
    for directive in [
        "#check=skip=all",
        "#check=skip=all;error=true",
        "#check=skip=ConsistentInstructionCasing,FromAsCasing",
        "#check=skip=ConsistentInstructionCasing,FromAsCasing;error=true",
    ] {
        clean(&format!("{directive}\n{body}"));
    }
    check(Lint {
        dockerfile: &format!("#check=skip=ConsistentInstructionCasing\n{body}"),
        warnings: &[FROM_AS],
        ..Lint::default()
    });
    check(Lint {
        dockerfile: &format!("#check=skip=ConsistentInstructionCasing;error=true\n{body}"),
        warnings: &[FROM_AS],
        error: Some("lint violation found for rules: FromAsCasing"),
        ..Lint::default()
    });
    check(Lint {
        dockerfile: &format!("#check=skip=all\n{body}"),
        build_args: &["BUILDKIT_DOCKERFILE_CHECK=skip=ConsistentInstructionCasing;error=true"],
        warnings: &[FROM_AS],
        error: Some("lint violation found for rules: FromAsCasing"),
        ..Lint::default()
    });
    check(Lint {
        dockerfile: &format!("#check=error=true\n{body}"),
        build_args: &["BUILDKIT_DOCKERFILE_CHECK=skip=all"],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn stage_name() {
    check(Lint {
        dockerfile: "\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n\n# warning: 'as' should match 'FROM' cmd casing.\n#\nFROM scratch as base2\n\nFROM scratch AS base3\n",
        warnings: &[
            (4, "StageNameCasing", "Stage name 'BadStageName' should be lowercase"),
            (8, "FromAsCasing", "'as' and 'FROM' keywords' casing do not match"),
        ],
        ..Lint::default()
    });
    check(Lint {
        dockerfile: "\n# warning: 'AS' should match 'from' cmd casing.\n#\nfrom scratch AS base\n\nfrom scratch as base2\n",
        warnings: &[(4, "FromAsCasing", "'AS' and 'from' keywords' casing do not match")],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn no_empty_continuation() {
    check(Lint {
        dockerfile: "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n",
        warnings: &[(6, "NoEmptyContinuation", "Empty continuation line")],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn consistent_instruction_casing() {
    const R: &str = "ConsistentInstructionCasing";
    let cases: [(&str, &str); 6] = [
        ("\n# warning: 'FROM' should be either lowercased or uppercased\n#\nFrom scratch as base\nFROM scratch AS base2\n",
         "Command 'From' should match the case of the command majority (uppercase)"),
        ("\nFROM scratch\n# warning: 'copy' should match command majority's casing (uppercase)\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n",
         "Command 'copy' should match the case of the command majority (uppercase)"),
        ("\n# warning: 'frOM' should be either lowercased or uppercased\n#\nfrOM scratch as base\nfrom scratch as base2\n",
         "Command 'frOM' should match the case of the command majority (lowercase)"),
        ("\nfrom scratch\n# warning: 'COPY' should match command majority's casing (lowercase)\nCOPY Dockerfile /foo\ncopy Dockerfile /bar\n",
         "Command 'COPY' should match the case of the command majority (lowercase)"),
        ("\n# warning: 'from' should match command majority's casing (uppercase)\n#\nfrom scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\nCOPY Dockerfile /baz\n",
         "Command 'from' should match the case of the command majority (uppercase)"),
        ("\n# warning: 'FROM' should match command majority's casing (lowercase)\n#\nFROM scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\ncopy Dockerfile /baz\n",
         "Command 'FROM' should match the case of the command majority (lowercase)"),
    ];
    for (dockerfile, detail) in cases {
        check(Lint {
            dockerfile,
            warnings: &[(4, R, detail)],
            ..Lint::default()
        });
    }
    clean("\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n");
    clean("\nFROM scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\n");
    clean("\nFROM BASE\nRUN <<'EOT'\nenv\nEOT\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn duplicate_stage_name() {
    // Deliberate difference (ARCHITECTURE.md): a duplicate stage name is
    // an error in kiln, not a warning; the message is BuildKit's.
    let case = Case::new("dup");
    case.dockerfile("\nFROM scratch AS b\nFROM scratch AS b\n");
    for extra in [&["--check"][..], &[]] {
        let ctx = case.ctx();
        let args = [&["build"][..], extra, &[ctx.to_str().unwrap()]].concat();
        let all = support::fails(&case.kiln(&args));
        assert!(all.contains("Dockerfile:3"), "{all}");
        assert!(all.contains("\"b\""), "{all}");
    }
    clean("\nFROM scratch AS b1\nFROM scratch AS b2\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn reserved_stage_name() {
    const R: &str = "ReservedStageName";
    check(Lint {
        dockerfile: "\nFROM scratch AS scratch\nFROM scratch AS context\n",
        warnings: &[
            (
                2,
                R,
                "Stage name should not use the same name as reserved stage \"scratch\"",
            ),
            (
                3,
                R,
                "Stage name should not use the same name as reserved stage \"context\"",
            ),
        ],
        ..Lint::default()
    });
    clean("\nFROM scratch\nFROM scratch AS a\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn json_args_recommended() {
    for what in ["CMD", "ENTRYPOINT"] {
        let detail = format!(
            "JSON arguments recommended for {what} to prevent unintended behavior related to OS signals"
        );
        check(Lint {
            dockerfile: &format!("\nFROM scratch\n{what} mycommand\n"),
            warnings: &[(3, "JSONArgsRecommended", &detail)],
            ..Lint::default()
        });
        clean(&format!(
            "\nFROM scratch\nSHELL [\"/usr/bin/customshell\"]\n{what} mycommand\n"
        ));
        clean(&format!(
            "\nFROM scratch AS base\nSHELL [\"/usr/bin/customshell\"]\n\nFROM base\n{what} mycommand\n"
        ));
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn maintainer_deprecated() {
    check(Lint {
        dockerfile: "\nFROM scratch\nMAINTAINER me@example.org\n",
        warnings: &[(
            3,
            "MaintainerDeprecated",
            "Maintainer instruction is deprecated in favor of using label",
        )],
        ..Lint::default()
    });
    clean("\nFROM scratch\nLABEL org.opencontainers.image.authors=\"me@example.org\"\n");
    clean("\nFROM scratch\n# check=skip=JSONArgsRecommended\nCMD mycommand\n");
    clean("\nFROM scratch\n# check=skip=JSONArgsRecommended\nENTRYPOINT mycommand\n");
    clean("\nFROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me@example.org\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn warnings_before_error() {
    check(Lint {
        dockerfile: "\nFROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n",
        warnings: &[
            (
                2,
                "StageNameCasing",
                "Stage name 'BadStageName' should be lowercase",
            ),
            (
                3,
                "MaintainerDeprecated",
                "Maintainer instruction is deprecated in favor of using label",
            ),
        ],
        error: Some("Dockerfile:4: unknown instruction: BADCMD"),
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn undeclared_arg() {
    for dockerfile in [
        "\nARG base=scratch\nFROM $base\nCOPY Dockerfile .\n",
        "\nARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
        "\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
        "\nARG DEBUG\nFROM scratch${DEBUG}\nCOPY Dockerfile .\n",
        "\nARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n",
        "\nARG DEBUG=\"\"\nFROM scratch${DEBUG-@bogus}\nCOPY Dockerfile .\n",
    ] {
        clean(dockerfile);
    }
    const R: &str = "UndefinedArgInFrom";
    // Both runs fail, as BuildKit's, with its error. BuildKit also prints
    // the UndefinedArgInFrom warning ("FROM argument 'BULIDPLATFORM' is not
    // declared (did you mean BUILDPLATFORM?)") before it; kiln prints the
    // file checks of the lines above an error, not the resolver's.
    for (dockerfile, error) in [
        (
            "\nFROM --platform=$BULIDPLATFORM scratch\nCOPY Dockerfile .\n",
            "Dockerfile:2: empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)",
        ),
        (
            "\nARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} BASE\nCOPY Dockerfile .\n\t",
            "Dockerfile:4: failed to parse platform linux/${MYARCH}: \"\" is an invalid component of \"linux/\": platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument (did you mean MY_ARCH?)",
        ),
    ] {
        let case = Case::new("platform");
        case.dockerfile(dockerfile);
        for extra in [&["--check"][..], &[]] {
            run(&case, extra, Some(error));
        }
    }
    check(Lint {
        dockerfile: "\nARG tag=latest\nFROM BASE${version} AS b\nCOPY Dockerfile .\n",
        warnings: &[(3, R, "FROM argument 'version' is not declared")],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn workdir_relative_path() {
    check(Lint {
        dockerfile: "\nFROM scratch\nWORKDIR app/\n",
        warnings: &[(
            3,
            "WorkdirRelativePath",
            "Relative workdir \"app/\" can have unexpected results if the base image changes",
        )],
        ..Lint::default()
    });
    clean("\nFROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n");
    clean("\nFROM scratch\n# check=skip=WorkdirRelativePath\nWORKDIR app/\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn unmatched_vars() {
    clean("\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n");
    clean("\nFROM BASE AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n");
    clean("\nFROM BASE\nRUN echo $PATH\n");
    // The warned cases are FROM scratch here (BuildKit: alpine): kiln does
    // not pull to lint, so it checks variables only where it knows the
    // whole environment (a difference left: no UndefinedVar in a stage
    // FROM an image). The RUN case is --check only: scratch has no shell.
    const R: &str = "UndefinedVar";
    check(Lint {
        dockerfile: "\nFROM scratch\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n",
        warnings: &[(3, R, "Usage of undefined variable '$foo'")],
        check_only: true,
        ..Lint::default()
    });
    check(Lint {
        dockerfile: "\nFROM scratch\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n\t",
        warnings: &[(
            6,
            R,
            "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)",
        )],
        ..Lint::default()
    });
    check(Lint {
        dockerfile: "\nFROM scratch\nENV PATH=$PAHT:/tmp/bin\n\t\t",
        warnings: &[(
            3,
            R,
            "Usage of undefined variable '$PAHT' (did you mean $PATH?)",
        )],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn multiple_instructions_disallowed() {
    const R: &str = "MultipleInstructionsDisallowed";
    let w = |what: &str| {
        format!("Multiple {what} instructions should not be used in the same stage because only the last one will be used")
    };
    let (e, c, h) = (w("ENTRYPOINT"), w("CMD"), w("HEALTHCHECK"));
    check(Lint {
        dockerfile: "\nFROM scratch\nENTRYPOINT [\"/myapp\"]\nENTRYPOINT [\"/myotherapp\"]\nCMD [\"/myapp\"]\nCMD [\"/myotherapp\"]\nHEALTHCHECK CMD [\"/myapp\"]\nHEALTHCHECK CMD [\"/myotherapp\"]\n",
        warnings: &[(3, R, &e), (5, R, &c), (7, R, &h)],
        ..Lint::default()
    });
    check(Lint {
        dockerfile: "\nFROM scratch\nENTRYPOINT [\"/myapp\"]\nCMD [\"/myapp\"]\nHEALTHCHECK CMD [\"/myapp\"]\nCOPY <<EOF /a.txt\nHello, World!\nEOF\nENTRYPOINT [\"/myotherapp\"]\nCMD [\"/myotherapp\"]\nHEALTHCHECK CMD [\"/myotherapp\"]\n",
        warnings: &[(3, R, &e), (4, R, &c), (5, R, &h)],
        ..Lint::default()
    });
    clean("\nFROM scratch AS a\nENTRYPOINT [\"/myapp\"]\nCMD [\"/myapp\"]\nHEALTHCHECK CMD [\"/myapp\"]\n\nFROM a AS b\nENTRYPOINT [\"/myotherapp\"]\nCMD [\"/myotherapp\"]\nHEALTHCHECK CMD [\"/myotherapp\"]\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn legacy_key_value_format() {
    const R: &str = "LegacyKeyValueFormat";
    const ENV: &str = "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format";
    const LABEL: &str =
        "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format";
    check(Lint {
        dockerfile: "\nFROM scratch\nENV testkey value\nLABEL key value\n",
        warnings: &[(3, R, ENV), (4, R, LABEL)],
        ..Lint::default()
    });
    clean("\nFROM scratch\nENV testkey=value\nLABEL key=value\n");
    // In a stage the target does not build: --check reports them, as
    // BuildKit's lint subrequest. (BuildKit's build does not; kiln's does,
    // its file-wide checks looking at every stage: a difference left.)
    check(Lint {
        dockerfile: "\nFROM scratch AS a\n\nFROM a AS b\nENV testkey value\nLABEL key value\n\nFROM a AS c\n",
        warnings: &[(5, R, ENV), (6, R, LABEL)],
        check_only: true,
        ..Lint::default()
    });
    clean("\nFROM scratch\n# check=skip=LegacyKeyValueFormat\nENV testkey value\n# check=skip=LegacyKeyValueFormat\nLABEL key value\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn redundant_target_platform() {
    for written in ["$TARGETPLATFORM", "${TARGETPLATFORM}"] {
        let detail = format!(
            "Setting platform to predefined {written} in FROM is redundant as this is the default behavior"
        );
        check(Lint {
            dockerfile: &format!("\nFROM --platform={written} scratch\n"),
            warnings: &[(2, "RedundantTargetPlatform", &detail)],
            ..Lint::default()
        });
    }
    clean("\n# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn invalid_default_arg_in_from() {
    // The images are Docker Hub's: --check pulls nothing, the build would.
    const R: &str = "InvalidDefaultArgInFrom";
    let cases: [(&str, &str, Option<&str>); 5] = [
        (
            "\nARG VERSION\nFROM busybox:$VERSION\n",
            "VERSION=latest",
            Some("Default value for ARG busybox:$VERSION results in empty or invalid base image name"),
        ),
        (
            "\nARG IMAGE\nFROM $IMAGE\n",
            "IMAGE=busybox:latest",
            Some("Default value for ARG $IMAGE results in empty or invalid base image name"),
        ),
        (
            "\nARG SFX=\"box:\"\nFROM busy${SFX}\n",
            "SFX=box:latest",
            Some("Default value for ARG busy${SFX} results in empty or invalid base image name"),
        ),
        ("\nARG VERSION=\"latest\"\nFROM busybox:${VERSION}\n", "VERSION=latest", None),
        (
            "\nARG BUSYBOX_VARIANT=\"\"\nFROM busybox:stable${BUSYBOX_VARIANT}\n",
            "BUSYBOX_VARIANT=-musl",
            None,
        ),
    ];
    for (dockerfile, arg, detail) in cases {
        let warnings: Vec<(usize, &str, &str)> = detail.iter().map(|d| (3, R, *d)).collect();
        check(Lint {
            dockerfile,
            build_args: &[arg],
            warnings: &warnings,
            check_only: true,
            ..Lint::default()
        });
    }
    check(Lint {
        dockerfile: "\n\tARG BUSYBOX_VARIANT\n\tFROM busybox:stable${BUSYBOX_VARIANT}\n\t",
        build_args: &["BUSYBOX_VARIANT=-musl"],
        check_only: true,
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn from_platform_flag_const_disallowed() {
    let host = format!("linux/{}", support::host_arch());
    check(Lint {
        dockerfile: &format!("\nFROM --platform={host} scratch\n"),
        warnings: &[(
            2,
            "FromPlatformFlagConstDisallowed",
            &format!("FROM --platform flag should not use constant value \"{host}\""),
        )],
        ..Lint::default()
    });
    clean(&format!(
        "\nFROM --platform={host} scratch AS my_amd64_stage\n"
    ));
    clean(&format!("\nFROM --platform={host} scratch AS linux\n"));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn expose_proto_casing() {
    const R: &str = "ExposeProtoCasing";
    check(Lint {
        dockerfile: "\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n",
        warnings: &[
            (
                3,
                R,
                "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
            ),
            (
                3,
                R,
                "Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase",
            ),
        ],
        ..Lint::default()
    });
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn expose_invalid_format() {
    const R: &str = "ExposeInvalidFormat";
    check(Lint {
        dockerfile: "\nFROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n",
        warnings: &[
            (3, R, "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'"),
            (3, R, "EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'"),
            (3, R, "EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'"),
        ],
        ..Lint::default()
    });
}
