//! kiln-layer: overlay-native layer directories ⇄ OCI layer tar streams.
//!
//! * [`capture`] turns an overlay upper dir (or a committed layer dir) into
//!   a deterministic PAX tar — whiteouts (char 0:0) as `.wh.NAME`, opaque
//!   dirs (`user.overlay.opaque=y`) as `.wh..wh..opq`, overlay's private
//!   xattrs dropped — computing the diffID and the (optionally gzip or zstd
//!   compressed) blob digest in one streaming pass. [`diff_id`] is the same
//!   walk without output.
//! * [`unpack`] does the reverse for untrusted input (gzip, zstd or plain
//!   tar, detected; bzip2 and xz behind features): nothing in the stream can
//!   write, link, chmod, chown, set xattrs on or remove anything outside the
//!   target root, and both digests are verified after the whole stream has
//!   been read. PAX headers and GNU long names over 1 MiB are refused
//!   before they are read into memory ([`HeaderLimit`]).
//! * [`Snapshot`] makes an overlay-style upper dir from a tree changed in
//!   place (no overlay available), by a before/after metadata walk;
//!   [`apply_layer_dir`] makes layer dirs into such a plain tree.
//!
//! Invariants:
//! * The same tree always captures to the same bytes: entries in Go's
//!   `filepath.Walk` order (depth first, names byte-sorted within each
//!   directory, as BuildKit and containerd write layers), no atime, ctime,
//!   user or group names, a fixed gzip header and fixed compression levels,
//!   and output that does not depend on the number of threads.
//! * A [`Digest`] is always `sha256:` + 64 lowercase hex, so it is safe as
//!   a file name.
//! * Memory stays flat whatever the layer size: file data is streamed, and
//!   only directory listings, hardlink paths and (on unpack) the list of
//!   directories whose mtime is set last are kept.
//! * All filesystem access is fd-relative and never follows a symlink in a
//!   captured tree or out of an unpack root.
//!
//! Ids are written and applied numerically as the process sees them: kiln
//! runs capture and unpack inside its user namespace, where they are the
//! container's ids.

#![warn(missing_docs)]

mod apply;
mod capture;
mod compress;
mod deflate;
mod digest;
mod error;
mod extract;
mod guard;
mod pargz;
mod snapshot;
mod sparse;
mod tarwrite;
mod treecopy;
mod unpack;
mod xattrs;

pub use apply::{apply_layer_dir, copy_tree};
pub use capture::{capture, capture_with, diff_id, names as dir_names, CaptureOptions, Captured};
pub use compress::{Compression, CompressionOptions, Format, MEDIA_TYPE_TAR};
pub use digest::{Digest, DigestReader, DigestWriter};
pub use error::{Error, Result};
pub use guard::{HeaderLimit, MAX_TAR_METADATA};
pub use snapshot::Snapshot;
pub use unpack::{unpack, UnpackOptions, Unpacked};
