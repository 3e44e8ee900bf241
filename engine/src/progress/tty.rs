//! The live view's screen, as buildx draws it: finished steps scroll up
//! as one line each (with their kept sub-lines, ` => => …`), running
//! steps below with their time, last output line and transfers, then
//! `[+] Building 1.2s (N/M)`. Every line fits the terminal's width: the
//! label is cut, never the timer.

use std::io::Write;
use std::time::Instant;

/// A line whose right part (a time) stays whole when it is fitted.
pub(super) struct Line {
    pub left: String,
    pub right: String,
}

impl Line {
    pub fn new(left: String, right: String) -> Line {
        Line { left, right }
    }

    /// A sub-line whose text ends with a time (`… 1.05MB 0.3s done`):
    /// the time, and the word after it, become the right part.
    pub fn timed(text: String) -> Line {
        let words: Vec<&str> = text.rsplitn(3, ' ').collect();
        let is_time = |w: &str| {
            w.strip_suffix('s')
                .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
        };
        let split = match words.as_slice() {
            [word, time, _] if is_time(time) && !is_time(word) => Some(word.len() + time.len() + 1),
            [time, ..] if is_time(time) => Some(time.len()),
            _ => None,
        };
        match split {
            Some(n) => {
                let (left, right) = text.split_at(text.len() - n);
                Line::new(left.trim_end().to_string(), right.to_string())
            }
            None => Line::new(text, String::new()),
        }
    }
}

/// A step being run.
pub(super) struct Running {
    pub id: usize,
    pub label: String,
    pub at: Instant,
    /// Its last output line.
    pub last: String,
    /// Running transfers (`sha256:… 1.2MB / 3.4MB`), one per line.
    pub status: String,
    /// Lines kept under the step once it is done (`naming to …`).
    pub subs: Vec<String>,
}

#[derive(Default)]
pub(super) struct Screen {
    /// Finished lines not yet printed.
    pub finished: Vec<Line>,
    pub running: Vec<Running>,
    /// Lines of the live block currently on screen.
    pub drawn: usize,
    /// Steps done, and steps the build is known to have.
    pub done: usize,
    pub planned: usize,
    pub started: usize,
    /// What the last line says after FINISHED (the image).
    pub result: Option<String>,
}

impl Screen {
    /// A step's end: its line, then its kept sub-lines.
    pub fn end(&mut self, id: usize, line: Line) {
        let subs = match self.running.iter().position(|r| r.id == id) {
            Some(i) => self.running.remove(i).subs,
            None => Vec::new(),
        };
        self.done += 1;
        self.finished.push(line);
        self.finished.extend(subs.into_iter().map(Line::timed));
    }

    pub fn running(&mut self, id: usize) -> Option<&mut Running> {
        self.running.iter_mut().find(|r| r.id == id)
    }

    fn header(&self, started: Instant, last: bool) -> Line {
        let total = self.planned.max(self.started);
        let mut left = format!(
            "[+] Building {:.1}s ({}/{total})",
            started.elapsed().as_secs_f64(),
            self.done
        );
        if last {
            left.push_str(" FINISHED");
        }
        Line::new(left, String::new())
    }

    /// Redraws: the finished lines scroll up, the live block is drawn
    /// below them. The last draw leaves the finished lines, the FINISHED
    /// header and the result.
    pub fn draw(&mut self, started: Instant, last: bool) {
        let width = terminal_width();
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A\x1b[J", self.drawn));
        }
        for line in self.finished.drain(..) {
            out.push_str(&fit(&line, width));
            out.push('\n');
        }
        let mut block = vec![self.header(started, last)];
        if last {
            self.drawn = 0;
            if let Some(result) = &self.result {
                block.push(Line::new(format!(" => {result}"), String::new()));
            }
        } else {
            for r in &self.running {
                block.push(Line::new(
                    format!(" => {}", r.label),
                    format!("{:.1}s", r.at.elapsed().as_secs_f64()),
                ));
                for s in r.status.split(" · ").filter(|s| !s.is_empty()) {
                    block.push(Line::new(format!(" => => {s}"), String::new()));
                }
                if !r.last.is_empty() {
                    block.push(Line::new(format!("    {}", r.last), String::new()));
                }
            }
            self.drawn = block.len();
        }
        for line in &block {
            out.push_str(&fit(line, width));
            out.push('\n');
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}

/// The terminal's width: stderr's, else the controlling terminal's
/// (`--progress=tty` with stderr redirected), else 80.
fn terminal_width() -> usize {
    let of = |fd: rustix::fd::BorrowedFd<'_>| {
        rustix::termios::tcgetwinsize(fd)
            .ok()
            .map(|w| w.ws_col as usize)
            .filter(|&w| w > 0)
    };
    of(rustix::fd::AsFd::as_fd(&std::io::stderr()))
        .or_else(|| {
            let tty = std::fs::File::open("/dev/tty").ok()?;
            of(rustix::fd::AsFd::as_fd(&tty))
        })
        .unwrap_or(80)
}

/// One line in `width` columns, minus one (a full line would wrap on
/// some terminals): the right part aligned to the edge, the left part
/// cut (with `…`) when both do not fit.
pub(super) fn fit(line: &Line, width: usize) -> String {
    let room = width.saturating_sub(1).max(1);
    let right = line.right.chars().count();
    let left: Vec<char> = line.left.chars().collect();
    if right == 0 {
        return if left.len() <= room {
            line.left.clone()
        } else {
            left[..room - 1].iter().collect::<String>() + "…"
        };
    }
    if right + 2 > room {
        return line.right.chars().take(room).collect();
    }
    let space = room - right - 1;
    if left.len() <= space {
        let pad = room - right - left.len();
        format!("{}{}{}", line.left, " ".repeat(pad), line.right)
    } else {
        let cut: String = left[..space - 1].iter().collect();
        format!("{cut}… {}", line.right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_stays_whole() {
        let l = Line::new(" => [app 2/3] RUN make all install".into(), "12.3s".into());
        let s = fit(&l, 24);
        assert_eq!(s, " => [app 2/3] RU… 12.3s");
        assert_eq!(s.chars().count(), 23);
        let wide = fit(&l, 60);
        assert!(
            wide.starts_with(" => [app 2/3] RUN make all install "),
            "{wide}"
        );
        assert!(
            wide.ends_with(" 12.3s") && wide.chars().count() == 59,
            "{wide}"
        );
        assert_eq!(fit(&Line::new("abcdef".into(), String::new()), 5), "abc…");
        assert_eq!(fit(&l, 4), "12.");
        let t = Line::timed(" => => writing app.tar 1.05MB 0.3s done".into());
        assert_eq!(
            (t.left.as_str(), t.right.as_str()),
            (" => => writing app.tar 1.05MB", "0.3s done")
        );
        let t = Line::timed(" => => naming to app".into());
        assert_eq!(
            (t.left.as_str(), t.right.as_str()),
            (" => => naming to app", "")
        );
        assert_eq!(Line::timed("x 2.0s".into()).right, "2.0s");
    }
}
