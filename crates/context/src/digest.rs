//! Content digests of selected entries, for cache keys.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::select::{Entry, Placed, Selection};
use crate::tree::FileKind;
use crate::Error;

const DOMAIN: &[u8] = b"strata/context-digest/v1\0";

/// A sha256 (`sha256:<hex>`) over `(path, entry)` pairs in the given order: for each, the
/// path, the type, `mode & 0o7777`, uid, gid, the size and content of a regular file, the
/// target of a symlink and the device number of a device. Every field is length-prefixed
/// or fixed-size, so different inputs cannot produce the same byte stream. Modification
/// times are not part of it. Files are streamed in 64 KiB blocks, opened without following
/// symlinks, and must still be the file that was selected (same device and inode) with
/// the selected size: anything else is [`Error::Changed`].
pub fn digest_entries<'a, I>(items: I) -> Result<String, Error>
where
    I: IntoIterator<Item = (&'a Path, &'a Entry)>,
{
    let mut h = Sha256::new();
    h.update(DOMAIN);
    let mut buf = vec![0u8; 64 * 1024];
    for (path, e) in items {
        let m = &e.metadata;
        h.update(b"E");
        put_bytes(&mut h, path.as_os_str().as_bytes());
        h.update([match e.kind {
            FileKind::File => b'f',
            FileKind::Dir => b'd',
            FileKind::Symlink => b'l',
            FileKind::Other => b'o',
        }]);
        h.update((m.mode() & 0o7777).to_be_bytes());
        h.update(m.uid().to_be_bytes());
        h.update(m.gid().to_be_bytes());
        let size = if e.kind == FileKind::File {
            m.size()
        } else {
            0
        };
        h.update(size.to_be_bytes());
        let rdev = if e.kind == FileKind::Other {
            m.rdev()
        } else {
            0
        };
        h.update(rdev.to_be_bytes());
        put_bytes(
            &mut h,
            e.link_target
                .as_deref()
                .map(|t| t.as_os_str().as_bytes())
                .unwrap_or(b""),
        );
        if e.kind == FileKind::File {
            hash_file(&mut h, e, size, &mut buf)?;
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

fn hash_file(h: &mut Sha256, e: &Entry, size: u64, buf: &mut [u8]) -> Result<(), Error> {
    let changed = || Error::Changed(e.source.display().to_string());
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&e.source)
        .map_err(|err| Error::io(&e.source, err))?;
    let now = f.metadata().map_err(|err| Error::io(&e.source, err))?;
    if now.dev() != e.metadata.dev() || now.ino() != e.metadata.ino() || !now.is_file() {
        return Err(changed());
    }
    let mut r = f.take(size + 1);
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io(&e.source, err)),
        };
        total += n as u64;
        if total > size {
            return Err(changed());
        }
        h.update(&buf[..n]);
    }
    if total != size {
        return Err(changed());
    }
    Ok(())
}

impl Selection {
    /// [`digest_entries`] over every entry, each named by its source path joined with its
    /// path under that source (so the digest does not depend on the destination).
    pub fn digest(&self) -> Result<String, Error> {
        let named: Vec<(std::path::PathBuf, &Entry)> = self
            .sources
            .iter()
            .flat_map(|s| {
                s.entries.iter().map(move |e| {
                    let p = s.path.as_path();
                    (
                        if e.rel.as_os_str().is_empty() {
                            p.to_path_buf()
                        } else {
                            p.join(&e.rel)
                        },
                        e,
                    )
                })
            })
            .collect();
        digest_entries(named.iter().map(|(p, e)| (p.as_path(), *e)))
    }
}

/// [`digest_entries`] over placed entries, each named by its destination path.
pub fn digest_placed(placed: &[Placed<'_>]) -> Result<String, Error> {
    digest_entries(placed.iter().map(|p| (p.dest.as_path(), p.entry)))
}
