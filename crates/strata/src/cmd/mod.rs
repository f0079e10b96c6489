pub mod build;
pub mod check;
pub mod containers;
pub mod debug;
pub mod images;
pub mod plan;
pub mod registry;
pub mod run;
pub mod size;
pub mod transfer;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A Dockerfile read from disk, with the name diagnostics use for it.
pub struct DockerfileSource {
    pub display: String,
    pub text: String,
}

/// Read a Dockerfile (`-` = stdin). Invalid UTF-8 is an error naming the file.
pub fn read_dockerfile(path: &Path) -> Result<DockerfileSource> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("reading Dockerfile from stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("cannot read Dockerfile {}", path.display()))?
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not valid UTF-8 (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(DockerfileSource {
        display: path.display().to_string(),
        text,
    })
}

/// `-f FILE` relative to the working directory, else `CONTEXT/Dockerfile`, as docker does.
pub fn dockerfile_path(file: Option<&Path>, context: &Path) -> PathBuf {
    match file {
        Some(f) => f.to_path_buf(),
        None => context.join("Dockerfile"),
    }
}
