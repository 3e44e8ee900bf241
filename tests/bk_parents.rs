//! BuildKit's `--parents` and .dockerignore tests
//! (frontend/dockerfile/dockerfile_parents_test.go,
//! dockerfile_dockerignore_test.go, exclude_patterns_test.go), ported to
//! rootless kiln builds on the busybox base, named after the BuildKit
//! tests. A RUN of `[ … ]` fails the build when its condition does not
//! hold. Run by scripts/test-build.sh.

mod support;

use std::fs;
use std::path::Path;

use support::{read, Case};

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_parents() {
    let case = Case::new("parents");
    case.dockerfile(
        "FROM scratch\nCOPY --parents foo1/foo2/bar /\nWORKDIR /test\nCOPY --parents foo1/foo2/ba* .\n",
    );
    case.file("foo1/foo2/bar", "testing");
    case.file("foo1/foo2/baz", "testing2");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "foo1/foo2/bar"), "testing");
    assert_eq!(read(&out, "test/foo1/foo2/bar"), "testing");
    assert_eq!(read(&out, "test/foo1/foo2/baz"), "testing2");
}

/// `FROM BASE AS name`, the COPY, then a RUN of the checks (`[ … ]` lines).
fn parents_stage(name: &str, copy: &str, checks: &[&str]) -> String {
    let mut s = format!("FROM BASE AS {name}\nCOPY --from=base --parents {copy} /out/\n");
    if !checks.is_empty() {
        s.push_str(&format!("RUN set -ex; {}\n", checks.join("; ")));
    }
    s
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_relative_parents() {
    let case = Case::new("relative-parents");
    let mut text = String::from(
        "FROM BASE AS base\nWORKDIR /test\nRUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 \
         && touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar a/b/c2/d/e/baz a/b/c2/d/e2/baz\n",
    );
    let stages: [(&str, &str, &[&str]); 7] = [
        (
            "middle",
            "/test/a/b/./c/d",
            &[
                "[ -d /out/c/d/e ]",
                "[ -f /out/c/d/foo ]",
                "[ ! -d /out/a ]",
                "[ ! -d /out/e ]",
            ],
        ),
        (
            "end",
            "/test/a/b/c/d/.",
            &["[ -d /out/test/a/b/c/d/e ]", "[ -f /out/test/a/b/c/d/foo ]"],
        ),
        (
            "start",
            "./test/a/b/c/d",
            &["[ -d /out/test/a/b/c/d/e ]", "[ -f /out/test/a/b/c/d/foo ]"],
        ),
        (
            "double",
            "/test/a/./b/./c",
            &["[ -d /out/b/c/d/e ]", "[ -f /out/b/c/d/foo ]"],
        ),
        (
            "wildcard",
            "/test/a/./*/c",
            &["[ -d /out/b/c/d/e ]", "[ -f /out/b2/c/d/e/bar ]"],
        ),
        (
            "doublewildcard",
            "/test/a/b*/./c/**/e",
            &[
                "[ -d /out/c/d/e ]",
                "[ -f /out/c/d/e/bay ]",
                "[ -f /out/c/d/e/bar ]",
            ],
        ),
        (
            "doubleinputs",
            "/test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar",
            &[
                "[ -f /out/d/e/baz ]",
                "[ ! -f /out/d/e/bay ]",
                "[ -f /out/d/e2/baz ]",
                "[ -f /out/c/d/e/bar ]",
            ],
        ),
    ];
    for (name, copy, checks) in stages {
        text.push_str(&parents_stage(name, copy, checks));
    }
    case.dockerfile(&text);
    for (name, _, _) in stages {
        case.build(&["--target", name]);
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn copy_parents_missing_directory() {
    let case = Case::new("parents-missing");
    let mut text = String::from(
        "FROM BASE AS base\nWORKDIR /test\nRUN mkdir -p a/b/c/d/e && touch a/b/c/d/foo a/b/c/d/e/bay\n",
    );
    let stages: [(&str, &str, &[&str]); 5] = [
        (
            "normal",
            "/test/a/b/c/d",
            &[
                "[ -d /out/test/a/b/c/d/e ]",
                "[ -f /out/test/a/b/c/d/e/bay ]",
                "[ ! -d /out/e ]",
                "[ ! -d /out/a ]",
            ],
        ),
        (
            "withpivot",
            "/test/a/b/./c/d",
            &[
                "[ -d /out/c/d/e ]",
                "[ -f /out/c/d/foo ]",
                "[ ! -d /out/a ]",
                "[ ! -d /out/e ]",
            ],
        ),
        ("nonexistentfile", "/test/nonexistent-file", &[]),
        (
            "wildcard-nonexistent",
            "/test/a/b2*/c",
            &["[ -d /out ]", "[ ! -d /out/a ]"],
        ),
        (
            "wildcard-afterpivot",
            "/test/a/b/./c2*",
            &["[ -d /out ]", "[ ! -d /out/a ]", "[ ! -d /out/c* ]"],
        ),
    ];
    for (name, copy, checks) in stages {
        text.push_str(&parents_stage(name, copy, checks));
    }
    case.dockerfile(&text);
    for (name, _, _) in stages {
        if name == "nonexistentfile" {
            let said = case.build_fails(&["--target", name]);
            assert!(said.contains("/test/nonexistent-file"), "{said}");
            assert!(said.contains("no such file or directory"), "{said}");
        } else {
            case.build(&["--target", name]);
        }
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_takes_no_parents_flag() {
    // Not a BuildKit test: BuildKit's ADD has no --parents (its parser
    // answers "unknown flag: parents"); only COPY takes it.
    let case = Case::new("add-parents");
    case.dockerfile("FROM scratch\nADD --parents nomatch* /adir/\n");
    let said = case.build_fails(&[]);
    assert!(said.contains("unknown flag: --parents"), "{said}");
    assert!(said.contains("Dockerfile:2"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerignore() {
    let case = Case::new("dockerignore");
    case.dockerfile("FROM scratch\nCOPY . .\n");
    for f in ["foo", "bar", "baz", "bay"] {
        case.file(f, &format!("{f}-contents"));
    }
    case.file(".dockerignore", "\nba*\nDockerfile\n!bay\n.dockerignore\n");
    let out = case.build_local(&[]);
    assert_eq!(read(&out, "foo"), "foo-contents");
    assert_eq!(read(&out, "bay"), "bay-contents");
    for gone in [".dockerignore", "Dockerfile", "bar", "baz"] {
        assert!(!out.join(gone).exists(), "{gone} is copied");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn dockerignore_override() {
    // FILE.dockerignore next to the Dockerfile wins over .dockerignore.
    let case = Case::new("dockerignore-override");
    case.dockerfile("FROM BASE\nCOPY . .\nRUN [ -f foo ] && [ ! -f bar ]\n");
    case.file("Dockerfile.dockerignore", "\nbar\n");
    case.file(
        "Dockerfile2",
        "FROM BASE\nCOPY . .\nRUN [ ! -f foo ] && [ -f bar ]\n",
    );
    let df2 = case.ctx().join("Dockerfile2");
    fs::write(
        &df2,
        read(&case.ctx(), "Dockerfile2").replace("BASE", &support::base()),
    )
    .unwrap();
    case.file("Dockerfile2.dockerignore", "\nfoo\n");
    case.file("foo", "contents0");
    case.file("bar", "contents0");
    case.build(&[]);
    case.build(&["-f", df2.to_str().unwrap()]);
}

/// The exclude test's stages; `FROM` is `--from=base ` when the files
/// come from a stage, and `ADD` is `COPY` then (ADD takes no --from).
const EXCLUDE_STAGES: &str = "\
FROM scratch AS builder1
COPY FROM--exclude=*/*.png --exclude=*/*.jpeg . /1
FROM scratch AS builder2
COPY FROM--exclude=*/*.pdf --exclude=*/*.txt . /2
FROM scratch AS builder3
ADD FROM--exclude=*.mp3 dir3/ /3/
FROM scratch AS builder4
COPY FROM--exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/
FROM scratch AS builder5
ADD FROM--exclude=*.mp* --exclude=*.jpeg --exclude=*.png --exclude=*.pdf dir* /5
FROM scratch AS builder6
ADD FROM--exclude=* dir* /6
FROM scratch
COPY --from=builder1 / /builder1
COPY --from=builder2 / /builder2
COPY --from=builder3 / /builder3
COPY --from=builder4 / /builder4
COPY --from=builder5 / /builder5
COPY --from=builder6 / /builder6
";

/// What each path holds (a symlink: its target), None if excluded.
const EXCLUDED: &[(&str, Option<&str>)] = &[
    ("builder1/1/dir1/file-101.png", None),
    ("builder1/1/dir1/file-102.txt", Some("3")),
    ("builder1/1/dir1/file-103.jpeg", None),
    ("builder1/1/dir2/file-201.pdf", Some("6")),
    ("builder1/1/dir2/file-202.jpeg", None),
    ("builder1/1/dir2/file-203.png", None),
    ("builder1/1/dir3/file-301.mp3", Some("9")),
    ("builder1/1/dir3/file-302.mpeg", Some("10")),
    ("builder1/1/dir4/file-401.txt", Some("11")),
    ("builder1/1/dir4/file-402.txt", Some("file-401.txt")),
    ("builder1/1/dir4/file-403.txt", Some("file-404.txt")),
    ("builder2/2/dir1/file-101.png", Some("2")),
    ("builder2/2/dir1/file-102.txt", None),
    ("builder2/2/dir1/file-103.jpeg", Some("4")),
    ("builder2/2/dir2/file-201.pdf", None),
    ("builder2/2/dir2/file-202.jpeg", Some("7")),
    ("builder2/2/dir2/file-203.png", Some("8")),
    ("builder2/2/dir3/file-301.mp3", Some("9")),
    ("builder2/2/dir3/file-302.mpeg", Some("10")),
    ("builder2/2/dir4/file-401.txt", None),
    ("builder2/2/dir4/file-402.txt", None),
    ("builder2/2/dir4/file-403.txt", None),
    ("builder3/3/file-301.mp3", None),
    ("builder3/3/file-302.mpeg", Some("10")),
    ("builder4/4/file-101.png", None),
    ("builder4/4/file-102.txt", None),
    ("builder4/4/file-103.jpeg", None),
    ("builder4/4/file-201.pdf", None),
    ("builder4/4/file-202.jpeg", None),
    ("builder4/4/file-203.png", None),
    ("builder4/4/file-301.mp3", None),
    ("builder4/4/file-302.mpeg", Some("10")),
    ("builder4/4/dir4/file-401.txt", None),
    ("builder4/4/dir4/file-402.txt", None),
    ("builder4/4/dir4/file-403.txt", None),
    ("builder5/5/file-101.png", None),
    ("builder5/5/file-102.txt", Some("3")),
    ("builder5/5/file-103.jpeg", None),
    ("builder5/5/file-201.pdf", None),
    ("builder5/5/file-202.jpeg", None),
    ("builder5/5/file-203.png", None),
    ("builder5/5/file-301.mp3", None),
    ("builder5/5/file-302.mpeg", None),
    ("builder5/5/file-401.txt", Some("11")),
    ("builder5/5/file-402.txt", Some("file-401.txt")),
    ("builder5/5/file-403.txt", Some("file-404.txt")),
];

fn check_excluded(out: &Path) {
    for (rel, want) in EXCLUDED {
        let path = out.join(rel);
        let Some(want) = want else {
            assert!(fs::symlink_metadata(&path).is_err(), "{rel} is copied");
            continue;
        };
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let got = if meta.is_symlink() {
            fs::read_link(&path).unwrap().to_string_lossy().into_owned()
        } else {
            read(out, rel)
        };
        assert_eq!(&got, want, "{rel}");
    }
    let all_excluded = fs::read_dir(out.join("builder6/6")).expect("builder6/6 is made");
    assert_eq!(all_excluded.count(), 0, "builder6/6 is empty");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn excluded_files_on_copy() {
    // moby/buildkit#4439: --exclude on COPY and ADD, from the context and
    // from a git checkout (served over git's dumb HTTP) in a stage.
    let case = Case::new("exclude");
    let src = case.path("src");
    for (rel, content) in [
        ("dir1/file-101.png", "2"),
        ("dir1/file-102.txt", "3"),
        ("dir1/file-103.jpeg", "4"),
        ("dir2/file-201.pdf", "6"),
        ("dir2/file-202.jpeg", "7"),
        ("dir2/file-203.png", "8"),
        ("dir3/file-301.mp3", "9"),
        ("dir3/file-302.mpeg", "10"),
        ("dir4/file-401.txt", "11"),
    ] {
        fs::create_dir_all(src.join(rel).parent().unwrap()).unwrap();
        fs::write(src.join(rel), content).unwrap();
    }
    std::os::unix::fs::symlink("file-401.txt", src.join("dir4/file-402.txt")).unwrap();
    std::os::unix::fs::symlink("file-404.txt", src.join("dir4/file-403.txt")).unwrap();
    // The context: the files beside the Dockerfile.
    support::tool(
        "cp",
        &[
            "-a",
            &format!("{}/.", src.display()),
            case.ctx().to_str().unwrap(),
        ],
    );
    case.dockerfile(&EXCLUDE_STAGES.replace("FROM--", "--"));
    check_excluded(&case.build_local(&[]));

    let git = |args: &[&str]| {
        let mut all = vec!["-c", "user.name=test", "-c", "user.email=test", "-C"];
        all.push(src.to_str().unwrap());
        all.extend_from_slice(args);
        support::tool("git", &all);
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "0.1"]);
    git(&["tag", "0.1"]);
    git(&["update-server-info"]);
    let server = support::http::FileServer::start(&src, Default::default());
    let stages = EXCLUDE_STAGES
        .replace("ADD FROM--", "COPY FROM--")
        .replace("FROM--", "--from=base --");
    case.dockerfile(&format!(
        "FROM scratch AS base\nARG REPO=\"{}\"\nARG TAG=\"0.1\"\n\
         ADD --keep-git-dir=true ${{REPO}}#${{TAG}} /\n{stages}",
        server.url(".git")
    ));
    check_excluded(&case.build_local(&[]));
}
