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
        let tmp = self.tmp_file("blob");
        let result = self.stream_to(&tmp, input, expected);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn stream_to(
        &self,
        tmp: &std::path::Path,
        input: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let file = File::create(tmp).map_err(|e| Error::io("create", tmp, e))?;
        let mut w = DigestWriter::new(io::BufWriter::new(file));
        io::copy(input, &mut w).map_err(|e| Error::io("write", tmp, e))?;
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
        let dest = self.blob_path(&d);
        if dest.exists() {
            let _ = std::fs::remove_file(tmp);
        } else {
            std::fs::rename(tmp, &dest).map_err(|e| Error::io("rename", &dest, e))?;
            fsutil::sync_parent(&dest)?;
        }
        Ok((d, n))
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
