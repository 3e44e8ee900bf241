//! How an archive output (`-o type=docker|oci`, `--load`) makes the layer
//! blobs the store lacks: kept in the store only when a tag keeps the
//! image (a later export or push reuses them); otherwise compressed
//! straight into the archive, through an unlinked file beside it.

use std::path::{Path, PathBuf};

use kiln_layer::Compression;
use kiln_store::archive::Streaming;

/// For an archive written to `dest` (None or `-`: a pipe) of an image
/// named `names` (empty: no `-t`).
pub fn streaming(names: &[String], compression: Compression, dest: Option<&Path>) -> Streaming {
    let spill_dir = match dest {
        Some(p) if !super::stdio::is_stdout(p) => match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        },
        _ => std::env::temp_dir(),
    };
    Streaming {
        compression,
        keep: !names.is_empty(),
        spill_dir,
    }
}
