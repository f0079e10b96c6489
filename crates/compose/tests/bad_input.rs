//! Bad compose files: each `tests/bad/*.yaml` starts with `# error: MESSAGE`, the whole
//! error `compose::load` must give for `-f NAME.yaml` (file, line, column, key path and
//! wording; `$DIR` is the directory of the file). The environment is empty.

use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn bad_files_give_located_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{}: no `# error:` line", f.display()))
            .replace("$DIR", dir.to_str().unwrap());
        let name = f.file_name().unwrap();
        let opts = compose::Options {
            files: vec![PathBuf::from(name)],
            working_dir: Some(dir.clone()),
            ..Default::default()
        };
        match compose::load(&opts) {
            Ok(_) => failed.push(format!("{}: loaded, want error\n  {want}", name.display())),
            Err(e) if e.to_string() != want => {
                failed.push(format!("{}:\n  want {want}\n  got  {e}", name.display()))
            }
            Err(_) => {}
        }
    }
    println!("{} bad files, {} failed", files.len(), failed.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn error_kinds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let kind = |name: &str| {
        let opts = compose::Options {
            files: vec![PathBuf::from(name)],
            working_dir: Some(dir.clone()),
            ..Default::default()
        };
        compose::load(&opts).unwrap_err().kind
    };
    use compose::ErrorKind as K;
    assert_eq!(kind("unknown-key.yaml"), K::Schema);
    assert_eq!(kind("required-variable.yaml"), K::Interpolation);
    assert_eq!(kind("dependency-cycle.yaml"), K::DependencyCycle);
    assert_eq!(kind("undefined-dependency.yaml"), K::UndefinedService);
    assert_eq!(kind("missing-env-file.yaml"), K::EnvFile);
    assert_eq!(kind("syntax-error.yaml"), K::Syntax);
    assert_eq!(kind("no-such-file.yaml"), K::NotFound);
}
