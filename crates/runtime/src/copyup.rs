//! Copy-up: a new (empty) volume mounted over a directory the image has starts with that
//! directory's content, owners, modes and times, as docker's `copyExistingContents`.
//!
//! The image is read from its layer snapshots (overlay format, top first) without mounting
//! them: whiteouts (0:0 character devices) hide what is below, an opaque directory
//! (`trusted.overlay.opaque=y`) hides the lower layers' entries. Every path is looked at with
//! `lstat` component by component: a symlink on the way to the destination means no copy
//! (docker would follow it inside the rootfs; strata does not follow links to find the
//! source), so nothing outside the snapshots is ever read. Not kept: extended attributes
//! (file capabilities among them) and hard links (each name gets its own copy).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        // SAFETY: valid NUL-terminated strings and a buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n == 1 && buf[0] == b'y' {
            return true;
        }
    }
    false
}

/// The layers' directories that make up the merged directory `stack/name`, top first;
/// `None` when the merged entry is missing or not a directory.
fn descend(stack: &[PathBuf], name: &std::ffi::OsStr) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in stack {
        let p = d.join(name);
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
        if is_whiteout(&m) || !m.is_dir() {
            break;
        }
        let opaque = is_opaque(&p);
        out.push(p);
        if opaque {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The merged directory at `dest` (absolute, cleaned) of the image whose snapshots are
/// `lowers` (top first): its layers' directories, or `None`.
fn merged_dir(lowers: &[PathBuf], dest: &str) -> Option<Vec<PathBuf>> {
    let mut stack = lowers.to_vec();
    for c in dest.split('/').filter(|c| !c.is_empty()) {
        stack = descend(&stack, std::ffi::OsStr::new(c))?;
    }
    Some(stack)
}

/// Copy the image's directory `dest` into the empty directory `volume` (the volume's root
/// takes the directory's owner and mode). Nothing happens when the image has no directory
/// there or the volume is not empty.
pub fn copy_up(lowers: &[PathBuf], dest: &str, volume: &Path) -> Result<()> {
    let Some(stack) = merged_dir(lowers, dest) else {
        return Ok(());
    };
    let empty = fs::read_dir(volume)
        .with_context(|| format!("read {}", volume.display()))?
        .next()
        .is_none();
    if !empty {
        return Ok(());
    }
    copy_dir(&stack, volume).with_context(|| format!("copy the image's {dest} into the volume"))?;
    copy_attrs(&stack[0], volume)
}

fn copy_dir(stack: &[PathBuf], to: &Path) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for d in stack {
        for e in fs::read_dir(d).with_context(|| format!("read {}", d.display()))? {
            names.insert(e?.file_name());
        }
    }
    for name in names {
        // The topmost layer that has the name decides what it is.
        let Some((i, m)) = stack
            .iter()
            .enumerate()
            .find_map(|(i, d)| d.join(&name).symlink_metadata().ok().map(|m| (i, m)))
        else {
            continue;
        };
        if is_whiteout(&m) {
            continue;
        }
        let from = stack[i].join(&name);
        let dst = to.join(&name);
        let ft = m.file_type();
        if ft.is_dir() {
            let sub = descend(&stack[i..], &name).unwrap_or_else(|| vec![from.clone()]);
            fs::create_dir(&dst).with_context(|| format!("create {}", dst.display()))?;
            copy_dir(&sub, &dst)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from)?;
            std::os::unix::fs::symlink(&target, &dst)
                .with_context(|| format!("create {}", dst.display()))?;
        } else if ft.is_file() {
            let mut src =
                fs::File::open(&from).with_context(|| format!("open {}", from.display()))?;
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dst)
                .with_context(|| format!("create {}", dst.display()))?;
            std::io::copy(&mut src, &mut out)
                .with_context(|| format!("copy {}", from.display()))?;
        } else {
            // Devices, FIFOs and sockets: made as they are.
            let c = CString::new(dst.as_os_str().as_bytes())?;
            // SAFETY: a valid path; mode and device number from the source's lstat.
            if unsafe { libc::mknod(c.as_ptr(), m.mode(), m.rdev()) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("create {}", dst.display()));
            }
        }
        copy_attrs(&from, &dst)?;
    }
    Ok(())
}

/// Owner, mode and times of `from` onto `to` (not following a symlink).
fn copy_attrs(from: &Path, to: &Path) -> Result<()> {
    let m = from.symlink_metadata()?;
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))
        .with_context(|| format!("chown {}", to.display()))?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))
            .with_context(|| format!("chmod {}", to.display()))?;
    }
    let c = CString::new(to.as_os_str().as_bytes())?;
    let times = [
        libc::timespec {
            tv_sec: m.atime() as libc::time_t,
            tv_nsec: m.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: m.mtime() as libc::time_t,
            tv_nsec: m.mtime_nsec() as _,
        },
    ];
    // SAFETY: a valid path and two timespecs, not following a final symlink.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_layers_with_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let (top, bottom, vol) = (
            t.path().join("top"),
            t.path().join("bottom"),
            t.path().join("v"),
        );
        fs::create_dir_all(bottom.join("app/m/a")).unwrap();
        fs::write(bottom.join("app/m/a/f"), "a").unwrap();
        fs::write(bottom.join("app/m/gone"), "x").unwrap();
        fs::create_dir_all(top.join("app/m")).unwrap();
        fs::write(top.join("app/m/b"), "b").unwrap();
        let c = CString::new(top.join("app/m/gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; a 0:0 character device is overlay's whiteout.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
        std::os::unix::fs::symlink("/etc/passwd", top.join("app/link")).unwrap();
        fs::create_dir(&vol).unwrap();
        copy_up(&[top.clone(), bottom.clone()], "/app/m", &vol).unwrap();
        assert_eq!(fs::read_to_string(vol.join("a/f")).unwrap(), "a");
        assert_eq!(fs::read_to_string(vol.join("b")).unwrap(), "b");
        assert!(!vol.join("gone").exists());
        // A symlink on the way: nothing is copied (never followed out of the layers).
        let v2 = t.path().join("v2");
        fs::create_dir(&v2).unwrap();
        copy_up(&[top, bottom], "/app/link", &v2).unwrap();
        assert!(fs::read_dir(&v2).unwrap().next().is_none());
    }
}
