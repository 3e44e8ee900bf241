//! kiln-layer: overlay-native layer directories ⇄ OCI layer tar streams.
//!
//! * [`capture`] turns an overlay upper dir (or a committed layer dir) into
//!   a deterministic PAX tar — whiteouts (char 0:0) as `.wh.NAME`, opaque
//!   dirs as `.wh..wh..opq`, overlay's private xattrs dropped — computing
//!   the diffID and the (optionally compressed) blob digest in one pass.
//! * [`unpack`] does the reverse for untrusted input: nothing in the stream
//!   can write, link, chmod or remove anything outside the target root, and
//!   both digests are verified while streaming.
//!
//! Invariants: the same tree always captures to the same bytes; a
//! [`Digest`] is always `sha256:` + 64 lowercase hex, so it is safe as a
//! file name; memory stays flat whatever the layer size.

mod capture;
mod compress;
mod digest;
mod error;
mod extract;
mod pargz;
mod tarwrite;
mod unpack;
mod xattrs;

pub use capture::{capture, capture_with, diff_id, CaptureOptions, Captured};
pub use compress::{Compression, CompressionOptions, Format, MEDIA_TYPE_TAR};
pub use digest::{Digest, DigestReader, DigestWriter};
pub use error::{Error, Result};
pub use unpack::{unpack, UnpackOptions, Unpacked};
