//! The container's own cgroups, visible inside it as docker shows them: when the container
//! has cgroups ([`ExecSpec::cgroups`](crate::ExecSpec)), the init (already in them) makes a
//! cgroup namespace, whose root is the container's cgroup, and mounts read-only on
//! `/sys/fs/cgroup`: the unified hierarchy (cgroup v2: `memory.max`, `cpu.max`, `pids.max`
//! at its top), or a tmpfs with one directory per v1 hierarchy the container has a cgroup
//! in (`memory/memory.limit_in_bytes`, `cpu/cpu.cfs_quota_us`, `pids/pids.max`).
//!
//! Best effort: a host where any of it fails runs the container without the view (the
//! limits hold either way).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::MountAttrFlags;

use crate::init::{attach, new_fs};
use crate::sys;

/// Make the cgroup namespace and mount the view on `<root>/sys/fs/cgroup` (sysfs is
/// mounted there already). `cgroups` are the host paths the init joined.
pub(crate) fn mount(root: &OwnedFd, cgroups: &[String]) {
    if cgroups.is_empty() {
        return;
    }
    // The host's layout, read before the namespace changes what /proc says.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
    // SAFETY: CLONE_NEWCGROUP changes only this single-threaded process's cgroup namespace.
    if unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }.is_err() {
        return;
    }
    let Ok(target) = rustix::fs::openat2(
        root,
        "sys/fs/cgroup",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return;
    };
    let ro = MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC
        | MountAttrFlags::MOUNT_ATTR_RDONLY;
    if unified {
        if let Ok(fs) = new_fs("cgroup2", &[], ro, "mount cgroup2") {
            let _ = attach(&fs, &target);
        }
        return;
    }
    let rw = ro.difference(MountAttrFlags::MOUNT_ATTR_RDONLY);
    let Ok(tmpfs) = new_fs(
        "tmpfs",
        &[("mode", Some("755"))],
        rw,
        "mount /sys/fs/cgroup",
    ) else {
        return;
    };
    for dir in cgroups {
        // `/sys/fs/cgroup/<hierarchy>/strata/<id>`: the hierarchy's mount and options.
        let Some(rest) = dir.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        let Some(name) = rest.split('/').next() else {
            continue;
        };
        let Some(options) = controllers(&mountinfo, &format!("/sys/fs/cgroup/{name}")) else {
            continue;
        };
        let opts: Vec<(&str, Option<&str>)> = options.iter().map(|o| (o.as_str(), None)).collect();
        let Ok(fs) = new_fs("cgroup", &opts, ro, "mount a cgroup hierarchy") else {
            continue;
        };
        if rustix::fs::mkdirat(&tmpfs, name, Mode::from_raw_mode(0o755)).is_err() {
            continue;
        }
        if let Ok(sub) = rustix::fs::openat(
            &tmpfs,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            let _ = attach(&fs, &sub);
        }
    }
    if sys::mount_setattr(tmpfs.as_fd(), libc::MOUNT_ATTR_RDONLY, false).is_ok() {
        let _ = attach(&tmpfs, &target);
    }
}

/// The controllers of the v1 cgroup mount at `path` (its super options less `rw`/`ro`).
fn controllers(mountinfo: &str, path: &str) -> Option<Vec<String>> {
    mountinfo.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        if f.get(4) != Some(&path) || f.get(sep + 1) != Some(&"cgroup") {
            return None;
        }
        let opts = f.get(sep + 3)?;
        Some(
            opts.split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_string)
                .collect(),
        )
    })
}
