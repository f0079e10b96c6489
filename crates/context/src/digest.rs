//! Content digests of selected entries, for cache keys.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::select::{Entry, Placed, Selection};
use crate::statcache::StatCache;
use crate::tree::FileKind;
use crate::Error;

const DOMAIN: &[u8] = b"strata/context-digest/v2\0";

/// A sha256 (`sha256:<hex>`) over `(path, entry)` pairs in the given order: for each, the
/// path, the type, `mode & 0o7777`, uid, gid, the size of a regular file, the device number
/// of a device, the target of a symlink and, for a regular file, the sha256 of its content
/// (32 bytes). Every field is length-prefixed or fixed-size, so different inputs cannot
/// produce the same byte stream. Modification times are not part of it.
///
/// A file's content digest comes from `cache` ([`StatCache::file_digest`]): remembered when
/// the file's `lstat` metadata is unchanged, else read (opened without following symlinks,
/// streamed in 64 KiB blocks); a file read must still be the file that was selected (same
/// device and inode) with the selected size: anything else is [`Error::Changed`].
pub fn digest_entries<'a, I>(items: I, cache: &StatCache) -> Result<String, Error>
where
    I: IntoIterator<Item = (&'a Path, &'a Entry)>,
{
    let mut h = Sha256::new();
    h.update(DOMAIN);
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
            h.update(cache.file_digest(e)?);
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

impl Selection {
    /// [`digest_entries`] over every entry, each named by its source path joined with its
    /// path under that source (so the digest does not depend on the destination).
    pub fn digest(&self, cache: &StatCache) -> Result<String, Error> {
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
        digest_entries(named.iter().map(|(p, e)| (p.as_path(), *e)), cache)
    }
}

/// [`digest_entries`] over placed entries, each named by its destination path.
pub fn digest_placed(placed: &[Placed<'_>], cache: &StatCache) -> Result<String, Error> {
    digest_entries(placed.iter().map(|p| (p.dest.as_path(), p.entry)), cache)
}
