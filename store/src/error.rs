//! The store's error type: every variant names the file, digest or image.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The io::Error is in the message, not a `source`: an error chain
    // printed with `{:#}` would say it twice.
    #[error("{op} {}: {error}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(transparent)]
    Layer(#[from] kiln_layer::Error),
    #[error("{what}: {message}")]
    Json { what: String, message: String },
    #[error("image not known: {0}")]
    ImageNotKnown(String),
    #[error("{0:?} matches more than one image; use more of the ID")]
    Ambiguous(String),
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("blob {0} is missing from the store")]
    MissingBlob(String),
    #[error("layer {0} is missing from the store")]
    MissingLayer(String),
    #[error("{0}")]
    Archive(String),
    #[error("invalid cache key {0:?}: want hex digits")]
    InvalidCacheKey(String),
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Io {
            op,
            path: path.into(),
            error: source.into(),
        }
    }

    pub(crate) fn json(what: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Json {
            what: what.into(),
            message: e.to_string(),
        }
    }
}
