//! `compose build` and `compose up`: images built (independent services in parallel, one
//! store and cache) or pulled, volumes and networks made, containers created or kept in
//! dependency order with `depends_on` conditions waited for, then either left running
//! (`-d`, `--wait` for health) or attached: logs multiplexed until Ctrl-C stops the project.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use store::Store;

use super::{config_hash, containers, is_oneoff, service_of, Condition, ProjectPlan, PullPolicy};
use super::{ServicePlan, LABEL_NUMBER};

/// `strata build` flags parsed as the CLI parses them.
#[derive(Parser)]
#[command(name = "build", no_binary_name = false)]
struct BuildCli {
    #[command(flatten)]
    args: crate::cmd::build::BuildArgs,
}

/// A writer that starts every line with `prefix` (for builds running side by side).
struct Prefixed {
    prefix: String,
    at_line_start: bool,
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in buf {
            if self.at_line_start {
                out.extend_from_slice(self.prefix.as_bytes());
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
        std::io::stderr().lock().write_all(&out)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Build the images of `services` that have a `build` section, at once, each on its own
/// thread (the engine shares the store and its cache between them). Plain progress lines
/// carry the service's name when more than one builds.
pub fn build(store: &Store, services: &[&ServicePlan], quiet: bool) -> Result<()> {
    let builds: Vec<(&ServicePlan, &Vec<String>)> = services
        .iter()
        .filter_map(|s| s.build.as_ref().map(|b| (*s, b)))
        .collect();
    if builds.is_empty() {
        return Ok(());
    }
    let many = builds.len() > 1;
    let results: Vec<(String, Result<()>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = builds
            .iter()
            .map(|(s, argv)| {
                let name = s.name.clone();
                let handle = scope.spawn(move || -> Result<()> {
                    let cli = BuildCli::try_parse_from(
                        std::iter::once("build".to_string()).chain(argv.iter().cloned()),
                    )
                    .map_err(|e| anyhow!("the build section: {e}"))?;
                    let progress: Box<dyn engine::Progress> = if quiet {
                        Box::new(engine::Quiet)
                    } else {
                        let prefix = if many {
                            format!("[{}] ", s.name)
                        } else {
                            String::new()
                        };
                        Box::new(engine::Plain::new(Box::new(Prefixed {
                            prefix,
                            at_line_start: true,
                        })))
                    };
                    let r = crate::cmd::build::build_image(store, &cli.args, progress.as_ref())?;
                    if !quiet {
                        eprintln!(" Service {}  Built ({})", s.name, r.image.id().short());
                    }
                    Ok(())
                });
                (name, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the build thread panicked")));
                (n, r)
            })
            .collect()
    });
    let mut failed = Vec::new();
    for (name, r) in results {
        if let Err(e) = r {
            eprintln!("error: service \"{name}\" failed to build: {e:#}");
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!("failed to build: {}", failed.join(", "));
    }
    Ok(())
}

/// What `up` asks for.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub detach: bool,
    /// `--build`: build before starting, even when the image exists.
    pub build: bool,
    /// `--no-build`: never build (a missing image is an error).
    pub no_build: bool,
    pub force_recreate: bool,
    pub no_recreate: bool,
    /// `--wait`: with `-d`, wait until every container runs and is healthy.
    pub wait: bool,
    pub wait_timeout: Option<Duration>,
    /// `--no-deps`: only the services named.
    pub no_deps: bool,
    pub services: Vec<String>,
    /// `--abort-on-container-exit`: attached, stop everything when a container exits.
    pub abort_on_container_exit: bool,
    /// `-t/--timeout` for the stops (seconds).
    pub timeout: Option<i64>,
    pub quiet_build: bool,
    pub registry: crate::cmd::registry::RegistryFlags,
}

/// Images for `services`: built when they have a `build` section and the image is missing
/// (or `build` asks, or `pull_policy: build`), pulled otherwise as their `pull_policy` says.
pub fn ensure_images(
    store: &Store,
    services: &[&ServicePlan],
    build: bool,
    no_build: bool,
    registry: &crate::cmd::registry::RegistryFlags,
    quiet_build: bool,
) -> Result<()> {
    let mut to_build = Vec::new();
    for s in services {
        let have = store.resolve(&s.image).is_ok();
        if s.build.is_some() {
            let wanted = build || !have || s.pull_policy == PullPolicy::Build;
            if wanted && !no_build {
                to_build.push(*s);
            } else if !have {
                bail!(
                    "service \"{}\" has neither an image nor a build: image {} is not in the \
                     store (run without --no-build)",
                    s.name,
                    s.image
                );
            }
            continue;
        }
        let policy = match s.pull_policy {
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
            _ => "missing",
        };
        crate::cmd::run::pull_for_run(store, &s.image, policy, registry)
            .with_context(|| format!("service \"{}\"", s.name))?;
        if store.resolve(&s.image).is_err() {
            bail!(
                "service \"{}\": image {} is not in the store",
                s.name,
                s.image
            );
        }
    }
    self::build(store, &to_build, quiet_build)
}

/// One progress line of compose's plain output: ` Container demo-web-1  Started`.
pub fn say(kind: &str, name: &str, what: &str) {
    eprintln!(" {kind} {name}  {what}");
}

/// Make the project's named volumes (external ones must exist).
pub fn ensure_volumes(store: &Store, plan: &ProjectPlan) -> Result<()> {
    let volumes = runtime::Volumes::open(store)?;
    for v in &plan.volumes {
        if v.external {
            volumes
                .get(&v.name)
                .with_context(|| format!("external volume \"{}\" not found", v.name))?;
            continue;
        }
        let (_, created) = volumes.create(Some(&v.name), v.labels.clone(), false)?;
        if created {
            say("Volume", &format!("\"{}\"", v.name), "Created");
        }
    }
    Ok(())
}

/// Wait until `dep`'s containers meet `condition`.
fn wait_for(store: &Store, plan: &ProjectPlan, dep: &super::Dependency) -> Result<()> {
    if dep.condition == Condition::Started {
        return Ok(());
    }
    let cs: Vec<runtime::Container> = containers(store, &plan.name)?
        .into_iter()
        .filter(|c| service_of(c) == dep.service && !is_oneoff(c))
        .collect();
    if cs.is_empty() {
        if dep.required {
            bail!("dependency \"{}\" has no container", dep.service);
        }
        return Ok(());
    }
    for mut c in cs {
        let name = c.config.name.clone();
        say("Container", &name, "Waiting");
        loop {
            c.reload()?;
            let status = c.status();
            match dep.condition {
                Condition::Healthy => {
                    if c.config.healthcheck.is_none() {
                        bail!("dependency failed to start: container {name} has no healthcheck configured");
                    }
                    match c.state.health.as_ref().map(|h| h.status.as_str()) {
                        Some("healthy") => {
                            say("Container", &name, "Healthy");
                            break;
                        }
                        Some("unhealthy") => {
                            bail!("dependency failed to start: container {name} is unhealthy")
                        }
                        _ => {}
                    }
                    if !matches!(status, runtime::Status::Running) {
                        bail!(
                            "dependency failed to start: container {name} exited ({})",
                            c.state.exit_code.unwrap_or(-1)
                        );
                    }
                }
                Condition::CompletedSuccessfully => match status {
                    runtime::Status::Exited(0) => {
                        say("Container", &name, "Exited");
                        break;
                    }
                    runtime::Status::Exited(code) => bail!(
                        "service \"{}\" didn't complete successfully: exit {code}",
                        dep.service
                    ),
                    runtime::Status::Dead => {
                        bail!("service \"{}\" didn't complete successfully", dep.service)
                    }
                    _ => {}
                },
                Condition::Started => unreachable!(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// The containers of one service: kept when their configuration hash is unchanged (and
/// started if stopped), else replaced; replicas beyond the scale removed. Returns the
/// service's containers' names.
fn converge(
    store: &Store,
    plan: &ProjectPlan,
    s: &ServicePlan,
    opts: &UpOptions,
) -> Result<Vec<String>> {
    let image = store
        .resolve(&s.image)
        .with_context(|| format!("service \"{}\": image {}", s.name, s.image))?;
    let hash = config_hash(s, &image.id().to_string());
    let existing: Vec<runtime::Container> = containers(store, &plan.name)?
        .into_iter()
        .filter(|c| service_of(c) == s.name && !is_oneoff(c))
        .collect();
    let number = |c: &runtime::Container| -> u32 {
        c.config
            .labels
            .get(LABEL_NUMBER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let timeout = Some(Duration::from_secs(opts.timeout.unwrap_or(10).max(0) as u64));
    let mut names = Vec::new();
    for c in existing.iter().filter(|c| number(c) > s.replicas) {
        let mut c = runtime::find(store, c.id())?;
        say("Container", &c.config.name.clone(), "Stopping");
        c.stop(None, timeout)?;
        say("Container", &c.config.name.clone(), "Removing");
        let name = c.config.name.clone();
        c.remove(true)?;
        say("Container", &name, "Removed");
    }
    for n in 1..=s.replicas {
        let name = plan.container_name(s, n);
        let current = existing.iter().find(|c| number(c) == n);
        if let Some(c) = current {
            let same = c.config.labels.get(super::LABEL_HASH) == Some(&hash);
            if (same || opts.no_recreate) && !opts.force_recreate {
                let mut c = runtime::find(store, c.id())?;
                if c.status() == runtime::Status::Running {
                    say("Container", &name, "Running");
                } else {
                    say("Container", &name, "Starting");
                    let supervisor = crate::cmd::run::supervisor(store, c.id());
                    c.start_again(supervisor)?;
                    say("Container", &name, "Started");
                }
                names.push(name);
                continue;
            }
            let mut old = runtime::find(store, c.id())?;
            say("Container", &name, "Recreate");
            let t = old
                .config
                .stop_timeout
                .map(|t| Duration::from_secs(t.max(0) as u64));
            old.stop(None, timeout.or(t))?;
            let mounts = old.config.mounts.clone();
            old.remove(true)?;
            // The replaced container's anonymous volumes go with it (compose keeps their
            // data by handing them to the new one; strata does not yet).
            let _ = runtime::Volumes::open(store).and_then(|v| v.remove_anonymous(&mounts));
            say("Container", &name, "Recreated");
        } else if runtime::find(store, &name).is_ok() {
            bail!(
                "Conflict. The container name \"/{name}\" is already in use by a container \
                 that is not part of project {}",
                plan.name
            );
        } else {
            say("Container", &name, "Creating");
        }
        let mut spec = s.spec.clone();
        spec.name = Some(name.clone());
        spec.labels.extend(plan.labels(s, n, &hash));
        let c = runtime::create(store, &spec).map_err(|e| anyhow!("{}", e.message))?;
        say("Container", &name, "Created");
        say("Container", &name, "Starting");
        c.start(crate::cmd::run::supervisor(store, c.id()))
            .map_err(|e| anyhow!("{}", e.message))?;
        say("Container", &name, "Started");
        names.push(name);
    }
    Ok(names)
}

/// `compose up`.
pub fn up(store: &Store, plan: &ProjectPlan, opts: &UpOptions) -> Result<ExitCode> {
    let services = plan.selected(&opts.services, !opts.no_deps)?;
    ensure_images(
        store,
        &services,
        opts.build,
        opts.no_build,
        &opts.registry,
        opts.quiet_build,
    )?;
    check_ports(store, plan, &services)?;
    super::ops::ensure_networks(store, plan)?;
    ensure_volumes(store, plan)?;
    let mut started: Vec<String> = Vec::new();
    for s in &services {
        for d in &s.depends_on {
            if services.iter().any(|x| x.name == d.service) {
                wait_for(store, plan, d)?;
            }
        }
        started.extend(converge(store, plan, s, opts)?);
    }
    if opts.detach {
        if opts.wait {
            wait_healthy(store, plan, &started, opts.wait_timeout)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    attach(store, plan, &started, opts)
}

/// Before anything is made: every fixed host port the services publish can be bound (or
/// is the project's own already, held by a container `up` keeps); else the error names
/// the service's port entry, as docker's `port is already allocated`.
fn check_ports(store: &Store, plan: &ProjectPlan, services: &[&ServicePlan]) -> Result<()> {
    let ours: Vec<(std::net::IpAddr, u16, String)> = containers(store, &plan.name)?
        .iter()
        .flat_map(|c| c.state.ports.clone())
        .map(|p| (p.host_ip, p.host_port, p.proto.clone()))
        .collect();
    for s in services {
        for (i, spec) in s.spec.publish.iter().enumerate() {
            let index = i.to_string();
            let place =
                compose::position(&plan.config_files, &["services", &s.name, "ports", &index]);
            let at = match place {
                Some((f, line, col)) => {
                    format!(
                        "{}:{line}:{col}: services.{}.ports[{i}]",
                        f.display(),
                        s.name
                    )
                }
                None => format!("{}: services.{}.ports[{i}]", files(plan), s.name),
            };
            let maps = runtime::ports::parse_all(spec).with_context(|| at.clone())?;
            for m in maps.into_iter().filter(|m| m.host_port != 0) {
                if ours.iter().any(|(ip, port, proto)| {
                    *ip == m.host_ip && *port == m.host_port && *proto == m.proto
                }) {
                    continue;
                }
                if let Err(e) = runtime::ports::bind(std::slice::from_ref(&m)) {
                    bail!("{at}: {e:#}");
                }
            }
        }
    }
    Ok(())
}

/// The project's files, for messages.
fn files(plan: &ProjectPlan) -> String {
    plan.config_files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--wait`: every container running, and healthy where it has a healthcheck.
fn wait_healthy(
    store: &Store,
    plan: &ProjectPlan,
    names: &[String],
    timeout: Option<Duration>,
) -> Result<()> {
    let end = timeout.map(|t| Instant::now() + t);
    for name in names {
        let mut c = runtime::find(store, name)?;
        say("Container", name, "Waiting");
        loop {
            c.reload()?;
            let running = c.status() == runtime::Status::Running;
            let health = c.state.health.as_ref().map(|h| h.status.clone());
            match (running, health.as_deref(), c.config.healthcheck.is_some()) {
                (true, _, false) | (true, Some("healthy"), true) => {
                    say(
                        "Container",
                        name,
                        if c.config.healthcheck.is_some() {
                            "Healthy"
                        } else {
                            "Running"
                        },
                    );
                    break;
                }
                (_, Some("unhealthy"), _) => bail!("container {name} is unhealthy"),
                (false, ..) => bail!(
                    "container {name} exited ({})",
                    c.state.exit_code.unwrap_or(-1)
                ),
                _ => {}
            }
            if end.is_some_and(|e| Instant::now() > e) {
                bail!(
                    "project {}: timeout waiting for container {name} to be healthy",
                    plan.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Attached `up`: the containers' logs, prefixed, until they have all exited (or one has,
/// with `--abort-on-container-exit`) or Ctrl-C; then the project's containers are stopped
/// (a second Ctrl-C kills them).
fn attach(
    store: &Store,
    plan: &ProjectPlan,
    names: &[String],
    opts: &UpOptions,
) -> Result<ExitCode> {
    runtime::signal::catch_interrupts();
    eprintln!("Attaching to {}", names.join(", "));
    let mut code = 0u8;
    std::thread::scope(|scope| -> Result<()> {
        let logs = scope.spawn(|| super::logs::print(store, names, true, None, true));
        let mut reported: Vec<String> = Vec::new();
        loop {
            if runtime::signal::INTERRUPTED.swap(false, Ordering::SeqCst) {
                eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                code = 130;
                break;
            }
            let mut alive = false;
            let mut aborted = false;
            for name in names {
                let Ok(c) = runtime::find(store, name) else {
                    continue;
                };
                match c.status() {
                    runtime::Status::Exited(x) => {
                        if c.config.restart.restarts() {
                            // Its supervisor brings it back.
                            alive = true;
                        } else if !reported.contains(name) {
                            reported.push(name.clone());
                            eprintln!("{name} exited with code {x}");
                            if opts.abort_on_container_exit {
                                eprintln!("Aborting on container exit...");
                                code = x.clamp(0, 255) as u8;
                                aborted = true;
                            }
                        }
                    }
                    runtime::Status::Dead => {}
                    _ => alive = true,
                }
            }
            if aborted || !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = plan;
        super::ops::stop_names(store, names, opts.timeout)?;
        let _ = logs.join();
        Ok(())
    })?;
    Ok(ExitCode::from(code))
}
