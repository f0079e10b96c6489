//! Stages, scopes and the DAG.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::cell::Cell;

use dockerfile::shell::{human_size, ShellErrorKind, ShellLexer, Vars};
use dockerfile::{Node, Span};
use serde::Serialize;

use crate::diag::{did_you_mean, unlocated, Diagnostic, ErrorKind, Locator};
use crate::instructions::{from_node, ArgDecl, Instruction, KeyValue};

/// Build args that need no ARG line, reach RUN, and never enter the cache key or history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The longest value one expansion may produce, and the longest build arg value: 1 MiB.
pub const MAX_VALUE_LEN: usize = dockerfile::shell::MAX_EXPANDED_LEN;

/// What one stage may hold, in bytes: its inherited environment (`K=V` as the config holds
/// it), every value its instructions expand to, the build arg values its ARGs take and the
/// ARG values each RUN records in its history line. 16 MiB. The global ARGs have a budget of
/// their own of the same size.
pub const MAX_STAGE_LEN: usize = 16 << 20;

/// The same count over the global scope and every needed stage: 64 MiB.
pub const MAX_PLAN_LEN: usize = 64 << 20;

/// Pattern-matching steps (`${v#p}`, `${v//p/r}`, ...) a whole plan may take: 2^26, about
/// 1.5 s; one word may take [`dockerfile::shell::MAX_PATTERN_STEPS`] of them.
pub const MAX_PLAN_PATTERN_STEPS: u64 = 1 << 26;

/// An OS/architecture pair such as `linux/amd64`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: String,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: String::new(),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// What a build asks of the Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// `--target`; the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg K=V`, in command-line order (the last value of a key wins).
    pub build_args: Vec<(String, String)>,
    pub target_platform: Platform,
    pub build_platform: Platform,
    /// `--build-context NAME=docker-image://REF`: `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount from=NAME` use image REF, even where a stage has that name (as
    /// BuildKit: the named context overrides the stage). Names compare case-insensitively.
    pub named_contexts: Vec<(String, String)>,
}

/// What the plan needs to know of an external base image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// Config Env, in order.
    pub env: Vec<(String, String)>,
    /// Config OnBuild triggers, as written (`RUN echo hi`).
    pub onbuild: Vec<String>,
}

/// Answers questions about external images. The build engine implements it on the store.
pub trait ImageResolver {
    /// The config of `reference` if it can be known now; `None` = only the engine can tell.
    fn resolve(&self, reference: &str) -> Option<BaseImage>;

    /// The config of `reference`'s image for `platform` (the stage's: its FROM
    /// `--platform`, its base stage's, or the target platform; as written, expanded). The
    /// default ignores the platform.
    fn resolve_for(&self, reference: &str, _platform: &str) -> Option<BaseImage> {
        self.resolve(reference)
    }

    /// Whether `reference` is known without asking a registry (in the store). The planner
    /// asks it before [`resolve`](Self::resolve) for a bare name one typo away from a
    /// stage's (`FROM biulder` with a stage `builder`): such a name not at hand is a
    /// typo, reported before any pull. The default (`true`) never calls a name a typo.
    fn is_local(&self, _reference: &str) -> bool {
        true
    }
}

/// A resolver that knows no image: everything that depends on a base image waits for it.
pub struct Unresolved;

impl ImageResolver for Unresolved {
    fn resolve(&self, _reference: &str) -> Option<BaseImage> {
        None
    }
}

/// What a stage starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Base {
    Scratch,
    Image { reference: String },
    Stage { index: usize, name: String },
}

/// One instruction of a stage, expanded in its scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Physical lines of the instruction (of the FROM line for base-image ONBUILD triggers).
    pub span: Span,
    /// Progress number (`[stage n/total]`) for steps that make a layer.
    pub number: Option<usize>,
    pub instruction: Instruction,
    /// `instruction.display()`, kept for printing.
    pub display: String,
    /// The name BuildKit's progress gives the step (see [`progress_name`]).
    pub progress: String,
    /// True for an ONBUILD trigger inherited from the base.
    pub onbuild_trigger: bool,
    /// Variables this step referenced that a base image's Env may define: the expansion is
    /// provisional until the engine resolves the base image.
    pub waits_on_base: Vec<String>,
    /// For RUN, the ARGs with a value as the step sees them (proxy args excluded): the ones
    /// this stage declares and the ones its base stage had (BuildKit's stage-from-stage
    /// inheritance). RUN gets them as environment and they are part of its cache key; empty
    /// for other steps.
    pub args: Vec<(String, String)>,
    /// For RUN, what its history line records (`RUN |N K=V ...`), as BuildKit: each ARG line
    /// of this stage so far, in order and repeats included, with the value the step sees
    /// (an ENV of the same name first; empty when it has none). Inherited ARGs stay out.
    pub recorded_args: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The name, or `stage-N`.
    pub display_name: String,
    pub base: Base,
    pub platform: Option<String>,
    /// The FROM line.
    pub span: Span,
    /// Stages this one needs (its base stage and `--from` / `--mount from=` sources).
    pub depends_on: Vec<usize>,
    /// External images used by `--from` / `--mount from=`.
    pub images: Vec<String>,
    /// Whether the target needs it.
    pub needed: bool,
    pub skip_reason: Option<String>,
    /// Needed stages in the same wave may run concurrently.
    pub wave: Option<usize>,
    /// The base is an external image the resolver does not know yet: its Env and ONBUILD
    /// triggers are applied by the engine.
    pub waits_on_base: bool,
    pub steps: Vec<Step>,
    /// Progress step total: the FROM of an image (not scratch, not a stage) plus layer steps.
    pub total_steps: usize,
    /// Env at the end of the stage as far as it is known.
    pub env: Vec<(String, String)>,
    /// ONBUILD triggers this stage declares (the config's OnBuild).
    pub onbuild: Vec<String>,
    /// ARG values at the end of the stage: a stage built FROM this one starts with them
    /// (they reach its RUN environment and expansions, never an image config).
    pub args: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// What a build would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The `# syntax=` value, if any (always served by the built-in frontend).
    pub syntax: Option<String>,
    /// Global ARGs (before the first FROM) and their values after build args.
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
    /// Index of the target stage.
    pub target: usize,
    /// Needed stages grouped so that each wave depends only on earlier waves.
    pub waves: Vec<Vec<usize>>,
    /// Proxy build args (reach RUN, stay out of cache keys and history).
    pub proxy_args: Vec<(String, String)>,
    /// Build args no ARG consumed.
    pub unused_build_args: Vec<String>,
    pub warnings: Vec<Warning>,
    pub escape: char,
    /// The platform the plan was made for (`PlanOptions::target_platform`).
    pub target_platform: Platform,
}

impl Plan {
    pub fn target_stage(&self) -> &Stage {
        &self.stages[self.target]
    }

    /// Stage `i`'s platform, as text: its FROM `--platform` (expanded), else its base
    /// stage's, else the target platform.
    pub fn stage_platform(&self, i: usize) -> String {
        stage_platform(&self.stages, i, &self.target_platform.to_string())
    }
}

struct RawStage<'a> {
    node: &'a Node,
    image: String,
    name: Option<String>,
    platform: Option<String>,
    instrs: Vec<(&'a Node, Instruction)>,
}

/// An ordered list of variables with an index by name, so that a lookup or an update costs
/// the same with 10 or 100,000 variables (a search of the list per ENV made a stage of
/// 100,000 ENV lines take minutes). Removed entries leave a hole until holes outnumber
/// entries.
#[derive(Clone, Debug)]
struct VarList<V> {
    entries: Vec<Option<(String, V)>>,
    index: HashMap<String, usize>,
}

impl<V> Default for VarList<V> {
    fn default() -> Self {
        VarList {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<V> VarList<V> {
    /// Entries in order; a later duplicate replaces the earlier value in its place.
    fn from_pairs(pairs: impl IntoIterator<Item = (String, V)>) -> Self {
        let mut list = VarList::default();
        for (k, v) in pairs {
            list.set(&k, v);
        }
        list
    }

    fn get(&self, name: &str) -> Option<&V> {
        let i = *self.index.get(name)?;
        self.entries.get(i)?.as_ref().map(|(_, v)| v)
    }

    /// Replace the value in place (ENV keeps the position of the first definition, as a
    /// config's Env does), or append.
    fn set(&mut self, name: &str, value: V) {
        if let Some(e) = self
            .index
            .get(name)
            .and_then(|&i| self.entries.get_mut(i))
            .and_then(Option::as_mut)
        {
            e.1 = value;
            return;
        }
        self.index.insert(name.to_string(), self.entries.len());
        self.entries.push(Some((name.to_string(), value)));
    }

    /// Remove `name` and append it at the end (a redeclared ARG moves last).
    fn set_last(&mut self, name: &str, value: V) {
        self.remove(name);
        self.set(name, value);
    }

    fn remove(&mut self, name: &str) {
        if let Some(i) = self.index.remove(name) {
            if let Some(e) = self.entries.get_mut(i) {
                *e = None;
            }
        }
        if self.entries.len() > 32 && self.entries.len() > 2 * self.index.len() {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.entries.retain(Option::is_some);
        for (i, (k, _)) in self.entries.iter().flatten().enumerate() {
            if let Some(slot) = self.index.get_mut(k) {
                *slot = i;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().flatten().map(|(k, v)| (k, v))
    }

    fn into_vec(self) -> Vec<(String, V)> {
        self.entries.into_iter().flatten().collect()
    }
}

impl Vars for VarList<String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// The bytes a `K=V` environment entry takes in a config.
fn entry_len(k: &str, v: &str) -> usize {
    k.len() + v.len() + 1
}

/// The lookup used while expanding inside a stage: the later of an ENV and an ARG with a
/// value of the same name wins (BuildKit writes both into the stage's LLB environment; the
/// config keeps the ENV). A stage starts with its base's Env over any inherited ARG.
struct Scope {
    env: VarList<String>,
    env_known: bool,
    args: VarList<Option<String>>,
    /// Names whose latest value came from an ARG of this stage after an ENV of that name.
    arg_over_env: BTreeSet<String>,
}

impl Vars for Scope {
    fn get_var(&self, name: &str) -> Option<&str> {
        if self.arg_over_env.contains(name) {
            if let Some(Some(v)) = self.args.get(name) {
                return Some(v);
            }
        }
        if let Some(v) = self.env.get(name) {
            return Some(v);
        }
        self.args.get(name).and_then(|v| v.as_deref())
    }
}

/// The name BuildKit prints for a step in its progress (Docker 20.10, checked live): the
/// instruction as written (continuations joined, comment lines dropped: the parser's
/// `original`), its keyword upper-cased, expanded with the step's ENV and ARG values as one
/// word. RUN keeps quotes and leaves unset variables as written (BuildKit's RawQuotes and
/// SkipUnsetEnv: `RUN echo "$V" $NOPE` prints `RUN echo "val" $NOPE`); COPY, ADD and WORKDIR
/// use the plain expansion (`COPY "a" ./$V/` prints `COPY a ./val/`). So flags print as
/// written (`--mount=type=cache,target=/c,id=foo`) and exec form keeps its JSON spacing.
/// When the expansion fails (or would pass the lexer's `max_len`), the text as written.
/// Returns the name and the pattern steps the expansion took.
pub(crate) fn progress_name(
    lexer: &ShellLexer,
    original: &str,
    inst: &Instruction,
    vars: &dyn Vars,
) -> (String, u64) {
    let original = original.trim();
    let mut lx = *lexer;
    match inst {
        Instruction::Run(_) => {
            lx.raw_quotes = true;
            lx.skip_unset = true;
        }
        Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir { .. } => {}
        _ => return (uppercase_keyword(original), 0),
    }
    match lx.process_word(original, vars) {
        Ok(w) => (uppercase_keyword(&w.value), w.pattern_steps),
        // A pattern that ran out of steps used them all; other errors are of the text.
        Err(e) if e.kind == dockerfile::shell::ShellErrorKind::PatternTooCostly => {
            (uppercase_keyword(original), lx.max_pattern_steps)
        }
        Err(_) => (uppercase_keyword(original), 0),
    }
}

/// The longest step name progress prints expanded (a display string only: longer, it is
/// printed as written, so names stay bounded by the Dockerfile's size).
const MAX_PROGRESS_NAME_LEN: usize = 64 << 10;

/// BuildKit's uppercaseCmd: the first space-separated word upper-cased.
fn uppercase_keyword(s: &str) -> String {
    let s = s.trim();
    match s.split_once(' ') {
        Some((kw, rest)) => format!("{} {rest}", kw.to_uppercase()),
        None => s.to_uppercase(),
    }
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
}

fn is_standard_frontend(syntax: &str) -> bool {
    let s = syntax.trim();
    let s = s.strip_prefix("docker.io/").unwrap_or(s);
    let repo = s.split(['@', ':']).next().unwrap_or("");
    repo == "docker/dockerfile" || repo == "docker/dockerfile-upstream"
}

/// EXPOSE port spec → `port/proto` entries (ranges expanded), as docker's nat package does.
fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    let (port, proto) = match spec.rsplit_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = port.rsplit(':').next().unwrap_or(port);
    let num = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("invalid containerPort: {port}"))
    };
    let (lo, hi) = match port.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(port)?;
            (n, n)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for container port: {port}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

struct Ctx<'a> {
    loc: Locator<'a>,
    lexer: ShellLexer,
    /// Bytes the current scope (the global ARGs, or one stage) holds so far.
    scope_used: Cell<usize>,
    /// Bytes all scopes hold so far.
    plan_used: Cell<usize>,
    /// Pattern-matching steps left for the rest of the plan.
    pattern_steps_left: Cell<u64>,
    /// `--build-context` names (lower case) and the images they stand for.
    named: HashMap<String, String>,
    /// `PlanOptions::target_platform`, as text.
    target_platform: String,
}

/// The hint of every limit error.
fn limits_hint() -> Option<String> {
    Some(format!(
        "strata limits one expanded value to {}, a stage's values to {} and a build's to {}",
        human_size(MAX_VALUE_LEN),
        human_size(MAX_STAGE_LEN),
        human_size(MAX_PLAN_LEN)
    ))
}

/// The hint of a pattern that takes too long.
fn pattern_hint() -> Option<String> {
    Some(format!(
        "strata limits the pattern operators (${{v#p}}, ${{v//p/r}}, ...) to {} steps per word and {} per build",
        dockerfile::shell::MAX_PATTERN_STEPS,
        MAX_PLAN_PATTERN_STEPS
    ))
}

impl Ctx<'_> {
    /// BuildKit's message for a word that does not expand, located at the word.
    fn expansion_error(
        &self,
        word: &str,
        span: Span,
        e: &dockerfile::shell::ShellError,
    ) -> Diagnostic {
        let (kind, hint) = match e.kind {
            ShellErrorKind::Syntax => (ErrorKind::Expansion, None),
            ShellErrorKind::TooLong { .. } => (ErrorKind::TooLarge, limits_hint()),
            ShellErrorKind::PatternTooCostly => (ErrorKind::TooLarge, pattern_hint()),
        };
        self.loc.at(
            kind,
            span,
            Some(word),
            format!("failed to process {word:?}: {}", e.message),
            hint,
        )
    }

    /// The lexer for the next word: its pattern steps are what the plan has left.
    fn lexer(&self) -> ShellLexer {
        let mut lexer = self.lexer;
        lexer.max_pattern_steps = lexer.max_pattern_steps.min(self.pattern_steps_left.get());
        lexer
    }

    fn used_pattern_steps(&self, steps: u64) {
        let left = self.pattern_steps_left.get();
        self.pattern_steps_left.set(left.saturating_sub(steps));
    }

    /// Start counting a new scope (a stage).
    fn new_scope(&self) {
        self.scope_used.set(0);
    }

    /// Count `bytes` more against the scope's and the build's limits; `what` says what took
    /// them (`failed to process "$a$a"`, `ARG big`, ...), located at `needle`.
    fn spend(
        &self,
        bytes: usize,
        span: Span,
        needle: Option<&str>,
        what: &str,
    ) -> Result<(), Diagnostic> {
        let scope = self.scope_used.get().saturating_add(bytes);
        let total = self.plan_used.get().saturating_add(bytes);
        self.scope_used.set(scope);
        self.plan_used.set(total);
        let over = if scope > MAX_STAGE_LEN {
            Some(format!(
                "the stage's values would be more than {} (the limit for one stage)",
                human_size(MAX_STAGE_LEN)
            ))
        } else if total > MAX_PLAN_LEN {
            Some(format!(
                "the build's values would be more than {} (the limit for one build)",
                human_size(MAX_PLAN_LEN)
            ))
        } else {
            None
        };
        match over {
            Some(m) => Err(self.loc.at(
                ErrorKind::TooLarge,
                span,
                needle,
                format!("{what}: {m}"),
                limits_hint(),
            )),
            None => Ok(()),
        }
    }

    /// A value that comes from outside the Dockerfile (a build arg, a global ARG's value, a
    /// base image's Env): at most [`MAX_VALUE_LEN`], and counted.
    fn outside_value(
        &self,
        name: &str,
        value: &str,
        span: Span,
        what: &str,
    ) -> Result<(), Diagnostic> {
        if value.len() > MAX_VALUE_LEN {
            return Err(self.loc.at(
                ErrorKind::TooLarge,
                span,
                Some(name),
                format!(
                    "{what} {name} is longer than {} (the limit for one value)",
                    human_size(MAX_VALUE_LEN)
                ),
                limits_hint(),
            ));
        }
        self.spend(
            entry_len(name, value),
            span,
            Some(name),
            &format!("{what} {name}"),
        )
    }

    /// Expand one word; unmatched names are collected for the waits-on-base report.
    fn word(
        &self,
        word: &str,
        vars: &dyn Vars,
        span: Span,
        unmatched: &mut BTreeSet<String>,
    ) -> Result<String, Diagnostic> {
        let r = self
            .lexer()
            .process_word(word, vars)
            .map_err(|e| self.expansion_error(word, span, &e))?;
        self.used_pattern_steps(r.pattern_steps);
        self.spend(
            r.value.len(),
            span,
            Some(word),
            &format!("failed to process {word:?}"),
        )?;
        unmatched.extend(r.unmatched);
        Ok(r.value)
    }

    fn words(
        &self,
        word: &str,
        vars: &dyn Vars,
        span: Span,
        unmatched: &mut BTreeSet<String>,
    ) -> Result<Vec<String>, Diagnostic> {
        let r = self
            .lexer()
            .process_words(word, vars)
            .map_err(|e| self.expansion_error(word, span, &e))?;
        self.used_pattern_steps(r.pattern_steps);
        self.spend(
            r.value.iter().map(String::len).sum(),
            span,
            Some(word),
            &format!("failed to process {word:?}"),
        )?;
        unmatched.extend(r.unmatched);
        Ok(r.value)
    }
}

/// One step's source before expansion: where it stands, what it is, whether it is an ONBUILD
/// trigger, and its text as written.
type StepSource = (Span, Instruction, bool, String);

/// Plan a build of `source` (a Dockerfile's text), in phases: parse and check the directives,
/// split into stages, name them and find the target, evaluate the global scope, lay out the
/// stages' bases, link and prune them (resolving the needed stages' base images, whose
/// ONBUILD triggers may link more), then expand each needed stage in its scope.
///
/// The resolver is asked about the base images of needed stages only, once each, after every
/// structural error of the Dockerfile has been reported: an engine whose resolver pulls a
/// missing image pulls nothing for a Dockerfile that cannot build, nor for a stage the
/// target does not need.
pub fn plan(
    source: &str,
    opts: &PlanOptions,
    resolver: &dyn ImageResolver,
) -> Result<Plan, Diagnostic> {
    let loc = Locator::new(source);
    let df = dockerfile::parse(source).map_err(|e| Diagnostic::from_parse_error(source, &e))?;
    let ctx = Ctx {
        loc,
        lexer: ShellLexer::new(df.directives.escape),
        scope_used: Cell::new(0),
        plan_used: Cell::new(0),
        pattern_steps_left: Cell::new(MAX_PLAN_PATTERN_STEPS),
        named: opts
            .named_contexts
            .iter()
            .map(|(n, r)| (n.to_lowercase(), r.clone()))
            .collect(),
        target_platform: opts.target_platform.to_string(),
    };
    let mut warnings: Vec<Warning> = df
        .warnings
        .iter()
        .map(|w| Warning {
            line: w.line,
            message: w.message.clone(),
        })
        .collect();
    let syntax = check_syntax(&df, &ctx.loc)?;
    check_build_args(opts)?;
    let (meta, raw) = split_stages(&df, &ctx.loc)?;
    let names = StageNames::of(&raw, &ctx.loc, &mut warnings)?;
    let target = names.target(opts, raw.len())?;
    let mut globals = Globals::evaluate(&ctx, opts, &meta)?;
    let target_stage_name = names.names[target]
        .clone()
        .unwrap_or_else(|| "default".into());
    globals.inherited.set("TARGETSTAGE", target_stage_name);
    let (mut stages, mut instrs) = lay_out(&ctx, &raw, &names, &globals.env, &mut warnings)?;
    let resolved = link(
        &ctx,
        &raw,
        &names,
        &mut stages,
        &mut instrs,
        target,
        resolver,
    )?;
    let waves = waves(&mut stages, target);
    let proxy_args = proxy_args(opts)?;
    for (i, src) in instrs.into_iter().enumerate() {
        if stages[i].needed {
            expand_stage(&ctx, &mut stages, i, src, &resolved[i], opts, &mut globals)?;
        } else {
            show_as_written(&mut stages[i], src);
        }
    }
    let unused_build_args = opts
        .build_args
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            !globals.consumed.contains(k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !globals.auto.iter().any(|(a, _)| a == k)
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Plan {
        syntax,
        global_args: globals.args,
        stages,
        target,
        waves,
        proxy_args,
        unused_build_args,
        warnings,
        escape: df.directives.escape,
        target_platform: opts.target_platform.clone(),
    })
}

/// The last `--build-arg NAME` given, if any.
fn build_arg(opts: &PlanOptions, name: &str) -> Option<String> {
    opts.build_args
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The `# syntax=` directive: only the built-in frontend's names are accepted.
fn check_syntax(df: &dockerfile::Dockerfile, loc: &Locator) -> Result<Option<String>, Diagnostic> {
    let syntax = df.directives.syntax.as_ref().map(|(s, _)| s.clone());
    if let Some((s, line)) = &df.directives.syntax {
        if !is_standard_frontend(s) {
            return Err(loc.at(
                ErrorKind::UnsupportedFrontend,
                Span {
                    start: *line,
                    end: *line,
                },
                Some(s),
                format!(
                    "unsupported frontend {s:?}: strata has only the built-in Dockerfile frontend"
                ),
                Some("remove the `# syntax=` line or name docker/dockerfile:1".into()),
            ));
        }
    }
    Ok(syntax)
}

fn check_build_args(opts: &PlanOptions) -> Result<(), Diagnostic> {
    for (k, _) in &opts.build_args {
        if k.is_empty() {
            return Err(unlocated(
                ErrorKind::InvalidBuildArg,
                "build arg names can not be blank",
                Some("write --build-arg NAME=VALUE".into()),
            ));
        }
    }
    Ok(())
}

/// The global ARGs before the first FROM, and the stages with their typed instructions.
#[allow(clippy::type_complexity)]
fn split_stages<'a>(
    df: &'a dockerfile::Dockerfile,
    loc: &Locator,
) -> Result<(Vec<(&'a Node, Vec<ArgDecl>)>, Vec<RawStage<'a>>), Diagnostic> {
    let mut meta: Vec<(&Node, Vec<ArgDecl>)> = Vec::new();
    let mut raw: Vec<RawStage> = Vec::new();
    for node in &df.nodes {
        let inst = from_node(node, loc)?;
        match inst {
            Instruction::From {
                image,
                name,
                platform,
            } => raw.push(RawStage {
                node,
                image,
                name,
                platform,
                instrs: Vec::new(),
            }),
            other => match raw.last_mut() {
                Some(stage) => stage.instrs.push((node, other)),
                None => match other {
                    Instruction::Arg { args } => meta.push((node, args)),
                    other => {
                        return Err(loc.at(
                            ErrorKind::InstructionBeforeFrom,
                            node.span,
                            None,
                            format!("{} must come after a FROM", other.keyword()),
                            Some("only ARG may come before the first FROM".into()),
                        ))
                    }
                },
            },
        }
    }
    if raw.is_empty() {
        return Err(loc.at(
            ErrorKind::NoStages,
            df.span,
            None,
            "dockerfile contains no stages to build",
            Some("add FROM IMAGE to start a stage".into()),
        ));
    }
    Ok((meta, raw))
}

/// The stages' names (lowercased) and an index of them.
struct StageNames {
    names: Vec<Option<String>>,
    /// Every named stage; the last of a duplicated name wins, as in BuildKit.
    by_name: HashMap<String, usize>,
}

impl StageNames {
    fn of(
        raw: &[RawStage],
        loc: &Locator,
        warnings: &mut Vec<Warning>,
    ) -> Result<Self, Diagnostic> {
        let mut names: Vec<Option<String>> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, rs) in raw.iter().enumerate() {
            let name = rs.name.as_ref().map(|n| n.to_lowercase());
            if let Some(n) = &name {
                if !is_valid_stage_name(n) {
                    return Err(loc.at(
                        ErrorKind::InvalidStageName,
                        rs.node.span,
                        rs.name.as_deref(),
                        format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", rs.name.as_deref().unwrap_or("")),
                        Some("stage names match ^[a-z][a-z0-9-_.]*$".into()),
                    ));
                }
                if n == "scratch" || n == "context" {
                    warnings.push(Warning {
                        line: rs.node.span.start,
                        message: format!("ReservedStageName: {n:?} is reserved and should not be used as a stage name"),
                    });
                }
                if let Some(prev) = by_name.insert(n.clone(), i) {
                    warnings.push(Warning {
                        line: rs.node.span.start,
                        message: format!(
                            "DuplicateStageName: duplicate stage name {n:?} (first defined on line {})",
                            raw[prev].node.span.start
                        ),
                    });
                }
            }
            names.push(name);
        }
        Ok(StageNames { names, by_name })
    }

    /// The index of the target stage: `--target`, or the last stage.
    fn target(&self, opts: &PlanOptions, count: usize) -> Result<usize, Diagnostic> {
        let Some(t) = &opts.target else {
            return Ok(count - 1);
        };
        if let Some(i) = self.by_name.get(&t.to_lowercase()) {
            return Ok(*i);
        }
        let hint = did_you_mean(t, self.by_name.keys().map(String::as_str))
            .map(|s| format!("did you mean {s}?"))
            .or_else(|| {
                let mut all: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                all.sort();
                (!all.is_empty()).then(|| format!("stages are: {}", all.join(", ")))
            });
        Err(unlocated(
            ErrorKind::TargetNotFound,
            format!("target stage {t:?} could not be found"),
            hint,
        ))
    }
}

/// The global scope: the automatic platform ARGs, then the ARGs before the first FROM.
struct Globals {
    /// The automatic platform ARGs, with their `--build-arg` overrides.
    auto: Vec<(String, String)>,
    /// What FROM lines expand with.
    env: VarList<String>,
    /// The global ARGs as declared (a value or none).
    args: Vec<(String, Option<String>)>,
    /// What an in-stage `ARG NAME` with no default and no build arg inherits.
    inherited: VarList<String>,
    /// ARG names some declaration consumed (for the unused build args warning).
    consumed: BTreeSet<String>,
}

impl Globals {
    fn evaluate(
        ctx: &Ctx,
        opts: &PlanOptions,
        meta: &[(&Node, Vec<ArgDecl>)],
    ) -> Result<Self, Diagnostic> {
        let tp = &opts.target_platform;
        let bp = &opts.build_platform;
        let mut auto: Vec<(String, String)> = vec![
            ("BUILDPLATFORM".into(), bp.to_string()),
            ("BUILDOS".into(), bp.os.clone()),
            ("BUILDARCH".into(), bp.arch.clone()),
            ("BUILDVARIANT".into(), bp.variant.clone()),
            ("TARGETPLATFORM".into(), tp.to_string()),
            ("TARGETOS".into(), tp.os.clone()),
            ("TARGETARCH".into(), tp.arch.clone()),
            ("TARGETVARIANT".into(), tp.variant.clone()),
        ];
        for (k, v) in auto.iter_mut() {
            if let Some(b) = build_arg(opts, k) {
                *v = b;
            }
        }
        let mut env = VarList::from_pairs(auto.clone());
        let mut args: VarList<Option<String>> = VarList::default();
        let mut consumed: BTreeSet<String> = BTreeSet::new();
        for (node, decls) in meta {
            for d in decls {
                consumed.insert(d.name.clone());
                let value = match (build_arg(opts, &d.name), &d.default) {
                    (Some(v), _) => {
                        ctx.outside_value(&d.name, &v, node.span, "build arg")?;
                        Some(v)
                    }
                    (None, Some(def)) => {
                        let mut un = BTreeSet::new();
                        Some(ctx.word(def, &env, node.span, &mut un)?)
                    }
                    (None, None) => None,
                };
                if let Some(v) = &value {
                    env.set(&d.name, v.clone());
                } else {
                    env.remove(&d.name);
                }
                args.set_last(&d.name, value);
            }
        }
        Ok(Globals {
            auto,
            inherited: env.clone(),
            env,
            args: args.into_vec(),
            consumed,
        })
    }
}

/// Every stage with its base (a stage, an image or scratch), name and platform, and its steps'
/// sources: the ONBUILD triggers of a base stage first, then its own instructions. Image
/// bases are not resolved here.
fn lay_out(
    ctx: &Ctx,
    raw: &[RawStage],
    names: &StageNames,
    global_env: &VarList<String>,
    warnings: &mut Vec<Warning>,
) -> Result<(Vec<Stage>, Vec<Vec<StepSource>>), Diagnostic> {
    let loc = &ctx.loc;
    let mut stages: Vec<Stage> = Vec::new();
    let mut instrs: Vec<Vec<StepSource>> = Vec::new();
    let mut by_name_so_far: HashMap<String, usize> = HashMap::new();
    for (i, rs) in raw.iter().enumerate() {
        let span = rs.node.span;
        let mut un = BTreeSet::new();
        let image = ctx.word(&rs.image, global_env, span, &mut un)?;
        for name in &un {
            warnings.push(Warning {
                line: span.start,
                message: format!("UndefinedArgInFrom: FROM argument {name:?} is not declared"),
            });
        }
        if image.trim().is_empty() {
            return Err(loc.at(
                ErrorKind::BlankBaseName,
                span,
                Some(&rs.image),
                format!("base name ({}) should not be blank", rs.image),
                Some(
                    "declare the ARG before the first FROM with a default, or pass --build-arg"
                        .into(),
                ),
            ));
        }
        let platform = match &rs.platform {
            Some(p) => Some(ctx.word(p, global_env, span, &mut BTreeSet::new())?),
            None => None,
        };
        let display_name = names.names[i]
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"));
        let mut steps_src: Vec<StepSource> = Vec::new();
        let base = if let Some(r) = ctx.named.get(&image.to_lowercase()) {
            Base::Image {
                reference: r.clone(),
            }
        } else if image == "scratch" {
            Base::Scratch
        } else if let Some(&b) = by_name_so_far.get(&image.to_lowercase()) {
            // ONBUILD triggers the base stage declares run here.
            for (node, inst) in &raw[b].instrs {
                if let (Instruction::Onbuild { .. }, Some(next)) = (inst, &node.next) {
                    steps_src.push((
                        next.span,
                        from_node(next, loc)?,
                        true,
                        next.original.clone(),
                    ));
                }
            }
            Base::Stage {
                index: b,
                name: stages[b].display_name.clone(),
            }
        } else {
            Base::Image {
                reference: image.clone(),
            }
        };
        if let Some(n) = &names.names[i] {
            by_name_so_far.insert(n.clone(), i);
        }
        steps_src.extend(rs.instrs.iter().map(|(n, inst)| {
            (
                n.span,
                named_sources(&ctx.named, inst.clone()),
                false,
                n.original.clone(),
            )
        }));
        stages.push(Stage {
            index: i,
            name: names.names[i].clone(),
            display_name,
            base,
            platform,
            span,
            depends_on: Vec::new(),
            images: Vec::new(),
            needed: false,
            skip_reason: None,
            wave: None,
            waits_on_base: false,
            steps: Vec::new(),
            total_steps: 0,
            env: Vec::new(),
            onbuild: Vec::new(),
            args: Vec::new(),
        });
        instrs.push(steps_src);
    }
    Ok((stages, instrs))
}

/// Link the stages (`--from`, `--mount from=`, bases), mark what the target needs, and
/// resolve the needed stages' base images; a base image's ONBUILD triggers become the first
/// steps of its stage and may link more stages, so this repeats until nothing changes.
/// Returns each stage's resolved base image.
fn link(
    ctx: &Ctx,
    raw: &[RawStage],
    names: &StageNames,
    stages: &mut [Stage],
    instrs: &mut [Vec<StepSource>],
    target: usize,
    resolver: &dyn ImageResolver,
) -> Result<Vec<Option<BaseImage>>, Diagnostic> {
    let n = stages.len();
    let mut resolved: Vec<Option<BaseImage>> = vec![None; n];
    let mut asked = vec![false; n];
    loop {
        dependencies(&ctx.loc, stages, instrs, &names.by_name)?;
        mark_needed(stages, target);
        stage_typos(ctx, stages, instrs, names, resolver)?;
        let mut more = false;
        for i in 0..n {
            let Base::Image { reference } = &stages[i].base else {
                continue;
            };
            if !stages[i].needed || asked[i] {
                continue;
            }
            asked[i] = true;
            let platform = stage_platform(stages, i, &ctx.target_platform);
            let Some(cfg) = resolver.resolve_for(reference, &platform) else {
                stages[i].waits_on_base = true;
                continue;
            };
            let triggers = onbuild_triggers(ctx, &raw[i], reference, &cfg)?;
            more |= !triggers.is_empty();
            instrs[i].splice(0..0, triggers);
            resolved[i] = Some(cfg);
        }
        if !more {
            return Ok(resolved);
        }
    }
}

/// A stage's platform, as text: its FROM `--platform`, else its base stage's, else the
/// target platform (BuildKit: a stage built on another starts from that stage's state,
/// platform included).
fn stage_platform(stages: &[Stage], i: usize, target: &str) -> String {
    match (&stages[i].platform, &stages[i].base) {
        (Some(p), _) => p.clone(),
        (None, Base::Stage { index, .. }) if *index < i => stage_platform(stages, *index, target),
        _ => target.to_string(),
    }
}

/// `--from=NAME` and `--mount from=NAME` of a `--build-context` name: its image instead.
fn named_sources(named: &HashMap<String, String>, mut inst: Instruction) -> Instruction {
    if named.is_empty() {
        return inst;
    }
    let swap = |from: &mut Option<String>| {
        if let Some(r) = from.as_ref().and_then(|f| named.get(&f.to_lowercase())) {
            *from = Some(r.clone());
        }
    };
    match &mut inst {
        Instruction::Copy(c) => swap(&mut c.from),
        Instruction::Run(r) => r.mounts.iter_mut().for_each(|m| swap(&mut m.from)),
        _ => {}
    }
    inst
}

/// A bare image name in FROM, `COPY --from` or `RUN --mount from=` of a needed stage that
/// is one typo away from a stage's name and not in the store: an error naming the stage
/// (`did you mean builder?`) before anything is pulled, instead of a pull of
/// `docker.io/library/biulder` that can only fail.
fn stage_typos(
    ctx: &Ctx,
    stages: &[Stage],
    instrs: &[Vec<StepSource>],
    names: &StageNames,
    resolver: &dyn ImageResolver,
) -> Result<(), Diagnostic> {
    let stage_names: Vec<&str> = names.names.iter().flatten().map(String::as_str).collect();
    if stage_names.is_empty() {
        return Ok(());
    }
    let typo = |r: &str| -> Option<&str> {
        let bare = !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !bare {
            return None;
        }
        let m = did_you_mean(r, stage_names.iter().copied())?;
        (!resolver.is_local(r)).then_some(m)
    };
    let error = |span: Span, r: &str, m: &str| {
        ctx.loc.at(
            ErrorKind::StageNotFound,
            span,
            Some(r),
            format!("no stage or image named {r:?}: it is not a stage of this Dockerfile and not in the local store"),
            Some(format!("did you mean {m}? (the stage `AS {m}`)")),
        )
    };
    for (i, st) in stages.iter().enumerate() {
        if !st.needed {
            continue;
        }
        if let Base::Image { reference } = &st.base {
            if let Some(m) = typo(reference) {
                return Err(error(st.span, reference, m));
            }
        }
        for (span, inst, _, _) in &instrs[i] {
            let refs: Vec<&str> = match inst {
                Instruction::Copy(c) => c.from.as_deref().into_iter().collect(),
                Instruction::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
                _ => Vec::new(),
            };
            for r in refs {
                if names.by_name.contains_key(&r.to_lowercase()) {
                    continue;
                }
                if let Some(m) = typo(r) {
                    return Err(error(*span, r, m));
                }
            }
        }
    }
    Ok(())
}

/// A base image's ONBUILD triggers as steps of the stage built on it, located at its FROM.
fn onbuild_triggers(
    ctx: &Ctx,
    rs: &RawStage,
    image: &str,
    cfg: &BaseImage,
) -> Result<Vec<StepSource>, Diagnostic> {
    let span = rs.node.span;
    let mut out = Vec::new();
    for trig in &cfg.onbuild {
        let bad = |m: String| {
            ctx.loc.at(
                ErrorKind::InvalidArguments,
                span,
                Some(&rs.image),
                format!("invalid ONBUILD trigger {trig:?} in base image {image}: {m}"),
                None,
            )
        };
        let tdf = dockerfile::parse(trig).map_err(|e| bad(e.message))?;
        for n in &tdf.nodes {
            let inst = from_node(n, &Locator::new(trig)).map_err(|e| bad(e.message))?;
            out.push((span, inst, true, n.original.clone()));
        }
    }
    Ok(out)
}

/// Each stage's dependencies through its base, `--from` and `--mount from=`, and the
/// external images it reads; cycles are refused first (as BuildKit), then references to
/// later stages.
fn dependencies(
    loc: &Locator,
    stages: &mut [Stage],
    instrs: &[Vec<StepSource>],
    by_name: &HashMap<String, usize>,
) -> Result<(), Diagnostic> {
    let n = stages.len();
    let mut copy_deps: Vec<BTreeMap<usize, (Span, String)>> = vec![BTreeMap::new(); n];
    for i in 0..n {
        let mut images = BTreeSet::new();
        for (span, inst, _, _) in &instrs[i] {
            let mut refs: Vec<&str> = Vec::new();
            match inst {
                Instruction::Copy(c) => refs.extend(c.from.as_deref()),
                Instruction::Run(r) => {
                    refs.extend(r.mounts.iter().filter_map(|m| m.from.as_deref()))
                }
                _ => {}
            }
            for r in refs {
                if r.contains('$') {
                    return Err(loc.at(
                        ErrorKind::FromVariable,
                        *span,
                        Some(r),
                        format!("variable expansion is not supported for --from ({r})"),
                        Some("define a new stage with FROM using an ARG from the global scope, and copy from that stage".into()),
                    ));
                }
                let dep = if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
                    match r.parse::<usize>().ok().filter(|x| *x < n) {
                        Some(x) => Some(x),
                        None => {
                            return Err(loc.at(
                                ErrorKind::InvalidStageIndex,
                                *span,
                                Some(r),
                                format!("invalid stage index {r}"),
                                Some(format!("stage indexes go from 0 to {}", n - 1)),
                            ))
                        }
                    }
                } else {
                    by_name.get(&r.to_lowercase()).copied()
                };
                match dep {
                    Some(d) => {
                        copy_deps[i].entry(d).or_insert((*span, r.to_string()));
                    }
                    None => {
                        images.insert(r.to_string());
                    }
                }
            }
        }
        stages[i].images = images.into_iter().collect();
    }
    for (start, stage) in stages.iter().enumerate() {
        let mut visited = vec![false; n];
        let mut on_path = vec![false; n];
        if let Some((span, r)) = find_cycle(start, &copy_deps, &mut visited, &mut on_path) {
            return Err(loc.at(
                ErrorKind::CircularDependency,
                span,
                Some(&r),
                format!(
                    "circular dependency detected on stage: {}",
                    stage.display_name
                ),
                Some("stages may only copy from stages that do not copy back from them".into()),
            ));
        }
    }
    for i in 0..n {
        for (&d, (span, r)) in &copy_deps[i] {
            if d >= i {
                return Err(loc.at(
                    ErrorKind::ForwardReference,
                    *span,
                    Some(r),
                    format!(
                        "cannot copy from stage {:?}, it needs to be defined before current stage {:?}",
                        r, stages[i].display_name
                    ),
                    Some(format!("move stage {:?} above line {}", r, stages[i].span.start)),
                ));
            }
        }
    }
    for i in 0..n {
        let mut deps: BTreeSet<usize> = copy_deps[i].keys().copied().collect();
        if let Base::Stage { index, .. } = stages[i].base {
            deps.insert(index);
        }
        stages[i].depends_on = deps.into_iter().collect();
    }
    Ok(())
}

/// Mark the target and everything it depends on as needed.
fn mark_needed(stages: &mut [Stage], target: usize) {
    for s in stages.iter_mut() {
        s.needed = false;
    }
    let mut stack = vec![target];
    while let Some(s) = stack.pop() {
        if stages[s].needed {
            continue;
        }
        stages[s].needed = true;
        stack.extend(stages[s].depends_on.iter().copied());
    }
}

/// Say why each stage the target does not need is skipped, and group the needed ones by
/// depth: a stage's wave is one more than its deepest dependency's.
fn waves(stages: &mut [Stage], target: usize) -> Vec<Vec<usize>> {
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for i in 0..stages.len() {
        if !stages[i].needed {
            stages[i].skip_reason = Some(if i > target {
                format!(
                    "after the target stage {:?} and not needed by it",
                    stages[target].display_name
                )
            } else {
                format!(
                    "not needed by the target stage {:?}",
                    stages[target].display_name
                )
            });
            continue;
        }
        let w = stages[i]
            .depends_on
            .iter()
            .filter_map(|d| stages[*d].wave)
            .map(|w| w + 1)
            .max()
            .unwrap_or(0);
        stages[i].wave = Some(w);
        if waves.len() <= w {
            waves.resize(w + 1, Vec::new());
        }
        waves[w].push(i);
    }
    waves
}

/// The proxy build args given; they reach every RUN without an ARG line to locate an error
/// at, so their size is checked here.
fn proxy_args(opts: &PlanOptions) -> Result<Vec<(String, String)>, Diagnostic> {
    let proxy_args: Vec<(String, String)> = PROXY_ARGS
        .iter()
        .filter_map(|k| build_arg(opts, k).map(|v| (k.to_string(), v)))
        .collect();
    for (k, v) in &proxy_args {
        if v.len() > MAX_VALUE_LEN {
            return Err(unlocated(
                ErrorKind::TooLarge,
                format!(
                    "build arg {k} is longer than {} (the limit for one value)",
                    human_size(MAX_VALUE_LEN)
                ),
                limits_hint(),
            ));
        }
    }
    Ok(proxy_args)
}

/// BuildKit numbers the FROM of an image; `FROM scratch` and `FROM <stage>` are no step
/// (`FROM base AS b` + one COPY prints `[b 1/1] COPY ...`).
fn first_number(stage: &Stage) -> usize {
    usize::from(matches!(stage.base, Base::Image { .. }))
}

/// A stage that does not run: its steps shown as written; nothing is expanded.
fn show_as_written(stage: &mut Stage, src: Vec<StepSource>) {
    let mut number = first_number(stage);
    for (span, inst, trig, original) in src {
        if inst.creates_layer() {
            number += 1;
        }
        let n = inst.creates_layer().then_some(number);
        stage.steps.push(Step {
            span,
            number: n,
            progress: uppercase_keyword(&original),
            display: inst.display(),
            instruction: inst,
            onbuild_trigger: trig,
            waits_on_base: Vec::new(),
            args: Vec::new(),
            recorded_args: Vec::new(),
        });
    }
    stage.total_steps = number;
}

/// Expand needed stage `i`'s steps in its scope: the environment it starts with (its base
/// stage's or base image's), its base stage's ARG values, then each instruction in order.
fn expand_stage(
    ctx: &Ctx,
    stages: &mut [Stage],
    i: usize,
    src: Vec<StepSource>,
    resolved: &Option<BaseImage>,
    opts: &PlanOptions,
    globals: &mut Globals,
) -> Result<(), Diagnostic> {
    let mut number = first_number(&stages[i]);
    // A stage built FROM another stage starts with that stage's ARG values too.
    let parent_args = match &stages[i].base {
        Base::Stage { index, .. } => stages[*index].args.clone(),
        _ => Vec::new(),
    };
    let (env, env_known) = match &stages[i].base {
        Base::Scratch => (Vec::new(), true),
        Base::Stage { index, .. } => (stages[*index].env.clone(), !stages[*index].waits_on_base),
        Base::Image { .. } => match resolved {
            Some(cfg) => (cfg.env.clone(), true),
            None => (Vec::new(), false),
        },
    };
    // The inherited environment counts against the stage's limit.
    ctx.new_scope();
    let inherited_len: usize = env
        .iter()
        .chain(&parent_args)
        .map(|(k, v)| entry_len(k, v))
        .sum();
    ctx.spend(
        inherited_len,
        stages[i].span,
        None,
        &format!(
            "the environment stage {} starts with",
            stages[i].display_name
        ),
    )?;
    let mut scope = Scope {
        env: VarList::from_pairs(env),
        env_known,
        args: VarList::from_pairs(parent_args.into_iter().map(|(k, v)| (k, Some(v)))),
        arg_over_env: BTreeSet::new(),
    };
    let build_arg = |name: &str| build_arg(opts, name);
    // The ARG declarations of this stage in order, repeats included (the others in
    // `scope.args` are inherited): what a RUN's history line lists.
    let mut declared: Vec<String> = Vec::new();
    let mut onbuild = Vec::new();
    let stage = &mut stages[i];
    for (span, inst, trig, original) in src {
        let mut un = BTreeSet::new();
        let expanded = expand(
            ctx,
            inst,
            span,
            &mut scope,
            &mut un,
            &build_arg,
            &globals.inherited,
            &mut globals.consumed,
        )?;
        if let Instruction::Onbuild { trigger } = &expanded {
            onbuild.push(trigger.clone());
        }
        if let Instruction::Arg { args } = &expanded {
            declared.extend(args.iter().map(|d| d.name.clone()));
        }
        let n = if expanded.creates_layer() {
            number += 1;
            Some(number)
        } else {
            None
        };
        let waits_on_base = if scope.env_known {
            Vec::new()
        } else {
            un.into_iter().collect()
        };
        let (args, recorded_args) = if matches!(expanded, Instruction::Run(_)) {
            run_args(&scope, &declared)
        } else {
            (Vec::new(), Vec::new())
        };
        let len =
            |a: &[(String, String)]| -> usize { a.iter().map(|(k, v)| entry_len(k, v)).sum() };
        ctx.spend(
            len(&args).max(len(&recorded_args)),
            span,
            None,
            "the ARG values this RUN records",
        )?;
        let mut lexer = ctx.lexer();
        lexer.max_len = lexer.max_len.min(MAX_PROGRESS_NAME_LEN);
        let (progress, steps) = progress_name(&lexer, &original, &expanded, &scope);
        ctx.used_pattern_steps(steps);
        stage.steps.push(Step {
            span,
            number: n,
            progress,
            display: expanded.display(),
            instruction: expanded,
            onbuild_trigger: trig,
            waits_on_base,
            args,
            recorded_args,
        });
    }
    stage.total_steps = number;
    stage.env = scope.env.into_vec();
    stage.args = scope
        .args
        .into_vec()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    stage.onbuild = onbuild;
    if !scope.env_known {
        stage.waits_on_base = true;
    }
    Ok(())
}

/// What a RUN sees of the ARGs: as environment, the ones no later ENV of the same name hides;
/// for its history line (BuildKit's `runCommandString`), every ARG line of the stage so far
/// with the value the step sees (ENV first) or empty.
#[allow(clippy::type_complexity)]
fn run_args(scope: &Scope, declared: &[String]) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let args = scope
        .args
        .iter()
        .filter(|(k, _)| scope.env.get(k).is_none() || scope.arg_over_env.contains(k.as_str()))
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    let recorded = declared
        .iter()
        .map(|k| (k.clone(), scope.get_var(k).unwrap_or_default().to_string()))
        .collect();
    (args, recorded)
}

fn find_cycle(
    s: usize,
    deps: &[BTreeMap<usize, (Span, String)>],
    visited: &mut [bool],
    on_path: &mut [bool],
) -> Option<(Span, String)> {
    if visited[s] {
        return None;
    }
    visited[s] = true;
    on_path[s] = true;
    for (&d, (span, r)) in &deps[s] {
        if on_path[d] {
            return Some((*span, r.clone()));
        }
        if let Some(found) = find_cycle(d, deps, visited, on_path) {
            return Some(found);
        }
    }
    on_path[s] = false;
    None
}

#[allow(clippy::too_many_arguments)]
fn expand(
    ctx: &Ctx,
    inst: Instruction,
    span: Span,
    scope: &mut Scope,
    un: &mut BTreeSet<String>,
    build_arg: &dyn Fn(&str) -> Option<String>,
    inherited: &VarList<String>,
    consumed: &mut BTreeSet<String>,
) -> Result<Instruction, Diagnostic> {
    let loc = &ctx.loc;
    let kvs = |pairs: Vec<KeyValue>,
               scope: &Scope,
               un: &mut BTreeSet<String>|
     -> Result<Vec<KeyValue>, Diagnostic> {
        pairs
            .into_iter()
            .map(|p| {
                Ok(KeyValue {
                    key: ctx.word(&p.key, scope, span, un)?,
                    value: ctx.word(&p.value, scope, span, un)?,
                })
            })
            .collect()
    };
    Ok(match inst {
        Instruction::Env { vars } => {
            let vars = kvs(vars, scope, un)?;
            for v in &vars {
                if v.key.is_empty() {
                    return Err(loc.at(
                        ErrorKind::InvalidArguments,
                        span,
                        None,
                        "ENV names can not be blank",
                        None,
                    ));
                }
                scope.env.set(&v.key, v.value.clone());
                scope.arg_over_env.remove(&v.key);
            }
            Instruction::Env { vars }
        }
        Instruction::Label { labels } => Instruction::Label {
            labels: kvs(labels, scope, un)?,
        },
        Instruction::Arg { args } => {
            let mut out = Vec::new();
            for d in args {
                consumed.insert(d.name.clone());
                let fresh = match (build_arg(&d.name), &d.default) {
                    (Some(v), _) => {
                        ctx.outside_value(&d.name, &v, span, "build arg")?;
                        Some(v)
                    }
                    (None, Some(def)) => Some(ctx.word(def, scope, span, un)?),
                    (None, None) => match inherited.get(&d.name) {
                        Some(v) => {
                            ctx.outside_value(&d.name, v, span, "global ARG")?;
                            Some(v.clone())
                        }
                        None => None,
                    },
                };
                let value = match fresh {
                    Some(v) => {
                        scope.arg_over_env.insert(d.name.clone());
                        Some(v)
                    }
                    // BuildKit adds no value then: the one the stage already has (an
                    // earlier ARG, or the base stage's) stays.
                    None => scope.args.get(&d.name).cloned().flatten(),
                };
                scope.args.set_last(&d.name, value.clone());
                out.push(ArgDecl {
                    name: d.name,
                    default: value,
                });
            }
            Instruction::Arg { args: out }
        }
        Instruction::Expose { ports } => {
            let mut out = Vec::new();
            for p in ports {
                for w in ctx.words(&p, scope, span, un)? {
                    let list = expose_ports(&w).map_err(|m| {
                        loc.at(
                            ErrorKind::InvalidArguments,
                            span,
                            Some(&p),
                            m,
                            Some("ports look like 80, 80/tcp, 53/udp or 8000-8010".into()),
                        )
                    })?;
                    out.extend(list);
                }
            }
            Instruction::Expose { ports: out }
        }
        Instruction::Volume { paths } => {
            let mut out = Vec::new();
            for p in paths {
                let v = ctx.word(&p, scope, span, un)?;
                if v.trim().is_empty() {
                    return Err(loc.at(
                        ErrorKind::InvalidArguments,
                        span,
                        None,
                        "VOLUME specified can not be an empty string",
                        None,
                    ));
                }
                out.push(v);
            }
            Instruction::Volume { paths: out }
        }
        Instruction::User { user } => Instruction::User {
            user: ctx.word(&user, scope, span, un)?,
        },
        Instruction::Workdir { path } => Instruction::Workdir {
            path: ctx.word(&path, scope, span, un)?,
        },
        Instruction::StopSignal { signal } => Instruction::StopSignal {
            signal: ctx.word(&signal, scope, span, un)?,
        },
        Instruction::Copy(c) => Instruction::Copy(expand_copy(ctx, c, span, scope, un)?),
        Instruction::Add(c) => Instruction::Add(expand_copy(ctx, c, span, scope, un)?),
        Instruction::Run(mut r) => {
            for m in &mut r.mounts {
                for v in [&mut m.target, &mut m.source, &mut m.id, &mut m.env]
                    .into_iter()
                    .flatten()
                {
                    *v = ctx.word(v, scope, span, un)?;
                }
                if !m.spec.is_empty() {
                    m.spec = ctx.word(&m.spec, scope, span, un)?;
                }
            }
            Instruction::Run(r)
        }
        other => other,
    })
}

fn expand_copy(
    ctx: &Ctx,
    mut c: crate::instructions::Copy,
    span: Span,
    scope: &Scope,
    un: &mut BTreeSet<String>,
) -> Result<crate::instructions::Copy, Diagnostic> {
    let heredoc_names: Vec<&str> = c.heredocs.iter().map(|h| h.name.as_str()).collect();
    let is_heredoc = |w: &str| {
        w.strip_prefix("<<")
            .map(|rest| {
                let rest = rest.trim_start_matches('-').trim_matches(['"', '\'']);
                heredoc_names.contains(&rest)
            })
            .unwrap_or(false)
    };
    let mut sources = Vec::new();
    for s in &c.sources {
        if is_heredoc(s) {
            sources.push(s.clone());
        } else {
            sources.push(ctx.word(s, scope, span, un)?);
        }
    }
    c.sources = sources;
    c.dest = ctx.word(&c.dest, scope, span, un)?;
    for v in [&mut c.chown, &mut c.chmod, &mut c.checksum]
        .into_iter()
        .flatten()
    {
        *v = ctx.word(v, scope, span, un)?;
    }
    c.excludes = c
        .excludes
        .iter()
        .map(|e| ctx.word(e, scope, span, un))
        .collect::<Result<_, _>>()?;
    // Unquoted heredoc delimiters expand variables in the body (quotes stay as written),
    // as BuildKit does for COPY/ADD heredocs.
    for h in &mut c.heredocs {
        if h.expand {
            let mut lexer = ctx.lexer();
            lexer.skip_process_quotes = true;
            let r = lexer.process_word(&h.content, scope).map_err(|e| {
                let (kind, hint) = match e.kind {
                    ShellErrorKind::Syntax => (ErrorKind::Expansion, None),
                    ShellErrorKind::TooLong { .. } => (ErrorKind::TooLarge, limits_hint()),
                    ShellErrorKind::PatternTooCostly => (ErrorKind::TooLarge, pattern_hint()),
                };
                ctx.loc.at(
                    kind,
                    span,
                    None,
                    format!("failed to expand heredoc {}: {}", h.name, e.message),
                    hint,
                )
            })?;
            ctx.spend(
                r.value.len(),
                span,
                None,
                &format!("failed to expand heredoc {}", h.name),
            )?;
            ctx.used_pattern_steps(r.pattern_steps);
            un.extend(r.unmatched);
            h.content = r.value;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(source: &str) -> Ctx<'_> {
        Ctx {
            loc: Locator::new(source),
            lexer: ShellLexer::new('\\'),
            scope_used: Cell::new(0),
            plan_used: Cell::new(0),
            pattern_steps_left: Cell::new(MAX_PLAN_PATTERN_STEPS),
            named: HashMap::new(),
            target_platform: Platform::default().to_string(),
        }
    }

    #[test]
    fn pattern_steps_are_counted_over_the_plan() {
        let src = "FROM scratch\nENV x=${a%%b*****}\n";
        let ctx = ctx(src);
        ctx.pattern_steps_left.set(100_000);
        let vars = VarList::from_pairs([("a".to_string(), "a".repeat(2_000))]);
        let span = Span { start: 2, end: 2 };
        let mut un = BTreeSet::new();
        let word = "${a%%b*****}";
        // Each word takes about 2,000 × 6 steps: eight fit, the ninth runs out.
        let mut n = 0;
        let d = loop {
            match ctx.word(word, &vars, span, &mut un) {
                Ok(v) => assert_eq!(v.len(), 2_000),
                Err(d) => break d,
            }
            n += 1;
            assert!(n < 20, "the plan's pattern budget is not applied");
        };
        assert!((5..=9).contains(&n), "{n}");
        assert_eq!(d.kind, ErrorKind::TooLarge);
        assert_eq!((d.line, d.col), (2, 7));
        assert_eq!(
            d.message,
            "failed to process \"${a%%b*****}\": pattern matching takes too many steps"
        );
        assert!(d.hint.unwrap().contains("per build"));
    }

    #[test]
    fn stage_and_plan_bytes_are_counted() {
        let ctx = ctx("FROM scratch\nENV x=$a\n");
        let span = Span { start: 2, end: 2 };
        ctx.spend(MAX_STAGE_LEN, span, Some("$a"), "x").unwrap();
        let d = ctx
            .spend(1, span, Some("$a"), "failed to process \"$a\"")
            .unwrap_err();
        assert_eq!(
            d.message,
            "failed to process \"$a\": the stage's values would be more than 16 MiB (the limit for one stage)"
        );
        // A new stage starts from zero; the build's count (16 MiB + 1 so far) goes on.
        for _ in 0..2 {
            ctx.new_scope();
            ctx.spend(MAX_STAGE_LEN, span, None, "x").unwrap();
        }
        ctx.new_scope();
        let d = ctx.spend(MAX_STAGE_LEN, span, None, "x").unwrap_err();
        assert!(
            d.message
                .contains("more than 64 MiB (the limit for one build)"),
            "{}",
            d.message
        );
    }

    #[test]
    fn var_list_orders_like_env_and_arg() {
        let mut l = VarList::from_pairs([
            ("A".to_string(), "1".to_string()),
            ("B".into(), "2".into()),
            ("A".into(), "3".into()),
        ]);
        assert_eq!(l.get_var("A"), Some("3"));
        // ENV: replaced in place.
        l.set("B", "4".into());
        l.set("C", "5".into());
        // ARG redeclaration: moves last.
        l.set_last("A", "6".into());
        l.remove("nothing");
        assert_eq!(
            l.clone().into_vec(),
            vec![
                ("B".to_string(), "4".to_string()),
                ("C".into(), "5".into()),
                ("A".into(), "6".into())
            ]
        );
        // Holes are compacted and the index still finds everything.
        for i in 0..1000 {
            l.set_last(&format!("V{}", i % 10), i.to_string());
        }
        assert!(l.entries.len() <= 2 * l.index.len().max(32));
        assert_eq!(l.get_var("V3"), Some("993"));
        assert_eq!(l.get_var("B"), Some("4"));
        let names: Vec<&String> = l.iter().map(|(k, _)| k).collect();
        assert_eq!(names.len(), 13);
        assert_eq!(names.last().map(|s| s.as_str()), Some("V9"));
        l.remove("B");
        assert_eq!(l.get_var("B"), None);
        assert_eq!(l.iter().count(), 12);
    }

    #[test]
    fn stage_names() {
        assert!(is_valid_stage_name("build-1.x_y"));
        assert!(!is_valid_stage_name("1build"));
        assert!(!is_valid_stage_name("b@d"));
        assert!(!is_valid_stage_name(""));
    }

    #[test]
    fn expose_specs() {
        assert_eq!(expose_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(expose_ports("8000-8002").unwrap().len(), 3);
        assert!(expose_ports("80/xyz").unwrap_err().contains("xyz"));
        assert!(expose_ports("http").is_err());
    }

    #[test]
    fn frontends() {
        assert!(is_standard_frontend("docker/dockerfile:1"));
        assert!(is_standard_frontend("docker.io/docker/dockerfile:1.7-labs"));
        assert!(is_standard_frontend("docker/dockerfile@sha256:abc"));
        assert!(!is_standard_frontend("tonistiigi/dockerfile:foo"));
    }
}
