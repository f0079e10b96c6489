//! Temporary entries named after their owner, and the sweep that removes those whose owner
//! is gone.
//!
//! Every temporary strata makes — under the store's `tmp/` (ingests, unpacks, RUN upper and
//! work dirs, load spools) or beside a file it is about to replace (`save -o X`) — is named
//! `<kind>.<pid>.<start>.<n>` by [`temp_name`]: the pid and start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot) of the process that made it, and a counter. An
//! entry's owner is gone when no process has that pid, or the process that has it started
//! at another time (the pid was recycled), or it is a zombie (killed, not yet reaped). Any
//! command that takes the store lock sweeps `tmp/` of gone owners' entries
//! ([`sweep`]); a live owner's entry is never touched, whoever owns it.
//!
//! Limits: the owner is looked up in the sweeper's pid namespace, so two strata processes
//! sharing a store must share a pid namespace (a store is not meant to be shared across
//! containers); when `/proc` cannot be read, no owner is taken for gone.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub pid: u32,
    /// Clock ticks after boot at which the process started (`/proc/PID/stat` field 22).
    pub start: u64,
}

/// What `/proc/PID/stat` says of a pid.
#[derive(Debug, PartialEq, Eq)]
enum ProcState {
    /// No such process.
    Missing,
    /// A process that started at `start`; `zombie` when it has exited but is not reaped.
    Present { start: u64, zombie: bool },
    /// `/proc` could not be read (or parsed): nothing can be said.
    Unknown,
}

/// Parse the state and start time out of the text of `/proc/PID/stat`. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses: fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Field 3 is the state; field 22 the start time.
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

fn proc_state(pid: u32) -> ProcState {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => match parse_stat(&text) {
            Some((state, start)) => ProcState::Present {
                start,
                // A thread-group leader that exited before its other threads shows Z too:
                // only a zombie left with no thread is gone.
                zombie: matches!(state, 'Z' | 'X') && threads(pid) <= 1,
            },
            None => ProcState::Unknown,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Only believe "missing" when /proc is there at all.
            if Path::new("/proc/self/stat").exists() {
                ProcState::Missing
            } else {
                ProcState::Unknown
            }
        }
        Err(_) => ProcState::Unknown,
    }
}

fn threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

impl Owner {
    /// This process (looked up again after a fork).
    pub fn current() -> Owner {
        static CURRENT: Mutex<Option<Owner>> = Mutex::new(None);
        let pid = std::process::id();
        let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        match *cur {
            Some(o) if o.pid == pid => o,
            _ => {
                // /proc/self, and only when it names this pid: a /proc of another pid
                // namespace would give another process's start time.
                let start = fs::read_to_string("/proc/self/stat")
                    .ok()
                    .filter(|t| t.split(' ').next() == Some(pid.to_string().as_str()))
                    .and_then(|t| parse_stat(&t))
                    .map_or(0, |(_, start)| start);
                let o = Owner { pid, start };
                *cur = Some(o);
                o
            }
        }
    }

    /// Whether the process is certainly gone: no process with this pid, one that started
    /// at another time, or a zombie. When `/proc` cannot tell, it is not gone; nor is an
    /// owner whose start time is unknown (0: it could not read its own).
    pub fn is_gone(&self) -> bool {
        if self.start == 0 {
            return false;
        }
        match proc_state(self.pid) {
            ProcState::Missing => true,
            ProcState::Present { start, zombie } => start != self.start || zombie,
            ProcState::Unknown => false,
        }
    }
}

/// A fresh temporary name for this process: `<kind>.<pid>.<start>.<n>`.
pub fn temp_name(kind: &str) -> String {
    let o = Owner::current();
    format!(
        "{kind}.{}.{}.{}",
        o.pid,
        o.start,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The kind and owner a name made by [`temp_name`] carries; `None` for any other name.
pub fn temp_owner(name: &str) -> Option<(&str, Owner)> {
    let mut parts = name.rsplitn(4, '.');
    let n = parts.next()?;
    let start = parts.next()?;
    let pid = parts.next()?;
    let kind = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(n) && digits(start) && digits(pid)) {
        return None;
    }
    Some((
        kind,
        Owner {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        },
    ))
}

/// What a sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Names of the entries removed.
    pub entries: Vec<String>,
    /// Their size in bytes (file lengths, as `du --apparent-size`).
    pub bytes: u64,
}

/// Which entries of a directory a sweep considers.
#[derive(Clone, Copy, Debug)]
pub enum SweepScope<'a> {
    /// Entries named by [`temp_name`] whose owner is gone.
    DeadOwners,
    /// Those, and entries not named by [`temp_name`] (for prune, holding the store lock
    /// exclusive: no writer of an older strata can be at work).
    DeadOwnersAndUnnamed,
    /// Entries named by [`temp_name`] with this kind, whose owner is gone (siblings of an
    /// output file).
    Kind(&'a str),
    /// Entries named by [`temp_name`] with a kind starting with `.` (the temp files of
    /// [`crate::atomic_write`]), whose owner is gone.
    Hidden,
}

/// Remove the entries of `dir` that `scope` selects. Entries that hold a mount point (in
/// this process's mount namespace) are left alone; errors leave an entry for the next sweep.
pub fn sweep(dir: &Path, scope: SweepScope) -> Swept {
    let mut out = Swept::default();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    let mut gone: HashMap<Owner, bool> = HashMap::new();
    let mut mounts: Option<Vec<PathBuf>> = None;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            if matches!(scope, SweepScope::DeadOwnersAndUnnamed) {
                remove(
                    &e.path(),
                    &mut mounts,
                    &mut out,
                    &e.file_name().to_string_lossy(),
                );
            }
            continue;
        };
        let selected = match (temp_owner(name), scope) {
            (Some((kind, owner)), scope) => {
                let kind_ok = match scope {
                    SweepScope::Kind(k) => kind == k,
                    SweepScope::Hidden => kind.starts_with('.'),
                    _ => true,
                };
                kind_ok && *gone.entry(owner).or_insert_with(|| owner.is_gone())
            }
            (None, SweepScope::DeadOwnersAndUnnamed) => true,
            (None, _) => false,
        };
        if selected {
            remove(&e.path(), &mut mounts, &mut out, name);
        }
    }
    out.entries.sort();
    out
}

fn remove(p: &Path, mounts: &mut Option<Vec<PathBuf>>, out: &mut Swept, name: &str) {
    let mounts = mounts.get_or_insert_with(mount_points);
    if mounts.iter().any(|m| m.starts_with(p)) {
        return;
    }
    let size = crate::dir_size_of(p);
    if crate::remove_tree(p).is_ok() {
        out.entries.push(name.to_string());
        out.bytes += size;
    }
}

/// Mount points of this process's mount namespace (`/proc/self/mountinfo` field 5, with
/// its octal escapes undone).
fn mount_points() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|mp| PathBuf::from(unescape_mountinfo(mp)))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A directory under the store's `tmp/` named after this process, removed on drop unless
/// [`TempDir::keep`] is called (after it was renamed into place).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Create `<tmp>/<kind>.<pid>.<start>.<n>` (mode 0777 less the umask, as `mkdir`: an
    /// unpacked snapshot keeps it as its root's mode when the layer names none).
    pub fn new_in(tmp: &Path, kind: &str) -> io::Result<TempDir> {
        let path = tmp.join(temp_name(kind));
        fs::create_dir(&path)?;
        Ok(TempDir { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Do not remove the directory on drop (it was renamed away).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = crate::remove_tree(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("1 (x) Z"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn names_carry_their_owner() {
        let me = Owner::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start > 0);
        let n = temp_name("snap-abc.def");
        let (kind, o) = temp_owner(&n).unwrap();
        assert_eq!((kind, o), ("snap-abc.def", me));
        assert_ne!(temp_name("x"), temp_name("x"));
        for bad in [
            "leftover",
            "ingest-12-3",
            "a.1.2",
            "a.1.x.3",
            ".1.2.3.",
            "a..2.3",
        ] {
            assert_eq!(temp_owner(bad), None, "{bad}");
        }
        assert_eq!(
            temp_owner(".out.tar.strata-tmp.12.34.5"),
            Some((".out.tar.strata-tmp", Owner { pid: 12, start: 34 }))
        );
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mountinfo(r"/x\04"), r"/x\04");
    }

    /// A child that was killed and reaped: its pid names nobody (or a later process).
    fn dead_owner() -> Owner {
        let mut c = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = c.id();
        let ProcState::Present { start, .. } = proc_state(pid) else {
            panic!("no child")
        };
        c.kill().unwrap();
        c.wait().unwrap();
        Owner { pid, start }
    }

    #[test]
    fn owners_live_dead_recycled_and_zombie() {
        let me = Owner::current();
        assert!(!me.is_gone());
        assert!(dead_owner().is_gone());
        // An owner that could not read its start time is never taken for gone.
        let unknown = Owner {
            pid: dead_owner().pid,
            start: 0,
        };
        assert!(!unknown.is_gone());
        // A live pid with another start time: the pid was recycled.
        let recycled = Owner {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(recycled.is_gone());
        // pid 1 is always there.
        let init = match proc_state(1) {
            ProcState::Present { start, .. } => Owner { pid: 1, start },
            s => panic!("pid 1: {s:?}"),
        };
        assert!(!init.is_gone());
        // A killed child not yet reaped is a zombie: gone.
        let mut c = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = c.id();
        let ProcState::Present { start, .. } = proc_state(pid) else {
            panic!("no child")
        };
        let child = Owner { pid, start };
        assert!(!child.is_gone());
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !child.is_gone() {
            assert!(
                std::time::Instant::now() < deadline,
                "zombie not seen as gone"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        c.wait().unwrap();
        assert!(child.is_gone());
    }

    fn entry(dir: &Path, owner: Owner, kind: &str, bytes: usize) -> String {
        let name = format!("{kind}.{}.{}.0", owner.pid, owner.start);
        fs::create_dir(dir.join(&name)).unwrap();
        fs::write(dir.join(&name).join("data"), vec![7u8; bytes]).unwrap();
        name
    }

    #[test]
    fn sweep_removes_dead_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let me = Owner::current();
        let dead = dead_owner();
        let recycled = Owner {
            pid: me.pid,
            start: me.start + 7,
        };
        let mine = entry(d.path(), me, "run", 10);
        let gone = entry(d.path(), dead, "run", 100);
        let reused = entry(d.path(), recycled, "snap-x", 1000);
        fs::write(d.path().join("leftover"), b"xy").unwrap();
        // An overlay workdir as the kernel leaves it: a mode 000 directory with content.
        let work = d.path().join(&gone).join("work/work");
        fs::create_dir_all(work.join("inner")).unwrap();
        fs::write(work.join("inner/f"), b"abc").unwrap();
        fs::set_permissions(&work, fs::Permissions::from_mode(0o000)).unwrap();

        let s = sweep(d.path(), SweepScope::DeadOwners);
        let mut want = vec![gone.clone(), reused.clone()];
        want.sort();
        assert_eq!(s.entries, want);
        assert_eq!(s.bytes, 1103);
        assert!(d.path().join(&mine).join("data").exists());
        assert!(d.path().join("leftover").exists());
        assert!(!d.path().join(&gone).exists());

        // The prune scope takes unnamed entries too; still never a live owner's.
        let s = sweep(d.path(), SweepScope::DeadOwnersAndUnnamed);
        assert_eq!(s.entries, vec!["leftover".to_string()]);
        assert_eq!(s.bytes, 2);
        assert!(d.path().join(&mine).exists());
    }

    #[test]
    fn sweep_of_siblings_keeps_other_kinds() {
        let d = tempfile::tempdir().unwrap();
        let dead = dead_owner();
        let a = entry(d.path(), dead, ".a.tar.strata-tmp", 1);
        let b = entry(d.path(), dead, ".b.tar.strata-tmp", 1);
        let plain = entry(d.path(), dead, "abc", 1);
        let s = sweep(d.path(), SweepScope::Kind(".a.tar.strata-tmp"));
        assert_eq!(s.entries, vec![a]);
        assert!(d.path().join(&b).exists());
        let s = sweep(d.path(), SweepScope::Hidden);
        assert_eq!(s.entries, vec![b]);
        assert!(d.path().join(plain).exists());
    }

    /// Another live process's temporaries survive a sweep that runs while it works.
    #[test]
    fn a_live_concurrent_process_keeps_its_entries() {
        let d = tempfile::tempdir().unwrap();
        let mut c = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = c.id();
        let ProcState::Present { start, .. } = proc_state(pid) else {
            panic!("no child")
        };
        let theirs = entry(d.path(), Owner { pid, start }, "ingest", 5);
        for _ in 0..50 {
            let s = sweep(d.path(), SweepScope::DeadOwnersAndUnnamed);
            assert!(s.entries.is_empty(), "{s:?}");
        }
        assert!(d.path().join(&theirs).join("data").exists());
        c.kill().unwrap();
        c.wait().unwrap();
        let s = sweep(d.path(), SweepScope::DeadOwners);
        assert_eq!(s.entries, vec![theirs]);
    }

    #[test]
    fn temp_dir_is_removed_unless_kept() {
        let d = tempfile::tempdir().unwrap();
        let t = TempDir::new_in(d.path(), "x").unwrap();
        let p = t.path().to_path_buf();
        assert!(p.is_dir());
        drop(t);
        assert!(!p.exists());
        let t = TempDir::new_in(d.path(), "y").unwrap();
        let moved = d.path().join("moved");
        fs::rename(t.path(), &moved).unwrap();
        fs::create_dir(t.path()).unwrap(); // someone else's, made since the rename
        let p = t.keep();
        assert!(p.exists() && moved.exists());
    }
}
