//! One module per subcommand.

mod check;
mod dockerfile;

use anyhow::{bail, Result};

use crate::cli::{Cli, Command};

/// Runs a subcommand; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Build(args) if args.check => check::run(&args),
        Command::Build(_) => bail!(
            "the build engine is not available in this version yet; `kiln build --check` parses and resolves the Dockerfile"
        ),
    }
}
