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
    Build(Box<BuildArgs>),
    /// List the images in the store.
    Images(ImagesArgs),
    /// Remove images (by name, or by ID with all their names).
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show an image's config and layers as JSON.
    Inspect {
        image: String,
        /// Of a multi-platform image, show this platform's image.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Show the store, the id mapping and what this environment lets kiln
    /// do (user namespaces, overlay, network, seccomp), with the settings
    /// that fix what it refuses.
    Info,
    /// Remove unreferenced blobs, layers and cache entries.
    Prune {
        /// Also empty the build cache.
        #[arg(long, short = 'a')]
        all: bool,
        /// Keep this much build cache (e.g. 2GB), dropping the least
        /// recently used first.
        #[arg(long, value_name = "SIZE")]
        keep_storage: Option<String>,
        /// Only prune build cache unused for DURATION (e.g. 24h, 90m).
        #[arg(long = "filter", value_name = "until=DURATION")]
        filters: Vec<String>,
    },
    /// Write an image to an archive (docker-archive, or --format oci-archive).
    Save {
        /// The archive file (default, or `-`: standard output).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// docker-archive (default) or oci-archive.
        #[arg(long, default_value = "docker-archive")]
        format: String,
        image: String,
    },
    /// Load the images of a docker-archive or oci-archive into the store.
    Load {
        #[arg(short = 'i', long = "input")]
        input: PathBuf,
    },
    /// Pull an image from a registry into the store.
    Pull(PullArgs),
    /// Push a stored image to a registry.
    Push(PushArgs),
    /// Log in to a registry: check the credentials, then save them in the
    /// containers auth file.
    Login(LoginArgs),
    /// Remove a registry's saved credentials.
    Logout(LogoutArgs),
    /// Give an image more names: SOURCE (name or ID) becomes also TARGET….
    Tag {
        source: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Show how an image's layers were made.
    History(HistoryArgs),
    /// Store-wide commands.
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// Show kiln's version, the commit it was built from, the compiler and platform.
    Version,
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// Write kiln's man pages (one per command) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show the store's disk use and what prune would free.
    Df {
        /// Also list each image, cache entry and cache mount.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The image (name or ID).
    pub image: String,
    /// Show the full commands and IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Output: table (default) or json (one object per line, as docker's).
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// How registries are reached (pull, push, build).
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Credentials file to read first (default: $REGISTRY_AUTH_FILE, else
    /// $XDG_RUNTIME_DIR/containers/auth.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,

    /// Talk to this registry (HOST[:PORT]) over plain HTTP (repeatable);
    /// loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image: NAME[:TAG|@DIGEST] (short names are Docker Hub's).
    pub reference: String,
    /// The platform to choose from a multi-platform image (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image ID.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// A stored image (name or ID).
    pub image: String,
    /// Where to push it (default: the image's name): [docker://]HOST/REPO[:TAG].
    pub destination: Option<String>,
    /// Write the pushed manifest's digest to this file.
    #[arg(long)]
    pub digestfile: Option<PathBuf>,
    /// No progress output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT] (docker.io for Docker Hub).
    pub server: String,
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT].
    pub server: String,
    /// Credentials file (default: as for login).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Print only image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// The build context: a directory, `-` (a Dockerfile or a tar on
    /// stdin), a git URL (`URL#REF:SUBDIR`) or an http(s) tarball.
    pub context: PathBuf,

    /// Path of the Dockerfile (default: CONTEXT/Dockerfile, else
    /// CONTEXT/Containerfile; `-` reads stdin).
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

    /// Export the result: type=docker|oci|local|tar,dest=PATH[,tar=false] (buildx syntax;
    /// an archive without dest, or dest=-, goes to stdout; `-o -` is the rootfs as a tar).
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    pub outputs: Vec<String>,

    /// Write the image ID to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,

    /// Load the image into podman's containers-storage (`podman load`).
    #[arg(long)]
    pub load: bool,

    /// Network for RUN steps: default (a private network namespace per
    /// build, the outside reached through pasta, never the host's loopback
    /// services or abstract unix sockets), host, or none.
    #[arg(long, default_value = "default")]
    pub network: String,

    /// How RUN steps are isolated: oci (the default: namespaces over
    /// overlays) or chroot (no namespace, no mount, for containers that
    /// allow neither; RUN can then change kiln, its store and credentials).
    /// Default from KILN_ISOLATION, then BUILDAH_ISOLATION.
    #[arg(long, value_name = "MODE")]
    pub isolation: Option<String>,

    /// Security of RUN steps (repeatable): seccomp=unconfined (no filter;
    /// Docker's default profile otherwise), seccomp=PROFILE.json (Docker's
    /// JSON format), no-new-privileges.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opts: Vec<String>,

    /// Print only the image ID.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Do not use the step cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Say, per step that missed the cache, what differs from the nearest
    /// cached step (the instruction, an env var, a source file…).
    #[arg(long)]
    pub explain_cache: bool,

    /// Add a label to the image (repeatable): KEY=VALUE.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Target platform (e.g. linux/arm64; default: the host's). A foreign one
    /// runs RUN steps through the kernel's binfmt_misc (qemu-user-static).
    /// A list (linux/amd64,linux/arm64, or the flag repeated) builds one
    /// image per platform into one multi-platform image (an OCI index).
    #[arg(long)]
    pub platform: Option<String>,

    /// Write the build result as JSON (image and config digests, names), like buildx.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,

    /// Progress output: auto (tty on a terminal, else plain), plain, tty or quiet.
    #[arg(long, default_value = "auto", env = "BUILDKIT_PROGRESS")]
    pub progress: String,

    /// Name an extra context: NAME=DIR, NAME=oci-layout:///PATH[:TAG|@DIGEST], NAME=docker-image://REF.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// Expose a secret to RUN --mount=type=secret (repeatable):
    /// id=NAME,src=FILE or id=NAME,env=VAR (also type=file|env).
    #[arg(long = "secret", value_name = "id=NAME,src=FILE|env=VAR")]
    pub secrets: Vec<String>,

    /// When to pull base images: missing (default: only images not in the
    /// store), always (check the registry for a newer one), or never.
    #[arg(long, default_value = "missing", num_args = 0..=1, default_missing_value = "always")]
    pub pull: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// How many stages run steps at once (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,

    /// Layer compression for exported and pushed images (-o, push): gzip or
    /// zstd. The store keeps layers uncompressed.
    #[arg(long, default_value = "gzip")]
    pub compression: String,

    /// Add a line to RUN steps' /etc/hosts (repeatable): HOST:IP.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,

    /// Size of RUN steps' /dev/shm: BYTES[k|m|g] (default 64m).
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,

    /// Resource limit of RUN processes (repeatable): TYPE=SOFT[:HARD], e.g. nofile=1024:2048.
    #[arg(long = "ulimit", value_name = "TYPE=SOFT[:HARD]")]
    pub ulimits: Vec<String>,

    /// Do not use the step cache for this stage (repeatable).
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,

    /// Add an annotation to the image's manifest (repeatable): [manifest:]KEY=VALUE; with
    /// several platforms also index:, manifest[PLATFORM]:, manifest-descriptor[[PLATFORM]]:.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Forward an SSH agent to RUN --mount=type=ssh (repeatable):
    /// default (= $SSH_AUTH_SOCK), or ID=SOCKET.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    pub ssh: Vec<String>,

    /// Push the image to its registry (= -o type=registry).
    #[arg(long)]
    pub push: bool,

    /// Take cached steps from a shared cache (repeatable, tried in order):
    /// type=registry,ref=REF (or just REF), type=local,src=DIR[,tag=T].
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF")]
    pub cache_from: Vec<String>,

    /// Write the build's cache entries to a shared cache (repeatable):
    /// type=registry,ref=REF or type=local,dest=DIR[,tag=T], with
    /// [,mode=max|min][,compression=gzip|zstd][,ignore-error=true|false].
    #[arg(long = "cache-to", value_name = "type=registry,ref=REF")]
    pub cache_to: Vec<String>,

    /// Run a frontend method instead of building: build (default) or check (= --check).
    #[arg(long, value_name = "build|check")]
    pub call: Option<String>,
}
