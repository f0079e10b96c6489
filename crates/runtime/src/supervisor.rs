//! Detached containers: `create` and `Container::start`, and the supervisor they leave
//! behind.
//!
//! `create` prepares the container under the store's shared lock (the image resolved, its
//! snapshots unpacked, a GC root `roots/containers/<id>` naming its manifest), and reserves
//! the name under the containers lock by writing `config.json`. `start` starts the
//! supervisor (the command the caller gives, which must end up in [`supervise`]) in a new
//! session, with stdin on /dev/null and its own stdout and stderr in `supervisor.log`. It
//! waits until the supervisor records the container as running or as failed to start (with
//! docker's 125/126/127, as a foreground run would), and returns.
//!
//! The supervisor binds the published ports, starts the container on the executor (the
//! overlay's upper and work dirs in the container's directory), records `running` with the
//! pids and start times, proxies the ports, writes the container's stdout and stderr to
//! `log` (see [`crate::logs`]), and when the container ends records `exited` with its exit
//! code. With `auto_remove` it then removes the container. The supervisor holds the
//! executor's control socket: if it dies, the executor kills the container, and `ps` shows it
//! `Dead` (its pid no longer has the recorded start time).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use store::Store;

use crate::cgroup::{self, Cgroup};
use crate::container::{self, Container, Containers, State, Status};
use crate::foreground::spawn_error_code;
use crate::{health, logs, network, ports, restart, spec, RunError, Spec, EXIT_START};

/// Create a detached container (not started yet): the image resolved and its snapshots
/// unpacked, the container rooted and its name reserved.
pub fn create(store: &Store, spec: &Spec) -> Result<Container, RunError> {
    let containers = Containers::open(store).map_err(RunError::start)?;
    let id = container::random_id();
    let dir = containers.dir.join(&id);
    match create_in(store, &containers, spec, &id, &dir) {
        Ok(c) => Ok(c),
        Err(e) => {
            let _ = containers.remove(&id);
            Err(RunError::start(e))
        }
    }
}

/// Prepare the container and write its config (the name reserved under the lock).
fn create_in(
    store: &Store,
    containers: &Containers,
    a: &Spec,
    id: &str,
    dir: &Path,
) -> Result<Container> {
    std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
    let prepared = {
        // Held while the image is resolved and its snapshots unpacked, until the GC root
        // exists; not for the container's lifetime (prune would wait for it).
        let store = &store.lock_shared()?;
        let p = spec::prepare(store, a, dir, id.to_string())?;
        if let Err(e) = store.set_root(
            container::ROOT_KIND,
            id,
            std::slice::from_ref(&p.image.manifest_digest),
        ) {
            p.discard(store.root());
            return Err(e.into());
        }
        p
    };
    match record(containers, a, id, dir, &prepared.config) {
        // Recorded: its config now names its volumes; the holds can go.
        Ok(c) => Ok(c),
        Err(e) => {
            prepared.discard(store.root());
            Err(e)
        }
    }
}

/// Name the container (under the containers lock) and write its config.
fn record(
    containers: &Containers,
    a: &Spec,
    id: &str,
    dir: &Path,
    config: &container::Config,
) -> Result<Container> {
    let mut config = config.clone();
    let _l = containers.lock()?;
    let existing = containers.list()?;
    config.name = match &a.name {
        Some(n) => {
            if let Some(c) = existing.iter().find(|c| &c.config.name == n) {
                bail!(
                    "Conflict. The container name \"/{n}\" is already in use by container \
                     \"{}\". You have to remove (or rename) that container to be able to reuse \
                     that name.",
                    c.config.id
                );
            }
            n.clone()
        }
        None => (0..)
            .map(|i| container::generated_name(id, i))
            .find(|n| !existing.iter().any(|c| &c.config.name == n))
            .expect("an unused name"),
    };
    let bytes = serde_json::to_vec_pretty(&config).context("encode the container's config")?;
    store::atomic_write(&dir.join("config.json"), &bytes)
        .context("write the container's config")?;
    containers.load(id)
}

impl Container {
    /// Start a created container under a supervisor: `supervisor` is the command that runs
    /// [`supervise`] for this container (its stdio, directory and session are set here).
    /// Returns once the container runs (or already ran, and with `auto_remove` is gone);
    /// a container that could not be started is removed when it was to be auto-removed, or
    /// when its supervisor never reported.
    pub fn start(&self, supervisor: Command) -> Result<(), RunError> {
        let containers = Containers::new(&self.store_root).map_err(RunError::start)?;
        self.launch(&containers, supervisor, true)
    }

    /// Start a stopped container again (`docker start`) with its saved config: its
    /// writable layer and its log are kept (the log goes on). Nothing to do when it runs.
    /// The containers lock is held meanwhile, so two starts never run it twice and `rm`
    /// waits; a failed start leaves the container there, exited with the error.
    pub fn start_again(&mut self, supervisor: Command) -> Result<(), RunError> {
        let containers = Containers::new(&self.store_root).map_err(RunError::start)?;
        let _lock = containers.lock().map_err(RunError::start)?;
        let fail = |message: String| RunError { code: 1, message };
        if self.reload().is_err() || !self.dir.join("config.json").exists() {
            return Err(fail(format!("No such container: {}", self.config.id)));
        }
        if self.status() == Status::Running {
            return Ok(());
        }
        // The last run's processes go first: a dead container's are killed with its
        // supervisor, and an exited container's supervisor still holds the published ports
        // for the moment between recording the exit and exiting itself.
        let st = &self.state;
        let (pid, start) = (st.pid, st.pid_start);
        let (sup, sup_start) = (st.supervisor, st.supervisor_start);
        if !container::wait_until(Duration::from_secs(10), || {
            !container::alive(pid, start) && !container::alive(sup, sup_start)
        }) {
            return Err(fail(format!(
                "container {} is still stopping",
                self.config.id
            )));
        }
        let fresh = State {
            status: "created".into(),
            ..State::default()
        };
        container::write_state(&self.dir, &fresh).map_err(RunError::start)?;
        self.state = fresh;
        self.launch(&containers, supervisor, false)
    }

    /// Start the supervisor and wait until it reports; `first` (the start of a new
    /// container) removes the container when it could not be started, as `run -d` does.
    fn launch(
        &self,
        containers: &Containers,
        mut supervisor: Command,
        first: bool,
    ) -> Result<(), RunError> {
        let id = self.config.id.as_str();
        let dir = self.dir.as_path();
        let mut child = match start_supervisor(&mut supervisor, dir) {
            Ok(c) => c,
            Err(e) => {
                if first {
                    let _ = containers.remove(id);
                }
                return Err(RunError::start(e));
            }
        };
        // The supervisor records the start within milliseconds; the timeout only guards
        // against a supervisor that hangs before writing anything.
        let mut state = State::default();
        let mut exited = false;
        let settled = container::wait_until(Duration::from_secs(60), || {
            state = container::read_state(dir).unwrap_or_default();
            if state.status != "created" || state.error.is_some() {
                return true;
            }
            // Gone without a word: one last look at the state below.
            exited = matches!(child.try_wait(), Ok(Some(_)));
            exited
        });
        if exited {
            state = container::read_state(dir).unwrap_or_default();
        }
        if let Some(err) = &state.error {
            if first && self.config.auto_remove {
                let _ = containers.remove(id);
            }
            if !first {
                // A restart that failed leaves the container exited, with the error.
                state.status = "exited".into();
                state.finished_at = Some(store::now_rfc3339());
                let _ = container::write_state(dir, &state);
            }
            let code = state.exit_code.unwrap_or(EXIT_START as i32);
            return Err(RunError {
                code: u8::try_from(code).unwrap_or(EXIT_START),
                message: err.clone(),
            });
        }
        // Running, or already exited (and maybe removed with --rm): started either way.
        if state.status == "running"
            || state.status == "exited"
            || (self.config.auto_remove && !dir.exists())
        {
            return Ok(());
        }
        let log = std::fs::read_to_string(dir.join("supervisor.log")).unwrap_or_default();
        let why = if settled {
            "the container's supervisor ended before starting it"
        } else {
            "timed out waiting for the container's supervisor"
        };
        let message = format!("{why}{}", indent(&log));
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        if first {
            let _ = containers.remove(id);
        }
        Err(RunError {
            code: EXIT_START,
            message,
        })
    }
}

fn indent(log: &str) -> String {
    if log.trim().is_empty() {
        return String::new();
    }
    format!(":\n{}", log.trim_end())
}

fn start_supervisor(cmd: &mut Command, dir: &Path) -> Result<std::process::Child> {
    let log = File::create(dir.join("supervisor.log")).context("create supervisor.log")?;
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicate supervisor.log")?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the forked child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().context("start the container's supervisor")
}

/// The supervisor of the container `id` of the store at `store_root`: runs it to its end
/// (and again, as its restart policy says). Call it in a process of its own, before
/// starting any thread (`Container::start` starts that process); an error is for the
/// supervisor's own stderr (`supervisor.log`).
pub fn supervise(store_root: &Path, id: &str) -> Result<()> {
    // A peer closing a proxied connection must not kill the supervisor.
    // SAFETY: changing a signal's disposition before this process starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let containers = Containers::new(store_root)?;
    let c = containers.load(id)?;
    let dir = c.dir.clone();
    // A new start: an earlier `stop` no longer holds back the restart policy.
    let stopped_marker = dir.join(restart::STOPPED_MARKER);
    let _ = std::fs::remove_file(&stopped_marker);
    let me = std::process::id();
    let state = State {
        status: "created".into(),
        supervisor: me,
        supervisor_start: container::proc_start(me).unwrap_or(0),
        ..State::default()
    };
    let fail = |mut state: State, msg: String, code: u8| -> Result<()> {
        state.error = Some(msg);
        state.exit_code = Some(code.into());
        container::write_state(&dir, &state)
    };
    let listeners = match ports::bind(&c.config.ports) {
        Ok(l) => l,
        Err(e) => return fail(state, format!("{e:#}"), EXIT_START),
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .context("open the container's log");
    let (mut spec, log) = match spec::spec_of(&c.config, &dir).and_then(|s| Ok((s, log?))) {
        Ok(s) => s,
        Err(e) => return fail(state, format!("{e:#}"), EXIT_START),
    };
    if !c.config.tty {
        spec.stdout = exec::Stdio::Pipe;
        spec.stderr = exec::Stdio::Pipe;
    }
    let cgroup_root = cgroup::root().unwrap_or_default();
    let cg = match Cgroup::create(&cgroup_root, id, &c.config.resources) {
        Ok(cg) => cg,
        Err(e) => return fail(state, format!("{e:#}"), EXIT_START),
    };
    if let Some(cg) = &cg {
        spec.cgroups = cg.dirs.clone();
    }
    spec.network_hook = network::hook(store_root, network::joining(&c.config, &dir));
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        state: Mutex::new(state),
        done: AtomicBool::new(false),
    });
    let log = Arc::new(Mutex::new(log));
    let mut listeners = Some(listeners);
    let mut proxy: Option<ports::Proxy> = None;
    let mut backoff = Duration::ZERO;
    let mut oom_before = cg.as_ref().map_or(0, Cgroup::oom_kills);
    let mut health_thread = None;
    loop {
        let began = Instant::now();
        let mut running = match exec::spawn(&spec) {
            Ok(r) => r,
            Err(e) => {
                let _ = network::release(store_root, &c.config);
                let first = listeners.is_some();
                let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                if first {
                    let st = st.clone();
                    if let Some(cg) = &cg {
                        let _ = cg.remove();
                    }
                    return fail(st, e.to_string(), spawn_error_code(&e));
                }
                st.status = "exited".into();
                st.restarting = false;
                st.error = Some(e.to_string());
                st.exit_code = Some(spawn_error_code(&e).into());
                st.finished_at = Some(store::now_rfc3339());
                shared.save(&st)?;
                break;
            }
        };
        let pid = running.pid();
        if let Some(p) = &proxy {
            // A restart: the same host ports, into the new run's namespace.
            if let Err(e) = p.retarget(pid) {
                let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                st.error = Some(format!("publish ports: {e:#}"));
                shared.save(&st)?;
            }
        }
        if let Some(l) = listeners.take() {
            let ports: Vec<_> = l.iter().map(|(m, _)| m.clone()).collect();
            match ports::start(l, pid) {
                Ok(p) => proxy = Some(p),
                Err(e) => {
                    let _ = running.kill();
                    let _ = running.wait();
                    let _ = network::release(store_root, &c.config);
                    let st = shared
                        .state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if let Some(cg) = &cg {
                        let _ = cg.remove();
                    }
                    return fail(st, format!("publish ports: {e:#}"), EXIT_START);
                }
            }
            shared.state.lock().unwrap_or_else(|p| p.into_inner()).ports = ports;
        }
        {
            let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.status = "running".into();
            st.restarting = false;
            st.pid = pid;
            st.pid_start = container::proc_start(pid).unwrap_or(0);
            st.started_at = Some(store::now_rfc3339());
            st.error = None;
            if c.config.healthcheck.is_some() {
                st.health = Some(health::Health::starting());
            }
            shared.save(&st)?;
        }
        if let (Some(h), None) = (&c.config.healthcheck, &health_thread) {
            let (shared, h, store_root, id) = (
                shared.clone(),
                h.clone(),
                store_root.to_path_buf(),
                id.to_string(),
            );
            health_thread = Some(std::thread::spawn(move || {
                health_loop(&shared, &h, &store_root, &id)
            }));
        }

        let mut pumps = Vec::new();
        let mut streams: Vec<(u8, Box<dyn Read + Send>)> = Vec::new();
        if let Some(m) = running.pty.take() {
            streams.push((1, Box::new(m)));
        }
        if let Some(o) = running.stdout.take() {
            streams.push((1, Box::new(o)));
        }
        if let Some(e) = running.stderr.take() {
            streams.push((2, Box::new(e)));
        }
        for (stream, r) in streams {
            let log = log.clone();
            pumps.push(std::thread::spawn(move || logs::pump(r, stream, &log)));
        }
        let status = running.wait();
        for p in pumps {
            let _ = p.join();
        }
        drop(running);
        // Its address freed and the other members' hosts files rewritten at once.
        if let Err(e) = network::release(store_root, &c.config) {
            // The supervisor's stderr is its `supervisor.log`, not a terminal.
            eprintln!("release the container's networks: {e:#}");
        }
        let oom_now = cg.as_ref().map_or(0, Cgroup::oom_kills);
        let oom_killed = oom_now > oom_before;
        oom_before = oom_now;
        let code = match &status {
            Ok(s) => s.code,
            Err(_) => EXIT_START.into(),
        };
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.finished_at = Some(store::now_rfc3339());
        st.exit_code = Some(code);
        st.oom_killed = oom_killed;
        st.error = status.as_ref().err().map(|e| e.to_string());
        let restart =
            c.config
                .restart
                .should_restart(code, st.restart_count, stopped_marker.exists())
                && dir.exists();
        if !restart {
            st.status = "exited".into();
            st.restarting = false;
            // A concurrent `rm -f` may have removed the directory already.
            if dir.exists() {
                shared.save(&st)?;
            }
            break;
        }
        // Still "running" for `stop`, `wait` and `ps` (as docker's Restarting state).
        st.restarting = true;
        shared.save(&st)?;
        drop(st);
        backoff = restart::delay(backoff, began.elapsed());
        let end = Instant::now() + backoff;
        while Instant::now() < end && !stopped_marker.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if stopped_marker.exists() || !dir.exists() {
            st.status = "exited".into();
            st.restarting = false;
            if dir.exists() {
                shared.save(&st)?;
            }
            break;
        }
        st.restart_count += 1;
    }
    shared.done.store(true, Ordering::SeqCst);
    if let Some(t) = health_thread {
        let _ = t.join();
    }
    // The container's processes are gone (the kernel kills a pid namespace with its pid 1),
    // so its cgroup is empty.
    let removed = cg.as_ref().map_or(Ok(()), Cgroup::remove);
    // The writable layer is no longer mounted anywhere (the mount namespace died with the
    // container); the executor's private files went with its state dir.
    if c.config.auto_remove {
        containers.remove(id)?;
        crate::Volumes::new(store_root)?.remove_anonymous(&c.config.mounts)?;
    }
    removed
}

/// What the supervisor's threads share: the state (every write of `state.json` under its
/// lock, so the health probes and the main loop never lose each other's fields).
struct Shared {
    dir: std::path::PathBuf,
    state: Mutex<State>,
    done: AtomicBool,
}

impl Shared {
    fn save(&self, st: &State) -> Result<()> {
        container::write_state(&self.dir, st)
    }
}

/// Probe the container every interval until the supervisor is done (see `health.rs`).
fn health_loop(shared: &Shared, h: &health::Healthcheck, store_root: &Path, id: &str) {
    let interval = h.interval();
    let mut next = Instant::now() + interval;
    while !shared.done.load(Ordering::SeqCst) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20).min(next - Instant::now()));
            continue;
        }
        let (running, started) = {
            let st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            (
                st.status == "running" && !st.restarting,
                st.started_at.clone(),
            )
        };
        if running {
            let Ok(c) = Containers::new(store_root).and_then(|cs| cs.load(id)) else {
                return;
            };
            let result = c.probe(h);
            let since_start = started
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
                .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            // The container may have exited (or restarted) while the probe ran.
            if st.status == "running" && !st.restarting && st.started_at == started {
                let health = st.health.get_or_insert_with(health::Health::starting);
                health.record(result, h.retries(), since_start < h.start_period());
                if shared.dir.exists() {
                    let _ = shared.save(&st);
                }
            }
        }
        next = Instant::now() + interval;
    }
}
