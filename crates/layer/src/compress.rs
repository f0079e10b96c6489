//! Layer compression (gzip in parallel, zstd multithreaded) with the blob digest computed
//! in the same pass, and decompression by magic number.

use crate::error::{Error, Result};
use flate2::{Compress, Crc, FlushCompress, Status};
use std::io::{self, BufReader, Chain, Cursor, Read, Write};
use store::{Digest, HashingWriter as HashWriter};

/// A layer blob compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (`application/vnd.oci.image.layer.v1.tar+gzip`), what docker expects.
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

/// Tuning for [`compress_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressOptions {
    /// Compression level; `None` for the default (gzip 6 like docker, zstd 3).
    pub level: Option<u32>,
    /// Worker threads (at least 1).
    pub workers: usize,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            level: None,
            workers: 2,
        }
    }
}

/// A compressed blob as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// sha256 of the compressed bytes, `sha256:<hex>`.
    pub digest: Digest,
    /// Length of the compressed bytes.
    pub size: u64,
}

/// Compresses `reader` into `writer` with default options (gzip level 6 or zstd level 3,
/// two workers), hashing the output as it is written.
pub fn compress<R: Read, W: Write>(reader: R, c: Compression, writer: W) -> Result<BlobInfo> {
    compress_with(reader, c, &CompressOptions::default(), writer)
}

/// [`compress`] with explicit options.
///
/// gzip output is one gzip member whose deflate stream is made of independently
/// compressed 1 MiB blocks (each primed with the previous 32 KiB as dictionary and ended
/// by a sync flush, as pigz does), so any gzip reader accepts it; its bytes depend on the
/// level and on nothing else, not even the number of workers. zstd uses libzstd's own
/// worker threads and writes a content checksum.
pub fn compress_with<R: Read, W: Write>(
    reader: R,
    c: Compression,
    opts: &CompressOptions,
    writer: W,
) -> Result<BlobInfo> {
    let mut hw = HashWriter::new(writer);
    let workers = opts.workers.max(1);
    match c {
        Compression::Gzip => {
            let level = opts.level.unwrap_or(6).min(9);
            gzip_parallel(reader, level, workers, &mut hw)?;
        }
        Compression::Zstd => {
            let level = opts.level.unwrap_or(3).min(22) as i32;
            zstd_stream(reader, level, workers, &mut hw)
                .map_err(|e| Error::stream("zstd compress", e))?;
        }
    }
    hw.flush().map_err(|e| Error::stream("flush blob", e))?;
    let (digest, size, _) = hw.finish();
    Ok(BlobInfo { digest, size })
}

fn zstd_stream<R: Read, W: Write>(mut r: R, level: i32, workers: usize, w: W) -> io::Result<()> {
    let mut enc = zstd::stream::write::Encoder::new(w, level)?;
    if workers > 1 {
        enc.multithread(workers as u32)?;
    }
    enc.include_checksum(true)?;
    io::copy(&mut r, &mut enc)?;
    enc.finish()?;
    Ok(())
}

const CHUNK: usize = 1 << 20;
const DICT: usize = 32 * 1024;

/// gzip header as Go's `gzip.Writer` writes it at the default level: no name, mtime 0,
/// XFL 0, OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Raw deflate of `input` with `dict` as preset dictionary, ended by a sync flush (so the
/// output ends on a byte boundary, not final).
fn deflate_block(input: &[u8], dict: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 1024);
    loop {
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or_default();
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let status = c
            .compress_vec(rest, &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        let done_in = usize::try_from(c.total_in()).unwrap_or(usize::MAX) >= input.len();
        if status == Status::StreamEnd || (done_in && out.len() < out.capacity()) {
            return Ok(out);
        }
    }
}

/// The final, empty, fixed-Huffman deflate block (BFINAL=1): ends the stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

fn read_chunk<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.resize(CHUNK, 0);
    let mut n = 0;
    while n < CHUNK {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(())
}

fn gzip_parallel<R: Read, W: Write>(mut r: R, level: u32, workers: usize, w: &mut W) -> Result<()> {
    let werr = |e| Error::stream("write blob", e);
    w.write_all(&GZIP_HEADER).map_err(werr)?;
    let mut crc = Crc::new();
    let mut dict: Vec<u8> = Vec::new();
    let mut chunks: Vec<Vec<u8>> = (0..workers).map(|_| Vec::with_capacity(CHUNK)).collect();
    loop {
        let mut filled = 0;
        let mut eof = false;
        for buf in chunks.iter_mut() {
            read_chunk(&mut r, buf).map_err(|e| Error::stream("read layer", e))?;
            if buf.is_empty() {
                eof = true;
                break;
            }
            crc.update(buf);
            filled += 1;
            if buf.len() < CHUNK {
                eof = true;
                break;
            }
        }
        let batch = &chunks[..filled];
        let outputs: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .enumerate()
                .map(|(i, chunk)| {
                    let d: &[u8] = match i.checked_sub(1) {
                        None => &dict,
                        Some(p) => tail(&batch[p]),
                    };
                    s.spawn(move || deflate_block(chunk, d, level))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))
                })
                .collect()
        });
        for out in outputs {
            let out = out.map_err(|e| Error::stream("gzip compress", e))?;
            w.write_all(&out).map_err(werr)?;
        }
        if let Some(last) = batch.last() {
            dict.clear();
            dict.extend_from_slice(tail(last));
        }
        if eof {
            break;
        }
    }
    w.write_all(&FINAL_BLOCK).map_err(werr)?;
    w.write_all(&crc.sum().to_le_bytes()).map_err(werr)?;
    w.write_all(&crc.amount().to_le_bytes()).map_err(werr)?;
    Ok(())
}

fn tail(b: &[u8]) -> &[u8] {
    &b[b.len().saturating_sub(DICT)..]
}

/// A reader that undoes whatever compression its input has, detected by magic number:
/// gzip (`1f 8b`, every member of a multi-member stream), zstd (`28 b5 2f fd`), or none.
pub struct Decompressor<R: Read> {
    kind: Option<Compression>,
    inner: Inner<R>,
}

type Peeked<R> = Chain<Cursor<Vec<u8>>, R>;

enum Inner<R: Read> {
    Plain(Peeked<R>),
    Gzip(Box<flate2::read::MultiGzDecoder<Peeked<R>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<Peeked<R>>>>),
}

impl<R: Read> Decompressor<R> {
    /// Reads the first bytes of `r` to detect its compression.
    pub fn new(mut r: R) -> Result<Self> {
        let mut magic = vec![0u8; 4];
        let mut n = 0;
        while n < magic.len() {
            match r.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::stream("read layer blob", e)),
            }
        }
        magic.truncate(n);
        let kind = if magic.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
            Some(Compression::Zstd)
        } else {
            None
        };
        let peeked = Cursor::new(magic).chain(r);
        let inner = match kind {
            Some(Compression::Gzip) => {
                Inner::Gzip(Box::new(flate2::read::MultiGzDecoder::new(peeked)))
            }
            Some(Compression::Zstd) => Inner::Zstd(Box::new(
                zstd::stream::read::Decoder::new(peeked)
                    .map_err(|e| Error::stream("start zstd decoder", e))?,
            )),
            None => Inner::Plain(peeked),
        };
        Ok(Decompressor { kind, inner })
    }

    /// The compression detected, `None` for an uncompressed stream.
    pub fn compression(&self) -> Option<Compression> {
        self.kind
    }
}

impl<R: Read> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(r) => r.read(buf),
            Inner::Gzip(r) => r.read(buf),
            Inner::Zstd(r) => r.read(buf),
        }
    }
}
