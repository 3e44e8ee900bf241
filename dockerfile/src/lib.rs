//! kiln-dockerfile: kiln's Dockerfile frontend.
//!
//! Text goes one way through this crate:
//! [`parser`] (lines, directives, continuations, heredocs → raw nodes with
//! line spans) → [`instructions`] (typed instructions with validated flags) →
//! [`resolve`] (ARG scoping, stage graph, `--target` pruning). [`shell`] is
//! BuildKit's word-expansion lexer, used by the later steps and by the build
//! engine once a base image's environment is known.
//!
//! Nothing here executes anything or touches the file system; every error
//! carries the line span it came from.

pub mod shell;

pub mod check;
pub mod chmod;
pub mod duration;
pub mod error;
pub mod flags;
pub mod instructions;
pub mod parser;
pub mod reference;
pub mod resolve;
mod suggest;

pub use error::{render, Error, Span};
pub use instructions::{parse_dockerfile, Dockerfile};
pub use resolve::{resolve, Graph, Options};
