//! One module per subcommand.

mod build;
mod build_flags;
mod check;
mod context;
mod dockerfile;
mod export;
mod export_stream;
mod export_watch;
mod history;
mod images;
mod images_list;
mod info;
mod isolation;
mod lint_once;
mod load;
mod meta;
mod multiplat;
mod platform;
mod prune;
pub(crate) mod registry;
mod stdio;
mod system;

pub use load::finish as finish_load;

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
        Command::Version => return meta::version(),
        Command::Completion { shell } => return meta::completion(*shell),
        Command::Man { dir } => return meta::man(dir),
        Command::Info => return info::run(cli.root.as_deref()),
        _ => {}
    }
    // Everything else touches the store, whose files belong to ids of
    // kiln's user namespace: enter it first (a rootless kiln re-executes
    // itself here), before any thread exists.
    if let Command::Build(args) = &cli.command {
        if args.load {
            load::start(args.quiet || args.progress == "quiet")?;
        }
    }
    let chroot = isolation::chroot_build(&cli.command)?;
    let real_root = match chroot {
        true => rustix::process::geteuid().is_root(),
        false => kiln_sandbox::UserNamespace::enter_then(load::finish)
            .context("entering kiln's user namespace")?
            .caller_was_root(),
    };
    let root = cli
        .root
        .clone()
        .unwrap_or_else(|| Store::default_root(real_root));
    // Layer dirs become overlay lower dirs, which must be absolute paths.
    let root =
        std::path::absolute(&root).with_context(|| format!("the store path {}", root.display()))?;
    if let (Command::Build(_), false, Some(e)) = (
        &cli.command,
        chroot,
        kiln_sandbox::diagnose::overlay_store(&root),
    ) {
        anyhow::bail!(e);
    }
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
        Command::Inspect { image, platform } => images::inspect(&store, image, platform.as_deref()),
        Command::Prune {
            all,
            keep_storage,
            filters,
        } => prune::run(&store, *all, keep_storage.as_deref(), filters),
        Command::Save {
            output,
            format,
            image,
        } => images::save(&store, image, format, output.as_deref()),
        Command::Load { input } => images::load(&store, input),
        Command::Pull(args) => registry::pull(&store, args),
        Command::Push(args) => registry::push(&store, args),
        Command::Tag { source, targets } => images::tag(&store, source, targets),
        Command::History(args) => history::run(&store, args),
        Command::System { command } => system::run(&store, command),
        Command::Login(_)
        | Command::Logout(_)
        | Command::Version
        | Command::Completion { .. }
        | Command::Man { .. }
        | Command::Info => unreachable!("handled above"),
    }
}
