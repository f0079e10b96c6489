//! The `strata` command line: argument parsing and output formatting only; every command
//! is a call into a library crate; what needs a raw syscall lives in a library (the
//! container runtime's in `runtime`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

mod bake;
mod cmd;
mod format;
mod outpath;
mod progress;
mod project;

/// Daemonless, Docker-compatible builder for multi-stage Dockerfiles.
#[derive(Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
struct Cli {
    /// The store directory (default: /var/lib/strata as root, $XDG_DATA_HOME/strata otherwise).
    #[arg(long, global = true, env = "STRATA_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<cmd::build::BuildArgs>),
    /// Build the targets of a bake file (docker-bake.hcl or .json), as `docker buildx bake`:
    /// each target a `strata build`, several at once.
    Bake(cmd::bake::BakeArgs),
    /// Check a Dockerfile against BuildKit's rules, as `docker build --check` (no build).
    Check(cmd::check::CheckArgs),
    /// Image sizes (as docker counts them); with several images, each compared with the first.
    Size {
        /// `table` or `json`.
        #[arg(long, default_value = "table")]
        format: String,
        /// A single-stage image and the multi-stage image that replaces it; repeat for a table
        /// of pairs.
        #[arg(long, num_args = 2, value_names = ["SINGLE", "MULTI"], action = clap::ArgAction::Append)]
        compare: Vec<String>,
        #[arg(required_unless_present = "compare")]
        images: Vec<String>,
    },
    /// Show what a build would do: stages to run and skip, their steps expanded.
    Plan(cmd::plan::PlanArgs),
    /// Run a command in a new container from an image (in the foreground, or with -d in
    /// the background).
    Run(Box<cmd::run::RunArgs>),
    /// List containers started with `run -d`.
    Ps(cmd::containers::PsArgs),
    /// Fetch the logs of a container.
    Logs(cmd::containers::LogsArgs),
    /// Stop one or more running containers.
    Stop(cmd::containers::StopArgs),
    /// Remove one or more containers.
    Rm(cmd::containers::RmArgs),
    /// Execute a command in a running container.
    Exec(cmd::exec::ExecArgs),
    /// Start one or more stopped containers.
    Start(cmd::containers::StartArgs),
    /// Restart one or more containers.
    Restart(cmd::containers::RestartArgs),
    /// Kill one or more running containers.
    Kill(cmd::containers::KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(cmd::containers::WaitArgs),
    /// List port mappings or a specific mapping for the container.
    Port(cmd::containers::PortArgs),
    /// The supervisor of a detached container (started by `run -d`).
    #[command(name = "__strata-supervise", hide = true)]
    Supervise { id: String },
    /// Import a root filesystem tarball as an image.
    Import(cmd::transfer::ImportArgs),
    /// Load images from a docker-archive or OCI archive.
    Load(cmd::transfer::LoadArgs),
    /// Save images to a docker-archive (default) or OCI archive.
    Save(cmd::transfer::SaveArgs),
    /// Pull an image from a registry.
    Pull(cmd::registry::PullArgs),
    /// Push an image to a registry.
    Push(cmd::registry::PushArgs),
    /// Log in to a registry (credentials kept in docker's config.json).
    Login(cmd::registry::LoginArgs),
    /// Log out from a registry.
    Logout(cmd::registry::LogoutArgs),
    /// List images.
    Images(cmd::images::ImagesArgs),
    /// Show the history of an image.
    History(cmd::images::HistoryArgs),
    /// Display detailed information on containers or images, as `docker inspect`.
    Inspect(cmd::images::InspectArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(cmd::images::TagArgs),
    /// Remove images.
    Rmi(cmd::images::RmiArgs),
    /// Remove blobs and snapshots no image or cache record uses (`--all` drops the build
    /// cache too).
    Prune(cmd::images::PruneArgs),
    /// Check the store: every image's blobs present and matching their digests.
    Fsck,
    /// Show strata's version, as the client part of `docker version`.
    Version(cmd::system::VersionArgs),
    /// Print a shell completion script (`bash`, `zsh`, `fish`), as `docker completion`.
    Completion { shell: clap_complete::Shell },
    /// Write man pages (strata.1, strata-build.1, ...) into a directory.
    Man {
        /// Where to write them (created if missing), e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
    /// Show system-wide information, as `docker info`.
    Info(cmd::system::InfoArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(cmd::cp::CpArgs),
    /// Define and run multi-container applications (docker compose); `config` so far.
    Compose(cmd::compose::ComposeArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(cmd::volume::VolumeCommand),
    /// Manage networks (user-defined bridges: members reach each other by name).
    #[command(subcommand)]
    Network(cmd::network::NetworkCommand),
    /// Manage multi-platform images (image indexes) made of images in the store, as
    /// podman's `manifest` commands.
    #[command(subcommand)]
    Manifest(cmd::manifest::ManifestCommand),
    /// Manage images (docker's `image` namespace: the image commands under other names).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage containers (docker's `container` namespace).
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage strata: disk usage, prune.
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Developer tools.
    #[command(subcommand)]
    Debug(cmd::debug::DebugCommand),
}

/// `strata image ...`: docker's names for the image commands; each takes the same flags as
/// the top-level command it stands for.
#[derive(Subcommand)]
enum ImageCommand {
    /// List images (`strata images`).
    #[command(visible_alias = "list")]
    Ls(cmd::images::ImagesArgs),
    /// Display detailed information on images.
    Inspect(cmd::images::InspectArgs),
    /// Remove images (`strata rmi`).
    Rm(cmd::images::RmiArgs),
    /// Show the history of an image.
    History(cmd::images::HistoryArgs),
    /// Remove what no image or cache record uses (`strata prune`).
    Prune(cmd::images::PruneArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(cmd::images::TagArgs),
    /// Save images to a docker-archive (default) or OCI archive.
    Save(cmd::transfer::SaveArgs),
    /// Load images from a docker-archive or OCI archive.
    Load(cmd::transfer::LoadArgs),
    /// Import a root filesystem tarball as an image.
    Import(cmd::transfer::ImportArgs),
    /// Pull an image from a registry.
    Pull(cmd::registry::PullArgs),
    /// Push an image to a registry.
    Push(cmd::registry::PushArgs),
}

/// `strata container ...`: docker's names for the container commands.
#[derive(Subcommand)]
// Parsed once per process: the size of `run`'s flags costs nothing.
#[allow(clippy::large_enum_variant)]
enum ContainerCommand {
    /// List containers (`strata ps`).
    #[command(visible_aliases = ["list", "ps"])]
    Ls(cmd::containers::PsArgs),
    /// Display detailed information on containers.
    Inspect(cmd::images::InspectArgs),
    /// Remove one or more containers.
    Rm(cmd::containers::RmArgs),
    /// Fetch the logs of a container.
    Logs(cmd::containers::LogsArgs),
    /// Stop one or more running containers.
    Stop(cmd::containers::StopArgs),
    /// Run a command in a new container.
    Run(Box<cmd::run::RunArgs>),
    /// Execute a command in a running container.
    Exec(cmd::exec::ExecArgs),
    /// Start one or more stopped containers.
    Start(cmd::containers::StartArgs),
    /// Restart one or more containers.
    Restart(cmd::containers::RestartArgs),
    /// Kill one or more running containers.
    Kill(cmd::containers::KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(cmd::containers::WaitArgs),
    /// List port mappings or a specific mapping for the container.
    Port(cmd::containers::PortArgs),
    /// Remove all stopped containers.
    Prune(cmd::containers::ContainerPruneArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(cmd::cp::CpArgs),
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Show disk usage, as `docker system df`.
    Df(cmd::system::DfArgs),
    /// Remove what no image or cache record uses (`strata prune`).
    Prune(cmd::images::PruneArgs),
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Remove the build cache: cache records, memos, stat caches (and the cache mounts
    /// unless `--filter` is given), then what they kept alive (`strata prune --all`).
    Prune(cmd::images::PruneArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let open = || -> anyhow::Result<store::Store> {
        let root = cli.root.clone().unwrap_or_else(store::Store::default_root);
        let store = store::Store::open(&root)?;
        if let Some(mode) = store.tightened_from() {
            eprintln!(
                "notice: the store {} was mode {mode:04o}, open to other users; it is now {:04o}",
                store.root().display(),
                store::ROOT_MODE
            );
        }
        Ok(store)
    };
    if let Some((what, code)) = needs_privileges(&cli.command) {
        if let Some(missing) = missing_privileges() {
            eprintln!(
                "error: strata {what} needs root ({missing}): it unpacks layers with their \
                 owners and runs processes in namespaces of their own.\n\
                 hint: run it as root, or as a user with unprivileged user namespaces (README: \"Builds without root\")"
            );
            return Ok(ExitCode::from(code));
        }
    }
    match cli.command {
        Command::Plan(args) => cmd::plan::run(args),
        Command::Build(a) => cmd::build::run(&open()?, *a),
        // Each target's build is a child `strata build`, which checks its own privileges.
        Command::Bake(a) => cmd::bake::run(cli.root.as_deref(), a),
        Command::Check(a) => {
            // Base images come from an existing store only: a check creates nothing.
            let root = cli.root.clone().unwrap_or_else(store::Store::default_root);
            let store = root.is_dir().then(|| open().ok()).flatten();
            cmd::check::run(store.as_ref(), a)
        }
        Command::Size {
            format,
            compare,
            images,
        } => {
            let store = open()?;
            if compare.is_empty() {
                cmd::size::size(&store, &images, format == "json")
            } else {
                if !images.is_empty() {
                    anyhow::bail!("give images either with --compare or as arguments, not both");
                }
                cmd::size::compare(&store, &compare, format == "json")
            }
        }
        Command::Run(a) => cmd::run::run(open(), *a),
        Command::Ps(a) => cmd::containers::ps(&open()?, a),
        Command::Logs(a) => cmd::containers::logs(&open()?, a),
        Command::Stop(a) => cmd::containers::stop(&open()?, a),
        Command::Rm(a) => cmd::containers::rm(&open()?, a),
        Command::Exec(a) => cmd::exec::exec(&open()?, a),
        Command::Start(a) => cmd::containers::start(&open()?, a),
        Command::Restart(a) => cmd::containers::restart(&open()?, a),
        Command::Kill(a) => cmd::containers::kill(&open()?, a),
        Command::Wait(a) => cmd::containers::wait(&open()?, a),
        Command::Port(a) => cmd::containers::port(&open()?, a),
        Command::Supervise { id } => Ok(cmd::run::supervise(&open()?, &id)),
        Command::Debug(c) => cmd::debug::run(c),
        Command::Import(a) => cmd::transfer::import(&open()?, a),
        Command::Load(a) => cmd::transfer::load(&open()?, a),
        Command::Save(a) => cmd::transfer::save(&open()?, a),
        Command::Pull(a) => cmd::registry::pull(&open()?, a),
        Command::Push(a) => cmd::registry::push(&open()?, a),
        Command::Login(a) => cmd::registry::login(a),
        Command::Logout(a) => cmd::registry::logout(a),
        Command::Images(a) => cmd::images::images(&open()?, a),
        Command::History(a) => cmd::images::history(&open()?, a),
        Command::Inspect(a) => cmd::images::inspect(&open()?, a, cmd::images::Kind::Any),
        Command::Tag(a) => cmd::images::tag(&open()?, a),
        Command::Rmi(a) => cmd::images::rmi(&open()?, a),
        Command::Prune(a) => cmd::images::prune(&open()?, a, false),
        Command::Image(c) => match c {
            ImageCommand::Ls(a) => cmd::images::images(&open()?, a),
            ImageCommand::Inspect(a) => cmd::images::inspect(&open()?, a, cmd::images::Kind::Image),
            ImageCommand::Rm(a) => cmd::images::rmi(&open()?, a),
            ImageCommand::History(a) => cmd::images::history(&open()?, a),
            ImageCommand::Prune(a) => cmd::images::prune(&open()?, a, true),
            ImageCommand::Tag(a) => cmd::images::tag(&open()?, a),
            ImageCommand::Save(a) => cmd::transfer::save(&open()?, a),
            ImageCommand::Load(a) => cmd::transfer::load(&open()?, a),
            ImageCommand::Import(a) => cmd::transfer::import(&open()?, a),
            ImageCommand::Pull(a) => cmd::registry::pull(&open()?, a),
            ImageCommand::Push(a) => cmd::registry::push(&open()?, a),
        },
        Command::Container(c) => match c {
            ContainerCommand::Ls(a) => cmd::containers::ps(&open()?, a),
            ContainerCommand::Inspect(a) => {
                cmd::images::inspect(&open()?, a, cmd::images::Kind::Container)
            }
            ContainerCommand::Rm(a) => cmd::containers::rm(&open()?, a),
            ContainerCommand::Logs(a) => cmd::containers::logs(&open()?, a),
            ContainerCommand::Stop(a) => cmd::containers::stop(&open()?, a),
            ContainerCommand::Run(a) => cmd::run::run(open(), *a),
            ContainerCommand::Exec(a) => cmd::exec::exec(&open()?, a),
            ContainerCommand::Start(a) => cmd::containers::start(&open()?, a),
            ContainerCommand::Restart(a) => cmd::containers::restart(&open()?, a),
            ContainerCommand::Kill(a) => cmd::containers::kill(&open()?, a),
            ContainerCommand::Wait(a) => cmd::containers::wait(&open()?, a),
            ContainerCommand::Port(a) => cmd::containers::port(&open()?, a),
            ContainerCommand::Prune(a) => cmd::containers::container_prune(&open()?, a),
            ContainerCommand::Cp(a) => cmd::cp::cp(&open()?, a),
        },
        Command::System(c) => match c {
            SystemCommand::Df(a) => cmd::system::df(&open()?, a),
            SystemCommand::Prune(a) => cmd::images::prune(&open()?, a, true),
        },
        Command::Builder(BuilderCommand::Prune(mut a)) => {
            // The build cache is what `builder prune` is for: as `prune --all`.
            a.all = true;
            cmd::images::prune(&open()?, a, false)
        }
        Command::Volume(c) => cmd::volume::run(&open()?, c),
        Command::Compose(a) => cmd::compose::run(a, &open),
        Command::Network(c) => cmd::network::run(&open()?, c),
        Command::Manifest(c) => cmd::manifest::run(&open()?, c),
        Command::Cp(a) => cmd::cp::cp(&open()?, a),
        Command::Fsck => cmd::images::fsck(&open()?),
        Command::Version(a) => cmd::system::version(a),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "strata", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            man_pages(&Cli::command(), &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info(a) => cmd::system::info(&open()?, a),
    }
}

fn main() -> ExitCode {
    // When started as the executor's init helper, this never returns.
    exec::maybe_run_init();
    // Die quietly on a closed pipe (`strata images | head`), as other Unix tools do,
    // instead of failing to print.
    runtime::signal::die_on_broken_pipe();
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    if let Err(code) = rootless(&mut cli) {
        return code;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The last line of defence: whatever outside text an error quotes, no control
            // character reaches the terminal (newlines and tabs kept).
            eprintln!("error: {}", escape::message(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Without root's powers, join the user's rootless namespaces (`exec::userns`) before any
/// thread exists: every command that opens the store does, so files the namespace owns
/// (unpacked layers, containers) are the same to each. The store's default place is decided
/// first, as the user (`$XDG_DATA_HOME/strata`), since inside the namespace the user is root.
fn rootless(cli: &mut Cli) -> Result<(), ExitCode> {
    if matches!(
        cli.command,
        Command::Plan(_)
            | Command::Version(_)
            | Command::Completion { .. }
            | Command::Man { .. }
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Debug(_)
    ) || missing_privileges().is_none()
    {
        return Ok(());
    }
    cli.root = Some(cli.root.take().unwrap_or_else(store::Store::default_root));
    match exec::userns::enter() {
        Ok(exec::userns::Mapping::Full { .. }) => Ok(()),
        Ok(exec::userns::Mapping::Single { why }) => {
            if let Some((what, _)) = needs_privileges(&cli.command) {
                eprintln!(
                    "warning: rootless with a single id: {why}. In containers only root (you) \
                     exists: unpacking a layer with files of other owners, `COPY --chown`, \
                     `USER` of another user and a RUN that chowns to one fail in strata {what}.\n\
                     hint: give the user subordinate ids (usermod --add-subuids 100000-165535 \
                     --add-subgids 100000-165535 USER) and install newuidmap/newgidmap (uidmap)"
                );
            }
            Ok(())
        }
        Err(e) => {
            let code = needs_privileges(&cli.command).map_or(1, |(_, c)| c);
            eprintln!(
                "error: rootless mode: {}\n\
                 hint: strata without root needs unprivileged user namespaces; in a container, \
                 see the README's \"Builds without root\"",
                escape::message(&e.to_string())
            );
            Err(ExitCode::from(code))
        }
    }
}

/// The commands that run containers or unpack layers, and the exit code of their refusal
/// (docker's 125 for `run`-like commands).
fn needs_privileges(c: &Command) -> Option<(&'static str, u8)> {
    Some(match c {
        Command::Build(a) if !a.check => ("build", 1),
        Command::Run(_) => ("run", 125),
        Command::Exec(_) => ("exec", 125),
        Command::Start(_) => ("start", 1),
        Command::Restart(_) => ("restart", 1),
        Command::Cp(_) => ("cp", 1),
        Command::Container(ContainerCommand::Cp(_)) => ("container cp", 1),
        Command::Container(ContainerCommand::Run(_)) => ("container run", 125),
        Command::Container(ContainerCommand::Exec(_)) => ("container exec", 125),
        Command::Container(ContainerCommand::Start(_)) => ("container start", 1),
        Command::Container(ContainerCommand::Restart(_)) => ("container restart", 1),
        Command::Compose(cmd::compose::ComposeArgs {
            command: cmd::compose::ComposeCommand::Ops(c),
            ..
        }) => (cmd::compose_ops::name(c), 1),
        _ => return None,
    })
}

/// What this process lacks of root's powers for builds and containers (CAP_SYS_ADMIN for
/// namespaces and mounts, CAP_CHOWN for layer owners), from `/proc/self/status`; `None`
/// when it has them.
fn missing_privileges() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    let missing: Vec<&str> = [(21, "CAP_SYS_ADMIN"), (0, "CAP_CHOWN")]
        .into_iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect();
    // /proc/self belongs to the process's effective uid.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").ok()?);
    (!missing.is_empty()).then(|| format!("uid {euid} lacks {}", missing.join(" and ")))
}

/// One man page per command, named as git's are (`strata-image-ls.1`), hidden commands
/// left out.
fn man_pages(cmd: &clap::Command, dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fn walk(cmd: &clap::Command, name: String, dir: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context;
        let page = cmd.clone().name(name.clone());
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    walk(cmd, "strata".into(), dir)
}

/// `docker build`'s (buildx's and the classic builder's) flags: one strata does not have
/// is "not supported yet", not unknown.
const DOCKER_BUILD_FLAGS: &[&str] = &[
    "add-host",
    "allow",
    "annotation",
    "attest",
    "build-arg",
    "build-context",
    "builder",
    "cache-from",
    "cache-to",
    "call",
    "cgroup-parent",
    "check",
    "compress",
    "cpu-period",
    "cpu-quota",
    "cpu-shares",
    "cpuset-cpus",
    "cpuset-mems",
    "disable-content-trust",
    "file",
    "force-rm",
    "iidfile",
    "isolation",
    "label",
    "load",
    "memory",
    "memory-swap",
    "metadata-file",
    "network",
    "no-cache",
    "no-cache-filter",
    "output",
    "platform",
    "progress",
    "provenance",
    "pull",
    "push",
    "quiet",
    "rm",
    "sbom",
    "secret",
    "security-opt",
    "shm-size",
    "squash",
    "ssh",
    "stream",
    "tag",
    "target",
    "ulimit",
];

/// docker's exit code for a command line it cannot use (`docker build --nope`: 125).
const USAGE_EXIT: u8 = 125;

/// Print a command-line parsing error as docker does and return its exit code: `--help` and
/// `--version` succeed; an unknown flag is `unknown flag: --nope` with `See 'strata build
/// --help'.`; an unknown command `strata: 'nope' is not a strata command.`; anything else
/// clap's message; all exit 125.
fn usage_error(e: &clap::Error) -> ExitCode {
    // `strata` or `strata image` alone: the help, exit 0, as docker.
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            | ErrorKind::MissingSubcommand
    ) {
        if e.kind() != ErrorKind::DisplayHelp && e.kind() != ErrorKind::DisplayVersion {
            use clap::CommandFactory;
            // The command named on the line (`strata image`), from the arguments.
            let mut sub = Cli::command();
            let mut args = std::env::args().skip(1);
            while let Some(w) = args.next() {
                if w == "--root" {
                    args.next();
                    continue;
                }
                if w.starts_with('-') {
                    continue;
                }
                match sub.find_subcommand(&w).cloned() {
                    Some(s) => sub = s,
                    None => break,
                }
            }
            let _ = sub.print_help();
            return ExitCode::SUCCESS;
        }
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let context = match e.kind() {
        ErrorKind::InvalidSubcommand => ContextKind::InvalidSubcommand,
        _ => ContextKind::InvalidArg,
    };
    let arg = match e.get(context) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let path = command_path(e);
    let message = match (e.kind(), arg) {
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with("--") => {
            let flag = a.split('=').next().unwrap_or(a);
            if path == "strata build" && DOCKER_BUILD_FLAGS.contains(&&flag[2..]) {
                format!("strata build does not support {flag} (a docker build flag) yet")
            } else {
                format!("unknown flag: {flag}")
            }
        }
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with('-') && a.len() > 1 => {
            let c = a[1..].chars().next().unwrap_or('-');
            format!("unknown shorthand flag: '{c}' in {a}")
        }
        (ErrorKind::InvalidSubcommand, Some(a)) => {
            format!("{path}: '{a}' is not a {path} command.")
        }
        _ => {
            let _ = e.print();
            return ExitCode::from(USAGE_EXIT);
        }
    };
    eprintln!("{}\nSee '{path} --help'.", escape::message(&message));
    ExitCode::from(USAGE_EXIT)
}

/// The command an error is about (`strata build`), from the usage line clap attaches.
fn command_path(e: &clap::Error) -> String {
    let usage = match e.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(s)) => s.to_string(),
        _ => String::new(),
    };
    let words: Vec<&str> = usage
        .split_whitespace()
        .skip_while(|w| *w != "strata")
        .take_while(|w| {
            !w.starts_with('-')
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
        .collect();
    if words.is_empty() {
        "strata".into()
    } else {
        words.join(" ")
    }
}
