//! Content-addressed blobs in `oci/blobs/sha256/`: written to `tmp/`,
//! verified, then renamed in. A blob that exists is never rewritten.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use kiln_layer::{Digest, DigestWriter};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::Store;

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.oci().join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if !self.has_blob(&d) {
            fsutil::write_atomic(&self.tmp_file("blob"), &self.blob_path(&d), bytes)?;
        }
        Ok(d)
    }

    /// Streams a blob in, verifying `expected` if given; nothing is stored
    /// on a mismatch.
    pub fn put_blob_stream(
        &self,
        input: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer()?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("write", &w.tmp, e)),
            };
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n])?;
        }
        w.commit(expected)
    }

    /// A blob written piece by piece (a download), hashed as it goes;
    /// [`BlobWriter::commit`] renames it in, dropping it uncommitted
    /// removes it.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let tmp = self.tmp_file("blob");
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        Ok(BlobWriter {
            store: self,
            inner: Some(DigestWriter::new(io::BufWriter::new(file))),
            tmp,
        })
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        std::fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::MissingBlob(d.to_string()),
            _ => Error::io("read", p, e),
        })
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::MissingBlob(d.to_string()),
            _ => Error::io("open", p, e),
        })
    }

    /// Copies a stored blob to `out`.
    pub fn copy_blob(&self, d: &Digest, out: &mut dyn Write) -> Result<u64> {
        let mut f = self.open_blob(d)?;
        io::copy(&mut f, out).map_err(|e| Error::io("copy", self.blob_path(d), e))
    }
}

/// A blob on its way into the store: see [`Store::blob_writer`].
pub struct BlobWriter<'s> {
    store: &'s Store,
    /// None once committed.
    inner: Option<DigestWriter<io::BufWriter<File>>>,
    tmp: PathBuf,
}

impl BlobWriter<'_> {
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.inner {
            Some(w) => w
                .write_all(bytes)
                .map_err(|e| Error::io("write", &self.tmp, e)),
            None => Ok(()),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, DigestWriter::count)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Syncs the bytes and renames them in under their digest, after
    /// checking `expected`; on a mismatch nothing is stored.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let Some(w) = self.inner.take() else {
            unreachable!("commit takes the writer by value")
        };
        let result = self.finish(w, expected);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }

    fn finish(
        &self,
        w: DigestWriter<io::BufWriter<File>>,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let tmp = &self.tmp;
        let (buf, d, n) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| Error::io("write", tmp, e.into_error()))?;
        if let Some(exp) = expected {
            if exp != &d {
                return Err(Error::Layer(kiln_layer::Error::DigestMismatch {
                    what: "blob digest",
                    expected: exp.clone(),
                    actual: d,
                }));
            }
        }
        file.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
        let dest = self.store.blob_path(&d);
        if dest.exists() {
            let _ = std::fs::remove_file(tmp);
        } else {
            std::fs::rename(tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
            fsutil::sync_parent(&dest)?;
        }
        Ok((d, n))
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
