//! Layer or archive stream → directory, for UNTRUSTED input: format
//! detection, decompression and both digests here; what each entry may do
//! to the filesystem in [`crate::extract`].

use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::compress::{read_magic, Decoder, Format};
use crate::digest::{Digest, DigestReader};
use crate::error::{Error, Result};
use crate::extract::Extractor;
use crate::guard::HeaderLimit;

const BUF: usize = 128 * 1024;

/// Unpack settings.
#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// Verify the sha256 of the raw input stream (the blob digest).
    pub expected_blob: Option<Digest>,
    /// Verify the sha256 of the decompressed tar (the diffID).
    pub expected_diff_id: Option<Digest>,
    /// Image layers: `.wh.NAME` entries become overlay whiteouts (char 0:0)
    /// and `.wh..wh..opq` an opaque xattr. Archives (ADD): `.wh.` names are
    /// ordinary files.
    pub whiteouts: bool,
    /// Own every entry by these ids (ADD --chown) instead of the tar's.
    pub owner: Option<(u32, u32)>,
}

/// What an unpack read.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// sha256 of the decompressed tar stream, to its very end.
    pub diff_id: Digest,
    /// sha256 of the raw input, to its very end.
    pub blob: Digest,
    /// Things skipped, one line per kind (device nodes, xattrs).
    pub warnings: Vec<String>,
}

/// Extracts `input` (plain, gzip, zstd; bzip2 and xz with those features)
/// into the existing directory `root`. On error the root may hold part of
/// the entries and the caller discards it; nothing outside the root is
/// touched either way. Digests are compared only after the whole stream,
/// trailing bytes included, has been read.
pub fn unpack(input: &mut dyn Read, root: &Path, opts: &UnpackOptions) -> Result<Unpacked> {
    let mut extractor = Extractor::new(root, opts)?;
    // Buffered on both sides of the decompressor: the tar reader asks for
    // 512-byte headers, and the caller's input may be an unbuffered file.
    // Bytes are hashed as the buffers take them, each exactly once.
    let mut raw = DigestReader::new(BufReader::with_capacity(BUF, input));
    let head = read_magic(&mut raw).map_err(archive_err)?;
    let decoder = Decoder::new(Format::detect(&head), io::Cursor::new(head).chain(&mut raw))
        .map_err(archive_err)?;
    let mut tar_stream = DigestReader::new(decoder);
    extract_all(
        &mut HeaderLimit::new(BufReader::with_capacity(BUF, &mut tar_stream)),
        &mut extractor,
    )?;
    extractor.finish()?;
    // The end-of-archive blocks, any padding after them, and whatever the
    // decompressor has not consumed all count for the digests.
    let (_, diff_id, _) = tar_stream.drain().map_err(archive_err)?;
    let (_, blob, _) = raw.drain().map_err(archive_err)?;
    check("diffID", &opts.expected_diff_id, &diff_id)?;
    check("blob digest", &opts.expected_blob, &blob)?;
    Ok(Unpacked {
        diff_id,
        blob,
        warnings: extractor.warnings(),
    })
}

/// Applies every entry, naming the entry in archive errors.
fn extract_all(tar_stream: &mut dyn Read, extractor: &mut Extractor<'_>) -> Result<()> {
    let mut archive = tar::Archive::new(tar_stream);
    for entry in archive.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        extractor.entry(&mut entry).map_err(|e| match e {
            Error::Archive {
                entry: None,
                source,
            } => Error::Archive {
                entry: Some(name),
                source,
            },
            other => other,
        })?;
    }
    Ok(())
}

fn check(what: &'static str, expected: &Option<Digest>, actual: &Digest) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(Error::DigestMismatch {
            what,
            expected: e.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

fn archive_err(source: io::Error) -> Error {
    Error::Archive {
        entry: None,
        source,
    }
}
