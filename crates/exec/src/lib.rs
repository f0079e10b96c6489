//! Run a process in a rootfs: namespaces, mounts, user, env, cwd.
//!
//! This crate is strata's executor for `RUN` and for `strata run`. It knows nothing of
//! layers, images, Dockerfiles or caches: it is given directories (an overlay's lower, upper
//! and work dirs, or a plain rootfs dir), a command and its environment, and it runs the
//! command as a container and reports how it ended.
//!
//! # Design
//!
//! There are three processes:
//!
//! 1. **The caller** (strata, possibly multi-threaded, possibly tokio). [`spawn`] starts the
//!    *helper* with `std::process::Command`: the caller's own executable
//!    (`/proc/self/exe`, or [`ExecSpec::helper`]) with the arguments
//!    `__strata-init <fd>`, an empty environment, and a `pre_exec` hook that only clears
//!    close-on-exec on the control socket and calls
//!    `unshare(CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC[|CLONE_NEWNET])`, both raw,
//!    async-signal-safe system calls. The spec goes to the helper as length-prefixed JSON on
//!    that Unix socket (the *control socket*), which stays open for the whole run. For
//!    [`Network::Private`] the caller first starts `slirp4netns` on the helper's new network
//!    namespace and waits for its ready byte (so the command never starts before its route
//!    out exists); slirp4netns holds the read end of an *exit pipe* whose write end only
//!    the caller has, and is killed once the helper is reaped (see `net.rs`). With a
//!    [`NetworkPool`] ([`ExecSpec::network_pool`]) the hook instead joins (`setns`) an idle
//!    namespace of the pool, whose slirp4netns is already up, and the namespace goes back
//!    to the pool after the run: a build pays for slirp4netns once per concurrent RUN.
//! 2. **The helper**. The executable's `main` calls [`maybe_run_init`] first thing; seeing
//!    `argv[1] == "__strata-init"` it becomes the helper and never returns. It is a fresh,
//!    single-threaded process, so it may `fork`. It creates a private directory
//!    `<state_dir>/strata-exec-*` (0700) with the rootfs mount point `root/` and the files
//!    that become `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, then forks the
//!    container's **init**, which is pid 1 of the new pid namespace. It stays in the host's
//!    mount namespace.
//! 3. **The init**, which becomes the command. Step by step:
//!    1. `PR_SET_PDEATHSIG(SIGKILL)` (the helper is single-threaded, so this means "when the
//!       helper dies"), `unshare(CLONE_NEWNS)`, every mount made private (recursively).
//!    2. The rootfs on `<private>/root`: an overlay made with the new mount API (`fsopen`,
//!       one `fsconfig("lowerdir+")` per layer, `upperdir`, `workdir`, `index=off`,
//!       `redirect_dir=off`, `metacopy=off`, `fsmount`, `move_mount`), so 200+ layers work
//!       where mount(2)'s one-page option string fails at about 150; or a recursive bind of
//!       a plain directory (`open_tree` + `move_mount`).
//!    3. `/proc` (proc), `/dev` (tmpfs 755 with the host's `null zero full random urandom
//!       tty` bind-mounted, `/dev/pts` devpts `newinstance,ptmxmode=0666,mode=0620,gid=5`,
//!       `/dev/ptmx -> pts/ptmx`, `/dev/shm` tmpfs 1777, `/dev/mqueue`, `fd`/`stdin`/
//!       `stdout`/`stderr` links), `/sys` (sysfs, read-only), then `/etc/hosts` and
//!       `/etc/resolv.conf` bound from the private files (and `/etc/hostname` if the rootfs
//!       has that file), then the spec's extra mounts in order. Every mount point is
//!       resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the rootfs can never
//!       redirect a mount to the host, and every mount is attached through that fd.
//!    4. With a tty: a pty from the container's devpts; the master goes to the caller over
//!       the sockets (`SCM_RIGHTS`), the slave becomes the command's stdio and controlling
//!       terminal.
//!    5. `pivot_root(".", ".")` and a detached unmount of the old root.
//!    6. runc's default masks: `/proc/acpi`, `/proc/asound`, `/proc/kcore`, `/proc/keys`,
//!       `/proc/latency_stats`, `/proc/timer_list`, `/proc/timer_stats`, `/proc/sched_debug`,
//!       `/proc/scsi`, `/sys/firmware`, `/sys/devices/virtual/powercap` (read-only tmpfs or
//!       `/dev/null`), and read-only `/proc/bus`, `/proc/fs`, `/proc/irq`, `/proc/sys`,
//!       `/proc/sysrq-trigger`.
//!    7. The hostname; with its own network namespace, `lo` up (`SIOCSIFFLAGS`).
//!    8. `USER` resolved with the rootfs's `/etc/passwd` and `/etc/group` (BuildKit's rules,
//!       see below); the working directory created if missing (new directories owned by the
//!       user, as BuildKit does) and entered; the root made read-only if asked.
//!    9. `args[0]` looked up in the `PATH` of the given env (not the host's; the default
//!       `PATH` if the env has none), as Go's `exec.LookPath` does.
//!    10. Seccomp ([`ExecSpec::seccomp`]): Docker's default profile unless unconfined or
//!        replaced, compiled to BPF by the caller (once per process for the default, see the
//!        `seccomp` module), sent in the spec and installed here, while the init still holds
//!        `CAP_SYS_ADMIN`, so without `no_new_privs` (set-uid binaries keep working), as runc
//!        does. Everything the init does after it is allowed by Docker's profile.
//!    11. Capabilities: the bounding set cut to docker's default (`CHOWN DAC_OVERRIDE FSETID
//!        FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL
//!        AUDIT_WRITE`, `0xa80425fb`), ambient cleared, `setgroups`/`setgid`/`setuid`, then
//!        permitted and effective = the default set for uid 0 and empty for other users
//!        (docker's rule), inheritable empty (as docker since CVE-2022-24769);
//!        `no_new_privs` if asked; the parent-death signal set again (a uid change clears it).
//!    12. A last message to the helper listing the mount points it had to create, default
//!        signal dispositions and an empty signal mask, and `execve` with exactly the given
//!        env. The sync socket is close-on-exec: the helper sees EOF and tells the caller
//!        `Started`.
//!
//! The helper then waits (`poll` on the sync socket, the control socket and a pidfd of the
//! init). It forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT, and signals the caller asks for.
//! When the control socket reaches EOF (the caller died, even by SIGKILL, or called
//! [`Running::kill`]) it SIGKILLs the init. When the init exits the kernel kills every
//! other process of the pid namespace, and the mount namespace dies with them, so nothing
//! stays mounted anywhere. The helper removes the mount-point stubs and the private
//! directory and reports the exit status.
//!
//! **Joining a running container** ([`join`], `join.rs`, for `strata exec`): the helper
//! is started in the caller's namespaces with a pidfd of the container's pid 1, joins that
//! process's namespaces with one `setns(pidfd, ...)` (so a recycled pid is never joined),
//! and forks the process into them; the process ends exactly as the init does (steps 8 to
//! 12 above, less the mounts: `USER`, the working directory, which must exist, `PATH`,
//! the same seccomp filter, capability set and `no_new_privs`, `execve`). It is in the
//! container's pid namespace, so it dies with the container's pid 1.
//!
//! # Invariants
//!
//! * A private network's slirp4netns lives as long as the run (or, pooled, as long as the
//!   pool): it is killed at the end, and exits by itself when the exit pipe closes (the
//!   caller died, even by SIGKILL). It is started with `--disable-host-loopback`, so the
//!   gateway 10.0.2.2 does not lead to the host's 127.0.0.1, and the namespace is not the
//!   host's, so the host's abstract unix sockets are not visible. A pooled namespace is
//!   handed to one run at a time, and only once every process of the previous run is gone.
//! * Nothing is ever mounted in the caller's mount namespace; all mounts live in the init's
//!   private namespace and vanish with it.
//! * The helper is single-threaded when it forks; the `pre_exec` hook makes only
//!   async-signal-safe raw system calls.
//! * A setup or exec failure is an `Err` from [`spawn`] / [`run`], never an exit code;
//!   a command that runs and fails is `Ok` with its [`ExitStatus`]. Examples:
//!   `exec: "/bin/sh": no such file or directory`,
//!   `exec: "foo": executable file not found in $PATH`,
//!   `unable to find user bob: no matching entries in passwd file`,
//!   `container setup failed: bind /x on /y: no such file or directory`.
//! * A signal-killed command reports `code = 128 + signal` and `signal = Some(signal)`.
//! * The command is pid 1 of its pid namespace (as in BuildKit's `RUN`): `echo $$` prints 1.
//! * Mount points that had to be created in the rootfs (for `/proc`, `/etc/hosts`, a bind
//!   target...) are removed after the run if still empty and their parent directory gets
//!   its timestamps back, as BuildKit's `MountStubsCleaner` does, so they do not end up in
//!   the layer. What can remain in an overlay upperdir: the copied-up parent directory of
//!   such a stub (for example `/etc` when the image has `/etc` but no `/etc/hosts`), with
//!   its original timestamps. The working directory created for `cwd` is a real change and
//!   stays, as in BuildKit.
//!
//! # USER
//!
//! `None`/empty is `0:0` with no supplementary groups. Numeric `uid:gid` is used as it is
//! without looking at `/etc/passwd`, like BuildKit. `name`, `uid`, `name:group`, `uid:group`
//! are resolved with moby's rules: a user not in `/etc/passwd` is an error unless numeric
//! (then gid 0); a user found there gets its passwd gid and, when no group is given, every
//! group of `/etc/group` that lists it as a member (Docker 20.10's BuildKit did this for a
//! bare uid too, in the frozen core-user case).
//!
//! # Caveats
//!
//! * The helper watches its caller through the control socket rather than
//!   `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned it exits: with tokio's
//!   blocking pool that would kill builds at random.
//! * If the command itself is set-uid or has file capabilities, the kernel clears its
//!   parent-death signal at exec; it is still killed when the caller goes away, because the
//!   helper SIGKILLs it.
//! * Devices are confined by mount flags, not a device cgroup: every mount but the bound
//!   host nodes and devpts is `nodev`, so a node made by `mknod` or shipped in an image
//!   cannot be opened (EACCES where Docker's cgroup gives EPERM).
//! * Cgroups are made by the caller ([`ExecSpec::cgroups`]); no user namespaces (rootless) yet.
//! * Seccomp's x32 calls get the default action (EPERM), where Docker allows them.

mod cgroupfs;
pub mod emulation;
mod error;
mod files;
mod helper;
mod init;
mod join;
mod net;
mod parent;
mod proto;
mod seccomp;
mod spec;
mod sys;
mod tini;
pub mod user;
pub mod userns;

/// The overlay options that keep an upperdir a plain diff (no redirect or metacopy xattrs),
/// for every overlay strata mounts. In a user namespace (rootless, [`userns::active`])
/// overlay keeps its state in `user.overlay.*` xattrs (`userxattr`, which implies no
/// redirects; naming `redirect_dir` there is refused), since trusted xattrs are out of reach.
pub fn overlay_options() -> &'static [(&'static str, Option<&'static str>)] {
    if userns::active() {
        &[("userxattr", None), ("metacopy", Some("off"))]
    } else {
        &[("redirect_dir", Some("off")), ("metacopy", Some("off"))]
    }
}

pub use error::{Error, ExecFailure, Result};
pub use helper::maybe_run_init;
pub use join::{join, JoinSpec};
pub use net::NetworkPool;
pub use parent::{run, spawn, ExitStatus, Output, Running};
pub use proto::INIT_ARG;
pub use seccomp::{Seccomp, SeccompError, SeccompProfile, DOCKER_DEFAULT_JSON};
pub use spec::{ExecSpec, Mount, Network, NetworkHook, Rlimit, Rootfs, Stdio};

/// The default `PATH` (Docker's and BuildKit's): a process whose environment has none
/// gets it from the init, an image whose Env has none gets it added by the engine and the
/// runtime.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set as a bit mask (`0x00000000a80425fb`).
pub const DEFAULT_CAPABILITIES: u64 = init::DEFAULT_CAPS.bits();
