//! One module per subcommand.

mod build;
mod build_flags;
mod check;
mod dockerfile;
mod export;
mod export_watch;
mod images;
pub(crate) mod registry;

use anyhow::{Context, Result};
use kiln_store::Store;

use crate::cli::{Cli, Command};

/// Runs a subcommand; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Build(args) if args.check || build_flags::call_is_check(args)? => {
            return check::run(args)
        }
        // Credentials live in the user's own files: no namespace needed.
        Command::Login(args) => return registry::login(args),
        Command::Logout(args) => return registry::logout(args),
        _ => {}
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
    // Layer dirs become overlay lower dirs, which must be absolute paths.
    let root =
        std::path::absolute(&root).with_context(|| format!("the store path {}", root.display()))?;
    let store =
        Store::open(&root).with_context(|| format!("opening the store {}", root.display()))?;
    // Every command but prune reads or writes blobs and layers (a pull's
    // blobs are unreferenced until its index entry is written): it holds
    // gc.lock shared for its whole run, so prune (exclusive) waits for it
    // rather than deleting them underneath it.
    let _gc = match cli.command {
        Command::Prune { .. } => None,
        _ => Some(store.gc_lock().context("locking the store against prune")?),
    };
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
        Command::Pull(args) => registry::pull(&store, args),
        Command::Push(args) => registry::push(&store, args),
        Command::Login(_) | Command::Logout(_) => unreachable!("handled above"),
    }
}
