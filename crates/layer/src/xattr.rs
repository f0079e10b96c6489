//! Extended attributes: reading them for commit, deciding which travel in a layer.

use rustix::io::Errno;
use std::io;
use std::path::Path;

/// Names never written to or applied from a layer, whatever the mode:
/// overlayfs' private state (`trusted.overlay.*`, and `user.overlay.*` used by
/// `userxattr` mounts: a layer that sets `overlay.redirect` or `overlay.metacopy` could
/// make a later overlay mount look into other layers) and SELinux labels, which belong to
/// the host that wrote the file (docker and containerd do not carry them either).
pub(crate) fn is_private(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"user.fuseoverlayfs.")
        || name == b"security.selinux"
}

fn to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// All extended attributes of `path` (not following a final symlink), sorted by name.
/// A filesystem without xattr support gives an empty list.
pub(crate) fn list(path: &Path) -> io::Result<crate::tarfmt::Pairs> {
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(0) => return Ok(Vec::new()),
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(to_io(e)),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            // The list grew between the two calls: ask again.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(to_io(e)),
        }
    };
    let mut out = Vec::new();
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        if let Some(value) = get(path, name)? {
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// One attribute's value; `None` if it does not exist.
pub(crate) fn get(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(n) => n,
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(to_io(e)),
        };
        let mut buf = vec![0u8; size];
        if size == 0 {
            return Ok(Some(buf));
        }
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// Remove one attribute (not following a final symlink); a missing one is no error.
pub(crate) fn remove(path: &Path, name: &[u8]) -> io::Result<()> {
    match rustix::fs::lremovexattr(path, name) {
        Ok(()) | Err(Errno::NODATA) => Ok(()),
        Err(e) => Err(to_io(e)),
    }
}

/// Set one attribute (not following a final symlink).
pub(crate) fn set(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).map_err(to_io)
}
