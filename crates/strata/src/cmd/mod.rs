pub mod bake;
pub mod build;
pub mod check;
pub mod compose;
pub mod compose_ops;
pub mod containers;
pub mod cp;
pub mod debug;
pub mod exec;
pub mod images;
pub mod manifest;
pub mod network;
pub mod plan;
pub mod registry;
pub mod run;
pub mod size;
pub mod system;
pub mod transfer;
pub mod volume;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

/// The flags that say which Dockerfile and what of it (`build` and `plan` both take them).
#[derive(Args)]
pub struct DockerfileFlags {
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile').
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Set build-time variables (`NAME=VALUE`, or `NAME` to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]", value_parser = build_arg)]
    pub build_args: Vec<BuildArg>,
}

/// A `--build-arg`: `NAME=VALUE`, or `NAME` with the environment's value (none when the
/// environment has no such variable: the argument is dropped, as docker does).
#[derive(Clone, Debug, PartialEq)]
pub struct BuildArg(Option<(String, String)>);

fn build_arg(a: &str) -> Result<BuildArg, std::convert::Infallible> {
    Ok(BuildArg(match a.split_once('=') {
        Some((k, v)) => Some((k.to_string(), v.to_string())),
        None => std::env::var(a).ok().map(|v| (a.to_string(), v)),
    }))
}

impl DockerfileFlags {
    /// The planner's options: the target and the build args that have a value.
    pub fn plan_options(&self) -> ::plan::PlanOptions {
        ::plan::PlanOptions {
            target: self.target.clone(),
            build_args: self.build_args.iter().filter_map(|a| a.0.clone()).collect(),
            ..::plan::PlanOptions::default()
        }
    }
}

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

/// docker's sizes (`units.RAMInBytes`): a number with an optional unit `b`, `k`, `m`, `g`,
/// `t`, `p` (optionally followed by `b`, any case), in powers of 1024.
pub fn parse_size(v: &str) -> Result<u64> {
    let t = v.trim().to_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: {v:?}"))?;
    let shift = match unit.trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => anyhow::bail!("invalid size: {v:?} (use b, k, m, g, t or p)"),
    };
    if unit.len() > 2 || (unit.len() == 2 && !unit.ends_with('b')) {
        anyhow::bail!("invalid size: {v:?}");
    }
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// docker's `--env-file` format: one `KEY=VALUE` per line (the value verbatim, no quotes
/// removed), a `KEY` alone takes strata's own value (left out when unset), empty lines and
/// lines starting with `#` skipped, leading whitespace ignored.
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("env file {} contains invalid utf8 bytes", path.display()))?;
    parse_env_file(&text, |k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.is_empty() {
            bail!("no variable name on line '{line}'");
        }
        if key.contains(char::is_whitespace) {
            bail!("variable '{key}' contains whitespaces");
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None => {
                if let Some(v) = lookup(key) {
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// docker's confirmation prompt on stdout (`volume prune`, `network prune`), the answer read
/// from stdin: yes only for `y` or `yes` (any case); anything else, an EOF or a read error
/// is No.
pub fn confirm(warning: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `--label KEY=VALUE` values (`KEY` alone: an empty value) as a map, a later value of a key
/// over an earlier one (`run`, `volume create`, `network create`).
pub fn label_map(list: &[String]) -> std::collections::BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// JSON with each level indented by `indent` (docker prints four spaces, `manifest
/// inspect` a tab), its keys in their order.
pub fn indented_json(v: &serde_json::Value, indent: &[u8]) -> Result<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// `volume inspect` and `network inspect` output as docker prints it: each value through
/// `--format`, else one JSON array with four-space indentation; then `Error: No such KIND:
/// NAME` for each name not found, and failure if there was one. The format is parsed first,
/// so a bad one fails before anything is printed.
pub fn print_inspected(
    values: Vec<serde_json::Value>,
    missing: &[String],
    kind: &str,
    format: Option<&str>,
) -> Result<ExitCode> {
    match format.map(crate::format::Template::parse).transpose()? {
        Some(t) => {
            for v in &values {
                println!("{}", t.execute(v)?);
            }
        }
        None => println!(
            "{}",
            indented_json(&serde_json::Value::Array(values), b"    ")?
        ),
    }
    for m in missing {
        eprintln!("Error: No such {kind}: {m}");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_as_docker_reads_them() {
        let text = "\u{feff}# comment\nA=1\n  B= two words \n\nHOSTVAR\nUNSET\nQ=\"q\"\n";
        let env = parse_env_file(text, |k| (k == "HOSTVAR").then(|| "h".to_string())).unwrap();
        assert_eq!(env, vec!["A=1", "B= two words ", "HOSTVAR=h", "Q=\"q\""]);
        assert!(parse_env_file("=x", |_| None).is_err());
        assert!(parse_env_file("A B=x", |_| None).is_err());
    }

    #[test]
    fn sizes_as_docker_reads_them() {
        for (v, n) in [
            ("512", 512),
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("1g", 1 << 30),
            ("1gb", 1 << 30),
            ("2k", 2048),
            ("10b", 10),
            ("1.5k", 1536),
        ] {
            assert_eq!(parse_size(v).unwrap(), n, "{v}");
        }
        for bad in ["", "m", "12q", "1mm", "-1", "1 kbb"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        f: DockerfileFlags,
    }

    #[test]
    fn dockerfile_flags() {
        let t = T::try_parse_from([
            "t",
            "-f",
            "x/Dockerfile",
            "--target",
            "b",
            "--build-arg",
            "A=1=2",
            "--build-arg",
            "STRATA_TEST_SURELY_UNSET_ARG",
            "--build-arg",
            "E=",
        ])
        .unwrap();
        assert_eq!(t.f.file.as_deref(), Some(Path::new("x/Dockerfile")));
        let o = t.f.plan_options();
        assert_eq!(o.target.as_deref(), Some("b"));
        // `NAME` without a value in the environment is dropped, as docker does.
        assert_eq!(
            o.build_args,
            [("A".into(), "1=2".into()), ("E".into(), String::new())]
        );
    }
}
