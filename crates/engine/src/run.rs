//! RUN: execute a command on an overlay of the stage's layer snapshots and commit the
//! upperdir as the step's layer.

use std::collections::VecDeque;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::{Digest, Store, Writer};

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
    /// The step and the Dockerfile's text, to locate a missing mount source.
    pub step: &'a plan::Step,
    pub dockerfile: &'a str,
    /// `.dockerignore` patterns: excluded files are not in a context mount.
    pub ignore: &'a [String],
}

/// The context as a mount shows it: with `.dockerignore` patterns, a walked tree whose
/// excluded paths do not exist (as BuildKit's context transfer leaves them out); `None`
/// when there are none (the directory is used as it is).
pub(crate) fn filtered_context(
    ctx: &Path,
    ignore: &[String],
) -> Result<Option<context::Context>, BuildError> {
    if ignore.iter().all(|l| l.trim().is_empty()) {
        return Ok(None);
    }
    let m = context::Matcher::from_ignore_file(ignore.join("\n").as_bytes())
        .map_err(|e| BuildError::Other(format!("invalid .dockerignore: {e}")))?;
    context::Context::load(ctx, Some(&m))
        .map(Some)
        .map_err(|e| BuildError::Other(e.to_string()))
}

/// Resolve `source` in the filtered context (symlinks inside it); the path relative to
/// the context, or `None` when it is missing or excluded.
pub(crate) fn resolve_filtered(
    tree: &context::Context,
    source: &str,
) -> Result<Option<PathBuf>, BuildError> {
    let r = context::resolve_in_root(tree, source.as_bytes(), true)
        .map_err(|e| BuildError::Other(e.to_string()))?;
    Ok(r.map(|(rel, _)| rel))
}

/// Copy what `tree` keeps under `rel` to `dest` (files hard-linked when possible).
fn materialize(tree: &context::Context, rel: &Path, dest: &Path) -> Result<(), BuildError> {
    use context::SourceTree;
    let io = |what: &str, p: &Path, e| BuildError::io(format!("{what} {}", p.display()), e);
    let Some(node) = tree.lstat(rel).map_err(|e| io("stat", rel, e))? else {
        return Ok(());
    };
    let disk = tree.disk_path(rel);
    match node.kind {
        context::FileKind::Dir => {
            std::fs::create_dir(dest).map_err(|e| io("create", dest, e))?;
            for name in tree.read_dir(rel).map_err(|e| io("read", &disk, e))? {
                materialize(tree, &rel.join(&name), &dest.join(&name))?;
            }
            let mode = std::os::unix::fs::PermissionsExt::mode(&node.metadata.permissions());
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|e| io("chmod", dest, e))?;
        }
        context::FileKind::File => {
            if std::fs::hard_link(&disk, dest).is_err() {
                std::fs::copy(&disk, dest).map_err(|e| io("copy", &disk, e))?;
            }
        }
        context::FileKind::Symlink => {
            let t = node.link_target.clone().unwrap_or_default();
            std::os::unix::fs::symlink(&t, dest).map_err(|e| io("create", dest, e))?;
        }
        context::FileKind::Other => {}
    }
    Ok(())
}

/// `error: Dockerfile:LINE:COL: mount source "/x" not found in ...`, the caret on the
/// mount's `source=` (BuildKit: `failed to compute cache key: "/x" not found: not found`).
fn missing_source(src: &MountSources, source: &str, in_what: &str) -> BuildError {
    let lines: Vec<&str> = src.dockerfile.lines().collect();
    let span = src.step.span;
    let needles = [format!("source={source}"), format!("src={source}")];
    let (line, col, width) = (span.start..=span.end.max(span.start))
        .find_map(|n| {
            let text = lines.get(n.checked_sub(1)?)?;
            let (at, len) = needles
                .iter()
                .find_map(|w| text.find(w.as_str()).map(|at| (at, w.len())))?;
            Some((
                n,
                text[..at].chars().count() + 1,
                text[at..at + len].chars().count(),
            ))
        })
        .unwrap_or((span.start, 1, 3));
    let shown = format!("/{}", crate::fsutil::clean_components(source).join("/"));
    BuildError::Dockerfile(plan::Diagnostic {
        kind: plan::ErrorKind::MountSourceNotFound,
        line,
        col,
        width,
        message: format!("mount source {shown:?} not found in {in_what}"),
        hint: Some(format!(
            "source= is a path inside {in_what} (symlinks resolved within it); check the path"
        )),
        source_line: lines
            .get(line.saturating_sub(1))
            .map(|l| l.to_string())
            .unwrap_or_default(),
    })
}

/// What `from=` names, for messages.
fn describe_from(plan: &plan::Plan, r: &str) -> String {
    let named = plan
        .stages
        .iter()
        .any(|s| s.name.as_deref() == Some(r.to_lowercase().as_str()));
    let index = !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit());
    if named || index {
        format!("stage {r}")
    } else {
        format!("image {r}")
    }
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
    store: &Writer<'_>,
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
    store: &Writer<'_>,
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

/// Runs the step; when a mount takes files from a stage or an image (`from=`), on a thread
/// of its own in a private mount namespace, where read-only views of those layers are
/// attached (the helper and the command inherit that namespace; nothing reaches the host's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    store: &Writer<'_>,
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
    let go = || {
        execute_here(
            store, progress, id, diff_ids, run, args, env, user, cwd, network, networks, display,
            src,
        )
    };
    let r = if run
        .mounts
        .iter()
        .any(|m| m.from.is_some() && (m.kind == "bind" || m.kind == "cache"))
    {
        crate::view::in_private_mount_ns(go)
    } else {
        go()
    };
    if let Err(BuildError::Dockerfile(d)) = &r {
        // A missing mount source: the step's vertex says so too, as BuildKit's does.
        progress.event(Event::Error {
            id,
            message: d.message.clone(),
        });
    }
    r
}

/// Mount a read-only view of `from=`'s layers and resolve `source` inside it (as if it were
/// `/`: `..` and symlinks, absolute or not, never leave it). Returns the path of the
/// source within the view, which stays attached while `views` lives.
fn from_source(
    store: &Writer<'_>,
    src: &MountSources,
    tmp: &Path,
    n: usize,
    from: &str,
    source: &str,
    views: &mut Vec<crate::view::View>,
) -> Result<PathBuf, BuildError> {
    let layers = crate::copy::layers_of(store, src.plan, src.stage_layers, from)?;
    let lowers = snapshot::chain(store, &layers)?;
    let mp = tmp.join(format!("from-view-{n}"));
    let empty = tmp.join(format!("from-empty-{n}"));
    for d in [&mp, &empty] {
        std::fs::create_dir_all(d).map_err(|e| BuildError::io("create a mount dir", e))?;
    }
    let view = crate::view::View::overlay(&lowers, &empty, &mp)?;
    let (done, missing) = crate::fsutil::resolve(view.path(), source)?;
    if !missing.is_empty() {
        return Err(missing_source(src, source, &describe_from(src.plan, from)));
    }
    let p = crate::fsutil::join(view.path(), &done);
    views.push(view);
    Ok(p)
}

#[allow(clippy::too_many_arguments)]
fn execute_here(
    store: &Writer<'_>,
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
    // Views of `from=` sources; detached once the command is done.
    let mut views: Vec<crate::view::View> = Vec::new();
    for (n, m) in run.mounts.iter().enumerate() {
        let target = PathBuf::from(m.target.clone().unwrap_or_default());
        match m.kind.as_str() {
            "cache" => {
                let id =
                    m.id.clone()
                        .unwrap_or_else(|| m.target.clone().unwrap_or_default());
                // With from=, the cache starts as a copy of that source (stage, image or
                // context path, resolved like a bind's) and is a cache of its own per source,
                // as BuildKit keys such a cache by id and base.
                let seed = match &m.from {
                    Some(r) => {
                        let source = m.source.clone().unwrap_or_else(|| "/".into());
                        let p = from_source(store, src, &tmp.0, n, r, &source, &mut views)?;
                        if !p.is_dir() {
                            return Err(BuildError::Step {
                                step: display.to_string(),
                                message: format!(
                                    "cache mount source {source:?} in {} is not a directory",
                                    describe_from(src.plan, r)
                                ),
                                tail: Vec::new(),
                            });
                        }
                        let layers = crate::copy::layers_of(store, src.plan, src.stage_layers, r)?;
                        let base: Vec<&str> = layers.iter().map(|d| d.as_str()).collect();
                        let rel = p.strip_prefix(&tmp.0).unwrap_or(&p).to_path_buf();
                        let rel = rel.components().skip(1).collect::<PathBuf>();
                        Some((format!("{}\u{0}{}", base.join(","), rel.display()), p))
                    }
                    None => None,
                };
                let hex = match &seed {
                    Some((base, _)) => Digest::of(format!("{id}\u{0}{base}").as_bytes()),
                    None => Digest::of(id.as_bytes()),
                }
                .hex()
                .to_string();
                let dir = store.root().join("cache-mounts").join(&hex);
                let fresh = !dir.exists();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| BuildError::io(format!("create cache mount {id}"), e))?;
                crate::cache::ensure_mount(store, &hex, &dir)?;
                let empty = std::fs::read_dir(&dir)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if let (true, true, Some((_, p))) = (fresh, empty, &seed) {
                    crate::fsutil::copy_tree(p, &dir)?;
                }
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
                let p = match &m.from {
                    Some(r) => from_source(store, src, &tmp.0, n, r, &source, &mut views)?,
                    None => {
                        let ctx = src.context.ok_or_else(|| BuildError::Step {
                            step: display.to_string(),
                            message: "RUN --mount=type=bind without from= needs a build context"
                                .into(),
                            tail: Vec::new(),
                        })?;
                        // exec wants absolute mount sources (the context may be `.`).
                        let ctx = &std::path::absolute(ctx)
                            .map_err(|e| BuildError::io("locate the build context", e))?;
                        match filtered_context(ctx, src.ignore)? {
                            Some(tree) => {
                                let Some(rel) = resolve_filtered(&tree, &source)? else {
                                    return Err(missing_source(src, &source, "the build context"));
                                };
                                let dest = tmp.0.join(format!("context-{n}"));
                                materialize(&tree, &rel, &dest)?;
                                dest
                            }
                            None => {
                                let (done, missing) = crate::fsutil::resolve(ctx, &source)?;
                                if !missing.is_empty() {
                                    return Err(missing_source(src, &source, "the build context"));
                                }
                                crate::fsutil::join(ctx, &done)
                            }
                        }
                    }
                };
                if !p.is_dir() {
                    // A single file: bind it read-only (a copy when rw, so writes are
                    // discarded).
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
                if m.readonly {
                    spec.mounts.push(exec::Mount::Bind {
                        source: p,
                        target,
                        readonly: true,
                    });
                    continue;
                }
                // Writes to a rw bind mount are discarded, as in BuildKit: an overlay with a
                // throw-away upperdir.
                let (u, w, e) = (
                    tmp.0.join(format!("bind-upper-{n}")),
                    tmp.0.join(format!("bind-work-{n}")),
                    tmp.0.join(format!("bind-empty-{n}")),
                );
                for d in [&u, &w, &e] {
                    std::fs::create_dir_all(d)
                        .map_err(|e| BuildError::io("create a mount dir", e))?;
                }
                spec.mounts.push(exec::Mount::Overlay {
                    lower: vec![p, e],
                    upper: Some((u, w)),
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
