//! Scheduling by step, rootless: a stage starts at once and only the step
//! that reads another stage waits for it.

mod support;

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::Case;

/// Two stages whose first RUNs each wait (up to 20 s) for the other's
/// marker in a shared cache mount: they only finish if they run at the
/// same time. `WAIT` empty skips the waiting (and names the markers).
const MEET: &str = r#"FROM BASE AS build
ARG WAIT
RUN --mount=type=cache,id=meet,target=/meet touch /meet/build$WAIT && \
    if [ -n "$WAIT" ]; then i=0; while [ ! -e /meet/final$WAIT ]; do \
      i=$((i+1)); [ $i -lt 200 ] || { echo "final stage never ran beside build"; exit 9; }; sleep 0.1; done; fi && \
    echo built > /out
FROM BASE
ARG WAIT
RUN --mount=type=cache,id=meet,target=/meet touch /meet/final$WAIT && \
    if [ -n "$WAIT" ]; then i=0; while [ ! -e /meet/build$WAIT ]; do \
      i=$((i+1)); [ $i -lt 200 ] || { echo "build stage never ran beside final"; exit 9; }; sleep 0.1; done; fi && \
    echo final > /final
COPY --from=build /out /out
"#;

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_stage_runs_its_own_steps_beside_the_stage_it_copies_from() {
    let case = Case::new("meet");
    case.dockerfile(MEET);
    let out = case.path("out");
    let dest = format!("type=local,dest={}", out.display());
    case.build(&["--jobs", "2", "--build-arg", "WAIT=1", "-o", &dest]);
    assert_eq!(fs::read_to_string(out.join("out")).unwrap(), "built\n");
    assert_eq!(fs::read_to_string(out.join("final")).unwrap(), "final\n");

    // One job: the same build, no waiting, no deadlock; and the image is
    // the same whatever the number of jobs.
    let iid = |jobs: &str, name: &str| {
        let file = case.path(name);
        let file_arg = file.to_str().unwrap().to_string();
        case.build(&[
            "--jobs",
            jobs,
            "--no-cache",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1000000000",
            "--iidfile",
            &file_arg,
        ]);
        fs::read_to_string(file).unwrap()
    };
    assert_eq!(iid("1", "one.iid"), iid("2", "two.iid"));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_stage_waiting_to_copy_from_a_failing_stage_fails_with_its_error() {
    let case = Case::new("fails");
    case.dockerfile(
        "FROM BASE AS build\nRUN sleep 1; echo the builder broke; exit 3\n\
         FROM BASE\nRUN echo final > /final\nCOPY --from=build /out /out\n",
    );
    let out = build_within(&case, &["--jobs", "2"]);
    let text = support::fails(&out);
    assert!(
        text.contains("error: Dockerfile:2:") && text.contains("exit code: 3"),
        "the builder's error is the build's:\n{text}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn one_job_builds_a_stage_whose_base_images_trigger_reads_a_later_stage() {
    let case = Case::new("one-job");
    case.dockerfile("FROM BASE\nONBUILD COPY --from=assets /a /a\n");
    case.build(&["-t", "parent"]);
    // The target starts first (`assets` is only known from the trigger):
    // waiting for `assets`, it must give the only job slot back.
    case.dockerfile("FROM BASE AS assets\nRUN echo asset > /a\nFROM parent\nRUN cat /a > /seen\n");
    let out = case.path("out");
    let dest = format!("type=local,dest={}", out.display());
    let built = build_within(&case, &["--jobs", "1", "-o", &dest]);
    assert!(built.status.success(), "{}", support::text(&built));
    assert_eq!(fs::read_to_string(out.join("seen")).unwrap(), "asset\n");
}

/// `kiln build ARGS… CONTEXT`, killed (and the test failed) if it has not
/// ended within a minute: a hang guard, not a timing assertion (these
/// builds take about a second).
fn build_within(case: &Case, args: &[&str]) -> Output {
    let mut child = Command::new(support::kiln_bin())
        .arg("--root")
        .arg(case.store())
        .arg("build")
        .args(args)
        .arg(case.ctx())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kiln build {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
