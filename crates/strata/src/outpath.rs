//! Paths a user names for output (`--iidfile`, `save -o`, `build --output dest=`,
//! `--cache-to dest=`): strata never writes through a symlink it did not expect.
//!
//! A file output is written beside its path and renamed over it, so a symlink at the path is
//! replaced, not its target (the docker CLI removes an iidfile first and renames `save -o`'s
//! temp file over the path). The one exception keeps `-o /dev/null`, `-o /dev/stdout` and
//! FIFOs working: a character device or a FIFO named directly is written into, and so is one
//! reached through a symlink when it is a null device, a terminal or a pipe or socket — sinks
//! that `/dev/stdout`-style links lead to and that hold nothing to overwrite. A directory
//! output (`type=local`) must not be a symlink itself; inside it, layers are applied with
//! every path resolved beneath it (`layer::apply`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// How an output file is written.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    /// Into the existing device or pipe at the path.
    Through,
    /// Beside the path, then renamed over it (replacing a symlink, never its target).
    Replace,
}

/// Linux's device majors of the sinks a symlink may lead to: mem (null: minor 3), tty, the
/// console/ptmx major and the pty slaves.
fn safe_sink(m: &std::fs::Metadata) -> bool {
    let ft = m.file_type();
    if ft.is_fifo() || ft.is_socket() {
        return true;
    }
    if !ft.is_char_device() {
        return false;
    }
    let rdev = m.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    matches!((major, minor), (1, 3)) || matches!(major, 4 | 5 | 136..=143)
}

/// How `path` is to be written; a directory is an error.
pub fn mode(path: &Path) -> Result<Mode> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Mode::Replace),
        Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
    };
    let ft = link.file_type();
    if ft.is_dir() {
        bail!("{} is a directory", path.display());
    }
    if ft.is_char_device() || ft.is_fifo() || ft.is_block_device() || ft.is_socket() {
        return Ok(Mode::Through);
    }
    if ft.is_symlink() {
        if let Ok(target) = std::fs::metadata(path) {
            if safe_sink(&target) {
                return Ok(Mode::Through);
            }
        }
    }
    Ok(Mode::Replace)
}

/// Remove what a later [`write`] would replace (docker's build removes the iidfile before it
/// starts, so a failed build leaves none).
pub fn remove_stale(path: &Path) -> Result<()> {
    if mode(path)? == Mode::Replace {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {}", path.display()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The temporary file beside `path` that [`write`] renames over it:
/// `.NAME.strata-tmp.<pid>.<start>.<n>`, named after this process as `save -o`'s are, so
/// what a killed command left there is removed by the next write to the same path.
pub fn temp_beside(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let kind = format!(
        ".{}.strata-tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    );
    store::temp::sweep(dir, store::temp::SweepScope::Kind(&kind));
    dir.join(store::temp_name(&kind))
}

/// Create `tmp` afresh: an entry already there (a leftover of a dead process with our pid,
/// or a planted symlink) is removed, and the file is created with `O_EXCL`, which follows no
/// symlink.
pub fn create_temp(tmp: &Path) -> Result<File> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", tmp.display()))
        }
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(tmp)
        .with_context(|| format!("create {}", tmp.display()))
}

/// Write an output file at `path` with `fill` (see the module's rules).
pub fn write(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    match mode(path)? {
        Mode::Through => {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("open {}", path.display()))?;
            let mut out = BufWriter::with_capacity(1 << 20, f);
            fill(&mut out)?;
            out.flush()
                .with_context(|| format!("write {}", path.display()))?;
            Ok(())
        }
        Mode::Replace => {
            let tmp = temp_beside(path);
            let res = (|| -> Result<()> {
                let f = create_temp(&tmp)?;
                let mut out = BufWriter::with_capacity(1 << 20, f);
                fill(&mut out)?;
                let f = out.into_inner().map_err(|e| e.into_error())?;
                f.sync_all()
                    .with_context(|| format!("write {}", tmp.display()))?;
                std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
    }
}

/// A directory output (`--output type=local,dest=DIR`): refused when DIR is a symlink, so a
/// link planted at the path cannot send an image's files elsewhere.
pub fn check_dir(dir: &Path, what: &str) -> Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(dir).unwrap_or_default();
            bail!(
                "{what} {} is a symlink (to {}): name the directory itself",
                dir.display(),
                target.display()
            );
        }
        if !m.is_dir() {
            bail!("{what} {} is not a directory", dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = d.path().join("out");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert_eq!(mode(&link).unwrap(), Mode::Replace);
        write(&link, |w: &mut dyn Write| Ok(w.write_all(b"new")?)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        // A dangling link is replaced too, nothing is created at its target.
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &dangling).unwrap();
        write(&dangling, |w: &mut dyn Write| Ok(w.write_all(b"x")?)).unwrap();
        assert!(!d.path().join("nowhere").exists());
    }

    #[test]
    fn devices_and_pipes_are_written_into() {
        assert_eq!(mode(Path::new("/dev/null")).unwrap(), Mode::Through);
        let d = tempfile::tempdir().unwrap();
        let null_link = d.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &null_link).unwrap();
        assert_eq!(mode(&null_link).unwrap(), Mode::Through);
        // A link to another device (here /dev/zero, 1:5) is replaced, not written through.
        let zero_link = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero_link).unwrap();
        assert_eq!(mode(&zero_link).unwrap(), Mode::Replace);
        let err = mode(d.path()).unwrap_err().to_string();
        assert!(err.ends_with("is a directory"), "{err}");
    }

    #[test]
    fn a_planted_temp_link_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let tmp = temp_beside(&d.path().join("out"));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let mut f = create_temp(&tmp).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&tmp).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "new");
        // Temp names are this process's, and fresh each time.
        assert_ne!(temp_beside(&d.path().join("out")), tmp);
    }

    #[test]
    fn a_symlinked_directory_output_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("dest");
        std::os::unix::fs::symlink("/tmp", &link).unwrap();
        let err = check_dir(&link, "--output dest=").unwrap_err().to_string();
        assert!(err.contains("is a symlink (to /tmp)"), "{err}");
        check_dir(d.path(), "--output dest=").unwrap();
        check_dir(&d.path().join("new"), "--output dest=").unwrap();
    }
}
