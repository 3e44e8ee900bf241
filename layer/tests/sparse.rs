//! Sparse files: captured as plain entries (the same tar and digests as a
//! dense file with the same bytes), unpacked with their zero blocks left
//! as holes. Speed is measured by scripts/bench-layer.sh, not here.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_layer::{capture, unpack, CaptureOptions, Compression, UnpackOptions};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-layer-sparse-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

const MIB: u64 = 1 << 20;

/// `(offset, bytes)` pieces of data in a file of `size` bytes, the rest
/// holes: leading, inner (unaligned edges) and trailing.
fn pieces() -> (u64, Vec<(u64, Vec<u8>)>) {
    let text = |n: usize, seed: u8| (0..n).map(|i| seed ^ (i % 251) as u8 | 1).collect();
    let size = 6 * MIB + 1234;
    let pieces = vec![
        (MIB + 17, text(5000, 7)),
        (2 * MIB, text(MIB as usize / 2, 3)),
        (4 * MIB + 4095, text(1, 9)),
    ];
    (size, pieces)
}

fn write_sparse(path: &Path) {
    let (size, pieces) = pieces();
    let mut f = File::create(path).unwrap();
    for (off, data) in &pieces {
        f.seek(SeekFrom::Start(*off)).unwrap();
        f.write_all(data).unwrap();
    }
    f.set_len(size).unwrap();
}

fn write_dense(path: &Path) {
    let (size, pieces) = pieces();
    let mut all = vec![0u8; size as usize];
    for (off, data) in &pieces {
        all[*off as usize..*off as usize + data.len()].copy_from_slice(data);
    }
    fs::write(path, all).unwrap();
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_sparse_file_captures_like_the_dense_file_with_the_same_bytes() {
    let d = tmp("capture");
    let (sparse, dense) = (d.join("sparse"), d.join("dense"));
    for dir in [&sparse, &dense] {
        fs::create_dir(dir).unwrap();
    }
    write_sparse(&sparse.join("f"));
    write_dense(&dense.join("f"));
    assert!(
        allocated(&sparse.join("f")) < 4 * MIB,
        "the test file is not sparse"
    );
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
    for dir in [&sparse, &dense] {
        File::options()
            .write(true)
            .open(dir.join("f"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let opts = CaptureOptions::default();
    for c in [None, Some(Compression::Gzip)] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ca = capture(&sparse, &mut a, c, &opts).unwrap();
        let cb = capture(&dense, &mut b, c, &opts).unwrap();
        assert_eq!(ca.diff_id, cb.diff_id, "{c:?}");
        assert_eq!(ca.blob, cb.blob, "{c:?}");
        assert!(a == b, "{c:?}: the streams differ");
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn unpack_leaves_zero_blocks_as_holes() {
    let d = tmp("unpack");
    let (src, out) = (d.join("src"), d.join("out"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&out).unwrap();
    write_dense(&src.join("f"));
    let mut tar = Vec::new();
    capture(
        &src,
        &mut tar,
        Some(Compression::Gzip),
        &CaptureOptions::default(),
    )
    .unwrap();
    unpack(&mut &tar[..], &out, &UnpackOptions::default()).unwrap();
    let got = out.join("f");
    assert_eq!(fs::read(&got).unwrap(), fs::read(src.join("f")).unwrap());
    assert_eq!(fs::metadata(&got).unwrap().len(), pieces().0);
    // 2 MiB and a few blocks of data; 24 MiB if the zeros were written.
    assert!(
        allocated(&got) < 3 * MIB,
        "{} bytes allocated",
        allocated(&got)
    );
    fs::remove_dir_all(&d).unwrap();
}
