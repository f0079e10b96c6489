//! The `strata` command line: argument parsing and output formatting only; every command
//! is a call into a library crate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Daemonless, Docker-compatible builder for multi-stage Dockerfiles.
#[derive(Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a build would do: stages to run and skip, their steps expanded.
    Plan(cmd::plan::PlanArgs),
    /// Developer tools.
    #[command(subcommand)]
    Debug(cmd::debug::DebugCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => cmd::plan::run(args),
        Command::Debug(c) => cmd::debug::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
