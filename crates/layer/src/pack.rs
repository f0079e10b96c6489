//! Pack: one file or directory tree as a tar stream, read through descriptors only
//! (`docker cp`'s archive of a path). Every step is an `openat`/`fstatat`/`readlinkat`
//! relative to the directory above it with `O_NOFOLLOW`, so a tree that changes while it is
//! read (a running container's) can make the walk fail but never leads it out of the
//! directory it started in: a directory swapped for a symlink is not entered, a file
//! swapped for one is not opened.
//!
//! Entries are named `<name>`, `<name>/child`, … (`name` empty: the children alone, no
//! entry for the top). Headers as [`commit`](crate::commit) writes them (USTAR, PAX when
//! needed), owners, modes and whole-second mtimes kept, symlinks stored, devices and FIFOs
//! as headers; sockets skipped; no hard-link detection and no xattrs. A regular file is
//! written with the size `fstat` gave when it was opened: one that grows meanwhile is cut
//! there, one that shrinks is padded with zeros, so the stream stays well formed.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::tarfmt::{self, Meta};
use crate::{Error, Result};

/// What [`pack`] wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackInfo {
    pub entries: u64,
    pub bytes: u64,
}

struct Packer<W: Write> {
    out: W,
    header: Vec<u8>,
    info: PackInfo,
}

fn fs_err(op: &'static str, name: &[u8], e: rustix::io::Errno) -> Error {
    Error::fs(
        op,
        std::path::PathBuf::from(OsStr::from_bytes(name)),
        io::Error::from(e),
    )
}

impl<W: Write> Packer<W> {
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(|source| Error::Stream {
            op: "write the archive",
            source,
        })?;
        self.info.bytes += b.len() as u64;
        Ok(())
    }

    fn header(&mut self, m: &Meta) -> Result<()> {
        self.header.clear();
        let mut h = std::mem::take(&mut self.header);
        tarfmt::encode_header(m, &mut h).map_err(|e| Error::Stream {
            op: "write a tar header",
            source: io::Error::other(format!("{}: {e}", String::from_utf8_lossy(&m.name))),
        })?;
        let r = self.write(&h);
        self.header = h;
        self.info.entries += 1;
        r
    }

    /// The entry `name_in_dir` of `dir` (already `lstat`ed as `st`), named `name`.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name_in_dir: &OsStr,
        st: &Stat,
        name: &[u8],
    ) -> Result<()> {
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut m = Meta {
            name: name.to_vec(),
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            mtime: st.st_mtime,
            ..Meta::default()
        };
        match ft {
            FileType::Directory => {
                let fd = rustix::fs::openat(
                    dir,
                    name_in_dir,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fs_err("open", name, e))?;
                if !name.is_empty() {
                    m.typeflag = tarfmt::TYPE_DIR;
                    m.name.push(b'/');
                    self.header(&m)?;
                }
                self.children(fd, name)
            }
            FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    dir,
                    name_in_dir,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fs_err("open", name, e))?;
                let st = rustix::fs::fstat(&fd).map_err(|e| fs_err("stat", name, e))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(fs_err("open", name, rustix::io::Errno::INVAL));
                }
                m.typeflag = tarfmt::TYPE_REG;
                m.size = st.st_size as u64;
                m.mode = st.st_mode & 0o7777;
                self.header(&m)?;
                let mut f = std::fs::File::from(fd);
                let mut left = m.size;
                let mut buf = vec![0u8; 128 * 1024];
                while left > 0 {
                    let want = buf.len().min(left as usize);
                    let n = match f.read(&mut buf[..want]) {
                        Ok(0) => {
                            // Shrunk while read: pad.
                            buf[..want].fill(0);
                            want
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::fs(
                                "read",
                                std::path::PathBuf::from(OsStr::from_bytes(name)),
                                e,
                            ))
                        }
                    };
                    self.write(&buf[..n])?;
                    left -= n as u64;
                }
                let pad = tarfmt::padding(m.size) as usize;
                self.write(&vec![0u8; pad])
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name_in_dir, Vec::new())
                    .map_err(|e| fs_err("readlink", name, e))?;
                m.typeflag = tarfmt::TYPE_SYMLINK;
                m.linkname = target.into_bytes();
                self.header(&m)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                m.typeflag = match ft {
                    FileType::CharacterDevice => tarfmt::TYPE_CHAR,
                    FileType::BlockDevice => tarfmt::TYPE_BLOCK,
                    _ => tarfmt::TYPE_FIFO,
                };
                if ft != FileType::Fifo {
                    m.devmajor = rustix::fs::major(st.st_rdev);
                    m.devminor = rustix::fs::minor(st.st_rdev);
                }
                self.header(&m)
            }
            _ => Ok(()),
        }
    }

    fn children(&mut self, dir: OwnedFd, prefix: &[u8]) -> Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        {
            let d = rustix::fs::Dir::read_from(&dir).map_err(|e| fs_err("read", prefix, e))?;
            for e in d {
                let e = e.map_err(|e| fs_err("read", prefix, e))?;
                let n = e.file_name().to_bytes();
                if n == b"." || n == b".." {
                    continue;
                }
                names.push(OsString::from_vec(n.to_vec()));
            }
        }
        names.sort();
        for n in names {
            let mut name = prefix.to_vec();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(n.as_bytes());
            let st = match rustix::fs::statat(&dir, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while read.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(fs_err("stat", &name, e)),
            };
            self.entry(dir.as_fd(), &n, &st, &name)?;
        }
        Ok(())
    }
}

/// Write the entry `name_in_dir` of the directory `dir` (recursively, never following a
/// symlink: one at `name_in_dir` itself is stored as a link) to `out` as a tar stream whose
/// entries are named after `name` (see the module's documentation). `name_in_dir` = `.`
/// packs `dir` itself.
pub fn pack<W: Write>(
    dir: BorrowedFd<'_>,
    name_in_dir: &OsStr,
    name: &[u8],
    out: W,
) -> Result<PackInfo> {
    let st = rustix::fs::statat(dir, name_in_dir, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| fs_err("stat", name_in_dir.as_bytes(), e))?;
    let mut p = Packer {
        out,
        header: Vec::with_capacity(4096),
        info: PackInfo::default(),
    };
    let name: Vec<u8> = name
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect::<Vec<_>>()
        .join(&b'/');
    p.entry(dir, name_in_dir, &st, &name)?;
    p.write(&[0u8; 1024])?;
    p.out.flush().map_err(|source| Error::Stream {
        op: "write the archive",
        source,
    })?;
    Ok(p.info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_a_tree_and_applies_back() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("d/e")).unwrap();
        std::fs::write(src.join("d/f"), "hello").unwrap();
        std::fs::write(src.join("d/e/g"), vec![7u8; 70_000]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("d/link")).unwrap();
        let dir = std::fs::File::open(&src).unwrap();
        let mut tar = Vec::new();
        let info = pack(dir.as_fd(), OsStr::new("d"), b"renamed", &mut tar).unwrap();
        assert_eq!(info.entries, 5);
        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        crate::apply(&tar[..], &out, &crate::ApplyOptions::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("renamed/f")).unwrap(),
            "hello"
        );
        assert_eq!(
            std::fs::read(out.join("renamed/e/g")).unwrap().len(),
            70_000
        );
        assert_eq!(
            std::fs::read_link(out.join("renamed/link")).unwrap(),
            std::path::Path::new("/etc/passwd")
        );
        // The children alone.
        let mut tar = Vec::new();
        let d = std::fs::File::open(src.join("d")).unwrap();
        pack(d.as_fd(), OsStr::new("."), b"", &mut tar).unwrap();
        let out2 = t.path().join("out2");
        std::fs::create_dir(&out2).unwrap();
        crate::apply(&tar[..], &out2, &crate::ApplyOptions::default()).unwrap();
        assert_eq!(std::fs::read_to_string(out2.join("f")).unwrap(), "hello");
        // A symlink at the top is stored as a link, not followed.
        let mut tar = Vec::new();
        let d = std::fs::File::open(src.join("d")).unwrap();
        pack(d.as_fd(), OsStr::new("link"), b"link", &mut tar).unwrap();
        assert!(
            tar.len() <= 2048,
            "only a header and the end: {}",
            tar.len()
        );
    }
}
