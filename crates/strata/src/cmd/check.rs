//! `strata check [-f FILE] [CONTEXT]`: BuildKit's Dockerfile checks without a build, printed
//! as `docker build --check` prints them (buildx's `printResult` for the lint call and
//! BuildKit's `LintResults.PrintTo`): the count line, then each warning with its rule, URL,
//! detail and a source frame. Like docker, the exit status is 1 when any warning or an
//! error was found (`error=true` makes the lint violation an error as well).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use check::{BaseImage, BaseImages, Input, NoImages, Report};
use clap::Args;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub dockerfile: super::DockerfileFlags,
    /// The build context directory (its `.dockerignore` is read).
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

/// Base images from the store: Env, whether the config has a Shell, the platform.
struct StoreImages<'s>(&'s store::Store);

impl BaseImages for StoreImages<'_> {
    fn image(&self, reference: &str) -> Option<BaseImage> {
        let img = self.0.resolve(reference).ok()?;
        let c = &img.config;
        let env = c
            .config
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect();
        let mut platform = format!("{}/{}", c.os, c.architecture);
        if let Some(v) = c.variant.as_deref().filter(|v| !v.is_empty()) {
            platform.push('/');
            platform.push_str(v);
        }
        Some(BaseImage {
            env,
            has_shell: c.config.shell.as_ref().is_some_and(|s| !s.is_empty()),
            platform: (!c.os.is_empty() && !c.architecture.is_empty()).then_some(platform),
            onbuild: c.config.on_build.clone().unwrap_or_default(),
        })
    }
}

/// `store` is the store if one exists; base images not in it are reported, not pulled.
pub fn run(store: Option<&store::Store>, args: CheckArgs) -> Result<ExitCode> {
    let path = super::dockerfile_path(args.dockerfile.file.as_deref(), &args.context);
    let src = super::read_dockerfile(&path)?;
    let ignore = read_dockerignore(&args.context)?;
    let build_args = args.dockerfile.plan_options().build_args;
    let images: Box<dyn BaseImages> = match store {
        Some(s) => Box::new(StoreImages(s)),
        None => Box::new(NoImages),
    };
    let report = check::check(&Input {
        dockerfile: &src.text,
        dockerignore: ignore.as_deref(),
        build_args: &build_args,
        images: images.as_ref(),
    });
    let name = if args.dockerfile.file.is_some() {
        src.display.clone()
    } else {
        "Dockerfile".to_string()
    };
    print!("{}", render(&report, &src.text, &name));
    for image in &report.unresolved_images {
        eprintln!(
            "notice: base image {} is not in the store: rules that read its config (UndefinedVar with its ENV, JSONArgsRecommended with its SHELL, InvalidBaseImagePlatform) treated it as empty",
            escape::text(image)
        );
    }
    if let Some(e) = &report.error {
        // buildx separates the error from the warnings with an empty line on stdout.
        if !report.warnings.is_empty() {
            println!();
        }
        eprintln!("ERROR: {}", escape::message(e));
    }
    Ok(if report.warnings.is_empty() && report.error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_dockerignore(context: &Path) -> Result<Option<String>> {
    match std::fs::read(context.join(".dockerignore")) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read .dockerignore: {e}")),
    }
}

/// The text `docker build --check` prints on stdout.
pub fn render(report: &Report, dockerfile: &str, name: &str) -> String {
    let mut out = String::new();
    let n = report.warnings.len();
    match n {
        0 if report.error.is_none() => out.push_str("Check complete, no warnings found.\n"),
        0 => {}
        1 => out.push_str("Check complete, 1 warning has been found!\n"),
        n => out.push_str(&format!("Check complete, {n} warnings have been found!\n")),
    }
    let lines: Vec<&str> = dockerfile.split('\n').collect();
    for w in &report.warnings {
        out.push_str(&format!("\nWARNING: {}", w.rule));
        if !w.url.is_empty() {
            out.push_str(&format!(" - {}", w.url));
        }
        out.push_str(&format!("\n{}\n", escape::message(&w.detail)));
        out.push_str(&frame(&lines, w.line, w.end_line, name));
    }
    out
}

/// BuildKit's source frame (`errdefs.Source.Print`): the lines around `start..=end`, the
/// warned ones marked `>>>`.
pub(crate) fn frame(lines: &[&str], start: usize, end: usize, name: &str) -> String {
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let (mut s, mut e) = (start, end.max(start).min(lines.len()));
    let pad = if e == s { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if s > 1 {
            s -= 1;
            p += 1;
        }
        if e != lines.len() {
            e += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{}:{start}\n--------------------\n", escape::text(name));
    for i in s..=e {
        let marker = if i >= start && i <= end.max(start) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(
            " {i:>3} | {marker} {}\n",
            escape::text(lines[i - 1])
        ));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_docker() {
        let df = "\nFROM scratch as base\ncopy Dockerfile .\n";
        let report = check::check(&Input {
            dockerfile: df,
            dockerignore: None,
            build_args: &[],
            images: &NoImages,
        });
        let text = render(&report, df, "Dockerfile");
        assert_eq!(
            text,
            concat!(
                "Check complete, 2 warnings have been found!\n",
                "\n",
                "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n",
                "'as' and 'FROM' keywords' casing do not match\n",
                "Dockerfile:2\n",
                "--------------------\n",
                "   1 |     \n",
                "   2 | >>> FROM scratch as base\n",
                "   3 |     copy Dockerfile .\n",
                "   4 |     \n",
                "--------------------\n",
                "\n",
                "WARNING: ConsistentInstructionCasing - https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/\n",
                "Command 'copy' should match the case of the command majority (uppercase)\n",
                "Dockerfile:3\n",
                "--------------------\n",
                "   1 |     \n",
                "   2 |     FROM scratch as base\n",
                "   3 | >>> copy Dockerfile .\n",
                "   4 |     \n",
                "--------------------\n",
            )
        );
        let clean = check::check(&Input {
            dockerfile: "FROM scratch\n",
            dockerignore: None,
            build_args: &[],
            images: &NoImages,
        });
        assert_eq!(
            render(&clean, "FROM scratch\n", "Dockerfile"),
            "Check complete, no warnings found.\n"
        );
    }
}
