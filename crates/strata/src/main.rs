//! The `strata` command line: argument parsing and output formatting only; every command
//! is a call into a library crate; what needs a raw syscall lives in a library (the
//! container runtime's in `runtime`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod format;
mod outpath;
mod progress;

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
    Build(cmd::build::BuildArgs),
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
    Run(cmd::run::RunArgs),
    /// List containers started with `run -d`.
    Ps(cmd::containers::PsArgs),
    /// Fetch the logs of a container.
    Logs(cmd::containers::LogsArgs),
    /// Stop one or more running containers.
    Stop(cmd::containers::StopArgs),
    /// Remove one or more containers.
    Rm(cmd::containers::RmArgs),
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
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag { source: String, target: String },
    /// Remove images.
    Rmi {
        /// Remove an image referenced by several names.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove blobs and snapshots no image or cache record uses (`--all` drops the build
    /// cache too).
    Prune {
        /// Also remove build cache records and cache mounts.
        #[arg(short, long)]
        all: bool,
        /// `until=DURATION` (e.g. `until=24h`): only cache records older than that.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Check the store: every image's blobs present and matching their digests.
    Fsck,
    /// Developer tools.
    #[command(subcommand)]
    Debug(cmd::debug::DebugCommand),
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
    match cli.command {
        Command::Plan(args) => cmd::plan::run(args),
        Command::Build(a) => cmd::build::run(&open()?, a),
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
        Command::Run(a) => cmd::run::run(open(), a),
        Command::Ps(a) => cmd::containers::ps(&open()?, a),
        Command::Logs(a) => cmd::containers::logs(&open()?, a),
        Command::Stop(a) => cmd::containers::stop(&open()?, a),
        Command::Rm(a) => cmd::containers::rm(&open()?, a),
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
        Command::Inspect { images } => cmd::images::inspect(&open()?, &images),
        Command::Tag { source, target } => cmd::images::tag(&open()?, &source, &target),
        Command::Rmi { force, images } => cmd::images::rmi(&open()?, &images, force),
        Command::Prune { all, filter } => cmd::images::prune(&open()?, all, filter.as_deref()),
        Command::Fsck => cmd::images::fsck(&open()?),
    }
}

fn main() -> ExitCode {
    // When started as the executor's init helper, this never returns.
    exec::maybe_run_init();
    // Die quietly on a closed pipe (`strata images | head`), as other Unix tools do,
    // instead of failing to print.
    runtime::signal::die_on_broken_pipe();
    let cli = Cli::parse();
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
