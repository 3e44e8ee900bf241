//! End-to-end tests of kiln-sandbox, run as an UNPRIVILEGED user with a
//! subordinate id range (scripts/test-sandbox.sh arranges that). Each test
//! runs real steps through the `kiln-sandbox-run` binary and checks what a
//! user would check, from inside the step and from the host.
//!
//! They are `#[ignore]`d so that a plain `cargo test --workspace` as root
//! (CI) reports them as ignored instead of running them as the wrong user;
//! scripts/test-sandbox.sh runs them with `--include-ignored` as `kilntest`
//! and the no-range test as `kilnnorange`. By hand, as such a user:
//! `cargo test -p kiln-sandbox -- --include-ignored --skip no_range`.

mod support;

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn true_runs_and_exit_codes_and_signals_pass_through() {
    let c = Case::new("exit");
    let o = c.step().argv(&["/bin/true"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = c.step().argv(&["true"]);
    assert_eq!(o.code, 0, "argv[0] looked up in PATH: {o:?}");
    assert_eq!(c.step().sh("exit 7").code, 7);
    assert_eq!(c.step().sh("kill -TERM $$").code, 128 + 15);
    assert_eq!(c.step().sh("kill -KILL $$").code, 128 + 9);
    let o = c.step().sh("echo out; echo err >&2");
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out\n", "err\n"));
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn missing_command_is_a_clear_error() {
    let c = Case::new("missing");
    let o = c.step().argv(&["no-such-command"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("no-such-command") && o.stderr.contains("not found in $PATH"),
        "{o:?}"
    );
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn only_the_steps_own_processes_are_visible() {
    let c = Case::new("pids");
    // Globbing is a shell builtin: the shell is the only other process.
    let o = c
        .step()
        .sh("cat /proc/1/comm; for p in /proc/[0-9]*; do echo ${p#/proc/}; done");
    assert_eq!(o.stdout, "kiln-init\n1\n2\n", "{o:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn only_fds_0_to_2_reach_the_command_even_when_kiln_leaks_one() {
    let c = Case::new("fds");
    // `ls` lists the fds of the shell (the command kiln started), which
    // stays alive because of the trailing `; true`.
    let o = c.step().leak_fd7(base()).sh("ls /proc/$$/fd; true");
    assert_eq!(o.stdout, "0\n1\n2\n", "{o:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn workdir_through_proc_self_fd_finds_nothing() {
    // runc CVE-2024-21626: a leaked host fd plus WORKDIR /proc/self/fd/N.
    let c = Case::new("cve");
    let host = c.dir.join("host-secret-dir");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("host-secret"), "x").unwrap();
    let o = c
        .step()
        .leak_fd7(&host)
        .opt("--cwd", "/proc/self/fd/7")
        .argv(&["/bin/ls"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(!o.stdout.contains("host-secret"), "{o:?}");
    let o = c
        .step()
        .leak_fd7(&host)
        .sh("ls /proc/self/fd/7/ /proc/1/fd/7/ /proc/1/cwd/ /proc/1/root/ 2>&1; cd /proc/self/fd/7 && ls");
    assert!(!o.stdout.contains("host-secret"), "{o:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn capabilities_are_dockers_default_set() {
    let c = Case::new("caps");
    let o = c.step().sh("grep ^Cap /proc/self/status");
    let want = "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n\
                CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n";
    assert_eq!(o.stdout, want, "{o:?}");
    let o = c
        .step()
        .opt("--user", "app")
        .sh("grep ^Cap /proc/self/status");
    let want = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n";
    assert_eq!(o.stdout, want, "{o:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn mount_remount_and_proc_sys_writes_are_denied() {
    let c = Case::new("deny");
    // --network none: the step's own net namespace owns net.* sysctls, so
    // only the read-only /proc/sys stops the write.
    let o = c
        .step()
        .opt("--network", "none")
        .sh("mount -t tmpfs none /tmp && echo MOUNTED; \
         mount -o remount,rw /proc/sys && echo REMOUNTED; \
         mount -o remount,ro / && echo REMOUNTED_ROOT; \
         echo 1 > /proc/sys/net/ipv4/ip_forward && echo WROTE_SYSCTL; \
         echo 1 > /proc/sys/kernel/domainname && echo WROTE_SYSCTL2; \
         echo c > /proc/sysrq-trigger && echo SYSRQ; \
         unshare -m true && echo UNSHARED; echo done");
    assert!(o.stdout.ends_with("done\n"), "{o:?}");
    for bad in ["MOUNTED", "REMOUNTED", "WROTE_SYSCTL", "SYSRQ", "UNSHARED"] {
        assert!(!o.stdout.contains(bad), "{bad}: {o:?}");
    }
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn readonly_bind_cannot_be_written_or_remounted_and_rw_bind_can() {
    let c = Case::new("binds");
    let ro = c.dir.join("ro");
    let rw = c.dir.join("rw");
    fs::create_dir(&ro).unwrap();
    fs::create_dir(&rw).unwrap();
    fs::write(ro.join("f"), "orig").unwrap();
    fs::write(c.dir.join("secret"), "s3cret").unwrap();
    let o = c
        .step()
        .opt("--bind-ro", format!("{}:/mnt/ro", ro.display()))
        .opt("--bind", format!("{}:/cache", rw.display()))
        .opt(
            "--bind-ro",
            format!("{}:/run/secrets/token", c.dir.join("secret").display()),
        )
        .sh(
            "touch /mnt/ro/new && echo WROTE; echo x > /mnt/ro/f && echo WROTE2; \
             mount -o remount,rw /mnt/ro && echo REMOUNT; \
             mount -o remount,rw,bind /mnt/ro && echo REMOUNT2; \
             echo y > /run/secrets/token && echo WROTE3; cat /run/secrets/token; echo; \
             echo cached > /cache/out && echo CACHED",
        );
    for bad in ["WROTE\n", "WROTE2", "REMOUNT", "WROTE3"] {
        assert!(!o.stdout.contains(bad), "{bad}: {o:?}");
    }
    assert!(
        o.stdout.contains("s3cret") && o.stdout.contains("CACHED"),
        "{o:?}"
    );
    assert_eq!(fs::read_to_string(ro.join("f")).unwrap(), "orig");
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 1);
    assert_eq!(fs::read_to_string(rw.join("out")).unwrap(), "cached\n");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn rm_rf_root_leaves_lowers_unchanged_and_only_whiteouts_in_upper() {
    let c = Case::new("rmrf");
    let layer = c.dir.join("layer1");
    fs::create_dir_all(layer.join("opt/app")).unwrap();
    fs::write(layer.join("opt/app/data"), "layer data").unwrap();
    std::os::unix::fs::symlink("data", layer.join("opt/app/link")).unwrap();
    let before = (snapshot(base()), snapshot(&layer));
    let o = c
        .step()
        .lower(&layer)
        .sh("rm -rf / 2>/dev/null; ls -A / /opt 2>&1; exit 0");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        !o.stdout.contains("bin") && !o.stdout.contains("app"),
        "rm left files: {o:?}"
    );
    assert_eq!(
        (snapshot(base()), snapshot(&layer)),
        before,
        "a lower dir changed"
    );
    let upper = snapshot(&c.upper);
    assert!(!upper.is_empty());
    let mut whiteouts = 0;
    for (p, (mode, _, _, rdev, _)) in &upper {
        let kind = mode & libc::S_IFMT;
        match kind {
            libc::S_IFDIR => {}
            libc::S_IFCHR if *rdev == 0 => whiteouts += 1,
            _ => panic!("upper has {p:?} with mode {mode:o} rdev {rdev}: not a whiteout"),
        }
    }
    assert!(whiteouts > 5, "only {whiteouts} whiteouts: {upper:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn chown_lands_in_the_upper_dir_as_subordinate_ids() {
    let uid0 = sub_start("/etc/subuid").expect("test user needs a /etc/subuid range");
    let gid0 = sub_start("/etc/subgid").expect("test user needs a /etc/subgid range");
    let c = Case::new("chown");
    let o = c.step().sh(
        "touch /a /b && chown 1000:1000 /a && chown 65534:65534 /b && \
         mkdir /d && chown app:extra /d && ls -ln /a",
    );
    assert_eq!(o.code, 0, "{o:?}");
    // Container id N (N >= 1) is host id start + N - 1.
    let id = |p: &str| {
        let m = fs::symlink_metadata(c.upper.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(id("a"), (uid0 + 999, gid0 + 999));
    assert_eq!(id("b"), (uid0 + 65533, gid0 + 65533));
    assert_eq!(id("d"), (uid0 + 999, gid0 + 1999));
}

#[test]
#[ignore = "needs a user WITHOUT a subuid range: scripts/test-sandbox.sh runs it as kilnnorange"]
fn no_range_maps_only_root_and_chown_fails_saying_how_to_add_one() {
    assert!(
        sub_start("/etc/subuid").is_none(),
        "run this test as a user without a /etc/subuid range (kilnnorange)"
    );
    let c = Case::new("norange");
    let o = c
        .step()
        .sh("id -u; touch /x && chown 0:0 /x && echo ROOT_OK");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("0\nROOT_OK"), "{o:?}");
    assert_eq!(
        o.stderr.matches("no subordinate id range").count(),
        1,
        "warned once: {o:?}"
    );
    assert!(
        !o.stderr.contains("kiln: note"),
        "no note on success: {o:?}"
    );
    let o = c.step().sh("touch /y && chown 1000:1000 /y");
    assert_ne!(o.code, 0, "{o:?}");
    let (_, after_chown) = o
        .stderr
        .split_once("chown: /y")
        .unwrap_or_else(|| panic!("no chown error: {o:?}"));
    assert!(
        after_chown.contains("kiln: note") && after_chown.contains("usermod --add-subuids"),
        "{o:?}"
    );
    let o = c.step().opt("--user", "app").argv(&["/bin/true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("usermod --add-subuids"), "{o:?}");
}

/// Spawn a CLI running `sleep <tag>` and wait until the step is up.
fn start_sleeper(c: &Case, tag: &str) -> std::process::Child {
    let flag = c.dir.join("flag");
    fs::create_dir_all(&flag).unwrap();
    let mut s = c.step().opt("--bind", format!("{}:/flag", flag.display()));
    s.cmd
        .arg("--lower")
        .arg(base())
        .args(["--", "/bin/sh", "-c"]);
    s.cmd
        .arg(format!("touch /flag/ready; sleep {tag}; echo not-killed"));
    let child = s
        .cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !flag.join("ready").exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "step did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !host_pids_with(&format!("sleep {tag}")).is_empty(),
        "sleep not found"
    );
    child
}

fn assert_gone_within(tag: &str, since: Instant, limit: Duration) {
    while !host_pids_with(&format!("sleep {tag}")).is_empty() {
        assert!(
            since.elapsed() < limit,
            "step still running after {:?}",
            since.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn sigterm_to_kiln_stops_the_step_within_a_second() {
    let c = Case::new("sigterm");
    let tag = "7654321";
    let mut child = start_sleeper(&c, tag);
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(!st.success());
    assert_gone_within(tag, t, Duration::from_secs(1));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn kiln_killed_hard_takes_the_step_with_it() {
    let c = Case::new("sigkill");
    let tag = "7654322";
    let mut child = start_sleeper(&c, tag);
    let t = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone_within(tag, t, Duration::from_secs(1));
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn orphaned_zombies_are_reaped() {
    let c = Case::new("zombies");
    // Each (sleep 0 &) orphans a child to PID 1, which must reap it.
    let o = c
        .step()
        .sh("for i in 1 2 3 4 5 6; do (sleep 0 &); done; sleep 0.5; \
         for p in /proc/[0-9]*; do read -r l < $p/stat && echo \"$l\"; done");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.lines().count() >= 2, "{o:?}");
    for l in o.stdout.lines() {
        assert!(!l.contains(") Z "), "zombie left: {l}\n{o:?}");
    }
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn background_processes_die_with_the_step() {
    let c = Case::new("bg");
    let t = Instant::now();
    let o = c
        .step()
        .sh("sleep 8765432 & sleep 8765433 </dev/null >/dev/null 2>&1 & echo started");
    assert_eq!((o.code, o.stdout.as_str()), (0, "started\n"), "{o:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the step waited for its background jobs"
    );
    assert!(
        host_pids_with("sleep 876543").is_empty(),
        "background process survived"
    );
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn no_mount_outlives_a_step() {
    let mounts = || fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = mounts();
    let c = Case::new("mounts");
    let o = c
        .step()
        .opt("--bind", format!("{}:/cache", c.dir.display()))
        .opt("--tmpfs", "/scratch")
        .opt("--network", "none")
        .sh("grep -c . /proc/self/mountinfo");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.trim().parse::<u32>().unwrap() > 10, "{o:?}");
    assert_eq!(mounts(), before);
    assert!(!mounts().contains(c.work.to_str().unwrap()));
}

fn many_lowers(n: usize) {
    let c = Case::new(&format!("lowers{n}"));
    // Long paths: n of them are far past the 4 KiB the legacy mount option
    // string can carry, so a truncation would drop layers.
    let dir = c
        .dir
        .join("layers-with-a-deliberately-long-directory-name-to-push-the-option-string");
    let mut spec_lowers = Vec::new();
    for i in 0..n - 1 {
        let l = dir.join(format!(
            "layer-{i:04}-sha256-0123456789abcdef0123456789abcdef"
        ));
        fs::create_dir_all(l.join("layers")).unwrap();
        fs::write(l.join(format!("layers/f{i}")), "").unwrap();
        fs::write(l.join("layers/top"), i.to_string()).unwrap();
        spec_lowers.push(l);
    }
    let total: usize = spec_lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        total > 4096 * 3,
        "paths too short to prove anything: {total}"
    );
    let file = c.dir.join("lowers.txt");
    let text: Vec<String> = spec_lowers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    fs::write(&file, text.join("\n")).unwrap();
    let o = c
        .step()
        .opt("--lowers-file", &file)
        .sh("ls /layers | wc -l; cat /layers/top; echo; ls /layers/f0");
    assert_eq!(o.stdout, format!("{n}\n{}\n/layers/f0\n", n - 2), "{o:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn a_hundred_lower_dirs_merge_in_order() {
    many_lowers(100);
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn five_hundred_lower_dirs_merge_in_order() {
    many_lowers(500);
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn user_and_groups_come_from_the_images_passwd_and_group() {
    let c = Case::new("user");
    let o = c
        .step()
        .opt("--user", "app")
        .sh("id -u; id -g; id -G; echo $HOME");
    assert_eq!(o.stdout, "1000\n1000\n1000 2000\n/home/app\n", "{o:?}");
    let o = c
        .step()
        .opt("--user", "4242")
        .sh("id -u; id -g; echo $HOME");
    assert_eq!(o.stdout, "4242\n0\n/\n", "{o:?}");
    let o = c.step().opt("--user", "app:nogroup").sh("id -u; id -g");
    assert_eq!(o.stdout, "1000\n65534\n", "{o:?}");
    let o = c.step().opt("--user", "ghost").argv(&["/bin/true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("ghost") && o.stderr.contains("/etc/passwd"),
        "{o:?}"
    );
}

/// An image's /etc/passwd that is a FIFO (opening it used to wait for a
/// writer forever) or a 2 GiB sparse file (read whole: 2.1 GB) fails the
/// step at once, naming the file.
#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn a_fifo_or_huge_passwd_fails_the_step_naming_it() {
    let c = Case::new("passwd");
    let fifo = c.dir.join("fifo-lower");
    let huge = c.dir.join("huge-lower");
    for l in [&fifo, &huge] {
        fs::create_dir_all(l.join("etc")).unwrap();
    }
    let path = std::ffi::CString::new(fifo.join("etc/passwd").into_os_string().into_vec()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    fs::File::create(huge.join("etc/passwd"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    for (lower, says) in [(&fifo, "is a FIFO"), (&huge, "over the 4 MiB")] {
        let mut cmd = c
            .step()
            .opt("--user", "app")
            .lower(lower)
            .prepare(&["/bin/true"]);
        let start = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{says}: the step still runs after 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{err}");
        assert!(err.contains("/etc/passwd") && err.contains(says), "{err}");
    }
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn env_cwd_hostname_network_and_etc_files() {
    let c = Case::new("env");
    let o = c
        .step()
        .opt("--env", "FOO=bar baz")
        .opt("--cwd", "/srv/app")
        .opt("--hostname", "builder")
        .opt("--network", "none")
        .sh(
            "echo \"$FOO\"; pwd; hostname; ls /sys/class/net; cat /sys/class/net/lo/flags; \
             grep -c localhost /etc/hosts; wc -c < /etc/resolv.conf; echo $PATH",
        );
    let want = format!(
        "bar baz\n/srv/app\nbuilder\nlo\n0x9\n2\n0\n{}\n",
        kiln_sandbox::DEFAULT_PATH
    );
    assert_eq!(o.stdout, want, "{o:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn dev_has_the_standard_nodes_and_nothing_leaks_into_the_layer() {
    let c = Case::new("dev");
    let o = c.step().sh(
        "echo x > /dev/null && head -c 5 /dev/zero | wc -c && head -c 5 /dev/urandom | wc -c; \
         echo x > /dev/full || echo FULL; test -c /dev/random && test -c /dev/tty && echo CHARS; \
         echo shm > /dev/shm/t && cat /dev/shm/t; grep -c devpts /proc/mounts; ls /dev/pts",
    );
    assert_eq!(o.stdout, "5\n5\nFULL\nCHARS\nshm\n1\nptmx\n", "{o:?}");
    // The sandbox created /etc/hosts and /etc/resolv.conf as mount points
    // (the base has none); they must not stay in the upper dir.
    let left: Vec<PathBuf> = snapshot(&c.upper).into_keys().collect();
    assert!(left.iter().all(|p| p == &PathBuf::from("etc")), "{left:?}");
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn the_userns_maps_root_to_the_caller_and_the_range_after_it() {
    let Some(start) = sub_start("/etc/subuid") else {
        panic!("needs a subuid range")
    };
    let o: Out = Command::new(bin()).arg("userns").output().unwrap().into();
    let uid = unsafe { libc::getuid() };
    let map: Vec<Vec<String>> = o
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("uid_map"))
        .take(2)
        .map(|l| {
            l.trim_start_matches("uid_map:")
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .collect();
    assert_eq!(
        map[0],
        ["0".to_string(), uid.to_string(), "1".into()],
        "{o:?}"
    );
    assert_eq!(
        map[1],
        ["1".to_string(), start.to_string(), "65536".into()],
        "{o:?}"
    );
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn mount_points_and_the_copy_ups_they_cause_leave_the_upper_dir() {
    let c = Case::new("mountpoints");
    let src = c.dir.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(c.dir.join("file"), "f").unwrap();
    // /tmp and /root exist below (copied up to hold the mount point),
    // /new does not; /root/keep is a real change next to a mount point.
    let o = c
        .step()
        .opt("--bind-ro", format!("{}:/tmp/a/b", src.display()))
        .opt(
            "--bind-ro",
            format!("{}:/new/deep/file", c.dir.join("file").display()),
        )
        .opt("--tmpfs", "/root/t")
        .opt("--tmpfs", "/root/u")
        .sh("echo x > /root/t/f; touch /root/keep; cat /new/deep/file");
    assert_eq!((o.code, o.stdout.as_str()), (0, "f"), "{o:?}");
    let left: Vec<PathBuf> = snapshot(&c.upper).into_keys().collect();
    assert_eq!(
        left,
        [PathBuf::from("root"), PathBuf::from("root/keep")],
        "only the command's own change stays"
    );
}

#[test]
#[ignore = "unprivileged user with a subuid range: run scripts/test-sandbox.sh"]
fn seccomp_denies_nested_namespaces_unless_unconfined() {
    let c = Case::new("seccomp");
    // Docker's default profile: no nested user namespace; files, modes and
    // subordinate owners work as before.
    let script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; \
                  unshare -U true && echo UNSHARED; \
                  unshare -r id -u && echo MAPPED; \
                  touch /f && chmod 4755 /f && chown 1000:1000 /f && echo FILES";
    let o = c.step().sh(script);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with("NoNewPrivs:\t0\nSeccomp:\t2\n"),
        "{o:?}"
    );
    assert!(o.stdout.ends_with("FILES\n"), "{o:?}");
    for blocked in ["UNSHARED", "MAPPED"] {
        assert!(!o.stdout.contains(blocked), "{blocked}: {o:?}");
    }
    assert!(o.stderr.contains("Operation not permitted"), "{o:?}");

    let o = c
        .step()
        .opt("--security-opt", "seccomp=unconfined")
        .opt("--security-opt", "no-new-privileges")
        .sh(script);
    assert!(
        o.stdout.starts_with("NoNewPrivs:\t1\nSeccomp:\t0\n"),
        "{o:?}"
    );
    for allowed in ["UNSHARED", "MAPPED", "FILES"] {
        assert!(o.stdout.contains(allowed), "{allowed}: {o:?}");
    }
}
