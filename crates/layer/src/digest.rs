//! sha256 over a stream, computed as the bytes pass through.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// Formats a finished sha256 as an OCI digest string, `sha256:<64 hex digits>`.
pub(crate) fn format_digest(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// A writer that hashes and counts everything written through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns `(digest, bytes written, inner writer)`.
    pub(crate) fn finish(self) -> (String, u64, W) {
        (format_digest(self.hasher), self.count, self.inner)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or(buf);
        self.hasher.update(written);
        self.count += written.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns `(digest, bytes read)`.
    pub(crate) fn finish(self) -> (String, u64) {
        (format_digest(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or(buf);
        self.hasher.update(got);
        self.count += got.len() as u64;
        Ok(n)
    }
}
