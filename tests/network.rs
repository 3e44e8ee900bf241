//! RUN's network, end to end and rootless (run by scripts/test-build.sh as
//! an unprivileged user): by default a build's steps share a private
//! network namespace with user-mode networking (pasta), so they reach the
//! outside but neither the host's 127.0.0.1 services nor its abstract unix
//! sockets; `--network host` (flag or `RUN --network=host`) still shares
//! the host's; without a usable pasta the build runs on the host's network
//! after one warning; pasta never outlives kiln.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{text, Case};

const SECRET: &str = "host-only-secret";

/// An HTTP server on `ip` answering every request with [`SECRET`]. (HTTP
/// and wget, not bare nc: nc half-closes at the end of its stdin, and the
/// pasta of Debian 12 then drops the server's answer.)
fn http_server(ip: &str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let body = format!("{SECRET}\n");
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A step command that fetches `host:port` into `file`, or writes
/// "refused" there.
fn fetch(host: &str, port: u16, file: &str) -> String {
    // (busybox 1.35's static wget crashes with -T: `timeout` instead.)
    format!("(timeout 10 wget -q -O - http://{host}:{port}/ || echo refused) > {file}")
}

/// An abstract unix socket listening under a name unique to this test;
/// dropped with the test.
fn abstract_socket(tag: &str) -> (UnixListener, String) {
    let name = format!("kiln-test-{}-{tag}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    (UnixListener::bind_addr(&addr).unwrap(), name)
}

/// A RUN that records what the step sees of the host: the TCP server's
/// answer (or "refused") and whether the abstract socket is in the step's
/// network namespace (/proc/net/unix lists exactly the abstract sockets a
/// process there can connect to).
fn probe(run_flags: &str, port: u16, name: &str) -> String {
    format!(
        "FROM BASE\n\
         RUN {run_flags} {}; (grep -c '@{name}$' /proc/net/unix || true) > /abstract\n",
        fetch("127.0.0.1", port, "/tcp")
    )
}

/// Build the case and read `files` from the result.
fn build_and_read<const N: usize>(case: &Case, extra: &[&str], files: [&str; N]) -> [String; N] {
    let out = case.path("out");
    let dest = format!("type=local,dest={}", out.display());
    let mut args = vec!["-o", dest.as_str()];
    args.extend_from_slice(extra);
    case.build(&args);
    files.map(|f| fs::read_to_string(out.join(f)).unwrap())
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn default_run_reaches_neither_host_loopback_nor_abstract_sockets() {
    let port = http_server("127.0.0.1");
    let (_sock, name) = abstract_socket("default");
    let case = Case::new("net-default");
    case.dockerfile(&probe("", port, &name));
    let [tcp, abstract_seen] = build_and_read(&case, &[], ["tcp", "abstract"]);
    assert_eq!(tcp, "refused\n");
    assert_eq!(abstract_seen, "0\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn network_host_flag_reaches_host_loopback_and_abstract_sockets() {
    let port = http_server("127.0.0.1");
    let (_sock, name) = abstract_socket("flag");
    let case = Case::new("net-host-flag");
    case.dockerfile(&probe("", port, &name));
    let [tcp, abstract_seen] = build_and_read(&case, &["--network", "host"], ["tcp", "abstract"]);
    assert_eq!(tcp, format!("{SECRET}\n"));
    assert_eq!(abstract_seen, "1\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn run_network_host_reaches_host_loopback_and_abstract_sockets() {
    let port = http_server("127.0.0.1");
    let (_sock, name) = abstract_socket("run");
    let case = Case::new("net-host-run");
    case.dockerfile(&probe("--network=host", port, &name));
    let [tcp, abstract_seen] = build_and_read(&case, &[], ["tcp", "abstract"]);
    assert_eq!(tcp, format!("{SECRET}\n"));
    assert_eq!(abstract_seen, "1\n");
}

/// The host's address on its main interface (the source address of a
/// route to the outside; a UDP "connect" sends nothing).
fn host_address() -> String {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.255:9")
        .or_else(|_| s.connect("203.0.113.1:9"))
        .expect("a route to the outside");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no non-loopback address: {ip}");
    ip.to_string()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn default_run_reaches_the_hosts_own_address_and_its_own_loopback() {
    let ip = host_address();
    let port = http_server(&ip);
    let case = Case::new("net-outside");
    // The second half: a server inside the step is reachable on the step's
    // own loopback.
    case.dockerfile(&format!(
        "FROM BASE\n\
         RUN {}\n\
         RUN (nc -l -p 4000 -e echo inside &) ; \
             for i in $(seq 50); do nc 127.0.0.1 4000 </dev/null > /inside && [ -s /inside ] && break; sleep 0.1; done\n",
        fetch(&ip, port, "/outside")
    ));
    let [outside, inside] = build_and_read(&case, &[], ["outside", "inside"]);
    assert_eq!(outside, format!("{SECRET}\n"));
    assert_eq!(inside, "inside\n");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn without_pasta_the_build_uses_the_host_network_after_one_warning() {
    let port = http_server("127.0.0.1");
    let case = Case::new("net-fallback");
    // PATH with what kiln needs but no pasta.
    let bin = case.path("bin");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["newuidmap", "newgidmap"] {
        std::os::unix::fs::symlink(Path::new("/usr/bin").join(tool), bin.join(tool)).unwrap();
    }
    case.dockerfile(&format!(
        "FROM BASE\n\
         RUN {}\n\
         RUN {}\n",
        fetch("127.0.0.1", port, "/first"),
        fetch("127.0.0.1", port, "/second")
    ));
    let out = case.path("out");
    let dest = format!("type=local,dest={}", out.display());
    let ctx = case.ctx();
    let result = case.kiln_env(
        &["build", "-o", &dest, ctx.to_str().unwrap()],
        &[("PATH", bin.to_str().unwrap())],
    );
    let said = text(&result);
    assert!(result.status.success(), "kiln build failed:\n{said}");
    assert_eq!(
        said.matches("warning: private network: pasta").count(),
        1,
        "one warning naming pasta:\n{said}"
    );
    for f in ["first", "second"] {
        assert_eq!(
            fs::read_to_string(out.join(f)).unwrap(),
            format!("{SECRET}\n")
        );
    }
}

/// Every process below `pid` (children first found by their parent).
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so cut at ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|x| x.1).unwrap_or("").to_string();
        let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        all.push((p, ppid.unwrap_or(0), comm));
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp, comm) in &all {
            if *pp == parent {
                found.push((*p, comm.clone()));
                frontier.push(*p);
            }
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn pasta_does_not_outlive_a_killed_kiln() {
    let case = Case::new("net-kill");
    case.dockerfile("FROM BASE\nRUN sleep 60\n");
    let mut kiln = Command::new(support::kiln_bin())
        .arg("--root")
        .arg(case.store())
        .args(["build", case.ctx().to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let tree = loop {
        let tree = descendants(kiln.id());
        // pasta re-executes itself as passt.avx2 where the CPU has AVX2.
        if tree.iter().any(|(_, c)| c.starts_with("pas")) && tree.iter().any(|(_, c)| c == "sleep")
        {
            break tree;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no pasta and step under kiln: {tree:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    kiln.kill().unwrap();
    kiln.wait().unwrap();
    let start = Instant::now();
    while tree.iter().any(|(p, _)| alive(*p)) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "left running after kiln was killed: {:?}",
            tree.iter().filter(|(p, _)| alive(*p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
