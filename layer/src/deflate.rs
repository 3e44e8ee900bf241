//! One chunk of the parallel gzip stream as raw deflate, without spending
//! deflate's time on bytes it cannot shrink.
//!
//! Layers often hold already-compressed files (archives, images, media,
//! packed objects). zlib would try to match every byte of those and then
//! emit stored blocks anyway, at ~25 MB/s a core here. So each chunk is cut
//! into [`SUB`]-byte pieces, a cheap estimate (byte entropy, then a scan
//! for repeated 4-byte strings) says which pieces deflate would shrink by
//! less than ~2 %, and runs of those are written as stored blocks, copied
//! through. Runs of the other pieces are deflated as before, with the
//! preceding 32 KiB as dictionary, so a chunk that is compressible all
//! through gives exactly the bytes it gave before this existed.
//!
//! Determinism: every decision reads only the chunk's bytes, so the stream
//! stays independent of the thread count.

use std::io;

use flate2::{Compress, FlushCompress, Status};

/// The unit of the stored-or-deflated decision: small enough that a file
/// of random bytes inside a text tar is caught, big enough that the
/// estimate is sound (a byte histogram needs many more bytes than 256).
pub(crate) const SUB: usize = 64 * 1024;
/// deflate's window: the most of the preceding input a match can use.
pub(crate) const DICT: usize = 32 * 1024;
/// A stored block carries at most this many bytes (LEN is 16 bits).
const STORED_MAX: usize = 65_535;
/// Below this order-0 entropy (bits per byte) Huffman coding alone saves
/// more than ~2 %: worth deflating.
const ENTROPY_MIN: f64 = 7.84;
/// A piece with at least 1/MATCH_SHARE of its bytes in repeated strings is
/// worth deflating whatever its byte histogram.
const MATCH_SHARE: usize = 32;

/// Raw deflate of one chunk of the stream, `dict` being the input just
/// before it. Non-last chunks end byte-aligned and not final (a sync
/// flush) so the next chunk's blocks can follow; the last one ends the
/// stream.
pub(crate) fn compress_chunk(
    data: &[u8],
    dict: &[u8],
    last: bool,
    level: u32,
) -> io::Result<Vec<u8>> {
    let runs = runs(data, level);
    let mut out = Vec::new();
    for (i, &(start, end, deflate)) in runs.iter().enumerate() {
        let final_run = last && i + 1 == runs.len();
        if deflate {
            let window = window_before(dict, data, start);
            out.extend(deflate_raw(&data[start..end], &window, final_run, level)?);
        } else {
            stored(&mut out, &data[start..end], final_run);
        }
    }
    Ok(out)
}

/// The chunk as `(start, end, deflate?)` runs of whole pieces; always at
/// least one run (an empty last chunk still has to end the stream).
fn runs(data: &[u8], level: u32) -> Vec<(usize, usize, bool)> {
    let mut runs: Vec<(usize, usize, bool)> = Vec::new();
    if data.is_empty() {
        return vec![(0, 0, true)];
    }
    for (n, piece) in data.chunks(SUB).enumerate() {
        let start = n * SUB;
        let end = start + piece.len();
        // Level 0 asks for stored blocks only; a short tail is not worth
        // a decision of its own (nor is its histogram telling).
        let deflate = level > 0 && (piece.len() < SUB / 4 || worth_deflating(piece));
        match runs.last_mut() {
            Some(run) if run.2 == deflate => run.1 = end,
            _ => runs.push((start, end, deflate)),
        }
    }
    runs
}

/// The last `DICT` bytes of input before `data[start]`: from the chunk
/// itself, topped up from the preceding chunk's tail.
fn window_before(dict: &[u8], data: &[u8], start: usize) -> Vec<u8> {
    let own = &data[start.saturating_sub(DICT)..start];
    let from_dict = DICT - own.len();
    let mut w = dict[dict.len().saturating_sub(from_dict)..].to_vec();
    w.extend_from_slice(own);
    w
}

/// Whether deflate would shrink `piece` by more than ~2 %: its byte
/// entropy is below [`ENTROPY_MIN`], or repeated 4-byte strings cover at
/// least 1/[`MATCH_SHARE`] of it (a repeated random block has a flat
/// histogram but deflates well).
pub(crate) fn worth_deflating(piece: &[u8]) -> bool {
    entropy(piece) < ENTROPY_MIN || repeated_bytes(piece) * MATCH_SHARE >= piece.len()
}

/// Order-0 entropy in bits per byte.
fn entropy(piece: &[u8]) -> f64 {
    // Four tables so consecutive equal bytes do not serialise on one
    // counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = piece.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let n = piece.len() as f64;
    let sum: f64 = (0..256)
        .map(|i| counts.iter().map(|t| t[i]).sum::<u32>())
        .filter(|&c| c > 0)
        .map(|c| {
            let c = f64::from(c);
            c * c.log2()
        })
        .sum();
    n.log2() - sum / n
}

/// Bytes of `piece` covered by strings that also occur up to 32 KiB
/// earlier in it. Only anchor positions (1 in 16, chosen by the hash of
/// the 4 bytes there, so both copies of a repeated string have the same
/// anchors) are looked up in a small table, and a hit is extended as far
/// as the bytes agree: a fraction of the work of a real match finder,
/// enough to tell "repeats" from "random".
fn repeated_bytes(piece: &[u8]) -> usize {
    const BITS: u32 = 12;
    let mut table = [u32::MAX; 1 << BITS];
    let mut matched = 0;
    // Positions before this are inside a match already counted.
    let mut next = 0;
    for (i, w) in piece.windows(4).enumerate() {
        let h = u32::from_le_bytes([w[0], w[1], w[2], w[3]]).wrapping_mul(2_654_435_761);
        if h >> 28 != 0 || i < next {
            continue;
        }
        let slot = ((h >> (28 - BITS)) as usize) & ((1 << BITS) - 1);
        let cand = table[slot] as usize;
        table[slot] = i as u32;
        if cand < i && i - cand <= DICT {
            let len = piece[i..]
                .iter()
                .zip(&piece[cand..])
                .take_while(|(a, b)| a == b)
                .count();
            if len >= 4 {
                matched += len;
                next = i + len;
            }
        }
    }
    matched
}

/// Appends `data` as stored blocks; the output is byte-aligned here (the
/// stream start, or after a sync flush or another stored block).
fn stored(out: &mut Vec<u8>, data: &[u8], final_run: bool) {
    let blocks = data.len().div_ceil(STORED_MAX);
    out.reserve(data.len() + 5 * blocks);
    for (n, block) in data.chunks(STORED_MAX).enumerate() {
        // BFINAL in bit 0, BTYPE 00 (stored), then padding to the byte.
        out.push(u8::from(final_run && n + 1 == blocks));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// zlib's raw deflate of `data` with `dict` as preset dictionary, ended by
/// a sync flush (an empty stored block, byte-aligned, not final) or, if
/// `last`, by the final block.
pub(crate) fn deflate_raw(data: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == data.len();
        // zlib reports completion of a sync flush by leaving spare output
        // room; the final flush by StreamEnd.
        match status {
            Status::StreamEnd => return Ok(out),
            _ if !last && done_input && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pargz::{ParGzEncoder, CHUNK};
    use std::io::{Read, Write};

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut enc = ParGzEncoder::new(Vec::new(), 6, threads).unwrap();
        for piece in data.chunks(100_003) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    /// xorshift: bytes no compressor shrinks, the same on every run.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn text(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64);
        let mut i = 0u64;
        while v.len() < len {
            let word = i.wrapping_mul(2_654_435_761) % 5000;
            v.extend_from_slice(format!("entry {i}: value {word} ok\n").as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    /// Random and text pieces alternating, so runs start and end at piece
    /// and chunk boundaries and in the middle of pieces.
    fn mixed(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut n = 0;
        while v.len() < len {
            let take = [3 * SUB / 2, SUB + 7, 5 * SUB, SUB / 3][n % 4];
            if n % 2 == 0 {
                v.extend(random(take, n as u64 + 1));
            } else {
                v.extend(text(take));
            }
            n += 1;
        }
        v.truncate(len);
        v
    }

    #[test]
    fn mixed_streams_round_trip_and_do_not_depend_on_threads() {
        let sizes = [
            1,
            SUB - 1,
            SUB,
            SUB + 1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + SUB / 8,
        ];
        for len in sizes {
            let data = mixed(len);
            let one = gz(&data, 1);
            assert_eq!(one, gz(&data, 3), "len {len}: output depends on threads");
            assert_eq!(gunzip(&one), data, "len {len}");
        }
    }

    /// The stream is read by the system's gunzip, not only by flate2.
    #[test]
    fn gzip_tool_reads_the_stream() {
        let data = mixed(2 * CHUNK + 999);
        let z = gz(&data, 2);
        let mut child = std::process::Command::new("gzip")
            .args(["-d", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip must be installed");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&z).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "gzip -d failed");
        assert_eq!(out.stdout, data);
    }

    /// Incompressible input is copied through in full stored blocks: the
    /// bytes appear verbatim right after each 5-byte block header, and the
    /// stream is no larger than the input plus those headers and gzip's
    /// 18 bytes. (zlib, left to itself, spends its time searching and
    /// then stores 16 KiB blocks.)
    #[test]
    fn incompressible_input_is_stored_not_deflated() {
        let data = random(2 * CHUNK + 4321, 7);
        let z = gz(&data, 2);
        let blocks = data
            .len()
            .div_ceil(SUB)
            .max(data.len().div_ceil(STORED_MAX));
        assert!(
            z.len() <= data.len() + 5 * (blocks + 3) + 18,
            "{} bytes for {} incompressible",
            z.len(),
            data.len()
        );
        let first = &z[10..10 + 5 + STORED_MAX];
        assert_eq!(first[0], 0, "a stored, non-final block first");
        assert_eq!(&first[1..3], &(STORED_MAX as u16).to_le_bytes());
        assert_eq!(&first[5..], &data[..STORED_MAX], "copied through verbatim");
        assert_eq!(gunzip(&z), data);
    }

    /// Compressible parts keep being deflated around incompressible ones.
    #[test]
    fn text_around_random_still_compresses() {
        let mut data = text(CHUNK);
        data.extend(random(CHUNK / 2, 3));
        data.extend(text(CHUNK));
        let z = gz(&data, 2);
        let text_only = gz(&text(2 * CHUNK), 2).len();
        assert!(
            z.len() < CHUNK / 2 + text_only + text_only / 20 + 1024,
            "{} bytes: the text was not deflated",
            z.len()
        );
        assert_eq!(gunzip(&z), data);
    }

    /// A flat byte histogram is not enough to store: random bytes that
    /// repeat within deflate's window shrink.
    #[test]
    fn repeated_random_block_is_deflated() {
        let block = random(8 * 1024, 11);
        let data: Vec<u8> = block.iter().cycle().take(CHUNK).copied().collect();
        assert!(worth_deflating(&data[..SUB]));
        assert!(!worth_deflating(&random(SUB, 5)));
        let z = gz(&data, 2);
        assert!(z.len() < data.len() / 4, "{} bytes", z.len());
        assert_eq!(gunzip(&z), data);
    }

    #[test]
    fn compressible_chunks_are_deflated_as_before() {
        let data = text(CHUNK);
        assert_eq!(
            compress_chunk(&data, &[], false, 6).unwrap(),
            deflate_raw(&data, &[], false, 6).unwrap()
        );
    }
}
