//! Builds whose result is read from a local dir, and builds that must fail.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{fails, Case};

/// A file of an output dir, as text (panics naming the file).
pub fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

impl Case {
    /// `kiln build -o type=local,dest=DIR extra…` of the case into the
    /// case's dir `name`, which it returns.
    pub fn build_into(&self, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let dest = format!("type=local,dest={}", out.display());
        let mut args = vec!["-o", dest.as_str()];
        args.extend_from_slice(extra);
        self.build(&args);
        out
    }

    /// `kiln build -o type=local,dest=DIR extra…` of the case into a fresh
    /// DIR, which it returns.
    pub fn build_local(&self, extra: &[&str]) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let out = self.path(&format!("local{}", N.fetch_add(1, Ordering::Relaxed)));
        let dest = format!("type=local,dest={}", out.display());
        let mut args = vec!["-o", dest.as_str()];
        args.extend_from_slice(extra);
        self.build(&args);
        out
    }

    /// The output of `kiln build extra…` of the case, which must fail.
    pub fn build_fails(&self, extra: &[&str]) -> String {
        let ctx = self.ctx();
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        fails(&self.kiln(&args))
    }
}
