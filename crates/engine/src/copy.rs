//! COPY, ADD and WORKDIR: steps that write files into a new layer without running anything.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use plan::{Instruction, Plan, Step};
use store::image::ImageConfig;
use store::{Digest, Store, Writer};

use crate::config;
use crate::fsutil;
use crate::run::TempDir;
use crate::snapshot;
use crate::solver::{empty_layer, key, BuildError};
use crate::view::View;

pub(crate) struct CopyInput<'a> {
    pub store: &'a Writer<'a>,
    pub context: Option<&'a Path>,
    pub ignore: &'a [String],
    pub stage_layers: &'a (dyn Fn(usize) -> Option<Vec<Digest>> + Sync),
    pub plan: &'a Plan,
    pub step: &'a Step,
    pub diff_ids: &'a [Digest],
    pub config: &'a ImageConfig,
    pub parent_key: &'a Digest,
    pub no_cache: bool,
    /// This build's time (recorded for steps that run now).
    pub now: &'a str,
}

pub(crate) struct CopyOutput {
    pub key: Digest,
    pub diff_id: Digest,
    pub cached: bool,
    /// When the step's layer was made (from the cache record on a hit); `None` when it made
    /// no layer.
    pub created: Option<String>,
    /// Each selected file's signature, for explaining cache misses.
    pub files: std::collections::BTreeMap<String, String>,
    /// A memo to keep with the cache: the step's inputs' identity → its result (see
    /// [`copy_memo`]).
    pub memo: Option<(Digest, String)>,
}

pub(crate) fn execute(input: &CopyInput) -> Result<CopyOutput, BuildError> {
    crate::view::in_private_mount_ns(|| execute_here(input))
}

fn execute_here(input: &CopyInput) -> Result<CopyOutput, BuildError> {
    match &input.step.instruction {
        Instruction::Workdir { path } => workdir(input, path),
        Instruction::Copy(c) => copy(input, c, false),
        Instruction::Add(c) => copy(input, c, true),
        other => Err(BuildError::Other(format!(
            "{} is not a file step",
            other.keyword()
        ))),
    }
}

fn ctx_err(e: context::Error) -> BuildError {
    BuildError::Other(e.to_string())
}

/// Where COPY --from=`r` reads.
fn source_layers(input: &CopyInput, r: &str) -> Result<Vec<Digest>, BuildError> {
    layers_of(input.store, input.plan, input.stage_layers, r)
}

/// The layers `--from=r` / `--mount from=r` names: a stage of this Dockerfile (by name or
/// index), else an image in the store.
pub(crate) fn layers_of(
    store: &Store,
    plan: &Plan,
    stage_layers: &(dyn Fn(usize) -> Option<Vec<Digest>> + Sync),
    r: &str,
) -> Result<Vec<Digest>, BuildError> {
    let stages = &plan.stages;
    let idx = if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
        r.parse::<usize>().ok().filter(|i| *i < stages.len())
    } else {
        let lower = r.to_lowercase();
        stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
    };
    match idx {
        Some(i) => stage_layers(i)
            .ok_or_else(|| BuildError::Other(format!("stage {r} has not been built"))),
        None => {
            let img = store.resolve(r).map_err(|e| match e {
                store::Error::NoSuchImage(_) => BuildError::Other(format!(
                    "failed to resolve image {r}: not in the local store (import or load it first)"
                )),
                other => BuildError::Store(other),
            })?;
            Ok(img.config.rootfs.diff_ids)
        }
    }
}

fn is_heredoc_word(c: &plan::Copy, w: &str) -> Option<usize> {
    let name = w
        .strip_prefix("<<")?
        .trim_start_matches('-')
        .trim_matches(['"', '\'']);
    c.heredocs.iter().position(|h| h.name == name)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether a file starts like a tar archive (after gzip/zstd decompression): a header
/// block whose checksum is right.
fn looks_like_tar(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut d) = layer::Decompressor::new(std::io::BufReader::new(f)) else {
        return false;
    };
    let mut block = [0u8; 512];
    std::io::Read::read_exact(&mut d, &mut block).is_ok() && layer::is_tar_header(&block)
}

/// Destination directories inside the new layer: existing ones (in the stage's view) keep
/// their metadata, new ones are 0755 and owned by --chown's owner or root.
struct DestDirs<'a> {
    view: &'a Path,
    upper: &'a Path,
    owner: Option<(u32, u32)>,
    now: i64,
    made: std::collections::HashMap<PathBuf, PathBuf>,
}

impl DestDirs<'_> {
    /// Where destination directory `d` is inside the layer, creating it and its parents.
    fn ensure(&mut self, d: &Path) -> Result<PathBuf, BuildError> {
        if let Some(p) = self.made.get(d) {
            return Ok(p.clone());
        }
        let (exists, missing) = fsutil::resolve(self.view, &d.to_string_lossy())?;
        let mut p = fsutil::replicate_dirs(self.view, self.upper, &exists)?;
        for m in &missing {
            p.push(m);
            if !p.exists() {
                std::fs::create_dir(&p)
                    .map_err(|e| BuildError::io(format!("create {}", p.display()), e))?;
                let (u, g) = self.owner.unwrap_or((0, 0));
                fsutil::set_meta(&p, 0o755, u, g, self.now)?;
            }
        }
        self.made.insert(d.to_path_buf(), p.clone());
        Ok(p)
    }
}

fn copy(input: &CopyInput, c: &plan::Copy, is_add: bool) -> Result<CopyOutput, BuildError> {
    let work = TempDir::new(input.store, "copy")?;
    // The source tree.
    let _src_view;
    // For COPY --from: the source view's root and its layers' snapshots (top first), to
    // hard-link unchanged files from the snapshot instead of copying them.
    let mut src_lowers: Vec<PathBuf> = Vec::new();
    let mut src_root: Option<PathBuf> = None;
    let mut heredoc_dir = None;
    let kind = if is_add { "add" } else { "copy" };
    let workdir = input.config.config.working_dir.clone().unwrap_or_default();
    let memo_key = |source: &str| {
        key(&[
            input.parent_key.as_str(),
            "copy-memo",
            kind,
            &input.step.display,
            source,
            c.chown.as_deref().unwrap_or(""),
            c.chmod.as_deref().unwrap_or(""),
            &workdir,
        ])
    };
    let mut memo = None;
    let tree: Box<dyn context::SourceTree> = if let Some(r) = &c.from {
        let layers = source_layers(input, r)?;
        // The source is the stage's layers, named by their digests.
        let mk = memo_key(
            &layers
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        if let Some(hit) = copy_memo(input, &mk) {
            return Ok(hit);
        }
        memo = Some(mk);
        let sv = stage_view(input.store, &layers)?;
        let root = context::StageRoot::new(sv.view.path()).map_err(ctx_err)?;
        src_lowers = snapshot::chain(input.store, &layers)?;
        src_root = Some(sv.view.path().to_path_buf());
        _src_view = Some(sv);
        Box::new(root)
    } else if c.sources.iter().all(|w| is_heredoc_word(c, w).is_some()) && !c.heredocs.is_empty() {
        let dir = work.0.join("heredocs");
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io("create heredoc dir", e))?;
        for h in &c.heredocs {
            let p = dir.join(&h.name);
            std::fs::write(&p, &h.content).map_err(|e| BuildError::io("write heredoc", e))?;
            fsutil::set_meta(&p, 0o644, 0, 0, now_secs())?;
        }
        heredoc_dir = Some(dir.clone());
        _src_view = None;
        Box::new(context::StageRoot::new(&dir).map_err(ctx_err)?)
    } else {
        let only_urls = is_add
            && c.sources
                .iter()
                .all(|s| s.starts_with("http://") || s.starts_with("https://"));
        let dir = match input.context {
            Some(d) => d,
            // ADD of URLs needs no context: any empty tree will do until the downloads.
            None if only_urls => work.0.as_path(),
            None => {
                return Err(BuildError::Other(format!(
                    "{}: no build context (the Dockerfile came from stdin)",
                    input.step.display
                )))
            }
        };
        let matcher = if input.ignore.iter().all(|l| l.trim().is_empty()) {
            None
        } else {
            Some(
                context::Matcher::from_ignore_file(input.ignore.join("\n").as_bytes())
                    .map_err(|e| BuildError::Other(format!("invalid .dockerignore: {e}")))?,
            )
        };
        _src_view = None;
        Box::new(context::Context::load(dir, matcher.as_ref()).map_err(ctx_err)?)
    };
    let mut sources: Vec<String> = c
        .sources
        .iter()
        .map(|w| match (heredoc_dir.is_some(), is_heredoc_word(c, w)) {
            (true, Some(i)) => format!("/{}", c.heredocs[i].name),
            _ => w.clone(),
        })
        .collect();
    let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
    let mut tree = tree;
    let mut _downloads = None;
    if is_add && sources.iter().any(|s| is_url(s)) {
        if !sources.iter().all(|s| is_url(s)) {
            return Err(BuildError::Other(
                "ADD mixes URLs and local files in one instruction: give each URL its own ADD"
                    .into(),
            ));
        }
        let dir = work.0.join("downloads");
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io("create a download dir", e))?;
        let mut names = Vec::new();
        for u in &sources {
            names.push(format!(
                "/{}",
                crate::fetch::download(u, &dir, c.checksum.as_deref())?
            ));
        }
        tree = Box::new(context::StageRoot::new(&dir).map_err(ctx_err)?);
        sources = names;
        _downloads = Some(dir);
    }
    let opts = context::SelectOptions {
        excludes: c.excludes.clone(),
        parents: c.parents,
        ..context::SelectOptions::default()
    };
    let selection = context::select(tree.as_ref(), &sources, &opts).map_err(ctx_err)?;
    if c.from.is_none() && heredoc_dir.is_none() && _downloads.is_none() {
        // The source is the selected context files, named by their content.
        let mk = memo_key(&selection.digest().map_err(ctx_err)?);
        if let Some(hit) = copy_memo(input, &mk) {
            return Ok(hit);
        }
        memo = Some(mk);
    }
    let dest = context::resolve_destination(&c.dest, &workdir);
    // The destination stage, for symlinks along the destination and for --chown names.
    let dest_view = stage_view(input.store, input.diff_ids)?;
    let view = &dest_view.view;
    let existing = |p: &Path| -> context::DestKind {
        match fsutil::resolve(view.path(), &p.to_string_lossy()) {
            Ok((done, missing)) if missing.is_empty() => {
                if fsutil::join(view.path(), &done).is_dir() {
                    context::DestKind::Dir
                } else {
                    context::DestKind::NotDir
                }
            }
            _ => context::DestKind::Missing,
        }
    };
    let placed = context::place(&dest, &selection, existing).map_err(ctx_err)?;
    let content = context::digest_placed(&placed).map_err(ctx_err)?;
    let files: std::collections::BTreeMap<String, String> = placed
        .iter()
        .map(|p| {
            let m = &p.entry.metadata;
            (
                p.dest.to_string_lossy().to_string(),
                format!(
                    "{}:{:o}:{}:{}",
                    m.len(),
                    m.mode(),
                    m.mtime(),
                    m.mtime_nsec()
                ),
            )
        })
        .collect();
    let from_context = c.from.is_none();
    let k = key(&[
        input.parent_key.as_str(),
        kind,
        &input.step.display,
        &content,
        c.chown.as_deref().unwrap_or(""),
        c.chmod.as_deref().unwrap_or(""),
        &workdir,
    ]);
    let memo = match memo {
        Some(mk) => {
            let value = format!(
                "{k}\n{}",
                serde_json::to_string(&files).expect("file map serializes")
            );
            input.store.memo_put(&mk, &value)?;
            Some((mk, value))
        }
        None => None,
    };
    if !input.no_cache {
        if let Some((d, created)) = crate::cache::get(input.store, &k) {
            return Ok(CopyOutput {
                key: k,
                diff_id: d,
                cached: true,
                created,
                files,
                memo,
            });
        }
    }
    let owner = match &c.chown {
        Some(spec) => Some(fsutil::resolve_user(view.path(), spec)?),
        None => None,
    };
    let chmod = match &c.chmod {
        Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
            BuildError::Other(format!(
                "invalid --chmod={m}: only octal modes are supported"
            ))
        })?),
        None => None,
    };
    let upper = work.0.join("layer");
    std::fs::create_dir_all(&upper).map_err(|e| BuildError::io("create a layer dir", e))?;
    let mut dirs = DestDirs {
        view: view.path(),
        upper: &upper,
        owner,
        now: now_secs(),
        made: std::collections::HashMap::new(),
    };
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for pl in &placed {
        let e = pl.entry;
        let parent = pl.dest.parent().unwrap_or(Path::new("/"));
        let name = match pl.dest.file_name() {
            Some(n) => n.to_owned(),
            None => {
                // The destination is `/` itself: only its contents are copied.
                continue;
            }
        };
        let dir = dirs.ensure(parent)?;
        let target = dir.join(&name);
        let meta = &e.metadata;
        let (uid, gid) = owner.unwrap_or(
            if from_context || heredoc_dir.is_some() || _downloads.is_some() {
                (0, 0)
            } else {
                (meta.uid(), meta.gid())
            },
        );
        let mode = chmod.unwrap_or(meta.mode() & 0o7777);
        match e.kind {
            context::FileKind::Dir if e.rel.as_os_str().is_empty() => {
                // The source directory itself: its contents go into the destination, which
                // keeps its metadata when it exists and is otherwise made like any parent.
                dirs.ensure(&pl.dest)?;
            }
            context::FileKind::Dir => {
                if !target.is_dir() {
                    let _ = std::fs::remove_file(&target);
                    std::fs::create_dir_all(&target)
                        .map_err(|er| BuildError::io(format!("create {}", target.display()), er))?;
                }
                fsutil::set_meta(&target, mode, uid, gid, meta.mtime())?;
                dirs.made.insert(pl.dest.clone(), target.clone());
                dir_times.push((target, meta.mtime()));
            }
            context::FileKind::File => {
                if is_add
                    && e.rel.as_os_str().is_empty()
                    && c.from.is_none()
                    && looks_like_tar(&e.source)
                {
                    // ADD of a local archive: extract it into the destination directory.
                    let into = dirs.ensure(&dest.path)?;
                    let f = std::fs::File::open(&e.source)
                        .map_err(|er| BuildError::io(format!("open {}", e.source.display()), er))?;
                    let dec = layer::Decompressor::new(std::io::BufReader::new(f))?;
                    layer::apply(dec, &into, &layer::ApplyOptions::default())?;
                    continue;
                }
                let _ = std::fs::remove_dir_all(&target);
                let _ = std::fs::remove_file(&target);
                // A file that keeps its owner and mode can share the snapshot's inode: the
                // layer's tar reads the same bytes, and nothing writes to either copy.
                let unchanged =
                    owner.is_none() && chmod.is_none() && (uid, gid) == (meta.uid(), meta.gid());
                let linked = unchanged
                    && src_root
                        .as_ref()
                        .and_then(|root| e.source.strip_prefix(root).ok())
                        .and_then(|rel| {
                            src_lowers
                                .iter()
                                .map(|l| l.join(rel))
                                .find(|p| std::fs::symlink_metadata(p).is_ok())
                        })
                        .filter(|p| {
                            std::fs::symlink_metadata(p).is_ok_and(|m| {
                                m.is_file()
                                    && m.len() == meta.len()
                                    && m.ino() != 0
                                    && m.mtime() == meta.mtime()
                            })
                        })
                        .is_some_and(|p| std::fs::hard_link(&p, &target).is_ok());
                if !linked {
                    std::fs::copy(&e.source, &target)
                        .map_err(|er| BuildError::io(format!("copy {}", e.source.display()), er))?;
                    fsutil::set_meta(&target, mode, uid, gid, meta.mtime())?;
                }
            }
            context::FileKind::Symlink => {
                let t = e.link_target.clone().unwrap_or_default();
                let _ = std::fs::remove_file(&target);
                std::os::unix::fs::symlink(&t, &target)
                    .map_err(|er| BuildError::io(format!("symlink {}", target.display()), er))?;
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
                    .map_err(|er| BuildError::io("chown symlink", er))?;
            }
            context::FileKind::Other => {}
        }
    }
    // Directory mtimes last, once their contents are written.
    for (d, t) in dir_times.iter().rev() {
        let tm = std::time::UNIX_EPOCH + std::time::Duration::from_secs((*t).max(0) as u64);
        if let Ok(f) = std::fs::File::open(d) {
            let _ = f.set_modified(tm);
        }
    }
    let d = crate::run::commit_dir(input.store, &upper, layer::Source::Directory)?;
    input.store.cache_put(&k, &d, input.now)?;
    Ok(CopyOutput {
        key: k,
        diff_id: d,
        cached: false,
        created: Some(input.now.to_string()),
        files,
        memo,
    })
}

/// A COPY whose inputs (parent, instruction, source identity, owner, mode, workdir) were
/// seen before: the memo names its content key, and when that key has a cache record the
/// step is done without looking at its source or destination at all.
fn copy_memo(input: &CopyInput, mk: &Digest) -> Option<CopyOutput> {
    if input.no_cache {
        return None;
    }
    let value = crate::cache::memo(input.store, mk)?;
    let (k, files) = value.split_once('\n')?;
    let k: Digest = k.parse().ok()?;
    let files = serde_json::from_str(files).ok()?;
    let (d, created) = crate::cache::get(input.store, &k)?;
    Some(CopyOutput {
        key: k,
        diff_id: d,
        cached: true,
        created,
        files,
        memo: Some((mk.clone(), value)),
    })
}

/// A merged read-only view of the stage's current layers, and the temp dir holding its
/// padding lowerdir.
pub(crate) fn stage_view(store: &Writer<'_>, diff_ids: &[Digest]) -> Result<StageView, BuildError> {
    let tmp = TempDir::new(store, "view")?;
    let empty = tmp.0.join("empty");
    let mnt = tmp.0.join("mnt");
    for d in [&empty, &mnt] {
        std::fs::create_dir_all(d).map_err(|e| BuildError::io("create a view dir", e))?;
    }
    let lowers = snapshot::chain(store, diff_ids)?;
    Ok(StageView {
        view: View::overlay(&lowers, &empty, &mnt)?,
        _tmp: tmp,
    })
}

/// A stage's view and the directory holding its mount point; fields drop in order, so the
/// view is unmounted before its directory is removed.
pub(crate) struct StageView {
    pub view: View,
    _tmp: TempDir,
}

/// WORKDIR creates its directory (owned by the current USER) when it is missing; a layer
/// holds the new directories, or nothing when the directory exists (the solver still keeps
/// that empty layer, as BuildKit does).
fn workdir(input: &CopyInput, path: &str) -> Result<CopyOutput, BuildError> {
    let cwd = input
        .config
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty());
    let full = config::clean_path(&config::resolve_workdir(cwd.as_deref(), path));
    let user = input.config.config.user.clone().unwrap_or_default();
    let key = key(&[input.parent_key.as_str(), "workdir", &full, &user]);
    // Whether the directory exists is a function of the key's inputs: remembered, so a
    // cached WORKDIR needs no view of the stage (and no layer of it fetched).
    let exists_memo = Some((key.clone(), "exists".to_string()));
    let exists_out = |memo| CopyOutput {
        key: key.clone(),
        diff_id: empty_layer(),
        cached: false,
        created: None,
        files: Default::default(),
        memo,
    };
    if !input.no_cache {
        if crate::cache::memo(input.store, &key).as_deref() == Some("exists") {
            return Ok(exists_out(exists_memo));
        }
        if let Some((d, created)) = crate::cache::get(input.store, &key) {
            return Ok(CopyOutput {
                key,
                diff_id: d,
                cached: true,
                created,
                files: Default::default(),
                memo: None,
            });
        }
    }
    let sv = stage_view(input.store, input.diff_ids)?;
    let view = &sv.view;
    let (exists, missing) = fsutil::resolve(view.path(), &full)?;
    if missing.is_empty() {
        input.store.memo_put(&key, "exists")?;
        return Ok(exists_out(exists_memo));
    }
    let (uid, gid) = if user.is_empty() {
        (0, 0)
    } else {
        fsutil::resolve_user(view.path(), &user)?
    };
    let work = TempDir::new(input.store, "workdir")?;
    let upper = work.0.join("layer");
    std::fs::create_dir_all(&upper).map_err(|e| BuildError::io("create a layer dir", e))?;
    let mut p = fsutil::replicate_dirs(view.path(), &upper, &exists)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for c in &missing {
        p.push(c);
        std::fs::create_dir(&p)
            .map_err(|e| BuildError::io(format!("create {}", p.display()), e))?;
        fsutil::set_meta(&p, 0o755, uid, gid, now)?;
    }
    let d = crate::run::commit_dir(input.store, &upper, layer::Source::Directory)?;
    input.store.cache_put(&key, &d, input.now)?;
    Ok(CopyOutput {
        key,
        diff_id: d,
        cached: false,
        created: Some(input.now.to_string()),
        files: Default::default(),
        memo: None,
    })
}
