//! Sparse files. Layer tars keep plain entries (GNU/PAX sparse entries are
//! not read alike by the tools that consume layers, and the diffID must be
//! that of the plain bytes), so a hole still costs its bytes in the
//! stream; what it need not cost is disk I/O: capture finds the holes with
//! `SEEK_DATA`/`SEEK_HOLE` and writes them from a static zero buffer, and
//! unpack seeks over zero blocks instead of writing them, so a pulled
//! sparse file stays sparse.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{self as rfs, SeekFrom};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Zeros a hole is written from: nothing is read to produce them.
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

/// Unpack skips (leaves as a hole) zero blocks of this size, aligned to
/// the file offset: the usual filesystem block.
const HOLE_BLOCK: usize = 4096;

/// Writes the first `size` bytes of `file` to `out`: data ranges read
/// through `buf`, holes as zeros without reading them. A filesystem
/// without `SEEK_DATA` is read whole, and so is a `dense` file (its
/// blocks cover its size): it has no hole worth the two seeks and the
/// stat, which a tree of many small files pays per file.
pub(crate) fn copy_out(
    file: &File,
    size: u64,
    dense: bool,
    buf: &mut [u8],
    out: &mut dyn Write,
    host: &Path,
) -> Result<()> {
    if dense {
        // A short read says the file shrank, as below.
        return copy_range(file, 0, size, buf, out, host);
    }
    let read_err = |e: io::Error| Error::io("read", host, e);
    let mut pos = 0;
    let mut seekable = true;
    while pos < size {
        let (start, end) = if seekable {
            match data_range(file, pos) {
                Ok(Some((s, e))) => (s.min(size), e.min(size)),
                Ok(None) => (size, size),
                Err(Errno::INVAL | Errno::OPNOTSUPP) => {
                    seekable = false;
                    (pos, size)
                }
                Err(e) => return Err(Error::io("seek", host, e)),
            }
        } else {
            (pos, size)
        };
        write_zeros(out, start - pos).map_err(Error::Output)?;
        copy_range(file, start, end, buf, out, host)?;
        pos = end;
    }
    // A hole past a shrunken end reads as zeros: the size check keeps
    // "the file changed while captured" an error, as a short read is.
    let now = file.metadata().map_err(read_err)?.len();
    if now < size {
        return Err(read_err(shrank()));
    }
    Ok(())
}

/// The next data range at or after `pos`: `None` when only a hole is left.
fn data_range(file: &File, pos: u64) -> rustix::io::Result<Option<(u64, u64)>> {
    let start = match rfs::seek(file, SeekFrom::Data(pos)) {
        Ok(s) => s,
        Err(Errno::NXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    let end = rfs::seek(file, SeekFrom::Hole(start))?;
    Ok(Some((start, end)))
}

fn copy_range(
    file: &File,
    mut pos: u64,
    end: u64,
    buf: &mut [u8],
    out: &mut dyn Write,
    host: &Path,
) -> Result<()> {
    while pos < end {
        let want = (end - pos).min(buf.len() as u64) as usize;
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => return Err(Error::io("read", host, shrank())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", host, e)),
        };
        out.write_all(&buf[..n]).map_err(Error::Output)?;
        pos += n as u64;
    }
    Ok(())
}

fn write_zeros(out: &mut dyn Write, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while being captured",
    )
}

/// Writes a file's contents at increasing offsets, leaving whole zero
/// blocks unwritten: the file must be new (empty), so they read as zeros.
pub(crate) struct HoleWriter<'f> {
    file: &'f File,
    pos: u64,
}

impl<'f> HoleWriter<'f> {
    pub(crate) fn new(file: &'f File) -> Self {
        HoleWriter { file, pos: 0 }
    }

    /// Appends `data`: non-zero runs written, whole zero blocks (aligned
    /// to the file offset, however the reads were cut) skipped.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut unwritten = 0;
        let mut i = 0;
        while i < data.len() {
            let off = self.pos + i as u64;
            let seg = (HOLE_BLOCK - (off % HOLE_BLOCK as u64) as usize).min(data.len() - i);
            if seg == HOLE_BLOCK && is_zero(&data[i..i + seg]) {
                self.write_at(&data[unwritten..i], unwritten)?;
                unwritten = i + seg;
            }
            i += seg;
        }
        self.write_at(&data[unwritten..], unwritten)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn write_at(&self, run: &[u8], index: usize) -> io::Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(run, self.pos + index as u64)
    }

    /// Sets the file's length: a trailing hole has no write to make it.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.file.set_len(self.pos)
    }
}

fn is_zero(b: &[u8]) -> bool {
    // OR-folded 64 bytes at a time: the inner loop vectorises, an early
    // exit per 64 bytes does not stop it.
    b.chunks(64).all(|c| c.iter().fold(0, |a, &x| a | x) == 0)
}
