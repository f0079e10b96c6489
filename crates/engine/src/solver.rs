//! The solver: every needed stage on its own thread, steps with cache keys, execution, the
//! final image.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use plan::{Base, BaseImage, ImageResolver, Instruction, Plan, PlanOptions, Stage, Step};
use store::image::{Descriptor, History, ImageConfig, RootFs, MEDIA_OCI_LAYER};
use store::{Digest, Image, Reference, Store, Writer};

use crate::config::{self, StageState};
use crate::progress::{Event, Progress};
use crate::run::{ExecMeta, MountSources, RunOp};

pub use crate::error::BuildError;

/// BuildKit's default PATH, added to an image's Env when it has none.
pub const DEFAULT_PATH: &str = exec::DEFAULT_PATH;

/// History comment BuildKit writes on every entry it creates.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The context directory; `None` when there is none (a Dockerfile on stdin).
    pub context: Option<PathBuf>,
    pub plan: PlanOptions,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`: stage names whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `--network` for RUN steps without their own `--network`: `default` (or `None`) is a
    /// private network namespace with a route out, `none` only loopback, `host` the host's.
    pub network: Option<String>,
    /// The `network.host` entitlement (`--allow network.host`, implied by `--network host`):
    /// without it `RUN --network=host` is refused before anything runs.
    pub allow_network_host: bool,
    /// `--label K=V`.
    pub labels: Vec<(String, String)>,
    /// `-t` names.
    pub tags: Vec<Reference>,
    /// `.dockerignore` patterns of the context.
    pub ignore: Vec<String>,
    /// `--secret id=ID,src=PATH`.
    pub secrets: Vec<(String, PathBuf)>,
    /// `--ssh default|ID=PATH`: agent sockets for RUN --mount=type=ssh.
    pub ssh: Vec<(String, PathBuf)>,
    /// `--cache-from`: imported caches, consulted after the store's own records.
    pub cache_from: Vec<std::sync::Arc<crate::cache::Imported>>,
    /// `--add-host`, `--shm-size`, `--ulimit` for every RUN.
    pub run_extras: crate::run::RunExtras,
    /// `--cache-to type=inline`: the image's config carries the cache records of its own
    /// layers (mode=min) under [`crate::cache::INLINE_KEY`], so `--cache-from IMAGE` of a
    /// pushed image can use it.
    pub inline_cache: bool,
    /// `--platform`: the target platforms. Empty: the host's, one image as always; one:
    /// one image of that platform; more: one image each, joined in an image index.
    pub platforms: Vec<store::Platform>,
    /// Cache keys this build made (all platforms): served again under `--no-cache`, so a
    /// step that several platforms share runs once.
    pub fresh: Fresh,
}

/// Cache keys a build made itself.
#[derive(Clone, Debug, Default)]
pub struct Fresh(std::sync::Arc<Mutex<std::collections::HashSet<Digest>>>);

impl Fresh {
    pub(crate) fn has(&self, k: &Digest) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains(k)
    }
    pub(crate) fn add(&self, k: &Digest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.clone());
    }
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct BuildResult {
    pub image: Image,
    pub plan: Plan,
    /// RUN steps that executed (not cached).
    pub runs_executed: usize,
    /// Steps served from the cache.
    pub cached: usize,
    /// Per needed stage: its index and the layers it produced on top of its base.
    pub stage_layers: Vec<(usize, Vec<Digest>)>,
    /// Per needed stage: its index and all its layers (base included).
    pub stage_chains: Vec<(usize, Vec<Digest>)>,
    /// The cache records, memos and cache mounts this build used (for `--cache-to`).
    pub used: crate::cache::Used,
    /// Layers fetched from `--cache-from` caches.
    pub cache_fetched: Vec<Digest>,
    /// The manifest digest the registry has, after `--push` (`None` without a push).
    pub pushed_digest: Option<String>,
    /// Progress vertices numbered so far (the next platform's solve goes on from here).
    pub vertices: usize,
    /// Several platforms: each one's result, in `--platform` order (`image` is the first's),
    /// and the index joining their images.
    pub platforms: Vec<(store::Platform, Box<BuildResult>)>,
    pub index: Option<store::StoredIndex>,
}

/// Answers the planner's questions about base images from the store.
pub struct StoreResolver<'s>(pub &'s Store);

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str) -> Option<BaseImage> {
        let img = self.0.resolve(reference).ok()?;
        Some(base_image(&img))
    }

    fn resolve_for(&self, reference: &str, platform: &str) -> Option<BaseImage> {
        let p = store::Platform::parse(platform).ok()?;
        let img = self.0.resolve_platform(reference, Some(&p)).ok()?;
        Some(base_image(&img))
    }

    fn is_local(&self, reference: &str) -> bool {
        self.0.resolve(reference).is_ok()
    }
}

/// What the planner needs of a base image.
pub(crate) fn base_image(img: &Image) -> BaseImage {
    BaseImage {
        env: img.config.config.env_pairs(),
        onbuild: img.config.config.on_build.clone().unwrap_or_default(),
    }
}

/// The state of a stage between steps.
#[derive(Clone, Debug)]
struct State {
    diff_ids: Vec<Digest>,
    config: ImageConfig,
    key: Digest,
    st: StageState,
    /// When the newest layer was made: history entries and the image's `created` use it, so
    /// a fully cached rebuild gives the identical image.
    created: String,
}

struct Ctx<'a> {
    store: &'a Writer<'a>,
    opts: &'a BuildOptions,
    plan: &'a Plan,
    progress: &'a dyn Progress,
    /// The context directory's stat cache (none for a context from a stream).
    stat: Option<&'a context::StatCache>,
    next_id: AtomicUsize,
    runs: AtomicUsize,
    cached: AtomicUsize,
    created: String,
    results: Mutex<BTreeMap<usize, State>>,
    /// Stages that ended, and whether they succeeded.
    done: Mutex<BTreeMap<usize, bool>>,
    done_cv: std::sync::Condvar,
    used: Mutex<crate::cache::Used>,
    /// The build's private networks: RUN steps take one each and hand it back, so
    /// slirp4netns starts once per concurrent RUN rather than once per RUN.
    networks: std::sync::Arc<exec::NetworkPool>,
    /// Base images whose FROM vertex was printed (once per build, as BuildKit shows it).
    from_shown: Mutex<std::collections::BTreeSet<String>>,
    /// Each stage's platform (its FROM `--platform`, its base stage's, or the target).
    platforms: Vec<store::Platform>,
    /// `linux/arm64 ` before the stage name in progress, when the build has several
    /// platforms (BuildKit's `[linux/arm64 build 2/3]`).
    label: String,
}

impl Ctx<'_> {
    /// Note a step's cache record for `--cache-to`.
    fn record(&self, stage: usize, key: &Digest, diff_id: &Digest, created: &str) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .push((
                stage,
                crate::cache::Record {
                    key: key.clone(),
                    diff_id: diff_id.clone(),
                    created: created.to_string(),
                },
            ));
    }

    /// The slot of a step for explaining cache misses: the same step of the same Dockerfile
    /// in the same context across builds.
    fn slot(&self, s: &Stage, step: &Step) -> Digest {
        let ctx = self
            .opts
            .context
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let line = step.span.start.to_string();
        // A stage's steps for another platform than the host's are slots of their own.
        let platform = &self.platforms[s.index];
        if platform.is_host() {
            key(&["slot", &ctx, &s.display_name, &line])
        } else {
            key(&["slot", &ctx, &s.display_name, &line, &platform.to_string()])
        }
    }

    /// The layers of a stage (for COPY --from, RUN --mount from=), once it has finished.
    fn stage_layers(&self, i: usize) -> Result<Vec<Digest>, BuildError> {
        self.wait_stage(i).map(|s| s.diff_ids)
    }

    /// Block until stage `i` has finished; an error if it failed.
    fn wait_stage(&self, i: usize) -> Result<State, BuildError> {
        // Only needed stages run; waiting for any other would never end.
        if !self.plan.stages.get(i).is_some_and(|s| s.needed) {
            return Err(BuildError::Internal(format!(
                "stage {i} is not part of this build"
            )));
        }
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ok) = done.get(&i) {
                if !ok {
                    return Err(BuildError::Upstream {
                        stage: self.plan.stages[i].display_name.clone(),
                    });
                }
                let r = self.results.lock().unwrap_or_else(|p| p.into_inner());
                return r
                    .get(&i)
                    .cloned()
                    .ok_or_else(|| BuildError::Internal(format!("stage {i} has no result")));
            }
            done = self.done_cv.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Record that stage `i` ended (with its state when it succeeded) and wake its waiters.
    fn finish_stage(&self, i: usize, state: Option<State>) {
        let ok = state.is_some();
        if let Some(s) = state {
            self.results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(i, s);
        }
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(i, ok);
        self.done_cv.notify_all();
    }

    /// Say that vertex `id` failed, as BuildKit's `#N ERROR: ...`.
    fn failed(&self, id: usize, e: &BuildError) {
        self.progress.event(Event::Error {
            id,
            message: e.to_string(),
        });
    }

    fn vertex(&self, name: String) -> usize {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.progress.event(Event::Start { id, name });
        id
    }
}

pub(crate) fn key(parts: &[&str]) -> Digest {
    let mut s = String::new();
    for p in parts {
        s.push_str(&p.len().to_string());
        s.push(':');
        s.push_str(p);
        s.push('\n');
    }
    Digest::of(s.as_bytes())
}

/// The digest of an empty layer (two zero blocks): steps that change nothing add no layer.
pub(crate) fn empty_layer() -> Digest {
    Digest::of(&[0u8; 1024])
}

fn now() -> String {
    store::now_rfc3339()
}

fn env_get<'a>(cfg: &'a ImageConfig, k: &str) -> Option<&'a str> {
    cfg.config
        .env
        .as_ref()?
        .iter()
        .rev()
        .find_map(|e| e.split_once('=').filter(|(ek, _)| *ek == k).map(|(_, v)| v))
}

/// A step's number padded to the width of the stage's total, as BuildKit prints it
/// (`[ 1/21]`; its prefixCommand formats `%*d` with the total's digit count).
fn step_no(n: usize, total: usize) -> String {
    let width = total.max(1).to_string().len();
    format!("{n:>width$}")
}

/// BuildKit names the stage in a step's prefix only when the Dockerfile has more than one
/// (a lone `FROM busybox AS base` prints `[1/2]`: the stored reference
/// build-buildkit-failing-run.txt and Docker 20.10 live).
fn stage_prefix(label: &str, plan: &Plan, s: &Stage) -> String {
    if plan.stages.len() > 1 {
        format!("{label}{} ", s.display_name)
    } else {
        label.to_string()
    }
}

/// Each stage's platform, parsed; a FROM `--platform` that is no platform is an error at
/// its line.
fn stage_platforms(plan: &Plan) -> Result<Vec<store::Platform>, BuildError> {
    (0..plan.stages.len())
        .map(|i| {
            let text = plan.stage_platform(i);
            store::Platform::parse(&text).map_err(|e| {
                let s = &plan.stages[i];
                BuildError::Step {
                    step: format!("FROM --platform={text}"),
                    lines: s.span.start..=s.span.end.max(s.span.start),
                    error: Box::new(BuildError::Unsupported(format!(
                        "{e} (hint: --platform=$BUILDPLATFORM, or linux/amd64, linux/arm64, ...)"
                    ))),
                }
            })
        })
        .collect()
}

/// Run the plan's target; the caller holds the store's shared lock (see
/// [`crate::request`]) and keeps the context directory's stat cache, `stat`. Nothing is
/// tagged unless the whole build succeeds.
pub(crate) fn solve(
    store: &Writer<'_>,
    opts: &BuildOptions,
    plan: Plan,
    progress: &dyn Progress,
    stat: Option<&context::StatCache>,
    first_vertex: usize,
) -> Result<BuildResult, BuildError> {
    let platforms = stage_platforms(&plan)?;
    let label = if opts.platforms.len() > 1 {
        format!("{} ", plan.target_platform)
    } else {
        String::new()
    };
    let ctx = Ctx {
        store,
        opts,
        plan: &plan,
        progress,
        stat,
        next_id: AtomicUsize::new(first_vertex),
        runs: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        created: now(),
        results: Mutex::new(BTreeMap::new()),
        done: Mutex::new(BTreeMap::new()),
        done_cv: std::sync::Condvar::new(),
        used: Mutex::new(Default::default()),
        networks: std::sync::Arc::new(exec::NetworkPool::new()),
        from_shown: Mutex::new(Default::default()),
        platforms,
        label,
    };
    let _imports = crate::cache::activate(store, &opts.cache_from);
    // Every external base image is in the store now (the request pulled what was missing).
    for s in plan.stages.iter().filter(|s| s.needed) {
        if let Base::Image { reference } = &s.base {
            resolve_image(&ctx, reference, s)?;
        }
    }
    // BuildKit would pull the frontend image a `# syntax=` line names (the planner refuses
    // any but docker/dockerfile); strata's built-in frontend serves it: say so, once.
    if let Some(syntax) = &plan.syntax {
        let id = ctx.vertex(format!(
            "[internal] # syntax={} is served by the built-in Dockerfile frontend",
            syntax.trim()
        ));
        ctx.progress.event(Event::Done { id });
    }
    let outcomes = run_stages(&ctx);
    let (stage_layers, stage_chains) = stage_results(&ctx, outcomes)?;
    let target = ctx
        .results
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&plan.target)
        .ok_or_else(|| BuildError::Internal("the target stage produced no result".into()))?;
    let image = commit_image(&ctx, target)?;
    let cache_fetched = opts
        .cache_from
        .iter()
        .flat_map(|i| i.fetched.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .collect();
    Ok(BuildResult {
        image,
        used: ctx.used.into_inner().unwrap_or_else(|p| p.into_inner()),
        cache_fetched,
        pushed_digest: None,
        runs_executed: ctx.runs.load(Ordering::SeqCst),
        cached: ctx.cached.load(Ordering::SeqCst),
        stage_layers,
        stage_chains,
        vertices: ctx.next_id.load(Ordering::SeqCst),
        plan,
        platforms: Vec::new(),
        index: None,
    })
}

/// Every needed stage at once, each on its own thread: a stage waits for its base stage,
/// and a step that reads another stage (COPY --from, RUN --mount from=) waits for that
/// stage only. Each stage's outcome, in stage order.
fn run_stages(ctx: &Ctx) -> Vec<(usize, Result<State, BuildError>)> {
    let needed = ctx.plan.stages.iter().filter(|s| s.needed).map(|s| s.index);
    std::thread::scope(|scope| {
        let handles: Vec<_> = needed
            .map(|i| {
                scope.spawn(move || {
                    let r = (|| {
                        let base = match &ctx.plan.stages[i].base {
                            Base::Stage { index, .. } => Some(ctx.wait_stage(*index)?),
                            _ => None,
                        };
                        run_stage(ctx, i, base)
                    })();
                    ctx.finish_stage(i, r.as_ref().ok().cloned());
                    (i, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("stage thread"))
            .collect()
    })
}

/// Per stage, the layers it made on top of its base and all its layers; or the first real
/// failure, not that of a stage that only gave up because a stage it needs failed.
#[allow(clippy::type_complexity)]
fn stage_results(
    ctx: &Ctx,
    outcomes: Vec<(usize, Result<State, BuildError>)>,
) -> Result<(Vec<(usize, Vec<Digest>)>, Vec<(usize, Vec<Digest>)>), BuildError> {
    let mut stage_layers = Vec::new();
    let mut stage_chains = Vec::new();
    let mut first_err: Option<BuildError> = None;
    for (i, r) in outcomes {
        match r {
            Ok(state) => {
                let base_len = base_layers(ctx, &ctx.plan.stages[i])?;
                stage_layers.push((
                    i,
                    state.diff_ids[base_len.min(state.diff_ids.len())..].to_vec(),
                ));
                stage_chains.push((i, state.diff_ids));
            }
            Err(e) => {
                let upstream = |e: &BuildError| matches!(e, BuildError::Upstream { .. });
                if first_err
                    .as_ref()
                    .is_none_or(|f| upstream(f) && !upstream(&e))
                {
                    first_err = Some(e);
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok((stage_layers, stage_chains)),
    }
}

/// How many layers a stage's base has.
fn base_layers(ctx: &Ctx, s: &Stage) -> Result<usize, BuildError> {
    Ok(match &s.base {
        Base::Stage { index, .. } => ctx
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(index)
            .map(|s| s.diff_ids.len())
            .unwrap_or(0),
        Base::Image { reference } => resolve_image(ctx, reference, s)?
            .config
            .rootfs
            .diff_ids
            .len(),
        Base::Scratch => 0,
    })
}

/// Stage `s`'s base image, for the stage's platform.
fn resolve_image(ctx: &Ctx, reference: &str, s: &Stage) -> Result<Image, BuildError> {
    let platform = &ctx.platforms[s.index];
    ctx.store
        .resolve_platform(reference, Some(platform))
        .map_err(|e| match e {
            store::Error::NoSuchImage(_)
            | store::Error::NoPlatform { .. }
            | store::Error::WrongPlatform { .. } => {
                let full = Reference::parse(reference)
                    .map(|r| r.to_string())
                    .unwrap_or_else(|_| reference.to_string());
                let why = match e {
                    store::Error::NoSuchImage(_) => "not in the local store".to_string(),
                    _ => e.to_string(),
                };
                BuildError::Step {
                    step: format!(
                        "[{}{}/{}] FROM {full}",
                        stage_prefix(&ctx.label, ctx.plan, s),
                        step_no(1, s.total_steps),
                        s.total_steps
                    ),
                    lines: s.span.start..=s.span.end.max(s.span.start),
                    error: Box::new(BuildError::Unsupported(format!(
                        "failed to resolve image {full}: {why} ({})",
                        crate::error::get_image_hint(reference)
                    ))),
                }
            }
            other => BuildError::Store(other),
        })
}

fn initial_state(ctx: &Ctx, i: usize, base: Option<State>) -> Result<State, BuildError> {
    let s = &ctx.plan.stages[i];
    let platform = &ctx.platforms[i];
    let mut state = match &s.base {
        Base::Scratch => State {
            diff_ids: Vec::new(),
            config: ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                // BuildKit's empty image: WorkingDir "/" (and the default PATH, below).
                config: store::image::RunConfig {
                    working_dir: Some("/".into()),
                    ..store::image::RunConfig::default()
                },
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                ..ImageConfig::default()
            },
            // The platform is in the chain: scratch of two platforms is two roots.
            key: key(&["scratch", &platform.to_string()]),
            st: StageState::default(),
            // No layer yet: filled in with the image's time when the image is made, so a
            // cached rebuild of a scratch stage gives the same image.
            created: String::new(),
        },
        Base::Image { reference } => {
            let img = resolve_image(ctx, reference, s)?;
            State {
                diff_ids: img.config.rootfs.diff_ids.clone(),
                key: key(&["image", img.id().as_str()]),
                created: img
                    .config
                    .created
                    .clone()
                    .unwrap_or_else(|| ctx.created.clone()),
                config: img.config,
                st: StageState::default(),
            }
        }
        Base::Stage { .. } => {
            let mut b = base.ok_or_else(|| {
                BuildError::Internal(format!("stage {} ran before its base", s.display_name))
            })?;
            b.st = StageState::default();
            b
        }
    };
    // ONBUILD triggers of the base run in this stage (the plan put them first); the
    // config's OnBuild is only what this stage declares.
    state.config.config.on_build = None;
    if env_get(&state.config, "PATH").is_none() {
        state
            .config
            .config
            .env
            .get_or_insert_with(Vec::new)
            .insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    Ok(state)
}

fn run_stage(ctx: &Ctx, i: usize, base: Option<State>) -> Result<State, BuildError> {
    let s = &ctx.plan.stages[i];
    let prefix = stage_prefix(&ctx.label, ctx.plan, s);
    let mut state = initial_state(ctx, i, base)?;
    if let Base::Image { reference } = &s.base {
        let full = Reference::parse(reference)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| reference.clone());
        // BuildKit shows a base image once however many stages start from it (the same
        // vertex), named after one of them.
        let first = ctx
            .from_shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{}{full}", ctx.label));
        if first {
            let id = ctx.vertex(format!(
                "[{prefix}{}/{}] FROM {full}",
                step_no(1, s.total_steps),
                s.total_steps
            ));
            ctx.progress.event(Event::Done { id });
        }
    }
    let no_cache = ctx.opts.no_cache
        || ctx
            .opts
            .no_cache_filter
            .iter()
            .any(|f| Some(f.to_lowercase()) == s.name || f.to_lowercase() == s.display_name);
    for step in &s.steps {
        let run = StepRun {
            ctx,
            stage: s,
            step,
            name: match step.number {
                Some(n) => format!(
                    "[{prefix}{}/{}] {}",
                    step_no(n, s.total_steps),
                    s.total_steps,
                    step.progress
                ),
                None => step.progress.clone(),
            },
            no_cache,
        };
        let lines = step.span.start..=step.span.end.max(step.span.start);
        run.run(&mut state)
            .map_err(|e| e.in_step(&run.name, lines))?;
    }
    Ok(state)
}

fn history(created: &str, created_by: String, empty: bool) -> History {
    History {
        created: Some(created.to_string()),
        created_by: Some(created_by),
        comment: Some(HISTORY_COMMENT.into()),
        empty_layer: empty,
        ..History::default()
    }
}

/// BuildKit's `created_by` for a step (its commitToHistory messages), from the config as it
/// was before the step.
fn created_by(step: &Step, cfg: &store::image::RunConfig, run_args: Option<&[String]>) -> String {
    match &step.instruction {
        Instruction::Run(_) => {
            let args = run_args.unwrap_or(&[]).join(" ");
            // Only the ARGs the stage declares; inherited ones reach the environment only.
            if step.recorded_args.is_empty() {
                format!("RUN {args} # buildkit")
            } else {
                let kv: Vec<String> = step
                    .recorded_args
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("RUN |{} {} {args} # buildkit", kv.len(), kv.join(" "))
            }
        }
        Instruction::Cmd(c) => format!(
            "CMD {}",
            config::go_quote_list(&config::command_args(cfg, c))
        ),
        Instruction::Entrypoint(c) => format!(
            "ENTRYPOINT {}",
            config::go_quote_list(&config::command_args(cfg, c))
        ),
        Instruction::Workdir { path } => format!("WORKDIR {}", workdir_of(cfg, path)),
        Instruction::Copy(c) | Instruction::Add(c) => {
            format!(
                "{} {} {} # buildkit",
                step.instruction.keyword(),
                c.sources.join(" "),
                c.dest
            )
        }
        Instruction::Expose { ports } => {
            let mut p = ports.clone();
            p.sort();
            p.dedup();
            format!(
                "EXPOSE map[{}]",
                p.iter()
                    .map(|x| format!("{x}:{{}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        _ => step.display.clone(),
    }
}

/// One step of a stage being run.
struct StepRun<'a, 'c> {
    ctx: &'a Ctx<'c>,
    stage: &'a Stage,
    step: &'a Step,
    /// Its name in the progress (`[stage 2/3] RUN ...`).
    name: String,
    /// `--no-cache` (or `--no-cache-filter`) for its stage.
    no_cache: bool,
}

impl StepRun<'_, '_> {
    /// Run the step on `state`: RUN executes, COPY, ADD and WORKDIR write files, the rest
    /// change the config only.
    fn run(&self, state: &mut State) -> Result<(), BuildError> {
        match &self.step.instruction {
            Instruction::Run(r) => self.exec(r, state),
            Instruction::Copy(c) => self.files(state, |input| crate::copy::copy(input, c, false)),
            Instruction::Add(c) => self.files(state, |input| crate::copy::copy(input, c, true)),
            Instruction::Workdir { path } => {
                self.files(state, |input| crate::copy::workdir(input, path))
            }
            other => {
                self.metadata(state, other);
                Ok(())
            }
        }
    }

    /// What RUN --mount can take files from.
    fn mount_sources<'s>(
        &'s self,
        stage_layers: &'s (dyn Fn(usize) -> Result<Vec<Digest>, BuildError> + Sync),
    ) -> MountSources<'s> {
        let opts = self.ctx.opts;
        MountSources {
            context: opts.context.as_deref(),
            plan: self.ctx.plan,
            stage_layers,
            secrets: &opts.secrets,
            ssh: &opts.ssh,
            used_mounts: &self.ctx.used,
            step: self.step,
            dockerfile: &opts.dockerfile,
            ignore: &opts.ignore,
        }
    }

    /// RUN: its meta and key; from the cache, or executed and its upperdir committed.
    fn exec(&self, r: &plan::Run, state: &mut State) -> Result<(), BuildError> {
        let ctx = self.ctx;
        let cfg = &state.config.config;
        let meta = ExecMeta::new(
            self.step,
            r,
            cfg,
            &ctx.plan.proxy_args,
            ctx.opts.network.as_deref(),
            &ctx.opts.run_extras,
        );
        let created_by = created_by(self.step, cfg, Some(&meta.args));
        let stage_layers = |i: usize| ctx.stage_layers(i);
        let sources = self.mount_sources(&stage_layers);
        let shown = crate::run::mounts::identities(ctx.store, &sources, &meta.mounts)?;
        let k = meta.key(&state.key, &shown);
        let id = ctx.vertex(self.name.clone());
        let seen = crate::explain::Seen {
            parent: state.key.to_string(),
            instruction: self.step.display.clone(),
            args: self.step.args.iter().cloned().collect(),
            // What the mounts showed, so a miss names the mount whose source changed.
            files: shown
                .iter()
                .map(|(t, d)| (format!("the mount at {t}"), d.clone()))
                .chain((meta.extras != crate::run::RunExtras::default()).then(|| {
                    (
                        "the build's --add-host/--shm-size/--ulimit".to_string(),
                        serde_json::to_string(&meta.extras).unwrap_or_default(),
                    )
                }))
                .collect(),
        };
        let hit = (!self.no_cache || ctx.opts.fresh.has(&k))
            .then(|| crate::cache::get(ctx.store, &k))
            .flatten();
        self.report(id, &seen, hit.is_some());
        let (diff, created) = match hit {
            Some((d, created)) => (d, created.unwrap_or_else(|| ctx.created.clone())),
            None => {
                let platform = &ctx.platforms[self.stage.index];
                if !platform.is_host() {
                    exec::emulation::check(platform)
                        .map_err(|e| BuildError::Unsupported(e.to_string()))
                        .inspect_err(|e| ctx.failed(id, e))?;
                }
                let op = RunOp {
                    store: ctx.store,
                    progress: ctx.progress,
                    id,
                    layers: &state.diff_ids,
                    meta: &meta,
                    networks: &ctx.networks,
                    sources: &sources,
                };
                let d = crate::run::execute(&op).inspect_err(|e| ctx.failed(id, e))?;
                ctx.runs.fetch_add(1, Ordering::SeqCst);
                ctx.store.cache_put(&k, &d, &ctx.created)?;
                ctx.opts.fresh.add(&k);
                ctx.progress.event(Event::Done { id });
                (d, ctx.created.clone())
            }
        };
        state.created = created;
        ctx.record(self.stage.index, &k, &diff, &state.created);
        let layer = diff != empty_layer();
        push_layer(state, diff, created_by, k, layer);
        Ok(())
    }

    /// Say whether the step was cached, and on a miss why (what changed since the last
    /// build of its slot, or `--no-cache`).
    fn report(&self, id: usize, seen: &crate::explain::Seen, cached: bool) {
        let ctx = self.ctx;
        if cached {
            ctx.cached.fetch_add(1, Ordering::SeqCst);
            ctx.progress.event(Event::Cached { id });
        } else {
            // A miss is explained against what the step saw when it last ran (hits are not
            // recorded: a COPY of 50,000 files would read and write megabytes for nothing).
            let reason = crate::explain::explain(ctx.store, &ctx.slot(self.stage, self.step), seen);
            let reason = if self.no_cache {
                "--no-cache".to_string()
            } else {
                reason
            };
            ctx.progress.event(Event::Miss { id, reason });
        }
    }

    /// COPY, ADD and WORKDIR: files written into a layer by `write`.
    fn files(
        &self,
        state: &mut State,
        write: impl FnOnce(&crate::copy::CopyInput) -> Result<crate::copy::CopyOutput, BuildError>,
    ) -> Result<(), BuildError> {
        let ctx = self.ctx;
        let id = ctx.vertex(self.name.clone());
        let stage_layers = |i: usize| ctx.stage_layers(i);
        let input = crate::copy::CopyInput {
            store: ctx.store,
            context: ctx.opts.context.as_deref(),
            stat: ctx.stat,
            ignore: &ctx.opts.ignore,
            stage_layers: &stage_layers,
            plan: ctx.plan,
            step: self.step,
            diff_ids: &state.diff_ids,
            config: &state.config,
            parent_key: &state.key,
            no_cache: self.no_cache,
            fresh: &ctx.opts.fresh,
            now: &ctx.created,
        };
        let out = write(&input).inspect_err(|e| ctx.failed(id, e))?;
        let seen = crate::explain::Seen {
            parent: state.key.to_string(),
            instruction: self.step.display.clone(),
            args: Default::default(),
            files: out.files.clone(),
        };
        self.report(id, &seen, out.cached);
        if !out.cached {
            ctx.progress.event(Event::Done { id });
        }
        let created_by = created_by(self.step, &state.config.config, None);
        // BuildKit's dispatchWorkdir commits a layer (its mkdir) for every WORKDIR but `/`,
        // also when the directory exists and the layer is empty; see ARCHITECTURE.md.
        let layer = match &self.step.instruction {
            Instruction::Workdir { path } => {
                let with_layer = workdir_of(&state.config.config, path) != "/";
                config::apply(
                    &mut state.config.config,
                    &mut state.st,
                    &self.step.instruction,
                );
                if with_layer && out.diff_id == empty_layer() {
                    ensure_empty_layer(ctx.store)?;
                }
                with_layer
            }
            _ => out.diff_id != empty_layer(),
        };
        if let Some(c) = out.created {
            state.created = c;
        }
        ctx.record(self.stage.index, &out.key, &out.diff_id, &state.created);
        if let Some((key, value)) = out.memo {
            ctx.used
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .memos
                .push((self.stage.index, crate::cache::Memo { key, value }));
        }
        push_layer(state, out.diff_id, created_by, out.key, layer);
        Ok(())
    }

    /// An instruction that changes the config only. Metadata changes no layer: the cache
    /// chain follows layers only. What a later step does depend on (ENV, ARG values, USER,
    /// WORKDIR, SHELL) is in that step's own key, so changing an ARG re-runs only the steps
    /// that see it.
    fn metadata(&self, state: &mut State, instruction: &Instruction) {
        let created_by = created_by(self.step, &state.config.config, None);
        config::apply(&mut state.config.config, &mut state.st, instruction);
        if let Some(a) = &state.st.author {
            state.config.author = Some(a.clone());
        }
        let h = history(&state.created, created_by, true);
        state.config.history.push(h);
    }
}

/// The WORKDIR BuildKit writes, in the config and in the history.
fn workdir_of(cfg: &store::image::RunConfig, path: &str) -> String {
    config::resolve_workdir(cfg.working_dir.as_deref().filter(|w| !w.is_empty()), path)
}

/// The empty layer's blob (two zero blocks), for a WORKDIR that keeps it.
fn ensure_empty_layer(store: &store::Writer<'_>) -> Result<(), BuildError> {
    if store.has_blob(&empty_layer()) {
        return Ok(());
    }
    let mut w = store.ingest()?;
    std::io::Write::write_all(&mut w, &[0u8; 1024])
        .map_err(|e| BuildError::io("write the empty layer", e))?;
    w.commit(Some(&empty_layer()))?;
    Ok(())
}

/// Record a step's history entry and, when it has one (`layer`), its layer.
fn push_layer(state: &mut State, diff: Digest, created_by: String, k: Digest, layer: bool) {
    if layer {
        state.diff_ids.push(diff);
    }
    let h = history(&state.created, created_by, !layer);
    state.config.history.push(h);
    state.key = k;
}

fn commit_image(ctx: &Ctx, state: State) -> Result<Image, BuildError> {
    let mut config = state.config;
    let created = if state.created.is_empty() {
        ctx.created.clone()
    } else {
        state.created.clone()
    };
    config.created = Some(created.clone());
    for h in &mut config.history {
        if h.created.as_deref() == Some("") {
            h.created = Some(created.clone());
        }
    }
    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: state.diff_ids.clone(),
    };
    if !ctx.opts.labels.is_empty() {
        let l = config.config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &ctx.opts.labels {
            l.insert(k.clone(), v.clone());
        }
    }
    if ctx.opts.inline_cache {
        let used = ctx.used.lock().unwrap_or_else(|p| p.into_inner());
        let inline = crate::cache::inline(&state.diff_ids, ctx.plan.target, &used);
        config.extra.insert(
            crate::cache::INLINE_KEY.into(),
            serde_json::to_value(inline).expect("cache config serializes"),
        );
    }
    let mut layers = Vec::new();
    for d in &state.diff_ids {
        crate::cache::ensure_blob(ctx.store, d)?;
        layers.push(Descriptor {
            media_type: MEDIA_OCI_LAYER.into(),
            digest: d.clone(),
            size: ctx.store.blob_size(d)?,
            annotations: None,
            platform: None,
        });
    }
    let bytes = serde_json::to_vec(&config).expect("config serializes");
    Ok(ctx.store.put_image(&bytes, layers)?)
}
