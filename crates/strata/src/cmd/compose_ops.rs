//! `strata compose build|up|down|ps|logs|exec|run|stop|start|restart|rm|pull|push|images`:
//! the flags of docker compose v2, the project loaded by [`ComposeGlobal::load`] and run by
//! [`crate::project`].

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use store::Store;

use super::compose::ComposeGlobal;
use crate::project::{self, ops, up, ProjectPlan};

#[derive(Subcommand, Debug)]
pub enum OpsCommand {
    /// Build or rebuild services.
    Build(BuildArgs),
    /// Create and start containers.
    Up(UpArgs),
    /// Stop and remove containers, networks.
    Down(DownArgs),
    /// List containers.
    Ps(PsArgs),
    /// View output from containers.
    Logs(LogsArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Run a one-off command on a service.
    Run(RunArgs),
    /// Stop services.
    Stop(StopArgs),
    /// Start services.
    Start(ServicesArgs),
    /// Restart service containers.
    Restart(StopArgs),
    /// Removes stopped service containers.
    Rm(RmArgs),
    /// Pull service images.
    Pull(ServicesArgs),
    /// Push service images.
    Push(ServicesArgs),
    /// List images used by the created containers.
    Images(ServicesArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pub pull: bool,
    /// Don't print anything to stdout.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set build-time variables for services.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Detached mode: run containers in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Build images before starting containers.
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's policy.
    #[arg(long, conflicts_with = "build")]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed.
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long, conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// Don't start linked services.
    #[arg(long)]
    pub no_deps: bool,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy.
    #[arg(long = "wait-timeout", value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Stops all containers if any container was stopped.
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Use this timeout in seconds for container shutdown.
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// Remove containers for services not defined in the Compose file (always done by
    /// `down`; accepted).
    #[arg(long)]
    pub remove_orphans: bool,
    /// Pull without printing progress information (accepted).
    #[arg(long)]
    pub quiet_pull: bool,
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file and
    /// anonymous volumes attached to containers.
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove images used by services: "local" remove only images that don't have a
    /// custom tag ("local"|"all").
    #[arg(long, value_parser = ["local", "all"])]
    pub rmi: Option<String>,
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// Remove containers for services not defined in the Compose file (always done: the
    /// project's containers are found by their label; accepted).
    #[arg(long)]
    pub remove_orphans: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command).
    #[arg(short, long)]
    pub all: bool,
    /// Only display IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Display services.
    #[arg(long)]
    pub services: bool,
    /// Format the output: table or json.
    #[arg(long)]
    pub format: Option<String>,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Don't print prefix in logs.
    #[arg(long)]
    pub no_log_prefix: bool,
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Disable pseudo-TTY allocation. By default `exec` allocates a TTY.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Set environment variables.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Run the command as this user.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, value_names = ["SERVICE", "COMMAND"])]
    pub argv: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run container in background and print container ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Override the entrypoint of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run as specified username or uid.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Don't start linked services.
    #[arg(long)]
    pub no_deps: bool,
    /// Disable pseudo-TTY allocation (default: auto-detected).
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run command with all service's ports enabled and mapped to the host.
    #[arg(long)]
    pub service_ports: bool,
    /// Publish a container's port(s) to the host.
    #[arg(short, long)]
    pub publish: Vec<String>,
    /// Build image before starting container.
    #[arg(long)]
    pub build: bool,
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, value_names = ["SERVICE", "COMMAND"])]
    pub argv: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Don't ask to confirm removal.
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers, if required, before removing.
    #[arg(short, long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers.
    #[arg(short, long)]
    pub volumes: bool,
    pub services: Vec<String>,
}

/// Which commands need root (namespaces, mounts): all of these.
pub fn name(c: &OpsCommand) -> &'static str {
    match c {
        OpsCommand::Build(_) => "compose build",
        OpsCommand::Up(_) => "compose up",
        OpsCommand::Down(_) => "compose down",
        OpsCommand::Ps(_) => "compose ps",
        OpsCommand::Logs(_) => "compose logs",
        OpsCommand::Exec(_) => "compose exec",
        OpsCommand::Run(_) => "compose run",
        OpsCommand::Stop(_) => "compose stop",
        OpsCommand::Start(_) => "compose start",
        OpsCommand::Restart(_) => "compose restart",
        OpsCommand::Rm(_) => "compose rm",
        OpsCommand::Pull(_) => "compose pull",
        OpsCommand::Push(_) => "compose push",
        OpsCommand::Images(_) => "compose images",
    }
}

fn load(global: &ComposeGlobal, services: &[String]) -> Result<ProjectPlan> {
    let p = global.load(services)?;
    project::plan::plan(&p)
}

pub fn run(store: &Store, global: &ComposeGlobal, c: OpsCommand) -> Result<ExitCode> {
    match c {
        OpsCommand::Build(a) => {
            let mut plan = load(global, &a.services)?;
            for s in &mut plan.services {
                if let Some(b) = &mut s.build {
                    let context = b.pop().expect("a context");
                    if a.no_cache {
                        b.push("--no-cache".into());
                    }
                    if a.pull {
                        b.push("--pull".into());
                    }
                    for arg in &a.build_arg {
                        b.extend(["--build-arg".to_string(), arg.clone()]);
                    }
                    b.push(context);
                }
            }
            let services = plan.selected(&a.services, false)?;
            up::build(store, &services, a.quiet)?;
            Ok(ExitCode::SUCCESS)
        }
        OpsCommand::Up(a) => {
            let plan = load(global, &a.services)?;
            let opts = up::UpOptions {
                detach: a.detach || a.wait,
                build: a.build,
                no_build: a.no_build,
                force_recreate: a.force_recreate,
                no_recreate: a.no_recreate,
                wait: a.wait,
                wait_timeout: a.wait_timeout.map(Duration::from_secs),
                no_deps: a.no_deps,
                services: a.services,
                abort_on_container_exit: a.abort_on_container_exit,
                timeout: a.timeout,
                quiet_build: false,
                registry: Default::default(),
            };
            up::up(store, &plan, &opts)
        }
        OpsCommand::Down(a) => {
            let plan = load(global, &[])?;
            ops::down(
                store,
                &plan,
                &ops::DownOptions {
                    volumes: a.volumes,
                    rmi: a.rmi,
                    timeout: a.timeout,
                },
            )
        }
        OpsCommand::Ps(a) => {
            let plan = load(global, &[])?;
            ops::ps(
                store,
                &plan,
                &a.service,
                a.all,
                a.quiet,
                a.services,
                a.format.as_deref(),
            )
        }
        OpsCommand::Logs(a) => {
            let plan = load(global, &[])?;
            let tail = match a.tail.as_str() {
                "all" | "-1" => None,
                n => Some(
                    n.parse::<usize>()
                        .map_err(|_| anyhow::anyhow!("invalid --tail value {n:?}"))?,
                ),
            };
            let names: Vec<String> = project::containers(store, &plan.name)?
                .iter()
                .filter(|c| {
                    a.services.is_empty() || a.services.iter().any(|s| s == project::service_of(c))
                })
                .map(|c| c.config.name.clone())
                .collect();
            project::logs::print(store, &names, a.follow, tail, !a.no_log_prefix)?;
            Ok(ExitCode::SUCCESS)
        }
        OpsCommand::Exec(a) => {
            let plan = load(global, &[])?;
            let c = ops::service_container(store, &plan, &a.argv[0], a.index)?;
            let tty = !a.no_tty && !a.detach && std::io::stdin().is_terminal();
            super::exec::exec(
                store,
                super::exec::ExecArgs {
                    detach: a.detach,
                    interactive: !a.detach,
                    tty,
                    env: a.env,
                    env_file: Vec::new(),
                    user: a.user,
                    workdir: a.workdir,
                    argv: std::iter::once(c.id().to_string())
                        .chain(a.argv[1..].iter().cloned())
                        .collect(),
                },
            )
        }
        OpsCommand::Run(a) => one_off(store, global, a),
        OpsCommand::Stop(a) => {
            let plan = load(global, &[])?;
            ops::stop(store, &plan, &a.services, a.timeout)
        }
        OpsCommand::Start(a) => {
            let plan = load(global, &[])?;
            ops::start(store, &plan, &a.services)
        }
        OpsCommand::Restart(a) => {
            let plan = load(global, &[])?;
            ops::restart(store, &plan, &a.services, a.timeout)
        }
        OpsCommand::Rm(a) => {
            let plan = load(global, &[])?;
            ops::rm(store, &plan, &a.services, a.stop, a.volumes)
        }
        OpsCommand::Pull(a) => {
            let plan = load(global, &a.services)?;
            let mut failed = false;
            for s in plan.selected(&a.services, false)? {
                if s.build.is_some() && s.spec.image == ops::default_image(&plan, &s.name) {
                    continue;
                }
                up::say("Image", &s.image, "Pulling");
                match super::run::pull_for_run(store, &s.image, "always", &Default::default()) {
                    Ok(()) => up::say("Image", &s.image, "Pulled"),
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
        OpsCommand::Push(a) => {
            let plan = load(global, &a.services)?;
            for s in plan.selected(&a.services, false)? {
                if s.build.is_none() {
                    continue;
                }
                up::say("Image", &s.image, "Pushing");
                let code = super::registry::push(
                    store,
                    super::registry::PushArgs {
                        quiet: false,
                        flags: Default::default(),
                        name: s.image.clone(),
                    },
                )?;
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
                up::say("Image", &s.image, "Pushed");
            }
            Ok(ExitCode::SUCCESS)
        }
        OpsCommand::Images(a) => {
            let plan = load(global, &a.services)?;
            ops::images(store, &plan)
        }
    }
}

/// `compose run SERVICE [COMMAND...]`: the service's dependencies up (detached), then a
/// one-off container of the service in the foreground (`-d`: detached), on its networks,
/// without its ports unless `--service-ports`.
fn one_off(store: &Store, global: &ComposeGlobal, a: RunArgs) -> Result<ExitCode> {
    let service = a.argv[0].clone();
    let plan = load(global, std::slice::from_ref(&service))?;
    let Some(s) = plan.service(&service).cloned() else {
        bail!("no such service: {service}");
    };
    if !a.no_deps {
        let deps: Vec<String> = s.depends_on.iter().map(|d| d.service.clone()).collect();
        if !deps.is_empty() {
            let opts = up::UpOptions {
                detach: true,
                services: deps,
                registry: Default::default(),
                ..Default::default()
            };
            up::up(store, &plan, &opts)?;
        }
    }
    up::ensure_images(store, &[&s], a.build, false, &Default::default(), false)?;
    ops::ensure_networks(store, &plan)?;
    up::ensure_volumes(store, &plan)?;
    let mut spec = s.spec.clone();
    if a.argv.len() > 1 {
        spec.command = a.argv[1..].to_vec();
    }
    if let Some(e) = &a.entrypoint {
        spec.entrypoint = Some(if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        });
    }
    spec.env.extend(a.env.iter().cloned());
    if a.user.is_some() {
        spec.user = a.user.clone();
    }
    if a.workdir.is_some() {
        spec.workdir = a.workdir.clone();
    }
    if !a.service_ports {
        spec.publish = Vec::new();
    }
    spec.publish.extend(a.publish.iter().cloned());
    spec.auto_remove = a.rm;
    spec.restart = None;
    let suffix: String = runtime_suffix();
    spec.name = Some(
        a.name
            .clone()
            .unwrap_or_else(|| format!("{}-{}-run-{suffix}", plan.name, s.name)),
    );
    let mut labels = plan.labels(&s, 1, "");
    for (k, v) in labels.iter_mut() {
        if k == project::LABEL_ONEOFF {
            *v = "True".into();
        }
    }
    labels.retain(|(k, _)| k != project::LABEL_HASH);
    spec.labels.extend(labels);
    let interactive = std::io::stdin().is_terminal();
    spec.tty = !a.no_tty && !a.detach && interactive;
    let result = if a.detach {
        runtime::create(store, &spec).and_then(|c| {
            c.start(super::run::supervisor(store, c.id()))?;
            println!("{}", c.id());
            Ok(0)
        })
    } else {
        runtime::run(store, &spec, runtime::Attach::std(!a.no_tty || interactive))
    };
    Ok(match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    })
}

/// 12 hex digits for a one-off container's name.
fn runtime_suffix() -> String {
    let mut b = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
