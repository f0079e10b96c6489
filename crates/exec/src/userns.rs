//! Rootless mode: a user namespace of the calling user's own, kept alive by a *pause
//! process*, that every strata command of that user joins before it touches the store.
//!
//! Inside it the user is root (uid 0 maps to the user's uid) and the user's subordinate ids
//! (`/etc/subuid`, `/etc/subgid`, written by the setuid `newuidmap`/`newgidmap`) are ids
//! 1..N, so layers unpack with their owners (0:0, 1000:1000, ...) and a layer made from an
//! upperdir records the container's ids, never the host's subordinate ones: images built
//! rootless are the images built as root. Without subordinate ids (or without the uidmap
//! tools) the namespace maps the user alone ([`Mapping::Single`]).
//!
//! The pause process also owns a mount namespace (a slave copy of the host's): the bind
//! mounts a command leaves for later ones (network namespaces) live there. Because every
//! command joins the *same* namespaces, a container started by `run -d` in one command can
//! be joined by `exec` in the next (a process cannot enter namespaces owned by a sibling
//! user namespace). The pause process's pid and start time are kept in
//! `<state>/pause.pid` (`$XDG_RUNTIME_DIR/strata`, else `/tmp/strata-<uid>`, 0700 and owned by
//! the user), created under an flock; it is double-forked, in a session of its own, with
//! `/dev/null` as stdio and no other descriptor, so it never holds a caller's pipe.
//!
//! [`enter`] must be called while the process is single-threaded (`setns(CLONE_NEWUSER)`
//! refuses a multi-threaded caller): first thing in `main`.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// How the user namespace maps ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// uid/gid 0 is the user, 1..=N the subordinate ranges.
    Full { uids: u64, gids: u64 },
    /// Only uid/gid 0 (the user) exists: chown to anyone else fails.
    Single { why: String },
}

/// Whether this process is in a user namespace other than the initial one (whose map is the
/// identity `0 0 4294967295`): strata in rootless mode.
pub fn active() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        fs::read_to_string("/proc/self/uid_map")
            .map(|m| !is_identity(&m))
            .unwrap_or(false)
    })
}

fn is_identity(map: &str) -> bool {
    let f: Vec<&str> = map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

/// The host uid that is root in this process's user namespace (the euid outside it as
/// real root).
pub fn host_uid() -> u32 {
    fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"0"))
                    .then(|| f.get(1)?.parse().ok())
                    .flatten()
            })
        })
        .unwrap_or_else(|| rustix::process::geteuid().as_raw())
}

/// How many ids (uids, gids) the current user namespace maps.
pub fn mapped_ids() -> (u64, u64) {
    let count = |p: &str| {
        fs::read_to_string(p)
            .map(|m| parse_map_count(&m))
            .unwrap_or(0)
    };
    (count("/proc/self/uid_map"), count("/proc/self/gid_map"))
}

fn parse_map_count(map: &str) -> u64 {
    map.lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// A subordinate id range of `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub count: u64,
}

/// The ranges of `user` (by name or numeric id) in a subuid/subgid file's text.
pub fn sub_ranges(text: &str, name: Option<&str>, id: u32) -> Vec<Range> {
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != id && Some(who) != name {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse().ok()?);
            (count > 0).then_some(Range { start, count })
        })
        .collect()
}

/// The argument list of `newuidmap PID ...`: 0 is `id`, the ranges follow from 1.
pub fn map_args(id: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_string(), id.to_string(), "1".to_string()];
    let mut next = 1u64;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next += r.count;
    }
    args
}

/// Why [`enter`] failed.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error(format!("{what}: {e}"))
}

/// The user's state directory for the pause process: `$XDG_RUNTIME_DIR/strata`, else
/// `/tmp/strata-<uid>`; made 0700 and required to be the user's own real directory.
pub fn state_dir(uid: u32) -> Result<PathBuf, Error> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if !x.is_empty() && owned_dir(Path::new(&x), uid) => {
            PathBuf::from(x).join("strata")
        }
        _ => PathBuf::from(format!("/tmp/strata-{uid}")),
    };
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(format_args!("create {}", dir.display()), e)),
    }
    if !owned_dir(&dir, uid) {
        return Err(Error(format!(
            "{} is not a directory of uid {uid} (refusing a planted one)",
            dir.display()
        )));
    }
    Ok(dir)
}

fn owned_dir(p: &Path, uid: u32) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0)
}

/// Join the user's rootless namespaces, creating them (and the pause process) the first
/// time. Returns the mapping in effect. The caller must be single-threaded.
pub fn enter() -> Result<Mapping, Error> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let dir = state_dir(uid)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("pause.lock"))
        .map_err(|e| err("open the pause lock", e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| err("lock the pause lock", e))?;
    let pidfile = dir.join("pause.pid");
    let pid = match alive_pause(&pidfile) {
        Some(pid) => pid,
        None => {
            let pid = start_pause(&dir, uid, gid)?;
            let start = start_time(pid).ok_or_else(|| Error("the pause process died".into()))?;
            let tmp = dir.join("pause.pid.tmp");
            fs::write(&tmp, format!("{pid} {start}\n")).map_err(|e| err("write pause.pid", e))?;
            fs::rename(&tmp, &pidfile).map_err(|e| err("write pause.pid", e))?;
            pid
        }
    };
    join(pid)?;
    drop(lock);
    let (uids, gids) = mapped_ids();
    if uids > 1 && gids > 1 {
        Ok(Mapping::Full { uids, gids })
    } else {
        let why = fs::read_to_string(dir.join("pause.why")).unwrap_or_default();
        Ok(Mapping::Single {
            why: why.trim().to_string(),
        })
    }
}

/// The pid of the pause process recorded in `pidfile`, if it still runs (same start time).
fn alive_pause(pidfile: &Path) -> Option<i32> {
    let text = fs::read_to_string(pidfile).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    (pid > 1 && start_time(pid) == Some(start)).then_some(pid)
}

/// The start time of `pid` (field 22 of `/proc/PID/stat`); `None` when it is gone or a
/// zombie (whose namespaces can no longer be opened).
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    match store::temp::parse_stat(&stat)? {
        ('Z' | 'X', _) => None,
        (_, start) => Some(start),
    }
}

fn join(pid: i32) -> Result<(), Error> {
    let open = |ns: &str| -> Result<fs::File, Error> {
        fs::File::open(format!("/proc/{pid}/ns/{ns}"))
            .map_err(|e| err(format_args!("open the pause process's {ns} namespace"), e))
    };
    let (user, mnt) = (open("user")?, open("mnt")?);
    let cwd = std::env::current_dir().ok();
    rustix::thread::move_into_link_name_space(
        rustix::fd::AsFd::as_fd(&user),
        Some(rustix::thread::LinkNameSpaceType::User),
    )
    .map_err(|e| {
        err(
            "join the user namespace (is strata single-threaded here?)",
            e,
        )
    })?;
    rustix::thread::move_into_link_name_space(
        rustix::fd::AsFd::as_fd(&mnt),
        Some(rustix::thread::LinkNameSpaceType::Mount),
    )
    .map_err(|e| err("join the mount namespace", e))?;
    // Joining a mount namespace moves the process to its root: back to where it was.
    if let Some(cwd) = cwd {
        std::env::set_current_dir(&cwd)
            .map_err(|e| err(format_args!("enter {} again", cwd.display()), e))?;
    }
    // Supplementary groups of the host are not mapped (they show as 65534): drop them where
    // the namespace allows it (not after `setgroups deny`).
    let _ = rustix::thread::set_thread_groups(&[]);
    Ok(())
}

fn pipe() -> Result<(fs::File, fs::File), Error> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| err("create a pipe", e))?;
    Ok((fs::File::from(r), fs::File::from(w)))
}

/// Fork the pause process (a grandchild, so nobody of ours has to reap it), map its new user
/// namespace and wait until it has made its mount namespace. Returns its pid.
fn start_pause(dir: &Path, uid: u32, gid: u32) -> Result<i32, Error> {
    let (mut from_child, child_w) = pipe()?;
    let (child_r, mut to_child) = pipe()?;
    let devnull = CString::new("/dev/null").expect("no NUL");
    // SAFETY: the caller is single-threaded (documented on `enter`), so the child may run
    // anything; it only makes raw system calls and exits with `_exit`.
    let first = unsafe { libc::fork() };
    if first < 0 {
        return Err(err("fork", io::Error::last_os_error()));
    }
    if first == 0 {
        // SAFETY: still single-threaded (a fork of a single-threaded process).
        unsafe { pause_child(child_w.as_raw_fd(), child_r.as_raw_fd(), &devnull) }
    }
    drop(child_w);
    drop(child_r);
    let mut status = 0;
    // SAFETY: waiting for the intermediate child we just forked.
    unsafe { libc::waitpid(first, &mut status, 0) };
    let mut buf = [0u8; 4];
    from_child
        .read_exact(&mut buf)
        .map_err(|_| Error("the pause process could not make a user namespace (are unprivileged user namespaces allowed here? sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces, a seccomp or AppArmor profile)".into()))?;
    let pid = i32::from_ne_bytes(buf);
    let why = map_ids(pid, uid, gid);
    let _ = fs::write(dir.join("pause.why"), why.as_deref().unwrap_or(""));
    to_child
        .write_all(b"m")
        .map_err(|e| err("signal the pause process", e))?;
    let mut ready = [0u8; 1];
    from_child
        .read_exact(&mut ready)
        .map_err(|_| Error("the pause process failed to make its mount namespace".into()))?;
    if ready[0] != b'r' {
        return Err(Error(
            "the pause process failed to make its mount namespace".into(),
        ));
    }
    Ok(pid)
}

/// Write the pause process's uid and gid maps: the full subordinate ranges through
/// newuidmap/newgidmap, else the user alone. Returns why the mapping is single, if it is.
fn map_ids(pid: i32, uid: u32, gid: u32) -> Option<String> {
    let name = user_name(uid);
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = fs::read_to_string("/etc/subgid").unwrap_or_default();
    let uranges = sub_ranges(&subuid, name.as_deref(), uid);
    let granges = sub_ranges(&subgid, name.as_deref(), gid);
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    let why = if uranges.is_empty() || granges.is_empty() {
        format!("no subordinate ids for {who} in /etc/subuid and /etc/subgid")
    } else {
        let run = |tool: &str, args: Vec<String>| -> Result<(), String> {
            let out = Command::new(tool)
                .arg(pid.to_string())
                .args(args)
                .output()
                .map_err(|e| format!("{tool}: {e} (install the uidmap package)"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{tool} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        match run("newuidmap", map_args(uid, &uranges))
            .and_then(|()| run("newgidmap", map_args(gid, &granges)))
        {
            Ok(()) => return None,
            Err(e) => e,
        }
    };
    // The user alone: an unprivileged process may map its own ids once setgroups is denied.
    let _ = fs::write(format!("/proc/{pid}/setgroups"), "deny");
    let _ = fs::write(format!("/proc/{pid}/uid_map"), format!("0 {uid} 1\n"));
    let _ = fs::write(format!("/proc/{pid}/gid_map"), format!("0 {gid} 1\n"));
    Some(why)
}

/// The login name of `uid` from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// The intermediate child: forks the pause process and exits.
///
/// # Safety
/// Only in the child of a fork of a single-threaded process.
unsafe fn pause_child(w: i32, r: i32, devnull: &CString) -> ! {
    // SAFETY: raw system calls on descriptors this process owns; `_exit` never returns.
    unsafe {
        let pid = libc::fork();
        if pid != 0 {
            libc::_exit(if pid < 0 { 1 } else { 0 });
        }
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, c"strata-pause".as_ptr());
        // Stdio on /dev/null, every other descriptor but the two pipe ends closed.
        let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(64, 65536) as i32;
        for fd in 3..max {
            if fd != w && fd != r {
                libc::close(fd);
            }
        }
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            libc::_exit(1);
        }
        let me = libc::getpid().to_ne_bytes();
        if libc::write(w, me.as_ptr().cast(), 4) != 4 {
            libc::_exit(1);
        }
        let mut b = 0u8;
        if libc::read(r, (&mut b as *mut u8).cast(), 1) != 1 {
            libc::_exit(1);
        }
        // The mount namespace, owned by the new user namespace (its mounts are slaves of
        // the host's, so later host mounts appear in it).
        let ok = libc::unshare(libc::CLONE_NEWNS) == 0;
        let reply = if ok { b'r' } else { b'f' };
        libc::write(w, (&reply as *const u8).cast(), 1);
        libc::close(w);
        libc::close(r);
        if !ok {
            libc::_exit(1);
        }
        libc::chdir(c"/".as_ptr());
        loop {
            libc::pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_is_the_initial_namespace() {
        assert!(is_identity("         0          0 4294967295\n"));
        assert!(!is_identity("         0       1000          1\n"));
        assert!(!is_identity("0 1000 1\n1 100000 65536\n"));
    }

    #[test]
    fn map_count_sums_lines() {
        assert_eq!(parse_map_count("0 1000 1\n1 100000 65536\n"), 65537);
        assert_eq!(parse_map_count(""), 0);
    }

    #[test]
    fn sub_ranges_by_name_or_id() {
        let text =
            "# comment\nalice:100000:65536\n1001:200000:1000\nbob:300000:0\nalice:500000:10\n";
        assert_eq!(
            sub_ranges(text, Some("alice"), 1000),
            vec![
                Range {
                    start: 100000,
                    count: 65536
                },
                Range {
                    start: 500000,
                    count: 10
                }
            ]
        );
        assert_eq!(
            sub_ranges(text, Some("carol"), 1001),
            vec![Range {
                start: 200000,
                count: 1000
            }]
        );
        // An empty range is no range.
        assert!(sub_ranges(text, Some("bob"), 1002).is_empty());
        assert!(sub_ranges("garbage\n::\nx:y:z\n", Some("x"), 1).is_empty());
    }

    #[test]
    fn map_args_put_the_user_at_zero_and_ranges_after() {
        let r = [
            Range {
                start: 100000,
                count: 65536,
            },
            Range {
                start: 500000,
                count: 10,
            },
        ];
        assert_eq!(
            map_args(1000, &r),
            ["0", "1000", "1", "1", "100000", "65536", "65537", "500000", "10"]
        );
    }
}
