//! A new process in a running container (`docker exec`): the helper joins the namespaces of
//! the container's pid 1 and forks the process, which gets the same confinement as that
//! pid 1.
//!
//! 1. **The caller** ([`join`]) is given a pidfd of the container's pid 1 (the caller has
//!    checked that it is that process) and reads which of its namespaces differ from its
//!    own (`/proc/<pid>/ns/*`: mount, pid, uts, ipc, net, and user or cgroup when the
//!    container has them). It starts the helper as [`spawn`](crate::spawn) does, but in its
//!    own namespaces, with the pidfd inherited.
//! 2. **The helper** opens `/dev/null` (its own streams go there once the process runs),
//!    then joins every one of those namespaces at once with `setns(pidfd, flags)`: if the
//!    container's pid 1 has exited, that fails (`ESRCH`) and nothing runs. Joining the
//!    mount namespace sets its root and working directory to the container's root. It
//!    forks: the child is in the container's pid namespace (it sees the container's pid 1,
//!    and the kernel kills it when that pid 1 exits). The helper then relays as for a new
//!    container (terminal, signals, kill when the caller goes away unless detached, exit).
//! 3. **The process**: parent-death signal, not dumpable while it holds the helper's
//!    privileges (so no process of the container can ptrace it or read its `/proc` files
//!    meanwhile), the terminal from the container's devpts when asked, `USER` resolved in
//!    the container's `/etc/passwd` and `/etc/group`, `chdir` to the working directory
//!    (which must exist, as runc's exec wants), the program looked up in the env's `PATH`,
//!    then exactly the container init's last steps (`init::exec_confined`): the seccomp
//!    filter, docker's capability set and bounding set for the user, `no_new_privs` if
//!    asked, `execve`.
//!
//! Setup failures come back as [`Error`]s from [`join`], the process's end as its
//! [`ExitStatus`](crate::ExitStatus), as with [`spawn`](crate::spawn).

use std::convert::Infallible;
use std::io::BufReader;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::thread::ThreadNameSpaceType;

use crate::error::{io_err, step, Error, Result, SetupError};
use crate::init::{self, Confined};
use crate::parent::{handshake, stdio, Running};
use crate::proto::{self, FromInit, HelperSpec, JoinInit, ToParent, INIT_ARG};
use crate::{helper, sys, Seccomp, Stdio};

/// One process to start in a running container. Build it with [`JoinSpec::new`] and set
/// fields; give it the container's confinement ([`seccomp`](Self::seccomp),
/// [`no_new_privs`](Self::no_new_privs)) as the container's pid 1 got it.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// A pidfd of the container's pid 1. The caller checks that it is that process (for
    /// example by its start time after opening the pidfd): the namespaces are joined
    /// through it, so a recycled pid can never be joined.
    pub target: Arc<OwnedFd>,
    /// The host pid of the container's pid 1 (to read which namespaces it has).
    pub target_pid: u32,
    /// `argv`; `args[0]` without a `/` is looked up in the `PATH` of [`env`](Self::env)
    /// inside the container.
    pub args: Vec<String>,
    /// The complete environment, `KEY=value` each (`HOME` from passwd added when missing).
    pub env: Vec<String>,
    /// Absolute working directory inside the container; it must exist.
    pub cwd: PathBuf,
    /// `USER`: `name`, `uid`, `name:group`, `uid:gid` (or `None` for root).
    pub user: Option<String>,
    /// Set `PR_SET_NO_NEW_PRIVS` before exec.
    pub no_new_privs: bool,
    /// The seccomp filter.
    pub seccomp: Seccomp,
    /// Standard input. Ignored when [`tty`](Self::tty) is set.
    pub stdin: Stdio,
    /// Standard output. Ignored when [`tty`](Self::tty) is set.
    pub stdout: Stdio,
    /// Standard error. Ignored when [`tty`](Self::tty) is set.
    pub stderr: Stdio,
    /// A pseudo-terminal from the container's devpts as the process's stdio and controlling
    /// terminal; the master is [`Running::pty`].
    pub tty: bool,
    /// With [`tty`](Self::tty): the terminal's size (rows, columns), set before the command
    /// starts.
    pub winsize: Option<(u16, u16)>,
    /// The process outlives the caller: the helper does not kill it when the caller goes
    /// away (release the handle with [`Running::detach`]). It still dies with the container.
    pub detach: bool,
    /// The executable to re-execute as the helper, as [`ExecSpec::helper`](crate::ExecSpec).
    pub helper: Option<PathBuf>,
    /// The container's cgroup directories, as [`ExecSpec::cgroups`](crate::ExecSpec): the
    /// helper joins them before it forks the process, so its limits hold for it too.
    pub cgroups: Vec<PathBuf>,
}

impl JoinSpec {
    /// A spec with defaults: root, cwd `/`, empty env, Docker's default seccomp profile,
    /// standard streams on `/dev/null`.
    pub fn new(target: Arc<OwnedFd>, target_pid: u32, args: Vec<String>) -> Self {
        JoinSpec {
            target,
            target_pid,
            args,
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            user: None,
            no_new_privs: false,
            seccomp: Seccomp::Default,
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            tty: false,
            winsize: None,
            detach: false,
            helper: None,
            cgroups: Vec::new(),
        }
    }
}

/// The namespaces of a process, as `/proc/<pid>/ns/<name>` names them.
const NAMESPACES: [(&str, ThreadNameSpaceType); 7] = [
    ("user", ThreadNameSpaceType::USER),
    ("cgroup", ThreadNameSpaceType::CONTROL_GROUP),
    ("ipc", ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
    ("uts", ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
    ("net", ThreadNameSpaceType::NETWORK),
    ("pid", ThreadNameSpaceType::PROCESS_ID),
    ("mnt", ThreadNameSpaceType::MOUNT),
];

/// The namespaces of `pid` that are not this process's. A container has its own mount and
/// pid namespaces at least; a process without them is refused.
fn namespaces_of(pid: u32) -> Result<ThreadNameSpaceType> {
    let id = |path: String| {
        std::fs::metadata(&path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| match e.raw_os_error() {
                // No such process (any more), or a zombie's namespaces.
                Some(libc::ENOENT | libc::ESRCH) => Error::Gone,
                _ => io_err(format!("read {path}"))(e),
            })
    };
    let mut flags = ThreadNameSpaceType::empty();
    for (name, flag) in NAMESPACES {
        let ours = id(format!("/proc/self/ns/{name}"))
            .map_err(|_| Error::InvalidSpec(format!("this kernel has no {name} namespace")))?;
        if id(format!("/proc/{pid}/ns/{name}"))? != ours {
            flags |= flag;
        }
    }
    let needed = ThreadNameSpaceType::MOUNT | ThreadNameSpaceType::PROCESS_ID;
    if !flags.contains(needed) {
        return Err(Error::InvalidSpec(format!(
            "process {pid} is not a container's: it shares this process's mount or pid namespace"
        )));
    }
    Ok(flags)
}

/// Start `spec` in the container. Returns once the command has been exec'd there; a
/// failure to join or to set the process up is an `Err`.
pub fn join(spec: &JoinSpec) -> Result<Running> {
    if spec.args.is_empty() {
        return Err(Error::InvalidSpec(
            "no command given (args is empty)".into(),
        ));
    }
    if spec.args.iter().chain(&spec.env).any(|s| s.contains('\0')) {
        return Err(Error::InvalidSpec("args or env contain a NUL byte".into()));
    }
    let cwd = spec
        .cwd
        .to_str()
        .filter(|c| c.starts_with('/'))
        .ok_or_else(|| {
            Error::InvalidSpec(format!(
                "the working directory must be an absolute UTF-8 path: {}",
                spec.cwd.display()
            ))
        })?
        .to_string();
    let namespaces = namespaces_of(spec.target_pid)?;

    let (control, theirs) = crate::parent::control_pair()?;
    // The pidfd the helper inherits too is kept away from 0..=2 and close-on-exec here.
    let target: OwnedFd = rustix::io::fcntl_dupfd_cloexec(spec.target.as_fd(), 10)
        .map_err(|e| io_err("duplicate the container's pidfd")(e.into()))?;
    let raw = [theirs.as_raw_fd(), target.as_raw_fd()];
    let init = JoinInit {
        pidfd: raw[1],
        namespaces: namespaces.bits(),
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd,
        user: spec.user.clone(),
        no_new_privs: spec.no_new_privs,
        tty: spec.tty,
        winsize: spec.winsize,
        detach: spec.detach,
        seccomp: spec.seccomp.packed()?,
        cgroups: spec
            .cgroups
            .iter()
            .map(|c| c.display().to_string())
            .collect(),
    };
    let json = serde_json::to_vec(&HelperSpec::Join(init))
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;

    let exe = match &spec.helper {
        Some(p) => p.clone(),
        None => PathBuf::from("/proc/self/exe"),
    };
    let mut cmd = Command::new(&exe);
    cmd.arg(INIT_ARG).arg(raw[0].to_string()).env_clear();
    if spec.tty {
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    } else {
        cmd.stdin(stdio(&spec.stdin, "stdin")?)
            .stdout(stdio(&spec.stdout, "stdout")?)
            .stderr(stdio(&spec.stderr, "stderr")?);
    }
    let hook = move || -> std::io::Result<()> {
        for fd in raw {
            // SAFETY: both descriptors are open in the forked child (inherited from the
            // parent, which keeps them alive until spawn returns); borrowing one for an
            // fcntl is sound.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only makes raw fcntl calls, which are
    // async-signal-safe; it allocates nothing.
    unsafe { cmd.pre_exec(hook) };
    let mut helper = cmd
        .spawn()
        .map_err(io_err(format!("start the init helper {}", exe.display())))?;
    drop(theirs);
    drop(target);
    let running = Running {
        pid: 0,
        reader: BufReader::new(
            control
                .try_clone()
                .map_err(io_err("duplicate the control socket"))?,
        ),
        control,
        status: None,
        net: None,
        stdin: helper.stdin.take(),
        stdout: helper.stdout.take(),
        stderr: helper.stderr.take(),
        pty: None,
        detached: false,
        helper,
    };
    handshake(running, &json, spec.tty)
}

/// The helper's side: join the namespaces, fork the process, relay. Returns the exit code.
pub(crate) fn helper(spec: &JoinInit, control: &UnixStream) -> i32 {
    let fail = |e: SetupError| {
        let _ = proto::send(control, &ToParent::Failed(e));
        init::EXIT_SETUP
    };
    // SAFETY: the parent passed this descriptor (a pidfd it duplicated for us) in the spec
    // and nothing else in this fresh process owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(spec.pidfd) };
    if let Err(e) = rustix::io::fcntl_setfd(&pidfd, rustix::io::FdFlags::CLOEXEC) {
        return fail(step("keep the container's pidfd")(e));
    }
    if spec.detach {
        // Away from the caller's terminal and its signals.
        let _ = rustix::process::setsid();
    }
    // The host's /dev/null, opened before the container's mount namespace is joined.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    if let Err(e) = init::join_cgroups(&spec.cgroups) {
        return fail(e);
    }
    let flags = ThreadNameSpaceType::from_bits_retain(spec.namespaces);
    match rustix::thread::move_into_thread_name_spaces(pidfd.as_fd(), flags) {
        Ok(()) => {}
        Err(rustix::io::Errno::SRCH) => return fail(SetupError::Gone),
        Err(e) => return fail(step("join the container's namespaces")(e)),
    }
    drop(pidfd);
    helper::relay(
        control,
        spec.tty,
        spec.detach,
        null,
        |sync| child(spec, sync),
        |_| {},
    )
}

/// The forked process, in the container's namespaces: set up, confine, exec; never returns.
fn child(spec: &JoinInit, sync: UnixStream) -> ! {
    let err = match setup_and_exec(spec, &sync) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = match err {
        SetupError::Exec { .. } => init::EXIT_EXEC,
        _ => init::EXIT_SETUP,
    };
    let _ = proto::send(&sync, &FromInit::Failed(err));
    sys::exit_now(code)
}

fn setup_and_exec(spec: &JoinInit, sync: &UnixStream) -> Result<Infallible, SetupError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(step("set the parent-death signal"))?;
    // Not dumpable while it holds the helper's privileges: processes of the container
    // cannot ptrace it or open its /proc files. execve makes it dumpable again.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(step("make the process non-dumpable"))?;
    let pty = if spec.tty {
        let root = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(step("open the container's root"))?;
        Some(init::open_pty(&root, sync, spec.winsize)?)
    } else {
        None
    };
    let id = init::identity(spec.user.as_deref())?;
    rustix::process::chdir(spec.cwd.as_str())
        .map_err(step(format!("chdir to the working directory {}", spec.cwd)))?;
    let program = init::lookup(&spec.args[0], &spec.env)?;
    let confined = Confined {
        args: &spec.args,
        env: &spec.env,
        seccomp: &spec.seccomp,
        no_new_privs: spec.no_new_privs,
    };
    init::exec_confined(&confined, &id, &program, pty, || {
        proto::send(sync, &FromInit::Stubs(Vec::new())).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_of_this_namespace_is_refused() {
        let me = std::process::id();
        let e = namespaces_of(me).unwrap_err().to_string();
        assert!(e.contains("is not a container's"), "{e}");
    }
}
