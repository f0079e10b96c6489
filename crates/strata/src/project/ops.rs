//! The project commands besides `build` and `up`: `down`, `ps`, `stop`, `start`, `restart`,
//! `rm`, `exec`, `run`, `images`, `pull`, `push`, and the networks `up` makes.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use store::Store;

use super::up::say;
use super::{containers, is_oneoff, service_of, ProjectPlan, LABEL_NUMBER};

/// The project's networks (`PROJECT_default` and those it declares): made when missing,
/// labelled with the project; an external one must exist.
pub fn ensure_networks(store: &Store, plan: &ProjectPlan) -> Result<()> {
    let networks = runtime::Networks::open(store)?;
    for n in &plan.networks {
        // Only the networks a service joins are made, as compose does.
        if !plan
            .services
            .iter()
            .any(|s| s.networks.iter().any(|(name, _)| name == &n.name))
        {
            continue;
        }
        if n.external {
            networks.get(&n.name).map_err(|_| {
                anyhow!(
                    "network {} declared as external, but could not be found",
                    n.name
                )
            })?;
            continue;
        }
        let (_, created) = networks.ensure(&n.name, n.labels.clone())?;
        if created {
            say("Network", &n.name, "Created");
        }
    }
    Ok(())
}

/// Stop the containers `names` (last first, as compose stops dependents before their
/// dependencies); a Ctrl-C during the stops kills instead of waiting.
pub fn stop_names(store: &Store, names: &[String], timeout: Option<i64>) -> Result<()> {
    for name in names.iter().rev() {
        let Ok(mut c) = runtime::find(store, name) else {
            continue;
        };
        if c.status() != runtime::Status::Running {
            continue;
        }
        say("Container", name, "Stopping");
        let t = timeout.or(c.config.stop_timeout).unwrap_or(10).max(0) as u64;
        if runtime::signal::INTERRUPTED.load(Ordering::SeqCst) {
            c.kill()?;
        } else {
            c.stop(None, Some(Duration::from_secs(t)))?;
        }
        say("Container", name, "Stopped");
    }
    Ok(())
}

/// The project's containers for `services` (all when empty), one-off ones only with
/// `oneoff`.
fn selected(
    store: &Store,
    project: &str,
    services: &[String],
    oneoff: bool,
) -> Result<Vec<runtime::Container>> {
    Ok(containers(store, project)?
        .into_iter()
        .filter(|c| services.is_empty() || services.iter().any(|s| s == service_of(c)))
        .filter(|c| oneoff || !is_oneoff(c))
        .collect())
}

/// What `down` asks for.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// `-v`: named volumes declared by the project and anonymous volumes of its containers.
    pub volumes: bool,
    /// `--rmi local|all`.
    pub rmi: Option<String>,
    pub timeout: Option<i64>,
}

/// `compose down`: stop and remove every container of the project (one-off ones too), its
/// networks, with `-v` its volumes, with `--rmi` its images.
pub fn down(store: &Store, plan: &ProjectPlan, opts: &DownOptions) -> Result<ExitCode> {
    let cs = containers(store, &plan.name)?;
    let names: Vec<String> = cs.iter().map(|c| c.config.name.clone()).collect();
    stop_names(store, &names, opts.timeout)?;
    let mut anonymous = Vec::new();
    for c in cs {
        let name = c.config.name.clone();
        anonymous.extend(c.config.mounts.clone());
        say("Container", &name, "Removing");
        runtime::find(store, c.id())?.remove(true)?;
        say("Container", &name, "Removed");
    }
    remove_networks(store, plan)?;
    if opts.volumes {
        let volumes = runtime::Volumes::open(store)?;
        volumes.remove_anonymous(&anonymous)?;
        for v in plan.volumes.iter().filter(|v| !v.external) {
            if volumes.get(&v.name).is_ok() {
                say("Volume", &v.name, "Removing");
                volumes.remove(&v.name, false)?;
                say("Volume", &v.name, "Removed");
            }
        }
    }
    if let Some(mode) = &opts.rmi {
        let mut images: Vec<String> = Vec::new();
        for s in &plan.services {
            // local: only the images compose named itself (no `image:` of the user's).
            let local = s.build.is_some() && s.image == default_image(plan, &s.name);
            if (mode == "all" || local) && !images.contains(&s.image) {
                images.push(s.image.clone());
            }
        }
        for image in images {
            if store.resolve(&image).is_ok() {
                say("Image", &image, "Removing");
                crate::cmd::images::rmi(
                    store,
                    crate::cmd::images::RmiArgs {
                        force: false,
                        images: vec![image.clone()],
                    },
                )?;
                say("Image", &image, "Removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The name compose gives a built image without `image:`: `PROJECT-SERVICE`.
pub fn default_image(plan: &ProjectPlan, service: &str) -> String {
    format!("{}-{service}", plan.name)
}

/// The project's networks, removed (not external ones, nor one another container still
/// uses: said, and left).
fn remove_networks(store: &Store, plan: &ProjectPlan) -> Result<()> {
    let networks = runtime::Networks::open(store)?;
    for n in plan.networks.iter().filter(|n| !n.external) {
        let Ok(net) = networks.get(&n.name) else {
            continue;
        };
        if net.record.labels.get(super::LABEL_PROJECT) != Some(&plan.name) {
            continue;
        }
        say("Network", &n.name, "Removing");
        match networks.remove(&n.name) {
            Ok(()) => say("Network", &n.name, "Removed"),
            Err(e) => eprintln!("warning: network {}: {e:#}", n.name),
        }
    }
    Ok(())
}

/// `compose stop [SERVICE...]`.
pub fn stop(
    store: &Store,
    plan: &ProjectPlan,
    services: &[String],
    timeout: Option<i64>,
) -> Result<ExitCode> {
    let names: Vec<String> = selected(store, &plan.name, services, false)?
        .iter()
        .map(|c| c.config.name.clone())
        .collect();
    stop_names(store, &names, timeout)?;
    Ok(ExitCode::SUCCESS)
}

/// `compose start [SERVICE...]`: stopped containers started again, dependencies first.
pub fn start(store: &Store, plan: &ProjectPlan, services: &[String]) -> Result<ExitCode> {
    let order: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let mut cs = selected(store, &plan.name, services, false)?;
    cs.sort_by_key(|c| order.iter().position(|s| s == service_of(c)));
    if cs.is_empty() {
        bail!("service(s) not running or no containers: run `strata compose up` first");
    }
    for c in cs {
        let name = c.config.name.clone();
        let mut c = runtime::find(store, c.id())?;
        if c.status() == runtime::Status::Running {
            continue;
        }
        say("Container", &name, "Starting");
        let supervisor = crate::cmd::run::supervisor(store, c.id());
        c.start_again(supervisor)
            .map_err(|e| anyhow!("{}", e.message))?;
        say("Container", &name, "Started");
    }
    Ok(ExitCode::SUCCESS)
}

/// `compose restart [SERVICE...]`.
pub fn restart(
    store: &Store,
    plan: &ProjectPlan,
    services: &[String],
    timeout: Option<i64>,
) -> Result<ExitCode> {
    stop(store, plan, services, timeout)?;
    start(store, plan, services)
}

/// `compose rm [-f] [-s] [-v] [SERVICE...]`: stopped containers removed (`-s` stops first).
pub fn rm(
    store: &Store,
    plan: &ProjectPlan,
    services: &[String],
    stop_first: bool,
    volumes: bool,
) -> Result<ExitCode> {
    if stop_first {
        stop(store, plan, services, None)?;
    }
    let cs: Vec<runtime::Container> = selected(store, &plan.name, services, true)?
        .into_iter()
        .filter(|c| c.status() != runtime::Status::Running)
        .collect();
    if cs.is_empty() {
        eprintln!("No stopped containers");
    }
    for c in cs {
        let name = c.config.name.clone();
        let mounts = c.config.mounts.clone();
        say("Container", &name, "Removing");
        runtime::find(store, c.id())?.remove(false)?;
        if volumes {
            runtime::Volumes::open(store)?.remove_anonymous(&mounts)?;
        }
        say("Container", &name, "Removed");
    }
    Ok(ExitCode::SUCCESS)
}

/// `compose ps`: docker compose's columns (`NAME IMAGE COMMAND SERVICE CREATED STATUS
/// PORTS`), running containers unless `all`; `-q` ids; `--services` the services' names;
/// `--format json` one JSON object per line.
pub fn ps(
    store: &Store,
    plan: &ProjectPlan,
    services: &[String],
    all: bool,
    quiet: bool,
    services_only: bool,
    format: Option<&str>,
) -> Result<ExitCode> {
    let cs: Vec<runtime::Container> = selected(store, &plan.name, services, true)?
        .into_iter()
        .filter(|c| all || c.status() == runtime::Status::Running)
        .collect();
    if services_only {
        let mut seen: Vec<&str> = Vec::new();
        for c in &cs {
            if !seen.contains(&service_of(c)) {
                seen.push(service_of(c));
                println!("{}", service_of(c));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if quiet {
        for c in &cs {
            println!("{}", c.id());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> = cs
        .iter()
        .map(|c| {
            serde_json::json!({
                "ID": c.id(),
                "Name": c.config.name,
                "Image": c.config.image,
                "Command": c.config.args.join(" "),
                "Project": plan.name,
                "Service": service_of(c),
                "CreatedAt": c.config.created,
                "RunningFor": crate::format::since(Some(&c.config.created)),
                "State": c.status().word(),
                "Status": crate::cmd::containers::status_text(c),
                "Health": c.state.health.as_ref().map(|h| h.status.clone()).unwrap_or_default(),
                "ExitCode": c.state.exit_code.unwrap_or(0),
                "Ports": crate::cmd::containers::ports_text(c),
                "Labels": crate::cmd::containers::labels_text(c),
            })
        })
        .collect();
    if format == Some("json") {
        for r in &rows {
            println!("{r}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            [
                s("Name"),
                s("Image"),
                serde_json::to_string(&crate::format::ellipsis(&s("Command"), 20))
                    .unwrap_or_default(),
                s("Service"),
                s("RunningFor"),
                s("Status"),
                s("Ports"),
            ]
        })
        .collect();
    let headers = [
        "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
    ];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &table {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:w$}   ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &table {
        line(row.iter().map(String::as_str).collect());
    }
    Ok(ExitCode::SUCCESS)
}

/// The running container of `service` with number `index` (compose's `--index`, 1 by
/// default).
pub fn service_container(
    store: &Store,
    plan: &ProjectPlan,
    service: &str,
    index: u32,
) -> Result<runtime::Container> {
    if plan.service(service).is_none() {
        bail!("no such service: {service}");
    }
    selected(store, &plan.name, &[service.to_string()], false)?
        .into_iter()
        .find(|c| {
            c.config.labels.get(LABEL_NUMBER).map(String::as_str) == Some(&index.to_string())
                && c.status() == runtime::Status::Running
        })
        .ok_or_else(|| anyhow!("service \"{service}\" is not running"))
}

/// `compose images`: the images the project's containers use.
pub fn images(store: &Store, plan: &ProjectPlan) -> Result<ExitCode> {
    let cs = containers(store, &plan.name)?;
    println!(
        "{:<24}{:<28}{:<12}{:<16}SIZE",
        "CONTAINER", "REPOSITORY", "TAG", "IMAGE ID"
    );
    for c in cs {
        let (repo, tag) = match store::Reference::parse(&c.config.image) {
            Ok(r) => {
                let f = r.familiar();
                match f.rsplit_once(':') {
                    Some((a, b)) if !b.contains('/') => (a.to_string(), b.to_string()),
                    _ => (f.to_string(), "latest".to_string()),
                }
            }
            Err(_) => (c.config.image.clone(), String::new()),
        };
        let id = c.config.image_id.trim_start_matches("sha256:");
        let size = store
            .resolve(&c.config.image_id)
            .map(|i| i.manifest.layers.iter().map(|l| l.size).sum::<u64>())
            .unwrap_or(0);
        println!(
            "{:<24}{:<28}{:<12}{:<16}{}",
            c.config.name,
            repo,
            tag,
            &id[..12.min(id.len())],
            crate::format::human_size_4(size)
        );
    }
    Ok(ExitCode::SUCCESS)
}
