//! BuildKit-style plain progress on stderr: `#N [stage i/n] INSTRUCTION`,
//! the step's output as `#N 0.123 line`, then `#N DONE 0.4s`.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// Lines of a failed step's output repeated in its error.
const TAIL: usize = 10;

pub struct Progress {
    next: AtomicUsize,
    quiet: bool,
}

/// One step being shown.
pub struct Vertex<'a> {
    progress: &'a Progress,
    pub id: usize,
    started: Instant,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            next: AtomicUsize::new(1),
            quiet,
        }
    }

    pub fn start(&self, label: &str) -> Vertex<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if !self.quiet {
            eprintln!("#{id} {label}");
        }
        Vertex {
            progress: self,
            id,
            started: Instant::now(),
        }
    }

    /// A line that belongs to no step (warnings, the result).
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

impl Vertex<'_> {
    pub fn done(self) {
        if !self.progress.quiet {
            eprintln!(
                "#{} DONE {:.1}s",
                self.id,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    pub fn cached(self) {
        if !self.progress.quiet {
            eprintln!("#{} CACHED", self.id);
        }
    }

    pub fn error(self, message: &str) {
        eprintln!("#{} ERROR: {message}", self.id);
    }

    pub fn log(&self, text: &str) {
        if !self.progress.quiet {
            eprintln!(
                "#{} {:.3} {text}",
                self.id,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// A pipe whose lines are shown as this step's output; joining the
    /// handle after the step gives its last lines (for an error message).
    /// Quiet builds show nothing.
    pub fn output(&self) -> std::io::Result<(OwnedFd, JoinHandle<Vec<String>>)> {
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (id, started, quiet) = (self.id, self.started, self.progress.quiet);
        let handle = std::thread::spawn(move || {
            let reader = BufReader::new(std::fs::File::from(rd));
            let stderr = std::io::stderr();
            let mut last = std::collections::VecDeque::with_capacity(TAIL);
            for line in reader.split(b'\n') {
                let Ok(line) = line else { break };
                if last.len() == TAIL {
                    last.pop_front();
                }
                last.push_back(String::from_utf8_lossy(&line).into_owned());
                if quiet {
                    continue;
                }
                let mut out = stderr.lock();
                let _ = write!(out, "#{id} {:.3} ", started.elapsed().as_secs_f64());
                let _ = out.write_all(&line);
                let _ = out.write_all(b"\n");
            }
            last.into()
        });
        Ok((wr, handle))
    }
}
