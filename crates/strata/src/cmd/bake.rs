//! `strata bake`: the targets of a bake file (`docker buildx bake`'s HCL or JSON) built as
//! `strata build` child processes of this executable, up to `--jobs` at once, each line of
//! their output prefixed with `[target] `. The file model is `crate::bake`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::bake;

/// buildx's default file names, looked up in the working directory in this order.
const DEFAULT_FILES: &[&str] = &[
    "docker-bake.json",
    "docker-bake.hcl",
    "docker-bake.override.json",
    "docker-bake.override.hcl",
];

#[derive(Args)]
pub struct BakeArgs {
    /// Build definition file (HCL or JSON); repeat to merge, later files winning. Default:
    /// docker-bake.json, docker-bake.hcl, docker-bake.override.json, docker-bake.override.hcl.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the resolved definition as JSON (buildx's shape) and build nothing.
    #[arg(long)]
    pub print: bool,
    /// List the targets (`targets`) or the variables (`variables`) and build nothing.
    #[arg(long, value_name = "TYPE")]
    pub list: Option<String>,
    /// Override a target attribute: `TARGET.KEY=VALUE` (`*.KEY=VALUE` for all,
    /// `TARGET.args.NAME=VALUE`, `KEY+=VALUE` to add to a list).
    #[arg(long, value_name = "[TARGET.]KEY=VALUE")]
    pub set: Vec<String>,
    /// Push every target's image after its build (`strata build --push`).
    #[arg(long)]
    pub push: bool,
    /// Do not use the build cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Always look for newer base images.
    #[arg(long)]
    pub pull: bool,
    /// Progress output of each build (as `strata build --progress`; plain by default, since
    /// the builds' output is interleaved).
    #[arg(long, value_enum)]
    pub progress: Option<super::build::ProgressMode>,
    /// How many builds run at once (default: the number of CPUs).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Build only the N-th target (0-based) of the resolved list (groups expanded, each
    /// target once, in the order they appear), e.g. `--index $JOB_COMPLETION_INDEX` in a
    /// Kubernetes Indexed Job.
    #[arg(long, value_name = "N")]
    pub index: Option<usize>,
    /// Targets or groups to build (default: group or target `default`).
    pub targets: Vec<String>,
}

/// Whether a file name is a Compose file's (buildx reads those as bake files; strata does
/// not yet).
fn is_compose(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".yml") || name.ends_with(".yaml")
}

fn read_files(given: &[PathBuf]) -> Result<Vec<bake::File>> {
    let mut files = Vec::new();
    if given.is_empty() {
        for name in DEFAULT_FILES {
            match std::fs::read(name) {
                Ok(bytes) => files.push(text(name, bytes)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {name}")),
            }
        }
        if files.is_empty() {
            // buildx would read these; strata does not yet.
            let compose = [
                "compose.yaml",
                "compose.yml",
                "docker-compose.yml",
                "docker-compose.yaml",
            ]
            .into_iter()
            .find(|n| Path::new(n).exists());
            if let Some(c) = compose {
                bail!(
                    "couldn't find a bake definition: {c} is a Compose file, which strata bake \
                     does not read yet: write the targets in docker-bake.hcl (or run strata \
                     compose build)"
                );
            }
            bail!(
                "couldn't find a bake definition: none of {} in the working directory (give one with -f)",
                DEFAULT_FILES.join(", ")
            );
        }
        return Ok(files);
    }
    for path in given {
        if is_compose(path) {
            bail!(
                "{}: Compose files are not supported by strata bake yet: write the targets in \
                 docker-bake.hcl (or run strata compose build)",
                path.display()
            );
        }
        let name = path.display().to_string();
        let bytes = if path == Path::new("-") {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the bake file from stdin")?;
            buf
        } else {
            std::fs::read(path).with_context(|| format!("cannot read {name}"))?
        };
        files.push(text(&name, bytes)?);
    }
    Ok(files)
}

fn text(name: &str, bytes: Vec<u8>) -> Result<bake::File> {
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name}: not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(bake::File {
        name: name.to_string(),
        text,
    })
}

/// The environment as bake's variables see it (names and values that are UTF-8).
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn host_platform() -> String {
    registry::Platform::default().to_string()
}

/// buildx's built-in variables.
fn builtins() -> BTreeMap<String, hcl::Value> {
    BTreeMap::from([
        ("BAKE_CMD_CONTEXT".to_string(), hcl::Value::from("cwd")),
        (
            "BAKE_LOCAL_PLATFORM".to_string(),
            hcl::Value::from(host_platform()),
        ),
    ])
}

pub fn run(root: Option<&Path>, a: BakeArgs) -> Result<ExitCode> {
    let files = read_files(&a.files)?;
    let env = environment();
    let config = bake::load(&files, &env, &builtins())?;
    if let Some(what) = &a.list {
        return list(&config, what);
    }
    let resolved = bake::resolve(&config, &a.targets, &a.set, &env)?;
    if a.print {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &bake::print_json(&resolved))?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let wanted: Vec<String> = match a.index {
        Some(n) => {
            let Some(name) = resolved.order.get(n) else {
                bail!(
                    "--index {n}: there are {} targets ({}), so the index is 0 to {}",
                    resolved.order.len(),
                    resolved.order.join(", "),
                    resolved.order.len().saturating_sub(1)
                );
            };
            eprintln!("bake: index {n} is target {name}");
            vec![name.clone()]
        }
        None => resolved.order.clone(),
    };
    let jobs = a.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let progress = a
        .progress
        .and_then(|p| p.to_possible_value())
        .map(|v| v.get_name().to_string());
    let options = Options {
        root: root.map(Path::to_path_buf),
        push: a.push,
        no_cache: a.no_cache,
        pull: a.pull,
        progress,
        jobs,
    };
    build_all(&resolved, &wanted, &options)
}

fn list(config: &bake::Config, what: &str) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match what {
        "targets" | "type=targets" => {
            writeln!(out, "TARGET\tDESCRIPTION")?;
            for g in &config.groups {
                writeln!(
                    out,
                    "{}\t{}",
                    g.name,
                    g.description.as_deref().unwrap_or("")
                )?;
            }
            for t in &config.targets {
                writeln!(
                    out,
                    "{}\t{}",
                    t.name,
                    t.description.as_deref().unwrap_or("")
                )?;
            }
        }
        other => bail!("--list {other}: use targets"),
    }
    Ok(ExitCode::SUCCESS)
}

struct Options {
    root: Option<PathBuf>,
    push: bool,
    no_cache: bool,
    pull: bool,
    progress: Option<String>,
    jobs: usize,
}

/// One build to run.
struct Unit {
    name: String,
    args: Vec<String>,
    /// Indexes of the units that must succeed first (`target:` contexts).
    deps: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Ok,
    Failed,
    /// Not run: a target it links to failed.
    Skipped,
}

/// Every wanted target and what they link to, in dependency order, each once.
fn closure(resolved: &bake::Resolved, wanted: &[String]) -> Vec<String> {
    fn add(r: &bake::Resolved, name: &str, out: &mut Vec<String>) {
        if out.iter().any(|o| o == name) {
            return;
        }
        if let Some(t) = r.targets.get(name) {
            for (_, l) in t.linked() {
                add(r, &l, out);
            }
        }
        out.push(name.to_string());
    }
    let mut out = Vec::new();
    for w in wanted {
        add(resolved, w, &mut out);
    }
    out
}

fn build_all(resolved: &bake::Resolved, wanted: &[String], o: &Options) -> Result<ExitCode> {
    let names = closure(resolved, wanted);
    let linked: Vec<String> = names
        .iter()
        .filter_map(|n| resolved.targets.get(n))
        .flat_map(|t| t.linked().into_iter().map(|(_, l)| l))
        .collect();
    let pid = std::process::id();
    let link_tag = |i: usize| format!("strata-bake/link-{i}:{pid}");
    let inline_dir = tempfile::Builder::new()
        .prefix("strata-bake-")
        .tempdir()
        .context("a temporary directory for dockerfile-inline")?;
    let mut units = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(t) = resolved.targets.get(name) else {
            bail!("target {name} was not resolved");
        };
        let inline = match &t.dockerfile_inline {
            Some(text) => {
                let p = inline_dir.path().join(format!("{i}.Dockerfile"));
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                Some(p)
            }
            None => None,
        };
        let mut linked_tags = BTreeMap::new();
        let mut deps = Vec::new();
        for (_, l) in t.linked() {
            if let Some(j) = names.iter().position(|n| *n == l) {
                linked_tags.insert(l.clone(), link_tag(j));
                deps.push(j);
            }
        }
        let options = bake::BuildOptions {
            push: o.push,
            no_cache: o.no_cache,
            pull: o.pull,
            progress: o.progress.clone(),
            inline_dockerfile: inline,
            link_tag: linked.contains(name).then(|| link_tag(i)),
            linked_tags,
        };
        units.push(Unit {
            name: name.clone(),
            args: bake::build_args(t, &options)?,
            deps,
        });
    }
    let exe = std::env::current_exe().context("cannot find strata's own executable")?;
    let states = schedule(&exe, o, &units);
    // The internal tags of linked targets are not the user's: untag them.
    let tags: Vec<String> = (0..units.len())
        .filter(|i| linked.contains(&units[*i].name) && states[*i] == State::Ok)
        .map(link_tag)
        .collect();
    if !tags.is_empty() {
        let mut c = child(&exe, o);
        c.arg("rmi").args(&tags).stdout(Stdio::null());
        if !c.status().is_ok_and(|s| s.success()) {
            eprintln!(
                "bake: warning: could not remove the internal tags {}",
                tags.join(", ")
            );
        }
    }
    let failed: Vec<&str> = units
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s != State::Ok)
        .map(|(u, _)| u.name.as_str())
        .collect();
    if failed.is_empty() {
        eprintln!(
            "bake: {} target{} built: {}",
            units.len(),
            if units.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "bake: {} of {} targets failed: {}",
            failed.len(),
            units.len(),
            failed.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

fn child(exe: &Path, o: &Options) -> Command {
    let mut c = Command::new(exe);
    if let Some(r) = &o.root {
        c.arg("--root").arg(r);
    }
    c.stdin(Stdio::null());
    c
}

/// Run the units, at most `o.jobs` at once, each when its dependencies have succeeded.
fn schedule(exe: &Path, o: &Options, units: &[Unit]) -> Vec<State> {
    let mut states = vec![State::Waiting; units.len()];
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            for i in 0..units.len() {
                if states[i] != State::Waiting {
                    continue;
                }
                let deps = &units[i].deps;
                if deps
                    .iter()
                    .any(|d| matches!(states[*d], State::Failed | State::Skipped))
                {
                    eprintln!(
                        "[{}] not built: a target it uses as a context failed",
                        units[i].name
                    );
                    states[i] = State::Skipped;
                    continue;
                }
                if running >= o.jobs || !deps.iter().all(|d| states[*d] == State::Ok) {
                    continue;
                }
                states[i] = State::Running;
                running += 1;
                let tx = tx.clone();
                let unit = &units[i];
                let mut c = child(exe, o);
                c.args(&unit.args);
                scope.spawn(move || {
                    let ok = run_prefixed(c, &unit.name);
                    // The receiver outlives every sender in this scope.
                    let _ = tx.send((i, ok));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((i, ok)) = rx.recv() else { break };
            running -= 1;
            states[i] = if ok { State::Ok } else { State::Failed };
        }
    });
    // Anything still waiting had a dependency that never ran.
    for s in &mut states {
        if *s == State::Waiting {
            *s = State::Skipped;
        }
    }
    states
}

/// Run a child with its stdout and stderr lines prefixed `[name] `; whether it succeeded.
fn run_prefixed(mut c: Command, name: &str) -> bool {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            eprintln!("[{name}] cannot start strata build: {e}");
            return false;
        }
    };
    let prefix = format!("[{name}] ");
    let out = child.stdout.take();
    let err = child.stderr.take();
    std::thread::scope(|s| {
        if let Some(out) = out {
            let p = &prefix;
            s.spawn(move || copy_lines(out, p, &mut std::io::stdout()));
        }
        if let Some(err) = err {
            copy_lines(err, &prefix, &mut std::io::stderr());
        }
    });
    match child.wait() {
        Ok(st) if st.success() => true,
        Ok(st) => {
            eprintln!("[{name}] strata build failed ({st})");
            false
        }
        Err(e) => {
            eprintln!("[{name}] waiting for strata build: {e}");
            false
        }
    }
}

/// Copy `from` line by line to `to`, each line prefixed, written whole (so lines of
/// parallel builds do not mix).
fn copy_lines(from: impl Read, prefix: &str, to: &mut dyn Write) {
    let mut r = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let mut buf = Vec::with_capacity(prefix.len() + line.len() + 1);
                buf.extend_from_slice(prefix.as_bytes());
                buf.extend_from_slice(&line);
                if !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
                // A closed stdout (`strata bake | head`) must not stop the build.
                let _ = to.write_all(&buf);
                let _ = to.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_names_are_recognised() {
        assert!(is_compose(Path::new("compose.yaml")));
        assert!(is_compose(Path::new("dir/docker-compose.YML")));
        assert!(!is_compose(Path::new("docker-bake.hcl")));
        assert!(!is_compose(Path::new("-")));
    }

    #[test]
    fn lines_are_prefixed_whole() {
        let mut out = Vec::new();
        copy_lines(&b"one\ntwo\xff\nlast"[..], "[a] ", &mut out);
        assert_eq!(out, b"[a] one\n[a] two\xff\n[a] last\n");
    }
}
