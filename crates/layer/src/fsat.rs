//! Path resolution confined to a root directory, and removal that never follows symlinks.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::io;

/// Most symlinks followed while resolving one path (the kernel's limit).
const MAX_SYMLINKS: u32 = 40;
/// Most components (after symlink expansion) looked at while resolving one path.
const MAX_STEPS: u32 = 16 * 1024;

pub(crate) fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

pub(crate) fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

const DIR_PATH: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// A new `O_PATH` descriptor for the directory `fd` refers to.
pub(crate) fn dup_dir(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    rustix::fs::openat(fd, c".", DIR_PATH, Mode::empty()).map_err(errno)
}

/// How to resolve paths beneath the root.
pub(crate) struct Resolver {
    root: OwnedFd,
    /// `openat2` is tried first and dropped after an `ENOSYS`.
    openat2: bool,
    /// Refuse every symlink on the path (`ELOOP`) instead of following it in the root.
    no_symlinks: bool,
}

impl Resolver {
    pub(crate) fn new(root: OwnedFd, no_symlinks: bool) -> Self {
        Resolver {
            root,
            openat2: true,
            no_symlinks,
        }
    }

    /// A resolver that tries `openat2` (`fast`) or goes straight to the component walk.
    #[cfg(test)]
    pub(crate) fn for_test(root: OwnedFd, fast: bool, no_symlinks: bool) -> Self {
        Resolver {
            root,
            openat2: fast,
            no_symlinks,
        }
    }

    /// Resolves the directory `comps` (already free of `..` and empty components) as if
    /// the root were `/`: symlinks met on the way are followed, but an absolute target
    /// restarts at the root and `..` never climbs above it (RESOLVE_IN_ROOT semantics, the
    /// same as containerd's `fs.RootPath` and docker's chrooted untar). With `create`,
    /// missing directories are made with mode 0755; without, a missing component gives
    /// `Ok(None)`. With `no_symlinks`, a symlink anywhere on the path is an `ELOOP` error
    /// (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) and a non-directory an `ENOTDIR`.
    pub(crate) fn dir(&mut self, comps: &[&[u8]], create: bool) -> io::Result<Option<OwnedFd>> {
        if comps.is_empty() {
            return dup_dir(self.root.as_fd()).map(Some);
        }
        if self.openat2 {
            let path = join(comps);
            let how = if self.no_symlinks {
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS
            } else {
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
            };
            match rustix::fs::openat2(&self.root, path.as_slice(), DIR_PATH, Mode::empty(), how) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOENT) if !create => return Ok(None),
                // Missing directories to create, a concurrent rename (EAGAIN), or a
                // seccomp filter that does not know openat2: take the slow path.
                Err(Errno::NOENT) | Err(Errno::AGAIN) | Err(Errno::PERM) => {}
                Err(Errno::NOSYS) => self.openat2 = false,
                Err(e) => return Err(errno(e)),
            }
        }
        walk_in_root(self.root.as_fd(), comps, create, self.no_symlinks)
    }
}

/// The component-by-component walk behind [`Resolver::dir`]: every step is an `openat`
/// with `O_NOFOLLOW` from a descriptor we hold, symlinks are read and expanded by us, and
/// `..` pops our own stack of descriptors, so nothing on disk can move us above the root.
fn walk_in_root(
    root: BorrowedFd<'_>,
    comps: &[&[u8]],
    create: bool,
    no_symlinks: bool,
) -> io::Result<Option<OwnedFd>> {
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut queue: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
    let mut links = 0u32;
    let mut steps = 0u32;
    while let Some(c) = queue.pop_front() {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(errno(Errno::LOOP));
        }
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().map_or(root, |f| f.as_fd());
        match rustix::fs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink if no_symlinks => return Err(errno(Errno::LOOP)),
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(errno(Errno::LOOP));
                    }
                    let target = rustix::fs::readlinkat(cur, c.as_slice(), Vec::new())
                        .map_err(errno)?
                        .into_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    for t in target.split(|&b| b == b'/').rev() {
                        queue.push_front(t.to_vec());
                    }
                }
                FileType::Directory => {
                    let fd = rustix::fs::openat(
                        cur,
                        c.as_slice(),
                        DIR_PATH | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )
                    .map_err(errno)?;
                    stack.push(fd);
                }
                _ => return Err(errno(Errno::NOTDIR)),
            },
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(cur, c.as_slice(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno(e)),
                }
                queue.push_front(c);
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(errno(e)),
        }
    }
    match stack.pop() {
        Some(fd) => Ok(Some(fd)),
        None => dup_dir(root).map(Some),
    }
}

/// Names in the directory `dir` (any descriptor to it, `O_PATH` included), without `.`
/// and `..`.
pub(crate) fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd = rustix::fs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::new(fd).map_err(errno)? {
        let ent = ent.map_err(errno)?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// Removes `name` in `dir` and, if it is a directory, everything beneath it. Symlinks are
/// removed, never followed. A missing `name` is an `ENOENT` error.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(errno(e)),
    }
    let fd =
        rustix::fs::openat(dir, name, DIR_PATH | OFlags::NOFOLLOW, Mode::empty()).map_err(errno)?;
    for child in read_names(fd.as_fd())? {
        match remove_all_at(fd.as_fd(), &child) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn open_root(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(p, DIR_PATH, Mode::empty()).unwrap()
    }

    fn ino(fd: &OwnedFd) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    /// The slow path agrees with openat2 and stays inside the root.
    #[test]
    fn walk_resolves_in_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(outer.path().join("escape")).unwrap();
        symlink("/", root.join("abs")).unwrap();
        symlink("../../..", root.join("a/up")).unwrap();
        symlink("b/../up/a", root.join("a/chain")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let root_ino = std::fs::metadata(&root).unwrap();
        let a_ino = std::fs::metadata(root.join("a")).unwrap();
        use std::os::unix::fs::MetadataExt;
        for fast in [true, false] {
            let mut r = Resolver::for_test(open_root(&root), fast, false);
            let got = r.dir(&[b"abs"], false).unwrap().unwrap();
            assert_eq!(ino(&got), root_ino.ino());
            let got = r.dir(&[b"a", b"up", b"escape"], false).unwrap();
            assert!(
                got.is_none(),
                "../../../escape must not reach the outer dir"
            );
            let got = r.dir(&[b"a", b"chain"], false).unwrap().unwrap();
            assert_eq!(ino(&got), a_ino.ino());
            assert!(r.dir(&[b"loop1"], false).is_err());
            let made = r.dir(&[b"abs", b"x", b"y"], true).unwrap().unwrap();
            assert!(root.join("x/y").is_dir());
            assert_eq!(
                ino(&made),
                std::fs::metadata(root.join("x/y")).unwrap().ino()
            );
        }
        assert!(!std::path::Path::new("/x/y").exists());
    }

    /// Without symlinks, both paths refuse any symlink on the way and any file in it.
    #[test]
    fn no_symlinks_refuses_every_link() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("f"), "").unwrap();
        symlink("a", root.join("inside")).unwrap();
        symlink("/", root.join("abs")).unwrap();
        for fast in [true, false] {
            let mut r = Resolver::for_test(open_root(&root), fast, true);
            assert!(r.dir(&[b"a", b"b"], false).unwrap().is_some());
            for create in [false, true] {
                let err = r.dir(&[b"inside", b"b"], create).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(Errno::LOOP.raw_os_error()));
                let err = r.dir(&[b"abs", b"new"], create).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(Errno::LOOP.raw_os_error()));
                let err = r.dir(&[b"f", b"new"], create).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(Errno::NOTDIR.raw_os_error()));
            }
            assert!(r.dir(&[b"a", b"new"], false).unwrap().is_none());
        }
        assert!(!root.join("new").exists());
        assert!(!root.join("a/new").exists());
    }
}
