//! The crate's one error type. Every variant that concerns a file names it:
//! on-disk errors carry the full path, archive errors carry the entry name as
//! written in the archive (which may not be valid UTF-8, hence lossy text).

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while capturing or unpacking a layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call on a file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "mknod", ...).
        op: &'static str,
        /// The file, as a path on the host.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Writing the output stream (or compressing it) failed.
    #[error("writing the layer stream: {0}")]
    Output(#[source] io::Error),

    /// The input stream is not a valid (possibly compressed) tar archive.
    #[error("reading the archive{}: {source}", entry_suffix(.entry))]
    Archive {
        /// The entry being read, if the failure is inside one.
        entry: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An archive entry names a path that is not allowed (`..`, empty, ...).
    #[error("unsafe path in archive entry {path:?}: {reason}")]
    UnsafePath {
        /// The entry name as written in the archive.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A hardlink entry whose target cannot be linked safely.
    #[error("hardlink {path:?} -> {target:?}: {reason}")]
    BadHardlink {
        /// The entry name.
        path: String,
        /// The link target as written in the archive.
        target: String,
        /// Why it failed.
        reason: String,
    },

    /// A whiteout (char device 0:0) could not be created: EPERM.
    #[error(
        "cannot create the whiteout for {}: mknod of a 0:0 char device is not \
         permitted (unpack layers as root or inside a user namespace)",
        path.display()
    )]
    WhiteoutNotPermitted {
        /// Where the whiteout was to be created.
        path: PathBuf,
    },

    /// An archive entry of a type this crate does not handle.
    #[error("archive entry {path:?} has unsupported type {kind:?}")]
    UnsupportedEntry {
        /// The entry name.
        path: String,
        /// The tar type flag.
        kind: char,
    },

    /// The upper dir uses an overlay feature whose files cannot be captured
    /// as they are (metacopy, redirect_dir): the layer would lose data.
    #[error("{}: carries {xattr}; mount overlay with metacopy=off,redirect_dir=off", path.display())]
    UnsupportedOverlay {
        /// The file.
        path: PathBuf,
        /// The xattr found.
        xattr: String,
    },

    /// A uid or gid on disk has no mapping in the capture id map.
    #[error("{}: {kind} {id} has no mapping", path.display())]
    UnmappedId {
        /// The file.
        path: PathBuf,
        /// "uid" or "gid".
        kind: &'static str,
        /// The id on disk.
        id: u32,
    },

    /// Setting an entry's owner failed: in a user namespace EINVAL means
    /// the id has no mapping, EPERM means no privilege over it.
    #[error(
        "chown {} to {uid}:{gid}: {source} (is that id mapped in this user \
         namespace? ids other than your own need a subordinate id range)",
        path.display()
    )]
    Chown {
        /// The file.
        path: PathBuf,
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A computed digest differs from the expected one.
    #[error("{what} mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// "blob digest" or "diffID".
        what: &'static str,
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of the data actually read.
        actual: Digest,
    },

    /// A string that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected \"sha256:\" and 64 lowercase hex digits")]
    InvalidDigest(String),
}

fn entry_suffix(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" (entry {e:?})"),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}
