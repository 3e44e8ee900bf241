//! kiln: a rootless, daemonless builder of OCI images from Dockerfiles.

/// `eprintln!` that never panics: a closed or full stderr (`2>/dev/full`,
/// `2>&1 | head -1`) loses the message, never the build.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` whose failure is an error (`anyhow::Result<()>`), not a
/// panic: `kiln images | head -1` ends with a clean error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(crate::stdout_error)
    }};
}

mod args;
mod build;
mod cli;
mod commands;
mod image_config;

/// What a failed write to stdout becomes.
fn stdout_error(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("writing to stdout")
}

fn main() {
    // The sandbox's helper processes are this binary re-executed: they
    // must take over before anything else runs.
    kiln_sandbox::dispatch_init();
    let cli = args::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            say!("error: {err:#}");
            1
        }
    };
    // As root no namespace was made: `--load`'s podman is this process's.
    std::process::exit(commands::finish_load(code));
}
