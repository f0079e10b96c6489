//! `strata compose [global options] COMMAND`: docker compose v2's command line. The model
//! (files, merging, interpolation, validation) is the `compose` crate; this file turns flags
//! into `compose::Options` and prints. `config` is the first command; the orchestration
//! commands (build, up, down, ps, logs, ...) join [`ComposeCommand`] and reuse
//! [`ComposeGlobal::load`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

/// The options before the command (`strata compose -f a.yaml -p demo config`), shared by
/// every compose command.
#[derive(Args, Debug, Clone, Default)]
pub struct ComposeGlobal {
    /// Compose configuration files (repeatable; merged in order).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first compose file).
    #[arg(long = "project-directory", value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Specify a profile to enable (repeatable).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profile: Vec<String>,
}

impl ComposeGlobal {
    /// The options for `compose::load`, with the process environment and the services named
    /// on the command line.
    pub fn options(&self, services: &[String]) -> compose::Options {
        compose::Options {
            files: self.file.clone(),
            project_name: self.project_name.clone(),
            project_directory: self.project_directory.clone(),
            env_files: self.env_file.clone(),
            profiles: self.profile.clone(),
            services: services.to_vec(),
            environment: std::env::vars().collect(),
            working_dir: None,
        }
    }

    /// Loads the project and prints compose's warnings on stderr.
    pub fn load(&self, services: &[String]) -> Result<compose::Project> {
        let project = compose::load(&self.options(services))?;
        for w in &project.warnings {
            eprintln!("WARN[0000] {}", escape::message(w));
        }
        Ok(project)
    }
}

#[derive(Args, Debug)]
pub struct ComposeArgs {
    #[command(flatten)]
    pub global: ComposeGlobal,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Subcommand, Debug)]
pub enum ComposeCommand {
    /// Parse, resolve and render the compose file in canonical format.
    Config(ConfigArgs),
    #[command(flatten)]
    Ops(super::compose_ops::OpsCommand),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    pub volumes: bool,
    /// Print the profile names, one per line.
    #[arg(long)]
    pub profiles: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    pub images: bool,
    /// Format the output.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: ConfigFormat,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    pub quiet: bool,
    /// Save to file (default to stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Services to show (they are active whatever their profiles).
    pub service: Vec<String>,
}

/// `open` gives the store (`config` needs none).
pub fn run(args: ComposeArgs, open: &dyn Fn() -> Result<store::Store>) -> Result<ExitCode> {
    match args.command {
        ComposeCommand::Config(a) => config(&args.global, a),
        ComposeCommand::Ops(c) => super::compose_ops::run(&open()?, &args.global, c),
    }
}

fn config(global: &ComposeGlobal, a: ConfigArgs) -> Result<ExitCode> {
    let mut project = global.load(&a.service)?;
    if !a.service.is_empty() {
        project.services.retain(|n, _| a.service.contains(n));
    }
    if a.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let lines = |v: Vec<String>| v.iter().map(|s| format!("{s}\n")).collect::<String>();
    let text = if a.services {
        lines(project.services.keys().cloned().collect())
    } else if a.volumes {
        lines(project.volumes.keys().cloned().collect())
    } else if a.profiles {
        lines(project.all_profiles.clone())
    } else if a.images {
        lines(project.images())
    } else {
        match a.format {
            ConfigFormat::Yaml => project.to_yaml(),
            ConfigFormat::Json => project.to_json(),
        }
    };
    match &a.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
