//! A build request: the context, the Dockerfile, the options, the exporters and the cache
//! imports and exports of one build, run as one operation under the store's shared lock.
//!
//! The request reads its context (a directory, or a stream holding a tar archive or a lone
//! Dockerfile), its Dockerfile and `.dockerignore` (`<Dockerfile>.dockerignore` first, as
//! BuildKit), makes sure the images the build reads are in the store (through a [`Remote`]
//! on a miss, always with `pull`), opens the cache imports, solves, and then runs the
//! exporters, the cache exports and the pushes, all before the lock is released.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::{Platform, Reference, Store, Writer};

use crate::cache::{self, BlobSink, BlobSource, Imported};
use crate::error::{BuildError, RemoteError};
use crate::progress::{Event, Progress};
use crate::solver::{BuildOptions, BuildResult};

/// Where the build context comes from.
pub enum ContextSource {
    /// A directory.
    Dir(PathBuf),
    /// `-`: a tar archive (the context) or a lone Dockerfile (no context).
    Stream(Box<dyn Read>),
}

/// Where the Dockerfile comes from.
pub enum DockerfileSource {
    /// `CONTEXT/Dockerfile`.
    Default,
    /// `-f PATH`, relative to the working directory.
    Path(PathBuf),
    /// `-f -`.
    Stream(Box<dyn Read>),
}

/// A file output: the caller decides how a path is written (beside + rename, a device
/// directly, a stream).
pub trait Sink {
    fn write(
        &self,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError>;
}

/// What happens to the built image besides being kept (and tagged) in the store.
pub enum Exporter {
    /// Push every tag to its registry.
    Push,
    /// A docker or OCI archive of the image (gzip layers), its names the tags.
    Archive(archive::Format, Box<dyn Sink>),
    /// The root filesystem unpacked into a directory.
    Local(PathBuf),
    /// The root filesystem as a tar.
    Tar(Box<dyn Sink>),
}

/// A `--cache-from`.
pub enum CacheImport {
    /// An OCI layout directory; none there yet is no error.
    Local(PathBuf),
    /// A registry reference, read through the [`Remote`].
    Registry(String),
}

/// A `--cache-to`.
pub struct CacheExport {
    pub to: CacheImport,
    /// `mode=max`.
    pub max: bool,
}

/// The registry side of a build, as BuildKit's solver has its resolver and pusher: images
/// pulled into the store, pushed from it, and caches in registry repositories. The CLI
/// implements it with the `registry` crate; every call comes with the store's lock held.
pub trait Remote {
    /// Pull `reference`'s image for `platform` into the store (tagged as a plain image);
    /// the digest the registry knows it by.
    fn pull(
        &self,
        store: &Writer<'_>,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<String, RemoteError>;
    /// Push the image named `reference`; its manifest's digest and size.
    fn push(&self, store: &Store, reference: &Reference) -> Result<(String, u64), RemoteError>;
    /// The cache manifest under `name` and a source of its blobs; `None` when there is none.
    fn cache_source(&self, name: &str) -> Result<Option<CacheManifest>, RemoteError>;
    /// A destination for a cache export under `name`, uploading from `store`.
    fn cache_sink<'s>(
        &'s self,
        store: &'s Writer<'s>,
        name: &str,
    ) -> Result<Box<dyn BlobSink + 's>, RemoteError>;
}

/// An imported cache's manifest and where its blobs come from.
pub type CacheManifest = (Box<dyn BlobSource>, Vec<u8>);

/// A look at the result before the exporters run (the CLI's `--report`).
pub type OnBuilt<'a> = &'a dyn Fn(&Writer<'_>, &BuildResult) -> Result<(), RemoteError>;

/// Everything one build asks for.
pub struct BuildRequest<'a> {
    pub context: ContextSource,
    pub dockerfile: DockerfileSource,
    /// What to build and how; its `dockerfile`, `context`, `ignore` and `cache_from` are
    /// filled in from the request.
    pub options: BuildOptions,
    /// `--pull`: base images from their registries even when the store has them.
    pub pull: bool,
    pub exporters: Vec<Exporter>,
    pub cache_imports: Vec<CacheImport>,
    pub cache_exports: Vec<CacheExport>,
    /// Called with the result once the image is made, before the exporters run.
    pub on_built: Option<OnBuilt<'a>>,
}

/// A failed request: the error, the name the Dockerfile goes by in diagnostics and its
/// text (empty when it was not read), for the source frame of a failed step.
#[derive(Debug)]
pub struct Failure {
    pub dockerfile: String,
    pub text: String,
    pub error: Box<BuildError>,
}

/// Run a build request. Everything written goes through the store under its shared lock,
/// the exports and the cache exports included.
pub fn build(
    store: &Store,
    req: BuildRequest,
    remote: &dyn Remote,
    progress: &dyn Progress,
) -> Result<BuildResult, Failure> {
    let mut read = Dockerfile::default();
    run(store, req, remote, progress, &mut read).map_err(|error| Failure {
        dockerfile: read.name,
        text: read.text,
        error: Box::new(error),
    })
}

/// The Dockerfile a request read: its name in diagnostics and its text.
#[derive(Default)]
struct Dockerfile {
    name: String,
    text: String,
}

fn run(
    store: &Store,
    req: BuildRequest,
    remote: &dyn Remote,
    progress: &dyn Progress,
    read: &mut Dockerfile,
) -> Result<BuildResult, BuildError> {
    let store = &store.lock_shared()?;
    let BuildRequest {
        context,
        dockerfile,
        mut options,
        pull,
        exporters,
        cache_imports,
        cache_exports,
        on_built,
    } = req;
    if options.platforms.len() > 1
        && exporters
            .iter()
            .any(|e| matches!(e, Exporter::Archive(archive::Format::Docker, _)))
    {
        return Err(BuildError::Request(DOCKER_NO_INDEX.into()));
    }
    let stdin_ctx = temp_dir(store)?;
    let from_dir = matches!(context, ContextSource::Dir(_));
    let (context, stdin_dockerfile) = prepare_context(context, stdin_ctx.path())?;
    // A context directory's stat cache, by its canonical path (a context from a stream is
    // new every time: none).
    let stat = match &context {
        Some(dir) if from_dir => std::fs::canonicalize(dir).ok().map(|dir| {
            let bytes = store.stat_cache_get(&dir).unwrap_or_default();
            (dir, context::StatCache::from_bytes(&bytes))
        }),
        _ => None,
    };
    let (display, text, path) = match stdin_dockerfile {
        Some(text) => ("Dockerfile".to_string(), text, None),
        None => {
            let ctx = context.as_deref().unwrap_or(Path::new("."));
            let (display, text, path) = read_dockerfile(dockerfile, ctx)?;
            (display, text, Some(path))
        }
    };
    *read = Dockerfile {
        name: display,
        text: text.clone(),
    };
    options.ignore = match (&context, &path) {
        (Some(ctx), Some(path)) => ignore_patterns(ctx, path),
        _ => Vec::new(),
    };
    options.dockerfile = text;
    options.context = context;
    // One plan per target platform (the host's when none was asked for), all made before
    // anything runs, so a Dockerfile that cannot build for one platform builds for none.
    let targets: Vec<Platform> = if options.platforms.is_empty() {
        vec![Platform::host()]
    } else {
        options.platforms.clone()
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut plans = Vec::with_capacity(targets.len());
    for t in &targets {
        let mut o = options.clone();
        o.plan.target_platform = plan_platform(t);
        o.plan.build_platform = plan_platform(&Platform::host());
        let resolver = MetaResolver {
            store,
            remote,
            pull,
            progress,
            seen: std::cell::RefCell::new(std::mem::take(&mut seen)),
            failed: Default::default(),
            target: t.clone(),
        };
        let planned = plan_build(&o, &resolver);
        seen = resolver.seen.into_inner();
        plans.push((t.clone(), o, planned?));
    }
    for c in &cache_imports {
        if let Some(i) = open_import(store, c, remote, progress)? {
            options.cache_from.push(Arc::new(i));
        }
    }
    let r = solve_all(
        store,
        &options,
        plans,
        progress,
        stat.as_ref().map(|s| &s.1),
    );
    if let Some((_, c)) = &stat {
        let files = c.looked_up();
        if files > 0 {
            progress.event(Event::Context {
                files,
                read: c.hashed(),
                bytes: c.hashed_bytes(),
            });
        }
    }
    // Saved also after a failure (its records are facts about file contents); a failure to
    // save only costs the next build some reading.
    if let Some((dir, bytes)) = stat.and_then(|(dir, c)| Some((dir, c.to_bytes()?))) {
        let _ = store.stat_cache_put(&dir, &bytes);
    }
    let mut r = r?;
    if let Some(f) = on_built {
        f(store, &r).map_err(|e| BuildError::Request(e.0))?;
    }
    match &r.index {
        Some(ix) => {
            for t in &options.tags {
                store.set_ref_index(t, ix)?;
            }
            if options.tags.is_empty() {
                store.keep_untagged_index(ix)?;
            }
        }
        None => {
            for t in &options.tags {
                store.set_ref(t, &r.image)?;
            }
            if options.tags.is_empty() {
                store.keep_untagged(&r.image)?;
            }
        }
    }
    for e in &exporters {
        export(store, &r, &options.tags, e)?;
    }
    for c in &cache_exports {
        export_cache(store, &r, c, remote, progress)?;
    }
    if !r.cache_fetched.is_empty() {
        message(
            progress,
            format!(
                "#0 fetched {} layers from the imported cache",
                r.cache_fetched.len()
            ),
        );
    }
    if exporters.iter().any(|e| matches!(e, Exporter::Push)) {
        for t in &options.tags {
            r.pushed_digest = Some(push(store, t, remote, progress)?);
        }
    }
    Ok(r)
}

/// The planner's spelling of a platform (the planner knows no store).
pub fn plan_platform(p: &Platform) -> plan::Platform {
    plan::Platform {
        os: p.os.clone(),
        arch: p.architecture.clone(),
        variant: p.variant.clone().unwrap_or_default(),
    }
}

/// Solve each platform's plan in turn, vertices numbered on across them. Steps that
/// several platforms share (a stage on `$BUILDPLATFORM`) run for the first and are served
/// from the cache for the others, `--no-cache` or not (`BuildOptions::fresh`). Several
/// platforms give an image index over their images; nothing is tagged here.
fn solve_all(
    store: &Writer<'_>,
    options: &BuildOptions,
    plans: Vec<(Platform, BuildOptions, plan::Plan)>,
    progress: &dyn Progress,
    stat: Option<&context::StatCache>,
) -> Result<BuildResult, BuildError> {
    let many = plans.len() > 1;
    let mut vertex = 1;
    let mut results: Vec<(Platform, Box<BuildResult>)> = Vec::new();
    for (t, mut o, plan) in plans {
        o.cache_from = options.cache_from.clone();
        let r = crate::solver::solve(store, &o, plan, progress, stat, vertex)?;
        vertex = r.vertices;
        results.push((t, Box::new(r)));
    }
    if !many {
        let (_, r) = results.pop().expect("one platform");
        return Ok(*r);
    }
    let images: Vec<&store::Image> = results.iter().map(|(_, r)| &r.image).collect();
    let index = store.put_index(&images)?;
    let first = &results[0].1;
    Ok(BuildResult {
        image: first.image.clone(),
        plan: first.plan.clone(),
        runs_executed: results.iter().map(|(_, r)| r.runs_executed).sum(),
        cached: results.iter().map(|(_, r)| r.cached).sum(),
        stage_layers: first.stage_layers.clone(),
        stage_chains: first.stage_chains.clone(),
        used: Default::default(),
        cache_fetched: results
            .iter()
            .flat_map(|(_, r)| r.cache_fetched.clone())
            .collect(),
        pushed_digest: None,
        vertices: vertex,
        index: Some(index),
        platforms: results,
    })
}

/// Plan once, base images resolved as BuildKit's MetaResolver does: the store first, the
/// registry on a miss (always with `pull`). The planner asks only for the needed stages'
/// bases and only after every structural error of the Dockerfile was reported; an
/// expansion error or a refused entitlement comes after those pulls, as in BuildKit, whose
/// dispatcher resolves base images before it expands a stage.
fn plan_build(options: &BuildOptions, resolver: &MetaResolver) -> Result<plan::Plan, BuildError> {
    let planned = plan::plan(&options.dockerfile, &options.plan, resolver);
    if let Some(e) = resolver.failed.take() {
        return Err(e);
    }
    let plan = planned.map_err(BuildError::Dockerfile)?;
    let allow_host = options.allow_network_host || options.network.as_deref() == Some("host");
    if let Some(d) = crate::entitlements::check(&plan, &options.dockerfile, allow_host) {
        return Err(BuildError::Dockerfile(d));
    }
    // Base images (made sure of already, unless a base is unknown to the planner) and
    // `--from` / `--mount from=` images, which the solver needs: each for the platform of
    // the stage that reads it.
    for s in plan.stages.iter().filter(|s| s.needed) {
        let Ok(platform) = Platform::parse(&plan.stage_platform(s.index)) else {
            continue; // the solver reports the FROM line
        };
        if let plan::Base::Image { reference } = &s.base {
            resolver.ensure(reference, &platform)?;
        }
        for r in &s.images {
            resolver.ensure(r, &platform)?;
        }
    }
    Ok(plan)
}

/// Push tag `t` of the built image; returns the pushed manifest's digest.
fn push(
    store: &Store,
    t: &Reference,
    remote: &dyn Remote,
    progress: &dyn Progress,
) -> Result<String, BuildError> {
    message(progress, format!("#0 pushing {t}"));
    let (digest, size) = remote
        .push(store, t)
        .map_err(|e| BuildError::Request(format!("pushing {t} to {}: {e}", t.domain)))?;
    message(
        progress,
        format!("#0 pushed {t}: digest: {digest} size: {size}"),
    );
    Ok(digest)
}

fn message(progress: &dyn Progress, line: String) {
    progress.event(Event::Message { line });
}

/// The context directory (`None`: the stream was a Dockerfile) and the Dockerfile read from
/// the stream, if it was one. A tar stream is extracted into `tmp`.
fn prepare_context(
    src: ContextSource,
    tmp: &Path,
) -> Result<(Option<PathBuf>, Option<String>), BuildError> {
    match src {
        ContextSource::Stream(mut stream) => {
            let mut head = Vec::new();
            (&mut stream)
                .take(512)
                .read_to_end(&mut head)
                .map_err(|e| BuildError::Request(e.to_string()))?;
            if layer::is_tar_header(&head) {
                let reader = std::io::Cursor::new(head).chain(stream);
                context::extract_tar(reader, tmp).map_err(|e| {
                    BuildError::Request(format!(
                        "unable to prepare context from stdin: {}",
                        chain(&e)
                    ))
                })?;
                Ok((Some(tmp.to_path_buf()), None))
            } else {
                let mut text = head;
                stream
                    .read_to_end(&mut text)
                    .map_err(|e| BuildError::Request(e.to_string()))?;
                let text = String::from_utf8(text).map_err(|e| {
                    BuildError::Request(format!(
                        "the Dockerfile on stdin is not valid UTF-8: {}",
                        chain(&e)
                    ))
                })?;
                Ok((None, Some(text)))
            }
        }
        ContextSource::Dir(dir) => {
            let meta = std::fs::metadata(&dir).map_err(|e| {
                BuildError::Request(format!(
                    "unable to prepare context: path {:?} not found: {}",
                    dir.display().to_string(),
                    chain(&e)
                ))
            })?;
            if !meta.is_dir() {
                return Err(BuildError::Request(format!(
                    "unable to prepare context: {} is not a directory",
                    dir.display()
                )));
            }
            Ok((Some(dir), None))
        }
    }
}

/// The context's `.dockerignore` lines: `<Dockerfile>.dockerignore` wins over the context's
/// `.dockerignore`, as in BuildKit.
fn ignore_patterns(context: &Path, dockerfile: &Path) -> Vec<String> {
    context::dockerignore_text(context, dockerfile)
        .ok()
        .flatten()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The Dockerfile's name for diagnostics, its text, and its path (`-` for a stream).
fn read_dockerfile(
    src: DockerfileSource,
    context: &Path,
) -> Result<(String, String, PathBuf), BuildError> {
    let (path, bytes) = match src {
        DockerfileSource::Stream(mut s) => {
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).map_err(|e| {
                BuildError::Request(format!("reading Dockerfile from stdin: {}", chain(&e)))
            })?;
            (PathBuf::from("-"), buf)
        }
        DockerfileSource::Default | DockerfileSource::Path(_) => {
            let path = match src {
                DockerfileSource::Path(p) => p,
                _ => context.join("Dockerfile"),
            };
            let bytes = std::fs::read(&path).map_err(|e| {
                BuildError::Request(format!(
                    "cannot read Dockerfile {}: {}",
                    path.display(),
                    chain(&e)
                ))
            })?;
            (path, bytes)
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        BuildError::Request(format!(
            "{}: not valid UTF-8 (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok((path.display().to_string(), text, path))
}

/// An error and its sources, `: `-separated (as the CLI prints errors).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The planner's resolver for a build: each reference made sure of once (pulled on a miss,
/// or always with `pull`), then answered from the store. A failed pull is kept for the
/// request to report after planning (the planner itself only sees "unknown").
struct MetaResolver<'a> {
    store: &'a Writer<'a>,
    remote: &'a dyn Remote,
    pull: bool,
    progress: &'a dyn Progress,
    seen: std::cell::RefCell<std::collections::BTreeSet<(String, Platform)>>,
    failed: std::cell::RefCell<Option<BuildError>>,
    /// The target platform of the plan being made (images without a stage platform).
    target: Platform,
}

impl MetaResolver<'_> {
    /// Make sure of `r` for `platform` once per build.
    fn ensure(&self, r: &str, platform: &Platform) -> Result<(), BuildError> {
        if !self
            .seen
            .borrow_mut()
            .insert((r.to_string(), platform.clone()))
        {
            return Ok(());
        }
        ensure_image(
            self.store,
            r,
            platform,
            self.pull,
            self.remote,
            self.progress,
        )
    }
}

impl plan::ImageResolver for MetaResolver<'_> {
    fn resolve(&self, reference: &str) -> Option<plan::BaseImage> {
        self.resolve_platform(reference, &self.target)
    }

    fn resolve_for(&self, reference: &str, platform: &str) -> Option<plan::BaseImage> {
        match Platform::parse(platform) {
            Ok(p) => self.resolve_platform(reference, &p),
            // The solver reports the FROM line; nothing to pull for it.
            Err(_) => None,
        }
    }

    fn is_local(&self, reference: &str) -> bool {
        self.store.resolve(reference).is_ok()
    }
}

impl MetaResolver<'_> {
    fn resolve_platform(&self, reference: &str, platform: &Platform) -> Option<plan::BaseImage> {
        if self.failed.borrow().is_some() {
            return None;
        }
        if let Err(e) = self.ensure(reference, platform) {
            *self.failed.borrow_mut() = Some(e);
            return None;
        }
        let img = self
            .store
            .resolve_platform(reference, Some(platform))
            .ok()?;
        Some(crate::solver::base_image(&img))
    }
}

/// Make sure the store has image `r`, as BuildKit's MetaResolver: the store first, the
/// registry on a miss; with `force` (`--pull`) the registry always.
fn ensure_image(
    store: &Writer<'_>,
    r: &str,
    platform: &Platform,
    force: bool,
    remote: &dyn Remote,
    progress: &dyn Progress,
) -> Result<(), BuildError> {
    let local = store.resolve_platform(r, Some(platform));
    if !force && local.is_ok() {
        return Ok(());
    }
    let reference = Reference::parse(r)
        .map_err(|e| BuildError::Request(format!("failed to resolve image {r}: {e}")))?;
    // The name's images of other platforms stay beside the one pulled (an index).
    let previous = store.refs()?.get(&reference.to_string()).cloned();
    let for_platform = if platform.is_host() {
        String::new()
    } else {
        format!(" for {platform}")
    };
    message(progress, format!("#0 pulling {reference}{for_platform}"));
    let started = std::time::Instant::now();
    let digest = remote.pull(store, &reference, platform).map_err(|e| {
        if let Err(other @ (store::Error::NoPlatform { .. } | store::Error::WrongPlatform { .. })) =
            &local
        {
            // The store has the name, for other platforms only.
            return BuildError::Request(format!(
                "failed to resolve image {reference}{for_platform}: {other}, and {e}"
            ));
        }
        BuildError::Request(if force {
            format!("failed to resolve image {reference} (--pull): {e}")
        } else {
            format!(
                "failed to resolve image {reference}: not in the local store, and {e}\n\
                 hint: {}",
                crate::error::get_image_hint(r)
            )
        })
    })?;
    if let Some(previous) = previous {
        store.merge_platforms(&reference, &previous)?;
    }
    if let Err(e) = store.resolve_platform(r, Some(platform)) {
        return Err(BuildError::Request(format!(
            "failed to resolve image {reference}{for_platform}: {e}"
        )));
    }
    message(
        progress,
        format!(
            "#0 pulled {reference}{for_platform} ({digest}) in {:.1}s",
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

/// `--cache-from IMAGE` of an image the store has (as docker's classic builder takes local
/// images): its manifest and the store as the source of its inline cache. Only a name that
/// is itself in the store counts (not an id), so a cache under a registry name is never
/// shadowed by an unrelated local image.
fn store_image(store: &Store, r: &str) -> Option<CacheManifest> {
    let reference = Reference::parse(r).ok()?;
    let image = store.resolve(&reference.to_string()).ok()?;
    let source = cache::StoreImage {
        store: store.clone(),
        name: format!("{reference} (in the store)"),
    };
    Some((Box::new(source), image.manifest_bytes.clone()))
}

fn open_import(
    store: &Store,
    c: &CacheImport,
    remote: &dyn Remote,
    progress: &dyn Progress,
) -> Result<Option<Imported>, BuildError> {
    match c {
        CacheImport::Local(dir) => {
            // A missing cache is not an error (the first build that exports it).
            if dir.join("index.json").exists() {
                Imported::open_local(dir)
                    .map(Some)
                    .map_err(|e| BuildError::Request(e.to_string()))
            } else {
                message(
                    progress,
                    format!(
                        "#0 importing cache from {}: no cache there yet",
                        dir.display()
                    ),
                );
                Ok(None)
            }
        }
        CacheImport::Registry(r) => match store_image(store, r)
            .map(|m| Ok(Some(m)))
            .unwrap_or_else(|| remote.cache_source(r))
            .map_err(|e| BuildError::Request(e.0))?
        {
            // An image without an inline cache is no error (BuildKit ignores it too).
            Some((source, manifest)) => match Imported::open(source, &manifest) {
                Ok(i) => Ok(Some(i)),
                Err(e @ cache::CacheError::NoInline { .. }) => {
                    message(progress, format!("#0 importing cache from {r}: {e}"));
                    Ok(None)
                }
                Err(e) => Err(BuildError::Request(e.to_string())),
            },
            None => {
                message(
                    progress,
                    format!("#0 importing cache from {r}: no cache there yet"),
                );
                Ok(None)
            }
        },
    }
}

fn export_cache(
    store: &Writer<'_>,
    r: &BuildResult,
    c: &CacheExport,
    remote: &dyn Remote,
    progress: &dyn Progress,
) -> Result<(), BuildError> {
    let request = |e: BuildError| BuildError::Request(chain(&e));
    let (stats, where_) = match &c.to {
        CacheImport::Local(dir) => (
            cache::export(store, r, c.max, &cache::LocalDir(dir.clone())).map_err(request)?,
            dir.display().to_string(),
        ),
        CacheImport::Registry(name) => {
            let sink = remote
                .cache_sink(store, name)
                .map_err(|e| BuildError::Request(e.0))?;
            (
                cache::export(store, r, c.max, sink.as_ref()).map_err(request)?,
                name.clone(),
            )
        }
    };
    message(
        progress,
        format!(
            "#0 exporting cache to {where_} (mode={}): {} records, {} layers, {} cache mounts, {} blobs written",
            if c.max { "max" } else { "min" },
            stats.records,
            stats.layers,
            stats.mounts,
            stats.uploaded
        ),
    );
    Ok(())
}

fn export(
    store: &Writer<'_>,
    r: &BuildResult,
    tags: &[Reference],
    e: &Exporter,
) -> Result<(), BuildError> {
    if !r.platforms.is_empty() {
        return export_platforms(store, r, tags, e);
    }
    match e {
        Exporter::Push => Ok(()),
        Exporter::Archive(format, sink) => {
            let item = archive::SaveItem {
                image: r.image.clone(),
                names: tags.to_vec(),
            };
            sink.write(&mut |w| {
                archive::save(
                    store,
                    std::slice::from_ref(&item),
                    *format,
                    layer::Compression::Gzip,
                    w,
                )
                .map_err(|e| RemoteError(chain(&e)))
            })
            .map_err(|e| BuildError::Request(e.0))
        }
        Exporter::Local(dir) => unpack_image(store, &r.image, dir),
        Exporter::Tar(sink) => {
            let tmp = temp_dir(store)?;
            let root = tmp.path().join("rootfs");
            unpack_image(store, &r.image, &root)?;
            sink.write(&mut |w| {
                layer::commit(&root, &layer::CommitOptions::default(), w)
                    .map(|_| ())
                    .map_err(|e| RemoteError(chain(&e)))
            })
            .map_err(|e| BuildError::Request(e.0))
        }
    }
}

/// BuildKit's refusal of a docker archive of several platforms (checked before the build).
const DOCKER_NO_INDEX: &str = "docker exporter does not currently support exporting manifest \
                               lists (build one --platform, or use --output type=oci)";

/// The exporters of a build of several platforms: `local` and `tar` write one directory
/// per platform (`linux_amd64/`, `linux_arm64/`, as BuildKit), an OCI archive the index.
fn export_platforms(
    store: &Writer<'_>,
    r: &BuildResult,
    tags: &[Reference],
    e: &Exporter,
) -> Result<(), BuildError> {
    let dir_of = |p: &Platform| p.to_string().replace('/', "_");
    match e {
        Exporter::Push => Ok(()),
        Exporter::Archive(archive::Format::Docker, _) => {
            Err(BuildError::Request(DOCKER_NO_INDEX.into()))
        }
        Exporter::Archive(format, sink) => {
            let index = r.index.clone().ok_or_else(|| {
                BuildError::Internal("a build of several platforms without an index".into())
            })?;
            let item = archive::SaveIndex {
                index,
                names: tags.to_vec(),
            };
            sink.write(&mut |w| {
                archive::save_all(
                    store,
                    &[],
                    std::slice::from_ref(&item),
                    *format,
                    layer::Compression::Gzip,
                    w,
                )
                .map_err(|e| RemoteError(chain(&e)))
            })
            .map_err(|e| BuildError::Request(e.0))
        }
        Exporter::Local(dir) => {
            for (p, pr) in &r.platforms {
                unpack_image(store, &pr.image, &dir.join(dir_of(p)))?;
            }
            Ok(())
        }
        Exporter::Tar(sink) => {
            let tmp = temp_dir(store)?;
            let root = tmp.path().join("rootfs");
            for (p, pr) in &r.platforms {
                unpack_image(store, &pr.image, &root.join(dir_of(p)))?;
            }
            sink.write(&mut |w| {
                layer::commit(&root, &layer::CommitOptions::default(), w)
                    .map(|_| ())
                    .map_err(|e| RemoteError(chain(&e)))
            })
            .map_err(|e| BuildError::Request(e.0))
        }
    }
}

/// Unpack an image's layers into `dir` (whiteouts applied).
fn unpack_image(store: &Store, image: &store::Image, dir: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| BuildError::Request(format!("create {}: {}", dir.display(), chain(&e))))?;
    for l in &image.config.rootfs.diff_ids {
        let blob = store
            .open_blob(l)
            .map_err(|e| BuildError::Request(chain(&e)))?;
        layer::apply(blob, dir, &layer::ApplyOptions::default())
            .map_err(|e| BuildError::Request(format!("unpack layer {l}: {}", chain(&e))))?;
    }
    Ok(())
}
/// A private directory under the store's tmp/, removed on drop.
fn temp_dir(store: &Store) -> Result<store::TempDir, BuildError> {
    store
        .scratch_dir("cli")
        .map_err(|e| BuildError::Request(chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_a_tar_context_or_a_dockerfile() {
        let tmp = tempfile::tempdir().unwrap();
        let df = "FROM scratch\nCOPY a /\n";
        let (ctx, text) =
            prepare_context(ContextSource::Stream(Box::new(df.as_bytes())), tmp.path()).unwrap();
        assert_eq!((ctx, text.as_deref()), (None, Some(df)));

        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a"), "hi").unwrap();
        let mut tar = Vec::new();
        layer::commit(&src, &layer::CommitOptions::default(), &mut tar).unwrap();
        let out = tmp.path().join("ctx");
        std::fs::create_dir(&out).unwrap();
        let (ctx, text) = prepare_context(
            ContextSource::Stream(Box::new(std::io::Cursor::new(tar))),
            &out,
        )
        .unwrap();
        assert_eq!((ctx.as_deref(), text), (Some(out.as_path()), None));
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "hi");

        let bad = prepare_context(ContextSource::Stream(Box::new(&b"\xff\xfe"[..])), &out);
        let Err(BuildError::Request(m)) = bad else {
            panic!("{bad:?}")
        };
        assert!(
            m.starts_with("the Dockerfile on stdin is not valid UTF-8"),
            "{m}"
        );
    }

    #[test]
    fn dockerfile_specific_dockerignore_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        std::fs::write(ctx.join(".dockerignore"), "ctx-rule\n").unwrap();
        let df = ctx.join("app.Dockerfile");
        assert_eq!(ignore_patterns(ctx, &df), ["ctx-rule"]);
        std::fs::write(ctx.join("app.Dockerfile.dockerignore"), "a\n!b\n").unwrap();
        assert_eq!(ignore_patterns(ctx, &df), ["a", "!b"]);
        std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
        assert!(ignore_patterns(ctx, &ctx.join("Dockerfile")).is_empty());
    }

    #[test]
    fn dockerfile_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let r = read_dockerfile(DockerfileSource::Default, tmp.path());
        let Err(BuildError::Request(m)) = r else {
            panic!("{r:?}")
        };
        assert!(m.starts_with("cannot read Dockerfile "), "{m}");
        let p = tmp.path().join("Dockerfile");
        std::fs::write(&p, b"FROM scratch\n\xff").unwrap();
        let r = read_dockerfile(DockerfileSource::Path(p.clone()), tmp.path());
        let Err(BuildError::Request(m)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(m, format!("{}: not valid UTF-8 (byte 13)", p.display()));
        let (name, text, path) = read_dockerfile(
            DockerfileSource::Stream(Box::new(&b"FROM a"[..])),
            tmp.path(),
        )
        .unwrap();
        assert_eq!(
            (name.as_str(), text.as_str(), path),
            ("-", "FROM a", PathBuf::from("-"))
        );
    }

    /// A registry that has no image and records what it was asked for.
    #[derive(Default)]
    struct EmptyRegistry(std::cell::RefCell<Vec<String>>);

    impl Remote for EmptyRegistry {
        fn pull(&self, _: &Writer<'_>, r: &Reference, _: &Platform) -> Result<String, RemoteError> {
            self.0.borrow_mut().push(r.to_string());
            Err("manifest unknown".into())
        }
        fn push(&self, _: &Store, _: &Reference) -> Result<(String, u64), RemoteError> {
            unreachable!("no push in these tests")
        }
        fn cache_source(&self, _: &str) -> Result<Option<CacheManifest>, RemoteError> {
            Ok(None)
        }
        fn cache_sink<'s>(
            &'s self,
            _: &'s Writer<'s>,
            _: &str,
        ) -> Result<Box<dyn BlobSink + 's>, RemoteError> {
            Err("no cache".into())
        }
    }

    /// Plan `df` once through the build's resolver; what was pulled, and whether planning
    /// failed on a pull.
    fn plan_once(df: &str) -> (Vec<String>, Option<String>) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("store")).unwrap();
        let store = &store.lock_shared().unwrap();
        let registry = EmptyRegistry::default();
        let r = MetaResolver {
            store,
            remote: &registry,
            pull: false,
            progress: &crate::Quiet,
            seen: Default::default(),
            failed: Default::default(),
            target: Platform::host(),
        };
        let _ = plan::plan(df, &plan::PlanOptions::default(), &r);
        let failed = r.failed.take().map(|e| e.to_string());
        let pulled = registry.0.take();
        (pulled, failed)
    }

    #[test]
    fn the_build_pulls_only_needed_bases_once_and_nothing_for_a_broken_dockerfile() {
        let (pulled, failed) =
            plan_once("FROM nothere/a AS unused\nFROM nothere/b AS x\nFROM x\nFROM nothere/b\n");
        assert_eq!(pulled, ["docker.io/nothere/b:latest"]);
        let failed = failed.expect("the pull failed");
        assert!(failed.contains("failed to resolve image docker.io/nothere/b:latest: not in the local store, and manifest unknown"), "{failed}");
        // A cycle and a reference to a later stage are reported before anything is pulled.
        for df in [
            "FROM nothere/a AS x\nCOPY --from=y / /\nFROM nothere/b AS y\nCOPY --from=x / /\n",
            "FROM nothere/a\nCOPY --from=later / /\nFROM nothere/b AS later\n",
        ] {
            assert_eq!(plan_once(df), (Vec::new(), None), "{df}");
        }
    }
}
