//! The caller's side: spawn the helper in new namespaces, hand it the spec, report.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use rustix::thread::UnshareFlags;

use crate::error::{io_err, Error, Result};
use crate::net::{PrivateNet, Slirp, Target};
use crate::proto::{
    self, HelperSpec, InitMount, InitRootfs, InitSpec, ToHelper, ToParent, INIT_ARG,
};
use crate::NetworkPool;
use crate::{files, ExecSpec, Mount, Network, Rootfs, Stdio};
use std::sync::Arc;

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code, or `128 + signal` when a signal killed it (shell convention).
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.signal {
            Some(sig) => write!(f, "killed by signal {sig} (exit code {})", self.code),
            None => write!(f, "exit code: {}", self.code),
        }
    }
}

/// What [`run`] collects.
#[derive(Debug, Clone)]
pub struct Output {
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything written to stdout, when it was [`Stdio::Pipe`].
    pub stdout: Vec<u8>,
    /// Everything written to stderr, when it was [`Stdio::Pipe`].
    pub stderr: Vec<u8>,
}

/// The private network of a run.
#[derive(Debug)]
pub(crate) enum Net {
    /// slirp4netns on the helper's own new namespace, for this run alone.
    Own(Slirp),
    /// A namespace from a pool, joined by the helper, handed back after the run.
    Pooled(PrivateNet, Arc<NetworkPool>),
}

/// A started process. Dropping it without [`wait`](Running::wait) kills the container and
/// reaps the helper.
#[derive(Debug)]
pub struct Running {
    pub(crate) helper: Child,
    pub(crate) pid: i32,
    pub(crate) control: UnixStream,
    pub(crate) reader: BufReader<UnixStream>,
    pub(crate) status: Option<ExitStatus>,
    /// The private network, ended or handed back to its pool once the helper is reaped.
    pub(crate) net: Option<Net>,
    /// The process's stdin, when [`Stdio::Pipe`].
    pub stdin: Option<ChildStdin>,
    /// The process's stdout, when [`Stdio::Pipe`].
    pub stdout: Option<ChildStdout>,
    /// The process's stderr, when [`Stdio::Pipe`].
    pub stderr: Option<ChildStderr>,
    /// The master side of the container's terminal, when [`ExecSpec::tty`] is set.
    pub pty: Option<File>,
    /// Let go of by [`detach`](Running::detach): dropped without a kill or a wait.
    pub(crate) detached: bool,
}

impl Running {
    /// The host pid of the container's pid 1 (the command itself).
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The host pid of the init helper.
    pub fn helper_pid(&self) -> u32 {
        self.helper.id()
    }

    /// Send `signal` to the container's pid 1 (through the helper). Note that pid 1 of a pid
    /// namespace only receives signals it has a handler for, except SIGKILL: use
    /// [`kill`](Running::kill) to stop it for sure.
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        proto::send(&self.control, &ToHelper::Signal(signal))
            .map_err(io_err("send a signal request to the init helper"))
    }

    /// Kill the container: the helper SIGKILLs its pid 1, which takes every process of the
    /// pid namespace with it. [`wait`](Running::wait) then reports signal 9.
    pub fn kill(&mut self) -> Result<()> {
        match self.control.shutdown(Shutdown::Write) {
            Err(e) if e.kind() != std::io::ErrorKind::NotConnected => {
                Err(io_err("shut down the init helper's control socket")(e))
            }
            _ => Ok(()),
        }
    }

    /// Wait for the process to end. Every process of the container is gone when this
    /// returns, and so are its mounts and private files. Drain piped stdout/stderr
    /// concurrently, or a chatty process blocks on a full pipe.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let mut reported = None;
        loop {
            match read_msg(&mut self.reader)? {
                Some(ToParent::Exited { code, signal }) => {
                    reported = Some(ExitStatus { code, signal });
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
        let helper = self.helper.wait();
        // The namespace's processes are gone (or going): its network goes with them.
        match self.net.take() {
            Some(Net::Own(mut slirp)) => slirp.stop(),
            Some(Net::Pooled(n, pool)) => pool.put_back(n),
            None => {}
        }
        let helper = helper.map_err(io_err("wait for the init helper"))?;
        let status = match reported {
            Some(s) => s,
            None => match helper.signal() {
                Some(sig) => ExitStatus {
                    code: 128 + sig,
                    signal: Some(sig),
                },
                None => {
                    return Err(Error::Helper(format!(
                        "exited without reporting the container's status ({helper})"
                    )))
                }
            },
        };
        self.status = Some(status);
        Ok(status)
    }
}

impl Running {
    /// Let the process run on without this handle: no kill, no wait (for a process started
    /// with [`JoinSpec::detach`](crate::JoinSpec::detach), whose helper outlives the
    /// caller). Its standard streams and terminal are closed here.
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() && !self.detached {
            let _ = self.kill();
            self.stdin = None;
            self.stdout = None;
            self.stderr = None;
            self.pty = None;
            let _ = self.wait();
        }
    }
}

pub(crate) fn read_msg(r: &mut BufReader<UnixStream>) -> Result<Option<ToParent>> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .map_err(io_err("read from the init helper"))?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| Error::Helper(format!("bad message {line:?}: {e}")))
}

fn utf8(p: &Path, what: &str) -> Result<String> {
    if !p.is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "{what} must be an absolute path: {}",
            p.display()
        )));
    }
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidSpec(format!("{what} is not UTF-8: {}", p.display())))
}

fn init_spec(spec: &ExecSpec) -> Result<InitSpec> {
    if spec.args.is_empty() {
        return Err(Error::InvalidSpec(
            "no command given (args is empty)".into(),
        ));
    }
    if spec.args.iter().chain(&spec.env).any(|s| s.contains('\0')) {
        return Err(Error::InvalidSpec("args or env contain a NUL byte".into()));
    }
    let rootfs = match &spec.rootfs {
        Rootfs::Overlay { lower, upper, work } => {
            if lower.is_empty() {
                return Err(Error::InvalidSpec(
                    "overlay rootfs without lower layers".into(),
                ));
            }
            InitRootfs::Overlay {
                lower: lower
                    .iter()
                    .map(|l| utf8(l, "overlay lowerdir"))
                    .collect::<Result<_>>()?,
                upper: utf8(upper, "overlay upperdir")?,
                work: utf8(work, "overlay workdir")?,
            }
        }
        Rootfs::Dir(d) => InitRootfs::Dir(utf8(d, "rootfs")?),
    };
    let mounts = spec
        .mounts
        .iter()
        .map(|m| {
            Ok(match m {
                Mount::Bind {
                    source,
                    target,
                    readonly,
                } => InitMount::Bind {
                    source: utf8(source, "bind mount source")?,
                    target: utf8(target, "mount target")?,
                    readonly: *readonly,
                },
                Mount::Tmpfs { target, size, mode } => InitMount::Tmpfs {
                    target: utf8(target, "mount target")?,
                    size: *size,
                    mode: *mode,
                },
                Mount::Overlay {
                    lower,
                    upper,
                    target,
                } => {
                    if lower.is_empty() || (upper.is_none() && lower.len() < 2) {
                        return Err(Error::InvalidSpec(
                            "a read-only overlay mount needs at least two lowerdirs".into(),
                        ));
                    }
                    InitMount::Overlay {
                        lower: lower
                            .iter()
                            .map(|l| utf8(l, "overlay lowerdir"))
                            .collect::<Result<_>>()?,
                        upper: match upper {
                            Some((u, w)) => {
                                Some((utf8(u, "overlay upperdir")?, utf8(w, "overlay workdir")?))
                            }
                            None => None,
                        },
                        target: utf8(target, "mount target")?,
                    }
                }
            })
        })
        .collect::<Result<_>>()?;
    let new_net = spec.network != Network::Host;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let state_dir = match &spec.state_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    Ok(InitSpec {
        rootfs,
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd: utf8(&spec.cwd, "cwd")?,
        user: spec.user.clone(),
        hostname: spec.hostname.clone(),
        new_net,
        mounts,
        readonly_rootfs: spec.readonly_rootfs,
        no_new_privs: spec.no_new_privs,
        shm_size: spec.shm_size,
        bind_proc: spec.bind_proc,
        fuse_overlay: std::env::var("STRATA_OVERLAY").is_ok_and(|v| v == "fuse-overlayfs"),
        rlimits: spec.rlimits.clone(),
        cgroups: spec
            .cgroups
            .iter()
            .map(|c| utf8(c, "cgroup"))
            .collect::<Result<_>>()?,
        init: spec.init,
        tty: spec.tty,
        winsize: spec.winsize,
        state_dir: utf8(&state_dir, "state dir")?,
        hosts: files::hosts(&spec.hostname, &spec.extra_hosts),
        resolv_conf: files::resolv_conf(&host_resolv, spec.network),
        keep_dir_stubs: spec.keep_dir_stubs,
        seccomp: spec.seccomp.packed()?,
    })
}

pub(crate) fn stdio(s: &Stdio, what: &str) -> Result<std::process::Stdio> {
    Ok(match s {
        Stdio::Null => std::process::Stdio::null(),
        Stdio::Inherit => std::process::Stdio::inherit(),
        Stdio::Pipe => std::process::Stdio::piped(),
        Stdio::File(f) => f
            .try_clone()
            .map_err(io_err(format!("duplicate the {what} file")))?
            .into(),
    })
}

/// The control socket between this process and a helper (`spawn`, `join`): our end, and
/// the helper's end kept away from 0..=2 (which the Command rewires) and close-on-exec in
/// this process, so no other child inherits it (the helper's pre_exec hook clears the flag).
/// No other copy of the helper's end stays here: while this process held one, a wait for
/// the helper's EOF never ended (a start failing before the helper reported; a health probe
/// whose helper died as its container was killed hung a supervisor).
pub(crate) fn control_pair() -> Result<(UnixStream, OwnedFd)> {
    let (control, theirs) = UnixStream::pair().map_err(io_err("create the control socket"))?;
    let high = rustix::io::fcntl_dupfd_cloexec(&theirs, 10)
        .map_err(|e| io_err("duplicate the control socket")(e.into()))?;
    drop(theirs);
    Ok((control, high))
}

/// Start `spec`. Returns once the command has been exec'd inside the container; a failure of
/// the setup (a mount, the user, the working directory) or of the exec itself is an `Err`.
pub fn spawn(spec: &ExecSpec) -> Result<Running> {
    let init = init_spec(spec)?;
    let json = serde_json::to_vec(&HelperSpec::Run(Box::new(init.clone())))
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    // /proc/self/exe still works when the binary was replaced or deleted since it started.
    let exe = match &spec.helper {
        Some(p) => p.clone(),
        None => std::path::PathBuf::from("/proc/self/exe"),
    };

    let (control, theirs) = control_pair()?;
    let raw = theirs.as_raw_fd();

    // A pooled private network is joined (setns) instead of a new namespace made.
    let pooled = match (&spec.network, &spec.network_pool) {
        (Network::Private, Some(pool)) => Some((pool.take()?, pool.clone())),
        _ => None,
    };
    let join_ns = pooled.as_ref().map(|(n, _)| n.ns.as_raw_fd());
    let mut flags = UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    if init.new_net && join_ns.is_none() {
        flags |= UnshareFlags::NEWNET;
    }
    let mut cmd = Command::new(&exe);
    cmd.arg(INIT_ARG).arg(raw.to_string()).env_clear();
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
        // SAFETY: `raw` is open in the forked child (inherited from the parent, which keeps
        // `theirs` alive until spawn returns); borrowing it for one fcntl is sound.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        if let Some(ns) = join_ns {
            // SAFETY: `ns` is open in the forked child (the parent holds it in `pooled`);
            // joining a network namespace changes only this single-threaded child.
            let r = unsafe { libc::setns(ns, libc::CLONE_NEWNET) };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: only namespaces that affect the children of this process (NEWPID) or this
        // single-threaded child itself are unshared; no thread or memory state is involved.
        unsafe { rustix::thread::unshare_unsafe(flags) }?;
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only makes raw system calls
    // (fcntl, setns, unshare), which are async-signal-safe; it allocates nothing.
    unsafe { cmd.pre_exec(hook) };
    let mut helper = match cmd.spawn() {
        Ok(h) => h,
        Err(e) => {
            if let Some((n, pool)) = pooled {
                pool.put_back(n);
            }
            return Err(io_err(format!("start the init helper {}", exe.display()))(
                e,
            ));
        }
    };
    drop(theirs);

    let mut running = Running {
        pid: 0,
        reader: BufReader::new(
            control
                .try_clone()
                .map_err(io_err("duplicate the control socket"))?,
        ),
        control,
        status: None,
        net: pooled.map(|(n, pool)| Net::Pooled(n, pool)),
        stdin: helper.stdin.take(),
        stdout: helper.stdout.take(),
        stderr: helper.stderr.take(),
        pty: None,
        detached: false,
        helper,
    };
    if spec.network == Network::Private && running.net.is_none() {
        // The helper already sits in its new network namespace; the command starts only
        // once the namespace has its route out (the helper waits for the spec).
        running.net = Some(Net::Own(Slirp::start(&Target::Pid(running.helper.id()))?));
    }
    if let (Some(hook), true, None) = (&spec.network_hook, init.new_net, join_ns) {
        // Still before the spec is sent: the command cannot start before this is done.
        if let Err(e) = (hook.0)(running.helper.id()) {
            let _ = running.kill();
            let _ = running.wait();
            return Err(Error::Network(e));
        }
    }
    handshake(running, &json, spec.tty)
}

/// Send the spec to the started helper and wait until the command runs (or the setup
/// failed): the terminal's master first when `tty`, then `Started` or `Failed`.
pub(crate) fn handshake(mut running: Running, json: &[u8], tty: bool) -> Result<Running> {
    let mut msg = (json.len() as u64).to_le_bytes().to_vec();
    msg.extend_from_slice(json);
    // A helper that died early shows up as EOF below; the write error adds nothing.
    let _ = (&running.control).write_all(&msg);

    if tty {
        running.pty = receive_fd(&running.control)?;
    }
    match read_msg(&mut running.reader)? {
        Some(ToParent::Started { .. }) if tty && running.pty.is_none() => {
            Err(Error::Helper("started without passing the terminal".into()))
        }
        Some(ToParent::Started { pid }) => {
            running.pid = pid;
            Ok(running)
        }
        Some(ToParent::Failed(e)) => {
            let _ = running.wait();
            Err(e.into())
        }
        Some(ToParent::Exited { .. }) | None => {
            let status = running.wait();
            Err(Error::Helper(format!(
                "ended before starting the command ({status:?})"
            )))
        }
    }
}

/// Receive the pty master the helper passes on with `SCM_RIGHTS` (one byte of payload; a
/// byte without a descriptor means the setup failed first, and the failure follows).
pub(crate) fn receive_fd(sock: &UnixStream) -> Result<Option<File>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let r = rustix::net::recvmsg(
        sock.as_fd(),
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| io_err("receive the terminal from the init helper")(e.into()))?;
    if r.bytes == 0 {
        return Ok(None);
    }
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if let Some(fd) = fds.next() {
                return Ok(Some(File::from(fd)));
            }
        }
    }
    Ok(None)
}

/// Run `spec` to completion, collecting piped stdout and stderr (read concurrently).
pub fn run(spec: &ExecSpec) -> Result<Output> {
    let mut running = spawn(spec)?;
    drop(running.stdin.take());
    let err_thread = running.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf);
            buf
        })
    });
    let mut stdout = Vec::new();
    if let Some(mut o) = running.stdout.take() {
        o.read_to_end(&mut stdout)
            .map_err(io_err("read the command's stdout"))?;
    }
    let stderr = err_thread
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    let status = running.wait()?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// Descriptors of this process open on the same socket as `fd`.
    fn copies(fd: &OwnedFd) -> usize {
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .ino();
        let want = format!("socket:[{ino}]");
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want))
            .count()
    }

    #[test]
    fn control_pair_keeps_one_copy_of_the_helpers_end() {
        let (_control, theirs) = control_pair().unwrap();
        assert!(theirs.as_raw_fd() >= 10);
        assert_eq!(copies(&theirs), 1);
        let flags = rustix::io::fcntl_getfd(&theirs).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}
