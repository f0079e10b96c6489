//! The Compose file model: find, load, merge, interpolate, validate and normalise compose
//! files, as docker compose v2 does, into a typed [`Project`].
//!
//! ```text
//! files (-f, or compose.yaml + compose.override.yaml found upward)
//!   → YAML (serde-saphyr; anchors, `<<`; every node keeps its line and column)
//!   → interpolate each file (`${VAR:-x}` ..., `.env` / --env-file under the process env)
//!   → validate each file against the Compose Specification's JSON schema (boon)
//!   → canonicalise (short syntax to long) → `extends` → merge in order (compose-spec rules)
//!   → profiles → resolve paths, env_file, defaults → typed [`Project`] → depends_on checks
//! ```
//!
//! Use:
//!
//! ```no_run
//! let opts = compose::Options {
//!     environment: std::env::vars().collect(),
//!     ..compose::Options::default()
//! };
//! let project = compose::load(&opts)?;
//! for name in project.start_order() {
//!     let svc = &project.services[name];
//!     println!("{name}: {} x{}", svc.image_name(&project.name, name), svc.replicas());
//! }
//! print!("{}", project.to_yaml());
//! # Ok::<(), compose::Error>(())
//! ```
//!
//! Every error names the file, line, column and key path ([`Error`]'s `Display`:
//! `compose.yaml:7:5: services.web.ports[0]: invalid port specification "x"`).
//!
//! Invariant: the model reads files and nothing else: it never touches the image store,
//! builds, runs or networks. The process environment comes in as [`Options::environment`]
//! (the crate never reads `std::env::vars`), the home directory as `HOME` in it.

mod canon;
mod dotenv;
mod error;
pub mod interpolate;
mod merge;
mod model;
mod schema;
mod yaml;

pub use error::{Error, ErrorKind};
pub use model::*;

use indexmap::IndexMap;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use yaml::{Node, Val};

/// The file names looked for, in order of preference (docker compose v2's).
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// What to load; the CLI fills it from its flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f`, in merge order. Empty: `COMPOSE_FILE` (`:`-separated), else the first of
    /// [`DEFAULT_FILES`] in the current directory or a parent, with its override file.
    pub files: Vec<PathBuf>,
    /// `-p`; else `COMPOSE_PROJECT_NAME`, top-level `name:`, the project directory's name.
    pub project_name: Option<String>,
    /// `--project-directory`; else the first file's directory.
    pub project_directory: Option<PathBuf>,
    /// `--env-file`, in order; empty: `.env` in the project directory, when present.
    pub env_files: Vec<PathBuf>,
    /// `--profile`; empty: `COMPOSE_PROFILES` (comma-separated).
    pub profiles: Vec<String>,
    /// Services named on the command line: they are active whatever their profiles, and
    /// their profiles become active (compose-spec `15-profiles.md`).
    pub services: Vec<String>,
    /// The process environment (it overrides the env files for interpolation).
    pub environment: BTreeMap<String, String>,
    /// The directory the search for a default file starts in; None: the current directory.
    pub working_dir: Option<PathBuf>,
}

/// One file as read.
struct Loaded {
    path: PathBuf,
    root: Node,
}

/// Loads, merges, interpolates, validates and normalises the project.
pub fn load(opts: &Options) -> Result<Project, Error> {
    let cwd = match &opts.working_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::new(ErrorKind::Io, format!("current directory: {e}")))?,
    };
    let found = find_files(opts, &cwd)?;
    let files: Vec<PathBuf> = found.iter().map(|(f, _)| f.clone()).collect();
    let first_dir = files[0]
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.clone());
    let project_dir = absolute(
        &cwd,
        opts.project_directory.as_deref().unwrap_or(&first_dir),
    );

    // Interpolation environment: env files under the process environment.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let dot = project_dir.join(".env");
        if dot.is_file() {
            vec![dot]
        } else {
            vec![]
        }
    } else {
        opts.env_files.iter().map(|f| absolute(&cwd, f)).collect()
    };
    for f in &env_files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Error::new(ErrorKind::EnvFile, format!("couldn't read env file: {e}")).at(Some(f), 0, 0)
        })?;
        let parsed = dotenv::parse(&text, &|k| env.get(k).or(opts.environment.get(k)).cloned())
            .map_err(|(line, m)| Error::new(ErrorKind::EnvFile, m).at(Some(f), line as u64, 1))?;
        env.extend(parsed);
    }
    env.extend(opts.environment.iter().map(|(k, v)| (k.clone(), v.clone())));

    let mut warnings = Vec::new();
    if opts.files.is_empty() && !opts.environment.contains_key("COMPOSE_FILE") {
        // docker compose v2 warns when a directory has more than one candidate.
        let dir = files[0].parent().unwrap_or(Path::new("/"));
        let candidates: Vec<String> = DEFAULT_FILES
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if candidates.len() > 1 {
            warnings.push(format!(
                "Found multiple config files with supported names: {}",
                candidates.join(", ")
            ));
            warnings.push(format!("Using {}", candidates[0]));
        }
    }
    let mut loaded = Vec::new();
    let mut merged = json!({});
    for (abs, path) in &found {
        let (root, mut doc, replaced) = read_doc(abs, path, &env, &mut warnings)?;
        let dir = abs.parent().unwrap_or(Path::new("/"));
        apply_extends(&mut doc, &root, abs, path, dir, &env, &mut warnings)?;
        for p in &replaced {
            remove_path(&mut merged, p);
        }
        merge::merge_docs(&mut merged, doc);
        loaded.push(Loaded {
            path: path.clone(),
            root,
        });
    }
    let locate = Locator { files: &loaded };

    // The project name.
    let top_name = merged
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = if let Some(n) = &opts.project_name {
        check_project_name(n)?
    } else if let Some(n) = env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        check_project_name(n)?
    } else if let Some(n) = top_name {
        check_project_name(&n).map_err(|e| locate.error(e.kind, &["name"], e.message))?
    } else {
        let dir = project_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = normalize_project_name(&dir);
        if n.is_empty() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("project name must not be empty (directory {dir:?}); use -p"),
            ));
        }
        n
    };

    let profiles: Vec<String> = if opts.profiles.is_empty() {
        env.get("COMPOSE_PROFILES")
            .map(|p| {
                p.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        opts.profiles.clone()
    };

    let home = env.get("HOME").cloned();
    let ctx = Ctx {
        project_dir: &project_dir,
        home: home.as_deref(),
        env: &env,
        locate: &locate,
    };
    let mut project = finalise(merged, &name, &profiles, &opts.services, &ctx)?;
    project.working_dir = project_dir;
    project.files = files;
    warnings.append(&mut project.warnings);
    project.warnings = warnings;
    Ok(project)
}

/// One file read, interpolated, checked against the schema and made canonical; `shown` is
/// the name errors and warnings use.
fn read_doc(
    abs: &Path,
    path: &Path,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(Node, Value, Vec<Vec<String>>), Error> {
    let text = std::fs::read_to_string(abs)
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()).at(Some(path), 0, 0))?;
    let mut root = yaml::parse(&text)
        .map_err(|(l, c, m)| Error::new(ErrorKind::Syntax, m).at(Some(path), l, c))?;
    if !matches!(root.value, Val::Map(_)) {
        return Err(
            Error::new(ErrorKind::Schema, "top-level object must be a mapping").at(
                Some(path),
                root.line,
                root.col,
            ),
        );
    }
    let mut unset = Vec::new();
    interpolate_node(&mut root, &mut Vec::new(), env, &mut unset).map_err(|e| e.at_file(path))?;
    for v in unset {
        let w = format!("The \"{v}\" variable is not set. Defaulting to a blank string.");
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if root.get("version").is_some() {
        warnings.push(format!(
            "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
            path.display()
        ));
    }
    // `!reset` and `!override` (compose-spec 13-merge.md): a reset value is left out of this
    // file, and both clear what earlier files set at that path before this file merges.
    let mut replaced = Vec::new();
    take_merge_tags(&mut root, &mut Vec::new(), &mut replaced).map_err(|(l, c, p, m)| {
        Error::new(ErrorKind::Invalid, m)
            .at(Some(path), l, c)
            .path(p)
    })?;
    let mut doc = root.to_json();
    if let Err(v) = schema::validate(&doc) {
        let mut p = v.path.clone();
        let (line, col) = match &v.key {
            Some(k) => {
                p.push(schema::PathToken::Key(k.clone()));
                key_pos(&root, &p)
            }
            None => node_pos(&root, &p),
        };
        let mut msg = v.message.clone();
        if let Some(k) = &v.key {
            if let Some(s) = suggest(&root, &v.path, k) {
                msg.push_str(&format!(" — did you mean {s}?"));
            }
        }
        return Err(Error::new(ErrorKind::Schema, msg)
            .at(Some(path), line, col)
            .path(schema::display_path(&p)));
    }
    canon::canonical(&mut doc).map_err(|(p, m)| {
        let (l, c) = node_pos(&root, &p);
        Error::new(ErrorKind::Invalid, m)
            .at(Some(path), l, c)
            .path(schema::display_path(&p))
    })?;
    if let Some(o) = doc.as_object_mut() {
        o.remove("version");
    }
    Ok((root, doc, replaced))
}

/// Removes `!reset` nodes from the tree and lists the key paths of `!reset` and `!override`.
fn take_merge_tags(
    n: &mut Node,
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> Result<(), (u64, u64, String, String)> {
    match &mut n.value {
        Val::Map(m) => {
            let mut i = 0;
            while i < m.len() {
                let (k, v) = &mut m[i];
                path.push(k.name.clone());
                let tag = v.tag.clone();
                match tag.as_deref() {
                    Some("!reset") => {
                        out.push(path.clone());
                        path.pop();
                        m.remove(i);
                        continue;
                    }
                    Some("!override") => out.push(path.clone()),
                    _ => {}
                }
                take_merge_tags(v, path, out)?;
                path.pop();
                i += 1;
            }
        }
        Val::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                if matches!(it.tag.as_deref(), Some("!reset" | "!override")) {
                    return Err((
                        it.line,
                        it.col,
                        format!("{}[{i}]", path.join(".")),
                        format!(
                            "{} applies to a mapping's value, not to a list item",
                            it.tag.as_deref().unwrap_or("")
                        ),
                    ));
                }
                take_merge_tags(it, path, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Removes the value at a key path of a JSON document, if there is one.
fn remove_path(doc: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for k in parents {
        match cur.get_mut(k.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.shift_remove(last.as_str());
    }
}

/// Resolves every service's `extends` in one canonical document (`abs` is its file).
fn apply_extends(
    doc: &mut Value,
    root: &Node,
    abs: &Path,
    shown: &Path,
    dir: &Path,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let Some(services) = doc.get("services").and_then(Value::as_object).cloned() else {
        return Ok(());
    };
    let file = FileRef {
        abs,
        shown,
        dir,
        root,
    };
    let mut out = services.clone();
    for (name, svc) in &services {
        if svc.get("extends").is_some() {
            let mut stack = Vec::new();
            let v = extend_service(&services, name, &file, env, warnings, &mut stack)?;
            out.insert(name.clone(), v);
        }
    }
    doc["services"] = Value::Object(out);
    Ok(())
}

struct FileRef<'a> {
    abs: &'a Path,
    shown: &'a Path,
    dir: &'a Path,
    root: &'a Node,
}

/// The service `name` of `services` (in `file`) with its `extends` chain merged under it.
fn extend_service(
    services: &serde_json::Map<String, Value>,
    name: &str,
    file: &FileRef,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
    stack: &mut Vec<(PathBuf, String)>,
) -> Result<Value, Error> {
    let mut svc = services[name].clone();
    let Some(ext) = svc.as_object_mut().and_then(|m| m.remove("extends")) else {
        return Ok(svc);
    };
    let here = ["services", name, "extends"].map(|k| schema::PathToken::Key(k.to_string()));
    let located = |kind: ErrorKind, msg: String| {
        let (l, c) = key_pos(file.root, &here);
        Error::new(kind, msg)
            .at(Some(file.shown), l, c)
            .path(format!("services.{name}.extends"))
    };
    let key = (file.abs.to_path_buf(), name.to_string());
    if stack.contains(&key) {
        let chain: Vec<&str> = stack.iter().map(|(_, n)| n.as_str()).collect();
        return Err(located(
            ErrorKind::Invalid,
            format!(
                "circular reference with extends: {} -> {name}",
                chain.join(" -> ")
            ),
        ));
    }
    stack.push(key);
    let (base_name, base_file) = match &ext {
        Value::String(s) => (s.clone(), None),
        m => (
            canon::scalar_string(m.get("service").unwrap_or(&Value::Null)),
            m.get("file").and_then(Value::as_str).map(str::to_string),
        ),
    };
    let mut base = match base_file {
        None => {
            if !services.contains_key(&base_name) {
                return Err(located(
                    ErrorKind::UndefinedService,
                    format!("cannot extend service {name:?}: service {base_name:?} not found"),
                ));
            }
            extend_service(services, &base_name, file, env, warnings, stack)?
        }
        Some(f) => {
            let abs = absolute(file.dir, Path::new(&f));
            let shown = file.shown.parent().unwrap_or(Path::new("")).join(&f);
            if !abs.is_file() {
                return Err(located(
                    ErrorKind::NotFound,
                    format!("cannot extend service {name:?}: file {f} not found"),
                ));
            }
            let (root2, doc2, _) = read_doc(&abs, &shown, env, warnings)?;
            let services2 = doc2
                .get("services")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if !services2.contains_key(&base_name) {
                return Err(located(
                    ErrorKind::UndefinedService,
                    format!(
                        "cannot extend service {name:?}: service {base_name:?} not found in {f}"
                    ),
                ));
            }
            let dir2 = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
            let file2 = FileRef {
                abs: &abs,
                shown: &shown,
                dir: &dir2,
                root: &root2,
            };
            let mut b = extend_service(&services2, &base_name, &file2, env, warnings, stack)?;
            rebase_paths(&mut b, &dir2);
            b
        }
    };
    stack.pop();
    let mut wrapped = json!({ "services": { "s": std::mem::take(&mut base) } });
    merge::merge_docs(&mut wrapped, json!({ "services": { "s": svc } }));
    Ok(wrapped["services"]["s"].take())
}

/// Relative host paths of a service from another file made absolute against its directory.
fn rebase_paths(svc: &mut Value, dir: &Path) {
    let fix = |v: &mut Value| {
        if let Value::String(p) = v {
            if !p.starts_with('/') && !p.starts_with('~') && !is_remote_context(p) {
                *p = absolute(dir, Path::new(p.as_str()))
                    .to_string_lossy()
                    .into_owned();
            }
        }
    };
    if let Some(c) = svc.get_mut("build").and_then(|b| b.get_mut("context")) {
        fix(c);
    }
    for v in svc
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if v.get("type").and_then(Value::as_str) == Some("bind") {
            if let Some(src) = v.get_mut("source") {
                fix(src);
            }
        }
    }
    for f in svc
        .get_mut("env_file")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = f.get_mut("path") {
            fix(p);
        }
    }
}

impl Error {
    fn at_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }
}

/// The files to read: `-f`, `COMPOSE_FILE`, or the search upward from `cwd`.
fn find_files(opts: &Options, cwd: &Path) -> Result<Vec<(PathBuf, PathBuf)>, Error> {
    if !opts.files.is_empty() {
        let files: Vec<PathBuf> = opts.files.iter().map(|f| absolute(cwd, f)).collect();
        for (f, given) in files.iter().zip(&opts.files) {
            if !f.is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("open {}: no such file or directory", given.display()),
                ));
            }
        }
        return Ok(files.into_iter().zip(opts.files.iter().cloned()).collect());
    }
    if let Some(cf) = opts
        .environment
        .get("COMPOSE_FILE")
        .filter(|v| !v.is_empty())
    {
        let o = Options {
            files: cf.split(':').map(PathBuf::from).collect(),
            ..Options::default()
        };
        return find_files(&o, cwd);
    }
    let start = opts
        .project_directory
        .as_deref()
        .map(|d| absolute(cwd, d))
        .unwrap_or_else(|| cwd.to_path_buf());
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if let Some(f) = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
        {
            let stem = f.file_name().unwrap().to_string_lossy();
            let stem = stem.split('.').next().unwrap_or("compose").to_string();
            let mut out = vec![f];
            if let Some(o) = [".override.yaml", ".override.yml"]
                .iter()
                .map(|s| d.join(format!("{stem}{s}")))
                .find(|p| p.is_file())
            {
                out.push(o);
            }
            return Ok(out
                .into_iter()
                .map(|f| {
                    let shown = f
                        .strip_prefix(cwd)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| f.clone());
                    (f, shown)
                })
                .collect());
        }
        dir = d.parent();
    }
    Err(Error::new(
        ErrorKind::NotFound,
        "no configuration file provided: not found",
    ))
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    clean(&joined)
}

/// Lexical cleaning: `.` dropped, `..` pops.
fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Compose's normalisation of a directory name: lowercase, only `[a-z0-9_-]`, starting with a
/// letter or digit.
pub fn normalize_project_name(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

fn check_project_name(n: &str) -> Result<String, Error> {
    let ok = !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(n.to_string())
    } else {
        Err(Error::new(
            ErrorKind::Usage,
            format!("invalid project name {n:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"),
        ))
    }
}

/// Interpolates every string value (not keys) of the tree.
fn interpolate_node(
    n: &mut Node,
    path: &mut Vec<schema::PathToken>,
    env: &BTreeMap<String, String>,
    unset: &mut Vec<String>,
) -> Result<(), Error> {
    use interpolate::InterpolationError as IE;
    let (line, col) = (n.line, n.col);
    match &mut n.value {
        Val::Str(s) => {
            let lookup = |k: &str| env.get(k).cloned();
            match interpolate::interpolate(s, &lookup, unset) {
                Ok(v) => *s = v,
                Err(IE::Required { var, message }) => {
                    return Err(Error::new(
                        ErrorKind::Interpolation,
                        format!("required variable {var} is missing a value: {message}"),
                    )
                    .at(None, line, col)
                    .path(schema::display_path(path)));
                }
                Err(IE::Invalid) => {
                    return Err(Error::new(
                        ErrorKind::Interpolation,
                        format!("invalid interpolation format {s:?}; you may need to escape any $ with another $"),
                    )
                    .at(None, line, col)
                    .path(schema::display_path(path)));
                }
            }
        }
        Val::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                path.push(schema::PathToken::Index(i));
                interpolate_node(it, path, env, unset)?;
                path.pop();
            }
        }
        Val::Map(m) => {
            for (k, v) in m.iter_mut() {
                path.push(schema::PathToken::Key(k.name.clone()));
                interpolate_node(v, path, env, unset)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn walk<'a>(root: &'a Node, path: &[schema::PathToken]) -> Option<&'a Node> {
    let mut n = root;
    for t in path {
        n = match (t, &n.value) {
            (schema::PathToken::Key(k), Val::Seq(items)) => items
                .iter()
                .find(|i| matches!(&i.value, Val::Str(s) if s == k))?,
            (schema::PathToken::Key(k), _) => n.get(k)?,
            (schema::PathToken::Index(i), Val::Seq(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(n)
}

/// The position of the node at `path`, or of its nearest ancestor present.
fn node_pos(root: &Node, path: &[schema::PathToken]) -> (u64, u64) {
    for len in (0..=path.len()).rev() {
        if let Some(n) = walk(root, &path[..len]) {
            // A key's position is more useful than its (mapping) value's.
            if let (Some(schema::PathToken::Key(k)), Some(parent)) = (
                path[..len].last(),
                len.checked_sub(1).and_then(|l| walk(root, &path[..l])),
            ) {
                if matches!(n.value, Val::Map(_) | Val::Seq(_)) {
                    if let Some(key) = parent.key(k) {
                        return (key.line, key.col);
                    }
                }
            }
            return (n.line, n.col);
        }
    }
    (0, 0)
}

/// The position of the key at the end of `path`.
fn key_pos(root: &Node, path: &[schema::PathToken]) -> (u64, u64) {
    if let (Some(schema::PathToken::Key(k)), Some(parent)) = (
        path.last(),
        walk(root, &path[..path.len().saturating_sub(1)]),
    ) {
        if let Some(key) = parent.key(k) {
            return (key.line, key.col);
        }
    }
    node_pos(root, path)
}

/// "did you mean": the allowed key nearest to `bad` among the properties the schema allows at
/// that place.
fn suggest(_root: &Node, parent: &[schema::PathToken], bad: &str) -> Option<String> {
    let names = schema::allowed_keys(parent);
    names
        .into_iter()
        .map(|n| (strsim::damerau_levenshtein(bad, &n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min()
        .map(|(_, n)| n)
}

/// Finds where a key path of the merged document was written (the last file that has it).
struct Locator<'a> {
    files: &'a [Loaded],
}

impl Locator<'_> {
    fn error(&self, kind: ErrorKind, path: &[&str], msg: String) -> Error {
        let tokens: Vec<schema::PathToken> = path
            .iter()
            .map(|s| schema::PathToken::Key(s.to_string()))
            .collect();
        self.error_at(kind, &tokens, msg)
    }

    /// As [`Locator::error`], with list indexes in the path (`services.web.volumes[1]`).
    fn error_at(&self, kind: ErrorKind, tokens: &[schema::PathToken], msg: String) -> Error {
        let shown = schema::display_path(tokens);
        for f in self.files.iter().rev() {
            if walk(&f.root, tokens).is_some() {
                let (l, c) = key_pos(&f.root, tokens);
                return Error::new(kind, msg).at(Some(&f.path), l, c).path(shown);
            }
        }
        let file = self.files.first().map(|f| f.path.as_path());
        Error::new(kind, msg).at(file, 0, 0).path(shown)
    }
}

/// `services.NAME.KEY[i]` as path tokens.
fn item_path(service: &str, key: &str, i: usize) -> Vec<schema::PathToken> {
    use schema::PathToken::{Index, Key};
    vec![
        Key("services".into()),
        Key(service.into()),
        Key(key.into()),
        Index(i),
    ]
}

struct Ctx<'a> {
    project_dir: &'a Path,
    home: Option<&'a str>,
    env: &'a BTreeMap<String, String>,
    locate: &'a Locator<'a>,
}

impl Ctx<'_> {
    /// A host path: `~` expanded, relative to the project directory, cleaned.
    fn host_path(&self, p: &str) -> String {
        let p = match (p.strip_prefix('~'), self.home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                format!("{home}{rest}")
            }
            _ => p.to_string(),
        };
        absolute(self.project_dir, Path::new(&p))
            .to_string_lossy()
            .into_owned()
    }
}

fn is_remote_context(c: &str) -> bool {
    c.contains("://") || c.starts_with("git@") || c.starts_with("github.com/")
}

/// Profiles, paths, env_file, defaults, types; then the typed project and its checks.
fn finalise(
    mut doc: Value,
    name: &str,
    profiles: &[String],
    explicit: &[String],
    ctx: &Ctx,
) -> Result<Project, Error> {
    let obj = doc.as_object_mut().expect("a mapping");
    obj.remove("name");
    let mut services = match obj.remove("services") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };

    // Profiles.
    let mut all_profiles = BTreeSet::new();
    for s in services.values() {
        for p in s
            .get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            all_profiles.insert(canon::scalar_string(p));
        }
    }
    for e in explicit {
        if !services.contains_key(e) {
            return Err(Error::new(
                ErrorKind::UndefinedService,
                format!("no such service: {e}"),
            ));
        }
    }
    let profiles_of = |s: &Value| -> Vec<String> {
        s.get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(canon::scalar_string)
            .collect()
    };
    // A service named explicitly adds its profiles to the active ones (compose-spec
    // 15-profiles.md); its dependencies are not pulled in otherwise.
    let mut enabled: BTreeSet<String> = profiles.iter().cloned().collect();
    for e in explicit {
        enabled.extend(profiles_of(&services[e]));
    }
    let active: BTreeSet<String> = services
        .iter()
        .filter(|(n, s)| {
            let ps = profiles_of(s);
            ps.is_empty()
                || ps.iter().any(|p| enabled.contains(p))
                || enabled.contains("*")
                || explicit.contains(n)
        })
        .map(|(n, _)| n.clone())
        .collect();
    let inactive: BTreeSet<String> = services
        .keys()
        .filter(|k| !active.contains(*k))
        .cloned()
        .collect();
    services.retain(|k, _| active.contains(k));

    let mut uses_default_network = false;
    let mut svc_out: Vec<(String, Service)> = Vec::new();
    for (sname, mut s) in services {
        let m = s.as_object_mut().expect("canonical service");
        finalise_service(&sname, m, ctx)?;
        if !m.contains_key("networks") && m.get("network_mode").is_none() {
            m.insert("networks".into(), json!({"default": null}));
        }
        if m.get("networks").and_then(|n| n.get("default")).is_some() {
            uses_default_network = true;
        }
        if m.get("image").is_none() && m.get("build").is_none() {
            return Err(ctx.locate.error(
                ErrorKind::Invalid,
                &["services", &sname],
                format!("service {sname:?} has neither an image nor a build context specified: invalid compose project"),
            ));
        }
        let svc: Service = serde_path_to_error::deserialize(s).map_err(|e| {
            use schema::PathToken::{Index, Key};
            let mut path = vec![Key("services".into()), Key(sname.clone())];
            path.extend(e.path().iter().filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Index(*index)),
                _ => None,
            }));
            let msg = e.into_inner().to_string();
            let msg = match msg.split_once(", expected ") {
                Some((what, want)) => {
                    let what = what
                        .trim_start_matches("invalid type: ")
                        .trim_start_matches("string ");
                    let want = match want.trim() {
                        "u64" | "i64" | "u32" | "u16" | "i32" => "an integer",
                        "f64" | "f32" => "a number",
                        "a boolean" | "bool" => "a boolean",
                        other => other,
                    };
                    format!("invalid value {what}: must be {want}")
                }
                None => msg,
            };
            ctx.locate.error_at(ErrorKind::Invalid, &path, msg)
        })?;
        svc_out.push((sname, svc));
    }
    svc_out.sort_by(|a, b| a.0.cmp(&b.0));

    // depends_on: known services, no cycle.
    let mut dropped = Vec::new();
    let known: BTreeSet<String> = svc_out.iter().map(|(n, _)| n.clone()).collect();
    for (sname, svc) in &mut svc_out {
        let mut drop = Vec::new();
        for (dep, d) in &svc.depends_on {
            if !known.contains(dep) {
                if !d.required {
                    dropped.push(format!(
                        "service {sname:?} depends on undefined service {dep:?}, which is not required: ignored"
                    ));
                    drop.push(dep.clone());
                    continue;
                }
                let why = if inactive.contains(dep) {
                    " (its profiles are not active)"
                } else {
                    ""
                };
                return Err(ctx.locate.error(
                    ErrorKind::UndefinedService,
                    &["services", sname, "depends_on", dep],
                    format!("service {sname:?} depends on undefined service {dep:?}{why}"),
                ));
            }
        }
        for d in drop {
            svc.depends_on.shift_remove(&d);
        }
    }
    let services: IndexMap<String, Service> = svc_out.into_iter().collect();
    if let Some(cycle) = find_cycle(&services) {
        let first = cycle[0].clone();
        return Err(ctx.locate.error(
            ErrorKind::DependencyCycle,
            &["services", &first, "depends_on"],
            format!("dependency cycle detected: {}", cycle.join(" -> ")),
        ));
    }

    // Top-level resources.
    let mut networks: IndexMap<String, Network> = IndexMap::new();
    if uses_default_network {
        networks.insert("default".into(), Network::default());
    }
    let top = |obj: &mut serde_json::Map<String, Value>, key: &str| -> Vec<(String, Value)> {
        match obj.remove(key) {
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| (k, if v.is_null() { json!({}) } else { v }))
                .collect(),
            _ => Vec::new(),
        }
    };
    for (k, mut v) in top(obj, "networks") {
        coerce_resource(&mut v);
        let n: Network = serde_json::from_value(v).map_err(|e| {
            ctx.locate
                .error(ErrorKind::Invalid, &["networks", &k], e.to_string())
        })?;
        networks.insert(k, n);
    }
    for (k, n) in networks.iter_mut() {
        if n.name.is_empty() {
            n.name = if n.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            };
        }
    }
    let mut volumes: IndexMap<String, Volume> = IndexMap::new();
    for (k, mut v) in top(obj, "volumes") {
        coerce_resource(&mut v);
        let mut vol: Volume = serde_json::from_value(v).map_err(|e| {
            ctx.locate
                .error(ErrorKind::Invalid, &["volumes", &k], e.to_string())
        })?;
        if vol.name.is_empty() {
            vol.name = if vol.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            };
        }
        volumes.insert(k, vol);
    }
    let mut secrets: IndexMap<String, Secret> = IndexMap::new();
    for (k, mut v) in top(obj, "secrets") {
        coerce_resource(&mut v);
        let mut sec: Secret = serde_json::from_value(v).map_err(|e| {
            ctx.locate
                .error(ErrorKind::Invalid, &["secrets", &k], e.to_string())
        })?;
        if let Some(f) = &sec.file {
            sec.file = Some(ctx.host_path(f));
        }
        if sec.name.is_empty() {
            sec.name = if sec.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            };
        }
        secrets.insert(k, sec);
    }
    // A service's named volume, network or secret must be declared.
    for (sname, svc) in &services {
        for (i, v) in svc.volumes.iter().enumerate() {
            if v.kind == "volume" {
                if let Some(src) = &v.source {
                    if !volumes.contains_key(src) {
                        return Err(ctx.locate.error_at(
                            ErrorKind::Invalid,
                            &item_path(sname, "volumes", i),
                            format!("service {sname:?} refers to undefined volume {src}: invalid compose project"),
                        ));
                    }
                }
            }
        }
        for n in svc.networks.keys() {
            if !networks.contains_key(n) {
                return Err(ctx.locate.error(
                    ErrorKind::Invalid,
                    &["services", sname, "networks", n],
                    format!("service {sname:?} refers to undefined network {n}: invalid compose project"),
                ));
            }
        }
        for s in &svc.secrets {
            if !secrets.contains_key(&s.source) {
                return Err(ctx.locate.error(
                    ErrorKind::Invalid,
                    &["services", sname, "secrets"],
                    format!(
                        "service {sname:?} refers to undefined secret {}: invalid compose project",
                        s.source
                    ),
                ));
            }
        }
    }
    let other: BTreeMap<String, Value> = obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Project {
        name: name.to_string(),
        services,
        networks,
        volumes,
        secrets,
        other,
        all_profiles: all_profiles.into_iter().collect(),
        warnings: dropped,
        ..Project::default()
    })
}

fn coerce_resource(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        to_bool(m, "external");
        for key in ["labels", "driver_opts"] {
            if let Some(l) = m.get_mut(key) {
                *l = strings_map(&canon::kv_map(l, '='));
            }
        }
    }
}

/// A map's null values as empty strings.
fn strings_map(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), if v.is_null() { json!("") } else { v.clone() }))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn to_bool(m: &mut serde_json::Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = m.get(key) {
        let b = match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => true,
            "false" | "no" | "n" | "off" | "0" => false,
            _ => return, // left for the typed model to refuse, located
        };
        m.insert(key.into(), json!(b));
    }
}

fn to_number(m: &mut serde_json::Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = m.get(key) {
        if let Ok(n) = s.trim().parse::<i64>() {
            m.insert(key.into(), json!(n));
        } else if let Ok(f) = s.trim().parse::<f64>() {
            m.insert(key.into(), json!(f));
        }
    }
}

fn finalise_service(
    sname: &str,
    m: &mut serde_json::Map<String, Value>,
    ctx: &Ctx,
) -> Result<(), Error> {
    for k in ["init", "privileged", "read_only", "tty", "stdin_open"] {
        to_bool(m, k);
    }
    to_number(m, "scale");
    if let Some(b) = m.get_mut("build").and_then(Value::as_object_mut) {
        let c = b
            .get("context")
            .and_then(Value::as_str)
            .unwrap_or(".")
            .to_string();
        let c = if is_remote_context(&c) {
            c
        } else {
            ctx.host_path(&c)
        };
        b.insert("context".into(), json!(c));
        if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
            b.insert("dockerfile".into(), json!("Dockerfile"));
        }
        if let Some(Value::Object(args)) = b.get_mut("args") {
            for (k, v) in args.iter_mut() {
                if v.is_null() {
                    if let Some(e) = ctx.env.get(k) {
                        *v = json!(e);
                    }
                }
            }
        }
        to_bool(b, "no_cache");
        to_bool(b, "pull");
    }
    // env_file, then environment; `KEY` alone from the environment.
    let mut environment: IndexMap<String, Value> = IndexMap::new();
    if let Some(Value::Array(files)) = m.get_mut("env_file") {
        for (i, f) in files.iter_mut().enumerate() {
            let Some(fm) = f.as_object_mut() else {
                continue;
            };
            to_bool(fm, "required");
            let p = ctx.host_path(fm.get("path").and_then(Value::as_str).unwrap_or(""));
            fm.insert("path".into(), json!(p));
            let required = fm.get("required").and_then(Value::as_bool).unwrap_or(true);
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    let vars = dotenv::parse(&text, &|k| ctx.env.get(k).cloned()).map_err(
                        |(l, msg)| {
                            Error::new(ErrorKind::EnvFile, msg).at(Some(Path::new(&p)), l as u64, 1)
                        },
                    )?;
                    for (k, v) in vars {
                        environment.insert(k, json!(v));
                    }
                }
                Err(_) if !required => {}
                Err(e) => {
                    return Err(ctx.locate.error_at(
                        ErrorKind::EnvFile,
                        &item_path(sname, "env_file", i),
                        if e.kind() == std::io::ErrorKind::NotFound {
                            format!("env file {p} not found: stat {p}: no such file or directory")
                        } else {
                            format!("env file {p}: {e}")
                        },
                    ));
                }
            }
        }
    }
    if let Some(Value::Object(env)) = m.get("environment") {
        for (k, v) in env {
            let v = match v {
                Value::Null => ctx.env.get(k).map_or(Value::Null, |s| json!(s)),
                other => other.clone(),
            };
            environment.insert(k.clone(), v);
        }
    }
    if !environment.is_empty() {
        m.insert("environment".into(), json!(environment));
    }
    if let Some(Value::Object(labels)) = m.get("labels") {
        m.insert("labels".into(), strings_map(&Value::Object(labels.clone())));
    }
    if let Some(Value::Array(vols)) = m.get_mut("volumes") {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            to_bool(v, "read_only");
            let bind = v.get("type").and_then(Value::as_str) == Some("bind");
            if bind {
                if let Some(Value::String(src)) = v.get("source") {
                    let p = ctx.host_path(src);
                    v.insert("source".into(), json!(p));
                }
            }
            if let Some(b) = v.get_mut("bind").and_then(Value::as_object_mut) {
                to_bool(b, "create_host_path");
            }
            if let Some(b) = v.get_mut("volume").and_then(Value::as_object_mut) {
                to_bool(b, "nocopy");
            }
            if let Some(t) = v.get_mut("tmpfs").and_then(Value::as_object_mut) {
                to_number(t, "mode");
            }
        }
    }
    if let Some(Value::Array(ports)) = m.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            to_number(p, "target");
        }
    }
    if let Some(Value::Object(deps)) = m.get_mut("depends_on") {
        for d in deps.values_mut().filter_map(Value::as_object_mut) {
            to_bool(d, "required");
            to_bool(d, "restart");
        }
    }
    if let Some(hc) = m.get_mut("healthcheck").and_then(Value::as_object_mut) {
        to_bool(hc, "disable");
        to_number(hc, "retries");
    }
    if let Some(d) = m.get_mut("deploy").and_then(Value::as_object_mut) {
        to_number(d, "replicas");
        if let Some(r) = d.get_mut("resources").and_then(Value::as_object_mut) {
            for k in ["limits", "reservations"] {
                if let Some(l) = r.get_mut(k).and_then(Value::as_object_mut) {
                    to_number(l, "cpus");
                    to_number(l, "pids");
                    if let Some(Value::String(mem)) = l.get("memory") {
                        let bytes = parse_bytes(mem).ok_or_else(|| {
                            ctx.locate.error(
                                ErrorKind::Invalid,
                                &["services", sname, "deploy", "resources", k, "memory"],
                                format!("invalid size {mem:?}"),
                            )
                        })?;
                        l.insert("memory".into(), json!(bytes));
                    }
                }
            }
        }
    }
    // Durations: checked here to locate the error.
    let mut durs: Vec<(Vec<&str>, String)> = Vec::new();
    if let Some(Value::String(s)) = m.get("stop_grace_period") {
        durs.push((vec!["stop_grace_period"], s.clone()));
    }
    if let Some(hc) = m.get("healthcheck").and_then(Value::as_object) {
        for k in ["interval", "timeout", "start_period", "start_interval"] {
            if let Some(Value::String(s)) = hc.get(k) {
                durs.push((vec!["healthcheck", k], s.clone()));
            }
        }
    }
    for (p, s) in durs {
        if parse_duration(&s).is_none() {
            let mut path = vec!["services", sname];
            path.extend(p);
            return Err(ctx.locate.error(
                ErrorKind::Invalid,
                &path,
                format!("invalid duration {s:?}"),
            ));
        }
    }
    Ok(())
}

/// A depends_on cycle as `[a, b, a]`, looked for from services in name order.
fn find_cycle(services: &IndexMap<String, Service>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        services: &'a IndexMap<String, Service>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        stack.push(n);
        for d in services[n].depends_on.keys() {
            match state.get(d.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| *s == d).unwrap();
                    let mut c: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                    c.push(d.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(d, services, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in services.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, services, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

impl Project {
    /// Service names in start order: every service after the services it depends on; among
    /// services free to start, by name (stable). `load` refused cycles.
    pub fn start_order(&self) -> Vec<&str> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::new();
        while order.len() < self.services.len() {
            let next = self
                .services
                .iter()
                .filter(|(n, _)| !done.contains(n.as_str()))
                .find(|(_, s)| {
                    s.depends_on
                        .keys()
                        .all(|d| done.contains(d.as_str()) || !self.services.contains_key(d))
                });
            let Some((n, _)) = next else { break };
            done.insert(n);
            order.push(n.as_str());
        }
        order
    }

    /// The model as JSON (`config --format json`), keys in docker compose v2's order: a
    /// service's keys in compose-go's field order (unknown keys after, by name), and the
    /// keys of maps (environment, labels, build args, networks, ...) sorted, as Go prints maps.
    pub fn to_json_value(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("the model serialises");
        if let Some(services) = v.get_mut("services").and_then(Value::as_object_mut) {
            for svc in services.values_mut() {
                let Some(m) = svc.as_object_mut() else {
                    continue;
                };
                for key in [
                    "environment",
                    "labels",
                    "annotations",
                    "depends_on",
                    "networks",
                ] {
                    sort_value(m.get_mut(key));
                }
                if let Some(b) = m.get_mut("build").and_then(Value::as_object_mut) {
                    sort_value(b.get_mut("args"));
                    sort_value(b.get_mut("labels"));
                    order_keys(b, BUILD_ORDER);
                }
                order_keys(m, SERVICE_ORDER);
            }
        }
        for key in ["networks", "volumes", "secrets", "configs"] {
            if let Some(res) = v.get_mut(key).and_then(Value::as_object_mut) {
                for r in res.values_mut().filter_map(Value::as_object_mut) {
                    sort_value(r.get_mut("labels"));
                    sort_value(r.get_mut("driver_opts"));
                }
                sort_map(res);
            }
        }
        v
    }

    /// The model as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the model serialises") + "\n"
    }

    /// The model as YAML (`config`): `name` first, services by name, long syntax.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.to_json_value()).expect("the model serialises")
    }

    /// Images of the services (`config --images`): `image`, else `PROJECT-SERVICE`.
    pub fn images(&self) -> Vec<String> {
        self.services
            .iter()
            .map(|(n, s)| s.image_name(&self.name, n))
            .collect()
    }
}

/// compose-go's `ServiceConfig` field order (the order `docker compose config` prints).
const SERVICE_ORDER: &[&str] = &[
    "profiles",
    "annotations",
    "attach",
    "build",
    "develop",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "cgroup",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "dockerfile",
    "domainname",
    "entrypoint",
    "environment",
    "env_file",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "hostname",
    "healthcheck",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "label_file",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "privileged",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "uts",
    "userns_mode",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// compose-go's `BuildConfig` field order.
const BUILD_ORDER: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "entitlements",
    "args",
    "ssh",
    "labels",
    "cache_from",
    "cache_to",
    "no_cache",
    "additional_contexts",
    "network",
    "provenance",
    "sbom",
    "pull",
    "target",
    "shm_size",
    "extra_hosts",
    "isolation",
    "privileged",
    "secrets",
    "tags",
    "ulimits",
    "platforms",
];

/// Reorders `m`: keys of `order` first in that order, the others after by name.
fn order_keys(m: &mut serde_json::Map<String, Value>, order: &[&str]) {
    let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by_key(|(k, _)| {
        (
            order.iter().position(|o| o == k).unwrap_or(order.len()),
            k.clone(),
        )
    });
    m.extend(entries);
}

fn sort_map(m: &mut serde_json::Map<String, Value>) {
    order_keys(m, &[]);
}

fn sort_value(v: Option<&mut Value>) {
    if let Some(Value::Object(m)) = v {
        sort_map(m);
    }
}
