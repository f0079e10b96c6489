//! The init helper: a fresh, single-threaded process (the caller's own executable run with
//! `__strata-init <fd>`) already inside the new pid/uts/ipc[/net] namespaces. It prepares the
//! private files, forks the container's pid 1, relays its setup result, forwards signals,
//! kills it when the caller goes away, and cleans up after it.

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};

use crate::error::SetupError;
use crate::proto::{
    self, FromInit, HelperSpec, InitRootfs, InitSpec, Stub, ToHelper, ToParent, INIT_ARG,
};
use crate::{init, sys};

/// Largest spec accepted from the parent.
const MAX_SPEC: u64 = 64 << 20;

/// If this process was started as the init helper (`argv[1] == "__strata-init"`), run it and
/// exit; otherwise return at once. Call it first thing in `main`, before any thread exists.
pub fn maybe_run_init() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(OsStr::new(INIT_ARG)) {
        return;
    }
    let fd: Option<RawFd> = args.next().and_then(|a| a.to_str()?.parse().ok());
    let Some(fd) = fd.filter(|fd| *fd > 2) else {
        eprintln!("{INIT_ARG}: expected a control socket descriptor");
        std::process::exit(125);
    };
    std::process::exit(helper_main(fd))
}

fn helper_main(fd: RawFd) -> i32 {
    // SAFETY: the parent passed this descriptor (a socket it created for us) on the command
    // line and nothing else in this fresh process owns it.
    let control = unsafe { UnixStream::from_raw_fd(fd) };
    // The pre_exec hook cleared close-on-exec so that we could inherit it; the container
    // must not.
    if rustix::io::fcntl_setfd(&control, rustix::io::FdFlags::CLOEXEC).is_err() {
        return 125;
    }
    let spec = match read_spec(&control) {
        Ok(s) => s,
        Err(e) => {
            let _ = proto::send(&control, &ToParent::Failed(e));
            return 125;
        }
    };
    let spec = match spec {
        HelperSpec::Run(spec) => *spec,
        HelperSpec::Join(spec) => return crate::join::helper(&spec, &control),
    };
    let private = match make_private_dir(&spec) {
        Ok(p) => p,
        Err(e) => {
            let _ = proto::send(&control, &ToParent::Failed(e));
            return 125;
        }
    };
    let code = supervise(&spec, &private, &control);
    let _ = std::fs::remove_dir_all(&private);
    code
}

fn read_spec(mut control: &UnixStream) -> Result<HelperSpec, SetupError> {
    let fail = |e: std::io::Error| SetupError::setup("init helper: read the spec", e);
    let mut len = [0u8; 8];
    control.read_exact(&mut len).map_err(fail)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_SPEC {
        return Err(SetupError::setup(
            "init helper: read the spec",
            "spec too large",
        ));
    }
    let mut buf = vec![0u8; len as usize];
    control.read_exact(&mut buf).map_err(fail)?;
    serde_json::from_slice(&buf).map_err(|e| SetupError::setup("init helper: parse the spec", e))
}

/// `<state_dir>/strata-exec-<pid>-<n>/` (0700) holding `root/` (the mount point of the
/// rootfs) and the files bound onto /etc/hosts, /etc/resolv.conf and /etc/hostname.
fn make_private_dir(spec: &InitSpec) -> Result<PathBuf, SetupError> {
    let base = Path::new(&spec.state_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut dir = PathBuf::new();
    for attempt in 0.. {
        dir = base.join(format!(
            "strata-exec-{}-{nanos:x}{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => continue,
            Err(e) => {
                return Err(SetupError::setup(
                    format!("create the private directory {}", dir.display()),
                    crate::error::errno_text(&e.to_string()),
                ))
            }
        }
    }
    let write = |name: &str, content: &str| {
        std::fs::write(dir.join(name), content).map_err(|e| {
            SetupError::setup(
                format!("write {}", dir.join(name).display()),
                crate::error::errno_text(&e.to_string()),
            )
        })
    };
    let made = std::fs::create_dir(dir.join("root"))
        .map_err(|e| SetupError::setup("create the rootfs mount point", e))
        .and_then(|()| write("hosts", &spec.hosts))
        .and_then(|()| write("resolv.conf", &spec.resolv_conf))
        .and_then(|()| write("hostname", &format!("{}\n", spec.hostname)));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// What the init said on the sync socket.
#[derive(Default)]
struct InitReport {
    bytes: Vec<u8>,
    open: bool,
    tty_pending: bool,
    stubs: Vec<Stub>,
    failed: Option<SetupError>,
    stubs_seen: bool,
}

impl InitReport {
    /// Read what is available; returns false at EOF.
    fn read(&mut self, sync: &UnixStream, control: &UnixStream) -> bool {
        if self.tty_pending {
            self.tty_pending = false;
            return self.relay_pty(sync, control);
        }
        let mut buf = [0u8; 4096];
        match (&*sync).read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.bytes.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    /// First thing from a tty init: one byte with the pty master attached, which goes on to
    /// the parent the same way. Anything else (a setup error came first) is kept as data and
    /// the parent is told "no terminal" with a zero byte.
    fn relay_pty(&mut self, sync: &UnixStream, control: &UnixStream) -> bool {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let got = rustix::net::recvmsg(
            sync.as_fd(),
            &mut [std::io::IoSliceMut::new(&mut byte)],
            &mut cmsg,
            RecvFlags::CMSG_CLOEXEC,
        );
        let mut master: Option<OwnedFd> = None;
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                master = fds.next();
            }
        }
        let open = matches!(got, Ok(ref r) if r.bytes > 0);
        if open && master.is_none() {
            self.bytes.push(byte[0]);
        }
        send_fd(control, master.as_ref());
        open
    }

    fn parse(&mut self) {
        for line in self.bytes.split(|b| *b == b'\n') {
            match serde_json::from_slice::<FromInit>(line) {
                Ok(FromInit::Stubs(s)) => {
                    self.stubs.extend(s);
                    self.stubs_seen = true;
                }
                Ok(FromInit::Failed(e)) => self.failed = Some(e),
                Err(_) => {}
            }
        }
    }
}

/// Pass `fd` (or nothing) to the parent with a one-byte message.
fn send_fd(control: &UnixStream, fd: Option<&OwnedFd>) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds;
    let byte: &[u8] = match fd {
        Some(fd) => {
            fds = [fd.as_fd()];
            cmsg.push(SendAncillaryMessage::ScmRights(&fds));
            b"T"
        }
        None => b"\0",
    };
    let _ = rustix::net::sendmsg(
        control,
        &[std::io::IoSlice::new(byte)],
        &mut cmsg,
        SendFlags::empty(),
    );
}

/// A new container: fork its init, relay, and remove the mount-point stubs it reports
/// before the end is reported.
fn supervise(spec: &InitSpec, private: &Path, control: &UnixStream) -> i32 {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    relay(
        control,
        spec.tty,
        false,
        null,
        |sync| init::container_main(spec, private, sync),
        |reported| {
            let base = match &spec.rootfs {
                InitRootfs::Overlay { upper, .. } => upper,
                InitRootfs::Dir(d) => d,
            };
            let stubs: Vec<Stub> = reported
                .iter()
                .filter(|s| !(spec.keep_dir_stubs && s.dir))
                .cloned()
                .collect();
            remove_stubs(Path::new(base), &stubs);
            let _ = std::fs::remove_dir_all(private);
        },
    )
}

/// Fork the process `child` becomes (given its end of the sync socket), relay its setup
/// result and terminal to the caller, forward signals, kill it when the caller goes away
/// (unless `detach`), reap it, run `cleanup` with the mount-point stubs it reported, and
/// report its end. `null` (`/dev/null`) replaces this helper's standard streams, which are
/// the process's. Returns the exit code.
pub(crate) fn relay(
    control: &UnixStream,
    tty: bool,
    detach: bool,
    null: std::io::Result<std::fs::File>,
    child: impl FnOnce(UnixStream),
    cleanup: impl FnOnce(&[Stub]),
) -> i32 {
    let (sync_ours, sync_theirs) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            let _ = proto::send(
                control,
                &ToParent::Failed(SetupError::setup("create the sync socket", e)),
            );
            return 125;
        }
    };
    let pid = match sys::fork() {
        Ok(None) => {
            drop(sync_ours);
            // `child` execs or exits; it never returns.
            child(sync_theirs);
            sys::exit_now(125)
        }
        Ok(Some(pid)) => pid,
        Err(e) => {
            let _ = proto::send(
                control,
                &ToParent::Failed(SetupError::setup("fork the container init", e)),
            );
            return 125;
        }
    };
    drop(sync_theirs);
    sys::forward_signals_to(pid);
    // Our standard streams are the container's: let go of them so that readers see EOF
    // as soon as the container's processes are gone.
    if let Ok(null) = null {
        for fd in 0..3 {
            let _ = sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
        }
    }
    let child = Pid::from_raw(pid).expect("fork returned a positive pid");
    let pidfd = rustix::process::pidfd_open(child, PidfdFlags::empty()).ok();

    let mut report = InitReport {
        open: true,
        tty_pending: tty,
        ..Default::default()
    };
    let mut control_open = true;
    let mut control_buf = Vec::new();
    let mut reported = false;
    let kill = |sig: Signal| match &pidfd {
        Some(fd) => {
            let _ = rustix::process::pidfd_send_signal(fd, sig);
        }
        None => {
            let _ = rustix::process::kill_process(child, sig);
        }
    };
    loop {
        let mut fds = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        if report.open {
            fds.push(PollFd::new(&sync_ours, PollFlags::IN));
            which.push(0);
        }
        if control_open {
            fds.push(PollFd::new(control, PollFlags::IN));
            which.push(1);
        }
        match &pidfd {
            Some(fd) => {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(2);
            }
            None if !report.open && !control_open => break,
            None => {}
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, w)| *w)
            .collect();
        drop(fds);
        let mut exited = false;
        for w in ready {
            match w {
                0 => {
                    if !report.read(&sync_ours, control) {
                        report.open = false;
                        report.parse();
                        reported = true;
                        let msg = match report.failed.clone() {
                            Some(e) => ToParent::Failed(e),
                            None => ToParent::Started { pid },
                        };
                        let _ = proto::send(control, &msg);
                    }
                }
                1 => {
                    let mut buf = [0u8; 256];
                    match (&*control).read(&mut buf) {
                        Ok(0) | Err(_) => {
                            // The caller is gone or asked for a kill (a detached process
                            // outlives its caller).
                            control_open = false;
                            if !detach {
                                kill(Signal::KILL);
                            }
                        }
                        Ok(n) => {
                            control_buf.extend_from_slice(&buf[..n]);
                            while let Some(i) = control_buf.iter().position(|b| *b == b'\n') {
                                let line: Vec<u8> = control_buf.drain(..=i).collect();
                                if let Ok(ToHelper::Signal(s)) = serde_json::from_slice(&line) {
                                    // SAFETY: any signal number may be sent; an invalid one
                                    // only makes the call fail.
                                    kill(unsafe { Signal::from_raw_unchecked(s) });
                                }
                            }
                        }
                    }
                }
                _ => exited = true,
            }
        }
        if exited {
            break;
        }
    }

    let status = loop {
        match rustix::process::waitpid(Some(child), WaitOptions::empty()) {
            Ok(Some((_, st))) => break Some(st),
            Err(Errno::INTR) => continue,
            _ => break None,
        }
    };
    if !reported {
        // The init died: collect whatever it said before.
        while report.read(&sync_ours, control) {}
        report.parse();
        let msg = match report.failed.clone() {
            Some(e) => ToParent::Failed(e),
            None if report.stubs_seen => ToParent::Started { pid },
            None => ToParent::Failed(SetupError::setup(
                "container init",
                match status.and_then(|s| s.terminating_signal()) {
                    Some(sig) => format!("killed by signal {sig} during setup"),
                    None => "exited during setup".to_string(),
                },
            )),
        };
        let _ = proto::send(control, &msg);
    }
    cleanup(&report.stubs);

    let (code, signal) = match status {
        Some(st) => match (st.exit_status(), st.terminating_signal()) {
            (Some(c), _) => (c, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            _ => (255, None),
        },
        None => (255, None),
    };
    let _ = proto::send(control, &ToParent::Exited { code, signal });
    let _ = (&*control).flush();
    code
}

/// Remove the mount points the init created, if they are still empty, and give their parent
/// directories their old timestamps back, so nothing of the mounts is left in the layer.
fn remove_stubs(base: &Path, stubs: &[Stub]) {
    let Ok(base) = rustix::fs::open(
        base,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    for stub in stubs.iter().rev() {
        let (parent, name) = match stub.path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => (".", stub.path.as_str()),
        };
        let Ok(dir) = rustix::fs::openat2(
            &base,
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let removed = if stub.dir && ft == rustix::fs::FileType::Directory {
            rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).is_ok()
        } else if !stub.dir && ft == rustix::fs::FileType::RegularFile && st.st_size == 0 {
            rustix::fs::unlinkat(&dir, name, AtFlags::empty()).is_ok()
        } else {
            false
        };
        if let (true, Some([(asec, ansec), (msec, mnsec)])) = (removed, stub.parent_times) {
            let times = Timestamps {
                last_access: Timespec {
                    tv_sec: asec,
                    tv_nsec: ansec as _,
                },
                last_modification: Timespec {
                    tv_sec: msec,
                    tv_nsec: mnsec as _,
                },
            };
            let _ = rustix::fs::futimens(&dir, &times);
        }
    }
}
