//! Tar layer → directory, without ever touching anything outside the target.

use crate::error::{Error, Result};
use crate::fsat::{self, errno, Resolver};
use crate::tarfmt::{self, Entry, Reader};
use crate::xattr;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use store::{Digest, HashingReader as HashReader};

/// A chown's error; EINVAL (an id the user namespace does not map, rootless) says which.
fn chown_errno(err: Errno, u: Uid, g: Gid) -> io::Error {
    if err == Errno::INVAL {
        return io::Error::other(format!(
            "owner {}:{} is not mapped in this user namespace (rootless: the user's \
             subordinate ids in /etc/subuid and /etc/subgid do not reach it)",
            u.as_raw(),
            g.as_raw()
        ));
    }
    errno(err)
}

/// How whiteout entries are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// The target is the merged tree (a plain directory holding the lower layers):
    /// `.wh.<name>` removes `<name>`, `.wh..wh..opq` removes every child of its directory
    /// that this layer did not create.
    #[default]
    Remove,
    /// The target is one overlayfs layer directory (to be used as a lowerdir):
    /// `.wh.<name>` becomes a 0:0 character device, `.wh..wh..opq` sets
    /// `trusted.overlay.opaque=y` on its directory. Needs root.
    Overlay,
    /// The stream is not a layer (a build context): `.wh.` names are ordinary entries.
    Keep,
}

/// How entry names and the paths met while resolving them are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resolve {
    /// The target is `/` for the stream: absolute names are made relative, and symlinks met
    /// on a parent path (or a hard link's path) are followed as if the target were the
    /// root (`RESOLVE_IN_ROOT`), as docker and containerd apply layers.
    #[default]
    InRoot,
    /// Absolute names (and hard-link targets) are refused, and so is any symlink or
    /// non-directory on a parent path or a hard link's path (`RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS`): nothing is resolved through a link, not even one inside the
    /// target. All three are [`Error::Unsafe`].
    Beneath,
}

/// Options for [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How whiteouts are applied.
    pub whiteouts: Whiteouts,
    /// Give entries the owner recorded in the layer (needs `CAP_CHOWN`). When false, they
    /// belong to the calling user.
    pub same_owner: bool,
    /// How names and parent paths are resolved.
    pub resolve: Resolve,
    /// Restore modification times (directories' at the end). When false, entries keep the
    /// time they were written.
    pub times: bool,
    /// Apply the extended attributes in the stream (never the private ones).
    pub xattrs: bool,
    /// Create device nodes and FIFOs, and refuse unknown entry types. When false, devices,
    /// FIFOs and unknown entry types are skipped (their data is read past).
    pub special_files: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: Whiteouts::Remove,
            same_owner: true,
            resolve: Resolve::InRoot,
            times: true,
            xattrs: true,
            special_files: true,
        }
    }
}

impl ApplyOptions {
    /// A build context given as a tar stream (`docker build - < ctx.tar`), extracted by an
    /// unprivileged reader of the stream: `.wh.` names are ordinary files, devices, FIFOs
    /// and unknown types are skipped, owners, times and xattrs are not restored, absolute
    /// names and any symlink on a path are refused ([`Resolve::Beneath`]).
    pub fn build_context() -> Self {
        ApplyOptions {
            whiteouts: Whiteouts::Keep,
            same_owner: false,
            resolve: Resolve::Beneath,
            times: false,
            xattrs: false,
            special_files: false,
        }
    }
}

/// What [`apply`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyInfo {
    /// sha256 of the whole uncompressed stream as read (compare it with the expected
    /// diffID), `sha256:<hex>`.
    pub diff_id: Digest,
    /// Bytes of uncompressed stream read.
    pub size: u64,
    /// Entries in the archive (extended headers not counted).
    pub entries: u64,
}

/// Splits an entry name into components: empty and `.` components are dropped, which
/// makes absolute names relative (as docker does); `..` anywhere is refused, even where it
/// would stay inside (docker accepts `a/../b`; no layer writer produces it).
fn clean(name: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.contains(&0) {
        return Err("NUL byte in name");
    }
    escape::clean::refusing_dotdot(name).ok_or("'..' component")
}

fn path_of(name: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(name))
}

/// `/proc/self/fd/<dir>/<name>`: a path naming `name` in the directory we hold, for the
/// few calls that have no `*at` form (xattrs on non-regular files). The magic link is an
/// intermediate component; `name` itself is not followed by the `l*` calls.
fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

type Key = (u64, u64, Vec<u8>);

struct Applier<'o> {
    opts: &'o ApplyOptions,
    resolver: Resolver,
    /// The last parent directory resolved, by its components.
    cache: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
    /// (dev, ino of the parent directory, name) of everything this layer created.
    created: HashSet<Key>,
    /// Directories whose mode and times are set at the end (creating children changes
    /// their times; a read-only mode would stop their children being created): the full
    /// name, its mode, and its time.
    dirs: Vec<(Vec<u8>, Mode, Timespec)>,
    buf: Vec<u8>,
}

impl Applier<'_> {
    /// With [`Resolve::Beneath`], a resolution error caused by a symlink or a file on the
    /// path is an [`Error::Unsafe`] saying so; any other error is an [`Error::Fs`].
    fn resolve_err(&self, name: &[u8], op: &'static str, err: io::Error, what: &str) -> Error {
        if self.opts.resolve == Resolve::Beneath {
            let raw = err.raw_os_error();
            if raw == Some(Errno::LOOP.raw_os_error()) || raw == Some(Errno::XDEV.raw_os_error()) {
                return Error::unsafe_entry(name, format!("{what} is a symlink"));
            }
            if raw == Some(Errno::NOTDIR.raw_os_error()) {
                return Error::unsafe_entry(name, format!("{what} is not a directory"));
            }
        }
        Error::fs(op, path_of(name), err)
    }

    fn parent(&mut self, comps: &[&[u8]], create: bool) -> io::Result<Option<Rc<OwnedFd>>> {
        if let Some((key, fd)) = &self.cache {
            if key.len() == comps.len() && key.iter().zip(comps).all(|(a, b)| a == b) {
                return Ok(Some(fd.clone()));
            }
        }
        let Some(fd) = self.resolver.dir(comps, create)? else {
            return Ok(None);
        };
        let fd = Rc::new(fd);
        self.cache = Some((comps.iter().map(|c| c.to_vec()).collect(), fd.clone()));
        Ok(Some(fd))
    }

    fn key(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Key> {
        let st = rustix::fs::fstat(dir).map_err(errno)?;
        Ok((st.st_dev, st.st_ino, name.to_vec()))
    }

    fn entry<R: Read>(&mut self, rd: &mut Reader<R>, e: &Entry) -> Result<()> {
        let m = &e.meta;
        let name = m.name.as_slice();
        let special = matches!(
            m.typeflag,
            tarfmt::TYPE_CHAR | tarfmt::TYPE_BLOCK | tarfmt::TYPE_FIFO
        );
        let known = matches!(
            m.typeflag,
            tarfmt::TYPE_REG
                | tarfmt::TYPE_CONT
                | tarfmt::TYPE_LINK
                | tarfmt::TYPE_SYMLINK
                | tarfmt::TYPE_DIR
        );
        if !self.opts.special_files && (special || !known) {
            return Ok(()); // the reader skips its data
        }
        let beneath = self.opts.resolve == Resolve::Beneath;
        if beneath && name.first() == Some(&b'/') {
            return Err(Error::unsafe_entry(name, "absolute path"));
        }
        let comps = clean(name).map_err(|r| Error::unsafe_entry(name, r))?;
        match m.typeflag {
            tarfmt::TYPE_REG
            | tarfmt::TYPE_CONT
            | tarfmt::TYPE_LINK
            | tarfmt::TYPE_SYMLINK
            | tarfmt::TYPE_CHAR
            | tarfmt::TYPE_BLOCK
            | tarfmt::TYPE_DIR
            | tarfmt::TYPE_FIFO => {}
            t => {
                return Err(Error::Malformed {
                    offset: e.offset,
                    reason: format!(
                        "unsupported entry type {:?} for {:?}",
                        char::from(t),
                        String::from_utf8_lossy(name)
                    ),
                })
            }
        }
        if m.uid >= u64::from(u32::MAX) || m.gid >= u64::from(u32::MAX) {
            return Err(Error::unsafe_entry(name, "uid or gid out of range"));
        }
        let Some((&base, parent)) = comps.split_last() else {
            if m.typeflag == tarfmt::TYPE_DIR {
                // The root itself: left as it is (containerd does the same).
                return Ok(());
            }
            return Err(Error::unsafe_entry(
                name,
                "non-directory entry for the root",
            ));
        };
        if let Some(wh) = base.strip_prefix(b".wh.") {
            if self.opts.whiteouts != Whiteouts::Keep {
                return self.whiteout(name, parent, wh);
            }
        }
        let fs_err = |op: &'static str, err: io::Error| Error::fs(op, path_of(name), err);

        let pfd = self
            .parent(parent, true)
            .map_err(|err| self.resolve_err(name, "resolve parent of", err, "a parent directory"))?
            .ok_or_else(|| fs_err("resolve parent of", errno(Errno::NOENT)))?;
        let pfd = pfd.as_fd();
        let is_dir_entry = m.typeflag == tarfmt::TYPE_DIR;

        // Whatever is in the way is replaced, except a directory by a directory (merged).
        let mut merge = false;
        match rustix::fs::statat(pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if is_dir(&st) && is_dir_entry => merge = true,
            Ok(_) => {
                if m.typeflag == tarfmt::TYPE_LINK && clean(&m.linkname).ok() == Some(comps.clone())
                {
                    return Err(Error::unsafe_entry(name, "hard link to itself"));
                }
                fsat::remove_all_at(pfd, base).map_err(|err| fs_err("replace", err))?;
                self.cache = None;
            }
            Err(Errno::NOENT) => {}
            Err(err) => return Err(fs_err("stat", errno(err))),
        }
        self.created
            .insert(Self::key(pfd, base).map_err(|err| fs_err("stat parent of", err))?);

        let mode = Mode::from_raw_mode(m.mode & 0o7777);
        let owner = self.opts.same_owner.then(|| {
            (
                Uid::from_raw_unchecked(m.uid as u32),
                Gid::from_raw_unchecked(m.gid as u32),
            )
        });
        let time = Timespec {
            tv_sec: m.mtime,
            tv_nsec: e.mtime_nsec.into(),
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };

        match m.typeflag {
            tarfmt::TYPE_REG | tarfmt::TYPE_CONT => {
                let fd = rustix::fs::openat(
                    pfd,
                    base,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|err| fs_err("create", errno(err)))?;
                let mut file = File::from(fd);
                loop {
                    let n = rd.read_data(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n])
                        .map_err(|err| fs_err("write", err))?;
                }
                if let Some((u, g)) = owner {
                    rustix::fs::fchown(&file, Some(u), Some(g))
                        .map_err(|err| fs_err("chown", chown_errno(err, u, g)))?;
                }
                rustix::fs::fchmod(&file, mode).map_err(|err| fs_err("chmod", errno(err)))?;
                let xattrs = m.xattrs.iter().filter(|_| self.opts.xattrs);
                for (k, v) in xattrs.filter(|(k, _)| !xattr::is_private(k)) {
                    let r = rustix::fs::fsetxattr(&file, k.as_slice(), v, XattrFlags::empty());
                    xattr_result(r, k, false).map_err(|err| fs_err("set xattr on", err))?;
                }
                if self.opts.times {
                    rustix::fs::futimens(&file, &times)
                        .map_err(|err| fs_err("set times of", errno(err)))?;
                }
                return Ok(());
            }
            tarfmt::TYPE_LINK => {
                if beneath && m.linkname.first() == Some(&b'/') {
                    return Err(Error::unsafe_entry(name, "hard link target: absolute path"));
                }
                let tcomps = clean(&m.linkname)
                    .map_err(|r| Error::unsafe_entry(name, format!("hard link target: {r}")))?;
                let Some((&tbase, tparent)) = tcomps.split_last() else {
                    return Err(Error::unsafe_entry(name, "hard link to the root"));
                };
                let tdir = self
                    .resolver
                    .dir(tparent, false)
                    .map_err(|err| {
                        let what = "a directory on the hard link's target path";
                        self.resolve_err(name, "resolve hard link target of", err, what)
                    })?
                    .ok_or_else(|| fs_err("resolve hard link target of", errno(Errno::NOENT)))?;
                // Flags 0: a symlink target is linked itself, never followed.
                rustix::fs::linkat(&tdir, tbase, pfd, base, AtFlags::empty())
                    .map_err(|err| fs_err("hard link", errno(err)))?;
                // Same inode: owner, mode and times are the target's.
                return Ok(());
            }
            tarfmt::TYPE_DIR => {
                if !merge {
                    rustix::fs::mkdirat(pfd, base, Mode::from_raw_mode(0o700))
                        .map_err(|err| fs_err("mkdir", errno(err)))?;
                }
                let mut full = fsat::join(parent);
                if !full.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(base);
                self.dirs.push((full, mode, time));
            }
            tarfmt::TYPE_SYMLINK => {
                if m.linkname.is_empty() {
                    return Err(Error::unsafe_entry(name, "symlink with an empty target"));
                }
                rustix::fs::symlinkat(m.linkname.as_slice(), pfd, base)
                    .map_err(|err| fs_err("symlink", errno(err)))?;
            }
            _ => {
                let ft = match m.typeflag {
                    tarfmt::TYPE_CHAR => FileType::CharacterDevice,
                    tarfmt::TYPE_BLOCK => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(m.devmajor, m.devminor);
                match rustix::fs::mknodat(pfd, base, ft, mode, dev) {
                    // Rootless: a user namespace may make FIFOs and whiteouts, never device
                    // nodes. An image's device node is left out of the unpacked copy (as
                    // rootless podman and BuildKit do); the layer itself keeps it.
                    Err(Errno::PERM)
                        if ft != FileType::Fifo && crate::opaque_xattr().starts_with("user.") =>
                    {
                        return Ok(());
                    }
                    r => r.map_err(|err| fs_err("mknod", errno(err)))?,
                }
            }
        }

        // Directories, symlinks, devices and FIFOs: by name beneath the parent we hold.
        let is_link = m.typeflag == tarfmt::TYPE_SYMLINK;
        if let Some((u, g)) = owner {
            rustix::fs::chownat(pfd, base, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|err| fs_err("chown", chown_errno(err, u, g)))?;
        }
        if !is_link && !is_dir_entry {
            // Not a symlink: we created it just above. A directory's mode comes at the end.
            rustix::fs::chmodat(pfd, base, mode, AtFlags::empty())
                .map_err(|err| fs_err("chmod", errno(err)))?;
        }
        let xattrs: Vec<_> = m
            .xattrs
            .iter()
            .filter(|(k, _)| self.opts.xattrs && !xattr::is_private(k))
            .collect();
        if !xattrs.is_empty() {
            let p = proc_path(pfd, base);
            for (k, v) in xattrs {
                let r = rustix::fs::lsetxattr(p.as_slice(), k.as_slice(), v, XattrFlags::empty());
                xattr_result(r, k, true).map_err(|err| fs_err("set xattr on", err))?;
            }
        }
        if !is_dir_entry && self.opts.times {
            rustix::fs::utimensat(pfd, base, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|err| fs_err("set times of", errno(err)))?;
        }
        Ok(())
    }

    fn whiteout(&mut self, name: &[u8], parent: &[&[u8]], wh: &[u8]) -> Result<()> {
        if wh == b".wh..opq" {
            return self.opaque(name, parent);
        }
        if wh.starts_with(b".wh.") {
            // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): ignored, as docker does.
            return Ok(());
        }
        if wh.is_empty() || wh == b"." || wh == b".." {
            return Err(Error::unsafe_entry(name, "invalid whiteout name"));
        }
        let fs_err = |op: &'static str, err: io::Error| Error::fs(op, path_of(name), err);
        let overlay = self.opts.whiteouts == Whiteouts::Overlay;
        let Some(pfd) = self
            .parent(parent, overlay)
            .map_err(|err| fs_err("resolve parent of", err))?
        else {
            // Nothing there to hide.
            return Ok(());
        };
        let pfd = pfd.as_fd();
        let key = Self::key(pfd, wh).map_err(|err| fs_err("stat parent of", err))?;
        if self.created.contains(&key) {
            // A whiteout only hides lower layers, never this layer's own entries.
            return Ok(());
        }
        match fsat::remove_all_at(pfd, wh) {
            Ok(()) => self.cache = None,
            Err(err) if err.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            Err(err) => return Err(fs_err("remove whited-out", err)),
        }
        if overlay {
            rustix::fs::mknodat(
                pfd,
                wh,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|err| fs_err("mknod whiteout", errno(err)))?;
            self.created.insert(key);
        }
        Ok(())
    }

    fn opaque(&mut self, name: &[u8], parent: &[&[u8]]) -> Result<()> {
        let fs_err = |op: &'static str, err: io::Error| Error::fs(op, path_of(name), err);
        match self.opts.whiteouts {
            Whiteouts::Remove => {
                let Some(dir) = self
                    .parent(parent, false)
                    .map_err(|err| fs_err("resolve directory of", err))?
                else {
                    return Ok(());
                };
                self.cache = None;
                self.prune(dir.as_fd())
                    .map_err(|err| fs_err("empty opaque directory of", err))
            }
            Whiteouts::Overlay => {
                let dir = self
                    .parent(parent, true)
                    .map_err(|err| fs_err("resolve directory of", err))?
                    .ok_or_else(|| fs_err("resolve directory of", errno(Errno::NOENT)))?;
                let p = format!("/proc/self/fd/{}", dir.as_raw_fd());
                rustix::fs::setxattr(p.as_str(), crate::opaque_xattr(), b"y", XattrFlags::empty())
                    .map_err(|err| fs_err("set opaque xattr on directory of", errno(err)))
            }
            Whiteouts::Keep => Ok(()), // not reached: `.wh.` names are kept as entries
        }
    }

    /// Removes every child of `dir` this layer did not create, recursively through the
    /// directories it did create.
    fn prune(&self, dir: BorrowedFd<'_>) -> io::Result<()> {
        let st = rustix::fs::fstat(dir).map_err(errno)?;
        for child in fsat::read_names(dir)? {
            let key = (st.st_dev, st.st_ino, child);
            if !self.created.contains(&key) {
                fsat::remove_all_at(dir, &key.2)?;
                continue;
            }
            let st = rustix::fs::statat(dir, key.2.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno)?;
            if is_dir(&st) {
                let sub = rustix::fs::openat(
                    dir,
                    key.2.as_slice(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno)?;
                self.prune(sub.as_fd())?;
            }
        }
        Ok(())
    }

    /// Directory modes and times, deepest first, so that a read-only directory does not
    /// stop the ones below it. A directory replaced later in the stream (by a file, or by
    /// a symlink on its path) is left alone.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        // Stable: among directories of one depth, the later entry's mode wins.
        dirs.sort_by_key(|(full, _, _)| std::cmp::Reverse(full.split(|&b| b == b'/').count()));
        for (full, mode, time) in &dirs {
            let comps: Vec<&[u8]> = full.split(|&b| b == b'/').collect();
            let Some((&base, parent)) = comps.split_last() else {
                continue;
            };
            let Ok(Some(pfd)) = self.resolver.dir(parent, false) else {
                continue;
            };
            match rustix::fs::statat(&pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if is_dir(&st) => {}
                _ => continue, // replaced or removed later in the layer
            }
            let fs_err = |op, err| Error::fs(op, path_of(full), errno(err));
            rustix::fs::chmodat(&pfd, base, *mode, AtFlags::empty())
                .map_err(|err| fs_err("chmod", err))?;
            if self.opts.times {
                let times = Timestamps {
                    last_access: *time,
                    last_modification: *time,
                };
                rustix::fs::utimensat(&pfd, base, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|err| fs_err("set times of", err))?;
            }
        }
        Ok(())
    }
}

/// Setting an xattr: unsupported filesystems and `user.*` on special files (which Linux
/// forbids) are skipped, as containerd does; everything else is an error.
fn xattr_result(r: rustix::io::Result<()>, name: &[u8], special: bool) -> io::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP) => Ok(()),
        Err(Errno::PERM) if special && name.starts_with(b"user.") => Ok(()),
        Err(e) => Err(io::Error::new(
            errno(e).kind(),
            format!("{}: {}", escape::bytes(name), errno(e)),
        )),
    }
}

/// Extracts the uncompressed layer `reader` into the existing directory `target`.
///
/// Every path is resolved beneath `target` as if it were `/` (see the crate docs); names
/// with `..`, hard links to the root or to missing targets, malformed or truncated
/// streams and oversized extended headers are errors. On error the target may hold part
/// of the layer. The whole input is read (and hashed) even past the end-of-archive
/// blocks.
pub fn apply<R: Read>(reader: R, target: &Path, opts: &ApplyOptions) -> Result<ApplyInfo> {
    let root = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::fs("open target", target, errno(e)))?;
    let mut ap = Applier {
        opts,
        resolver: Resolver::new(root, opts.resolve == Resolve::Beneath),
        cache: None,
        created: HashSet::new(),
        dirs: Vec::new(),
        buf: vec![0u8; 128 * 1024],
    };
    let mut rd = Reader::new(BufReader::with_capacity(
        128 * 1024,
        HashReader::new(reader),
    ));
    let mut entries = 0u64;
    while let Some(e) = rd.next_entry()? {
        entries += 1;
        ap.entry(&mut rd, &e)?;
    }
    ap.finish_dirs()?;
    let buffered = rd.finish()?;
    let hr = buffered.into_inner();
    let (diff_id, size) = hr.finish();
    Ok(ApplyInfo {
        diff_id,
        size,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn names() {
        assert_eq!(clean(b"/etc/x").unwrap(), vec![&b"etc"[..], b"x"]);
        assert_eq!(clean(b"./a//b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(clean(b"./").unwrap().is_empty());
        assert!(clean(b"a/../b").is_err());
        assert!(clean(b"").is_err());
        assert!(clean(b"a\0b").is_err());
    }
}
