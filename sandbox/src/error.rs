//! Typed errors. Every error carries the context a user needs to act on it
//! (which path, which stage, which id), never a bare errno.

use std::io;

/// Errors returned by the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `context` says what we were doing.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The spec given to `run` is not usable.
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// Entering or setting up the user namespace failed.
    #[error("user namespace: {0}")]
    UserNs(String),
    /// Setting up the step's rootfs or namespaces failed (reported by the
    /// sandbox init from inside the step).
    #[error("sandbox setup: {0}")]
    Setup(String),
    /// The step's command could not be started (not found, not executable,
    /// bad working directory…).
    #[error("cannot start {argv0:?}: {message}")]
    Exec { argv0: String, message: String },
    /// The step's user or group could not be resolved from the image's
    /// /etc/passwd and /etc/group.
    #[error("user {user:?}: {message}")]
    User { user: String, message: String },
    /// The private network (pasta) could not be started.
    #[error("private network: {0}")]
    Network(String),
    /// The encoded spec handed to the sandbox init is malformed.
    #[error("spec encoding: {0}")]
    Codec(String),
}

/// Result with the sandbox's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Attach a human context to low-level errors.
pub(crate) trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: what().into(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Sys {
            context: what().into(),
            source: io::Error::from_raw_os_error(e.raw_os_error()),
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Sys {
            context: what().into(),
            source: io::Error::from_raw_os_error(e as i32),
        })
    }
}
