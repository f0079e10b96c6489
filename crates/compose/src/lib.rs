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
mod extends;
mod files;
pub mod interpolate;
mod locate;
mod merge;
mod model;
mod output;
mod resolve;
mod schema;
mod yaml;

pub use error::{Error, ErrorKind};
pub use model::*;

use extends::*;
use files::*;
use indexmap::IndexMap;
use locate::*;
use resolve::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use yaml::{Node, Val};

/// Where the key path `path` (keys, and list indexes as numbers: `["services", "web",
/// "ports", "0"]`) is written in `files`: the last file that has it (a later file's value is
/// the one merged in), with its line and column; `None` when no file has it (a default, an
/// `extends`) or a file no longer parses. For errors found after loading (a published port
/// in use when `up` starts).
pub fn position(files: &[PathBuf], path: &[&str]) -> Option<(PathBuf, u64, u64)> {
    let tokens: Vec<schema::PathToken> = path
        .iter()
        .map(|p| match p.parse::<usize>() {
            Ok(i) => schema::PathToken::Index(i),
            Err(_) => schema::PathToken::Key(p.to_string()),
        })
        .collect();
    files.iter().rev().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        let root = yaml::parse(&text).ok()?;
        let n = locate::walk(&root, &tokens)?;
        Some((f.clone(), n.line, n.col))
    })
}

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

impl Error {
    fn at_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }
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
