//! Unpack throughput (not a test): median of N `unpack` runs of a layer
//! file (any supported compression) into fresh directories, in MB/s of
//! input. Usage: unpack LAYER_FILE SCRATCH_DIR [RUNS]

use std::fs::{self, File};
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

use kiln_layer::{unpack, UnpackOptions};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(layer), Some(scratch)) = (args.first(), args.get(1)) else {
        eprintln!("usage: unpack LAYER_FILE SCRATCH_DIR [RUNS]");
        return;
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let size = fs::metadata(layer).expect("layer file").len();
    let mut times = Vec::new();
    for i in 0..runs.max(1) {
        let root = PathBuf::from(scratch).join(format!("run{i}"));
        fs::create_dir_all(&root).expect("scratch dir");
        let mut input = BufReader::with_capacity(1 << 20, File::open(layer).expect("layer file"));
        let opts = UnpackOptions {
            whiteouts: true,
            ..Default::default()
        };
        let start = Instant::now();
        unpack(&mut input, &root, &opts).expect("unpack");
        times.push(start.elapsed().as_secs_f64());
        fs::remove_dir_all(&root).expect("cleanup");
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "kiln-layer unpack: median {median:.3} s, {:.1} MB/s of input",
        size as f64 / median / 1e6
    );
}
