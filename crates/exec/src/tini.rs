//! `docker run --init`: a tiny init as the container's pid 1, in the spirit of tini. The
//! container's init process, once everything is set up, forks: the child goes on to become
//! the command (pid 2, confined and exec'd exactly as pid 1 would have been), and pid 1
//! stays behind as strata's own code (the executable is never exec'd again, so nothing of
//! it needs to be in the rootfs). Pid 1 installs the container's seccomp filter, drops
//! every capability, then waits for signals with all of them blocked: it forwards each one
//! to the command (pid 1 of a namespace receives only what it handles; the command gets
//! what was sent to the container), reaps every child that ends (orphans are re-parented
//! to it, so no zombie stays), and when the command ends exits with its status (128 + the
//! signal when it was killed), which ends the container.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use crate::error::{step, SetupError};
use crate::sys;

/// Fork the command's process: `Ok(false)` in the child (which goes on to exec the
/// command), never returns in the parent, which becomes the tiny init.
pub(crate) fn fork_command(sync: &UnixStream, filters: &[Vec<u64>]) -> Result<bool, SetupError> {
    // Blocked before the fork, so no signal is lost between it and the wait loop; the
    // child's exec path resets the mask.
    // SAFETY: `all` is initialised by sigfillset before use and outlives the call.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    // SAFETY: this process is single-threaded (forked from the single-threaded helper), so
    // the child may run any code after fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(step("fork the command under --init")(
            std::io::Error::last_os_error(),
        ));
    }
    if child == 0 {
        return Ok(false);
    }
    // The sync socket is the command's (EOF at its exec tells the helper it started): this
    // process lets go of its copy. It never returns, so the owner never closes it again.
    // SAFETY: closing a descriptor this process holds; it is not used again here.
    unsafe { libc::close(sync.as_raw_fd()) };
    // `ps` in the container shows it as `strata-init`.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"strata-init".as_ptr()) };
    // The init's own confinement (the container's seccomp filter, no capabilities).
    if crate::init::confine_tiny_init(filters).is_err() {
        sys::exit_now(crate::init::EXIT_SETUP);
    }
    wait_loop(child)
}

fn wait_loop(child: libc::pid_t) -> ! {
    // SAFETY: `all` is initialised by sigfillset before use; sigwaitinfo writes into
    // `info`, a zeroed siginfo_t; waitpid writes into `status`; kill only sends a signal.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let code = if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        libc::WEXITSTATUS(status)
                    };
                    sys::exit_now(code);
                }
            }
        }
    }
}
