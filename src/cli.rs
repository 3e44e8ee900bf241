//! Command-line surface, named after `docker build` / `podman build`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "Build OCI images from Dockerfiles, rootless and daemonless"
)]
pub struct Cli {
    /// Store directory (default: $XDG_DATA_HOME/kiln, /var/lib/kiln as root).
    #[arg(long, global = true, env = "KILN_ROOT")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The build context directory.
    pub context: PathBuf,

    /// Path of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,

    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long)]
    pub target: Option<String>,

    /// Set a build-time variable: KEY=VALUE, or KEY to take it from the environment.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,

    /// Name and tag the image (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,

    /// Parse and resolve the Dockerfile, run the checks, execute nothing.
    #[arg(long)]
    pub check: bool,
}
