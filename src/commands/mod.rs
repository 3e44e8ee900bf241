//! One module per subcommand.

mod build;
mod check;
mod dockerfile;
mod export;
mod images;

use anyhow::{Context, Result};
use kiln_store::Store;

use crate::cli::{Cli, Command};

/// Runs a subcommand; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    if let Command::Build(args) = &cli.command {
        if args.check {
            return check::run(args);
        }
    }
    // Everything else touches the store, whose files belong to ids of
    // kiln's user namespace: enter it first (a rootless kiln re-executes
    // itself here), before any thread exists.
    let ns = kiln_sandbox::UserNamespace::enter().context("entering kiln's user namespace")?;
    let real_root = matches!(ns, kiln_sandbox::UserNamespace::Host);
    let root = cli
        .root
        .clone()
        .unwrap_or_else(|| Store::default_root(real_root));
    let store =
        Store::open(&root).with_context(|| format!("opening the store {}", root.display()))?;
    match &cli.command {
        Command::Build(args) => build::run(args, &store),
        Command::Images(a) => images::list(&store, a.quiet),
        Command::Rmi { images: names } => images::remove(&store, names),
        Command::Inspect { image } => images::inspect(&store, image),
        Command::Prune { all } => images::prune(&store, *all),
        Command::Save {
            output,
            format,
            image,
        } => images::save(&store, image, format, output),
        Command::Load { input } => images::load(&store, input),
    }
}
