//! `strata check [-f FILE] [CONTEXT]`: BuildKit's Dockerfile checks without a build, printed
//! as `docker build --check` prints them (buildx's `printResult` for the lint call and
//! BuildKit's `LintResults.PrintTo`): the count line, then each warning with its rule, URL,
//! detail and a source frame. Like docker, the exit status is 1 when any warning or an
//! error was found (`error=true` makes the lint violation an error as well).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use check::{BaseImage, BaseImages, Input, NoImages, Report};
use clap::Args;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub dockerfile: super::DockerfileFlags,
    /// Also check strata's own rules, the tutorials' best practices (`strata/...`, see
    /// docs/rules/): printed after BuildKit's, apart.
    #[arg(long)]
    pub practices: bool,
    /// Output format: `text` (docker build --check's), `json` (BuildKit's lint result fields:
    /// warnings, sources, buildError; strata's rules under `practices`) or `sarif` (SARIF
    /// 2.1.0, for code-scanning tools).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fix what is mechanical (casing, the AS keyword, MAINTAINER, legacy `ENV a b`, plain
    /// CMD/ENTRYPOINT in JSON form) and print the changes as a unified diff.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: write the fixed Dockerfile in place instead of printing the diff.
    #[arg(long, requires = "fix")]
    pub write: bool,
    /// The build context directory (its `.dockerignore` is read).
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

/// Base images from the store: Env, whether the config has a Shell, the platform.
pub struct StoreImages<'s>(pub &'s store::Store);

impl BaseImages for StoreImages<'_> {
    fn image(&self, reference: &str) -> Option<BaseImage> {
        let img = self.0.resolve(reference).ok()?;
        let c = &img.config;
        let env = c.config.env_pairs();
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
            user: c.config.user.clone().unwrap_or_default(),
        })
    }

    /// The image's layers read as tar streams (headers only; each layer once).
    fn toolchain(&self, reference: &str) -> Option<check::ToolchainScan> {
        let img = self.0.resolve(reference).ok()?;
        let mut scan = check::ToolchainScan::default();
        for l in &img.manifest.layers {
            let blob = self.0.open_blob(&l.digest).ok()?;
            let mut archive = tar::Archive::new(blob);
            for entry in archive.entries().ok()? {
                let e = entry.ok()?;
                if e.header().entry_type().is_file() {
                    let path = e.path_bytes();
                    scan.add(
                        &String::from_utf8_lossy(&path),
                        e.header().size().unwrap_or(0),
                    );
                }
            }
        }
        Some(scan)
    }
}

/// `store` is the store if one exists; base images not in it are reported, not pulled.
pub fn run(store: Option<&store::Store>, args: CheckArgs) -> Result<ExitCode> {
    if args.fix {
        return fix(store, &args);
    }
    check_and_print(
        store,
        &args.dockerfile,
        &args.context,
        args.practices,
        args.format,
    )
}

/// `strata check` and `strata build --check`: check, print as `docker build --check`, and
/// the exit status.
pub fn check_and_print(
    store: Option<&store::Store>,
    flags: &super::DockerfileFlags,
    context: &Path,
    practices: bool,
    format: Format,
) -> Result<ExitCode> {
    let path = super::dockerfile_path(flags.file.as_deref(), context);
    let src = super::read_dockerfile(&path)?;
    let ignore = read_dockerignore(context, &path)?;
    let build_args = flags.plan_options().build_args;
    let images: Box<dyn BaseImages> = match store {
        Some(s) => Box::new(StoreImages(s)),
        None => Box::new(NoImages),
    };
    let entries = if practices && ignore.is_none() {
        heavy_entries(context)
    } else {
        Vec::new()
    };
    let report = check::check(&Input {
        dockerfile: &src.text,
        dockerignore: ignore.as_deref(),
        build_args: &build_args,
        images: images.as_ref(),
        target: flags.target.as_deref(),
        mode: check::Mode::Check,
        practices,
        context_entries: &entries,
    });
    let name = if flags.file.is_some() {
        src.display.clone()
    } else {
        "Dockerfile".to_string()
    };
    let failed =
        !(report.warnings.is_empty() && report.practices.is_empty() && report.error.is_none());
    match format {
        Format::Text => {}
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&to_json(&report, &src.text, &name, practices))?
            );
            unresolved_notice(&report);
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        Format::Sarif => {
            println!(
                "{}",
                serde_json::to_string_pretty(&to_sarif(&report, &name))?
            );
            unresolved_notice(&report);
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
    }
    print!("{}", render(&report, &src.text, &name));
    if practices {
        print!("{}", render_practices(&report, &src.text, &name));
    }
    unresolved_notice(&report);
    if let Some(e) = &report.error {
        // buildx separates the error from the warnings with an empty line on stdout.
        if !report.warnings.is_empty() {
            println!();
        }
        eprintln!("ERROR: {}", escape::message(e));
    }
    Ok(
        if report.warnings.is_empty() && report.practices.is_empty() && report.error.is_none() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Standard base64 (RFC 4648, padded): BuildKit's JSON carries the source's bytes so.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `--format json`: BuildKit's `LintResults` field names (`warnings` with `ruleName`,
/// `description`, `url`, `detail`, `location`; `sources`; `buildError`), and strata's own
/// rules under `practices` when asked for.
fn to_json(report: &Report, dockerfile: &str, name: &str, practices: bool) -> serde_json::Value {
    use serde_json::json;
    let warning = |w: &check::Warning| {
        let mut v = json!({
            "ruleName": w.rule,
            "description": w.description,
            "detail": w.detail,
            "location": {"ranges": [{"start": {"line": w.line}, "end": {"line": w.end_line}}]},
        });
        if !w.url.is_empty() {
            v["url"] = json!(w.url);
        }
        v
    };
    let mut v = json!({
        "warnings": report.warnings.iter().map(warning).collect::<Vec<_>>(),
        "sources": [{"filename": name, "language": "Dockerfile", "data": base64(dockerfile.as_bytes())}],
    });
    if let Some(e) = &report.error {
        v["buildError"] = json!({"message": e});
    }
    if practices {
        v["practices"] = json!(report.practices.iter().map(warning).collect::<Vec<_>>());
    }
    v
}

/// `--format sarif`: one SARIF 2.1.0 run, a result per warning (BuildKit's and strata's),
/// the rules that fired in the driver, an error as a failed invocation.
fn to_sarif(report: &Report, name: &str) -> serde_json::Value {
    use serde_json::json;
    let all: Vec<&check::Warning> = report.warnings.iter().chain(&report.practices).collect();
    let mut rules: Vec<serde_json::Value> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    for w in &all {
        if !ids.contains(&w.rule) {
            ids.push(w.rule);
            let mut r = json!({"id": w.rule, "shortDescription": {"text": w.description}});
            if !w.url.is_empty() {
                r["helpUri"] = json!(w.url);
            }
            rules.push(r);
        }
    }
    let results: Vec<serde_json::Value> = all
        .iter()
        .map(|w| {
            json!({
                "ruleId": w.rule,
                "ruleIndex": ids.iter().position(|i| *i == w.rule),
                "level": "warning",
                "message": {"text": w.detail},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": name},
                    "region": {"startLine": w.line, "endLine": w.end_line},
                }}],
            })
        })
        .collect();
    let mut invocation =
        json!({"executionSuccessful": report.error.is_none() || report.lint_error});
    if let Some(e) = &report.error {
        invocation["toolExecutionNotifications"] =
            json!([{"level": "error", "message": {"text": e}}]);
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "strata",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [invocation],
            "results": results,
        }],
    })
}

/// The context's root entries `strata/NoDockerignore` looks for, with their sizes (the
/// files' sizes, links not followed).
fn heavy_entries(context: &Path) -> Vec<(String, u64)> {
    fn size(p: &Path) -> u64 {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if !m.is_dir() {
            return m.len();
        }
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| size(&e.path())).sum())
            .unwrap_or(0)
    }
    check::practices::HEAVY_ENTRIES
        .iter()
        .map(|name| context.join(name))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), size(&p))
        })
        .collect()
}

/// `--fix [--write]`: the mechanical fixes as a unified diff, or written in place.
fn fix(store: Option<&store::Store>, args: &CheckArgs) -> Result<ExitCode> {
    let path = super::dockerfile_path(args.dockerfile.file.as_deref(), &args.context);
    if args.write && path == Path::new("-") {
        anyhow::bail!("--fix --write needs a Dockerfile file, not stdin");
    }
    let src = super::read_dockerfile(&path)?;
    let ignore = read_dockerignore(&args.context, &path)?;
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
        target: args.dockerfile.target.as_deref(),
        ..Default::default()
    });
    let fixed = check::fix::fix(&src.text, &report);
    if args.write {
        if fixed != src.text {
            std::fs::write(&path, &fixed).with_context(|| format!("write {}", path.display()))?;
            eprintln!("fixed {}", escape::text(&src.display));
        }
    } else {
        print!(
            "{}",
            check::fix::unified_diff(&src.text, &fixed, &escape::text(&src.display))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A notice on stderr for each base image the store did not have.
pub fn unresolved_notice(report: &Report) {
    for image in &report.unresolved_images {
        eprintln!(
            "notice: base image {} is not in the store: rules that read its config (UndefinedVar with its ENV, JSONArgsRecommended with its SHELL, InvalidBaseImagePlatform) treated it as empty",
            escape::text(image)
        );
    }
}

/// The ignore file BuildKit reads: `<Dockerfile>.dockerignore` first, else the context's
/// `.dockerignore` (as the build does).
pub fn read_dockerignore(context: &Path, dockerfile: &Path) -> Result<Option<String>> {
    context::dockerignore_text(context, dockerfile).map_err(|e| match e {
        context::Error::Io { path, source } => anyhow::anyhow!("cannot read {path}: {source}"),
        other => anyhow::Error::new(other),
    })
}

/// What buildx prints on stderr after a build with warnings (`printWarnings`): an empty
/// line, ` N warnings found (use docker --debug to expand):` and ` - Rule: detail (line N)`
/// for each. buildx colours the count line yellow always; strata only on a terminal.
pub fn render_build_warnings(report: &Report, color: bool) -> String {
    let n = report.warnings.len();
    if n == 0 {
        return String::new();
    }
    let mut count = match n {
        1 => "1 warning found".to_string(),
        n => format!("{n} warnings found"),
    };
    count.push_str(" (use docker --debug to expand):\n");
    let mut out = String::from("\n ");
    if color {
        out.push_str(&format!("\x1b[33m{count}\x1b[0m"));
    } else {
        out.push_str(&count);
    }
    for w in &report.warnings {
        out.push_str(&format!(" - {}\n", escape::message(&w.short())));
    }
    out
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
        out.push_str(&render_warning(w, &lines, name));
    }
    out
}

/// One warning as BuildKit's `PrintTo`: rule and URL, detail, source frame.
fn render_warning(w: &check::Warning, lines: &[&str], name: &str) -> String {
    let mut out = format!("\nWARNING: {}", w.rule);
    if !w.url.is_empty() {
        out.push_str(&format!(" - {}", w.url));
    }
    out.push_str(&format!("\n{}\n", escape::message(&w.detail)));
    out.push_str(&frame(lines, w.line, w.end_line, name));
    out
}

/// strata's own rules' findings, after BuildKit's and apart from them: a count line of its
/// own, then each finding as BuildKit prints a warning (its URL the rule's page in the
/// repository).
pub fn render_practices(report: &Report, dockerfile: &str, name: &str) -> String {
    let mut out = match report.practices.len() {
        0 => "\nBest practices (strata's own rules, docs/rules/): none found.\n".to_string(),
        1 => "\nBest practices (strata's own rules, docs/rules/): 1 finding\n".to_string(),
        n => format!("\nBest practices (strata's own rules, docs/rules/): {n} findings\n"),
    };
    let lines: Vec<&str> = dockerfile.split('\n').collect();
    for w in &report.practices {
        out.push_str(&render_warning(w, &lines, name));
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
            ..Default::default()
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
            ..Default::default()
        });
        assert_eq!(
            render(&clean, "FROM scratch\n", "Dockerfile"),
            "Check complete, no warnings found.\n"
        );
    }

    /// buildx's `printWarnings` text, as a build with warnings ends (docker 27's output:
    /// `\n 2 warnings found (use docker --debug to expand):\n - Rule: detail (line N)\n`).
    #[test]
    fn build_warnings_like_buildx() {
        let df = "\nFROM scratch as base\ncopy Dockerfile .\n";
        let report = check::check(&Input {
            dockerfile: df,
            mode: check::Mode::Build,
            ..Default::default()
        });
        assert_eq!(
            render_build_warnings(&report, false),
            concat!(
                "\n 2 warnings found (use docker --debug to expand):\n",
                " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)\n",
                " - ConsistentInstructionCasing: Command 'copy' should match the case of the command majority (uppercase) (line 3)\n",
            )
        );
        let one = check::check(&Input {
            dockerfile: "FROM scratch\nMAINTAINER me\n",
            ..Default::default()
        });
        assert_eq!(
            render_build_warnings(&one, true),
            concat!(
                "\n \x1b[33m1 warning found (use docker --debug to expand):\n\x1b[0m",
                " - MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)\n",
            )
        );
        let none = check::check(&Input {
            dockerfile: "FROM scratch\n",
            ..Default::default()
        });
        assert_eq!(render_build_warnings(&none, false), "");
    }

    #[test]
    fn base64_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn json_and_sarif() {
        let df = "FROM scratch as base\n# check=error=true\n";
        let report = check::check(&Input {
            dockerfile: df,
            practices: true,
            ..Default::default()
        });
        let j = to_json(&report, df, "Dockerfile", true);
        assert_eq!(j["warnings"][0]["ruleName"], "FromAsCasing");
        assert_eq!(
            j["warnings"][0]["location"]["ranges"][0]["start"]["line"],
            1
        );
        assert_eq!(
            j["warnings"][0]["url"],
            "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
        );
        assert_eq!(j["sources"][0]["data"], base64(df.as_bytes()));
        assert!(j.get("buildError").is_none());
        assert_eq!(j["practices"][0]["ruleName"], "strata/RootUser");
        let s = to_sarif(&report, "Dockerfile");
        let run = &s["runs"][0];
        assert_eq!(s["version"], "2.1.0");
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "FromAsCasing");
        assert_eq!(run["results"][0]["ruleId"], "FromAsCasing");
        assert_eq!(
            run["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            1
        );
        assert_eq!(run["results"][1]["ruleId"], "strata/RootUser");
        assert_eq!(run["results"][1]["ruleIndex"], 1);
        assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    }
}
