//! `strata run`: flags to a `runtime::Spec`, then a container in the foreground
//! (`runtime::run`) or, with `-d`, created and started under a supervisor (`runtime::create`,
//! `Container::start`; the supervisor is this binary again, `__strata-supervise`).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use store::Store;

/// The hidden subcommand that runs the supervisor.
const SUPERVISE_CMD: &str = "__strata-supervise";

const AFTER_HELP: &str = "\
The container runs with the image's ENTRYPOINT, CMD, ENV, WORKDIR and USER (COMMAND \
replaces CMD; --entrypoint replaces ENTRYPOINT and drops CMD). Its root filesystem is an \
overlay of the image's layers. In the foreground its writes are DISCARDED when it exits, \
with or without --rm. With -d it runs in the background under a small supervisor process \
that keeps its logs and exit status until `strata rm` (or its exit, with --rm); manage it \
with `strata ps`, `logs`, `exec`, `stop`, `start`, `kill`, `wait`, `port` and `rm`.

strata exits with the command's exit code; 125 when the container could not be started, \
126 when the command cannot be executed, 127 when it is not found. SIGINT, SIGTERM, SIGHUP \
and SIGQUIT sent to strata are forwarded to the container's main process.";

#[derive(Args)]
#[command(after_help = AFTER_HELP, disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
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
    /// host's loopback is not reachable), `none` (a private namespace with only loopback),
    /// `host` (the host's network), or a network made by `strata network create` (joined
    /// on top of the default route out; its members reach each other by name). Given
    /// again, more user-defined networks to join (`eth0`, `eth1`, ...).
    #[arg(long, default_value = "default")]
    pub network: Vec<String>,
    /// Add a network-scoped alias for the container (user-defined networks only).
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite the image's ENTRYPOINT (`""` clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run the container in the background and print its id (see `strata ps`, `logs`,
    /// `exec`, `stop`, `start`, `rm`).
    #[arg(short, long)]
    pub detach: bool,
    /// Publish a container's TCP port on the host (`[IP:][HOST_PORT:]CONTAINER_PORT[/tcp]`,
    /// default IP 0.0.0.0; ranges `8000-8002:8000-8002`), through a userspace proxy; needs
    /// the default network or a user-defined one.
    #[arg(short, long, value_name = "[IP:]HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Publish every port the image EXPOSEs on an ephemeral host port (see `strata port`).
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Bind mount a host path or mount a volume: `/host/path:/ctr[:ro|rw]` (a host path
    /// may start with `.`: relative to the current directory; a missing one is created),
    /// `NAME:/ctr[:ro]` (a named volume, created if missing) or `/ctr` (an anonymous volume).
    /// A new volume starts with the image's content at its destination.
    #[arg(short, long = "volume", value_name = "[SRC:]DST[:MODE]")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount: `type=bind|volume|tmpfs,source=...,target=...[,readonly]`
    /// (also `volume-nocopy`, `tmpfs-size`, `tmpfs-mode`).
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory: `PATH[:size=64m,mode=1777]`.
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Container host name (default: the id's first 12 digits).
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Add a custom host-to-IP mapping (`host:ip`) to the container's /etc/hosts.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Read environment variables from a file (`KEY=VALUE` lines, `KEY` alone takes
    /// strata's own value, `#` starts a comment line); -e wins over it.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Security options: `seccomp=unconfined` (no seccomp filter) or `seccomp=PROFILE.json`
    /// (a profile in Docker's JSON format instead of Docker's default profile).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Memory limit (docker's sizes: `512m`, `1g`); the container gets a cgroup of its own
    /// (the memory controller) and its processes are killed past it (exit 137, OOMKilled).
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap (`-1`: unlimited swap; default: as much swap as memory).
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (`1.5`: one and a half CPUs' time; the cpu controller's quota).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Most processes the container may have at once (`-1` or 0: unlimited).
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Command to run to check health (in the container, with `/bin/sh -c`); for
    /// detached containers.
    #[arg(long = "health-cmd", value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between running the check (`ms|s|m|h`, default 30s).
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (default 30s).
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before failing checks count.
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3).
    #[arg(long = "health-retries", value_name = "N")]
    pub health_retries: Option<i64>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Restart policy for a detached container: `no`, `on-failure[:MAX]`, `always`,
    /// `unless-stopped` (not after `strata stop`/`kill`).
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Set a container label (`KEY=VALUE`, or `KEY` for an empty value).
    #[arg(short = 'l', long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Read labels from a file of `KEY=VALUE` lines (`#` comments).
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<std::path::PathBuf>,
    /// Signal to stop the container (default: the image's StopSignal, else SIGTERM).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before killing the container (default 10; -1 waits forever).
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub stop_timeout: Option<i64>,
    /// Run a tiny init as the container's pid 1 (strata's own, as docker's tini): it
    /// forwards signals to the command and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Pull the image before running: `missing` (when it is not in the store), `always`,
    /// `never`.
    #[arg(long, value_name = "POLICY", default_value = "missing",
          value_parser = ["missing", "always", "never"])]
    pub pull: String,
    /// The platform of the image (`linux/arm64`): from a multi-platform image, its image
    /// for that platform; pulled for it when missing.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: super::registry::RegistryFlags,
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
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY (drop -t to pipe input into the container)");
    }
    let store = match store {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(runtime::EXIT_START));
        }
    };
    let platform = match platform_flag(a.platform.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(runtime::EXIT_START));
        }
    };
    if let Err(e) = pull_for_platform(&store, a.image(), &a.pull, &a.registry, platform.as_ref()) {
        eprintln!("error: {e:#}");
        return Ok(ExitCode::from(runtime::EXIT_START));
    }
    if platform.is_none() {
        if let Ok(img) = store.resolve(a.image()) {
            let p = store::Platform::of_config(&img.config);
            if !p.is_host() {
                // docker's warning (the daemon's, printed by the client).
                eprintln!(
                    "WARNING: The requested image's platform ({p}) does not match the detected \
                     host platform ({}) and no specific platform was requested",
                    store::Platform::host()
                );
            }
        }
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(super::read_env_file(f)?);
    }
    env.extend(a.env.iter().cloned());
    let mut labels = Vec::new();
    for f in &a.label_file {
        // docker's label files: KEY=VALUE lines taken as written (no environment lookup).
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("open {}: {e}", f.display()))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    labels.extend(a.label.iter().cloned());
    let labels = super::label_map(&labels).into_iter().collect();
    let (resources, health) = match limits(&a) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(runtime::EXIT_START));
        }
    };
    let spec = runtime::Spec {
        image: a.image().to_string(),
        platform,
        command: a.command().to_vec(),
        entrypoint: a
            .entrypoint
            .map(|e| if e.is_empty() { Vec::new() } else { vec![e] }),
        env,
        workdir: a.workdir,
        user: a.user,
        network: a.network.first().cloned().unwrap_or_default(),
        network_aliases: a.network_alias,
        extra_networks: a
            .network
            .iter()
            .skip(1)
            .map(|n| (n.clone(), Vec::new()))
            .collect(),
        name: a.name,
        tty: a.tty,
        publish: a.publish,
        auto_remove: a.rm,
        security_opt: a.security_opt,
        volumes: a.volume,
        mounts: a.mount,
        tmpfs: a.tmpfs,
        hostname: a.hostname,
        add_hosts: a.add_host,
        resources,
        health,
        restart: a.restart,
        init: a.init,
        publish_all: a.publish_all,
        labels,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
    };
    if !a.detach {
        // A foreground run is not supervised (the CLI itself waits on it): what only the
        // supervisor does is said, not silently dropped.
        if spec.restart.as_deref().is_some_and(|r| r != "no") {
            eprintln!(
                "warning: --restart applies to detached containers in strata (run -d); \
                 this foreground run is not restarted"
            );
        }
        if spec.health.cmd.is_some() {
            eprintln!(
                "warning: health checks run for detached containers in strata (run -d); \
                 this foreground run is not probed"
            );
        }
    }
    let result = if a.detach {
        runtime::create(&store, &spec).and_then(|c| {
            c.start(supervisor(&store, c.id()))?;
            println!("{}", c.id());
            Ok(0)
        })
    } else {
        runtime::run(&store, &spec, runtime::Attach::std(a.interactive))
    };
    Ok(match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.code)
        }
    })
}

/// `--memory`, `--cpus`, ... and `--health-*` in the runtime's terms (docker's syntaxes).
fn limits(a: &RunArgs) -> Result<(runtime::Resources, runtime::HealthOpts)> {
    let size = |flag: &str, v: &Option<String>| -> Result<i64> {
        match v.as_deref() {
            None => Ok(0),
            Some("-1") => Ok(-1),
            Some(v) => {
                let n = super::parse_size(v)
                    .with_context(|| format!("invalid argument {v:?} for \"{flag}\" flag"))?;
                Ok(i64::try_from(n)?)
            }
        }
    };
    let resources = runtime::Resources {
        memory: size("--memory", &a.memory)?,
        memory_swap: size("--memory-swap", &a.memory_swap)?,
        nano_cpus: match &a.cpus {
            Some(c) => runtime::cgroup::parse_cpus(c)?,
            None => 0,
        },
        pids_limit: a.pids_limit,
    };
    let go_duration = |d: &str| ::plan::parse_duration(d).and_then(|n| i64::try_from(n).ok());
    let duration = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|d| {
                go_duration(d).ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid argument {d:?} for \"{flag}\" flag: time: invalid duration {d:?}"
                    )
                })
            })
            .transpose()
    };
    let health = runtime::HealthOpts {
        cmd: a.health_cmd.clone(),
        interval: duration("--health-interval", &a.health_interval)?,
        timeout: duration("--health-timeout", &a.health_timeout)?,
        start_period: duration("--health-start-period", &a.health_start_period)?,
        retries: a.health_retries,
        none: a.no_healthcheck,
        test: None,
    };
    Ok((resources, health))
}

/// The command that runs the supervisor of the container `id`: this binary again.
pub fn supervisor(store: &Store, id: &str) -> std::process::Command {
    let mut supervisor = std::process::Command::new("/proc/self/exe");
    supervisor
        .arg("--root")
        .arg(store.root())
        .arg(SUPERVISE_CMD)
        .arg(id);
    supervisor
}

/// The supervisor of a detached container: `runtime::supervise` in a process of its own.
pub fn supervise(store: &Store, id: &str) -> ExitCode {
    match runtime::supervise(store.root(), id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// docker run's pull: an image that is not in the store is pulled first (`Unable to find
/// image 'X' locally`, then the pull's progress, all on stderr), or always with `--pull
/// always`; `--pull never` leaves a missing image to the runtime's error.
pub(crate) fn pull_for_run(
    store: &Store,
    image: &str,
    policy: &str,
    flags: &super::registry::RegistryFlags,
) -> Result<()> {
    pull_for_platform(store, image, policy, flags, None)
}

/// `--platform`'s value, as docker spells platforms (parsed by the command, not as a usage
/// error: docker's daemon refuses a bad one, exit 1, or 125 for `run`).
pub fn platform_flag(v: Option<&str>) -> Result<Option<store::Platform>> {
    v.map(store::Platform::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// [`pull_for_run`] for a platform: an image of another platform than asked counts as
/// missing (docker pulls then), and the pull picks that platform.
pub(crate) fn pull_for_platform(
    store: &Store,
    image: &str,
    policy: &str,
    flags: &super::registry::RegistryFlags,
    platform: Option<&store::Platform>,
) -> Result<()> {
    let have = store.resolve_platform(image, platform).is_ok();
    match (policy, have) {
        ("never", _) | ("missing", true) => return Ok(()),
        _ => {}
    }
    if !have {
        eprintln!("Unable to find image '{image}' locally");
    }
    let r = store::Reference::parse(image).map_err(anyhow::Error::msg)?;
    let mut opts = flags.options();
    if let Some(p) = platform {
        opts.platform = p.clone();
    }
    let progress = |id: &str, status: &str| {
        if super::registry::transfer_bytes(status).is_some() {
            // Byte counts: no line for them off a terminal, as docker.
        } else if id.is_empty() {
            eprintln!("{status}");
        } else {
            eprintln!("{id}: {status}");
        }
    };
    let p = registry::pull(store, &r, &opts, &progress)
        .with_context(|| format!("pulling {r} from {}", r.domain))?;
    eprintln!("Digest: {}", p.digest);
    let familiar = r.familiar();
    if p.updated {
        eprintln!("Status: Downloaded newer image for {familiar}");
    } else {
        eprintln!("Status: Image is up to date for {familiar}");
    }
    Ok(())
}
