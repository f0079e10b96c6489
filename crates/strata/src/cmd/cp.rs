//! `strata cp` (and `container cp`): docker's argument forms on `runtime::cp`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use store::Store;

const AFTER_HELP: &str = "\
Use '-' as the source to read a tar archive from stdin and extract it to a directory \
destination in a container. Use '-' as the destination to stream a tar archive of a \
container source to stdout.

A path starting with '/' or '.' is a local path; CONTAINER:PATH is a path in a container \
(running or stopped; relative to its root). Files copied into a container belong to root \
unless -a is given. A stopped container's volumes and directory bind mounts are reached at \
their destinations (read-only ones refuse writes).";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output (strata prints none).
    #[arg(short, long)]
    pub quiet: bool,
    /// `CONTAINER:SRC_PATH`, a local path, or `-` (a tar stream on stdin).
    #[arg(value_name = "SRC")]
    pub src: String,
    /// `CONTAINER:DEST_PATH`, a local path, or `-` (a tar stream on stdout).
    #[arg(value_name = "DEST")]
    pub dest: String,
}

enum Arg {
    Stream,
    Local(String),
    Container(String, String),
}

/// docker's `splitCpArg`: `-`, a path starting with `/` or `.` (local), `NAME:PATH`, or
/// else a local path.
fn split(a: &str) -> Result<Arg> {
    if a == "-" {
        return Ok(Arg::Stream);
    }
    if a.starts_with('/') || a.starts_with('.') {
        return Ok(Arg::Local(local(a)?));
    }
    match a.split_once(':') {
        Some((c, p)) if !c.is_empty() => {
            let p = if p.starts_with('/') {
                p.to_string()
            } else {
                format!("/{p}")
            };
            Ok(Arg::Container(c.to_string(), p))
        }
        _ => Ok(Arg::Local(local(a)?)),
    }
}

/// A local path made absolute, keeping a trailing `/` or `/.` (they mean something to cp).
fn local(p: &str) -> Result<String> {
    if p.starts_with('/') {
        return Ok(p.to_string());
    }
    let cwd = std::env::current_dir()?;
    Ok(format!("{}/{p}", cwd.display()))
}

pub fn cp(store: &Store, a: CpArgs) -> Result<ExitCode> {
    let (src, dst) = (split(&a.src)?, split(&a.dest)?);
    let opts = runtime::cp::CpOptions {
        archive: a.archive,
        follow: a.follow_link,
    };
    let host = runtime::cp::Side::host()?;
    let open = |name: &str| -> Result<runtime::cp::Side> {
        let c = runtime::find(store, name)?;
        runtime::cp::Side::container(&c, name)
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match (&src, &dst) {
        (Arg::Container(..), Arg::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Arg::Container(c, p), to) => {
            let side = open(c)?;
            let to = match to {
                Arg::Stream => runtime::cp::End::Stream,
                Arg::Local(l) => runtime::cp::End::Path(&host, l),
                Arg::Container(..) => unreachable!("handled above"),
            };
            runtime::cp::copy(runtime::cp::End::Path(&side, p), to, stdin, stdout, opts)?;
        }
        (from, Arg::Container(c, p)) => {
            let side = open(c)?;
            let from = match from {
                Arg::Stream => runtime::cp::End::Stream,
                Arg::Local(l) => runtime::cp::End::Path(&host, l),
                Arg::Container(..) => unreachable!("handled above"),
            };
            runtime::cp::copy(from, runtime::cp::End::Path(&side, p), stdin, stdout, opts)?;
        }
        _ => bail!("must specify at least one container source"),
    }
    Ok(ExitCode::SUCCESS)
}
