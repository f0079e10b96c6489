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
}

impl Plan {
    pub fn target_stage(&self) -> &Stage {
        &self.stages[self.target]
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

/// Plan a build of `source` (a Dockerfile's text).
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
    };
    let loc = &ctx.loc;
    let mut warnings: Vec<Warning> = df
        .warnings
        .iter()
        .map(|w| Warning {
            line: w.line,
            message: w.message.clone(),
        })
        .collect();

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

    for (k, _) in &opts.build_args {
        if k.is_empty() {
            return Err(unlocated(
                ErrorKind::InvalidBuildArg,
                "build arg names can not be blank",
                Some("write --build-arg NAME=VALUE".into()),
            ));
        }
    }
    let build_arg = |name: &str| -> Option<String> {
        opts.build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    // Split into the global section and stages; type every instruction.
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

    // Stage names, the target, TARGETSTAGE.
    let mut names: Vec<Option<String>> = Vec::new();
    let mut by_name_all: HashMap<String, usize> = HashMap::new();
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
            if let Some(prev) = by_name_all.insert(n.clone(), i) {
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
    let target = match &opts.target {
        None => raw.len() - 1,
        Some(t) => match by_name_all.get(&t.to_lowercase()) {
            Some(i) => *i,
            None => {
                let hint = did_you_mean(t, by_name_all.keys().map(String::as_str))
                    .map(|s| format!("did you mean {s}?"))
                    .or_else(|| {
                        let mut all: Vec<&str> = by_name_all.keys().map(String::as_str).collect();
                        all.sort();
                        (!all.is_empty()).then(|| format!("stages are: {}", all.join(", ")))
                    });
                return Err(unlocated(
                    ErrorKind::TargetNotFound,
                    format!("target stage {t:?} could not be found"),
                    hint,
                ));
            }
        },
    };
    let target_stage_name = names[target].clone().unwrap_or_else(|| "default".into());

    // Global scope: automatic platform args, then the global ARGs.
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
        if let Some(b) = build_arg(k) {
            *v = b;
        }
    }
    let mut global_env = VarList::from_pairs(auto.clone());
    let mut global_args: VarList<Option<String>> = VarList::default();
    let mut consumed: BTreeSet<String> = BTreeSet::new();
    for (node, decls) in &meta {
        for d in decls {
            consumed.insert(d.name.clone());
            let value = match (build_arg(&d.name), &d.default) {
                (Some(v), _) => {
                    ctx.outside_value(&d.name, &v, node.span, "build arg")?;
                    Some(v)
                }
                (None, Some(def)) => {
                    let mut un = BTreeSet::new();
                    Some(ctx.word(def, &global_env, node.span, &mut un)?)
                }
                (None, None) => None,
            };
            if let Some(v) = &value {
                global_env.set(&d.name, v.clone());
            } else {
                global_env.remove(&d.name);
            }
            global_args.set_last(&d.name, value);
        }
    }
    let global_args = global_args.into_vec();
    // What an in-stage `ARG NAME` with no default and no build arg inherits.
    let mut inherited = global_env.clone();
    inherited.set("TARGETSTAGE", target_stage_name.clone());

    // Bases, names, ONBUILD triggers.
    let mut stages: Vec<Stage> = Vec::new();
    let mut instrs: Vec<Vec<(Span, Instruction, bool, String)>> = Vec::new();
    let mut by_name_so_far: HashMap<String, usize> = HashMap::new();
    let mut resolved: Vec<Option<BaseImage>> = Vec::new();
    for (i, rs) in raw.iter().enumerate() {
        let span = rs.node.span;
        let mut un = BTreeSet::new();
        let image = ctx.word(&rs.image, &global_env, span, &mut un)?;
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
            Some(p) => Some(ctx.word(p, &global_env, span, &mut BTreeSet::new())?),
            None => None,
        };
        let display_name = names[i].clone().unwrap_or_else(|| format!("stage-{i}"));
        let mut steps_src: Vec<(Span, Instruction, bool, String)> = Vec::new();
        let mut waits = false;
        let mut base_image = None;
        let base = if image == "scratch" {
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
            match resolver.resolve(&image) {
                Some(cfg) => {
                    for trig in &cfg.onbuild {
                        let bad = |m: String| {
                            loc.at(
                                ErrorKind::InvalidArguments,
                                span,
                                Some(&rs.image),
                                format!(
                                    "invalid ONBUILD trigger {trig:?} in base image {image}: {m}"
                                ),
                                None,
                            )
                        };
                        let tdf = dockerfile::parse(trig).map_err(|e| bad(e.message))?;
                        for n in &tdf.nodes {
                            let inst =
                                from_node(n, &Locator::new(trig)).map_err(|e| bad(e.message))?;
                            steps_src.push((span, inst, true, n.original.clone()));
                        }
                    }
                    base_image = Some(cfg);
                }
                None => waits = true,
            }
            Base::Image {
                reference: image.clone(),
            }
        };
        if let Some(n) = &names[i] {
            by_name_so_far.insert(n.clone(), i);
        }
        steps_src.extend(
            rs.instrs
                .iter()
                .map(|(n, inst)| (n.span, inst.clone(), false, n.original.clone())),
        );
        stages.push(Stage {
            index: i,
            name: names[i].clone(),
            display_name,
            base,
            platform,
            span,
            depends_on: Vec::new(),
            images: Vec::new(),
            needed: false,
            skip_reason: None,
            wave: None,
            waits_on_base: waits,
            steps: Vec::new(),
            total_steps: 0,
            env: Vec::new(),
            onbuild: Vec::new(),
            args: Vec::new(),
        });
        instrs.push(steps_src);
        resolved.push(base_image);
    }

    // Dependencies through --from and --mount from=.
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
                    by_name_all.get(&r.to_lowercase()).copied()
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

    // Cycles first (as BuildKit), then references to later stages.
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

    // Prune to the target; waves of concurrently runnable stages.
    let mut stack = vec![target];
    while let Some(s) = stack.pop() {
        if stages[s].needed {
            continue;
        }
        stages[s].needed = true;
        stack.extend(stages[s].depends_on.iter().copied());
    }
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
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

    // Expand each needed stage in its scope.
    let proxy_args: Vec<(String, String)> = PROXY_ARGS
        .iter()
        .filter_map(|k| build_arg(k).map(|v| (k.to_string(), v)))
        .collect();
    // Proxy args reach every RUN without an ARG line to locate an error at.
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
    for i in 0..n {
        // BuildKit numbers the FROM of an image; `FROM scratch` and `FROM <stage>` are no
        // step (`FROM base AS b` + one COPY prints `[b 1/1] COPY ...`).
        let numbered_from = matches!(stages[i].base, Base::Image { .. });
        let mut number = usize::from(numbered_from);
        let src = std::mem::take(&mut instrs[i]);
        if !stages[i].needed {
            // Shown as written; nothing is expanded for a stage that does not run.
            for (span, inst, trig, original) in src {
                if inst.creates_layer() {
                    number += 1;
                }
                let n = inst.creates_layer().then_some(number);
                stages[i].steps.push(Step {
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
            stages[i].total_steps = number;
            continue;
        }
        // A stage built FROM another stage starts with that stage's ARG values too.
        let parent_args = match &stages[i].base {
            Base::Stage { index, .. } => stages[*index].args.clone(),
            _ => Vec::new(),
        };
        let (env, env_known) = match &stages[i].base {
            Base::Scratch => (Vec::new(), true),
            Base::Stage { index, .. } => {
                (stages[*index].env.clone(), !stages[*index].waits_on_base)
            }
            Base::Image { .. } => match &resolved[i] {
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
        // The ARG declarations of this stage in order, repeats included (the others in
        // `scope.args` are inherited): what a RUN's history line lists.
        let mut declared: Vec<String> = Vec::new();
        let mut onbuild = Vec::new();
        for (span, inst, trig, original) in src {
            let mut un = BTreeSet::new();
            let expanded = expand(
                &ctx,
                inst,
                span,
                &mut scope,
                &mut un,
                &build_arg,
                &inherited,
                &mut consumed,
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
            // Only RUN sees ARGs as environment (and writes them into its history line): the
            // ones no later ENV of the same name hides.
            let args: Vec<(String, String)> = if matches!(expanded, Instruction::Run(_)) {
                scope
                    .args
                    .iter()
                    .filter(|(k, _)| {
                        scope.env.get(k).is_none() || scope.arg_over_env.contains(k.as_str())
                    })
                    .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
                    .collect()
            } else {
                Vec::new()
            };
            // BuildKit's `runCommandString`: every ARG line of the stage so far, with the
            // value the step sees (ENV first) or empty.
            let recorded_args: Vec<(String, String)> = if matches!(expanded, Instruction::Run(_)) {
                declared
                    .iter()
                    .map(|k| (k.clone(), scope.get_var(k).unwrap_or_default().to_string()))
                    .collect()
            } else {
                Vec::new()
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
            stages[i].steps.push(Step {
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
        stages[i].total_steps = number;
        stages[i].env = scope.env.into_vec();
        stages[i].args = scope
            .args
            .into_vec()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        stages[i].onbuild = onbuild;
        if !scope.env_known {
            stages[i].waits_on_base = true;
        }
    }

    let unused_build_args = opts
        .build_args
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            !consumed.contains(k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !auto.iter().any(|(a, _)| a == k)
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    Ok(Plan {
        syntax,
        global_args,
        stages,
        target,
        waves,
        proxy_args,
        unused_build_args,
        warnings,
        escape: df.directives.escape,
    })
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
