//! Build progress on stderr, as BuildKit shows it.
//!
//! * plain: `#N [stage i/n] INSTRUCTION`, the step's output as
//!   `#N 0.123 line`, then `#N DONE 0.4s` or `#N CACHED`;
//! * tty: a live, compact view redrawn ten times a second — finished steps
//!   scroll up as one line each, running steps show their time and last
//!   output line;
//! * quiet: nothing (the caller prints the image ID).
//!
//! In tty mode one renderer thread does all terminal writes, so parallel
//! stages never tear each other's lines.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines of a failed step's output repeated in its error.
const TAIL: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

impl Mode {
    /// `--progress` (`auto`: tty when stderr is a terminal).
    pub fn parse(value: &str, quiet: bool) -> Option<Mode> {
        Some(match value {
            _ if quiet => Mode::Quiet,
            "auto" if std::io::stderr().is_terminal() => Mode::Tty,
            "auto" | "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "quiet" => Mode::Quiet,
            _ => return None,
        })
    }
}

/// What the tty view shows.
#[derive(Default)]
struct Screen {
    /// Finished lines not yet printed.
    finished: Vec<String>,
    /// Running steps: id → (label, start, last output line).
    running: Vec<(usize, String, Instant, String)>,
    /// Lines of the live block currently on screen.
    drawn: usize,
}

pub struct Progress {
    next: AtomicUsize,
    mode: Mode,
    started: Instant,
    screen: Arc<Mutex<Screen>>,
    stop: Arc<AtomicBool>,
    renderer: Mutex<Option<JoinHandle<()>>>,
}

/// One step being shown.
pub struct Vertex<'a> {
    progress: &'a Progress,
    pub id: usize,
    started: Instant,
    label: String,
}

fn lock(s: &Mutex<Screen>) -> std::sync::MutexGuard<'_, Screen> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let p = Progress {
            next: AtomicUsize::new(1),
            mode,
            started: Instant::now(),
            screen: Arc::default(),
            stop: Arc::default(),
            renderer: Mutex::new(None),
        };
        if mode == Mode::Tty {
            let (screen, stop, started) = (p.screen.clone(), p.stop.clone(), p.started);
            let handle = std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    draw(&screen, started, false);
                    std::thread::sleep(Duration::from_millis(100));
                }
                draw(&screen, started, true);
            });
            *p.renderer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
        }
        p
    }

    pub fn start(&self, label: &str) -> Vertex<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            Mode::Plain => say!("#{id} {label}"),
            Mode::Tty => lock(&self.screen).running.push((
                id,
                label.to_string(),
                Instant::now(),
                String::new(),
            )),
            Mode::Quiet => {}
        }
        Vertex {
            progress: self,
            id,
            started: Instant::now(),
            label: label.to_string(),
        }
    }

    /// A line that belongs to no step (warnings, the result).
    pub fn note(&self, text: &str) {
        match self.mode {
            Mode::Plain => say!("{text}"),
            Mode::Tty => lock(&self.screen).finished.push(text.to_string()),
            Mode::Quiet => {}
        }
    }

    /// Stops the live view (drawing the last state); idempotent.
    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self
            .renderer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn end(&self, id: usize, line: String) {
        let mut s = lock(&self.screen);
        s.running.retain(|r| r.0 != id);
        s.finished.push(line);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Redraws the live block: finished lines scroll up, running steps below.
/// The last draw leaves only the finished lines.
fn draw(screen: &Mutex<Screen>, started: Instant, last: bool) {
    let mut s = lock(screen);
    let mut out = String::new();
    if s.drawn > 0 {
        out.push_str(&format!("\x1b[{}A\x1b[J", s.drawn));
    }
    for line in s.finished.drain(..) {
        out.push_str(&line);
        out.push('\n');
    }
    if last {
        s.drawn = 0;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
        return;
    }
    let width = terminal_width();
    let mut lines = vec![format!(
        "[+] Building {:.1}s",
        started.elapsed().as_secs_f64()
    )];
    for (_, label, at, last) in &s.running {
        lines.push(clip(
            &format!(" => {label} {:.1}s", at.elapsed().as_secs_f64()),
            width,
        ));
        if !last.is_empty() {
            lines.push(clip(&format!("    \x1b[2m{last}\x1b[0m"), width + 8));
        }
    }
    s.drawn = lines.len();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .map(|w| w.ws_col as usize)
        .ok()
        .filter(|&w| w > 20)
        .unwrap_or(100)
}

fn clip(s: &str, width: usize) -> String {
    s.chars().take(width.saturating_sub(1)).collect()
}

impl Vertex<'_> {
    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn done(self) {
        match self.progress.mode {
            Mode::Plain => say!("#{} DONE {:.1}s", self.id, self.elapsed()),
            Mode::Tty => self.progress.end(
                self.id,
                format!(" => {} {:.1}s", self.label, self.elapsed()),
            ),
            Mode::Quiet => {}
        }
    }

    pub fn cached(self) {
        match self.progress.mode {
            Mode::Plain => say!("#{} CACHED", self.id),
            Mode::Tty => self
                .progress
                .end(self.id, format!(" => CACHED {}", self.label)),
            Mode::Quiet => {}
        }
    }

    pub fn error(self, message: &str) {
        match self.progress.mode {
            Mode::Tty => self
                .progress
                .end(self.id, format!(" => ERROR {}: {message}", self.label)),
            _ => say!("#{} ERROR: {message}", self.id),
        }
    }

    pub fn log(&self, text: &str) {
        match self.progress.mode {
            Mode::Plain => say!("#{} {:.3} {text}", self.id, self.elapsed()),
            Mode::Tty => set_last(&self.progress.screen, self.id, text),
            Mode::Quiet => {}
        }
    }

    /// A pipe whose lines are this step's output (shown per the mode);
    /// joining the handle after the step gives its last lines.
    pub fn output(&self) -> std::io::Result<(OwnedFd, JoinHandle<Vec<String>>)> {
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (id, started, mode) = (self.id, self.started, self.progress.mode);
        let screen = self.progress.screen.clone();
        let handle = std::thread::spawn(move || {
            let reader = BufReader::new(std::fs::File::from(rd));
            let mut last = VecDeque::with_capacity(TAIL);
            for line in reader.split(b'\n') {
                let Ok(line) = line else { break };
                let text = String::from_utf8_lossy(&line).into_owned();
                match mode {
                    Mode::Plain => {
                        let mut err = std::io::stderr().lock();
                        let _ =
                            writeln!(err, "#{id} {:.3} {text}", started.elapsed().as_secs_f64());
                    }
                    Mode::Tty => set_last(&screen, id, &text),
                    Mode::Quiet => {}
                }
                if last.len() == TAIL {
                    last.pop_front();
                }
                last.push_back(text);
            }
            last.into()
        });
        Ok((wr, handle))
    }
}

fn set_last(screen: &Mutex<Screen>, id: usize, text: &str) {
    if let Some(r) = lock(screen).running.iter_mut().find(|r| r.0 == id) {
        r.3 = text.chars().filter(|c| !c.is_control()).collect();
    }
}

/// A pull's or push's transfers shown on its step: finished blobs as
/// lines, running ones as the live status.
impl kiln_registry::Events for Vertex<'_> {
    fn line(&self, text: &str) {
        self.log(text);
    }

    fn status(&self, text: &str) {
        if self.progress.mode == Mode::Tty && !text.is_empty() {
            set_last(&self.progress.screen, self.id, text);
        }
    }
}
