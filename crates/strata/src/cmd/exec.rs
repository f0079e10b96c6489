//! `strata exec`: flags to a `runtime::Exec`, run in a running detached container
//! (`Container::exec`); docker's exit codes from `RunError`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use store::Store;

const AFTER_HELP: &str = "\
The command runs in the container's namespaces (it sees the container's processes, \
hostname, network and files) with the container's seccomp filter and capabilities, its \
environment (plus -e) and, unless -u or -w say otherwise, its USER and working directory. \
The container must be running (started with `strata run -d`); the command dies when it \
stops.

strata exits with the command's exit code; 126 when it cannot be executed (or the user or \
working directory does not exist), 127 when it is not found, 1 when the container is \
unknown or not running.";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background (its output is discarded).
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open: pass strata's standard input to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY (with -i, strata's terminal is put in raw mode meanwhile).
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass strata's own value).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read in a file of environment variables (docker's format: `KEY=VALUE` lines,
    /// `#` comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Username or UID (format: `name|uid[:group|gid]`).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container (absolute; it must exist).
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// The container (name, id or unique id prefix), then the command and its arguments.
    /// Options end at the container: everything after it belongs to the command.
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        value_names = ["CONTAINER", "COMMAND"]
    )]
    pub argv: Vec<String>,
}

pub fn exec(store: &Store, a: ExecArgs) -> Result<ExitCode> {
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY (drop -t to pipe input into the command)");
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(super::read_env_file(f)?);
    }
    env.extend(a.env);
    let c = runtime::find(store, &a.argv[0])?;
    let e = runtime::Exec {
        command: a.argv[1..].to_vec(),
        env,
        user: a.user,
        workdir: a.workdir,
        tty: a.tty,
        detach: a.detach,
    };
    Ok(match c.exec(&e, runtime::Attach::std(a.interactive)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", escape::message(&e.message));
            ExitCode::from(e.code)
        }
    })
}
