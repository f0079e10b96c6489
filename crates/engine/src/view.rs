//! Read-only merged views of a layer chain for WORKDIR and COPY: an overlay made with the
//! new mount API and attached only inside a private mount namespace that one thread of
//! strata enters for the step ([`in_private_mount_ns`]). No other thread and no other
//! process sees it; when the thread ends (or strata dies) the namespace and its mounts are
//! gone, so nothing can leak onto the host's mount table.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountPropagationFlags, MoveMountFlags,
};

thread_local! {
    static PRIVATE_NS: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` on a thread of its own that has left the process's mount namespace (and shares
/// no root or cwd with the rest of the process). Views made inside are attached there.
pub fn in_private_mount_ns<R: Send>(
    f: impl FnOnce() -> Result<R, BuildError> + Send,
) -> Result<R, BuildError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unsharing the mount namespace and fs attributes (root, cwd, umask)
            // affects only this thread, which was created for this purpose; it touches no
            // memory or state other Rust code relies on.
            unsafe {
                rustix::thread::unshare_unsafe(
                    rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::FS,
                )
            }
            .map_err(|e| BuildError::io("create a private mount namespace", e.into()))?;
            rustix::mount::mount_change(
                "/",
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
            )
            .map_err(|e| BuildError::io("make mounts private", e.into()))?;
            PRIVATE_NS.with(|p| p.set(true));
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(BuildError::Internal("a build thread panicked".into())))
    })
}

use crate::error::BuildError;

/// A merged, read-only view of some layer snapshots (or of a plain directory).
pub struct View {
    _fd: Option<OwnedFd>,
    path: PathBuf,
}

impl View {
    /// An overlay of `lowers` (top first), attached at `mountpoint` (an empty directory);
    /// only inside [`in_private_mount_ns`]. `empty` is an empty directory used to pad the
    /// chain to the two lowerdirs overlayfs needs without an upperdir.
    pub fn overlay(
        lowers: &[PathBuf],
        empty: &Path,
        mountpoint: &Path,
    ) -> Result<View, BuildError> {
        if !PRIVATE_NS.with(|p| p.get()) {
            return Err(BuildError::Internal(
                "a view may only be mounted in a private mount namespace".into(),
            ));
        }
        let fail = |op: &str, e: rustix::io::Errno| {
            BuildError::io(
                format!("mount a read-only view of {} layers: {op}", lowers.len()),
                e.into(),
            )
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("fsopen", e))?;
        let mut n = 0;
        for l in lowers
            .iter()
            .map(PathBuf::as_path)
            .chain(std::iter::once(empty))
        {
            let s = l.to_str().ok_or_else(|| {
                BuildError::io(
                    format!("mount a view of {}", l.display()),
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a UTF-8 path"),
                )
            })?;
            fsconfig_set_string(&fs, "lowerdir+", s).map_err(|e| fail("lowerdir+", e))?;
            n += 1;
        }
        if n < 2 {
            // overlayfs refuses the same directory twice: pad with a second empty one.
            let empty2 = empty.with_extension("2");
            std::fs::create_dir_all(&empty2)
                .map_err(|e| BuildError::io("create an empty dir", e))?;
            fsconfig_set_string(&fs, "lowerdir+", empty2.to_str().unwrap_or("/"))
                .map_err(|e| fail("lowerdir+", e))?;
        }
        for (k, v) in exec::overlay_options() {
            let _ = match v {
                Some(v) => fsconfig_set_string(&fs, *k, *v),
                None => rustix::mount::fsconfig_set_flag(&fs, *k),
            };
        }
        fsconfig_create(&fs).map_err(|e| fail("create", e))?;
        let mnt = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY,
        )
        .map_err(|e| fail("fsmount", e))?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            mountpoint,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| fail("move_mount", e))?;
        Ok(View {
            _fd: Some(mnt),
            path: mountpoint.to_path_buf(),
        })
    }

    /// Where the view's root is reachable.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // Detach it now, so its mount point can be removed (the namespace would drop it
        // with the thread anyway).
        if self._fd.is_some() {
            let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
