//! A scripted HTTP server on 127.0.0.1 for the hostile-server tests: a
//! closure picks each request's reply (stall, a huge or endless body, a
//! doctored manifest), and every request is recorded as it arrived.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target, as sent (not normalised).
    pub path: String,
    pub authorization: Option<String>,
}

pub enum Reply {
    /// Reads the request and never answers (the connection stays open).
    Stall,
    /// A whole response, with its Content-Length.
    Body {
        status: &'static str,
        headers: Vec<String>,
        body: Vec<u8>,
    },
    /// `head` then `spaces` spaces (valid JSON stays valid), with a
    /// Content-Length if `declared`, else ended by closing.
    Padded {
        headers: Vec<String>,
        head: Vec<u8>,
        spaces: usize,
        declared: bool,
    },
    /// 200 with a Content-Length of `declared`, `sent` bytes of it, then
    /// silence.
    StallBody { declared: u64, sent: Vec<u8> },
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Hostile {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Hostile {
    /// Serves every request with `handler`; lives as long as the test
    /// process.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (handler, seen) = (handler.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &*handler, &seen);
                });
            }
        });
        Hostile { port, requests }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn paths(&self) -> Vec<String> {
        let r = self.requests.lock().unwrap();
        r.iter().map(|r| r.path.clone()).collect()
    }
}

/// Connections kept open by [`Reply::Stall`] and [`Reply::StallBody`].
static HELD: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

fn serve(
    mut conn: TcpStream,
    handler: &Handler,
    seen: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let mut request = Request {
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("").to_string(),
        authorization: None,
    };
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                request.authorization = Some(v.trim().to_string());
            }
        }
    }
    seen.lock().unwrap().push(request.clone());
    let head = |status: &str, headers: &[String], length: Option<u64>| {
        let mut h = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        if let Some(n) = length {
            h.push_str(&format!("Content-Length: {n}\r\n"));
        }
        for x in headers {
            h.push_str(x);
            h.push_str("\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    };
    match handler(&request) {
        Reply::Stall => HELD.lock().unwrap().push(conn),
        Reply::Body {
            status,
            headers,
            body,
        } => {
            conn.write_all(&head(status, &headers, Some(body.len() as u64)))?;
            conn.write_all(&body)?;
        }
        Reply::Padded {
            headers,
            head: start,
            spaces,
            declared,
        } => {
            let total = (start.len() + spaces) as u64;
            conn.write_all(&head("200 OK", &headers, declared.then_some(total)))?;
            conn.write_all(&start)?;
            let block = vec![b' '; 64 * 1024];
            let mut left = spaces;
            while left > 0 {
                let n = left.min(block.len());
                conn.write_all(&block[..n])?;
                left -= n;
            }
        }
        Reply::StallBody { declared, sent } => {
            conn.write_all(&head("200 OK", &[], Some(declared)))?;
            conn.write_all(&sent)?;
            conn.flush()?;
            HELD.lock().unwrap().push(conn);
        }
    }
    Ok(())
}
