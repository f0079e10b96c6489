//! BuildKit's Dockerfile checks (`docker build --check`), exactly: the 22 rules of
//! `frontend/dockerfile/linter` with their names, descriptions, messages and URLs, the
//! `# check=` directive, the `BUILDKIT_DOCKERFILE_CHECK` build arg and per-instruction
//! `# check=skip=` comments. Pure: it reads the Dockerfile text, the `.dockerignore` text,
//! the build args and what a [`BaseImages`] provider knows of base images.
//!
//! The order of work follows BuildKit's check mode (`DockerfileLint`, every stage linted):
//! parse (empty continuation lines), instructions (MAINTAINER, FROM casing, definition
//! comments), stage names, instruction casing, global ARG defaults in FROM, FROM expansion
//! (undeclared ARGs, platform flag), base images (platform), then each stage's
//! instructions in file order with its environment (undefined variables, ENV/LABEL format,
//! secrets, WORKDIR, CMD/ENTRYPOINT/HEALTHCHECK, EXPOSE, COPY of ignored files).
//!
//! Known differences from BuildKit, none covered by its check tests: instruction errors use
//! `plan`'s texts (e.g. `unknown flag: --x` where BuildKit says `unknown flag: x`); errors
//! BuildKit finds while building its LLB graph (`COPY --from` a later stage, circular stage
//! dependencies, invalid EXPOSE ports, named contexts) are not reported; an invalid base image
//! reference is reported without distribution/reference's detail; a trigger that is itself
//! `ONBUILD`, `FROM` or `MAINTAINER` is not rejected.

use std::collections::{BTreeSet, HashMap};

use dockerfile::shell::{ShellLexer, Vars};
use dockerfile::{Dockerfile, Node};

pub mod fix;
pub mod practices;
pub mod rules;
mod syntax;

pub use rules::Rule;
use syntax::{parse_platform, search, valid_reference, Platform};

/// One finding, as BuildKit reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static str,
    pub description: &'static str,
    /// `https://docs.docker.com/go/dockerfile/rule/...`; empty for InvalidBaseImagePlatform.
    pub url: String,
    pub detail: String,
    /// 1-based physical lines of the instruction (of the FROM line for stage rules).
    pub line: usize,
    pub end_line: usize,
}

impl Warning {
    /// BuildKit's progress line: `Rule: detail (line N)`.
    pub fn short(&self) -> String {
        format!("{}: {} (line {})", self.rule, self.detail, self.line)
    }
}

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Sorted by (line, detail), as BuildKit's check output.
    pub warnings: Vec<Warning>,
    /// The check failed: a lint violation with `error=true` (`lint violation found for
    /// rules: ...`), or an error BuildKit would stop at (parse error, bad platform, ...).
    pub error: Option<String>,
    /// True when `error` is the `error=true` lint violation.
    pub lint_error: bool,
    /// Base images the provider did not know: rules needing their config (UndefinedVar
    /// with the image's ENV, JSONArgsRecommended with its SHELL, InvalidBaseImagePlatform)
    /// treated them as empty.
    pub unresolved_images: Vec<String>,
    /// strata's own rules' findings (when [`Input::practices`] asked for them), sorted by
    /// (line, detail). They never count for `error=true`.
    pub practices: Vec<Warning>,
}

/// What the checker needs to know of a base image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// Config Env, in order.
    pub env: Vec<(String, String)>,
    /// The config has a SHELL.
    pub has_shell: bool,
    /// `os/arch[/variant]` of the image, when known.
    pub platform: Option<String>,
    /// Config OnBuild triggers, as written (`RUN echo hi`): a stage the target reaches runs
    /// them first, and they are checked there.
    pub onbuild: Vec<String>,
    /// Config User (empty: root); read by strata's own `strata/RootUser`.
    pub user: String,
}

/// What a base image's layers hold of compilers and build tools, measured
/// (`strata/ToolchainFinalStage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolchainScan {
    /// The toolchains found ([`toolchain_of`]'s names), sorted.
    pub tools: Vec<String>,
    /// Bytes of their files: what a runtime base without them would not carry.
    pub tool_bytes: u64,
    /// Bytes of every regular file of the image's layers.
    pub image_bytes: u64,
}

impl ToolchainScan {
    /// Count one regular file of `size` bytes at `path` (a layer member's name).
    pub fn add(&mut self, path: &str, size: u64) {
        self.image_bytes += size;
        if let Some(t) = toolchain_of(path) {
            self.tool_bytes += size;
            if !self.tools.iter().any(|x| x == t) {
                self.tools.push(t.to_string());
                self.tools.sort();
            }
        }
    }
}

/// The toolchain a file of an image belongs to, by where toolchains install themselves:
/// GCC's and LLVM's libraries and drivers, Go's and Rust's trees, a JDK's compiler and
/// modules, Maven and Gradle.
pub fn toolchain_of(path: &str) -> Option<&'static str> {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    let prefixes: [(&str, &str); 9] = [
        ("usr/lib/gcc/", "gcc"),
        ("usr/libexec/gcc/", "gcc"),
        ("usr/lib/llvm-", "llvm"),
        ("usr/local/go/", "go"),
        ("usr/local/cargo/", "rust"),
        ("usr/local/rustup/", "rust"),
        ("usr/share/maven/", "maven"),
        ("opt/gradle/", "gradle"),
        ("usr/local/lib/gradle", "gradle"),
    ];
    if let Some((_, t)) = prefixes.iter().find(|(pre, _)| p.starts_with(pre)) {
        return Some(t);
    }
    let file = p.rsplit('/').next().unwrap_or(p);
    if p.contains("/jmods/") || (p.contains("/bin/") && file == "javac") {
        return Some("jdk");
    }
    if p.starts_with("usr/bin/")
        && (file.starts_with("gcc")
            || file.starts_with("g++")
            || file.starts_with("x86_64-linux-gnu-gcc"))
    {
        return Some("gcc");
    }
    None
}

/// Answers for base images (the CLI answers from the store).
pub trait BaseImages {
    /// The config of `reference` (as written after ARG expansion), or `None` if unknown.
    fn image(&self, reference: &str) -> Option<BaseImage>;
    /// What the layers of `reference` hold of toolchains, or `None` when the image is not
    /// at hand (the rule then judges by the name).
    fn toolchain(&self, _reference: &str) -> Option<ToolchainScan> {
        None
    }
}

/// A provider that knows no image.
pub struct NoImages;

impl BaseImages for NoImages {
    fn image(&self, _reference: &str) -> Option<BaseImage> {
        None
    }
}

/// The input of a check.
pub struct Input<'a> {
    pub dockerfile: &'a str,
    /// The context's `.dockerignore`, if it has one.
    pub dockerignore: Option<&'a str>,
    /// `--build-arg K=V`, in order (the last value of a key wins).
    pub build_args: &'a [(String, String)],
    pub images: &'a dyn BaseImages,
    /// `--target`: the stage built (default: the last one).
    pub target: Option<&'a str>,
    /// What BuildKit lints: [`Mode::Check`] (`docker build --check`) or [`Mode::Build`] (the
    /// warnings of a normal build).
    pub mode: Mode,
    /// Also run strata's own rules (the tutorials' best practices, [`practices`]); their
    /// findings come back apart, in [`Report::practices`].
    pub practices: bool,
    /// For `strata/NoDockerignore`: entries at the context's root that rarely belong in a
    /// build (`.git`, `node_modules`, ...), with their sizes in bytes; the caller lists them
    /// ([`practices::HEAVY_ENTRIES`]).
    pub context_entries: &'a [(String, u64)],
}

/// Which stages are dispatched, and so which stages' instruction rules run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `docker build --check`: every stage when no target is given (BuildKit's `AllStages`),
    /// else the stages the target needs.
    #[default]
    Check,
    /// A build: only the stages the target needs are dispatched (their ENV, COPY, CMD, ...
    /// rules run; the parse-time rules such as FromAsCasing still see every stage).
    Build,
}

impl Default for Input<'_> {
    fn default() -> Self {
        Input {
            dockerfile: "",
            dockerignore: None,
            build_args: &[],
            images: &NoImages,
            target: None,
            mode: Mode::Check,
            practices: false,
            context_entries: &[],
        }
    }
}

/// BuildKit's default PATH for Linux stages whose base config has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Args that never reach the environment (BuildKit's `nonEnvArgs`).
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

// ---------------------------------------------------------------------------------------
// Configuration: `# check=`, BUILDKIT_DOCKERFILE_CHECK, per-instruction comments
// ---------------------------------------------------------------------------------------

/// BuildKit's linter configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub skip_all: bool,
    pub skip: BTreeSet<String>,
    pub experimental_all: bool,
    pub experimental: BTreeSet<String>,
    pub error: bool,
}

impl Config {
    /// `skip=A,B|all;error=true;experimental=C|all` (BuildKit's `ParseLintOptions`).
    pub fn parse(s: &str) -> Result<Config, String> {
        let s = s.trim();
        let mut c = Config::default();
        if s.is_empty() {
            return Ok(c);
        }
        for p in s.splitn(3, ';') {
            let Some((k, v)) = p.split_once('=') else {
                return Err(format!("invalid check option {}", go_quote(p)));
            };
            let list = |v: &str| -> BTreeSet<String> {
                v.split(',').map(|r| r.trim().to_string()).collect()
            };
            match k.trim() {
                "skip" => {
                    let v = v.trim();
                    if v == "all" {
                        c.skip_all = true;
                    } else {
                        c.skip = list(v);
                    }
                }
                "experimental" => {
                    let v = v.trim();
                    if v == "all" {
                        c.experimental_all = true;
                    } else {
                        c.experimental = list(v);
                    }
                }
                "error" => {
                    let v = v.trim();
                    c.error = match v {
                        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                        "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                        _ => {
                            return Err(format!(
                                "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                                go_quote(p),
                                go_quote(v)
                            ))
                        }
                    };
                }
                k => return Err(format!("invalid check option {}", go_quote(k))),
            }
        }
        Ok(c)
    }

    /// `WithMergedConfig`: skips and experimental rules added, never removed.
    fn merged(&self, other: &Config) -> Config {
        let mut c = self.clone();
        c.skip_all |= other.skip_all;
        c.experimental_all |= other.experimental_all;
        c.skip.extend(other.skip.iter().cloned());
        c.experimental.extend(other.experimental.iter().cloned());
        c
    }

    /// `WithMergedConfigFromComments`: the first `check=` comment above an instruction.
    fn with_comments(&self, comments: &[String]) -> Config {
        for comment in comments {
            let Some((key, value)) = directive(comment) else {
                continue;
            };
            if key != "check" {
                continue;
            }
            let v = value.split(' ').next().unwrap_or("");
            return match Config::parse(v) {
                Ok(other) => self.merged(&other),
                Err(_) => self.clone(),
            };
        }
        self.clone()
    }

    fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.contains(rule.name)
        } else {
            !(self.skip_all || self.skip.contains(rule.name))
        }
    }
}

/// BuildKit's directive regexp on a comment's text (`#` already removed):
/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` after leading white space, key one of
/// syntax/escape/check (lower-cased).
fn directive(text: &str) -> Option<(String, &str)> {
    let s = text.trim_start();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let (key, rest) = s.split_at(end);
    let rest = rest
        .trim_start_matches(is_re_space)
        .strip_prefix('=')?
        .trim_start_matches(is_re_space);
    let value = rest.trim_end_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "syntax" | "escape" | "check").then_some((key, value))
}

fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0C}' | '\r' | ' ')
}

/// Go's `%q` of a string.
pub fn go_quote(s: &str) -> String {
    escape::quote(s.as_bytes())
}

// ---------------------------------------------------------------------------------------
// The linter
// ---------------------------------------------------------------------------------------

struct Lint {
    warnings: Vec<Warning>,
    /// Rules that fired, in order of first firing.
    called: Vec<&'static str>,
}

impl Lint {
    fn run(&mut self, cfg: &Config, rule: &Rule, span: (usize, usize), detail: String) {
        if !cfg.enabled(rule) {
            return;
        }
        if !self.called.contains(&rule.name) {
            self.called.push(rule.name);
        }
        self.warnings.push(Warning {
            rule: rule.name,
            description: rule.description,
            url: rule.url(),
            detail,
            line: span.0,
            end_line: span.1,
        });
    }
}

fn span(n: &Node) -> (usize, usize) {
    (n.span.start, n.span.end)
}

/// The keyword as written (BuildKit's `node.Value`).
fn keyword(n: &Node) -> &str {
    n.original
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
}

/// An ordered environment: BuildKit's LLB state env (`AddEnv` replaces in place), with a
/// name index so that a stage with many variables costs linear time.
#[derive(Clone, Debug, Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, k: &str, v: &str) {
        match self.index.get(k) {
            Some(&i) => self.vars[i].1 = v.to_string(),
            None => {
                self.index.insert(k.to_string(), self.vars.len());
                self.vars.push((k.to_string(), v.to_string()));
            }
        }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.index.get(k).map(|&i| self.vars[i].1.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.vars.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl Vars for Env {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// A stage as BuildKit's `instructions.Parse` makes it.
struct Stage<'a> {
    from: &'a Node,
    /// `AS` name, lower-cased.
    name: Option<String>,
    base_name: String,
    platform: Option<String>,
    commands: Vec<&'a Node>,
}

/// The state a stage's instructions are dispatched in.
#[derive(Clone, Default)]
struct State {
    env: Env,
    /// ARG keys declared in the stage (and its base stage).
    build_args: Vec<String>,
    has_shell: bool,
    workdir_set: bool,
    platform: Platform,
}

/// Check a Dockerfile.
pub fn check(input: &Input) -> Report {
    let mut report = Report::default();
    let mut lint = Lint {
        warnings: Vec::new(),
        called: Vec::new(),
    };
    let result = run(input, &mut lint, &mut report);
    lint.warnings
        .sort_by(|a, b| (a.line, &a.detail).cmp(&(b.line, &b.detail)));
    report.warnings = lint.warnings;
    match result {
        Err(e) => report.error = Some(e),
        Ok(cfg) => {
            if cfg.error && !lint.called.is_empty() {
                report.error = Some(format!(
                    "lint violation found for rules: {}",
                    lint.called.join(", ")
                ));
                report.lint_error = true;
            }
        }
    }
    report
}

fn build_arg<'a>(args: &'a [(String, String)], key: &str) -> Option<&'a str> {
    args.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The parse and dispatch; returns the file's configuration, or the error BuildKit stops at.
fn run(input: &Input, lint: &mut Lint, report: &mut Report) -> Result<Config, String> {
    if input.dockerfile.is_empty() {
        return Err("the Dockerfile cannot be empty".into());
    }
    let df = dockerfile::parse(input.dockerfile).map_err(|e| e.message)?;
    let cfg = match build_arg(input.build_args, "BUILDKIT_DOCKERFILE_CHECK") {
        Some(v) => Config::parse(v),
        None => Config::parse(df.directives.check.as_ref().map_or("", |(v, _)| v)),
    }
    .map_err(|e| format!("failed to parse check options: {e}"))?;

    for w in &df.warnings {
        lint.run(
            &cfg,
            &rules::NO_EMPTY_CONTINUATION,
            (w.line, w.line),
            "Empty continuation line".into(),
        );
    }

    let (stages, meta_args) = parse_instructions(&df, input.dockerfile, &cfg, lint)?;
    if stages.is_empty() {
        return Err("dockerfile contains no stages to build".into());
    }
    stage_names(&stages, &cfg, lint);
    command_casing(&stages, &cfg, lint);

    let lex = ShellLexer::new(df.directives.escape);
    let target_platform = Platform::default();
    let target = match input.target {
        Some(t) => Some(t.to_lowercase()),
        None => stages.last().and_then(|s| s.name.clone()),
    };
    let mut defaults = Env::default();
    for (k, v) in [
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDOSVERSION", ""),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETOSVERSION", ""),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
        ("TARGETSTAGE", target.as_deref().unwrap_or("default")),
    ] {
        let v = build_arg(input.build_args, k).unwrap_or(v);
        defaults.set(k, v);
    }

    // Base images with the global ARGs' defaults only.
    if let Ok((args, _)) = meta_args_env(&defaults, &lex, &meta_args, &[]) {
        for st in &stages {
            let Ok(r) = lex.process_word(&st.base_name, &args) else {
                break;
            };
            if !valid_reference(&r.value) {
                lint.run(
                    &cfg,
                    &rules::INVALID_DEFAULT_ARG_IN_FROM,
                    span(st.from),
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        st.base_name
                    ),
                );
            }
        }
    }
    let (global, all_args) = meta_args_env(&defaults, &lex, &meta_args, input.build_args)?;
    let mut from_keys: BTreeSet<String> = all_args.iter().cloned().collect();
    from_keys.extend(global.keys().into_iter().map(str::to_string));
    let from_keys: Vec<&str> = from_keys.iter().map(String::as_str).collect();

    // FROM lines.
    let mut bases: Vec<(String, Option<Platform>)> = Vec::new();
    for st in &stages {
        let scfg = cfg.with_comments(&st.from.comments);
        let loc = span(st.from);
        let r = lex.process_word(&st.base_name, &global);
        if let Ok(r) = &r {
            undefined_from_args(&r.unmatched, &from_keys, &scfg, loc, lint);
        }
        let r = r.map_err(|e| e.message)?;
        if r.value.is_empty() {
            return Err(format!("base name ({}) should not be blank", st.base_name));
        }
        let mut platform = None;
        if let Some(v) = &st.platform {
            let pm = lex.process_word(v, &global);
            if let Ok(pm) = &pm {
                undefined_from_args(&pm.unmatched, &from_keys, &scfg, loc, lint);
                if pm.matched.len() == 1
                    && pm.unmatched.is_empty()
                    && pm.matched.contains("TARGETPLATFORM")
                    && global.get("TARGETPLATFORM") == Some(pm.value.as_str())
                {
                    lint.run(
                        &scfg,
                        &rules::REDUNDANT_TARGET_PLATFORM,
                        loc,
                        format!("Setting platform to predefined {v} in FROM is redundant as this is the default behavior"),
                    );
                }
                if pm.matched.is_empty() && pm.unmatched.is_empty() {
                    if let Ok(p) = parse_platform(&pm.value) {
                        let name = st.name.as_deref().unwrap_or("");
                        if !name.contains(&p.os) && !name.contains(&p.arch) {
                            lint.run(
                                &scfg,
                                &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                                loc,
                                format!(
                                    "FROM --platform flag should not use constant value {}",
                                    go_quote(&pm.value)
                                ),
                            );
                        }
                    }
                }
            }
            let pm = pm
                .map_err(|e| format!("failed to process arguments for platform : {}", e.message))?;
            let keys = global.keys();
            let suggest = |err: String| -> String {
                for k in &pm.unmatched {
                    if let Some(m) = search(k, &keys, true) {
                        return format!("{err} (did you mean {m}?)");
                    }
                }
                err
            };
            if pm.value.is_empty() {
                return Err(suggest(format!("empty platform value from expression {v}")));
            }
            match parse_platform(&pm.value) {
                Ok(p) => platform = Some(p),
                Err(e) => return Err(format!("failed to parse platform {v}: {}", suggest(e))),
            }
        }
        bases.push((r.value, platform));
    }

    // Base images, then each stage in file order.
    let ignore = match input.dockerignore {
        Some(t) => {
            Some(context::Matcher::from_ignore_file(t.as_bytes()).map_err(|e| e.to_string())?)
        }
        None => None,
    }
    .filter(|m| !m.is_empty());
    let mut states: Vec<State> = Vec::new();
    // Stage names (lower-cased) to the latest stage of that name, as BuildKit's map.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut parents = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        parents.push(by_name.get(bases[i].0.as_str()).copied());
        if let Some(name) = st.name.as_deref() {
            by_name.insert(name, i);
        }
    }
    let target_index = match input.target {
        None => stages.len() - 1,
        Some(t) => match by_name.get(t.to_lowercase().as_str()) {
            Some(&i) => i,
            None => {
                let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
                let mut msg = format!("target stage {} could not be found", go_quote(t));
                if let Some(m) = search(t, &names, true) {
                    msg.push_str(&format!(" (did you mean {m}?)"));
                }
                return Err(msg);
            }
        },
    };
    let reachable = reachable(&stages, &parents, &by_name, target_index);
    // BuildKit's AllStages: a check without a target dispatches every stage.
    let all_stages = input.mode == Mode::Check && input.target.is_none();
    for (i, st) in stages.iter().enumerate() {
        if !all_stages && !reachable[i] {
            states.push(State::default());
            continue;
        }
        let (base, platform) = &bases[i];
        let parent = parents[i];
        // ONBUILD triggers: the base stage's ONBUILD instructions or the base image's.
        let mut triggers: Vec<String> = match parent {
            Some(p) => stages[p]
                .commands
                .iter()
                .filter(|n| n.keyword == "onbuild")
                .map(|n| n.rest.clone())
                .collect(),
            None => Vec::new(),
        };
        let mut state = match parent {
            Some(p) => states[p].clone(),
            None => {
                let mut s = State {
                    platform: platform.clone().unwrap_or_else(|| target_platform.clone()),
                    ..State::default()
                };
                if base != "scratch" {
                    if !valid_reference(base) {
                        // distribution/reference says more (which part is wrong).
                        return Err(format!(
                            "failed to parse stage name {}: invalid reference format",
                            go_quote(base)
                        ));
                    }
                    match input.images.image(base) {
                        Some(img) => {
                            for (k, v) in &img.env {
                                s.env.set(k, v);
                            }
                            s.has_shell = img.has_shell;
                            triggers.extend(img.onbuild.iter().cloned());
                            if let Some(Ok(actual)) = img.platform.as_deref().map(parse_platform) {
                                if actual.os != s.platform.os || actual.arch != s.platform.arch {
                                    lint.run(
                                            &cfg,
                                            &rules::INVALID_BASE_IMAGE_PLATFORM,
                                            span(st.from),
                                            format!(
                                                "Base image {base} was pulled with platform {}, expected {} for current build",
                                                go_quote(&actual.to_string()),
                                                go_quote(&s.platform.to_string())
                                            ),
                                        );
                                }
                            }
                        }
                        None => {
                            if !report.unresolved_images.contains(base) {
                                report.unresolved_images.push(base.clone());
                            }
                        }
                    }
                }
                s
            }
        };
        if state.env.get("PATH").is_none() && state.platform.os != "windows" {
            state.env.set("PATH", DEFAULT_PATH);
        }
        let mut d = Dispatch {
            state,
            lex: &lex,
            global: &global,
            build_args: input.build_args,
            ignore: ignore.as_ref(),
            lint,
            used: [None, None, None],
        };
        if reachable[i] {
            // Each trigger parsed on its own, located at the FROM line, checked with the
            // file's configuration (BuildKit's initOnBuildTriggers).
            for t in &triggers {
                let parsed = dockerfile::parse(t).map_err(|e| e.message)?;
                let [node] = parsed.nodes.as_slice() else {
                    return Err("onbuild trigger should be a single expression".into());
                };
                if !dockerfile::INSTRUCTIONS.contains(&node.keyword.as_str()) {
                    return Err(format!("unknown instruction: {}", keyword(node)));
                }
                let mut node = node.clone();
                node.span = st.from.span;
                d.dispatch(&node, &cfg)?;
            }
        }
        for cmd in &st.commands {
            let ccfg = cfg.with_comments(&cmd.comments);
            d.dispatch(cmd, &ccfg)?;
        }
        states.push(d.state);
    }
    if input.practices {
        let views: Vec<practices::StageView> = stages
            .iter()
            .enumerate()
            .map(|(i, st)| practices::StageView {
                from: st.from,
                base: &bases[i].0,
                parent: parents[i],
                commands: &st.commands,
            })
            .collect();
        let mut own = Lint {
            warnings: Vec::new(),
            called: Vec::new(),
        };
        practices::run(&views, target_index, &cfg, input.images, &mut own);
        if input.dockerignore.is_none() {
            practices::no_dockerignore(&views, input.context_entries, &cfg, &mut own);
        }
        own.warnings
            .sort_by(|a, b| (a.line, &a.detail).cmp(&(b.line, &b.detail)));
        report.practices = own.warnings;
    }
    Ok(cfg)
}

/// The stages the target needs: its base stage and the stages its `COPY --from` and
/// `RUN --mount from=` name (a name or an index), transitively.
fn reachable(
    stages: &[Stage],
    parents: &[Option<usize>],
    by_name: &HashMap<&str, usize>,
    target: usize,
) -> Vec<bool> {
    let mut seen = vec![false; stages.len()];
    let mut todo: Vec<usize> = vec![target];
    let find = |r: &str| -> Option<usize> {
        match r.parse::<usize>() {
            Ok(i) => (i < stages.len()).then_some(i),
            Err(_) => by_name.get(r.to_lowercase().as_str()).copied(),
        }
    };
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        todo.extend(parents[i]);
        for n in &stages[i].commands {
            for f in &n.flags {
                let from = match n.keyword.as_str() {
                    "copy" => f.strip_prefix("--from=").map(str::to_string),
                    "run" => f.strip_prefix("--mount=").and_then(|spec| {
                        csv_fields(spec)
                            .into_iter()
                            .find_map(|field| field.strip_prefix("from=").map(str::to_string))
                    }),
                    _ => None,
                };
                todo.extend(from.as_deref().and_then(find));
            }
        }
    }
    seen
}

/// UndefinedArgInFrom for the unmatched names of a FROM word.
fn undefined_from_args(
    unmatched: &BTreeSet<String>,
    keys: &[&str],
    cfg: &Config,
    loc: (usize, usize),
    lint: &mut Lint,
) {
    for arg in unmatched {
        if keys.contains(&arg.as_str()) {
            continue;
        }
        let detail = match search(arg, keys, true) {
            Some(m) => format!("FROM argument '{arg}' is not declared (did you mean {m}?)"),
            None => format!("FROM argument '{arg}' is not declared"),
        };
        lint.run(cfg, &rules::UNDEFINED_ARG_IN_FROM, loc, detail);
    }
}

/// One global ARG declaration: key and default as written.
struct ArgDecl {
    key: String,
    value: Option<String>,
}

fn arg_decls(n: &Node) -> Vec<ArgDecl> {
    n.args
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => ArgDecl {
                key: k.to_string(),
                value: Some(v.to_string()),
            },
            None => ArgDecl {
                key: a.clone(),
                value: None,
            },
        })
        .collect()
}

/// BuildKit's `buildMetaArgs`: the global scope after the global ARGs, and every ARG key.
fn meta_args_env(
    defaults: &Env,
    lex: &ShellLexer,
    meta: &[&Node],
    build_args: &[(String, String)],
) -> Result<(Env, Vec<String>), String> {
    let mut env = defaults.clone();
    let mut keys = Vec::new();
    for n in meta {
        for a in arg_decls(n) {
            let value = match build_arg(build_args, &a.key) {
                Some(v) => Some(v.to_string()),
                None => match &a.value {
                    Some(v) => Some(lex.process_word(v, &env).map_err(|e| e.message)?.value),
                    None => None,
                },
            };
            if let Some(v) = value {
                env.set(&a.key, &v);
            }
            keys.push(a.key);
        }
    }
    Ok((env, keys))
}

/// BuildKit's `instructions.Parse` with its lint calls: stages, global ARGs.
fn parse_instructions<'a>(
    df: &'a Dockerfile,
    source: &str,
    cfg: &Config,
    lint: &mut Lint,
) -> Result<(Vec<Stage<'a>>, Vec<&'a Node>), String> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta = Vec::new();
    let parser = plan::InstructionParser::new(source);
    let parse = |n: &Node| -> Result<(), String> {
        parser.parse(n).map(|_| ()).map_err(|d| {
            format!(
                "dockerfile parse error on line {}: {}",
                n.span.start, d.message
            )
        })
    };
    for n in &df.nodes {
        let ncfg = cfg.with_comments(&n.comments);
        let kw = keyword(n);
        if !dockerfile::INSTRUCTIONS.contains(&n.keyword.as_str()) {
            let upper: Vec<String> = dockerfile::INSTRUCTIONS
                .iter()
                .map(|s| s.to_ascii_uppercase())
                .collect();
            let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
            let mut msg = format!("unknown instruction: {kw}");
            if let Some(m) = search(kw, &upper, false) {
                msg.push_str(&format!(" (did you mean {m}?)"));
            }
            return Err(format!(
                "dockerfile parse error on line {}: {msg}",
                n.span.start
            ));
        }
        match n.keyword.as_str() {
            "maintainer" => {
                lint.run(
                    &ncfg,
                    &rules::MAINTAINER_DEPRECATED,
                    span(n),
                    "Maintainer instruction is deprecated in favor of using label".into(),
                );
                parse(n)?;
            }
            "from" => {
                let a = &n.args;
                if a.len() == 3 && a[2] != a[2].to_lowercase() {
                    lint.run(
                        &ncfg,
                        &rules::STAGE_NAME_CASING,
                        span(n),
                        format!("Stage name '{}' should be lowercase", a[2]),
                    );
                }
                if a.len() >= 3 {
                    let lower = kw == kw.to_lowercase();
                    let upper = kw == kw.to_uppercase();
                    let ok = if lower {
                        a[1] == a[1].to_lowercase()
                    } else if upper {
                        a[1] == a[1].to_uppercase()
                    } else {
                        true
                    };
                    if !ok {
                        lint.run(
                            &ncfg,
                            &rules::FROM_AS_CASING,
                            span(n),
                            format!("'{}' and '{kw}' keywords' casing do not match", a[1]),
                        );
                    }
                }
                parse(n)?;
                let valid = a.len() == 1 || (a.len() == 3 && a[1].eq_ignore_ascii_case("as"));
                if !valid {
                    return Err(format!(
                        "dockerfile parse error on line {}: FROM requires either one or three arguments",
                        n.span.start
                    ));
                }
                let name = a.get(2).map(|s| s.to_lowercase());
                if let Some(name) = &name {
                    definition_description("FROM", &[name.as_str()], n, &ncfg, lint);
                }
                let platform = n
                    .flags
                    .iter()
                    .rev()
                    .find_map(|f| f.strip_prefix("--platform="))
                    .map(str::to_string);
                stages.push(Stage {
                    from: n,
                    name,
                    base_name: a[0].clone(),
                    platform,
                    commands: Vec::new(),
                });
                continue;
            }
            "arg" => {
                parse(n)?;
                let decls = arg_decls(n);
                let keys: Vec<&str> = decls.iter().map(|d| d.key.as_str()).collect();
                definition_description("ARG", &keys, n, &ncfg, lint);
            }
            _ => parse(n)?,
        }
        match stages.last_mut() {
            Some(st) => st.commands.push(n),
            None if n.keyword == "arg" => meta.push(n),
            None => return Err("no build stage in current context".into()),
        }
    }
    Ok((stages, meta))
}

/// InvalidDefinitionDescription (experimental).
fn definition_description(
    instruction: &str,
    keys: &[&str],
    n: &Node,
    cfg: &Config,
    lint: &mut Lint,
) {
    let Some(last) = n.comments.last() else {
        return;
    };
    if keys.is_empty() {
        return;
    }
    let first = last.split(' ').next().unwrap_or("");
    if keys.contains(&first) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
    lint.run(
        cfg,
        &rules::INVALID_DEFINITION_DESCRIPTION,
        span(n),
        format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
    );
}

/// ReservedStageName, DuplicateStageName.
fn stage_names(stages: &[Stage], cfg: &Config, lint: &mut Lint) {
    let mut seen: Vec<&str> = Vec::new();
    for st in stages {
        let Some(name) = st.name.as_deref() else {
            continue;
        };
        if name == "context" || name == "scratch" {
            lint.run(
                cfg,
                &rules::RESERVED_STAGE_NAME,
                span(st.from),
                format!(
                    "Stage name should not use the same name as reserved stage {}",
                    go_quote(name)
                ),
            );
        }
        if seen.contains(&name) {
            lint.run(
                cfg,
                &rules::DUPLICATE_STAGE_NAME,
                span(st.from),
                format!(
                    "Duplicate stage name {}, stage names should be unique",
                    go_quote(name)
                ),
            );
        }
        seen.push(name);
    }
}

/// ConsistentInstructionCasing: FROM lines and stage instructions (not global ARGs).
fn command_casing(stages: &[Stage], cfg: &Config, lint: &mut Lint) {
    let nodes = || {
        stages
            .iter()
            .flat_map(|s| std::iter::once(s.from).chain(s.commands.iter().copied()))
    };
    let (mut lower, mut upper) = (0usize, 0usize);
    for n in nodes() {
        let k = keyword(n);
        if k == k.to_lowercase() {
            lower += 1;
        } else if k == k.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for n in nodes() {
        let k = keyword(n);
        let want = if majority_lower && k.to_lowercase() != k {
            "lowercase"
        } else if !majority_lower && k.to_uppercase() != k {
            "uppercase"
        } else {
            continue;
        };
        lint.run(
            cfg,
            &rules::CONSISTENT_INSTRUCTION_CASING,
            span(n),
            format!("Command '{k}' should match the case of the command majority ({want})"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Dispatch: one stage's instructions
// ---------------------------------------------------------------------------------------

struct Dispatch<'a, 'l> {
    state: State,
    lex: &'a ShellLexer,
    global: &'a Env,
    build_args: &'a [(String, String)],
    ignore: Option<&'a context::Matcher>,
    lint: &'l mut Lint,
    /// Last ENTRYPOINT, CMD, HEALTHCHECK.
    used: [Option<(usize, usize)>; 3],
}

impl Dispatch<'_, '_> {
    /// Expand one word in the stage's environment, reporting undefined variables.
    fn expand(&mut self, word: &str, n: &Node, cfg: &Config) -> Result<String, String> {
        let r = self
            .lex
            .process_word(word, &self.state.env)
            .map_err(|e| e.message)?;
        self.unmatched(&r.unmatched, n, cfg);
        Ok(r.value)
    }

    fn unmatched(&mut self, unmatched: &BTreeSet<String>, n: &Node, cfg: &Config) {
        for v in unmatched {
            if self.state.build_args.contains(v) || NON_ENV_ARGS.contains(&v.as_str()) {
                continue;
            }
            let keys = self.state.env.keys();
            let detail = match search(v, &keys, true) {
                Some(m) => format!("Usage of undefined variable '${v}' (did you mean ${m}?)"),
                None => format!("Usage of undefined variable '${v}'"),
            };
            self.lint.run(cfg, &rules::UNDEFINED_VAR, span(n), detail);
        }
    }

    fn used_once(&mut self, slot: usize, n: &Node, cfg: &Config) {
        if let Some(prev) = self.used[slot] {
            self.lint.run(
                cfg,
                &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                prev,
                format!(
                    "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                    keyword(n)
                ),
            );
        }
        self.used[slot] = Some(span(n));
    }

    fn dispatch(&mut self, n: &Node, cfg: &Config) -> Result<(), String> {
        let kw = keyword(n).to_string();
        match n.keyword.as_str() {
            "env" | "label" => {
                let mut pairs = Vec::new();
                for t in n.args.chunks(3) {
                    let (k, v) = (&t[0], t.get(1).map_or("", String::as_str));
                    let no_delim = t.get(2).is_none_or(|s| s.is_empty());
                    pairs.push((self.expand(k, n, cfg)?, self.expand(v, n, cfg)?, no_delim));
                }
                for (k, v, no_delim) in pairs {
                    if no_delim {
                        self.lint.run(
                            cfg,
                            &rules::LEGACY_KEY_VALUE_FORMAT,
                            span(n),
                            format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"),
                        );
                    }
                    if n.keyword == "env" {
                        self.secret("ENV", &k, n, cfg);
                        self.state.env.set(&k, &v);
                    }
                }
            }
            "workdir" => {
                let p = self.expand(n.args.first().map_or("", String::as_str), n, cfg)?;
                if !self.state.workdir_set && !p.starts_with('/') {
                    self.lint.run(
                        cfg,
                        &rules::WORKDIR_RELATIVE_PATH,
                        span(n),
                        format!(
                            "Relative workdir {} can have unexpected results if the base image changes",
                            go_quote(&p)
                        ),
                    );
                }
                self.state.workdir_set = true;
            }
            "user" | "stopsignal" | "volume" => {
                for a in &n.args {
                    self.expand(a, n, cfg)?;
                }
            }
            "cmd" | "entrypoint" => {
                self.used_once(usize::from(n.keyword == "cmd"), n, cfg);
                if !n.json && !self.state.has_shell {
                    self.lint.run(
                        cfg,
                        &rules::JSON_ARGS_RECOMMENDED,
                        span(n),
                        format!("JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"),
                    );
                }
            }
            "healthcheck" => self.used_once(2, n, cfg),
            "shell" => self.state.has_shell = !n.args.is_empty(),
            "arg" => {
                for a in arg_decls(n) {
                    self.secret("ARG", &a.key, n, cfg);
                    let mut value = None;
                    if let Some(v) = build_arg(self.build_args, &a.key) {
                        value = Some(v.to_string());
                    } else if let Some(d) = &a.value {
                        value = Some(self.expand(d, n, cfg)?);
                    } else if let Some(v) = self.global.get(&a.key) {
                        value = Some(v.to_string());
                    }
                    if let Some(v) = value {
                        if !NON_ENV_ARGS.contains(&a.key.as_str()) {
                            self.state.env.set(&a.key, &v);
                        }
                    }
                    self.state.build_args.push(a.key);
                }
            }
            "expose" => {
                let mut ports = Vec::new();
                for a in &n.args {
                    let r = self
                        .lex
                        .process_words(a, &self.state.env)
                        .map_err(|e| e.message)?;
                    ports.extend(r.value);
                }
                for p in ports {
                    self.expose(&p, n, cfg);
                }
            }
            "copy" | "add" => self.copy(n, cfg)?,
            "run" => {
                // `--mount` fields are expanded (BuildKit's parseMount), the command is not.
                for spec in n.flags.iter().filter_map(|f| f.strip_prefix("--mount=")) {
                    for field in csv_fields(spec) {
                        if let Some((_, value)) = field.split_once('=') {
                            self.expand(value, n, cfg)?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn secret(&mut self, instruction: &str, key: &str, n: &Node, cfg: &Config) {
        const DENY: &[&str] = &[
            "apikey",
            "auth",
            "credential",
            "credentials",
            "key",
            "password",
            "pword",
            "passwd",
            "secret",
            "token",
        ];
        const ALLOW: &[&str] = &["public", "file", "version"];
        let has = |list: &[&str]| {
            key.split('_')
                .any(|t| list.iter().any(|w| t.to_lowercase() == *w))
        };
        if has(DENY) && !has(ALLOW) {
            self.lint.run(
                cfg,
                &rules::SECRETS_USED_IN_ARG_OR_ENV,
                span(n),
                format!(
                    "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                    go_quote(key)
                ),
            );
        }
    }

    fn expose(&mut self, raw: &str, n: &Node, cfg: &Config) {
        let parts: Vec<&str> = raw.split(':').collect();
        let (ip, host, container) = match parts.len() {
            1 => ("".to_string(), "", parts[0]),
            2 => ("".to_string(), parts[0], parts[1]),
            k => (parts[..k - 2].join(":"), parts[k - 2], parts[k - 1]),
        };
        let (port, proto) = container.split_once('/').unwrap_or((container, ""));
        if port.is_empty() || !matches!(proto.to_lowercase().as_str(), "" | "tcp" | "udp" | "sctp")
        {
            return;
        }
        if proto != proto.to_lowercase() {
            self.lint.run(
                cfg,
                &rules::EXPOSE_PROTO_CASING,
                span(n),
                format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
            );
        }
        if !ip.is_empty() || !host.is_empty() {
            self.lint.run(
                cfg,
                &rules::EXPOSE_INVALID_FORMAT,
                span(n),
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"),
            );
        }
    }

    fn copy(&mut self, n: &Node, cfg: &Config) -> Result<(), String> {
        let add = n.keyword == "add";
        let flag = |name: &str| {
            n.flags
                .iter()
                .rev()
                .find_map(|f| f.strip_prefix(name))
                .map(str::to_string)
        };
        let from = flag("--from=");
        let mut words: Vec<String> = vec![
            flag("--chown=").unwrap_or_default(),
            flag("--chmod=").unwrap_or_default(),
        ];
        if add {
            words.push(flag("--checksum=").unwrap_or_default());
        }
        for w in words {
            self.expand(&w, n, cfg)?;
        }
        let Some((dest, sources)) = n.args.split_last() else {
            return Ok(());
        };
        let is_heredoc = |s: &str| {
            s.strip_prefix("<<").is_some_and(|name| {
                let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
                n.heredocs.iter().any(|h| h.name == name)
            })
        };
        let mut paths = Vec::new();
        for s in sources.iter().filter(|s| n.json || !is_heredoc(s)) {
            paths.push(self.expand(s, n, cfg)?);
        }
        self.expand(dest, n, cfg)?;
        for h in n.heredocs.iter().filter(|h| h.expand) {
            let mut raw = ShellLexer::new('\\');
            raw.skip_process_quotes = true;
            let r = raw
                .process_word(&h.content, &self.state.env)
                .map_err(|e| e.message)?;
            self.unmatched(&r.unmatched, n, cfg);
        }
        let Some(m) = self.ignore.filter(|_| from.is_none() || add) else {
            return Ok(());
        };
        if m.exclusions() {
            return Ok(());
        }
        for src in paths {
            if add && (src.starts_with("http://") || src.starts_with("https://") || is_git(&src)) {
                continue;
            }
            let clean = String::from_utf8_lossy(&context::clean(src.as_bytes())).into_owned();
            if clean == "." || clean == "/" {
                let root = m
                    .patterns()
                    .iter()
                    .any(|p| !p.is_exclusion() && matches!(p.text(), "*" | "**" | "**/*"));
                if !root {
                    continue;
                }
            }
            if m.matches(&clean) {
                self.lint.run(
                    cfg,
                    &rules::COPY_IGNORED_FILE,
                    span(n),
                    format!(
                        "Attempting to {} file {} that is excluded by .dockerignore",
                        if add { "Add" } else { "Copy" },
                        go_quote(&clean)
                    ),
                );
            }
        }
        Ok(())
    }
}

/// One CSV record's fields (`a=b,"c=d,e"`), as csvvalue reads a `--mount` value.
fn csv_fields(s: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// A git source for ADD (`git@`, `git://`, `.git` URLs, `github.com/...`).
fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || s.starts_with("github.com/")
        || ((s.starts_with("http://") || s.starts_with("https://") || s.starts_with("ssh://"))
            && s.contains(".git"))
}
