//! Signals: docker's signal names, a pidfd-checked kill, and the foreground run's
//! forwarding of the caller's signals to the container.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

/// Send `sig` to the container's pid 1 through a pidfd, after checking its start time, so a
/// recycled pid is never signalled. `Ok(false)` when the process is already gone.
pub fn send(pid: u32, start: u64, sig: i32) -> Result<bool> {
    if pid == 0 {
        return Ok(false);
    }
    let Some(fd) = pidfd_open(pid) else {
        return Ok(false);
    };
    // The pidfd pins the process: if the start time matches now, it is the same process.
    if crate::container::proc_start(pid) != Some(start) {
        return Ok(false);
    }
    // SAFETY: pidfd_send_signal with an open pidfd and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(false);
        }
        return Err(e).context("send a signal to the container");
    }
    Ok(true)
}

/// A signal by name (`SIGTERM`, `TERM`) or number, as docker's StopSignal accepts it.
pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => bail!("invalid signal: {s}"),
    };
    Ok(n)
}

/// SIGPIPE back to its default disposition: a command writing into a closed pipe (`strata
/// images | head`) dies quietly, as other Unix tools do. Call first thing in `main`.
pub fn die_on_broken_pipe() {
    // SAFETY: restoring a signal's default disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The signals strata forwards (and, with a tty, SIGWINCH for the window size).
pub(crate) struct SignalSet(libc::sigset_t);

// SAFETY: a sigset_t is plain data.
unsafe impl Send for SignalSet {}

const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// `si_code` of signals the kernel generates itself, such as the terminal's ^C.
const SI_KERNEL: i32 = 0x80;

impl SignalSet {
    pub(crate) fn new(tty: bool) -> SignalSet {
        // SAFETY: sigemptyset/sigaddset initialise and fill the zeroed set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, s);
            }
            if tty {
                libc::sigaddset(&mut set, libc::SIGWINCH);
            }
            SignalSet(set)
        }
    }

    /// Block the set in the calling thread (and every thread it starts afterwards).
    pub(crate) fn block(&self) {
        // SAFETY: the set is initialised; a null old set is allowed.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut());
        }
    }
}

/// Receive the blocked signals for good: forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to the
/// container's pid 1, and on SIGWINCH copy the window size of `terminal` (the first of its
/// descriptors that is a terminal) to the container's terminal.
pub(crate) fn forward(
    set: SignalSet,
    pidfd: Option<Arc<OwnedFd>>,
    master: Option<Arc<File>>,
    terminal: [RawFd; 2],
) {
    loop {
        // SAFETY: siginfo_t is plain data; sigwaitinfo fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the set is initialised and `info` is a valid out-pointer.
        let sig = unsafe { libc::sigwaitinfo(&set.0, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig == libc::SIGWINCH {
            if let Some(m) = &master {
                crate::foreground::copy_winsize(terminal, m.as_raw_fd());
            }
            continue;
        }
        // The terminal's ^C (or ^\, or a hangup) went to its whole foreground process group,
        // which includes the executor's helper: it forwards those itself.
        if info.si_code == SI_KERNEL {
            continue;
        }
        if let Some(fd) = &pidfd {
            // SAFETY: pidfd_send_signal with a pidfd this thread keeps open, no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        }
    }
}

/// A pidfd for the container's pid 1, so a signal sent through it never reaches a recycled
/// pid; `None` when the process is gone.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor, which nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Set once SIGINT or SIGTERM arrived, after [`catch_interrupts`].
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGINT and SIGTERM no longer end this process: they set [`INTERRUPTED`], which a loop
/// polls (an attached `compose up` stopping its project on Ctrl-C).
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_interrupt as *const () as libc::sighandler_t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("int").unwrap(), libc::SIGINT);
        assert_eq!(parse("9").unwrap(), 9);
        assert!(parse("SIGNOPE").is_err());
        assert!(parse("0").is_err());
    }
}
