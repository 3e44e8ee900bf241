//! The registry client's errors: each names the image or registry, and
//! says what the user can do about it where there is something to do.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{reference}: {what} not found in {registry}")]
    NotFound {
        reference: String,
        registry: String,
        what: &'static str,
    },
    #[error(
        "{registry}: access to {reference} denied ({status}); {tried}. Log in with `kiln login {registry}`"
    )]
    Unauthorized {
        registry: String,
        reference: String,
        status: String,
        tried: String,
    },
    #[error("{registry}: the username {username:?} and password were refused ({status})")]
    LoginRefused {
        registry: String,
        username: String,
        status: String,
    },
    #[error("{registry} is unreachable ({attempts} attempts): {detail}")]
    Unreachable {
        registry: String,
        attempts: u32,
        detail: String,
    },
    #[error("{reference}: {what} {expected} arrived with digest {actual}; nothing was stored")]
    DigestMismatch {
        reference: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{reference}: no image for {wanted} in the index; available: {available}")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("{reference}: {message}")]
    Manifest { reference: String, message: String },
    #[error("{registry}: {message}")]
    Protocol { registry: String, message: String },
    #[error("{reference}: the registry {registry} is blocked in {conf}")]
    Blocked {
        reference: String,
        registry: String,
        conf: String,
    },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, error: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            error,
        }
    }
}
