//! The few system calls rustix does not wrap (or wraps only unsafely). Every `unsafe` block of
//! the crate lives here, each with its justification.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// `fork()`. Returns `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// Only called by the init helper, which is single-threaded by construction (it is a freshly
/// exec'd process that calls [`maybe_run_init`](crate::maybe_run_init) first thing in
/// `main`), so the child may allocate and run ordinary Rust code.
pub(crate) fn fork() -> io::Result<Option<i32>> {
    // SAFETY: the calling process has a single thread (see above), so no lock can be held by
    // another thread at the time of the fork and the child's heap and stdio are consistent.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// `_exit(code)`: leave without running destructors or flushing anything shared with the
/// parent (used by the forked init when it fails).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// `mount_setattr(dirfd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set})`.
pub(crate) fn mount_setattr(fd: BorrowedFd<'_>, attr_set: u64, recursive: bool) -> io::Result<()> {
    let mut attr = libc::mount_attr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` is a properly
    // initialised `struct mount_attr` that outlives the call, and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Bring the loopback interface of the current network namespace up (`SIOCSIFFLAGS`).
pub(crate) fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a zero-initialised buffer laid out like `struct ifreq` (16-byte name,
    // then the flags member of the union, padded to the union's 24 bytes), and it lives across
    // both calls; the socket fd is open.
    unsafe {
        if libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut req as *mut IfreqFlags,
        ) == -1
        {
            return Err(io::Error::last_os_error());
        }
        req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &mut req as *mut IfreqFlags,
        ) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `execve(path, argv, envp)`; returns only on failure.
pub(crate) fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: every pointer comes from a live `CString` and both arrays are NULL-terminated;
    // all of them outlive the call (which does not return on success).
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    io::Error::last_os_error()
}

/// Give the process about to exec default signal dispositions and an empty signal mask
/// (the Rust runtime ignores SIGPIPE, and ignored signals survive `execve`).
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting a default disposition has no memory-safety requirements; invalid
        // signal numbers only make the call fail, which is ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: `set` is initialised by `sigemptyset` before use and outlives the call.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: `kill` is async-signal-safe; it only sends a signal.
        unsafe { libc::kill(pid, sig) };
    }
}

/// In the helper: forward SIGTERM, SIGINT, SIGHUP and SIGQUIT to `pid` (the container's init).
/// The handlers are installed without `SA_RESTART` so that the helper's `poll` wakes up.
pub(crate) fn forward_signals_to(pid: i32) {
    FORWARD_TO.store(pid, Ordering::Relaxed);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: the handler only loads an atomic and calls the async-signal-safe `kill`;
        // `sa` is fully initialised (zeroed, then the handler and an empty mask set).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// `dup2(from, to)` (clears close-on-exec on `to`).
pub(crate) fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the fd table; `to` is one of the standard descriptors,
    // which no Rust object owns in the processes that call this (the helper and the init).
    if unsafe { libc::dup2(from, to) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `ioctl(fd, TIOCSWINSZ, {rows, cols})`: the size of a terminal.
pub(crate) fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize`, which `ws` is and which outlives the call;
    // `fd` is an open descriptor.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal the controlling terminal of this session.
pub(crate) fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    rustix::process::ioctl_tiocsctty(fd).map_err(io::Error::from)
}

/// `unshare(CLONE_NEWNS)`: give the calling process a private copy of the mount table.
pub(crate) fn unshare_mount_namespace() -> io::Result<()> {
    // SAFETY: CLONE_NEWNS changes only which mount namespace this (single-threaded) process
    // uses; it shares no memory, file table or thread state that Rust code relies on.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(io::Error::from)
}
