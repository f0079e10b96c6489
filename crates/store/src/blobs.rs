//! Blobs: ingest (hashed into a temp file, verified, fsynced, renamed into place), reads
//! (verified as they stream), and the records of a layer's compressed forms.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::{
    atomic_write, sync_dir, Digest, Error, HashingReader, HashingWriter, IoContext, Result, Store,
    Writer,
};

/// Compression of an exported layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A blob being written: bytes go to a temp file and are hashed on the way.
pub struct Ingest<'s> {
    store: &'s Store,
    path: PathBuf,
    writer: Option<HashingWriter<io::BufWriter<File>>>,
}

impl Write for Ingest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("ingest open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("ingest open").flush()
    }
}

impl Ingest<'_> {
    /// Finish the blob: fsync, check it against `expected` (when given) and move it into
    /// place. A blob that is already present is kept and the temp file dropped.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let w = self.writer.take().expect("ingest open");
        let (digest, size, buf) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("writing {}", self.path.display()))?;
        if let Some(exp) = expected {
            if exp != &digest {
                let _ = fs::remove_file(&self.path);
                return Err(Error::Corrupt {
                    digest: exp.clone(),
                    actual: digest,
                });
            }
        }
        file.sync_all()
            .ctx(|| format!("fsync {}", self.path.display()))?;
        drop(file);
        let dest = self.store.blob_path(&digest);
        if dest.exists() {
            let _ = fs::remove_file(&self.path);
        } else {
            fs::rename(&self.path, &dest).ctx(|| format!("rename into {}", dest.display()))?;
            sync_dir(dest.parent().expect("blob dir"))?;
        }
        Ok((digest, size))
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A reader that checks the digest of a blob when it reaches the end.
pub struct VerifyingReader {
    inner: HashingReader<io::BufReader<File>>,
    expected: Digest,
    done: bool,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let actual = self.inner.current();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is corrupt: its content hashes to {actual}",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }

    /// Size on disk of a blob.
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingBlob(d.clone())),
            Err(e) => Err(e).ctx(|| format!("stat blob {d}")),
        }
    }

    /// Read a small blob, verified.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = match fs::read(self.blob_path(d)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(d.clone()))
            }
            Err(e) => return Err(e).ctx(|| format!("read blob {d}")),
        };
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(Error::Corrupt {
                digest: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stream a blob; the reader fails at the end if the content does not match.
    pub fn open_blob(&self, d: &Digest) -> Result<VerifyingReader> {
        let f = match File::open(self.blob_path(d)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(d.clone()))
            }
            Err(e) => return Err(e).ctx(|| format!("open blob {d}")),
        };
        Ok(VerifyingReader {
            inner: HashingReader::new(io::BufReader::with_capacity(1 << 20, f)),
            expected: d.clone(),
            done: false,
        })
    }

    /// Hash a blob fully and compare digest and size.
    pub fn verify_blob(&self, d: &Digest, size: u64) -> Result<()> {
        let mut r = self.open_blob(d)?;
        let n = io::copy(&mut r, &mut io::sink()).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                Error::Invalid(e.to_string())
            } else {
                Error::Io {
                    context: format!("read blob {d}"),
                    source: e,
                }
            }
        })?;
        if n != size {
            return Err(Error::SizeMismatch {
                what: "blob".into(),
                digest: d.clone(),
                expected: size,
                actual: n,
            });
        }
        Ok(())
    }

    /// The compressed form of a layer, if it was made before.
    pub fn compressed(&self, diff_id: &Digest, c: Compression) -> Result<Option<(Digest, u64)>> {
        let p = self
            .root
            .join("compressed")
            .join(c.name())
            .join(diff_id.hex());
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("read {}", p.display())),
        };
        let mut parts = text.split_whitespace();
        let (Some(d), Some(s)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        let (Ok(d), Ok(s)) = (d.parse::<Digest>(), s.parse::<u64>()) else {
            return Ok(None);
        };
        Ok(self.has_blob(&d).then_some((d, s)))
    }
}

impl Writer<'_> {
    /// Start writing a blob.
    pub fn ingest(&self) -> Result<Ingest<'_>> {
        let path = self.temp_path("ingest");
        let f = File::create(&path).ctx(|| format!("create {}", path.display()))?;
        Ok(Ingest {
            store: self.store,
            path,
            writer: Some(HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f))),
        })
    }

    /// Write a small blob from memory (manifests, configs).
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut i = self.ingest()?;
        i.write_all(bytes).ctx(|| "write blob".into())?;
        i.commit(Some(&d))?;
        Ok(d)
    }

    /// Record the compressed form of a layer (its blob must be present).
    pub fn record_compressed(
        &self,
        diff_id: &Digest,
        c: Compression,
        blob: &Digest,
        size: u64,
    ) -> Result<()> {
        let p = self
            .root
            .join("compressed")
            .join(c.name())
            .join(diff_id.hex());
        atomic_write(&p, format!("{blob} {size}\n").as_bytes())
    }
}
