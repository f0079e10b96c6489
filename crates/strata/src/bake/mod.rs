//! `strata bake`'s file model, as `docker buildx bake` reads it: targets, groups, variables,
//! `inherits`, `--set` overrides, and each target's `strata build` command line. No process
//! is started here (`cmd/bake.rs` runs the builds), so all of it is unit-tested.

pub mod funcs;
pub mod parse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;

pub use parse::{load, File};

/// How deep groups, `inherits` and `target:` contexts may nest: deeper is an error, not a
/// stack overflow.
const MAX_DEPTH: usize = 256;

/// The target attributes (buildx's names), for "unknown attribute" hints.
pub const TARGET_KEYS: &[&str] = &[
    "description",
    "inherits",
    "annotations",
    "attest",
    "context",
    "contexts",
    "dockerfile",
    "dockerfile-inline",
    "args",
    "labels",
    "tags",
    "cache-from",
    "cache-to",
    "target",
    "secret",
    "ssh",
    "platforms",
    "output",
    "pull",
    "no-cache",
    "network",
    "no-cache-filter",
    "shm-size",
    "ulimits",
    "call",
    "entitlements",
    "extra-hosts",
];

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn hint(word: &str, candidates: Vec<&str>) -> String {
    did_you_mean(word, candidates)
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

fn is_empty_list(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

fn is_empty_map(v: &Option<BTreeMap<String, String>>) -> bool {
    v.as_ref().is_none_or(BTreeMap::is_empty)
}

/// A bake target: each attribute `None` until a file (or `--set`) gives it, so merging knows
/// what was set. Serialised as buildx's `--print` does.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Target {
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip)]
    pub inherits: Vec<String>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub annotations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub attest: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub contexts: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub args: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub cache_from: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub cache_to: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub secret: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub ssh: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub platforms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub output: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub no_cache_filter: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub ulimits: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(skip_serializing_if = "is_empty_list")]
    pub entitlements: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_empty_map")]
    pub extra_hosts: Option<BTreeMap<String, String>>,
}

fn replace<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
    if b.is_some() {
        a.clone_from(b);
    }
}

fn append(a: &mut Option<Vec<String>>, b: &Option<Vec<String>>) {
    if let Some(b) = b {
        a.get_or_insert_with(Vec::new).extend(b.iter().cloned());
    }
}

fn merge_map(a: &mut Option<BTreeMap<String, String>>, b: &Option<BTreeMap<String, String>>) {
    if let Some(b) = b {
        a.get_or_insert_with(BTreeMap::new)
            .extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

fn dedup(v: &mut Option<Vec<String>>) {
    if let Some(v) = v {
        let mut seen = std::collections::HashSet::new();
        v.retain(|s| seen.insert(s.clone()));
    }
}

impl Target {
    /// Merge `o` over `self` as buildx's `Target.Merge`: scalars and `tags`, `platforms`,
    /// `cache-to`, `output` replaced; `args`, `labels`, `contexts`, `extra-hosts` merged key
    /// by key; the other lists appended.
    pub fn merge(&mut self, o: &Target) {
        replace(&mut self.description, &o.description);
        replace(&mut self.context, &o.context);
        replace(&mut self.dockerfile, &o.dockerfile);
        replace(&mut self.dockerfile_inline, &o.dockerfile_inline);
        merge_map(&mut self.args, &o.args);
        merge_map(&mut self.contexts, &o.contexts);
        merge_map(&mut self.labels, &o.labels);
        merge_map(&mut self.extra_hosts, &o.extra_hosts);
        replace(&mut self.tags, &o.tags);
        replace(&mut self.target, &o.target);
        replace(&mut self.call, &o.call);
        append(&mut self.annotations, &o.annotations);
        append(&mut self.attest, &o.attest);
        append(&mut self.secret, &o.secret);
        append(&mut self.ssh, &o.ssh);
        replace(&mut self.platforms, &o.platforms);
        append(&mut self.cache_from, &o.cache_from);
        replace(&mut self.cache_to, &o.cache_to);
        replace(&mut self.output, &o.output);
        replace(&mut self.pull, &o.pull);
        replace(&mut self.no_cache, &o.no_cache);
        replace(&mut self.network, &o.network);
        append(&mut self.no_cache_filter, &o.no_cache_filter);
        replace(&mut self.shm_size, &o.shm_size);
        append(&mut self.ulimits, &o.ulimits);
        append(&mut self.entitlements, &o.entitlements);
        self.inherits.extend(o.inherits.iter().cloned());
    }

    fn normalize(&mut self) {
        for l in [
            &mut self.annotations,
            &mut self.attest,
            &mut self.tags,
            &mut self.secret,
            &mut self.ssh,
            &mut self.platforms,
            &mut self.cache_from,
            &mut self.cache_to,
            &mut self.output,
            &mut self.no_cache_filter,
            &mut self.ulimits,
            &mut self.entitlements,
        ] {
            dedup(l);
        }
        if let Some(c) = &mut self.contexts {
            c.retain(|_, v| !v.is_empty());
        }
    }

    /// The targets this one's `contexts` name as `target:NAME`.
    pub fn linked(&self) -> Vec<(String, String)> {
        self.contexts
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.strip_prefix("target:")?.to_string())))
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub targets: Vec<String>,
}

/// Every file's groups and targets, merged by name, in the order they first appear.
#[derive(Debug, Default)]
pub struct Config {
    pub groups: Vec<Group>,
    pub targets: Vec<Target>,
}

impl Config {
    fn add_group(&mut self, g: Group) {
        match self.groups.iter_mut().find(|x| x.name == g.name) {
            Some(x) => {
                for t in g.targets {
                    if !x.targets.contains(&t) {
                        x.targets.push(t);
                    }
                }
                replace(&mut x.description, &g.description);
            }
            None => {
                let mut g = g;
                let mut seen = std::collections::HashSet::new();
                g.targets.retain(|t| seen.insert(t.clone()));
                self.groups.push(g);
            }
        }
    }

    fn add_target(&mut self, t: Target) {
        match self.targets.iter_mut().find(|x| x.name == t.name) {
            Some(x) => x.merge(&t),
            None => self.targets.push(t),
        }
    }

    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    fn names(&self) -> Vec<&str> {
        self.groups
            .iter()
            .map(|g| g.name.as_str())
            .chain(self.targets.iter().map(|t| t.name.as_str()))
            .collect()
    }

    /// Expand a name: a group's targets (groups nest; a group met again adds nothing), or the
    /// target itself. The groups met are added to `groups`.
    fn expand(
        &self,
        name: &str,
        out: &mut Vec<String>,
        groups: &mut Vec<String>,
        visiting: &mut Vec<String>,
    ) -> Result<()> {
        if let Some(g) = self.group(name) {
            if visiting.iter().any(|v| v == name) || groups.iter().any(|v| v == name) {
                return Ok(());
            }
            if visiting.len() >= MAX_DEPTH {
                bail!("group {name}: groups nest deeper than {MAX_DEPTH}");
            }
            visiting.push(name.to_string());
            groups.push(name.to_string());
            for t in &g.targets {
                self.expand(t, out, groups, visiting)?;
            }
            visiting.pop();
            return Ok(());
        }
        if self.target(name).is_none() {
            let mut msg = format!("failed to find target {name}");
            if let Some(g) = visiting.last() {
                msg = format!("group \"{g}\": {msg}");
            }
            msg.push_str(&hint(name, self.names()));
            if name == "default" && visiting.is_empty() {
                msg.push_str(
                    "\nhint: name the targets to build, or define group \"default\" { targets = [...] }",
                );
            }
            bail!("{msg}");
        }
        if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
        Ok(())
    }
}

/// One `--set` override, parsed: buildx's `PATTERN.KEY[.NAME][+]=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pattern: String,
    /// `args.NAME`, `tags`, ...
    key: String,
    value: Option<String>,
    append: bool,
}

/// The `--set` keys and whether each takes a list (repeated `--set`s add up).
const SET_KEYS: &[(&str, bool)] = &[
    ("context", false),
    ("dockerfile", false),
    ("args", false),
    ("contexts", false),
    ("labels", false),
    ("tags", true),
    ("cache-from", true),
    ("cache-to", true),
    ("target", false),
    ("secrets", true),
    ("ssh", true),
    ("platform", true),
    ("output", true),
    ("no-cache", false),
    ("pull", false),
    ("push", false),
    ("load", false),
    ("network", false),
    ("shm-size", false),
    ("ulimits", true),
    ("no-cache-filter", true),
    ("attest", true),
    ("annotations", true),
    ("entitlements", true),
    ("extra-hosts", false),
    ("call", false),
];

pub fn parse_override(v: &str) -> Result<Override> {
    let (k, value) = match v.split_once('=') {
        Some((k, val)) => (k, Some(val.to_string())),
        None => (v, None),
    };
    let append = k.ends_with('+');
    let k = k.trim_end_matches('+');
    let parts: Vec<&str> = k.splitn(3, '.').collect();
    if parts.len() < 2 || parts[0].is_empty() || parts[1].is_empty() {
        bail!("--set {v}: invalid override key {k}, expected target.name");
    }
    let key = parts[1];
    let Some(&(_, _)) = SET_KEYS.iter().find(|(n, _)| *n == key) else {
        bail!(
            "--set {v}: unknown key: {key}{}",
            hint(key, SET_KEYS.iter().map(|(n, _)| *n).collect())
        );
    };
    let named = matches!(key, "args" | "contexts" | "labels" | "extra-hosts");
    if named && parts.len() != 3 {
        bail!("--set {v}: invalid format for {key}, expecting {key}.<name>=<value>");
    }
    if !named && parts.len() == 3 {
        bail!("--set {v}: {key} takes no name");
    }
    if value.is_none() && key != "args" {
        bail!("--set {v}: invalid override, expected target.{key}=value");
    }
    Ok(Override {
        pattern: parts[0].to_string(),
        key: parts[1..].join("."),
        value,
        append,
    })
}

/// Go's `path.Match` for the `*` and `?` of `--set` patterns (no `/` in target names), in
/// linear time.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => bail!("invalid value {v} for boolean key {key}"),
    }
}

/// Apply the overrides that name target `name` (in order; a list key's first `=` replaces
/// the file's list, later ones and `+=` add to it).
fn apply_overrides(t: &mut Target, name: &str, overrides: &[Override]) -> Result<()> {
    let mut replaced: Vec<&str> = Vec::new();
    for o in overrides.iter().filter(|o| glob(&o.pattern, name)) {
        let Some(value) = o.value.clone() else {
            continue;
        };
        let (key, sub) = match o.key.split_once('.') {
            Some((k, s)) => (k, Some(s.to_string())),
            None => (o.key.as_str(), None),
        };
        let list = |field: &mut Option<Vec<String>>, replaced: &mut Vec<&str>, k: &'static str| {
            if !o.append && !replaced.contains(&k) {
                *field = Some(Vec::new());
                replaced.push(k);
            }
            field.get_or_insert_with(Vec::new).push(value.clone());
        };
        let entry = |m: &mut Option<BTreeMap<String, String>>| {
            m.get_or_insert_with(BTreeMap::new)
                .insert(sub.clone().unwrap_or_default(), value.clone());
        };
        match key {
            "context" => t.context = Some(value.clone()),
            "dockerfile" => t.dockerfile = Some(value.clone()),
            "args" => entry(&mut t.args),
            "contexts" => entry(&mut t.contexts),
            "labels" => entry(&mut t.labels),
            "extra-hosts" => entry(&mut t.extra_hosts),
            "tags" => list(&mut t.tags, &mut replaced, "tags"),
            "cache-from" => list(&mut t.cache_from, &mut replaced, "cache-from"),
            "cache-to" => list(&mut t.cache_to, &mut replaced, "cache-to"),
            "secrets" => list(&mut t.secret, &mut replaced, "secrets"),
            "ssh" => list(&mut t.ssh, &mut replaced, "ssh"),
            "platform" => list(&mut t.platforms, &mut replaced, "platform"),
            "output" => list(&mut t.output, &mut replaced, "output"),
            "ulimits" => list(&mut t.ulimits, &mut replaced, "ulimits"),
            "no-cache-filter" => list(&mut t.no_cache_filter, &mut replaced, "no-cache-filter"),
            "attest" => t.attest.get_or_insert_with(Vec::new).push(value.clone()),
            "annotations" => t
                .annotations
                .get_or_insert_with(Vec::new)
                .push(value.clone()),
            "entitlements" => t
                .entitlements
                .get_or_insert_with(Vec::new)
                .push(value.clone()),
            "target" => t.target = Some(value.clone()),
            "call" => t.call = Some(value.clone()),
            "network" => t.network = Some(value.clone()),
            "shm-size" => t.shm_size = Some(value.clone()),
            "no-cache" => t.no_cache = Some(parse_bool(key, &value)?),
            "pull" => t.pull = Some(parse_bool(key, &value)?),
            "push" => {
                if parse_bool(key, &value)? {
                    let outs = t.output.get_or_insert_with(Vec::new);
                    if outs.is_empty() {
                        outs.push("type=image,push=true".into());
                    } else {
                        for out in outs.iter_mut() {
                            if out.contains("type=image") || out.contains("type=registry") {
                                out.push_str(",push=true");
                            }
                        }
                    }
                }
            }
            // strata always keeps the image in its store.
            "load" => {
                parse_bool(key, &value)?;
            }
            other => bail!("unknown key: {other}"),
        }
    }
    Ok(())
}

/// What `strata bake` builds: the targets in order (groups expanded, each once), every
/// target they link to through `contexts = { x = "target:NAME" }`, and the groups met.
#[derive(Debug)]
pub struct Resolved {
    pub order: Vec<String>,
    pub targets: BTreeMap<String, Target>,
    pub groups: BTreeMap<String, Group>,
}

/// Resolve `names` (none: group or target `default`) with `--set` overrides. `env` serves
/// `--set t.args.NAME` without a value (the environment's value, as buildx).
pub fn resolve(
    config: &Config,
    names: &[String],
    overrides: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Resolved> {
    let requested: Vec<String> = if names.is_empty() {
        vec!["default".to_string()]
    } else {
        names.to_vec()
    };
    let mut overs = Vec::new();
    for o in overrides {
        let mut o = parse_override(o)?;
        if o.value.is_none() {
            // `args.NAME` alone: the environment's value, or no override.
            let name = o.key.trim_start_matches("args.");
            o.value = env.get(name).cloned();
        }
        if !config.targets.iter().any(|t| glob(&o.pattern, &t.name)) {
            bail!("--set: could not find any target matching '{}'", o.pattern);
        }
        overs.push(o);
    }
    let mut order = Vec::new();
    let mut met_groups = Vec::new();
    for n in &requested {
        config.expand(n, &mut order, &mut met_groups, &mut Vec::new())?;
    }
    let mut targets = BTreeMap::new();
    let mut queue: Vec<String> = order.clone();
    while let Some(name) = queue.pop() {
        if targets.contains_key(&name) {
            continue;
        }
        let t = resolve_target(config, &name, &overs, &mut Vec::new())?;
        for (ctx, linked) in t.linked() {
            if linked == name {
                bail!("target {name}: contexts.{ctx} = \"target:{linked}\": a target cannot link to itself");
            }
            if config.target(&linked).is_none() {
                bail!(
                    "target {name}: contexts.{ctx}: failed to find target {linked}{}",
                    hint(
                        &linked,
                        config.targets.iter().map(|t| t.name.as_str()).collect()
                    )
                );
            }
            queue.push(linked);
        }
        targets.insert(name, t);
    }
    link_cycles(&targets)?;
    let mut groups = BTreeMap::new();
    for g in &met_groups {
        if let Some(group) = config.group(g) {
            groups.insert(g.clone(), group.clone());
        }
    }
    // buildx's `--print`: the requested names (sorted) as group "default", unless that is
    // the group asked for.
    for n in &requested {
        if n == "default" && groups.contains_key("default") {
            continue;
        }
        let d = groups
            .entry("default".to_string())
            .or_insert_with(|| Group {
                name: "default".into(),
                ..Group::default()
            });
        if !d.targets.contains(n) {
            d.targets.push(n.clone());
        }
        d.targets.sort();
    }
    Ok(Resolved {
        order,
        targets,
        groups,
    })
}

/// A `target:` context chain that comes back to where it started is an error.
fn link_cycles(targets: &BTreeMap<String, Target>) -> Result<()> {
    fn visit(
        targets: &BTreeMap<String, Target>,
        name: &str,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Result<()> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            bail!(
                "contexts: infinite loop from {} to {name}",
                path.last().map_or(name, String::as_str)
            );
        }
        if path.len() >= MAX_DEPTH {
            bail!("target {name}: target: contexts chain deeper than {MAX_DEPTH}");
        }
        path.push(name.to_string());
        if let Some(t) = targets.get(name) {
            for (_, l) in t.linked() {
                visit(targets, &l, path, done)?;
            }
        }
        path.pop();
        done.push(name.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for name in targets.keys() {
        visit(targets, name, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// A target with its `inherits` merged in (parents first, the child winning), its
/// overrides, and buildx's defaults (`context` ".", `dockerfile` "Dockerfile").
fn resolve_target(
    config: &Config,
    name: &str,
    overrides: &[Override],
    chain: &mut Vec<String>,
) -> Result<Target> {
    let t = resolved_chain(config, name, overrides, chain)?;
    let mut t = t;
    t.inherits.clear();
    if t.context.is_none() {
        t.context = Some(".".into());
    }
    if t.dockerfile.as_deref().is_none_or(str::is_empty) {
        t.dockerfile = Some("Dockerfile".into());
    }
    Ok(t)
}

fn resolved_chain(
    config: &Config,
    name: &str,
    overrides: &[Override],
    chain: &mut Vec<String>,
) -> Result<Target> {
    if chain.iter().any(|c| c == name) {
        bail!(
            "target {name}: inherits itself ({} → {name})",
            chain.join(" → ")
        );
    }
    let Some(t) = config.target(name) else {
        let from = chain
            .last()
            .map_or(String::new(), |c| format!("target {c}: inherits: "));
        bail!(
            "{from}failed to find target {name}{}",
            hint(
                name,
                config.targets.iter().map(|t| t.name.as_str()).collect()
            )
        );
    };
    if chain.len() >= MAX_DEPTH {
        bail!("target {name}: inherits nests deeper than {MAX_DEPTH}");
    }
    chain.push(name.to_string());
    let mut merged = Target::default();
    for parent in &t.inherits {
        let p = resolved_chain(config, parent, overrides, chain)?;
        merged.merge(&p);
    }
    chain.pop();
    merged.merge(t);
    merged.name = name.to_string();
    apply_overrides(&mut merged, name, overrides)?;
    merged.normalize();
    Ok(merged)
}

/// The `--print` JSON: `{"group": {...}, "target": {...}}`. As buildx, `${` and `%{` in
/// `dockerfile-inline`, `args`, `labels`, `annotations` and `extra-hosts` are written `$${`
/// and `%%{`, so the printed definition reads back as the same values.
pub fn print_json(r: &Resolved) -> serde_json::Value {
    let esc = |s: &mut String| *s = s.replace("${", "$${").replace("%{", "%%{");
    let mut targets = r.targets.clone();
    for t in targets.values_mut() {
        t.dockerfile_inline.iter_mut().for_each(esc);
        t.annotations.iter_mut().flatten().for_each(esc);
        for m in [&mut t.args, &mut t.labels, &mut t.extra_hosts] {
            m.iter_mut().flat_map(|m| m.values_mut()).for_each(esc);
        }
    }
    serde_json::json!({
        "group": r.groups,
        "target": targets,
    })
}

/// What a build of one target needs besides the target: the bake command's own flags.
#[derive(Default)]
pub struct BuildOptions {
    pub push: bool,
    pub no_cache: bool,
    pub pull: bool,
    pub progress: Option<String>,
    /// The file `dockerfile-inline` was written to.
    pub inline_dockerfile: Option<PathBuf>,
    /// An extra tag (the name other targets' `target:` contexts use).
    pub link_tag: Option<String>,
    /// The tag of each target this one links to.
    pub linked_tags: BTreeMap<String, String>,
}

fn refuse(name: &str, attr: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("target {name}: {attr}: {why}")
}

/// Whether a context is a remote one (git or https), which strata does not build from yet.
fn is_remote(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@")
}

/// The `strata build` arguments for target `t` (without the program name).
pub fn build_args(t: &Target, o: &BuildOptions) -> Result<Vec<String>> {
    let name = &t.name;
    let context = t.context.clone().unwrap_or_else(|| ".".into());
    if is_remote(&context) {
        return Err(refuse(
            name,
            "context",
            &format!("{context:?}: remote contexts are not supported yet: give a directory"),
        ));
    }
    let mut a: Vec<String> = vec!["build".into()];
    let mut flag = |f: &str, v: &str| {
        a.push(f.to_string());
        a.push(v.to_string());
    };
    match (&t.dockerfile_inline, &o.inline_dockerfile) {
        (Some(_), Some(p)) => flag("--file", &p.to_string_lossy()),
        (Some(_), None) => bail!("target {name}: dockerfile-inline has no file to go to"),
        (None, _) => {
            let d = t.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into());
            // buildx: a relative dockerfile is relative to the context.
            let p = if Path::new(&d).is_absolute() {
                PathBuf::from(&d)
            } else {
                Path::new(&context).join(&d)
            };
            flag("--file", &p.to_string_lossy());
        }
    }
    if let Some(s) = &t.target {
        flag("--target", s);
    }
    for (k, v) in t.args.iter().flatten() {
        flag("--build-arg", &format!("{k}={v}"));
    }
    for (k, v) in t.labels.iter().flatten() {
        flag("--label", &format!("{k}={v}"));
    }
    for tag in t.tags.iter().flatten().chain(o.link_tag.as_ref()) {
        flag("--tag", tag);
    }
    if t.no_cache == Some(true) || o.no_cache {
        a.push("--no-cache".into());
    }
    let mut flag = |f: &str, v: &str| {
        a.push(f.to_string());
        a.push(v.to_string());
    };
    for f in t.no_cache_filter.iter().flatten() {
        flag("--no-cache-filter", f);
    }
    if let Some(n) = &t.network {
        flag("--network", n);
    }
    for s in t.secret.iter().flatten() {
        flag("--secret", s);
    }
    for s in t.ssh.iter().flatten() {
        flag("--ssh", s);
    }
    for c in t.cache_from.iter().flatten() {
        flag("--cache-from", c);
    }
    for c in t.cache_to.iter().flatten() {
        flag("--cache-to", c);
    }
    match t.output.as_deref().unwrap_or_default() {
        [] => {}
        [one] => flag("--output", one),
        many => {
            return Err(refuse(
                name,
                "output",
                &format!(
                    "{} outputs: strata build writes one output per build yet",
                    many.len()
                ),
            ))
        }
    }
    for (k, v) in t.contexts.iter().flatten() {
        let value = match v.strip_prefix("target:") {
            Some(other) => match o.linked_tags.get(other) {
                Some(tag) => format!("docker-image://{tag}"),
                None => bail!("target {name}: contexts.{k}: target {other} was not built"),
            },
            None => v.clone(),
        };
        flag("--build-context", &format!("{k}={value}"));
    }
    // Several platforms are one build of an image index (`build --platform A,B`).
    if let Some(ps) = t.platforms.as_deref().filter(|p| !p.is_empty()) {
        flag("--platform", &ps.join(","));
    }
    for at in t.attest.iter().flatten() {
        let mut kind = None;
        let mut rest = Vec::new();
        let mut disabled = false;
        for part in at.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v),
                Some(("disabled", v)) => disabled = v == "true",
                _ => rest.push(part),
            }
        }
        let value = if disabled {
            "false".to_string()
        } else if rest.is_empty() {
            "true".to_string()
        } else {
            rest.join(",")
        };
        match kind {
            Some("provenance") => a.push(format!("--provenance={value}")),
            Some("sbom") => a.push(format!("--sbom={value}")),
            _ => {
                return Err(refuse(
                    name,
                    "attest",
                    &format!("{at:?}: give type=provenance or type=sbom"),
                ))
            }
        }
    }
    let mut flag = |f: &str, v: &str| {
        a.push(f.to_string());
        a.push(v.to_string());
    };
    if let Some(s) = &t.shm_size {
        flag("--shm-size", s);
    }
    for u in t.ulimits.iter().flatten() {
        flag("--ulimit", u);
    }
    for (h, ip) in t.extra_hosts.iter().flatten() {
        flag("--add-host", &format!("{h}:{ip}"));
    }
    for e in t.entitlements.iter().flatten() {
        flag("--allow", e);
    }
    if !is_empty_list(&t.annotations) {
        return Err(refuse(
            name,
            "annotations",
            "not supported by strata build yet",
        ));
    }
    match t.call.as_deref() {
        None | Some("build") => {}
        Some("check") => a.push("--check".into()),
        Some(other) => {
            return Err(refuse(
                name,
                "call",
                &format!("{other:?}: only build and check are supported yet"),
            ))
        }
    }
    if t.pull == Some(true) || o.pull {
        a.push("--pull".into());
    }
    if o.push {
        a.push("--push".into());
    }
    if let Some(p) = &o.progress {
        a.push(format!("--progress={p}"));
    }
    a.push("--".into());
    a.push(context);
    Ok(a)
}

#[cfg(test)]
mod tests;
