//! kiln: a rootless, daemonless builder of OCI images from Dockerfiles.

mod build;
mod cli;
mod commands;
mod image_config;

use clap::Parser;

fn main() {
    // The sandbox's helper processes are this binary re-executed: they
    // must take over before anything else runs.
    kiln_sandbox::dispatch_init();
    let cli = cli::Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    };
    std::process::exit(code);
}
