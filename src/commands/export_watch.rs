//! Byte progress of `-o` exports: the size of the file being written,
//! read ten times a second while the export runs, shown on its step (the
//! live view), then kept as its `writing FILE 12.3MB 0.4s done` line.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::export::Output;
use crate::build::Vertex;

/// The file an output writes, if it writes one.
fn dest_file(output: &Output) -> Option<&Path> {
    match output {
        Output::DockerArchive(p) | Output::OciArchive(p) | Output::Tar(p) => Some(p),
        _ => None,
    }
}

/// Sizes as BuildKit prints them (`3.41MB`).
fn size(n: u64) -> String {
    let f = n as f64;
    match n {
        1_000_000_000.. => format!("{:.2}GB", f / 1e9),
        1_000_000.. => format!("{:.2}MB", f / 1e6),
        1_000.. => format!("{:.2}kB", f / 1e3),
        _ => format!("{n}B"),
    }
}

fn written(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Runs `export` for `output`, showing the bytes it has written.
pub fn watch(
    vertex: &Vertex<'_>,
    output: &Output,
    export: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let Some(path) = dest_file(output) else {
        return export();
    };
    let started = Instant::now();
    let name = path.display().to_string();
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                vertex.status(&format!("writing {name} {}", size(written(path))));
                std::thread::park_timeout(Duration::from_millis(100));
            }
        });
        let result = export();
        stop.store(true, Ordering::Relaxed);
        watcher.thread().unpark();
        result
    });
    vertex.status("");
    if result.is_ok() {
        vertex.log(&format!(
            "writing {name} {} {:.1}s done",
            size(written(path)),
            started.elapsed().as_secs_f64()
        ));
    }
    result
}
