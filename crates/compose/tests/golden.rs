//! Golden files: each directory of `tests/golden/` is a project (compose files, `.env`, ...)
//! with
//! - `args`: the global options, one per line (`-f a.yaml`, `-p name`, `--env-file x`,
//!   `--profile p`, `--project-directory d`, `service NAME` for a service named on the
//!   command line, `cwd DIR` to start the file search in a subdirectory); may be absent;
//!   paths in the output are written `/CASE` (the case directory) and `/GOLDEN` (its parent);
//! - `env`: the process environment, `KEY=VALUE` lines (`HOME=/home/user` unless set there;
//!   `$CASE` is the case directory);
//! - `expected.yaml`: `compose config`'s output, compared exactly, with the case directory
//!   written `/CASE`;
//! - `expected.warnings` (optional): the warnings, one per line.
//!
//! `UPDATE_GOLDEN=1 cargo test -p compose --test golden` rewrites the expected files (review
//! the diff).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn options(dir: &Path) -> compose::Options {
    let mut o = compose::Options {
        working_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let mut env = BTreeMap::from([("HOME".to_string(), "/home/user".to_string())]);
    if let Ok(text) = fs::read_to_string(dir.join("env")) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            env.insert(k.to_string(), v.replace("$CASE", dir.to_str().unwrap()));
        }
    }
    o.environment = env;
    if let Ok(text) = fs::read_to_string(dir.join("args")) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let (flag, value) = l.split_once(' ').unwrap_or((l, ""));
            let value = value.trim().to_string();
            match flag {
                "-f" => o.files.push(PathBuf::from(value)),
                "-p" => o.project_name = Some(value),
                "--env-file" => o.env_files.push(PathBuf::from(value)),
                "--profile" => o.profiles.push(value),
                "--project-directory" => o.project_directory = Some(PathBuf::from(value)),
                "service" => o.services.push(value),
                "cwd" => o.working_dir = Some(dir.join(value)),
                other => panic!("{}: unknown line in args: {other}", dir.display()),
            }
        }
    }
    o
}

fn check(dir: &Path) -> Result<(), String> {
    let project = compose::load(&options(dir)).map_err(|e| format!("load: {e}"))?;
    let case = dir.to_str().unwrap();
    let golden = dir.parent().unwrap().to_str().unwrap();
    let paths = |s: &str| s.replace(case, "/CASE").replace(golden, "/GOLDEN");
    let yaml = paths(&project.to_yaml());
    let warnings: String = project
        .warnings
        .iter()
        .map(|w| format!("{}\n", paths(w)))
        .collect();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut problems = Vec::new();
    for (name, got, optional) in [
        ("expected.yaml", &yaml, false),
        ("expected.warnings", &warnings, true),
    ] {
        let path = dir.join(name);
        if update {
            if !(optional && got.is_empty()) {
                fs::write(&path, got).unwrap();
            }
            continue;
        }
        let want = fs::read_to_string(&path).unwrap_or_default();
        if !(optional && got.is_empty() && want.is_empty()) && &want != got {
            problems.push(format!("{name} differs\n--- want\n{want}--- got\n{got}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn golden_projects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut failed = Vec::new();
    for d in &dirs {
        if let Err(e) = check(d) {
            failed.push(format!(
                "== {}\n{e}",
                d.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    println!("{} golden projects, {} failed", dirs.len(), failed.len());
    assert!(dirs.len() >= 10, "expected at least 10 golden projects");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
