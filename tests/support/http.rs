//! A static HTTP server on 127.0.0.1 for the ADD tests: serves a directory
//! (what git's dumb HTTP transport needs too), with a fixed Last-Modified
//! and an optional Content-Disposition name per path; a directory's path
//! serves its index.html.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Every file's Last-Modified: 2015-10-21 07:28:00 UTC.
pub const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
pub const LAST_MODIFIED_UNIX: i64 = 1_445_412_480;

pub struct FileServer {
    pub port: u16,
    /// Request paths served so far.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    /// Serves `root`; `names` gives paths a Content-Disposition filename.
    pub fn start(root: &Path, names: HashMap<String, String>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, seen) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (root, names, seen) = (root.clone(), names.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &root, &names, &seen);
                });
            }
        });
        FileServer { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn count(&self, path: &str) -> usize {
        let p = format!("/{}", path.trim_start_matches('/'));
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == p)
            .count()
    }
}

fn serve(
    mut conn: TcpStream,
    root: &Path,
    names: &HashMap<String, String>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let mut words = request.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
        let path = target.split('?').next().unwrap_or("/").to_string();
        seen.lock().unwrap().push(path.clone());
        let mut file: PathBuf = root.join(path.trim_start_matches('/'));
        if file.is_dir() {
            file.push("index.html");
        }
        let inside = !path.split('/').any(|c| c == "..");
        match std::fs::read(&file) {
            Ok(body) if inside && file.is_file() => {
                let mut head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {LAST_MODIFIED}\r\n",
                    body.len()
                );
                if let Some(name) = names.get(&path) {
                    head.push_str(&format!(
                        "Content-Disposition: attachment; filename=\"{name}\"\r\n"
                    ));
                }
                head.push_str("\r\n");
                conn.write_all(head.as_bytes())?;
                if method != "HEAD" {
                    conn.write_all(&body)?;
                }
            }
            _ => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
        }
    }
}
