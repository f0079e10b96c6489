//! The container's pid 1 before it becomes the command: mounts, pivot_root, masks, identity,
//! capabilities, exec. Runs in the child the helper forks, which is pid 1 of the new pid
//! namespace and single-threaded. Every failure becomes a [`SetupError`] sent to the helper.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::{ErrorKind, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use rustix::thread::CapabilitySet;

use crate::error::{errno_text, step, ExecFailure, SetupError};
use crate::proto::{self, FromInit, InitMount, InitRootfs, InitSpec, Stub};
use crate::{seccomp, sys, user, DEFAULT_PATH};

/// Docker's default capability set (`0x00000000a80425fb`).
pub(crate) const DEFAULT_CAPS: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::AUDIT_WRITE);

/// containerd's (BuildKit's) default masked paths: directories get a read-only tmpfs, files
/// a bind of `/dev/null`.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths re-bound read-only.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `nosuid,nodev` for `mount_setattr`.
const NOSUID_NODEV: u64 = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;

/// Host device nodes bind-mounted into the container's `/dev`: the only device nodes a
/// container can open. Every other mount of the container (the rootfs, `/dev` itself, binds,
/// overlays, tmpfs, cache mounts) is `nodev`, so a node that an image holds or `mknod`
/// creates cannot be opened (EACCES), whatever its numbers; the devpts instance only holds
/// ptys. This is runc's default device rule set (null, zero, full, random, urandom, tty,
/// ptmx/pts) enforced by mount flags instead of a device cgroup, so it holds the same way
/// on cgroup v1, hybrid and v2-only hosts.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Exit code of the init when setup failed (docker's "container failed to start").
pub(crate) const EXIT_SETUP: i32 = 125;
/// Exit code of the init when `execve` failed.
pub(crate) const EXIT_EXEC: i32 = 127;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

struct Init<'a> {
    spec: &'a InitSpec,
    private: &'a Path,
    sync: &'a UnixStream,
    stubs: Vec<Stub>,
    stubs_sent: bool,
    root_mnt_id: u64,
    root_prefix: String,
}

/// Set up the container and exec the command; never returns.
pub(crate) fn container_main(spec: &InitSpec, private: &Path, sync: UnixStream) -> ! {
    let mut init = Init {
        spec,
        private,
        sync: &sync,
        stubs: Vec::new(),
        stubs_sent: false,
        root_mnt_id: 0,
        root_prefix: String::new(),
    };
    let err = match init.run() {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if !init.stubs_sent {
        let _ = proto::send(&sync, &FromInit::Stubs(std::mem::take(&mut init.stubs)));
    }
    let code = match err {
        SetupError::Exec { .. } => EXIT_EXEC,
        _ => EXIT_SETUP,
    };
    let _ = proto::send(&sync, &FromInit::Failed(err));
    sys::exit_now(code)
}

/// Mount the overlay rootfs on `target` with fuse-overlayfs (rootless only: the daemon runs
/// as root of the user namespace, in the container's pid namespace, and ends with it). It
/// works on its layers through descriptors opened before `pivot_root`. `kernel` is the
/// kernel overlay's refusal that led here, if any, kept for the error.
fn fuse_overlay(
    lower: &[String],
    upper: &str,
    work: &str,
    target: &str,
    kernel: Option<SetupError>,
) -> Result<(), SetupError> {
    let what = "mount the overlay rootfs with fuse-overlayfs";
    let fail = |msg: String| match &kernel {
        Some(SetupError::Setup { context, message }) => SetupError::setup(
            what,
            format!("{msg} (after the kernel's refusal: {context}: {message})"),
        ),
        _ => SetupError::setup(what, msg),
    };
    let Some(program) = [
        "/usr/bin/fuse-overlayfs",
        "/usr/local/bin/fuse-overlayfs",
        "/bin/fuse-overlayfs",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file()) else {
        return Err(fail(
            "fuse-overlayfs is not installed (Debian: fuse-overlayfs)".into(),
        ));
    };
    if rustix::fs::access(
        "/dev/fuse",
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
    )
    .is_err()
    {
        return Err(fail(
            "/dev/fuse is not readable and writable by this user (it is mode 0666 on most \
             systems; in a container, pass the device)"
                .into(),
        ));
    }
    let opts = format!(
        "lowerdir={},upperdir={upper},workdir={work},allow_other",
        lower.join(":")
    );
    // The daemon keeps its stderr; a file, so nothing waits for it to close.
    let log = std::env::temp_dir().join(format!("strata-fuse-{}.log", std::process::id()));
    let err_file =
        std::fs::File::create(&log).map_err(|e| fail(format!("create {}: {e}", log.display())))?;
    let status = std::process::Command::new(program)
        .args(["-o", &opts, target])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err_file)
        .status()
        .map_err(|e| fail(format!("run {program}: {e}")))?;
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if !status.success() {
        return Err(fail(format!(
            "{program} failed ({status}): {}",
            said.trim()
        )));
    }
    Ok(())
}

/// Move this process into each cgroup directory (`0` written to its `cgroup.procs` means
/// the writer): its children are born there.
pub(crate) fn join_cgroups(dirs: &[String]) -> Result<(), SetupError> {
    for d in dirs {
        let procs = Path::new(d).join("cgroup.procs");
        std::fs::write(&procs, b"0").map_err(|e| {
            SetupError::setup(
                format!("join the cgroup {d}"),
                crate::error::errno_text(&e.to_string()),
            )
        })?;
    }
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Read the kernel's messages about a failed `fsconfig`/`fsmount` from the context fd.
fn fs_log(fs: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        let msg = String::from_utf8_lossy(&buf[..n]);
        // "e overlayfs: failed to ..." -> "overlayfs: failed to ..."
        out.push(msg.get(2..).unwrap_or(&msg).trim().to_string());
    }
    out.join("; ")
}

/// A new filesystem instance as a detached mount (fsopen / fsconfig / fsmount).
pub(crate) fn new_fs(
    fstype: &str,
    options: &[(&str, Option<&str>)],
    attrs: MountAttrFlags,
    what: &str,
) -> Result<OwnedFd, SetupError> {
    let fs =
        fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(step(format!("{what}: fsopen")))?;
    // The "device" column of /proc/mounts, as mount(8) would show it.
    let _ = fsconfig_set_string(&fs, "source", fstype);
    let fail = |e: Errno, op: String| {
        let log = fs_log(&fs);
        let msg = errno_text(&e.to_string());
        SetupError::setup(
            format!("{what}: {op}"),
            if log.is_empty() {
                msg
            } else {
                format!("{msg} ({log})")
            },
        )
    };
    for (key, value) in options {
        let r = match value {
            Some(v) => fsconfig_set_string(&fs, *key, *v),
            None => fsconfig_set_flag(&fs, *key),
        };
        r.map_err(|e| match value {
            Some(v) => fail(e, format!("option {key}={v}")),
            None => fail(e, format!("option {key}")),
        })?;
    }
    fsconfig_create(&fs).map_err(|e| fail(e, "create".into()))?;
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| fail(e, "fsmount".into()))
}

/// Attach the detached mount `mnt` on the object `target` refers to.
pub(crate) fn attach(mnt: &OwnedFd, target: &OwnedFd) -> rustix::io::Result<()> {
    move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// Attach the detached mount `mnt` on `path` (after pivot_root: an absolute path).
fn attach_path(mnt: &OwnedFd, path: &str) -> rustix::io::Result<()> {
    move_mount(mnt, "", CWD, path, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

/// A detached copy of the mount tree at `path` (a bind mount not yet attached anywhere).
fn clone_tree(path: &str, recursive: bool) -> rustix::io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(CWD, path, flags)
}

/// Lexical components of a path inside the container, `..` clamped at the root.
fn components(base: &[String], path: &str) -> Vec<String> {
    if path.starts_with('/') || base.is_empty() {
        escape::clean::clamped(path)
    } else {
        escape::clean::clamped(&format!("{}/{path}", base.join("/")))
    }
}

fn times_of(fd: &OwnedFd) -> Option<[(i64, i64); 2]> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some([
        (st.st_atime, st.st_atime_nsec as i64),
        (st.st_mtime, st.st_mtime_nsec as i64),
    ])
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Init<'_> {
    fn run(&mut self) -> Result<Infallible, SetupError> {
        let spec = self.spec;
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
            .map_err(step("set the parent-death signal"))?;
        // Into the container's cgroups before anything of the container runs.
        join_cgroups(&spec.cgroups)?;
        sys::unshare_mount_namespace().map_err(step("create the mount namespace"))?;
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(step("make all mounts private"))?;

        // The root filesystem, attached on <private>/root.
        let root_path = path_str(&self.private.join("root"));
        let rootfs = match &spec.rootfs {
            InitRootfs::Overlay { lower, upper, work } if spec.fuse_overlay => {
                fuse_overlay(lower, upper, work, &root_path, None)?;
                None
            }
            InitRootfs::Overlay { lower, upper, work } => {
                let mut opts: Vec<(&str, Option<&str>)> = lower
                    .iter()
                    .map(|l| ("lowerdir+", Some(l.as_str())))
                    .collect();
                opts.push(("upperdir", Some(upper)));
                opts.push(("workdir", Some(work)));
                // As containerd: lowerdirs are shared by concurrent mounts, and the upperdir
                // must stay a plain diff (no redirect or metacopy xattrs).
                opts.push(("index", Some("off")));
                opts.extend(crate::overlay_options().iter().copied());
                match new_fs(
                    "overlay",
                    &opts,
                    MountAttrFlags::MOUNT_ATTR_NODEV,
                    "mount the overlay rootfs",
                ) {
                    Ok(fs) => Some(fs),
                    // Rootless, where the kernel refuses (an upperdir on an overlay, as a
                    // store on a container's own root): fuse-overlayfs, if there is one.
                    Err(e) if crate::userns::active() => {
                        fuse_overlay(lower, upper, work, &root_path, Some(e))?;
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            InitRootfs::Dir(dir) => {
                let what = format!("bind the rootfs {dir}");
                let tree = clone_tree(dir, true).map_err(step(&what))?;
                sys::mount_setattr(tree.as_fd(), libc::MOUNT_ATTR_NODEV, true)
                    .map_err(step(format!("{what}: make it nodev")))?;
                Some(tree)
            }
        };
        if let Some(rootfs) = rootfs {
            move_mount(
                &rootfs,
                "",
                CWD,
                &root_path,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(step(format!("attach the rootfs on {root_path}")))?;
        }
        let root = rustix::fs::open(
            &root_path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(step("open the rootfs"))?;
        self.root_mnt_id = rustix::fs::statx(&root, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map_err(step("statx the rootfs"))?
            .stx_mnt_id;
        self.root_prefix = root_path.clone();

        self.mount_standard(&root)?;
        for m in &spec.mounts {
            self.mount_extra(&root, m)?;
        }
        let pty = if spec.tty {
            Some(self.open_pty(&root)?)
        } else {
            None
        };

        rustix::process::chdir(root_path.as_str()).map_err(step("chdir to the rootfs"))?;
        // pivot_root(".", ".") stacks the old root under the new one; detach it.
        match rustix::process::pivot_root(".", ".") {
            Ok(()) => rustix::mount::unmount(".", UnmountFlags::DETACH)
                .map_err(step("detach the old root"))?,
            // Isolation chroot, in a container whose profile refuses pivot_root (Docker's
            // default seccomp): the rootfs is moved over `/` and chrooted into (runc's
            // no-pivot), so `..` from it leads back into it; the host's tree stays mounted
            // beneath, which pivot_root would have detached.
            Err(Errno::PERM) if spec.bind_proc => {
                rustix::mount::mount_move(".", "/").map_err(step("move the rootfs over /"))?;
                rustix::process::chroot(".").map_err(step("chroot"))?;
            }
            Err(e) => return Err(step("pivot_root")(e)),
        }
        rustix::process::chdir("/").map_err(step("chdir to /"))?;
        drop(root);

        mask_paths()?;
        match rustix::system::sethostname(spec.hostname.as_bytes()) {
            // Rootless in a container whose seccomp profile refuses sethostname to anyone
            // without CAP_SYS_ADMIN in the initial namespace (podman's default): the UTS
            // namespace is still private, with the container's name.
            Err(Errno::PERM) if crate::userns::active() || spec.bind_proc => {}
            r => r.map_err(step(format!("set the hostname {:?}", spec.hostname)))?,
        }
        if spec.new_net {
            sys::loopback_up().map_err(step("bring up lo"))?;
        }

        let id = identity(spec.user.as_deref())?;
        mkdir_all_owned(&spec.cwd, id.uid, id.gid)?;
        rustix::process::chdir(spec.cwd.as_str())
            .map_err(step(format!("chdir to the working directory {}", spec.cwd)))?;
        if spec.readonly_rootfs {
            let fd = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(step("open /"))?;
            sys::mount_setattr(fd.as_fd(), libc::MOUNT_ATTR_RDONLY, false)
                .map_err(step("make the rootfs read-only"))?;
        }
        let program = lookup(&spec.args[0], &spec.env)?;
        // `--ulimit`s while the init may still raise a hard limit (CAP_SYS_RESOURCE).
        for l in &spec.rlimits {
            set_rlimit(l)?;
        }
        let confined = Confined {
            args: &spec.args,
            env: &spec.env,
            seccomp: &spec.seccomp,
            no_new_privs: spec.no_new_privs,
        };
        // `--init`: pid 1 stays behind as a tiny init, the command is its child.
        if spec.init {
            crate::tini::fork_command(self.sync, &spec.seccomp)?;
        }
        // Last word before exec: the mount points to remove after the run.
        exec_confined(&confined, &id, &program, pty, || {
            self.stubs_sent = true;
            proto::send(self.sync, &FromInit::Stubs(std::mem::take(&mut self.stubs))).is_ok()
        })
    }

    /// /proc, /dev (tmpfs with device binds, pts, shm, mqueue), /sys, /etc/hosts,
    /// /etc/resolv.conf and /etc/hostname.
    fn mount_standard(&mut self, root: &OwnedFd) -> Result<(), SetupError> {
        let nosuid_nodev_noexec = MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        let proc_fs = if self.spec.bind_proc {
            let what = "bind the caller's /proc (isolation chroot)";
            let tree = clone_tree("/proc", true).map_err(step(what))?;
            sys::mount_setattr(
                tree.as_fd(),
                libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
                true,
            )
            .map_err(step(what))?;
            tree
        } else {
            new_fs("proc", &[], nosuid_nodev_noexec, "mount proc on /proc").map_err(|e| {
                if crate::userns::active() {
                    e.hint(
                        "in a container whose /proc is masked, the kernel refuses a new proc \
                         to a user namespace: unmask it (podman --security-opt unmask=ALL, \
                         docker --security-opt systempaths=unconfined, Kubernetes \
                         procMount: Unmasked), or build with --isolation chroot",
                    )
                } else {
                    e
                }
            })?
        };
        let target = self.ensure(root, "/proc", Kind::Dir)?;
        attach(&proc_fs, &target).map_err(step("mount proc on /proc"))?;

        let dev_fs = new_fs(
            "tmpfs",
            &[("mode", Some("755")), ("size", Some("65536k"))],
            // nodev: a node created in /dev (mknod) cannot be opened; the allowed devices
            // are bind mounts of the host's nodes, mounts of their own.
            nosuid_nodev_noexec,
            "mount tmpfs on /dev",
        )?;
        let target = self.ensure(root, "/dev", Kind::Dir)?;
        attach(&dev_fs, &target).map_err(step("mount tmpfs on /dev"))?;
        let dev = rustix::fs::openat2(
            root,
            "dev",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
        .map_err(step("open /dev"))?;
        for name in DEVICES {
            let host = format!("/dev/{name}");
            let src = match clone_tree(&host, false) {
                Ok(fd) => fd,
                // A host without this node (e.g. no /dev/tty): the container has none either.
                Err(Errno::NOENT) | Err(Errno::NXIO) => continue,
                Err(e) => return Err(step(format!("bind {host}"))(e)),
            };
            drop(
                rustix::fs::openat(
                    &dev,
                    *name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                )
                .map_err(step(format!("create /dev/{name}")))?,
            );
            let target =
                rustix::fs::openat(&dev, *name, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                    .map_err(step(format!("open /dev/{name}")))?;
            attach(&src, &target).map_err(step(format!("bind {host} on /dev/{name}")))?;
        }
        for (dir, mode) in [("pts", 0o755), ("shm", 0o1777), ("mqueue", 0o755)] {
            rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(mode))
                .map_err(step(format!("create /dev/{dir}")))?;
        }
        for (link, to) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            rustix::fs::symlinkat(to, &dev, link).map_err(step(format!("create /dev/{link}")))?;
        }
        let sub = |name: &str| {
            rustix::fs::openat(
                &dev,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(step(format!("open /dev/{name}")))
        };
        let mut pts_opts = vec![
            ("newinstance", None),
            ("ptmxmode", Some("0666")),
            ("mode", Some("0620")),
            ("gid", Some("5")),
        ];
        if crate::userns::mapped_ids().1 <= 5 {
            // Rootless with a single id: there is no group `tty` (5) to give terminals to.
            pts_opts.pop();
        }
        let pts = new_fs(
            "devpts",
            &pts_opts,
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
            "mount devpts on /dev/pts",
        )?;
        attach(&pts, &sub("pts")?).map_err(step("mount devpts on /dev/pts"))?;
        // docker's default 64 MiB, or `--shm-size`.
        let shm_size = format!("{}k", self.spec.shm_size.unwrap_or(64 << 20).div_ceil(1024));
        let shm = new_fs(
            "tmpfs",
            &[("mode", Some("1777")), ("size", Some(shm_size.as_str()))],
            nosuid_nodev_noexec,
            "mount tmpfs on /dev/shm",
        )?;
        attach(&shm, &sub("shm")?).map_err(step("mount tmpfs on /dev/shm"))?;
        let mqueue = new_fs(
            "mqueue",
            &[],
            nosuid_nodev_noexec,
            "mount mqueue on /dev/mqueue",
        )?;
        attach(&mqueue, &sub("mqueue")?).map_err(step("mount mqueue on /dev/mqueue"))?;

        let sysfs = match new_fs(
            "sysfs",
            &[],
            nosuid_nodev_noexec | MountAttrFlags::MOUNT_ATTR_RDONLY,
            "mount sysfs on /sys",
        ) {
            Ok(fs) => fs,
            // A new sysfs needs a network namespace of the user namespace's own; rootless
            // with the host's network there is none: the host's /sys, bound read-only (as
            // rootless podman and runc do).
            Err(_) if crate::userns::active() => {
                let what = "bind /sys (rootless, host network)";
                let tree = clone_tree("/sys", true).map_err(step(what))?;
                sys::mount_setattr(
                    tree.as_fd(),
                    libc::MOUNT_ATTR_RDONLY
                        | libc::MOUNT_ATTR_NOSUID
                        | libc::MOUNT_ATTR_NODEV
                        | libc::MOUNT_ATTR_NOEXEC,
                    true,
                )
                .map_err(step(what))?;
                tree
            }
            Err(e) => return Err(e),
        };
        let target = self.ensure(root, "/sys", Kind::Dir)?;
        attach(&sysfs, &target).map_err(step("mount sysfs on /sys"))?;
        crate::cgroupfs::mount(root, &self.spec.cgroups);

        for (file, always) in [("hosts", true), ("resolv.conf", true), ("hostname", false)] {
            let inside = format!("/etc/{file}");
            if !always
                && rustix::fs::openat2(
                    root,
                    &inside[1..],
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    IN_ROOT,
                )
                .is_err()
            {
                continue;
            }
            let what = format!("bind {file} on {inside}");
            let src =
                clone_tree(&path_str(&self.private.join(file)), false).map_err(step(&what))?;
            sys::mount_setattr(src.as_fd(), NOSUID_NODEV, false).map_err(step(&what))?;
            let target = self.ensure(root, &inside, Kind::File)?;
            attach(&src, &target).map_err(step(&what))?;
        }
        Ok(())
    }

    fn mount_extra(&mut self, root: &OwnedFd, m: &InitMount) -> Result<(), SetupError> {
        match m {
            InitMount::Bind {
                source,
                target,
                readonly,
            } => {
                let what = format!("bind {source} on {target}");
                let meta = std::fs::metadata(source).map_err(step(&what))?;
                let src = clone_tree(source, true).map_err(step(&what))?;
                let mut attrs = libc::MOUNT_ATTR_NODEV;
                if *readonly {
                    attrs |= libc::MOUNT_ATTR_RDONLY;
                }
                sys::mount_setattr(src.as_fd(), attrs, true)
                    .map_err(step(format!("{what}: set its attributes")))?;
                let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
                let t = self.ensure(root, target, kind)?;
                attach(&src, &t).map_err(step(&what))
            }
            InitMount::Overlay {
                lower,
                upper,
                target,
            } => {
                let what = format!("mount an overlay on {target}");
                let mut opts: Vec<(&str, Option<&str>)> = lower
                    .iter()
                    .map(|l| ("lowerdir+", Some(l.as_str())))
                    .collect();
                if let Some((u, w)) = upper {
                    opts.push(("upperdir", Some(u.as_str())));
                    opts.push(("workdir", Some(w.as_str())));
                }
                opts.extend(crate::overlay_options().iter().copied());
                let attrs = if upper.is_none() {
                    MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV
                } else {
                    MountAttrFlags::MOUNT_ATTR_NODEV
                };
                let fs = new_fs("overlay", &opts, attrs, &what)?;
                let t = self.ensure(root, target, Kind::Dir)?;
                attach(&fs, &t).map_err(step(&what))
            }
            InitMount::Tmpfs { target, size, mode } => {
                let what = format!("mount tmpfs on {target}");
                let size = size.map(|s| s.to_string());
                let mode = format!("{:o}", mode.unwrap_or(0o755) & 0o7777);
                let mut opts: Vec<(&str, Option<&str>)> = vec![("mode", Some(&mode))];
                if let Some(s) = &size {
                    opts.push(("size", Some(s)));
                }
                let fs = new_fs(
                    "tmpfs",
                    &opts,
                    MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
                    &what,
                )?;
                let t = self.ensure(root, target, Kind::Dir)?;
                attach(&fs, &t).map_err(step(&what))
            }
        }
    }

    /// A new pty pair from the container's devpts (see [`open_pty`]).
    fn open_pty(&mut self, root: &OwnedFd) -> Result<OwnedFd, SetupError> {
        open_pty(root, self.sync, self.spec.winsize)
    }

    /// Resolve `target` (absolute, inside the container) beneath `root`, creating what is
    /// missing (directories, and the last component as `kind`), and return an `O_PATH` fd
    /// to it. Symlinks are followed inside the root, never out of it. Created entries on the
    /// rootfs itself are recorded as stubs for removal after the run.
    fn ensure(&mut self, root: &OwnedFd, target: &str, kind: Kind) -> Result<OwnedFd, SetupError> {
        let what = || format!("create the mount point {target}");
        let open = |p: &str| {
            let p = if p.is_empty() { "." } else { p };
            rustix::fs::openat2(
                root,
                p,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                IN_ROOT,
            )
        };
        let mut path = components(&[], target);
        match open(&path.join("/")) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(step(what())(e)),
        }
        let mut i = 0;
        let mut hops = 0;
        while i < path.len() {
            match open(&path[..=i].join("/")) {
                Ok(_) => {
                    i += 1;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(step(what())(e)),
            }
            let parent = open(&path[..i].join("/")).map_err(step(what()))?;
            let name = path[i].clone();
            // A dangling symlink: create what it points to instead (as runc does).
            if let Ok(link) = rustix::fs::readlinkat(&parent, name.as_str(), Vec::new()) {
                hops += 1;
                if hops > 40 {
                    return Err(step(what())(Errno::LOOP));
                }
                let link = link.to_string_lossy().into_owned();
                let mut next = components(&path[..i], &link);
                next.extend_from_slice(&path[i + 1..]);
                path = next;
                i = 0;
                continue;
            }
            let times = times_of(&parent);
            let is_dir = kind == Kind::Dir || i + 1 < path.len();
            if is_dir {
                rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755))
                    .map_err(step(what()))?;
            } else {
                drop(
                    rustix::fs::openat(
                        &parent,
                        name.as_str(),
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o755),
                    )
                    .map_err(step(what()))?,
                );
            }
            self.record_stub(&parent, &name, is_dir, times);
            i += 1;
        }
        open(&path.join("/")).map_err(step(what()))
    }

    fn record_stub(
        &mut self,
        parent: &OwnedFd,
        name: &str,
        dir: bool,
        times: Option<[(i64, i64); 2]>,
    ) {
        let on_rootfs = rustix::fs::statx(parent, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map(|s| s.stx_mnt_id == self.root_mnt_id)
            .unwrap_or(false);
        if !on_rootfs {
            return;
        }
        let Ok(fd) = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return;
        };
        let real = real.to_string_lossy();
        if let Some(rel) = real.strip_prefix(&format!("{}/", self.root_prefix)) {
            self.stubs.push(Stub {
                path: rel.to_string(),
                dir,
                parent_times: times,
            });
        }
    }
}

/// A new pty pair from the container's devpts (`dev/pts/ptmx` beneath `root`). The master
/// goes to the helper over `sync` (and on to the caller); the slave is returned, to become
/// the command's terminal, of size `winsize` (rows, columns) if given.
pub(crate) fn open_pty(
    root: &OwnedFd,
    sync: &UnixStream,
    winsize: Option<(u16, u16)>,
) -> Result<OwnedFd, SetupError> {
    let master = rustix::fs::openat2(
        root,
        "dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
    .map_err(step("open /dev/pts/ptmx"))?;
    rustix::pty::unlockpt(&master).map_err(step("unlock the pty"))?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY,
    )
    .map_err(step("open the pty slave"))?;
    if let Some((rows, cols)) = winsize {
        sys::set_winsize(slave.as_fd(), rows, cols).map_err(step("set the terminal's size"))?;
    }
    let fds = [master.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = rustix::net::SendAncillaryBuffer::new(&mut space);
    cmsg.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        sync,
        &[IoSlice::new(b"T")],
        &mut cmsg,
        rustix::net::SendFlags::empty(),
    )
    .map_err(step("pass the pty to the helper"))?;
    Ok(slave)
}

/// `USER` resolved with the `/etc/passwd` and `/etc/group` of the current root (the
/// container's): read for root too, as it gives `HOME`.
pub(crate) fn identity(user: Option<&str>) -> Result<user::Identity, SetupError> {
    let read = |p: &str| match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(step(format!("read {p}"))(e)),
    };
    let passwd = read("/etc/passwd")?;
    let group = match user {
        None | Some("") => None,
        Some(_) => read("/etc/group")?,
    };
    user::resolve(user, passwd.as_deref(), group.as_deref()).map_err(SetupError::User)
}

/// The command and the confinement it runs under: what a container's pid 1 and every
/// process `exec`'d into the container later get alike.
pub(crate) struct Confined<'a> {
    pub args: &'a [String],
    pub env: &'a [String],
    /// Packed seccomp filters (empty: unconfined).
    pub seccomp: &'a [Vec<u64>],
    pub no_new_privs: bool,
}

/// The last steps of every container process, in this order: the seccomp filter (while
/// the process still holds `CAP_SYS_ADMIN`, so without `no_new_privs`, as runc does;
/// everything after it is allowed by Docker's profile), the identity and docker's
/// capability set ([`set_identity`]), the parent-death signal again, the terminal if any,
/// `last_word` (false: the helper is gone, stop here), default signal dispositions and
/// `execve` with exactly the given environment (plus `HOME` from passwd when it has none).
pub(crate) fn exec_confined(
    c: &Confined<'_>,
    id: &user::Identity,
    program: &CString,
    pty: Option<OwnedFd>,
    last_word: impl FnOnce() -> bool,
) -> Result<Infallible, SetupError> {
    // Seccomp goes last among the privileged steps but before the capabilities are
    // dropped: the process still has CAP_SYS_ADMIN, so the kernel needs no no_new_privs
    // (runc's order when no_new_privs is off), and set-uid binaries keep working. What
    // runs after it (prctl, setgroups, setres[ug]id, capset, setsid, ioctl, dup2, write,
    // rt_sigaction, rt_sigprocmask, execve) is allowed by Docker's default profile; a
    // custom profile that denies one of them fails the start, as with runc.
    seccomp::install(c.seccomp).map_err(step("install the seccomp filter"))?;

    set_identity(id, c.no_new_privs)?;
    // Changing uid/gid cleared the parent-death signal: set it again.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(step("set the parent-death signal"))?;
    if let Some(slave) = pty {
        rustix::process::setsid().map_err(step("setsid"))?;
        sys::set_controlling_tty(slave.as_fd()).map_err(step("set the controlling terminal"))?;
        for fd in 0..3 {
            sys::dup2(slave.as_raw_fd(), fd).map_err(step("attach the terminal"))?;
        }
    }

    // If the helper is gone this fails (EPIPE) and we stop here; if it dies later, the
    // parent-death signal kills us.
    if !last_word() {
        sys::exit_now(EXIT_SETUP);
    }
    let argv: Vec<CString> = c.args.iter().map(|a| cstring(a)).collect();
    let mut envp: Vec<CString> = c.env.iter().map(|a| cstring(a)).collect();
    if !c.env.iter().any(|e| e.starts_with("HOME=")) {
        envp.push(cstring(&format!("HOME={}", id.home)));
    }
    sys::reset_signals();
    let err = sys::execve(program, &argv, &envp);
    Err(SetupError::Exec {
        program: c.args[0].clone(),
        message: errno_text(&err.to_string()),
        kind: ExecFailure::of(&err),
    })
}

/// The confinement of `--init`'s tiny init (`tini.rs`), which runs no code of the image:
/// the container's seccomp filter (installed while it holds CAP_SYS_ADMIN, as for the
/// command), then no capabilities at all.
pub(crate) fn confine_tiny_init(filters: &[Vec<u64>]) -> Result<(), SetupError> {
    seccomp::install(filters).map_err(step("install the seccomp filter"))?;
    let none = CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )
    .map_err(step("drop the capabilities"))
}

fn cstring(s: &str) -> CString {
    // NUL bytes were rejected by the parent.
    CString::new(s).unwrap_or_default()
}

/// Mask and re-bind read-only the /proc and /sys paths of runc's default spec.
fn mask_paths() -> Result<(), SetupError> {
    for path in MASKED {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let what = format!("mask {path}");
        let mnt = if meta.is_dir() {
            new_fs(
                "tmpfs",
                &[],
                MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV,
                &what,
            )?
        } else {
            clone_tree("/dev/null", false).map_err(step(&what))?
        };
        attach_path(&mnt, path).map_err(step(&what))?;
    }
    for path in READONLY {
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        let what = format!("make {path} read-only");
        let mnt = clone_tree(path, true).map_err(step(&what))?;
        sys::mount_setattr(
            mnt.as_fd(),
            libc::MOUNT_ATTR_RDONLY
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOEXEC,
            true,
        )
        .map_err(step(&what))?;
        attach_path(&mnt, path).map_err(step(&what))?;
    }
    Ok(())
}

/// `mkdir -p` of the working directory; directories it creates belong to the user (as
/// BuildKit's executor does for a missing WORKDIR).
fn mkdir_all_owned(cwd: &str, uid: u32, gid: u32) -> Result<(), SetupError> {
    let what = || format!("create the working directory {cwd}");
    let mut cur = String::new();
    for c in components(&[], cwd) {
        cur.push('/');
        cur.push_str(&c);
        match std::fs::metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(SetupError::setup(
                    what(),
                    format!("{cur} is not a directory"),
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(step(what())(e)),
        }
        std::fs::create_dir(&cur).map_err(step(what()))?;
        std::os::unix::fs::lchown(&cur, Some(uid), Some(gid)).map_err(step(what()))?;
    }
    Ok(())
}

/// Find the program the way Go's `exec.LookPath` does, with the `PATH` of the command's own
/// environment (or the default `PATH` when it has none).
pub(crate) fn lookup(program: &str, env: &[String]) -> Result<CString, SetupError> {
    if program.contains('/') {
        return Ok(cstring(program));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{program}");
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Ok(cstring(&candidate));
            }
        }
    }
    Err(SetupError::Exec {
        program: program.to_string(),
        message: "executable file not found in $PATH".to_string(),
        kind: ExecFailure::NotFound,
    })
}

/// Bounding set to docker's default, groups, gid, uid, then the permitted/effective sets
/// (docker's default for root, empty for other users, as `docker run` does), no inheritable
/// or ambient capabilities.
fn set_rlimit(l: &crate::Rlimit) -> Result<(), SetupError> {
    let lim = libc::rlimit {
        rlim_cur: l.soft,
        rlim_max: l.hard,
    };
    // SAFETY: setrlimit with a valid resource number (checked when parsed) and a pointer to
    // a live rlimit.
    let rc = unsafe { libc::setrlimit(l.resource() as _, &lim) };
    if rc != 0 {
        return Err(step(format!("set the {} limit", l.name))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn set_identity(id: &user::Identity, no_new_privs: bool) -> Result<(), SetupError> {
    for bit in 0..64u32 {
        let cap = CapabilitySet::from_bits_retain(1u64 << bit);
        if DEFAULT_CAPS.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            Err(Errno::INVAL) => break, // past the kernel's last capability
            Err(e) => return Err(step("drop capabilities from the bounding set")(e)),
        }
    }
    match rustix::thread::clear_ambient_capability_set() {
        Ok(()) | Err(Errno::INVAL) => {}
        Err(e) => return Err(step("clear the ambient capabilities")(e)),
    }
    let groups: Vec<rustix::process::Gid> = id
        .groups
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    match rustix::thread::set_thread_groups(&groups) {
        // Rootless with a single id, setgroups is denied in the user namespace (the price of
        // mapping one's own id without newgidmap): the groups stay the unmapped ones of the
        // user's host groups (shown as 65534), and grant nothing inside.
        Err(Errno::PERM) if groups.is_empty() && crate::userns::mapped_ids().1 <= 1 => {}
        r => r.map_err(step(format!("setgroups {:?}", id.groups)))?,
    }
    let gid = rustix::process::Gid::from_raw(id.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(step(format!("setgid {}", id.gid)))?;
    let uid = rustix::process::Uid::from_raw(id.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(step(format!("setuid {}", id.uid)))?;
    let caps = if id.uid == 0 {
        DEFAULT_CAPS
    } else {
        CapabilitySet::empty()
    };
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: caps,
            permitted: caps,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(step("set capabilities"))?;
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(step("set no_new_privs"))?;
    }
    Ok(())
}
