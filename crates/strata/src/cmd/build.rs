//! `strata build`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use store::{Reference, Store};

use super::plan::parse_build_args;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Tty,
    Plain,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Set build-time variables.
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter")]
    pub no_cache_filter: Vec<String>,
    /// Type of progress output.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Networking mode for RUN instructions: default, none or host.
    #[arg(long)]
    pub network: Option<String>,
    /// Secret to expose to the build: `id=ID,src=PATH`.
    #[arg(long)]
    pub secret: Vec<String>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set metadata for an image (`KEY=VALUE`).
    #[arg(long)]
    pub label: Vec<String>,
    /// Build context directory.
    pub context: PathBuf,
}

fn parse_secret(s: &str) -> Result<(String, PathBuf)> {
    let mut id = None;
    let mut src = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => bail!("invalid --secret {s:?}: expected id=ID,src=PATH"),
        }
    }
    let id = id.context("--secret needs id=ID")?;
    let src = src.unwrap_or_else(|| PathBuf::from(&id));
    if !src.exists() {
        bail!("secret {id}: {} does not exist", src.display());
    }
    Ok((id, src))
}

pub fn run(store: &Store, a: BuildArgs) -> Result<ExitCode> {
    let context = a.context.clone();
    let meta = std::fs::metadata(&context).with_context(|| {
        format!(
            "unable to prepare context: path {:?} not found",
            context.display().to_string()
        )
    })?;
    if !meta.is_dir() {
        bail!(
            "unable to prepare context: {} is not a directory",
            context.display()
        );
    }
    let path = super::dockerfile_path(a.file.as_deref(), &context);
    let src = super::read_dockerfile(&path)?;
    // <Dockerfile>.dockerignore wins over the context's .dockerignore, as in BuildKit.
    let specific = PathBuf::from(format!("{}.dockerignore", path.display()));
    let ignore_text = std::fs::read_to_string(&specific)
        .or_else(|_| std::fs::read_to_string(context.join(".dockerignore")))
        .unwrap_or_default();
    let ignore: Vec<String> = ignore_text.lines().map(str::to_string).collect();
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(Reference::parse(t).map_err(anyhow::Error::msg)?);
    }
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push((k.to_string(), v.to_string()));
    }
    let secrets = a
        .secret
        .iter()
        .map(|s| parse_secret(s))
        .collect::<Result<Vec<_>>>()?;
    if let Some(n) = &a.network {
        if !["default", "none", "host"].contains(&n.as_str()) {
            bail!("network mode {n:?} not supported: use default, none or host");
        }
    }
    let opts = build::BuildOptions {
        dockerfile: src.text.clone(),
        context: Some(context.clone()),
        plan: plan::PlanOptions {
            target: a.target.clone(),
            build_args: parse_build_args(&a.build_args),
            ..plan::PlanOptions::default()
        },
        no_cache: a.no_cache,
        no_cache_filter: a.no_cache_filter.clone(),
        network: a.network.clone(),
        labels,
        tags: tags.clone(),
        ignore,
        secrets,
    };
    let started = std::time::Instant::now();
    let progress: Box<dyn build::Progress> = if a.quiet {
        Box::new(build::Quiet)
    } else {
        Box::new(build::Plain::stderr())
    };
    match build::build(store, &opts, progress.as_ref()) {
        Ok(r) => {
            let id = r.image.id().to_string();
            if let Some(f) = &a.iidfile {
                std::fs::write(f, &id).with_context(|| format!("write {}", f.display()))?;
            }
            if a.quiet {
                println!("{id}");
            } else {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, "\n#0 writing image {id} done");
                for t in &tags {
                    let _ = writeln!(e, "#0 naming to {t} done");
                }
                let _ = writeln!(
                    e,
                    "#0 DONE {:.1}s ({} RUN executed, {} steps cached)",
                    started.elapsed().as_secs_f64(),
                    r.runs_executed,
                    r.cached
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(build::BuildError::Dockerfile(d)) => {
            eprint!("{}", d.render(&src.display));
            Ok(ExitCode::FAILURE)
        }
        Err(build::BuildError::Step {
            step,
            message,
            tail,
        }) => {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "------\n > {step}:");
            for l in &tail {
                let _ = writeln!(e, "{l}");
            }
            let _ = writeln!(e, "------");
            let _ = writeln!(e, "error: failed to solve: {step}: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(anyhow::Error::new(other).context("failed to solve")),
    }
}
