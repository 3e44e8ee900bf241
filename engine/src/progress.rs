//! Build progress on stderr, as BuildKit shows it.
//!
//! * plain: `#N [stage i/n] INSTRUCTION`, the step's output as
//!   `#N 0.123 line`, then `#N DONE 0.4s` or `#N CACHED`;
//! * tty: a live, compact view redrawn ten times a second (`tty.rs`) —
//!   finished steps scroll up as one line each, running steps show their
//!   time, last output line and transfers, under a `(N/M)` step count;
//!   the end is buildx's `FINISHED` line and the image;
//! * quiet: nothing (the caller prints the image ID).
//!
//! In tty mode one renderer thread does all terminal writes, so parallel
//! stages never tear each other's lines.

use std::collections::VecDeque;
mod tty;

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tty::{Line, Running, Screen};

/// Lines of a failed step's output repeated in its error.
const TAIL: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    Quiet,
}

impl Mode {
    /// `--progress` or `BUILDKIT_PROGRESS` (`auto`, or empty as buildx
    /// reads an empty variable: tty when stderr is a terminal).
    pub fn parse(value: &str, quiet: bool) -> Option<Mode> {
        Some(match value {
            _ if quiet => Mode::Quiet,
            "auto" | "" if std::io::stderr().is_terminal() => Mode::Tty,
            "auto" | "" | "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "quiet" => Mode::Quiet,
            _ => return None,
        })
    }
}

/// Step numbers: one sequence per process. A kiln process runs one build
/// command; the platforms of a multi-platform build each have their own
/// `Progress` and run at once, and numbered as one (as BuildKit numbers
/// one solve) their `#N` lines never clash.
static NEXT: AtomicUsize = AtomicUsize::new(1);

pub struct Progress {
    /// The platform of one build among several (`--platform a,b`): put in
    /// every step's label, as BuildKit's `[linux/arm64 stage 2/3]`.
    platform: Option<String>,
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
        Progress::for_platform(mode, None)
    }

    /// The progress of one platform's build among several.
    pub fn for_platform(mode: Mode, platform: Option<&str>) -> Progress {
        let p = Progress {
            platform: platform.map(str::to_string),
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
                    lock(&screen).draw(started, false);
                    std::thread::sleep(Duration::from_millis(100));
                }
                lock(&screen).draw(started, true);
            });
            *p.renderer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
        }
        p
    }

    pub fn start(&self, label: &str) -> Vertex<'_> {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let label = &match (&self.platform, label.strip_prefix('[')) {
            (None, _) => label.to_string(),
            (Some(p), Some(rest)) => format!("[{p} {rest}"),
            (Some(p), None) => format!("[{p}] {label}"),
        };
        match self.mode {
            Mode::Plain => say!("#{id} {label}"),
            Mode::Tty => {
                let mut s = lock(&self.screen);
                s.started += 1;
                s.running.push(Running {
                    id,
                    label: label.to_string(),
                    at: Instant::now(),
                    last: String::new(),
                    status: String::new(),
                    subs: Vec::new(),
                });
            }
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
            Mode::Tty => lock(&self.screen)
                .finished
                .push(Line::new(text.to_string(), String::new())),
            Mode::Quiet => {}
        }
    }

    /// How many steps the build has, as far as known before it runs (the
    /// `M` of `(N/M)`): each needed stage's FROM and instructions, the
    /// export and the `pushes`. Steps found later (a pull, ONBUILD
    /// triggers) raise it.
    pub fn plan_graph(&self, graph: &kiln_dockerfile::Graph, pushes: usize) {
        let stages: usize = graph
            .order
            .iter()
            .map(|&i| graph.file.stages[i].commands.len() + 1)
            .sum();
        lock(&self.screen).planned = stages + 1 + pushes;
    }

    /// The built image: the live view's last line, after FINISHED, names
    /// it (buildx's end); the plain view keeps `Successfully built ID`.
    pub fn result(&self, id: &str, names: &[String]) {
        let short = &id[..id.len().min(12)];
        match self.mode {
            Mode::Tty if names.is_empty() => {
                lock(&self.screen).result = Some(format!("sha256:{short}"))
            }
            Mode::Tty => {
                let line = format!("{} (sha256:{short})", names.join(", "));
                lock(&self.screen).result = Some(line);
            }
            Mode::Plain => say!("Successfully built {short}"),
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

    fn end(&self, id: usize, line: Line) {
        lock(&self.screen).end(id, line);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
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
                Line::new(
                    format!(" => {}", self.label),
                    format!("{:.1}s", self.elapsed()),
                ),
            ),
            Mode::Quiet => {}
        }
    }

    pub fn cached(self) {
        match self.progress.mode {
            Mode::Plain => say!("#{} CACHED", self.id),
            Mode::Tty => self.progress.end(
                self.id,
                Line::new(format!(" => CACHED {}", self.label), "0.0s".into()),
            ),
            Mode::Quiet => {}
        }
    }

    pub fn error(self, message: &str) {
        match self.progress.mode {
            // The whole message follows the view (the build's error).
            Mode::Tty => self.progress.end(
                self.id,
                Line::new(
                    format!(" => ERROR {}: {message}", self.label),
                    format!("{:.1}s", self.elapsed()),
                ),
            ),
            _ => say!("#{} ERROR: {message}", self.id),
        }
    }

    /// A line kept under the step (`=> => naming to …`).
    pub fn log(&self, text: &str) {
        match self.progress.mode {
            Mode::Plain => say!("#{} {:.3} {text}", self.id, self.elapsed()),
            Mode::Tty => {
                if let Some(r) = lock(&self.progress.screen).running(self.id) {
                    r.subs.push(format!(" => => {text}"));
                }
            }
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
    if let Some(r) = lock(screen).running(id) {
        r.last = text.chars().filter(|c| !c.is_control()).collect();
    }
}

impl Vertex<'_> {
    /// The step's running transfers (live view only), replacing the last.
    pub fn status(&self, text: &str) {
        if self.progress.mode == Mode::Tty {
            if let Some(r) = lock(&self.progress.screen).running(self.id) {
                r.status = text.chars().filter(|c| *c != '\n').collect();
            }
        }
    }
}

/// A pull's or push's transfers shown on its step: finished blobs as
/// lines, running ones as the live status.
impl kiln_registry::Events for Vertex<'_> {
    fn line(&self, text: &str) {
        self.log(text);
    }

    fn status(&self, text: &str) {
        self.status(text);
    }
}
