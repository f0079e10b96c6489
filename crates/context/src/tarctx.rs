//! A build context given as a tar stream (`strata build - < ctx.tar`), extracted into a
//! private directory by `layer::apply` in its build-context mode, so that nothing is
//! written outside it.

use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::Error;

/// Extracts a tar stream (uncompressed; decompress first) into `dest`, which must not
/// exist or be an empty directory; it is created with mode 0700.
///
/// This is [`layer::apply`] with [`layer::ApplyOptions::build_context`]: member names are
/// split on `/`; `.` and empty components are dropped; an absolute name or any `..`
/// component is refused ([`Error::UnsafeTarPath`]), in hard-link targets too. Every parent
/// directory must be a real directory inside `dest` (created 0755 when missing); a parent
/// that is a symlink — e.g. one the stream itself created — or a file is refused, so no
/// write ever goes through a symlink (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`).
/// An existing entry in the way is removed first (a directory met by a directory is kept);
/// files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`. Symlinks are created as they are
/// (their targets are not interpreted here; reading the context resolves them inside its
/// root). Hard links must point at an earlier non-directory member. `.wh.` names are
/// ordinary files (a context is not a layer). Devices, FIFOs and unknown member types are
/// skipped; owners, times and xattrs are not restored. Directories are created 0700 and
/// their modes applied at the end, deepest first. PAX and GNU long names are read; GNU
/// sparse members are refused (layer's strict reader).
pub fn extract_tar<R: Read>(reader: R, dest: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_dir() => {
            let mut it = fs::read_dir(dest).map_err(|e| Error::io(dest, e))?;
            if it.next().is_some() {
                return Err(Error::io(
                    dest,
                    io::Error::new(io::ErrorKind::AlreadyExists, "directory is not empty"),
                ));
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dest, e))?;
        }
        Ok(_) => {
            return Err(Error::io(
                dest,
                io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o700)
                .create(dest)
                .map_err(|e| Error::io(dest, e))?;
        }
        Err(e) => return Err(Error::io(dest, e)),
    }
    match layer::apply(reader, dest, &layer::ApplyOptions::build_context()) {
        Ok(_) => Ok(()),
        Err(layer::Error::Unsafe { name, reason }) => {
            Err(Error::UnsafeTarPath { path: name, reason })
        }
        Err(e) => Err(Error::io(dest, io::Error::other(e))),
    }
}
