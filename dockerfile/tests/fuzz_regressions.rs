//! Every input the fuzzer ever crashed on (fuzz/regressions/) must now go
//! through parse → resolve → render without a panic.

use kiln_dockerfile::{parse_dockerfile, render, resolve, Options};

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        match parse_dockerfile(&text).and_then(|f| resolve(f, &Options::default())) {
            Ok(_) => {}
            Err(e) => {
                render("Dockerfile", &text, &e);
            }
        }
        count += 1;
    }
    assert!(count > 0, "no regression inputs found in {}", dir.display());
}
