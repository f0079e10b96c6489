//! The store's runtime directories (`containers/`, `volumes/`, `networks/`): each private
//! (0700, made on first use) and serialised by an exclusive flock on its `.lock` file.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An exclusive flock on a directory's `.lock`, released on drop.
pub struct Lock(#[allow(dead_code)] File);

/// `store_root/name`, made on first use (0700: logs, environments and volume data may hold
/// secrets).
pub(crate) fn private_dir(store_root: &Path, name: &str) -> Result<PathBuf> {
    let dir = store_root.join(name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// Take `dir/.lock` exclusively (waiting for it).
pub(crate) fn lock_dir(dir: &Path) -> Result<Lock> {
    let p = dir.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))?;
    flock(&f, libc::LOCK_EX).with_context(|| format!("lock {}", p.display()))?;
    Ok(Lock(f))
}

/// `flock(2)`, retried on EINTR.
pub(crate) fn flock(f: &File, op: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor the caller owns.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
