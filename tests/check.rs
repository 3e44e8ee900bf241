//! `kiln build --check` as a user runs it: exit status, summary, errors
//! with `file:line` and the offending line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("kiln runs")
}

fn context(dockerfile: &str) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn the_example_checks_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = kiln(&["build", "--check", "examples/multistage"], &root);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("2 stages"), "{stdout}");
    assert!(stdout.contains("builder FROM busybox:latest"), "{stdout}");
    assert!(stdout.contains("reads builder"), "{stdout}");
    assert!(stdout.contains("no warnings"), "{stdout}");
}

#[test]
fn target_and_build_args() {
    let dir = context("ARG IMG=alpine\nFROM $IMG AS a\nFROM busybox AS b\nRUN false\n");
    let out = kiln(
        &[
            "build",
            "--check",
            "--target",
            "a",
            "--build-arg",
            "IMG=debian",
            ".",
        ],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("target a builds 1"), "{stdout}");
    assert!(stdout.contains("a FROM debian"), "{stdout}");
    let out = kiln(&["build", "--check", "--target", "c", "."], dir.path());
    assert!(!out.status.success());
    assert!(text(&out)
        .1
        .contains("target stage \"c\" could not be found"));
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = context("FROM busybox\nRUN true\nRUNN make\n");
    let out = kiln(&["build", "--check", "."], dir.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("Dockerfile:3: unknown instruction: RUNN (did you mean RUN?)"),
        "{stderr}"
    );
    assert!(stderr.contains("   3 | RUNN make"), "{stderr}");

    std::fs::write(
        dir.path().join("other.Dockerfile"),
        "FROM a\nHEALTHCHECK --interval=5 CMD true\n",
    )
    .unwrap();
    let out = kiln(
        &["build", "--check", "-f", "other.Dockerfile", "."],
        dir.path(),
    );
    let (_, stderr) = text(&out);
    assert!(stderr.starts_with("other.Dockerfile:2: "), "{stderr}");
    assert!(stderr.contains("missing unit"), "{stderr}");
}

#[test]
fn empty_and_missing_dockerfiles() {
    let dir = context("# nothing here\n\n");
    let out = kiln(&["build", "--check", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("empty"));
    let out = kiln(&["build", "--check", "-f", "nope", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("cannot read the Dockerfile nope"),
        "{}",
        text(&out).1
    );
}

#[test]
fn warnings_are_listed_and_check_directive_is_honoured() {
    let dockerfile = "FROM busybox as Build\nMAINTAINER me\nCMD echo hi\n";
    let dir = context(dockerfile);
    let out = kiln(&["build", "--check", "."], dir.path());
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for rule in [
        "FromAsCasing",
        "StageNameCasing",
        "MaintainerDeprecated",
        "JSONArgsRecommended",
    ] {
        assert!(
            stdout.contains(&format!("WARN: {rule}")),
            "{rule}: {stdout}"
        );
    }
    assert!(stdout.contains("(Dockerfile:1)"));
    let dir = context(&format!(
        "# check=skip=FromAsCasing,StageNameCasing;error=true\n{dockerfile}"
    ));
    let out = kiln(&["build", "--check", "."], dir.path());
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "error=true fails the check");
    assert!(
        !stdout.contains("FromAsCasing") && stdout.contains("MaintainerDeprecated"),
        "{stdout}"
    );
}

#[test]
fn the_check_build_arg_overrides_the_directive() {
    // BuildKit: testRuleCheckOption
    let dir = context("# check=error=true\nFROM scratch as base\n");
    let out = kiln(&["build", "--check", "."], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).0);
    let args = ["build", "--check", "--build-arg"];
    let skip = [&args[..], &["BUILDKIT_DOCKERFILE_CHECK=skip=all", "."]].concat();
    let out = kiln(&skip, dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("no warnings found"), "{stdout}");
    assert!(!stdout.contains("UnusedBuildArg"), "{stdout}");
    let bad = [&args[..], &["BUILDKIT_DOCKERFILE_CHECK=skip", "."]].concat();
    let out = kiln(&bad, dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("failed to parse BUILDKIT_DOCKERFILE_CHECK: invalid check option \"skip\""),
        "{}",
        text(&out).1
    );
}

/// The `WARN:` lines of `kiln build --check` in `dir`.
fn warn_lines(dir: &Path) -> Vec<String> {
    let out = kiln(&["build", "--check", "."], dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    stdout
        .lines()
        .filter(|l| l.starts_with("WARN:"))
        .map(String::from)
        .collect()
}

#[test]
fn copying_a_dockerignored_file_warns() {
    // BuildKit: testCopyIgnoredFiles, testCopyIgnoredFileContextRoot
    let dir = context("FROM scratch\nCOPY Dockerfile .\nADD ./Dockerfile /windy\nCOPY --from=busybox /Dockerfile /b\n");
    std::fs::write(dir.path().join(".dockerignore"), "\nDockerfile\n").unwrap();
    assert_eq!(
        warn_lines(dir.path()),
        [
            "WARN: CopyIgnoredFile - Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore (Dockerfile:2)",
            "WARN: CopyIgnoredFile - Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore (Dockerfile:3)",
        ]
    );
    // A `!` pattern turns the check off; the root only warns when `*`
    // drops all of it.
    std::fs::write(dir.path().join(".dockerignore"), "**\n!Dockerfile\n").unwrap();
    assert_eq!(warn_lines(dir.path()), Vec::<String>::new());
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY . .\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), ".*\n").unwrap();
    assert_eq!(warn_lines(dir.path()), Vec::<String>::new());
    std::fs::write(dir.path().join(".dockerignore"), "*\n").unwrap();
    assert_eq!(
        warn_lines(dir.path()),
        ["WARN: CopyIgnoredFile - Attempting to Copy file \".\" that is excluded by .dockerignore (Dockerfile:2)"]
    );
}

#[test]
fn dockerfile_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--check", "-f", "-", "."])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM scratch\nCOPY a /a\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
}

/// A temporary directory removed on drop (std only).
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "kiln-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
