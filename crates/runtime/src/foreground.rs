//! A container in the foreground: the rootfs is an overlay of the image's layer snapshots
//! with a fresh upperdir under the store's `tmp/`, removed when the container exits (its
//! writes are discarded). The store lock is held shared for the whole run, so `prune` never
//! removes the snapshots or the upperdir of a running container. Published ports are proxied
//! from this process; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to it are forwarded to the
//! container's main process.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use anyhow::Result;
use store::Store;

use crate::signal::{self, SignalSet};
use crate::{cgroup, container, ports, spec, RunError, Spec, Volumes, EXIT_START};

/// A foreground container's cgroup, removed with it.
struct RemoveOnDrop(cgroup::Cgroup);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

/// The caller's standard streams, which the container uses: with a tty, its terminal output
/// is copied to `stdout` and the window size follows `stdout`'s (else `stdin`'s) terminal;
/// without one the container inherits this process's stdout and stderr. `interactive` also
/// gives it `stdin` (with a tty, the caller's terminal is in raw mode meanwhile); otherwise
/// its stdin is /dev/null.
pub struct Attach {
    pub stdin: std::io::Stdin,
    pub stdout: std::io::Stdout,
    pub interactive: bool,
}

impl Attach {
    /// The window size (rows, columns) of the caller's terminal: stdout's, else stdin's.
    pub(crate) fn winsize(&self) -> Option<(u16, u16)> {
        [self.stdout.as_raw_fd(), self.stdin.as_raw_fd()]
            .into_iter()
            .find_map(|fd| {
                // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails on a
                // non-terminal.
                let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
                // SAFETY: `ws` is a valid winsize for TIOCGWINSZ to write into.
                let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
                (r == 0).then_some((ws.ws_row, ws.ws_col))
            })
    }

    /// This process's stdin and stdout.
    pub fn std(interactive: bool) -> Attach {
        Attach {
            stdin: std::io::stdin(),
            stdout: std::io::stdout(),
            interactive,
        }
    }
}

/// Run a container in the foreground until it exits: its exit code (docker's: the low 8 bits,
/// 128+n for a signal), or why it could not be run with docker's 125/126/127.
pub fn run(store: &Store, spec: &Spec, attach: Attach) -> Result<u8, RunError> {
    // Locals drop in reverse order: the temp dir goes before the lock is released.
    let store = &store.lock_shared().map_err(|e| RunError::start(e.into()))?;
    // A private directory (the overlay's upper and work dirs and the executor's state).
    let tmp = store
        .scratch_dir("container")
        .map_err(|e| RunError::start(e.into()))?;
    let id = container::random_id();
    let prepared = spec::prepare(store, spec, tmp.path(), id.clone()).map_err(RunError::start)?;
    let ready = ports::bind(&prepared.config.ports).and_then(|l| {
        let exec_spec = spec::spec_of(&prepared.config, tmp.path())?;
        let cgroup_root = cgroup::root().unwrap_or_default();
        let cg = cgroup::Cgroup::create(&cgroup_root, &id, &prepared.config.resources)?;
        Ok((exec_spec, l, cg))
    });
    // The holds on its volumes live until the container has ended.
    let (mut exec_spec, listeners, cg) = match ready {
        Ok(r) => r,
        Err(e) => {
            prepared.discard(store.root());
            return Err(RunError::start(e));
        }
    };
    // Removed when the run ends, whichever way (its processes are gone by then).
    let _cgroup = cg.map(|cg| {
        exec_spec.cgroups = cg.dirs.clone();
        RemoveOnDrop(cg)
    });
    if spec.tty {
        exec_spec.tty = true;
        exec_spec.winsize = attach.winsize();
    } else {
        exec_spec.stdin = if attach.interactive {
            exec::Stdio::Inherit
        } else {
            exec::Stdio::Null
        };
        exec_spec.stdout = exec::Stdio::Inherit;
        exec_spec.stderr = exec::Stdio::Inherit;
    }
    let mut joining = crate::network::joining(&prepared.config, tmp.path());
    joining.name = spec.name.clone().unwrap_or_default();
    exec_spec.network_hook = crate::network::hook(store.root(), joining);
    let tty = exec_spec.tty;
    let start = || {
        exec::spawn(&exec_spec).map_err(|e| RunError {
            code: spawn_error_code(&e),
            message: e.to_string(),
        })
    };
    let result = attached(tty, attach, listeners, start);
    let released = crate::network::release(store.root(), &prepared.config);
    let spec::Prepared { config, holds, .. } = prepared;
    drop(holds);
    if spec.auto_remove {
        // As docker's `--rm`: the container's anonymous volumes go with it.
        let removed = Volumes::open(store).and_then(|v| v.remove_anonymous(&config.mounts));
        if let (Err(e), Ok(_)) = (removed, &result) {
            return Err(RunError::start(e));
        }
    }
    if let (Err(e), Ok(_)) = (released, &result) {
        return Err(RunError::start(e));
    }
    result
}

/// Start a process with `start` (a container, or a process in one), relay its terminal and
/// signals, wait for it: its exit code.
pub(crate) fn attached(
    tty: bool,
    attach: Attach,
    listeners: Vec<ports::Bound>,
    start: impl FnOnce() -> Result<exec::Running, RunError>,
) -> Result<u8, RunError> {
    // Block the signals to forward before any thread exists, so every thread inherits the
    // mask and only the forwarding thread receives them (with sigwaitinfo). The executor's
    // helper starts with an empty mask (std resets it), and so does the container.
    let signals = SignalSet::new(tty);
    signals.block();
    let mut running = start()?;
    if let Err(e) = ports::start(listeners, running.pid()) {
        let message = format!("publish ports: {e:#}");
        let _ = running.kill();
        let _ = running.wait();
        return Err(RunError {
            code: EXIT_START,
            message,
        });
    }
    let terminal = [attach.stdout.as_raw_fd(), attach.stdin.as_raw_fd()];
    let pidfd = signal::pidfd_open(running.pid()).map(Arc::new);
    let master = running.pty.take().map(Arc::new);
    if let Some(m) = &master {
        copy_winsize(terminal, m.as_raw_fd());
    }
    {
        let pidfd = pidfd.clone();
        let master = master.clone();
        // Lives until the process exits (and keeps the descriptors it uses open).
        std::thread::spawn(move || signal::forward(signals, pidfd, master, terminal));
    }
    let raw = match &master {
        Some(_) if attach.interactive => RawMode::enable(terminal[1]),
        _ => None,
    };
    let Attach {
        stdin,
        stdout,
        interactive,
    } = attach;
    let output = master
        .clone()
        .map(|m| std::thread::spawn(move || pty_to_stdout(&m, stdout)));
    if let (Some(m), true) = (&master, interactive) {
        let m = m.clone();
        // Blocked in read(stdin) until the process exits: never joined.
        std::thread::spawn(move || stdin_to_pty(&m, stdin));
    }
    let status = running.wait();
    // Every process of the container is gone: the terminal's output drains, then EIO.
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw);
    drop(running);
    match status {
        Ok(s) => Ok((s.code & 0xff) as u8),
        Err(e) => Err(RunError {
            code: EXIT_START,
            message: e.to_string(),
        }),
    }
}

/// docker's codes for a container that could not be started: 127 for a command not found,
/// 126 for one that cannot be executed, 125 for everything else.
pub(crate) fn spawn_error_code(e: &exec::Error) -> u8 {
    match e {
        exec::Error::Exec {
            kind: exec::ExecFailure::NotFound,
            ..
        } => 127,
        exec::Error::Exec {
            kind: exec::ExecFailure::NotExecutable,
            ..
        } => 126,
        _ => EXIT_START,
    }
}

/// Copy the caller's window size (the first of `terminal` that is a terminal) to the
/// container's pty.
pub(crate) fn copy_winsize(terminal: [RawFd; 2], master: RawFd) {
    for fd in terminal {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails on a non-terminal.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: `ws` is a valid winsize for TIOCGWINSZ to write into.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            // SAFETY: TIOCSWINSZ reads the winsize; `master` is an open pty master.
            unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
            return;
        }
    }
}

/// The caller's terminal in raw mode while the container runs; restored on drop.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enable(fd: RawFd) -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails on a non-terminal.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid termios for tcgetattr to write into.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the copy; tcsetattr applies it to the terminal.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return None;
            }
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable` on the same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved);
        }
    }
}

/// The container's terminal output to the caller's stdout, until the terminal hangs up (EIO
/// once the container's processes are gone).
fn pty_to_stdout(master: &File, stdout: std::io::Stdout) {
    let mut buf = [0u8; 16 * 1024];
    let mut out = stdout.lock();
    loop {
        match (&*master).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// The caller's stdin to the container's terminal (the keystrokes, in raw mode).
fn stdin_to_pty(master: &File, stdin: std::io::Stdin) {
    let mut buf = [0u8; 16 * 1024];
    let mut input = stdin.lock();
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if (&*master).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}
