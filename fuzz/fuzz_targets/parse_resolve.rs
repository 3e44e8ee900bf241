//! Any text through parse → resolve → error rendering must never panic.
#![no_main]

use kiln_dockerfile::{parse_dockerfile, render, resolve, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = match parse_dockerfile(&text) {
        Ok(f) => f,
        Err(e) => {
            let _ = render("Dockerfile", &text, &e);
            return;
        }
    };
    let mut opts = Options::default();
    opts.build_args.insert("A".into(), "x".into());
    // Also try the first stage as target, so pruning paths are exercised.
    let first = file.stages[0].from.name.clone();
    if let Err(e) = resolve(file.clone(), &opts) {
        let _ = render("Dockerfile", &text, &e);
    }
    opts.target = first;
    let _ = resolve(file, &opts);
});
