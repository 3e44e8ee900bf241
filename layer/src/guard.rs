//! A bound on tar metadata entries, checked before the tar crate allocates.
//!
//! The `tar` crate reads a PAX extended header (`x`) or a GNU long name or
//! link (`L`, `K`) entry whole into a `Vec` before the entry it describes is
//! returned: a crafted 256 MiB PAX header costs 256 MiB of memory and more.
//! [`HeaderLimit`] sits between the stream and the tar reader and follows
//! the archive's structure as the bytes pass, the same way the tar crate
//! does (header, PAX `size` override, GNU sparse extension blocks, data
//! rounded to 512 bytes), so it sees each header before the reader does
//! and fails the read that carries one whose metadata is over the limit.
//! Go's archive/tar applies the same 1 MiB limit.

use std::io::{self, Read};

use tar::{EntryType, GnuExtSparseHeader, Header, PaxExtensions};

/// Largest PAX header or GNU long name/link accepted, as in Go's tar.
pub const MAX_TAR_METADATA: u64 = 1 << 20;

const BLOCK: usize = 512;

enum State {
    /// Collecting the next 512-byte header.
    Header,
    /// GNU sparse extension blocks follow the header, then `data` bytes.
    SparseExt { data: u64 },
    /// Skipping entry data (rounded up to a block); a PAX header's data is
    /// kept (its length is `keep`) to read its `size` record.
    Data { left: u64, keep: Option<u64> },
    /// After the end-of-archive block (or a header the tar reader will
    /// reject): bytes pass unchecked.
    Done,
}

/// A reader that fails when a tar metadata entry is larger than the limit.
pub struct HeaderLimit<R> {
    inner: R,
    limit: u64,
    state: State,
    block: [u8; BLOCK],
    filled: usize,
    /// The data of the pending PAX header (`x`), which applies to the next
    /// entry that is not itself metadata.
    pax: Option<Vec<u8>>,
    collecting: Vec<u8>,
}

impl<R: Read> HeaderLimit<R> {
    /// Wraps a plain (decompressed) tar stream with the default limit.
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_TAR_METADATA)
    }

    /// Wraps a plain tar stream, refusing metadata entries over `limit`.
    pub fn with_limit(inner: R, limit: u64) -> Self {
        HeaderLimit {
            inner,
            limit,
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            pax: None,
            collecting: Vec::new(),
        }
    }

    /// Follows the archive structure over `bytes`, in stream order.
    fn track(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Data { left, keep } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    let keep = *keep;
                    if keep.is_some() {
                        self.collecting.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Header;
                        if let Some(len) = keep {
                            // Padding dropped: the tar reader parses
                            // exactly `len` bytes.
                            self.collecting.truncate(len as usize);
                            self.pax = Some(std::mem::take(&mut self.collecting));
                        }
                    }
                }
                State::Header | State::SparseExt { .. } => {
                    let n = (BLOCK - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.block_done()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn block_done(&mut self) -> io::Result<()> {
        if let State::SparseExt { data } = self.state {
            let mut ext = GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(&self.block);
            if !ext.is_extended() {
                self.state = data_state(data, None);
            }
            return Ok(());
        }
        if self.block.iter().all(|&b| b == 0) {
            self.state = State::Done; // the tar reader stops here too
            return Ok(());
        }
        let h = Header::from_byte_slice(&self.block);
        let kind = h.entry_type();
        let Ok(mut size) = h.entry_size() else {
            self.state = State::Done; // the tar reader fails on it
            return Ok(());
        };
        let metadata = matches!(
            kind,
            EntryType::XHeader
                | EntryType::XGlobalHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        );
        if metadata && size > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a {} of {size} bytes is over the limit of {}",
                    describe(kind),
                    human(self.limit)
                ),
            ));
        }
        if let (false, Some(pax)) = (metadata, &self.pax) {
            if let Some(s) = pax_size(pax) {
                size = s;
            }
        }
        // The tar reader folds only recognised (ustar or GNU) x/L/K entries
        // into the next one; anything else is an entry of its own and
        // ends the pending PAX header's scope.
        let recognised = h.as_ustar().is_some() || h.as_gnu().is_some();
        let folded = recognised
            && matches!(
                kind,
                EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
            );
        if !folded {
            self.pax = None;
        }
        let keep = (folded && kind == EntryType::XHeader).then_some(size);
        self.collecting.clear();
        let extended = kind == EntryType::GNUSparse && h.as_gnu().is_some_and(|g| g.is_extended());
        self.state = if extended {
            State::SparseExt { data: size }
        } else {
            data_state(size, keep)
        };
        if keep == Some(0) {
            self.pax = Some(Vec::new());
        }
        Ok(())
    }
}

fn data_state(size: u64, keep: Option<u64>) -> State {
    // A size that overflows when rounded is an error for the tar reader.
    match size.checked_next_multiple_of(BLOCK as u64) {
        None => State::Done,
        Some(0) => State::Header,
        Some(left) => State::Data { left, keep },
    }
}

fn human(bytes: u64) -> String {
    if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn describe(kind: EntryType) -> &'static str {
    match kind {
        EntryType::GNULongName => "GNU long name",
        EntryType::GNULongLink => "GNU long link name",
        EntryType::XGlobalHeader => "PAX global header",
        _ => "PAX extended header",
    }
}

/// The `size` record of a PAX header, read as the tar crate reads it: the
/// first malformed record ends the search.
fn pax_size(data: &[u8]) -> Option<u64> {
    for ext in PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for HeaderLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.track(&buf[..n])?;
        Ok(n)
    }
}
