//! A build context given as a tar stream (`strata build - < ctx.tar`), extracted into a
//! private directory with our own checks, so that nothing is written outside it.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::Error;

fn unsafe_path(path: &[u8], reason: &'static str) -> Error {
    Error::UnsafeTarPath {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    }
}

/// Splits a member name into its components; refuses absolute names and `..`.
fn components(name: &[u8]) -> Result<Vec<&OsStr>, Error> {
    if name.first() == Some(&b'/') {
        return Err(unsafe_path(name, "absolute path"));
    }
    let comps = escape::clean::refusing_dotdot(name)
        .ok_or_else(|| unsafe_path(name, "path with \"..\""))?;
    Ok(comps.into_iter().map(OsStr::from_bytes).collect())
}

/// Makes sure every component of `comps` below `dest` is a real directory, creating
/// missing ones (0755). A symlink or a file in the way is refused: nothing is ever
/// written through a symlink.
fn ensure_dirs(dest: &Path, comps: &[&OsStr], name: &[u8]) -> Result<PathBuf, Error> {
    let mut p = dest.to_path_buf();
    for c in comps {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_path(name, "a parent directory is a symlink"))
            }
            Ok(_) => return Err(unsafe_path(name, "a parent directory is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o755)
                    .create(&p)
                    .map_err(|e| Error::io(&p, e))?;
            }
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(p)
}

/// Removes whatever is at `p` (never following a symlink); keeps a directory when
/// `keep_dir`. Returns whether a directory was kept.
fn clear(p: &Path, keep_dir: bool) -> Result<bool, Error> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        Ok(_) => fs::remove_file(p).map_err(|e| Error::io(p, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(p, e)),
    }
    Ok(false)
}

/// Extracts a tar stream (uncompressed; decompress first) into `dest`, which must not
/// exist or be an empty directory; it is created with mode 0700.
///
/// Member names are split on `/`; `.` and empty components are dropped; an absolute name
/// or any `..` component is refused ([`Error::UnsafeTarPath`]), in hard-link targets too.
/// Every parent directory must be a real directory inside `dest` (created 0755 when
/// missing); a parent that is a symlink — e.g. one the stream itself created — is
/// refused, so no write ever goes through a symlink. An existing entry in the way is
/// removed first (a directory met by a directory is kept); files are created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW`. Symlinks are created as they are (their targets are not
/// interpreted here; reading the context resolves them inside its root). Hard links must
/// point at an earlier non-directory member. Devices, FIFOs and unknown member types are
/// skipped; owners and times are not restored. Directory modes are applied at the end.
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
    let tar_err = |e: io::Error| Error::io(dest, e);
    let mut archive = tar::Archive::new(reader);
    let mut dir_modes: Vec<(Vec<std::ffi::OsString>, u32)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let name = entry.path_bytes().into_owned();
        let etype = entry.header().entry_type();
        if !matches!(
            etype,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Directory
                | EntryType::Symlink
                | EntryType::Link
        ) {
            continue;
        }
        let comps = components(&name)?;
        let Some((last, parents)) = comps.split_last() else {
            continue; // "./" itself
        };
        let parent = ensure_dirs(dest, parents, &name)?;
        let target = parent.join(last);
        let mode = entry.header().mode().map_err(tar_err)? & 0o7777;
        match etype {
            EntryType::Directory => {
                if !clear(&target, true)? {
                    DirBuilder::new()
                        .mode(0o700)
                        .create(&target)
                        .map_err(|e| Error::io(&target, e))?;
                }
                dir_modes.push((comps.iter().map(|c| c.to_os_string()).collect(), mode));
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                clear(&target, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target)
                    .map_err(|e| Error::io(&target, e))?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let lcomps = components(&link)?;
                let Some((llast, lparents)) = lcomps.split_last() else {
                    return Err(unsafe_path(&name, "hard link to the root"));
                };
                let lsrc = ensure_existing_dirs(dest, lparents, &name)?.join(llast);
                match fs::symlink_metadata(&lsrc) {
                    Ok(m) if !m.file_type().is_dir() => {}
                    Ok(_) => return Err(unsafe_path(&name, "hard link to a directory")),
                    Err(e) => return Err(Error::io(&lsrc, e)),
                }
                if lsrc != target {
                    clear(&target, false)?;
                    fs::hard_link(&lsrc, &target).map_err(|e| Error::io(&target, e))?;
                }
            }
            _ => {
                clear(&target, false)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(|e| Error::io(&target, e))?;
                io::copy(&mut entry, &mut f).map_err(|e| Error::io(&target, e))?;
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io(&target, e))?;
            }
        }
    }
    // Deepest first, so a read-only directory does not stop the ones below it. A
    // directory replaced later in the stream (by a file, or a symlink on its path) is
    // left alone: chmod follows symlinks, so every component is checked again.
    dir_modes.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
    'dirs: for (comps, mode) in dir_modes {
        let mut p = dest.to_path_buf();
        for c in &comps {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_dir() => {}
                _ => continue 'dirs,
            }
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Like [`ensure_dirs`] but creates nothing: the directories must exist.
fn ensure_existing_dirs(dest: &Path, comps: &[&OsStr], name: &[u8]) -> Result<PathBuf, Error> {
    let mut p = dest.to_path_buf();
    for c in comps {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(unsafe_path(name, "hard link through a symlink or file")),
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(p)
}
