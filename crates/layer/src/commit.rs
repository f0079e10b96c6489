//! Directory (or overlayfs upperdir) → deterministic tar layer.

use crate::error::{Error, Result};
use crate::tarfmt::{self, Meta};
use crate::xattr;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use store::{Digest, HashingWriter as HashWriter};
use walkdir::WalkDir;

/// What kind of directory [`commit`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// A plain directory: everything in it is an addition; 0:0 character devices stay
    /// character devices.
    #[default]
    Directory,
    /// The upperdir of an overlayfs mount (unmounted or at rest): 0:0 character devices
    /// become `.wh.<name>` whiteouts, directories with `trusted.overlay.opaque=y` (or
    /// `user.overlay.opaque=y`) get a `.wh..wh..opq` marker. Upperdirs written with
    /// `redirect_dir` or `metacopy` cannot be committed this way and are refused.
    /// fuse-overlayfs' upperdirs too: its opaque markers (a regular `.wh..wh..opq` file and a
    /// 0:0 device `.wh..opq` in the directory) mark the directory opaque and are no entries.
    OverlayUpper,
}

/// Options for [`commit`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// How to read the source directory.
    pub source: Source,
    /// `SOURCE_DATE_EPOCH`: modification times later than this are clamped to it; earlier
    /// ones are kept.
    pub source_date_epoch: Option<i64>,
    /// Make the directory what [`crate::apply`] would make of the layer (with overlay
    /// whiteouts), so it can serve as the layer's snapshot without unpacking the layer:
    /// modification times are set to the whole seconds written, private
    /// xattrs the layer does not carry are removed (an overlay upperdir keeps
    /// `trusted.overlay.opaque`), sockets are deleted.
    pub settle: bool,
    /// The overlay's lower directories (top first), when known: an opaque mark on a
    /// directory that no lower has hides nothing and is dropped, so an upperdir of
    /// fuse-overlayfs (which marks every directory it makes) commits as the kernel's does.
    pub lowers: Vec<std::path::PathBuf>,
}

/// fuse-overlayfs' opaque markers inside a directory of its upperdir.
const FUSE_OPAQUE_FILE: &[u8] = b".wh..wh..opq";
const FUSE_OPAQUE_DEV: &[u8] = b".wh..opq";

/// Whether `dir` of an upperdir holds fuse-overlayfs' opaque markers.
fn fuse_opaque(dir: &Path) -> bool {
    let file = std::fs::symlink_metadata(dir.join(OsStr::from_bytes(FUSE_OPAQUE_FILE)));
    let dev = std::fs::symlink_metadata(dir.join(OsStr::from_bytes(FUSE_OPAQUE_DEV)));
    file.is_ok_and(|m| m.is_file())
        || dev.is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// Whether some lower directory has a directory at `rel` (every component a real directory:
/// a symlink in a lower is never followed).
fn lower_has_dir(lowers: &[std::path::PathBuf], rel: &[u8]) -> bool {
    lowers.iter().any(|l| {
        let mut p = l.clone();
        rel.split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .all(|c| {
                p.push(OsStr::from_bytes(c));
                std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir())
            })
    })
}

/// What [`commit`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar stream, `sha256:<hex>`.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream in bytes.
    pub size: u64,
    /// Number of entries written (whiteouts and opaque markers included).
    pub entries: u64,
}

fn typeflag_of(md: &Metadata) -> Option<u8> {
    let ft = md.file_type();
    Some(if ft.is_dir() {
        tarfmt::TYPE_DIR
    } else if ft.is_file() {
        tarfmt::TYPE_REG
    } else if ft.is_symlink() {
        tarfmt::TYPE_SYMLINK
    } else if ft.is_char_device() {
        tarfmt::TYPE_CHAR
    } else if ft.is_block_device() {
        tarfmt::TYPE_BLOCK
    } else if ft.is_fifo() {
        tarfmt::TYPE_FIFO
    } else {
        // Sockets are not archived (as in docker and containerd).
        return None;
    })
}

struct Writer<W: Write> {
    out: BufWriter<HashWriter<W>>,
    header: Vec<u8>,
    entries: u64,
}

impl<W: Write> Writer<W> {
    fn header(&mut self, m: &Meta, path: &Path) -> Result<()> {
        self.header.clear();
        tarfmt::encode_header(m, &mut self.header).map_err(|reason| Error::Unsupported {
            path: path.to_path_buf(),
            reason,
        })?;
        self.out
            .write_all(&self.header)
            .map_err(|e| Error::stream("write layer", e))?;
        self.entries += 1;
        Ok(())
    }

    fn file_data(&mut self, path: &Path, size: u64) -> Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| Error::fs("open", path, e))?;
        let copied = copy_exact(file, &mut self.out, size).map_err(|e| match e {
            CopyError::Read(e) => Error::fs("read", path, e),
            CopyError::Write(e) => Error::stream("write layer", e),
        })?;
        if copied != size {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                reason: format!("file shrank from {size} to {copied} bytes while committing"),
            });
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let zeros = [0u8; tarfmt::BLOCK as usize];
        let n = tarfmt::padding(size) as usize;
        self.out
            .write_all(&zeros[..n])
            .map_err(|e| Error::stream("write layer", e))
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies at most `size` bytes; returns how many were copied.
fn copy_exact<W: Write>(mut file: File, out: &mut W, size: u64) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(buf.len() as u64) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        done += n as u64;
    }
    Ok(done)
}

/// A whiteout-style marker: an empty regular file owned by 0:0 with mode 0 and mtime 0,
/// as containerd ≥ 2.0 writes them (deterministic whatever the upperdir says).
fn marker(name: Vec<u8>) -> Meta {
    Meta {
        name,
        typeflag: tarfmt::TYPE_REG,
        ..Meta::default()
    }
}

/// Writes the directory `dir` as an uncompressed tar layer to `out`, hashing it on the way.
///
/// Entries are written depth first, the names in each directory sorted by bytes, parents
/// before children; the root directory itself is not an entry. See the crate docs for the
/// exact header fields. `out` is not flushed beyond what was written; nothing of the layer
/// is held in memory but one file-sized buffer of 128 KiB.
pub fn commit<W: Write>(dir: &Path, opts: &CommitOptions, out: W) -> Result<LayerInfo> {
    let overlay = opts.source == Source::OverlayUpper;
    let root_md = std::fs::metadata(dir).map_err(|e| Error::fs("stat", dir, e))?;
    if !root_md.is_dir() {
        return Err(Error::fs(
            "commit",
            dir,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut w = Writer {
        out: BufWriter::with_capacity(256 * 1024, HashWriter::new(out)),
        header: Vec::with_capacity(4096),
        entries: 0,
    };
    // First names of files with more than one link, by (dev, ino): offsets into one arena
    // (a tree of 50,000 files linked from elsewhere has 50,000 of them).
    let mut links: HashMap<(u64, u64), (usize, usize)> = HashMap::new();
    let mut link_names: Vec<u8> = Vec::new();
    let mut settle = opts.settle.then(Settle::default);
    let walk = WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            let io = e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("filesystem loop"));
            Error::fs("walk", path, io)
        })?;
        let path = entry.path();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let rel = rel.as_os_str().as_bytes();
        let md = entry
            .metadata()
            .map_err(|e| Error::fs("stat", path, e.into()))?;
        let Some(typeflag) = typeflag_of(&md) else {
            if let Some(s) = &mut settle {
                s.remove_socket(path)?;
            }
            continue;
        };

        if overlay {
            let name = entry.file_name().as_bytes();
            let fuse_marker = (name == FUSE_OPAQUE_FILE && typeflag == tarfmt::TYPE_REG)
                || (name == FUSE_OPAQUE_DEV && typeflag == tarfmt::TYPE_CHAR && md.rdev() == 0);
            if fuse_marker {
                // Read with its directory (`fuse_opaque`); a snapshot carries the xattr.
                if settle.is_some() {
                    std::fs::remove_file(path).map_err(|e| Error::fs("remove", path, e))?;
                }
                continue;
            }
        }
        if overlay && typeflag == tarfmt::TYPE_CHAR && md.rdev() == 0 {
            // Checked before the hardlink map: the kernel may share one whiteout inode.
            let mut name = match rel.iter().rposition(|&c| c == b'/') {
                Some(i) => rel[..=i].to_vec(),
                None => Vec::new(),
            };
            name.extend_from_slice(b".wh.");
            name.extend_from_slice(entry.file_name().as_bytes());
            w.header(&marker(name), path)?;
            continue;
        }

        let all_xattrs = xattr::list(path).map_err(|e| Error::fs("list xattrs of", path, e))?;
        let mut opaque = false;
        if overlay {
            for (k, v) in &all_xattrs {
                let k = k.as_slice();
                if matches!(k, b"trusted.overlay.opaque" | b"user.overlay.opaque") && v == b"y" {
                    opaque = true;
                }
                if k.ends_with(b".overlay.redirect") || k.ends_with(b".overlay.metacopy") {
                    return Err(Error::Unsupported {
                        path: path.to_path_buf(),
                        reason: format!(
                            "overlay {} attribute: mount the overlay with redirect_dir=off,metacopy=off",
                            String::from_utf8_lossy(k)
                        ),
                    });
                }
            }
        }
        if overlay && typeflag == tarfmt::TYPE_DIR {
            opaque |= fuse_opaque(path);
            if opaque && !opts.lowers.is_empty() && !lower_has_dir(&opts.lowers, rel) {
                opaque = false;
            }
        }
        if let Some(s) = &mut settle {
            s.private_xattrs(path, &all_xattrs, opaque)?;
        }
        let xattrs: Vec<_> = all_xattrs
            .into_iter()
            .filter(|(k, _)| !xattr::is_private(k))
            .collect();

        let mut mtime = md.mtime();
        if let Some(epoch) = opts.source_date_epoch {
            mtime = mtime.min(epoch);
        }
        if let Some(s) = &mut settle {
            s.time(path, &md, mtime)?;
        }
        let mut m = Meta {
            name: rel.to_vec(),
            typeflag,
            linkname: Vec::new(),
            mode: md.mode() & 0o7777,
            uid: u64::from(md.uid()),
            gid: u64::from(md.gid()),
            size: 0,
            mtime,
            devmajor: 0,
            devminor: 0,
            xattrs,
        };
        match typeflag {
            tarfmt::TYPE_DIR => {
                m.name.push(b'/');
                w.header(&m, path)?;
                if opaque {
                    let mut name = m.name.clone();
                    name.extend_from_slice(b".wh..wh..opq");
                    w.header(&marker(name), path)?;
                }
            }
            tarfmt::TYPE_REG => {
                if md.nlink() > 1 {
                    let key = (md.dev(), md.ino());
                    if let Some(&(at, len)) = links.get(&key) {
                        m.typeflag = tarfmt::TYPE_LINK;
                        m.linkname = link_names[at..at + len].to_vec();
                        w.header(&m, path)?;
                        continue;
                    }
                    links.insert(key, (link_names.len(), m.name.len()));
                    link_names.extend_from_slice(&m.name);
                }
                m.size = md.size();
                w.header(&m, path)?;
                w.file_data(path, m.size)?;
            }
            tarfmt::TYPE_SYMLINK => {
                let target =
                    std::fs::read_link(path).map_err(|e| Error::fs("readlink", path, e))?;
                m.linkname = target.into_os_string().into_vec();
                w.header(&m, path)?;
            }
            _ => {
                // Character and block devices, FIFOs. Hard links between them are rare
                // and harmless to store twice, so they are not looked up.
                if typeflag != tarfmt::TYPE_FIFO {
                    let rdev = md.rdev();
                    m.devmajor = rustix::fs::major(rdev);
                    m.devminor = rustix::fs::minor(rdev);
                }
                w.header(&m, path)?;
            }
        }
    }
    if let Some(s) = settle {
        s.finish()?;
    }
    w.out
        .write_all(&[0u8; 2 * tarfmt::BLOCK as usize])
        .map_err(|e| Error::stream("write layer", e))?;
    let hw = w
        .out
        .into_inner()
        .map_err(|e| Error::stream("write layer", e.into_error()))?;
    let (diff_id, size, mut inner) = hw.finish();
    inner.flush().map_err(|e| Error::stream("flush layer", e))?;
    Ok(LayerInfo {
        diff_id,
        size,
        entries: w.entries,
    })
}

/// What [`CommitOptions::settle`] changes in the committed directory.
#[derive(Default)]
struct Settle {
    /// Directories whose times to set once everything under them is settled (deleting a
    /// socket changes its directory's times).
    dirs: Vec<(std::path::PathBuf, i64)>,
}

impl Settle {
    fn remove_socket(&mut self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::fs("remove socket", path, e))
    }

    /// Remove the private xattrs [`crate::apply`] would not set: all of them but an
    /// upperdir's opaque marker under the name this process's overlays use
    /// ([`crate::opaque_xattr`]).
    fn private_xattrs(&mut self, path: &Path, all: &tarfmt::Pairs, opaque: bool) -> Result<()> {
        let name = crate::opaque_xattr().as_bytes();
        for (k, v) in all {
            if !xattr::is_private(k) {
                continue;
            }
            if opaque && k.as_slice() == name && v == b"y" {
                continue;
            }
            xattr::remove(path, k).map_err(|e| Error::fs("remove xattr of", path, e))?;
        }
        if opaque && !all.iter().any(|(k, _)| k.as_slice() == name) {
            // Marked opaque under the other name (removed above): as applied.
            xattr::set(path, name, b"y").map_err(|e| Error::fs("set opaque xattr on", path, e))?;
        }
        Ok(())
    }

    /// Times as written: whole seconds (clamped); when they are set, the access time is
    /// the modification time, as [`crate::apply`] sets them.
    fn time(&mut self, path: &Path, md: &Metadata, mtime: i64) -> Result<()> {
        if md.is_dir() {
            self.dirs.push((path.to_path_buf(), mtime));
            return Ok(());
        }
        // Access times are not compared: reading a file moves them (relatime).
        if md.mtime() == mtime && md.mtime_nsec() == 0 {
            return Ok(());
        }
        set_times(path, mtime)
    }

    fn finish(self) -> Result<()> {
        for (path, mtime) in self.dirs.iter().rev() {
            set_times(path, *mtime)?;
        }
        Ok(())
    }
}

fn set_times(path: &Path, secs: i64) -> Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| {
        Error::fs(
            "set times of",
            path,
            io::Error::from_raw_os_error(e.raw_os_error()),
        )
    })
}
