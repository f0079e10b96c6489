//! The private network ([`Network::Private`](crate::Network::Private)): slirp4netns, a
//! user-mode TCP/IP stack, attached to the helper's fresh network namespace.
//!
//! slirp4netns opens a tap device `tap0` inside the namespace (`--configure`: address
//! 10.0.2.100/24, gateway 10.0.2.2, DNS forwarder 10.0.2.3) and carries the namespace's
//! traffic out through ordinary sockets of the caller's namespace, so the container can
//! reach what the host can reach, except the host's loopback (`--disable-host-loopback`:
//! 10.0.2.2 does not lead to the host's 127.0.0.1). It runs sandboxed (its own mount
//! namespace, capabilities dropped, a seccomp filter). Its lifetime is tied to the run by the
//! *exit fd*: the read end of a pipe whose only write end the caller holds; when the run is
//! over, or the caller dies (even by SIGKILL), the pipe closes and slirp4netns exits.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};

use crate::error::{Error, Result};

/// The program, looked up in `PATH`.
const SLIRP: &str = "slirp4netns";
/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT_MS: i32 = 30_000;

/// The nameserver slirp4netns forwards to the host's resolver.
pub(crate) const SLIRP_DNS: &str = "10.0.2.3";

/// A running slirp4netns. [`stop`](Slirp::stop) (or drop) ends it.
#[derive(Debug)]
pub(crate) struct Slirp {
    child: Option<Child>,
    exit: Option<OwnedFd>,
}

/// Which network namespace slirp4netns attaches to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The namespace of a process.
    Pid(u32),
    /// A namespace file (`/proc/PID/fd/N` of a descriptor this process holds).
    Path(String),
}

/// The arguments slirp4netns gets for `target`.
pub(crate) fn args(target: &Target, exit_fd: i32, ready_fd: i32) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--configure".into(),
        "--mtu=65520".into(),
        "--disable-host-loopback".into(),
        "--enable-sandbox".into(),
        "--enable-seccomp".into(),
        format!("--exit-fd={exit_fd}"),
        format!("--ready-fd={ready_fd}"),
    ];
    match target {
        Target::Pid(pid) => a.push(pid.to_string()),
        Target::Path(p) => {
            a.push("--netns-type=path".into());
            a.push(p.clone());
        }
    }
    a.push("tap0".into());
    a
}

/// slirp4netns opens `/dev/net/tun` with the caller's own credentials: rootless, the node
/// must be open to the user (mode 0666, as Debian's udev rules make it).
fn tun_usable() -> Result<()> {
    const TUN: &str = "/dev/net/tun";
    if !crate::userns::active()
        || rustix::fs::access(
            TUN,
            rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
        )
        .is_ok()
    {
        return Ok(());
    }
    let mode = std::fs::metadata(TUN)
        .map(|m| {
            format!(
                "mode {:04o}",
                std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
            )
        })
        .unwrap_or_else(|e| e.to_string());
    Err(err(format!(
        "rootless, the private network needs {TUN} readable and writable by you ({mode} here; \
         udev makes it 0666 on most systems): as root, `chmod 0666 {TUN}`; or build or run \
         with --network none"
    )))
}

fn err(what: impl std::fmt::Display) -> Error {
    Error::Network(what.to_string())
}

/// A descriptor at 10 or above (clear of the stdio numbers the `Command` rewires), close-on-
/// exec in this process.
fn high(fd: &OwnedFd) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 10).map_err(|e| err(format!("duplicate a pipe: {e}")))
}

impl Slirp {
    /// Start slirp4netns on the network namespace `target` and wait until it has configured
    /// it. An error names slirp4netns' own last words.
    pub(crate) fn start(target: &Target) -> Result<Slirp> {
        tun_usable()?;
        let flags = rustix::pipe::PipeFlags::CLOEXEC;
        let (exit_r, exit_w) =
            rustix::pipe::pipe_with(flags).map_err(|e| err(format!("create a pipe: {e}")))?;
        let (ready_r, ready_w) =
            rustix::pipe::pipe_with(flags).map_err(|e| err(format!("create a pipe: {e}")))?;
        // Only the high copies may stay open: a second write end of the ready pipe here
        // would hide slirp4netns' early death (no EOF).
        let (exit_r, ready_w) = {
            let high = (high(&exit_r)?, high(&ready_w)?);
            drop((exit_r, ready_w));
            high
        };
        let (er, rw) = (exit_r.as_raw_fd(), ready_w.as_raw_fd());
        let log = File::from(
            rustix::fs::memfd_create("slirp4netns-log", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| err(format!("create a log file: {e}")))?,
        );
        let program = find_program().ok_or_else(|| {
            err(
                "slirp4netns not found in PATH: install it (Debian package slirp4netns) or \
                 use --network host or none",
            )
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args(target, er, rw))
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                log.try_clone()
                    .map_err(|e| err(format!("duplicate the log file: {e}")))?,
            );
        let hook = move || -> std::io::Result<()> {
            for raw in [er, rw] {
                // SAFETY: both descriptors are open in the forked child (inherited; the
                // parent keeps them alive until spawn returns); borrowed for one fcntl.
                let fd = unsafe { BorrowedFd::borrow_raw(raw) };
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        };
        // SAFETY: the hook runs between fork and exec and only calls fcntl, which is
        // async-signal-safe; it allocates nothing.
        unsafe { cmd.pre_exec(hook) };
        let child = cmd
            .spawn()
            .map_err(|e| err(format!("start slirp4netns: {e}")))?;
        drop(exit_r);
        drop(ready_w);
        let mut slirp = Slirp {
            child: Some(child),
            exit: Some(exit_w),
        };
        match wait_ready(&ready_r) {
            Ok(()) => Ok(slirp),
            Err(why) => {
                slirp.stop();
                let mut log = log;
                let mut text = String::new();
                let _ = log.rewind();
                let _ = log.read_to_string(&mut text);
                let last = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("WARNING"))
                    .unwrap_or("")
                    .trim();
                Err(if last.is_empty() {
                    err(format!("slirp4netns {why}"))
                } else {
                    err(format!("slirp4netns {why}: {last}"))
                })
            }
        }
    }

    /// End slirp4netns. The namespace's processes are gone by now, so there is nothing left
    /// to carry: SIGKILL is as good as the exit fd and does not wait for its poll loop (the
    /// exit fd is what ends it when this process dies instead). Its exit closes the tap
    /// device, which costs the kernel 10-30 ms (unregistering a network device waits for
    /// RCU), so it is reaped on a thread of its own rather than on the caller's time.
    pub(crate) fn stop(&mut self) {
        self.exit = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Should no thread be available, it stays a zombie until this process exits.
            let _ = std::thread::Builder::new()
                .name("slirp4netns-reaper".into())
                .spawn(move || {
                    let _ = child.wait();
                });
        }
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Slirp {
    /// Still running (not exited, not stopped).
    fn alive(&mut self) -> bool {
        self.exit.is_some() && matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// A network namespace with slirp4netns attached, held by a descriptor.
#[derive(Debug)]
pub(crate) struct PrivateNet {
    pub(crate) ns: OwnedFd,
    slirp: Slirp,
}

/// A fresh network namespace: made by a short-lived thread that unshares its own and opens
/// it; the descriptor keeps it alive after the thread is gone.
fn new_netns() -> Result<OwnedFd> {
    std::thread::Builder::new()
        .name("strata-netns".into())
        .spawn(|| -> Result<OwnedFd> {
            // SAFETY: CLONE_NEWNET moves only this (throw-away) thread into a new network
            // namespace; no memory or other thread is affected.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .map_err(|e| err(format!("create a network namespace: {e}")))?;
            let f = File::open("/proc/thread-self/ns/net")
                .map_err(|e| err(format!("open the new network namespace: {e}")))?;
            Ok(OwnedFd::from(f))
        })
        .map_err(|e| err(format!("start a thread: {e}")))?
        .join()
        .map_err(|_| err("the namespace thread panicked"))?
}

/// Private networks kept for reuse, one run at a time each (BuildKit pools its network
/// namespaces the same way): a build's RUN steps then pay for slirp4netns once instead of
/// once per step. Dropping the pool stops its slirp4netns processes; they also exit with
/// this process (their exit fds close).
///
/// Reuse is safe because nothing of a run outlives it in the namespace: every process of
/// the run is dead when it is handed back (the pid namespace dies with its pid 1), so its
/// sockets are closed, and docker's capability set has no `CAP_NET_ADMIN`, so a run cannot
/// change addresses, routes or firewall rules for the next one.
#[derive(Debug, Default)]
pub struct NetworkPool {
    idle: std::sync::Mutex<Vec<PrivateNet>>,
}

/// Idle namespaces kept at most (the rest are stopped when handed back).
const POOL_MAX: usize = 8;

impl NetworkPool {
    /// An empty pool.
    pub fn new() -> NetworkPool {
        NetworkPool::default()
    }

    /// An idle private network, or a new one.
    pub(crate) fn take(&self) -> Result<PrivateNet> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match next {
                Some(mut n) => {
                    if n.slirp.alive() {
                        return Ok(n);
                    } // else its slirp4netns died: dropped
                }
                None => break,
            }
        }
        let ns = new_netns()?;
        let path = format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd());
        let slirp = Slirp::start(&Target::Path(path))?;
        Ok(PrivateNet { ns, slirp })
    }

    /// Hand a network back once every process that used it is gone.
    pub(crate) fn put_back(&self, mut n: PrivateNet) {
        if !n.slirp.alive() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(n);
        }
    }
}

/// slirp4netns in the caller's `PATH`, else in the usual system directories.
fn find_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(SLIRP))
        .find(|f| f.is_file())
}

/// Wait for slirp4netns' "ready" byte; EOF means it exited first.
fn wait_ready(ready: &OwnedFd) -> std::result::Result<(), String> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(ready, PollFlags::IN)];
    let timeout = rustix::event::Timespec {
        tv_sec: i64::from(READY_TIMEOUT_MS / 1000),
        tv_nsec: 0,
    };
    loop {
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return Err("did not configure the network in time".into()),
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    }
    let mut byte = [0u8; 1];
    match rustix::io::read(ready.as_fd(), &mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => Err("exited before configuring the network".into()),
        Err(e) => Err(format!("could not be waited for: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// slirp4netns that cannot attach says so at once, with its own words (needs
    /// slirp4netns installed, as every private network does).
    #[test]
    fn a_failing_slirp4netns_is_a_prompt_clear_error() {
        let t = std::time::Instant::now();
        let e = Slirp::start(&Target::Path("/nonexistent/netns".into())).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("private network: slirp4netns exited before configuring the network"),
            "{msg}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn args_isolate_the_host_loopback_and_tie_the_lifetime() {
        let a = args(&Target::Pid(42), 11, 12);
        assert!(a.contains(&"--disable-host-loopback".to_string()));
        assert!(a.contains(&"--configure".to_string()));
        assert!(a.contains(&"--exit-fd=11".to_string()));
        assert!(a.contains(&"--ready-fd=12".to_string()));
        assert_eq!(a[a.len() - 2..], ["42".to_string(), "tap0".to_string()]);
        let a = args(&Target::Path("/proc/1/fd/7".into()), 11, 12);
        assert_eq!(
            a[a.len() - 3..],
            ["--netns-type=path", "/proc/1/fd/7", "tap0"]
        );
    }
}
