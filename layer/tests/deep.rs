//! A deep tree is captured with a bounded number of fds. Its own test
//! binary: it lowers this process's fd limit, which would starve tests
//! running beside it.

use std::path::PathBuf;

use kiln_layer::{capture, CaptureOptions};

/// Makes `depth` nested dirs named `d` in `top` with a file `f` at the
/// bottom, through `mkdirat`s (one fd at a time).
fn deep_tree(top: &PathBuf, depth: usize) {
    let mut cur = std::fs::File::open(top).unwrap();
    for _ in 0..depth {
        let made = unsafe { libc::mkdirat(fd(&cur), c"d".as_ptr(), 0o755) };
        assert_eq!(made, 0);
        let next =
            unsafe { libc::openat(fd(&cur), c"d".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(next >= 0);
        cur = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(next) };
    }
    let f = unsafe {
        libc::openat(
            fd(&cur),
            c"f".as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        )
    };
    assert!(f >= 0);
    unsafe { libc::close(f) };
}

fn fd(f: &std::fs::File) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(f)
}

fn set_fd_limit(soft: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let old = limit.rlim_cur;
    limit.rlim_cur = soft;
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    old
}

#[test]
fn a_tree_deeper_than_the_fd_limit_is_captured_or_refused_clearly() {
    // The walk recurses once per level: unoptimized, 1024 levels need
    // more than a test thread's 2 MiB (kiln's stage threads get 16 MiB).
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(deep_capture)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_capture() {
    let top = std::env::temp_dir().join(format!("kiln-layer-deep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&top);
    std::fs::create_dir_all(&top).unwrap();
    deep_tree(&top, 600);
    // 600 levels deep with 256 fds: one fd per level would run out.
    let old = set_fd_limit(256);
    let mut tar = Vec::new();
    let captured = capture(&top, &mut tar, None, &CaptureOptions::default());
    let captured = captured.expect("a 600-deep tree captures within 256 fds");
    assert_eq!(captured.blob_size, tar.len() as u64);
    let mut archive = tar::Archive::new(tar.as_slice());
    let deepest = format!("{}f", "d/".repeat(600));
    let found = archive
        .entries()
        .unwrap()
        .any(|e| e.unwrap().path_bytes().as_ref() == deepest.as_bytes());
    assert!(found, "the file at the bottom is in the tar");

    // 1200 levels: deeper than the walk goes, a clear error (not EMFILE).
    deep_tree(&top.join(["d"; 600].join("/")), 600);
    let err = capture(&top, &mut std::io::sink(), None, &CaptureOptions::default())
        .expect_err("deeper than the walk goes");
    assert!(
        err.to_string().contains("nested deeper than 1024 levels"),
        "{err}"
    );
    let shown = err.to_string();
    assert!(shown.len() < 300, "a readable message: {shown}");
    assert!(shown.contains("/d/d/d/d/d/d/d/d/..."), "{shown}");
    set_fd_limit(old);
    let _ = std::fs::remove_dir_all(&top);
}
