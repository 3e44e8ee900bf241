//! Parallel gzip, the way pigz does it: the input is cut into fixed-size
//! chunks, each chunk is raw-deflated on a worker thread with the previous
//! chunk's last 32 KiB as preset dictionary and ended with a sync flush,
//! and the results are concatenated in order behind one gzip header and
//! before one CRC32/ISIZE trailer. The output is a single ordinary gzip
//! member that any gunzip reads. Pieces deflate would not shrink are
//! stored, not deflated (see `deflate`).
//!
//! Why not a crate: gzp needs cmake with its default features and its
//! dictionary support needs a C zlib; this is ~200 lines on flate2's raw
//! `Compress`.
//!
//! Determinism: chunk boundaries depend only on the byte count and each
//! chunk's output only on its bytes and its dictionary, so the output is the
//! same for any thread count (1 compresses inline on the caller's thread).
//! It does depend on the deflate implementation (flate2's backend).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::deflate::{compress_chunk, DICT};

/// Uncompressed bytes per chunk. Big enough that the per-chunk cost (a
/// 5-byte sync marker, a thread hand-off, a dictionary reset) is noise,
/// small enough that memory stays flat: about 2 × threads + 1 chunks are
/// alive at a time.
pub(crate) const CHUNK: usize = 1 << 20;
/// Fixed gzip header: no name, mtime 0, OS = Unix, so output is reproducible.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    level: u32,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// A `Write` that gzips what it is given, using up to `threads` threads.
pub(crate) struct ParGzEncoder<W: Write> {
    out: W,
    level: u32,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total_in: u64,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    /// Dropping the sender (explicitly in `finish`, or with an unfinished
    /// encoder) closes the channel and the workers return; an unfinished
    /// encoder's workers are detached rather than joined, so drop never blocks.
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// The compressed form of a whole chunk of zeros after a chunk that
    /// ended in 32 KiB of zeros, made once: a sparse file's holes are
    /// gigabytes of such chunks, and deflate only ever gives these bytes.
    zero_chunk: Option<Vec<u8>>,
}

impl<W: Write> ParGzEncoder<W> {
    /// `threads` ≤ 1 compresses on the caller's thread.
    pub(crate) fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        let mut enc = ParGzEncoder {
            out,
            level: level.min(9),
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            pending: VecDeque::new(),
            max_pending: 2 * threads + 1,
            jobs: None,
            workers: Vec::new(),
            zero_chunk: None,
        };
        if threads > 1 {
            enc.spawn_workers(threads)?;
        }
        Ok(enc)
    }

    fn spawn_workers(&mut self, threads: usize) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name(format!("kiln-gzip-{i}"))
                .spawn(move || worker(rx))?;
            self.workers.push(handle);
        }
        self.jobs = Some(tx);
        Ok(())
    }

    /// Hands the buffered chunk to a worker (or compresses it inline).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(if last { 0 } else { CHUNK }),
        );
        let next_dict = data[data.len().saturating_sub(DICT)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let (reply, rx) = mpsc::sync_channel(1);
        if !last && data.len() == CHUNK && dict.len() == DICT && is_zero(&dict) && is_zero(&data) {
            let bytes = match &self.zero_chunk {
                Some(b) => b.clone(),
                None => {
                    let b = compress_chunk(&data, &dict, false, self.level)?;
                    self.zero_chunk.insert(b).clone()
                }
            };
            reply.send(Ok(bytes)).map_err(|_| worker_gone())?;
            return self.queue(rx);
        }
        let job = Job {
            data,
            dict,
            last,
            level: self.level,
            reply,
        };
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|_| worker_gone())?,
            None => run(job),
        }
        self.queue(rx)
    }

    /// Keeps at most `max_pending` chunks in flight, writing the oldest.
    fn queue(&mut self, rx: Receiver<io::Result<Vec<u8>>>) -> io::Result<()> {
        self.pending.push_back(rx);
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk and writes it out, keeping output order.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let bytes = rx.recv().map_err(|_| worker_gone())??;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer, returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None; // closes the channel: the workers return
        for handle in self.workers.drain(..) {
            handle.join().map_err(|_| worker_gone())?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        // ISIZE is the input size modulo 2^32 (RFC 1952).
        self.out.write_all(&(self.total_in as u32).to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        self.total_in += n as u64;
        if self.buf.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Data is only ever emitted in whole chunks; flush passes through to
    /// the inner writer what is already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn is_zero(b: &[u8]) -> bool {
    // OR-folded 64 bytes at a time, so the inner loop vectorises.
    b.chunks(64).all(|c| c.iter().fold(0, |a, &x| a | x) == 0)
}

fn worker_gone() -> io::Error {
    io::Error::other("a gzip worker thread stopped")
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => run(job),
            Err(_) => return,
        }
    }
}

fn run(job: Job) {
    let result = compress_chunk(&job.data, &job.dict, job.last, job.level);
    // The receiver may be gone if the encoder was dropped: nothing to do.
    let _ = job.reply.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::deflate_raw;
    use std::io::Read;

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut enc = ParGzEncoder::new(Vec::new(), 6, threads).unwrap();
        for piece in data.chunks(77_777) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a counter mixed with text.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(
                format!("line {} {}\n", i, i.wrapping_mul(2654435761) % 1000).as_bytes(),
            );
            i += 1;
        }
        v.truncate(len);
        v
    }

    #[test]
    fn round_trips_and_is_thread_count_independent() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = sample(len);
            let one = gz(&data, 1);
            let two = gz(&data, 2);
            assert_eq!(one, two, "len {len}: output depends on threads");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    /// Runs of zero chunks take a cached compressed chunk: the stream must
    /// be byte for byte what compressing every chunk gives.
    #[test]
    fn zero_chunks_compress_to_the_same_bytes_as_deflate_gives() {
        // Zero chunks after data (dictionary not zero), then after zeros.
        let mut data = sample(CHUNK / 2);
        data.resize(4 * CHUNK, 0);
        data.extend(sample(1000));
        data.resize(data.len() + 2 * CHUNK + 10, 0);
        let ours = gz(&data, 2);
        let mut plain = Vec::new();
        let mut dict: &[u8] = &[];
        let mut rest = &data[..];
        while rest.len() >= CHUNK {
            let (c, r) = rest.split_at(CHUNK);
            plain.extend(deflate_raw(c, dict, false, 6).unwrap());
            dict = &c[CHUNK - DICT..];
            rest = r;
        }
        plain.extend(deflate_raw(rest, dict, true, 6).unwrap());
        assert_eq!(&ours[HEADER.len()..ours.len() - 8], &plain[..]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&ours[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn dictionary_keeps_ratio_close_to_single_stream() {
        let data = sample(4 * CHUNK);
        let ours = gz(&data, 2).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            ours < single + single / 50,
            "ours {ours} vs single {single}"
        );
    }
}
