//! `.dockerignore` end to end, rootless: whatever the spelling of a path
//! (`..`, a symlink to an ignored file, a path through a symlinked dir),
//! COPY, ADD, `RUN --mount=type=bind` and the step cache see the context
//! as BuildKit sends it, filtered; outward symlinks give errors that name
//! the path and the line. Run by scripts/test-build.sh.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use support::{text, tool, Case};

const SECRET: &str = "TOP-SECRET";
const SECRET2: &str = "SECRET-TWO";

/// A context with two ignored files, a symlink to one and a symlinked
/// dir holding the other.
fn secret_context(case: &Case) {
    case.file(".dockerignore", "secret.txt\nsub/secret2\n");
    case.file("secret.txt", SECRET);
    case.file("keep.txt", "keep");
    case.file("sub/secret2", SECRET2);
    case.file("sub/ok", "ok");
    symlink("secret.txt", case.ctx().join("to-ignored")).unwrap();
    symlink("sub", case.ctx().join("sub-link")).unwrap();
}

/// Every file under `dir` (not following symlinks) whose content is a
/// secret, as paths below `dir`.
fn leaks(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let body = fs::read_to_string(e.path()).unwrap_or_default();
                if body.contains(SECRET) || body.contains(SECRET2) {
                    found.push(e.path().strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn ignored_files_stay_out_whatever_the_spelling() {
    let case = Case::new("ignore-spelling");
    secret_context(&case);
    // A dir that holds an ignored entry keeps its own mode and mtime.
    let sub = case.ctx().join("sub");
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o750)).unwrap();
    tool("touch", &["-d", "@978307200", sub.to_str().unwrap()]);
    case.dockerfile(
        "FROM BASE\n\
         COPY ../ /r1/\n\
         COPY ../../ /r2/\n\
         ADD ../ /r3/\n\
         COPY sub-link /r4/\n\
         ADD sub-link /r5/\n\
         COPY . /\n\
         RUN --mount=type=bind,source=sub-link,target=/m cat /m/* > /r6; ls /m >> /r6\n\
         RUN --mount=type=bind,target=/m cat /m/to-ignored /m/sub-link/secret2 /m/sub/* > /r7 2>&1 || true\n\
         RUN --mount=type=bind,source=sub-link,target=/w,rw touch /w/new && cat /w/* > /r8; ls /w >> /r8\n",
    );
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        leaks(&out),
        Vec::<String>::new(),
        "ignored files reached the image"
    );
    // What is not ignored is all there, symlinks as symlinks.
    for r in ["r1", "r2", "r3"] {
        assert_eq!(
            fs::read_to_string(out.join(r).join("keep.txt")).unwrap(),
            "keep"
        );
        assert_eq!(
            fs::read_to_string(out.join(r).join("sub/ok")).unwrap(),
            "ok"
        );
    }
    let copied = fs::metadata(out.join("r1/sub")).unwrap();
    assert_eq!(
        (copied.permissions().mode() & 0o7777, copied.mtime()),
        (0o750, 978307200)
    );
    assert_eq!(fs::read_to_string(out.join("r4/ok")).unwrap(), "ok");
    assert_eq!(fs::read_to_string(out.join("r5/ok")).unwrap(), "ok");
    assert_eq!(
        fs::read_link(out.join("to-ignored")).unwrap(),
        Path::new("secret.txt")
    );
    assert!(!out.join("secret.txt").exists() && !out.join("sub/secret2").exists());
    assert_eq!(fs::read_to_string(out.join("r6")).unwrap(), "okok\n");
    assert_eq!(
        fs::read_to_string(out.join("r8")).unwrap(),
        "oknew\nok\n",
        "a writable bind shows the filtered context too"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_symlink_to_an_ignored_file_dangles_for_every_reader() {
    let case = Case::new("ignore-links");
    secret_context(&case);
    let routes = [
        ("COPY to-ignored /x", "to-ignored"),
        ("ADD to-ignored /x", "to-ignored"),
        (
            "RUN --mount=type=bind,source=to-ignored,target=/x cat /x > /seen",
            "to-ignored",
        ),
        ("COPY sub-link/secret2 /x", "sub-link/secret2"),
        ("ADD sub-link/secret2 /x", "sub-link/secret2"),
        (
            "RUN --mount=type=bind,source=sub-link/secret2,target=/x cat /x > /seen",
            "sub-link/secret2",
        ),
    ];
    let mut wrong = Vec::new();
    for (line, path) in routes {
        case.dockerfile(&format!("FROM BASE\nRUN true\n{line}\n"));
        let out = case.path("out");
        let _ = fs::remove_dir_all(&out);
        let run = case.kiln(&[
            "build",
            "-o",
            &format!("type=local,dest={}", out.display()),
            case.ctx().to_str().unwrap(),
        ]);
        let said = text(&run);
        if run.status.success() {
            wrong.push(format!("{line}: built, leaking {:?}", leaks(&out)));
        } else if !said.contains("Dockerfile:3") || !said.contains(path) {
            wrong.push(format!("{line}: the error names no path and line:\n{said}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn editing_an_ignored_file_keeps_the_steps_cached() {
    let case = Case::new("ignore-cache");
    secret_context(&case);
    case.dockerfile(
        "FROM BASE\nCOPY sub-link /s/\nCOPY ../ /all/\n\
         RUN --mount=type=bind,source=sub-link,target=/m ls /m > /listed\n",
    );
    case.build(&[]);
    fs::write(case.ctx().join("sub/secret2"), "edited").unwrap();
    fs::write(case.ctx().join("secret.txt"), "edited too").unwrap();
    let again = case.build(&[]);
    assert_eq!(again.matches("CACHED").count(), 3, "{again}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_named_context_is_filtered_by_its_own_dockerignore() {
    let case = Case::new("ignore-named");
    let extra = case.path("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(extra.join(".dockerignore"), "secret.txt\n").unwrap();
    fs::write(extra.join("secret.txt"), SECRET).unwrap();
    fs::write(extra.join("data.txt"), "data").unwrap();
    symlink("secret.txt", extra.join("to-ignored")).unwrap();
    // The main context's .dockerignore does not apply to the named one.
    case.file(".dockerignore", "data.txt\n");
    case.dockerfile(
        "FROM BASE\nCOPY --from=files . /n/\n\
         RUN --mount=type=bind,from=files,target=/m cat /m/* > /seen 2>/dev/null || true\n",
    );
    let out = case.path("out");
    case.build(&[
        "--build-context",
        &format!("files={}", extra.display()),
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(leaks(&out), Vec::<String>::new());
    assert_eq!(fs::read_to_string(out.join("n/data.txt")).unwrap(), "data");
    assert_eq!(fs::read_to_string(out.join("seen")).unwrap(), "data");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn outward_symlinks_copy_as_links_inside_dirs_and_name_path_and_line() {
    let case = Case::new("ignore-outward");
    case.file("d/file", "f");
    symlink("/etc/hostname", case.ctx().join("d/abs")).unwrap();
    symlink("../../x", case.ctx().join("d/up")).unwrap();
    case.dockerfile("FROM BASE\nCOPY d /d/\n");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        fs::read_link(out.join("d/abs")).unwrap(),
        Path::new("/etc/hostname")
    );
    assert_eq!(
        fs::read_link(out.join("d/up")).unwrap(),
        Path::new("../../x")
    );
    // A wildcard's match is a source: followed inside the context, where
    // these lead nowhere (BuildKit: "not found").
    symlink("/etc/hostname", case.ctx().join("host")).unwrap();
    case.dockerfile("FROM BASE\nRUN true\nCOPY * /out/\n");
    let run = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let said = text(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("Dockerfile:3") && said.contains("host") && said.contains("/etc/hostname"),
        "{said}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_store_inside_the_context_does_not_stop_the_filter() {
    // `--root ./store` in the project, the store ignored: the whiteouts
    // must not sit in a dir of the context (overlay refuses nested layers).
    let case = Case::new("ignore-inner-store");
    case.file(".dockerignore", "store\nsecret.txt\n");
    case.file("secret.txt", SECRET);
    case.file("keep.txt", "keep");
    case.dockerfile("FROM BASE\nCOPY . /c/\n");
    let store = case.ctx().join("store");
    let out = case.path("out");
    let run = std::process::Command::new(support::kiln_bin())
        .arg("--root")
        .arg(&store)
        .args(["build", "-o", &format!("type=local,dest={}", out.display())])
        .arg(case.ctx())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(leaks(&out), Vec::<String>::new());
    assert_eq!(fs::read_to_string(out.join("c/keep.txt")).unwrap(), "keep");
    assert!(!out.join("c/store").exists());
}

// BuildKit: testDefaultDockerfileLowercase (dockerui falls back to
// `dockerfile`), testDockerfileDockerignore (`<Dockerfile>.dockerignore`).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_lowercase_dockerfile_is_found_and_its_own_dockerignore_wins() {
    let case = Case::new("ignore-lowercase");
    case.file(
        "dockerfile",
        &format!("FROM {}\nCOPY . /ctx/\n", support::base()),
    );
    case.file("dockerfile.dockerignore", "secret.txt\n");
    case.file(".dockerignore", "kept.txt\n");
    case.file("secret.txt", SECRET);
    case.file("kept.txt", "kept");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    let ctx = out.join("ctx");
    assert!(ctx.join("dockerfile").is_file());
    assert!(
        !ctx.join("secret.txt").exists(),
        "dockerfile.dockerignore applies"
    );
    assert!(
        ctx.join("kept.txt").is_file(),
        "and wins over .dockerignore"
    );
}

// BuildKit: testDockerignoreOverridePaths-like; moby/patternmatcher's
// exception patterns reach inside an excluded dir.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_wildcard_exception_makes_its_excluded_dir_a_copy_source() {
    let case = Case::new("ignore-wild-exception");
    case.dockerfile("FROM BASE\nCOPY dir /d/\nCOPY di* /g/\nCOPY top/dir /t/\nRUN --mount=type=bind,source=dir,target=/m cp -r /m /mounted\n");
    case.file(".dockerignore", "*\n!*/sub1*\n!top/*/sub1*\n");
    case.file("dir/sub1.txt", "one");
    case.file("dir/other.txt", SECRET);
    case.file("top/dir/sub1.txt", "deep");
    let out = case.path("out");
    case.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read_to_string(out.join("d/sub1.txt")).unwrap(), "one");
    assert!(!out.join("d/other.txt").exists());
    assert_eq!(fs::read_to_string(out.join("g/sub1.txt")).unwrap(), "one");
    assert_eq!(fs::read_to_string(out.join("t/sub1.txt")).unwrap(), "deep");
    assert_eq!(
        fs::read_to_string(out.join("mounted/sub1.txt")).unwrap(),
        "one"
    );
}

// moby/patternmatcher ignorefile.ReadAll: `illegal exclusion pattern: "!"`.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_lone_exclamation_mark_in_dockerignore_is_an_error() {
    let case = Case::new("ignore-lone-bang");
    case.dockerfile("FROM BASE\nCOPY . /ctx/\n");
    case.file(".dockerignore", "secret.txt\n!\n");
    case.file("secret.txt", SECRET);
    let out = case.kiln(&["build", case.ctx().to_str().unwrap()]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("illegal exclusion pattern"), "{said}");
    assert!(said.contains(".dockerignore"), "{said}");
}
