//! `strata volume create|ls|inspect|rm|prune`: docker's volume commands on
//! `runtime::Volumes` (the store's `volumes/`), with docker's columns and messages.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use store::Store;

use crate::format::{human_size, render, Row};

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given); prints its name.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes (not while a container, running or not, uses them).
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused anonymous volumes (all unused volumes with --all).
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The volume's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
    pub name: Option<String>,
    /// Set metadata on the volume (`key=value`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The volume driver (only `local`).
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Driver options (none are supported by strata's local driver).
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: `dangling=true|false`, `name=TEXT`, `label=KEY[=VALUE]`, `driver=local`.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// `table`, `json`, or a Go template (`{{.Name}}`, `{{.Driver}}`, `{{.Mountpoint}}`...).
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format the output with a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Do not fail on a volume that does not exist.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Filter: `label=KEY[=VALUE]`.
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn run(store: &Store, c: VolumeCommand) -> Result<ExitCode> {
    let vols = runtime::Volumes::open(store)?;
    match c {
        VolumeCommand::Create(a) => create(&vols, a),
        VolumeCommand::Ls(a) => ls(&vols, a),
        VolumeCommand::Inspect(a) => inspect(&vols, a),
        VolumeCommand::Rm(a) => rm(&vols, a),
        VolumeCommand::Prune(a) => prune(&vols, a),
    }
}

fn create(vols: &runtime::Volumes, a: CreateArgs) -> Result<ExitCode> {
    if a.driver != "local" {
        bail!(
            "error looking up volume plugin {}: plugin \"{}\" not found",
            a.driver,
            a.driver
        );
    }
    if !a.opt.is_empty() {
        bail!("strata's local volume driver takes no options (--opt)");
    }
    let (v, _) = vols.create(a.name.as_deref(), super::label_map(&a.label), false)?;
    println!("{}", v.name);
    Ok(ExitCode::SUCCESS)
}

fn ls(vols: &runtime::Volumes, a: LsArgs) -> Result<ExitCode> {
    let mut filters = Vec::new();
    for f in &a.filter {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        match k {
            "dangling" => {
                if !matches!(v, "true" | "false" | "1" | "0") {
                    bail!("invalid filter 'dangling={v}'");
                }
            }
            "name" | "label" | "driver" => {}
            _ => bail!("invalid filter '{k}'"),
        }
        filters.push((k, v));
    }
    let mut rows: Vec<Row> = Vec::new();
    for v in vols.list()? {
        let mut keep = true;
        for (k, val) in &filters {
            keep &= match *k {
                "dangling" => {
                    let dangling = vols.users(&v.name)?.is_empty();
                    dangling == matches!(*val, "true" | "1")
                }
                "name" => v.name.contains(val),
                "label" => runtime::volumes::label_matches(&v.meta.labels, val),
                _ => *val == "local",
            };
        }
        if !keep {
            continue;
        }
        let labels = v
            .meta
            .labels
            .iter()
            .map(|(k, x)| format!("{k}={x}"))
            .collect::<Vec<_>>()
            .join(",");
        rows.push(vec![
            ("Availability", "N/A".into()),
            ("Driver", "local".into()),
            ("Group", "N/A".into()),
            ("Labels", labels),
            ("Links", "N/A".into()),
            ("Mountpoint", v.mountpoint().display().to_string()),
            ("Name", v.name.clone()),
            ("Scope", "local".into()),
            ("Size", "N/A".into()),
            ("Status", "N/A".into()),
        ]);
    }
    if a.quiet {
        for r in &rows {
            if let Some((_, n)) = r.iter().find(|(k, _)| *k == "Name") {
                println!("{n}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = match a.format.as_deref() {
        None | Some("table") => {
            // docker's tabwriter: cells at least 10 wide, 3 spaces of padding.
            let mut t = format!("{:<10}VOLUME NAME\n", "DRIVER");
            for r in &rows {
                let name = r
                    .iter()
                    .find(|(k, _)| *k == "Name")
                    .map(|(_, v)| v.as_str());
                t.push_str(&format!("{:<10}{}\n", "local", name.unwrap_or_default()));
            }
            t
        }
        f => render(&rows, &[("Driver", "DRIVER"), ("Name", "VOLUME NAME")], f)?,
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn inspect(vols: &runtime::Volumes, a: InspectArgs) -> Result<ExitCode> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in &a.volumes {
        match vols.get(n) {
            Ok(v) => out.push(v.inspect()),
            Err(_) => missing.push(n.clone()),
        }
    }
    super::print_inspected(out, &missing, "volume", a.format.as_deref())
}

fn rm(vols: &runtime::Volumes, a: RmArgs) -> Result<ExitCode> {
    let mut failed = false;
    for n in &a.volumes {
        match vols.remove(n, a.force) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
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

fn prune(vols: &runtime::Volumes, a: PruneArgs) -> Result<ExitCode> {
    let mut labels = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("label", l)) => labels.push(l.to_string()),
            Some(("all", "true" | "1")) => {}
            _ => bail!("invalid filter '{f}'"),
        }
    }
    let all = a.all || a.filter.iter().any(|f| f == "all=true" || f == "all=1");
    if !a.force {
        let warning = if all {
            "WARNING! This will remove all local volumes not used by at least one container."
        } else {
            "WARNING! This will remove anonymous local volumes not used by at least one container."
        };
        if !super::confirm(warning)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let removed = vols.prune(all, &labels)?;
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for (n, _) in &removed {
            out.push_str(n);
            out.push('\n');
        }
        out.push('\n');
    }
    let total: u64 = removed.iter().map(|(_, s)| s).sum();
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(total)));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
