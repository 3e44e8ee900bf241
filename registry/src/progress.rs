//! Transfer progress: a line per finished blob, and a live status line
//! with every running transfer's bytes and rate (for a terminal view).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where progress goes; kiln's build view implements it.
pub trait Events: Sync {
    /// A finished event: one line, kept (plain mode prints it).
    fn line(&self, text: &str);
    /// The current state of running transfers, replaced by the next call
    /// (only a live view shows it).
    fn status(&self, _text: &str) {}
}

/// No progress output.
pub struct Silent;

impl Events for Silent {
    fn line(&self, _text: &str) {}
}

struct Transfer {
    id: usize,
    label: String,
    done: u64,
    total: u64,
    started: Instant,
}

/// Running transfers, rendered into [`Events::status`] at most ten times
/// a second.
pub(crate) struct Transfers<'a> {
    events: &'a dyn Events,
    state: Mutex<(Vec<Transfer>, usize, Instant)>,
}

/// Human sizes as BuildKit prints them (`3.41MB`).
pub(crate) fn size(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.2}kB", n / 1e3)
    } else {
        format!("{n}B")
    }
}

impl<'a> Transfers<'a> {
    pub fn new(events: &'a dyn Events) -> Transfers<'a> {
        Transfers {
            events,
            state: Mutex::new((Vec::new(), 0, Instant::now())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Transfer>, usize, Instant)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn line(&self, text: &str) {
        self.events.line(text);
    }

    pub fn start(&self, label: &str, total: u64) -> usize {
        let mut s = self.lock();
        s.1 += 1;
        let id = s.1;
        s.0.push(Transfer {
            id,
            label: label.to_string(),
            done: 0,
            total,
            started: Instant::now(),
        });
        id
    }

    pub fn advance(&self, id: usize, n: u64) {
        let mut s = self.lock();
        if let Some(t) = s.0.iter_mut().find(|t| t.id == id) {
            t.done += n;
        }
        if s.2.elapsed() >= Duration::from_millis(100) {
            s.2 = Instant::now();
            let text = render(&s.0);
            drop(s);
            self.events.status(&text);
        }
    }

    /// Restarts a transfer's count (a retried download).
    pub fn reset(&self, id: usize) {
        if let Some(t) = self.lock().0.iter_mut().find(|t| t.id == id) {
            t.done = 0;
        }
    }

    pub fn finish(&self, id: usize, verb: &str) {
        let mut s = self.lock();
        let Some(i) = s.0.iter().position(|t| t.id == id) else {
            return;
        };
        let t = s.0.remove(i);
        let text = render(&s.0);
        drop(s);
        self.events.line(&format!(
            "{} {} {:.1}s {verb}",
            t.label,
            size(t.done.max(t.total)),
            t.started.elapsed().as_secs_f64()
        ));
        self.events.status(&text);
    }

    pub fn abandon(&self, id: usize) {
        self.lock().0.retain(|t| t.id != id);
    }
}

fn render(transfers: &[Transfer]) -> String {
    transfers
        .iter()
        .map(|t| {
            let secs = t.started.elapsed().as_secs_f64().max(0.001);
            format!(
                "{} {} / {} {}/s",
                t.label,
                size(t.done),
                size(t.total),
                size((t.done as f64 / secs) as u64)
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
