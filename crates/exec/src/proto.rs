//! What the parent, the helper and the container's init say to each other (JSON).
//!
//! * parent → helper, on the control socket: `u64` little-endian length + [`HelperSpec`]
//!   JSON (a new container, [`InitSpec`], or a process joining a running one, [`JoinInit`]),
//!   then zero or more [`ToHelper`] lines. Shutting down (or losing) the parent's side makes
//!   the helper SIGKILL the container.
//! * helper → parent, same socket: [`ToParent`] lines: `Started`, or `Failed`, then `Exited`.
//! * init → helper, on the sync socket (close-on-exec, so EOF means `execve` succeeded):
//!   [`FromInit`] lines: `Stubs` (mount points it had to create) and, on failure, `Failed`.

use serde::{Deserialize, Serialize};

use crate::error::SetupError;

/// The argument that turns a process into the init helper: `<exe> __strata-init <fd>`.
pub const INIT_ARG: &str = "__strata-init";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum InitRootfs {
    Overlay {
        lower: Vec<String>,
        upper: String,
        work: String,
    },
    Dir(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum InitMount {
    Bind {
        source: String,
        target: String,
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
        mode: Option<u32>,
    },
    Overlay {
        lower: Vec<String>,
        upper: Option<(String, String)>,
        target: String,
    },
}

/// The part of an [`ExecSpec`](crate::ExecSpec) the helper needs, plus the prepared files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitSpec {
    pub rootfs: InitRootfs,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub hostname: String,
    pub new_net: bool,
    pub mounts: Vec<InitMount>,
    pub readonly_rootfs: bool,
    pub no_new_privs: bool,
    pub tty: bool,
    pub state_dir: String,
    /// Contents of the container's `/etc/hosts`.
    pub hosts: String,
    /// Contents of the container's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// Leave the directories created as mount points (`/proc`, `/dev`, ...) in the rootfs.
    #[serde(default)]
    pub keep_dir_stubs: bool,
    /// The terminal's size (rows, columns) with `tty`.
    #[serde(default)]
    pub winsize: Option<(u16, u16)>,
    /// Seccomp filters to install in order, each instruction packed as
    /// `code << 48 | jt << 40 | jf << 32 | k`; empty when unconfined.
    #[serde(default)]
    pub seccomp: Vec<Vec<u64>>,
    /// `/dev/shm`'s size in bytes (`None`: docker's 64 MiB).
    #[serde(default)]
    pub shm_size: Option<u64>,
    #[serde(default)]
    pub bind_proc: bool,
    /// Mount the overlay rootfs with fuse-overlayfs (`$STRATA_OVERLAY=fuse-overlayfs`);
    /// rootless, it is also the fallback when the kernel refuses the overlay.
    #[serde(default)]
    pub fuse_overlay: bool,
    /// Resource limits set before the command starts.
    #[serde(default)]
    pub rlimits: Vec<crate::Rlimit>,
    /// Cgroup directories the init joins first thing.
    #[serde(default)]
    pub cgroups: Vec<String>,
    /// A tiny init as pid 1, the command its child.
    #[serde(default)]
    pub init: bool,
}

/// What the helper is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum HelperSpec {
    /// A new container: namespaces, mounts, pid 1 ([`crate::spawn`]).
    Run(Box<InitSpec>),
    /// A new process in the namespaces of a running container ([`crate::join`]).
    Join(JoinInit),
}

/// The part of a [`JoinSpec`](crate::JoinSpec) the helper needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinInit {
    /// The descriptor number, in the helper, of a pidfd of the container's pid 1 (inherited).
    pub pidfd: i32,
    /// The `CLONE_NEW*` flags of the namespaces to join.
    pub namespaces: u32,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub no_new_privs: bool,
    pub tty: bool,
    /// The terminal's size (rows, columns) with `tty`.
    pub winsize: Option<(u16, u16)>,
    /// The caller goes away after the start: the helper keeps the process running then.
    pub detach: bool,
    /// As [`InitSpec::seccomp`].
    pub seccomp: Vec<Vec<u64>>,
    /// Cgroup directories the helper joins before it forks the process.
    #[serde(default)]
    pub cgroups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ToHelper {
    /// Forward this signal to the container's pid 1.
    Signal(i32),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ToParent {
    /// `execve` succeeded; `pid` is the container's pid 1 as the host sees it.
    Started { pid: i32 },
    /// Setup or exec failed; an `Exited` follows.
    Failed(SetupError),
    /// The container's pid 1 is gone (and with it every process of the pid namespace).
    Exited { code: i32, signal: Option<i32> },
}

/// A mount point the init had to create, to be removed after the run if still empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stub {
    /// Path relative to the rootfs with symlinks resolved (so it is also the path in the
    /// upperdir, or in the plain rootfs dir).
    pub path: String,
    pub dir: bool,
    /// The parent directory's (atime, mtime) before the stub was created, restored afterwards.
    pub parent_times: Option<[(i64, i64); 2]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum FromInit {
    Stubs(Vec<Stub>),
    Failed(SetupError),
}

/// Write one JSON line.
pub(crate) fn send<T: Serialize>(mut w: impl std::io::Write, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}
