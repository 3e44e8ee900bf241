//! Compression of layer blobs (gzip, zstd) and detection + decompression of
//! incoming streams (gzip, zstd, plain tar; bzip2 and xz behind features,
//! for ADD archives).

use std::io::{self, BufReader, Read, Write};
use std::num::NonZeroUsize;

use crate::pargz::ParGzEncoder;

/// zstd's unit of work between its threads (input bytes per job).
const ZSTD_JOB: usize = 2 << 20;

/// Media type of an uncompressed OCI layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (the OCI and Docker default), compressed in parallel.
    Gzip,
    /// zstd, using zstd's own worker threads.
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    fn default_level(self) -> i32 {
        // The levels BuildKit and Docker use (Go's gzip.DefaultCompression,
        // zstd's default).
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 3,
        }
    }
}

/// Compression with its tuning knobs. `Compression` converts into this with
/// the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionOptions {
    /// The algorithm.
    pub compression: Compression,
    /// Level: gzip 0–9 (default 6), zstd 1–22 (default 3).
    pub level: Option<i32>,
    /// Worker threads; default: all available cores. The output bytes do not
    /// depend on this value (gzip chunks are fixed-size; zstd always runs in
    /// its multi-threaded mode, whose output is independent of the worker
    /// count).
    pub threads: Option<NonZeroUsize>,
}

impl From<Compression> for CompressionOptions {
    fn from(compression: Compression) -> Self {
        CompressionOptions {
            compression,
            level: None,
            threads: None,
        }
    }
}

impl CompressionOptions {
    fn threads(&self) -> usize {
        self.threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    fn level(&self) -> i32 {
        self.level
            .unwrap_or_else(|| self.compression.default_level())
    }
}

/// A compressing writer for either algorithm.
pub(crate) enum Encoder<W: Write> {
    Gzip(ParGzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(out: W, opts: &CompressionOptions) -> io::Result<Self> {
        let threads = opts.threads();
        match opts.compression {
            Compression::Gzip => {
                let level = opts.level().clamp(0, 9) as u32;
                Ok(Encoder::Gzip(ParGzEncoder::new(out, level, threads)?))
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, opts.level())?;
                // Always ≥ 1 worker: zstd's output differs between its
                // single-threaded mode (0) and the multi-threaded one (≥ 1),
                // but not between worker counts.
                enc.multithread(threads as u32)?;
                // A fixed job size (not derived from the worker count, so
                // the bytes stay the same): zstd's default, 4 × the window
                // (8 MiB at level 3), kept ~120 MiB of jobs in flight.
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB as u32))?;
                enc.include_checksum(true)?;
                Ok(Encoder::Zstd(enc))
            }
        }
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// The container format of an input stream, detected by magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// No recognised compression: treated as a plain tar.
    Tar,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
}

impl Format {
    /// Number of leading bytes [`Format::detect`] needs to decide.
    pub const MAGIC_LEN: usize = 6;

    /// Detects the format from the first bytes of a stream. Anything not
    /// recognised is `Tar` (the tar reader then decides whether it is one).
    pub fn detect(head: &[u8]) -> Format {
        if head.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else if head.starts_with(b"BZh") {
            Format::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Xz
        } else {
            Format::Tar
        }
    }
}

/// A decompressing reader chosen by [`Format`].
pub(crate) enum Decoder<R: Read> {
    Tar(R),
    // Boxed: its inflate state dwarfs the other variants.
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
    #[cfg(feature = "bzip2")]
    Bzip2(bzip2::read::MultiBzDecoder<R>),
    #[cfg(feature = "xz")]
    Xz(liblzma::read::XzDecoder<R>),
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(format: Format, input: R) -> io::Result<Self> {
        Ok(match format {
            Format::Tar => Decoder::Tar(input),
            // Multi-member: concatenated gzip members are one valid stream.
            Format::Gzip => Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(input))),
            Format::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(input)?),
            #[cfg(feature = "bzip2")]
            Format::Bzip2 => Decoder::Bzip2(bzip2::read::MultiBzDecoder::new(input)),
            #[cfg(feature = "xz")]
            Format::Xz => Decoder::Xz(liblzma::read::XzDecoder::new_multi_decoder(input)),
            #[allow(unreachable_patterns)]
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{other:?} input: kiln-layer was built without that decompressor"),
                ))
            }
        })
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Tar(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
            #[cfg(feature = "bzip2")]
            Decoder::Bzip2(r) => r.read(buf),
            #[cfg(feature = "xz")]
            Decoder::Xz(r) => r.read(buf),
        }
    }
}

/// Reads up to [`Format::MAGIC_LEN`] bytes (fewer only at end of stream).
pub(crate) fn read_magic(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(Format::MAGIC_LEN);
    input
        .take(Format::MAGIC_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(Format::detect(&[0x1f, 0x8b, 8]), Format::Gzip);
        assert_eq!(Format::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Format::Zstd);
        assert_eq!(Format::detect(b"BZh91AY"), Format::Bzip2);
        assert_eq!(
            Format::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Format::Xz
        );
        assert_eq!(Format::detect(b"etc/"), Format::Tar);
        assert_eq!(Format::detect(b""), Format::Tar);
    }

    /// zstd's multi-threaded mode cuts the input into jobs of
    /// [`ZSTD_JOB`]: sizes around one and two jobs round-trip and give the
    /// same bytes with 1 and 3 workers.
    #[test]
    fn zstd_round_trips_around_job_boundaries() {
        const JOB: usize = ZSTD_JOB;
        let base: Vec<u8> = (0..JOB as u32 / 8)
            .flat_map(|i| format!("{:07}\n", i.wrapping_mul(2_654_435_761) % 100_000).into_bytes())
            .collect();
        for len in [0, 1, JOB - 1, JOB + 1, 2 * JOB + 3] {
            let data: Vec<u8> = base.iter().cycle().take(len).copied().collect();
            let one = zstd_with(1, &data);
            assert_eq!(
                one,
                zstd_with(3, &data),
                "len {len}: output depends on workers"
            );
            let back = zstd::stream::decode_all(&one[..]).unwrap();
            assert!(back == data, "len {len}: round trip");
        }
    }

    #[test]
    fn zstd_output_independent_of_threads() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(zstd_with(1, &data), zstd_with(2, &data));
    }

    /// `data` zstd-compressed with `threads` workers.
    fn zstd_with(threads: usize, data: &[u8]) -> Vec<u8> {
        let opts = CompressionOptions {
            threads: NonZeroUsize::new(threads),
            ..Compression::Zstd.into()
        };
        let mut e = Encoder::new(Vec::new(), &opts).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
}
