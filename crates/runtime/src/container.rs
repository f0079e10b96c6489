//! Detached containers on disk: one directory per container under `<root>/containers/`.
//!
//! ```text
//! <root>/containers/.lock             flock: held exclusive to create (name check) or remove
//! <root>/containers/<id>/config.json  what to run (written once, before the supervisor starts)
//! <root>/containers/<id>/state.json   status, pids, exit code, times (tmp + rename)
//! <root>/containers/<id>/log          the output: docker's stdcopy frames, one per line
//! <root>/containers/<id>/upper, work  the overlay's writable side (kept until `rm`)
//! <root>/containers/<id>/state/       the executor's private files while it runs
//! <root>/containers/<id>/supervisor.log  the supervisor's own stderr (diagnostics)
//! <root>/roots/containers/<id>        GC root: the image's manifest digest
//! ```
//!
//! The GC root keeps the image's blobs and layer snapshots (the overlay's lowerdirs) alive
//! for as long as the container exists, even if its image is untagged or removed, so
//! `prune` never deletes what a container uses; no store lock is held while it runs.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::ports::PortMap;

/// The GC-root kind under `<root>/roots/`.
pub const ROOT_KIND: &str = "containers";

/// What the supervisor runs: everything decided by `strata run` before the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub name: String,
    /// The image as the user named it (docker's IMAGE column).
    pub image: String,
    /// The image id (`sha256:` + hex of the config).
    pub image_id: String,
    /// The manifest digest (the GC root).
    pub manifest: String,
    /// RFC 3339.
    pub created: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub hostname: String,
    /// `private`, `none` or `host`.
    pub network: String,
    /// Overlay lowerdirs, top first (absolute).
    pub lower: Vec<PathBuf>,
    pub tty: bool,
    pub ports: Vec<PortMap>,
    pub auto_remove: bool,
    /// The image's StopSignal, if any.
    pub stop_signal: Option<String>,
    /// The seccomp profile (`--security-opt seccomp=...`); absent in configs written before.
    #[serde(default)]
    pub seccomp: SeccompOpt,
    /// Bind mounts, volumes and tmpfs mounts, parents before what is beneath them.
    #[serde(default)]
    pub mounts: Vec<crate::mounts::MountPoint>,
    /// `--add-host` entries: name and address.
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--memory`, `--cpus`, `--pids-limit`...: the container's cgroup (`cgroup.rs`).
    #[serde(default)]
    pub resources: crate::cgroup::Resources,
    /// The image's HEALTHCHECK merged with `--health-*` (`health.rs`).
    #[serde(default)]
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// `--restart` (`restart.rs`).
    #[serde(default)]
    pub restart: crate::restart::RestartPolicy,
    /// `--init`: a tiny init as pid 1, the command its child.
    #[serde(default)]
    pub init: bool,
    /// `--stop-timeout` in seconds (`None`: docker's 10).
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// The image's labels with `--label`s over them (docker's Config.Labels).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// User-defined networks joined (`network` is then `private`), in order: `eth0`, ...
    #[serde(default)]
    pub networks: Vec<crate::network::NetworkAttach>,
}

/// `--security-opt seccomp=...`: the profile's text is kept (not its path), so the container
/// runs with what was given at `run` even if the file changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompOpt {
    /// Docker's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile in Docker's JSON format.
    Profile {
        /// The file as the user named it (for messages).
        path: String,
        /// Its contents.
        json: String,
    },
}

impl SeccompOpt {
    /// The executor's setting; a profile is compiled here (errors name the file).
    pub fn to_exec(&self) -> Result<exec::Seccomp> {
        Ok(match self {
            SeccompOpt::Default => exec::Seccomp::Default,
            SeccompOpt::Unconfined => exec::Seccomp::Unconfined,
            SeccompOpt::Profile { path, json } => exec::Seccomp::Profile(std::sync::Arc::new(
                exec::SeccompProfile::from_json(json.as_bytes())
                    .with_context(|| format!("seccomp profile {path}"))?,
            )),
        })
    }
}

/// What the supervisor records; replaced atomically.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// `created`, `running` or `exited`.
    pub status: String,
    /// Host pid of the container's pid 1 and its start time (clock ticks since boot).
    pub pid: u32,
    pub pid_start: u64,
    /// The supervisor's pid and start time.
    pub supervisor: u32,
    pub supervisor_start: u64,
    pub exit_code: Option<i32>,
    /// Why the container could not be started.
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The published ports as bound (an ephemeral host port resolved).
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// The memory limit's OOM killer killed a process of the last run.
    #[serde(default)]
    pub oom_killed: bool,
    /// How many times the restart policy restarted the container.
    #[serde(default)]
    pub restart_count: i64,
    /// Waiting to be restarted by the restart policy.
    #[serde(default)]
    pub restarting: bool,
    /// The healthcheck's status and last results.
    #[serde(default)]
    pub health: Option<crate::health::Health>,
}

/// The status as `ps` shows it, after checking that a running container's supervisor is
/// still the process that wrote the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Exited(i32),
    /// Recorded as running, but its supervisor is gone (killed, or the machine rebooted).
    Dead,
}

impl Status {
    /// docker's State.Status word: `running`, `exited`, `created` or `dead`.
    pub fn word(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Exited(_) => "exited",
            Status::Created => "created",
            Status::Dead => "dead",
        }
    }
}

/// A container on disk: its directory, what it runs and what its supervisor last recorded.
pub struct Container {
    pub dir: PathBuf,
    pub config: Config,
    pub state: State,
    /// The store's root (for the GC root under `roots/containers/`).
    pub(crate) store_root: PathBuf,
}

impl Container {
    /// The full 64-hex-digit id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn status(&self) -> Status {
        match self.state.status.as_str() {
            "running" if alive(self.state.supervisor, self.state.supervisor_start) => {
                Status::Running
            }
            "running" => Status::Dead,
            "exited" => Status::Exited(self.state.exit_code.unwrap_or(0)),
            _ => Status::Created,
        }
    }

    pub fn reload(&mut self) -> Result<()> {
        self.state = read_state(&self.dir)?;
        Ok(())
    }
}

/// The containers directory of a store.
pub struct Containers {
    pub dir: PathBuf,
    store_root: PathBuf,
}

/// What [`Containers::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The full ids of the removed containers.
    pub deleted: Vec<String>,
    /// The bytes their writable layers held.
    pub reclaimed: u64,
}

/// An exclusive flock on `containers/.lock`, released on drop.
pub use crate::dirlock::Lock;

impl Containers {
    /// The containers of `store` (the directory made on first use).
    pub fn open(store: &store::Store) -> Result<Containers> {
        Containers::new(store.root())
    }

    pub fn new(store_root: &Path) -> Result<Containers> {
        // Private: logs and environments may hold secrets (docker's is 0710).
        Ok(Containers {
            dir: crate::dirlock::private_dir(store_root, "containers")?,
            store_root: store_root.to_path_buf(),
        })
    }

    pub(crate) fn lock(&self) -> Result<Lock> {
        crate::dirlock::lock_dir(&self.dir)
    }

    /// Every container, newest first. Directories being created or removed are skipped.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let rd =
            std::fs::read_dir(&self.dir).with_context(|| format!("read {}", self.dir.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            if let Ok(c) = self.load(&name) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| b.config.created.cmp(&a.config.created));
        Ok(out)
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        let dir = self.dir.join(id);
        let bytes = std::fs::read(dir.join("config.json"))
            .with_context(|| format!("read the config of container {id}"))?;
        let config: Config = serde_json::from_slice(&bytes)
            .with_context(|| format!("parse the config of container {id}"))?;
        let state = read_state(&dir)?;
        Ok(Container {
            dir,
            config,
            state,
            store_root: self.store_root.clone(),
        })
    }

    /// A container by full id, name, or unique id prefix (docker's order).
    pub fn find(&self, what: &str) -> Result<Container> {
        let all = self.list()?;
        let what_name = what.strip_prefix('/').unwrap_or(what);
        if let Some(i) = all.iter().position(|c| c.config.id == what) {
            return Ok(all.into_iter().nth(i).expect("index from position"));
        }
        if let Some(i) = all.iter().position(|c| c.config.name == what_name) {
            return Ok(all.into_iter().nth(i).expect("index from position"));
        }
        let hex = !what.is_empty() && what.bytes().all(|b| b.is_ascii_hexdigit());
        if hex {
            let mut hits: Vec<Container> = all
                .into_iter()
                .filter(|c| c.config.id.starts_with(what))
                .collect();
            if hits.len() > 1 {
                bail!("multiple IDs found with provided prefix: {what}");
            }
            if let Some(c) = hits.pop() {
                return Ok(c);
            }
        }
        bail!("No such container: {what}")
    }

    /// Remove every container that is not running (`docker container prune`): the ids
    /// removed, oldest first, and the size of their writable layers. A container that has
    /// no `state.json` yet is being started by `run -d` (between `create` and its
    /// supervisor's first record) and is left alone.
    pub fn prune(&self) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        let starting = |c: &Container| !c.dir.join("state.json").exists();
        for mut c in self.list()?.into_iter().rev() {
            if c.status() == Status::Running || starting(&c) {
                continue;
            }
            // Checked again under the lock: `start` holds it while it starts one.
            let _l = self.lock()?;
            if c.reload().is_err() || c.status() == Status::Running || starting(&c) {
                continue;
            }
            let size = c.size_rw();
            self.remove_locked(&c.config.id)?;
            pruned.deleted.push(c.config.id);
            pruned.reclaimed += size;
        }
        Ok(pruned)
    }

    /// The ids of the containers created from the image `image_id`.
    pub fn using_image(&self, image_id: &store::Digest) -> Result<Vec<String>> {
        let id = image_id.to_string();
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| c.config.image_id == id)
            .map(|c| c.config.id)
            .collect())
    }

    /// Remove a container's directory and its GC root (under the containers lock).
    pub(crate) fn remove(&self, id: &str) -> Result<()> {
        let _l = self.lock()?;
        self.remove_locked(id)
    }

    /// [`remove`](Self::remove) with the containers lock already held.
    fn remove_locked(&self, id: &str) -> Result<()> {
        let store_root = &self.store_root;
        let dir = self.dir.join(id);
        // Renamed first, so a half-removed container is never listed.
        let gone = self.dir.join(format!(".removing-{id}"));
        match std::fs::rename(&dir, &gone) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("remove container {id}")),
        }
        store::remove_tree(&gone).with_context(|| format!("remove container {id}"))?;
        let root = store_root.join("roots").join(ROOT_KIND).join(id);
        match std::fs::remove_file(&root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove {}", root.display())),
        }
    }
}

pub(crate) fn read_state(dir: &Path) -> Result<State> {
    match std::fs::read(dir.join("state.json")) {
        Ok(b) => serde_json::from_slice(&b).context("parse the container's state"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            status: "created".into(),
            ..State::default()
        }),
        Err(e) => Err(e).context("read the container's state"),
    }
}

pub(crate) fn write_state(dir: &Path, s: &State) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(s).context("encode the container's state")?;
    store::atomic_write(&dir.join("state.json"), &bytes).context("write the container's state")
}

/// A process's start time (field 22 of `/proc/<pid>/stat`), to tell it from a recycled pid.
pub fn proc_start(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    match store::temp::parse_stat(&text)? {
        // A zombie counts as gone.
        ('Z', _) => None,
        (_, start) => Some(start),
    }
}

/// Whether `pid` is still the process that started at `start`.
pub fn alive(pid: u32, start: u64) -> bool {
    pid != 0 && proc_start(pid) == Some(start)
}

/// Wait until `done` holds, checking every 20 ms, at most `timeout`.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A random 64-hex-digit id.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 32];
    let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let seed = format!(
            "{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        );
        return store::Digest::of(seed.as_bytes()).hex().to_string();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const ADJECTIVES: [&str; 24] = [
    "admiring", "bold", "brave", "busy", "clever", "dazzling", "eager", "elated", "focused",
    "gallant", "happy", "jolly", "keen", "loving", "modest", "nifty", "quirky", "relaxed",
    "serene", "sharp", "stoic", "tender", "vibrant", "zealous",
];
const SURNAMES: [&str; 24] = [
    "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "fermi", "galileo",
    "hopper", "knuth", "lovelace", "mccarthy", "noether", "pascal", "ritchie", "shannon", "tesla",
    "thompson", "torvalds", "turing", "wilson", "wozniak", "yalow",
];

/// A docker-style `adjective_surname` name from the id's bytes (callers retry on conflict).
pub(crate) fn generated_name(id: &str, attempt: usize) -> String {
    let b = |i: usize| {
        usize::from_str_radix(id.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) + attempt
    };
    let name = format!(
        "{}_{}",
        ADJECTIVES[b(0) % ADJECTIVES.len()],
        SURNAMES[b(2) % SURNAMES.len()]
    );
    if attempt == 0 {
        name
    } else {
        format!("{name}{attempt}")
    }
}

/// The lifecycle of a created container (see `crate::create` and `Container::start`).
impl Container {
    /// Wait until the container is no longer running and its supervisor has exited (so
    /// the published ports are free again); `None` waits forever. False when it still runs
    /// after `timeout`.
    pub fn wait(&mut self, timeout: Option<Duration>) -> bool {
        let t = timeout.unwrap_or(Duration::from_secs(u64::MAX / 4));
        let (sup, sup_start) = (self.state.supervisor, self.state.supervisor_start);
        wait_until(t, || {
            (self.reload().is_err() || self.status() != Status::Running) && !alive(sup, sup_start)
        })
    }

    /// Send `sig` to the container's pid 1 (never to a recycled pid). `Ok(false)` when it is
    /// already gone.
    pub fn signal(&self, sig: i32) -> Result<bool> {
        crate::signal::send(self.state.pid, self.state.pid_start, sig)
    }

    /// Tell the supervisor that the container is ended by hand: its restart policy does
    /// not restart it (see `restart.rs`).
    fn mark_stopped(&self) {
        let _ = std::fs::write(self.dir.join(crate::restart::STOPPED_MARKER), b"");
    }

    /// SIGKILL, and wait for the supervisor to record the end.
    pub fn kill(&mut self) -> Result<()> {
        self.mark_stopped();
        self.signal(libc::SIGKILL)?;
        if !self.wait(Some(Duration::from_secs(30))) {
            bail!(
                "container {} did not exit after SIGKILL",
                &self.config.id[..12]
            );
        }
        Ok(())
    }

    /// Send `sig` to a running container's pid 1 (`docker kill`); SIGKILL also waits for
    /// the supervisor to record the end. An error when the container is not running.
    pub fn kill_with(&mut self, sig: i32) -> Result<()> {
        let not_running = || anyhow::anyhow!("container {} is not running", self.config.id);
        if self.status() != Status::Running {
            return Err(not_running());
        }
        if sig == libc::SIGKILL {
            return self.kill();
        }
        self.mark_stopped();
        if !self.signal(sig)? {
            return Err(not_running());
        }
        Ok(())
    }

    /// Wait until the container has exited (`docker wait`): its exit code. A container
    /// whose supervisor died was killed with it (137, SIGKILL's code).
    pub fn wait_exit(&mut self) -> Result<i32> {
        let mut gone = false;
        wait_until(Duration::from_secs(u64::MAX / 4), || {
            gone = self.reload().is_err();
            gone || matches!(self.status(), Status::Exited(_) | Status::Dead)
        });
        match self.status() {
            _ if gone => bail!("No such container: {}", self.config.id),
            Status::Exited(code) => Ok(code),
            _ => Ok(128 + libc::SIGKILL),
        }
    }

    /// The size of the container's writable layer (its overlay upper directory): what
    /// removing it gives back, as docker's SizeRw.
    pub fn size_rw(&self) -> u64 {
        tree_size(
            &self.dir.join("upper"),
            &mut std::collections::BTreeSet::new(),
        )
    }

    /// Stop a running container: `signal` (by name or number; default the image's
    /// StopSignal, else SIGTERM), then SIGKILL after `timeout` (`None` waits forever).
    /// Nothing to do for a container that is not running.
    pub fn stop(&mut self, signal: Option<&str>, timeout: Option<Duration>) -> Result<()> {
        if self.status() != Status::Running {
            return Ok(());
        }
        let sig = match signal.or(self.config.stop_signal.as_deref()) {
            Some(s) => crate::signal::parse(s)?,
            None => libc::SIGTERM,
        };
        self.mark_stopped();
        self.signal(sig)?;
        if self.wait(timeout) {
            return Ok(());
        }
        self.kill()
    }

    /// Remove the container (its directory and GC root); a running one only with `force`
    /// (SIGKILL first).
    pub fn remove(mut self, force: bool) -> Result<()> {
        if self.status() == Status::Running {
            if !force {
                bail!(
                    "cannot remove container \"/{}\": container is running: stop the container \
                     before removing or force remove",
                    self.config.name
                );
            }
            self.kill()?;
        }
        // Left behind only by a supervisor that was killed: its processes are gone.
        let root = crate::cgroup::root().unwrap_or_default();
        if let Some(cg) =
            crate::cgroup::Cgroup::existing(&root, &self.config.id, &self.config.resources)
        {
            let _ = cg.remove();
        }
        // Its endpoints are released by its supervisor, or, when that was killed, here (the
        // other members' hosts files forget it now rather than at the next attach).
        let _ = crate::network::release(&self.store_root, &self.config);
        Containers::new(&self.store_root)?.remove(&self.config.id)
    }

    /// `docker container inspect`'s fields that strata knows.
    pub fn inspect(&self) -> serde_json::Value {
        use serde_json::json;
        let status = self.status();
        let running = status == Status::Running;
        let bindings = |ports: &[PortMap]| {
            let mut m = serde_json::Map::new();
            for p in ports {
                let e = m
                    .entry(format!("{}/{}", p.container_port, p.proto))
                    .or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(json!({
                        "HostIp": p.host_ip.to_string(),
                        "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() },
                    }));
                }
            }
            serde_json::Value::Object(m)
        };
        let (c, st) = (&self.config, &self.state);
        let network_mode = match (c.network.as_str(), c.networks.first()) {
            (_, Some(n)) => n.name.as_str(),
            ("private", None) => "default",
            (other, None) => other,
        };
        let mut v = json!({
            "Id": c.id,
            "Created": c.created,
            "Path": c.args.first().cloned().unwrap_or_default(),
            "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
            "State": {
                "Status": if running && st.restarting { "restarting" } else { status.word() },
                "Running": running,
                "Paused": false,
                "Restarting": running && st.restarting,
                "OOMKilled": st.oom_killed,
                "Dead": status == Status::Dead,
                "Pid": if running { st.pid } else { 0 },
                "ExitCode": st.exit_code.unwrap_or(0),
                "Error": st.error.clone().unwrap_or_default(),
                "StartedAt": st.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
                "FinishedAt": st.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            },
            "Image": c.image_id,
            "LogPath": self.dir.join("log"),
            "Name": format!("/{}", c.name),
            "RestartCount": st.restart_count,
            "Mounts": c.mounts.iter().map(|m| m.inspect()).collect::<Vec<_>>(),
            "HostConfig": {
                "ExtraHosts": if c.extra_hosts.is_empty() {
                    serde_json::Value::Null
                } else {
                    c.extra_hosts.iter().map(|(n, ip)| format!("{n}:{ip}")).collect()
                },
                "NetworkMode": network_mode,
                "PortBindings": bindings(&c.ports),
                "AutoRemove": c.auto_remove,
                "RestartPolicy": c.restart,
                "Init": c.init,
                "Memory": c.resources.memory,
                "MemorySwap": c.resources.memory_swap,
                "NanoCpus": c.resources.nano_cpus,
                "PidsLimit": c.resources.pids_limit,
            },
            "Config": {
                "Hostname": c.hostname,
                "User": c.user.clone().unwrap_or_default(),
                "Tty": c.tty,
                "Env": c.env,
                "Image": c.image,
                "WorkingDir": c.cwd,
                "StopSignal": c.stop_signal,
                "StopTimeout": c.stop_timeout,
                "Labels": c.labels,
            },
            "NetworkSettings": {
                "Ports": if running { bindings(&st.ports) } else { json!({}) },
                "Networks": self.networks_json(),
            },
        });
        if let Some(h) = &c.healthcheck {
            v["Config"]["Healthcheck"] = json!(h);
        }
        if let Some(h) = &st.health {
            v["State"]["Health"] = json!(h);
        }
        v
    }
}

impl Container {
    /// `NetworkSettings.Networks`: each user-defined network, with the address while the
    /// container runs on it.
    fn networks_json(&self) -> serde_json::Value {
        use serde_json::json;
        let live = if self.config.networks.is_empty() {
            Vec::new()
        } else {
            crate::Networks::new(&self.store_root)
                .map(|n| n.endpoints_of(&self.config.id))
                .unwrap_or_default()
        };
        let mut m = serde_json::Map::new();
        for a in &self.config.networks {
            let ep = live.iter().find(|(r, _)| r.id == a.id);
            m.insert(
                a.name.clone(),
                json!({
                    "Aliases": a.aliases,
                    "NetworkID": a.id,
                    "IPAddress": ep.map(|(_, e)| e.ip.to_string()).unwrap_or_default(),
                    "IPPrefixLen": if ep.is_some() { 24 } else { 0 },
                    "Gateway": ep.map(|(r, _)| r.gateway().to_string()).unwrap_or_default(),
                }),
            );
        }
        serde_json::Value::Object(m)
    }
}

/// docker's zero time, for a container that never started or never finished.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The bytes of the files under `dir` (apparent sizes, each inode once across calls sharing
/// `seen`, symlinks not followed); 0 when it cannot be read. A container's SizeRw, and what
/// `system df` counts for containers and volumes.
pub fn tree_size(dir: &Path, seen: &mut std::collections::BTreeSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time() {
        let me = std::process::id();
        let t = proc_start(me).unwrap();
        assert!(alive(me, t));
        assert!(!alive(me, t + 1));
        assert!(!alive(0, 0));
    }

    #[test]
    fn names_are_docker_style() {
        let id = random_id();
        assert_eq!(id.len(), 64);
        let n = generated_name(&id, 0);
        assert!(n.contains('_'), "{n}");
        assert_ne!(generated_name(&id, 1), n);
    }

    /// A container as `create` leaves it, written by hand (no image, no process).
    fn fake(store: &store::Store, id: &str, name: &str, created: &str) -> Container {
        let containers = Containers::open(store).unwrap();
        let dir = containers.dir.join(id);
        std::fs::create_dir(&dir).unwrap();
        let config = Config {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:ab".into(),
            manifest: "sha256:cd".into(),
            created: created.into(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: None,
            hostname: id[..12].into(),
            network: "private".into(),
            lower: Vec::new(),
            tty: false,
            ports: vec![crate::ports::parse("127.0.0.1:8080:80").unwrap()],
            auto_remove: false,
            stop_signal: None,
            seccomp: SeccompOpt::Default,
            mounts: Vec::new(),
            extra_hosts: Vec::new(),
            resources: Default::default(),
            healthcheck: None,
            restart: Default::default(),
            init: false,
            stop_timeout: None,
            labels: Default::default(),
            networks: Vec::new(),
        };
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec(&config).unwrap(),
        )
        .unwrap();
        containers.load(id).unwrap()
    }

    #[test]
    fn find_list_inspect_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store::Store::open(tmp.path().join("s")).unwrap();
        let a = format!("ab{}", "1".repeat(62));
        let b = format!("ab{}", "2".repeat(62));
        fake(&store, &a, "web", "2026-01-01T00:00:00Z");
        fake(&store, &b, "db", "2026-01-02T00:00:00Z");
        store
            .lock_shared()
            .unwrap()
            .set_root(ROOT_KIND, &a, &[])
            .unwrap();

        // Newest first; by id, name (with docker's leading slash), unique prefix.
        let ids: Vec<String> = crate::list(&store)
            .unwrap()
            .into_iter()
            .map(|c| c.config.id)
            .collect();
        assert_eq!(ids, vec![b.clone(), a.clone()]);
        assert_eq!(crate::find(&store, "/web").unwrap().id(), a);
        assert_eq!(crate::find(&store, "ab2").unwrap().id(), b);
        let e = crate::find(&store, "ab").err().unwrap().to_string();
        assert_eq!(e, "multiple IDs found with provided prefix: ab");
        let e = crate::find(&store, "nope").err().unwrap().to_string();
        assert_eq!(e, "No such container: nope");

        let c = crate::find(&store, "web").unwrap();
        assert_eq!(c.status(), Status::Created);
        let j = c.inspect();
        assert_eq!(j["Name"], "/web");
        assert_eq!(j["Path"], "sh");
        assert_eq!(j["State"]["Status"], "created");
        assert_eq!(j["HostConfig"]["NetworkMode"], "default");
        assert_eq!(
            j["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
        assert_eq!(j["NetworkSettings"]["Ports"], serde_json::json!({}));

        // Not running: stop has nothing to do, remove takes the directory and the GC root.
        let mut c = c;
        c.stop(Some("SIGNOPE"), None).unwrap();
        c.remove(false).unwrap();
        assert!(!store.root().join("containers").join(&a).exists());
        assert!(!store.root().join("roots").join(ROOT_KIND).join(&a).exists());
        assert_eq!(crate::list(&store).unwrap().len(), 1);
    }

    #[test]
    fn prune_removes_what_does_not_run() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store::Store::open(tmp.path().join("s")).unwrap();
        let old = fake(&store, &"a".repeat(64), "old", "2026-01-01T00:00:00Z");
        std::fs::create_dir_all(old.dir.join("upper/d")).unwrap();
        std::fs::write(old.dir.join("upper/d/f"), [0u8; 1000]).unwrap();
        std::fs::hard_link(old.dir.join("upper/d/f"), old.dir.join("upper/g")).unwrap();
        std::fs::write(old.dir.join("upper/h"), [0u8; 234]).unwrap();
        assert_eq!(old.size_rw(), 1234, "hard links counted once");
        let exited = State {
            status: "exited".into(),
            exit_code: Some(0),
            ..State::default()
        };
        write_state(&old.dir, &exited).unwrap();
        let new = fake(&store, &"b".repeat(64), "new", "2026-01-02T00:00:00Z");
        write_state(&new.dir, &State::default()).unwrap();
        // No state.json: `run -d` is starting it.
        fake(&store, &"d".repeat(64), "starting", "2026-01-04T00:00:00Z");
        let up = fake(&store, &"c".repeat(64), "up", "2026-01-03T00:00:00Z");
        let me = std::process::id();
        let state = State {
            status: "running".into(),
            supervisor: me,
            supervisor_start: proc_start(me).unwrap(),
            ..State::default()
        };
        write_state(&up.dir, &state).unwrap();
        let pruned = Containers::open(&store).unwrap().prune().unwrap();
        assert_eq!(
            pruned,
            Pruned {
                deleted: vec!["a".repeat(64), "b".repeat(64)],
                reclaimed: 1234,
            }
        );
        let left: Vec<String> = crate::list(&store)
            .unwrap()
            .into_iter()
            .map(|c| c.config.name)
            .collect();
        assert_eq!(left, vec!["starting", "up"]);
    }

    #[test]
    fn a_running_container_whose_supervisor_is_gone_is_dead() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store::Store::open(tmp.path().join("s")).unwrap();
        let mut c = fake(&store, &"c".repeat(64), "x1", "2026-01-01T00:00:00Z");
        let me = std::process::id();
        let mut state = State {
            status: "running".into(),
            supervisor: me,
            supervisor_start: proc_start(me).unwrap(),
            ..State::default()
        };
        write_state(&c.dir, &state).unwrap();
        c.reload().unwrap();
        assert_eq!(c.status(), Status::Running);
        assert_eq!(c.inspect()["State"]["Running"], true);
        let e = crate::find(&store, "x1")
            .unwrap()
            .remove(false)
            .unwrap_err();
        assert!(e.to_string().contains("container is running"), "{e}");
        state.supervisor_start += 1;
        write_state(&c.dir, &state).unwrap();
        c.reload().unwrap();
        assert_eq!(c.status(), Status::Dead);
        assert_eq!(c.status().word(), "dead");
    }
}
