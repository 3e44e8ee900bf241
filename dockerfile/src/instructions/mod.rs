//! The instruction layer: each [`Node`] of the parser becomes a typed
//! [`Instruction`] with its flags checked, like BuildKit's
//! `instructions.Parse`. Words stay unexpanded here — what `$VAR` means
//! depends on the stage's environment, which [`crate::resolve`] and the
//! build engine know.

mod args;
mod expand;
mod mount;
mod parse;

pub use args::{quoted_words, CommandLine, KeyValue};
pub use expand::{expand, ExpandError, Expanded};
pub use mount::{parse_size, Mount, MountType, Sharing};
pub use parse::{parse_dockerfile, Dockerfile, From, Stage};

use crate::error::Span;
use crate::parser::Heredoc;

/// One parsed instruction of a stage, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    pub span: Span,
    /// The keyword as written, for messages and casing checks.
    pub keyword: String,
    /// The logical source line, continuations joined.
    pub original: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Label(Vec<KeyValue>),
    Maintainer(String),
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Copy(FileOp),
    Add(FileOp),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(Onbuild),
    StopSignal(String),
    Healthcheck(Healthcheck),
}

impl Instruction {
    /// The canonical upper-case keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Default,
    None,
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    /// The mounts parsed as written; a spec holding a `$` is parsed only
    /// once [`expand`] gave its values, so it is missing here until then.
    pub mounts: Vec<Mount>,
    /// The `--mount` values as written; the engine parses them again with
    /// each value expanded.
    pub mount_specs: Vec<String>,
    pub network: Option<Network>,
    pub security: Option<Security>,
}

/// A COPY or ADD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileOp {
    /// Source words, unexpanded; heredoc sources are in `inline`.
    pub sources: Vec<String>,
    pub inline: Vec<InlineSource>,
    pub dest: String,
    /// Written as a JSON array.
    pub json: bool,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
}

/// A file written from a heredoc (`COPY <<EOF /dest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineSource {
    pub name: String,
    pub content: String,
    pub expand: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger as written, stored in the image config.
    pub expression: String,
    pub trigger: Box<Command>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Cmd(HealthCmd),
}

/// Durations in nanoseconds, as the image config stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCmd {
    pub test: CommandLine,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub retries: Option<u32>,
}
