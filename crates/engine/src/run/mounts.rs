//! RUN --mount: what each mount of a RUN shows (bind, cache, tmpfs, secret, ssh), made in
//! the RUN's scratch directory, and what their sources are for the step's cache key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use plan::{Mount, MountKind};
use store::{Digest, Writer};

use crate::error::BuildError;
use crate::snapshot;
use crate::view::View;

/// What RUN --mount can take files from.
pub(crate) struct MountSources<'a> {
    pub context: Option<&'a Path>,
    pub plan: &'a plan::Plan,
    /// The layers of a stage of this build, once it has finished.
    pub stage_layers: &'a (dyn Fn(usize) -> Result<Vec<Digest>, BuildError> + Sync),
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

/// Whether a mount shows a stage or an image (`from=`): the RUN then runs in a private
/// mount namespace, where read-only views of their layers are attached.
pub(crate) fn reads_layers(m: &Mount) -> bool {
    m.from.is_some() && matches!(m.kind, MountKind::Bind | MountKind::Cache)
}

/// What the mounts of a RUN show, for its cache key (a rebuilt stage reruns the RUN that
/// mounts it): per bind or cache mount of a stage, an image or a context path, its target
/// and its source's identity (the layers, or the path's content digest; a missing context
/// path adds nothing here and fails in the step).
pub(crate) fn identities(
    store: &Writer<'_>,
    src: &MountSources,
    mounts: &[Mount],
) -> Result<Vec<(String, String)>, BuildError> {
    let mut out = Vec::new();
    for m in mounts
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Bind | MountKind::Cache))
    {
        let target = m.target.clone().unwrap_or_default();
        if let Some(f) = &m.from {
            let layers = crate::copy::layers_of(store, src.plan, src.stage_layers, f)?;
            out.push((target, join_digests(&layers)));
        } else if let (Some(c), MountKind::Bind) = (src.context, m.kind) {
            let source = m.source.as_deref().unwrap_or("/");
            if let Some(d) = context_digest(c, src.ignore, source)? {
                out.push((target, d));
            }
        }
    }
    Ok(out)
}

fn join_digests(layers: &[Digest]) -> String {
    let l: Vec<&str> = layers.iter().map(|d| d.as_str()).collect();
    l.join(",")
}

/// The content digest of `source` in the context as a mount shows it; `None` when it is
/// missing or excluded.
fn context_digest(
    context: &Path,
    ignore: &[String],
    source: &str,
) -> Result<Option<String>, BuildError> {
    let found = match filtered_context(context, ignore)? {
        Some(tree) => resolve_filtered(&tree, source)?.map(|rel| {
            use context::SourceTree;
            let keep = |p: &Path| {
                let rel = p.strip_prefix(tree.disk_root()).unwrap_or(p);
                matches!(tree.lstat(rel), Ok(Some(_)))
            };
            crate::fsutil::content_digest_filtered(&tree.disk_path(&rel), &keep)
        }),
        None => {
            let (done, missing) = crate::fsutil::resolve(context, source)?;
            missing
                .is_empty()
                .then(|| crate::fsutil::content_digest(&crate::fsutil::join(context, &done)))
        }
    };
    found.transpose()
}

/// The context as a mount shows it: with `.dockerignore` patterns, a walked tree whose
/// excluded paths do not exist (as BuildKit's context transfer leaves them out); `None`
/// when there are none (the directory is used as it is).
fn filtered_context(ctx: &Path, ignore: &[String]) -> Result<Option<context::Context>, BuildError> {
    match crate::copy::ignore_matcher(ignore)? {
        None => Ok(None),
        Some(m) => Ok(Some(context::Context::load(ctx, Some(&m))?)),
    }
}

/// Resolve `source` in the filtered context (symlinks inside it); the path relative to
/// the context, or `None` when it is missing or excluded.
fn resolve_filtered(tree: &context::Context, source: &str) -> Result<Option<PathBuf>, BuildError> {
    let r = context::resolve_in_root(tree, source.as_bytes(), true)?;
    Ok(r.map(|(rel, _)| rel))
}

/// Makes the mounts of one RUN, in order, into its exec spec.
pub(crate) struct Mounter<'a> {
    store: &'a Writer<'a>,
    src: &'a MountSources<'a>,
    /// The RUN's scratch directory.
    tmp: &'a Path,
    /// Views of `from=` sources: they stay attached while the mounter lives.
    views: Vec<View>,
    /// SSH mounts so far (their default targets are numbered).
    ssh: usize,
}

impl<'a> Mounter<'a> {
    pub(crate) fn new(store: &'a Writer<'a>, src: &'a MountSources<'a>, tmp: &'a Path) -> Self {
        Mounter {
            store,
            src,
            tmp,
            views: Vec::new(),
            ssh: 0,
        }
    }

    /// Add mount `n` of the RUN to `spec`.
    pub(crate) fn mount(
        &mut self,
        n: usize,
        m: &Mount,
        spec: &mut exec::ExecSpec,
    ) -> Result<(), BuildError> {
        let target = PathBuf::from(m.target.clone().unwrap_or_default());
        let mount = match m.kind {
            MountKind::Bind => Some(self.bind(n, m, target)?),
            MountKind::Cache => Some(self.cache(n, m, target)?),
            MountKind::Tmpfs => Some(exec::Mount::Tmpfs {
                target,
                size: None,
                mode: None,
            }),
            MountKind::Secret => self.secret(m, target)?,
            MountKind::Ssh => self.ssh(m, &mut spec.env)?,
        };
        spec.mounts.extend(mount);
        Ok(())
    }

    /// A bind mount of a context path or of a path in a stage or an image: read-only, or
    /// with writes discarded (as in BuildKit).
    fn bind(&mut self, n: usize, m: &Mount, target: PathBuf) -> Result<exec::Mount, BuildError> {
        let source = m.source.clone().unwrap_or_else(|| "/".into());
        let p = match &m.from {
            Some(r) => self.source_from(n, r, &source)?,
            None => self.context_source(n, &source)?,
        };
        if !p.is_dir() {
            // A single file: bind it read-only (a copy when rw, so writes are discarded).
            let file = if m.readonly {
                p
            } else {
                let c = self.tmp.join(format!("bind-file-{n}"));
                std::fs::copy(&p, &c).map_err(|e| BuildError::io("copy a bind source", e))?;
                c
            };
            return Ok(exec::Mount::Bind {
                source: file,
                target,
                readonly: m.readonly,
            });
        }
        if m.readonly {
            return Ok(exec::Mount::Bind {
                source: p,
                target,
                readonly: true,
            });
        }
        // A directory written to: an overlay with a throw-away upperdir.
        let dirs =
            ["bind-upper", "bind-work", "bind-empty"].map(|d| self.tmp.join(format!("{d}-{n}")));
        for d in &dirs {
            std::fs::create_dir_all(d).map_err(|e| BuildError::io("create a mount dir", e))?;
        }
        let [u, w, e] = dirs;
        Ok(exec::Mount::Overlay {
            lower: vec![p, e],
            upper: Some((u, w)),
            target,
        })
    }

    /// `source` in the context (as `.dockerignore` leaves it: copied out when patterns
    /// exclude anything).
    fn context_source(&mut self, n: usize, source: &str) -> Result<PathBuf, BuildError> {
        let ctx = self.src.context.ok_or(BuildError::NoContext)?;
        // exec wants absolute mount sources (the context may be `.`).
        let ctx =
            &std::path::absolute(ctx).map_err(|e| BuildError::io("locate the build context", e))?;
        let Some(tree) = filtered_context(ctx, self.src.ignore)? else {
            let (done, missing) = crate::fsutil::resolve(ctx, source)?;
            if !missing.is_empty() {
                return Err(missing_source(self.src, source, "the build context"));
            }
            return Ok(crate::fsutil::join(ctx, &done));
        };
        let Some(rel) = resolve_filtered(&tree, source)? else {
            return Err(missing_source(self.src, source, "the build context"));
        };
        let dest = self.tmp.join(format!("context-{n}"));
        materialize(&tree, &rel, &dest)?;
        Ok(dest)
    }

    /// Mount a read-only view of `from=`'s layers and resolve `source` inside it (as if it
    /// were `/`: `..` and symlinks, absolute or not, never leave it). Returns the path of
    /// the source within the view.
    fn source_from(&mut self, n: usize, from: &str, source: &str) -> Result<PathBuf, BuildError> {
        let layers =
            crate::copy::layers_of(self.store, self.src.plan, self.src.stage_layers, from)?;
        let lowers = snapshot::chain(self.store, &layers)?;
        let mp = self.tmp.join(format!("from-view-{n}"));
        let empty = self.tmp.join(format!("from-empty-{n}"));
        for d in [&mp, &empty] {
            std::fs::create_dir_all(d).map_err(|e| BuildError::io("create a mount dir", e))?;
        }
        let view = View::overlay(&lowers, &empty, &mp)?;
        let (done, missing) = crate::fsutil::resolve(view.path(), source)?;
        if !missing.is_empty() {
            return Err(missing_source(
                self.src,
                source,
                &describe_from(self.src.plan, from),
            ));
        }
        let p = crate::fsutil::join(view.path(), &done);
        self.views.push(view);
        Ok(p)
    }

    /// A cache mount: a directory of the store kept across builds under its id (and, with
    /// `from=`, its source: such a cache starts as a copy of that source and is a cache of
    /// its own per source, as BuildKit keys it by id and base); filled from an imported
    /// cache when it is new.
    fn cache(&mut self, n: usize, m: &Mount, target: PathBuf) -> Result<exec::Mount, BuildError> {
        let id =
            m.id.clone()
                .unwrap_or_else(|| m.target.clone().unwrap_or_default());
        let seed = match &m.from {
            Some(r) => Some(self.cache_seed(n, m, r)?),
            None => None,
        };
        let hex = match &seed {
            Some((base, _)) => Digest::of(format!("{id}\u{0}{base}").as_bytes()),
            None => Digest::of(id.as_bytes()),
        }
        .hex()
        .to_string();
        let dir = self.store.root().join("cache-mounts").join(&hex);
        let fresh = !dir.exists();
        std::fs::create_dir_all(&dir)
            .map_err(|e| BuildError::io(format!("create cache mount {id}"), e))?;
        crate::cache::ensure_mount(self.store, &hex, &dir)?;
        let empty = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if let (true, true, Some((_, p))) = (fresh, empty, &seed) {
            crate::fsutil::copy_tree(p, &dir)?;
        }
        self.src
            .used_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mounts
            .insert(hex);
        Ok(exec::Mount::Bind {
            source: dir,
            target,
            readonly: m.readonly,
        })
    }

    /// What a cache mount with `from=r` starts as: the identity of its source (the layers
    /// and the path in them) and the directory to copy.
    fn cache_seed(
        &mut self,
        n: usize,
        m: &Mount,
        r: &str,
    ) -> Result<(String, PathBuf), BuildError> {
        let source = m.source.clone().unwrap_or_else(|| "/".into());
        let p = self.source_from(n, r, &source)?;
        if !p.is_dir() {
            return Err(BuildError::Unsupported(format!(
                "cache mount source {source:?} in {} is not a directory",
                describe_from(self.src.plan, r)
            )));
        }
        let layers = crate::copy::layers_of(self.store, self.src.plan, self.src.stage_layers, r)?;
        // The path within the view (`from-view-N/...` under the scratch directory).
        let rel = p.strip_prefix(self.tmp).unwrap_or(&p).to_path_buf();
        let rel = rel.components().skip(1).collect::<PathBuf>();
        Ok((
            format!("{}\u{0}{}", join_digests(&layers), rel.display()),
            p,
        ))
    }

    /// A `--secret` file, read-only; nothing for an optional secret the build lacks.
    fn secret(&self, m: &Mount, target: PathBuf) -> Result<Option<exec::Mount>, BuildError> {
        let id = m.id.clone().unwrap_or_default();
        match self.src.secrets.iter().find(|(k, _)| *k == id) {
            Some((_, file)) => Ok(Some(exec::Mount::Bind {
                source: file.clone(),
                target,
                readonly: true,
            })),
            None if m.required => Err(BuildError::MissingSecret { id }),
            None => Ok(None),
        }
    }

    /// A `--ssh` agent socket, and `SSH_AUTH_SOCK` pointing at it unless set; nothing for
    /// an optional agent the build lacks (the default one is never optional).
    fn ssh(&mut self, m: &Mount, env: &mut Vec<String>) -> Result<Option<exec::Mount>, BuildError> {
        let id = m.id.clone().unwrap_or_else(|| "default".into());
        let target = m
            .target
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/buildkit/ssh_agent.{}", self.ssh)));
        self.ssh += 1;
        match self.src.ssh.iter().find(|(k, _)| *k == id) {
            Some((_, sock)) => {
                if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                    env.push(format!("SSH_AUTH_SOCK={}", target.display()));
                }
                Ok(Some(exec::Mount::Bind {
                    source: sock.clone(),
                    target,
                    readonly: false,
                }))
            }
            None if m.required || id == "default" => Err(BuildError::MissingSsh { id }),
            None => Ok(None),
        }
    }
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
            let mode = node.metadata.mode();
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
