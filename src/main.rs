//! kiln: a rootless, daemonless builder of OCI images from Dockerfiles.

// `say!`: the engine's `eprintln!` that never panics, for the whole binary.
#[macro_use]
extern crate kiln_engine;

/// `println!` whose failure is an error (`anyhow::Result<()>`), not a
/// panic: `kiln images | head -1` ends with a clean error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(crate::stdout_error)
    }};
}

mod args;
mod cli;
mod commands;

// The engine crate under the names the commands have always used.
use kiln_engine as build;
use kiln_engine::image_config;

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
