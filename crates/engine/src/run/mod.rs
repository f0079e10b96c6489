//! RUN: a command on an overlay of the stage's layer snapshots, its upperdir committed as
//! the step's layer. [`ExecMeta`] is what the command runs as (BuildKit's ExecOp meta),
//! built once per step for its cache key and its execution; [`mounts`] makes its
//! `--mount`s.

pub(crate) mod mounts;

use std::collections::VecDeque;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use store::image::RunConfig;
use store::{Digest, Writer};

use crate::config;
use crate::error::BuildError;
use crate::layerdir::{commit_dir, lowers, temp_dir};
use crate::progress::{Event, Progress};

pub(crate) use mounts::MountSources;

/// How many output lines a failed step's error shows.
const TAIL_LINES: usize = 10;

/// The hostname a RUN sees, as under BuildKit.
const HOSTNAME: &str = "buildkitsandbox";

/// What a RUN runs and how (BuildKit's ExecOp meta).
pub(crate) struct ExecMeta {
    /// The command (shell form wrapped in the stage's SHELL).
    pub args: Vec<String>,
    /// The config's Env with the step's ARGs over it (an ARG after an ENV of the same name
    /// wins in BuildKit's LLB environment).
    pub env: Vec<String>,
    /// Proxy build args in both spellings, as BuildKit passes them: in the environment,
    /// not in the cache key.
    pub proxy_env: Vec<String>,
    /// The working directory, cleaned (`/` when the config has none).
    pub cwd: String,
    /// USER; empty for root.
    pub user: String,
    /// `default` (a private namespace with a route out), `none` or `host`.
    pub network: String,
    pub mounts: Vec<plan::Mount>,
    /// The build's `--add-host`, `--shm-size` and `--ulimit`s.
    pub extras: RunExtras,
}

/// What the build's flags add to every RUN (`--add-host`, `--shm-size`, `--ulimit`): part
/// of each RUN's cache key when set, as BuildKit's ExecOp carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunExtras {
    /// `/etc/hosts` lines: name and address.
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `/dev/shm` size in bytes (docker's 64 MiB when `None`).
    pub shm_size: Option<u64>,
    pub ulimits: Vec<exec::Rlimit>,
    /// `--isolation chroot`: RUN gets the caller's `/proc` bound instead of its own
    /// ([`exec::ExecSpec::bind_proc`]). Not in the cache key: the same steps give the same
    /// files either way.
    #[serde(skip)]
    pub bind_proc: bool,
}

impl ExecMeta {
    /// The meta of RUN `run` of `step` on a stage whose config is `cfg`; `network` is the
    /// build's `--network`.
    pub(crate) fn new(
        step: &plan::Step,
        run: &plan::Run,
        cfg: &RunConfig,
        proxy_args: &[(String, String)],
        network: Option<&str>,
        extras: &RunExtras,
    ) -> ExecMeta {
        let args = config::command_args(cfg, &command(run));
        let mut env = cfg.env.clone().unwrap_or_default();
        for (k, v) in &step.args {
            set_env(&mut env, k, v);
        }
        let mut all = env.clone();
        for (k, v) in proxy_args {
            for name in [k.to_uppercase(), k.to_lowercase()] {
                if !all
                    .iter()
                    .any(|e| e.split_once('=').map(|(ek, _)| ek) == Some(&*name))
                {
                    all.push(format!("{name}={v}"));
                }
            }
        }
        let proxy_env = all.split_off(env.len());
        let cwd = cfg
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .map(|w| config::clean_path(&w))
            .unwrap_or_else(|| "/".into());
        ExecMeta {
            args,
            env,
            proxy_env,
            cwd,
            user: cfg.user.clone().unwrap_or_default(),
            network: run
                .network
                .clone()
                .or_else(|| network.map(str::to_string))
                .unwrap_or_else(|| "default".into()),
            mounts: run.mounts.clone(),
            extras: extras.clone(),
        }
    }

    /// The step's cache key after `parent`: the command, the environment (proxies
    /// excluded), user, working directory, network, the mounts and what the mounts of a
    /// stage, an image or the context show (`identities`: target → source identity).
    pub(crate) fn key(&self, parent: &Digest, identities: &[(String, String)]) -> Digest {
        let mut mounts = serde_json::to_string(&self.mounts).unwrap_or_default();
        if !identities.is_empty() {
            let b: Vec<String> = identities.iter().map(|(t, d)| format!("{t}={d}")).collect();
            mounts = format!("{mounts}\u{0}{}", b.join(";"));
        }
        // Only a build with such flags has this part: other keys stay as they were.
        if self.extras != RunExtras::default() {
            let extras = serde_json::to_string(&self.extras).unwrap_or_default();
            mounts = format!("{mounts}\u{1}{extras}");
        }
        crate::solver::key(&[
            parent.as_str(),
            "run",
            &self.args.join("\u{0}"),
            &self.env.join("\u{0}"),
            &self.user,
            &self.cwd,
            &self.network,
            &mounts,
        ])
    }
}

/// Set `k=v` in an environment list, in place when `k` is there.
fn set_env(env: &mut Vec<String>, k: &str, v: &str) {
    let entry = format!("{k}={v}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k))
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// RUN's command with its heredocs: a lone heredoc is the script; otherwise each is
/// appended to the command line, as BuildKit's shell sees them.
fn command(r: &plan::Run) -> plan::Command {
    match &r.command {
        plan::Command::Shell(cmd) if !r.heredocs.is_empty() => {
            let only_heredoc = r.heredocs.len() == 1 && {
                let t = cmd.trim();
                t.starts_with("<<") && !t.contains(char::is_whitespace)
            };
            if only_heredoc {
                return plan::Command::Shell(r.heredocs[0].content.clone());
            }
            let mut script = cmd.clone();
            script.push('\n');
            for h in &r.heredocs {
                script.push_str(&h.content);
                script.push_str(&h.name);
                script.push('\n');
            }
            plan::Command::Shell(script)
        }
        other => other.clone(),
    }
}

/// One RUN to execute.
pub(crate) struct RunOp<'a> {
    pub store: &'a Writer<'a>,
    pub progress: &'a dyn Progress,
    /// The step's progress vertex.
    pub id: usize,
    /// The stage's layers: the command's root filesystem.
    pub layers: &'a [Digest],
    pub meta: &'a ExecMeta,
    /// The build's private networks (one taken per RUN and handed back).
    pub networks: &'a Arc<exec::NetworkPool>,
    pub sources: &'a MountSources<'a>,
}

/// Run the step and commit what it changed; when a mount shows a stage or an image
/// (`from=`), on a thread of its own in a private mount namespace, where read-only views of
/// those layers are attached (the helper and the command inherit that namespace; nothing
/// reaches the host's).
pub(crate) fn execute(op: &RunOp) -> Result<Digest, BuildError> {
    let go = || execute_here(op);
    if op.meta.mounts.iter().any(mounts::reads_layers) {
        crate::view::in_private_mount_ns(go)
    } else {
        go()
    }
}

fn execute_here(op: &RunOp) -> Result<Digest, BuildError> {
    let tmp = temp_dir(op.store, "run")?;
    let upper = tmp.path().join("upper");
    let mut spec = spec(op, &tmp, &upper)?;
    // Its `from=` views stay attached until the command is done.
    let mut mounter = mounts::Mounter::new(op.store, op.sources, tmp.path());
    for (n, m) in op.meta.mounts.iter().enumerate() {
        mounter.mount(n, m, &mut spec)?;
    }
    let lowers = match &spec.rootfs {
        exec::Rootfs::Overlay { lower, .. } => lower.clone(),
        exec::Rootfs::Dir(_) => Vec::new(),
    };
    run_command(op, spec)?;
    drop(mounter);
    commit_dir(op.store, &upper, layer::Source::OverlayUpper, lowers)
}

/// The exec spec of the command: its overlay (writes go to `upper`), process and network.
fn spec(
    op: &RunOp,
    tmp: &store::TempDir,
    upper: &std::path::Path,
) -> Result<exec::ExecSpec, BuildError> {
    let lower = lowers(op.store, op.layers, tmp.path())?;
    let work = tmp.path().join("work");
    let state = tmp.path().join("state");
    for d in [upper, &work, &state] {
        std::fs::create_dir_all(d)
            .map_err(|e| BuildError::io(format!("create {}", d.display()), e))?;
    }
    let meta = op.meta;
    let rootfs = exec::Rootfs::Overlay {
        lower,
        upper: upper.to_path_buf(),
        work,
    };
    let mut spec = exec::ExecSpec::new(rootfs, meta.args.clone());
    spec.env = meta.env.iter().chain(&meta.proxy_env).cloned().collect();
    spec.cwd = PathBuf::from(&meta.cwd);
    spec.user = (!meta.user.is_empty()).then(|| meta.user.clone());
    spec.hostname = HOSTNAME.into();
    spec.network = match meta.network.as_str() {
        "none" => exec::Network::None,
        "host" => exec::Network::Host,
        // "default": a namespace of its own with a route out, as BuildKit's RUN.
        _ => exec::Network::Private,
    };
    spec.network_pool = Some(op.networks.clone());
    spec.extra_hosts = meta.extras.extra_hosts.clone();
    spec.shm_size = meta.extras.shm_size;
    spec.bind_proc = meta.extras.bind_proc;
    spec.rlimits = meta.extras.ulimits.clone();
    spec.state_dir = Some(state);
    // runc under BuildKit leaves the mount-point directories it had to create (/proc, /dev,
    // /sys, /etc) in the layer; so do we, for the same layers and history.
    spec.keep_dir_stubs = true;
    Ok(spec)
}

/// Start the command, stream its output (stdout and stderr as one) to the progress and
/// wait for it: an error with the last lines of output unless it exits with 0.
fn run_command(op: &RunOp, mut spec: exec::ExecSpec) -> Result<(), BuildError> {
    let fail = |reason: String, tail: Vec<String>| BuildError::Executor {
        command: op.meta.args.join(" "),
        reason,
        tail,
    };
    let (reader, writer) =
        std::io::pipe().map_err(|e| BuildError::io("create an output pipe", e))?;
    let out = Arc::new(std::fs::File::from(OwnedFd::from(writer)));
    spec.stdout = exec::Stdio::File(out.clone());
    spec.stderr = exec::Stdio::File(out.clone());
    let spawned = exec::spawn(&spec);
    drop(out);
    drop(spec);
    let mut running = match spawned {
        Ok(r) => r,
        Err(e @ (exec::Error::Exec { .. } | exec::Error::User(_) | exec::Error::Setup { .. })) => {
            return Err(fail(e.to_string(), Vec::new()));
        }
        Err(e) => return Err(e.into()),
    };
    let mut tail: VecDeque<String> = VecDeque::new();
    for line in std::io::BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        op.progress.event(Event::Log {
            id: op.id,
            line: line.clone(),
        });
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = running.wait()?;
    if !status.success() {
        return Err(fail(status.to_string(), tail.into()));
    }
    Ok(())
}
