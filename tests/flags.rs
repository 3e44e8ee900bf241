//! The `kiln build` flags users copy from docker/buildx CI snippets
//! (`--add-host`, `--shm-size`, `--ulimit`, `--no-cache-filter`,
//! `--annotation`, `--ssh`, `--push`, `BUILDKIT_PROGRESS`, `--call`),
//! each run as a user types it, as the unprivileged user kilntest
//! (scripts/test-build.sh). BuildKit's dockerfile_ssh_test.go is ported
//! here too (`ssh_socket_params`, `ssh_file_descriptors_closed`).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::registry::TestRegistry;
use support::{fails, text, tool, Case};

/// `kiln build -o type=local,dest=DIR` of the case; the dir and the output.
fn build_local(case: &Case, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let dest = case.path(name);
    let o = format!("type=local,dest={}", dest.display());
    let mut args = vec!["--progress=plain", "-o", &o];
    args.extend_from_slice(extra);
    let out = case.build(&args);
    (dest, out)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn add_host_shm_size_and_ulimit_reach_run_steps() {
    let case = Case::new("runflags");
    case.dockerfile(
        "FROM BASE\nRUN mkdir /out && cat /etc/hosts > /out/hosts \
         && df -k /dev/shm | tail -1 | awk '{print $2}' > /out/shm \
         && echo \"$(ulimit -Sn) $(ulimit -Hn)\" > /out/nofile\n",
    );
    let (dir, _) = build_local(
        &case,
        "root",
        &[
            "--add-host",
            "db.internal:10.1.2.3",
            "--add-host=v6host=fd00::5",
            "--shm-size",
            "8m",
            "--ulimit",
            "nofile=512:1024",
        ],
    );
    let hosts = read(&dir.join("out/hosts"));
    assert!(hosts.contains("10.1.2.3\tdb.internal\n"), "{hosts}");
    assert!(hosts.contains("fd00::5\tv6host\n"), "{hosts}");
    assert_eq!(read(&dir.join("out/shm")).trim(), "8192");
    assert_eq!(read(&dir.join("out/nofile")).trim(), "512 1024");

    // Other values are another step, not the cached one.
    let (dir, out) = build_local(&case, "root2", &["--ulimit", "nofile=256"]);
    assert!(!out.contains("CACHED"), "{out}");
    assert_eq!(read(&dir.join("out/nofile")).trim(), "256 256");
    assert_eq!(
        read(&dir.join("out/shm")).trim(),
        "65536",
        "Docker's 64m default"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn bad_run_flags_are_clear_errors_before_the_build() {
    let case = Case::new("badflags");
    case.dockerfile("FROM BASE\nRUN true\n");
    let ctx = case.ctx();
    let ctx = ctx.to_str().unwrap();
    for (flag, value, says) in [
        ("--add-host", "db", "--add-host db: expected HOST:IP"),
        ("--add-host", "db:300.1.1.1", "not an IP address"),
        ("--shm-size", "lots", "--shm-size lots: not a size"),
        ("--ulimit", "files=10", "unknown type \"files\""),
        (
            "--ulimit",
            "nofile=10:5",
            "soft limit is above the hard limit",
        ),
        ("--ulimit", "nofile=-1", "cannot raise"),
        (
            "--annotation",
            "index:a=b",
            "a single-platform image has no index",
        ),
        ("--call", "outline", "--call=outline"),
    ] {
        let err = fails(&case.kiln(&["build", flag, value, ctx]));
        assert!(err.contains(says), "{flag} {value}:\n{err}");
        assert!(!err.contains("#1 "), "nothing ran:\n{err}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn no_cache_filter_reruns_only_the_named_stage() {
    let case = Case::new("nocachefilter");
    case.dockerfile(
        "FROM BASE AS deps\nRUN head -c 16 /dev/urandom | od -x > /deps\n\
         FROM BASE AS app\nRUN head -c 16 /dev/urandom | od -x > /app\n\
         FROM BASE\nCOPY --from=deps /deps /deps\nCOPY --from=app /app /app\n",
    );
    let (first, _) = build_local(&case, "first", &[]);
    let (second, out) = build_local(&case, "second", &["--no-cache-filter", "app"]);
    assert_eq!(
        read(&first.join("deps")),
        read(&second.join("deps")),
        "{out}"
    );
    assert_ne!(read(&first.join("app")), read(&second.join("app")), "{out}");
    // A name no stage has is most likely a typo: said, not fatal.
    let (_, out) = build_local(&case, "third", &["--no-cache-filter=ap"]);
    assert!(
        out.contains("--no-cache-filter ap: the Dockerfile has no stage"),
        "{out}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn push_flag_pushes_with_manifest_annotations() {
    let case = Case::new("pushflag");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let name = format!("{}/kiln/annotated:1", reg.host());
    case.dockerfile("FROM BASE\nRUN echo hi > /hi\n");
    let out = case.build(&[
        "-t",
        &name,
        "--push",
        "--annotation",
        "org.opencontainers.image.source=https://example.com/app",
        "--annotation=manifest:com.example.team=build",
        "--progress=plain",
    ]);
    assert!(out.contains("pushing"), "{out}");
    // An auth file of the test's own: the host's /run/containers may be root's.
    let auth = case.path("auth.json");
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--authfile",
            auth.to_str().unwrap(),
            &format!("docker://{name}"),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let a = &manifest["annotations"];
    assert_eq!(
        a["org.opencontainers.image.source"], "https://example.com/app",
        "{raw}"
    );
    assert_eq!(a["com.example.team"], "build", "{raw}");
    // The stored image is the annotated one (its ID, the config, is unchanged).
    let oci = case.path("oci");
    let o = format!("type=oci,dest={},tar=false", oci.display());
    case.build(&["-t", &name, "-o", &o, "--annotation", "k=v"]);
    let index: serde_json::Value = serde_json::from_str(&read(&oci.join("index.json"))).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .replace(':', "/");
    let m: serde_json::Value =
        serde_json::from_str(&read(&oci.join("blobs").join(digest))).unwrap();
    assert_eq!(m["annotations"]["k"], "v", "{m}");

    let err = fails(&case.kiln(&["build", "--push", case.ctx().to_str().unwrap()]));
    assert!(err.contains("name the image with -t"), "{err}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn buildkit_progress_env_and_call_check() {
    let case = Case::new("progressenv");
    case.dockerfile("FROM BASE\nRUN echo built\n");
    let ctx = case.ctx();
    let ctx = ctx.to_str().unwrap();
    let out = case.kiln_env(&["build", ctx], &[("BUILDKIT_PROGRESS", "quiet")]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim().starts_with("sha256:"), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
    // The flag wins over the environment.
    let out = case.kiln_env(
        &["build", "--progress=plain", ctx],
        &[("BUILDKIT_PROGRESS", "quiet")],
    );
    assert!(text(&out).contains("#1 "), "{}", text(&out));
    let err = fails(&case.kiln_env(&["build", ctx], &[("BUILDKIT_PROGRESS", "fancy")]));
    assert!(err.contains("--progress=fancy"), "{err}");
    // Set but empty (a CI template's default): auto, as in buildx.
    let out = case.kiln_env(&["build", ctx], &[("BUILDKIT_PROGRESS", "")]);
    assert!(text(&out).contains("#1 "), "{}", text(&out));

    // --call=check is --check: the lint report, nothing built.
    case.dockerfile("from BASE as base\nRUN echo built\n");
    let check = case.kiln(&["build", "--check", ctx]);
    let call = case.kiln(&["build", "--call=check", ctx]);
    assert_eq!(text(&call), text(&check));
    assert_eq!(call.status.code(), check.status.code());
    assert!(
        text(&call).contains("ConsistentInstructionCasing"),
        "{}",
        text(&call)
    );
    assert!(!text(&call).contains("built"), "{}", text(&call));
}

/// An `ssh-agent -d` of the test's own on a socket in `dir`; its debug
/// log goes to `dir/agent.log`.
struct Agent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        // Short (a socket address holds 108 bytes), and one per agent:
        // tests run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = std::env::temp_dir().join(format!("kiln-ssh-{}-{n}.sock", std::process::id()));
        let _ = fs::remove_file(&socket);
        let log = dir.join("agent.log");
        let child = Command::new("ssh-agent")
            .args(["-d", "-a"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("ssh-agent (openssh-client) runs");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(socket.exists(), "ssh-agent did not start: {}", read(&log));
        Agent { child, socket, log }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
    }
}

/// BuildKit: testSSHSocketParams. The agent is a real ssh-agent (kiln
/// forwards agents, not key files).
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn ssh_socket_params() {
    let case = Case::new("sshparams");
    let agent = Agent::start(&case.dir);
    case.dockerfile(
        "FROM BASE\nRUN --mount=type=ssh,mode=741,uid=100,gid=102 \
         [ \"$(stat -c \"%u %g %f\" $SSH_AUTH_SOCK)\" = \"100 102 c1e1\" ]\n",
    );
    let sock = format!("default={}", agent.socket.display());
    case.build(&["--ssh", &sock, "--progress=plain"]);

    // SSH_AUTH_SOCK is how `--ssh default` finds the agent; a required
    // agent not given, or no agent at all, is a clear error.
    case.dockerfile(
        "FROM BASE\nRUN --mount=type=ssh,id=deploy,required test -S /run/buildkit/ssh_agent.0\n",
    );
    let sock_env = agent.socket.to_str().unwrap();
    let ctx = case.ctx();
    let out = case.kiln_env(
        &["build", "--ssh", "deploy", ctx.to_str().unwrap()],
        &[("SSH_AUTH_SOCK", sock_env)],
    );
    assert!(out.status.success(), "{}", text(&out));
    // (--no-cache: a cached step, as in BuildKit, needs no agent.)
    let err = fails(&case.kiln(&["build", "--no-cache", ctx.to_str().unwrap()]));
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("pass --ssh deploy"), "{err}");
    let err = fails(&case.kiln_env(
        &["build", "--ssh", "default", ctx.to_str().unwrap()],
        &[("SSH_AUTH_SOCK", "")],
    ));
    assert!(err.contains("SSH_AUTH_SOCK is not set"), "{err}");
    let err = fails(&case.kiln(&[
        "build",
        "--ssh",
        &format!("default={}", case.path("agent.log").display()),
        ctx.to_str().unwrap(),
    ]));
    assert!(err.contains("not an agent socket"), "{err}");
    // Optional and not given: the step runs without it.
    case.dockerfile("FROM BASE\nRUN --mount=type=ssh test -z \"$SSH_AUTH_SOCK\"\n");
    case.build(&[]);
}

/// The host's ssh-add with the libraries it loads, copied into `dir`:
/// the busybox image has no ssh client. Returns the command to run it
/// from `/ssh` in a step.
fn copy_ssh_add(dir: &Path) -> String {
    fs::create_dir_all(dir).unwrap();
    let ssh_add = tool("sh", &["-c", "command -v ssh-add"]);
    let ssh_add = ssh_add.trim();
    let ldd = tool("ldd", &[ssh_add]);
    let mut loader = String::new();
    for line in ldd.lines() {
        let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        let name = Path::new(path)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        fs::copy(path, dir.join(&name)).unwrap();
        if !line.contains("=>") {
            loader = name;
        }
    }
    fs::copy(ssh_add, dir.join("ssh-add")).unwrap();
    format!("/ssh/{loader} --library-path /ssh /ssh/ssh-add")
}

/// BuildKit: testSSHFileDescriptorsClosed. Each connection the step makes
/// is a connection to the agent, closed when the step's is: the agent
/// serves every one on the same slot (socket 1), never holding 2 or 3.
#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn ssh_file_descriptors_closed() {
    let case = Case::new("sshfds");
    let agent = Agent::start(&case.dir);
    let ssh_add = copy_ssh_add(&case.ctx().join("ssh"));
    case.dockerfile(&format!(
        "FROM BASE\nRUN --mount=type=ssh --mount=type=bind,source=ssh,target=/ssh \
         for i in 1 2 3; do {ssh_add} -l >> /out 2>&1; sleep 0.2; done; exit 0\n"
    ));
    let sock = format!("default={}", agent.socket.display());
    let (dir, _) = build_local(&case, "root", &["--ssh", &sock]);
    let said = read(&dir.join("out"));
    assert_eq!(
        said.matches("The agent has no identities").count(),
        3,
        "{said}"
    );
    let log_path = agent.log.clone();
    drop(agent);
    let log = read(&log_path);
    assert!(log.contains("process_message: socket 1"), "{log}");
    assert!(!log.contains("process_message: socket 2"), "{log}");
    assert!(!log.contains("process_message: socket 3"), "{log}");
}

/// `kiln ARGS` in a terminal `cols` wide (script(1)'s pty, `stty cols`),
/// run from `cwd`; what the terminal received, with the cursor moves and
/// redraws as they came.
fn in_terminal(case: &Case, cwd: &Path, cols: usize, args: &[&str]) -> (bool, String) {
    let mut cmd = format!(
        "stty cols {cols} && exec '{}' --root '{}'",
        support::kiln_bin().display(),
        case.store().display()
    );
    for a in args {
        cmd.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("script (bsdutils) runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The lines as a terminal shows them in the end: the escape sequences
/// taken out, each redrawn block as its own lines.
fn screen_lines(raw: &str) -> Vec<String> {
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            text.push(c);
        }
    }
    text.lines().map(str::to_string).collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn live_view_counts_steps_fits_narrow_terminals_and_ends_with_the_image() {
    let case = Case::new("tty");
    let reg = TestRegistry::start(&case.path("reg"), &[]);
    let name = format!("{}/kiln/tty:1", reg.host());
    case.dockerfile(
        "FROM BASE\nRUN echo a long command line, longer than the terminal is wide > /f\n\
         RUN head -c 300000 /dev/urandom > /blob\n",
    );
    let ctx = case.ctx();
    let (ok, raw) = in_terminal(
        &case,
        &case.dir,
        40,
        &[
            "build",
            "-t",
            &name,
            "--push",
            "-o",
            "type=docker,dest=app.tar",
            ctx.to_str().unwrap(),
        ],
    );
    let lines = screen_lines(&raw);
    let all = lines.join("\n");
    assert!(ok, "{all}");
    for l in &lines {
        assert!(
            l.chars().count() <= 39,
            "wider than the terminal: {l:?}\n{all}"
        );
    }
    // The long RUN: its label cut, its timer whole.
    let run = lines
        .iter()
        .rev()
        .find(|l| l.starts_with(" => [stage-0 2/3] RUN echo"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(run.contains('…') && run.trim_end().ends_with('s'), "{run}");
    let secs = run.rsplit(' ').next().unwrap().trim_end_matches('s');
    assert!(secs.parse::<f64>().is_ok(), "{run}");
    // (N/M): counted up while running, M all along; FINISHED and the image last.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[+] Building") && l.ends_with("(0/5)")),
        "{all}"
    );
    let n = lines.len();
    assert!(lines[n - 2].starts_with("[+] Building"), "{all}");
    assert!(lines[n - 2].ends_with("(5/5) FINISHED"), "{all}");
    assert!(lines[n - 1].starts_with(&format!(" => {name}")), "{all}");
    assert!(!all.contains("Successfully built"), "{all}");
    // The export's bytes; each pushed blob, its timer whole.
    assert!(
        lines.iter().any(|l| l.starts_with(" => => writing app.tar")
            && l.contains("MB")
            && l.ends_with("s done")),
        "{all}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("s pushed")).count(),
        4,
        "{all}"
    );

    // A pull's bytes (in 80 columns: the digest and the size fit).
    let other = Case::new("ttypull");
    other.dockerfile(&format!("FROM {name}\nRUN test -s /blob\n"));
    let ctx = other.ctx();
    let (ok, raw) = in_terminal(&other, &other.dir, 80, &["build", ctx.to_str().unwrap()]);
    let lines = screen_lines(&raw);
    let all = lines.join("\n");
    assert!(ok, "{all}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("kB") && l.ends_with("s downloaded")),
        "{all}"
    );
    assert!(lines.last().unwrap().starts_with(" => sha256:"), "{all}");
}
