//! RUN: execute a command on an overlay of the stage's layer snapshots and commit the
//! upperdir as the step's layer.

use std::collections::VecDeque;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use store::{Digest, Store};

use crate::progress::{Event, Progress};
use crate::snapshot;
use crate::solver::BuildError;

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many output lines a failed step's error shows.
const TAIL_LINES: usize = 10;

/// A private directory under the store's tmp/, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(store: &Store, kind: &str) -> Result<TempDir, BuildError> {
        let p = store.root().join("tmp").join(format!(
            "{kind}-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
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
    display: &str,
    secrets: &[(String, PathBuf)],
) -> Result<Digest, BuildError> {
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
        _ => exec::Network::Host,
    };
    spec.state_dir = Some(state);
    // runc under BuildKit leaves the mount-point directories it had to create (/proc, /dev,
    // /sys, /etc) in the layer; so do we, for the same layers and history.
    spec.keep_dir_stubs = true;
    for m in &run.mounts {
        let target = PathBuf::from(m.target.clone().unwrap_or_default());
        match m.kind.as_str() {
            "cache" => {
                let id = m.id.clone().unwrap_or_else(|| m.target.clone().unwrap_or_default());
                let dir = store.root().join("cache-mounts").join(Digest::of(id.as_bytes()).hex());
                std::fs::create_dir_all(&dir).map_err(|e| BuildError::io(format!("create cache mount {id}"), e))?;
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
                            message: format!("secret {sid} not found: pass it with --secret id={sid},src=PATH"),
                            tail: Vec::new(),
                        })
                    }
                    None => {}
                }
            }
            other => {
                return Err(BuildError::Step {
                    step: display.to_string(),
                    message: format!(
                        "RUN --mount=type={other}{} needs the build engine's stage and context mounts, which this version of strata lacks",
                        m.from.as_ref().map(|f| format!(",from={f}")).unwrap_or_default()
                    ),
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
