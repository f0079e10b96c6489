//! What every adversarial test checks after the attack: a canary file outside the store is
//! untouched, nothing is mounted under the test's directory and no process is left running
//! with its cwd, root or an open file there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A file outside the store whose bytes, mode and mtime must survive the test.
pub struct Canary {
    pub path: PathBuf,
    bytes: Vec<u8>,
    meta: (u32, i64, i64),
}

impl Canary {
    /// Writes `dir/canary` (dir outside the store).
    pub fn new(dir: &Path) -> Canary {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join("canary");
        let bytes = format!(
            "canary {} {:?}\n",
            std::process::id(),
            std::time::SystemTime::now()
        )
        .into_bytes();
        std::fs::write(&path, &bytes).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        Canary {
            meta: (m.mode(), m.mtime(), m.mtime_nsec()),
            path,
            bytes,
        }
    }

    /// Panics when the canary was changed, replaced or removed.
    pub fn check(&self) {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(&self.path)
            .unwrap_or_else(|e| panic!("canary {} is gone: {e}", self.path.display()));
        assert!(
            m.file_type().is_file(),
            "canary {} replaced",
            self.path.display()
        );
        assert_eq!(
            (m.mode(), m.mtime(), m.mtime_nsec()),
            self.meta,
            "canary {} touched",
            self.path.display()
        );
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            self.bytes,
            "canary changed"
        );
    }
}

/// Mount points under `dir` in this (the host's) mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&d))
        .map(String::from)
        .collect()
}

/// Processes (other than this one) whose cwd, root or an open descriptor is under `dir`.
pub fn processes_under(dir: &Path) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let p = e.path();
        let mut links: Vec<PathBuf> = vec![p.join("cwd"), p.join("root")];
        if let Ok(fds) = std::fs::read_dir(p.join("fd")) {
            links.extend(fds.flatten().map(|f| f.path()));
        }
        if links
            .iter()
            .filter_map(|l| std::fs::read_link(l).ok())
            .any(|t| t.starts_with(dir))
        {
            let cmd = std::fs::read(p.join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

/// Panics when anything is left mounted or running under `dir` (waits up to 2 s for
/// processes that are already on their way out).
pub fn nothing_left(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let m = mounts_under(dir);
        let p = processes_under(dir);
        if m.is_empty() && p.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "left behind under {}: mounts {m:?}, processes {p:?}",
                dir.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A throw-away store holding `busybox:local`.
pub fn with_busybox() -> crate::common::Env {
    let env = crate::common::Env::new();
    let tar = env.path("busybox.tar");
    crate::common::busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    env
}

/// The standard prologue: a store with `busybox:local` and a canary beside it.
pub fn setup() -> (crate::common::Env, Canary) {
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    (env, canary)
}

/// The standard epilogue: canary intact, nothing left under the test's directory.
pub fn after(canary: &Canary, env: &crate::common::Env) {
    canary.check();
    nothing_left(env.dir.path());
}
