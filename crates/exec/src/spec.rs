//! What to run and how: the public description of one process in one rootfs.

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::seccomp::Seccomp;

/// The filesystem the process sees as `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rootfs {
    /// An overlay mounted inside the container's private mount namespace with the new mount
    /// API (`lowerdir+` once per layer, so chains of hundreds of layers work).
    Overlay {
        /// Read-only layers, **top first** (the order overlayfs wants). Must not be empty.
        lower: Vec<PathBuf>,
        /// Receives every change: this directory is the layer diff afterwards.
        upper: PathBuf,
        /// overlayfs' scratch directory, on the same filesystem as `upper`, empty.
        work: PathBuf,
    },
    /// A plain directory, bind-mounted (recursively) as the root. Changes land in it.
    Dir(PathBuf),
}

/// Which network the process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Share the host's network namespace (`docker build`'s default).
    #[default]
    Host,
    /// A new, empty network namespace with only `lo`, brought up.
    None,
    /// A new network namespace with `lo` and a route out through slirp4netns (user-mode
    /// networking: `tap0` 10.0.2.100/24, gateway 10.0.2.2, DNS forwarder 10.0.2.3), from
    /// which the host's loopback is not reachable. Needs `slirp4netns` in `PATH`.
    Private,
}

/// An extra mount inside the container, applied in order after the standard ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Bind `source` (a host path, file or directory, recursively) onto `target`.
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// Absolute path inside the container.
        target: PathBuf,
        /// Mount read-only (recursively).
        readonly: bool,
    },
    /// An overlay of `lower` (host directories, top first) on `target`: read-only when
    /// `upper` is `None` (then at least two lowerdirs), else writable with `(upperdir,
    /// workdir)` receiving the writes (for `RUN --mount=type=bind,from=STAGE,rw`).
    Overlay {
        /// Read-only layers, top first.
        lower: Vec<PathBuf>,
        /// `(upperdir, workdir)` on one filesystem, for a writable overlay.
        upper: Option<(PathBuf, PathBuf)>,
        /// Absolute path inside the container.
        target: PathBuf,
    },
    /// A fresh tmpfs on `target` (nosuid, nodev).
    Tmpfs {
        /// Absolute path inside the container.
        target: PathBuf,
        /// Size limit in bytes; `None` is the kernel default (half of RAM).
        size: Option<u64>,
        /// The root directory's mode; `None` is 0755.
        mode: Option<u32>,
    },
}

/// Where one of the process's standard streams goes.
#[derive(Debug, Clone, Default)]
pub enum Stdio {
    /// `/dev/null` (the default for all three streams).
    #[default]
    Null,
    /// The caller's own stream.
    Inherit,
    /// A pipe; the other end is in [`Running`](crate::Running).
    Pipe,
    /// An open file (for example a log file); the process gets a duplicate of it.
    File(Arc<File>),
}

/// One process to run in one rootfs. Build it with [`ExecSpec::new`] and set fields.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// `argv`; `args[0]` without a `/` is looked up in the `PATH` of [`env`](Self::env)
    /// inside the rootfs (not the host's `PATH`).
    pub args: Vec<String>,
    /// The complete environment, `KEY=value` each, passed exactly as given.
    pub env: Vec<String>,
    /// Absolute working directory inside the container; created (owned by the user) if missing.
    pub cwd: PathBuf,
    /// `USER`: `name`, `uid`, `name:group`, `uid:gid` (or `None` for root).
    pub user: Option<String>,
    /// The UTS hostname; also written into `/etc/hosts` next to `localhost`.
    pub hostname: String,
    /// Network namespace mode.
    pub network: Network,
    /// Extra mounts, applied in order.
    pub mounts: Vec<Mount>,
    /// Extra `/etc/hosts` lines (`--add-host`): host name and address.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Remount the root read-only once everything is mounted.
    pub readonly_rootfs: bool,
    /// Set `PR_SET_NO_NEW_PRIVS` before exec.
    pub no_new_privs: bool,
    /// Standard input. Ignored when [`tty`](Self::tty) is set.
    pub stdin: Stdio,
    /// Standard output. Ignored when [`tty`](Self::tty) is set.
    pub stdout: Stdio,
    /// Standard error. Ignored when [`tty`](Self::tty) is set.
    pub stderr: Stdio,
    /// Give the process a pseudo-terminal from the container's own devpts as its stdin,
    /// stdout, stderr and controlling terminal; the master side is
    /// [`Running::pty`](crate::Running::pty).
    pub tty: bool,
    /// The executable to re-execute as the init helper; `None` means the running executable
    /// itself (`/proc/self/exe`, which works even if the file was replaced since). Its `main`
    /// must call [`maybe_run_init`](crate::maybe_run_init) first.
    pub helper: Option<PathBuf>,
    /// Leave the directories the init had to create as mount points (`/proc`, `/dev`,
    /// `/sys`, `/etc`, ...) in the rootfs after the run, as runc under BuildKit does (file
    /// mount points such as `/etc/hosts` are still removed). Off by default.
    pub keep_dir_stubs: bool,
    /// For [`Network::Private`]: take the namespace from this pool (and hand it back after
    /// the run) instead of making one, with its own slirp4netns, for this run alone.
    pub network_pool: Option<Arc<crate::NetworkPool>>,
    /// Where the per-run private directory (mount point, hosts and resolv.conf files) is
    /// created; `None` means `std::env::temp_dir()`. Removed when the run ends.
    pub state_dir: Option<PathBuf>,
    /// The seccomp filter: Docker's default profile unless set otherwise.
    pub seccomp: Seccomp,
}

impl ExecSpec {
    /// A spec with defaults: root user, cwd `/`, empty env, hostname `strata`, host network,
    /// standard streams on `/dev/null`.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        ExecSpec {
            rootfs,
            args,
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            user: None,
            hostname: "strata".to_string(),
            network: Network::Host,
            mounts: Vec::new(),
            extra_hosts: Vec::new(),
            readonly_rootfs: false,
            no_new_privs: false,
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            tty: false,
            helper: None,
            keep_dir_stubs: false,
            network_pool: None,
            state_dir: None,
            seccomp: Seccomp::Default,
        }
    }
}
