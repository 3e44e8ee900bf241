//! The engine's only way to write to stderr, exported so the kiln binary
//! writes the same way (`#[macro_use] extern crate kiln_engine`).

/// `eprintln!` that never panics: a closed or full stderr (`2>/dev/full`,
/// `2>&1 | head -1`) loses the message, never the build.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
