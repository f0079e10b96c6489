use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use plan::{Base, Plan};

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub dockerfile: super::DockerfileFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Target platforms (`linux/amd64,linux/arm64`): a plan each, with every stage's
    /// platform and whether it runs natively or emulated.
    #[arg(long, value_name = "PLATFORM", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: PlanArgs) -> Result<ExitCode> {
    let path = super::dockerfile_path(args.dockerfile.file.as_deref(), &args.context);
    let src = super::read_dockerfile(&path)?;
    let platforms = super::build::target_platforms(&args.platform)?;
    if platforms.is_empty() {
        let opts = args.dockerfile.plan_options();
        let plan = match plan::plan(&src.text, &opts, &plan::Unresolved) {
            Ok(p) => p,
            Err(d) => {
                eprint!("{}", d.render(&src.display));
                return Ok(ExitCode::FAILURE);
            }
        };
        syntax_notice(&plan);
        match args.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            Format::Text => print!("{}", render_text(&plan, &src.display)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut plans = Vec::new();
    for p in &platforms {
        let mut opts = args.dockerfile.plan_options();
        opts.target_platform = engine::plan_platform(p);
        opts.build_platform = engine::plan_platform(&registry::Platform::host());
        match plan::plan(&src.text, &opts, &plan::Unresolved) {
            Ok(plan) => plans.push((p.clone(), plan)),
            Err(d) => {
                eprint!("{}", d.render(&src.display));
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    syntax_notice(&plans[0].1);
    match args.format {
        Format::Json => {
            let v: Vec<serde_json::Value> = plans
                .iter()
                .map(|(p, plan)| {
                    let stages: Vec<serde_json::Value> = (0..plan.stages.len())
                        .map(|i| {
                            let (sp, how) = stage_run(plan, i);
                            serde_json::json!({"stage": i, "platform": sp, "runs": how})
                        })
                        .collect();
                    serde_json::json!({"platform": p.to_string(), "stages": stages, "plan": plan})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?)
        }
        Format::Text => {
            for (i, (p, plan)) in plans.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("== platform {p}");
                print!("{}", render_text(plan, &src.display));
                println!();
                println!("stage platforms for {p}:");
                for s in plan.stages.iter().filter(|s| s.needed) {
                    let (sp, how) = stage_run(plan, s.index);
                    println!("  {}: {sp}, {how}", s.display_name);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn syntax_notice(plan: &Plan) {
    if let Some(s) = &plan.syntax {
        eprintln!(
            "notice: # syntax={} is served by strata's built-in Dockerfile frontend",
            escape::text(s)
        );
    }
}

/// Stage `i`'s platform and how its RUN steps run here: `native`, `emulated (binfmt_misc)`,
/// or why they cannot (no emulator registered: the build would fail at the first RUN).
fn stage_run(plan: &Plan, i: usize) -> (String, String) {
    let text = plan.stage_platform(i);
    let how = match registry::Platform::parse(&text) {
        Err(e) => format!("invalid: {e}"),
        Ok(p) if p.is_host() => "native".to_string(),
        Ok(p) => match exec::emulation::check(&p) {
            Ok(()) => "emulated (binfmt_misc)".to_string(),
            Err(e) => format!(
                "emulated, but cannot run here: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        },
    };
    (text, how)
}

fn base_text(plan: &Plan, base: &Base) -> String {
    match base {
        Base::Scratch => "scratch".into(),
        Base::Image { reference } => format!("image {reference}"),
        Base::Stage { index, .. } => format!("stage {}", plan.stages[*index].display_name),
    }
}

/// The human-readable plan.
pub fn render_text(plan: &Plan, file: &str) -> String {
    let mut out = String::new();
    let t = plan.target_stage();
    let _ = writeln!(
        out,
        "plan for {file}: target {} (stage {})",
        t.display_name, t.index
    );
    if !plan.global_args.is_empty() {
        let args: Vec<String> = plan
            .global_args
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        let _ = writeln!(out, "global args: {}", args.join(" "));
    }
    for (w, stages) in plan.waves.iter().enumerate() {
        let names: Vec<&str> = stages
            .iter()
            .map(|i| plan.stages[*i].display_name.as_str())
            .collect();
        let together = if names.len() > 1 {
            "  (concurrently)"
        } else {
            ""
        };
        let _ = writeln!(out, "wave {}: {}{together}", w + 1, names.join(", "));
    }
    for s in &plan.stages {
        out.push('\n');
        let _ = write!(
            out,
            "stage {} {} (line {}): FROM {}",
            s.index,
            s.display_name,
            s.span.start,
            base_text(plan, &s.base)
        );
        if let Some(p) = &s.platform {
            let _ = write!(out, " --platform={p}");
        }
        out.push('\n');
        if let Some(reason) = &s.skip_reason {
            let _ = writeln!(out, "  skipped: {reason}");
            continue;
        }
        if !s.depends_on.is_empty() {
            let deps: Vec<&str> = s
                .depends_on
                .iter()
                .map(|d| plan.stages[*d].display_name.as_str())
                .collect();
            let _ = writeln!(out, "  depends on: {}", deps.join(", "));
        }
        if !s.images.is_empty() {
            let _ = writeln!(out, "  uses images: {}", s.images.join(", "));
        }
        if s.waits_on_base {
            let _ = writeln!(
                out,
                "  waits on base image: its Env and ONBUILD triggers apply at build time"
            );
        }
        if !matches!(s.base, Base::Scratch) {
            let _ = writeln!(
                out,
                "  [{} 1/{}] FROM {}",
                s.display_name,
                s.total_steps,
                base_text(plan, &s.base)
            );
        }
        for step in &s.steps {
            let tag = match step.number {
                Some(n) => format!("[{} {}/{}]", s.display_name, n, s.total_steps),
                None => "     ".to_string() + &" ".repeat(s.display_name.len()),
            };
            let trig = if step.onbuild_trigger {
                " (ONBUILD trigger)"
            } else {
                ""
            };
            let _ = writeln!(out, "  {tag} {}{trig}", step.display);
            if !step.waits_on_base.is_empty() {
                let _ = writeln!(
                    out,
                    "      waits on base image: ${} may come from its Env",
                    step.waits_on_base.join(", $")
                );
            }
        }
    }
    if !plan.unused_build_args.is_empty() {
        let _ = writeln!(
            out,
            "\nwarning: build args not consumed by any ARG: {}",
            plan.unused_build_args.join(", ")
        );
    }
    for w in &plan.warnings {
        let _ = writeln!(
            out,
            "warning: {file}:{}: {}",
            w.line,
            escape::text(&w.message)
        );
    }
    out
}
