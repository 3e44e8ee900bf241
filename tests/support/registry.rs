//! Registries for the pull/push tests: Debian's docker-registry
//! (distribution 2.8) on a free 127.0.0.1 port, open or with htpasswd
//! basic auth, and a small front server that either demands a bearer
//! token (with its own token endpoint) or corrupts the blobs it relays.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct TestRegistry {
    child: Child,
    pub port: u16,
}

impl TestRegistry {
    /// Starts a registry storing in `dir`; with `users`, htpasswd basic
    /// auth for them (`htpasswd -B`).
    pub fn start(dir: &Path, users: &[(&str, &str)]) -> TestRegistry {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut auth = String::new();
        if !users.is_empty() {
            let file = dir.join("htpasswd");
            let mut lines = String::new();
            for (u, p) in users {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd (apache2-utils) runs");
                lines.push_str(String::from_utf8_lossy(&out.stdout).trim());
                lines.push('\n');
            }
            std::fs::write(&file, lines).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                file.display()
            );
        }
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        // distribution reads every REGISTRY_* variable as a config override
        // (REGISTRY_AUTH_FILE would become an unknown auth backend).
        let mut cmd = Command::new("docker-registry");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("docker-registry (package docker-registry) runs");
        wait_for(port);
        TestRegistry { child, port }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the front server does.
#[derive(Clone)]
pub enum Front {
    /// Demands `Authorization: Bearer <token>`, which its `/token`
    /// endpoint gives for the right basic credentials.
    Bearer {
        user: String,
        password: String,
        token: String,
    },
    /// Relays everything, flipping the last byte of every blob.
    CorruptBlobs,
}

pub struct FrontServer {
    pub port: u16,
}

impl FrontServer {
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts a front server for the registry on `upstream`; it lives as
/// long as the test process.
pub fn front(upstream: u16, mode: Front) -> FrontServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mode = mode.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, upstream, port, &mode);
            });
        }
    });
    FrontServer { port }
}

pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[String],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())
}

fn serve(mut conn: TcpStream, upstream: u16, port: u16, mode: &Front) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();

    if let Front::Bearer {
        user,
        password,
        token,
    } = mode
    {
        if path.starts_with("/token") {
            let want = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
            return if header("authorization").as_deref() == Some(want.as_str()) {
                respond(
                    &mut conn,
                    "200 OK",
                    &["Content-Type: application/json".into()],
                    &format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#),
                )
            } else {
                respond(
                    &mut conn,
                    "401 Unauthorized",
                    &[],
                    r#"{"details":"bad credentials"}"#,
                )
            };
        }
        if header("authorization").as_deref() != Some(format!("Bearer {token}").as_str()) {
            let challenge = format!(
                r#"WWW-Authenticate: Bearer realm="http://127.0.0.1:{port}/token",service="kiln-test""#
            );
            return respond(
                &mut conn,
                "401 Unauthorized",
                &[challenge, "Content-Type: application/json".into()],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\nConnection: close\r\n");
    for h in &headers {
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(name.as_str(), "host" | "connection" | "authorization") {
            head.push_str(h);
            head.push_str("\r\n");
        }
    }
    head.push_str("\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    if matches!(mode, Front::CorruptBlobs) && method == "GET" && path.contains("/blobs/sha256:") {
        if let Some(last) = response.last_mut() {
            *last ^= 0xff;
        }
    }
    conn.write_all(&response)
}

/// A registries.conf pointing `prefix` at `mirror` (plain HTTP), with
/// `location` as the primary.
pub fn mirror_conf(dir: &Path, prefix: &str, location: &str, mirror: &str) -> PathBuf {
    let p = dir.join("registries.conf");
    std::fs::write(
        &p,
        format!(
            "[[registry]]\nprefix = \"{prefix}\"\nlocation = \"{location}\"\n\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    p
}
