//! The container commands: `ps`, `logs`, `stop`, `rm`, `start`, `restart`, `kill`, `wait`,
//! `port`, `container prune` (containers started by `run -d`).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use store::Store;

use runtime::{Container, Status};

use crate::format::{created_at, ellipsis, human_duration, human_size_4, render, since, Row};

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// `table`, `json`, or a template such as `{{.ID}}\t{{.Status}}`.
    #[arg(long)]
    pub format: Option<String>,
    /// Filter (docker's): `label=KEY[=VALUE]`, `name=`, `id=`, `status=`, `exited=`,
    /// `ancestor=`, `health=`, `network=`; repeated keys match any, different keys all.
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// `ps --filter`s, grouped by key.
#[derive(Default)]
pub struct PsFilter(std::collections::BTreeMap<String, Vec<String>>);

impl PsFilter {
    pub fn parse(filters: &[String]) -> Result<PsFilter> {
        let mut f = PsFilter::default();
        for v in filters {
            let (k, val) = v
                .split_once('=')
                .with_context(|| format!("bad format of filter (expected name=value): {v}"))?;
            let k = k.trim().to_ascii_lowercase();
            if !matches!(
                k.as_str(),
                "label" | "name" | "id" | "status" | "exited" | "ancestor" | "health" | "network"
            ) {
                bail!("invalid filter '{k}'");
            }
            if k == "status"
                && !matches!(
                    val,
                    "created"
                        | "restarting"
                        | "running"
                        | "removing"
                        | "paused"
                        | "exited"
                        | "dead"
                )
            {
                bail!(
                    "invalid filter 'status={val}': use created, restarting, running, \
                     removing, paused, exited or dead"
                );
            }
            f.0.entry(k).or_default().push(val.to_string());
        }
        Ok(f)
    }

    /// A status filter lists stopped containers without `-a`, as docker's.
    fn wants_all(&self) -> bool {
        self.0.contains_key("status") || self.0.contains_key("exited")
    }

    pub fn matches(&self, c: &Container) -> bool {
        let status = c.status();
        self.0.iter().all(|(k, values)| match k.as_str() {
            // Every label filter must hold.
            "label" => values.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => c.config.labels.get(k).is_some_and(|x| x == v),
                None => c.config.labels.contains_key(l),
            }),
            _ => values.iter().any(|v| match k.as_str() {
                "name" => c.config.name.contains(v.trim_start_matches('/')),
                "id" => c.config.id.starts_with(v.as_str()),
                "status" => {
                    let word = if c.state.restarting && status == Status::Running {
                        "restarting"
                    } else {
                        status.word()
                    };
                    word == v
                }
                "exited" => matches!(status, Status::Exited(code) if code.to_string() == *v),
                "ancestor" => {
                    let named = |r: &str| store::Reference::parse(r).map(|r| r.to_string()).ok();
                    let hex = v.trim_start_matches("sha256:");
                    c.config.image == *v
                        || named(v).is_some_and(|n| named(&c.config.image) == Some(n))
                        || (hex.len() >= 4
                            && c.config
                                .image_id
                                .trim_start_matches("sha256:")
                                .starts_with(hex))
                }
                "health" => {
                    let h = c.state.health.as_ref().map(|h| h.status.as_str());
                    h.unwrap_or("none") == v
                }
                "network" => c.config.network == *v,
                _ => false,
            }),
        })
    }
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output (until the container stops).
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs (`all` for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    pub container: String,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default 10; negative waits forever).
    #[arg(short, long, allow_negative_numbers = true)]
    pub time: Option<i64>,
    /// Signal to send (default: the image's StopSignal, else SIGTERM).
    #[arg(short, long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct StartArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `restart` takes `stop`'s flags (it is stop, then start).
pub type RestartArgs = StopArgs;

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container (a name such as `SIGHUP` or `HUP`, or a number).
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct PortArgs {
    pub container: String,
    /// Only this port of the container (`PORT[/PROTO]`).
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub private_port: Option<String>,
}

#[derive(Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short, long)]
    pub force: bool,
    /// Remove the anonymous volumes of the container.
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn rfc3339_age(t: Option<&str>) -> Duration {
    t.and_then(|c| humantime::parse_rfc3339_weak(c.trim_end_matches('Z')).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// docker's STATUS column.
/// The PORTS column: a running container's published ports (`0.0.0.0:8080->80/tcp, ...`).
pub(crate) fn ports_text(c: &Container) -> String {
    if c.status() != Status::Running {
        return String::new();
    }
    c.state
        .ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Labels column: `k=v,k2=v2`.
pub(crate) fn labels_text(c: &Container) -> String {
    c.config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn status_text(c: &Container) -> String {
    match c.status() {
        Status::Running if c.state.restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code.unwrap_or(0),
            human_duration(rfc3339_age(c.state.finished_at.as_deref()))
        ),
        Status::Running => {
            let health = match c.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) if !s.is_empty() => format!(" ({s})"),
                _ => String::new(),
            };
            format!(
                "Up {}{health}",
                human_duration(rfc3339_age(c.state.started_at.as_deref()))
            )
        }
        Status::Exited(code) => format!(
            "Exited ({code}) {} ago",
            human_duration(rfc3339_age(c.state.finished_at.as_deref()))
        ),
        Status::Created => "Created".into(),
        Status::Dead => "Dead".into(),
    }
}

pub fn ps(store: &Store, a: PsArgs) -> Result<ExitCode> {
    let filter = PsFilter::parse(&a.filter)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut ids = Vec::new();
    for c in runtime::list(store)? {
        let status = c.status();
        if !a.all && !filter.wants_all() && status != Status::Running {
            continue;
        }
        if !filter.matches(&c) {
            continue;
        }
        let id = if a.no_trunc {
            c.config.id.clone()
        } else {
            c.config.id.chars().take(12).collect()
        };
        ids.push(id.clone());
        let command = c.config.args.join(" ");
        let command = if a.no_trunc {
            command
        } else {
            ellipsis(&command, 20)
        };
        let ports = ports_text(&c);
        rows.push(vec![
            (
                "Command",
                serde_json::to_string(&command).unwrap_or_default(),
            ),
            ("CreatedAt", created_at(Some(&c.config.created))),
            ("ID", id),
            ("Image", c.config.image.clone()),
            ("Labels", labels_text(&c)),
            ("LocalVolumes", "0".into()),
            ("Mounts", String::new()),
            ("Names", c.config.name.clone()),
            (
                "Networks",
                if c.config.networks.is_empty() {
                    c.config.network.clone()
                } else {
                    let names: Vec<&str> =
                        c.config.networks.iter().map(|n| n.name.as_str()).collect();
                    names.join(",")
                },
            ),
            ("Ports", ports),
            ("RunningFor", since(Some(&c.config.created))),
            ("Size", "0B".into()),
            ("State", status.word().into()),
            ("Status", status_text(&c)),
        ]);
    }
    if a.quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let headers = [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("RunningFor", "CREATED"),
        ("Status", "STATUS"),
        ("Ports", "PORTS"),
        ("Names", "NAMES"),
    ];
    print!("{}", render(&rows, &headers, a.format.as_deref())?);
    Ok(ExitCode::SUCCESS)
}

/// Write frames to stdout (stream 1) and stderr (stream 2).
fn emit(frames: &[runtime::logs::Frame]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for (stream, payload) in frames {
        if *stream == 2 {
            out.flush()?;
            err.write_all(payload)?;
            err.flush()?;
        } else {
            out.write_all(payload)?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn logs(store: &Store, a: LogsArgs) -> Result<ExitCode> {
    let mut c = runtime::find(store, &a.container)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => bail!("invalid value for --tail: {n:?} (a number or \"all\")"),
        },
    };
    if a.follow {
        runtime::logs::follow(&mut c, tail, &mut emit)?;
    } else {
        runtime::logs::read(&c, tail, &mut emit)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `f` on each named container; print the name as given on success, the error
/// otherwise; exit 1 if any failed (docker's behaviour for stop and rm).
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<ExitCode> {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `-t`: seconds (default: the container's `--stop-timeout`, else 10), negative for no
/// limit.
fn stop_timeout(time: Option<i64>, c: &Container) -> Option<Duration> {
    match time.or(c.config.stop_timeout) {
        Some(t) if t < 0 => None,
        Some(t) => Some(Duration::from_secs(t as u64)),
        None => Some(Duration::from_secs(10)),
    }
}

pub fn stop(store: &Store, a: StopArgs) -> Result<ExitCode> {
    each(&a.containers, |name| {
        let mut c = runtime::find(store, name)?;
        let timeout = stop_timeout(a.time, &c);
        c.stop(a.signal.as_deref(), timeout)
    })
}

pub fn rm(store: &Store, a: RmArgs) -> Result<ExitCode> {
    each(&a.containers, |name| {
        let c = runtime::find(store, name)?;
        let mounts = c.config.mounts.clone();
        c.remove(a.force)?;
        if a.volumes {
            runtime::Volumes::open(store)?.remove_anonymous(&mounts)?;
        }
        Ok(())
    })
}

/// `start`: each stopped container started again with its saved config (its files and log
/// kept); prints the name as given.
pub fn start(store: &Store, a: StartArgs) -> Result<ExitCode> {
    each(&a.containers, |name| {
        let mut c = runtime::find(store, name)?;
        let supervisor = super::run::supervisor(store, c.id());
        Ok(c.start_again(supervisor)?)
    })
}

/// `restart`: stop (as `stop -t`), then start.
pub fn restart(store: &Store, a: RestartArgs) -> Result<ExitCode> {
    each(&a.containers, |name| {
        let mut c = runtime::find(store, name)?;
        let timeout = stop_timeout(a.time, &c);
        c.stop(a.signal.as_deref(), timeout)?;
        let supervisor = super::run::supervisor(store, c.id());
        Ok(c.start_again(supervisor)?)
    })
}

/// `kill`: a signal (default SIGKILL) to each running container's main process.
pub fn kill(store: &Store, a: KillArgs) -> Result<ExitCode> {
    let sig = runtime::signal::parse(&a.signal)?;
    each(&a.containers, |name| {
        let mut c = runtime::find(store, name)?;
        c.kill_with(sig)
            .with_context(|| format!("cannot kill container: {name}"))
    })
}

/// `wait`: block until each container stops, print its exit code.
pub fn wait(store: &Store, a: WaitArgs) -> Result<ExitCode> {
    let mut failed = false;
    for name in &a.containers {
        match runtime::find(store, name).and_then(|mut c| c.wait_exit()) {
            Ok(code) => {
                println!("{code}");
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `port`: the published ports of a running container, `80/tcp -> 0.0.0.0:8080` each
/// (sorted), or with a port only its host addresses.
pub fn port(store: &Store, a: PortArgs) -> Result<ExitCode> {
    let c = runtime::find(store, &a.container)?;
    let ports = if c.status() == Status::Running {
        c.state.ports.clone()
    } else {
        Vec::new()
    };
    let host = |p: &runtime::PortMap| std::net::SocketAddr::new(p.host_ip, p.host_port);
    let mut lines: Vec<String> = match &a.private_port {
        None => ports
            .iter()
            .map(|p| format!("{}/{} -> {}", p.container_port, p.proto, host(p)))
            .collect(),
        Some(filter) => {
            let (port, proto) = filter.split_once('/').unwrap_or((filter, "tcp"));
            let Ok(port) = port.parse::<u16>() else {
                bail!("invalid port {filter:?}: expected PORT[/PROTO]");
            };
            let lines: Vec<String> = ports
                .iter()
                .filter(|p| proto == p.proto && p.container_port == port)
                .map(|p| host(p).to_string())
                .collect();
            if lines.is_empty() {
                bail!(
                    "No public port '{port}/{proto}' published for {}",
                    a.container
                );
            }
            lines
        }
    };
    lines.sort();
    for l in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `container prune`: remove every container that is not running, after docker's prompt
/// unless `-f` (the answer read from stdin, terminal or not; anything but `y` or `Y`,
/// end of input included, is no).
pub fn container_prune(store: &Store, a: ContainerPruneArgs) -> Result<ExitCode> {
    if !a.force {
        print!(
            "WARNING! This will remove all stopped containers.\n\
             Are you sure you want to continue? [y/N] "
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let answer = answer.strip_suffix('\n').unwrap_or(&answer);
        let answer = answer.strip_suffix('\r').unwrap_or(answer);
        if !answer.eq_ignore_ascii_case("y") {
            println!("Total reclaimed space: 0B");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let pruned = runtime::Containers::open(store)?.prune()?;
    if !pruned.deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &pruned.deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size_4(pruned.reclaimed));
    Ok(ExitCode::SUCCESS)
}
