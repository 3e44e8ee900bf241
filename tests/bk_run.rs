//! BuildKit's RUN tests, ported (moby/buildkit
//! `frontend/dockerfile/dockerfile_{mount,secrets,runnetwork,runsecurity}_test.go`):
//! each test is named after the BuildKit one and asserts what it asserts,
//! on the busybox base, rootless. tests/BUILDKIT.md lists what was not
//! ported and why. Run by scripts/test-build.sh.

mod support;

use std::fs;
use std::io::Write;
use std::net::TcpListener;

use support::Case;

/// A secret file outside the context: `id=NAME,src=FILE`.
fn secret(case: &Case, name: &str, value: &str) -> String {
    let file = case.path(name);
    fs::write(&file, value).unwrap();
    format!("id={name},src={}", file.display())
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_context() {
    let case = Case::new("bk-mount-context");
    case.dockerfile(
        "FROM BASE\nRUN --mount=target=/context [ \"$(cat /context/testfile)\" == \"contents0\" ]\n",
    );
    case.file("testfile", "contents0");
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_tmpfs() {
    let case = Case::new("bk-mount-tmpfs");
    case.dockerfile(
        "FROM BASE\nRUN --mount=target=/mytmp,type=tmpfs touch /mytmp/foo\nRUN [ ! -f /mytmp/foo ]\n",
    );
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_invalid() {
    // BuildKit words the first "did you mean mount?"; kiln names the flag
    // as it is written: "did you mean --mount?".
    let case = Case::new("bk-mount-invalid");
    let cases = [
        (
            "RUN --mont=target=/mytmp,type=tmpfs /bin/true",
            ["unknown flag: --mont", "mount?"],
        ),
        (
            "RUN --mount=typ=tmpfs /bin/true",
            ["unexpected key 'typ'", "did you mean type?"],
        ),
        (
            "RUN --mount=type=tmp /bin/true",
            ["unsupported mount type \"tmp\"", "did you mean tmpfs?"],
        ),
    ];
    for (run, wanted) in cases {
        case.dockerfile(&format!("FROM scratch\n{run}\n"));
        let said = case.build_fails(&[]);
        for w in wanted {
            assert!(said.contains(w), "{run}: no {w:?} in:\n{said}");
        }
        assert!(said.contains("Dockerfile:2"), "{said}");
        assert!(said.contains("did you mean"), "{said}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_rw_cache() {
    // The rw mount's source has the same content after the cachebust
    // change: the RUN mounting it is a cache hit, /unique the same.
    let case = Case::new("bk-mount-rwcache");
    case.dockerfile(
        "FROM BASE AS build\nCOPY cachebust /\nRUN mkdir out && echo foo > out/foo\n\
         FROM BASE AS second\n\
         RUN --mount=from=build,src=out,target=/out,rw touch /out/bar && \
         cat /dev/urandom | head -c 100 | sha256sum > /unique\n\
         FROM scratch\nCOPY --from=second /unique /unique\n",
    );
    case.file("cachebust", "0");
    let first = fs::read_to_string(case.build_into("out1", &[]).join("unique")).unwrap();
    case.file("cachebust", "1");
    let second = fs::read_to_string(case.build_into("out2", &[]).join("unique")).unwrap();
    assert_eq!(first, second);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn cache_mount_user() {
    let case = Case::new("bk-cachemount-user");
    case.dockerfile(
        "FROM BASE\nRUN --mount=type=cache,target=/mycache,uid=1001,gid=1002,mode=0751 \
         [ \"$(stat -c \"%u %g %f\" /mycache)\" == \"1001 1002 41e9\" ]\n",
    );
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn cache_mount_default_id() {
    let case = Case::new("bk-cachemount-id");
    case.dockerfile(
        "FROM BASE\nRUN --mount=type=cache,target=/mycache touch /mycache/foo\n\
         RUN --mount=type=cache,target=/mycache2 [ ! -f /mycache2/foo ]\n\
         RUN --mount=type=cache,target=/mycache [ -f /mycache/foo ]\n",
    );
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_env_across_stages() {
    let case = Case::new("bk-mount-envstages");
    case.dockerfile(
        "FROM BASE AS stage1\nENV MNT_ID=mycache\nENV MNT_TYPE2=cache\n\
         RUN --mount=type=cache,id=mycache,target=/abcabc touch /abcabc/foo\n\
         RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/cbacba [ -f /cbacba/foo ]\n\
         FROM stage1\n\
         RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/whatever [ -f /whatever/foo ]\n",
    );
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_meta_arg() {
    let case = Case::new("bk-mount-metaarg");
    case.dockerfile(
        "ARG META_PATH=/tmp/meta\nFROM BASE\nARG META_PATH\n\
         RUN --mount=type=cache,id=mycache,target=/tmp/meta touch /tmp/meta/foo\n\
         RUN --mount=type=cache,id=mycache,target=$META_PATH [ -f /tmp/meta/foo ]\n",
    );
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_from_error() {
    let case = Case::new("bk-mount-fromerror");
    case.dockerfile(
        "FROM BASE AS test\nRUN touch /tmp/test\nFROM BASE\nENV ttt=test\n\
         RUN --mount=from=$ttt,type=cache,target=/tmp ls\n",
    );
    let said = case.build_fails(&[]);
    assert!(
        said.contains("'from' doesn't support variable expansion, define alias stage instead"),
        "{said}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_tmpfs_size() {
    let case = Case::new("bk-mount-tmpfssize");
    case.dockerfile(
        "FROM BASE AS base\n\
         RUN --mount=type=tmpfs,target=/dev/shm,size=128m mount | grep /dev/shm > /tmpfssize\n\
         FROM scratch\nCOPY --from=base /tmpfssize /\n",
    );
    let out = case.build_into("out", &[]);
    let seen = fs::read_to_string(out.join("tmpfssize")).unwrap();
    assert!(seen.contains("size=131072k"), "{seen}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn mount_duplicate() {
    // moby/buildkit#4123: a file mounted on its own and inside a
    // whole-context mount; a change to the context reruns the step.
    let case = Case::new("bk-mount-duplicate");
    case.dockerfile(
        "FROM BASE AS base\nRUN --mount=source=.,target=/tmp/test \
         --mount=source=b.txt,target=/tmp/b.txt cat /tmp/test/a.txt /tmp/b.txt > /combined.txt\n\
         FROM scratch\nCOPY --from=base /combined.txt /\n",
    );
    case.file("b.txt", "bar\n");
    for text in ["foo\n", "updated\n"] {
        case.file("a.txt", text);
        let out = case.build_into("out", &[]);
        assert_eq!(
            fs::read_to_string(out.join("combined.txt")).unwrap(),
            format!("{text}bar\n")
        );
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn cache_mount_parallel() {
    // moby/buildkit#5566: two stages with nested cache mounts at once.
    // BuildKit repeats it 20 times for a runc race; three runs here.
    let case = Case::new("bk-cachemount-parallel");
    case.dockerfile(
        "FROM BASE AS b1\n\
         RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz echo 1\n\
         FROM BASE AS b2\n\
         RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz echo 2\n\
         FROM scratch\nCOPY --from=b1 /etc/passwd p1\nCOPY --from=b2 /etc/passwd p2\n",
    );
    for _ in 0..3 {
        case.build(&["--no-cache", "--jobs", "2"]);
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn cache_mount_source_escape() {
    // A cache's source= that resolves through a symlink the cache holds
    // must not reach outside the cache.
    let case = Case::new("bk-cachemount-escape");
    case.dockerfile(
        "FROM BASE AS init\n\
         RUN --mount=type=cache,id=sourceescape,target=/cache mkdir -p /cache/sel && \
         echo benign > /cache/sel/benign.txt\n\
         FROM init AS link\n\
         RUN --mount=type=cache,id=sourceescape,target=/cache rm -rf /cache/sel && ln -s /etc /cache/sel\n\
         FROM link AS victim\n\
         RUN --mount=type=cache,id=sourceescape,source=sel,target=/victim cat /victim/hostname\n\
         FROM scratch\nCOPY --from=victim /etc/hostname /hostname\n",
    );
    case.build_fails(&["--no-cache"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn secret_file_params() {
    let case = Case::new("bk-secret-params");
    case.dockerfile(
        "FROM BASE\n\
         RUN --mount=type=secret,required=false,mode=741,uid=100,gid=102,target=/mysecret \
         [ \"$(stat -c \"%u %g %f\" /mysecret)\" = \"100 102 81e1\" ]\n\
         RUN [ ! -f /mysecret ] # check no stub left behind\n",
    );
    let s = secret(&case, "mysecret", "pw");
    case.build(&["--secret", &s]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn secret_required_without_value() {
    let case = Case::new("bk-secret-required");
    case.dockerfile("FROM BASE\nRUN --mount=type=secret,required,id=mysecret foo\n");
    let said = case.build_fails(&[]);
    assert!(said.contains("secret mysecret: not found"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn secret_as_environ() {
    // BuildKit also checks that the progress shows the command without
    // the secret's value: kiln's output must never carry it (the
    // Dockerfile spells the value as 0x7f3a9c so that only the secret
    // could print it).
    let case = Case::new("bk-secret-env");
    case.dockerfile(
        "FROM BASE\nENV SECRET_ENV=foo\n\
         RUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ \"$SECRET_ENV\" == \"pw-$((0x7f3a9c))\" ] && \
         [ ! -f /run/secrets/mysecret ] || false\n",
    );
    let s = secret(&case, "mysecret", "pw-8338076");
    let said = case.build(&["--secret", &s, "--progress", "plain"]);
    assert!(said.contains("/run/secrets/mysecret"), "{said}");
    assert!(!said.contains("pw-8338076"), "{said}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn secret_as_environ_with_file_mount() {
    let case = Case::new("bk-secret-envfile");
    case.dockerfile(
        "FROM BASE\n\
         RUN --mount=type=secret,id=mysecret,target=/run/secrets/secret,env=SECRET_ENV \
         [ \"$SECRET_ENV\" == \"pw\" ] && [ -f /run/secrets/secret ] || false\n",
    );
    let s = secret(&case, "mysecret", "pw");
    case.build(&["--secret", &s]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_no_network() {
    // BuildKit checks `! ip link show eth0`; here: loopback only.
    let case = Case::new("bk-run-nonet");
    case.dockerfile(
        "FROM BASE\nRUN --network=none ! ip link show eth0 && \
         [ \"$(ip -o link show | grep -vc ': lo:')\" = 0 ]\n",
    );
    case.build(&[]);
}

/// A TCP server on 127.0.0.1 answering `foo` to every connection, for
/// as long as the test runs.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"foo\n");
        }
    });
    port
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_global_network() {
    let port = echo_server();
    let case = Case::new("bk-run-globalnet");
    case.dockerfile(&format!(
        "FROM BASE\nRUN nc 127.0.0.1 {port} | grep foo\n\
         RUN --network=none ! nc -z 127.0.0.1 {port}\n"
    ));
    case.build(&["--network", "host"]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_security_insecure() {
    // kiln builds rootless and never grants extra privileges: the step is
    // refused, as BuildKit refuses it without the security.insecure
    // entitlement.
    let case = Case::new("bk-sec-insecure");
    case.dockerfile("FROM BASE\nRUN --security=insecure true\n");
    let said = case.build_fails(&[]);
    assert!(said.contains("Dockerfile:2"), "{said}");
    assert!(said.contains("--security=insecure"), "{said}");
}

/// Docker's default capability bounding set, as BuildKit checks it.
const DEFAULT_CAPS: &str = "CapBnd:\t00000000a80425fb";

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_security_sandbox() {
    let case = Case::new("bk-sec-sandbox");
    case.dockerfile(&format!(
        "FROM BASE\nRUN --security=sandbox [ \"$(cat /proc/self/status | grep CapBnd)\" == \"{DEFAULT_CAPS}\" ]\n"
    ));
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_security_default() {
    let case = Case::new("bk-sec-default");
    case.dockerfile(&format!(
        "FROM BASE\nRUN [ \"$(cat /proc/self/status | grep CapBnd)\" == \"{DEFAULT_CAPS}\" ]\n"
    ));
    case.build(&[]);
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_socket_stays_for_later_steps() {
    // BuildKit's RUN results are snapshots stacked as they are: a unix
    // socket a RUN leaves is there for the next RUN; COPY --from copies
    // it as an empty file (fsutil's copy: "socket copied as stub"), the
    // local exporter (fsutil's send) too, and the image's layer tars
    // leave it out (containerd's archive writer skips sockets).
    // syslogd makes /dev/log; chroot puts it outside RUN's own /dev.
    let case = Case::new("bk-run-socket");
    case.dockerfile(
        "FROM BASE AS s\n\
         RUN mkdir -p /r/dev && cp /bin/busybox /r/ && \
         (chroot /r /busybox syslogd -n -O /dev/null & p=$!; sleep 1; kill -9 $p); test -S /r/dev/log\n\
         RUN (test -S /r/dev/log && echo socket || echo gone) > /seen\n\
         FROM s AS child\nRUN (test -S /r/dev/log && echo socket || echo gone) >> /seen\n\
         COPY --from=s /r/dev/ /copied/\n\
         RUN ls -l /copied/log | cut -c1-10 >> /seen && stat -c %s /copied/log >> /seen\n",
    );
    let out = case.build_into("out", &["--target", "child"]);
    assert_eq!(
        fs::read_to_string(out.join("seen")).unwrap(),
        "socket\nsocket\n-rw-rw-rw-\n0\n"
    );
    let log = fs::symlink_metadata(out.join("r/dev/log")).expect("the local export has /r/dev/log");
    assert!(log.is_file() && log.len() == 0, "{log:?}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_default_network() {
    // BuildKit checks `ip link show eth0` (its bridge; skipped rootless).
    // kiln's default network (pasta) names its link after the host's
    // interface: the step has a link besides loopback.
    let case = Case::new("bk-run-defaultnet");
    case.dockerfile("FROM BASE\nRUN [ \"$(ip -o link show | grep -vc ': lo:')\" -ge 1 ]\n");
    case.build(&[]);
}
