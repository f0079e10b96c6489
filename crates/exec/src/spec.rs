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
    /// With [`tty`](Self::tty): the terminal's size (rows, columns), set before the command
    /// starts (so its first look at the size is the caller's).
    pub winsize: Option<(u16, u16)>,
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
    /// `/dev/shm`'s size in bytes (`--shm-size`); `None` is docker's 64 MiB.
    pub shm_size: Option<u64>,
    /// Isolation chroot (`build --isolation chroot`), for a container or pod that refuses
    /// what the default needs: `/proc` is the caller's own, bound (recursively, its masks
    /// kept) instead of a new proc of the container's pid namespace (which a masked
    /// `/proc` makes the kernel refuse to a user namespace: "mount too revealing"), and the
    /// rootfs is moved over `/` and chrooted into instead of `pivot_root` (which Docker's
    /// default seccomp profile refuses). Weaker: the command sees the processes of the
    /// caller's pid namespace, and the host's tree stays mounted beneath its root.
    pub bind_proc: bool,
    /// Resource limits (`--ulimit`), set before the command starts.
    pub rlimits: Vec<Rlimit>,
    /// Cgroup directories (absolute host paths, one per hierarchy) the init joins, by
    /// writing itself into their `cgroup.procs`, before anything else: every process of the
    /// container is in them from its first instruction (resource limits).
    pub cgroups: Vec<PathBuf>,
    /// `--init`: pid 1 is a tiny init (strata's own code, see `tini.rs`) that forwards
    /// signals to the command, its child, and reaps zombies.
    pub init: bool,
    /// For a network namespace of the run's own ([`Network::Private`] without a pool, or
    /// [`Network::None`]): called with the helper's host pid once the namespace exists (and
    /// slirp4netns is up), before the command starts, so interfaces it adds there (a
    /// user-defined network's veth) are up when the command runs. An error fails the start.
    pub network_hook: Option<NetworkHook>,
}

/// A callback given the helper's host pid (`/proc/PID/ns/net` is the container's network
/// namespace); see [`ExecSpec::network_hook`].
#[derive(Clone)]
pub struct NetworkHook(pub Arc<dyn Fn(u32) -> Result<(), String> + Send + Sync>);

impl std::fmt::Debug for NetworkHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkHook")
    }
}

/// One `--ulimit NAME=SOFT[:HARD]`, with docker's names (`nofile`, `nproc`, `core`, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rlimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// docker's ulimit names and their resources.
const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

impl Rlimit {
    /// docker's syntax: `nofile=1024:2048`, `nproc=512` (hard = soft); `-1` is unlimited.
    pub fn parse(s: &str) -> Result<Rlimit, String> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
        if !RLIMITS.iter().any(|(n, _)| *n == name) {
            return Err(format!("invalid ulimit type: {name}"));
        }
        let value = |v: &str| -> Result<u64, String> {
            if v == "-1" {
                return Ok(libc::RLIM_INFINITY);
            }
            v.parse::<u64>()
                .map_err(|_| format!("invalid ulimit argument: {s}"))
        };
        let (soft, hard) = match values.split_once(':') {
            Some((a, b)) => (value(a)?, value(b)?),
            None => (value(values)?, value(values)?),
        };
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
        Ok(Rlimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }

    /// The resource number (the name was checked by [`parse`](Self::parse)).
    pub(crate) fn resource(&self) -> libc::__rlimit_resource_t {
        RLIMITS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| *r)
            .unwrap_or(libc::RLIMIT_NOFILE)
    }
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
            winsize: None,
            helper: None,
            keep_dir_stubs: false,
            network_pool: None,
            state_dir: None,
            seccomp: Seccomp::Default,
            shm_size: None,
            bind_proc: false,
            rlimits: Vec::new(),
            cgroups: Vec::new(),
            init: false,
            network_hook: None,
        }
    }
}
