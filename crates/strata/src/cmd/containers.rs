//! The container commands: `ps`, `logs`, `stop`, `rm` (containers started by `run -d`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use clap::Args;
use store::Store;

use runtime::{Container, Status};

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

pub fn ps(store: &Store, a: PsArgs) -> Result<ExitCode> {
    let mut rows: Vec<Row> = Vec::new();
    let mut ids = Vec::new();
    for c in runtime::list(store)? {
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

pub fn stop(store: &Store, a: StopArgs) -> Result<ExitCode> {
    let timeout = match a.time {
        Some(t) if t < 0 => None,
        Some(t) => Some(Duration::from_secs(t as u64)),
        None => Some(Duration::from_secs(10)),
    };
    each(&a.containers, |name| {
        runtime::find(store, name)?.stop(a.signal.as_deref(), timeout)
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
