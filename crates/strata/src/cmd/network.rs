//! `strata network create|ls|inspect|rm|prune`: docker's network commands on
//! `runtime::Networks` (the store's `networks/`), with docker's columns and messages.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use store::Store;

use crate::format::{render, Row};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network (a bridge in a network namespace of its own); prints its id.
    Create(CreateArgs),
    /// List networks (the user-defined ones).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks (not while a container, running or not, is attached).
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all networks no container uses.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The network's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
    pub name: String,
    /// Set metadata on the network (`key=value`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The network driver (only `bridge`).
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display network ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: `name=TEXT`, `id=PREFIX`, `label=KEY[=VALUE]`, `driver=bridge`, `scope=local`.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// `table`, `json`, or a Go template (`{{.ID}}`, `{{.Name}}`, `{{.Driver}}`...).
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format the output with a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Do not fail on a network that does not exist.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Filter: `label=KEY[=VALUE]`.
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn run(store: &Store, c: NetworkCommand) -> Result<ExitCode> {
    let nets = runtime::Networks::open(store)?;
    match c {
        NetworkCommand::Create(a) => create(&nets, a),
        NetworkCommand::Ls(a) => ls(&nets, a),
        NetworkCommand::Inspect(a) => inspect(&nets, a),
        NetworkCommand::Rm(a) => rm(&nets, a),
        NetworkCommand::Prune(a) => prune(&nets, a),
    }
}

fn create(nets: &runtime::Networks, a: CreateArgs) -> Result<ExitCode> {
    if a.driver != "bridge" {
        bail!(
            "plugin \"{}\" not found (strata has the bridge driver only)",
            a.driver
        );
    }
    let n = nets.create(&a.name, super::label_map(&a.label))?;
    println!("{}", n.record.id);
    Ok(ExitCode::SUCCESS)
}

fn ls(nets: &runtime::Networks, a: LsArgs) -> Result<ExitCode> {
    let mut filters = Vec::new();
    for f in &a.filter {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        if !matches!(k, "name" | "id" | "label" | "driver" | "scope" | "type") {
            bail!("invalid filter '{k}'");
        }
        filters.push((k, v));
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut all = nets.list()?;
    // docker's CLI lists networks by name.
    all.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    for n in all {
        let r = &n.record;
        let keep = filters.iter().all(|(k, val)| match *k {
            "name" => r.name.contains(val),
            "id" => r.id.starts_with(val),
            "label" => runtime::volumes::label_matches(&r.labels, val),
            "driver" => *val == "bridge",
            "scope" => *val == "local",
            _ => *val == "custom",
        });
        if !keep {
            continue;
        }
        let id = if a.no_trunc {
            r.id.clone()
        } else {
            r.id[..12].to_string()
        };
        let labels = r
            .labels
            .iter()
            .map(|(k, x)| format!("{k}={x}"))
            .collect::<Vec<_>>()
            .join(",");
        rows.push(vec![
            ("CreatedAt", r.created.clone()),
            ("Driver", "bridge".into()),
            ("ID", id),
            ("IPv4", "true".into()),
            ("IPv6", "false".into()),
            ("Internal", "false".into()),
            ("Labels", labels),
            ("Name", r.name.clone()),
            ("Scope", "local".into()),
        ]);
    }
    let cell = |r: &Row, k: &str| {
        r.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if a.quiet {
        for r in &rows {
            println!("{}", cell(r, "ID"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = match a.format.as_deref() {
        None | Some("table") => {
            // docker's tabwriter: each column as wide as its widest cell plus 3 spaces, at
            // least 10.
            let header = ["NETWORK ID", "NAME", "DRIVER", "SCOPE"];
            let cells: Vec<[String; 4]> = rows
                .iter()
                .map(|r| {
                    [
                        cell(r, "ID"),
                        cell(r, "Name"),
                        cell(r, "Driver"),
                        cell(r, "Scope"),
                    ]
                })
                .collect();
            let width = |i: usize| {
                cells
                    .iter()
                    .map(|c| c[i].len())
                    .chain([header[i].len()])
                    .max()
                    .map_or(10, |w| (w + 3).max(10))
            };
            let widths = [width(0), width(1), width(2)];
            let line = |c: [&str; 4]| {
                format!(
                    "{:<w0$}{:<w1$}{:<w2$}{}\n",
                    c[0],
                    c[1],
                    c[2],
                    c[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2]
                )
            };
            let mut t = line(header);
            for c in &cells {
                t.push_str(&line([&c[0], &c[1], &c[2], &c[3]]));
            }
            t
        }
        f => render(
            &rows,
            &[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
            ],
            f,
        )?,
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn inspect(nets: &runtime::Networks, a: InspectArgs) -> Result<ExitCode> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in &a.networks {
        match nets.get(n) {
            Ok(n) => out.push(n.record.inspect()),
            Err(_) => missing.push(n.clone()),
        }
    }
    super::print_inspected(out, &missing, "network", a.format.as_deref())
}

fn rm(nets: &runtime::Networks, a: RmArgs) -> Result<ExitCode> {
    let mut failed = false;
    for n in &a.networks {
        if a.force && nets.get(n).is_err() {
            continue;
        }
        match nets.remove(n) {
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

fn prune(nets: &runtime::Networks, a: PruneArgs) -> Result<ExitCode> {
    let mut labels = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("label", l)) => labels.push(l.to_string()),
            _ => bail!("invalid filter '{f}'"),
        }
    }
    if !a.force
        && !super::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let removed = nets.prune(&labels)?;
    if !removed.is_empty() {
        let mut out = "Deleted Networks:\n".to_string();
        for n in &removed {
            out.push_str(n);
            out.push('\n');
        }
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}
