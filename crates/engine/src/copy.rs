//! COPY, ADD and WORKDIR: steps that write files into a new layer without running anything.
//!
//! A COPY or ADD goes in phases: its sources are resolved (the context, a stage or an
//! image, heredocs, downloads: [`Sources`]), selected and placed at the destination (the
//! cache key is their content), written into a fresh directory ([`LayerWriter`]) and
//! committed as the step's layer.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use plan::{Plan, Step};
use store::image::ImageConfig;
use store::{Digest, Store, Writer};

use crate::config;
use crate::error::BuildError;
use crate::fsutil;
use crate::layerdir::{commit_dir, temp_dir};
use crate::snapshot;
use crate::solver::{empty_layer, key};
use crate::view::View;

pub(crate) struct CopyInput<'a> {
    pub store: &'a Writer<'a>,
    pub context: Option<&'a Path>,
    /// The context directory's stat cache, kept across builds (`None`: the context came
    /// from a stream, and each COPY has a cache of its own).
    pub stat: Option<&'a context::StatCache>,
    pub ignore: &'a [String],
    pub stage_layers: &'a (dyn Fn(usize) -> Result<Vec<Digest>, BuildError> + Sync),
    pub plan: &'a Plan,
    pub step: &'a Step,
    pub diff_ids: &'a [Digest],
    pub config: &'a ImageConfig,
    pub parent_key: &'a Digest,
    pub no_cache: bool,
    /// Keys this build made (served under `--no-cache` too: another platform's same step).
    pub fresh: &'a crate::solver::Fresh,
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

/// The `.dockerignore` patterns as a matcher; `None` when there are none.
pub(crate) fn ignore_matcher(ignore: &[String]) -> Result<Option<context::Matcher>, BuildError> {
    if ignore.iter().all(|l| l.trim().is_empty()) {
        return Ok(None);
    }
    context::Matcher::from_ignore_file(ignore.join("\n").as_bytes())
        .map(Some)
        .map_err(BuildError::DockerIgnore)
}

/// The layers `--from=r` / `--mount from=r` names: a stage of this Dockerfile (by name or
/// index), else an image in the store.
pub(crate) fn layers_of(
    store: &Store,
    plan: &Plan,
    stage_layers: &(dyn Fn(usize) -> Result<Vec<Digest>, BuildError> + Sync),
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
        Some(i) => stage_layers(i),
        None => match store.resolve(r) {
            Ok(img) => Ok(img.config.rootfs.diff_ids),
            Err(store::Error::NoSuchImage(_)) => Err(BuildError::ImageNotFound {
                reference: r.to_string(),
            }),
            Err(other) => Err(other.into()),
        },
    }
}

fn is_heredoc_word(c: &plan::Copy, w: &str) -> Option<usize> {
    let name = w
        .strip_prefix("<<")?
        .trim_start_matches('-')
        .trim_matches(['"', '\'']);
    c.heredocs.iter().position(|h| h.name == name)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
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

/// Where a COPY or ADD reads: a tree, the source paths in it, and where the tree came from.
struct Sources {
    /// The tree to select from (dropped once the selection is made: a context's is big).
    tree: Option<Box<dyn context::SourceTree>>,
    /// The sources as paths in `tree` (a heredoc's or a download's name at its root).
    paths: Vec<String>,
    origin: Origin,
}

enum Origin {
    /// The build context.
    Context,
    /// A stage or an image (`--from`): files keep their owners, and an unchanged file can
    /// share its inode with the layer snapshot it comes from.
    Stage {
        /// Keeps the view mounted while the files are read.
        view: StageView,
        /// The layers' snapshots (their root directories, opened), top first.
        lowers: Vec<std::fs::File>,
    },
    /// Heredocs, written to a scratch directory.
    Heredocs,
    /// ADD's downloads.
    Downloads,
}

impl Sources {
    /// A stage's or an image's layers, seen through a read-only view.
    fn stage(input: &CopyInput, c: &plan::Copy, layers: &[Digest]) -> Result<Sources, BuildError> {
        let view = stage_view(input.store, layers)?;
        let tree = context::StageRoot::new(view.view.path())?;
        Ok(Sources {
            tree: Some(Box::new(tree)),
            paths: c.sources.clone(),
            origin: Origin::Stage {
                lowers: snapshot::chain(input.store, layers)?
                    .iter()
                    .map(|l| {
                        fsutil::open_dir(l)
                            .map_err(|e| BuildError::io(format!("open {}", l.display()), e.into()))
                    })
                    .collect::<Result<_, _>>()?,
                view,
            },
        })
    }

    /// The heredocs, each a file of its name (0644, root's) in `work`.
    fn heredocs(c: &plan::Copy, work: &Path) -> Result<Sources, BuildError> {
        let dir = work.join("heredocs");
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io("create heredoc dir", e))?;
        for h in &c.heredocs {
            let p = dir.join(&h.name);
            std::fs::write(&p, &h.content).map_err(|e| BuildError::io("write heredoc", e))?;
            fsutil::set_meta(&p, 0o644, 0, 0, now_secs())?;
        }
        let paths = c
            .sources
            .iter()
            .map(|w| match is_heredoc_word(c, w) {
                Some(i) => format!("/{}", c.heredocs[i].name),
                None => w.clone(),
            })
            .collect();
        Ok(Sources {
            tree: Some(Box::new(context::StageRoot::new(&dir)?)),
            paths,
            origin: Origin::Heredocs,
        })
    }

    /// ADD's URLs, downloaded into `work` (an ADD of URLs takes no local files).
    fn downloads(c: &plan::Copy, work: &Path) -> Result<Sources, BuildError> {
        if !c.sources.iter().all(|s| is_url(s)) {
            return Err(BuildError::Unsupported(
                "ADD mixes URLs and local files in one instruction: give each URL its own ADD"
                    .into(),
            ));
        }
        let dir = work.join("downloads");
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io("create a download dir", e))?;
        let mut paths = Vec::new();
        for u in &c.sources {
            let name = crate::fetch::download(u, &dir, c.checksum.as_deref())?;
            paths.push(format!("/{name}"));
        }
        Ok(Sources {
            tree: Some(Box::new(context::StageRoot::new(&dir)?)),
            paths,
            origin: Origin::Downloads,
        })
    }

    /// The build context as `.dockerignore` leaves it.
    fn context(input: &CopyInput, c: &plan::Copy) -> Result<Sources, BuildError> {
        let dir = input.context.ok_or(BuildError::NoContext)?;
        let matcher = ignore_matcher(input.ignore)?;
        Ok(Sources {
            tree: Some(Box::new(context::Context::load(dir, matcher.as_ref())?)),
            paths: c.sources.clone(),
            origin: Origin::Context,
        })
    }

    /// A COPY's or an ADD's sources; `layers` are `--from`'s.
    fn resolve(
        input: &CopyInput,
        c: &plan::Copy,
        is_add: bool,
        layers: Option<&[Digest]>,
        work: &Path,
    ) -> Result<Sources, BuildError> {
        if let Some(layers) = layers {
            Sources::stage(input, c, layers)
        } else if !c.heredocs.is_empty()
            && c.sources.iter().all(|w| is_heredoc_word(c, w).is_some())
        {
            Sources::heredocs(c, work)
        } else if is_add && c.sources.iter().any(|s| is_url(s)) {
            Sources::downloads(c, work)
        } else {
            Sources::context(input, c)
        }
    }

    /// The owner a file gets without --chown: its own from a stage, else root.
    fn owner(&self, meta: &context::Stat) -> (u32, u32) {
        match self.origin {
            Origin::Stage { .. } => (meta.uid(), meta.gid()),
            _ => (0, 0),
        }
    }

    /// For a file of a stage: the same file in its layer snapshot (opened there without
    /// following any symlink), which a copy that keeps owner and mode can hard-link
    /// instead of copying.
    fn snapshot_file(&self, e: &context::Entry) -> Option<std::fs::File> {
        let Origin::Stage { view, lowers } = &self.origin else {
            return None;
        };
        let rel = e.source.strip_prefix(view.view.path()).ok()?;
        let meta = &e.metadata;
        // The first layer (top first) that has the path is the one the view shows; one
        // that leads through a symlink is not followed, and nothing is linked then.
        let f = lowers
            .iter()
            .map(|l| fsutil::open_beneath(l, rel))
            .find(|r| !matches!(r, Err(rustix::io::Errno::NOENT)))?
            .ok()?;
        let m = f.metadata().ok()?;
        (m.is_file() && m.len() == meta.size() && m.ino() != 0 && m.mtime() == meta.mtime())
            .then_some(f)
    }
}

/// A COPY's memo: its result, or the key to keep it under once the step is done.
enum Memo {
    Hit(Box<CopyOutput>),
    Miss(Digest),
}

/// What a COPY's cache key and memo are made of besides its sources.
struct KeyParts<'a> {
    input: &'a CopyInput<'a>,
    c: &'a plan::Copy,
    kind: &'static str,
    workdir: String,
}

impl KeyParts<'_> {
    /// The memo of the step's inputs with its sources named by `source` (their layers, or
    /// the selected context files' content): the step's result when it was seen before.
    fn memo(&self, source: &str) -> Memo {
        let mk = self.key(&["copy-memo", self.kind], source);
        match copy_memo(self.input, &mk) {
            Some(out) => Memo::Hit(Box::new(out)),
            None => Memo::Miss(mk),
        }
    }

    /// The step's cache key, its sources named by the placed files' `content`.
    fn content(&self, content: &str) -> Digest {
        self.key(&[self.kind], content)
    }

    fn key(&self, what: &[&str], source: &str) -> Digest {
        let mut parts = vec![self.input.parent_key.as_str()];
        parts.extend(what);
        parts.extend([
            self.input.step.display.as_str(),
            source,
            self.c.chown.as_deref().unwrap_or(""),
            self.c.chmod.as_deref().unwrap_or(""),
            &self.workdir,
        ]);
        key(&parts)
    }
}

/// Each placed file's signature (size, mode, mtime), for explaining cache misses.
fn signatures(placed: &[context::Placed<'_>]) -> std::collections::BTreeMap<String, String> {
    placed
        .iter()
        .map(|p| {
            let m = &p.entry.metadata;
            (
                p.dest.to_string_lossy().to_string(),
                format!(
                    "{}:{:o}:{}:{}",
                    m.size(),
                    m.mode(),
                    m.mtime(),
                    m.mtime_nsec()
                ),
            )
        })
        .collect()
}

/// Whether `p` exists in the view, and as what (for placing sources at the destination).
fn dest_kind(view: &Path, p: &Path) -> context::DestKind {
    match fsutil::resolve(view, &p.to_string_lossy()) {
        Ok((done, missing)) if missing.is_empty() => {
            if fsutil::join(view, &done).is_dir() {
                context::DestKind::Dir
            } else {
                context::DestKind::NotDir
            }
        }
        _ => context::DestKind::Missing,
    }
}

/// COPY or ADD: sources resolved, selected and placed, then (on a miss) written and
/// committed.
pub(crate) fn copy(
    input: &CopyInput,
    c: &plan::Copy,
    is_add: bool,
) -> Result<CopyOutput, BuildError> {
    crate::view::in_private_mount_ns(|| copy_here(input, c, is_add))
}

fn copy_here(input: &CopyInput, c: &plan::Copy, is_add: bool) -> Result<CopyOutput, BuildError> {
    let parts = KeyParts {
        input,
        c,
        kind: if is_add { "add" } else { "copy" },
        workdir: input.config.config.working_dir.clone().unwrap_or_default(),
    };
    let work = temp_dir(input.store, "copy")?;
    // A stage's or an image's sources are named by their layers: a memo hit needs no view.
    let layers = match &c.from {
        Some(r) => Some(layers_of(input.store, input.plan, input.stage_layers, r)?),
        None => None,
    };
    let mut memo = None;
    if let Some(layers) = &layers {
        let l: Vec<&str> = layers.iter().map(|d| d.as_str()).collect();
        match parts.memo(&l.join(",")) {
            Memo::Hit(out) => return Ok(*out),
            Memo::Miss(mk) => memo = Some(mk),
        }
    }
    let mut sources = Sources::resolve(input, c, is_add, layers.as_deref(), work.path())?;
    let opts = context::SelectOptions {
        excludes: c.excludes.clone(),
        parents: c.parents,
        ..context::SelectOptions::default()
    };
    let tree = sources
        .tree
        .take()
        .ok_or(BuildError::Internal("COPY sources without a tree".into()))?;
    let selection = context::select(tree.as_ref(), &sources.paths, &opts)?;
    // The selection holds what it needs of each entry: a context's whole tree (50,000 files:
    // 13 MB) need not live while the files are written.
    drop(tree);
    // Each file's content is read at most once for both keys below (memo and content); a
    // context directory's files not at all when the build's stat cache knows them.
    let own_cache;
    let stat = match (&sources.origin, input.stat) {
        (Origin::Context, Some(c)) => c,
        _ => {
            own_cache = context::StatCache::new();
            &own_cache
        }
    };
    if let Origin::Context = sources.origin {
        // The context's sources are named by the selected files' content.
        match parts.memo(&selection.digest(stat)?) {
            Memo::Hit(out) => return Ok(*out),
            Memo::Miss(mk) => memo = Some(mk),
        }
    }
    let dest = context::resolve_destination(&c.dest, &parts.workdir);
    // The destination stage, for symlinks along the destination and for --chown names.
    let dest_view = stage_view(input.store, input.diff_ids)?;
    let view = dest_view.view.path();
    let placed = context::place(&dest, &selection, |p| dest_kind(view, p))?;
    let key = parts.content(&context::digest_placed(&placed, stat)?);
    // The files' signatures and the memo are made last, once the layer is written (for a
    // COPY of 50,000 files they are megabytes, and so is what writing the layer holds).
    let finish = |diff_id: Digest, cached: bool, created: Option<String>| {
        let files = signatures(&placed);
        let memo = match memo {
            Some(mk) => Some(remember(input.store, mk, &key)?),
            None => None,
        };
        Ok::<_, BuildError>(CopyOutput {
            key: key.clone(),
            diff_id,
            cached,
            created,
            files,
            memo,
        })
    };
    let cached = (!input.no_cache || input.fresh.has(&key))
        .then(|| crate::cache::get(input.store, &key))
        .flatten();
    if let Some((diff_id, created)) = cached {
        return finish(diff_id, true, created);
    }
    let upper = work.path().join("layer");
    std::fs::create_dir_all(&upper).map_err(|e| BuildError::io("create a layer dir", e))?;
    let mut w = LayerWriter::new(c, is_add, &sources, view, &upper)?;
    // This instruction's previous layer on the same parent (the context changed since):
    // what it holds unchanged is linked, not copied again.
    let last = parts.key(&["copy-last", parts.kind], "");
    if let Origin::Context = sources.origin {
        w.previous = crate::cache::memo(input.store, &last)
            .and_then(|d| d.trim().parse::<Digest>().ok())
            .and_then(|d| fsutil::open_dir(&input.store.snapshot_path(&d)).ok())
            .map(|dir| (dir, stat));
    }
    for pl in &placed {
        w.write(pl, &dest)?;
    }
    w.finish();
    let d = commit_dir(input.store, &upper, layer::Source::Directory, Vec::new())?;
    input.store.cache_put(&key, &d, input.now)?;
    input.fresh.add(&key);
    if let Origin::Context = sources.origin {
        input.store.memo_put(&last, d.as_str())?;
    }
    finish(d, false, Some(input.now.to_string()))
}

/// The sha256 of a file's bytes (`None` if it cannot be read).
fn sha256_of(f: &mut std::fs::File) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut h = sha2::Sha256::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Some(h.finalize().into()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Keep memo `mk` of a COPY: its content key. (The value's second line held the files'
/// signatures; they are kept only for explaining misses, and an empty map is written in
/// their place so older readers still read it.)
fn remember(store: &Writer<'_>, mk: Digest, k: &Digest) -> Result<(Digest, String), BuildError> {
    let value = format!("{k}\n{{}}");
    store.memo_put(&mk, &value)?;
    Ok((mk, value))
}

/// Writes a COPY's placed files into the layer directory.
struct LayerWriter<'a> {
    sources: &'a Sources,
    dirs: DestDirs<'a>,
    /// `--chown`'s owner.
    owner: Option<(u32, u32)>,
    /// `--chmod`'s mode.
    chmod: Option<u32>,
    /// ADD of a local archive extracts it.
    extract: bool,
    /// Directories written, with their mtimes: set last, once their contents are in.
    dir_times: Vec<(PathBuf, i64)>,
    /// The snapshot of this instruction's previous layer (same parent, same instruction,
    /// other context content) and the build's file digests: a context file whose bytes and
    /// metadata that layer already holds is hard-linked from it instead of copied.
    previous: Option<(std::fs::File, &'a context::StatCache)>,
}

impl<'a> LayerWriter<'a> {
    fn new(
        c: &plan::Copy,
        is_add: bool,
        sources: &'a Sources,
        view: &'a Path,
        upper: &'a Path,
    ) -> Result<LayerWriter<'a>, BuildError> {
        let owner = match &c.chown {
            Some(spec) => Some(fsutil::resolve_user(view, spec)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                BuildError::Unsupported(format!(
                    "invalid --chmod={m}: only octal modes are supported"
                ))
            })?),
            None => None,
        };
        Ok(LayerWriter {
            sources,
            dirs: DestDirs {
                view,
                upper,
                owner,
                now: now_secs(),
                made: std::collections::HashMap::new(),
            },
            owner,
            chmod,
            extract: is_add && !matches!(sources.origin, Origin::Stage { .. }),
            dir_times: Vec::new(),
            previous: None,
        })
    }

    /// Write one placed entry.
    fn write(
        &mut self,
        pl: &context::Placed<'_>,
        dest: &context::Destination,
    ) -> Result<(), BuildError> {
        let e = pl.entry;
        // The destination `/` itself: only its contents are copied.
        let Some(name) = pl.dest.file_name() else {
            return Ok(());
        };
        let parent = pl.dest.parent().unwrap_or(Path::new("/"));
        let target = self.dirs.ensure(parent)?.join(name);
        let (uid, gid) = self.owner.unwrap_or(self.sources.owner(&e.metadata));
        let mode = self.chmod.unwrap_or(e.metadata.mode() & 0o7777);
        match e.kind {
            context::FileKind::Dir if e.rel.as_os_str().is_empty() => {
                // The source directory itself: its contents go into the destination, which
                // keeps its metadata when it exists and is otherwise made like any parent.
                self.dirs.ensure(&pl.dest)?;
            }
            context::FileKind::Dir => {
                if !target.is_dir() {
                    let _ = std::fs::remove_file(&target);
                    std::fs::create_dir_all(&target)
                        .map_err(|er| BuildError::io(format!("create {}", target.display()), er))?;
                }
                fsutil::set_meta(&target, mode, uid, gid, e.metadata.mtime())?;
                self.dirs.made.insert(pl.dest.clone(), target.clone());
                self.dir_times.push((target, e.metadata.mtime()));
            }
            context::FileKind::File
                if self.extract && e.rel.as_os_str().is_empty() && looks_like_tar(&e.source) =>
            {
                // ADD of a local archive: extract it into the destination directory.
                let into = self.dirs.ensure(&dest.path)?;
                let f = std::fs::File::open(&e.source)
                    .map_err(|er| BuildError::io(format!("open {}", e.source.display()), er))?;
                let dec = layer::Decompressor::new(std::io::BufReader::new(f))?;
                layer::apply(dec, &into, &layer::ApplyOptions::default())?;
            }
            context::FileKind::File => self.file(e, &target, (uid, gid), mode)?,
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
        Ok(())
    }

    /// A regular file: hard-linked from its layer snapshot when it keeps owner and mode
    /// (the layer's tar reads the same bytes, and nothing writes to either copy), else
    /// copied with its metadata.
    fn file(
        &self,
        e: &context::Entry,
        target: &Path,
        owner: (u32, u32),
        mode: u32,
    ) -> Result<(), BuildError> {
        let meta = &e.metadata;
        let unchanged =
            self.owner.is_none() && self.chmod.is_none() && owner == (meta.uid(), meta.gid());
        let shared = if unchanged {
            self.sources.snapshot_file(e)
        } else {
            None
        };
        let shared = shared.or_else(|| self.previous_file(e, target, owner, mode));
        if let Some(f) = shared {
            if fsutil::link_open_file(&f, target).is_ok() {
                return Ok(());
            }
        }
        fsutil::copy_new_file(
            &e.source,
            target,
            (mode, owner.0, owner.1),
            meta.mtime(),
            meta.size(),
        )
    }

    /// The file at `target`'s place in the previous layer's snapshot (opened there without
    /// following any symlink) when it is exactly what the copy would write: a regular file
    /// with the owner, mode, size and whole-second mtime the copy gives it, whose bytes
    /// hash to the context file's digest.
    fn previous_file(
        &self,
        e: &context::Entry,
        target: &Path,
        owner: (u32, u32),
        mode: u32,
    ) -> Option<std::fs::File> {
        let (snap, stat) = self.previous.as_ref()?;
        let mut f = fsutil::open_beneath(snap, target.strip_prefix(self.dirs.upper).ok()?).ok()?;
        let m = f.metadata().ok()?;
        let same = m.is_file()
            && m.size() == e.metadata.size()
            && m.mode() & 0o7777 == mode
            && (m.uid(), m.gid()) == owner
            && m.mtime() == e.metadata.mtime().max(0)
            && m.mtime_nsec() == 0
            // ext4 allows 65,000 links to an inode.
            && m.nlink() < 60_000;
        if !same {
            return None;
        }
        let want = stat.file_digest(e).ok()?;
        (sha256_of(&mut f)? == want).then_some(f)
    }

    /// Directory mtimes last, once their contents are written.
    fn finish(self) {
        for (d, t) in self.dir_times.iter().rev() {
            let tm = std::time::UNIX_EPOCH + std::time::Duration::from_secs((*t).max(0) as u64);
            if let Ok(f) = std::fs::File::open(d) {
                let _ = f.set_modified(tm);
            }
        }
    }
}

/// A COPY whose inputs (parent, instruction, source identity, owner, mode, workdir) were
/// seen before: the memo names its content key, and when that key has a cache record the
/// step is done without looking at its source or destination at all.
fn copy_memo(input: &CopyInput, mk: &Digest) -> Option<CopyOutput> {
    if input.no_cache {
        return None;
    }
    let value = crate::cache::memo(input.store, mk)?;
    let (k, _files) = value.split_once('\n')?;
    let k: Digest = k.parse().ok()?;
    let (d, created) = crate::cache::get(input.store, &k)?;
    Some(CopyOutput {
        key: k,
        diff_id: d,
        cached: true,
        created,
        // Only a miss is explained (by the files it saw).
        files: Default::default(),
        memo: Some((mk.clone(), value)),
    })
}

/// A merged read-only view of the stage's current layers, and the temp dir holding its
/// padding lowerdir.
pub(crate) fn stage_view(store: &Writer<'_>, diff_ids: &[Digest]) -> Result<StageView, BuildError> {
    let tmp = temp_dir(store, "view")?;
    let empty = tmp.path().join("empty");
    let mnt = tmp.path().join("mnt");
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
    _tmp: store::TempDir,
}

/// WORKDIR creates its directory (owned by the current USER) when it is missing; a layer
/// holds the new directories, or nothing when the directory exists (the solver still keeps
/// that empty layer, as BuildKit does).
pub(crate) fn workdir(input: &CopyInput, path: &str) -> Result<CopyOutput, BuildError> {
    crate::view::in_private_mount_ns(|| workdir_here(input, path))
}

fn workdir_here(input: &CopyInput, path: &str) -> Result<CopyOutput, BuildError> {
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
    let work = temp_dir(input.store, "workdir")?;
    let upper = work.path().join("layer");
    std::fs::create_dir_all(&upper).map_err(|e| BuildError::io("create a layer dir", e))?;
    let mut p = fsutil::replicate_dirs(view.path(), &upper, &exists)?;
    let now = now_secs();
    for c in &missing {
        p.push(c);
        std::fs::create_dir(&p)
            .map_err(|e| BuildError::io(format!("create {}", p.display()), e))?;
        fsutil::set_meta(&p, 0o755, uid, gid, now)?;
    }
    let d = commit_dir(input.store, &upper, layer::Source::Directory, Vec::new())?;
    input.store.cache_put(&key, &d, input.now)?;
    input.fresh.add(&key);
    Ok(CopyOutput {
        key,
        diff_id: d,
        cached: false,
        created: Some(input.now.to_string()),
        files: Default::default(),
        memo: None,
    })
}
