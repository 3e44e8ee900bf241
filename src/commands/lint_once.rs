//! A multi-platform build builds its platforms in turn, each parsing and
//! linting the Dockerfile again: a warning every platform shows is printed
//! for the first only. One kiln process runs one build, so "already
//! printed" is the process's.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

static SHOWN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// True the first time this process asks about `line`.
pub fn first(line: &str) -> bool {
    SHOWN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(line.to_string())
}
