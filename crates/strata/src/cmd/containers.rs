//! The container commands: `ps`, `logs`, `stop`, `rm` (containers started by `run -d`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use store::Store;

use crate::cmd::run::parse_frames;
use crate::container::{self, Container, Containers, Status};
use crate::format::{created_at, ellipsis, human_duration, render, since, Row};

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
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn rfc3339_age(t: Option<&str>) -> Duration {
    t.and_then(|c| humantime::parse_rfc3339_weak(c.trim_end_matches('Z')).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// docker's STATUS column.
fn status_text(c: &Container) -> String {
    match c.status() {
        Status::Running => format!(
            "Up {}",
            human_duration(rfc3339_age(c.state.started_at.as_deref()))
        ),
        Status::Exited(code) => format!(
            "Exited ({code}) {} ago",
            human_duration(rfc3339_age(c.state.finished_at.as_deref()))
        ),
        Status::Created => "Created".into(),
        Status::Dead => "Dead".into(),
    }
}

fn state_word(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Exited(_) => "exited",
        Status::Created => "created",
        Status::Dead => "dead",
    }
}

pub fn ps(store: &Store, a: PsArgs) -> Result<ExitCode> {
    let containers = Containers::new(store.root())?;
    let mut rows: Vec<Row> = Vec::new();
    let mut ids = Vec::new();
    for c in containers.list()? {
        let status = c.status();
        if !a.all && status != Status::Running {
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
        let ports = if status == Status::Running {
            c.state
                .ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            String::new()
        };
        rows.push(vec![
            (
                "Command",
                serde_json::to_string(&command).unwrap_or_default(),
            ),
            ("CreatedAt", created_at(Some(&c.config.created))),
            ("ID", id),
            ("Image", c.config.image.clone()),
            ("Labels", String::new()),
            ("LocalVolumes", "0".into()),
            ("Mounts", String::new()),
            ("Names", c.config.name.clone()),
            ("Networks", c.config.network.clone()),
            ("Ports", ports),
            ("RunningFor", since(Some(&c.config.created))),
            ("Size", "0B".into()),
            ("State", state_word(status).into()),
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
    print!("{}", render(&rows, &headers, a.format.as_deref()));
    Ok(ExitCode::SUCCESS)
}

/// Write frames to stdout (stream 1) and stderr (stream 2).
fn emit(frames: &[(u8, &[u8])]) -> Result<()> {
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
    let containers = Containers::new(store.root())?;
    let mut c = containers.find(&a.container)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => bail!("invalid value for --tail: {n:?} (a number or \"all\")"),
        },
    };
    let path = c.dir.join("log");
    let read = |from: usize| -> Result<Vec<u8>> {
        match std::fs::read(&path) {
            Ok(b) => Ok(b.get(from..).unwrap_or_default().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    };
    let bytes = read(0)?;
    let (frames, mut offset) = parse_frames(&bytes);
    let skip = tail.map_or(0, |n| frames.len().saturating_sub(n));
    emit(&frames[skip..])?;
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        // Read the state before the log: once it says stopped, the log is complete.
        let stopped = c.reload().is_err() || c.status() != Status::Running;
        let more = read(offset)?;
        let (frames, used) = parse_frames(&more);
        emit(&frames)?;
        offset += used;
        if stopped {
            return Ok(ExitCode::SUCCESS);
        }
        if frames.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
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

/// Wait until the container is no longer running; `None` waits forever.
fn wait_stopped(c: &mut Container, timeout: Option<Duration>) -> bool {
    let t = timeout.unwrap_or(Duration::from_secs(u64::MAX / 4));
    container::wait_until(t, || c.reload().is_err() || c.status() != Status::Running)
}

/// SIGKILL and wait for the supervisor to record the end.
fn kill(c: &mut Container) -> Result<()> {
    container::signal(c.state.pid, c.state.pid_start, libc::SIGKILL)?;
    if !wait_stopped(c, Some(Duration::from_secs(30))) {
        bail!(
            "container {} did not exit after SIGKILL",
            &c.config.id[..12]
        );
    }
    Ok(())
}

pub fn stop(store: &Store, a: StopArgs) -> Result<ExitCode> {
    let containers = Containers::new(store.root())?;
    each(&a.containers, |name| {
        let mut c = containers.find(name)?;
        if c.status() != Status::Running {
            return Ok(());
        }
        let sig = match a.signal.as_deref().or(c.config.stop_signal.as_deref()) {
            Some(s) => container::parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let timeout = match a.time {
            Some(t) if t < 0 => None,
            Some(t) => Some(Duration::from_secs(t as u64)),
            None => Some(Duration::from_secs(10)),
        };
        container::signal(c.state.pid, c.state.pid_start, sig)?;
        if wait_stopped(&mut c, timeout) {
            return Ok(());
        }
        kill(&mut c)
    })
}

pub fn rm(store: &Store, a: RmArgs) -> Result<ExitCode> {
    let containers = Containers::new(store.root())?;
    each(&a.containers, |name| {
        let mut c = containers.find(name)?;
        if c.status() == Status::Running {
            if !a.force {
                bail!(
                    "cannot remove container \"/{}\": container is running: stop the container \
                     before removing or force remove",
                    c.config.name
                );
            }
            kill(&mut c)?;
        }
        containers.remove(store.root(), &c.config.id)
    })
}

/// docker's zero time, for a container that never started or never finished.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `docker container inspect`'s fields that strata knows.
pub fn inspect_json(c: &Container) -> serde_json::Value {
    use serde_json::json;
    let status = c.status();
    let running = status == Status::Running;
    let bindings = |ports: &[crate::proxy::PortMap]| {
        let mut m = serde_json::Map::new();
        for p in ports {
            let e = m
                .entry(format!("{}/tcp", p.container_port))
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
    let network_mode = match c.config.network.as_str() {
        "private" => "default",
        other => other,
    };
    json!({
        "Id": c.config.id,
        "Created": c.config.created,
        "Path": c.config.args.first().cloned().unwrap_or_default(),
        "Args": c.config.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state_word(status),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": status == Status::Dead,
            "Pid": if running { c.state.pid } else { 0 },
            "ExitCode": c.state.exit_code.unwrap_or(0),
            "Error": c.state.error.clone().unwrap_or_default(),
            "StartedAt": c.state.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            "FinishedAt": c.state.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
        },
        "Image": c.config.image_id,
        "LogPath": c.dir.join("log"),
        "Name": format!("/{}", c.config.name),
        "RestartCount": 0,
        "HostConfig": {
            "NetworkMode": network_mode,
            "PortBindings": bindings(&c.config.ports),
            "AutoRemove": c.config.auto_remove,
        },
        "Config": {
            "Hostname": c.config.hostname,
            "User": c.config.user.clone().unwrap_or_default(),
            "Tty": c.config.tty,
            "Env": c.config.env,
            "Image": c.config.image,
            "WorkingDir": c.config.cwd,
            "StopSignal": c.config.stop_signal,
        },
        "NetworkSettings": {
            "Ports": if running { bindings(&c.state.ports) } else { json!({}) },
        },
    })
}
