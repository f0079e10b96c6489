//! `strata run`: a container from a store image on the build's executor, in the foreground
//! or (with `-d`, see `detach`) under a supervisor.
//!
//! In the foreground the rootfs is an overlay of the image's layer snapshots with a fresh
//! upperdir under the store's `tmp/`, removed when the container exits (its writes are
//! discarded). The store lock is held shared for the whole run, so `strata prune` never
//! removes the snapshots or the upperdir of a running container. `-p` publishes ports
//! through `proxy` from this process.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use store::Store;

use crate::{container, proxy};

mod detach;

pub use detach::{parse_frames, supervise};

/// Docker's default `PATH` for containers whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's exit code when the container could not be started at all.
const EXIT_START: u8 = 125;

const AFTER_HELP: &str = "\
The container runs with the image's ENTRYPOINT, CMD, ENV, WORKDIR and USER (COMMAND \
replaces CMD; --entrypoint replaces ENTRYPOINT and drops CMD). Its root filesystem is an \
overlay of the image's layers. In the foreground its writes are DISCARDED when it exits, \
with or without --rm. With -d it runs in the background under a small supervisor process \
that keeps its logs and exit status until `strata rm` (or its exit, with --rm); manage it \
with `strata ps`, `logs`, `stop` and `rm`.

strata exits with the command's exit code; 125 when the container could not be started, \
126 when the command cannot be executed, 127 when it is not found. SIGINT, SIGTERM, SIGHUP \
and SIGQUIT sent to strata are forwarded to the container's main process.";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct RunArgs {
    /// Remove the container when it exits (a foreground container's writes are always
    /// discarded; a detached one is kept until `strata rm` unless --rm is given).
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open: pass strata's standard input to the container.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY (with -i, strata's terminal is put in raw mode meanwhile).
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass strata's own value).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Working directory inside the container (absolute; created if missing).
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: `name|uid[:group|gid]`).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Network: `default` (a private namespace with a route out through slirp4netns; the
    /// host's loopback is not reachable), `none` (a private namespace with only loopback)
    /// or `host` (the host's network).
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite the image's ENTRYPOINT (`""` clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run the container in the background and print its id (see `strata ps`, `logs`,
    /// `stop`, `rm`).
    #[arg(short, long)]
    pub detach: bool,
    /// Publish a container's TCP port on the host (`[IP:][HOST_PORT:]CONTAINER_PORT[/tcp]`,
    /// default IP 0.0.0.0), through a userspace proxy; needs the default network.
    #[arg(short, long, value_name = "[IP:]HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Publish all exposed ports (not available yet).
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Security options: `seccomp=unconfined` (no seccomp filter) or `seccomp=PROFILE.json`
    /// (a profile in Docker's JSON format instead of Docker's default profile).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// The image (a name, an image id or a prefix of one, or a manifest digest), then the
    /// command and its arguments (replace the image's CMD). Options end at the image, as
    /// docker's: everything after it belongs to the command, `--` and `-h` included.
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        value_names = ["IMAGE", "COMMAND"]
    )]
    pub argv: Vec<String>,
}

impl RunArgs {
    /// The image as given (the first positional argument).
    pub fn image(&self) -> &str {
        &self.argv[0]
    }

    /// The command and its arguments after the image, verbatim.
    pub fn command(&self) -> &[String] {
        &self.argv[1..]
    }
}

/// Run the container; `store` is the opened store (a failure to open it is exit code 125).
pub fn run(store: Result<Store>, a: RunArgs) -> Result<ExitCode> {
    if a.publish_all {
        bail!("strata run -P is not available yet: publish ports one by one with -p");
    }
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY (drop -t to pipe input into the container)");
    }
    let store = match store {
        Ok(s) => s,
        Err(e) => return Ok(start_failed(e)),
    };
    if a.detach {
        return Ok(detach::run(&store, &a));
    }
    // Locals drop in reverse order: the temp dir goes before the lock is released.
    let _lock = match store.lock_shared() {
        Ok(l) => l,
        Err(e) => return Ok(start_failed(e.into())),
    };
    let tmp = match TempDir::new(&store) {
        Ok(t) => t,
        Err(e) => return Ok(start_failed(e)),
    };
    let prepared = prepare(&store, &a, &tmp.0, container::random_id()).and_then(|(cfg, _)| {
        let listeners = proxy::bind(&cfg.ports)?;
        Ok((spec_of(&cfg, &tmp.0)?, listeners))
    });
    let (mut spec, listeners) = match prepared {
        Ok(s) => s,
        Err(e) => return Ok(start_failed(e)),
    };
    if a.tty {
        spec.tty = true;
    } else {
        spec.stdin = if a.interactive {
            exec::Stdio::Inherit
        } else {
            exec::Stdio::Null
        };
        spec.stdout = exec::Stdio::Inherit;
        spec.stderr = exec::Stdio::Inherit;
    }
    let code = execute(spec, &a, listeners);
    drop(tmp);
    Ok(code)
}

pub(crate) fn start_failed(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(EXIT_START)
}

/// Everything before the container starts: the image, its config with the overrides, the
/// overlay's lowerdirs (an empty one goes under `dir`). The name is left empty.
pub(crate) fn prepare(
    store: &Store,
    a: &RunArgs,
    dir: &Path,
    id: String,
) -> Result<(container::Config, store::Image)> {
    if let Some(n) = &a.name {
        check_name(n)?;
    }
    let network = match a.network.as_str() {
        "default" | "private" => "private",
        "none" => "none",
        "host" => "host",
        other => bail!("network {other:?} not supported: use default, none or host"),
    };
    let ports = a
        .publish
        .iter()
        .map(|p| proxy::parse(p))
        .collect::<Result<Vec<_>>>()?;
    if !ports.is_empty() && network != "private" {
        bail!(
            "-p/--publish needs the default network (a private namespace): the container's \
             ports cannot be published with --network {}",
            a.network
        );
    }
    let seccomp = seccomp_opt(&a.security_opt)?;
    let user_env = a
        .env
        .iter()
        .map(|e| cli_env(e))
        .collect::<Result<Vec<_>>>()?;
    let image = store.resolve(a.image()).map_err(|e| match e {
        store::Error::NoSuchImage(_) => anyhow::anyhow!(
            "Unable to find image '{}' locally (import or load it first: strata does not \
             pull yet)",
            a.image()
        ),
        e => anyhow::Error::new(e),
    })?;
    let cfg = &image.config.config;

    let (entrypoint, cmd) = match &a.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), a.command().to_vec()),
        Some(e) => (vec![e.clone()], a.command().to_vec()),
        None if a.command().is_empty() => (
            cfg.entrypoint.clone().unwrap_or_default(),
            cfg.cmd.clone().unwrap_or_default(),
        ),
        None => (
            cfg.entrypoint.clone().unwrap_or_default(),
            a.command().to_vec(),
        ),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("No command specified");
    }
    let workdir = match a.workdir.as_deref() {
        Some(w) if !w.starts_with('/') => {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path")
        }
        Some(w) => w.to_string(),
        // Kept as the Dockerfile wrote it (`/root/`); cleaned before use, as docker does.
        None => match cfg.working_dir.as_deref() {
            Some(w) if !w.is_empty() => build::config::clean_path(w),
            _ => "/".to_string(),
        },
    };
    let user = match a.user.as_deref() {
        Some(u) if !u.is_empty() => Some(u.to_string()),
        _ => cfg.user.clone().filter(|u| !u.is_empty()),
    };
    let hostname = id.get(..12).unwrap_or(&id).to_string();

    // The executor wants absolute paths; `--root` may be relative.
    let lower = image_lowers(store, &image, dir)
        .with_context(|| format!("prepare the layers of {}", a.image()))?
        .into_iter()
        .map(std::path::absolute)
        .collect::<std::io::Result<Vec<_>>>()
        .context("make the layer paths absolute")?;
    let home = home_dir(&lower, user.as_deref());
    let env = container_env(
        cfg.env.as_deref().unwrap_or_default(),
        &user_env,
        &hostname,
        a.tty,
        &home,
    );
    let config = container::Config {
        id,
        name: String::new(),
        image: a.image().to_string(),
        image_id: image.id().to_string(),
        manifest: image.manifest_digest.to_string(),
        created: crate::format::now_rfc3339(),
        args: argv,
        env,
        cwd: workdir,
        user,
        hostname,
        network: network.to_string(),
        lower,
        tty: a.tty,
        ports,
        auto_remove: a.rm,
        stop_signal: cfg.stop_signal.clone().filter(|s| !s.is_empty()),
        seccomp,
    };
    Ok((config, image))
}

/// Overlay lowerdirs for an image's layers, top first, each layer's snapshot unpacked on
/// first use; an image without layers gets an empty directory made under `tmp`.
fn image_lowers(store: &Store, image: &store::Image, tmp: &Path) -> Result<Vec<PathBuf>> {
    let nothing_to_fetch = |_: &store::Digest| Ok::<(), layer::snapshot::SnapshotError>(());
    let mut out = layer::snapshot::chain(store, &image.config.rootfs.diff_ids, &nothing_to_fetch)?;
    if out.is_empty() {
        let empty = tmp.join("empty-lower");
        if let Err(e) = std::fs::create_dir_all(&empty) {
            // As the engine words it: its context, then the error.
            let what = format!("create an empty lowerdir: {e}");
            return Err(anyhow::Error::new(e).context(what));
        }
        out.push(empty);
    }
    Ok(out)
}

/// The executor's spec for a container whose writable directories live under `dir`
/// (`upper`, `work`, `state`, created here); standard streams on /dev/null.
pub(crate) fn spec_of(c: &container::Config, dir: &Path) -> Result<exec::ExecSpec> {
    let dir = std::path::absolute(dir).context("make the container's path absolute")?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    let state = dir.join("state");
    for d in [&upper, &work, &state] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let rootfs = exec::Rootfs::Overlay {
        lower: c.lower.clone(),
        upper,
        work,
    };
    let mut spec = exec::ExecSpec::new(rootfs, c.args.clone());
    spec.env = c.env.clone();
    spec.cwd = PathBuf::from(&c.cwd);
    spec.user = c.user.clone();
    spec.hostname = c.hostname.clone();
    spec.network = match c.network.as_str() {
        "host" => exec::Network::Host,
        "none" => exec::Network::None,
        _ => exec::Network::Private,
    };
    spec.state_dir = Some(state);
    spec.tty = c.tty;
    spec.seccomp = c.seccomp.to_exec()?;
    Ok(spec)
}

/// `--security-opt` values (docker's `seccomp=` and legacy `seccomp:` forms); the last
/// seccomp option wins, as in docker. A profile file is read and compiled here, so a bad one
/// is an error naming the file before anything starts.
fn seccomp_opt(opts: &[String]) -> Result<container::SeccompOpt> {
    let mut seccomp = container::SeccompOpt::Default;
    for o in opts {
        let value = match o.split_once(['=', ':']) {
            Some(("seccomp", v)) => v,
            _ => bail!(
                "invalid --security-opt {o:?}: strata supports seccomp=unconfined and \
                 seccomp=PROFILE.json"
            ),
        };
        seccomp = match value {
            "unconfined" => container::SeccompOpt::Unconfined,
            "" => bail!("invalid --security-opt {o:?}: seccomp needs unconfined or a file"),
            path => {
                let json = std::fs::read_to_string(path)
                    .with_context(|| format!("opening seccomp profile {path} failed"))?;
                let opt = container::SeccompOpt::Profile {
                    path: path.to_string(),
                    json,
                };
                opt.to_exec()?;
                opt
            }
        };
    }
    Ok(seccomp)
}

/// Start the container, relay its terminal and signals, wait for it: its exit code, or
/// docker's 125/126/127 when it could not be started.
fn execute(
    spec: exec::ExecSpec,
    a: &RunArgs,
    listeners: Vec<(proxy::PortMap, std::net::TcpListener)>,
) -> ExitCode {
    // Block the signals to forward before any thread exists, so every thread inherits the
    // mask and only the forwarding thread receives them (with sigwaitinfo). The executor's
    // helper starts with an empty mask (std resets it), and so does the container.
    let signals = SignalSet::new(a.tty);
    signals.block();
    let mut running = match exec::spawn(&spec) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(spawn_error_code(&e));
        }
    };
    drop(spec);
    if let Err(e) = proxy::start(listeners, running.pid()) {
        eprintln!("error: publish ports: {e:#}");
        let _ = running.kill();
        let _ = running.wait();
        return ExitCode::from(EXIT_START);
    }
    let pidfd = pidfd_open(running.pid()).map(Arc::new);
    let master = running.pty.take().map(Arc::new);
    if let Some(m) = &master {
        copy_winsize(m.as_raw_fd());
    }
    {
        let pidfd = pidfd.clone();
        let master = master.clone();
        // Lives until the process exits (and keeps the descriptors it uses open).
        std::thread::spawn(move || forward_signals(signals, pidfd, master));
    }
    let raw = match &master {
        Some(_) if a.interactive => RawMode::enable(0),
        _ => None,
    };
    let output = master
        .clone()
        .map(|m| std::thread::spawn(move || pty_to_stdout(&m)));
    if let (Some(m), true) = (&master, a.interactive) {
        let m = m.clone();
        // Blocked in read(stdin) until the process exits: never joined.
        std::thread::spawn(move || stdin_to_pty(&m));
    }
    let status = running.wait();
    // Every process of the container is gone: the terminal's output drains, then EIO.
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw);
    drop(running);
    match status {
        Ok(s) => ExitCode::from((s.code & 0xff) as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_START)
        }
    }
}

/// docker's codes for a container that could not be started: 127 for a command not found,
/// 126 for one that cannot be executed, 125 for everything else.
pub(crate) fn spawn_error_code(e: &exec::Error) -> u8 {
    match e {
        exec::Error::Exec { message, .. }
            if message.contains("not found") || message.contains("no such file") =>
        {
            127
        }
        exec::Error::Exec { .. } => 126,
        _ => EXIT_START,
    }
}

/// docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn check_name(n: &str) -> Result<()> {
    let ok = n.len() >= 2
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// `-e KEY=VALUE` as given; `-e KEY` takes strata's own value, or stays a bare `KEY`, which
/// unsets it (docker's rule).
fn cli_env(e: &str) -> Result<String> {
    let key = e.split('=').next().unwrap_or_default();
    if key.is_empty() {
        bail!("invalid environment variable: {e}");
    }
    if e.contains('=') {
        return Ok(e.to_string());
    }
    Ok(match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    })
}

fn env_key(e: &str) -> &str {
    e.split('=').next().unwrap_or_default()
}

/// The container's environment as docker makes it: `PATH` (docker's default), `HOSTNAME`,
/// `TERM=xterm` with a tty, overridden by the `-e` variables and then by the image's that
/// `-e` does not name; a bare `KEY` removes `KEY`; `HOME` from the user's passwd entry when
/// nothing sets it (as runc does).
fn container_env(
    image: &[String],
    user: &[String],
    hostname: &str,
    tty: bool,
    home: &str,
) -> Vec<String> {
    let mut container: Vec<String> = user.to_vec();
    for e in image {
        if !user.iter().any(|u| env_key(u) == env_key(e)) {
            container.push(e.clone());
        }
    }
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    for e in container {
        match env.iter().position(|d| env_key(d) == env_key(&e)) {
            Some(i) => env[i] = e,
            None => env.push(e),
        }
    }
    env.retain(|e| e.contains('='));
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The user's home directory from the image's `/etc/passwd` (found in the topmost layer that
/// has one); `/` when the user has no entry, as runc defaults.
fn home_dir(lowers: &[PathBuf], user: Option<&str>) -> String {
    let name = user
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default();
    let name = if name.is_empty() { "0" } else { name };
    let numeric = name.bytes().all(|b| b.is_ascii_digit());
    let passwd = lowers.iter().find_map(|l| {
        let p = l.join("etc/passwd");
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => Some(std::fs::read_to_string(&p).unwrap_or_default()),
            // A whiteout or anything else hides the lower layers' file.
            Ok(_) => Some(String::new()),
            Err(_) => None,
        }
    });
    for line in passwd.unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 6 {
            continue;
        }
        let hit = if numeric { f[2] == name } else { f[0] == name };
        if hit {
            return if f[5].is_empty() { "/" } else { f[5] }.to_string();
        }
    }
    "/".to_string()
}

/// A private directory under the store's tmp/ (the overlay's upper and work dirs and the
/// executor's state), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(store: &Store) -> Result<TempDir> {
        let p = store.temp_path("container");
        // The executor wants absolute paths; `--root` may be relative.
        let p = std::path::absolute(&p).context("make the temp dir path absolute")?;
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.0);
    }
}

/// The signals strata forwards (and, with a tty, SIGWINCH for the window size).
struct SignalSet(libc::sigset_t);

// SAFETY: a sigset_t is plain data.
unsafe impl Send for SignalSet {}

const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// `si_code` of signals the kernel generates itself, such as the terminal's ^C.
const SI_KERNEL: i32 = 0x80;

impl SignalSet {
    fn new(tty: bool) -> SignalSet {
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
    fn block(&self) {
        // SAFETY: the set is initialised; a null old set is allowed.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut());
        }
    }
}

/// Receive the blocked signals for good: forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to the
/// container's pid 1, and on SIGWINCH copy the window size to the container's terminal.
fn forward_signals(set: SignalSet, pidfd: Option<Arc<OwnedFd>>, master: Option<Arc<File>>) {
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
                copy_winsize(m.as_raw_fd());
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

/// A pidfd for the container's pid 1, so a forwarded signal never reaches a recycled pid.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor, which nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Copy the caller's window size (stdout's terminal, else stdin's) to the container's pty.
fn copy_winsize(master: RawFd) {
    for fd in [1, 0] {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails on a non-terminal.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            // SAFETY: TIOCSWINSZ reads the winsize; `master` is an open pty master.
            unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
            return;
        }
    }
}

/// The caller's terminal in raw mode while the container runs; restored on drop.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enable(fd: RawFd) -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails on a non-terminal.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the copy; tcsetattr applies it to the terminal.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return None;
            }
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable` on the same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved);
        }
    }
}

/// The container's terminal output to strata's stdout, until the terminal hangs up (EIO
/// once the container's processes are gone).
fn pty_to_stdout(master: &File) {
    let mut buf = [0u8; 16 * 1024];
    let mut out = std::io::stdout().lock();
    loop {
        match (&*master).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// strata's stdin to the container's terminal (the keystrokes, in raw mode).
fn stdin_to_pty(master: &File) {
    let mut buf = [0u8; 16 * 1024];
    let mut input = std::io::stdin().lock();
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if (&*master).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_follows_docker_rules() {
        let image = vec!["PATH=/img".to_string(), "A=1".into(), "B=2".into()];
        let user = vec!["B=3".to_string(), "STRATA_UNSET_C".into(), "A".into()];
        let env = container_env(&image, &user, "abc", true, "/root");
        assert_eq!(
            env,
            vec![
                "PATH=/img",
                "HOSTNAME=abc",
                "TERM=xterm",
                "B=3",
                "HOME=/root"
            ]
        );
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a").is_err());
        assert!(check_name("a/b").is_err());
    }
}
