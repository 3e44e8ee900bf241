//! Capture throughput (not a test): `capture` of a directory to gzip (or
//! zstd / plain) into a sink, median of N runs, printed as MB/s of tar
//! input. Used by scripts/bench-layer.sh.
//!
//! Usage: capture DIR [gzip|zstd|none] [RUNS]   (DIR also from KILN_BENCH_DIR)

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use kiln_layer::{capture, CaptureOptions, Compression};

/// A sink that counts bytes, so the figure includes no disk write.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(dir) = args
        .first()
        .cloned()
        .or_else(|| std::env::var("KILN_BENCH_DIR").ok())
    else {
        eprintln!("usage: capture DIR [gzip|zstd|none] [RUNS] (or KILN_BENCH_DIR=DIR)");
        return;
    };
    let compression = match args.get(1).map(String::as_str).unwrap_or("gzip") {
        "zstd" => Some(Compression::Zstd),
        "none" => None,
        _ => Some(Compression::Gzip),
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let dir = PathBuf::from(dir);
    // One uncompressed pass first: it warms the page cache like the other
    // tools' runs and gives the tar size the rate is computed from.
    let mut tar = Count(0);
    capture(&dir, &mut tar, None, &CaptureOptions::default()).expect("capture");
    let tar_bytes = tar.0;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        capture(&dir, &mut Count(0), compression, &CaptureOptions::default()).expect("capture");
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "kiln-layer capture ({:?}): median {:.3} s, {:.1} MB/s ({} tar bytes)",
        compression,
        median,
        tar_bytes as f64 / median / 1e6,
        tar_bytes
    );
}
