//! The tidy test: ARCHITECTURE.md's "Architecture invariant:" lines, checked from the
//! Cargo.toml files and the sources. The crate names are the table below; when a crate is
//! renamed or added, this table changes with ARCHITECTURE.md's layer list.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The engine crate (BuildKit's frontend-to-solver-to-exporters path).
const ENGINE: &str = "engine";
/// The container runtime crate.
const RUNTIME: &str = "runtime";
/// The CLI.
const CLI: &str = "strata";

/// The layers, lowest first: a crate may depend only on crates before it.
const LAYERS: &[&str] = &[
    "escape",
    "dockerfile",
    "plan",
    "store",
    "layer",
    "exec",
    "context",
    "check",
    "archive",
    "registry",
    ENGINE,
    RUNTIME,
    "compose",
    CLI,
];

/// Workspace members that are not layers of the product: the tests themselves, and the offline
/// check of the deployment manifests.
const NOT_LAYERS: &[&str] = &["tests", "deploy-check"];

/// Crates that do I/O: `dockerfile` and `plan` depend on none of them; `check` on none but
/// `context`, whose pure pattern matcher it uses.
const IO_CRATES: &[&str] = &[
    "store", "layer", "exec", "context", "archive", "registry", ENGINE, RUNTIME, "compose", CLI,
];

/// Crates that know Dockerfiles: the store depends on none of them.
const DOCKERFILE_CRATES: &[&str] = &["dockerfile", "plan", ENGINE];

/// Terminal crates the engine must not depend on (the CLI draws progress).
const TERMINAL_CRATES: &[&str] = &["indicatif", "console", "crossterm", "termion"];

fn root() -> &'static Path {
    strata_tests::repo_root()
}

/// The crates of the workspace by directory name, each with the names of its normal and build
/// dependencies (dev-dependencies are left out: tests may use any crate).
fn crate_graph() -> BTreeMap<String, Vec<String>> {
    let mut graph = BTreeMap::new();
    for e in fs::read_dir(root().join("crates")).unwrap() {
        let dir = e.unwrap().path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        graph.insert(name, dependencies(&fs::read_to_string(&manifest).unwrap()));
    }
    graph
}

/// Keys of `[dependencies]`, `[build-dependencies]` and `[target.*.dependencies]` tables
/// (`name = ...`, `name.workspace = true`, `[dependencies.name]`).
fn dependencies(toml: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            let table = line.trim_matches(|c| c == '[' || c == ']');
            let normal = |t: &str| t == "dependencies" || t == "build-dependencies";
            let last = table.rsplit('.').next().unwrap_or("");
            in_deps = normal(table) || (table.starts_with("target.") && normal(last));
            if let Some(name) = table
                .strip_prefix("dependencies.")
                .or_else(|| table.strip_prefix("build-dependencies."))
            {
                deps.push(name.to_string());
                in_deps = false;
            }
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            let key = key.strip_suffix(".workspace").unwrap_or(key);
            deps.push(key.trim_matches('"').to_string());
        }
    }
    deps
}

/// Every `.rs` file under `dir`, with its text minus `//` comments (so a comment saying
/// "no unsafe here" is not a violation).
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text: String = fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .map(|l| match l.find("//") {
                        Some(i) => &l[..i],
                        None => l,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push((p, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out.sort();
    out
}

/// `needle` as a whole word (not inside an identifier) in `text`.
fn has_word(text: &str, needle: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Where `uses` (paths such as `std::fs`) appear in the sources of `krate`, including in
/// grouped imports (`use std::{fs, io}`).
fn uses_of(krate: &str, uses: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(&root().join("crates").join(krate).join("src")) {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        for u in uses {
            if has_word(&text, u) {
                found.push(format!("{rel}: {u}"));
            }
            // `std::{..., fs, ...}`
            let (base, leaf) = u.rsplit_once("::").unwrap();
            for (i, _) in text.match_indices(&format!("{base}::{{")) {
                let group = &text[i..];
                let group = &group[..group.find('}').unwrap_or(group.len())];
                if has_word(group, leaf) {
                    found.push(format!("{rel}: {u} (grouped import)"));
                }
            }
        }
    }
    found
}

fn layer(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == name)
}

#[test]
fn every_crate_is_a_layer_and_depends_only_on_lower_ones() {
    let graph = crate_graph();
    // The parser sees the graph (a guard against a check that passes on nothing).
    assert!(
        graph["plan"].iter().any(|d| d == "dockerfile"),
        "plan -> dockerfile not seen: {graph:?}"
    );
    let mut wrong = Vec::new();
    for (krate, deps) in &graph {
        if NOT_LAYERS.contains(&krate.as_str()) {
            continue;
        }
        let Some(me) = layer(krate) else {
            wrong.push(format!(
                "crates/{krate} is not in the layer list (tidy.rs LAYERS, ARCHITECTURE.md)"
            ));
            continue;
        };
        for d in deps {
            match layer(d) {
                Some(l) if l >= me => {
                    wrong.push(format!("{krate} (layer {me}) depends on {d} (layer {l})"))
                }
                None if graph.contains_key(d) => {
                    wrong.push(format!("{krate} depends on {d}, which is not a layer"))
                }
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn dockerfile_plan_and_check_do_no_io() {
    let graph = crate_graph();
    let mut wrong = Vec::new();
    for krate in ["dockerfile", "plan", "check"] {
        for d in &graph[krate] {
            if IO_CRATES.contains(&d.as_str()) && !(krate == "check" && d == "context") {
                wrong.push(format!("{krate} depends on {d}"));
            }
        }
        wrong.extend(uses_of(krate, &["std::fs", "std::process", "std::net"]));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_engine_has_no_terminal() {
    let graph = crate_graph();
    let mut wrong = Vec::new();
    for d in &graph[ENGINE] {
        if TERMINAL_CRATES.contains(&d.as_str()) {
            wrong.push(format!("{ENGINE} depends on {d}"));
        }
    }
    for (path, text) in sources(&root().join("crates").join(ENGINE).join("src")) {
        for word in ["stdout()", "stderr()", "IsTerminal"] {
            if text.contains(word) {
                wrong.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_store_knows_no_dockerfile() {
    let graph = crate_graph();
    let wrong: Vec<&String> = graph["store"]
        .iter()
        .filter(|d| DOCKERFILE_CRATES.contains(&d.as_str()))
        .collect();
    assert!(wrong.is_empty(), "store depends on {wrong:?}");
}

#[test]
fn the_runtime_knows_no_dockerfile_no_build_and_no_flags() {
    let graph = crate_graph();
    let wrong: Vec<&String> = graph[RUNTIME]
        .iter()
        .filter(|d| ["dockerfile", "plan", "check", ENGINE, "clap"].contains(&d.as_str()))
        .collect();
    assert!(wrong.is_empty(), "{RUNTIME} depends on {wrong:?}");
}

#[test]
fn the_compose_model_knows_no_store_build_or_container() {
    let graph = crate_graph();
    let wrong: Vec<&String> = graph["compose"]
        .iter()
        .filter(|d| {
            [
                "store", "layer", "exec", "archive", "registry", ENGINE, RUNTIME, CLI,
            ]
            .contains(&d.as_str())
        })
        .collect();
    assert!(wrong.is_empty(), "compose depends on {wrong:?}");
    // The environment comes in as Options::environment; no process is started.
    let found = uses_of(
        "compose",
        &["std::process", "std::net", "env::vars", "env::var"],
    );
    assert!(found.is_empty(), "compose: {found:?}");
}

#[test]
fn the_cli_has_no_unsafe() {
    let wrong: Vec<String> = sources(&root().join("crates").join(CLI).join("src"))
        .into_iter()
        .filter(|(_, text)| has_word(text, "unsafe"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(wrong.is_empty(), "unsafe in the CLI: {wrong:#?}");
}

#[test]
fn a_process_joining_a_container_is_confined_by_the_same_code() {
    // The executor: seccomp and the capability sets are applied in one function only, which
    // the container's init and a joining process both end with.
    let exec_src = sources(&root().join("crates").join("exec").join("src"));
    let calls = |needle: &str| -> Vec<String> {
        exec_src
            .iter()
            .filter(|(p, _)| !p.components().any(|c| c.as_os_str() == "seccomp"))
            .flat_map(|(p, text)| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                text.match_indices(needle).map(move |_| name.clone())
            })
            .collect()
    };
    // In init.rs only: for the command (`exec_confined`) and for `--init`'s tiny init
    // (`confine_tiny_init`).
    assert_eq!(
        calls("seccomp::install("),
        ["init.rs", "init.rs"],
        "where seccomp is installed"
    );
    assert_eq!(
        calls("set_identity(id,"),
        ["init.rs"],
        "where capabilities are set"
    );
    let mut users = calls("exec_confined(");
    users.sort();
    assert_eq!(
        users,
        ["init.rs", "init.rs", "join.rs"],
        "who ends with exec_confined"
    );
    // The runtime: one source of the confinement for the main process and for exec.
    let runtime_src = sources(&root().join("crates").join(RUNTIME).join("src"));
    let text = |name: &str| {
        runtime_src
            .iter()
            .find(|(p, _)| p.file_name().unwrap() == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no {name} in the runtime"))
    };
    assert!(text("spec.rs").contains("let confinement = confinement(c)?;"));
    assert!(text("exec.rs").contains("spec::confinement(c)"));
    for (p, t) in &runtime_src {
        if p.file_name().unwrap() != "spec.rs" {
            assert!(
                !t.contains("seccomp.to_exec()") && !t.contains("no_new_privs = true"),
                "{} decides a confinement of its own",
                p.display()
            );
        }
    }
}

#[test]
fn nothing_refers_to_a_shared_directory_beside_the_checkout() {
    // Spelled in two pieces so that this file does not match itself.
    let needle = format!("{}/shared", "..");
    let skip = [
        ".git",
        "target",
        "docs/notes",
        "fuzz/target",
        "fuzz/corpus",
        "fuzz/artifacts",
        "fuzz/coverage",
    ];
    let mut wrong = Vec::new();
    let mut seen = 0;
    let mut stack = vec![root().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root()).unwrap();
            if skip.iter().any(|s| rel == Path::new(s)) {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                seen += 1;
                let bytes = fs::read(&p).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    wrong.push(rel.display().to_string());
                }
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} files seen under {}",
        root().display()
    );
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "files that refer to {needle} (copy what they need into the repository): {wrong:#?}"
    );
}

#[test]
fn the_checks_find_what_they_look_for() {
    // Each check, on text that breaks it, finds the break.
    assert_eq!(
        dependencies("[package]\nname = \"x\"\n[dependencies]\nstore = { path = \"../store\" }\nserde.workspace = true\n[dev-dependencies]\ntempfile = \"3\"\n[target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n"),
        ["store", "serde", "libc"]
    );
    assert!(has_word("x; unsafe { y }", "unsafe"));
    assert!(!has_word("fn not_unsafe_at_all()", "unsafe"));
    assert!(has_word("use std::fs;", "std::fs"));
    assert!(!has_word("use std::fsx;", "std::fs"));
    // The scanners see real uses: the store does I/O, grouped or not.
    assert!(!uses_of("store", &["std::fs"]).is_empty());
}
