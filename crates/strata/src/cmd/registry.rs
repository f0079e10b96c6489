//! pull, push, login, logout.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use store::{Reference, Store};

#[derive(Debug, Clone, Default, Args)]
pub struct RegistryFlags {
    /// Allow plain http for this registry (`HOST[:PORT]`; repeatable). The loopback
    /// (127.0.0.0/8, localhost) always may; `STRATA_INSECURE_REGISTRIES` adds more.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
}

impl RegistryFlags {
    pub fn options(&self) -> registry::Options {
        let mut o = registry::Options::from_env();
        o.insecure.extend(self.insecure.iter().cloned());
        o
    }
}

#[derive(Args)]
pub struct PullArgs {
    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform to pick from a multi-platform image (default: the host's); the image of
    /// it is stored as a plain image, as docker 20.10's pull.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub flags: RegistryFlags,
    /// `NAME[:TAG|@DIGEST]`
    pub name: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Print only the pushed manifest's digest line.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub flags: RegistryFlags,
    /// `NAME[:TAG]`
    pub name: String,
}

#[derive(Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub flags: RegistryFlags,
    /// Registry (`HOST[:PORT]`; default Docker Hub).
    pub registry: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry (`HOST[:PORT]`; default Docker Hub).
    pub registry: Option<String>,
}

/// `https://host:5000/v1/` → `host:5000`; Docker Hub's spellings → `docker.io`.
fn registry_name(arg: Option<&str>) -> Result<String> {
    let Some(a) = arg else {
        return Ok("docker.io".into());
    };
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = a.split('/').next().unwrap_or("");
    if host.is_empty() {
        bail!("invalid registry {a:?}");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
    })
}

/// A transfer's bytes so far and in all, from the registry's `Downloading N/M` and
/// `Pushing N/M` statuses.
pub fn transfer_bytes(status: &str) -> Option<(&str, u64, u64)> {
    let (verb, rest) = status.split_once(' ')?;
    if verb != "Downloading" && verb != "Pushing" {
        return None;
    }
    let (n, m) = rest.split_once('/')?;
    Some((verb, n.parse().ok()?, m.parse().ok()?))
}

/// docker's pull/push lines: on a terminal a byte bar per layer (`Downloading [====>  ]
/// 12MB/45MB`), elsewhere one line per status and none for the byte counts (as docker
/// without a terminal).
pub struct TransferView {
    quiet: bool,
    multi: Option<indicatif::MultiProgress>,
    bars: std::sync::Mutex<Vec<(String, indicatif::ProgressBar)>>,
}

impl TransferView {
    pub fn new(quiet: bool) -> TransferView {
        let tty = !quiet && io::stdout().is_terminal();
        TransferView {
            quiet,
            multi: tty.then(|| {
                indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout())
            }),
            bars: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn event(&self, id: &str, status: &str) {
        if self.quiet {
            return;
        }
        let bytes = transfer_bytes(status);
        let Some(multi) = &self.multi else {
            if bytes.is_none() {
                let mut out = io::stdout().lock();
                let _ = if id.is_empty() {
                    writeln!(out, "{status}")
                } else {
                    writeln!(out, "{id}: {status}")
                };
            }
            return;
        };
        if id.is_empty() {
            let _ = multi.println(status);
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = match bars.iter().find(|(i, _)| i == id) {
            Some((_, b)) => b.clone(),
            None => {
                let b = multi.add(indicatif::ProgressBar::new(0));
                b.set_style(
                    indicatif::ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.set_prefix(id.to_string());
                bars.push((id.to_string(), b.clone()));
                b
            }
        };
        match bytes {
            Some((verb, n, total)) => {
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix}: {msg} [{bar:40}] {bytes}/{total_bytes}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(total);
                bar.set_position(n);
                bar.set_message(verb.to_string());
            }
            None => {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.set_message(status.to_string());
                if matches!(
                    status,
                    "Pull complete" | "Already exists" | "Pushed" | "Layer already exists"
                ) || status.starts_with("Mounted from")
                {
                    bar.finish();
                } else {
                    bar.tick();
                }
            }
        }
    }
}

pub fn pull(store: &Store, a: PullArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.name).map_err(anyhow::Error::msg)?;
    let mut opts = a.flags.options();
    if let Some(p) = super::run::platform_flag(a.platform.as_deref())? {
        opts.platform = p;
    }
    let view = TransferView::new(a.quiet);
    let progress = |id: &str, status: &str| view.event(id, status);
    let p = registry::pull(store, &r, &opts, &progress)
        .with_context(|| format!("pulling {r} from {}", r.domain))?;
    if !a.quiet {
        println!("Digest: {}", p.digest);
        let familiar = r.familiar();
        if p.updated {
            println!("Status: Downloaded newer image for {familiar}");
        } else {
            println!("Status: Image is up to date for {familiar}");
        }
    }
    println!("{r}");
    Ok(ExitCode::SUCCESS)
}

pub fn push(store: &Store, a: PushArgs) -> Result<ExitCode> {
    let r = Reference::parse(&a.name).map_err(anyhow::Error::msg)?;
    let opts = a.flags.options();
    if !a.quiet {
        println!("The push refers to repository [{}]", r.repository());
    }
    let view = TransferView::new(a.quiet);
    let progress = |id: &str, status: &str| view.event(id, status);
    let p = registry::push(store, &r, &opts, &progress)
        .with_context(|| format!("pushing {r} to {}", r.domain))?;
    println!("{}: digest: {} size: {}", p.tag, p.digest, p.size);
    Ok(ExitCode::SUCCESS)
}

pub fn login(a: LoginArgs) -> Result<ExitCode> {
    let reg = registry_name(a.registry.as_deref())?;
    let username = match a.username {
        Some(u) => u,
        None if io::stdin().is_terminal() && !a.password_stdin => {
            eprint!("Username: ");
            let mut line = String::new();
            io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("a username is required: pass -u USER"),
    };
    if username.is_empty() {
        bail!("a username is required: pass -u USER");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        bail!("a password is required: pass --password-stdin (or -p PASSWORD)");
    };
    if password.is_empty() {
        bail!("a password is required: pass --password-stdin (or -p PASSWORD)");
    }
    let creds = registry::Credentials { username, password };
    registry::login(&reg, &creds, &a.flags.options())
        .with_context(|| format!("login to {reg} failed"))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let reg = registry_name(a.registry.as_deref())?;
    let key = registry::auth::auth_key(&reg);
    if registry::logout(&reg)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(ExitCode::SUCCESS)
}
