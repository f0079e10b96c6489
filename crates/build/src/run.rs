//! RUN: execute a command on an overlay of the stage's layer snapshots and commit the
//! upperdir as the step's layer.

use std::collections::VecDeque;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::{Digest, Store};

use crate::progress::{Event, Progress};
use crate::snapshot;
use crate::solver::BuildError;

/// How many output lines a failed step's error shows.
const TAIL_LINES: usize = 10;

/// What RUN --mount can take files from.
pub(crate) struct MountSources<'a> {
    pub context: Option<&'a Path>,
    pub plan: &'a plan::Plan,
    pub stage_layers: &'a (dyn Fn(usize) -> Option<Vec<Digest>> + Sync),
    pub secrets: &'a [(String, PathBuf)],
    /// `--ssh`: id → agent socket.
    pub ssh: &'a [(String, PathBuf)],
    /// Where the cache mounts used are noted (for `--cache-to`).
    pub used_mounts: &'a std::sync::Mutex<crate::cache::Used>,
}

/// A private directory under the store's tmp/, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(store: &Store, kind: &str) -> Result<TempDir, BuildError> {
        // Named after this process, so a sweep removes it only once strata is gone.
        let p = store.temp_path(kind);
        std::fs::create_dir_all(&p)
            .map_err(|e| BuildError::io(format!("create {}", p.display()), e))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.0);
    }
}

/// Overlay lowerdirs for a layer chain, top first; an empty directory for no layers.
pub(crate) fn lowers(
    store: &Store,
    diff_ids: &[Digest],
    tmp: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = snapshot::chain(store, diff_ids)?;
    if out.is_empty() {
        let empty = tmp.join("empty-lower");
        std::fs::create_dir_all(&empty)
            .map_err(|e| BuildError::io("create an empty lowerdir", e))?;
        out.push(empty);
    }
    Ok(out)
}

/// Commit `dir` (an overlay upperdir or a plain directory) as a layer into the store; the
/// directory then becomes the layer's snapshot when none exists yet. Returns the diffID
/// (the empty-layer digest when nothing changed).
pub(crate) fn commit_dir(
    store: &Store,
    dir: &Path,
    source: layer::Source,
) -> Result<Digest, BuildError> {
    let mut ingest = store.ingest()?;
    let opts = layer::CommitOptions {
        source,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let info = layer::commit(dir, &opts, &mut ingest)?;
    let (d, _) = ingest.commit(None)?;
    if d.as_str() != info.diff_id {
        return Err(BuildError::Other(format!(
            "layer digest mismatch: {} vs {}",
            d, info.diff_id
        )));
    }
    if info.entries > 0 && source == layer::Source::OverlayUpper {
        let snap = store.snapshot_path(&d);
        if !snap.exists() {
            let _ = std::fs::rename(dir, &snap);
        }
    }
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    store: &Store,
    progress: &dyn Progress,
    id: usize,
    diff_ids: &[Digest],
    run: &plan::Run,
    args: Vec<String>,
    env: Vec<String>,
    user: &str,
    cwd: &str,
    network: &str,
    networks: &std::sync::Arc<exec::NetworkPool>,
    display: &str,
    src: &MountSources,
) -> Result<Digest, BuildError> {
    let secrets = src.secrets;
    let tmp = TempDir::new(store, "run")?;
    let lower = lowers(store, diff_ids, &tmp.0)?;
    let upper = tmp.0.join("upper");
    let work = tmp.0.join("work");
    let state = tmp.0.join("state");
    for d in [&upper, &work, &state] {
        std::fs::create_dir_all(d)
            .map_err(|e| BuildError::io(format!("create {}", d.display()), e))?;
    }
    let mut spec = exec::ExecSpec::new(
        exec::Rootfs::Overlay {
            lower,
            upper: upper.clone(),
            work,
        },
        args.clone(),
    );
    spec.env = env;
    spec.cwd = PathBuf::from(cwd);
    spec.user = (!user.is_empty()).then(|| user.to_string());
    spec.hostname = "buildkitsandbox".into();
    spec.network = match network {
        "none" => exec::Network::None,
        "host" => exec::Network::Host,
        // "default": a namespace of its own with a route out, as BuildKit's RUN.
        _ => exec::Network::Private,
    };
    spec.network_pool = Some(networks.clone());
    spec.state_dir = Some(state);
    // runc under BuildKit leaves the mount-point directories it had to create (/proc, /dev,
    // /sys, /etc) in the layer; so do we, for the same layers and history.
    spec.keep_dir_stubs = true;
    let mut ssh_n = 0;
    for m in &run.mounts {
        let target = PathBuf::from(m.target.clone().unwrap_or_default());
        match m.kind.as_str() {
            "cache" => {
                let id =
                    m.id.clone()
                        .unwrap_or_else(|| m.target.clone().unwrap_or_default());
                let hex = Digest::of(id.as_bytes()).hex().to_string();
                let dir = store.root().join("cache-mounts").join(&hex);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| BuildError::io(format!("create cache mount {id}"), e))?;
                crate::cache::ensure_mount(store, &hex, &dir)?;
                src.used_mounts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .mounts
                    .insert(hex);
                spec.mounts.push(exec::Mount::Bind {
                    source: dir,
                    target,
                    readonly: m.readonly,
                });
            }
            "tmpfs" => spec.mounts.push(exec::Mount::Tmpfs { target, size: None }),
            "secret" => {
                let sid = m.id.clone().unwrap_or_default();
                match secrets.iter().find(|(k, _)| *k == sid) {
                    Some((_, src)) => spec.mounts.push(exec::Mount::Bind {
                        source: src.clone(),
                        target,
                        readonly: true,
                    }),
                    None if m.required => {
                        return Err(BuildError::Step {
                            step: display.to_string(),
                            message: format!(
                                "secret {sid} not found: pass it with --secret id={sid},src=PATH"
                            ),
                            tail: Vec::new(),
                        })
                    }
                    None => {}
                }
            }
            "bind" => {
                let source = m.source.clone().unwrap_or_else(|| "/".into());
                let n = spec.mounts.len();
                let empty = tmp.0.join(format!("bind-empty-{n}"));
                std::fs::create_dir_all(&empty)
                    .map_err(|e| BuildError::io("create an empty dir", e))?;
                let upper = if m.readonly {
                    None
                } else {
                    // Writes to a rw bind mount are discarded, as in BuildKit.
                    let (u, w) = (
                        tmp.0.join(format!("bind-upper-{n}")),
                        tmp.0.join(format!("bind-work-{n}")),
                    );
                    for d in [&u, &w] {
                        std::fs::create_dir_all(d)
                            .map_err(|e| BuildError::io("create a mount dir", e))?;
                    }
                    Some((u, w))
                };
                let mut lower: Vec<PathBuf> = match &m.from {
                    Some(r) => {
                        let layers = crate::copy::layers_of(store, src.plan, src.stage_layers, r)?;
                        let sub = crate::fsutil::clean_components(&source);
                        snapshot::chain(store, &layers)?
                            .into_iter()
                            .map(|l| crate::fsutil::join(&l, &sub))
                            .filter(|p| p.is_dir())
                            .collect()
                    }
                    None => {
                        let ctx = src.context.ok_or_else(|| BuildError::Step {
                            step: display.to_string(),
                            message: "RUN --mount=type=bind without from= needs a build context"
                                .into(),
                            tail: Vec::new(),
                        })?;
                        let (done, missing) = crate::fsutil::resolve(ctx, &source)?;
                        if !missing.is_empty() {
                            return Err(BuildError::Step {
                                step: display.to_string(),
                                message: format!(
                                    "bind mount source {source:?} not found in the build context"
                                ),
                                tail: Vec::new(),
                            });
                        }
                        let p = crate::fsutil::join(ctx, &done);
                        if !p.is_dir() {
                            // A single file: bind it read-only (a copy when rw).
                            let file = if m.readonly {
                                p
                            } else {
                                let c = tmp.0.join(format!("bind-file-{n}"));
                                std::fs::copy(&p, &c)
                                    .map_err(|e| BuildError::io("copy a bind source", e))?;
                                c
                            };
                            spec.mounts.push(exec::Mount::Bind {
                                source: file,
                                target,
                                readonly: m.readonly,
                            });
                            continue;
                        }
                        vec![p]
                    }
                };
                lower.push(empty.clone());
                if lower.len() < 2 {
                    let e2 = tmp.0.join(format!("bind-empty2-{n}"));
                    std::fs::create_dir_all(&e2)
                        .map_err(|e| BuildError::io("create an empty dir", e))?;
                    lower.push(e2);
                }
                spec.mounts.push(exec::Mount::Overlay {
                    lower,
                    upper,
                    target,
                });
            }
            "ssh" => {
                let id = m.id.clone().unwrap_or_else(|| "default".into());
                let target =
                    m.target.clone().map(PathBuf::from).unwrap_or_else(|| {
                        PathBuf::from(format!("/run/buildkit/ssh_agent.{ssh_n}"))
                    });
                ssh_n += 1;
                match src.ssh.iter().find(|(k, _)| *k == id) {
                    Some((_, sock)) => {
                        spec.mounts.push(exec::Mount::Bind {
                            source: sock.clone(),
                            target: target.clone(),
                            readonly: false,
                        });
                        if !spec.env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                            spec.env.push(format!("SSH_AUTH_SOCK={}", target.display()));
                        }
                    }
                    None if m.required || id == "default" => {
                        return Err(BuildError::Step {
                            step: display.to_string(),
                            message: format!(
                                "no SSH agent {id:?} forwarded: pass --ssh {id}[=SOCKET]"
                            ),
                            tail: Vec::new(),
                        })
                    }
                    None => {}
                }
            }
            other => {
                return Err(BuildError::Step {
                    step: display.to_string(),
                    message: format!("unknown mount type {other:?}"),
                    tail: Vec::new(),
                })
            }
        }
    }
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
        Err(e) => {
            let message = match &e {
                exec::Error::Exec { .. } | exec::Error::User(_) | exec::Error::Setup { .. } => {
                    format!("executor failed running [{}]: {e}", args.join(" "))
                }
                _ => e.to_string(),
            };
            progress.event(Event::Error {
                id,
                message: message.clone(),
            });
            return Err(BuildError::Step {
                step: display.to_string(),
                message,
                tail: Vec::new(),
            });
        }
    };
    let mut tail: VecDeque<String> = VecDeque::new();
    for line in std::io::BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        progress.event(Event::Log {
            id,
            line: line.clone(),
        });
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = running.wait()?;
    if !status.success() {
        let message = format!("executor failed running [{}]: {status}", args.join(" "));
        progress.event(Event::Error {
            id,
            message: message.clone(),
        });
        return Err(BuildError::Step {
            step: display.to_string(),
            message,
            tail: tail.into_iter().collect(),
        });
    }
    commit_dir(store, &upper, layer::Source::OverlayUpper)
}
