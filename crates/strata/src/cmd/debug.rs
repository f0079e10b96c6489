use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Print a Dockerfile's syntax tree in BuildKit's dump format.
    Parse {
        /// The Dockerfile (`-` for stdin).
        file: PathBuf,
    },
}

pub fn run(cmd: DebugCommand) -> Result<ExitCode> {
    match cmd {
        DebugCommand::Parse { file } => {
            let src = super::read_dockerfile(&file)?;
            match dockerfile::parse(&src.text) {
                Ok(df) => {
                    print!("{}", dockerfile::dump(&df));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    let diag = plan::Diagnostic::from_parse_error(&src.text, &e);
                    eprint!("{}", diag.render(&src.display));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
