//! Resource limits (`run --memory`, `--memory-swap`, `--cpus`, `--pids-limit`): a cgroup of
//! the container's own, `<root>/strata/<id>` on the unified hierarchy (cgroup v2), or
//! `<root>/<controller>/strata/<id>` in each v1 hierarchy it needs (`memory`, `cpu`, `pids`;
//! a hybrid host, v1 controllers with an empty v2 hierarchy beside them, is v1 here).
//!
//! The runtime creates the cgroup and writes the limits before the container starts; the
//! executor's init joins it (writes itself into `cgroup.procs`) before it does anything
//! else, so no instruction of the container runs outside the limits; an `exec`'d process
//! joins it before it is forked. The cgroup is removed when the container has exited (its
//! processes are gone then: the kernel kills a pid namespace with its pid 1).
//!
//! A container without limits gets no cgroup (it stays in strata's own).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where the host mounts its cgroup hierarchies.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// The period of `--cpus` (docker's: 100 ms).
const CPU_PERIOD: i64 = 100_000;

/// docker's smallest memory limit (6 MiB).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The limits, as docker's HostConfig holds them (0 is "not set").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `--memory`, bytes.
    #[serde(default)]
    pub memory: i64,
    /// `--memory-swap`: memory plus swap, bytes; -1 is unlimited swap; 0 is docker's default
    /// (as much swap as memory).
    #[serde(default)]
    pub memory_swap: i64,
    /// `--cpus` × 10⁹.
    #[serde(default)]
    pub nano_cpus: i64,
    /// `--pids-limit`; 0 or -1 is unlimited.
    #[serde(default)]
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// No limit at all: the container needs no cgroup.
    pub fn is_empty(&self) -> bool {
        self.memory == 0
            && self.memory_swap == 0
            && self.nano_cpus == 0
            && self.pids_limit.is_none_or(|p| p <= 0)
    }

    /// docker's checks of the values (its messages), before anything is created.
    pub fn validate(&self) -> Result<()> {
        if self.memory != 0 && self.memory < MIN_MEMORY {
            bail!("Minimum memory limit allowed is 6MB");
        }
        if self.memory_swap != 0 && self.memory_swap != -1 {
            if self.memory == 0 {
                bail!(
                    "You should always set the Memory limit when using Memoryswap limit, see \
                     usage"
                );
            }
            if self.memory_swap < self.memory {
                bail!("Minimum memoryswap limit should be larger than memory limit, see usage");
            }
        }
        if self.nano_cpus < 0 {
            bail!("invalid value: NanoCPUs can not be negative");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if self.nano_cpus > cores * 1_000_000_000 {
            bail!(
                "range of CPUs is from 0.01 to {cores}.00, as there are only {cores} CPUs \
                 available"
            );
        }
        Ok(())
    }

    /// Swap allowed on top of memory, in bytes (`None`: unlimited), by docker's rules.
    fn swap(&self) -> Option<i64> {
        match self.memory_swap {
            -1 => None,
            0 => Some(self.memory),
            total => Some(total - self.memory),
        }
    }

    /// The controllers these limits need.
    fn controllers(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.memory != 0 {
            c.push("memory");
        }
        if self.nano_cpus != 0 {
            c.push("cpu");
        }
        if self.pids_limit.is_some_and(|p| p > 0) {
            c.push("pids");
        }
        c
    }
}

/// `--cpus 1.5` as docker's NanoCpus.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid argument {s:?} for \"--cpus\" flag"))?;
    if !v.is_finite() || v < 0.0 {
        bail!("invalid argument {s:?} for \"--cpus\" flag");
    }
    Ok((v * 1e9).round() as i64)
}

/// docker's words for a limit the host cannot enforce, naming the controller.
fn unsupported(controller: &str) -> String {
    let what = match controller {
        "memory" => "Your kernel does not support memory limit capabilities",
        "cpu" => "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler",
        _ => "Your kernel does not support PIDs limit capabilities",
    };
    format!("{what} or the cgroup is not mounted (no \"{controller}\" cgroup controller)")
}

/// Where containers' cgroups go: the host's hierarchy as real root; rootless
/// ([`exec::userns::active`]), the cgroup v2 subtree systemd delegates to the user
/// (`user@UID.service`), or `Err` with why there is none (then limits are discarded with a
/// warning, as docker does where the kernel lacks a controller).
pub fn root() -> std::result::Result<PathBuf, String> {
    let fs = Path::new(DEFAULT_ROOT);
    if !exec::userns::active() {
        return Ok(fs.to_path_buf());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    delegated(fs, &own, exec::userns::host_uid())
}

/// The subtree of `cgroupfs` delegated to `uid`, from this process's `/proc/self/cgroup`
/// text: the `user@UID.service` cgroup above the process's own, on a unified hierarchy,
/// writable, with the memory, pids and cpu controllers available.
pub fn delegated(
    cgroupfs: &Path,
    proc_self_cgroup: &str,
    uid: u32,
) -> std::result::Result<PathBuf, String> {
    if layout(cgroupfs) == Layout::Legacy {
        return Err(
            "cgroup v1 (or hybrid) hierarchy: cgroups are never delegated to \
                    unprivileged users there"
                .into(),
        );
    }
    let no = || {
        format!(
            "no cgroup v2 subtree delegated to uid {uid} (systemd's user@{uid}.service with \
             Delegate=yes; for example a login session, or `systemd-run --user --scope`)"
        )
    };
    let own = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(no)?;
    let unit = format!("user@{uid}.service");
    let mut path = PathBuf::new();
    let mut found = None;
    for c in own
        .split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
    {
        path.push(c);
        if c == unit {
            found = Some(path.clone());
            break;
        }
    }
    let dir = cgroupfs.join(found.ok_or_else(no)?);
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).map_err(|_| no())?;
    let missing: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| !controllers.split_whitespace().any(|x| x == *c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the cgroup {} delegated to uid {uid} lacks the {} controller(s)",
            dir.display(),
            missing.join(", ")
        ));
    }
    if rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK).is_err() {
        return Err(format!("the cgroup {} is not writable", dir.display()));
    }
    Ok(dir)
}

/// How the host's cgroups are mounted under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2: one hierarchy, `cgroup.controllers` at its root.
    Unified,
    /// cgroup v1 (or hybrid): one directory per controller.
    Legacy,
}

/// The layout of the cgroup mount at `root`.
pub fn layout(root: &Path) -> Layout {
    if root.join("cgroup.controllers").is_file() {
        Layout::Unified
    } else {
        Layout::Legacy
    }
}

/// A container's cgroup: one directory (v2) or one per controller (v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub layout: Layout,
    /// Every directory, to join and to remove.
    pub dirs: Vec<PathBuf>,
    /// The directory holding the memory controller's files, with a memory limit.
    memory: Option<PathBuf>,
}

impl Cgroup {
    /// The cgroup for `id` under `root` with the limits `r` written; `None` without limits.
    /// A controller the host lacks is an error in docker's words; a cgroup left from an
    /// earlier run of the container is reused.
    pub fn create(root: &Path, id: &str, r: &Resources) -> Result<Option<Cgroup>> {
        if r.is_empty() {
            return Ok(None);
        }
        let made = match layout(root) {
            Layout::Unified => create_unified(root, id, r),
            Layout::Legacy => create_legacy(root, id, r),
        };
        made.map(Some)
    }

    /// The cgroup of `id` under `root`, as [`create`](Self::create) made it (for the end of
    /// a container whose limits were written by another process).
    pub fn existing(root: &Path, id: &str, r: &Resources) -> Option<Cgroup> {
        if r.is_empty() {
            return None;
        }
        let (dirs, memory) = match layout(root) {
            Layout::Unified => {
                let d = root.join("strata").join(id);
                (vec![d.clone()], (r.memory != 0).then_some(d))
            }
            Layout::Legacy => {
                let dirs: Vec<PathBuf> = r
                    .controllers()
                    .iter()
                    .map(|c| root.join(c).join("strata").join(id))
                    .collect();
                let memory = (r.memory != 0).then(|| root.join("memory/strata").join(id));
                (dirs, memory)
            }
        };
        Some(Cgroup {
            layout: layout(root),
            dirs,
            memory,
        })
    }

    /// Whether the memory limit's OOM killer killed a process of the cgroup.
    pub fn oom_killed(&self) -> bool {
        self.oom_kills() > 0
    }

    /// How many processes the memory limit's OOM killer killed in the cgroup (`oom_kill` of
    /// v2's `memory.events`, of v1's `memory.oom_control`).
    pub fn oom_kills(&self) -> u64 {
        let Some(m) = &self.memory else {
            return 0;
        };
        let file = match self.layout {
            Layout::Unified => "memory.events",
            Layout::Legacy => "memory.oom_control",
        };
        let text = std::fs::read_to_string(m.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// Remove the directories (the container's processes are gone, or going: a cgroup with
    /// a process left is retried for up to 5 s).
    pub fn remove(&self) -> Result<()> {
        for d in &self.dirs {
            let end = Instant::now() + Duration::from_secs(5);
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("remove cgroup {}", d.display()))
                    }
                }
            }
        }
        Ok(())
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).with_context(|| format!("write {value:?} to {}", p.display()))
}

fn mkdir(d: &Path) -> Result<()> {
    match std::fs::create_dir(d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create cgroup {}", d.display())),
    }
}

fn create_unified(root: &Path, id: &str, r: &Resources) -> Result<Cgroup> {
    let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted = r.controllers();
    for c in &wanted {
        if !available.split_whitespace().any(|a| a == *c) {
            bail!(unsupported(c));
        }
    }
    // Each level down to the container's enables the controllers for its children.
    let parent = root.join("strata");
    mkdir(&parent)?;
    let enable: String = wanted
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    for d in [root, parent.as_path()] {
        let on = std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap_or_default();
        if wanted
            .iter()
            .all(|c| on.split_whitespace().any(|a| a == *c))
        {
            continue;
        }
        write(d, "cgroup.subtree_control", &enable).with_context(|| {
            format!(
                "enable the {} cgroup controllers for {}",
                wanted.join(", "),
                d.display()
            )
        })?;
    }
    let dir = parent.join(id);
    mkdir(&dir)?;
    let cg = Cgroup {
        layout: Layout::Unified,
        dirs: vec![dir.clone()],
        memory: (r.memory != 0).then(|| dir.clone()),
    };
    let written = (|| {
        if r.memory != 0 {
            write(&dir, "memory.max", &r.memory.to_string())?;
            if dir.join("memory.swap.max").exists() {
                let swap = r.swap().map_or("max".to_string(), |s| s.to_string());
                write(&dir, "memory.swap.max", &swap)?;
            }
        }
        if r.nano_cpus != 0 {
            let quota = r.nano_cpus * CPU_PERIOD / 1_000_000_000;
            write(
                &dir,
                "cpu.max",
                &format!("{} {CPU_PERIOD}", quota.max(1000)),
            )?;
        }
        if let Some(p) = r.pids_limit.filter(|p| *p > 0) {
            write(&dir, "pids.max", &p.to_string())?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = cg.remove();
        return Err(e);
    }
    Ok(cg)
}

fn create_legacy(root: &Path, id: &str, r: &Resources) -> Result<Cgroup> {
    let wanted = r.controllers();
    // `cgroup.procs` says a hierarchy is mounted there; its root has some of the
    // controller's files (`memory.*`, `cpu.*`) or none (the pids root has no `pids.*`), so
    // the mount's options say which controllers it has.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let has = |c: &str| {
        let d = root.join(c);
        let prefix = format!("{c}.");
        let files = std::fs::read_dir(&d).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        });
        d.join("cgroup.procs").is_file() && (files || mounted_with(&mountinfo, &d, c))
    };
    for c in &wanted {
        if !has(c) {
            bail!(unsupported(c));
        }
    }
    let mut cg = Cgroup {
        layout: Layout::Legacy,
        dirs: Vec::new(),
        memory: None,
    };
    let written = (|| {
        for c in &wanted {
            let parent = root.join(c).join("strata");
            mkdir(&parent)?;
            let dir = parent.join(id);
            mkdir(&dir)?;
            cg.dirs.push(dir.clone());
            match *c {
                "memory" => {
                    cg.memory = Some(dir.clone());
                    write(&dir, "memory.limit_in_bytes", &r.memory.to_string())?;
                    if dir.join("memory.memsw.limit_in_bytes").exists() {
                        let total = r.swap().map_or(-1, |s| r.memory + s);
                        write(&dir, "memory.memsw.limit_in_bytes", &total.to_string())?;
                    }
                }
                "cpu" => {
                    let quota = r.nano_cpus * CPU_PERIOD / 1_000_000_000;
                    write(&dir, "cpu.cfs_period_us", &CPU_PERIOD.to_string())?;
                    write(&dir, "cpu.cfs_quota_us", &quota.max(1000).to_string())?;
                }
                _ => {
                    let p = r.pids_limit.unwrap_or(0);
                    write(&dir, "pids.max", &p.to_string())?;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = cg.remove();
        return Err(e);
    }
    Ok(cg)
}

/// Whether `/proc/self/mountinfo` has a v1 cgroup mount at `dir` with `controller` among
/// its options.
fn mounted_with(mountinfo: &str, dir: &Path, controller: &str) -> bool {
    let Some(dir) = dir.to_str() else {
        return false;
    };
    mountinfo.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            return false;
        };
        f.get(4) == Some(&dir)
            && f.get(sep + 1) == Some(&"cgroup")
            && f.get(sep + 3)
                .is_some_and(|o| o.split(',').any(|o| o == controller))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Resources {
        Resources {
            memory: 64 << 20,
            memory_swap: 0,
            nano_cpus: 500_000_000,
            pids_limit: Some(20),
        }
    }

    #[test]
    fn unified_files_written() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        // A fake cgroupfs has no controller files: make the parent's ahead.
        std::fs::create_dir(root.join("strata")).unwrap();
        std::fs::write(root.join("strata/cgroup.subtree_control"), "").unwrap();
        let cg = Cgroup::create(root, "abc", &limits()).unwrap().unwrap();
        assert_eq!(cg.layout, Layout::Unified);
        let dir = root.join("strata/abc");
        assert_eq!(cg.dirs, vec![dir.clone()]);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "20");
        let enabled = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
        assert_eq!(enabled, "+memory +cpu +pids");
        assert!(!cg.oom_killed());
        std::fs::write(dir.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        assert!(cg.oom_killed());
    }

    #[test]
    fn unified_without_a_controller_is_docker_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu pids\n").unwrap();
        let e = Cgroup::create(root, "abc", &limits()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Your kernel does not support memory limit capabilities or the cgroup is not \
             mounted (no \"memory\" cgroup controller)"
        );
        assert!(!root.join("strata").exists(), "nothing created");
    }

    #[test]
    fn legacy_files_written_and_missing_controller() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for (c, f) in [
            ("memory", "memory.limit_in_bytes"),
            ("cpu", "cpu.cfs_quota_us"),
            ("pids", "cgroup.procs"),
        ] {
            std::fs::create_dir(root.join(c)).unwrap();
            std::fs::write(root.join(c).join(f), "").unwrap();
            std::fs::write(root.join(c).join("cgroup.procs"), "").unwrap();
        }
        let e = Cgroup::create(root, "abc", &limits()).unwrap_err();
        assert!(e.to_string().contains("PIDs limit"), "{e}");
        assert!(e.to_string().contains("\"pids\""), "{e}");
        let r = Resources {
            pids_limit: None,
            ..limits()
        };
        let cg = Cgroup::create(root, "abc", &r).unwrap().unwrap();
        assert_eq!(cg.layout, Layout::Legacy);
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(
            read("memory/strata/abc/memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("cpu/strata/abc/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu/strata/abc/cpu.cfs_period_us"), "100000");
        assert_eq!(Cgroup::existing(root, "abc", &r), Some(cg));
    }

    #[test]
    fn no_limits_no_cgroup_and_docker_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let none = Cgroup::create(tmp.path(), "abc", &Resources::default()).unwrap();
        assert_eq!(none, None);
        let small = Resources {
            memory: 1 << 20,
            ..Resources::default()
        };
        assert_eq!(
            small.validate().unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        let swap_only = Resources {
            memory_swap: 1 << 30,
            ..Resources::default()
        };
        assert!(swap_only.validate().is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("x").is_err());
        assert_eq!(limits().swap(), Some(64 << 20));
    }

    fn fake_cgroupfs(controllers: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        let d = t
            .path()
            .join("user.slice/user-1000.slice/user@1000.service");
        std::fs::create_dir_all(d.join("app.slice/term.scope")).unwrap();
        std::fs::write(d.join("cgroup.controllers"), controllers).unwrap();
        t
    }

    #[test]
    fn delegated_subtree_is_the_users_service() {
        let t = fake_cgroupfs("cpu memory pids");
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n";
        assert_eq!(
            delegated(t.path(), own, 1000).unwrap(),
            t.path()
                .join("user.slice/user-1000.slice/user@1000.service")
        );
        // Another user's service is not ours; a session scope outside user@ is not delegated.
        assert!(delegated(t.path(), own, 1001)
            .unwrap_err()
            .contains("uid 1001"));
        let session = "0::/user.slice/user-1000.slice/session-3.scope\n";
        assert!(delegated(t.path(), session, 1000)
            .unwrap_err()
            .contains("no cgroup v2 subtree delegated"));
    }

    #[test]
    fn delegated_subtree_needs_the_controllers() {
        let t = fake_cgroupfs("cpu pids");
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n";
        let e = delegated(t.path(), own, 1000).unwrap_err();
        assert!(e.contains("lacks the memory controller"), "{e}");
    }

    #[test]
    fn cgroup_v1_is_never_delegated() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("memory")).unwrap();
        let own = "12:memory:/user.slice\n0::/user.slice/user-1000.slice/user@1000.service\n";
        assert!(delegated(t.path(), own, 1000)
            .unwrap_err()
            .contains("cgroup v1"));
    }
}
